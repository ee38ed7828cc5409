//! Access-token storage: the [`TokenStore`] trait, its in-memory default, and the clock.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::store::{BoxFuture, StoreError};

/// An access token and the instant after which the client no longer uses it.
///
/// `expires_at` already includes the client's safety margin: it is earlier than the expiry
/// WeChat announced. `Debug` does not print the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    value: String,
    expires_at: SystemTime,
}

impl AccessToken {
    /// A token usable until `expires_at`.
    pub fn new(value: impl Into<String>, expires_at: SystemTime) -> Self {
        AccessToken {
            value: value.into(),
            expires_at,
        }
    }

    /// The token itself, as sent in `?access_token=`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The instant after which the client fetches a new token instead of using this one.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Whether the token may still be used at `now`.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        now < self.expires_at
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where the access token lives, shared by every clone of a [`Client`](super::Client)
/// and, with a shared backend such as Redis, by every instance of a service.
///
/// Keys are chosen by the client (they name the app and the token endpoint); a store needs
/// no knowledge of WeChat. All methods are async and object-safe, so the client holds an
/// `Arc<dyn TokenStore>`: like the layer's stores, they return a
/// [`BoxFuture`](crate::store::BoxFuture) and fail with a [`StoreError`](crate::store::StoreError).
///
/// Contract, in the terms of a Redis implementation:
///
/// * [`get`](Self::get): the stored token (`GET`), or `None`. Returning an expired token is
///   allowed; the client checks [`AccessToken::expires_at`] against its own clock.
/// * [`set`](Self::set): store the token, replacing any other (`SET … PXAT expires_at`, or
///   a TTL slightly beyond it).
/// * [`invalidate`](Self::invalidate): delete the token **only if** its value is still
///   `value` (compare-and-delete, a small Lua script); return whether it was deleted. This is
///   how a send that failed with a stale token avoids dropping a newer one.
/// * [`try_lock`](Self::try_lock): take the refresh lock for `lease` if it is free, expired,
///   or already held by `owner` (in which case the lease is extended); return whether `owner`
///   holds it now (`SET lock owner NX PX lease`, or `PEXPIRE` when the value is `owner`).
///   The lease bounds how long a crashed holder can block others.
/// * [`unlock`](Self::unlock): release the lock only if `owner` holds it
///   (compare-and-delete).
/// * [`is_shared`](Self::is_shared): whether other processes may change the token (true
///   unless overridden). The client reads a shared store's token on every call, so that a
///   token another instance saw rejected and replaced is not spent here; it keeps using its
///   own copy of an unshared store's token while it is valid.
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The stored token, if any.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>>;

    /// Stores `token`, replacing any previous one.
    fn set<'a>(&'a self, key: &'a str, token: AccessToken)
        -> BoxFuture<'a, Result<(), StoreError>>;

    /// Deletes the token if its value is still `value`; returns whether it did.
    fn invalidate<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Takes (or extends) the refresh lock `key` for `owner`; returns whether `owner` holds it.
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Releases the refresh lock `key` if `owner` holds it.
    fn unlock<'a>(&'a self, key: &'a str, owner: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Whether other processes share this store (default `true`): the client then reads the
    /// token on every call instead of trusting its own copy. A store in this process's memory
    /// returns `false` (as [`MemoryTokenStore`] does): a client then sends on its own copy
    /// while it is valid, and a token another client on the same store replaced costs it one
    /// rejected send.
    fn is_shared(&self) -> bool {
        true
    }
}

/// A shared store is a store: `token_store(store.clone())` with `store` an `Arc` of one.
impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>> {
        (**self).get(key)
    }

    fn is_shared(&self) -> bool {
        (**self).is_shared()
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        token: AccessToken,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).set(key, token)
    }

    fn invalidate<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        (**self).invalidate(key, value)
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        (**self).try_lock(key, owner, lease)
    }

    fn unlock<'a>(&'a self, key: &'a str, owner: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).unlock(key, owner)
    }
}

/// The default [`TokenStore`]: a map in this process's memory.
///
/// Enough for a single instance. Several [`Client`](super::Client)s may share one (through
/// [`ClientBuilder::token_store`](super::ClientBuilder::token_store)); lock leases are
/// measured on the monotonic clock. It is not [shared](TokenStore::is_shared): a client
/// sends on its own copy of the token while it is valid, without reading the store.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<HashMap<String, AccessToken>>,
    locks: Mutex<HashMap<String, (String, Instant)>>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the map half-updated.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl TokenStore for MemoryTokenStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>> {
        ready(Ok(lock(&self.tokens).get(key).cloned()))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        token: AccessToken,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        lock(&self.tokens).insert(key.to_owned(), token);
        ready(Ok(()))
    }

    fn invalidate<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut tokens = lock(&self.tokens);
        let same = tokens.get(key).is_some_and(|t| t.value == value);
        if same {
            tokens.remove(key);
        }
        ready(Ok(same))
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let now = Instant::now();
        let mut locks = lock(&self.locks);
        let free = match locks.get(key) {
            None => true,
            Some((holder, until)) => holder == owner || *until <= now,
        };
        if free {
            // Capped at a day so that the addition cannot overflow.
            let until = now
                .checked_add(lease.min(Duration::from_secs(86_400)))
                .unwrap_or(now);
            locks.insert(key.to_owned(), (owner.to_owned(), until));
        }
        ready(Ok(free))
    }

    fn unlock<'a>(&'a self, key: &'a str, owner: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut locks = lock(&self.locks);
        if locks.get(key).is_some_and(|(holder, _)| holder == owner) {
            locks.remove(key);
        }
        ready(Ok(()))
    }

    fn is_shared(&self) -> bool {
        false
    }
}
