//! The customer-service API client (PROTOCOL.md §7): send messages to a user, show the
//! typing indicator, upload temporary media, all with one shared access token.
//!
//! A mini program cannot answer inside the push's HTTP response. It acknowledges the push
//! (`success`) and answers through `cgi-bin/message/custom/send`, which needs an access
//! token. [`Client`] gets the token right:
//!
//! * it comes from `POST cgi-bin/stable_token` by default (repeated calls return the same
//!   token, so instances do not knock each other's token out), or `GET cgi-bin/token`
//!   ([`TokenEndpoint::Token`]);
//! * it is cached in a [`TokenStore`] until shortly before `expires_in` runs out (5 minutes
//!   before, a quarter of the lifetime for short ones);
//! * concurrent callers without a valid token cause exactly one fetch: in the process, one
//!   caller fetches and the others get its outcome, the token or the error (a
//!   [`SharedError`] inside [`Error::Transport`] and [`Error::Store`]); if that caller is
//!   cancelled, one of the waiting ones fetches instead; across instances, refreshes are
//!   serialised through [`TokenStore::try_lock`];
//! * after a failed fetch, calls that need a new token get its error at once, without
//!   fetching, for a short back-off ([`ClientBuilder::refresh_backoff`], 1 s by default);
//! * when a call answers `errcode` 40001, 40014 or 42001 the token is dropped only if it is
//!   still the one that failed, a token is fetched once (never with `force_refresh`), and the
//!   call retried once.
//!
//! The transport is any tower [`Service`] taking `http::Request<`[`RequestBody`]`>`, so
//! tower layers (timeout, retry, concurrency limit, tracing) can go around it; the default
//! is [`HttpsTransport`] (hyper-util and rustls).
//!
//! ```no_run
//! use wechat_push::client::{Client, CustomMessage, Error, ApiErrorKind};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("wxAPPID", "APPSECRET")?; // cheap to clone; share it
//!
//! match client.send("OPENID", &CustomMessage::text("你好")).await {
//!     Ok(()) => {}
//!     // The 48-hour window closed, or its quota is used up: nothing to do but drop it.
//!     Err(e) if matches!(
//!         e.api_kind(),
//!         Some(ApiErrorKind::WindowClosed | ApiErrorKind::QuotaExceeded)
//!     ) => {}
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method};
use http_body::Body;
use serde::Serialize;
use serde_json::{Map, Value};
use tower::Service;

mod error;
mod flight;
mod message;
mod token;
mod transport;
mod wire;

pub use error::{
    ApiError, ApiErrorKind, BadResponseKind, BoxError, BuildError, Error, SharedError, StoreError,
};
pub use message::{
    mini_program_link, CustomMessage, Image, Link, Media, MediaType, MiniProgramPage, Text,
    TypingCommand, UploadedMedia,
};
pub use token::{AccessToken, BoxFuture, Clock, MemoryTokenStore, SystemClock, TokenStore};
pub use transport::{HttpsFuture, HttpsTransport, RequestBody};

use message::{SendBody, TypingBody};
use wire::{as_i64, parse_answer, percent_encode, read_body};

/// The default base URL of the WeChat API.
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";

/// Which endpoint access tokens come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TokenEndpoint {
    /// `POST cgi-bin/stable_token` with `force_refresh: false` (recommended): repeated calls
    /// return the same token while it is valid.
    #[default]
    StableToken,
    /// `GET cgi-bin/token`: each call issues a new token and invalidates the previous one
    /// (after at most 5 minutes), so every instance must share one [`TokenStore`].
    Token,
}

impl TokenEndpoint {
    fn key_part(self) -> &'static str {
        match self {
            TokenEndpoint::StableToken => "stable_token",
            TokenEndpoint::Token => "token",
        }
    }
}

/// The customer-service API client. Cheap to clone: clones share the token and the
/// transport's connection pool.
///
/// See the [module docs](self) for an example. `Debug` prints neither the secret nor the
/// token.
pub struct Client<S = HttpsTransport> {
    inner: Arc<Inner>,
    transport: S,
}

struct Inner {
    appid: String,
    secret: String,
    base: String,
    endpoint: TokenEndpoint,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    body_limit: usize,
    lease: Duration,
    token_key: String,
    lock_key: String,
    owner: String,
    flight: flight::Flight,
}

impl<S: Clone> Clone for Client<S> {
    fn clone(&self) -> Self {
        Client {
            inner: Arc::clone(&self.inner),
            transport: self.transport.clone(),
        }
    }
}

