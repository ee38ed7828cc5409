//! What runs around the handler to cope with WeChat's retries: dedupe and the ack deadline
//! (on Tokio), and the replay guard.

#[cfg(feature = "tokio")]
pub mod deadline;
#[cfg(feature = "tokio")]
pub mod dedupe;
pub mod replay;

pub(crate) use wrap::Wrap;

mod wrap {
    use tower::layer::util::Identity;

    /// How [`WechatLayer`](crate::WechatLayer) puts a retry option around the handler.
    ///
    /// Sealed: only the layer builds these services, in the one order that keeps dedupe's
    /// claim hand-off right (dedupe outside the deadline). They are not tower layers, so
    /// they cannot be stacked by hand in another order.
    pub trait Wrap<S>: sealed::Sealed {
        /// The service around `S`.
        type Service;

        /// Wraps `inner`.
        fn wrap(&self, inner: S) -> Self::Service;
    }

    impl<S> Wrap<S> for Identity {
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
