//! One access-token fetch at a time in this process, its outcome shared with every caller
//! that waited for it.
//!
//! The state machine, in a slot behind a mutex that is never held across an `await`:
//!
//! * `Idle`: the first caller to find it becomes the *leader*: it puts `Fetching` in the
//!   slot and fetches in its own future;
//! * `Fetching`: other callers wait on the leader's channel;
//! * when the leader has its outcome, it puts `Idle` back after a token, `Failed` after an
//!   error, and sends the outcome, the token or the error, to every waiter;
//! * `Failed`: until the back-off has passed, callers get its error at once (no fetch);
//!   then it counts as `Idle`;
//! * if the leader's future is dropped before that (its caller was cancelled, or it
//!   panicked), its guard puts `Idle` back and drops the channel: the waiters see the channel
//!   closed and start over, one of them becoming the new leader.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::error::Error;
use super::token::AccessToken;

/// A fetch's outcome as shared with the waiters.
type Outcome = Result<AccessToken, Arc<Error>>;

/// Where waiters learn the outcome (`None` until there is one).
type Channel = watch::Receiver<Option<Outcome>>;

pub(crate) struct Flight {
    state: Mutex<State>,
    /// How long after a failed fetch callers get its error instead of fetching again.
    backoff: Duration,
}

struct State {
    slot: Slot,
    /// The number of leaders so far, to tell them apart.
    leaders: u64,
}

enum Slot {
    Idle,
    Fetching { leader: u64, outcome: Channel },
    Failed { error: Arc<Error>, until: Instant },
}

/// What a caller does.
enum Turn<'a> {
    /// Fetch, and hand the outcome to the guard.
    Lead(Leader<'a>),
    /// Wait for the leader's outcome.
    Wait(Channel),
    /// A fetch failed within the back-off: its error.
    Failed(Arc<Error>),
}

impl Flight {
    /// A flight whose failures are reported to the callers of the next `backoff` instead
    /// of being retried (capped at a day).
    pub(crate) fn new(backoff: Duration) -> Self {
        Flight {
            state: Mutex::new(State {
                slot: Slot::Idle,
                leaders: 0,
            }),
            backoff: backoff.min(Duration::from_secs(86_400)),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update of the state is a single assignment: a panic elsewhere while the
        // lock was held cannot have left it half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn turn(&self) -> Turn<'_> {
        let mut state = self.state();
        match &state.slot {
            Slot::Fetching { outcome, .. } => return Turn::Wait(outcome.clone()),
            Slot::Failed { error, until } if Instant::now() < *until => {
                return Turn::Failed(Arc::clone(error));
            }
            Slot::Failed { .. } | Slot::Idle => {}
        }
        state.leaders = state.leaders.wrapping_add(1);
        let leader = state.leaders;
        let (tx, rx) = watch::channel(None);
        state.slot = Slot::Fetching {
            leader,
            outcome: rx,
        };
        Turn::Lead(Leader {
            flight: self,
            id: leader,
            tx,
        })
    }

    /// The outcome of `fetch`, run by one of the concurrent callers of `run` and shared with
    /// the others. Each caller runs `fetch` at most once.
    pub(crate) async fn run<F, Fut>(&self, mut fetch: F) -> Result<AccessToken, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<AccessToken, Error>>,
    {
        loop {
            match self.turn() {
                Turn::Failed(error) => return Err(Error::share(&error)),
                Turn::Lead(leader) => {
                    let outcome = fetch().await.map_err(Arc::new);
                    leader.finish(outcome.clone());
                    return outcome.map_err(|e| Error::share(&e));
                }
                Turn::Wait(mut channel) => {
                    let outcome = match channel.wait_for(Option::is_some).await {
                        Ok(outcome) => outcome.clone(),
                        // The leader was dropped without an outcome: start over.
                        Err(_) => continue,
                    };
                    if let Some(outcome) = outcome {
                        return outcome.map_err(|e| Error::share(&e));
                    }
                }
            }
        }
    }
}

/// The leader's duty to leave the slot `Idle` and tell the waiters, even if dropped.
struct Leader<'a> {
    flight: &'a Flight,
    id: u64,
    tx: watch::Sender<Option<Outcome>>,
}

impl Leader<'_> {
    /// Leaves the slot (`Failed` after an error) and sends `outcome` to the waiters.
    fn finish(self, outcome: Outcome) {
        let next = match &outcome {
            Err(error) if !self.flight.backoff.is_zero() => {
                let now = Instant::now();
                Slot::Failed {
                    error: Arc::clone(error),
                    until: now.checked_add(self.flight.backoff).unwrap_or(now),
                }
            }
            _ => Slot::Idle,
        };
        self.leave(next);
        self.tx.send_replace(Some(outcome));
    }

    fn leave(&self, next: Slot) {
        let mut state = self.flight.state();
        if matches!(state.slot, Slot::Fetching { leader, .. } if leader == self.id) {
            state.slot = next;
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // Nothing failed: no back-off. (After `finish`, the slot is no longer ours.)
        self.leave(Slot::Idle);
        // Then `tx` is dropped: waiters without an outcome see the channel closed.
    }
}
