//! Pass-through mode (issue 13): the WeChat layer in front of ordinary axum handlers, routers
//! and HTTP services, behind real servers on 127.0.0.1 driven by a real HTTP client, and
//! compared with the typed mode answering the same requests.
//!
//! The sections follow issue 13's list: 1. the rejection table, 2. real servers, 3. answers
//! passed through untouched, 4. the same answers as the typed mode, 5. other services in
//! front of which the layer goes, 6. the retry options, 7. the extractors without the layer.
//! Tests of handlers taking `Message`/`PushInfo` or returning `Reply` need the `axum` feature,
//! the retry options `tokio`, the trace layer's callbacks `tracing` (CI runs them all with
//! `--all-features`); the rest runs with any features.

mod common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
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
use wechat_push::clock::FixedClock;
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

/// `case`'s safe-mode push in `format`.
fn safe_push(case: &Case, format: &str) -> Request<TestBody> {
    let f = case.format(format);
    let body = s(f, "request_body_safe").to_owned();
    push(Method::POST, s(f, "query"), TestBody::whole(body))
}

/// The user of the vectors' pushes, and the account they were sent to.
const OPENID: &str = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY";
const ACCOUNT: &str = "gh_97417a04a28d";

/// `case`'s key sealing `document` into a safe-mode push in `format`, signed for `case`'s
/// timestamp and nonce: a push of any content, as WeChat would send it.
fn seal_push(case: &Case, format: &str, document: &str) -> Request<TestBody> {
    let encrypt = crypto::encrypt(&case.key(), document.as_bytes(), case.appid()).unwrap();
    let ts = case.timestamp().to_string();
    let msg_signature = signature::sign_message(case.token(), &ts, case.nonce(), &encrypt);
    let query = format!(
        "{}&openid={OPENID}&encrypt_type=aes&msg_signature={msg_signature}",
        case.plain_query()
    );
    let body = match format {
        "xml" => format!(
            "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ),
        _ => format!(r#"{{"ToUserName":"{ACCOUNT}","Encrypt":"{encrypt}"}}"#),
    };
    push(Method::POST, &query, TestBody::whole(body))
}

/// A text push from the vectors' user, in `format`, with this content and `MsgId`.
fn text_push_document(format: &str, content: &str, msg_id: u64) -> String {
    match format {
        "xml" => format!(
            "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName><CreateTime>1714200000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
        ),
        _ => format!(
            r#"{{"ToUserName":"{ACCOUNT}","FromUserName":"{OPENID}","CreateTime":1714200000,"MsgType":"text","Content":"{content}","MsgId":{msg_id}}}"#
        ),
    }
}

/// `req`, sent to `path` instead of `/wechat` (same query, same body).
fn to_path(req: Request<TestBody>, path: &str) -> Request<TestBody> {
    let (mut parts, body) = req.into_parts();
    parts.uri = format!("{path}?{}", parts.uri.query().unwrap_or(""))
        .parse()
        .unwrap();
    Request::from_parts(parts, body)
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
            layer: Box::new(move || Case::new(0).layer().clock(FixedClock::at_unix(ts + 301))),
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
                    .clock(FixedClock::at_unix(ts))
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

/// The retry options need a Tokio runtime: served outside one, the same 500 in both modes.
#[cfg(feature = "tokio")]
mod outside_a_runtime {
    use std::future::Future;

    use super::*;
    use wechat_push::dedupe::MemoryDedupeStore;

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
    #[test]
    fn retry_options_outside_a_runtime_are_the_typed_500() {
        let case = Case::new(0);
        let request = || plain_push(&case, "xml");
        let dedupe = || case.layer().dedupe(MemoryDedupeStore::new(10));
        let deadline = || case.layer().ack_deadline(Duration::from_secs(1));

        let typed = call_outside_runtime(dedupe().layer(service_fn(must_not_be_called)), request());
        assert_eq!(typed.rejection, Some(Rejection::NoRuntime));
        assert_eq!(typed.status, StatusCode::INTERNAL_SERVER_ERROR);
        let router =
            Router::new().route("/wechat", post(must_not_run).layer(dedupe().pass_through()));
        let passed = call_outside_runtime(router, request());
        assert_eq!(passed.rejection, typed.rejection);
        assert_eq!(passed.seen_by_client(), typed.seen_by_client());

        let typed =
            call_outside_runtime(deadline().layer(service_fn(must_not_be_called)), request());
        assert_eq!(typed.rejection, Some(Rejection::NoRuntime));
        let router = Router::new().route(
            "/wechat",
            post(must_not_run).layer(deadline().pass_through()),
        );
        let passed = call_outside_runtime(router, request());
        assert_eq!(passed.rejection, typed.rejection);
        assert_eq!(passed.seen_by_client(), typed.seen_by_client());
    }
}

// ---------------------------------------------------------------------------------------------
// Replies, and handlers that write their own.

/// A text reply to the vectors' user, in `format`, written out by hand.
fn text_reply(format: &str, content: &str, create_time: u64) -> String {
    match format {
        "xml" => format!(
            "<xml><ToUserName><![CDATA[{OPENID}]]></ToUserName><FromUserName><![CDATA[{ACCOUNT}]]></FromUserName><CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content></xml>"
        ),
        "json" => format!(
            r#"{{"ToUserName":"{OPENID}","FromUserName":"{ACCOUNT}","CreateTime":{create_time},"MsgType":"text","Content":"{content}"}}"#
        ),
        other => panic!("no format {other}"),
    }
}

fn content_type(format: &str) -> &'static str {
    match format {
        "xml" => "application/xml",
        "json" => "application/json",
        other => panic!("no format {other}"),
    }
}

/// Opens a sealed answer to one of `case`'s safe-mode pushes in `format`: a 200 in that
/// format, whose `MsgSignature` verifies with the token and whose `Encrypt` decrypts with the
/// key, for the AppID. Answers the document inside.
fn open_sealed(case: &Case, format: &str, answer: &Answer) -> String {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(
        answer.header(header::CONTENT_TYPE),
        Some(content_type(format)),
        "{answer:?}"
    );
    let (encrypt, msg_signature, timestamp, nonce) = if format == "json" {
        let v: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        (
            v["Encrypt"].as_str().unwrap().to_owned(),
            v["MsgSignature"].as_str().unwrap().to_owned(),
            v["TimeStamp"].as_u64().unwrap().to_string(),
            v["Nonce"].as_str().unwrap().to_owned(),
        )
    } else {
        let field = |tag: &str| {
            let inner = answer
                .body
                .split(&format!("<{tag}>"))
                .nth(1)
                .unwrap_or_else(|| panic!("no {tag} in {}", answer.body))
                .split(&format!("</{tag}>"))
                .next()
                .unwrap();
            inner
                .trim_start_matches("<![CDATA[")
                .trim_end_matches("]]>")
                .to_owned()
        };
        assert!(answer.body.starts_with("<xml>"), "{}", answer.body);
        (
            field("Encrypt"),
            field("MsgSignature"),
            field("TimeStamp"),
            field("Nonce"),
        )
    };
    assert!(
        signature::verify_message(&msg_signature, case.token(), &timestamp, &nonce, &encrypt),
        "the sealed answer's MsgSignature verifies: {}",
        answer.body
    );
    let opened = crypto::decrypt(&case.key(), &encrypt, case.appid()).unwrap();
    opened.as_str().to_owned()
}

/// What handlers or layers noted, in order.
type Shared<T> = Arc<Mutex<Vec<T>>>;

/// What a raw handler saw of its request.
#[derive(Clone, Debug, PartialEq)]
struct Saw {
    content_type: Option<String>,
    content_length: Option<String>,
    body: String,
}

/// The requests a raw handler saw.
#[derive(Clone, Default)]
struct Log(Shared<Saw>);

impl Log {
    fn record(&self, headers: &HeaderMap, body: &[u8]) {
        let header = |name| {
            headers
                .get(name)
                .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
        };
        self.0.lock().unwrap().push(Saw {
            content_type: header(header::CONTENT_TYPE),
            content_length: header(header::CONTENT_LENGTH),
            body: String::from_utf8(body.to_vec()).unwrap(),
        });
    }

    fn take(&self) -> Vec<Saw> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// What the raw handler saw of `case`'s push in `format`: the (decrypted) document, with a
/// `Content-Type` saying its format and its own length.
fn saw_document(case: &Case, format: &str) -> Saw {
    let document = s(case.format(format), "plaintext").to_owned();
    Saw {
        content_type: Some(content_type(format).to_owned()),
        content_length: Some(document.len().to_string()),
        body: document,
    }
}

/// The reply a raw handler writes by hand.
const BY_HAND: &str = "written by hand";

/// A handler that reads the raw body itself and writes its own reply document, in the push's
/// format (told by the body's first byte).
async fn own_reply(State(log): State<Log>, headers: HeaderMap, body: String) -> String {
    log.record(&headers, body.as_bytes());
    let format = if body.starts_with('{') { "json" } else { "xml" };
    text_reply(format, BY_HAND, 1)
}

/// The same, taking the body as `Bytes` and answering `Bytes`.
async fn own_reply_bytes(State(log): State<Log>, headers: HeaderMap, body: Bytes) -> Bytes {
    log.record(&headers, &body);
    let format = if body.starts_with(b"{") {
        "json"
    } else {
        "xml"
    };
    Bytes::from(text_reply(format, BY_HAND, 1))
}

// ---------------------------------------------------------------------------------------------
// 2. Real servers: axum::serve, a real client.

/// A handler that reads the raw body and writes its own reply: sealed in safe mode, passed as
/// it is in plaintext mode; it gets the decrypted document, typed by its `Content-Type`.
#[tokio::test]
async fn a_handler_writing_its_own_reply_is_sealed_in_safe_mode() {
    let case = Case::new(0);
    for handler in ["String", "Bytes"] {
        let log = Log::default();
        let route = match handler {
            "String" => post(own_reply),
            _ => post(own_reply_bytes),
        };
        let app = Router::new()
            .route("/wechat", route.layer(case.layer().pass_through()))
            .with_state(log.clone());
        let addr = serve_axum(app).await;
        for format in ["xml", "json"] {
            // Plaintext: the handler's answer as it is, headers included.
            let answer = fetch(addr, plain_push(&case, format)).await;
            assert_eq!(answer.status, StatusCode::OK, "{handler} {format}");
            assert_eq!(
                answer.body,
                text_reply(format, BY_HAND, 1),
                "{handler} {format}"
            );
            let axum_type = if handler == "String" {
                "text/plain; charset=utf-8"
            } else {
                "application/octet-stream"
            };
            assert_eq!(answer.header(header::CONTENT_TYPE), Some(axum_type));
            assert_eq!(
                log.take(),
                [saw_document(&case, format)],
                "{handler} {format}"
            );

            // Safe mode: sealed, and opens to exactly what the handler wrote.
            let answer = fetch(addr, safe_push(&case, format)).await;
            assert_eq!(
                open_sealed(&case, format, &answer),
                text_reply(format, BY_HAND, 1),
                "{handler} {format}"
            );
            assert_eq!(
                log.take(),
                [saw_document(&case, format)],
                "{handler} {format}"
            );
        }
    }
}

/// `/healthz` outside the layer answers unsigned requests; `/wechat` behind it does not.
#[tokio::test]
async fn routes_outside_the_layer_need_no_signature() {
    let case = Case::new(0);
    let app = Router::new()
        .route(
            "/wechat",
            post(must_not_run).layer(case.layer().pass_through()),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let addr = serve_axum(app).await;
    let health = fetch(
        addr,
        Request::get("/healthz").body(TestBody::whole("")).unwrap(),
    )
    .await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok")
    );
    let unsigned = fetch(addr, push(Method::POST, "", TestBody::whole("<xml/>"))).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
}

/// The handshake reaches the layer with `post(h).layer(wechat)`, as the docs advise; with
/// `post(h).route_layer(wechat)` the layer only wraps the POST endpoint, so a GET gets axum's
/// 405 (the docs' warning). `Router::route_layer` is not that: axum 0.8 applies it to each
/// route's whole method router, fallback included, so the handshake gets through.
#[tokio::test]
async fn the_handshake_needs_layer_not_method_route_layer() {
    let case = Case::new(0);
    let handshake = || {
        push(
            Method::GET,
            &format!("{}&echostr=4375120948345356249", case.plain_query()),
            TestBody::whole(""),
        )
    };
    let log = Log::default();
    let layered = Router::new()
        .route(
            "/wechat",
            post(own_reply).layer(case.layer().pass_through()),
        )
        .with_state(log.clone());
    let router_route_layered = Router::new()
        .route("/wechat", post(own_reply))
        .route_layer(case.layer().pass_through())
        .with_state(log.clone());
    let route_layered = Router::new()
        .route(
            "/wechat",
            post(own_reply).route_layer(case.layer().pass_through()),
        )
        .with_state(log.clone());

    for router in [layered, router_route_layered] {
        let addr = serve_axum(router).await;
        let answer = fetch(addr, handshake()).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "4375120948345356249")
        );
        let answer = fetch(addr, safe_push(&case, "xml")).await;
        assert_eq!(
            open_sealed(&case, "xml", &answer),
            text_reply("xml", BY_HAND, 1)
        );
    }

    let addr = serve_axum(route_layered).await;
    let answer = fetch(addr, handshake()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{answer:?}");
    assert_eq!(answer.header(header::ALLOW), Some("POST"), "axum's 405");
    assert_eq!(answer.body, "", "axum's 405, not the layer's");
    // POST is still behind the layer.
    let answer = fetch(addr, safe_push(&case, "xml")).await;
    assert_eq!(
        open_sealed(&case, "xml", &answer),
        text_reply("xml", BY_HAND, 1)
    );
    let unsigned = fetch(addr, push(Method::POST, "", TestBody::whole("<xml/>"))).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert_eq!(log.take().len(), 3);
}

/// Handlers taking the layer's extractors and returning a `Reply` (feature `axum`).
#[cfg(feature = "axum")]
mod extractors {
    use super::*;
    use wechat_push::message::Kind;
    use wechat_push::{Format, Message, PushInfo, Reply};

    #[derive(Clone)]
    pub(super) struct App {
        pub(super) greeting: &'static str,
        /// What each push's `PushInfo` said: its format, and whether it was encrypted.
        pub(super) infos: Shared<(Format, bool)>,
        pub(super) calls: Counter,
    }

    impl App {
        pub(super) fn new(greeting: &'static str) -> Self {
            Self {
                greeting,
                infos: Arc::default(),
                calls: Counter::default(),
            }
        }
    }

    /// The handler of the docs: text is answered with a passive reply, the rest `success`.
    pub(super) async fn on_push(State(app): State<App>, msg: Message, info: PushInfo) -> Reply {
        app.calls.hit();
        app.infos
            .lock()
            .unwrap()
            .push((info.format(), info.is_encrypted()));
        match msg.kind() {
            Kind::Text { content, .. } => Reply::text(format!("{}{content}", app.greeting)),
            _ => Reply::Success,
        }
    }

    /// A plaintext push gets the passive reply in clear; safe-mode XML and JSON pushes get it
    /// sealed, verifying and opening with the vectors' token and key.
    #[tokio::test]
    async fn a_handler_returning_a_reply_answers_in_the_push_format() {
        let case = Case::new(0);
        let app = App::new("you said: ");
        let router = Router::new()
            .route("/wechat", post(on_push).layer(case.layer().pass_through()))
            .with_state(app.clone());
        let addr = serve_axum(router).await;
        let expected = |format| text_reply(format, "you said: hello", case.timestamp());
        for format in ["xml", "json"] {
            let answer = fetch(addr, plain_push(&case, format)).await;
            assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
            assert_eq!(answer.body, expected(format));
            assert_eq!(
                answer.header(header::CONTENT_TYPE),
                Some(content_type(format))
            );
            assert_eq!(
                answer.header(header::CONTENT_LENGTH),
                Some(answer.body.len().to_string().as_str())
            );

            let answer = fetch(addr, safe_push(&case, format)).await;
            assert_eq!(open_sealed(&case, format, &answer), expected(format));
        }
        assert_eq!(app.calls.get(), 4);
        assert_eq!(
            *app.infos.lock().unwrap(),
            [
                (Format::Xml, false),
                (Format::Xml, true),
                (Format::Json, false),
                (Format::Json, true)
            ]
        );
    }

    // -----------------------------------------------------------------------------------------
    // 4. The same answers as the typed mode.

    /// Echoes text, as `common::echo` does in the typed mode.
    async fn echo_text(msg: Message) -> Reply {
        match msg.kind() {
            Kind::Text { content, .. } => Reply::text(content.clone()),
            _ => Reply::Success,
        }
    }

    /// The same push and the same reply give the same answer in both modes: byte for byte in
    /// clear, the same document once opened when sealed (each sealing is fresh).
    #[tokio::test]
    async fn the_same_answer_as_the_typed_mode() {
        let case = Case::new(0);
        let typed = serve_axum(
            Router::new().route_service("/wechat", case.layer().layer(service_fn(echo))),
        )
        .await;
        let passed = serve_axum(Router::new().route(
            "/wechat",
            post(echo_text).layer(case.layer().pass_through()),
        ))
        .await;
        for format in ["xml", "json"] {
            let a = fetch(typed, plain_push(&case, format)).await;
            let b = fetch(passed, plain_push(&case, format)).await;
            assert_eq!(a.status, StatusCode::OK);
            assert_eq!(a.body, text_reply(format, "hello", case.timestamp()));
            assert_eq!(
                (a.status, &a.body, a.header(header::CONTENT_TYPE)),
                (b.status, &b.body, b.header(header::CONTENT_TYPE)),
                "{format}"
            );

            let a = fetch(typed, safe_push(&case, format)).await;
            let b = fetch(passed, safe_push(&case, format)).await;
            assert_ne!(a.body, b.body, "sealed afresh");
            let opened = open_sealed(&case, format, &a);
            assert_eq!(opened, text_reply(format, "hello", case.timestamp()));
            assert_eq!(open_sealed(&case, format, &b), opened, "{format}");
        }

        // A reply document written by hand: `Reply::document` in the typed mode, the body of a
        // raw handler here.
        let typed = serve_axum(
            Router::new().route_service(
                "/wechat",
                case.layer()
                    .layer(service_fn(|req: Request<Message>| async move {
                        let format = match req.extensions().get::<PushInfo>().unwrap().format() {
                            Format::Xml => "xml",
                            Format::Json => "json",
                        };
                        Ok::<_, Infallible>(Reply::document(text_reply(format, BY_HAND, 1)))
                    })),
            ),
        )
        .await;
        let passed = serve_axum(
            Router::new()
                .route(
                    "/wechat",
                    post(own_reply).layer(case.layer().pass_through()),
                )
                .with_state(Log::default()),
        )
        .await;
        for format in ["xml", "json"] {
            let a = fetch(typed, plain_push(&case, format)).await;
            let b = fetch(passed, plain_push(&case, format)).await;
            assert_eq!(a.body, text_reply(format, BY_HAND, 1));
            assert_eq!((a.status, &a.body), (b.status, &b.body), "{format}");

            let a = fetch(typed, safe_push(&case, format)).await;
            let b = fetch(passed, safe_push(&case, format)).await;
            assert_eq!(
                open_sealed(&case, format, &a),
                open_sealed(&case, format, &b),
                "{format}"
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // 7. The extractors and `Reply` without the layer.

    /// Without the layer in front, `Message` and `PushInfo` reject with a 500 naming the
    /// missing layer, and a `Reply` is a 500 saying it was not rendered.
    #[tokio::test]
    async fn without_the_layer_the_extractors_and_reply_are_500s() {
        let case = Case::new(0);
        let router = Router::new()
            .route("/message", post(|_: Message| async { "unreachable" }))
            .route("/info", post(|_: PushInfo| async { "unreachable" }))
            .route("/reply", post(|| async { Reply::text("hi") }))
            // Behind the layer, the Message can be taken only once.
            .route(
                "/twice",
                post(|_: Message, _: Message| async { "unreachable" })
                    .layer(case.layer().pass_through()),
            );
        let addr = serve_axum(router).await;
        let missing = |what| {
            format!(
                "no {what} in the request: put WechatLayer::pass_through() in front of this \
                 handler (and extract the Message once)"
            )
        };
        for (path, reason) in [
            ("/message", missing("Message")),
            ("/info", missing("PushInfo")),
            ("/twice", missing("Message")),
            (
                "/reply",
                "a wechat_push::Reply reached the client unrendered: the WeChat layer is not in \
                 front of this handler"
                    .to_owned(),
            ),
        ] {
            let answer = fetch(addr, to_path(plain_push(&case, "xml"), path)).await;
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (StatusCode::INTERNAL_SERVER_ERROR, reason.as_str()),
                "{path}"
            );
        }
    }
}

/// tower and tower-http layers around the WeChat layer, and between it and the handler (the
/// trace layer's callbacks take a `tracing::Span`: feature `tracing`).
#[cfg(feature = "tracing")]
mod tower_layers {
    use super::*;

    /// How many handlers run at once, and the most that ever did.
    #[derive(Clone, Default)]
    struct Gauge {
        now: Arc<std::sync::atomic::AtomicUsize>,
        max: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Gauge {
        fn enter(&self) -> impl Drop + '_ {
            use std::sync::atomic::Ordering::SeqCst;
            struct Leave<'a>(&'a Gauge);
            impl Drop for Leave<'_> {
                fn drop(&mut self) {
                    self.0.now.fetch_sub(1, SeqCst);
                }
            }
            let now = self.now.fetch_add(1, SeqCst) + 1;
            self.max.fetch_max(now, SeqCst);
            Leave(self)
        }

        fn max(&self) -> usize {
            self.max.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// A handler's state: what it saw, how many ran at once.
    #[derive(Clone, Default)]
    struct Work {
        log: Log,
        gauge: Gauge,
    }

    /// Writes its own reply after 100 ms, or after 5 s when the push says `slow`.
    async fn work(State(work): State<Work>, headers: HeaderMap, body: String) -> String {
        work.log.record(&headers, body.as_bytes());
        let _running = work.gauge.enter();
        let pause = if body.contains("slow") { 5000 } else { 100 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let format = if body.starts_with('{') { "json" } else { "xml" };
        text_reply(format, BY_HAND, 1)
    }

    /// Three plaintext pushes at once; each must get the handler's reply.
    async fn three_at_once(addr: SocketAddr, case: &Case) {
        let delivery = || fetch(addr, plain_push(case, "xml"));
        let (a, b, c) = tokio::join!(delivery(), delivery(), delivery());
        for answer in [a, b, c] {
            assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
            assert_eq!(answer.body, text_reply("xml", BY_HAND, 1));
        }
    }

    /// Timeout, concurrency limit and trace layers outside the WeChat layer: the limit holds, a
    /// slow handler gets the timeout's 408, and the trace layer sees each rejection.
    #[tokio::test]
    async fn tower_layers_compose_in_front_of_the_wechat_layer() {
        use tower::limit::ConcurrencyLimitLayer;
        use tower_http::timeout::TimeoutLayer;
        use tower_http::trace::TraceLayer;

        let case = Case::new(0);
        let state = Work::default();
        let rejections: Shared<Option<Rejection>> = Arc::default();
        let trace = TraceLayer::new_for_http().on_response({
            let rejections = rejections.clone();
            move |res: &http::Response<axum::body::Body>, _: Duration, _: &tracing::Span| {
                let rejection = res.extensions().get::<Rejection>().cloned();
                rejections.lock().unwrap().push(rejection);
            }
        });
        let router = Router::new()
            .route("/wechat", post(work).layer(case.layer().pass_through()))
            .layer(ConcurrencyLimitLayer::new(1))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(1),
            ))
            .layer(trace)
            .with_state(state.clone());
        let addr = serve_axum(router).await;

        three_at_once(addr, &case).await;
        assert_eq!(state.gauge.max(), 1, "one handler at a time");
        let slow = s(case.format("xml"), "plaintext").replace("hello", "slow");
        let answer = fetch(
            addr,
            push(Method::POST, &case.plain_query(), TestBody::whole(slow)),
        )
        .await;
        assert_eq!(answer.status, StatusCode::REQUEST_TIMEOUT);
        let unsigned = fetch(addr, push(Method::POST, "", TestBody::whole("<xml/>"))).await;
        assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            *rejections.lock().unwrap(),
            [
                None,
                None,
                None,
                None,
                Some(Rejection::MissingSignature("timestamp"))
            ]
        );
    }

    /// The same layers between the WeChat layer and the handler: they see the handler's request
    /// (the document, typed by its `Content-Type`, with the `Message`), the limit holds, and the
    /// timeout's 408 passes through untouched, also in safe mode.
    #[tokio::test]
    async fn tower_layers_compose_behind_the_wechat_layer() {
        use axum::handler::Handler;
        use tower::limit::ConcurrencyLimitLayer;
        use tower::ServiceBuilder;
        use tower_http::timeout::TimeoutLayer;
        use tower_http::trace::TraceLayer;

        let case = Case::new(0);
        let state = Work::default();
        let requests: Shared<(Option<String>, bool)> = Arc::default();
        let trace = TraceLayer::new_for_http().on_request({
            let requests = requests.clone();
            move |req: &Request<wechat_push::body::Body>, _: &tracing::Span| {
                let content_type = req
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_owned());
                let message = req.extensions().get::<wechat_push::Message>().is_some();
                requests.lock().unwrap().push((content_type, message));
            }
        });
        let handler = ServiceBuilder::new()
            .layer(trace)
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(1),
            ))
            .layer(ConcurrencyLimitLayer::new(1))
            .service(work.with_state(state.clone()));
        let router =
            Router::new().route_service("/wechat", case.layer().pass_through().layer(handler));
        let addr = serve_axum(router).await;

        three_at_once(addr, &case).await;
        assert_eq!(state.gauge.max(), 1, "one handler at a time");
        let answer = fetch(
            addr,
            seal_push(&case, "json", &text_push_document("json", "slow", 1)),
        )
        .await;
        assert_eq!(answer.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(answer.body, "", "not sealed");
        let answer = fetch(addr, safe_push(&case, "json")).await;
        assert_eq!(
            open_sealed(&case, "json", &answer),
            text_reply("json", BY_HAND, 1)
        );
        let xml = Some("application/xml".to_owned());
        let json = Some("application/json".to_owned());
        assert_eq!(
            *requests.lock().unwrap(),
            [
                (xml.clone(), true),
                (xml.clone(), true),
                (xml, true),
                (json.clone(), true),
                (json, true)
            ]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Responses without a reply pass through untouched.

/// A router, all of it behind the layer, whose routes answer all sorts of responses.
fn untouched_router(layer: WechatLayer) -> Router {
    let custom = || [("x-custom", "kept")];
    let large = format!("<xml>{}</xml>", " ".repeat(4000));
    Router::new()
        .route(
            "/accepted",
            post(move || async move { (StatusCode::ACCEPTED, custom(), "queued") }),
        )
        .route("/ok", post(move || async move { (custom(), "ok") }))
        .route("/success", post(|| async { "success" }))
        .route("/empty", post(|| async { "" }))
        .route(
            "/document",
            post(move || async move {
                (
                    custom(),
                    [(header::CONTENT_TYPE, "text/xml")],
                    text_reply("xml", BY_HAND, 1),
                )
            }),
        )
        .route("/large", post(move || async move { large }))
        .layer(layer.pass_through())
}

/// `untouched_router`'s answers that are not reply documents (a 202, a 200 `ok`) arrive as
/// the handler wrote them, in either mode: status, headers, body.
async fn non_documents_pass_untouched(
    addr: SocketAddr,
    at: &impl Fn(&'static str) -> Request<TestBody>,
) {
    let answer = fetch(addr, at("/accepted")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::ACCEPTED, "queued")
    );
    assert_eq!(answer.header("x-custom".parse().unwrap()), Some("kept"));
    let answer = fetch(addr, at("/ok")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "ok")
    );
    assert_eq!(answer.header("x-custom".parse().unwrap()), Some("kept"));
    assert_eq!(
        answer.header(header::CONTENT_TYPE),
        Some("text/plain; charset=utf-8")
    );
}

/// In plaintext mode every response arrives as the handler wrote it: status, headers, body.
#[tokio::test]
async fn plaintext_answers_pass_untouched() {
    let case = Case::new(0);
    let addr = serve_axum(untouched_router(case.layer().body_limit(1024))).await;
    let at = |path| to_path(plain_push(&case, "xml"), path);

    non_documents_pass_untouched(addr, &at).await;
    let answer = fetch(addr, at("/document")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, text_reply("xml", BY_HAND, 1));
    assert_eq!(answer.header("x-custom".parse().unwrap()), Some("kept"));
    assert_eq!(answer.header(header::CONTENT_TYPE), Some("text/xml"));
    assert_eq!(fetch(addr, at("/success")).await.body, "success");
    // Not read into memory in plaintext mode: the body limit does not apply to it.
    let answer = fetch(addr, at("/large")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body.len(), 4000 + "<xml></xml>".len());
}

/// In safe mode only a 200 reply document is sealed; every other answer passes as it is.
#[tokio::test]
async fn safe_mode_seals_only_reply_documents() {
    let case = Case::new(0);
    let addr = serve_axum(untouched_router(case.layer().body_limit(1024))).await;
    let at = |path| to_path(safe_push(&case, "xml"), path);

    non_documents_pass_untouched(addr, &at).await;
    let answer = fetch(addr, at("/success")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "success"),
        "never sealed"
    );
    let answer = fetch(addr, at("/empty")).await;
    assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, ""));
    let answer = fetch(addr, at("/document")).await;
    assert_eq!(
        open_sealed(&case, "xml", &answer),
        text_reply("xml", BY_HAND, 1)
    );
    // A document to seal is read into memory, up to the body limit.
    let answer = fetch(addr, at("/large")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the handler's response is larger than the body limit"
        )
    );
}

