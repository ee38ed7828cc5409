//! Queue mode (see [`WechatLayer::queue`](crate::WechatLayer::queue)): a verified push is
//! queued before it is answered, and the workers call the handler. Here: the queuing on the
//! request's path, and the adapter that lets workers call a pass-through (HTTP) handler.

use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use http_body::Body;
use tower::Service;

use super::apps::AppName;
use super::config::{Config, DEFAULT_BODY_LIMIT};
use super::mode::Document;
use super::open::Step;
use super::pass_through::{Adapter, PassOutcome};
use crate::body;
use crate::endpoint::PushInfo;
use crate::message::Message;
use crate::queue::{Enqueued, QueuedPush};
use crate::rejection::Rejection;
use crate::reply::Reply;
use crate::store::{BoxError, BoxFuture};

/// Queues the verified push `request` (its document in the extensions, as `open` keeps it in
/// queue mode): `Ok` once the queue has it (or had it already), [`Rejection::QueueFull`]
/// when it is full. Without a queue configured, `Ok` at once (never called so).
pub(crate) fn enqueue(config: &Config, request: Request<Message>) -> Step {
    let Some(queue) = config.queue.clone() else {
        return Box::pin(std::future::ready(Ok(())));
    };
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

/// A pass-through (HTTP) handler as the queue's workers call it: see
/// [`Queue::start_pass_through`](crate::queue::Queue::start_pass_through).
#[derive(Clone, Debug)]
pub(crate) struct QueuedHttp<S> {
    inner: Adapter<S>,
}

impl<S> QueuedHttp<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            // Read a 200's body only when sealing would (safe mode): to see a passive reply.
            inner: Adapter::new(inner, false, DEFAULT_BODY_LIMIT),
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

    fn call(&mut self, req: Request<Message>) -> Self::Future {
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
