//! Pass-through mode (issue 13): the WeChat layer in front of ordinary axum handlers, routers
//! and HTTP services, behind real servers on 127.0.0.1 driven by a real HTTP client, and
//! compared with the typed mode answering the same requests.

mod common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use common::*;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tower::{service_fn, ServiceExt};
use wechat_push::replay::{MemoryReplayStore, ReplayStore, Seen};
use wechat_push::store::{BoxFuture, StoreError};
use wechat_push::{crypto, signature, Rejection, WechatLayer};

/// Every wait of these tests is bounded by this.
const PATIENCE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Servers, a client, bodies.

/// Serves `router` with `axum::serve` on a fresh loopback port until the test ends.
async fn serve_axum(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A request body: whole (with its exact length, so sent with `Content-Length`), in chunks of
/// unknown total length (sent chunked), or failing when read.
#[derive(Clone, Debug)]
enum TestBody {
    Whole(Option<Bytes>),
    Chunks(VecDeque<Bytes>),
    Fails,
}

impl TestBody {
    fn whole(body: impl Into<Bytes>) -> Self {
        Self::Whole(Some(body.into()))
    }

    fn chunks(body: impl Into<Bytes>, size: usize) -> Self {
        let body: Bytes = body.into();
        Self::Chunks(
            (0..body.len())
                .step_by(size)
                .map(|at| body.slice(at..(at + size).min(body.len())))
                .collect(),
        )
    }
}

impl http_body::Body for TestBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(match self.get_mut() {
            Self::Whole(body) => body.take().map(|b| Ok(Frame::data(b))),
            Self::Chunks(chunks) => chunks.pop_front().map(|b| Ok(Frame::data(b))),
            Self::Fails => Some(Err(std::io::Error::other("connection reset"))),
        })
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Whole(body) => SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Chunks(_) | Self::Fails => SizeHint::default(),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Whole(None))
    }
}

/// A request to `/wechat?{query}` as WeChat sends it (`Content-Type: text/xml`, also for JSON
/// pushes: the layer says what the handler gets).
fn push(method: Method, query: &str, body: TestBody) -> Request<TestBody> {
    Request::builder()
        .method(method)
        .uri(format!("/wechat?{query}"))
        .header(header::CONTENT_TYPE, "text/xml")
        .body(body)
        .unwrap()
}

/// `case`'s plaintext push in `format` (`"xml"` or `"json"`).
fn plain_push(case: &Case, format: &str) -> Request<TestBody> {
    let body = s(case.format(format), "plaintext").to_owned();
    push(Method::POST, &case.plain_query(), TestBody::whole(body))
}

/// What came back: the parts these tests compare.
#[derive(Clone, Debug, PartialEq)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    /// `None` over the wire: extensions stay in the server.
    rejection: Option<Rejection>,
}

impl Answer {
    async fn read<B>(response: http::Response<B>) -> Self
    where
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(PATIENCE, body.collect())
            .await
            .expect("the body in time")
            .unwrap()
            .to_bytes();
        Self::new(parts, body)
    }

    fn new(parts: http::response::Parts, body: Bytes) -> Self {
        Self {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
            rejection: parts.extensions.get::<Rejection>().cloned(),
        }
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// What a client sees of a rejection: status, reason, `Content-Type`, and `Allow` on a 405.
    /// (axum's method router adds `Allow: POST` to whatever its fallback answers, so a GET
    /// answered by the layer behind `post(h).layer(..)` carries one: axum's, not compared.)
    fn seen_by_client(&self) -> (StatusCode, String, Option<&str>, Option<&str>) {
        let allow = (self.status == StatusCode::METHOD_NOT_ALLOWED)
            .then(|| self.header(header::ALLOW))
            .flatten();
        (
            self.status,
            self.body.clone(),
            self.header(header::CONTENT_TYPE),
            allow,
        )
    }
}

/// Sends `req` (its path and query) to the server on `addr` with hyper-util's client.
async fn fetch(addr: SocketAddr, req: Request<TestBody>) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<TestBody>();
    let (mut parts, body) = req.into_parts();
    parts.uri = format!("http://{addr}{}", parts.uri.path_and_query().unwrap())
        .parse()
        .unwrap();
    let res = tokio::time::timeout(PATIENCE, client.request(Request::from_parts(parts, body)))
        .await
        .expect("an answer in time")
        .expect("an answer");
    Answer::read(res).await
}

