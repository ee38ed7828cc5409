//! The tower wiring: [`WechatLayer`] (the configuration), [`Wechat`] (its service) and
//! [`ResponseFuture`] (collect the body, open the push, call the handler, encode the reply).

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub(crate) use layer::Config;
pub use layer::{Clock, ConfigError, WechatLayer, DEFAULT_BODY_LIMIT, DEFAULT_TIMESTAMP_TOLERANCE};
pub use service::Wechat;
