//! Retries, deadlines and replays (dedupe, ack_deadline, replay_guard), against a real hyper
//! server on loopback.
#![cfg(feature = "tokio")]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use tokio::sync::Notify;
use tower::{service_fn, Service, ServiceExt};
use wechat_push::dedupe::MemoryDedupeStore;
use wechat_push::message::Kind;
use wechat_push::replay::MemoryReplayStore;
use wechat_push::{crypto, signature, Message, Rejection, Reply};

async fn post(addr: SocketAddr, query: &str, body: &str) -> (StatusCode, String) {
    let (status, _, body) = send(addr, Method::POST, &format!("/wechat?{query}"), body).await;
    (status, body)
}

/// A handler that counts its calls and echoes text.
fn counting(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<Message>, Response = Reply, Error = Infallible, Future = impl Send>
       + Clone
       + Send
       + 'static {
    service_fn(move |req: Request<Message>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(match req.body().kind() {
                Kind::Text { content } => Reply::text(content.clone()),
                _ => Reply::Success,
            })
        }
    })
}

/// Opens a sealed XML reply: the decrypted document.
fn open_reply(case: &Case, body: &str) -> String {
    let get = |tag: &str| {
        let inner = body
            .split(&format!("<{tag}>"))
            .nth(1)
            .unwrap()
            .split(&format!("</{tag}>"))
            .next()
            .unwrap();
        inner
            .trim_start_matches("<![CDATA[")
            .trim_end_matches("]]>")
            .to_owned()
    };
    let (encrypt, sig, ts, nonce) = (
        get("Encrypt"),
        get("MsgSignature"),
        get("TimeStamp"),
        get("Nonce"),
    );
    assert!(signature::verify_message(
        &sig,
        case.token(),
        &ts,
        &nonce,
        &encrypt
    ));
    crypto::decrypt(&case.key(), &encrypt, case.appid())
        .unwrap()
        .as_str()
        .to_owned()
}

#[tokio::test]
async fn a_push_delivered_three_times_is_handled_once() {
    let case = Case::new(0);
    let xml = case.format("xml");
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryDedupeStore::new(100));
    let svc = case
        .layer()
        .dedupe(store.clone())
        .layer(counting(calls.clone()));
    let addr = serve_hyper(svc).await;

    // Plaintext: the same bytes three times.
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(post(addr, &case.plain_query(), s(xml, "plaintext")).await);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, StatusCode::OK);
    assert!(answers[0]
        .1
        .contains("<Content><![CDATA[hello]]></Content>"));

    // Encrypted, another push (a different MsgId): each answer sealed afresh, same document.
    let case2 = Case::new(1);
    let svc = case2
        .layer()
        .dedupe(store.clone())
        .layer(counting(calls.clone()));
    let addr = serve_hyper(svc).await;
    let x2 = case2.format("xml");
    let mut docs = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let (status, body) = post(addr, s(x2, "query"), s(x2, "request_body_safe")).await;
        assert_eq!(status, StatusCode::OK);
        docs.push(open_reply(&case2, &body));
        bodies.push(body);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(docs.iter().all(|d| d == &docs[0]), "{docs:?}");
    assert_ne!(bodies[0], bodies[1], "re-encrypted for each request");
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn concurrent_deliveries_wait_for_the_first() {
    let case = Case::new(0);
    let xml = case.format("xml");
    let calls = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let handler = {
        let (calls, release) = (calls.clone(), release.clone());
        service_fn(move |_: Request<Message>| {
            let (calls, release) = (calls.clone(), release.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                release.notified().await;
                Ok::<_, Infallible>(Reply::text("once"))
            }
        })
    };
    let svc = case
        .layer()
        .dedupe(MemoryDedupeStore::new(100))
        .layer(handler);
    let addr = serve_hyper(svc).await;
    let q = case.plain_query();
    let first = tokio::spawn({
        let q = q.clone();
        async move { post(addr, &q, s(&Case::new(0).v["xml"], "plaintext")).await }
    });
    let second = tokio::spawn({
        let q = q.clone();
        async move { post(addr, &q, s(&Case::new(0).v["xml"], "plaintext")).await }
    });
    // Let both reach the layer, then let the handler finish.
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    release.notify_waiters();
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(a, b);
    assert_eq!(a.0, StatusCode::OK);
    assert!(a.1.contains("once"));
    let _ = xml;
}

