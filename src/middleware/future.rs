//! [`ResponseFuture`]: collect the body, open the push, call the handler, encode the reply.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::Service;

use super::layer::Config;
use super::mode::{Document, Mode, Typed};
use super::trace::PushSpan;
use crate::apps::App;
use crate::body;
use crate::endpoint::ReplyTo;
use crate::message::Message;
use crate::query::CallbackQuery;
use crate::rejection::Rejection;
use crate::replay::{self, Seen};
use crate::store::{BoxFuture, StoreError};
use crate::ticket::VerifyTicket;

pin_project! {
    /// The response future of [`Wechat`](crate::Wechat).
    pub struct ResponseFuture<S, B, M = Typed>
    where
        S: Service<Request<Message>>,
    {
        #[pin]
        state: State<S, B>,
        mode: PhantomData<fn() -> M>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<Message>>,
    {
        /// Reading the body, up to the limit.
        Collect {
            #[pin]
            body: B,
            buf: Collected,
            pending: Option<Pending<S>>,
        },
        /// The replay guard is looking the query up.
        Replay {
            check: BoxFuture<'static, Result<Seen, StoreError>>,
            // The ticket to keep next, when the push carries one.
            save: Option<BoxFuture<'static, Result<(), StoreError>>>,
            opened: Option<Opened<S>>,
        },
        /// The ticket store is keeping a `component_verify_ticket`.
        Ticket {
            save: BoxFuture<'static, Result<(), StoreError>>,
            opened: Option<Opened<S>>,
        },
        /// The handler is working on the message.
        Call {
            #[pin]
            future: S::Future,
            config: Arc<Config>,
            app: Option<Arc<App>>,
            reply_to: ReplyTo,
            span: PushSpan,
        },
        /// The layer's own answer, or done.
        Ready {
            response: Option<Response<body::Body>>,
        },
    }
}

/// What the collect state carries over to the call.
struct Pending<S> {
    parts: Parts,
    inner: S,
    config: Arc<Config>,
    /// The app the request chose, on a multi-app layer.
    app: Option<Arc<App>>,
    query: CallbackQuery,
    /// Pass-through mode: the handler's request carries the push's document as its body.
    keep_document: bool,
}

/// A verified, decoded push waiting for the handler.
struct Opened<S> {
    request: Request<Message>,
    inner: S,
    config: Arc<Config>,
    app: Option<Arc<App>>,
    reply_to: ReplyTo,
    span: PushSpan,
}

impl<S: Service<Request<Message>>> Opened<S> {
    fn call<B>(self) -> State<S, B> {
        let Opened {
            request,
            mut inner,
            config,
            app,
            reply_to,
            span,
        } = self;
        let future = {
            let _entered = span.enter();
            inner.call(request)
        };
        State::Call {
            future,
            config,
            app,
            reply_to,
            span,
        }
    }
}

impl<S, B, M> ResponseFuture<S, B, M>
where
    S: Service<Request<Message>>,
{
    pub(crate) fn ready(response: Response<body::Body>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
            mode: PhantomData,
        }
    }

    pub(crate) fn collect(
        body: B,
        parts: Parts,
        inner: S,
        config: Arc<Config>,
        app: Option<Arc<App>>,
        query: CallbackQuery,
    ) -> Self
    where
        B: Body,
        M: Mode<S::Response>,
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
                    keep_document: M::KEEP_DOCUMENT,
                }),
            },
            mode: PhantomData,
        }
    }
}

impl<S, B, M> Future for ResponseFuture<S, B, M>
where
    S: Service<Request<Message>>,
    M: Mode<S::Response>,
    B: Body,
{
    type Output = Result<Response<M::Body>, S::Error>;

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
                            start(pending.take().expect("future polled after completion"), buf)
                        }
                        Err(rejection) => Err(rejection),
                    };
                    let next = next.unwrap_or_else(rejected);
                    this.state.set(next);
                }
                StateProj::Replay {
                    check,
                    save,
                    opened,
                } => {
                    let seen = ready!(check.as_mut().poll(cx));
                    let next = match (seen, opened.take()) {
                        (Ok(Seen::First | Seen::SameBody), Some(opened)) => match save.take() {
                            Some(save) => State::Ticket {
                                save,
                                opened: Some(opened),
                            },
                            None => opened.call(),
                        },
                        (Ok(Seen::OtherBody), _) => rejected(Rejection::ReplayedSignature),
                        (Err(_), _) => rejected(Rejection::Store),
                        (Ok(_), None) => panic!("future polled after completion"),
                    };
                    this.state.set(next);
                }
                StateProj::Ticket { save, opened } => {
                    let saved = ready!(save.as_mut().poll(cx));
                    let next = match (saved, opened.take()) {
                        (Ok(()), Some(opened)) => opened.call(),
                        (Err(_), _) => rejected(Rejection::TicketStore),
                        (Ok(()), None) => panic!("future polled after completion"),
                    };
                    this.state.set(next);
                }
                StateProj::Call {
                    future,
                    config,
                    app,
                    reply_to,
                    span,
                } => {
                    let answer = ready!({
                        let _entered = span.enter();
                        future.poll(cx)
                    })?;
                    return Poll::Ready(Ok(match config.endpoint(app.as_deref()) {
                        Ok(endpoint) => M::finish(endpoint, reply_to, answer),
                        Err(rejection) => M::own(rejection.into_response()),
                    }));
                }
                StateProj::Ready { response } => {
                    let response = response.take().expect("future polled after completion");
                    return Poll::Ready(Ok(M::own(response)));
                }
            }
        }
    }
}