/// In safe mode a 200 is read to be sealed: a body that fails midway is a 500, not a
/// truncated answer; any other status is not read and passes through.
#[tokio::test]
async fn safe_mode_answers_500_for_a_200_body_that_fails() {
    let case = Case::new(0);
    let svc = service_fn(|req: Request<wechat_push::body::Body>| async move {
        let status = if req.uri().path() == "/accepted" {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        let mut res = http::Response::new(TestBody::Fails);
        *res.status_mut() = status;
        Ok::<_, Infallible>(res)
    });
    let answer = call(
        case.layer().pass_through().layer(svc),
        safe_push(&case, "xml"),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the handler's response body failed"
        )
    );
    let accepted = case
        .layer()
        .pass_through()
        .layer(svc)
        .oneshot(to_path(safe_push(&case, "xml"), "/accepted"));
    let res = tokio::time::timeout(PATIENCE, accepted)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body = tokio::time::timeout(PATIENCE, res.into_body().collect()).await;
    assert!(body.unwrap().is_err(), "the handler's own body");
}

// ---------------------------------------------------------------------------------------------
// 5. In front of other services.

/// A bare `MethodRouter`, served on its own.
#[tokio::test]
async fn in_front_of_a_method_router() {
    let case = Case::new(0);
    let log = Log::default();
    let service = post(own_reply)
        .layer(case.layer().pass_through())
        .with_state(log.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });

    for format in ["xml", "json"] {
        let answer = fetch(addr, safe_push(&case, format)).await;
        assert_eq!(
            open_sealed(&case, format, &answer),
            text_reply(format, BY_HAND, 1)
        );
        assert_eq!(log.take(), [saw_document(&case, format)]);
    }
    let answer = fetch(
        addr,
        push(
            Method::GET,
            &format!("{}&echostr=42", case.plain_query()),
            TestBody::whole(""),
        ),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "42")
    );
    let answer = fetch(
        addr,
        push(Method::PUT, &case.plain_query(), TestBody::whole("")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.header(header::ALLOW), Some("GET, POST"));
}