/// Calls `svc` in process (no server): the answer with its extensions.
async fn call<S, B>(svc: S, req: Request<TestBody>) -> Answer
where
    S: tower::Service<Request<TestBody>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let res = tokio::time::timeout(PATIENCE, svc.oneshot(req))
        .await
        .expect("an answer in time")
        .unwrap();
    Answer::read(res).await
}

/// An axum handler that must never run: the layer answers these requests itself.
async fn must_not_run() -> &'static str {
    panic!("the handler must not be called for this request")
}

/// The pass-through layer in front of an axum router whose only handler panics.
fn panicking_router(layer: WechatLayer) -> Router {
    Router::new().route("/wechat", post(must_not_run).layer(layer.pass_through()))
}

/// A replay store that always fails.
struct BrokenStore;

impl ReplayStore for BrokenStore {
    fn check<'a>(
        &'a self,
        _: &'a str,
        _: [u8; 20],
        _: Duration,
    ) -> BoxFuture<'a, Result<Seen, StoreError>> {
        Box::pin(async { Err(StoreError::new("the store is down")) })
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Every row of the rejection table, the same in both modes.

/// One row of the README's rejection table: a layer, a request, what it must be answered.
struct Row {
    name: &'static str,
    layer: Box<dyn Fn() -> WechatLayer>,
    method: Method,
    query: String,
    body: TestBody,
    status: StatusCode,
    rejection: fn(&Rejection) -> bool,
    /// Whether a real client can send it (a body failing mid-way cannot be sent).
    over_the_wire: bool,
}

impl Row {
    fn request(&self) -> Request<TestBody> {
        push(self.method.clone(), &self.query, self.body.clone())
    }
}

