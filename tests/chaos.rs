//! Chaos: three instances of the `customer_service` example (processes, built here with cargo)
//! on one `redis-server` this test starts, talking to a fake WeChat API on loopback, fed a
//! stream of text pushes, ten at a time every 2 s, with WeChat's retries (a delivery
//! unanswered within 5 s, refused or answered other than 200 is sent again 5 s after the
//! previous one, three deliveries at most, each to another instance). Meanwhile one instance
//! is killed (SIGKILL) and started again, another is stopped (SIGTERM) and started again,
//! the third is killed while Redis stalls for half a second (so that Redis runs its claims
//! after it died) and started again, Redis is frozen for a second (SIGSTOP/SIGCONT) while a
//! live instance handles a batch, and the token endpoint fails for a second
//! (`errcode -1`) just as the access token is revoked, so that the instances must fetch one
//! then (a cached token would never meet the failing endpoint).
//!
//! At the end: every push was acknowledged (200) by one of its deliveries; every text was
//! answered by exactly one accepted `custom/send` (the example queues each push on Redis
//! before its `success`: none is lost to a SIGKILL between the `success` and the send, what
//! the killed instance held being taken over by another one), except those sent twice because
//! a SIGKILL came between the send and the `success` (WeChat then delivers the push again:
//! at least once; counted and printed, not failed); none was lost to SIGTERM (the
//! stopped instance exits 0 after its sends); no call was spent on a token already replaced;
//! each instance answers a fresh push at the end. The figures are printed (`--nocapture`).
//!
//! Without `redis-server` on the PATH the test prints a loud SKIPPED line and passes; with
//! `CI=true` it fails instead.
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
#[path = "common/redis_server.rs"]
mod redis_server;

use example_process::{executable, free_port, signal, Instance};
use redis_server::RedisServer;

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::plain_query;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const TOKEN: &str = "ChaosToken1";
const APPID: &str = "wx1234567890abcdef";
const OPENID: &str = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY";
/// How many text pushes the stream carries: [`BATCH`] at once every [`BATCH_EVERY`], all of a
/// batch first delivered to the same instance (so that a fault lands on handlers in flight).
const PUSHES: usize = 150;
const BATCH: usize = 10;
const BATCH_EVERY: Duration = Duration::from_secs(2);
/// WeChat's wait for an answer, and the time between two deliveries of a push.
const DELIVERY: Duration = Duration::from_secs(5);
const DELIVERIES: usize = 3;
/// The faults: the kill and the stop hit the instance a batch goes to (batch `b` goes to
/// instance `b % 3`) as soon as it has acknowledged the batch's first push, while it handles
/// the others; Redis freezes as a batch arrives; the token is revoked 100 ms before a batch.
const KILL_BATCH: usize = 3;
const KILLED_FOR: Duration = Duration::from_secs(2);
const TERM_BATCH: usize = 4;
/// A node lost while Redis stalls: Redis stopped 50 ms before this batch, its instance killed
/// 150 ms into it (its claims sent, not yet answered by the stalled Redis, nor timed out),
/// Redis thawed 500 ms into it (and then runs the dead process's claims), the instance
/// started again [`KILLED_FOR`] after the kill.
const STALL_KILL_BATCH: usize = 5;
const FREEZE_BATCH: usize = 6;
const REVOKE_BATCH: usize = 8;
const FAULT_LASTS: Duration = Duration::from_secs(1);
/// A send the SIGKILL caught is one answered by the killed process this long before it died.
const KILL_WINDOW: Duration = Duration::from_secs(2);
/// A call on a replaced token this long after the replacement counts (a call already on its
/// way when the new token was issued does not).
const REPLACED_GRACE: Duration = Duration::from_millis(500);
/// The whole run, from the first instance's start to the last one's exit.
const RUN_LIMIT: Duration = Duration::from_secs(150);

// ---------------------------------------------------------------------------------------
// The fake WeChat API
// ---------------------------------------------------------------------------------------

/// What the fake API saw and decides by.
struct Api {
    /// The token a send must carry; `None` once revoked, until the next fetch.
    current: Option<String>,
    /// The last token issued, and when each earlier one was replaced.
    last: Option<String>,
    replaced: HashMap<String, Instant>,
    issued: usize,
    /// The token endpoint answers `errcode -1` until then.
    down_until: Option<Instant>,
    fetches: usize,
    failed_fetches: usize,
    /// Per content (one per push): sends accepted, calls refused for their token.
    accepted: HashMap<String, usize>,
    refused: HashMap<String, usize>,
    /// Calls made with a token replaced more than [`REPLACED_GRACE`] before.
    on_replaced: usize,
}

