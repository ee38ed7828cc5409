//! What the stores behind the layer's options and the client's token store have in common:
//! boxed futures, one error type, and the bounded, expiring map the in-memory stores are built
//! on.
//!
//! The stores are traits so that several server instances can share state (a Redis store, for
//! example). Their methods return boxed `Send` futures, which keeps them object-safe:
//! the layer and the client hold them as `Arc<dyn …>`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A boxed, `Send` future, as the store traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed error, `Send + Sync`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A store failed (for example, a lost connection to Redis).
#[derive(Debug)]
pub struct StoreError(BoxError);

impl StoreError {
    /// Wraps the store's own error.
    pub fn new(error: impl Into<BoxError>) -> Self {
        StoreError(error.into())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store error: {}", self.0)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Whether a store is failing, so that its users log an outage once, not once per request.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    down: AtomicBool,
}

impl Outage {
    /// Records a failure; true for the first one since the store last answered.
    #[cfg_attr(not(any(feature = "tokio", feature = "client")), allow(dead_code))]
    pub(crate) fn failed(&self) -> bool {
        !self.down.swap(true, Ordering::AcqRel)
    }

    /// Records an answer; true for the first one after a failure.
    #[cfg_attr(not(any(feature = "tokio", feature = "client")), allow(dead_code))]
    pub(crate) fn answered(&self) -> bool {
        // Read first: while all is well, nothing is written.
        self.down.load(Ordering::Acquire) && self.down.swap(false, Ordering::AcqRel)
    }
}

/// `now + ttl`, or a century from now when that overflows (a `Duration::MAX` expiry): never
/// a panic.
pub(crate) fn expiry(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// A map whose entries expire, holding at most `capacity` of them: when full, an insert first
/// drops expired entries and then the oldest ones. Memory stays bounded however many distinct
/// keys arrive.
#[derive(Debug)]
pub(crate) struct BoundedMap<V> {
    entries: HashMap<String, Entry<V>>,
    /// Keys in insertion order, with the generation inserted; stale pairs are skipped.
    order: VecDeque<(String, u64)>,
    capacity: usize,
    generation: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    expires: Instant,
    generation: u64,
}

impl<V> BoundedMap<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            generation: 0,
        }
    }

    /// The live value under `key` (an expired one is dropped).
    pub(crate) fn get_mut(&mut self, key: &str, now: Instant) -> Option<&mut V> {
        if self.entries.get(key).is_some_and(|e| e.expires <= now) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key).map(|e| &mut e.value)
    }

    /// Inserts or replaces `key`, evicting what the capacity requires.
    pub(crate) fn insert(&mut self, key: &str, value: V, expires: Instant, now: Instant) {
        if !self.entries.contains_key(key) {
            self.make_room(now);
        }
        self.generation += 1;
        let generation = self.generation;
        self.entries.insert(
            key.to_owned(),
            Entry {
                value,
                expires,
                generation,
            },
        );
        self.order.push_back((key.to_owned(), generation));
        // Replacements leave stale pairs behind; keep the queue in proportion to the map.
        if self.order.len() > 2 * self.capacity {
            let entries = &self.entries;
            self.order
                .retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        self.entries.remove(key).map(|e| e.value)
    }

    /// Live and expired-but-not-yet-dropped entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn make_room(&mut self, now: Instant) {
        while let Some((key, generation)) = self.order.front() {
            let live = self
                .entries
                .get(key)
                .filter(|e| e.generation == *generation);
            match live {
                // A stale pair: the key was replaced or removed since.
                None => {}
                Some(e) if e.expires <= now || self.entries.len() >= self.capacity => {
                    self.entries.remove(key);
                }
                Some(_) => break,
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_reported_once() {
        let outage = Outage::default();
        assert!(!outage.answered());
        assert!(outage.failed());
        assert!(!outage.failed());
        assert!(outage.answered());
        assert!(!outage.answered());
        assert!(outage.failed(), "a new outage");
    }

    #[test]
    fn stays_within_capacity_and_expires() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut map = BoundedMap::new(3);
        for i in 0..10 {
            map.insert(&i.to_string(), i, later, now);
            assert!(map.len() <= 3);
        }
        assert_eq!(map.get_mut("9", now), Some(&mut 9));
        assert_eq!(map.get_mut("0", now), None, "oldest evicted");
        assert_eq!(map.get_mut("9", later), None, "expired");
        // Replacing a key many times does not grow the queue without bound.
        for i in 0..1000 {
            map.insert("same", i, later, now);
        }
        assert!(map.order.len() <= 6, "{}", map.order.len());
    }
}