impl<S> fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("appid", &self.inner.appid)
            .field("secret", &"<redacted>")
            .field("base_url", &self.inner.base)
            .field("token_endpoint", &self.inner.endpoint)
            .field("token_store", &self.inner.store)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `appid` with the default transport and settings.
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> Result<Self, BuildError> {
        Self::builder(appid, secret).build()
    }

    /// A builder for a client of `appid`.
    pub fn builder(appid: impl Into<String>, secret: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            appid: appid.into(),
            secret: secret.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            endpoint: TokenEndpoint::default(),
            store: None,
            clock: None,
            body_limit: 1024 * 1024,
            lease: Duration::from_secs(30),
            backoff: Duration::from_secs(1),
        }
    }
}

/// Builds a [`Client`]; see [`Client::builder`].
#[must_use]
pub struct ClientBuilder {
    appid: String,
    secret: String,
    base_url: String,
    endpoint: TokenEndpoint,
    store: Option<Arc<dyn TokenStore>>,
    clock: Option<Arc<dyn Clock>>,
    body_limit: usize,
    lease: Duration,
    backoff: Duration,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("appid", &self.appid)
            .field("secret", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("token_endpoint", &self.endpoint)
            .field("body_limit", &self.body_limit)
            .field("refresh_lease", &self.lease)
            .field("refresh_backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The API's base URL (default [`DEFAULT_BASE_URL`]); an absolute `http` or `https`
    /// URL, possibly with a path prefix.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Where tokens come from (default [`TokenEndpoint::StableToken`]).
    pub fn token_endpoint(mut self, endpoint: TokenEndpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Where tokens are kept (default: a fresh [`MemoryTokenStore`]). Share one store
    /// between instances to share the token.
    pub fn token_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock token expiry is measured with (default [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The largest answer body read, in bytes (default 1 MiB); larger answers give
    /// [`BadResponseKind::TooLarge`].
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How long the cross-instance refresh lock is held at most (default 30 s); should
    /// exceed the transport's timeout. A caller cancelled while fetching cannot release the
    /// lock: other instances then wait for the lease to run out (this one carries on).
    pub fn refresh_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long after a failed token fetch calls that need a new token get that fetch's
    /// error at once instead of fetching again (default 1 s; capped at a day;
    /// [`Duration::ZERO`] turns the back-off off). A token in the [`TokenStore`] is still
    /// used during the back-off, and callers waiting for a fetch always get its outcome.
    ///
    /// A `Transport` or `Store` error reported this way carries a [`SharedError`].
    pub fn refresh_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Builds the client with the default [`HttpsTransport`].
    pub fn build(self) -> Result<Client, BuildError> {
        let transport = HttpsTransport::new()?;
        self.build_with_transport(transport)
    }

    /// Builds the client with a custom transport: any tower service taking
    /// `http::Request<RequestBody>` and answering `http::Response<B>` (see [`Client`]'s
    /// methods for the bounds).
    pub fn build_with_transport<S>(self, transport: S) -> Result<Client<S>, BuildError> {
        let base = validate_base(&self.base_url)?;
        let token_key = format!(
            "wechat:access_token:{}:{}",
            self.appid,
            self.endpoint.key_part()
        );
        let lock_key = format!("{token_key}:lock");
        Ok(Client {
            inner: Arc::new(Inner {
                appid: self.appid,
                secret: self.secret,
                base,
                endpoint: self.endpoint,
                store: self
                    .store
                    .unwrap_or_else(|| Arc::new(MemoryTokenStore::new())),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                body_limit: self.body_limit,
                lease: self.lease,
                token_key,
                lock_key,
                owner: wire::random_hex(16),
                flight: flight::Flight::new(self.backoff),
            }),
            transport,
        })
    }
}

fn validate_base(url: &str) -> Result<String, BuildError> {
    let invalid = || BuildError::InvalidBaseUrl(url.to_owned());
    let uri: http::Uri = url.parse().map_err(|_| invalid())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.authority().is_none() || uri.query().is_some() {
        return Err(invalid());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// How long before the announced expiry a token stops being used.
fn margin(expires_in: u64) -> Duration {
    if expires_in >= 1200 {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(expires_in / 4)
    }
}

macro_rules! debug {
    ($($t:tt)*) => {
        #[cfg(feature = "tracing")]
        tracing::debug!($($t)*);
    };
}

impl<S> Client<S> {
    /// The app's AppID.
    pub fn appid(&self) -> &str {
        &self.inner.appid
    }

    /// The base URL requests go to (without a trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The transport.
    pub fn transport(&self) -> &S {
        &self.transport
    }
}

impl<S, B> Client<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    /// Sends a customer-service message to the user `touser` (an openid).
    ///
    /// Errors worth handling: [`ApiErrorKind::WindowClosed`] (45015) and
    /// [`ApiErrorKind::QuotaExceeded`] (45047) mean the message cannot be sent now;
    /// [`ApiErrorKind::InvalidOpenId`] (40003) that `touser` is not this app's user.
    pub async fn send(&self, touser: &str, message: &CustomMessage) -> Result<(), Error> {
        let body = json_bytes(&SendBody { touser, message })?;
        self.call_json("cgi-bin/message/custom/send", body).await?;
        Ok(())
    }

    /// Sends a text message (shorthand for [`send`](Self::send) with [`CustomMessage::text`]).
    pub async fn send_text(&self, touser: &str, content: &str) -> Result<(), Error> {
        self.send(touser, &CustomMessage::text(content)).await
    }

    /// Sends an image message (shorthand for [`send`](Self::send) with [`CustomMessage::image`]).
    pub async fn send_image(&self, touser: &str, media_id: &str) -> Result<(), Error> {
        self.send(touser, &CustomMessage::image(media_id)).await
    }

    /// Shows or hides the typing indicator for `touser` (`cgi-bin/message/custom/typing`).
    pub async fn typing(&self, touser: &str, command: TypingCommand) -> Result<(), Error> {
        let body = json_bytes(&TypingBody { touser, command })?;
        self.call_json("cgi-bin/message/custom/typing", body)
            .await?;
        Ok(())
    }

    /// Uploads temporary media (`cgi-bin/media/upload?type=…`, multipart field `media`)
    /// and returns its `media_id`, valid for 3 days.
    pub async fn upload_media(
        &self,
        kind: MediaType,
        media: &Media,
    ) -> Result<UploadedMedia, Error> {
        let (body, boundary) = wire::multipart(media)?;
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let query = format!("type={}", kind.as_str());
        let answer = self
            .call_with_token("cgi-bin/media/upload", &query, &content_type, body)
            .await?;
        let media_id = answer
            .get("media_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(Error::BadResponse {
                status: http::StatusCode::OK,
                kind: BadResponseKind::MissingField("media_id"),
            })?
            .to_owned();
        let created_at = answer.get("created_at").and_then(as_i64);
        Ok(UploadedMedia {
            media_id,
            created_at,
        })
    }

    /// Posts a JSON body to any other API that takes `?access_token=` (for example
    /// `cgi-bin/message/subscribe/send`), with the same token handling, and returns the
    /// answer's JSON object.
    pub async fn post_json<T>(&self, path: &str, body: &T) -> Result<Map<String, Value>, Error>
    where
        T: Serialize + ?Sized,
    {
        let body = json_bytes(body)?;
        self.call_json(path.trim_start_matches('/'), body).await
    }

    /// A valid access token: the cached one, or a freshly fetched one.
    ///
    /// Concurrent callers share one fetch. Useful for APIs this client does not wrap; if
    /// such a call answers 40001, 40014 or 42001, call [`invalidate_token`](Self::invalidate_token)
    /// with the token that failed.
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        if let Some(token) = self.stored_token().await? {
            return Ok(token);
        }
        self.refresh().await
    }

    /// Drops the cached token if it is still `failed` (compare-then-invalidate); returns
    /// whether it did. A newer token stored meanwhile is kept.
    pub async fn invalidate_token(&self, failed: &AccessToken) -> Result<bool, Error> {
        let inner = &*self.inner;
        let dropped = inner
            .store
            .invalidate(&inner.token_key, failed.value())
            .await?;
        debug!(appid = %inner.appid, dropped, "access token rejected by WeChat");
        Ok(dropped)
    }

    async fn stored_token(&self) -> Result<Option<AccessToken>, Error> {
        let inner = &*self.inner;
        let token = inner.store.get(&inner.token_key).await?;
        let now = inner.clock.now();
        Ok(token.filter(|t| t.is_valid_at(now)))
    }

    /// A new token, fetched by one of the concurrent callers in this process; the others
    /// get its outcome, the token or the error.
    async fn refresh(&self) -> Result<AccessToken, Error> {
        self.inner.flight.run(|| self.refresh_shared()).await
    }

    async fn refresh_shared(&self) -> Result<AccessToken, Error> {
        let inner = &*self.inner;
        if let Some(token) = self.stored_token().await? {
            return Ok(token);
        }
        // One refresh at a time across instances sharing the store.
        let mut delay = Duration::from_millis(25);
        let start = Instant::now();
        let give_up = start
            .checked_add(inner.lease.saturating_add(Duration::from_secs(1)))
            .unwrap_or(start);
        let locked = loop {
            if inner
                .store
                .try_lock(&inner.lock_key, &inner.owner, inner.lease)
                .await?
            {
                break true;
            }
            if let Some(token) = self.stored_token().await? {
                return Ok(token);
            }
            if Instant::now() >= give_up {
                // The store kept the lock past its lease; fetching anyway is safe with
                // stable_token and better than failing.
                break false;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        };
        let result = self.refresh_locked().await;
        if locked {
            // If this fails, the lease runs out.
            let _ = inner.store.unlock(&inner.lock_key, &inner.owner).await;
        }
        result
    }

    async fn refresh_locked(&self) -> Result<AccessToken, Error> {
        let inner = &*self.inner;
        if let Some(token) = self.stored_token().await? {
            return Ok(token);
        }
        let token = self.fetch_token().await?;
        inner.store.set(&inner.token_key, token.clone()).await?;
        Ok(token)
    }

    async fn fetch_token(&self) -> Result<AccessToken, Error> {
        let inner = &*self.inner;
        debug!(appid = %inner.appid, endpoint = ?inner.endpoint, "fetching access token");
        let request = match inner.endpoint {
            TokenEndpoint::StableToken => {
                #[derive(Serialize)]
                struct StableTokenBody<'a> {
                    grant_type: &'static str,
                    appid: &'a str,
                    secret: &'a str,
                    force_refresh: bool,
                }
                let body = json_bytes(&StableTokenBody {
                    grant_type: "client_credential",
                    appid: &inner.appid,
                    secret: &inner.secret,
                    force_refresh: false,
                })?;
                let uri = format!("{}/cgi-bin/stable_token", inner.base);
                build_request(Method::POST, &uri, Some("application/json"), body)?
            }
            TokenEndpoint::Token => {
                let uri = format!(
                    "{}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
                    inner.base,
                    percent_encode(&inner.appid),
                    percent_encode(&inner.secret)
                );
                build_request(Method::GET, &uri, None, Bytes::new())?
            }
        };
        let now = inner.clock.now();
        let (status, answer) = self.execute(request).await?;
        let missing = |field| Error::BadResponse {
            status,
            kind: BadResponseKind::MissingField(field),
        };
        let value = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("access_token"))?;
        let expires_in = answer
            .get("expires_in")
            .and_then(as_i64)
            .ok_or_else(|| missing("expires_in"))?;
        let expires_in = u64::try_from(expires_in).unwrap_or(0).min(86_400 * 365);
        let lifetime = Duration::from_secs(expires_in).saturating_sub(margin(expires_in));
        let expires_at = now.checked_add(lifetime).unwrap_or(now);
        debug!(appid = %inner.appid, expires_in, "fetched access token");
        Ok(AccessToken::new(value, expires_at))
    }

    async fn call_json(&self, path: &str, body: Bytes) -> Result<Map<String, Value>, Error> {
        self.call_with_token(path, "", "application/json", body)
            .await
    }

    /// Calls `path` with the token; on a token error drops that token, fetches once and
    /// retries once.
    async fn call_with_token(
        &self,
        path: &str,
        query: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Map<String, Value>, Error> {
        let token = self.access_token().await?;
        let first = self
            .call_once(path, query, content_type, body.clone(), &token)
            .await;
        match first {
            Err(Error::Api(e)) if e.is_token_error() => {
                self.invalidate_token(&token).await?;
                let token = self.access_token().await?;
                self.call_once(path, query, content_type, body, &token)
                    .await
            }
            other => other,
        }
    }

    async fn call_once(
        &self,
        path: &str,
        query: &str,
        content_type: &str,
        body: Bytes,
        token: &AccessToken,
    ) -> Result<Map<String, Value>, Error> {
        let sep = if query.is_empty() { "" } else { "&" };
        let uri = format!(
            "{}/{path}?access_token={}{sep}{query}",
            self.inner.base,
            percent_encode(token.value())
        );
        let request = build_request(Method::POST, &uri, Some(content_type), body)?;
        Ok(self.execute(request).await?.1)
    }

    async fn execute(
        &self,
        request: http::Request<RequestBody>,
    ) -> Result<(http::StatusCode, Map<String, Value>), Error> {
        let mut transport = self.transport.clone();
        poll_fn(|cx| transport.poll_ready(cx))
            .await
            .map_err(|e| Error::Transport(e.into()))?;
        let response = transport
            .call(request)
            .await
            .map_err(|e| Error::Transport(e.into()))?;
        let (parts, body) = response.into_parts();
        let bytes = read_body(body, self.inner.body_limit, parts.status).await?;
        Ok((parts.status, parse_answer(parts.status, &bytes)?))
    }
}

fn json_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, Error> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|_| Error::InvalidInput("body not serialisable as JSON"))
}

fn build_request(
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: Bytes,
) -> Result<http::Request<RequestBody>, Error> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder
        .body(RequestBody::new(body))
        .map_err(|_| Error::InvalidInput("request URI or header"))
}
