//! The Redis stores against real `redis-server` processes on loopback: one per test, started
//! by the test (a free port, no persistence) so that it can be stopped, frozen and started
//! again mid-test.
//!
//! Without `redis-server` on the PATH each test prints a loud SKIPPED line and passes; with
//! `CI=true` it fails instead (`.ci/run` installs the Debian package).
#![cfg(all(feature = "redis", feature = "client", feature = "tracing"))]

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

use redis_server::{free_port, installed, RedisServer};

use std::collections::HashMap;
use std::convert::Infallible;

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use http::{Method, Request, StatusCode};
use mock_api::{err, ok, standard, token_answer, Answer, Mock, SEND, TOKEN};
use redis::AsyncCommands;
use tower::{service_fn, Service, ServiceExt};
use wechat_push::client::{AccessToken, Client, TokenStore};
use wechat_push::dedupe::{Claim, DedupeStore};
use wechat_push::message::Kind;
use wechat_push::redis::RedisStores;
use wechat_push::replay::{ReplayStore, Seen};
use wechat_push::ticket::{TicketStore, VerifyTicket, TICKET_VALIDITY_SECS};
use wechat_push::{Message, Reply};

// ---------------------------------------------------------------------------------------
// redis-server processes
// ---------------------------------------------------------------------------------------

/// A separate connection (a separate instance's) to `server`, under `prefix`.
fn instance(server: &RedisServer, prefix: &str) -> RedisStores {
    RedisStores::builder(server.url())
        .prefix(prefix)
        .build()
        .unwrap()
}

fn pttl_within(pttl: i64, expected: Duration) -> bool {
    let expected = i64::try_from(expected.as_millis()).unwrap();
    pttl > expected - 2_000 && pttl <= expected
}

// ---------------------------------------------------------------------------------------
// Counting warnings
// ---------------------------------------------------------------------------------------

/// A tracing subscriber counting this crate's warnings.
struct Warnings(Arc<AtomicUsize>);

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("wechat_push")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

// ---------------------------------------------------------------------------------------
// Pushes
// ---------------------------------------------------------------------------------------

/// A plaintext text push with its own `MsgId`.
fn text_push(id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1714200000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[push {id}]]></Content><MsgId>{id}</MsgId></xml>"
    )
}

/// A handler that counts its calls and echoes text, after `delay`.
fn counting(
    calls: Arc<AtomicUsize>,
    delay: Duration,
) -> impl Service<Request<Message>, Response = Reply, Error = Infallible, Future = impl Send>
       + Clone
       + Send
       + 'static {
    service_fn(move |req: Request<Message>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(match req.body().kind() {
                Kind::Text { content, .. } => Reply::text(content.clone()),
                _ => Reply::Success,
            })
        }
    })
}

async fn post(addr: SocketAddr, query: &str, body: &str) -> (StatusCode, String) {
    let (status, _, body) = send(addr, Method::POST, &format!("/wechat?{query}"), body).await;
    (status, body)
}

