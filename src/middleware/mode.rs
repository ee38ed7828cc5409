//! The two ways the layer meets the handler: typed (`Request<Message>` in, `Into<Reply>` out)
//! and pass-through (the decrypted document in, an HTTP response out). One configuration and
//! one verification path; an [`Answer`] only says how the handler's answer becomes the
//! response.

use bytes::Bytes;
use http::Response;

use super::response;
use crate::body;
use crate::endpoint::{Endpoint, ReplyTo};
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

/// The push's document (XML or JSON, decrypted), handed to a pass-through handler as its
/// request body.
#[derive(Clone, Debug)]
pub(crate) struct Document(pub(crate) Bytes);
