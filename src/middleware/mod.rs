//! The tower wiring: [`WechatLayer`] (the configuration), [`Wechat`] (its service) and
//! [`ResponseFuture`] (collect the body, open the push, call the handler, encode the reply).
//! The checks themselves are the protocol core's ([`Endpoint`](crate::Endpoint)).

#[cfg(feature = "axum")]
pub mod axum;
mod future;
mod layer;
pub(crate) mod mode;
pub(crate) mod pass_through;
mod response;
mod service;
mod trace;

pub use future::ResponseFuture;
pub use layer::{MultiApp, SingleApp, WechatLayer, DEFAULT_BODY_LIMIT};
pub use mode::Typed;
pub use pass_through::{PassBody, PassThrough};
pub use service::Wechat;
