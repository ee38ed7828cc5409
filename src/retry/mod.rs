//! What runs around the handler to cope with WeChat's retries: dedupe and the ack deadline
//! (on Tokio), and the replay guard.

#[cfg(feature = "tokio")]
pub mod deadline;
#[cfg(feature = "tokio")]
pub mod dedupe;
pub mod replay;

pub(crate) use wrap::{Outcome, Wrap};

mod wrap {
    use std::borrow::Cow;

    use tower::layer::util::Identity;

    use crate::reply::Reply;

    /// How [`WechatLayer`](crate::WechatLayer) puts a retry option around the handler, whose
    /// answers are `A`s.
    ///
    /// Sealed: only the layer builds these services, in the one order that keeps dedupe's
    /// claim hand-off right (dedupe outside the deadline). They are not tower layers, so
    /// they cannot be stacked by hand in another order.
    pub trait Wrap<S, A>: sealed::Sealed {
        /// The service around `S`.
        type Service;

        /// Wraps `inner`.
        fn wrap(&self, inner: S) -> Self::Service;
    }

    /// A handler's answer, as the retry options see it: what dedupe records, and what a
    /// duplicate or the deadline answers.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code, unreachable_pub))]
    pub trait Outcome: Send + 'static {
        /// The reply to record for this answer; `None` when the push was not handled (the
        /// claim is then released, so that a retry handles it).
        fn record(&self) -> Option<Cow<'_, Reply>>;

        /// The answer to a duplicate whose first delivery recorded `reply`, or the deadline's
        /// answer (`success`).
        fn recorded(reply: Reply) -> Self;
    }

    impl Outcome for Reply {
        fn record(&self) -> Option<Cow<'_, Reply>> {
            Some(Cow::Borrowed(self))
        }

        fn recorded(reply: Reply) -> Self {
            reply
        }
    }

    impl<S, A> Wrap<S, A> for Identity {
        type Service = S;

        fn wrap(&self, inner: S) -> S {
            inner
        }
    }

    pub(crate) mod sealed {
        /// Implemented by the retry options only.
        pub trait Sealed {}

        impl Sealed for tower::layer::util::Identity {}
    }
}

#[cfg(feature = "tokio")]
pub(crate) use wrap::sealed::Sealed;
