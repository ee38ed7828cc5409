//! Pass-through mode: the layer in front of handlers and routers that take an ordinary HTTP
//! request. The handler's request keeps its method, URI, headers and extensions; its body is
//! the push's document (decrypted in safe mode) with a matching `Content-Type`, and its
//! extensions carry the [`Message`](crate::Message) and [`PushInfo`](crate::PushInfo). A
//! response carrying a [`Reply`] (as axum handlers returning one do) is written in the push's
//! format and sealed when the push was encrypted; any other response passes through, except
//! that in safe mode a 200 whose body is a reply document (`<xml…` or `{…`) is sealed.

mod adapter;
mod pass_body;

use std::borrow::Cow;

use bytes::Bytes;
use http::{Response, StatusCode};

pub(crate) use adapter::Adapter;
pub use pass_body::PassBody;

use super::mode::Answer;
use super::response;
use crate::body;
use crate::endpoint::{is_document, Endpoint, ReplyTo};
use crate::reply::Reply;

/// The pass-through mode, chosen with [`WechatLayer::pass_through`](crate::WechatLayer::pass_through).
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct PassThrough;

/// What a pass-through handler answered, as the layer and the retry options see it.
#[derive(Debug)]
pub(crate) enum PassOutcome<B> {
    /// A [`Reply`], returned by the handler or recorded by dedupe.
    Reply(Reply),
    /// A 200 read into memory (safe mode, or dedupe on), with the handler's head.
    Buffered(http::response::Parts, Bytes),
    /// Any other response, passed through untouched.
    Response(Response<B>),
    /// The handler's 200 body could not be read, or was over the body limit.
    Broken(&'static str),
}

impl<B: Send + 'static> crate::retry::Outcome for PassOutcome<B> {
    fn record(&self) -> Option<Cow<'_, Reply>> {
        match self {
            Self::Reply(reply) => Some(Cow::Borrowed(reply)),
            Self::Buffered(parts, body) if parts.status == StatusCode::OK => {
                Some(Cow::Owned(match &body[..] {
                    b"success" => Reply::Success,
                    b"" => Reply::Empty,
                    _ => Reply::document(body.clone()),
                }))
            }
            // Not a handled push: dedupe releases it, so that a retry is handled.
            Self::Buffered(..) | Self::Response(_) | Self::Broken(_) => None,
        }
    }

    fn recorded(reply: Reply) -> Self {
        Self::Reply(reply)
    }
}

impl<B: Send + 'static> Answer for PassOutcome<B> {
    type Body = PassBody<B>;

    const KEEP_DOCUMENT: bool = true;

    fn own(response: Response<body::Body>) -> Response<PassBody<B>> {
        response.map(PassBody::full)
    }

    fn finish(self, endpoint: &Endpoint, to: &ReplyTo) -> Response<PassBody<B>> {
        let response = match self {
            PassOutcome::Reply(reply) => response::answer(endpoint.answer(to, &reply)),
            PassOutcome::Buffered(parts, body)
                if to.is_encrypted() && parts.status == StatusCode::OK && is_document(&body) =>
            {
                response::answer(endpoint.answer(to, &Reply::document(body)))
            }
            PassOutcome::Buffered(parts, body) => {
                Response::from_parts(parts, body::Body::new(body))
            }
            PassOutcome::Response(response) => return response.map(PassBody::inner),
            PassOutcome::Broken(reason) => response::server_error(reason),
        };
        response.map(PassBody::full)
    }
}
