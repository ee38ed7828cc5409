//! [`WechatLayer`]: the configuration, validated once, shared by every request.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use tower::layer::util::Identity;
use tower::{Layer, Service};

use super::mode::Typed;
use super::pass_through::{Adapter, PassOutcome, PassThrough};
use super::service::Wechat;
use crate::apps::{App, Apps, ChooseApp};
use crate::body;
use crate::crypto::{EncodingAesKey, KeyRing};
#[cfg(feature = "tokio")]
use crate::deadline::AckDeadlineLayer;
#[cfg(feature = "tokio")]
use crate::dedupe::{DedupeLayer, DedupeStore};
use crate::endpoint::{ConfigError, Endpoint};
use crate::rejection::Rejection;
use crate::replay::ReplayStore;
use crate::reply::Reply;
use crate::retry::Wrap;
use crate::ticket::TicketStore;

/// The default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

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
/// The retry options ([`dedupe`](Self::dedupe), [`ack_deadline`](Self::ack_deadline)) wrap the
/// handler in services of their own; the type parameters record which are on. Dedupe always
/// runs outside the deadline, whatever the order of the calls.
///
/// One layer can serve several apps, each with its own Token, keys and AppID, the app chosen
/// per request: see [`apps`](WechatLayer::apps).
#[derive(Clone, Debug)]
#[must_use]
pub struct WechatLayer<D = Identity, T = Identity, M = Typed, A = SingleApp> {
    config: Arc<Config>,
    dedupe: D,
    deadline: T,
    mode: PhantomData<M>,
    apps: PhantomData<A>,
}

/// A [`WechatLayer`] serving one app (the default): the endpoint's settings are the layer's.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct SingleApp;

/// A [`WechatLayer`] serving several apps, made by [`WechatLayer::apps`]: each app's
/// [`Endpoint`] carries its own settings (Token, keys, tolerance, clock), so the layer has no
/// endpoint setters.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct MultiApp;

/// Where a layer's requests find their endpoint.
// One per layer, behind its `Arc<Config>`: the size does not matter, and boxing the endpoint
// would add an indirection to every single-app request.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// One app: this endpoint.
    One(Endpoint),
    /// Several apps: the one each request names.
    Many { apps: Apps, choose: ChooseApp },
}

/// What every request of a layer shares: the endpoint's checks and the layer's own options.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) source: Source,
    pub(crate) body_limit: usize,
    pub(crate) replay: Option<Arc<dyn ReplayStore>>,
    /// Where `component_verify_ticket` pushes are stored before the handler runs.
    pub(crate) tickets: Option<Arc<dyn TicketStore>>,
    /// Dedupe is on: key each push by its document (see [`dedupe_key`]).
    ///
    /// [`dedupe_key`]: crate::dedupe::dedupe_key
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) dedupe_keys: bool,
    /// A retry option that runs on Tokio is on: refuse pushes served outside a runtime.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) needs_runtime: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("source", &self.source)
            .field("body_limit", &self.body_limit)
            .field("replay_guard", &self.replay.is_some())
            .field("ticket_store", &self.tickets.is_some())
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The endpoint serving a request: the chosen app's, or the layer's own. An error only for
    /// a multi-app layer's request that chose no app, which the service refuses before.
    pub(crate) fn endpoint<'a>(&'a self, app: Option<&'a App>) -> Result<&'a Endpoint, Rejection> {
        match (app, &self.source) {
            (Some(app), _) => Ok(app.endpoint()),
            (None, Source::One(endpoint)) => Ok(endpoint),
            (None, Source::Many { .. }) => Err(Rejection::UnknownApp),
        }
    }
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

