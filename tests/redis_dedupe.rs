//! Dedupe on Redis when the owner of a claim cannot settle it: killed, refused by the stores'
//! pause, timed out, or stopped with its runtime. Each time, WeChat's next deliveries reach
//! another instance (another layer with its own `RedisStores` on the same `redis-server`), and
//! one of the next two must handle the push. Against real `redis-server` processes on
//! loopback, started by the tests.
//!
//! Without `redis-server` on the PATH each test prints a loud SKIPPED line and passes; with
//! `CI=true` it fails instead (`.ci/run` installs the Debian package).
#![cfg(all(feature = "redis", feature = "tracing"))]

mod common;

#[allow(dead_code)]
#[path = "../examples/customer_service.rs"]
mod example;
#[path = "common/example_instance.rs"]
mod example_instance;

use example_instance::Instance;

#[path = "common/mock_api.rs"]
mod mock_api;
#[path = "common/redis_server.rs"]
mod redis_server;

use redis_server::RedisServer;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use mock_api::{standard, Mock, SEND};
use redis::AsyncCommands;
use tokio::sync::Notify;
use tower::{service_fn, Service, ServiceExt};
use wechat_push::dedupe::DedupeConfig;
use wechat_push::redis::RedisStores;
use wechat_push::{Message, Reply};

/// A separate connection (a separate instance's) to `server`, under `prefix`.
fn instance(url: &str, prefix: &str) -> RedisStores {
    RedisStores::builder(url).prefix(prefix).build().unwrap()
}

// ---------------------------------------------------------------------------------------
// Pushes and the other instance
// ---------------------------------------------------------------------------------------

/// A plaintext text push with its own `MsgId`, signed for case 0.
fn push(case: &Case, id: u64) -> Request<Full<Bytes>> {
    case.plain_post(Full::new(Bytes::from(format!(
        "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1714200000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[push {id}]]></Content><MsgId>{id}</MsgId></xml>"
    ))))
}

/// Instance B: counts its handler's calls, which answer "handled by B".
fn instance_b(
    case: &Case,
    url: &str,
    prefix: &str,
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = http::Response<wechat_push::body::Body>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    case.layer()
        .dedupe(instance(url, prefix).dedupe_store())
        .layer(service_fn(move |_: Request<Message>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Reply::text("handled by B")) }
        }))
}

/// WeChat's next two deliveries of push `id`, to instance B: the second only if the first
/// did not get B's handler to run. Each is given up after 6 s (WeChat gives up after 5).
/// Returns the answers' bodies (`None`: not answered in time).
async fn next_two_deliveries<S>(
    b: S,
    case: &Case,
    id: u64,
    calls: &AtomicUsize,
) -> Vec<Option<String>>
where
    S: Service<
            Request<Full<Bytes>>,
            Response = http::Response<wechat_push::body::Body>,
            Error = Infallible,
        > + Clone,
{
    let mut answers = Vec::new();
    for _ in 0..2 {
        let delivery = b.clone().oneshot(push(case, id));
        let answer = match tokio::time::timeout(Duration::from_secs(6), delivery).await {
            Ok(Ok(res)) => {
                assert_eq!(res.status(), StatusCode::OK);
                Some(body_string(res.into_body()).await)
            }
            Err(_elapsed) => None,
        };
        answers.push(answer);
        if calls.load(Ordering::SeqCst) > 0 {
            break;
        }
    }
    answers
}

/// The push was handled by B, once, and that delivery got B's answer.
fn assert_taken_over(answers: &[Option<String>], calls: &AtomicUsize) {
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one of the next two deliveries is handled at B: {answers:?}"
    );
    assert!(
        answers
            .last()
            .and_then(Option::as_deref)
            .is_some_and(|a| a.contains("handled by B")),
        "{answers:?}"
    );
}

