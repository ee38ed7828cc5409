//! The HTTP transport: the request body type and the default HTTPS transport.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::Service;

use super::error::{BoxError, BuildError};

/// The body of every request the client sends: a fully buffered JSON or multipart body.
///
/// A custom transport must accept `http::Request<RequestBody>`.
#[derive(Debug, Clone, Default)]
pub struct RequestBody(Full<Bytes>);

impl RequestBody {
    pub(crate) fn new(bytes: Bytes) -> Self {
        RequestBody(Full::new(bytes))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// The default transport: hyper-util's pooled HTTP/1 client with rustls (ring provider,
/// bundled Mozilla roots, no OpenSSL), and a timeout on each request (30 s by default).
///
/// Plain `http://` base URLs work too (for tests and local proxies). Needs a Tokio runtime.
#[derive(Clone)]
pub struct HttpsTransport {
    client: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, RequestBody>,
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

impl Service<http::Request<RequestBody>> for HttpsTransport {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = BoxError;
    type Future = HttpsFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<RequestBody>) -> Self::Future {
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
