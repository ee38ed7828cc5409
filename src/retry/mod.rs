//! What runs around the handler to cope with WeChat's retries: dedupe and the ack deadline
//! (on Tokio), and the replay guard.

#[cfg(feature = "tokio")]
pub mod deadline;
#[cfg(feature = "tokio")]
pub mod dedupe;
pub mod replay;

pub(crate) use outcome::Outcome;

mod outcome {
    use std::borrow::Cow;

    use crate::reply::Reply;

    /// A handler's answer, as the retry options see it: what dedupe records, and what a
    /// duplicate or the deadline answers.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) trait Outcome: Send + 'static {
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
}
