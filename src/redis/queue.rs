//! The queue on a Redis stream with a consumer group (see [`RedisQueue`]).

mod scripts;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;

use super::connection::{millis, Connection};
use crate::queue::{
    put, DeadLetter, Enqueued, Held, QueueBackend, QueuedPush, Reader,
    DEFAULT_DEAD_LETTER_CAPACITY, DEFAULT_DEDUPE_TTL,
};
use crate::store::{BoxFuture, StoreError};
use scripts::{ADD, ENSURE, FAIL, FINISH, HAND_BACK, OWNED, RENEW, REQUEUE, TAKE};

/// How many pushes the stream and its retries hold by default; past it a push is queued in
/// the instance's memory instead.
pub const DEFAULT_STREAM_CAPACITY: usize = 1_000_000;

/// The consumer group of every instance.
const GROUP: &str = "workers";

/// A consumer of a dead instance, holding nothing, is removed from the group after this long.
const STALE_CONSUMER: Duration = Duration::from_secs(60 * 60);

/// The queue on Redis, shared by every instance (feature `redis`); see
/// [`RedisStores::queue`](super::RedisStores::queue) and the [`queue`](crate::queue) module.
///
/// Keys, under the [`RedisStores`](super::RedisStores) prefix:
///
/// | key | type | holds | bounded by |
/// | --- | --- | --- | --- |
/// | `{prefix}queue:stream` | stream, consumer group `workers` | the pushes queued and held (fields `a`: attempts made, `d`: the push) | entries deleted once handled, failed or handed back; new pushes refused past the capacity |
/// | `{prefix}queue:delayed` | sorted set, by due time (ms) | pushes waiting for a retry: `{attempts}:{push}` | the capacity (with the stream) |
/// | `{prefix}queue:dead` | list, latest first | the dead letters: attempts, time, last error, the push | trimmed to the dead-letter capacity |
/// | `{prefix}queue:seen:{push id}` | string | that the push was queued (its duplicates are not) | expires after the dedupe TTL |
///
/// Consumers are instances (one name each); a consumer with nothing pending and idle for an
/// hour is removed from the group. Each step is one Lua script over several of these keys: on
/// Redis Cluster, give a prefix with a hash tag (`{my-app}:`) so that they share a slot.
#[derive(Clone)]
pub struct RedisQueue {
    conn: Arc<Connection>,
    scripts: Arc<Scripts>,
    capacity: usize,
    dead_capacity: usize,
    dedupe_ttl: Duration,
}

struct Scripts {
    add: Script,
    take: Script,
    fail: Script,
    hand_back: Script,
    renew: Script,
    finish: Script,
    requeue: Script,
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.conn.prefix)
            .field("capacity", &self.capacity)
            .field("dead_letter_capacity", &self.dead_capacity)
            .field("dedupe_ttl", &self.dedupe_ttl)
            .finish_non_exhaustive()
    }
}

impl RedisQueue {
    pub(super) fn new(conn: Arc<Connection>) -> Self {
        let ensure = |body: &str| Script::new(&format!("{ENSURE}{body}"));
        let owned = |body: &str| Script::new(&format!("{OWNED}{body}"));
        RedisQueue {
            conn,
            scripts: Arc::new(Scripts {
                add: ensure(ADD),
                take: ensure(TAKE),
                fail: owned(FAIL),
                hand_back: owned(HAND_BACK),
                renew: owned(RENEW),
                finish: Script::new(FINISH),
                requeue: ensure(REQUEUE),
            }),
            capacity: DEFAULT_STREAM_CAPACITY,
            dead_capacity: DEFAULT_DEAD_LETTER_CAPACITY,
            dedupe_ttl: DEFAULT_DEDUPE_TTL,
        }
    }

