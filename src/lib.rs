#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The sans-IO protocol core: no tower, no tokio (see ARCHITECTURE.md).
mod protocol;
// The tower wiring: the layer, its service and its response future.
mod middleware;
// What runs around the handler: dedupe, the ack deadline, the replay guard.
mod retry;
// Shared by the middleware and the client.
pub mod body;
pub mod store;
pub mod ticket;

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use middleware::apps;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use middleware::axum;
pub use protocol::{clock, codec, crypto, message, query, reply, signature};
pub use retry::replay;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use retry::{deadline, dedupe};

use protocol::{endpoint, random, rejection};

pub use codec::Format;
pub use crypto::{EncodingAesKey, KeyRing};
pub use endpoint::{
    Answer, ConfigError, Endpoint, OpenedPush, PushInfo, ReceiveId, ReplyTo, Verified,
    DEFAULT_TIMESTAMP_TOLERANCE,
};
pub use message::Message;
pub use middleware::{
    PassBody, PassThrough, PassThroughFuture, ResponseFuture, Typed, TypedHandler, Wechat,
    WechatLayer, DEFAULT_BODY_LIMIT,
};
pub use rejection::Rejection;
pub use reply::Reply;
