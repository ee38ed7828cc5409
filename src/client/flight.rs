//! One access-token fetch at a time in this process, at most one a second after a failure,
//! and callers that wait through failed fetches until a token comes or their bound passes.
//!
//! The state machine, in a slot behind a mutex that is never held across an `await`:
//!
//! * `Idle`: the first caller to find it becomes the *leader*: it puts `Fetching` in the
//!   slot and fetches in its own future; but within the pause after a failed (or abandoned)
//!   fetch, callers sleep until the pause ends and look again;
//! * `Fetching`: other callers wait on the leader's channel;
//! * when the leader has its outcome, it puts `Idle` back (with a pause after an error) and
//!   sends the outcome to every waiter. A token ends every caller's wait; an error that
//!   waiting cannot cure (a wrong AppID or secret, an unbuildable request) ends it too; any
//!   other error sends every caller round again, to wait for the next fetch;
//! * if the leader's future is dropped before that (its caller was cancelled, its bound
//!   passed, or it panicked), its guard puts `Idle` back with a pause and drops the channel:
//!   the waiters see the channel closed and start over, one of them becoming the new leader;
//! * a caller whose bound passes stops waiting and gets the last fetch's error (or, if no
//!   fetch has failed, a timeout). A waiter dropped mid-wait holds nothing but a receiver.

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::error::{ApiErrorKind, Error};
use super::token::AccessToken;

/// A fetch's outcome as shared with the waiters.
type Outcome = Result<AccessToken, Arc<Error>>;

/// Where waiters learn the outcome (`None` until there is one).
type Channel = watch::Receiver<Option<Outcome>>;

pub(crate) struct Flight {
    state: Mutex<State>,
    /// The least time between the start of a failed (or abandoned) fetch and the next one.
    pause: Duration,
}

struct State {
    slot: Slot,
    /// The number of leaders so far, to tell them apart.
    leaders: u64,
    /// No fetch starts before this instant (set after a failed or abandoned fetch).
    pause_until: Option<Instant>,
    /// The error of the last fetch, until one succeeds.
    last_error: Option<Arc<Error>>,
}

enum Slot {
    Idle,
    Fetching { leader: u64, outcome: Channel },
}

/// What a caller does.
enum Turn<'a> {
    /// Fetch, and hand the outcome to the guard.
    Lead(Leader<'a>),
    /// Wait for the leader's outcome.
    Wait(Channel),
    /// A fetch failed a moment ago: look again at this instant.
    Pause(Instant),
}

impl Flight {
    /// A flight that starts a fetch at most once per `pause` while fetches fail (capped at a
    /// day).
    pub(crate) fn new(pause: Duration) -> Self {
        Flight {
            state: Mutex::new(State {
                slot: Slot::Idle,
                leaders: 0,
                pause_until: None,
                last_error: None,
            }),
            pause: pause.min(Duration::from_secs(86_400)),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update of the state is a single assignment per field: a panic elsewhere
        // while the lock was held cannot have left it half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn turn(&self) -> Turn<'_> {
        let mut state = self.state();
        if let Slot::Fetching { outcome, .. } = &state.slot {
            return Turn::Wait(outcome.clone());
        }
        let now = Instant::now();
        if let Some(until) = state.pause_until.filter(|until| now < *until) {
            return Turn::Pause(until);
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
            started: now,
            tx,
        })
    }

    /// A token from `fetch`, run by one of the concurrent callers of `run` and shared with
    /// the others, fetched again (at most once per pause) after transient failures until
    /// `deadline`.
    pub(crate) async fn run<F, Fut>(
        &self,
        deadline: Instant,
        mut fetch: F,
    ) -> Result<AccessToken, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<AccessToken, Error>>,
    {
        let attempts = async {
            loop {
                match self.turn() {
                    Turn::Pause(until) => tokio::time::sleep_until(until).await,
                    Turn::Lead(leader) => {
                        let outcome = fetch().await.map_err(Arc::new);
                        leader.finish(outcome.clone());
                        match outcome {
                            Ok(token) => return Ok(token),
                            Err(e) if !waiting_helps(&e) => return Err(Error::share(&e)),
                            Err(_) => {}
                        }
                    }
                    Turn::Wait(mut channel) => {
                        let outcome = match channel.wait_for(Option::is_some).await {
                            Ok(outcome) => outcome.clone(),
                            // The leader was dropped without an outcome: start over.
                            Err(_) => continue,
                        };
                        match outcome {
                            Some(Ok(token)) => return Ok(token),
                            Some(Err(e)) if !waiting_helps(&e) => return Err(Error::share(&e)),
                            _ => {}
                        }
                    }
                }
            }
        };
        match tokio::time::timeout_at(deadline, attempts).await {
            Ok(outcome) => outcome,
            Err(_) => Err(self.gave_up()),
        }
    }

    /// What a caller whose bound passed gets: the last fetch's error, or a timeout.
    fn gave_up(&self) -> Error {
        match &self.state().last_error {
            Some(e) => Error::share(e),
            None => Error::Transport(Box::new(io::Error::new(
                io::ErrorKind::TimedOut,
                "no access token within the client's retry bound",
            ))),
        }
    }
}

/// Whether another fetch may succeed where this one failed: not when the AppID or secret is
/// wrong, nor when the request could not even be built.
fn waiting_helps(error: &Error) -> bool {
    match error {
        Error::Api(e) => !matches!(
            e.kind(),
            ApiErrorKind::InvalidAppId | ApiErrorKind::InvalidAppSecret
        ),
        Error::InvalidInput(_) => false,
        Error::Transport(_) | Error::BadResponse { .. } | Error::Store(_) => true,
    }
}

/// The leader's duty to leave the slot `Idle` and tell the waiters, even if dropped.
struct Leader<'a> {
    flight: &'a Flight,
    id: u64,
    started: Instant,
    tx: watch::Sender<Option<Outcome>>,
}

impl Leader<'_> {
    /// Leaves the slot (with a pause after an error) and sends `outcome` to the waiters.
    fn finish(self, outcome: Outcome) {
        self.leave(outcome.as_ref().err());
        self.tx.send_replace(Some(outcome));
    }

    /// Puts `Idle` back if the slot is still this leader's; after a failure (`Some`), no
    /// fetch starts for the pause.
    fn leave(&self, error: Option<&Arc<Error>>) {
        let mut state = self.flight.state();
        if !matches!(state.slot, Slot::Fetching { leader, .. } if leader == self.id) {
            return;
        }
        state.slot = Slot::Idle;
        state.pause_until = error.and_then(|_| self.started.checked_add(self.flight.pause));
        state.last_error = error.cloned();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // After `finish`, the slot is no longer ours and this does nothing. Otherwise the
        // fetch was abandoned: pause as after a failure, so that callers cancelled one after
        // another cannot start a fetch each.
        let mut state = self.flight.state();
        if matches!(state.slot, Slot::Fetching { leader, .. } if leader == self.id) {
            state.slot = Slot::Idle;
            state.pause_until = self.started.checked_add(self.flight.pause);
        }
        // Then `tx` is dropped: waiters without an outcome see the channel closed.
    }
}
