//! The tower wiring: [`WechatLayer`] (the configuration), [`Wechat`] (its service) and
//! [`ResponseFuture`] (collect the body, open the push, call the handler, encode the reply).
//! The checks themselves are the protocol core's ([`Endpoint`](crate::Endpoint)).

mod future;
mod layer;
mod response;
mod service;

pub use future::ResponseFuture;
pub use layer::{WechatLayer, DEFAULT_BODY_LIMIT};
pub use service::Wechat;
