//! What the layer logs through `tracing` (feature `tracing`), beside the `debug` line every
//! rejection writes ([`Rejection::into_response`]):
//!
//! - a refused *handshake* (a GET: the console's URL check) at `warn`, with its reason, since
//!   a wrong Token there is the first thing a new set-up hits. At most one such line a minute
//!   (process-wide), so that unauthenticated requests cannot flood the log; the next line
//!   says how many were left out.
//! - one span per push (`wechat_push`), entered while the handler runs, with the app, the
//!   format, whether it was encrypted, the message type and its `MsgId`.
//!
//! Without the feature these hooks compile to nothing.

use http::Method;

use super::apps::App;
use crate::endpoint::PushInfo;
use crate::message::Message;
use crate::rejection::Rejection;

/// Logs a request the layer refused before reading its body: a refused handshake (GET) at
/// `warn`, rate-limited; other methods are left to the `debug` line of the rejection.
#[inline]
pub(crate) fn refused(method: &Method, rejection: &Rejection) {
    #[cfg(feature = "tracing")]
    if method == Method::GET {
        if let Some(left_out) = limit::HANDSHAKE.admit(limit::now_ms()) {
            tracing::warn!(
                status = rejection.status().as_u16(),
                reason = %rejection,
                left_out,
                "WeChat handshake (GET) refused; check the Token, and for safe mode the \
                 EncodingAESKey, against the console (at most one such line a minute; \
                 `left_out` counts the refusals since the last one)"
            );
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (method, rejection);
}

/// The span of one push: entered while its handler is called and polled.
#[derive(Debug)]
pub(crate) struct PushSpan {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl PushSpan {
    /// The span for a verified push (`app` on a multi-app layer).
    #[inline]
    pub(crate) fn new(app: Option<&App>, info: &PushInfo, message: &Message) -> Self {
        #[cfg(feature = "tracing")]
        {
            let span = tracing::info_span!(
                "wechat_push",
                app = app.map(|app| app.name().as_str()),
                format = ?info.format(),
                encrypted = info.is_encrypted(),
                msg_type = message.msg_type(),
                id = tracing::field::Empty,
            );
            if let Some(id) = message.msg_id() {
                span.record("id", id);
            }
            Self { span }
        }
        #[cfg(not(feature = "tracing"))]
        {
            let _ = (app, info, message);
            Self {}
        }
    }

    /// Enters the span until the guard is dropped.
    #[inline]
    pub(crate) fn enter(&self) -> impl Sized + '_ {
        #[cfg(feature = "tracing")]
        {
            self.span.enter()
        }
    }
}

#[cfg(feature = "tracing")]
mod limit {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::Instant;

    /// The refused handshakes' limiter.
    pub(super) static HANDSHAKE: Limit = Limit::new(60_000);

    /// Milliseconds since the first call, on the monotonic clock.
    pub(super) fn now_ms() -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// At most one admission per `period_ms`, lock-free: of many callers at once exactly
    /// one wins the slot.
    #[derive(Debug)]
    pub(super) struct Limit {
        period_ms: u64,
        /// 1 + the time of the last admission; 0: never.
        last: AtomicU64,
        /// Calls turned away since the last admission.
        left_out: AtomicU64,
    }

    impl Limit {
        pub(super) const fn new(period_ms: u64) -> Self {
            Self {
                period_ms,
                last: AtomicU64::new(0),
                left_out: AtomicU64::new(0),
            }
        }

        /// Whether a line may be written at `now_ms`: `Some(calls turned away since the
        /// last one)`, or `None` within the period.
        pub(super) fn admit(&self, now_ms: u64) -> Option<u64> {
            let last = self.last.load(Ordering::Acquire);
            let due = last == 0 || now_ms.saturating_sub(last - 1) >= self.period_ms;
            if due
                && self
                    .last
                    .compare_exchange(
                        last,
                        now_ms.saturating_add(1),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok()
            {
                return Some(self.left_out.swap(0, Ordering::AcqRel));
            }
            self.left_out.fetch_add(1, Ordering::AcqRel);
            None
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn one_line_a_period_counting_the_rest() {
            let limit = Limit::new(60_000);
            assert_eq!(limit.admit(5), Some(0));
            assert_eq!(limit.admit(6), None);
            assert_eq!(limit.admit(60_004), None);
            assert_eq!(limit.admit(60_005), Some(2));
            assert_eq!(limit.admit(60_006), None);
            assert_eq!(limit.admit(200_000), Some(1));
        }

        #[test]
        fn the_first_call_at_time_zero_is_admitted() {
            let limit = Limit::new(1_000);
            assert_eq!(limit.admit(0), Some(0));
            assert_eq!(limit.admit(999), None);
            assert_eq!(limit.admit(1_000), Some(1));
        }

        #[test]
        fn many_callers_at_once_get_one_slot() {
            let limit = std::sync::Arc::new(Limit::new(60_000));
            let admitted: usize = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        let limit = limit.clone();
                        scope
                            .spawn(move || (0..1_000).filter(|_| limit.admit(10).is_some()).count())
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(admitted, 1);
            assert_eq!(limit.admit(70_000), Some(7_999));
        }
    }
}
