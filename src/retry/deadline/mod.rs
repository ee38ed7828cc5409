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
//! the handler keeps running in its task and, with dedupe on, the push's claim is marked
//! answered `success` (and still renewed while the handler runs), so a retry gets that answer
//! instead of running the handler a second time while the first run is still going. When the
//! handler ends, `success` is recorded as the push's reply.
//!
//! A handler that fails or panics before the deadline fails the request as it would without
//! the option (so dedupe, if on, releases the push for a retry). A failure or panic after the
//! deadline (or after the delivery was dropped) is logged; the push is not retried.
//!
//! A handler cancelled because the runtime shuts down did not handle its push: with dedupe on,
//! its claim is released (even if it had already been answered `success` at the deadline) or,
//! when the release cannot run any more on the stopping runtime, no longer renewed, so that it
//! expires within its lease (three seconds); either way WeChat's next delivery, to this
//! instance once restarted or to another one sharing the store, handles it. A delivery whose
//! handler was cancelled before the deadline is left unanswered (the shutting-down runtime
//! drops it), so that WeChat does retry.
//!
//! The handler is spawned when the delivery's future is first polled, on the runtime polling
//! it. Outside a Tokio runtime [`WechatLayer`](crate::WechatLayer) answers 500
//! ([`Rejection::NoRuntime`]) instead of calling the handler.
//!
//! [`Rejection::NoRuntime`]: crate::Rejection::NoRuntime

mod service;

pub(crate) use service::AckDeadline;