// ---------------------------------------------------------------------------------------
// The stores' contracts, and their keys' expiries read back from Redis
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_stores_keep_their_contracts_and_every_key_expires() {
    let Some(server) = RedisServer::start("the_stores_keep_their_contracts_and_every_key_expires")
    else {
        return;
    };
    let stores = instance(&server, "t:");
    let mut raw = server.raw().await;
    let pttl = |key: &'static str| {
        let mut raw = raw.clone();
        async move { raw.pttl::<_, i64>(key).await.unwrap() }
    };

    // Dedupe: claim, in flight, release by the owner only, record, done, release of the record.
    let dedupe = stores.dedupe_store();
    let (lease, ttl) = (Duration::from_secs(60), Duration::from_secs(300));
    let a = 0x0123_4567_89ab_cdef_u64;
    assert_eq!(
        dedupe.claim("k", a, lease).await.unwrap(),
        Claim::Acquired,
        "a free key is acquired"
    );
    assert!(pttl_within(pttl("t:dedupe:k").await, lease));
    assert_eq!(dedupe.claim("k", 2, lease).await.unwrap(), Claim::InFlight);
    dedupe.release("k", a.wrapping_add(1)).await.unwrap(); // not the owner
    assert_eq!(dedupe.claim("k", 2, lease).await.unwrap(), Claim::InFlight);
    // Renewed by the owner only; marked answered.
    assert!(!dedupe.renew("k", 2, ttl, false).await.unwrap());
    assert!(pttl_within(pttl("t:dedupe:k").await, lease));
    assert!(dedupe.renew("k", a, ttl, true).await.unwrap());
    assert!(pttl_within(pttl("t:dedupe:k").await, ttl));
    assert_eq!(dedupe.claim("k", 2, lease).await.unwrap(), Claim::Answered);
    let reply = Reply::document(&b"<xml>\x00\xff</xml>"[..]);
    dedupe.complete("k", a, &reply, ttl).await.unwrap();
    assert!(pttl_within(pttl("t:dedupe:k").await, ttl));
    assert_eq!(
        dedupe.claim("k", 2, lease).await.unwrap(),
        Claim::Done(reply)
    );
    assert!(!dedupe.renew("k", a, lease, false).await.unwrap(), "done");
    // Another owner cannot overwrite the record.
    dedupe
        .complete("k", a.wrapping_add(1), &Reply::Empty, ttl)
        .await
        .unwrap();
    assert!(matches!(
        dedupe.claim("k", 2, lease).await.unwrap(),
        Claim::Done(Reply::Document(_))
    ));
    dedupe.release("k", a).await.unwrap();
    assert_eq!(
        dedupe.claim("k", 3, lease).await.unwrap(),
        Claim::Acquired,
        "released, so acquired again"
    );

    // Replay: first, same body, other body; kept for the window.
    let replay = stores.replay_store();
    let window = Duration::from_secs(90);
    assert_eq!(
        replay.check("q", [1; 20], window).await.unwrap(),
        Seen::First
    );
    assert!(pttl_within(pttl("t:replay:q").await, window));
    assert_eq!(
        replay.check("q", [1; 20], window).await.unwrap(),
        Seen::SameBody
    );
    assert_eq!(
        replay.check("q", [2; 20], window).await.unwrap(),
        Seen::OtherBody
    );

    // Token: kept a minute past its expiry; compare-and-delete; the refresh lock.
    let token_store = stores.token_store();
    let expires_at = UNIX_EPOCH
        + Duration::from_millis(
            u64::try_from(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis(),
            )
            .unwrap()
                + 7_200_000,
        );
    token_store
        .set("tk", AccessToken::new("T1", expires_at))
        .await
        .unwrap();
    assert!(pttl_within(
        pttl("t:token:tk").await,
        Duration::from_secs(7_260)
    ));
    let got = token_store.get("tk").await.unwrap().unwrap();
    assert_eq!((got.value(), got.expires_at()), ("T1", expires_at));
    assert!(!token_store.invalidate("tk", "T0").await.unwrap());
    assert!(token_store.invalidate("tk", "T1").await.unwrap());
    assert_eq!(token_store.get("tk").await.unwrap(), None);
    let lease = Duration::from_secs(30);
    assert!(token_store.try_lock("l", "o1", lease).await.unwrap());
    assert!(pttl_within(pttl("t:token:l").await, lease));
    assert!(!token_store.try_lock("l", "o2", lease).await.unwrap());
    assert!(
        token_store.try_lock("l", "o1", lease).await.unwrap(),
        "extended"
    );
    token_store.unlock("l", "o2").await.unwrap();
    assert!(!token_store.try_lock("l", "o2", lease).await.unwrap());
    token_store.unlock("l", "o1").await.unwrap();
    assert!(token_store.try_lock("l", "o2", lease).await.unwrap());

    // Ticket: the latest by CreateTime (a retried, older push does not replace it), kept as
    // long as a ticket is valid.
    let tickets = stores.ticket_store();
    assert_eq!(tickets.get("wxC").await.unwrap(), None);
    tickets
        .set("wxC", VerifyTicket::new("ticket@@@2", 200))
        .await
        .unwrap();
    assert!(pttl_within(
        pttl("t:ticket:wxC").await,
        Duration::from_secs(TICKET_VALIDITY_SECS)
    ));
    tickets
        .set("wxC", VerifyTicket::new("ticket@@@1", 100))
        .await
        .unwrap();
    assert_eq!(
        tickets.get("wxC").await.unwrap().unwrap().value(),
        "ticket@@@2"
    );
    tickets
        .set("wxC", VerifyTicket::new("ticket@@@3", 300))
        .await
        .unwrap();
    let got = tickets.get("wxC").await.unwrap().unwrap();
    assert_eq!((got.value(), got.create_time()), ("ticket@@@3", 300));

    // Every key this test left has an expiry.
    let keys: Vec<String> = raw.keys("t:*").await.unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let left: i64 = raw.pttl(&key).await.unwrap();
        assert!(left > 0, "{key} has no expiry ({left})");
    }

    // A value the store did not write is an error, not a panic or a guess.
    let _: () = raw.set("t:dedupe:odd", "x").await.unwrap();
    let _: () = raw.set("t:token:odd", "no expiry here").await.unwrap();
    assert!(dedupe.claim("odd", 1, lease).await.is_err());
    assert!(token_store.get("odd").await.is_err());
    let _: () = raw.set("t:ticket:odd", "no time").await.unwrap();
    assert!(tickets.get("odd").await.is_err());
}

