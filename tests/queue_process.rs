//! Queue mode through the `customer_service` example's processes (CONTRACT.md, "Durable
//! handling"), on a `redis-server` each test starts and the loopback mock of WeChat's API: a
//! send held by a killed instance is made by another one within 30 s, once; a send failing
//! with an HTTP 5xx or `-1` is retried with the contract's back-off; SIGTERM hands back
//! what a worker holds, which another instance sends once, and exits 0; a frozen Redis at
//! accept time costs one warning, and the push is still answered in time and sent; the same
//! push delivered to two instances while held is sent once.
//!
//! Without `redis-server` on the PATH the Redis tests print a loud SKIPPED line and pass;
//! with `CI=true` they fail instead.
#![cfg(all(
    feature = "client",
    feature = "redis",
    feature = "tokio",
    feature = "axum",
    feature = "tracing"
))]

mod common;
#[path = "common/example_process.rs"]
mod example_process;
#[path = "common/mock_api.rs"]
mod mock_api;
#[path = "common/redis_server.rs"]
mod redis_server;

use example_process::{executable, free_port, signal, Instance};
use redis_server::RedisServer;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::plain_query;
use http::StatusCode;
use mock_api::{err, ok, token_answer, Answer, Mock, Recorded, SEND, TOKEN as TOKEN_PATH};
use serde_json::Value;

const TOKEN: &str = "QueueToken1";
const APPID: &str = "wx1234567890abcdef";
const OPENID: &str = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY";

/// The example's executable, built once for all the tests of this file.
fn exe() -> &'static PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(executable)
}

/// The example's environment, against the mock at `api`, on the Redis at `redis` if any.
fn env(api: &Mock, redis: Option<&RedisServer>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("WECHAT_TOKEN", TOKEN.to_owned()),
        ("WECHAT_APPID", APPID.to_owned()),
        ("WECHAT_APP_SECRET", "SECRET".to_owned()),
        ("WECHAT_API_BASE", api.base()),
    ];
    if let Some(redis) = redis {
        env.push(("REDIS_URL", redis.url()));
    }
    env
}

fn instance(env: &[(&str, String)]) -> Instance {
    let mut instance = Instance {
        port: free_port(),
        child: None,
        stderr: Vec::new(),
    };
    instance.start(exe(), env);
    instance
}

/// A plaintext text push `content` with `MsgId` `msg_id`, signed now: its path and body.
fn push(content: &str, msg_id: u64) -> (String, String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let query = plain_query(TOKEN, &now.to_string(), "4242");
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    );
    (format!("/wechat?{query}&openid={OPENID}"), body)
}

/// Delivers a push to the instance on `port`; answers the status, the body and the time it
/// took.
async fn deliver(port: u16, target: &str, body: &str) -> (StatusCode, String, Duration) {
    let started = Instant::now();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, _, text) = common::send(addr, http::Method::POST, target, body).await;
    (status, text, started.elapsed())
}

/// A mock API recording when each send arrived; `send(n)` answers the `n`th send (1-based).
async fn api(
    send: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> (Mock, Arc<Mutex<Vec<(Instant, String)>>>) {
    let sends: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let record = sends.clone();
    let mock = Mock::start(move |r: &Recorded| match r.path.as_str() {
        TOKEN_PATH => token_answer(r),
        SEND => {
            let content = serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v["text"]["content"].as_str().map(str::to_owned))
                .unwrap_or_default();
            record.lock().unwrap().push((Instant::now(), content));
            send(r.nth)
        }
        _ => ok(),
    })
    .await;
    (mock, sends)
}

/// Waits (at most `within`) until `done`.
async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// Never answered while the test runs.
fn hang() -> Answer {
    Answer::Delay(Duration::from_secs(3600), Box::new(ok()))
}