    /// How many pushes the stream and the retries hold (default [`DEFAULT_STREAM_CAPACITY`]).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// How many dead letters are kept (default
    /// [`DEFAULT_DEAD_LETTER_CAPACITY`](crate::queue::DEFAULT_DEAD_LETTER_CAPACITY)).
    #[must_use]
    pub fn dead_letter_capacity(mut self, capacity: usize) -> Self {
        self.dead_capacity = capacity.max(1);
        self
    }

    /// How long a push's id is remembered (default
    /// [`DEFAULT_DEDUPE_TTL`](crate::queue::DEFAULT_DEDUPE_TTL)).
    #[must_use]
    pub fn dedupe_ttl(mut self, ttl: Duration) -> Self {
        self.dedupe_ttl = ttl;
        self
    }

    fn key(&self, name: &str) -> String {
        self.conn.key("queue", name)
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.conn
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await
    }
}

/// A dead letter as the list holds it.
fn encode_dead(attempts: u32, error: &str, record: &[u8]) -> Vec<u8> {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis);
    let mut out = Vec::with_capacity(record.len() + error.len() + 32);
    out.push(1);
    put(&mut out, attempts.to_string().as_bytes());
    put(&mut out, at.to_string().as_bytes());
    put(&mut out, error.as_bytes());
    put(&mut out, record);
    out
}

fn decode_dead(raw: Vec<u8>) -> Option<DeadLetter> {
    let mut r = Reader(&raw);
    if r.byte()? != 1 {
        return None;
    }
    let number = |field: &[u8]| std::str::from_utf8(field).ok()?.parse::<u64>().ok();
    let attempts = u32::try_from(number(r.field()?)?).ok()?;
    let at = number(r.field()?)?;
    let error = String::from_utf8_lossy(r.field()?).into_owned();
    let push = QueuedPush::from_bytes(r.field()?)?;
    if !r.0.is_empty() {
        return None;
    }
    Some(DeadLetter {
        push,
        attempts,
        error,
        failed_at: UNIX_EPOCH + Duration::from_millis(at),
        raw,
    })
}

impl QueueBackend for RedisQueue {
    fn add<'a>(&'a self, push: &'a QueuedPush) -> BoxFuture<'a, Result<Enqueued, StoreError>> {
        Box::pin(async move {
            let mut invocation = self.scripts.add.prepare_invoke();
            invocation
                .key(self.key("stream"))
                .key(self.key("delayed"))
                .key(self.conn.key("queue:seen", push.id().as_str()))
                .arg(GROUP)
                .arg(millis(self.dedupe_ttl))
                .arg(push.to_bytes())
                .arg(self.capacity);
            Ok(match self.invoke::<i64>(invocation).await? {
                0 => Enqueued::Queued,
                1 => Enqueued::Duplicate,
                _ => Enqueued::Full,
            })
        })
    }

    fn take<'a>(
        &'a self,
        consumer: &'a str,
        max: usize,
        takeover: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Held>, StoreError>> {
        Box::pin(async move {
            let mut invocation = self.scripts.take.prepare_invoke();
            invocation
                .key(self.key("stream"))
                .key(self.key("delayed"))
                .arg(GROUP)
                .arg(consumer)
                .arg(max.max(1))
                .arg(takeover.map_or(0, millis))
                .arg(millis(STALE_CONSUMER));
            let flat: Vec<Vec<u8>> = self.invoke(invocation).await?;
            let mut taken = Vec::with_capacity(flat.len() / 4);
            for entry in flat.chunks_exact(4) {
                let [id, before, deliveries, record] = entry else {
                    continue;
                };
                let id = String::from_utf8_lossy(id).into_owned();
                let number = |f: &[u8]| {
                    std::str::from_utf8(f)
                        .ok()
                        .and_then(|s| s.parse::<u32>().ok())
                };
                let attempt = number(before)
                    .unwrap_or(0)
                    .saturating_add(number(deliveries).unwrap_or(1).max(1));
                match QueuedPush::from_bytes(record) {
                    Some(push) => taken.push(Held {
                        entry: id,
                        attempt,
                        push,
                    }),
                    None => {
                        // Not a push this crate wrote: out of the stream, into the list.
                        let dead = encode_dead(attempt, "not a queued push", record);
                        let mut invocation = self.scripts.fail.prepare_invoke();
                        invocation
                            .key(self.key("stream"))
                            .key(self.key("delayed"))
                            .key(self.key("dead"))
                            .arg(GROUP)
                            .arg(consumer)
                            .arg(&id)
                            .arg(-1)
                            .arg(dead)
                            .arg(self.dead_capacity);
                        // Failing that, it stays pending and is taken over later.
                        let _ = self.invoke::<i64>(invocation).await;
                    }
                }
            }
            Ok(taken)
        })
    }