/// `rediss://`: a Redis serving TLS with a certificate of a CA made here; the stores talk to
/// it when told to trust that CA, and refuse it on the system's roots (it is verified).
#[tokio::test]
async fn rediss_is_verified_against_the_configured_root() {
    let test = "rediss_is_verified_against_the_configured_root";
    if !installed(test, "redis-server") || !installed(test, "openssl") {
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "wechat-push-tls-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for args in [
        &[
            "req",
            "-x509",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=wechat-push test CA",
        ][..],
        &[
            "req",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ][..],
    ] {
        let status = Command::new("openssl")
            .args(&args[..1])
            .args(ec)
            .args(&args[1..])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    }
    let status = Command::new("openssl")
        .args([
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
        ])
        .args([
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl x509");

    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(Child, std::path::PathBuf);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    let _server = Kill(child, dir.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server listens for TLS");
        std::thread::sleep(Duration::from_millis(10));
    }

    let url = format!("rediss://127.0.0.1:{port}/0");
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    let trusted = RedisStores::builder(&url)
        .tls_root_certificate(ca)
        .command_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .replay_store();
    let window = Duration::from_secs(60);
    assert_eq!(
        trusted.check("q", [1; 20], window).await.unwrap(),
        Seen::First
    );
    assert_eq!(
        trusted.check("q", [1; 20], window).await.unwrap(),
        Seen::SameBody
    );
    // The same server on the system's roots: its certificate is not trusted.
    let untrusted = RedisStores::builder(&url)
        .command_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .replay_store();
    let refused = untrusted.check("q", [1; 20], window).await.unwrap_err();
    assert!(refused.to_string().contains("certificate"), "{refused}");
    // A root that is not a certificate is refused when the stores are built.
    assert!(RedisStores::builder(&url)
        .tls_root_certificate(&b"not a certificate"[..])
        .build()
        .is_err());
}

#[test]
fn an_invalid_url_is_refused_without_repeating_it() {
    for url in ["http://127.0.0.1:6379", "redis://[::1", "not a url"] {
        let e = RedisStores::new(url).unwrap_err();
        assert!(e.to_string().starts_with("invalid Redis URL"), "{e}");
    }
    // The accepted forms, TLS included; nothing is connected yet.
    for url in [
        "redis://127.0.0.1:1/0",
        "redis://:secret@127.0.0.1:1",
        "rediss://127.0.0.1:1",
        "unix:///tmp/none.sock",
        "redis+unix:///tmp/none.sock",
    ] {
        let stores = RedisStores::new(url).unwrap();
        assert!(!format!("{stores:?}").contains("secret"));
    }
}

// ---------------------------------------------------------------------------------------
// One token for every instance
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_make_one_token_fetch_and_one_refetch() {
    let Some(server) = RedisServer::start("two_instances_make_one_token_fetch_and_one_refetch")
    else {
        return;
    };
    let rejecting = Arc::new(AtomicBool::new(false));
    let mock = Mock::start({
        let rejecting = rejecting.clone();
        move |r| match r.path.as_str() {
            TOKEN => Answer::Delay(Duration::from_millis(50), Box::new(token_answer(r))),
            _ if rejecting.load(Ordering::SeqCst) && r.token() == "TOKEN-1" => err(40001),
            _ => ok(),
        }
    })
    .await;
    let clients: Vec<Client> = (0..2)
        .map(|_| {
            Client::builder("wxAPPID", "SECRET")
                .base_url(mock.base())
                .token_store(instance(&server, "tok:").token_store())
                .build()
                .unwrap()
        })
        .collect();
    let burst = |n: usize| {
        let sends: Vec<_> = (0..n)
            .map(|i| {
                let client = clients[i % 2].clone();
                tokio::spawn(async move { client.send_text("OPENID", &format!("m{i}")).await })
            })
            .collect();
        async move {
            for send in sends {
                send.await.unwrap().unwrap();
            }
        }
    };
    burst(200).await;
    assert_eq!(mock.count(TOKEN), 1, "one fetch for both instances");
    assert_eq!(mock.count(SEND), 200);

    // WeChat rejects the token: one instance drops it, one new token for all.
    rejecting.store(true, Ordering::SeqCst);
    burst(100).await;
    assert_eq!(mock.count(TOKEN), 2, "one re-fetch in all");
    let last = mock.requests(SEND);
    assert!(last[last.len() - 10..]
        .iter()
        .all(|r| r.token() == "TOKEN-2"));
}

// ---------------------------------------------------------------------------------------
// One handling per push across instances
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_and_its_retries_at_three_instances_are_handled_once() {
    let Some(server) =
        RedisServer::start("a_push_and_its_retries_at_three_instances_are_handled_once")
    else {
        return;
    };
    // Delivered to A, retried at B and C: safe mode, each answer sealed afresh.
    let case = Case::new(1);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let svc = case
            .layer()
            .dedupe(instance(&server, "three:").dedupe_store())
            .layer(counting(calls.clone(), Duration::ZERO));
        addrs.push(serve_hyper(svc).await);
    }
    let x = case.format("xml");
    let (mut docs, mut bodies) = (Vec::new(), Vec::new());
    for addr in &addrs {
        let (status, body) = post(*addr, s(x, "query"), s(x, "request_body_safe")).await;
        assert_eq!(status, StatusCode::OK);
        docs.push(case.open_sealed_reply("xml", &body));
        bodies.push(body);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "handled once");
    assert!(docs.iter().all(|d| d == &docs[0]), "{docs:?}");
    assert!(
        docs[0].contains("<MsgType><![CDATA[text]]></MsgType>"),
        "{}",
        docs[0]
    );
    assert_ne!(bodies[0], bodies[1], "sealed afresh");
    assert_ne!(bodies[1], bodies[2], "sealed afresh");

    // Two deliveries at the same time, at A and at B: once, the same answer for both.
    let calls = Arc::new(AtomicUsize::new(0));
    let mut pair = Vec::new();
    for _ in 0..2 {
        let svc = case
            .layer()
            .dedupe(instance(&server, "pair:").dedupe_store())
            .layer(counting(calls.clone(), Duration::from_millis(300)));
        pair.push(serve_hyper(svc).await);
    }
    let q = case.plain_query();
    let body = text_push(77);
    let (a, b) = tokio::join!(post(pair[0], &q, &body), post(pair[1], &q, &body));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "handled once");
    assert_eq!(a, b);
    assert_eq!(a.0, StatusCode::OK);
    assert!(a.1.contains("push 77"), "{}", a.1);
}

