//! axum integration (feature `axum`): [`Message`], [`PushInfo`] and (behind a multi-app
//! layer) [`AppName`] are extractors, and
//! [`Reply`] is a response, for handlers behind the layer in
//! [pass-through mode](crate::WechatLayer::pass_through). An [`App`](crate::apps::App)'s
//! [extensions](crate::apps::App::extension) reach the handler's request too: extract them
//! with axum's own `Extension<T>`.
//!
//! A pass-through handler's request body is [`wechat_push::body::Body`](crate::body::Body).
//! Routers, method routers and handlers take any body, but axum middleware services made with
//! `axum::middleware::from_fn` (and others) take only axum's: put [`AxumBodyLayer`] between
//! the WeChat layer and such a service (`ServiceBuilder::new().layer(wechat)
//! .layer(AxumBodyLayer).layer(from_fn(f))`), or put the middleware on the route
//! (`post(handler).layer(from_fn(f)).layer(wechat)`), where axum converts the body itself.
//!
//! ```
//! use axum::{extract::State, routing::{get, post}, Router};
//! use wechat_push::{message::Kind, Message, PushInfo, Reply, WechatLayer};
//!
//! #[derive(Clone)]
//! struct App {
//!     greeting: &'static str,
//! }
//!
//! async fn on_push(State(app): State<App>, msg: Message, _info: PushInfo) -> Reply {
//!     match msg.kind() {
//!         Kind::Text { content, .. } => Reply::text(format!("{}{content}", app.greeting)),
//!         _ => Reply::Success,
//!     }
//! }
//!
//! # fn main() -> Result<(), wechat_push::ConfigError> {
//! let wechat = WechatLayer::new("Token123abc")?.pass_through();
//! let app: Router = Router::new()
//!     // `layer` (not `route_layer`): the GET handshake reaches the WeChat layer too.
//!     .route("/wechat", post(on_push).layer(wechat))
//!     .route("/healthz", get(|| async { "ok" }))
//!     .with_state(App { greeting: "you said: " });
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::task::{Context, Poll};

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http::{Request, StatusCode};
use tower::{Layer, Service};

use crate::apps::AppName;
use crate::endpoint::PushInfo;
use crate::message::Message;
use crate::reply::Reply;

/// The extractor's rejection when the WeChat layer did not run in front of the handler: a
/// 500 whose reason says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingLayer {
    what: &'static str,
}

impl fmt::Display for MissingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no {} in the request: put WechatLayer::pass_through() in front of this handler \
             (and extract the Message once)",
            self.what
        )
    }
}

impl std::error::Error for MissingLayer {}

impl IntoResponse for MissingLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// Takes the push's [`Message`] from the request (moved out, so extract it once).
impl<S: Send + Sync> FromRequestParts<S> for Message {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .remove::<Message>()
            .ok_or(MissingLayer { what: "Message" })
    }
}

/// What the layer verified about the push.
impl<S: Send + Sync> FromRequestParts<S> for PushInfo {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<PushInfo>()
            .cloned()
            .ok_or(MissingLayer { what: "PushInfo" })
    }
}

/// The app a [multi-app layer](crate::WechatLayer::apps) chose for the push.
impl<S: Send + Sync> FromRequestParts<S> for AppName {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AppName>()
            .cloned()
            .ok_or(MissingLayer { what: "AppName" })
    }
}

/// A reply for the layer to write in the push's format (and seal, for an encrypted push). The
/// response carries the `Reply` in its extensions; without the layer in front to render it,
/// it is a 500 saying so.
impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (
            StatusCode::INTERNAL_SERVER_ERROR,
            "a wechat_push::Reply reached the client unrendered: the WeChat layer is not in \
             front of this handler",
        )
            .into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// A layer handing its service `Request<axum::body::Body>` whatever the request's body type:
/// for an axum middleware service (`axum::middleware::from_fn`, …) directly inside the WeChat
/// layer in pass-through mode, since such services take axum's body only.
///
/// ```
/// use axum::{extract::Request, middleware::{from_fn, Next}, response::Response, routing::post, Router};
/// use tower::ServiceBuilder;
/// use wechat_push::{axum::AxumBodyLayer, Reply, WechatLayer};
///
/// async fn audit(req: Request, next: Next) -> Response {
///     next.run(req).await
/// }
///
/// # fn main() -> Result<(), wechat_push::ConfigError> {
/// let wechat = WechatLayer::new("Token123abc")?.pass_through();
/// let svc = ServiceBuilder::new()
///     .layer(wechat)
///     .layer(AxumBodyLayer)
///     .layer(from_fn(audit))
///     .service(Router::new().route("/wechat", post(|| async { Reply::Success })));
/// # fn serves_hyper_requests<S: tower::Service<http::Request<hyper::body::Incoming>>>(_: S) {}
/// # serves_hyper_requests(svc);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AxumBodyLayer;

impl<S> Layer<S> for AxumBodyLayer {
    type Service = AxumBody<S>;

    fn layer(&self, inner: S) -> AxumBody<S> {
        AxumBody { inner }
    }
}

/// The service of [`AxumBodyLayer`]: calls `S` with the request's body as an
/// `axum::body::Body`.
#[derive(Clone, Copy, Debug)]
pub struct AxumBody<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for AxumBody<S>
where
    S: Service<Request<axum_core::body::Body>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum_core::BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> S::Future {
        self.inner.call(req.map(axum_core::body::Body::new))
    }
}