#[tokio::test]
async fn a_failed_first_attempt_is_handled_again() {
    let case = Case::new(0);
    // First call: an error; second: a panic; third: success.
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        service_fn(move |_: Request<Message>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err("handler failed"),
                    1 => panic!("handler panicked"),
                    _ => Ok(Reply::text("third time")),
                }
            }
        })
    };
    let store = Arc::new(MemoryDedupeStore::new(100));
    let svc = case.layer().dedupe(store.clone()).layer(handler);
    let req = || case.plain_push("xml");
    assert_eq!(
        svc.clone().oneshot(req()).await.unwrap_err(),
        "handler failed"
    );
    let panicked = tokio::spawn(svc.clone().oneshot(req())).await;
    assert!(panicked.unwrap_err().is_panic());
    let res = svc.clone().oneshot(req()).await.unwrap();
    assert!(body_string(res.into_body()).await.contains("third time"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Now done: a fourth delivery does not reach the handler.
    let res = svc.clone().oneshot(req()).await.unwrap();
    assert!(body_string(res.into_body()).await.contains("third time"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // A first request dropped before its handler finished: the retry is handled.
    let case = Case::new(1);
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        service_fn(move |_: Request<Message>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, Infallible>(Reply::Success)
            }
        })
    };
    let svc = case.layer().dedupe(store.clone()).layer(handler);
    let x = case.format("xml");
    let req = || {
        request(
            Method::POST,
            s(x, "query"),
            s(x, "request_body_safe").to_owned(),
        )
    };
    let dropped =
        tokio::time::timeout(Duration::from_millis(100), svc.clone().oneshot(req())).await;
    assert!(dropped.is_err(), "the first delivery hangs until dropped");
    let res = tokio::time::timeout(Duration::from_secs(5), svc.clone().oneshot(req()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body_string(res.into_body()).await, "success");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failed_attempt_is_released_even_if_the_handler_kept_its_request() {
    let case = Case::new(0);
    // The first call fails but keeps its request alive (here: stashed away).
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (kept, calls) = (kept.clone(), calls.clone());
        service_fn(move |req: Request<Message>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            kept.lock().unwrap().push(req);
            async move {
                if n == 0 {
                    Err("handler failed")
                } else {
                    Ok(Reply::Success)
                }
            }
        })
    };
    let svc = case
        .layer()
        .dedupe(MemoryDedupeStore::new(10))
        .layer(handler);
    let req = || case.plain_push("xml");
    assert_eq!(
        svc.clone().oneshot(req()).await.unwrap_err(),
        "handler failed"
    );
    let res = tokio::time::timeout(Duration::from_secs(5), svc.clone().oneshot(req()))
        .await
        .expect("the retry is handled at once, not after the claim's lease")
        .unwrap();
    assert_eq!(body_string(res.into_body()).await, "success");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_slow_handler_is_answered_success_at_the_deadline_and_still_finishes() {
    let case = Case::new(0);
    let xml = case.format("xml");
    // The handler is held until the test releases it, so it misses the deadline for sure.
    let gate = Arc::new(Notify::new());
    let finished = Arc::new(Notify::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let side_effect = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (gate, finished, calls, side_effect) = (
            gate.clone(),
            finished.clone(),
            calls.clone(),
            side_effect.clone(),
        );
        service_fn(move |_: Request<Message>| {
            let (gate, finished, side_effect) =
                (gate.clone(), finished.clone(), side_effect.clone());
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                gate.notified().await;
                side_effect.fetch_add(1, Ordering::SeqCst);
                finished.notify_one();
                Ok::<_, Infallible>(Reply::text("too late"))
            }
        })
    };
    let svc = case
        .layer()
        .dedupe(MemoryDedupeStore::new(10))
        .ack_deadline(Duration::from_millis(100))
        .layer(handler);
    let addr = serve_hyper(svc).await;
    let (status, body) = post(addr, &case.plain_query(), s(xml, "plaintext")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
    assert_eq!(
        side_effect.load(Ordering::SeqCst),
        0,
        "answered before the handler finished"
    );
    // Released, the handler runs to completion in the background.
    gate.notify_one();
    tokio::time::timeout(Duration::from_secs(5), finished.notified())
        .await
        .unwrap();
    assert_eq!(side_effect.load(Ordering::SeqCst), 1);
    // A retry after the deadline gets the recorded answer and does not run the handler again.
    let (status, body) = post(addr, &case.plain_query(), s(xml, "plaintext")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(side_effect.load(Ordering::SeqCst), 1);

    // A fast handler is answered normally.
    let svc = case
        .layer()
        .ack_deadline(Duration::from_secs(4))
        .layer(service_fn(echo));
    let res = svc.oneshot(case.plain_push("xml")).await.unwrap();
    assert!(body_string(res.into_body()).await.contains("hello"));
}

#[tokio::test]
async fn a_delivery_dropped_before_the_deadline_is_not_handled_twice() {
    let case = Case::new(0);
    let gate = Arc::new(Notify::new());
    let finished = Arc::new(Notify::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (gate, finished, calls) = (gate.clone(), finished.clone(), calls.clone());
        service_fn(move |_: Request<Message>| {
            let (gate, finished) = (gate.clone(), finished.clone());
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                gate.notified().await;
                finished.notify_one();
                Ok::<_, Infallible>(Reply::text("too late"))
            }
        })
    };
    let svc = case
        .layer()
        .dedupe(MemoryDedupeStore::new(10))
        .ack_deadline(Duration::from_secs(30))
        .layer(handler);
    let req = || case.plain_push("xml");
    // The first delivery goes away (say its connection closed) long before the deadline.
    let dropped =
        tokio::time::timeout(Duration::from_millis(100), svc.clone().oneshot(req())).await;
    assert!(dropped.is_err(), "the first delivery hangs until dropped");
    // Its handler still runs in its task, so a retry is answered `success` at once, as the
    // deadline would have answered, instead of running the handler a second time.
    let res = tokio::time::timeout(Duration::from_secs(5), svc.clone().oneshot(req()))
        .await
        .expect("the retry is answered without waiting for the handler")
        .unwrap();
    assert_eq!(body_string(res.into_body()).await, "success");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The handler finishes in the background; later deliveries still get the recorded answer.
    gate.notify_one();
    tokio::time::timeout(Duration::from_secs(5), finished.notified())
        .await
        .unwrap();
    let res = svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(body_string(res.into_body()).await, "success");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_same_query_with_another_body_is_401() {
    let case = Case::new(0);
    let xml = case.format("xml");
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = case
        .layer()
        .replay_guard(MemoryReplayStore::new(100))
        .layer(counting(calls.clone()));
    let addr = serve_hyper(svc).await;
    let q = case.plain_query();
    let (status, _) = post(addr, &q, s(xml, "plaintext")).await;
    assert_eq!(status, StatusCode::OK);
    // The same body again (a retry) passes.
    let (status, _) = post(addr, &q, s(xml, "plaintext")).await;
    assert_eq!(status, StatusCode::OK);
    // Another body with the captured query: a forgery.
    let forged = s(xml, "plaintext").replace("hello", "transfer all the money");
    let (status, body) = post(addr, &q, &forged).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::UNAUTHORIZED, "replayed signature")
    );
    // Upper-case hex in the signature is the same query.
    let upper = q.replace(
        &signature::sign(case.token(), &case.timestamp().to_string(), case.nonce()).to_string(),
        &signature::sign(case.token(), &case.timestamp().to_string(), case.nonce())
            .to_string()
            .to_uppercase(),
    );
    assert_ne!(upper, q);
    let (status, _) = post(addr, &upper, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A body that fails verification is not recorded: the genuine push still passes after it.
    let x = case.format("xml");
    let svc = case
        .layer()
        .replay_guard(MemoryReplayStore::new(100))
        .layer(counting(calls.clone()));
    let tampered =
        s(x, "request_body_safe").replacen("<Encrypt><![CDATA[", "<Encrypt><![CDATA[A", 1);
    let res = svc
        .clone()
        .oneshot(request(Method::POST, s(x, "query"), tampered))
        .await
        .unwrap();
    assert_eq!(
        res.extensions().get::<Rejection>(),
        Some(&Rejection::BadMsgSignature)
    );
    let res = svc
        .clone()
        .oneshot(request(
            Method::POST,
            s(x, "query"),
            s(x, "request_body_safe").to_owned(),
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn memory_stays_bounded_under_a_flood_of_distinct_pushes() {
    let case = Case::new(0);
    let dedupe = Arc::new(MemoryDedupeStore::new(1000));
    let replay = Arc::new(MemoryReplayStore::new(1000));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = case
        .layer()
        .replay_guard(replay.clone())
        .dedupe(dedupe.clone())
        .layer(counting(calls.clone()));
    let ts = case.timestamp().to_string();
    for i in 0..100_000u64 {
        let nonce = i.to_string();
        let query = plain_query(case.token(), &ts, &nonce);
        let body = format!(
            "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[o]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[x]]></Content><MsgId>{i}</MsgId></xml>"
        );
        let res = ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc)
            .await
            .unwrap()
            .call(request(Method::POST, &query, body))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(dedupe.len() <= 1000 && replay.len() <= 1000);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 100_000);
    assert_eq!(dedupe.len(), 1000);
    assert_eq!(replay.len(), 1000);
}
