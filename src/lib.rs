// The crate's documentation is the README (its feature table included), so that docs.rs and
// GitHub show the same guide. Its examples are complete programs that use every feature, so
// they run as doctests (below) only when every feature is on, as `cargo test --all-features`.
#![cfg_attr(not(doctest), doc = include_str!("../README.md"))]

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
pub mod client;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "tokio")]
pub mod queue;
#[cfg(feature = "test-util")]
pub mod test;

pub use middleware::apps;
#[cfg(feature = "axum")]
pub use middleware::axum;
pub use protocol::{clock, codec, crypto, message, query, reply, signature};
pub use retry::replay;
#[cfg(feature = "tokio")]
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

/// The README's examples, as doctests: they are complete programs, written for every feature.
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "client",
    feature = "redis",
    feature = "tokio",
    feature = "tracing"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
