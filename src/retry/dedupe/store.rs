//! Where dedupe records claims and replies: the [`DedupeStore`] contract and the in-memory store.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::reply::Reply;
use crate::store::{expiry, BoundedMap, BoxFuture, StoreError};

/// What [`DedupeStore::claim`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key was free and is now claimed by the caller's owner token: handle the push.
    Acquired,
    /// Another delivery holds the claim and is being handled.
    InFlight,
    /// Another delivery holds the claim, its handler still running, and its push was answered
    /// `success` at the [ack deadline](crate::deadline): a duplicate answers `success` too.
    Answered,
    /// The push was handled; this is the reply it got.
    Done(Reply),
}

/// Where dedupe records claims and replies, shared by every delivery of a push.
///
/// The operations a shared (e.g. Redis) implementation needs are all atomic single-key ones:
/// `claim` is set-if-absent with an expiry (`SET key owner NX PX lease`, returning the
/// current value otherwise); `renew`, `complete` and `release` act only if the key is still
/// this owner's (compare-and-expire, compare-and-set, compare-and-delete); `wait` may simply
/// sleep briefly when the store cannot notify.
///
/// The owner token is the caller's (random per delivery), so that a claim whose answer was
/// lost (a timeout) can still be renewed, completed or released under it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a dedupe store",
    label = "not a `DedupeStore`",
    note = "pass `MemoryDedupeStore::default()`, `RedisStores::dedupe_store()` (feature `redis`), an `Arc` of a store, or a type implementing `wechat_push::dedupe::DedupeStore`"
)]
pub trait DedupeStore: Send + Sync + 'static {
    /// Claims `key` for `owner`, for `lease`, unless it is claimed or done.
    fn claim<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>>;

    /// Extends the owner's claim to `lease` from now, marked [`Claim::Answered`] when
    /// `answered`; `false` if the key is no longer the owner's claim (it expired, or another
    /// delivery took it over), in which case nothing is changed.
    fn renew<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        lease: Duration,
        answered: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Records the reply of the owner's delivery, kept for `ttl`, and wakes the waiters; also
    /// when the key is free (the claim expired, or never landed), never over another owner's.
    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        reply: &'a Reply,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Drops the owner's claim (its handler failed or was dropped), or the reply the owner
    /// recorded, and wakes the waiters, so that the next delivery is handled again. Acts only
    /// if the key is still the owner's; harmless if the claim never landed.
    fn release<'a>(&'a self, key: &'a str, owner: u64) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Resolves when `key` may have changed (done or released), or after a short while.
    fn wait<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()>;
}

impl<D: DedupeStore + ?Sized> DedupeStore for Arc<D> {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        (**self).claim(key, owner, lease)
    }

    fn renew<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        lease: Duration,
        answered: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        (**self).renew(key, owner, lease, answered)
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        reply: &'a Reply,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).complete(key, owner, reply, ttl)
    }

    fn release<'a>(&'a self, key: &'a str, owner: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).release(key, owner)
    }

    fn wait<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        (**self).wait(key)
    }
}

/// The in-memory [`DedupeStore`]: per process, bounded, with waiting duplicates woken as soon
/// as the first delivery is answered.
#[derive(Debug)]
pub struct MemoryDedupeStore {
    map: Mutex<BoundedMap<Slot>>,
}

#[derive(Debug)]
enum Slot {
    InFlight {
        owner: u64,
        answered: bool,
        done: Arc<Notify>,
    },
    Done {
        owner: u64,
        reply: Reply,
    },
}