impl WechatLayer<Identity, Identity, Typed, MultiApp> {
    /// A layer serving every app in `apps`, each request going to the app `choose` reads
    /// from it (its path's last segment, for `/wechat/{app}`), and checked with that app's
    /// own Token and keys.
    ///
    /// What names the app (the path, the query) is not authenticated: choosing by it is safe
    /// only because the request is then verified with the chosen app's own signature, and
    /// opened with its own key and AppID. A request naming no configured app is answered 404
    /// ([`Rejection::UnknownApp`]), never checked with another app's keys. Apps can be added
    /// or replaced in `apps` (a shared handle) while the layer serves.
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

impl<A> WechatLayer<Identity, Identity, Typed, A> {
    fn from_source(source: Source) -> Self {
        Self {
            config: Arc::new(Config {
                source,
                body_limit: DEFAULT_BODY_LIMIT,
                replay: None,
                tickets: None,
                dedupe_keys: false,
                needs_runtime: false,
            }),
            dedupe: Identity::new(),
            deadline: Identity::new(),
            mode: PhantomData,
            apps: PhantomData,
        }
    }
}

impl<D, T, M, A> WechatLayer<D, T, M, A> {
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
    pub fn replay_guard(self, store: impl ReplayStore) -> Self {
        let store: Arc<dyn ReplayStore> = Arc::new(store);
        self.with(|c| c.replay = Some(store))
    }

    /// Stores the ticket of every verified `component_verify_ticket` push (a third-party
    /// platform's, see [`Endpoint::component`]) in `store` before the handler runs, which
    /// still receives the push. When the store fails the push is answered 503
    /// ([`Rejection::TicketStore`](crate::Rejection::TicketStore)) without calling the handler,
    /// so WeChat pushes the ticket again. See [`ticket`](crate::ticket).
    pub fn ticket_store(self, store: Arc<dyn TicketStore>) -> Self {
        self.with(|c| c.tickets = Some(store))
    }
}

impl<D, T, M> WechatLayer<D, T, M> {
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
    pub fn encryption(
        self,
        key: EncodingAesKey,
        app_id: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        self.key_ring(KeyRing::new(key, app_id))
    }

    /// Like [`encryption`](Self::encryption), with a [`KeyRing`] that may also hold the
    /// previous key during a key change.
    pub fn key_ring(mut self, keys: KeyRing) -> Result<Self, ConfigError> {
        let config = Arc::make_mut(&mut self.config);
        if let Source::One(endpoint) = &mut config.source {
            *endpoint = endpoint.clone().key_ring(keys)?;
        }
        Ok(self)
    }

    /// Refuses plaintext pushes (401) when `yes`. Set it once the console is in safe mode: the
    /// plaintext `signature` does not cover the body.
    pub fn require_encryption(self, yes: bool) -> Self {
        self.with_endpoint(|e| e.require_encryption(yes))
    }

    /// How far the signed `timestamp` may be from now (default 300 s); `None` turns the check
    /// off. Requests outside it are answered 401.
    pub fn timestamp_tolerance(self, tolerance: Option<Duration>) -> Self {
        self.with_endpoint(|e| e.timestamp_tolerance(tolerance))
    }

    /// Replaces the clock (Unix seconds) used for the timestamp check and for the time written
    /// into replies. For tests that replay fixed timestamps.
    pub fn clock(self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.with_endpoint(|e| e.clock(clock))
    }
}

impl<D, T, A> WechatLayer<D, T, Typed, A> {
    /// Wraps `inner` (the same as [`Layer::layer`], without importing the trait).
    pub fn layer<S>(&self, inner: S) -> Wechat<D::Service>
    where
        T: Wrap<S, Reply>,
        D: Wrap<T::Service, Reply>,
    {
        let inner = self.dedupe.wrap(self.deadline.wrap(inner));
        Wechat::from_config(inner, self.config.clone())
    }

