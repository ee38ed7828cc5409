//! The queue in the process's memory.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::store::{BoundedMap, BoxFuture, StoreError};

use super::backend::{DeadLetter, Enqueued, Held, QueueBackend};
use super::push::{PushId, QueuedPush};

/// How many pushes a memory queue holds by default (queued, held and waiting for a retry).
pub const DEFAULT_MEMORY_CAPACITY: usize = 10_000;

/// How many dead letters a queue keeps by default (the oldest are dropped past it).
pub const DEFAULT_DEAD_LETTER_CAPACITY: usize = 10_000;

/// How long a queue remembers a push's id by default, so that WeChat's retries of it are not
/// queued again (its own retries come within seconds; this covers the queue's retries too).
pub const DEFAULT_DEDUPE_TTL: Duration = Duration::from_secs(2 * 60 * 60);

/// A bounded queue in this process's memory, for one instance.
///
/// **Lost with the process**: a crash, a `kill -9` or a restart loses what it holds (queued,
/// held, waiting for a retry, dead letters). Use [`RedisQueue`](crate::redis::RedisQueue)
/// when pushes must survive the instance. It has the same retries and dead-letter list.
#[derive(Debug)]
pub struct MemoryQueue {
    state: Mutex<State>,
    capacity: usize,
    dead_capacity: usize,
    dedupe_ttl: Duration,
}

#[derive(Debug)]
struct State {
    ready: VecDeque<(u32, QueuedPush)>,
    held: HashMap<String, (u32, QueuedPush)>,
    delayed: BTreeMap<(Instant, u64), (u32, QueuedPush)>,
    dead: VecDeque<DeadLetter>,
    /// The ids queued, held or waiting.
    live: HashSet<PushId>,
    /// The ids seen lately (finished ones included).
    seen: BoundedMap<()>,
    next: u64,
}

impl State {
    fn len(&self) -> usize {
        self.ready.len() + self.held.len() + self.delayed.len()
    }

    fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new(DEFAULT_MEMORY_CAPACITY)
    }
}

impl MemoryQueue {
    /// A queue holding at most `capacity` pushes; past it, [`Enqueued::Full`].
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        MemoryQueue {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                held: HashMap::new(),
                delayed: BTreeMap::new(),
                dead: VecDeque::new(),
                live: HashSet::new(),
                seen: BoundedMap::new(capacity.saturating_mul(4)),
                next: 0,
            }),
            capacity,
            dead_capacity: DEFAULT_DEAD_LETTER_CAPACITY,
            dedupe_ttl: DEFAULT_DEDUPE_TTL,
        }
    }

    /// How many dead letters it keeps (default [`DEFAULT_DEAD_LETTER_CAPACITY`]).
    #[must_use]
    pub fn dead_letter_capacity(mut self, capacity: usize) -> Self {
        self.dead_capacity = capacity.max(1);
        self
    }

    /// How long a push's id is remembered (default [`DEFAULT_DEDUPE_TTL`]).
    #[must_use]
    pub fn dedupe_ttl(mut self, ttl: Duration) -> Self {
        self.dedupe_ttl = ttl;
        self
    }

    /// How many pushes it holds: queued, held by a worker, or waiting for a retry.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn add_now(&self, push: &QueuedPush) -> Enqueued {
        let now = Instant::now();
        let mut state = self.lock();
        if state.live.contains(push.id()) || state.seen.get_mut(push.id().as_str(), now).is_some() {
            return Enqueued::Duplicate;
        }
        if state.len() >= self.capacity {
            return Enqueued::Full;
        }
        state
            .seen
            .insert(push.id().as_str(), (), now + self.dedupe_ttl, now);
        state.live.insert(push.id().clone());
        state.ready.push_back((0, push.clone()));
        Enqueued::Queued
    }

    pub(crate) fn take_now(&self, max: usize) -> Vec<Held> {
        let now = Instant::now();
        let mut state = self.lock();
        while let Some(entry) = state.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let item = entry.remove();
            state.ready.push_back(item);
        }
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some((done, push)) = state.ready.pop_front() else {
                break;
            };
            let entry = state.next().to_string();
            state.held.insert(entry.clone(), (done, push.clone()));
            taken.push(Held {
                entry,
                attempt: done.saturating_add(1),
                push,
            });
        }
        taken
    }

    /// How many pushes are being handled or could be taken now (queued, held, or waiting for
    /// a retry that is due).
    pub(crate) fn active_now(&self) -> usize {
        let now = Instant::now();
        let state = self.lock();
        state.ready.len() + state.held.len() + state.delayed.range(..(now, u64::MAX)).count()
    }

    /// What is held, queued or waiting, removed (for a shutdown that logs it as lost).
    pub(crate) fn drain_ids(&self) -> Vec<PushId> {
        let mut state = self.lock();
        let mut ids: Vec<PushId> = state.live.drain().collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        state.ready.clear();
        state.held.clear();
        state.delayed.clear();
        ids
    }

    fn fail_now(&self, held: &Held, error: &str, retry_in: Option<Duration>) {
        let mut state = self.lock();
        let Some((_, push)) = state.held.remove(&held.entry) else {
            return;
        };
        match retry_in {
            Some(delay) => {
                let seq = state.next();
                state
                    .delayed
                    .insert((Instant::now() + delay, seq), (held.attempt, push));
            }
            None => {
                state.live.remove(push.id());
                let seq = state.next();
                state.dead.push_front(DeadLetter {
                    push,
                    attempts: held.attempt,
                    error: error.to_owned(),
                    failed_at: SystemTime::now(),
                    raw: seq.to_be_bytes().to_vec(),
                });
                state.dead.truncate(self.dead_capacity);
            }
        }
    }
}

impl QueueBackend for MemoryQueue {
    fn add<'a>(&'a self, push: &'a QueuedPush) -> BoxFuture<'a, Result<Enqueued, StoreError>> {
        Box::pin(async move { Ok(self.add_now(push)) })
    }

    fn take<'a>(
        &'a self,
        _consumer: &'a str,
        max: usize,
        _takeover: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Held>, StoreError>> {
        // One process: its workers never die without it, nothing to take over.
        Box::pin(async move { Ok(self.take_now(max)) })
    }

    fn renew<'a>(&'a self, _: &'a str, _: &'a [String]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn finish<'a>(&'a self, held: &'a [Held]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut state = self.lock();
            for held in held {
                if let Some((_, push)) = state.held.remove(&held.entry) {
                    state.live.remove(push.id());
                }
            }
            Ok(())
        })
    }

    fn fail<'a>(
        &'a self,
        _consumer: &'a str,
        held: &'a Held,
        error: &'a str,
        retry_in: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.fail_now(held, error, retry_in);
            Ok(())
        })
    }

    fn hand_back<'a>(
        &'a self,
        _: &'a str,
        held: &'a Held,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut state = self.lock();
            if let Some(item) = state.held.remove(&held.entry) {
                state.ready.push_front(item);
            }
            Ok(())
        })
    }

    fn dead_letters(&self, max: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, StoreError>> {
        Box::pin(async move { Ok(self.lock().dead.iter().take(max).cloned().collect()) })
    }

    fn requeue<'a>(&'a self, letter: &'a DeadLetter) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut state = self.lock();
            let Some(at) = state.dead.iter().position(|d| d.raw == letter.raw) else {
                return Ok(false);
            };
            let Some(letter) = state.dead.remove(at) else {
                return Ok(false);
            };
            // A re-queue is deliberate: it bypasses the capacity and the id's memory.
            state.live.insert(letter.push.id().clone());
            state.ready.push_back((0, letter.push));
            Ok(true)
        })
    }
}