#[tokio::test]
async fn a_failed_first_delivery_is_handled_again_at_another_instance() {
    let Some(server) =
        RedisServer::start("a_failed_first_delivery_is_handled_again_at_another_instance")
    else {
        return;
    };
    let case = Case::new(0);
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        service_fn(move |_: Request<Message>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err("handler failed"),
                    _ => Ok(Reply::text("second time")),
                }
            }
        })
    };
    let a = case
        .layer()
        .dedupe(instance(&server, "fail:").dedupe_store())
        .layer(handler.clone());
    let b = case
        .layer()
        .dedupe(instance(&server, "fail:").dedupe_store())
        .layer(handler);
    let push = || case.plain_push("xml");
    assert_eq!(a.oneshot(push()).await.unwrap_err(), "handler failed");
    let answer = tokio::time::timeout(Duration::from_secs(5), b.clone().oneshot(push()))
        .await
        .expect("the retry is not kept waiting on a released claim")
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(body_string(answer.into_body())
        .await
        .contains("second time"));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "handled again");
    // And recorded: a third delivery is not.
    b.oneshot(push()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------------------
// One replay view across instances
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_replay_guard_sees_a_query_first_used_at_another_instance() {
    let Some(mut server) =
        RedisServer::start("the_replay_guard_sees_a_query_first_used_at_another_instance")
    else {
        return;
    };
    let case = Case::new(0);
    let guarded = || {
        case.layer()
            .replay_guard(instance(&server, "replay:").replay_store())
            .layer(service_fn(echo))
    };
    let (a, b) = (guarded(), guarded());
    let genuine = || case.plain_push("xml");
    let answer = a.oneshot(genuine()).await;
    assert_eq!(answer.unwrap().status(), StatusCode::OK);
    // The captured query with another body, at B.
    let forged = http_body_util::Full::new(bytes::Bytes::from(text_push(1)));
    let answer = b.clone().oneshot(case.plain_post(forged)).await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body_string(answer.into_body()).await, "replayed signature");
    // The genuine retry, at B: let through.
    let answer = b.clone().oneshot(genuine()).await;
    assert_eq!(answer.unwrap().status(), StatusCode::OK);
    // Redis gone: the documented policy, 503 (nothing let through unchecked), in time.
    server.stop();
    let started = Instant::now();
    let answer = b.oneshot(genuine()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// The client on a Redis that stops: it keeps sending with its own copy of the token; when
/// WeChat rejects that copy during the outage it fetches one itself (one fetch), logs one
/// warning, and once Redis is back uses the shared token again (it reads it on every send).
/// (Current-thread runtime: the warning counter sees every task.)
#[tokio::test]
async fn the_client_keeps_working_while_redis_is_down_and_shares_again_after() {
    let Some(mut server) =
        RedisServer::start("the_client_keeps_working_while_redis_is_down_and_shares_again_after")
    else {
        return;
    };
    let warnings = Arc::new(AtomicUsize::new(0));
    let _subscriber = tracing::subscriber::set_default(Warnings(warnings.clone()));
    // The tokens WeChat no longer takes.
    let revoked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mock = Mock::start({
        let revoked = revoked.clone();
        move |r| match r.path.as_str() {
            TOKEN => token_answer(r),
            _ if revoked.lock().unwrap().iter().any(|t| t == r.token()) => err(40001),
            _ => ok(),
        }
    })
    .await;
    let client = Client::builder("wxAPPID", "SECRET")
        .base_url(mock.base())
        .token_store(instance(&server, "cl:").token_store())
        .build()
        .unwrap();
    client.send_text("OPENID", "before").await.unwrap();
    server.stop();
    for i in 0..20 {
        let started = Instant::now();
        client
            .send_text("OPENID", &format!("during {i}"))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    assert_eq!(mock.count(TOKEN), 1, "no fetch: the process's copy is used");
    // WeChat rejects that copy while Redis is down: one fetch here, one warning.
    revoked.lock().unwrap().push("TOKEN-1".into());
    for i in 0..20 {
        let started = Instant::now();
        client
            .send_text("OPENID", &format!("rejected {i}"))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    assert_eq!(mock.count(TOKEN), 2, "one fetch in the process");
    assert_eq!(mock.requests(SEND).last().unwrap().token(), "TOKEN-2");
    assert_eq!(warnings.load(Ordering::SeqCst), 1, "one warning per outage");

    // Back, with a token another instance stored meanwhile: every send reads the store, so
    // once the connection is made again the shared token is used, without a fetch.
    server.restart();
    let mut raw = server.raw().await;
    let expires = SystemTime::now() + Duration::from_secs(3600);
    let stored = format!(
        "{}:SHARED",
        expires.duration_since(UNIX_EPOCH).unwrap().as_millis()
    );
    let _: () = raw
        .pset_ex(
            "cl:token:wechat:access_token:wxAPPID:stable_token",
            stored,
            3_600_000,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        client.send_text("OPENID", "after").await.unwrap();
        if mock.requests(SEND).last().unwrap().token() == "SHARED" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the shared token not used within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // From then on, whatever WeChat thinks of this process's old copy.
    revoked.lock().unwrap().push("TOKEN-2".into());
    client.send_text("OPENID", "later").await.unwrap();
    assert_eq!(mock.requests(SEND).last().unwrap().token(), "SHARED");
    assert_eq!(mock.count(TOKEN), 2, "the shared token, not a fetch");
    assert_eq!(warnings.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------
// Redis down, frozen, and back
// ---------------------------------------------------------------------------------------

/// Stopped, then started again; then frozen, then thawed: pushes are answered in time
/// throughout, one warning per outage, and the store is used again without a restart.
/// (Current-thread runtime: the warning counter sees every task.)
#[tokio::test]
async fn pushes_are_answered_in_time_while_redis_is_down_and_it_is_used_again_after() {
    let Some(mut server) = RedisServer::start(
        "pushes_are_answered_in_time_while_redis_is_down_and_it_is_used_again_after",
    ) else {
        return;
    };
    let warnings = Arc::new(AtomicUsize::new(0));
    let _subscriber = tracing::subscriber::set_default(Warnings(warnings.clone()));
    let case = Case::new(0);
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = case
        .layer()
        .dedupe(instance(&server, "down:").dedupe_store())
        .ack_deadline(Duration::from_secs(4))
        .layer(counting(calls.clone(), Duration::ZERO));
    let q = case.plain_query();
    let mut raw = server.raw().await;
    let mut next_id = 1000;
    let deliver = |id: u64| {
        let svc = svc.clone();
        let request = request(Method::POST, &q, text_push(id));
        async move {
            let started = Instant::now();
            let answer = svc.oneshot(request).await.unwrap();
            let took = started.elapsed();
            let status = answer.status();
            let body = body_string(answer.into_body()).await;
            (status, body, took)
        }
    };
    let mut fresh = || {
        next_id += 1;
        next_id
    };

    let id = fresh();
    let (status, body, _) = deliver(id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&format!("push {id}")));
    assert!(!raw
        .keys::<_, Vec<String>>(format!("down:dedupe:*{id}*"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(warnings.load(Ordering::SeqCst), 0);

    // Stopped: every push handled and answered, in time (well under the command timeout
    // twice over), one warning for the whole outage.
    server.stop();
    for _ in 0..20 {
        let id = fresh();
        let (status, body, took) = deliver(id).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(&format!("push {id}")), "{body}");
        assert!(took < Duration::from_secs(1), "answered in {took:?}");
    }
    assert_eq!(warnings.load(Ordering::SeqCst), 1, "one warning per outage");

    // Started again: within 10 s, a retry is answered from Redis again (no restart).
    server.restart();
    let mut raw = server.raw().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let id = fresh();
        let before = calls.load(Ordering::SeqCst);
        deliver(id).await;
        deliver(id).await;
        if calls.load(Ordering::SeqCst) == before + 1 {
            assert!(!raw
                .keys::<_, Vec<String>>(format!("down:dedupe:*{id}*"))
                .await
                .unwrap()
                .is_empty());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Redis not used again within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Frozen (accepts connections, answers nothing): still answered in time, one more warning,
    // and the hung server costs one command timeout (250 ms), not one per push: ten pushes
    // waiting out a timeout each would take 2.5 s.
    server.freeze(true);
    let frozen = Instant::now();
    for _ in 0..10 {
        let id = fresh();
        let (status, body, took) = deliver(id).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(&format!("push {id}")), "{body}");
        assert!(took < Duration::from_secs(1), "answered in {took:?}");
    }
    let all = frozen.elapsed();
    assert!(all < Duration::from_secs(1), "ten pushes took {all:?}");
    assert_eq!(warnings.load(Ordering::SeqCst), 2, "one warning per outage");
    server.freeze(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let id = fresh();
        let before = calls.load(Ordering::SeqCst);
        deliver(id).await;
        deliver(id).await;
        if calls.load(Ordering::SeqCst) == before + 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Redis not used again within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(warnings.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------------------
// The example with REDIS_URL (docs/examples.md, `customer_service`, `REDIS_URL`)
// ---------------------------------------------------------------------------------------

fn example_env(case: &Case, api: &str, redis: Option<String>) -> HashMap<&'static str, String> {
    let mut env = HashMap::from([
        ("BIND", "127.0.0.1:0".to_owned()),
        ("WECHAT_TOKEN", case.token().to_owned()),
        ("WECHAT_APPID", case.appid().to_owned()),
        ("WECHAT_APP_SECRET", "SECRET".to_owned()),
        ("WECHAT_API_BASE", api.to_owned()),
    ]);
    if let Some(url) = redis {
        env.insert("REDIS_URL", url);
    }
    env
}

fn signed_now(case: &Case) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    plain_query(case.token(), &now.to_string(), "1234567")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_service_instances_share_one_redis() {
    let Some(mut server) = RedisServer::start("customer_service_instances_share_one_redis") else {
        return;
    };
    let case = Case::new(0);
    let mock = Mock::start(standard).await;
    let env = example_env(&case, &mock.base(), Some(server.url()));
    let (a, b) = (Instance::start(&env).await, Instance::start(&env).await);

    // Delivered to A, retried at B and at A: one send, one token fetch.
    let push = text_push(5001);
    for addr in [a.addr, b.addr, a.addr] {
        let answer = post(addr, &signed_now(&case), &push).await;
        assert_eq!(answer, (StatusCode::OK, "success".to_owned()));
    }
    mock.wait_for(SEND, 1).await;
    // A different push at B: its send uses the token A fetched.
    post(b.addr, &signed_now(&case), &text_push(5002)).await;
    mock.wait_for(SEND, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mock.count(SEND), 2, "one send per push across instances");
    assert_eq!(mock.count(TOKEN), 1, "one token fetch for both instances");

    // Redis gone: pushes still answered `success` in time, and their sends made.
    server.stop();
    for (i, addr) in [a.addr, b.addr].into_iter().enumerate() {
        let started = Instant::now();
        let answer = post(addr, &signed_now(&case), &text_push(5003 + i as u64)).await;
        assert_eq!(answer, (StatusCode::OK, "success".to_owned()));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    mock.wait_for(SEND, 4).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn redis_url_invalid_is_a_start_up_error_and_unreachable_is_not() {
    let case = Case::new(0);
    let env = example_env(&case, "http://127.0.0.1:9", Some("http://nope".to_owned()));
    let e = example::configure(|name| env.get(name).cloned()).unwrap_err();
    assert!(e.starts_with("REDIS_URL: "), "{e}");
    // Nothing listens on port 1: the example starts all the same, and answers pushes.
    let env = example_env(
        &case,
        "http://127.0.0.1:9",
        Some("redis://127.0.0.1:1/0".to_owned()),
    );
    let instance = Instance::start(&env).await;
    let answer = post(instance.addr, &signed_now(&case), &text_push(1)).await;
    assert_eq!(answer.0, StatusCode::OK);
    instance.stop().await;
}
