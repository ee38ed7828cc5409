//! The stores on Redis, so that several instances behind a load balancer share one access
//! token, handle each push once and see each other's queries (feature `redis`), and a
//! third-party platform's instances share its `component_verify_ticket`.
//!
//! [`RedisStores`] holds one connection (redis-rs' `ConnectionManager`: multiplexed, and
//! reconnected by itself when the server comes back) and hands out the stores on it:
//!
//! ```no_run
//! # #[cfg(feature = "client")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use wechat_push::client::Client;
//! use wechat_push::redis::RedisStores;
//! use wechat_push::WechatLayer;
//!
//! let redis = RedisStores::builder("redis://127.0.0.1:6379/0")
//!     .prefix("my-app:") // default "wechat-push:"
//!     .command_timeout(Duration::from_millis(250)) // the default
//!     .build()?; // checks the URL; connects on first use
//! let layer = WechatLayer::new("Token123abc")?
//!     .replay_guard(redis.replay_store())
//!     .dedupe(redis.dedupe_store())
//!     .ack_deadline(Duration::from_secs(4));
//! let client = Client::builder("wxAPPID", "SECRET")
//!     .token_store(Arc::new(redis.token_store()))
//!     .build()?;
//! # let _ = (layer, client);
//! # Ok(())
//! # }
//! ```
//!
//! URLs: `redis://[:PASSWORD@]HOST[:PORT][/DB]`, `rediss://…` (TLS with rustls, verified
//! against the system's roots or [your own CA](RedisStoresBuilder::tls_root_certificate)),
//! `unix:///PATH` or `redis+unix:///PATH`.
//!
//! Keys, under the prefix (every one with an expiry):
//!
//! | key | value | expires |
//! | --- | --- | --- |
//! | `{prefix}token:wechat:access_token:{appid}:{endpoint}` | `{expires_at ms}:{token}` | one minute after the token's own expiry |
//! | `{prefix}token:wechat:access_token:{appid}:{endpoint}:lock` | the refresh lock's owner | the refresh lease |
//! | `{prefix}dedupe:{dedupe key}` | `C` + owner (8 bytes) while claimed; `A` + owner once answered `success` at the ack deadline with the handler still running; `D` + owner + [`Reply::to_bytes`](crate::Reply::to_bytes) once handled | the claim lease (renewed by its owner), then the dedupe TTL |
//! | `{prefix}replay:{timestamp}\|{nonce}\|{signature}` | the body's SHA-1 (20 bytes) | the timestamp tolerance window |
//! | `{prefix}ticket:{component AppID}` | `{create_time}:{ticket}` | 12 hours after it was stored (a ticket's validity) |
//!
//! When Redis does not answer within the command timeout (or refuses the connection), the
//! stores return a [`StoreError`](crate::store::StoreError) at once, and for a second after a
//! refused connection, or a timeout with nothing answered for as long, they do not try again
//! (a hung server costs one timeout, not one per request). What the users of the stores then
//! do: dedupe handles the push anyway; the client carries on with its own copy of the token, or
//! fetches one for the process; the replay guard answers 503. Dedupe and the client log a
//! warning once per outage.

mod connection;
mod dedupe;
mod queue;
mod replay;
mod ticket;
// The access-token store implements the client's `TokenStore`: it needs feature `client` too.
#[cfg(feature = "client")]
mod token;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use connection::Connection;

pub use dedupe::RedisDedupeStore;
pub use queue::{RedisQueue, DEFAULT_STREAM_CAPACITY};
pub use replay::RedisReplayStore;
pub use ticket::RedisTicketStore;
#[cfg(feature = "client")]
pub use token::RedisTokenStore;

/// The key prefix by default.
pub const DEFAULT_PREFIX: &str = "wechat-push:";

/// How long a command may take by default before the store reports a failure.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(250);

/// One Redis connection and the stores on it. Cheap to clone.
#[derive(Clone)]
pub struct RedisStores {
    conn: Arc<Connection>,
}

