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
//! - a duplicate after a *failed* first attempt (handler error, panic, or the first request
//!   dropped before it finished) is handled again: the claim is released, not kept. With
//!   the [ack deadline](crate::deadline) inside, a dropped first request does not stop its
//!   handler (it runs in its own task), so there it counts as answered `success`, as at the
//!   deadline: the handler runs once.
//!
//! Entries expire (five minutes by default) and [`MemoryDedupeStore`] holds a bounded number
//! of them. If the store itself fails, the push is handled anyway: a duplicate is better than a
//! lost message.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Request;
use tokio::sync::Notify;
use tower::{Layer, Service};

use crate::message::Event;
use crate::message::Message;
use crate::reply::Reply;
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
/// `MsgId` when the push has one; otherwise `FromUserName`, `CreateTime` and `Event` (the
/// official recommendation), plus the event's own identifier where it has one: `EventKey` for
/// menu and QR events, the `MsgID`s of a `subscribe_msg_sent_event`, the `trace_id` of a
/// `wxa_media_check` (PROTOCOL.md §6).
///
/// ```
/// use wechat_push::{dedupe::dedupe_key, Message};
///
/// let m = Message::from_json(br#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1,"MsgType":"text","Content":"hi","MsgId":42}"#)?;
/// assert_eq!(dedupe_key(&m), "gh_1|msg|42");
/// # Ok::<(), wechat_push::codec::DecodeError>(())
/// ```
pub fn dedupe_key(message: &Message) -> String {
    let mut key = String::with_capacity(64);
    key.push_str(message.to_user());
    // Writing to a String cannot fail.
    if let Some(id) = message.msg_id() {
        let _ = write!(key, "|msg|{id}");
        return key;
    }
    let _ = write!(
        key,
        "|ev|{}|{}|{}",
        message.from_user(),
        message.create_time(),
        message.event_name().unwrap_or(message.msg_type())
    );
    match message.event() {
        Some(Event::Subscribe {
            event_key: Some(k), ..
        })
        | Some(Event::Scan { event_key: k, .. })
        | Some(Event::Click { event_key: k })
        | Some(Event::View { event_key: k }) => {
            let _ = write!(key, "|{k}");
        }
        Some(Event::SubscribeMsgSent { items }) => {
            for item in items {
                let _ = write!(key, "|{}", item.msg_id);
            }
        }
        Some(Event::WxaMediaCheck(check)) => {
            let _ = write!(key, "|{}", check.trace_id);
        }
        _ => {}
    }
    key
}

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

    /// Drops the owner's claim (its handler failed or was dropped) and wakes the waiters, so
    /// that the next delivery is handled again. Synchronous because it runs from `Drop`; a
    /// remote store may send the command in the background.
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
    Done(Reply),
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
            Some(Slot::Done(reply)) => Claim::Done(reply.clone()),
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
            map.insert(key, Slot::Done(reply.clone()), now + ttl, now);
        }
        drop(map);
        if let Some(waiters) = waiters {
            waiters.notify_waiters();
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn release(&self, key: &str, owner: u64) {
        let waiters = Self::take_claim(&mut self.lock(), key, owner, Instant::now());
        if let Some(waiters) = waiters {
            waiters.notify_waiters();
        }
    }

    fn wait<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        let waiters = match self.lock().get_mut(key, Instant::now()) {
            Some(Slot::InFlight { done, .. }) => done.clone(),
            _ => return Box::pin(std::future::ready(())),
        };
        // Registered now, under no lock: a notification sent from here on is not missed.
        let notified = waiters.notified_owned();
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

    fn call(&mut self, req: Request<Message>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let DedupeLayer { store, ttl, lease } = self.layer.clone();
        let key = dedupe_key(req.body());
        Box::pin(async move {
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
                settled: AtomicBool::new(false),
            }));
            let mut req = req;
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
    /// Completed or released: nothing more to do.
    settled: AtomicBool,
}

impl HeldClaim {
    /// Records `reply` as the push's answer, unless already settled.
    pub(crate) async fn complete(&self, reply: &Reply) {
        let claim = &*self.0;
        if claim.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Err(_e) = claim
            .store
            .complete(&claim.key, claim.owner, reply, claim.ttl)
            .await
        {
            #[cfg(feature = "tracing")]
            tracing::warn!(key = %claim.key, error = %_e, "dedupe store failed to record a reply");
        }
    }

    /// Frees the push for the next delivery, unless already settled.
    fn release(&self) {
        self.0.release();
    }
}

impl ClaimInner {
    fn release(&self) {
        if !self.settled.swap(true, Ordering::AcqRel) {
            self.store.release(&self.key, self.owner);
        }
    }
}

impl Drop for ClaimInner {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(json: &str) -> Message {
        Message::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn keys() {
        let event = message(
            r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":7,"MsgType":"event","Event":"CLICK","EventKey":"menu1"}"#,
        );
        assert_eq!(dedupe_key(&event), "gh|ev|o|7|CLICK|menu1");
        let enter = message(
            r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":7,"MsgType":"event","Event":"user_enter_tempsession","SessionFrom":"x"}"#,
        );
        assert_eq!(dedupe_key(&enter), "gh|ev|o|7|user_enter_tempsession");
        let sent = message(
            r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":7,"MsgType":"event","Event":"subscribe_msg_sent_event","List":[{"TemplateId":"t","MsgID":"11","ErrorCode":"0","ErrorStatus":"success"},{"TemplateId":"t","MsgID":"12","ErrorCode":0,"ErrorStatus":"success"}]}"#,
        );
        assert_eq!(
            dedupe_key(&sent),
            "gh|ev|o|7|subscribe_msg_sent_event|11|12"
        );
        let other_app = message(
            r#"{"ToUserName":"gh2","FromUserName":"o","CreateTime":1,"MsgType":"text","Content":"hi","MsgId":42}"#,
        );
        assert_eq!(dedupe_key(&other_app), "gh2|msg|42");
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