fn success() -> (StatusCode, String) {
    (StatusCode::OK, "success".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_held_by_a_killed_instance_is_made_by_another_within_30_s_once() {
    let Some(redis) = RedisServer::start("a_send_held_by_a_killed_instance") else {
        return;
    };
    // The first send hangs: instance A's worker holds it when A is killed.
    let (mock, sends) = api(|n| if n == 1 { hang() } else { ok() }).await;
    let env = env(&mock, Some(&redis));
    let mut a = instance(&env);
    let (target, body) = push("held-by-a", 501);
    let (status, text, _) = deliver(a.port, &target, &body).await;
    assert_eq!((status, text), success());
    assert!(
        eventually(Duration::from_secs(10), || sends.lock().unwrap().len() == 1).await,
        "A's worker makes the send"
    );
    // B starts once A holds the send (any instance's workers take from the shared stream).
    let b = instance(&env);
    signal(a.pid(), "-KILL");
    let killed = Instant::now();
    let _ = a.exited(Duration::from_secs(5)).await;
    let mut b = b;
    if !eventually(Duration::from_secs(30), || sends.lock().unwrap().len() == 2).await {
        eventually(Duration::from_secs(60), || sends.lock().unwrap().len() == 2).await;
        let late = sends
            .lock()
            .unwrap()
            .get(1)
            .map(|s| s.0.duration_since(killed));
        signal(b.pid(), "-TERM");
        let _ = b.exited(Duration::from_secs(15)).await;
        panic!(
            "another instance makes the send within 30 s of the kill (made after {late:?})\nB's stderr:\n{}",
            b.stderr()
        );
    }
    let taken_over = sends.lock().unwrap()[1].0.duration_since(killed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sends = sends.lock().unwrap().clone();
    assert_eq!(sends.len(), 2, "once: {sends:?}");
    assert_eq!(sends[1].1, "held-by-a");
    println!(
        "queue figures: a killed instance's send made by another {taken_over:?} after the kill"
    );
    drop(b);
}

/// Sends the push once, then checks the contract's back-off on the sends `answer` fails.
async fn retried_with_back_off(answer: fn(usize) -> Answer, what: &str) {
    let (mock, sends) = api(answer).await;
    let env = env(&mock, None);
    let a = instance(&env);
    let (target, body) = push(what, 601);
    let (status, text, _) = deliver(a.port, &target, &body).await;
    assert_eq!((status, text), success());
    assert!(
        eventually(Duration::from_secs(45), || sends.lock().unwrap().len() == 3).await,
        "{what}: three attempts within 45 s"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sends = sends.lock().unwrap().clone();
    assert_eq!(
        sends.len(),
        3,
        "{what}: the third succeeded, no more: {sends:?}"
    );
    let first_retry = sends[1].0.duration_since(sends[0].0);
    let third = sends[2].0.duration_since(sends[0].0);
    assert!(
        first_retry <= Duration::from_secs(5),
        "{what}: first retry after {first_retry:?}"
    );
    assert!(
        third <= Duration::from_secs(45),
        "{what}: third attempt after {third:?}"
    );
    println!(
        "queue figures: {what}: first retry after {first_retry:?}, third attempt after {third:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_failing_with_a_5xx_is_retried_by_the_queue_with_back_off() {
    retried_with_back_off(
        |n| {
            if n <= 2 {
                Answer::Raw(
                    StatusCode::BAD_GATEWAY,
                    "text/html",
                    Bytes::from_static(b"<html>502</html>"),
                )
            } else {
                ok()
            }
        },
        "http-502",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_failing_with_minus_1_is_retried_with_back_off() {
    retried_with_back_off(|n| if n <= 2 { err(-1) } else { ok() }, "errcode-minus-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_back_held_work_another_instance_sends_it_once_and_exits_0() {
    let Some(redis) = RedisServer::start("sigterm_hands_back_held_work") else {
        return;
    };
    // The first send outlives the 10 s shutdown bound: A abandons it and hands it back.
    let (mock, sends) = api(|n| if n == 1 { hang() } else { ok() }).await;
    let env = env(&mock, Some(&redis));
    let mut a = instance(&env);
    let (target, body) = push("handed-back", 701);
    let (status, text, _) = deliver(a.port, &target, &body).await;
    assert_eq!((status, text), success());
    assert!(eventually(Duration::from_secs(10), || sends.lock().unwrap().len() == 1).await);
    // B starts once A holds the send (any instance's workers take from the shared stream).
    let b = instance(&env);
    signal(a.pid(), "-TERM");
    let stopped = Instant::now();
    let status = a.exited(Duration::from_secs(15)).await;
    let took = stopped.elapsed();
    assert!(status.success(), "exit 0 on SIGTERM: {status}");
    assert!(
        took <= Duration::from_secs(12),
        "within the 10 s bound: {took:?}"
    );
    let mut b = b;
    if !eventually(Duration::from_secs(10), || sends.lock().unwrap().len() == 2).await {
        eventually(Duration::from_secs(40), || sends.lock().unwrap().len() == 2).await;
        let late = sends
            .lock()
            .unwrap()
            .get(1)
            .map(|s| s.0.duration_since(stopped));
        signal(b.pid(), "-TERM");
        let _ = b.exited(Duration::from_secs(15)).await;
        panic!(
            "the handed-back send is made by B within 10 s of A's exit (made {late:?} after the SIGTERM)\nA's stderr:\n{}\nB's stderr:\n{}",
            a.stderr(),
            b.stderr()
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sends = sends.lock().unwrap().clone();
    assert_eq!(sends.len(), 2, "once: {sends:?}");
    assert!(a.stderr().contains("handed back"), "A says so");
    println!(
        "queue figures: SIGTERM with a send held: exit 0 after {took:?}, sent by another instance"
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_at_accept_costs_one_warning_and_the_push_is_still_answered_and_sent() {
    let Some(redis) = RedisServer::start("a_frozen_redis_at_accept") else {
        return;
    };
    let (mock, sends) = api(|_| ok()).await;
    let env = env(&mock, Some(&redis));
    let mut a = instance(&env);
    // Warm: the token fetched, the queue on Redis.
    let (target, body) = push("before", 801);
    assert_eq!(deliver(a.port, &target, &body).await.0, StatusCode::OK);
    assert!(eventually(Duration::from_secs(10), || sends.lock().unwrap().len() == 1).await);

    redis.freeze(true);
    let mut took = Vec::new();
    for (n, content) in ["frozen-1", "frozen-2", "frozen-3"].iter().enumerate() {
        let (target, body) = push(content, 810 + n as u64);
        let (status, text, elapsed) = deliver(a.port, &target, &body).await;
        assert_eq!((status, text), success(), "{content}");
        assert!(
            elapsed < Duration::from_secs(5),
            "{content}: answered after {elapsed:?}"
        );
        took.push(elapsed);
    }
    assert!(
        eventually(Duration::from_secs(15), || sends.lock().unwrap().len() == 4).await,
        "sent from memory while Redis is frozen: {:?}",
        sends.lock().unwrap()
    );
    redis.freeze(false);
    // Redis back: used again, no restart.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (target, body) = push("after", 820);
    assert_eq!(deliver(a.port, &target, &body).await.0, StatusCode::OK);
    assert!(eventually(Duration::from_secs(15), || sends.lock().unwrap().len() == 5).await);
    signal(a.pid(), "-TERM");
    assert!(a.exited(Duration::from_secs(15)).await.success());
    let stderr = a.stderr();
    let warnings = stderr
        .lines()
        .filter(|l| l.starts_with("WARN") && l.contains("queue"))
        .count();
    assert_eq!(warnings, 1, "one warning for the outage:\n{stderr}");
    let mut contents: Vec<String> = sends.lock().unwrap().iter().map(|s| s.1.clone()).collect();
    contents.sort();
    assert_eq!(
        contents,
        ["after", "before", "frozen-1", "frozen-2", "frozen-3"]
    );
    println!("queue figures: Redis frozen at accept: answered after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_push_at_two_instances_while_held_is_sent_once() {
    let Some(redis) = RedisServer::start("the_same_push_at_two_instances") else {
        return;
    };
    // The first send takes 2 s: the push is held meanwhile.
    let (mock, sends) = api(|n| {
        if n == 1 {
            Answer::Delay(Duration::from_secs(2), Box::new(ok()))
        } else {
            ok()
        }
    })
    .await;
    let env = env(&mock, Some(&redis));
    let a = instance(&env);
    let b = instance(&env);
    let (target, body) = push("twice", 901);
    assert_eq!(deliver(a.port, &target, &body).await.0, StatusCode::OK);
    assert!(eventually(Duration::from_secs(10), || sends.lock().unwrap().len() == 1).await);
    // WeChat's retries, while held, to both instances.
    for port in [b.port, a.port] {
        let (status, text, _) = deliver(port, &target, &body).await;
        assert_eq!((status, text), success());
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    // And after it was handled.
    assert_eq!(deliver(b.port, &target, &body).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sends.lock().unwrap().len(), 1, "one send in all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_sigterm_logs_the_unfinished_work_as_lost_and_exits_0() {
    // In memory: the send never answered is abandoned at the 10 s bound, and lost with the
    // process: said on stderr.
    let (mock, sends) = api(|_| hang()).await;
    let env = env(&mock, None);
    let mut a = instance(&env);
    let (target, body) = push("lost-in-memory", 1001);
    let (status, text, _) = deliver(a.port, &target, &body).await;
    assert_eq!((status, text), success());
    assert!(eventually(Duration::from_secs(10), || sends.lock().unwrap().len() == 1).await);
    signal(a.pid(), "-TERM");
    let stopped = Instant::now();
    let status = a.exited(Duration::from_secs(15)).await;
    let took = stopped.elapsed();
    assert!(status.success(), "exit 0 on SIGTERM: {status}");
    assert!(
        took <= Duration::from_secs(12),
        "within the 10 s bound: {took:?}"
    );
    let stderr = a.stderr();
    assert!(
        stderr.contains("1 queued pushes lost at shutdown"),
        "logged as lost:\n{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with("ERROR")),
        "the queue's own error line:\n{stderr}"
    );
}
