//! The tower wiring: [`WechatLayer`] (builds the shared configuration), [`Wechat`] (its
//! service) and its response futures (collect the body, open the push, call the handler,
//! encode the reply). The checks themselves are the protocol core's
//! ([`Endpoint`](crate::Endpoint)).
//!
//! One job per file: `config` (what every request shares), `layer` (the builder), `service`
//! (the checks before the body), `collect` (reading the body), `open` (opening the push, the
//! steps before the handler), `retry` (dedupe and the deadline, per request), `future` (the
//! state machine), `mode` and `pass_through` (how an answer becomes the response), `queue` (queue
//! mode: queuing on the request's path, pass-through handlers in the workers), `apps`
//! (choosing the app of a request).

pub mod apps;
#[cfg(feature = "axum")]
pub mod axum;
mod collect;
mod config;
mod future;
mod layer;
mod mode;
mod open;
mod pass_through;
#[cfg(feature = "tokio")]
mod queue;
mod response;
mod retry;
mod service;
mod trace;

pub use config::DEFAULT_BODY_LIMIT;
pub use future::{PassThroughFuture, ResponseFuture};
pub use layer::WechatLayer;
pub use mode::{Typed, TypedHandler};
pub use pass_through::{PassBody, PassThrough};
pub use service::Wechat;