fn rows() -> Vec<Row> {
    let v = vectors();
    let case = Case::new(0);
    let xml = case.format("xml").clone();
    let ts = case.timestamp();
    let plain = case.plain_query();
    let plaintext = s(&xml, "plaintext").to_owned();
    let layer = |f: fn(WechatLayer) -> WechatLayer| -> Box<dyn Fn() -> WechatLayer> {
        Box::new(move || f(Case::new(0).layer()))
    };
    let row = |name, method, query: &str, body: &str, status, rejection| Row {
        name,
        layer: layer(|l| l),
        method,
        query: query.to_owned(),
        body: TestBody::whole(body.to_owned()),
        status,
        rejection,
        over_the_wire: true,
    };
    let bad_msg_sig = &v["negative_cases"][1];
    let other_appid = v["negative_cases"][0].clone();
    let garbage = "QUJD";
    let garbage_sig = signature::sign_message(case.token(), &ts.to_string(), case.nonce(), garbage);
    vec![
        row(
            "PUT",
            Method::PUT,
            &plain,
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            |r| *r == Rejection::MethodNotAllowed,
        ),
        row(
            "DELETE",
            Method::DELETE,
            &plain,
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            |r| *r == Rejection::MethodNotAllowed,
        ),
        row(
            "no query",
            Method::POST,
            "",
            &plaintext,
            StatusCode::UNAUTHORIZED,
            |r| *r == Rejection::MissingSignature("timestamp"),
        ),
        row(
            "no nonce",
            Method::POST,
            &format!("signature=00&timestamp={ts}"),
            &plaintext,
            StatusCode::UNAUTHORIZED,
            |r| *r == Rejection::MissingSignature("nonce"),
        ),
        row(
            "bad signature",
            Method::POST,
            &plain_query("OtherToken", &ts.to_string(), case.nonce()),
            &plaintext,
            StatusCode::UNAUTHORIZED,
            |r| *r == Rejection::BadSignature,
        ),
        Row {
            layer: Box::new(move || Case::new(0).layer().clock(move || ts + 301)),
            ..row(
                "stale timestamp",
                Method::POST,
                &plain,
                &plaintext,
                StatusCode::UNAUTHORIZED,
                |r| matches!(r, Rejection::StaleTimestamp { timestamp: 1714200000, tolerance } if tolerance.as_secs() == 300),
            )
        },
        row(
            "bad msg_signature",
            Method::POST,
            &format!(
                "{}&encrypt_type=aes&msg_signature={}",
                plain_query(
                    s(bad_msg_sig, "token"),
                    s(bad_msg_sig, "timestamp"),
                    s(bad_msg_sig, "nonce")
                ),
                s(bad_msg_sig, "msg_signature")
            ),
            s(bad_msg_sig, "request_body_safe"),
            StatusCode::UNAUTHORIZED,
            |r| *r == Rejection::BadMsgSignature,
        ),
        row(
            "Encrypt without msg_signature",
            Method::POST,
            &plain,
            s(&xml, "request_body_safe"),
            StatusCode::UNAUTHORIZED,
            |r| *r == Rejection::MissingMsgSignature,
        ),
        Row {
            layer: layer(|l| l.require_encryption(true)),
            ..row(
                "plaintext while encryption is required",
                Method::POST,
                &plain,
                &plaintext,
                StatusCode::UNAUTHORIZED,
                |r| *r == Rejection::EncryptionRequired,
            )
        },
        row(
            "repeated query parameter",
            Method::POST,
            &format!("{plain}&nonce=2"),
            &plaintext,
            StatusCode::BAD_REQUEST,
            |r| matches!(r, Rejection::Query(_)),
        ),
        row(
            "badly encoded query parameter",
            Method::POST,
            &format!("{plain}&openid=%zz"),
            &plaintext,
            StatusCode::BAD_REQUEST,
            |r| matches!(r, Rejection::Query(_)),
        ),
        row(
            "GET without echostr",
            Method::GET,
            &plain,
            "",
            StatusCode::BAD_REQUEST,
            |r| *r == Rejection::MissingEchostr,
        ),
        row(
            "body not XML",
            Method::POST,
            &plain,
            "not xml",
            StatusCode::BAD_REQUEST,
            |r| matches!(r, Rejection::Malformed(_)),
        ),
        row(
            "empty body",
            Method::POST,
            &plain,
            "",
            StatusCode::BAD_REQUEST,
            |r| matches!(r, Rejection::Malformed(_)),
        ),
        row(
            "Encrypt does not decrypt",
            Method::POST,
            &format!("{plain}&encrypt_type=aes&msg_signature={garbage_sig}"),
            &format!("<xml><Encrypt><![CDATA[{garbage}]]></Encrypt></xml>"),
            StatusCode::BAD_REQUEST,
            |r| matches!(r, Rejection::Decrypt(_)),
        ),
        Row {
            layer: Box::new(move || {
                let neg = &other_appid;
                WechatLayer::new(s(neg, "token"))
                    .unwrap()
                    .encryption(
                        wechat_push::EncodingAesKey::new(s(neg, "encoding_aes_key")).unwrap(),
                        s(neg, "configured_appid"),
                    )
                    .unwrap()
                    .timestamp_tolerance(None)
            }),
            ..row(
                "Encrypt for another AppID",
                Method::POST,
                &format!(
                    "{}&encrypt_type=aes&msg_signature={}",
                    plain_query(
                        s(&v["negative_cases"][0], "token"),
                        s(&v["negative_cases"][0], "timestamp"),
                        s(&v["negative_cases"][0], "nonce")
                    ),
                    s(&v["negative_cases"][0], "msg_signature")
                ),
                s(&v["negative_cases"][0], "request_body_safe"),
                StatusCode::BAD_REQUEST,
                |r| *r == Rejection::Decrypt(crypto::DecryptError::AppIdMismatch),
            )
        },
        row(
            "encrypt_type=aes without Encrypt",
            Method::POST,
            s(&xml, "query"),
            &plaintext,
            StatusCode::BAD_REQUEST,
            |r| *r == Rejection::MissingEncrypt,
        ),
        Row {
            layer: Box::new(move || {
                WechatLayer::new(Case::new(0).token())
                    .unwrap()
                    .clock(move || ts)
            }),
            ..row(
                "encrypted push, no key configured",
                Method::POST,
                s(&xml, "query"),
                s(&xml, "request_body_safe"),
                StatusCode::BAD_REQUEST,
                |r| *r == Rejection::EncryptionNotConfigured,
            )
        },
        Row {
            layer: layer(|l| l.body_limit(100)),
            ..row(
                "Content-Length over the limit",
                Method::POST,
                &plain,
                &plaintext,
                StatusCode::PAYLOAD_TOO_LARGE,
                |r| *r == Rejection::BodyTooLarge { limit: 100 },
            )
        },
        Row {
            layer: layer(|l| l.body_limit(100)),
            body: TestBody::chunks(plaintext.clone(), 30),
            ..row(
                "streamed body over the limit",
                Method::POST,
                &plain,
                "",
                StatusCode::PAYLOAD_TOO_LARGE,
                |r| *r == Rejection::BodyTooLarge { limit: 100 },
            )
        },
        Row {
            body: TestBody::Fails,
            over_the_wire: false,
            ..row(
                "body fails mid-way",
                Method::POST,
                &plain,
                "",
                StatusCode::BAD_REQUEST,
                |r| *r == Rejection::BodyRead,
            )
        },
        Row {
            layer: layer(|l| l.replay_guard(BrokenStore)),
            ..row(
                "replay store down",
                Method::POST,
                &plain,
                &plaintext,
                StatusCode::SERVICE_UNAVAILABLE,
                |r| *r == Rejection::Store,
            )
        },
    ]
}

