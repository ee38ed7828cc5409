//! [`WechatLayer`]: the builder of the shared [`Config`], and the tower layer that puts it in
//! front of a handler.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tower::Layer;

use super::apps::{Apps, ChooseApp};
use super::config::{Config, Source};
use super::mode::Typed;
use super::pass_through::PassThrough;
use super::service::Wechat;
use crate::clock::Clock;
use crate::crypto::{EncodingAesKey, KeyRing};
#[cfg(feature = "tokio")]
use crate::dedupe::{DedupeConfig, DedupeStore};
use crate::endpoint::{ConfigError, Endpoint};
use crate::replay::ReplayStore;
use crate::ticket::TicketStore;

/// A Tower layer that turns an HTTP endpoint into a WeChat push receiver.
///
/// It checks the signature of every request, answers the GET handshake itself, collects and
/// (in safe mode) decrypts the body, decodes it into a [`Message`](crate::Message) and calls
/// the inner service with an `http::Request<Message>`; the inner service's
/// [`Reply`](crate::Reply) becomes the answer, encrypted when the push was. See the
/// [crate documentation](crate) for a full example. The checks themselves are
/// [`Endpoint`]'s, which the layer wraps.
///
/// ```
/// use std::time::Duration;
/// use wechat_push::{EncodingAesKey, WechatLayer};
///
/// let layer = WechatLayer::new("Token123abc")?
///     .encryption(EncodingAesKey::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")?, "wx1234567890abcdef")?
///     .require_encryption(true)
///     .body_limit(64 * 1024)
///     .timestamp_tolerance(Some(Duration::from_secs(120)));
/// assert!(!format!("{layer:?}").contains("Token123abc"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The options ([`dedupe`](Self::dedupe), [`ack_deadline`](Self::ack_deadline), the
/// [`replay_guard`](Self::replay_guard), the [`ticket_store`](Self::ticket_store), several
/// [`apps`](Self::apps)) are run-time settings: the layer's type stays `WechatLayer` (or
/// `WechatLayer<PassThrough>`), so an option can follow configuration. Dedupe always runs
/// outside the deadline, whatever the order of the calls.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// use std::time::Duration;
/// use wechat_push::dedupe::MemoryDedupeStore;
/// use wechat_push::WechatLayer;
///
/// # let (dedupe, deadline) = (true, Some(Duration::from_secs(4)));
/// let mut layer = WechatLayer::new("Token123abc")?;
/// if dedupe {
///     layer = layer.dedupe(MemoryDedupeStore::default());
/// }
/// if let Some(deadline) = deadline {
///     layer = layer.ack_deadline(deadline);
/// }
/// # let _ = layer;
/// # }
/// # Ok::<(), wechat_push::ConfigError>(())
/// ```
///
/// One layer can serve several apps, each with its own Token, keys and AppID, the app chosen
/// per request: see [`apps`](WechatLayer::apps).
#[derive(Clone, Debug)]
#[must_use]
pub struct WechatLayer<M = Typed> {
    config: Arc<Config>,
    mode: PhantomData<fn() -> M>,
}

impl WechatLayer {
    /// A layer checking signatures with `token` (the Token typed into the WeChat console).
    ///
    /// Plaintext pushes only until [`encryption`](Self::encryption) is set. The token must be
    /// 3 to 32 ASCII letters or digits, as the console requires: a short or empty token would
    /// make signatures guessable.
    pub fn new(token: impl Into<String>) -> Result<Self, ConfigError> {
        Ok(Self::from_endpoint(Endpoint::new(token)?))
    }

    /// A layer running `endpoint`'s checks.
    pub fn from_endpoint(endpoint: Endpoint) -> Self {
        Self::from_source(Source::One(endpoint))
    }
}

