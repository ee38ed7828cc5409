//! Queue mode (see [`WechatLayer::queue`](crate::WechatLayer::queue)): a verified push is
//! queued before it is answered, and the workers call the handler. Here: the queuing on the
//! request's path, and the adapter that lets workers call a pass-through (HTTP) handler.

use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use http_body::Body;
use tower::Service;

use super::apps::AppName;
use super::config::DEFAULT_BODY_LIMIT;
use super::mode::Document;
use super::open::Step;
use super::pass_through::{Adapter, PassOutcome};
use crate::body;
use crate::endpoint::PushInfo;
use crate::message::Message;
use crate::queue::{Enqueued, Queue, QueuedDocument, QueuedPush, Workers};
use crate::rejection::Rejection;
use crate::reply::Reply;
use crate::store::{BoxError, BoxFuture};

/// Queues the verified push `request` in `queue` (its document in the extensions, as `open`
/// keeps it in queue mode): `Ok` once the queue has it (or had it already),
/// [`Rejection::QueueFull`] when it is full.
pub(crate) fn enqueue(queue: Queue, request: Request<Message>) -> Step {
    let (mut parts, message) = request.into_parts();
    // `open` keeps the document in queue mode; an empty one would only fail to decode.
    let document = parts
        .extensions
        .remove::<Document>()
        .map(|Document(doc)| doc)
        .unwrap_or_default();
    let info = parts.extensions.remove::<PushInfo>();
    let app = parts.extensions.remove::<AppName>();
    let push = info
        .map(|info| QueuedPush::new(&message, &document, &info, app).with_uri(parts.uri.clone()));
    let method = parts.method;
    Box::pin(async move {
        // `open` always inserts the `PushInfo`.
        let Some(push) = push else {
            return Err(Rejection::BodyRead);
        };
        match queue.push(push).await {
            Enqueued::Queued | Enqueued::Duplicate => Ok(()),
            Enqueued::Full => {
                super::trace::refused(&method, &Rejection::QueueFull);
                Err(Rejection::QueueFull)
            }
        }
    })
}

impl Queue {
    /// Starts the workers on `handler`, a pass-through (HTTP) handler: the one a
    /// [`pass_through`](crate::WechatLayer::pass_through) layer in
    /// [queue mode](crate::WechatLayer::queue) wraps. Each call gets the request such a
    /// handler gets at the edge, rebuilt: a `POST` to the push's URI whose body is the push's
    /// document (decrypted) with its `Content-Type`, and the [`Message`], the [`PushInfo`],
    /// the [`AppName`] on a multi-app layer and [`Delivery`](crate::queue::Delivery) in its
    /// extensions (the original headers are not kept). A 2xx answer finishes the push; any
    /// other status, or an error, is a failed attempt, retried after the back-off. Needs a
    /// Tokio runtime.
    pub fn start_pass_through<S, B>(&self, handler: S) -> Workers
    where
        S: Service<Request<crate::body::Body>, Response = http::Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError> + Send + 'static,
        B: http_body::Body + Send + 'static,
    {
        self.start(QueuedHttp::new(handler))
    }
}

/// A pass-through (HTTP) handler as the queue's workers call it: see
/// [`Queue::start_pass_through`].
#[derive(Clone, Debug)]
struct QueuedHttp<S> {
    inner: Adapter<S>,
}

impl<S> QueuedHttp<S> {
    fn new(inner: S) -> Self {
        Self {
            // Read every 200's body: a passive reply in it is logged as unsupported by the
            // worker, not silently dropped.
            inner: Adapter::new(inner, true, DEFAULT_BODY_LIMIT),
        }
    }
}

impl<S, B> Service<Request<Message>> for QueuedHttp<S>
where
    S: Service<Request<body::Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
{
    type Response = Reply;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Reply, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<Message>) -> Self::Future {
        if let Some(QueuedDocument(document)) = req.extensions_mut().remove::<QueuedDocument>() {
            req.extensions_mut().insert(Document(document));
        }
        // The adapter rebuilds the request a pass-through handler gets at the edge: the
        // document (the worker puts it in the extensions) as the body, with its type.
        let future = self.inner.call(req);
        Box::pin(async move {
            match future.await.map_err(Into::into)? {
                PassOutcome::Reply(reply) => Ok(reply),
                PassOutcome::Buffered(head, body) if head.status.is_success() => {
                    Ok(match &body[..] {
                        b"" | b"success" => Reply::Success,
                        _ => Reply::document(body),
                    })
                }
                PassOutcome::Response(response) if response.status().is_success() => {
                    Ok(Reply::Success)
                }
                PassOutcome::Buffered(head, _) => Err(failed(head.status)),
                PassOutcome::Response(response) => Err(failed(response.status())),
                PassOutcome::Broken(reason) => Err(reason.into()),
            }
        })
    }
}

fn failed(status: StatusCode) -> BoxError {
    format!("the handler answered {status}").into()
}
