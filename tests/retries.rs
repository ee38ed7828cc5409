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
use tokio::sync::{Notify, Semaphore};
use tower::{service_fn, Service, ServiceExt};
use wechat_push::clock::FixedClock;
use wechat_push::dedupe::{Claim, DedupeConfig, DedupeStore, MemoryDedupeStore};
use wechat_push::message::Kind;
use wechat_push::replay::MemoryReplayStore;
use wechat_push::store::{BoxFuture, StoreError};
use wechat_push::{crypto, signature, Message, Rejection, Reply, WechatLayer};

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
                Kind::Text { content, .. } => Reply::text(content.clone()),
                _ => Reply::Success,
            })
        }
    })
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
        docs.push(case2.open_sealed_reply("xml", &body));
        bodies.push(body);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(docs.iter().all(|d| d == &docs[0]), "{docs:?}");
    assert_ne!(bodies[0], bodies[1], "re-encrypted for each request");
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn concurrent_deliveries_wait_for_the_first() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let case = Case::new(0);
        let xml = case.format("xml");
        let calls = Arc::new(AtomicUsize::new(0));
        // A gate that keeps its signal: a permit added before the handler waits is not lost.
        let gate = Arc::new(Semaphore::new(0));
        let handler = {
            let (calls, gate) = (calls.clone(), gate.clone());
            service_fn(move |_: Request<Message>| {
                let (calls, gate) = (calls.clone(), gate.clone());
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let _permit = gate.acquire().await;
                    Ok::<_, Infallible>(Reply::text("once"))
                }
            })
        };
        let store = Arc::new(SpyStore::default());
        let svc = case.layer().dedupe(store.clone()).layer(handler);
        let addr = serve_hyper(svc).await;
        let q = case.plain_query();
        let body = s(xml, "plaintext").to_owned();
        let first = tokio::spawn({
            let (q, body) = (q.clone(), body.clone());
            async move { post(addr, &q, &body).await }
        });
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let second = tokio::spawn({
            let (q, body) = (q.clone(), body.clone());
            async move { post(addr, &q, &body).await }
        });
        // The second delivery found the push in flight and is waiting on it.
        while store.in_flight_seen() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !second.is_finished(),
            "the duplicate waits for the first reply"
        );
        gate.add_permits(1);
        let (a, b) = (first.await.unwrap(), second.await.unwrap());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(a, b);
        assert_eq!(a.0, StatusCode::OK);
        assert!(a.1.contains("once"));
    })
    .await
    .expect("the test finishes");
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

/// A [`MemoryDedupeStore`] that reports what it was asked, and can fail or hang `complete`.
#[derive(Default)]
struct SpyStore {
    inner: MemoryDedupeStore,
    in_flight: AtomicUsize,
    completed: AtomicUsize,
    /// Renewals marking the claim answered `success` at the ack deadline.
    answered: AtomicUsize,
    /// 0: complete normally; 1: fail; 2: never answer.
    complete_mode: AtomicUsize,
}

impl SpyStore {
    fn in_flight_seen(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
    fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }
    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

impl DedupeStore for SpyStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async move {
            let claim = self.inner.claim(key, owner, lease).await;
            if matches!(claim, Ok(Claim::InFlight)) {
                self.in_flight.fetch_add(1, Ordering::SeqCst);
            }
            claim
        })
    }

    fn renew<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        lease: Duration,
        answered: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let renewed = self.inner.renew(key, owner, lease, answered).await;
            if answered {
                self.answered.fetch_add(1, Ordering::SeqCst);
            }
            renewed
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: u64,
        reply: &'a Reply,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            match self.complete_mode.load(Ordering::SeqCst) {
                1 => Err(StoreError::new("the store is down")),
                2 => std::future::pending().await,
                _ => {
                    self.inner.complete(key, owner, reply, ttl).await?;
                    self.completed.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            }
        })
    }

    fn release<'a>(&'a self, key: &'a str, owner: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.release(key, owner)
    }

    fn wait<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        self.inner.wait(key)
    }
}