fn rejected<S, B>(rejection: Rejection) -> State<S, B>
where
    S: Service<Request<Message>>,
{
    State::Ready {
        response: Some(rejection.into_response()),
    }
}

/// Opens the collected push, then asks the replay guard (when configured) or calls the
/// handler.
fn start<S, B>(pending: Pending<S>, buf: &Collected) -> Result<State<S, B>, Rejection>
where
    S: Service<Request<Message>>,
{
    let Pending {
        parts,
        inner,
        config,
        app,
        query,
        keep_document,
    } = pending;
    let buf = buf.as_slice();
    let endpoint = config.endpoint(app.as_deref())?;
    let opened = match &app {
        Some(app) => app.open(query, buf)?,
        None => endpoint.open(query, buf)?,
    };
    #[cfg(feature = "tokio")]
    let dedupe_key = config.dedupe_keys.then(|| {
        crate::dedupe::scoped_dedupe_key(
            app.as_deref().map(|app| app.name().as_str()),
            opened.message(),
            opened.document(),
        )
    });
    let document = keep_document.then(|| Document(Bytes::copy_from_slice(opened.document())));
    let (message, info, reply_to) = opened.into_parts();
    let span = PushSpan::new(app.as_deref(), &info, &message);
    let save = config.tickets.as_ref().and_then(|store| {
        let ticket = VerifyTicket::from_message(&message)?;
        let (store, app_id) = (store.clone(), message.to_user().to_owned());
        let save: BoxFuture<'static, _> = Box::pin(async move { store.set(&app_id, ticket).await });
        Some(save)
    });
    // Only a plaintext push that passed every check is remembered (and its body hashed): in
    // safe mode `msg_signature` covers the body, and a retry may be sealed afresh.
    let check = match &config.replay {
        Some(store) if !info.is_encrypted() => {
            replay::admit(endpoint, info.query())?;
            Some(replay::check(store.clone(), endpoint, info.query(), buf))
        }
        _ => None,
    };
    #[cfg(feature = "tokio")]
    if config.needs_runtime && tokio::runtime::Handle::try_current().is_err() {
        return Err(Rejection::NoRuntime);
    }
    let mut request = Request::from_parts(parts, message);
    #[cfg(feature = "tokio")]
    if let Some(key) = dedupe_key {
        request
            .extensions_mut()
            .insert(crate::dedupe::DedupeKey(key));
    }
    request.extensions_mut().insert(info);
    if let Some(app) = &app {
        app.extend_request(request.extensions_mut());
        request.extensions_mut().insert(app.name().clone());
    }
    if let Some(document) = document {
        request.extensions_mut().insert(document);
    }
    let opened = Opened {
        request,
        inner,
        config,
        app,
        reply_to,
        span,
    };
    Ok(match (check, save) {
        (Some(check), save) => State::Replay {
            check,
            save,
            opened: Some(opened),
        },
        (None, Some(save)) => State::Ticket {
            save,
            opened: Some(opened),
        },
        (None, None) => opened.call(),
    })
}

/// Reads frames into `buf` until the body ends; 413 as soon as it crosses `limit`.
fn collect<B: Body>(
    mut body: Pin<&mut B>,
    buf: &mut Collected,
    limit: usize,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Rejection>> {
    loop {
        match ready!(body.as_mut().poll_frame(cx)) {
            None => return Poll::Ready(Ok(())),
            Some(Err(_)) => return Poll::Ready(Err(Rejection::BodyRead)),
            Some(Ok(frame)) => {
                // Trailers carry nothing for us.
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if buf.len().saturating_add(data.remaining()) > limit {
                    return Poll::Ready(Err(Rejection::BodyTooLarge { limit }));
                }
                buf.push(data);
            }
        }
    }
}

/// The most a second frame reserves up front for the frames still to come. The announced
/// length is only the client's word: a client that announces 1 MiB and sends a byte at a time
/// must not make the server hold 1 MiB per connection. Past this the buffer grows with the
/// data received (doubling, so a large body still costs few copies).
const RESERVE_CAP: usize = 16 * 1024;

/// The body read so far. A body that arrives in one frame, as a small push over HTTP/1.1
/// does, is kept as that frame (no copy when it is [`Bytes`]); a second frame starts a copy.
enum Collected {
    Empty {
        /// The capacity to copy into if a second frame comes: the body's announced size, at
        /// most [`RESERVE_CAP`].
        expected: usize,
    },
    One(Bytes, usize),
    Many(BytesMut),
}

impl Collected {
    /// Nothing read yet from a body announced to be `announced` bytes long.
    fn new(announced: usize) -> Self {
        Self::Empty {
            expected: announced.min(RESERVE_CAP),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Empty { .. } => 0,
            Self::One(first, _) => first.len(),
            Self::Many(buf) => buf.len(),
        }
    }

    fn push(&mut self, mut data: impl Buf) {
        if !data.has_remaining() {
            return;
        }
        match self {
            Self::Empty { expected } => {
                let expected = *expected;
                *self = Self::One(data.copy_to_bytes(data.remaining()), expected);
            }
            Self::One(first, expected) => {
                let needed = first.len().saturating_add(data.remaining());
                let mut buf = BytesMut::with_capacity(needed.max(*expected));
                buf.extend_from_slice(first);
                buf.put(data);
                *self = Self::Many(buf);
            }
            Self::Many(buf) => buf.put(data),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Empty { .. } => &[],
            Self::One(first, _) => first,
            Self::Many(buf) => buf,
        }
    }
}
