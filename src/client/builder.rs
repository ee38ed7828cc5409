//! [`ClientBuilder`]: a client's settings, checked when it is built.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::store::Outage;
use std::time::Duration;

use super::client::Inner;
use super::wire;
use super::{
    flight, BuildError, Client, Clock, HttpsTransport, MemoryTokenStore, SystemClock,
    TokenEndpoint, TokenStore, DEFAULT_BASE_URL,
};

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
    bound: Duration,
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
            .field("retry_bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    pub(super) fn new(appid: String, secret: String) -> Self {
        ClientBuilder {
            appid,
            secret,
            base_url: DEFAULT_BASE_URL.to_owned(),
            endpoint: TokenEndpoint::default(),
            store: None,
            clock: None,
            body_limit: 1024 * 1024,
            lease: Duration::from_secs(30),
            backoff: Duration::from_secs(1),
            bound: Duration::from_secs(30),
        }
    }

    /// The API's base URL (default [`DEFAULT_BASE_URL`](super::DEFAULT_BASE_URL)); an absolute `http` or `https`
    /// URL, possibly with a path prefix.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Where tokens come from (default [`TokenEndpoint::StableToken`](super::TokenEndpoint::StableToken)).
    pub fn token_endpoint(mut self, endpoint: TokenEndpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Where tokens are kept (default: a fresh [`MemoryTokenStore`](super::MemoryTokenStore)). Share one store
    /// between instances to share the token (a store shared with other code is passed as an
    /// `Arc`, which is a store too).
    pub fn token_store(mut self, store: impl TokenStore + 'static) -> Self {
        let store: Arc<dyn TokenStore> = Arc::new(store);
        self.store = Some(store);
        self
    }

    /// The clock token expiry is measured with (default [`SystemClock`](crate::clock::SystemClock)).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(clock);
        self.clock = Some(clock);
        self
    }

    /// The largest answer body read, in bytes (default 1 MiB); larger answers give
    /// [`BadResponseKind::TooLarge`](super::BadResponseKind::TooLarge).
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

    /// The least time between the start of a token fetch that failed and the next fetch in
    /// this process (default 1 s; capped at a day; [`Duration::ZERO`] fetches again as soon as
    /// one fails). Calls that need a token meanwhile are not failed: they wait for the next
    /// fetch, until a token comes or their [`retry_bound`](Self::retry_bound) passes. A
    /// token in the [`TokenStore`](super::TokenStore) is still used during the pause.
    pub fn refresh_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long a call keeps trying (default 30 s; capped at a day), counted from its start:
    /// it waits through failed token fetches, and retries with back-off a request that WeChat
    /// answered with `errcode` -1 (system busy) or that failed to connect (so was never sent).
    /// Once the bound has passed, no new attempt starts and the call returns the last error
    /// (for a token that never came, the last fetch's error; a [`SharedError`](super::SharedError)
    /// inside `Transport` or `Store`).
    ///
    /// A request that may have reached WeChat (a timeout waiting for the answer, a connection
    /// reset after sending, any other transport error) is never retried: WeChat may have
    /// delivered the message, and a retry would send it twice.
    pub fn retry_bound(mut self, bound: Duration) -> Self {
        self.bound = bound;
        self
    }

    /// Builds the client with the default [`HttpsTransport`](super::HttpsTransport).
    pub fn build(self) -> Result<Client, BuildError> {
        let transport = HttpsTransport::new()?;
        self.build_with_transport(transport)
    }

    /// Builds the client with a custom transport: any tower service taking
    /// `http::Request<`[`Body`](crate::body::Body)`>` and answering `http::Response<B>` (see [`Client`]'s
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
                bound: self.bound.min(Duration::from_secs(86_400)),
                token_key,
                lock_key,
                owner: wire::random_hex(16),
                flight: flight::Flight::new(self.backoff),
                local: Mutex::default(),
                outage: Outage::default(),
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
