#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
pub mod codec;
pub mod crypto;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod deadline;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod dedupe;
mod future;
mod layer;
pub mod message;
mod push;
pub mod query;
mod random;
mod rejection;
pub mod replay;
pub mod reply;
mod service;
pub mod signature;
pub mod store;

pub use body::ResponseBody;
pub use codec::Format;
pub use crypto::{EncodingAesKey, KeyRing};
pub use future::ResponseFuture;
pub use layer::{Clock, ConfigError, WechatLayer, DEFAULT_BODY_LIMIT, DEFAULT_TIMESTAMP_TOLERANCE};
pub use message::Message;
pub use push::PushInfo;
pub use rejection::Rejection;
pub use reply::Reply;
pub use service::Wechat;
