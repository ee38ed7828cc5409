//! The retry options around the handler, chosen per request from the [`Config`]: dedupe
//! outside the ack deadline, whatever the order of the builder calls. Only a request of a
//! layer with an option on comes here; the others call the handler directly, unboxed.

use http::Request;
use tower::Service;

use super::config::Config;
use crate::message::Message;
use crate::retry::Outcome;
use crate::store::BoxFuture;

/// Calls `inner` (polled ready) behind the options `config` turns on. Without Tokio there are
/// none, and the handler is called as it is.
pub(crate) fn call<H, A>(
    config: &Config,
    inner: H,
    request: Request<Message>,
) -> BoxFuture<'static, Result<A, H::Error>>
where
    H: Service<Request<Message>> + Clone + Send + 'static,
    H::Future: Send + 'static,
    H::Response: Into<A> + Send + 'static,
    H::Error: Send + 'static,
    A: Outcome,
{
    #[cfg(feature = "tokio")]
    {
        use crate::deadline::AckDeadline;
        use crate::dedupe::Dedupe;

        match (&config.dedupe, config.deadline) {
            (Some(dedupe), Some(deadline)) => {
                Dedupe::new(AckDeadline::new(inner, deadline), dedupe.clone()).call(request)
            }
            (Some(dedupe), None) => Dedupe::new(inner, dedupe.clone()).call(request),
            (None, Some(deadline)) => AckDeadline::new(inner, deadline).call(request),
            (None, None) => plain(inner, request),
        }
    }
    #[cfg(not(feature = "tokio"))]
    {
        let _ = config;
        plain(inner, request)
    }
}

fn plain<H, A>(mut inner: H, request: Request<Message>) -> BoxFuture<'static, Result<A, H::Error>>
where
    H: Service<Request<Message>>,
    H::Future: Send + 'static,
    H::Response: Into<A>,
    A: Outcome,
{
    let future = inner.call(request);
    Box::pin(async move { future.await.map(Into::into) })
}
