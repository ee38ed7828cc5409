//! The connection the three Redis stores share: created on first use, reconnected by redis-rs'
//! `ConnectionManager`, every command bounded by the command timeout, and a short pause after
//! a connection failure, or a timeout with nothing answered for as long, so that a hung server
//! does not cost every request a full timeout (while one slow answer under load pauses
//! nothing).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, Script};

use crate::store::StoreError;

/// After a connection failure or a timeout, commands fail at once for this long; the first one
/// after it tries the server again.
const PAUSE: Duration = Duration::from_secs(1);

/// Set-if-absent with an expiry in milliseconds; otherwise the value already there.
const SET_IF_ABSENT: &str = r"
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";

/// The longest expiry sent to Redis: ten years (Redis refuses one that overflows its clock,
/// so a `Duration::MAX` would make every command fail).
const MAX_EXPIRY_MS: u64 = 10 * 365 * 86_400 * 1000;

/// `d` in whole milliseconds, at least 1 (Redis refuses a zero expiry) and at most ten years.
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_EXPIRY_MS)
}

pub(super) struct Connection {
    client: redis::Client,
    manager: OnceLock<ConnectionManager>,
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    /// Until when commands fail without trying (after a connection failure).
    paused_until: Mutex<Option<Instant>>,
    /// When a command last got its answer, in nanoseconds since `started`.
    answered: AtomicU64,
    started: Instant,
    set_if_absent: Script,
}

impl Connection {
    pub(super) fn new(client: redis::Client, prefix: String, timeout: Duration) -> Self {
        Connection {
            client,
            manager: OnceLock::new(),
            prefix,
            timeout,
            paused_until: Mutex::new(None),
            answered: AtomicU64::new(0),
            started: Instant::now(),
            set_if_absent: Script::new(SET_IF_ABSENT),
        }
    }

    /// The manager, created on first use (it needs the Tokio runtime); it connects lazily, so
    /// an unreachable server is not an error here.
    fn manager(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let created = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(StoreError::new)?;
        // Two first callers may race: one manager wins, the other is dropped unused.
        Ok(self.manager.get_or_init(|| created).clone())
    }

    fn paused(&self) -> bool {
        let paused = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        paused.is_some_and(|until| Instant::now() < until)
    }

    fn pause(&self) {
        let now = Instant::now();
        *self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = now.checked_add(PAUSE);
    }

    /// Runs `command` on the shared connection within the command timeout.
    /// Stores `value` under `{prefix}{space}:{key}` for `ttl` unless the key exists, and returns
    /// what was there (`None`: the value is now stored). One atomic script.
    pub(super) async fn set_if_absent(
        &self,
        space: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(space, key);
        self.run(|mut c| async move {
            self.set_if_absent
                .key(key)
                .arg(value)
                .arg(millis(ttl))
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    /// `GET {prefix}{space}:{key}`, read back with `parse`; a value `parse` refuses (one this
    /// crate did not write) is an error naming the `space`, not a guess.
    pub(super) async fn get_parsed<T>(
        &self,
        space: &'static str,
        key: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        let key = self.key(space, key);
        let stored: Option<String> = self.run(|mut c| async move { c.get(key).await }).await?;
        stored
            .map(|stored| {
                parse(&stored).ok_or_else(|| {
                    StoreError::new(format!("redis: a {space} key holds a foreign value"))
                })
            })
            .transpose()
    }

    pub(super) async fn run<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        if self.paused() {
            return Err(StoreError::new(Unavailable::Paused));
        }
        let manager = self.manager()?;
        match tokio::time::timeout(self.timeout, command(manager)).await {
            Ok(Ok(value)) => {
                self.answered.store(self.since_start(), Ordering::Relaxed);
                Ok(value)
            }
            Ok(Err(e)) => {
                if e.is_timeout() {
                    self.timed_out();
                } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
                {
                    self.pause();
                }
                Err(StoreError::new(e))
            }
            Err(_) => {
                self.timed_out();
                Err(StoreError::new(Unavailable::Timeout(self.timeout)))
            }
        }
    }

    /// A slow answer under load is not an outage: pause only if no command at all was
    /// answered during the whole timeout (a server that hangs).
    fn timed_out(&self) {
        let silent = self
            .since_start()
            .saturating_sub(self.answered.load(Ordering::Relaxed));
        if u128::from(silent) >= self.timeout.as_nanos() {
            self.pause();
        }
    }

    fn since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(super) fn key(&self, space: &str, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + space.len() + key.len() + 1);
        full.push_str(&self.prefix);
        full.push_str(space);
        full.push(':');
        full.push_str(key);
        full
    }
}

/// Why a command was not answered.
#[derive(Debug)]
enum Unavailable {
    Timeout(Duration),
    Paused,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::Timeout(t) => write!(f, "redis: no answer within {t:?}"),
            Unavailable::Paused => f.write_str("redis: unreachable a moment ago; retrying shortly"),
        }
    }
}

impl std::error::Error for Unavailable {}