/// A whole `Router` behind the layer (`Router::layer`): every route needs a signature, and
/// what the router answers (a 404 for an unknown path, say) passes through.
#[tokio::test]
async fn in_front_of_a_whole_router() {
    let case = Case::new(0);
    let log = Log::default();
    let router = Router::new()
        .route("/wechat", post(own_reply))
        .route("/other", axum::routing::get(|| async { "other" }))
        .layer(case.layer().pass_through())
        .with_state(log.clone());
    let addr = serve_axum(router).await;

    let answer = fetch(addr, safe_push(&case, "xml")).await;
    assert_eq!(
        open_sealed(&case, "xml", &answer),
        text_reply("xml", BY_HAND, 1)
    );
    assert_eq!(log.take(), [saw_document(&case, "xml")]);
    let unsigned = fetch(
        addr,
        Request::get("/other").body(TestBody::whole("")).unwrap(),
    )
    .await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    let answer = fetch(addr, to_path(plain_push(&case, "xml"), "/missing")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // The handshake on any path is the layer's.
    let answer = fetch(
        addr,
        to_path(
            push(
                Method::GET,
                &format!("{}&echostr=42", case.plain_query()),
                TestBody::whole(""),
            ),
            "/other",
        ),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "42")
    );
}

/// Handlers turned into services (`with_state`, `into_service`), served by hyper.
#[tokio::test]
async fn in_front_of_a_handler_service() {
    use axum::handler::{Handler, HandlerWithoutStateExt};

    let case = Case::new(0);
    let log = Log::default();
    let addr = serve_hyper(
        case.layer()
            .pass_through()
            .layer(own_reply.with_state(log.clone())),
    )
    .await;
    for format in ["xml", "json"] {
        let answer = fetch(addr, safe_push(&case, format)).await;
        assert_eq!(
            open_sealed(&case, format, &answer),
            text_reply(format, BY_HAND, 1)
        );
        let answer = fetch(addr, plain_push(&case, format)).await;
        assert_eq!(answer.body, text_reply(format, BY_HAND, 1));
    }
    assert_eq!(
        log.take(),
        [
            saw_document(&case, "xml"),
            saw_document(&case, "xml"),
            saw_document(&case, "json"),
            saw_document(&case, "json")
        ]
    );

    let stateless = |body: String| async move { body.replace("hello", "echoed") };
    let addr = serve_hyper(case.layer().pass_through().layer(stateless.into_service())).await;
    let answer = fetch(addr, safe_push(&case, "json")).await;
    assert_eq!(
        open_sealed(&case, "json", &answer),
        s(case.format("json"), "plaintext").replace("hello", "echoed")
    );
    // Any push, sealed with the vectors' key.
    let document = text_push_document("xml", "hello again", 7);
    let answer = fetch(addr, seal_push(&case, "xml", &document)).await;
    assert_eq!(
        open_sealed(&case, "xml", &answer),
        document.replace("hello", "echoed")
    );
}