impl fmt::Debug for RedisStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("RedisStores")
            .field("prefix", &self.conn.prefix)
            .field("command_timeout", &self.conn.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStores {
    /// A builder for stores on the Redis at `url`.
    pub fn builder(url: impl Into<String>) -> RedisStoresBuilder {
        RedisStoresBuilder {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_COMMAND_TIMEOUT,
            tls_root: None,
        }
    }

    /// Stores on the Redis at `url`, with the default prefix and command timeout.
    pub fn new(url: impl Into<String>) -> Result<Self, RedisConfigError> {
        Self::builder(url).build()
    }

    /// The access-token store (features `redis` and `client`).
    #[cfg(feature = "client")]
    pub fn token_store(&self) -> RedisTokenStore {
        RedisTokenStore::new(self.conn.clone())
    }

    /// The dedupe store.
    pub fn dedupe_store(&self) -> RedisDedupeStore {
        RedisDedupeStore::new(self.conn.clone())
    }

    /// The replay guard's store.
    pub fn replay_store(&self) -> RedisReplayStore {
        RedisReplayStore::new(self.conn.clone())
    }

    /// A third-party platform's `component_verify_ticket` store (see
    /// [`WechatLayer::ticket_store`](crate::WechatLayer::ticket_store)).
    pub fn ticket_store(&self) -> RedisTicketStore {
        RedisTicketStore::new(self.conn.clone())
    }

    /// The durable queue on this Redis, shared by every instance (see [`RedisQueue`] and
    /// the [`queue`](crate::queue) module).
    pub fn queue(&self) -> RedisQueue {
        RedisQueue::new(self.conn.clone())
    }

    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        &self.conn.prefix
    }
}

/// Builds [`RedisStores`]; see [`RedisStores::builder`].
#[must_use]
pub struct RedisStoresBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    tls_root: Option<Vec<u8>>,
}

impl fmt::Debug for RedisStoresBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoresBuilder")
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.timeout)
            .field("tls_root_certificate", &self.tls_root.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStoresBuilder {
    /// For `rediss://`: trust the certificate authority in `pem` (PEM) instead of the
    /// system's roots (a Redis with a certificate of your own CA). The server's certificate
    /// is verified either way, its name or IP address included.
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    /// The prefix of every key (default [`DEFAULT_PREFIX`]); give each application sharing a
    /// Redis its own.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a command may take (default [`DEFAULT_COMMAND_TIMEOUT`]); past it the store
    /// reports a failure and its user falls back (see the [module docs](self)). Keep it well
    /// under a second: dedupe asks Redis twice per push, within WeChat's 5 s.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the URL and returns the stores. Nothing is connected yet: an unreachable server
    /// is not an error here, and the stores use it once it answers.
    pub fn build(self) -> Result<RedisStores, RedisConfigError> {
        let invalid = |e: redis::RedisError| RedisConfigError {
            reason: format!("invalid Redis URL: {e}"),
        };
        let client = match self.tls_root {
            None => redis::Client::open(self.url.as_str()).map_err(invalid)?,
            Some(root) => {
                // rustls would take a PEM without a certificate as "no roots": trust nothing.
                if !root
                    .windows(27)
                    .any(|w| w == b"-----BEGIN CERTIFICATE-----")
                {
                    return Err(RedisConfigError {
                        reason: "the TLS root certificate is not a PEM certificate".to_owned(),
                    });
                }
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root),
                };
                redis::Client::build_with_tls(self.url.as_str(), certificates).map_err(invalid)?
            }
        };
        Ok(RedisStores {
            conn: Arc::new(Connection::new(client, self.prefix, self.timeout)),
        })
    }
}

/// The Redis URL or the TLS root certificate could not be used (the URL is not repeated: it
/// may carry a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfigError {
    reason: String,
}

impl fmt::Display for RedisConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for RedisConfigError {}
