//! The dedupe service around the handler: claim the push, wait for a duplicate's first
//! delivery, record the reply, and release the claim on every path where the push was not
//! handled.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use tower::Service;

use crate::retry::Outcome;
use crate::store::Outage;

use crate::message::Message;
use crate::reply::Reply;

use super::key::{id_key, DedupeKey};
use super::store::{Claim, DedupeStore};
use super::{DEFAULT_CLAIM_LEASE, DEFAULT_DEDUPE_TTL};

/// How often a duplicate waiting on an in-flight push checks the store again, at most.
const RECHECK: Duration = Duration::from_millis(250);

/// How long the recording of a reply may take before the claim is released instead: under
/// WeChat's 5 s between deliveries, so that its retry finds the push free.
const RECORD_LIMIT: Duration = Duration::from_secs(3);

/// Dedupe's settings: the store, how long a handled push is remembered, how long a claim
/// holds. Given to [`WechatLayer::dedupe_with`](crate::WechatLayer::dedupe_with);
/// [`WechatLayer::dedupe`](crate::WechatLayer::dedupe) uses the defaults.
#[derive(Clone)]
pub struct DedupeConfig {
    store: Arc<dyn DedupeStore>,
    ttl: Duration,
    lease: Duration,
    /// Shared by every clone: one warning per outage of the store, not one per push.
    outage: Arc<Outage>,
}

impl DedupeConfig {
    /// Dedupe through `store`, with the default expiry and lease. A store shared with other
    /// code (to look at its size, say) is passed as an `Arc`, which is a store too.
    pub fn new(store: impl DedupeStore) -> Self {
        Self {
            store: Arc::new(store),
            ttl: DEFAULT_DEDUPE_TTL,
            lease: DEFAULT_CLAIM_LEASE,
            outage: Arc::default(),
        }
    }

    /// How long a handled push is remembered (default five minutes).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a claim holds while its handler runs (default one minute).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
}

impl std::fmt::Debug for DedupeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupeConfig")
            .field("ttl", &self.ttl)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// The dedupe service around a handler whose answers become `A`s. See the
/// [module docs](crate::dedupe).
#[derive(Debug)]
pub(crate) struct Dedupe<S, A> {
    inner: S,
    layer: DedupeConfig,
    outcome: PhantomData<fn() -> A>,
}

impl<S, A> Dedupe<S, A> {
    /// Dedupes the pushes going to `inner` (polled ready) as `config` says.
    pub(crate) fn new(inner: S, config: DedupeConfig) -> Self {
        Self {
            inner,
            layer: config,
            outcome: PhantomData,
        }
    }
}

impl<S: Clone, A> Clone for Dedupe<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
            outcome: PhantomData,
        }
    }
}

impl<S, A> Service<Request<Message>> for Dedupe<S, A>
where
    S: Service<Request<Message>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Into<A>,
    S::Error: Send + 'static,
    A: Outcome,
{
    type Response = A;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<A, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Message>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let DedupeConfig {
            store,
            ttl,
            lease,
            outage,
        } = self.layer.clone();
        // The layer keys the push by its document; outside it, only a `MsgId` is a safe key.
        let key = match req.extensions_mut().remove::<DedupeKey>() {
            Some(DedupeKey(key)) => Some(key),
            None => id_key(req.body()),
        };
        Box::pin(async move {
            let Some(key) = key else {
                return inner.call(req).await.map(Into::into);
            };
            let owner = loop {
                let claim = store.claim(&key, lease).await;
                if claim.is_ok() && outage.answered() {
                    #[cfg(feature = "tracing")]
                    tracing::info!("dedupe store answering again");
                }
                match claim {
                    Ok(Claim::Acquired(owner)) => break Some(owner),
                    Ok(Claim::Done(reply)) => return Ok(A::recorded(reply)),
                    Ok(Claim::InFlight) => {
                        let _ = tokio::time::timeout(RECHECK, store.wait(&key)).await;
                    }
                    Err(e) => {
                        store_failed(&outage, &key, &e, "handling the push anyway");
                        break None;
                    }
                }
            };
            let Some(owner) = owner else {
                return inner.call(req).await.map(Into::into);
            };
            // Released at once if the handler fails; if it panics or this future is dropped
            // first, when the last holder lets go. The request carries a second handle, which
            // the ack deadline moves into the handler's task (see `HeldClaim`).
            let claim = HeldClaim(Arc::new(ClaimInner {
                store,
                key,
                owner,
                ttl,
                outage,
                state: AtomicU8::new(OPEN),
            }));
            req.extensions_mut().insert(claim.clone());
            let answer: A = match inner.call(req).await {
                Ok(answer) => answer.into(),
                Err(e) => {
                    claim.release();
                    return Err(e);
                }
            };
            match answer.record() {
                Some(reply) => claim.record(reply.into_owned()),
                // Answered, but not as a handled push (a pass-through error status, say).
                None => claim.release(),
            }
            Ok(answer)
        })
    }
}