/// A plain `tower::service_fn` over `Request<LayerBody>`, served by hyper: it gets the
/// document with the `Message` and `PushInfo` in the extensions, and a `Reply` it puts in its
/// response's extensions is written in the push's format (sealed in safe mode).
#[tokio::test]
async fn in_front_of_a_service_fn() {
    use http_body_util::Full;
    use wechat_push::body::Body as LayerBody;
    use wechat_push::{Message, PushInfo, Reply};

    let case = Case::new(0);
    let log = Log::default();
    let svc = service_fn({
        let log = log.clone();
        move |req: Request<LayerBody>| {
            let log = log.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                log.record(&parts.headers, &body);
                let message = parts.extensions.get::<Message>().unwrap();
                let info = parts.extensions.get::<PushInfo>().unwrap();
                let mut res = http::Response::new(Full::new(Bytes::from_static(b"not sent")));
                res.extensions_mut().insert(Reply::text(format!(
                    "{} from {}, encrypted: {}",
                    message.msg_type(),
                    message.from_user(),
                    info.is_encrypted()
                )));
                Ok::<_, Infallible>(res)
            }
        }
    });
    let addr = serve_hyper(case.layer().pass_through().layer(svc)).await;
    for format in ["xml", "json"] {
        let answer = fetch(addr, plain_push(&case, format)).await;
        assert_eq!(
            answer.body,
            text_reply(
                format,
                &format!("text from {OPENID}, encrypted: false"),
                case.timestamp()
            )
        );
        let answer = fetch(addr, safe_push(&case, format)).await;
        assert_eq!(
            open_sealed(&case, format, &answer),
            text_reply(
                format,
                &format!("text from {OPENID}, encrypted: true"),
                case.timestamp()
            )
        );
        assert_eq!(
            log.take(),
            [saw_document(&case, format), saw_document(&case, format)]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. The retry options in pass-through mode.

#[cfg(all(feature = "axum", feature = "tokio"))]
mod retries {
    use axum::response::{IntoResponse, Response};
    use tokio::sync::mpsc;
    use wechat_push::dedupe::MemoryDedupeStore;
    use wechat_push::message::Kind;
    use wechat_push::{Message, Reply};

    use super::extractors::{on_push, App};
    use super::*;

    /// Sends a signed POST with `body` to `/wechat?{query}` on `addr`.
    async fn post_to(addr: SocketAddr, query: &str, body: &str) -> Answer {
        fetch(
            addr,
            push(Method::POST, query, TestBody::whole(body.to_owned())),
        )
        .await
    }

    /// Three deliveries of the same push, one after the other.
    async fn thrice(addr: SocketAddr, push: impl Fn() -> Request<TestBody>) -> Vec<Answer> {
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(fetch(addr, push()).await);
        }
        answers
    }

    /// With dedupe, a push delivered three times runs the handler once; the three deliveries
    /// get the same answer, sealed afresh for each in safe mode.
    #[tokio::test]
    async fn dedupe_runs_a_reply_handler_once() {
        let case = Case::new(0);
        let app = App::new("once: ");
        let layer = case
            .layer()
            .pass_through()
            .dedupe(MemoryDedupeStore::new(100));
        let router = Router::new()
            .route("/wechat", post(on_push).layer(layer))
            .with_state(app.clone());
        let addr = serve_axum(router).await;

        let answers = thrice(addr, || safe_push(&case, "xml")).await;
        assert_eq!(app.calls.get(), 1);
        for answer in &answers {
            assert_eq!(
                open_sealed(&case, "xml", answer),
                text_reply("xml", "once: hello", case.timestamp())
            );
        }
        assert!(
            answers[0].body != answers[1].body
                && answers[1].body != answers[2].body
                && answers[0].body != answers[2].body,
            "each delivery sealed afresh"
        );

        // Another push (the vectors' JSON push has the XML one's MsgId: the same push).
        let document = text_push_document("json", "hello", 31);
        let answers = thrice(addr, || {
            push(
                Method::POST,
                &case.plain_query(),
                TestBody::whole(document.clone()),
            )
        })
        .await;
        assert_eq!(app.calls.get(), 2);
        for answer in &answers {
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(
                answer.body,
                text_reply("json", "once: hello", case.timestamp())
            );
        }
    }

    /// With dedupe, a handler that writes its own reply document runs once; its reply is
    /// recorded and given to the duplicates, sealed for each in safe mode.
    #[tokio::test]
    async fn dedupe_runs_a_raw_handler_once() {
        let case = Case::new(0);
        let log = Log::default();
        let serve = || {
            let layer = case
                .layer()
                .dedupe(MemoryDedupeStore::new(100))
                .pass_through();
            let router = Router::new()
                .route("/wechat", post(own_reply).layer(layer))
                .with_state(log.clone());
            serve_axum(router)
        };
        // One store per format: the vectors' XML and JSON pushes share a MsgId.
        for format in ["xml", "json"] {
            let addr = serve().await;
            for answer in thrice(addr, || safe_push(&case, format)).await {
                assert_eq!(
                    open_sealed(&case, format, &answer),
                    text_reply(format, BY_HAND, 1)
                );
            }
            assert_eq!(log.take(), [saw_document(&case, format)], "once");
        }
        let addr = serve().await;
        let document = text_push_document("xml", "plaintext, thrice", 11);
        let answers = thrice(addr, || {
            push(
                Method::POST,
                &case.plain_query(),
                TestBody::whole(document.clone()),
            )
        })
        .await;
        for answer in answers {
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (StatusCode::OK, text_reply("xml", BY_HAND, 1).as_str())
            );
        }
        assert_eq!(log.take().len(), 1);
    }

    /// Writes its own reply after 300 ms.
    async fn slow_own_reply(state: State<Log>, headers: HeaderMap, body: String) -> String {
        tokio::time::sleep(Duration::from_millis(300)).await;
        own_reply(state, headers, body).await
    }

    /// Three deliveries at once: the duplicates wait for the first one's reply.
    #[tokio::test]
    async fn dedupe_makes_concurrent_duplicates_wait() {
        let case = Case::new(0);
        let log = Log::default();
        let layer = case
            .layer()
            .dedupe(MemoryDedupeStore::new(100))
            .pass_through();
        let router = Router::new()
            .route("/wechat", post(slow_own_reply).layer(layer))
            .with_state(log.clone());
        let addr = serve_axum(router).await;
        let delivery = || fetch(addr, safe_push(&case, "json"));
        let (a, b, c) = tokio::join!(delivery(), delivery(), delivery());
        for answer in [a, b, c] {
            assert_eq!(
                open_sealed(&case, "json", &answer),
                text_reply("json", BY_HAND, 1)
            );
        }
        assert_eq!(log.take(), [saw_document(&case, "json")], "once");
    }

    /// A push answered `ok` (a 200 that is not a reply document) in safe mode: the first
    /// delivery gets `ok` as it is, and so must its duplicates (the docs: a duplicate is
    /// "answered with its body"). Dedupe records the body as `Reply::Document`, which is
    /// sealed only when it is a reply document (it was sealed regardless before).
    #[tokio::test]
    async fn dedupe_gives_duplicates_an_untouched_answer_as_it_was() {
        let case = Case::new(0);
        let calls = Counter::default();
        let layer = case
            .layer()
            .dedupe(MemoryDedupeStore::new(100))
            .pass_through();
        let router = Router::new()
            .route(
                "/wechat",
                post(|State(calls): State<Counter>| async move {
                    calls.hit();
                    "ok"
                })
                .layer(layer),
            )
            .with_state(calls.clone());
        let addr = serve_axum(router).await;
        let answers = thrice(addr, || safe_push(&case, "xml")).await;
        assert_eq!(calls.get(), 1);
        assert_eq!(
            (answers[0].status, answers[0].body.as_str()),
            (StatusCode::OK, "ok"),
            "the first delivery: as the handler answered"
        );
        for answer in &answers[1..] {
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (StatusCode::OK, "ok"),
                "a duplicate: {answer:?}"
            );
        }
    }

    /// Fails its first call with a 500, then replies.
    async fn fails_first(State(calls): State<Counter>, msg: Message) -> Response {
        calls.hit();
        if calls.get() == 1 {
            return (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response();
        }
        match msg.kind() {
            Kind::Text { content, .. } => Reply::text(format!("handled {content}")),
            _ => Reply::Success,
        }
        .into_response()
    }

    /// A handler answering 500 did not handle the push: dedupe releases it, and WeChat's
    /// retry is handled again (then recorded).
    #[tokio::test]
    async fn dedupe_hands_a_failed_push_to_the_retry() {
        let case = Case::new(0);
        for format in ["xml", "json"] {
            let calls = Counter::default();
            let layer = case
                .layer()
                .dedupe(MemoryDedupeStore::new(100))
                .pass_through();
            let router = Router::new()
                .route("/wechat", post(fails_first).layer(layer))
                .with_state(calls.clone());
            let addr = serve_axum(router).await;
            let answers = thrice(addr, || safe_push(&case, format)).await;
            assert_eq!(
                (answers[0].status, answers[0].body.as_str()),
                (StatusCode::INTERNAL_SERVER_ERROR, "try again"),
                "{format}"
            );
            for answer in &answers[1..] {
                assert_eq!(
                    open_sealed(&case, format, answer),
                    text_reply(format, "handled hello", case.timestamp())
                );
            }
            assert_eq!(
                calls.get(),
                2,
                "{format}: the retry handled, the third recorded"
            );
        }
    }

    #[derive(Clone)]
    struct Late {
        calls: Counter,
        finished: mpsc::UnboundedSender<String>,
    }

    /// Takes a second over a push that says `slow`, and reports when done.
    async fn late(State(late): State<Late>, msg: Message) -> Reply {
        late.calls.hit();
        let Kind::Text { content, .. } = msg.kind() else {
            return Reply::Success;
        };
        if content == "slow" {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        late.finished.send(content.clone()).unwrap();
        Reply::text(format!("handled {content}"))
    }

    /// With an ack deadline, a slow handler's push is answered `success` (in clear) at the
    /// deadline and the handler still finishes; a fast one gets its reply. With dedupe too, a
    /// retry while the handler runs gets `success` without running it again.
    #[tokio::test]
    async fn the_ack_deadline_answers_success_and_lets_the_handler_finish() {
        let case = Case::new(0);
        let (finished, mut done) = mpsc::unbounded_channel();
        let state = Late {
            calls: Counter::default(),
            finished,
        };
        let layer = case
            .layer()
            .pass_through()
            .dedupe(MemoryDedupeStore::new(100))
            .ack_deadline(Duration::from_millis(100));
        let router = Router::new()
            .route("/wechat", post(late).layer(layer))
            .with_state(state.clone());
        let addr = serve_axum(router).await;

        let slow = text_push_document("xml", "slow", 21);
        let started = std::time::Instant::now();
        let answer = fetch(addr, seal_push(&case, "xml", &slow)).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "success")
        );
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "at the deadline"
        );
        let retry = fetch(addr, seal_push(&case, "xml", &slow)).await;
        assert_eq!(retry.body, "success");
        let finished = tokio::time::timeout(PATIENCE, done.recv()).await.unwrap();
        assert_eq!(finished.as_deref(), Some("slow"), "the handler finished");
        assert_eq!(state.calls.get(), 1, "the retry did not run it again");

        let fast = text_push_document("json", "fast", 22);
        let answer = fetch(addr, seal_push(&case, "json", &fast)).await;
        assert_eq!(
            open_sealed(&case, "json", &answer),
            text_reply("json", "handled fast", case.timestamp())
        );
        let finished = tokio::time::timeout(PATIENCE, done.recv()).await.unwrap();
        assert_eq!(finished.as_deref(), Some("fast"));
    }

    /// With a replay guard (and dedupe), the same query with another body is 401; with the
    /// same body it is a duplicate, answered by dedupe.
    #[tokio::test]
    async fn the_replay_guard_refuses_another_body_for_a_query() {
        let case = Case::new(0);
        let app = App::new("guarded: ");
        let layer = case
            .layer()
            .replay_guard(MemoryReplayStore::new(100))
            .dedupe(MemoryDedupeStore::new(100))
            .pass_through();
        let router = Router::new()
            .route("/wechat", post(on_push).layer(layer))
            .with_state(app.clone());
        let addr = serve_axum(router).await;
        let genuine = s(case.format("xml"), "plaintext").to_owned();
        let forged = genuine.replace("hello", "forged");
        let expected = text_reply("xml", "guarded: hello", case.timestamp());

        assert_eq!(
            post_to(addr, &case.plain_query(), &genuine).await.body,
            expected
        );
        let refused = post_to(addr, &case.plain_query(), &forged).await;
        assert_eq!(
            (refused.status, refused.body.as_str()),
            (StatusCode::UNAUTHORIZED, "replayed signature")
        );
        assert_eq!(
            post_to(addr, &case.plain_query(), &genuine).await.body,
            expected
        );
        assert_eq!(app.calls.get(), 1);
    }
}