/// Waits until `flag` is set (a handler started), at most 10 s.
async fn until(flag: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !flag.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the handler starts");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The four ways a claim outlived its owner
// ---------------------------------------------------------------------------------------

/// 1. The owner dies (`kill -9`, a lost node): its claim is never released. Simulated by an
///    instance whose handler blocks its runtime's only thread for good: nothing of that
///    instance runs again. The claim used to hold for its 60 s lease; now nothing renews it,
///    and it expires before WeChat's next delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_owner_died_is_taken_over_at_another_instance() {
    let Some(server) =
        RedisServer::start("a_claim_whose_owner_died_is_taken_over_at_another_instance")
    else {
        return;
    };
    let case = Case::new(0);
    let started = Arc::new(AtomicBool::new(false));
    let a = {
        let started = started.clone();
        case.layer()
            .dedupe(instance(&server.url(), "died:").dedupe_store())
            .layer(service_fn(move |_: Request<Message>| {
                started.store(true, Ordering::SeqCst);
                // Dead from here on: the runtime's one thread never comes back.
                std::thread::sleep(Duration::from_secs(120));
                async { Ok::<_, Infallible>(Reply::text("handled by A")) }
            }))
    };
    let delivery = a.oneshot(push(&case, 1));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(delivery);
    });
    until(&started).await;

    let calls = Arc::new(AtomicUsize::new(0));
    let b = instance_b(&case, &server.url(), "died:", calls.clone());
    let answers = next_two_deliveries(b, &case, 1, &calls).await;
    assert_taken_over(&answers, &calls);
}

/// 2. The handler fails within the stores' 1 s pause after a timed-out command: the release is
///    refused by the pause. It used to be dropped, leaving the claim for its lease; now it is
///    tried again until it goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_refused_by_the_pause_is_tried_again() {
    let Some(server) = RedisServer::start("a_release_refused_by_the_pause_is_tried_again") else {
        return;
    };
    let case = Case::new(0);
    let started = Arc::new(AtomicBool::new(false));
    let fail = Arc::new(Notify::new());
    let a = {
        let (started, fail) = (started.clone(), fail.clone());
        case.layer()
            .dedupe(instance(&server.url(), "pause:").dedupe_store())
            .layer(service_fn(move |req: Request<Message>| {
                let first = req.body().msg_id() == Some(1);
                let (started, fail) = (started.clone(), fail.clone());
                async move {
                    if first {
                        started.store(true, Ordering::SeqCst);
                        fail.notified().await;
                        return Err("handler failed");
                    }
                    Ok(Reply::text("handled by A"))
                }
            }))
    };
    let first = tokio::spawn(a.clone().oneshot(push(&case, 1)));
    until(&started).await;
    // Redis hangs; a command of A's times out, and A's stores pause for a second.
    server.freeze(true);
    let frozen_at = Instant::now();
    let other = a.clone().oneshot(push(&case, 2)).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK, "handled without dedupe");
    server.freeze(false);
    // Within the pause, the first push's handler fails: its release is refused.
    fail.notify_one();
    assert_eq!(first.await.unwrap().unwrap_err(), "handler failed");

    // Released by a later try, not left to expire: gone before the lease (3 s after the last
    // renewal, which was before the freeze) could have expired it.
    let mut raw = server.raw().await;
    loop {
        let exists: bool = raw
            .exists("pause:dedupe:gh_97417a04a28d|msg|1")
            .await
            .unwrap();
        if !exists {
            break;
        }
        assert!(
            frozen_at.elapsed() < Duration::from_millis(2_800),
            "the release is tried again after the pause"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let calls = Arc::new(AtomicUsize::new(0));
    let b = instance_b(&case, &server.url(), "pause:", calls.clone());
    let answers = next_two_deliveries(b, &case, 1, &calls).await;
    assert_taken_over(&answers, &calls);
}

/// 3. A claim that timed out here (Redis frozen just then) still lands when Redis catches up.
///    Its owner token used to be thrown away (the push handled "without dedupe"), so when that
///    handler failed nothing released the orphan; now the token is kept and the release tried
///    until it goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_timed_out_but_landed_is_released() {
    let Some(server) = RedisServer::start("a_claim_that_timed_out_but_landed_is_released") else {
        return;
    };
    let case = Case::new(0);
    let a = case
        .layer()
        .dedupe(instance(&server.url(), "late:").dedupe_store())
        .layer(service_fn(|_: Request<Message>| async {
            Err::<Reply, _>("handler failed")
        }));
    // Connected first, so that the claim is written to the socket and waits there.
    let mut raw = server.raw().await;
    let _: bool = raw.exists("late:warm-up").await.unwrap();
    let warm = a.clone().oneshot(push(&case, 9)).await;
    assert!(warm.is_err());
    server.freeze(true);
    let failed = a.clone().oneshot(push(&case, 1)).await;
    assert_eq!(
        failed.unwrap_err(),
        "handler failed",
        "handled without the claim's answer"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.freeze(false);
    let thawed_at = Instant::now();

    let calls = Arc::new(AtomicUsize::new(0));
    let b = instance_b(&case, &server.url(), "late:", calls.clone());
    let answers = next_two_deliveries(b, &case, 1, &calls).await;
    assert_taken_over(&answers, &calls);
    assert!(
        thawed_at.elapsed() < Duration::from_secs(6),
        "taken over by the first delivery: {answers:?}"
    );
}

/// 4. The runtime shuts down with the handler in flight (before the ack deadline, so the
///    delivery goes unanswered and WeChat delivers again): the release used to be spawned on
///    the runtime that was stopping, and never ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_held_when_the_runtime_stops_is_taken_over_at_another_instance() {
    let Some(server) =
        RedisServer::start("a_claim_held_when_the_runtime_stops_is_taken_over_at_another_instance")
    else {
        return;
    };
    let case = Case::new(0);
    let started = Arc::new(AtomicBool::new(false));
    let a = {
        let started = started.clone();
        case.layer()
            .dedupe(instance(&server.url(), "stop:").dedupe_store())
            .ack_deadline(Duration::from_secs(30))
            .layer(service_fn(move |_: Request<Message>| {
                started.store(true, Ordering::SeqCst);
                std::future::pending::<Result<Reply, Infallible>>()
            }))
    };
    let delivery = a.oneshot(push(&case, 1));
    let claimed = started.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut delivery = std::pin::pin!(delivery);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !claimed.load(Ordering::SeqCst) && Instant::now() < deadline {
                let _ = tokio::time::timeout(Duration::from_millis(10), &mut delivery).await;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), &mut delivery).await;
        });
        // The instance stops: its runtime shuts down with the handler in flight.
        drop(rt);
    })
    .join()
    .unwrap();
    assert!(started.load(Ordering::SeqCst));

    let calls = Arc::new(AtomicUsize::new(0));
    let b = instance_b(&case, &server.url(), "stop:", calls.clone());
    let answers = next_two_deliveries(b, &case, 1, &calls).await;
    assert_taken_over(&answers, &calls);
}