impl Api {
    fn new() -> Self {
        Api {
            current: None,
            last: None,
            replaced: HashMap::new(),
            issued: 0,
            down_until: None,
            fetches: 0,
            failed_fetches: 0,
            accepted: HashMap::new(),
            refused: HashMap::new(),
            on_replaced: 0,
        }
    }

    /// `cgi-bin/stable_token` without `force_refresh`: the valid token, or a new one when
    /// there is none.
    fn fetch(&mut self, now: Instant) -> Value {
        self.fetches += 1;
        if self.down_until.is_some_and(|until| now < until) {
            self.failed_fetches += 1;
            return json!({"errcode": -1, "errmsg": "system error"});
        }
        if self.current.is_none() {
            self.issued += 1;
            let token = format!("CHAOS-{}", self.issued);
            if let Some(old) = self.last.replace(token.clone()) {
                self.replaced.insert(old, now);
            }
            self.current = Some(token);
        }
        json!({"access_token": self.current, "expires_in": 7200})
    }

    /// `cgi-bin/message/custom/send`.
    fn send(&mut self, now: Instant, token: &str, body: &[u8]) -> Value {
        let content = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["text"]["content"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if self.current.as_deref() == Some(token) {
            *self.accepted.entry(content).or_default() += 1;
            return json!({"errcode": 0, "errmsg": "ok"});
        }
        *self.refused.entry(content).or_default() += 1;
        if self
            .replaced
            .get(token)
            .is_some_and(|at| now.duration_since(*at) > REPLACED_GRACE)
        {
            self.on_replaced += 1;
        }
        json!({"errcode": 42001, "errmsg": "access_token expired rid: chaos"})
    }

    /// Revokes the token (every send with it now fails with 42001) and fails the token
    /// endpoint for `lasts`.
    fn revoke(&mut self, now: Instant, lasts: Duration) {
        self.current = None;
        self.down_until = Some(now + lasts);
    }
}

/// Serves the fake API on a loopback port until the test ends; answers its base URL.
async fn start_api(api: Arc<Mutex<Api>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let api = api.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let api = api.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let token = parts
                        .uri
                        .query()
                        .unwrap_or("")
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("access_token="))
                        .unwrap_or("")
                        .to_owned();
                    let now = Instant::now();
                    let answer = {
                        let mut api = api.lock().unwrap();
                        match parts.uri.path() {
                            "/cgi-bin/stable_token" => api.fetch(now),
                            "/cgi-bin/message/custom/send" => api.send(now, &token, &body),
                            _ => json!({"errcode": 40001, "errmsg": "not in the fake"}),
                        }
                    };
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json; encoding=utf-8")
                            .body(Full::new(Bytes::from(answer.to_string())))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

// ---------------------------------------------------------------------------------------
// WeChat's side: pushes and their deliveries
// ---------------------------------------------------------------------------------------

/// Which process of which instance acknowledged a push, and when.
#[derive(Clone, Copy, Debug)]
struct Ack {
    slot: usize,
    process: usize,
    at: Instant,
}

/// What became of one push.
#[derive(Debug, Default)]
struct Outcome {
    ack: Option<Ack>,
    deliveries: usize,
    failures: Vec<String>,
    /// The instance and process of each failed delivery.
    failed_at: Vec<(usize, usize)>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One text push (`Content` = `content`), signed now; answers the path and query and body.
fn push(content: &str, msg_id: u64) -> (String, String) {
    let ts = now_secs();
    let query = plain_query(TOKEN, &ts.to_string(), &msg_id.to_string());
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>\
         <CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>\
         <MsgId>{msg_id}</MsgId></xml>"
    );
    (format!("/wechat?{query}"), body)
}

/// One delivery to the instance on `port`: `Ok` for a 200 within [`DELIVERY`].
async fn deliver(client: &HttpClient, port: u16, target: &str, body: &str) -> Result<(), String> {
    let req = Request::post(format!("http://127.0.0.1:{port}{target}"))
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let answer = tokio::time::timeout(DELIVERY, async {
        let res = client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let status = res.status();
        let text = res.into_body().collect().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, text.to_bytes()))
    })
    .await;
    match answer {
        Ok(Ok((StatusCode::OK, _))) => Ok(()),
        Ok(Ok((status, text))) => Err(format!("{status} {}", String::from_utf8_lossy(&text))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no answer within 5 s".to_owned()),
    }
}

