//! What a queue backend does, and what it hands back.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::store::{BoxFuture, StoreError};

use super::push::QueuedPush;

/// What became of a push handed to the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// The queue has it: answer WeChat `success`.
    Queued,
    /// The same push (by its [`PushId`](super::PushId)) is already queued or held: answer
    /// `success`, it is handled once.
    Duplicate,
    /// The queue is full: answer 503, and WeChat delivers the push again.
    Full,
}

/// A push a worker holds: taken from the backend, not yet finished, failed or handed back.
#[derive(Debug)]
pub struct Held {
    /// The backend's id of this holding (a stream entry id, for Redis).
    pub entry: String,
    /// This attempt's number, 1 for the first.
    pub attempt: u32,
    /// The push.
    pub push: QueuedPush,
}

/// A push that failed every attempt, kept in the dead-letter list.
#[derive(Clone)]
pub struct DeadLetter {
    pub(crate) push: QueuedPush,
    pub(crate) attempts: u32,
    pub(crate) error: String,
    pub(crate) failed_at: SystemTime,
    /// How the backend stores it (Redis: the list element), so that a re-queue removes
    /// exactly this one.
    pub(crate) raw: Vec<u8>,
}

impl fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("push", &self.push)
            .field("attempts", &self.attempts)
            .field("error", &self.error)
            .field("failed_at", &self.failed_at)
            .finish_non_exhaustive()
    }
}

impl DeadLetter {
    /// A dead letter, as a backend lists it: `handle` is the backend's own name for this one
    /// (what [`QueueBackend::requeue`] finds it by), given back by [`handle`](Self::handle).
    pub fn new(
        push: QueuedPush,
        attempts: u32,
        error: impl Into<String>,
        failed_at: SystemTime,
        handle: Vec<u8>,
    ) -> Self {
        DeadLetter {
            push,
            attempts,
            error: error.into(),
            failed_at,
            raw: handle,
        }
    }

    /// The backend's own name for this letter.
    pub fn handle(&self) -> &[u8] {
        &self.raw
    }

    /// The push.
    pub fn push(&self) -> &QueuedPush {
        &self.push
    }

    /// How many attempts it had.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last attempt's error.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// When the last attempt failed.
    pub fn failed_at(&self) -> SystemTime {
        self.failed_at
    }
}

/// Where queued pushes live: [`MemoryQueue`](super::MemoryQueue), or
/// [`RedisQueue`](crate::redis::RedisQueue) (feature `redis`).
///
/// `consumer` names the instance taking work; a backend shared by several instances lets one
/// take over what another's dead process held.
pub trait QueueBackend: Send + Sync + fmt::Debug + 'static {
    /// Queues `push` unless one with its id is already queued or held.
    fn add<'a>(&'a self, push: &'a QueuedPush) -> BoxFuture<'a, Result<Enqueued, StoreError>>;

    /// Takes up to `max` pushes for `consumer`: retries that are due, and (when `takeover`
    /// is `Some`) what another consumer has held without renewing for that long, then new
    /// ones.
    fn take<'a>(
        &'a self,
        consumer: &'a str,
        max: usize,
        takeover: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Held>, StoreError>>;

    /// Tells that `consumer` still works on `entries`, so that they are not taken over.
    fn renew<'a>(
        &'a self,
        consumer: &'a str,
        entries: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// These pushes are handled: forget them.
    fn finish<'a>(&'a self, held: &'a [Held]) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The attempt failed with `error`: take it again in `retry_in`, or (`None`) put it in
    /// the dead-letter list. Nothing is done if `consumer` no longer holds it (it was taken
    /// over).
    fn fail<'a>(
        &'a self,
        consumer: &'a str,
        held: &'a Held,
        error: &'a str,
        retry_in: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Makes a push `consumer` holds available to every consumer at once, its attempt not
    /// counted.
    fn hand_back<'a>(
        &'a self,
        consumer: &'a str,
        held: &'a Held,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Up to `max` dead letters, the latest first.
    fn dead_letters(&self, max: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, StoreError>>;

    /// Moves `letter` from the dead-letter list back to the queue, for attempts afresh; false
    /// if it is no longer there (re-queued already).
    fn requeue<'a>(&'a self, letter: &'a DeadLetter) -> BoxFuture<'a, Result<bool, StoreError>>;
}
