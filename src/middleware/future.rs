//! The response futures of [`Wechat`](crate::Wechat): [`ResponseFuture`] (typed) and
//! [`PassThroughFuture`], one state machine underneath: collect the body, open the push, run
//! the steps before the handler, call it (directly, or behind the retry options) or queue the
//! push (queue mode), finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::Service;

use super::apps::App;
use super::collect::{collect, Collected};
use super::config::Config;
use super::mode::{Answer, TypedHandler};
use super::open::{open, Opened, Pending, Recipient, Step};
use super::pass_through::{Adapter, PassBody, PassOutcome};
use super::retry;
use crate::body;
use crate::message::Message;
use crate::query::CallbackQuery;
use crate::rejection::Rejection;
use crate::reply::Reply;
use crate::store::BoxFuture;

pin_project! {
    /// The response future of [`Wechat`](crate::Wechat) in the typed mode.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<Message>>,
    {
        #[pin]
        engine: Engine<S, B, Reply>,
    }
}

pin_project! {
    /// The response future of [`Wechat`](crate::Wechat) in
    /// [pass-through](crate::WechatLayer::pass_through) mode, around a handler answering
    /// `Response<RB>`.
    pub struct PassThroughFuture<S, B, RB>
    where
        S: Service<Request<body::Body>, Response = Response<RB>>,
        RB: Body,
    {
        #[pin]
        engine: Engine<Adapter<S>, B, PassOutcome<RB>>,
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<Message>>,
{
    pub(crate) fn new(engine: Engine<S, B, Reply>) -> Self {
        Self { engine }
    }
}

impl<S, B, RB> PassThroughFuture<S, B, RB>
where
    S: Service<Request<body::Body>, Response = Response<RB>>,
    RB: Body,
{
    pub(crate) fn new(engine: Engine<Adapter<S>, B, PassOutcome<RB>>) -> Self {
        Self { engine }
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: TypedHandler,
    B: Body,
{
    type Output = Result<Response<body::Body>, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().engine.poll(cx)
    }
}

impl<S, B, RB> Future for PassThroughFuture<S, B, RB>
where
    S: Service<Request<body::Body>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Body + Send + 'static,
    B: Body,
{
    type Output = Result<Response<PassBody<RB>>, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().engine.poll(cx)
    }
}

pin_project! {
    /// The state machine of both futures, around `H` (the handler, seen as typed) whose
    /// answers become `A`s.
    pub(crate) struct Engine<H, B, A>
    where
        H: Service<Request<Message>>,
    {
        #[pin]
        state: State<H, B, A>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<H, B, A>
    where
        H: Service<Request<Message>>,
    {
        /// Reading the body, up to the limit.
        Collect {
            #[pin]
            body: B,
            buf: Collected,
            pending: Option<Pending<H>>,
        },
        /// The replay guard and the ticket store, before the handler.
        Step {
            step: Step,
            opened: Option<Opened<H>>,
        },
        /// The handler is working on the message (no retry option on: no box).
        Call {
            #[pin]
            future: H::Future,
            to: Recipient,
        },
        /// The handler is working behind dedupe or the ack deadline.
        Retry {
            future: BoxFuture<'static, Result<A, H::Error>>,
            to: Recipient,
        },
        /// Queue mode: the push is being queued; `success` once it is.
        Queue {
            future: Step,
            to: Recipient,
        },
        /// The layer's own answer, or done.
        Ready {
            response: Option<Response<body::Body>>,
        },
    }
}

impl<H, B, A> Engine<H, B, A>
where
    H: Service<Request<Message>>,
{
    /// Answers `response` (a rejection, the handshake) without calling the handler.
    pub(crate) fn ready(response: Response<body::Body>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    /// Collects `body`, then opens the push and calls `inner` (polled ready).
    pub(crate) fn collect(
        body: B,
        parts: Parts,
        inner: H,
        config: Arc<Config>,
        app: Option<Arc<App>>,
        query: CallbackQuery,
    ) -> Self
    where
        B: Body,
    {
        let limit = config.body_limit;
        let expected = usize::try_from(body.size_hint().lower()).unwrap_or(limit);
        Self {
            state: State::Collect {
                body,
                buf: Collected::new(expected.min(limit)),
                pending: Some(Pending {
                    parts,
                    inner,
                    config,
                    app,
                    query,
                }),
            },
        }
    }
}

impl<H, B, A> Future for Engine<H, B, A>
where
    H: Service<Request<Message>> + Clone + Send + 'static,
    H::Future: Send + 'static,
    H::Response: Into<A> + Send + 'static,
    H::Error: Send + 'static,
    A: Answer,
    B: Body,
{
    type Output = Result<Response<A::Body>, H::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Collect { body, buf, pending } => {
                    let Some(limit) = pending.as_ref().map(|p| p.config.body_limit) else {
                        panic!("future polled after completion");
                    };
                    let next = match ready!(collect(body, buf, limit, cx)) {
                        Ok(()) => {
                            let pending = pending.take().expect("future polled after completion");
                            match open(pending, buf.as_slice(), A::KEEP_DOCUMENT) {
                                Ok((opened, Some(step))) => State::Step {
                                    step,
                                    opened: Some(opened),
                                },
                                Ok((opened, None)) => call(opened),
                                Err(rejection) => rejected(rejection),
                            }
                        }
                        Err(rejection) => rejected(rejection),
                    };
                    this.state.set(next);
                }
                StateProj::Step { step, opened } => {
                    let passed = ready!(step.as_mut().poll(cx));
                    let next = match (passed, opened.take()) {
                        (Ok(()), Some(opened)) => call(opened),
                        (Err(rejection), _) => rejected(rejection),
                        (Ok(()), None) => panic!("future polled after completion"),
                    };
                    this.state.set(next);
                }
                StateProj::Call { future, to } => {
                    let answer: A = ready!({
                        let _entered = to.span.enter();
                        future.poll(cx)
                    })?
                    .into();
                    return Poll::Ready(Ok(finish(to, answer)));
                }
                StateProj::Retry { future, to } => {
                    let answer = ready!({
                        let _entered = to.span.enter();
                        future.as_mut().poll(cx)
                    })?;
                    return Poll::Ready(Ok(finish(to, answer)));
                }
                StateProj::Queue { future, to } => {
                    let queued = ready!({
                        let _entered = to.span.enter();
                        future.as_mut().poll(cx)
                    });
                    return Poll::Ready(Ok(match queued {
                        Ok(()) => finish(to, A::recorded(Reply::Success)),
                        Err(rejection) => A::own(rejection.into_response()),
                    }));
                }
                StateProj::Ready { response } => {
                    let response = response.take().expect("future polled after completion");
                    return Poll::Ready(Ok(A::own(response)));
                }
            }
        }
    }
}

/// Calls the handler: directly when no retry option is on, else behind them (boxed); in queue
/// mode, queues the push instead.
fn call<H, B, A>(opened: Opened<H>) -> State<H, B, A>
where
    H: Service<Request<Message>> + Clone + Send + 'static,
    H::Future: Send + 'static,
    H::Response: Into<A> + Send + 'static,
    H::Error: Send + 'static,
    A: Answer,
{
    let Opened {
        request,
        mut inner,
        to,
    } = opened;
    let _entered = to.span.enter();
    #[cfg(feature = "tokio")]
    if let Some(queue) = &to.config.queue {
        let future = super::queue::enqueue(queue.clone(), request);
        drop(_entered);
        return State::Queue { future, to };
    }
    if to.config.retries() {
        let future = retry::call(&to.config, inner, request);
        drop(_entered);
        State::Retry { future, to }
    } else {
        let future = inner.call(request);
        drop(_entered);
        State::Call { future, to }
    }
}

/// The response to the handler's answer, written for the push it answers.
fn finish<A: Answer>(to: &Recipient, answer: A) -> Response<A::Body> {
    match to.config.endpoint(to.app.as_deref()) {
        Ok(endpoint) => answer.finish(endpoint, &to.reply_to),
        Err(rejection) => A::own(rejection.into_response()),
    }
}

fn rejected<H, B, A>(rejection: Rejection) -> State<H, B, A>
where
    H: Service<Request<Message>>,
{
    State::Ready {
        response: Some(rejection.into_response()),
    }
}