    fn renew<'a>(
        &'a self,
        consumer: &'a str,
        entries: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut invocation = self.scripts.renew.prepare_invoke();
            invocation.key(self.key("stream")).arg(GROUP).arg(consumer);
            for entry in entries {
                invocation.arg(entry);
            }
            self.invoke::<i64>(invocation).await.map(drop)
        })
    }

    fn finish<'a>(&'a self, held: &'a [Held]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if held.is_empty() {
                return Ok(());
            }
            let mut invocation = self.scripts.finish.prepare_invoke();
            invocation.key(self.key("stream")).arg(GROUP);
            for held in held {
                invocation.arg(&held.entry);
            }
            self.invoke::<i64>(invocation).await.map(drop)
        })
    }

    fn fail<'a>(
        &'a self,
        consumer: &'a str,
        held: &'a Held,
        error: &'a str,
        retry_in: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let record = held.push.to_bytes();
            let (delay, value) = match retry_in {
                Some(delay) => {
                    let mut member = format!("{}:", held.attempt).into_bytes();
                    member.extend_from_slice(&record);
                    (i64::try_from(delay.as_millis()).unwrap_or(i64::MAX), member)
                }
                None => (-1, encode_dead(held.attempt, error, &record)),
            };
            let mut invocation = self.scripts.fail.prepare_invoke();
            invocation
                .key(self.key("stream"))
                .key(self.key("delayed"))
                .key(self.key("dead"))
                .arg(GROUP)
                .arg(consumer)
                .arg(&held.entry)
                .arg(delay)
                .arg(value)
                .arg(self.dead_capacity);
            self.invoke::<i64>(invocation).await.map(drop)
        })
    }

    fn hand_back<'a>(
        &'a self,
        consumer: &'a str,
        held: &'a Held,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut invocation = self.scripts.hand_back.prepare_invoke();
            invocation
                .key(self.key("stream"))
                .arg(GROUP)
                .arg(consumer)
                .arg(&held.entry)
                .arg(held.attempt.saturating_sub(1))
                .arg(held.push.to_bytes());
            self.invoke::<i64>(invocation).await.map(drop)
        })
    }

    fn dead_letters(&self, max: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, StoreError>> {
        Box::pin(async move {
            let key = self.key("dead");
            let stop = isize::try_from(max).unwrap_or(isize::MAX).saturating_sub(1);
            if max == 0 {
                return Ok(Vec::new());
            }
            let raw: Vec<Vec<u8>> = self
                .conn
                .run(|mut c| async move {
                    redis::cmd("LRANGE")
                        .arg(key)
                        .arg(0)
                        .arg(stop)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            Ok(raw.into_iter().filter_map(decode_dead).collect())
        })
    }

    fn requeue<'a>(&'a self, letter: &'a DeadLetter) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut invocation = self.scripts.requeue.prepare_invoke();
            invocation
                .key(self.key("stream"))
                .key(self.key("dead"))
                .arg(GROUP)
                .arg(&letter.raw)
                .arg(letter.push.to_bytes());
            Ok(self.invoke::<i64>(invocation).await? == 1)
        })
    }
}