/// WeChat delivering push `i`: at most [`DELIVERIES`] deliveries, [`DELIVERY`] apart, the
/// first to its batch's instance, each next one to the next instance.
async fn deliver_push(
    i: usize,
    msg_id: u64,
    client: HttpClient,
    ports: [u16; 3],
    processes: Arc<[AtomicUsize; 3]>,
    acks: mpsc::UnboundedSender<usize>,
) -> Outcome {
    let (target, body) = push(&format!("chaos-{i}"), msg_id);
    let mut outcome = Outcome::default();
    let first = tokio::time::Instant::now();
    for k in 0..DELIVERIES {
        tokio::time::sleep_until(first + DELIVERY * k as u32).await;
        let slot = (i / BATCH + k) % 3;
        let process = processes[slot].load(Ordering::SeqCst);
        outcome.deliveries += 1;
        match deliver(&client, ports[slot], &target, &body).await {
            Ok(()) => {
                if k == 0 {
                    let _ = acks.send(i / BATCH);
                }
                outcome.ack = Some(Ack {
                    slot,
                    process,
                    at: Instant::now(),
                });
                break;
            }
            Err(e) => {
                outcome
                    .failures
                    .push(format!("delivery {} to {slot}: {e}", k + 1));
                outcome.failed_at.push((slot, process));
            }
        }
    }
    outcome
}

