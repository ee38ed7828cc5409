//! The claim of the delivery being handled: renewed while its handler runs, then recorded or
//! released, with every store failure on the way retried or left to the lease.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::task::Context;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::store::DedupeStore;
use crate::reply::Reply;
use crate::store::{Outage, StoreError};

/// How long the recording of a reply may take before the claim is released instead: under
/// WeChat's 5 s between deliveries, so that its retry finds the push free.
const RECORD_LIMIT: Duration = Duration::from_secs(3);

/// After a failed renewal, the next try comes this soon (not a third of the lease later).
const RENEW_RETRY: Duration = Duration::from_millis(250);

/// The first pause between two tries of a failed release; doubled after each, up to
/// [`RELEASE_BACKOFF_MAX`].
const RELEASE_BACKOFF: Duration = Duration::from_millis(100);
const RELEASE_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// A fresh owner token: random (unique across instances), or, should the OS random source
/// fail, a per-process counter mixed with the clock.
pub(crate) fn new_owner() -> u64 {
    static FALLBACK: AtomicU64 = AtomicU64::new(0);
    getrandom::u64().unwrap_or_else(|_| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // Truncated on purpose: the low bits of the clock vary most.
        #[allow(clippy::cast_possible_truncation)]
        let nanos = nanos as u64;
        nanos
            ^ FALLBACK
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
    })
}

