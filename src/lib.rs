#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
pub mod codec;
pub mod crypto;
pub mod message;
pub mod query;
pub mod reply;
pub mod signature;

pub use codec::Format;
pub use crypto::{EncodingAesKey, KeyRing};
pub use message::Message;
pub use reply::Reply;