impl WechatLayer {
    /// A layer serving every app in `apps`, each request going to the app `choose` reads
    /// from it (its path's last segment, for `/wechat/{app}`), and checked with that app's
    /// own Token and keys.
    ///
    /// What names the app (the path, the query) is not authenticated: choosing by it is safe
    /// only because the request is then verified with the chosen app's own signature, and
    /// opened with its own key and AppID. A request naming no configured app is answered 404
    /// ([`Rejection::UnknownApp`](crate::Rejection::UnknownApp)), never checked with another
    /// app's keys. Apps can be added or replaced in `apps` (a shared handle) while the layer
    /// serves.
    ///
    /// The handler finds the chosen app's [`AppName`](crate::apps::AppName) in its request's
    /// extensions, beside the [`PushInfo`](crate::PushInfo), in both modes. With
    /// [`dedupe`](Self::dedupe), pushes are keyed per app (the same `MsgId` in two apps is
    /// handled once in each); the [`replay_guard`](Self::replay_guard) keys by the signed
    /// query, whose signature already differs between apps with different Tokens.
    ///
    /// ```
    /// use wechat_push::apps::{App, Apps, ChooseApp};
    /// use wechat_push::{EncodingAesKey, Endpoint, WechatLayer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let apps = Apps::new();
    /// apps.insert(App::new("shop", Endpoint::new("ShopToken1")?)?);
    /// let layer = WechatLayer::apps(apps.clone(), ChooseApp::last_segment()).body_limit(64 * 1024);
    /// // Later, while serving:
    /// let key = EncodingAesKey::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")?;
    /// apps.insert(App::new("club", Endpoint::new("ClubToken2")?.encryption(key, "wx1234567890abcdef")?)?);
    /// # let _ = layer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn apps(apps: Apps, choose: ChooseApp) -> Self {
        Self::from_source(Source::Many { apps, choose })
    }
}

impl WechatLayer {
    fn from_source(source: Source) -> Self {
        Self {
            config: Arc::new(Config::new(source)),
            mode: PhantomData,
        }
    }
}

impl<M> WechatLayer<M> {
    fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        // Shared only once services exist; before that this does not clone.
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// The largest body accepted, in bytes (default 1 MiB). A larger `Content-Length` is
    /// answered 413 before the body is read; a body without one is read up to the limit, then
    /// answered 413.
    pub fn body_limit(self, bytes: usize) -> Self {
        self.with(|c| c.body_limit = bytes)
    }

    /// Refuses a verified plaintext query that comes back with another body (401 `replayed
    /// signature`), remembering each query in `store` for the timestamp tolerance. With the
    /// tolerance off, the guard keeps a 300 s window of its own and refuses older plaintext
    /// pushes. See [`replay`](crate::replay).
    /// A store shared with other code is passed as an `Arc`, which is a store too.
    pub fn replay_guard(self, store: impl ReplayStore) -> Self {
        let store: Arc<dyn ReplayStore> = Arc::new(store);
        self.with(|c| c.replay = Some(store))
    }

    /// Stores the ticket of every verified `component_verify_ticket` push (a third-party
    /// platform's, see [`Endpoint::component`]) in `store` before the handler runs, which
    /// still receives the push. When the store fails the push is answered 503
    /// ([`Rejection::TicketStore`](crate::Rejection::TicketStore)) without calling the handler,
    /// so WeChat pushes the ticket again. See [`ticket`](crate::ticket). A store shared with
    /// other code (to read the ticket) is passed as an `Arc`, which is a store too.
    pub fn ticket_store(self, store: impl TicketStore + 'static) -> Self {
        let store: Arc<dyn TicketStore> = Arc::new(store);
        self.with(|c| c.tickets = Some(store))
    }

    fn with_endpoint(self, change: impl FnOnce(Endpoint) -> Endpoint) -> Self {
        self.with(|c| {
            if let Source::One(endpoint) = &mut c.source {
                *endpoint = change(endpoint.clone());
            }
        })
    }

    /// Accepts safe-mode and compatible-mode pushes, decrypted with `key` and checked against
    /// `app_id`, which is validated here. Plaintext pushes are still accepted unless
    /// [`require_encryption`](Self::require_encryption) is set.
    ///
    /// A layer serving several [`apps`](Self::apps) takes each app's settings from its own
    /// [`Endpoint`]: there this changes nothing.
    pub fn encryption(
        self,
        key: EncodingAesKey,
        app_id: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        self.key_ring(KeyRing::new(key, app_id))
    }

