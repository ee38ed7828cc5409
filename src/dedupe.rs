//! Dedupe: each push handled once, however often WeChat delivers it.
//!
//! WeChat waits five seconds for an answer, then delivers the same push again (three
//! deliveries in all). With [`WechatLayer::dedupe`](crate::WechatLayer::dedupe) the layer keys
//! every push ([`dedupe_key`]) and records its reply in a [`DedupeStore`]:
//!
//! - the first delivery claims the key and goes to the handler;
//! - a duplicate arriving while the first is being handled waits for that reply and answers it
//!   too (encrypted for its own request);
//! - a duplicate after a completed delivery gets the stored reply; the handler is not called;
//! - a duplicate after a *failed* first attempt (handler error, panic, the first request
//!   dropped before it finished, or the store failing to record the reply) is handled again:
//!   the claim is released, not kept. With the [ack deadline](crate::deadline) inside, a
//!   dropped first request does not stop its handler (it runs in its own task), so there it
//!   counts as answered `success`, as at the deadline: the handler runs once. If that handler
//!   is cancelled (the runtime shuts down), the record is withdrawn and the retry handled.
//!
//! Pushes are keyed by their `MsgId`, or by a digest of their decrypted document when they
//! have none ([`dedupe_key`]).
//!
//! Entries expire (five minutes by default) and [`MemoryDedupeStore`] holds a bounded number
//! of them. If the store itself fails, the push is handled anyway: a duplicate is better than a
//! lost message.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Request;
use sha1::{Digest, Sha1};
use tokio::sync::Notify;
use tower::{Layer, Service};

use crate::message::{Message, Value};
use crate::reply::Reply;
use crate::signature;
use crate::store::{BoundedMap, BoxFuture, StoreError};

/// How long a completed push is remembered, by default: five minutes, past WeChat's retries.
pub const DEFAULT_DEDUPE_TTL: Duration = Duration::from_secs(300);

/// How long a claim holds while its handler runs, at most: past it, a duplicate may run the
/// handler again (a handler stuck that long has failed WeChat anyway).
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(60);

/// How often a duplicate waiting on an in-flight push checks the store again, at most.
const RECHECK: Duration = Duration::from_millis(250);

/// The key one push is deduplicated by, scoped to the receiving account (`ToUserName`).
///
/// `MsgId` (numeric or not) when the push has one; otherwise the SHA-1 of `document`, the
/// push's decrypted XML or JSON. A retry carries the same document, and two different pushes
/// do not: two order events of the same account in the same second differ in their order ids,
/// so they get two keys (a key of sender, time and event name would merge them and answer the
/// second with the first one's reply).
///
/// ```
/// use wechat_push::{dedupe::dedupe_key, Message};
///
/// let doc = br#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1,"MsgType":"text","Content":"hi","MsgId":42}"#;
/// assert_eq!(dedupe_key(&Message::from_json(doc)?, doc), "gh_1|msg|42");
///
/// let event = br#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1,"MsgType":"event","Event":"trade_manage_order_settlement","transaction_id":"t1"}"#;
/// let key = dedupe_key(&Message::from_json(event)?, event);
/// assert!(key.starts_with("gh_1|doc|"));
/// # Ok::<(), wechat_push::codec::DecodeError>(())
/// ```
pub fn dedupe_key(message: &Message, document: &[u8]) -> String {
    let mut key = String::with_capacity(64);
    key.push_str(message.to_user());
    if let Some(id) = message.msg_id() {
        // Writing to a String cannot fail.
        let _ = write!(key, "|msg|{id}");
        return key;
    }
    if let Some(id) = message
        .field("MsgId")
        .and_then(Value::as_text)
        .filter(|id| !id.is_empty())
    {
        key.push_str("|msg|");
        key.push_str(id);
        return key;
    }
    key.push_str("|doc|");
    let digest: [u8; 20] = Sha1::digest(document).into();
    key.extend(signature::hex(&digest).iter().map(|&b| char::from(b)));
    key
}

/// The key of the push a request carries, put in its extensions by the layer (which has the
/// decrypted document) when dedupe is on.
#[derive(Clone, Debug)]
pub(crate) struct DedupeKey(pub(crate) String);

/// What [`DedupeStore::claim`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key was free and is now claimed by this owner token: handle the push.
    Acquired(u64),
    /// Another delivery holds the claim and is being handled.
    InFlight,
    /// The push was handled; this is the reply it got.
    Done(Reply),
}

