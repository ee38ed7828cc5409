//! The one HTTP body type of the crate: what the layer answers with, and what the client sends.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::Full;

/// A fully buffered body: all of its bytes, sent in one frame.
///
/// The layer answers every request with one (an echostr, a rejection reason or a reply
/// document: `http::Response<Body>`), and the customer-service client sends every request
/// with one (a JSON or multipart body: a custom transport takes `http::Request<Body>`).
///
/// Its exact size is known, so hyper sends `Content-Length`.
#[derive(Debug, Clone, Default)]
pub struct Body(Full<Bytes>);

impl Body {
    pub(crate) fn new(bytes: Bytes) -> Self {
        Body(Full::new(bytes))
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::default()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self::new(bytes)
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Self::new(Bytes::from_static(text.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[test]
    fn one_frame_of_known_size() {
        let mut body = Body::from("success");
        assert_eq!(body.size_hint().exact(), Some(7));
        assert!(!body.is_end_stream());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let frame = match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => panic!("{other:?}"),
        };
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"success")));
        assert!(body.is_end_stream());
        assert_eq!(Body::empty().size_hint().exact(), Some(0));
        assert!(Body::empty().is_end_stream());
    }
}