    /// Like [`encryption`](Self::encryption), with a [`KeyRing`] that may also hold the
    /// previous key during a key change.
    ///
    /// A layer serving several [`apps`](Self::apps) takes each app's settings from its own
    /// [`Endpoint`]: there this changes nothing.
    pub fn key_ring(mut self, keys: KeyRing) -> Result<Self, ConfigError> {
        let config = Arc::make_mut(&mut self.config);
        if let Source::One(endpoint) = &mut config.source {
            *endpoint = endpoint.clone().key_ring(keys)?;
        }
        Ok(self)
    }

    /// Refuses plaintext pushes (401) when `yes`. Set it once the console is in safe mode: the
    /// plaintext `signature` does not cover the body.
    ///
    /// A layer serving several [`apps`](Self::apps) takes each app's settings from its own
    /// [`Endpoint`]: there this changes nothing.
    pub fn require_encryption(self, yes: bool) -> Self {
        self.with_endpoint(|e| e.require_encryption(yes))
    }

    /// How far the signed `timestamp` may be from now (default 300 s); `None` turns the check
    /// off. Requests outside it are answered 401.
    ///
    /// A layer serving several [`apps`](Self::apps) takes each app's settings from its own
    /// [`Endpoint`]: there this changes nothing.
    pub fn timestamp_tolerance(self, tolerance: Option<Duration>) -> Self {
        self.with_endpoint(|e| e.timestamp_tolerance(tolerance))
    }

    /// Replaces the clock (default [`SystemClock`](crate::clock::SystemClock)) used for the
    /// timestamp check and for the time written into replies. For tests that replay fixed
    /// timestamps: [`FixedClock`](crate::clock::FixedClock).
    ///
    /// A layer serving several [`apps`](Self::apps) takes each app's settings from its own
    /// [`Endpoint`]: there this changes nothing.
    pub fn clock(self, clock: impl Clock + 'static) -> Self {
        self.with_endpoint(|e| e.clock(clock))
    }
}

impl WechatLayer {
    /// Wraps `inner` (the same as [`Layer::layer`], without importing the trait).
    pub fn layer<S>(&self, inner: S) -> Wechat<S> {
        Wechat::from_config(inner, self.config.clone())
    }

    /// Switches to pass-through mode: the layer goes in front of ordinary HTTP handlers and
    /// routers (axum's, or any `Service<Request<_>>`) instead of a typed one.
    ///
    /// The same checks run, with the same rejections. A push reaches the inner service as an
    /// HTTP request with its method, URI, headers and extensions, whose body is the push's
    /// document (decrypted in safe mode) with a matching `Content-Type`, and whose extensions
    /// hold the [`Message`](crate::Message) and the [`PushInfo`](crate::PushInfo) (axum
    /// extractors with the `axum` feature). A response carrying a [`Reply`](crate::Reply)
    /// (what an axum handler returning a `Reply` gives) is written in the push's format and
    /// sealed when the push was encrypted; any other response passes through untouched,
    /// except that in safe mode a 200 whose body is a reply document (`<xml…` or `{…`) is
    /// sealed, so a handler that writes its own reply XML keeps working in safe mode.
    ///
    /// With [`dedupe`](Self::dedupe), a 200 answer is recorded (and a duplicate answered with
    /// its body); any other status counts as a failed attempt, so the push is handled again
    /// on WeChat's retry. A 200 body the layer must read (to seal or record it) is limited to
    /// the [body limit](Self::body_limit): a larger one is answered 500.
    pub fn pass_through(self) -> WechatLayer<PassThrough> {
        WechatLayer {
            config: self.config,
            mode: PhantomData,
        }
    }
}

impl WechatLayer<PassThrough> {
    /// Wraps `inner`, an HTTP service (the same as [`Layer::layer`]).
    pub fn layer<S>(&self, inner: S) -> Wechat<S, PassThrough> {
        Wechat::from_config(inner, self.config.clone())
    }
}

