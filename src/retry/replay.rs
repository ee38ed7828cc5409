//! The replay guard: a captured query string is useless for any other body.
//!
//! In plaintext mode `signature` covers only the token, `timestamp` and `nonce`, so whoever
//! captures one callback URL can send any body with it while the timestamp is fresh. With
//! [`WechatLayer::replay_guard`](crate::WechatLayer::replay_guard) the layer remembers, for
//! each verified `(timestamp, nonce, signature)`, a digest of the body it came with, for as
//! long as the timestamp tolerance lets that query in. The same query with the same body is a
//! retry or a duplicate and goes on (to dedupe, when configured); the same query with another
//! body is a forgery and gets 401 `replayed signature`.
//!
//! The digest is recorded only after the push passed every other check, so a forged body
//! cannot claim a query before the genuine push arrives.
//!
//! Only plaintext pushes are looked up: in safe and compatible mode `msg_signature` covers the
//! body, and WeChat may seal a retry afresh under the same query (another `Encrypt` for the
//! same document), which the guard would take for a forgery.
//!
//! The guard needs a window: it remembers each query for as long as the timestamp tolerance
//! lets it in. With [`timestamp_tolerance(None)`](crate::WechatLayer::timestamp_tolerance) it
//! keeps its own, [`DEFAULT_TIMESTAMP_TOLERANCE`]: a plaintext push older (or newer) than
//! that is refused as [`StaleTimestamp`](crate::Rejection::StaleTimestamp), since its query
//! could have been forgotten.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use crate::endpoint::{Endpoint, DEFAULT_TIMESTAMP_TOLERANCE};
use crate::query::CallbackQuery;
use crate::rejection::Rejection;
use crate::store::{expiry, BoundedMap, BoxFuture, StoreError};

/// What a [`ReplayStore`] had seen for a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Nothing: the digest is now recorded.
    First,
    /// The same body before: a retry or a duplicate.
    SameBody,
    /// Another body before: a replay of the query with a forged body.
    OtherBody,
}

/// Where the replay guard records `query → body digest`.
///
/// One operation, atomic: record the digest under the key unless the key exists, and say what
/// was there. A Redis implementation is `SET key digest NX GET EX ttl`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a replay store",
    label = "not a `ReplayStore`",
    note = "pass `MemoryReplayStore::default()`, `RedisStores::replay_store()` (feature `redis`), an `Arc` of a store, or a type implementing `wechat_push::replay::ReplayStore`"
)]
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `digest` under `key` for `ttl` unless `key` is present, and reports what was
    /// there.
    fn check<'a>(
        &'a self,
        key: &'a str,
        digest: [u8; 20],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Seen, StoreError>>;
}

impl<R: ReplayStore + ?Sized> ReplayStore for std::sync::Arc<R> {
    fn check<'a>(
        &'a self,
        key: &'a str,
        digest: [u8; 20],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Seen, StoreError>> {
        (**self).check(key, digest, ttl)
    }
}

/// The in-memory [`ReplayStore`]: per process, bounded.
///
/// At most `capacity` queries are remembered; past that the oldest are forgotten first (a
/// flood of distinct pushes cannot grow memory, at the price of forgetting early).
#[derive(Debug)]
pub struct MemoryReplayStore {
    map: Mutex<BoundedMap<[u8; 20]>>,
}

impl MemoryReplayStore {
    /// A store remembering at most `capacity` queries.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(BoundedMap::new(capacity)),
        }
    }

    /// How many queries it holds now.
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check_now(&self, key: &str, digest: [u8; 20], ttl: Duration) -> Seen {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(key, now) {
            Some(seen) if *seen == digest => Seen::SameBody,
            Some(_) => Seen::OtherBody,
            None => {
                map.insert(key, digest, expiry(now, ttl), now);
                Seen::First
            }
        }
    }
}

impl Default for MemoryReplayStore {
    /// Remembers up to 100,000 queries (a few MiB).
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl ReplayStore for MemoryReplayStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        digest: [u8; 20],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Seen, StoreError>> {
        let seen = self.check_now(key, digest, ttl);
        Box::pin(std::future::ready(Ok(seen)))
    }
}

/// With the timestamp check off, the guard keeps its own window: a plaintext push older (or
/// newer) than [`DEFAULT_TIMESTAMP_TOLERANCE`] is refused, since the guard remembers queries
/// only that long and nothing else would stop an older one from being replayed.
fn admit(endpoint: &Endpoint, query: &CallbackQuery) -> Result<(), Rejection> {
    if endpoint.tolerance().is_some() {
        // Checked with the signature already.
        return Ok(());
    }
    let tolerance = DEFAULT_TIMESTAMP_TOLERANCE;
    if endpoint.now().abs_diff(query.timestamp_secs()) > tolerance.as_secs() {
        return Err(Rejection::StaleTimestamp {
            timestamp: query.timestamp_secs(),
            tolerance,
        });
    }
    Ok(())
}

/// The lookup the layer runs for a verified push: key and digest computed now, the store
/// asked when the returned future is polled.
fn check(
    store: Arc<dyn ReplayStore>,
    endpoint: &Endpoint,
    query: &CallbackQuery,
    body: &[u8],
) -> BoxFuture<'static, Result<Seen, StoreError>> {
    // Hex case does not change what a signature verifies, so it must not change the key.
    let key = format!(
        "{}|{}|{}",
        query.timestamp(),
        query.nonce(),
        query.signature().to_ascii_lowercase()
    );
    let digest: [u8; 20] = Sha1::digest(body).into();
    // Remembered for as long as the tolerance lets this timestamp in.
    let tolerance = endpoint.tolerance().unwrap_or(DEFAULT_TIMESTAMP_TOLERANCE);
    let until = query.timestamp_secs().saturating_add(tolerance.as_secs());
    let ttl = Duration::from_secs(until.saturating_sub(endpoint.now()).saturating_add(1)).min(
        tolerance
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(1)),
    );
    Box::pin(async move { store.check(&key, digest, ttl).await })
}

/// The layer's step before the handler for a verified plaintext push: refused at once when
/// too old for the guard's window, else a look-up that refuses a query seen with another body
/// (401) and answers 503 when the store fails.
pub(crate) fn guard(
    store: &Arc<dyn ReplayStore>,
    endpoint: &Endpoint,
    query: &CallbackQuery,
    body: &[u8],
) -> Result<BoxFuture<'static, Result<(), Rejection>>, Rejection> {
    admit(endpoint, query)?;
    let check = check(store.clone(), endpoint, query, body);
    Ok(Box::pin(async move {
        match check.await {
            Ok(Seen::First | Seen::SameBody) => Ok(()),
            Ok(Seen::OtherBody) => Err(Rejection::ReplayedSignature),
            Err(_) => Err(Rejection::Store),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_or_other_body() {
        let store = MemoryReplayStore::new(10);
        let ttl = Duration::from_secs(60);
        assert_eq!(store.check_now("q", [1; 20], ttl), Seen::First);
        assert_eq!(store.check_now("q", [1; 20], ttl), Seen::SameBody);
        assert_eq!(store.check_now("q", [2; 20], ttl), Seen::OtherBody);
        assert_eq!(store.check_now("r", [2; 20], ttl), Seen::First);
        assert_eq!(store.check_now("s", [2; 20], Duration::ZERO), Seen::First);
        assert_eq!(store.check_now("s", [3; 20], ttl), Seen::First, "expired");
    }
}