/// Each row, in process and over the wire, through the pass-through layer in front of an axum
/// router: the status, reason, headers and `Rejection` of the typed mode.
#[tokio::test]
async fn every_rejection_is_the_typed_one_in_front_of_a_router() {
    let rows = rows();
    assert_eq!(rows.len(), 22);
    for row in &rows {
        let name = row.name;
        let typed = call(
            (row.layer)().layer(service_fn(must_not_be_called)),
            row.request(),
        )
        .await;
        let rejection = typed.rejection.clone().expect("a Rejection extension");
        assert!((row.rejection)(&rejection), "{name}: {rejection:?}");
        assert_eq!(typed.status, row.status, "{name}");
        assert_eq!(typed.body, rejection.to_string(), "{name}");
        assert_eq!(
            typed.header(header::CONTENT_TYPE),
            Some("text/plain; charset=utf-8"),
            "{name}"
        );
        let allow = (row.status == StatusCode::METHOD_NOT_ALLOWED).then_some("GET, POST");
        assert_eq!(typed.header(header::ALLOW), allow, "{name}");

        // In process: the router's answer, extensions included.
        let passed = call(panicking_router((row.layer)()), row.request()).await;
        assert_eq!(passed.rejection, typed.rejection, "{name}");
        assert_eq!(passed.seen_by_client(), typed.seen_by_client(), "{name}");

        // Over the wire, axum::serve and a real client.
        if row.over_the_wire {
            let addr = serve_axum(panicking_router((row.layer)())).await;
            let wire = fetch(addr, row.request()).await;
            assert_eq!(wire.seen_by_client(), typed.seen_by_client(), "{name}");
            assert_eq!(
                wire.header(header::CONTENT_LENGTH),
                Some(typed.body.len().to_string().as_str()),
                "{name}"
            );
        }
    }
}

