//! [`Wechat`]: the service the layer wraps around the handler.

use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, Request};
use http_body::Body;
use tower::Service;

use super::future::ResponseFuture;
use super::layer::{Config, Source, WechatLayer};
use super::mode::{Mode, Typed};
use super::response;
use crate::endpoint::Verified;
use crate::message::Message;
use crate::rejection::Rejection;

/// A WeChat push endpoint around the handler `S`. Made by [`WechatLayer`].
///
/// Requests that fail a check are answered here, without calling `S`. In the typed mode
/// (`M` = [`Typed`]) the others reach `S` as `http::Request<Message>`, with the original
/// method, URI, headers and extensions, plus a [`PushInfo`](crate::PushInfo) extension; in
/// [pass-through](WechatLayer::pass_through) mode, as an ordinary HTTP request whose body is
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

impl<S> Wechat<S> {
    /// Same as [`WechatLayer::new`].
    pub fn layer(token: impl Into<String>) -> Result<WechatLayer, crate::ConfigError> {
        WechatLayer::new(token)
    }
}

impl<S, B, M> Service<Request<B>> for Wechat<S, M>
where
    S: Service<Request<Message>> + Clone,
    M: Mode<S::Response>,
    B: Body,
{
    type Response = http::Response<M::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, M>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let config = &self.config;
        // Several apps: the one the request names, or 404; never another app's keys.
        let app = match &config.source {
            Source::One(_) => None,
            Source::Many { apps, choose } => match choose.app(apps, req.uri(), req.headers()) {
                Some(app) => Some(app),
                None => {
                    super::trace::refused(req.method(), &Rejection::UnknownApp);
                    return ResponseFuture::ready(Rejection::UnknownApp.into_response());
                }
            },
        };
        let endpoint = match config.endpoint(app.as_deref()) {
            Ok(endpoint) => endpoint,
            Err(rejection) => return ResponseFuture::ready(rejection.into_response()),
        };
        let query = match endpoint.check(req.method(), req.uri().query()) {
            Ok(Verified::Push(query)) => query,
            Ok(Verified::Handshake(echostr)) => {
                return ResponseFuture::ready(response::handshake(echostr))
            }
            Err(rejection) => {
                super::trace::refused(req.method(), &rejection);
                return ResponseFuture::ready(rejection.into_response());
            }
        };
        let limit = config.body_limit;
        if declared_length(&req) > limit as u64 {
            return ResponseFuture::ready(Rejection::BodyTooLarge { limit }.into_response());
        }
        // The instance polled ready goes into the future; a clone stays for the next call
        // (tower's "be careful when cloning inner services").
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        ResponseFuture::collect(body, parts, inner, self.config.clone(), app, query)
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