/// Logs a store failure: a warning for the first of an outage, then at debug until the store
/// answers again.
fn store_failed(outage: &Outage, key: &str, error: &crate::store::StoreError, what: &str) {
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

/// The claim of the delivery being handled.
///
/// Shared between the dedupe future and the request it passes on: when the handler runs in
/// a task of its own (the [ack deadline](crate::deadline)), the deadline service
/// takes the handle out of the request, so that a delivery dropped before the deadline does
/// not release a push whose handler is still running (a retry would run it a second time).
/// Released when the last handle is dropped uncompleted.
#[derive(Clone)]
pub(crate) struct HeldClaim(Arc<ClaimInner>);

struct ClaimInner {
    store: Arc<dyn DedupeStore>,
    key: String,
    owner: u64,
    ttl: Duration,
    outage: Arc<Outage>,
    /// [`OPEN`], [`COMPLETING`] or [`SETTLED`].
    state: AtomicU8,
}

/// Claimed, nothing recorded yet.
const OPEN: u8 = 0;
/// The reply is being recorded.
const COMPLETING: u8 = 1;
/// Recorded or released: nothing more to do.
const SETTLED: u8 = 2;

impl HeldClaim {
    /// Records `reply` as the push's answer, unless already settled.
    ///
    /// If the store fails, or this future is dropped before the store answered, the claim is
    /// released instead, so that a waiting duplicate or the next retry handles the push.
    pub(crate) async fn complete(&self, reply: &Reply) {
        let claim = &*self.0;
        if claim
            .state
            .compare_exchange(OPEN, COMPLETING, Ordering::AcqRel, Ordering::Acquire)
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
    /// claim released), so that a hung store cannot keep the push in flight until its lease
    /// runs out.
    pub(crate) fn record(self, reply: Reply) {
        let mut recording = Box::pin(async move {
            let _ = tokio::time::timeout(RECORD_LIMIT, self.complete(&reply)).await;
        });
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if recording.as_mut().poll(&mut cx).is_pending() {
            // Polled again, with a real waker, by the task (it registers that one).
            tokio::spawn(recording);
        }
    }

    /// Frees the push for the next delivery, unless already settled.
    pub(crate) fn release(&self) {
        self.0.release();
    }

    /// Frees the push for the next delivery even if a reply was recorded: its handler was
    /// cancelled (the runtime shut down) after the push was answered at the ack deadline.
    pub(crate) fn revoke(&self) {
        let claim = &*self.0;
        claim.state.store(SETTLED, Ordering::Release);
        claim.store.release(&claim.key, claim.owner);
    }
}

impl ClaimInner {
    fn release(&self) {
        if self.state.swap(SETTLED, Ordering::AcqRel) != SETTLED {
            self.store.release(&self.key, self.owner);
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
