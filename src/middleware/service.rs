//! [`Wechat`]: the service the layer wraps around the handler.

use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{header, Request, Response};
use http_body::Body;
use tower::Service;

use super::apps::App;
use super::config::{Config, Source};
use super::future::{Engine, PassThroughFuture, ResponseFuture};
use super::mode::{Typed, TypedHandler};
use super::pass_through::{Adapter, PassBody, PassThrough};
use super::response;
use crate::body;
use crate::endpoint::Verified;
use crate::query::CallbackQuery;
use crate::rejection::Rejection;

/// A WeChat push endpoint around the handler `S`. Made by [`WechatLayer`](crate::WechatLayer).
///
/// Requests that fail a check are answered here, without calling `S`. In the typed mode
/// (`M` = [`Typed`]) the others reach `S` as `http::Request<Message>`, with the original
/// method, URI, headers and extensions, plus a [`PushInfo`](crate::PushInfo) extension; in
/// [pass-through](crate::WechatLayer::pass_through) mode, as an ordinary HTTP request whose body is
/// the push's document.
#[derive(Debug)]
pub struct Wechat<S, M = Typed> {
    inner: S,
    config: Arc<Config>,
    mode: PhantomData<fn() -> M>,
}

impl<S: Clone, M> Clone for Wechat<S, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
            mode: PhantomData,
        }
    }
}

impl<S, M> Wechat<S, M> {
    pub(crate) fn from_config(inner: S, config: Arc<Config>) -> Self {
        Self {
            inner,
            config,
            mode: PhantomData,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The typed mode: the handler takes `Request<Message>` and answers anything `Into<Reply>`
/// (see [`TypedHandler`]).
///
/// The handler is `Send + 'static` (and so are its future, answer and error) because
/// [dedupe](crate::WechatLayer::dedupe) and the
/// [ack deadline](crate::WechatLayer::ack_deadline), run-time
/// settings, may move it into a task of its own; with neither on it is called directly.
impl<S, B> Service<Request<B>> for Wechat<S, Typed>
where
    S: TypedHandler,
    B: Body,
{
    type Response = Response<body::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ResponseFuture::new(match self.accept(req) {
            Ok(Accepted {
                parts,
                body,
                inner,
                app,
                query,
            }) => Engine::collect(body, parts, inner, self.config.clone(), app, query),
            Err(response) => Engine::ready(response),
        })
    }
}

/// Pass-through mode: the handler is an HTTP service (an axum handler or router) answering
/// `Response<RB>`. `Send + 'static` for the same reason as in the typed mode.
impl<S, B, RB> Service<Request<B>> for Wechat<S, PassThrough>
where
    S: Service<Request<body::Body>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Body + Send + 'static,
    B: Body,
{
    type Response = Response<PassBody<RB>>;
    type Error = S::Error;
    type Future = PassThroughFuture<S, B, RB>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        PassThroughFuture::new(match self.accept(req) {
            Ok(Accepted {
                parts,
                body,
                inner,
                app,
                query,
            }) => {
                let config = &self.config;
                let inner = Adapter::new(inner, config.dedupe_keys(), config.body_limit);
                Engine::collect(body, parts, inner, config.clone(), app, query)
            }
            Err(response) => Engine::ready(response),
        })
    }
}

/// A request whose query passed the checks, with the handler instance polled ready.
struct Accepted<S, B> {
    parts: Parts,
    body: B,
    inner: S,
    app: Option<Arc<App>>,
    query: CallbackQuery,
}

impl<S: Clone, M> Wechat<S, M> {
    /// The checks before the body: the app, the signature (answering the handshake), the
    /// declared length. `Err` is the layer's own answer.
    // The `Ok` side (the request's head) is larger still; either moves once, into the future.
    #[allow(clippy::result_large_err)]
    fn accept<B: Body>(&mut self, req: Request<B>) -> Result<Accepted<S, B>, Response<body::Body>> {
        let config = &self.config;
        // Several apps: the one the request names, or 404; never another app's keys.
        let app = match &config.source {
            Source::One(_) => None,
            Source::Many { apps, choose } => match choose.app(apps, req.uri(), req.headers()) {
                Some(app) => Some(app),
                None => {
                    super::trace::refused(req.method(), &Rejection::UnknownApp);
                    return Err(Rejection::UnknownApp.into_response());
                }
            },
        };
        let endpoint = match config.endpoint(app.as_deref()) {
            Ok(endpoint) => endpoint,
            Err(rejection) => return Err(rejection.into_response()),
        };
        let query = match endpoint.check(req.method(), req.uri().query()) {
            Ok(Verified::Push(query)) => query,
            Ok(Verified::Handshake(echostr)) => return Err(response::handshake(echostr)),
            Err(rejection) => {
                super::trace::refused(req.method(), &rejection);
                return Err(rejection.into_response());
            }
        };
        let limit = config.body_limit;
        if declared_length(&req) > limit as u64 {
            return Err(Rejection::BodyTooLarge { limit }.into_response());
        }
        // The instance polled ready goes into the future; a clone stays for the next call
        // (tower's "be careful when cloning inner services").
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        Ok(Accepted {
            parts,
            body,
            inner,
            app,
            query,
        })
    }
}

/// The body length announced by `Content-Length` or by the body itself.
fn declared_length<B: Body>(req: &Request<B>) -> u64 {
    let header = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let hint = req.body().size_hint().lower();
    header.unwrap_or(0).max(hint)
}