// ---------------------------------------------------------------------------------------
// A duplicate's wait, and bounds
// ---------------------------------------------------------------------------------------

/// A duplicate finding the push in flight at a live owner waits at most 4 s (it used to wait
/// for as long as the claim lasted), and then answers `success` without running the handler:
/// the owner is alive (it renewed the claim past a whole lease) and handling the push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_waits_on_a_live_owner_at_most_four_seconds() {
    let Some(server) = RedisServer::start("a_duplicate_waits_on_a_live_owner_at_most_four_seconds")
    else {
        return;
    };
    let case = Case::new(0);
    let started = Arc::new(AtomicBool::new(false));
    let a = {
        let started = started.clone();
        case.layer()
            .dedupe(instance(&server.url(), "live:").dedupe_store())
            .layer(service_fn(move |_: Request<Message>| {
                started.store(true, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(8)).await;
                    Ok::<_, Infallible>(Reply::text("handled by A"))
                }
            }))
    };
    let first = tokio::spawn(a.oneshot(push(&case, 1)));
    until(&started).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let b = instance_b(&case, &server.url(), "live:", calls.clone());
    let began = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(6), b.clone().oneshot(push(&case, 1)))
        .await
        .expect("the duplicate does not wait past its bound")
        .unwrap();
    let waited = began.elapsed();
    assert!(waited >= Duration::from_millis(3_900), "{waited:?}");
    assert_eq!(body_string(res.into_body()).await, "success");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "not handled twice");
    // The owner finishes; its reply is recorded and answers the next delivery.
    let res = first.await.unwrap().unwrap();
    assert!(body_string(res.into_body()).await.contains("handled by A"));
    let res = b.oneshot(push(&case, 1)).await.unwrap();
    assert!(body_string(res.into_body()).await.contains("handled by A"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// A lease, TTL or timestamp tolerance of `Duration::MAX` used to panic the first push
/// (`Instant + Duration`) or make every Redis command fail: they are clamped.
#[tokio::test]
async fn durations_of_duration_max_are_clamped() {
    let Some(server) = RedisServer::start("durations_of_duration_max_are_clamped") else {
        return;
    };
    let case = Case::new(0);
    let stores = instance(&server.url(), "max:");
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = case
        .layer()
        .timestamp_tolerance(Some(Duration::MAX))
        .replay_guard(stores.replay_store())
        .dedupe_with(
            DedupeConfig::new(stores.dedupe_store())
                .lease(Duration::MAX)
                .ttl(Duration::MAX),
        );
    let svc = {
        let calls = calls.clone();
        layer.layer(service_fn(move |_: Request<Message>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Reply::text("once")) }
        }))
    };
    for _ in 0..2 {
        let res = svc.clone().oneshot(push(&case, 1)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(body_string(res.into_body()).await.contains("once"));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "deduped: the claim went through"
    );
    let mut raw = server.raw().await;
    let pttl: i64 = raw.pttl("max:dedupe:gh_97417a04a28d|msg|1").await.unwrap();
    assert!(pttl > 0 && pttl <= 30 * 86_400_000, "{pttl}");
    let keys: Vec<String> = raw.keys("max:replay:*").await.unwrap();
    assert_eq!(keys.len(), 1, "the replay guard recorded the query");
    let pttl: i64 = raw.pttl(&keys[0]).await.unwrap();
    assert!(pttl > 0 && pttl <= 2 * 86_400_000 + 1_000, "{pttl}");
}

