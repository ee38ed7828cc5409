//! The acknowledgement deadline: answer WeChat in time, finish the work anyway.
//!
//! WeChat waits five seconds, then gives up on the answer and delivers the push again. With
//! [`WechatLayer::ack_deadline`](crate::WechatLayer::ack_deadline) the handler runs as its own
//! task; if it has not answered when the deadline passes (4 s is a good value: it leaves time
//! for the network), the layer answers `success` and lets the handler run to completion in the
//! background. Its work is not lost, but a reply it produces afterwards cannot reach WeChat:
//! it is logged with the push's id. Answer late through the customer-service API instead
//! ([`client`](crate::client)).
//!
//! A delivery dropped before the deadline (its connection closed) is treated the same way:
//! the handler keeps running in its task and, with dedupe on, the push is recorded as
//! answered `success`, so a retry gets that answer instead of running the handler a second
//! time while the first run is still going.
//!
//! A handler that fails or panics before the deadline fails the request as it would without
//! the option (so dedupe, if on, releases the push for a retry). A failure or panic after the
//! deadline (or after the delivery was dropped) is logged; the push is not retried.
//!
//! A handler cancelled because the runtime shuts down did not handle its push: with dedupe on,
//! the push is released (even if it had already been answered `success` at the deadline), so
//! that WeChat's retry, to this instance once restarted or to another one sharing the store,
//! handles it. A delivery whose handler was cancelled before the deadline is left unanswered
//! (the shutting-down runtime drops it), so that WeChat does retry.
//!
//! The handler is spawned when the delivery's future is first polled, on the runtime polling
//! it. [`WechatLayer`](crate::WechatLayer) answers 500 ([`Rejection::NoRuntime`]) to a push
//! it would hand to this layer outside a Tokio runtime; used on its own outside a runtime,
//! [`AckDeadline`] runs the handler inline, without a deadline.
//!
//! [`Rejection::NoRuntime`]: crate::Rejection::NoRuntime

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use tower::{Layer, Service};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::dedupe::HeldClaim;
use crate::message::Message;
use crate::reply::Reply;

/// The layer [`WechatLayer::ack_deadline`](crate::WechatLayer::ack_deadline) puts around the
/// handler.
#[derive(Clone, Copy, Debug)]
pub struct AckDeadlineLayer {
    deadline: Duration,
}

impl AckDeadlineLayer {
    /// Answers `success` when the handler takes longer than `deadline`.
    pub fn new(deadline: Duration) -> Self {
        Self { deadline }
    }
}

impl<S> Layer<S> for AckDeadlineLayer {
    type Service = AckDeadline<S>;

    fn layer(&self, inner: S) -> AckDeadline<S> {
        AckDeadline {
            inner,
            deadline: self.deadline,
        }
    }
}

/// The deadline service around a handler. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct AckDeadline<S> {
    inner: S,
    deadline: Duration,
}

impl<S> Service<Request<Message>> for AckDeadline<S>
where
    S: Service<Request<Message>>,
    S::Future: Send + 'static,
    S::Response: Into<Reply> + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Reply;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Message>) -> Self::Future {
        let push = describe(req.body());
        // With dedupe outside, the claim follows the handler into its task (see `Running`).
        let claim = req.extensions_mut().remove::<HeldClaim>();
        let future = self.inner.call(req);
        let deadline = self.deadline;
        Box::pin(async move {
            // Spawned here, on first poll: not before the delivery is polled, and on the
            // runtime that polls it.
            let Ok(runtime) = Handle::try_current() else {
                // Outside a runtime nothing can run in the background or keep time.
                let result = future.await.map(Into::into);
                drop(claim);
                return result;
            };
            let handler = runtime.spawn(async move { future.await.map(Into::into) });
            let mut running = Running {
                handler: Some(handler),
                claim,
                push,
                runtime,
            };
            let Some(handler) = running.handler.as_mut() else {
                return Ok(Reply::Success);
            };
            match tokio::time::timeout(deadline, handler).await {
                Ok(joined) => {
                    // Answered in time: dedupe (if on) records this reply.
                    running.handler = None;
                    match joined {
                        Ok(result) => result,
                        Err(join) => match join.try_into_panic() {
                            Ok(panic) => std::panic::resume_unwind(panic),
                            Err(_cancelled) => {
                                // Only the runtime's shutdown cancels the task (its handle is
                                // ours): the push was not handled. Free it for the retry and
                                // leave this delivery unanswered; the runtime drops it.
                                if let Some(claim) = running.claim.take() {
                                    claim.release();
                                }
                                std::future::pending().await
                            }
                        },
                    }
                }
                Err(_elapsed) => {
                    #[cfg(feature = "tracing")]
                    tracing::info!(push = %running.push, ?deadline, "handler missed the ack deadline; answered success, still running");
                    drop(running);
                    Ok(Reply::Success)
                }
            }
        })
    }
}

/// A handler running in its own task, and the dedupe claim of its push (when dedupe is on).
///
/// Dropped before the handler answered, because the deadline passed or because the delivery
/// itself was dropped first (its connection closed), it lets the handler finish in the
/// background and records the push as answered `success`, the deadline's answer: a retry
/// gets that answer instead of running the handler a second time. If the handler is then
/// cancelled (the runtime shuts down), the record is revoked: the push was not handled.
struct Running<E: Send + 'static> {
    handler: Option<JoinHandle<Result<Reply, E>>>,
    claim: Option<HeldClaim>,
    push: String,
    runtime: Handle,
}

impl<E: Send + 'static> Drop for Running<E> {
    fn drop(&mut self) {
        let Some(handler) = self.handler.take() else {
            return;
        };
        let push = std::mem::take(&mut self.push);
        // Revoked unless the handler ran to its end, including when this task never runs
        // (spawned on a runtime that is shutting down) or is dropped with the handler's.
        let claim = RevokeUnlessFinished(self.claim.take());
        self.runtime.spawn(async move {
            let mut claim = claim;
            if let Some(held) = &claim.0 {
                held.complete(&Reply::Success).await;
            }
            let outcome = handler.await;
            if !matches!(&outcome, Err(join) if join.is_cancelled()) {
                claim.0 = None;
            }
            drop(claim);
            report_late(&push, outcome);
        });
    }
}

/// The claim of a push whose handler outlived its delivery: revoked when dropped while set.
struct RevokeUnlessFinished(Option<HeldClaim>);

impl Drop for RevokeUnlessFinished {
    fn drop(&mut self) {
        if let Some(claim) = self.0.take() {
            claim.revoke();
        }
    }
}

/// What identifies a push in the logs: `MsgId`, or sender, time and type.
fn describe(message: &Message) -> String {
    match message.msg_id() {
        Some(id) => format!("MsgId {id}"),
        None => format!(
            "{} from {} at {}",
            message.event_name().unwrap_or(message.msg_type()),
            message.from_user(),
            message.create_time()
        ),
    }
}

fn report_late<R: Into<Reply>, E>(
    _push: &str,
    outcome: Result<Result<R, E>, tokio::task::JoinError>,
) {
    match outcome {
        Ok(Ok(reply)) => {
            let reply: Reply = reply.into();
            if !reply.is_ack() {
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    push = %_push,
                    reply = ?reply,
                    "late reply dropped: WeChat was already answered; send it through the customer-service API"
                );
            }
        }
        Ok(Err(_)) => {
            #[cfg(feature = "tracing")]
            tracing::warn!(push = %_push, "handler failed after the ack deadline");
        }
        Err(_) => {
            #[cfg(feature = "tracing")]
            tracing::warn!(push = %_push, "handler panicked after the ack deadline");
        }
    }
}
