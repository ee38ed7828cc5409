//! [`PassBody`]: the response body of pass-through mode, one type over the layer's own
//! (buffered) answers and the handler's responses passed through.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::body;

pin_project! {
    /// The response body in pass-through mode: the layer's own answer (a rejection, a
    /// rendered or sealed reply), or the handler's body, untouched.
    #[derive(Debug)]
    pub struct PassBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        /// Written by the layer.
        Full {
            #[pin]
            body: body::Body,
        },
        /// The handler's own.
        Inner {
            #[pin]
            body: B,
        },
    }
}

impl<B> PassBody<B> {
    pub(crate) fn full(body: body::Body) -> Self {
        Self {
            kind: Kind::Full { body },
        }
    }

    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }
}

/// An empty body written by the layer, for outer layers that answer on their own (tower-http's
/// `TimeoutLayer` builds its 408 with `Default`). `B` need not be `Default`.
impl<B> Default for PassBody<B> {
    fn default() -> Self {
        Self::full(body::Body::empty())
    }
}

impl<B> Body for PassBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Full { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(|never| match never {}))),
            KindProj::Inner { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { body } => body.is_end_stream(),
            Kind::Inner { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { body } => body.size_hint(),
            Kind::Inner { body } => body.size_hint(),
        }
    }
}