/// `doc` sealed for `case` as WeChat sends it in safe mode, under a query with `nonce`.
fn sealed(case: &Case, format: &str, doc: &str, nonce: &str) -> (String, String) {
    let ts = case.timestamp().to_string();
    let encrypt = crypto::encrypt(&case.key(), doc.as_bytes(), case.appid()).unwrap();
    let msg_signature = signature::sign_message(case.token(), &ts, nonce, &encrypt);
    let query = format!(
        "{}&encrypt_type=aes&msg_signature={msg_signature}",
        plain_query(case.token(), &ts, nonce)
    );
    let body = match format {
        "xml" => format!(
            "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ),
        _ => format!(r#"{{"ToUserName":"gh_1","Encrypt":"{encrypt}"}}"#),
    };
    (query, body)
}

/// An event without `MsgId` from the platform account, in `format`, told apart only by `id`.
fn platform_event(format: &str, event: &str, id: &str) -> String {
    match format {
        "xml" => format!(
            "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o_platform]]></FromUserName><CreateTime>1714200000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event><order_id><![CDATA[{id}]]></order_id></xml>"
        ),
        _ => format!(
            r#"{{"ToUserName":"gh_1","FromUserName":"o_platform","CreateTime":1714200000,"MsgType":"event","Event":"{event}","order_id":"{id}"}}"#
        ),
    }
}

#[tokio::test]
async fn pushes_without_an_id_are_told_apart_by_their_document() {
    let case = Case::new(0);
    for format in ["xml", "json"] {
        for safe in [false, true] {
            for event in ["trade_manage_order_settlement", "an_event_nobody_knows"] {
                // Each call answers its own number, so every answer shows which run made it.
                let calls = Arc::new(AtomicUsize::new(0));
                let handler = {
                    let calls = calls.clone();
                    service_fn(move |_: Request<Message>| {
                        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                        async move { Ok::<_, Infallible>(Reply::text(format!("run {n}"))) }
                    })
                };
                let svc = case
                    .layer()
                    .dedupe(MemoryDedupeStore::new(100))
                    .layer(handler);
                let addr = serve_hyper(svc).await;
                let mut answers = Vec::new();
                for order in ["order-1", "order-2"] {
                    let doc = platform_event(format, event, order);
                    let mut theirs = Vec::new();
                    // The first delivery and two retries, each with a fresh query (and, in
                    // safe mode, sealed afresh).
                    for attempt in 0..3 {
                        let nonce = format!("{}{attempt}", order.len() + attempt);
                        let (query, body) = if safe {
                            sealed(&case, format, &doc, &nonce)
                        } else {
                            let ts = case.timestamp().to_string();
                            (plain_query(case.token(), &ts, &nonce), doc.clone())
                        };
                        let (status, body) = post(addr, &query, &body).await;
                        assert_eq!(status, StatusCode::OK, "{format} safe={safe} {event}");
                        theirs.push(if safe {
                            case.open_sealed_reply(format, &body)
                        } else {
                            body
                        });
                    }
                    assert!(
                        theirs.iter().all(|a| a == &theirs[0]),
                        "{format} safe={safe} {event}: {theirs:?}"
                    );
                    answers.push(theirs.swap_remove(0));
                }
                assert_eq!(
                    calls.load(Ordering::SeqCst),
                    2,
                    "{format} safe={safe} {event}: each push once"
                );
                assert!(
                    answers[0].contains("run 1") && answers[1].contains("run 2"),
                    "{answers:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_reply_the_store_failed_to_record_frees_the_push() {
    let case = Case::new(0);
    for mode in [1, 2] {
        let calls = Arc::new(AtomicUsize::new(0));
        let store = Arc::new(SpyStore::default());
        store.complete_mode.store(mode, Ordering::SeqCst);
        let svc = case
            .layer()
            .dedupe_with(DedupeConfig::new(store.clone()).lease(Duration::from_secs(60)))
            .layer(counting(calls.clone()));
        let push = || case.plain_push("xml");
        // The store failed, or hangs: the reply goes out all the same, at once (it is
        // recorded off the answer's path).
        let first =
            tokio::time::timeout(Duration::from_millis(300), svc.clone().oneshot(push())).await;
        assert_eq!(
            first.unwrap().unwrap().status(),
            StatusCode::OK,
            "mode {mode}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The claim was released (at once after a failure, after 3 s of a hung store): the
        // retry is handled, not kept waiting for the 60 s lease.
        store.complete_mode.store(0, Ordering::SeqCst);
        let retry = tokio::time::timeout(Duration::from_secs(10), svc.clone().oneshot(push()))
            .await
            .expect("the retry does not wait for the lease")
            .unwrap();
        assert_eq!(retry.status(), StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "mode {mode}");
        assert_eq!(store.completed(), 1);
    }
}

/// A runtime of its own, so that a test can shut it down.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_handler_cancelled_at_shutdown_after_the_deadline_is_handled_again() {
    let case = Case::new(0);
    let doc = s(case.format("xml"), "plaintext").to_owned();
    let store = Arc::new(SpyStore::default());
    let started = Arc::new(AtomicUsize::new(0));
    // The first instance: its handler never finishes; the deadline answers `success`.
    let rt = runtime();
    let handler = {
        let started = started.clone();
        service_fn(move |_: Request<Message>| {
            started.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<Reply, Infallible>>()
        })
    };
    let svc = case
        .layer()
        .dedupe(store.clone())
        .ack_deadline(Duration::from_millis(50))
        .layer(handler);
    rt.block_on(async {
        let res = svc.oneshot(case.plain_push("xml")).await.unwrap();
        assert_eq!(body_string(res.into_body()).await, "success");
        while store.answered() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    assert_eq!(started.load(Ordering::SeqCst), 1);
    // The instance shuts down: the handler's task is cancelled, its push never handled.
    drop(rt);
    // WeChat's retry reaches another instance sharing the store: handled, not answered from
    // the record of the cancelled run.
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = case
        .layer()
        .dedupe(store.clone())
        .layer(counting(calls.clone()));
    let res = runtime().block_on(async {
        let res = svc.oneshot(case.plain_push("xml")).await.unwrap();
        body_string(res.into_body()).await
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(res.contains("hello"), "{res}");
    let _ = doc;
}

#[test]
fn a_handler_cancelled_before_the_deadline_leaves_the_push_unanswered_and_free() {
    let case = Case::new(0);
    let store = Arc::new(SpyStore::default());
    let handler =
        service_fn(|_: Request<Message>| std::future::pending::<Result<Reply, Infallible>>());
    let svc = case
        .layer()
        .dedupe(store.clone())
        .ack_deadline(Duration::from_secs(30))
        .layer(handler);
    let mut delivery = Box::pin(svc.oneshot(case.plain_push("xml")));
    // Polled on a runtime that then shuts down, cancelling the handler's task...
    let rt = runtime();
    rt.block_on(async {
        let polled = tokio::time::timeout(Duration::from_millis(50), &mut delivery).await;
        assert!(polled.is_err(), "the handler is running");
    });
    drop(rt);
    // ...the delivery is not answered `success` (WeChat would not retry a push nobody
    // handled): it stays unanswered, and its claim is free.
    let rt = runtime();
    let outcome =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(300), delivery).await });
    assert!(
        outcome.is_err(),
        "answered {:?}",
        outcome.map(|r| r.map(|r| r.status()))
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = case
        .layer()
        .dedupe(store.clone())
        .layer(counting(calls.clone()));
    rt.block_on(async {
        let res = tokio::time::timeout(Duration::from_secs(5), svc.oneshot(case.plain_push("xml")))
            .await
            .expect("the claim was released, not left to its lease")
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(store.completed(), 1);
}

/// Runs `future` to completion on this thread, outside any Tokio runtime.
fn block_on_without_tokio<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[test]
fn outside_a_runtime_the_retry_options_answer_500_instead_of_panicking() {
    let case = Case::new(0);
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = case
        .layer()
        .dedupe(MemoryDedupeStore::new(10))
        .ack_deadline(Duration::from_secs(4))
        .layer(counting(calls.clone()));
    let res = block_on_without_tokio(svc.oneshot(case.plain_push("xml"))).unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        res.extensions().get::<Rejection>(),
        Some(&Rejection::NoRuntime)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_safe_mode_retry_sealed_afresh_under_the_same_query_is_not_refused() {
    let case = Case::new(0);
    let doc = s(case.format("xml"), "plaintext");
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = case
        .layer()
        .replay_guard(MemoryReplayStore::new(100))
        .layer(counting(calls.clone()));
    // Same timestamp and nonce (so the same `signature`), sealed twice: two `Encrypt`s.
    let (q1, b1) = sealed(&case, "xml", doc, "4242");
    let (q2, b2) = sealed(&case, "xml", doc, "4242");
    assert_ne!(b1, b2);
    for (q, b) in [(q1, b1), (q2, b2)] {
        let res = svc
            .clone()
            .oneshot(request(Method::POST, &q, b))
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{:?}",
            res.extensions().get::<Rejection>()
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn with_the_timestamp_check_off_the_replay_guard_keeps_its_own_window() {
    let case = Case::new(0);
    let ts = case.timestamp();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = |now: u64| {
        WechatLayer::new(case.token())
            .unwrap()
            .timestamp_tolerance(None)
            .clock(FixedClock::at_unix(now))
    };
    // Without the guard, the check is off: an hour-old push passes.
    let svc = layer(ts + 3600).layer(counting(calls.clone()));
    let res = svc.oneshot(case.plain_push("xml")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // With it, a plaintext push older than the guard's memory (300 s) could be a replay of a
    // forgotten query: refused.
    let guarded = |now| {
        layer(now)
            .replay_guard(MemoryReplayStore::new(100))
            .layer(counting(calls.clone()))
    };
    let res = guarded(ts + 301)
        .oneshot(case.plain_push("xml"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(matches!(
        res.extensions().get::<Rejection>(),
        Some(Rejection::StaleTimestamp { .. })
    ));
    let res = guarded(ts + 299)
        .oneshot(case.plain_push("xml"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A lease, TTL or timestamp tolerance of `Duration::MAX` used to panic the first push
/// (`Instant + Duration` overflow in the memory stores and the replay guard's window).
#[tokio::test]
async fn durations_of_duration_max_do_not_panic_the_memory_stores() {
    let case = Case::new(0);
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = case
        .layer()
        .timestamp_tolerance(Some(Duration::MAX))
        .replay_guard(MemoryReplayStore::new(10))
        .dedupe_with(
            DedupeConfig::new(MemoryDedupeStore::new(10))
                .lease(Duration::MAX)
                .ttl(Duration::MAX),
        )
        .layer(counting(calls.clone()));
    for _ in 0..2 {
        let res = svc.clone().oneshot(case.plain_push("xml")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(body_string(res.into_body()).await.contains("hello"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "deduped");
}