    /// Switches to pass-through mode: the layer goes in front of ordinary HTTP handlers and
    /// routers (axum's, or any `Service<Request<_>>`) instead of a typed one.
    ///
    /// The same checks run, with the same rejections. A push reaches the inner service as an
    /// HTTP request with its method, URI, headers and extensions, whose body is the push's
    /// document (decrypted in safe mode) with a matching `Content-Type`, and whose extensions
    /// hold the [`Message`](crate::Message) and the [`PushInfo`](crate::PushInfo) (axum
    /// extractors with the `axum` feature). A response carrying a [`Reply`] (what an axum
    /// handler returning a `Reply` gives) is written in the push's format and sealed when the
    /// push was encrypted; any other response passes through untouched, except that in safe
    /// mode a 200 whose body is a reply document (`<xml…` or `{…`) is sealed, so a handler
    /// that writes its own reply XML keeps working in safe mode.
    ///
    /// With [`dedupe`](Self::dedupe), a 200 answer is recorded (and a duplicate answered with
    /// its body); any other status counts as a failed attempt, so the push is handled again
    /// on WeChat's retry. A 200 body the layer must read (to seal or record it) is limited to
    /// the [body limit](Self::body_limit): a larger one is answered 500.
    pub fn pass_through(self) -> WechatLayer<D, T, PassThrough, A> {
        WechatLayer {
            config: self.config,
            dedupe: self.dedupe,
            deadline: self.deadline,
            mode: PhantomData,
            apps: PhantomData,
        }
    }
}

impl<D, T, A> WechatLayer<D, T, PassThrough, A> {
    /// Wraps `inner`, an HTTP service (the same as [`Layer::layer`]).
    pub fn layer<S, B>(&self, inner: S) -> Wechat<D::Service, PassThrough>
    where
        S: Service<Request<body::Body>, Response = Response<B>>,
        T: Wrap<Adapter<S>, PassOutcome<B>>,
        D: Wrap<T::Service, PassOutcome<B>>,
    {
        let adapter = Adapter::new(inner, self.config.dedupe_keys, self.config.body_limit);
        let inner = self.dedupe.wrap(self.deadline.wrap(adapter));
        Wechat::from_config(inner, self.config.clone())
    }
}

#[cfg(feature = "tokio")]
impl<T, M, A> WechatLayer<Identity, T, M, A> {
    /// Handles each push once however often WeChat delivers it, recording replies in `store`
    /// for five minutes. See [`dedupe`](crate::dedupe).
    pub fn dedupe(self, store: impl DedupeStore) -> WechatLayer<DedupeLayer, T, M, A> {
        self.dedupe_with(DedupeLayer::new(store))
    }

    /// Like [`dedupe`](Self::dedupe), with a configured [`DedupeLayer`] (expiry, lease).
    pub fn dedupe_with(self, dedupe: DedupeLayer) -> WechatLayer<DedupeLayer, T, M, A> {
        let this = self.with(|c| {
            c.dedupe_keys = true;
            c.needs_runtime = true;
        });
        WechatLayer {
            config: this.config,
            dedupe,
            deadline: this.deadline,
            mode: this.mode,
            apps: this.apps,
        }
    }
}

#[cfg(feature = "tokio")]
impl<D, M, A> WechatLayer<D, Identity, M, A> {
    /// Answers `success` when the handler has not answered within `deadline` (4 s is a good
    /// value; WeChat gives up at 5 s), letting it finish in the background. Needs a Tokio
    /// runtime. See [`deadline`](crate::deadline).
    pub fn ack_deadline(self, deadline: Duration) -> WechatLayer<D, AckDeadlineLayer, M, A> {
        let this = self.with(|c| c.needs_runtime = true);
        WechatLayer {
            config: this.config,
            dedupe: this.dedupe,
            deadline: AckDeadlineLayer::new(deadline),
            mode: this.mode,
            apps: this.apps,
        }
    }
}

impl<S, D, T, A> Layer<S> for WechatLayer<D, T, Typed, A>
where
    T: Wrap<S, Reply>,
    D: Wrap<T::Service, Reply>,
{
    type Service = Wechat<D::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        WechatLayer::<D, T, Typed, A>::layer(self, inner)
    }
}

impl<S, B, D, T, A> Layer<S> for WechatLayer<D, T, PassThrough, A>
where
    S: Service<Request<body::Body>, Response = Response<B>>,
    T: Wrap<Adapter<S>, PassOutcome<B>>,
    D: Wrap<T::Service, PassOutcome<B>>,
{
    type Service = Wechat<D::Service, PassThrough>;

    fn layer(&self, inner: S) -> Self::Service {
        WechatLayer::<D, T, PassThrough, A>::layer(self, inner)
    }
}
