//! The HTTP transport: the default HTTPS transport.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::Service;

use crate::body::Body;
use crate::store::BoxError;

use super::error::BuildError;

/// The default transport: hyper-util's pooled HTTP/1 client with rustls (ring provider,
/// bundled Mozilla roots, no OpenSSL), and a timeout on each request (30 s by default).
///
/// Plain `http://` base URLs work too (for tests and local proxies). Needs a Tokio runtime.
#[derive(Clone)]
pub struct HttpsTransport {
    client: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Body>,
    timeout: Duration,
}

impl fmt::Debug for HttpsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsTransport")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpsTransport {
    /// The default transport.
    pub fn new() -> Result<Self, BuildError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| BuildError::Tls(Box::new(e)))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(HttpsTransport {
            client,
            timeout: Duration::from_secs(30),
        })
    }

    /// Sets the timeout of each request, from sending it to having the response head.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The future of [`HttpsTransport`].
pub type HttpsFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<hyper::body::Incoming>, BoxError>> + Send>>;

impl Service<http::Request<Body>> for HttpsTransport {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = BoxError;
    type Future = HttpsFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let fut = self.client.request(req);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(e)) => Err(Box::new(e) as BoxError),
                Err(elapsed) => Err(Box::new(elapsed) as BoxError),
            }
        })
    }
}