// ---------------------------------------------------------------------------------------
// The example's instances on a hung Redis
// ---------------------------------------------------------------------------------------

/// A text push with its own `MsgId`, signed now, posted to `addr`.
async fn post_text(case: &Case, addr: SocketAddr, id: u64) -> (StatusCode, String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let query = plain_query(case.token(), &now.to_string(), "1234567");
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1714200000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[push {id}]]></Content><MsgId>{id}</MsgId></xml>"
    );
    let (status, _, body) = send(addr, Method::POST, &format!("/wechat?{query}"), &body).await;
    (status, body)
}

/// CONTRACT's "Several instances": if Redis hangs, every push is still answered `success`
/// within WeChat's 5 s and its send made; once it answers again, a push delivered to both
/// instances is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_service_instances_answer_and_send_while_redis_hangs() {
    let Some(server) =
        RedisServer::start("customer_service_instances_answer_and_send_while_redis_hangs")
    else {
        return;
    };
    let case = Case::new(0);
    let mock = Mock::start(standard).await;
    let env = HashMap::from([
        ("BIND", "127.0.0.1:0".to_owned()),
        ("WECHAT_TOKEN", case.token().to_owned()),
        ("WECHAT_APPID", case.appid().to_owned()),
        ("WECHAT_APP_SECRET", "SECRET".to_owned()),
        ("WECHAT_API_BASE", mock.base()),
        ("REDIS_URL", server.url()),
    ]);
    let (a, b) = (Instance::start(&env).await, Instance::start(&env).await);
    assert_eq!(
        post_text(&case, a.addr, 7001).await,
        (StatusCode::OK, "success".to_owned())
    );
    mock.wait_for(SEND, 1).await;

    server.freeze(true);
    for (i, addr) in [a.addr, b.addr, a.addr, b.addr].into_iter().enumerate() {
        let started = Instant::now();
        let answer = post_text(&case, addr, 7002 + i as u64).await;
        assert_eq!(answer, (StatusCode::OK, "success".to_owned()));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "answered in {took:?}");
    }
    mock.wait_for(SEND, 5).await;
    server.freeze(false);

    // Redis answers again: a push and its retry at the other instance, one send.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 7100;
    loop {
        id += 1;
        let sent = mock.count(SEND);
        assert_eq!(post_text(&case, a.addr, id).await.0, StatusCode::OK);
        mock.wait_for(SEND, sent + 1).await;
        assert_eq!(post_text(&case, b.addr, id).await.0, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if mock.count(SEND) == sent + 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Redis not shared again within 10 s"
        );
    }
    a.stop().await;
    b.stop().await;
}
