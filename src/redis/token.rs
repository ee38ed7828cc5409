//! [`RedisTokenStore`]: the access token and its refresh lock in Redis.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{AsyncCommands, Script};

use super::connection::Connection;
use crate::client::{AccessToken, TokenStore};
use crate::store::{BoxFuture, StoreError};

/// A stored token outlives its own expiry by this much (the client checks the expiry itself).
const SLACK: Duration = Duration::from_secs(60);

/// Deletes the token if its value (after `{expires_at}:`) is still ARGV[1].
const INVALIDATE: &str = r"
local v = redis.call('GET', KEYS[1])
if v then
  local i = string.find(v, ':', 1, true)
  if i and string.sub(v, i + 1) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    return 1
  end
end
return 0
";

/// Takes the lock if free or already the owner's (extending the lease).
const TRY_LOCK: &str = r"
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Deletes the lock if it is the owner's.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A [`TokenStore`] in Redis, shared by every instance on it: one token fetch for all of
/// them. Get one from [`RedisStores::token_store`](super::RedisStores::token_store).
///
/// The token is kept as `{expires_at in ms since the epoch}:{token}` until a minute past its
/// expiry; the refresh lock holds its owner for the lease.
#[derive(Clone)]
pub struct RedisTokenStore {
    conn: Arc<Connection>,
    scripts: Arc<Scripts>,
}

struct Scripts {
    invalidate: Script,
    try_lock: Script,
    unlock: Script,
}

impl std::fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("prefix", &self.conn.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisTokenStore {
    pub(super) fn new(conn: Arc<Connection>) -> Self {
        RedisTokenStore {
            conn,
            scripts: Arc::new(Scripts {
                invalidate: Script::new(INVALIDATE),
                try_lock: Script::new(TRY_LOCK),
                unlock: Script::new(UNLOCK),
            }),
        }
    }
}

fn epoch_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn parse(stored: &str) -> Option<AccessToken> {
    let (expires, value) = stored.split_once(':')?;
    let expires = UNIX_EPOCH.checked_add(Duration::from_millis(expires.parse().ok()?))?;
    Some(AccessToken::new(value, expires))
}

impl TokenStore for RedisTokenStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>> {
        Box::pin(self.conn.get_parsed("token", key, parse))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        token: AccessToken,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = self.conn.key("token", key);
            let expires = epoch_millis(token.expires_at());
            let keep = expires
                .saturating_sub(epoch_millis(SystemTime::now()))
                .saturating_add(u64::try_from(SLACK.as_millis()).unwrap_or(u64::MAX));
            let stored = format!("{expires}:{}", token.value());
            self.conn
                .run(|mut c| async move { c.pset_ex::<_, _, ()>(key, stored, keep).await })
                .await
        })
    }

    fn invalidate<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = self.conn.key("token", key);
            let dropped: i64 = self
                .conn
                .run(|mut c| async move {
                    self.scripts
                        .invalidate
                        .key(key)
                        .arg(value)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(dropped == 1)
        })
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = self.conn.key("token", key);
            let lease = u64::try_from(lease.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, 86_400_000);
            let held: i64 = self
                .conn
                .run(|mut c| async move {
                    self.scripts
                        .try_lock
                        .key(key)
                        .arg(owner)
                        .arg(lease)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(held == 1)
        })
    }

    /// `true`: every instance on this Redis shares the token, so the client reads it on every
    /// call (one round trip beside a call that crosses the internet).
    fn is_shared(&self) -> bool {
        true
    }

    fn unlock<'a>(&'a self, key: &'a str, owner: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = self.conn.key("token", key);
            let _: i64 = self
                .conn
                .run(|mut c| async move {
                    self.scripts
                        .unlock
                        .key(key)
                        .arg(owner)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(())
        })
    }
}
