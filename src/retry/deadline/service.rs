//! The deadline service around the handler: spawn it on first poll, answer `success` at the
//! deadline, and settle the dedupe claim of a handler that outlives its delivery.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tower::Service;

use crate::dedupe::HeldClaim;
use crate::message::Message;
use crate::reply::Reply;
use crate::retry::Outcome;

/// The deadline service around a handler whose answers become `A`s. See the
/// [module docs](crate::deadline).
#[derive(Debug)]
pub(crate) struct AckDeadline<S, A> {
    inner: S,
    deadline: Duration,
    outcome: PhantomData<fn() -> A>,
}

impl<S, A> AckDeadline<S, A> {
    /// Answers `success` when `inner` takes longer than `deadline`.
    pub(crate) fn new(inner: S, deadline: Duration) -> Self {
        Self {
            inner,
            deadline,
            outcome: PhantomData,
        }
    }
}

impl<S: Clone, A> Clone for AckDeadline<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            deadline: self.deadline,
            outcome: PhantomData,
        }
    }
}

impl<S, A> Service<Request<Message>> for AckDeadline<S, A>
where
    S: Service<Request<Message>>,
    S::Future: Send + 'static,
    S::Response: Into<A> + Send + 'static,
    S::Error: Send + 'static,
    A: Outcome,
{
    type Response = A;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<A, S::Error>> + Send>>;

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
                return Ok(A::recorded(Reply::Success));
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
                    Ok(A::recorded(Reply::Success))
                }
            }
        })
    }
}

/// A handler running in its own task, and the dedupe claim of its push (when dedupe is on).
///
/// Dropped before the handler answered, because the deadline passed or because the delivery
/// itself was dropped first (its connection closed), it lets the handler finish in the
/// background and marks the claim answered `success`, the deadline's answer: a retry gets that
/// answer instead of running the handler a second time. The claim is renewed while the
/// handler runs and records `success` when it ends. If the handler is cancelled (the runtime
/// shuts down), the claim is released, or, if even that cannot run any more, no longer
/// renewed: it expires within its lease, and WeChat's retry handles the push.
struct Running<A: Outcome, E: Send + 'static> {
    handler: Option<JoinHandle<Result<A, E>>>,
    claim: Option<HeldClaim>,
    push: String,
    runtime: Handle,
}

impl<A: Outcome, E: Send + 'static> Drop for Running<A, E> {
    fn drop(&mut self) {
        let Some(handler) = self.handler.take() else {
            return;
        };
        let push = std::mem::take(&mut self.push);
        // If this task never runs (spawned on a runtime that is shutting down), or is dropped
        // with the handler's, the claim is dropped unrecorded: released, or left to expire.
        let claim = self.claim.take();
        if let Some(held) = &claim {
            // Before the dedupe future records the deadline's `success`: it must not.
            held.defer();
        }
        self.runtime.spawn(async move {
            if let Some(held) = &claim {
                held.answered().await;
            }
            let outcome = handler.await;
            if let Some(held) = claim {
                if matches!(&outcome, Err(join) if join.is_cancelled()) {
                    held.release();
                } else {
                    // Answered `success`: so it stays, whatever the handler did after.
                    held.finish(Reply::Success);
                }
            }
            report_late(&push, outcome);
        });
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

fn report_late<A: Outcome, E>(_push: &str, outcome: Result<Result<A, E>, tokio::task::JoinError>) {
    match outcome {
        Ok(Ok(answer)) => {
            let late = answer.record();
            if !late.as_deref().is_some_and(Reply::is_ack) {
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    push = %_push,
                    reply = ?late,
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tower::{service_fn, ServiceExt};

    use super::*;

    fn counting(
        calls: Arc<AtomicUsize>,
    ) -> impl Service<Request<Message>, Response = Reply, Error = Infallible, Future = impl Send> + Clone
    {
        // Counts when the handler's future runs, not when it is made.
        service_fn(move |_: Request<Message>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(Reply::text("hello"))
            }
        })
    }

    fn push() -> Request<Message> {
        let doc = br#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1,"MsgType":"text","Content":"hi","MsgId":1}"#;
        Request::new(Message::from_json(doc).unwrap())
    }

    fn deadline<S>(inner: S) -> AckDeadline<S, Reply> {
        AckDeadline::new(inner, Duration::from_secs(4))
    }

    /// The handler used to be spawned in `call`, running before anyone polled the delivery.
    #[tokio::test]
    async fn the_handler_starts_when_polled_not_when_called() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut svc = deadline(counting(calls.clone()));
        let future = svc.ready().await.unwrap().call(push());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "nothing runs before the poll"
        );
        assert_eq!(future.await.unwrap(), Reply::text("hello"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// Outside a runtime the handler runs inline instead of `tokio::spawn` panicking.
    #[test]
    fn outside_a_runtime_the_handler_runs_inline() {
        let calls = Arc::new(AtomicUsize::new(0));
        let future = deadline(counting(calls.clone())).oneshot(push());
        let waker = std::task::Waker::noop();
        let mut future = std::pin::pin!(future);
        let Poll::Ready(reply) = future.as_mut().poll(&mut Context::from_waker(waker)) else {
            panic!("a ready handler answers at once")
        };
        assert_eq!(reply.unwrap(), Reply::text("hello"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