impl MemoryDedupeStore {
    /// A store holding at most `capacity` pushes; past that, the oldest are forgotten first.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(BoundedMap::new(capacity)),
        }
    }

    /// How many pushes it holds now (claimed or done).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoundedMap<Slot>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the owner's claim, if it is still the owner's, and returns its waiters.
    fn take_claim(
        map: &mut BoundedMap<Slot>,
        key: &str,
        owner: u64,
        now: Instant,
    ) -> Option<Arc<Notify>> {
        match map.get_mut(key, now) {
            Some(Slot::InFlight { owner: o, done, .. }) if *o == owner => {
                let done = done.clone();
                map.remove(key);
                Some(done)
            }
            _ => None,
        }
    }

    /// Removes the reply the owner recorded, if it is still the owner's.
    fn take_done(map: &mut BoundedMap<Slot>, key: &str, owner: u64, now: Instant) {
        if let Some(Slot::Done { owner: o, .. }) = map.get_mut(key, now) {
            if *o == owner {
                map.remove(key);
            }
        }
    }
}

impl Default for MemoryDedupeStore {
    /// Holds up to 100,000 pushes.
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl DedupeStore for MemoryDedupeStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        let now = Instant::now();
        let mut map = self.lock();
        let claim = match map.get_mut(key, now) {
            Some(Slot::InFlight { answered: true, .. }) => Claim::Answered,
            Some(Slot::InFlight { .. }) => Claim::InFlight,
            Some(Slot::Done { reply, .. }) => Claim::Done(reply.clone()),
            None => {
                let slot = Slot::InFlight {
                    owner,
                    answered: false,
                    done: Arc::new(Notify::new()),
                };
                map.insert(key, slot, expiry(now, lease), now);
                Claim::Acquired
            }
        };
        Box::pin(std::future::ready(Ok(claim)))
    }

    fn renew<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        lease: Duration,
        answered: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let now = Instant::now();
        let mut map = self.lock();
        let renewed = match Self::take_claim(&mut map, key, owner, now) {
            Some(done) => {
                if answered {
                    // Waiters look again, and answer `success`.
                    done.notify_waiters();
                }
                let slot = Slot::InFlight {
                    owner,
                    answered,
                    done,
                };
                map.insert(key, slot, expiry(now, lease), now);
                true
            }
            None => false,
        };
        Box::pin(std::future::ready(Ok(renewed)))
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        reply: &'a Reply,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let now = Instant::now();
        let mut map = self.lock();
        let waiters = Self::take_claim(&mut map, key, owner, now);
        // Record the reply even if the claim expired or was evicted meanwhile: it is the
        // answer.
        if waiters.is_some() || map.get_mut(key, now).is_none() {
            let reply = reply.clone();
            map.insert(key, Slot::Done { owner, reply }, expiry(now, ttl), now);
        }
        drop(map);
        if let Some(waiters) = waiters {
            waiters.notify_waiters();
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(&'a self, key: &'a str, owner: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        let now = Instant::now();
        let mut map = self.lock();
        let waiters = Self::take_claim(&mut map, key, owner, now);
        if waiters.is_none() {
            Self::take_done(&mut map, key, owner, now);
        }
        drop(map);
        if let Some(waiters) = waiters {
            waiters.notify_waiters();
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn wait<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        let mut map = self.lock();
        let notified = match map.get_mut(key, Instant::now()) {
            // Registered under the lock that `complete` and `release` take before they notify:
            // a notification sent after this look at the slot cannot be missed.
            Some(Slot::InFlight { done, .. }) => done.clone().notified_owned(),
            _ => return Box::pin(std::future::ready(())),
        };
        drop(map);
        Box::pin(notified)
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};

    use super::*;

    #[tokio::test]
    async fn release_drops_a_claim_or_the_owners_reply_only() {
        let store = MemoryDedupeStore::new(10);
        let lease = Duration::from_secs(60);
        let a = 7;
        assert_eq!(store.claim("k", a, lease).await.unwrap(), Claim::Acquired);
        store
            .complete("k", a, &Reply::Success, lease)
            .await
            .unwrap();
        store.release("k", a + 1).await.unwrap();
        assert_eq!(
            store.claim("k", 9, lease).await.unwrap(),
            Claim::Done(Reply::Success)
        );
        store.release("k", a).await.unwrap();
        assert_eq!(store.claim("k", 9, lease).await.unwrap(), Claim::Acquired);
    }

    /// A lease or TTL of `Duration::MAX` used to overflow `Instant + Duration` and panic.
    #[tokio::test]
    async fn a_lease_or_ttl_of_duration_max_does_not_panic() {
        let store = MemoryDedupeStore::new(10);
        assert_eq!(
            store.claim("k", 1, Duration::MAX).await.unwrap(),
            Claim::Acquired
        );
        assert!(store.renew("k", 1, Duration::MAX, false).await.unwrap());
        store
            .complete("k", 1, &Reply::Success, Duration::MAX)
            .await
            .unwrap();
        assert_eq!(
            store.claim("k", 2, Duration::MAX).await.unwrap(),
            Claim::Done(Reply::Success)
        );
    }

    #[tokio::test]
    async fn renew_extends_the_owners_claim_only() {
        let store = MemoryDedupeStore::new(10);
        let short = Duration::from_millis(50);
        assert_eq!(store.claim("k", 1, short).await.unwrap(), Claim::Acquired);
        assert!(!store
            .renew("k", 2, Duration::from_secs(60), false)
            .await
            .unwrap());
        assert!(store
            .renew("k", 1, Duration::from_secs(60), false)
            .await
            .unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            store.claim("k", 2, short).await.unwrap(),
            Claim::InFlight,
            "renewed"
        );
        assert!(store.renew("k", 1, short, true).await.unwrap());
        assert_eq!(store.claim("k", 2, short).await.unwrap(), Claim::Answered);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Expired: taken over, and the first owner's renewal finds it lost.
        assert_eq!(store.claim("k", 2, short).await.unwrap(), Claim::Acquired);
        assert!(!store.renew("k", 1, short, false).await.unwrap());
    }

    /// A completion racing a waiter's look at the slot: the waiter must be woken every time.
    /// (The waiter used to register after unlocking, so a completion in between was missed.)
    #[test]
    fn a_wait_racing_a_completion_is_always_woken() {
        let store = Arc::new(MemoryDedupeStore::new(10));
        let lease = Duration::from_secs(60);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        for round in 0..20_000 {
            let key = format!("k{}", round % 4);
            let owner = round;
            let claim = runtime.block_on(store.claim(&key, owner, lease)).unwrap();
            assert_eq!(claim, Claim::Acquired, "round {round}");
            let completer = {
                let (store, key) = (store.clone(), key.clone());
                std::thread::spawn(move || {
                    std::hint::spin_loop();
                    let reply = Reply::Success;
                    let _ = futures_ready(store.complete(&key, owner, &reply, lease));
                })
            };
            let woken = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(2), store.wait(&key)).await
            });
            completer.join().unwrap();
            assert!(woken.is_ok(), "round {round}: the completion was missed");
            futures_ready(store.release(&key, owner)).unwrap();
            store.lock().remove(&key);
        }
    }

    /// Polls a future that is ready at once (the memory store's are).
    fn futures_ready<T>(future: BoxFuture<'_, T>) -> T {
        let mut future = future;
        let waker = std::task::Waker::noop();
        match future.as_mut().poll(&mut Context::from_waker(waker)) {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("the memory store's futures are ready at once"),
        }
    }

    #[tokio::test]
    async fn claim_complete_release() {
        let store = MemoryDedupeStore::new(10);
        let lease = Duration::from_secs(60);
        let a = 1;
        assert_eq!(store.claim("k", a, lease).await.unwrap(), Claim::Acquired);
        assert_eq!(store.claim("k", 2, lease).await.unwrap(), Claim::InFlight);
        store.release("k", a + 1).await.unwrap(); // not the owner: no effect
        assert_eq!(store.claim("k", 2, lease).await.unwrap(), Claim::InFlight);
        store.release("k", a).await.unwrap();
        let b = 3;
        assert_eq!(store.claim("k", b, lease).await.unwrap(), Claim::Acquired);
        let wait = store.wait("k");
        store
            .complete("k", b, &Reply::text("hi"), lease)
            .await
            .unwrap();
        wait.await; // woken, not hanging
        assert_eq!(
            store.claim("k", 4, lease).await.unwrap(),
            Claim::Done(Reply::text("hi"))
        );
    }
}
