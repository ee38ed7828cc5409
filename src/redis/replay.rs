//! [`RedisReplayStore`]: the replay guard's record in Redis.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::connection::Connection;
use crate::replay::{ReplayStore, Seen};
use crate::store::{BoxFuture, StoreError};

/// Set-if-absent with the window's expiry; otherwise the digest recorded.
const CHECK: &str = r"
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";

/// A [`ReplayStore`] in Redis, shared by every instance on it: a query first used at one
/// instance is refused at another with another body. Get one from
/// [`RedisStores::replay_store`](super::RedisStores::replay_store).
///
/// Each key holds the body's SHA-1 for the timestamp tolerance window.
#[derive(Clone)]
pub struct RedisReplayStore {
    conn: Arc<Connection>,
    script: Arc<Script>,
}

impl std::fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.conn.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    pub(super) fn new(conn: Arc<Connection>) -> Self {
        RedisReplayStore {
            conn,
            script: Arc::new(Script::new(CHECK)),
        }
    }
}

impl ReplayStore for RedisReplayStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        digest: [u8; 20],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Seen, StoreError>> {
        Box::pin(async move {
            let key = self.conn.key("replay", key);
            let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let found: Option<Vec<u8>> = self
                .conn
                .run(|mut c| async move {
                    self.script
                        .key(key)
                        .arg(&digest[..])
                        .arg(ttl)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(match found {
                None => Seen::First,
                Some(seen) if seen == digest => Seen::SameBody,
                Some(_) => Seen::OtherBody,
            })
        })
    }
}
