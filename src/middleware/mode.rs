//! The two ways the layer meets the handler: typed (`Request<Message>` in, `Into<Reply>` out)
//! and pass-through (the decrypted document in, an HTTP response out). One configuration and
//! one verification path; an [`Answer`] only says how the handler's answer becomes the
//! response.

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::response;
use crate::body;
use crate::endpoint::{Endpoint, ReplyTo};
use crate::message::Message;
use crate::reply::Reply;
use crate::retry::Outcome;

/// A handler's answer in one mode ([`Reply`] typed, `PassOutcome` pass-through): how it
/// becomes the response. Crate-private: the public bounds name the handler's own types only.
pub(crate) trait Answer: Outcome {
    /// The response body.
    type Body;

    /// Whether the handler's request carries the push's document (pass-through).
    const KEEP_DOCUMENT: bool;

    /// The layer's own answer (a rejection, a handshake) in this mode's body.
    fn own(response: Response<body::Body>) -> Response<Self::Body>;

    /// The response to the handler's answer.
    fn finish(self, endpoint: &Endpoint, to: &ReplyTo) -> Response<Self::Body>;
}

/// The typed mode (the default): the handler takes `Request<Message>` and answers anything
/// `Into<Reply>`, which the layer writes in the push's format and seals when the push was
/// encrypted.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct Typed;

impl Answer for Reply {
    type Body = body::Body;

    const KEEP_DOCUMENT: bool = false;

    fn own(response: Response<body::Body>) -> Response<body::Body> {
        response
    }

    fn finish(self, endpoint: &Endpoint, to: &ReplyTo) -> Response<body::Body> {
        response::answer(endpoint.answer(to, &self))
    }
}

/// A handler of the typed mode: a `Service<Request<Message>>` answering anything
/// `Into<Reply>`, `Clone`, and `Send + 'static` with its future, answer and error (dedupe and
/// the ack deadline, run-time settings, may move it into a task of its own). Implemented for
/// every such service: there is nothing to implement, the trait only names what
/// [`Wechat`](crate::Wechat) needs, so that a mistake gets a message that names the fix.
///
/// The usual mistake is an HTTP handler (an axum handler or `Router`) behind a typed layer,
/// which needs [`pass_through`](crate::WechatLayer::pass_through) instead. The compiler then
/// says so, beside axum's own complaint about the body (`Message: HttpBody`):
///
/// ```text
/// error[E0277]: `Route` is not a typed WeChat handler
///   |
///   |     let app: Router = Router::new().route("/wechat", post(on_push).layer(wechat));
///   |                                                                    ^^^^^ not a `Service<Request<Message>>` answering `Into<Reply>`
///   |
///   = help: the trait `TypedHandler` is not implemented for `Route`
///   = note: an HTTP handler (an axum handler or `Router`, any service taking an HTTP body) goes behind a pass-through layer: `WechatLayer::new(token)?.pass_through()`
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a typed WeChat handler",
    label = "not a `Service<Request<Message>>` answering `Into<Reply>`",
    note = "an HTTP handler (an axum handler or `Router`, any service taking an HTTP body) goes behind a pass-through layer: `WechatLayer::new(token)?.pass_through()`",
    note = "a typed handler is a `Service<Request<Message>>` (e.g. `tower::service_fn`) answering anything `Into<Reply>`, `Clone + Send + 'static`, with a `Send` future"
)]
pub trait TypedHandler:
    Service<
        Request<Message>,
        Response: Into<Reply> + Send + 'static,
        Future: Send + 'static,
        Error: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

#[diagnostic::do_not_recommend]
impl<S> TypedHandler for S
where
    S: Service<Request<Message>> + Clone + Send + 'static,
    S::Response: Into<Reply> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
}

/// The push's document (XML or JSON, decrypted), handed to a pass-through handler as its
/// request body.
#[derive(Clone, Debug)]
pub(crate) struct Document(pub(crate) Bytes);
