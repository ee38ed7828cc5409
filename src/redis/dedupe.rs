//! [`RedisDedupeStore`]: dedupe's claims and replies in Redis.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::connection::{millis, Connection};
use crate::dedupe::{Claim, DedupeStore};
use crate::reply::Reply;
use crate::store::{BoxFuture, StoreError};

/// How often a duplicate waiting on a push handled elsewhere looks at Redis again (one short
/// script each time).
const POLL: Duration = Duration::from_millis(20);

/// Records the reply if the key is still the owner's claim (in flight or answered), or free
/// (the claim expired, or never landed).
const COMPLETE: &str = r"
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] or v == ARGV[4] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Extends the owner's claim (in flight or answered) to the lease, as in flight or answered.
const RENEW: &str = r"
local v = redis.call('GET', KEYS[1])
if v and (v == ARGV[1] or v == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  return 1
end
return 0
";

/// Deletes the owner's claim (in flight or answered), or the reply the owner recorded.
const RELEASE: &str = r"
local v = redis.call('GET', KEYS[1])
if v and (v == ARGV[1] or v == ARGV[3] or string.sub(v, 1, 9) == ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// A [`DedupeStore`] in Redis, shared by every instance on it: a push delivered to one
/// instance and retried at another is handled once. Get one from
/// [`RedisStores::dedupe_store`](super::RedisStores::dedupe_store).
///
/// Each key holds `C` + the owner (a random 64-bit token) while claimed, `A` + the owner once
/// answered `success` at the ack deadline with the handler still running, `D` + the owner +
/// the encoded reply once handled. Claims expire after the lease unless their owner renews
/// them, replies after the TTL.
/// A waiting duplicate polls every 20 ms (Redis cannot wake it cheaply).
#[derive(Clone)]
pub struct RedisDedupeStore {
    conn: Arc<Connection>,
    scripts: Arc<Scripts>,
}

struct Scripts {
    complete: Script,
    renew: Script,
    release: Script,
}

impl std::fmt::Debug for RedisDedupeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDedupeStore")
            .field("prefix", &self.conn.prefix)
            .finish_non_exhaustive()
    }
}

fn marked(mark: u8, owner: u64) -> Vec<u8> {
    let mut value = Vec::with_capacity(9);
    value.push(mark);
    value.extend_from_slice(&owner.to_be_bytes());
    value
}

impl RedisDedupeStore {
    pub(super) fn new(conn: Arc<Connection>) -> Self {
        RedisDedupeStore {
            conn,
            scripts: Arc::new(Scripts {
                complete: Script::new(COMPLETE),
                renew: Script::new(RENEW),
                release: Script::new(RELEASE),
            }),
        }
    }
}

impl DedupeStore for RedisDedupeStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async move {
            let found = self
                .conn
                .set_if_absent("dedupe", key, &marked(b'C', owner), lease)
                .await?;
            match found.as_deref() {
                None => Ok(Claim::Acquired),
                Some([b'C', ..]) => Ok(Claim::InFlight),
                Some([b'A', ..]) => Ok(Claim::Answered),
                Some([b'D', rest @ ..]) if rest.len() >= 8 => Reply::from_bytes(&rest[8..])
                    .map(Claim::Done)
                    .map_err(StoreError::new),
                Some(_) => Err(StoreError::new("redis: a dedupe key holds a foreign value")),
            }
        })
    }

    fn renew<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        lease: Duration,
        answered: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = self.conn.key("dedupe", key);
            let now = marked(if answered { b'A' } else { b'C' }, owner);
            let renewed: i64 = self
                .conn
                .run(|mut c| async move {
                    self.scripts
                        .renew
                        .key(key)
                        .arg(marked(b'C', owner))
                        .arg(marked(b'A', owner))
                        .arg(now)
                        .arg(millis(lease))
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(renewed == 1)
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        reply: &'a Reply,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = self.conn.key("dedupe", key);
            let mut done = marked(b'D', owner);
            done.extend_from_slice(&reply.to_bytes());
            let _: i64 = self
                .conn
                .run(|mut c| async move {
                    self.scripts
                        .complete
                        .key(key)
                        .arg(marked(b'C', owner))
                        .arg(done)
                        .arg(millis(ttl))
                        .arg(marked(b'A', owner))
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(())
        })
    }

    fn release<'a>(&'a self, key: &'a str, owner: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = self.conn.key("dedupe", key);
            let _: i64 = self
                .conn
                .run(|mut c| async move {
                    self.scripts
                        .release
                        .key(key)
                        .arg(marked(b'C', owner))
                        .arg(marked(b'D', owner))
                        .arg(marked(b'A', owner))
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(())
        })
    }

    fn wait<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(tokio::time::sleep(POLL))
    }
}
