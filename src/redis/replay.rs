//! [`RedisReplayStore`]: the replay guard's record in Redis.

use std::sync::Arc;
use std::time::Duration;

use super::connection::Connection;
use crate::replay::{ReplayStore, Seen};
use crate::store::{BoxFuture, StoreError};

/// A [`ReplayStore`] in Redis, shared by every instance on it: a query first used at one
/// instance is refused at another with another body. Get one from
/// [`RedisStores::replay_store`](super::RedisStores::replay_store).
///
/// Each key holds the body's SHA-1 for the timestamp tolerance window.
#[derive(Clone)]
pub struct RedisReplayStore {
    conn: Arc<Connection>,
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
        RedisReplayStore { conn }
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
            let found = self.conn.set_if_absent("replay", key, &digest, ttl).await?;
            Ok(match found {
                None => Seen::First,
                Some(seen) if seen == digest => Seen::SameBody,
                Some(_) => Seen::OtherBody,
            })
        })
    }
}