/// Where dedupe records claims and replies, shared by every delivery of a push.
///
/// The operations a shared (e.g. Redis) implementation needs are all atomic single-key ones:
/// `claim` is set-if-absent with an expiry (`SET key owner NX PX lease`, returning the
/// current value otherwise); `complete` and `release` act only if the claim is still this
/// owner's (compare-and-set / compare-and-delete); `wait` may simply sleep briefly when the
/// store cannot notify.
pub trait DedupeStore: Send + Sync + 'static {
    /// Claims `key` for `lease` unless it is claimed or done.
    fn claim<'a>(
        &'a self,
        key: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>>;

    /// Records the reply of the owner's delivery, kept for `ttl`, and wakes the waiters.
    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        reply: &'a Reply,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Drops the owner's claim (its handler failed or was dropped), or the reply the owner
    /// recorded (its handler was cancelled after the push had been answered at the ack
    /// deadline), and wakes the waiters, so that the next delivery is handled again. Acts only
    /// if the key is still the owner's. Synchronous because it runs from `Drop`; a remote
    /// store may send the command in the background.
    fn release(&self, key: &str, owner: u64);

    /// Resolves when `key` may have changed (done or released), or after a short while.
    fn wait<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()>;
}

impl<D: DedupeStore + ?Sized> DedupeStore for Arc<D> {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        (**self).claim(key, lease)
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

    fn release(&self, key: &str, owner: u64) {
        (**self).release(key, owner);
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
    owners: AtomicU64,
}

#[derive(Debug)]
enum Slot {
    InFlight { owner: u64, done: Arc<Notify> },
    Done { owner: u64, reply: Reply },
}

impl MemoryDedupeStore {
    /// A store holding at most `capacity` pushes; past that, the oldest are forgotten first.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(BoundedMap::new(capacity)),
            owners: AtomicU64::new(1),
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
            Some(Slot::InFlight { owner: o, done }) if *o == owner => {
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
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        let now = Instant::now();
        let mut map = self.lock();
        let claim = match map.get_mut(key, now) {
            Some(Slot::InFlight { .. }) => Claim::InFlight,
            Some(Slot::Done { reply, .. }) => Claim::Done(reply.clone()),
            None => {
                let owner = self.owners.fetch_add(1, Ordering::Relaxed);
                let slot = Slot::InFlight {
                    owner,
                    done: Arc::new(Notify::new()),
                };
                map.insert(key, slot, now + lease, now);
                Claim::Acquired(owner)
            }
        };
        Box::pin(std::future::ready(Ok(claim)))
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
        // Record the reply even if the claim was evicted meanwhile: it is the answer.
        if waiters.is_some() || map.get_mut(key, now).is_none() {
            let reply = reply.clone();
            map.insert(key, Slot::Done { owner, reply }, now + ttl, now);
        }
        drop(map);
        if let Some(waiters) = waiters {
            waiters.notify_waiters();
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn release(&self, key: &str, owner: u64) {
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

/// The layer [`WechatLayer::dedupe`](crate::WechatLayer::dedupe) puts around the handler.
#[derive(Clone)]
pub struct DedupeLayer {
    store: Arc<dyn DedupeStore>,
    ttl: Duration,
    lease: Duration,
}

impl DedupeLayer {
    /// Dedupe through `store`, with the default expiry and lease.
    pub fn new(store: impl DedupeStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// Dedupe through a store shared with other code (to look at its size, say).
    pub fn from_arc(store: Arc<dyn DedupeStore>) -> Self {
        Self {
            store,
            ttl: DEFAULT_DEDUPE_TTL,
            lease: DEFAULT_CLAIM_LEASE,
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

impl std::fmt::Debug for DedupeLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupeLayer")
            .field("ttl", &self.ttl)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for DedupeLayer {
    type Service = Dedupe<S>;

    fn layer(&self, inner: S) -> Dedupe<S> {
        Dedupe {
            inner,
            layer: self.clone(),
        }
    }
}

/// The dedupe service around a handler. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Dedupe<S> {
    inner: S,
    layer: DedupeLayer,
}

impl<S> Service<Request<Message>> for Dedupe<S>
where
    S: Service<Request<Message>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Into<Reply>,
    S::Error: Send + 'static,
{
    type Response = Reply;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Message>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let DedupeLayer { store, ttl, lease } = self.layer.clone();
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
                match store.claim(&key, lease).await {
                    Ok(Claim::Acquired(owner)) => break Some(owner),
                    Ok(Claim::Done(reply)) => return Ok(reply),
                    Ok(Claim::InFlight) => {
                        let _ = tokio::time::timeout(RECHECK, store.wait(&key)).await;
                    }
                    Err(_e) => {
                        #[cfg(feature = "tracing")]
                        tracing::warn!(%key, error = %_e, "dedupe store failed; handling the push anyway");
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
                state: AtomicU8::new(OPEN),
            }));
            req.extensions_mut().insert(claim.clone());
            let reply: Reply = match inner.call(req).await {
                Ok(reply) => reply.into(),
                Err(e) => {
                    claim.release();
                    return Err(e);
                }
            };
            claim.complete(&reply).await;
            Ok(reply)
        })
    }
}

/// The key of a push whose document the caller does not have: its `MsgId`, or none.
fn id_key(message: &Message) -> Option<String> {
    let has_id = message.msg_id().is_some()
        || message
            .field("MsgId")
            .and_then(Value::as_text)
            .is_some_and(|id| !id.is_empty());
    has_id.then(|| dedupe_key(message, &[]))
}

/// The claim of the delivery being handled.
///
/// Shared between the dedupe future and the request it passes on: when the handler runs in
/// a task of its own ([`AckDeadline`](crate::deadline::AckDeadline)), the deadline layer
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
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(key = %claim.key, error = %_e, "dedupe store failed to record a reply; released the push for its retry");
            }
        }
        drop(unless_recorded);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(json: &str) -> Message {
        Message::from_json(json.as_bytes()).unwrap()
    }

