//! The dedupe service around the handler: claim the push, wait for a duplicate's first
//! delivery, record the reply, and release the claim on every path where the push was not
//! handled.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Request;
use tower::Service;

use crate::retry::Outcome;
use crate::store::Outage;

use crate::message::Message;
use crate::reply::Reply;

use super::claim::{new_owner, store_failed, HeldClaim};
use super::key::{id_key, DedupeKey};
use super::store::{Claim, DedupeStore};
use super::{DEFAULT_CLAIM_LEASE, DEFAULT_DEDUPE_TTL, DUPLICATE_WAIT};

/// How often a duplicate waiting on an in-flight push checks the store again, at most.
const RECHECK: Duration = Duration::from_millis(250);

/// The shortest lease: renewed every third of it, a shorter one would cost a store round trip
/// every few milliseconds.
const MIN_LEASE: Duration = Duration::from_millis(500);

/// The longest lease: under [`DUPLICATE_WAIT`], so that a dead owner's claim always expires
/// while a duplicate waits, and a claim still held at the end of the wait was renewed by a
/// live owner.
const MAX_LEASE: Duration = DEFAULT_CLAIM_LEASE;

/// The longest TTL: thirty days (a `Duration::MAX` one must not overflow the clock or make
/// every Redis command fail).
const MAX_TTL: Duration = Duration::from_secs(30 * 86_400);

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

    /// How long a handled push is remembered (default five minutes, at most thirty days: a
    /// longer one is taken as thirty days).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.min(MAX_TTL);
        self
    }

    /// How long a claim outlives its owner's last renewal (default and at most
    /// [`DEFAULT_CLAIM_LEASE`], three seconds; at least half a second). The owner renews it
    /// every third of the lease while its handler runs, so it expires only when the owner is
    /// gone: a dead instance's claim is free again before WeChat's next delivery. Values
    /// outside the bounds are taken as the nearest bound.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.clamp(MIN_LEASE, MAX_LEASE);
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
            // Picked before claiming: a claim whose answer is lost (a timeout) may still have
            // landed under it, and is then renewed, completed or released all the same.
            let owner = new_owner();
            let started = Instant::now();
            loop {
                let claim = store.claim(&key, owner, lease).await;
                if claim.is_ok() && outage.answered() {
                    #[cfg(feature = "tracing")]
                    tracing::info!("dedupe store answering again");
                }
                match claim {
                    Ok(Claim::Acquired) => break,
                    Ok(Claim::Done(reply)) => return Ok(A::recorded(reply)),
                    Ok(Claim::Answered) => return Ok(A::recorded(Reply::Success)),
                    Ok(Claim::InFlight) => {
                        let left = DUPLICATE_WAIT.saturating_sub(started.elapsed());
                        if left.is_zero() {
                            // Still held after a whole lease: renewed by a live owner, which
                            // is handling the push. Answered as the ack deadline would.
                            #[cfg(feature = "tracing")]
                            tracing::info!(%key, "push still being handled by another delivery; answered success");
                            return Ok(A::recorded(Reply::Success));
                        }
                        let _ = tokio::time::timeout(RECHECK.min(left), store.wait(&key)).await;
                    }
                    Err(e) => {
                        store_failed(&outage, &key, &e, "handling the push anyway");
                        break;
                    }
                }
            }
            // Renewed while held; released at once if the handler fails; if it panics or this
            // future is dropped first, when the last holder lets go. The request carries a
            // second handle, which the ack deadline moves into the handler's task (see
            // `HeldClaim`).
            let claim = HeldClaim::new(store, key, owner, ttl, lease, outage);
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
