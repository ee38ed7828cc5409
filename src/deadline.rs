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
//! A handler that panics before the deadline panics the request as it would without the
//! option (so dedupe, if on, releases the push for a retry). A panic after the deadline is
//! caught by the runtime and logged.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use tower::{Layer, Service};

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

    fn call(&mut self, req: Request<Message>) -> Self::Future {
        let push = describe(req.body());
        let handler = tokio::spawn(self.inner.call(req));
        let deadline = self.deadline;
        Box::pin(async move {
            let mut handler = handler;
            match tokio::time::timeout(deadline, &mut handler).await {
                Ok(Ok(result)) => result.map(Into::into),
                Ok(Err(join)) => match join.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    // Cancelled: only when the runtime shuts down.
                    Err(_) => Ok(Reply::Success),
                },
                Err(_elapsed) => {
                    #[cfg(feature = "tracing")]
                    tracing::info!(%push, ?deadline, "handler missed the ack deadline; answered success, still running");
                    tokio::spawn(async move {
                        let outcome = handler.await;
                        report_late(&push, outcome);
                    });
                    Ok(Reply::Success)
                }
            }
        })
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