/// Waits until the instance `batch` went to (at `at`) has acknowledged one of its pushes, or
/// 3 s have passed.
async fn first_ack(
    acked: &mut mpsc::UnboundedReceiver<usize>,
    batch: usize,
    at: tokio::time::Instant,
) {
    let _ = tokio::time::timeout_at(at + Duration::from_secs(3), async {
        while acked.recv().await.is_some_and(|b| b != batch) {}
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_lose_nothing_to_kills_stops_a_frozen_redis_or_a_token_hiccup() {
    let Some(redis) = RedisServer::start("chaos") else {
        return;
    };
    let exe = executable();
    let api = Arc::new(Mutex::new(Api::new()));
    let base = start_api(api.clone()).await;
    let env = vec![
        ("WECHAT_TOKEN", TOKEN.to_owned()),
        ("WECHAT_APPID", APPID.to_owned()),
        ("WECHAT_APP_SECRET", "SECRET".to_owned()),
        ("WECHAT_API_BASE", base),
        ("REDIS_URL", redis.url()),
    ];
    let started = Instant::now();
    let figures = tokio::time::timeout(RUN_LIMIT, run(&exe, &env, &redis, &api))
        .await
        .unwrap_or_else(|_| panic!("the chaos run did not finish within {RUN_LIMIT:?}"));
    figures.report(started.elapsed());
}

/// What the run measured.
struct Figures {
    outcomes: Vec<Outcome>,
    accepted: HashMap<String, usize>,
    refused: HashMap<String, usize>,
    on_replaced: usize,
    fetches: (usize, usize),
    killed: Vec<(usize, usize, Instant)>,
    terminated: (usize, usize, ExitStatus),
    fresh: Vec<Result<(), String>>,
    exits: Vec<ExitStatus>,
    stderr: String,
}

async fn run(
    exe: &PathBuf,
    env: &[(&str, String)],
    redis: &RedisServer,
    api: &Mutex<Api>,
) -> Figures {
    let mut instances: Vec<Instance> = (0..3)
        .map(|_| Instance {
            port: free_port(),
            child: None,
            stderr: Vec::new(),
        })
        .collect();
    for instance in &mut instances {
        instance.start(exe, env);
    }
    let ports = [instances[0].port, instances[1].port, instances[2].port];
    let processes: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();

    // The stream: a batch of pushes every 2 s, each push delivered up to three times.
    let stream_start = tokio::time::Instant::now();
    let batch_at = move |batch: usize| stream_start + BATCH_EVERY * u32::try_from(batch).unwrap();
    let (acks, mut acked) = mpsc::unbounded_channel();
    let base_id = now_secs() * 1000;
    let pushes: Vec<_> = (0..PUSHES)
        .map(|i| {
            let (client, processes, acks) = (client.clone(), processes.clone(), acks.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(batch_at(i / BATCH)).await;
                deliver_push(i, base_id + i as u64, client, ports, processes, acks).await
            })
        })
        .collect();

    // The faults, in turn.
    first_ack(&mut acked, KILL_BATCH, batch_at(KILL_BATCH)).await;
    signal(instances[KILL_BATCH % 3].pid(), "-KILL");
    let killed_at = Instant::now();
    let slot = KILL_BATCH % 3;
    let _ = instances[slot].exited(Duration::from_secs(5)).await;
    let mut killed = vec![(
        slot,
        processes[slot].fetch_add(1, Ordering::SeqCst),
        killed_at,
    )];
    tokio::time::sleep(KILLED_FOR).await;
    instances[slot].start(exe, env);

    first_ack(&mut acked, TERM_BATCH, batch_at(TERM_BATCH)).await;
    let slot = TERM_BATCH % 3;
    signal(instances[slot].pid(), "-TERM");
    let status = instances[slot].exited(Duration::from_secs(15)).await;
    let terminated = (slot, processes[slot].fetch_add(1, Ordering::SeqCst), status);
    instances[slot].start(exe, env);

    let at = batch_at(STALL_KILL_BATCH);
    tokio::time::sleep_until(at - Duration::from_millis(50)).await;
    redis.freeze(true);
    tokio::time::sleep_until(at + Duration::from_millis(150)).await;
    let slot = STALL_KILL_BATCH % 3;
    signal(instances[slot].pid(), "-KILL");
    let killed_at = Instant::now();
    tokio::time::sleep_until(at + Duration::from_millis(500)).await;
    redis.freeze(false);
    let _ = instances[slot].exited(Duration::from_secs(5)).await;
    killed.push((
        slot,
        processes[slot].fetch_add(1, Ordering::SeqCst),
        killed_at,
    ));
    tokio::time::sleep_until(at + Duration::from_millis(150) + KILLED_FOR).await;
    instances[slot].start(exe, env);

    tokio::time::sleep_until(batch_at(FREEZE_BATCH)).await;
    redis.freeze(true);
    tokio::time::sleep(FAULT_LASTS).await;
    redis.freeze(false);

    tokio::time::sleep_until(batch_at(REVOKE_BATCH) - Duration::from_millis(100)).await;
    api.lock().unwrap().revoke(Instant::now(), FAULT_LASTS);

    let mut outcomes = Vec::with_capacity(PUSHES);
    for push in pushes {
        outcomes.push(push.await.expect("a delivery task"));
    }

    // The sends of acknowledged pushes: give them 35 s to arrive (what a killed instance
    // held is taken over by another one within 30 s).
    let deadline = Instant::now() + Duration::from_secs(35);
    while Instant::now() < deadline {
        let all_sent = {
            let api = api.lock().unwrap();
            outcomes
                .iter()
                .enumerate()
                .all(|(i, o)| o.ack.is_none() || api.accepted.contains_key(&format!("chaos-{i}")))
        };
        if all_sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // No instance stuck: each answers a fresh push, whose send follows.
    let mut fresh = Vec::new();
    for (slot, port) in ports.iter().enumerate() {
        let content = format!("fresh-{slot}");
        let (target, body) = push(&content, base_id + 10_000 + slot as u64);
        let mut answer = deliver(&client, *port, &target, &body).await;
        if answer.is_ok() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !api.lock().unwrap().accepted.contains_key(&content) {
                if Instant::now() > deadline {
                    answer = Err("acknowledged, but no send within 10 s".to_owned());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        fresh.push(answer.map_err(|e| format!("instance {slot}: {e}")));
    }

    // Every instance stops on SIGTERM, exiting 0.
    let mut exits = Vec::new();
    for instance in &instances {
        signal(instance.pid(), "-TERM");
    }
    for instance in &mut instances {
        exits.push(instance.exited(Duration::from_secs(15)).await);
    }
    let stderr = instances.iter_mut().map(Instance::stderr).collect();
    let api = api.lock().unwrap();
    Figures {
        outcomes,
        accepted: api.accepted.clone(),
        refused: api.refused.clone(),
        on_replaced: api.on_replaced,
        fetches: (api.fetches, api.failed_fetches),
        killed,
        terminated,
        fresh,
        exits,
        stderr,
    }
}

impl Figures {
    /// Prints the figures, then asserts.
    fn report(&self, took: Duration) {
        let sends = |i: usize| {
            self.accepted
                .get(&format!("chaos-{i}"))
                .copied()
                .unwrap_or(0)
        };
        let refused = |i: usize| {
            self.refused
                .get(&format!("chaos-{i}"))
                .copied()
                .unwrap_or(0)
        };
        let (tslot, tprocess, tstatus) = self.terminated;
        let by = |ack: &Option<Ack>, slot: usize, process: usize| {
            ack.is_some_and(|a| a.slot == slot && a.process == process)
        };
        let mut unhandled = Vec::new();
        let mut lost_to_kill = Vec::new();
        let mut lost_to_term = Vec::new();
        let mut lost = Vec::new();
        let mut doubled = Vec::new();
        let mut doubled_by_kill = Vec::new();
        for (i, o) in self.outcomes.iter().enumerate() {
            match (o.ack, sends(i)) {
                (None, _) => unhandled.push(format!("chaos-{i}: {:?}", o.failures)),
                (Some(_), 1) => {}
                (Some(a), 0)
                    if self.killed.iter().any(|&(slot, process, at)| {
                        // Acknowledged by that process, so before it died (the
                        // answer may be timed a little after the kill was sent).
                        by(&o.ack, slot, process)
                            && at.saturating_duration_since(a.at) <= KILL_WINDOW
                    }) =>
                {
                    lost_to_kill.push(i)
                }
                (Some(_), 0) if by(&o.ack, tslot, tprocess) => lost_to_term.push(i),
                (Some(a), 0) => lost.push(format!(
                    "chaos-{i} (acknowledged by instance {} process {})",
                    a.slot, a.process
                )),
                // One failed delivery, at a process killed before it could answer, then one
                // acknowledged: the at-least-once case of a kill between the send and the
                // `success` (counted, not failed).
                (Some(_), 2)
                    if o.failed_at.len() == 1
                        && self
                            .killed
                            .iter()
                            .any(|&(s, p, _)| (s, p) == o.failed_at[0]) =>
                {
                    doubled_by_kill.push(i)
                }
                (Some(_), n) => doubled.push(format!("chaos-{i}: {n} sends")),
            }
        }
        let deliveries: usize = self.outcomes.iter().map(|o| o.deliveries).sum();
        let retried = self.outcomes.iter().filter(|o| o.deliveries > 1).count();
        let sent: usize = (0..self.outcomes.len()).map(sends).sum();
        let calls_refused: usize = (0..self.outcomes.len()).map(refused).sum();
        let two_calls = (0..self.outcomes.len())
            .filter(|i| sends(*i) + refused(*i) > 1)
            .count();
        let failed_sends = self.stderr.matches("failed:").count();
        for (i, o) in self.outcomes.iter().enumerate() {
            if !o.failures.is_empty() {
                let then = o.ack.map_or("unacknowledged".to_owned(), |a| {
                    format!("acknowledged by instance {} process {}", a.slot, a.process)
                });
                println!("chaos-{i}: {:?}, then {then}", o.failures);
            }
        }
        println!(
            "chaos figures: pushes {}, deliveries {deliveries} ({retried} pushes retried), \
             acknowledged {}, sends {sent}, doubles {} (pushes sent twice or more; {} more \
             sent twice after a SIGKILL between the send and the `success`), \
             pushes with more than one send call {two_calls}, calls refused for their token \
             {calls_refused}, calls on a replaced token {}, lost to SIGKILL {}, lost to SIGTERM \
             {}, other losses {}, token fetches {} ({} failed), send failures logged \
             {failed_sends}, time {:.1} s",
            self.outcomes.len(),
            self.outcomes.len() - unhandled.len(),
            doubled.len(),
            doubled_by_kill.len(),
            self.on_replaced,
            lost_to_kill.len(),
            lost_to_term.len(),
            lost.len(),
            self.fetches.0,
            self.fetches.1,
            took.as_secs_f64(),
        );
        let problems = [
            ("unacknowledged after three deliveries", unhandled.len()),
            // The example queues a push before its `success`: a SIGKILL loses nothing.
            ("lost to SIGKILL", lost_to_kill.len()),
            ("lost to SIGTERM", lost_to_term.len()),
            ("lost", lost.len()),
            ("sent more than once", doubled.len()),
            ("calls on a replaced token", self.on_replaced),
            (
                "fresh pushes not answered",
                self.fresh.iter().filter(|f| f.is_err()).count(),
            ),
            (
                "instances not exiting 0 on SIGTERM",
                self.exits
                    .iter()
                    .chain([&tstatus])
                    .filter(|s| !s.success())
                    .count(),
            ),
        ];
        let failed: Vec<String> = problems
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        assert!(
            failed.is_empty(),
            "chaos: {}\nunacknowledged: {unhandled:#?}\nlost to SIGTERM: {lost_to_term:?}\n\
             lost: {lost:#?}\nsent more than once: {doubled:#?}\nfresh: {:?}\nexits: {:?} \
             (the stopped one: {tstatus})\ninstances' stderr:\n{}",
            failed.join(", "),
            self.fresh,
            self.exits,
            self.stderr,
        );
    }
}