/// Logs a store failure: a warning for the first of an outage, then at debug until the store
/// answers again.
pub(crate) fn store_failed(outage: &Outage, key: &str, error: &StoreError, what: &str) {
    let first = outage.failed();
    #[cfg(feature = "tracing")]
    if first {
        tracing::warn!(%key, %error, "dedupe store failed; {what} (further failures logged at debug until it answers again)");
    } else {
        tracing::debug!(%key, %error, "dedupe store failed; {what}");
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (first, key, error, what);
}

/// Logs a failure of a background try (a renewal, a release tried again): at debug only, and
/// not counted as an outage, so that tries still running when the store answers again do
/// not log a second warning for one outage.
fn retry_failed(key: &str, error: &StoreError, what: &str) {
    #[cfg(feature = "tracing")]
    tracing::debug!(%key, %error, "dedupe store failed; {what}");
    #[cfg(not(feature = "tracing"))]
    let _ = (key, error, what);
}

/// The claim of the delivery being handled.
///
/// Shared between the dedupe future and the request it passes on: when the handler runs in
/// a task of its own (the [ack deadline](crate::deadline)), the deadline service
/// takes the handle out of the request, so that a delivery dropped before the deadline does
/// not release a push whose handler is still running (a retry would run it a second time).
///
/// While any handle lives, a task renews the claim every third of the lease; when the last
/// handle is dropped uncompleted, the claim is released. If the process dies, or its runtime
/// stops, nothing renews it: it expires within one lease, and the next delivery, here or at
/// another instance, takes the push over.
#[derive(Clone)]
pub(crate) struct HeldClaim(Arc<ClaimInner>);

struct ClaimInner {
    store: Arc<dyn DedupeStore>,
    key: String,
    owner: u64,
    ttl: Duration,
    lease: Duration,
    outage: Arc<Outage>,
    /// [`OPEN`], [`COMPLETING`] or [`SETTLED`].
    state: AtomicU8,
    /// Answered `success` at the ack deadline: renewed as [`Claim::Answered`](super::Claim).
    answered: AtomicBool,
}

/// Claimed, nothing recorded yet.
const OPEN: u8 = 0;
/// The reply is being recorded.
const COMPLETING: u8 = 1;
/// Recorded or released: nothing more to do.
const SETTLED: u8 = 2;
/// Answered `success` at the ack deadline, its handler still running: only the handler's task
/// records or releases it (the dedupe future's record of that `success` is skipped).
const DEFERRED: u8 = 3;

impl HeldClaim {
    /// Holds the claim of `key` by `owner` (acquired, or perhaps acquired: the store failed to
    /// answer), and starts renewing it.
    pub(crate) fn new(
        store: Arc<dyn DedupeStore>,
        key: String,
        owner: u64,
        ttl: Duration,
        lease: Duration,
        outage: Arc<Outage>,
    ) -> Self {
        let claim = Arc::new(ClaimInner {
            store,
            key,
            owner,
            ttl,
            lease,
            outage,
            state: AtomicU8::new(OPEN),
            answered: AtomicBool::new(false),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(renew_while_held(Arc::downgrade(&claim), lease / 3));
        }
        HeldClaim(claim)
    }

    /// Records `reply` as the push's answer, unless already settled.
    ///
    /// If the store fails, or this future is dropped before the store answered, the claim is
    /// released instead, so that a waiting duplicate or the next retry handles the push.
    pub(crate) async fn complete(&self, reply: &Reply) {
        self.complete_from(OPEN, reply).await;
    }

    async fn complete_from(&self, from: u8, reply: &Reply) {
        let claim = &*self.0;
        if claim
            .state
            .compare_exchange(from, COMPLETING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let unless_recorded = ReleaseUnlessRecorded(claim);
        match claim
            .store
            .complete(&claim.key, claim.owner, reply, claim.ttl)
            .await
        {
            Ok(()) => claim.state.store(SETTLED, Ordering::Release),
            Err(e) => store_failed(
                &claim.outage,
                &claim.key,
                &e,
                "its reply is not recorded; released the push for its retry",
            ),
        }
        drop(unless_recorded);
    }

    /// Records `reply` without holding up the answer: at once when the store answers at once
    /// (the in-memory store), otherwise in a task of its own, so that a remote store costs the
    /// answer one round trip (the claim), not two.
    ///
    /// The answer does not depend on the recording: if it fails, the claim is released as
    /// with [`complete`](Self::complete). A duplicate arriving before the record lands finds the
    /// push in flight and waits for it.
    ///
    /// A store that has not recorded the reply within [`RECORD_LIMIT`] is given up on (the
    /// claim released), so that a hung store cannot keep the push in flight.
    pub(crate) fn record(self, reply: Reply) {
        run_or_spawn(async move {
            let _ = tokio::time::timeout(RECORD_LIMIT, self.complete(&reply)).await;
        });
    }

    /// Hands the claim over to the handler's task: the push is answered `success` at the ack
    /// deadline (or its delivery was dropped) while the handler still runs. From now on the
    /// dedupe future does not record that `success`; [`finish`](Self::finish) or a release
    /// settles the claim. Call [`answered`](Self::answered) next.
    pub(crate) fn defer(&self) {
        let claim = &*self.0;
        claim.answered.store(true, Ordering::Release);
        let _ = claim
            .state
            .compare_exchange(OPEN, DEFERRED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Records `reply` for a [deferred](Self::defer) claim, as [`record`](Self::record) does.
    pub(crate) fn finish(self, reply: Reply) {
        run_or_spawn(async move {
            let recording = self.complete_from(DEFERRED, &reply);
            let _ = tokio::time::timeout(RECORD_LIMIT, recording).await;
        });
    }

    /// Tells the store that the [deferred](Self::defer) claim was answered: a duplicate then
    /// answers `success` at once. Renewed as such from now on.
    pub(crate) async fn answered(&self) {
        let claim = &*self.0;
        if claim.state.load(Ordering::Acquire) != DEFERRED {
            return;
        }
        match claim
            .store
            .renew(&claim.key, claim.owner, claim.lease, true)
            .await
        {
            Ok(_) => {}
            // The renewal task tries again shortly, marked answered.
            Err(e) => retry_failed(&claim.key, &e, "marking it answered later"),
        }
    }

    /// Frees the push for the next delivery, unless already settled.
    pub(crate) fn release(&self) {
        self.0.release();
    }
}

impl ClaimInner {
    fn release(&self) {
        if self.state.swap(SETTLED, Ordering::AcqRel) != SETTLED {
            release_in_background(
                self.store.clone(),
                self.key.clone(),
                self.owner,
                self.lease,
                self.outage.clone(),
            );
        }
    }
}

impl Drop for ClaimInner {
    fn drop(&mut self) {
        self.release();
    }
}

/// Releases a claim whose reply was not recorded: the store failed, or the recording future
/// was dropped mid-await.
struct ReleaseUnlessRecorded<'a>(&'a ClaimInner);

impl Drop for ReleaseUnlessRecorded<'_> {
    fn drop(&mut self) {
        if self.0.state.load(Ordering::Acquire) == COMPLETING {
            self.0.release();
        }
    }
}

/// Renews the claim every `every` while a handle to it lives and it is not settled; stops
/// when the store says it is no longer the owner's.
async fn renew_while_held(claim: Weak<ClaimInner>, every: Duration) {
    let mut next = every;
    loop {
        tokio::time::sleep(next).await;
        let Some(claim) = claim.upgrade() else {
            return;
        };
        if claim.state.load(Ordering::Acquire) == SETTLED {
            return;
        }
        let answered = claim.answered.load(Ordering::Acquire);
        let renewed = claim
            .store
            .renew(&claim.key, claim.owner, claim.lease, answered)
            .await;
        match renewed {
            Ok(true) => next = every,
            Ok(false) => {
                // Recorded meanwhile, or lost: expired (the store was unreachable for a whole
                // lease), taken over by another delivery, or never landed (a claim whose
                // answer was lost).
                #[cfg(feature = "tracing")]
                if claim.state.load(Ordering::Acquire) != SETTLED {
                    tracing::info!(key = %claim.key, "dedupe claim no longer held (expired or taken over); not renewed");
                }
                return;
            }
            Err(e) => {
                retry_failed(&claim.key, &e, "renewing the claim shortly");
                next = RENEW_RETRY;
            }
        }
    }
}

/// Releases the owner's claim, trying again with back-off while the store fails (paused after
/// a slow command, or timing out), until the lease would have expired it anyway.
fn release_in_background(
    store: Arc<dyn DedupeStore>,
    key: String,
    owner: u64,
    lease: Duration,
    outage: Arc<Outage>,
) {
    run_or_spawn(async move {
        let started = Instant::now();
        let mut pause = RELEASE_BACKOFF;
        let mut first = true;
        loop {
            let Err(e) = store.release(&key, owner).await else {
                return;
            };
            let what = if started.elapsed() + pause >= lease {
                "release given up; the claim's lease expires it"
            } else {
                "release tried again shortly"
            };
            // The first failure counts towards the outage's warning; later tries log at debug.
            if std::mem::take(&mut first) {
                store_failed(&outage, &key, &e, what);
            } else {
                retry_failed(&key, &e, what);
            }
            if started.elapsed() + pause >= lease {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RELEASE_BACKOFF_MAX);
        }
    });
}

/// Runs `work` at once if it finishes at once (the in-memory store), else spawns it on the
/// current runtime. Without a runtime nothing runs; on one shutting down, only what finishes
/// at once: the lease is the backstop.
fn run_or_spawn(work: impl Future<Output = ()> + Send + 'static) {
    // A remote store's commands need the runtime's timer and I/O.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut work = Box::pin(work);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    if work.as_mut().poll(&mut cx).is_pending() {
        // Polled again, with a real waker, by the task (it registers that one).
        runtime.spawn(work);
    }
}