    fn key(json: &str) -> String {
        dedupe_key(&message(json), json.as_bytes())
    }

    #[test]
    fn keys() {
        // A numeric or string MsgId is the key, whatever else the document holds.
        assert_eq!(
            key(
                r#"{"ToUserName":"gh2","FromUserName":"o","CreateTime":1,"MsgType":"text","Content":"hi","MsgId":42}"#
            ),
            "gh2|msg|42"
        );
        assert_eq!(
            key(
                r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1,"MsgType":"text","Content":"hi","MsgId":"a-1"}"#
            ),
            "gh|msg|a-1"
        );
        // Without one, the document's digest: two order events of one account in one second
        // differ, the same document (a retry) does not.
        let order = |id: &str| {
            format!(
                r#"{{"ToUserName":"gh","FromUserName":"o","CreateTime":7,"MsgType":"event","Event":"trade_manage_order_settlement","transaction_id":"{id}"}}"#
            )
        };
        let (a, b) = (key(&order("t1")), key(&order("t2")));
        assert_ne!(a, b);
        assert_eq!(a, key(&order("t1")));
        assert!(
            a.starts_with("gh|doc|") && a.len() == "gh|doc|".len() + 40,
            "{a}"
        );
        // Scoped by the receiving account.
        let other = key(&order("t1").replace(r#""gh""#, r#""gh9""#));
        assert!(other.starts_with("gh9|doc|"));
        // An empty string MsgId is no id.
        assert!(key(r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1,"MsgType":"event","Event":"x","MsgId":""}"#).starts_with("gh|doc|"));
    }

    #[tokio::test]
    async fn release_drops_a_claim_or_the_owners_reply_only() {
        let store = MemoryDedupeStore::new(10);
        let lease = Duration::from_secs(60);
        let Claim::Acquired(a) = store.claim("k", lease).await.unwrap() else {
            panic!()
        };
        store
            .complete("k", a, &Reply::Success, lease)
            .await
            .unwrap();
        store.release("k", a + 1);
        assert_eq!(
            store.claim("k", lease).await.unwrap(),
            Claim::Done(Reply::Success)
        );
        store.release("k", a);
        assert!(matches!(
            store.claim("k", lease).await.unwrap(),
            Claim::Acquired(_)
        ));
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
            let Claim::Acquired(owner) = runtime.block_on(store.claim(&key, lease)).unwrap() else {
                panic!("round {round}: not acquired")
            };
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
            store.release(&key, owner);
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
        let Claim::Acquired(a) = store.claim("k", lease).await.unwrap() else {
            panic!()
        };
        assert_eq!(store.claim("k", lease).await.unwrap(), Claim::InFlight);
        store.release("k", a + 1); // not the owner: no effect
        assert_eq!(store.claim("k", lease).await.unwrap(), Claim::InFlight);
        store.release("k", a);
        let Claim::Acquired(b) = store.claim("k", lease).await.unwrap() else {
            panic!()
        };
        let wait = store.wait("k");
        store
            .complete("k", b, &Reply::text("hi"), lease)
            .await
            .unwrap();
        wait.await; // woken, not hanging
        assert_eq!(
            store.claim("k", lease).await.unwrap(),
            Claim::Done(Reply::text("hi"))
        );
    }
}