/// The replay guard's row: the first push is handled, the same query with another body is
/// refused with the typed mode's 401, in process and over the wire.
#[tokio::test]
async fn a_replayed_signature_is_the_typed_401() {
    let case = Case::new(0);
    let query = case.plain_query();
    let genuine = s(case.format("xml"), "plaintext").to_owned();
    let forged = genuine.replace("hello", "forged");
    let guarded = || case.layer().replay_guard(MemoryReplayStore::new(100));
    let genuine_push = || push(Method::POST, &query, TestBody::whole(genuine.clone()));
    let forged_push = || push(Method::POST, &query, TestBody::whole(forged.clone()));

    let typed_calls = Counter::default();
    let typed = guarded().layer(service_fn({
        let calls = typed_calls.clone();
        move |req| {
            calls.hit();
            echo(req)
        }
    }));
    assert_eq!(
        call(typed.clone(), genuine_push()).await.status,
        StatusCode::OK
    );
    let refused = call(typed.clone(), forged_push()).await;
    assert_eq!(refused.rejection, Some(Rejection::ReplayedSignature));
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (StatusCode::UNAUTHORIZED, "replayed signature")
    );
    // The same body again is a retry, not a replay.
    assert_eq!(call(typed, genuine_push()).await.status, StatusCode::OK);
    assert_eq!(typed_calls.get(), 2);

    let passed_calls = Counter::default();
    let router = || {
        let calls = passed_calls.clone();
        Router::new().route(
            "/wechat",
            post(move || async move {
                calls.hit();
                "success"
            })
            .layer(guarded().pass_through()),
        )
    };
    let in_process = router();
    assert_eq!(
        call(in_process.clone(), genuine_push()).await.status,
        StatusCode::OK
    );
    let passed = call(in_process.clone(), forged_push()).await;
    assert_eq!(passed.rejection, refused.rejection);
    assert_eq!(passed.seen_by_client(), refused.seen_by_client());
    assert_eq!(
        call(in_process, genuine_push()).await.status,
        StatusCode::OK
    );
    assert_eq!(passed_calls.get(), 2);

    let addr = serve_axum(router()).await;
    assert_eq!(fetch(addr, genuine_push()).await.status, StatusCode::OK);
    let wire = fetch(addr, forged_push()).await;
    assert_eq!(wire.seen_by_client(), refused.seen_by_client());
    assert_eq!(fetch(addr, genuine_push()).await.status, StatusCode::OK);
    assert_eq!(passed_calls.get(), 4);
}

/// A `Content-Length` over the limit is refused before the router's body is read at all.
#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_unread() {
    struct Unreadable;
    impl http_body::Body for Unreadable {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            panic!("the body must not be read")
        }
    }
    let case = Case::new(0);
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/wechat?{}", case.plain_query()))
        .header(header::CONTENT_LENGTH, "2000000")
        .body(Unreadable)
        .unwrap();
    let res = tokio::time::timeout(PATIENCE, panicking_router(case.layer()).oneshot(req))
        .await
        .unwrap()
        .unwrap();
    let answer = Answer::read(res).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        answer.rejection,
        Some(Rejection::BodyTooLarge {
            limit: wechat_push::DEFAULT_BODY_LIMIT
        })
    );
}

/// Polls `future` on this thread, outside any Tokio runtime, for at most [`PATIENCE`].
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let start = std::time::Instant::now();
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let left = PATIENCE
            .checked_sub(start.elapsed())
            .expect("an answer in time");
        std::thread::park_timeout(left);
    }
}

/// Calls `svc` outside a runtime.
fn call_outside_runtime<S, B>(svc: S, req: Request<TestBody>) -> Answer
where
    S: tower::Service<Request<TestBody>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    assert!(tokio::runtime::Handle::try_current().is_err());
    block_on(async {
        let (parts, body) = svc.oneshot(req).await.unwrap().into_parts();
        Answer::new(parts, body.collect().await.unwrap().to_bytes())
    })
}

/// The row for the retry options served outside a Tokio runtime: 500, as in the typed mode.
#[cfg(feature = "tokio")]
#[test]
fn retry_options_outside_a_runtime_are_the_typed_500() {
    use wechat_push::dedupe::MemoryDedupeStore;

    let case = Case::new(0);
    let request = || plain_push(&case, "xml");
    let dedupe = || case.layer().dedupe(MemoryDedupeStore::new(10));
    let deadline = || case.layer().ack_deadline(Duration::from_secs(1));

    let typed = call_outside_runtime(dedupe().layer(service_fn(must_not_be_called)), request());
    assert_eq!(typed.rejection, Some(Rejection::NoRuntime));
    assert_eq!(typed.status, StatusCode::INTERNAL_SERVER_ERROR);
    let router = Router::new().route("/wechat", post(must_not_run).layer(dedupe().pass_through()));
    let passed = call_outside_runtime(router, request());
    assert_eq!(passed.rejection, typed.rejection);
    assert_eq!(passed.seen_by_client(), typed.seen_by_client());

    let typed = call_outside_runtime(deadline().layer(service_fn(must_not_be_called)), request());
    assert_eq!(typed.rejection, Some(Rejection::NoRuntime));
    let router = Router::new().route(
        "/wechat",
        post(must_not_run).layer(deadline().pass_through()),
    );
    let passed = call_outside_runtime(router, request());
    assert_eq!(passed.rejection, typed.rejection);
    assert_eq!(passed.seen_by_client(), typed.seen_by_client());
}