#[cfg(feature = "tokio")]
impl<M> WechatLayer<M> {
    /// Handles each push once however often WeChat delivers it, recording replies in `store`
    /// for five minutes. See [`dedupe`](crate::dedupe). Replaces an earlier dedupe setting.
    pub fn dedupe(self, store: impl DedupeStore) -> Self {
        self.dedupe_with(DedupeConfig::new(store))
    }

    /// Like [`dedupe`](Self::dedupe), with configured settings (expiry, lease).
    pub fn dedupe_with(self, dedupe: DedupeConfig) -> Self {
        self.with(|c| c.dedupe = Some(dedupe))
    }

    /// Answers `success` when the handler has not answered within `deadline` (4 s is a good
    /// value; WeChat gives up at 5 s), letting it finish in the background. Needs a Tokio
    /// runtime. See [`deadline`](crate::deadline). Replaces an earlier deadline.
    ///
    /// A timeout outside the layer (tower-http's `TimeoutLayer`) must be longer than the
    /// deadline: one at the same 4 s would answer 408 a moment before the deadline's
    /// `success`, and WeChat would deliver the push again.
    pub fn ack_deadline(self, deadline: Duration) -> Self {
        self.with(|c| c.deadline = Some(deadline))
    }

    /// Queue mode: each verified push (past the [replay guard](Self::replay_guard) and the
    /// [ticket store](Self::ticket_store)) is appended to `queue` *before* it is answered, and
    /// answered `success` (on WeCom, the empty body) as soon as the queue has it, or had it
    /// already (a duplicate); a full queue answers 503
    /// ([`Rejection::QueueFull`](crate::Rejection::QueueFull)), so WeChat delivers the push
    /// again. The handler is not called on the request's path: the queue's workers call it,
    /// started with the same handler the layer wraps, [`Queue::start`] for a typed handler,
    /// [`Queue::start_pass_through`] for a pass-through one; nothing is spawned here. Needs
    /// a Tokio runtime. See [`queue`](crate::queue) for the guarantees and the window.
    ///
    /// [`dedupe`](Self::dedupe) and the [`ack_deadline`](Self::ack_deadline) do not apply to
    /// queued pushes: the queue answers at once and keeps its own dedupe, atomic with the
    /// append. A passive reply cannot be sent from a worker (the push was answered already):
    /// it is logged as unsupported.
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::convert::Infallible;
    /// use std::time::Duration;
    /// use tower::{service_fn, Layer};
    /// use wechat_push::queue::Queue;
    /// use wechat_push::{Message, Reply, WechatLayer};
    ///
    /// let queue = Queue::builder().build(); // in memory; `.backend(redis.queue())` to share
    /// let handler = service_fn(|_req: http::Request<Message>| async {
    ///     // … the push's work; `Err` retries it after a back-off.
    ///     Ok::<_, Infallible>(Reply::Success)
    /// });
    /// let service = WechatLayer::new("Token123abc")?.queue(queue.clone()).layer(handler.clone());
    /// let workers = queue.start(handler);
    /// // … serve `service`; on SIGTERM, once the server stopped accepting:
    /// let drained = workers.shutdown(Duration::from_secs(10)).await;
    /// # let _ = (service, drained);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`Queue::start`]: crate::queue::Queue::start
    /// [`Queue::start_pass_through`]: crate::queue::Queue::start_pass_through
    pub fn queue(self, queue: crate::queue::Queue) -> Self {
        self.with(|c| c.queue = Some(queue))
    }
}

impl<S> Layer<S> for WechatLayer {
    type Service = Wechat<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Wechat::from_config(inner, self.config.clone())
    }
}

impl<S> Layer<S> for WechatLayer<PassThrough> {
    type Service = Wechat<S, PassThrough>;

    fn layer(&self, inner: S) -> Self::Service {
        Wechat::from_config(inner, self.config.clone())
    }
}

impl<S> Wechat<S> {
    /// Same as [`WechatLayer::new`].
    pub fn layer(token: impl Into<String>) -> Result<WechatLayer, ConfigError> {
        WechatLayer::new(token)
    }
}
