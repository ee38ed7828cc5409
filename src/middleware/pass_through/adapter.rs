//! [`Adapter`]: a pass-through handler seen as a typed one. It rebuilds the HTTP request (the
//! push's document as the body, the message and what was verified in the extensions), calls
//! the handler, and reads the answer into a [`PassOutcome`].

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::Service;

use super::PassOutcome;
use crate::body;
use crate::endpoint::PushInfo;
use crate::message::Message;
use crate::middleware::mode::Document;
use crate::reply::Reply;

/// The handler of a pass-through layer, behind the retry options.
#[derive(Clone, Debug)]
pub(crate) struct Adapter<S> {
    inner: S,
    /// Read every 200 into memory, not only the sealed ones: dedupe records them.
    buffer_all: bool,
    /// The most of a 200 body read into memory.
    limit: usize,
}

impl<S> Adapter<S> {
    pub(crate) fn new(inner: S, buffer_all: bool, limit: usize) -> Self {
        Self {
            inner,
            buffer_all,
            limit,
        }
    }
}

impl<S, B> Service<Request<Message>> for Adapter<S>
where
    S: Service<Request<body::Body>, Response = Response<B>>,
    B: Body,
{
    type Response = PassOutcome<B>;
    type Error = S::Error;
    type Future = AdapterFuture<S::Future, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Message>) -> Self::Future {
        let (mut parts, message) = req.into_parts();
        let document = parts
            .extensions
            .remove::<Document>()
            .map(|Document(doc)| doc)
            .unwrap_or_default();
        let format = parts.extensions.get::<PushInfo>().map(PushInfo::format);
        let encrypted = parts
            .extensions
            .get::<PushInfo>()
            .is_some_and(PushInfo::is_encrypted);
        // The body is now the (decrypted) document: say what it is, and how long.
        parts.headers.remove(header::TRANSFER_ENCODING);
        if let Some(format) = format {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
        }
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(document.len()));
        parts.extensions.insert(message);
        let request = Request::from_parts(parts, body::Body::new(document));
        AdapterFuture {
            state: State::Call {
                future: self.inner.call(request),
                buffer: self.buffer_all || encrypted,
                limit: self.limit,
            },
        }
    }
}

pin_project! {
    /// The future of [`Adapter`].
    pub(crate) struct AdapterFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        /// The handler is working.
        Call {
            #[pin]
            future: F,
            buffer: bool,
            limit: usize,
        },
        /// Reading a 200's body into memory.
        Read {
            head: Option<http::response::Parts>,
            #[pin]
            body: B,
            buf: BytesMut,
            limit: usize,
        },
    }
}

impl<F, B, E> Future for AdapterFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<PassOutcome<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Call {
                    future,
                    buffer,
                    limit,
                } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(reply) = response.extensions_mut().remove::<Reply>() {
                        return Poll::Ready(Ok(PassOutcome::Reply(reply)));
                    }
                    if !*buffer || response.status() != StatusCode::OK {
                        return Poll::Ready(Ok(PassOutcome::Response(response)));
                    }
                    let limit = *limit;
                    let (head, body) = response.into_parts();
                    if body.size_hint().lower() > limit as u64 {
                        return Poll::Ready(Ok(PassOutcome::Broken(TOO_LARGE)));
                    }
                    let capacity = usize::try_from(body.size_hint().lower()).unwrap_or(0);
                    this.state.set(State::Read {
                        head: Some(head),
                        body,
                        buf: BytesMut::with_capacity(capacity.min(limit)),
                        limit,
                    });
                }
                StateProj::Read {
                    head,
                    mut body,
                    buf,
                    limit,
                } => loop {
                    match ready!(body.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                if buf.len().saturating_add(bytes::Buf::remaining(&data)) > *limit {
                                    return Poll::Ready(Ok(PassOutcome::Broken(TOO_LARGE)));
                                }
                                buf.put(data);
                            }
                        }
                        Some(Err(_)) => {
                            return Poll::Ready(Ok(PassOutcome::Broken(
                                "the handler's response body failed",
                            )))
                        }
                        None => {
                            let head = head.take().expect("future polled after completion");
                            let body: Bytes = std::mem::take(buf).freeze();
                            return Poll::Ready(Ok(PassOutcome::Buffered(head, body)));
                        }
                    }
                },
            }
        }
    }
}

const TOO_LARGE: &str = "the handler's response is larger than the body limit";
