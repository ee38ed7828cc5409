//! The customer-service client against a loopback mock of the WeChat API.
#![cfg(feature = "client")]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;
use wechat_push::client::{
    AccessToken, ApiErrorKind, BadResponseKind, Client, CustomMessage, Error, HttpsTransport,
    Media, MediaType, MemoryTokenStore, MiniProgramPage, SharedError, TokenEndpoint, TokenStore,
    TypingCommand,
};
use wechat_push::clock::Clock;
use wechat_push::store::{BoxFuture, StoreError};

// ---------------------------------------------------------------------------------------
// The mock (tests/common/mock_api.rs)
// ---------------------------------------------------------------------------------------

#[path = "common/mock_api.rs"]
mod mock_api;

use mock_api::{err, ok, standard, token_answer, Answer, Mock, Recorded, SEND, TOKEN};

/// A client of the mock.
trait MockClient {
    fn client(&self) -> Client;
}

impl MockClient for Mock {
    fn client(&self) -> Client {
        Client::builder("wxAPPID", "SECRET")
            .base_url(self.base())
            .build()
            .unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn token_is_cached_between_calls() {
    let mock = Mock::start(standard).await;
    let client = mock.client();
    client.send_text("OPENID", "one").await.unwrap();
    client.clone().send_text("OPENID", "two").await.unwrap();
    client
        .typing("OPENID", TypingCommand::Typing)
        .await
        .unwrap();
    assert_eq!(mock.count(TOKEN), 1);
    let sends = mock.requests(SEND);
    assert_eq!(sends.len(), 2);
    assert!(sends.iter().all(|r| r.token() == "TOKEN-1"));
    let token = client.access_token().await.unwrap();
    assert_eq!(token.value(), "TOKEN-1");
    assert_eq!(mock.count(TOKEN), 1);
}

#[tokio::test]
async fn stable_token_request_body() {
    let mock = Mock::start(standard).await;
    mock.client().access_token().await.unwrap();
    let [r] = &mock.requests(TOKEN)[..] else {
        panic!("expected one token request");
    };
    assert_eq!(r.method, http::Method::POST);
    assert!(r.query.is_empty());
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        r.body,
        r#"{"grant_type":"client_credential","appid":"wxAPPID","secret":"SECRET","force_refresh":false}"#
    );
}

#[tokio::test]
async fn classic_token_endpoint_is_a_get_with_query() {
    let mock = Mock::start(standard).await;
    let client = Client::builder("wxAPPID", "SE CRET&x")
        .base_url(format!("{}/", mock.base()))
        .token_endpoint(TokenEndpoint::Token)
        .build()
        .unwrap();
    client.send_text("OPENID", "hi").await.unwrap();
    let [r] = &mock.requests("/cgi-bin/token")[..] else {
        panic!("expected one token request");
    };
    assert_eq!(r.method, http::Method::GET);
    assert_eq!(r.query["grant_type"], "client_credential");
    assert_eq!(r.query["appid"], "wxAPPID");
    assert_eq!(r.query["secret"], "SE%20CRET%26x");
    assert!(r.body.is_empty());
    assert_eq!(mock.count(TOKEN), 0);
    assert_eq!(mock.requests(SEND)[0].token(), "TOKEN-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_sends_fetch_one_token() {
    let mock = Mock::start(|r| match r.path.as_str() {
        // A slow token endpoint, so that every send is waiting for it.
        TOKEN => Answer::Delay(Duration::from_millis(200), Box::new(token_answer(r))),
        _ => ok(),
    })
    .await;
    let client = mock.client();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.send_text(&format!("OPENID{i}"), "hi").await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(mock.count(TOKEN), 1);
    let sends = mock.requests(SEND);
    assert_eq!(sends.len(), 100);
    assert!(sends.iter().all(|r| r.token() == "TOKEN-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_sharing_a_store_fetch_one_token() {
    let mock = Mock::start(|r| match r.path.as_str() {
        TOKEN => Answer::Delay(Duration::from_millis(200), Box::new(token_answer(r))),
        _ => ok(),
    })
    .await;
    // Two "instances": separate clients, one store (what a Redis store gives).
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    let make = || {
        Client::builder("wxAPPID", "SECRET")
            .base_url(mock.base())
            .token_store(store.clone())
            .build()
            .unwrap()
    };
    let (a, b) = (make(), make());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let client = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { client.send_text("OPENID", "hi").await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(mock.count(TOKEN), 1);
    assert_eq!(mock.count(SEND), 20);
}

#[tokio::test]
async fn token_error_refetches_once_and_retries_once() {
    for code in [40001, 42001, 40014] {
        let mock = Mock::start(move |r| match r.path.as_str() {
            TOKEN => token_answer(r),
            _ if r.token() == "TOKEN-1" => err(code),
            _ => ok(),
        })
        .await;
        let client = mock.client();
        client.send_text("OPENID", "hi").await.unwrap();
        assert_eq!(mock.count(TOKEN), 2, "code {code}");
        let tokens: Vec<_> = mock
            .requests(SEND)
            .iter()
            .map(|r| r.token().to_owned())
            .collect();
        assert_eq!(tokens, ["TOKEN-1", "TOKEN-2"], "code {code}");
        // The new token is cached; force_refresh is never sent.
        client.send_text("OPENID", "again").await.unwrap();
        assert_eq!(mock.count(TOKEN), 2);
        for r in mock.requests(TOKEN) {
            assert!(!String::from_utf8_lossy(&r.body).contains("\"force_refresh\":true"));
        }
    }
}

#[tokio::test]
async fn second_token_error_reaches_the_caller() {
    let mock = Mock::start(|r| match r.path.as_str() {
        TOKEN => token_answer(r),
        _ => err(40001),
    })
    .await;
    let e = mock.client().send_text("OPENID", "hi").await.unwrap_err();
    assert_eq!(e.api_kind(), Some(ApiErrorKind::InvalidCredential));
    assert_eq!(e.api().unwrap().code(), 40001);
    assert!(e.api().unwrap().is_token_error());
    assert_eq!(mock.count(TOKEN), 2);
    assert_eq!(mock.count(SEND), 2);
}

#[tokio::test]
async fn other_api_errors_are_not_retried() {
    for (code, kind) in [
        (45015, ApiErrorKind::WindowClosed),
        (45047, ApiErrorKind::QuotaExceeded),
        (40003, ApiErrorKind::InvalidOpenId),
        (45009, ApiErrorKind::DailyLimitExceeded),
        (45011, ApiErrorKind::RateLimited),
        (99999, ApiErrorKind::Other),
    ] {
        let mock = Mock::start(move |r| match r.path.as_str() {
            TOKEN => token_answer(r),
            _ => err(code),
        })
        .await;
        let e = mock.client().send_text("OPENID", "hi").await.unwrap_err();
        assert_eq!(e.api_kind(), Some(kind));
        assert_eq!(
            e.api().unwrap().message(),
            format!("error {code} rid: 1234")
        );
        assert_eq!(mock.count(SEND), 1);
        assert_eq!(mock.count(TOKEN), 1);
    }
}

#[tokio::test]
async fn token_endpoint_errors_are_api_errors() {
    let mock = Mock::start(|_| err(40125)).await;
    let e = mock.client().send_text("OPENID", "hi").await.unwrap_err();
    assert_eq!(e.api_kind(), Some(ApiErrorKind::InvalidAppSecret));
    assert_eq!(mock.count(SEND), 0);
}

#[tokio::test]
async fn stale_failure_does_not_drop_a_newer_token() {
    let mock = Mock::start(standard).await;
    let client = mock.client();
    let first = client.access_token().await.unwrap();
    assert!(client.invalidate_token(&first).await.unwrap());
    let second = client.access_token().await.unwrap();
    assert_eq!(second.value(), "TOKEN-2");
    // A call that failed with the old token reports late: the new one stays.
    assert!(!client.invalidate_token(&first).await.unwrap());
    assert_eq!(client.access_token().await.unwrap(), second);
    assert_eq!(mock.count(TOKEN), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failures_with_one_stale_token_refetch_once() {
    let mock = Mock::start(|r| match r.path.as_str() {
        TOKEN => token_answer(r),
        // Slow rejections, so that all sends fail with TOKEN-1 before any retry.
        _ if r.token() == "TOKEN-1" => {
            Answer::Delay(Duration::from_millis(100), Box::new(err(40001)))
        }
        _ => ok(),
    })
    .await;
    let client = mock.client();
    client.access_token().await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.send_text("OPENID", "hi").await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(mock.count(TOKEN), 2);
    let sends = mock.requests(SEND);
    assert_eq!(sends.iter().filter(|r| r.token() == "TOKEN-1").count(), 20);
    assert_eq!(sends.iter().filter(|r| r.token() == "TOKEN-2").count(), 20);
}

#[derive(Debug)]
struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

#[tokio::test]
async fn token_expires_by_the_injected_clock() {
    let expires_in = Arc::new(AtomicU64::new(7200));
    let answer = expires_in.clone();
    let mock = Mock::start(move |r| match r.path.as_str() {
        TOKEN => Answer::Json(json!({
            "access_token": format!("TOKEN-{}", r.nth),
            "expires_in": answer.load(Ordering::SeqCst),
        })),
        _ => ok(),
    })
    .await;
    let clock = Arc::new(ManualClock(Mutex::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    )));
    let client = Client::builder("wxAPPID", "SECRET")
        .base_url(mock.base())
        .clock(clock.clone())
        .build()
        .unwrap();
    let token = |client: &Client| {
        let client = client.clone();
        async move { client.access_token().await.unwrap().value().to_owned() }
    };

    assert_eq!(token(&client).await, "TOKEN-1");
    // Used until 5 minutes before the announced 7200 s.
    clock.advance(Duration::from_secs(6899));
    assert_eq!(token(&client).await, "TOKEN-1");
    clock.advance(Duration::from_secs(1));
    assert_eq!(token(&client).await, "TOKEN-2");
    assert_eq!(mock.count(TOKEN), 2);

    // A short lifetime gets a shorter margin (a quarter): 300 s → used for 225 s.
    expires_in.store(300, Ordering::SeqCst);
    clock.advance(Duration::from_secs(7200));
    assert_eq!(token(&client).await, "TOKEN-3");
    clock.advance(Duration::from_secs(224));
    assert_eq!(token(&client).await, "TOKEN-3");
    clock.advance(Duration::from_secs(1));
    assert_eq!(token(&client).await, "TOKEN-4");
    assert_eq!(mock.count(TOKEN), 4);
}

// ---------------------------------------------------------------------------------------
// Token outages: one fetch at a time, callers wait through failures
// ---------------------------------------------------------------------------------------

/// A client of `mock` whose transport gives up on a request after `timeout`, and whose calls
/// keep trying for `bound`.
fn client_with(mock: &Mock, timeout: Duration, bound: Duration) -> Client {
    Client::builder("wxAPPID", "SECRET")
        .base_url(mock.base())
        .retry_bound(bound)
        .build_with_transport(HttpsTransport::new().unwrap().timeout(timeout))
        .unwrap()
}

/// A WeChat API whose token endpoint answers `failure` while `down` is set, and otherwise
/// issues tokens like `token_answer`; every other call succeeds.
fn flaky(
    down: Arc<AtomicBool>,
    failure: fn() -> Answer,
) -> impl Fn(&Recorded) -> Answer + Send + Sync + 'static {
    move |r| match r.path.as_str() {
        TOKEN if down.load(Ordering::SeqCst) => failure(),
        TOKEN => token_answer(r),
        _ => ok(),
    }
}

/// A token endpoint that answers after the client gave up.
fn hang() -> Answer {
    Answer::Delay(Duration::from_secs(120), Box::new(err(-1)))
}

/// The token endpoint fails for 2.5 s while 50 sends start over that time: none is failed,
/// all go out once it answers again, and the failures cost at most one fetch a second. (Before,
/// the sends that came within a second of a failed fetch got its error at once, and the ones
/// waiting on a fetch got its error too.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_outage_of_two_and_a_half_seconds_fails_no_send() {
    let down = Arc::new(AtomicBool::new(true));
    let mock = Mock::start(flaky(down.clone(), || {
        Answer::Delay(Duration::from_millis(50), Box::new(err(-1)))
    }))
    .await;
    let client = mock.client();
    let started = std::time::Instant::now();
    let recover = {
        let down = down.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            down.store(false, Ordering::SeqCst);
        })
    };
    let mut sends = Vec::new();
    for i in 0..50 {
        let client = client.clone();
        sends.push(tokio::spawn(async move {
            client.send_text(&format!("OPENID{i}"), "hi").await
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for send in sends {
        send.await.unwrap().unwrap();
    }
    recover.await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(2500));
    let fetches = mock.count(TOKEN);
    assert!((3..=5).contains(&fetches), "{fetches} token fetches");
    assert_eq!(mock.count(SEND), 50);
    let token = format!("TOKEN-{fetches}");
    assert!(mock.requests(SEND).iter().all(|r| r.token() == token));
}

/// A caller whose bound passes while fetches fail gets the last fetch's error (every caller
/// the same one, still downcastable), and no more fetches start than one a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_whose_bound_passes_gets_the_last_fetch_error() {
    let down = Arc::new(AtomicBool::new(true));
    let mock = Mock::start(flaky(down.clone(), || err(-1))).await;
    let client = client_with(&mock, Duration::from_secs(5), Duration::from_millis(1500));
    let started = std::time::Instant::now();
    let results = sends_at_once(&client, 20, Duration::from_secs(10)).await;
    assert!(started.elapsed() >= Duration::from_millis(1500));
    for result in &results {
        let e = result.as_ref().unwrap_err();
        assert_eq!(e.api_kind(), Some(ApiErrorKind::SystemBusy), "{e:?}");
        assert_eq!(e.api().unwrap().message(), "error -1 rid: 1234");
    }
    let fetches = mock.count(TOKEN);
    assert!((2..=3).contains(&fetches), "one a second: {fetches}");
    assert_eq!(mock.count(SEND), 0);

    // A hanging endpoint: the transport's timeout is the error, shared by every caller.
    let mock = Mock::start(flaky(down.clone(), hang)).await;
    let client = client_with(
        &mock,
        Duration::from_millis(300),
        Duration::from_millis(800),
    );
    for result in sends_at_once(&client, 20, Duration::from_secs(10)).await {
        let e = result.unwrap_err();
        let Error::Transport(inner) = &e else {
            panic!("expected a transport error, got {e:?}");
        };
        let shared = inner.downcast_ref::<SharedError>().expect("a shared error");
        assert!(
            shared.get_ref().is::<tokio::time::error::Elapsed>(),
            "{e:?}"
        );
    }
    assert_eq!(mock.count(TOKEN), 1);

    // A fetch that outlasts the bound: a timeout naming the bound.
    let client = client_with(&mock, Duration::from_secs(60), Duration::from_millis(300));
    let e = client.send_text("OPENID", "hi").await.unwrap_err();
    let Error::Transport(inner) = &e else {
        panic!("expected a transport error, got {e:?}");
    };
    let io = inner.downcast_ref::<std::io::Error>().expect("an io error");
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);

    // The endpoint recovers: the next send fetches and goes out.
    down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.send_text("OPENID", "hi").await.unwrap();
    assert_eq!(mock.requests(SEND)[0].token(), "TOKEN-3");
}

/// A wrong secret is not cured by waiting: the callers get it at once.
#[tokio::test]
async fn a_wrong_secret_fails_the_callers_at_once() {
    let mock = Mock::start(|_| err(40125)).await;
    let client = mock.client();
    let started = std::time::Instant::now();
    let e = client.send_text("OPENID", "hi").await.unwrap_err();
    assert_eq!(e.api_kind(), Some(ApiErrorKind::InvalidAppSecret));
    // A second call within the pause waits for the next fetch, a second later at most.
    let e = client.access_token().await.unwrap_err();
    assert_eq!(e.api_kind(), Some(ApiErrorKind::InvalidAppSecret));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(mock.count(TOKEN), 2);
    assert_eq!(mock.count(SEND), 0);
}

/// The leader cancelled mid-fetch, and waiters dropped mid-wait, leave no caller stuck: one
/// of the others fetches, and all the rest get its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_callers_leave_no_caller_waiting() {
    let slow = Arc::new(AtomicBool::new(true));
    let mock = Mock::start({
        let slow = slow.clone();
        move |r| match r.path.as_str() {
            TOKEN if slow.load(Ordering::SeqCst) => hang(),
            TOKEN => token_answer(r),
            _ => ok(),
        }
    })
    .await;
    let client = mock.client();
    // The first caller starts the fetch …
    let first = {
        let client = client.clone();
        tokio::spawn(async move { client.send_text("OPENID", "first").await })
    };
    mock.wait_for(TOKEN, 1).await;
    // … 40 more wait for it …
    let waiters: Vec<_> = (0..40)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.send_text(&format!("OPENID{i}"), "hi").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // … then the endpoint answers again, the first is cancelled, and so is every other waiter.
    slow.store(false, Ordering::SeqCst);
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let mut kept = Vec::new();
    for (i, waiter) in waiters.into_iter().enumerate() {
        if i % 2 == 0 {
            waiter.abort();
        } else {
            kept.push(waiter);
        }
    }
    let all = async {
        for waiter in kept {
            waiter.await.unwrap().unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all)
        .await
        .expect("the remaining waiters are served");
    assert_eq!(mock.count(TOKEN), 2);
    assert!(mock.requests(SEND).iter().all(|r| r.token() == "TOKEN-2"));
}

/// `refresh_backoff` sets the pause between failed fetches.
#[tokio::test]
async fn the_pause_between_failed_fetches_is_configurable() {
    let mock = Mock::start(|_| err(-1)).await;
    let client = Client::builder("wxAPPID", "SECRET")
        .base_url(mock.base())
        .refresh_backoff(Duration::from_millis(100))
        .retry_bound(Duration::from_millis(1500))
        .build()
        .unwrap();
    client.send_text("OPENID", "hi").await.unwrap_err();
    let fetches = mock.count(TOKEN);
    assert!((5..=16).contains(&fetches), "{fetches}");
    // Long: one fetch in the whole bound; a token another instance stores meanwhile is used.
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    let mock = Mock::start(flaky(Arc::new(AtomicBool::new(true)), || err(-1))).await;
    let client = Client::builder("wxAPPID", "SECRET")
        .base_url(mock.base())
        .token_store(store.clone())
        .refresh_backoff(Duration::from_secs(600))
        .retry_bound(Duration::from_millis(500))
        .build()
        .unwrap();
    client.send_text("OPENID", "hi").await.unwrap_err();
    client.send_text("OPENID", "hi").await.unwrap_err();
    assert_eq!(mock.count(TOKEN), 1);
    let other = Mock::start(standard).await;
    Client::builder("wxAPPID", "SECRET")
        .base_url(other.base())
        .token_store(store)
        .build()
        .unwrap()
        .access_token()
        .await
        .unwrap();
    client.send_text("OPENID", "hi").await.unwrap();
    assert_eq!(mock.requests(SEND)[0].token(), "TOKEN-1");
    assert_eq!(mock.count(TOKEN), 1);
}

/// Starts `n` sends at once and waits for all of them; panics if they are not all done
/// within `bound` (a bound on a hang, not a measure of speed).
async fn sends_at_once(client: &Client, n: usize, bound: Duration) -> Vec<Result<(), Error>> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.send_text(&format!("OPENID{i}"), "hi").await })
        })
        .collect();
    let all = async {
        let mut results = Vec::with_capacity(n);
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    };
    tokio::time::timeout(bound, all)
        .await
        .unwrap_or_else(|_| panic!("{n} sends not all done within {bound:?}"))
}

// ---------------------------------------------------------------------------------------
// Retried calls: only those WeChat did not take
// ---------------------------------------------------------------------------------------

/// A send answered `errcode` -1 (system busy) is retried with back-off until it goes through.
#[tokio::test]
async fn a_busy_answer_is_retried() {
    let mock = Mock::start(|r| match (r.path.as_str(), r.nth) {
        (TOKEN, _) => token_answer(r),
        (_, 1 | 2) => err(-1),
        _ => ok(),
    })
    .await;
    mock.client().send_text("OPENID", "hi").await.unwrap();
    assert_eq!(mock.count(SEND), 3);
    assert_eq!(mock.count(TOKEN), 1);
    // Busy for longer than the bound: the caller gets -1, after a few tries.
    let mock = Mock::start(|r| match r.path.as_str() {
        TOKEN => token_answer(r),
        _ => err(-1),
    })
    .await;
    let client = client_with(&mock, Duration::from_secs(5), Duration::from_millis(1200));
    let e = client.send_text("OPENID", "hi").await.unwrap_err();
    assert_eq!(e.api_kind(), Some(ApiErrorKind::SystemBusy));
    assert!((2..=4).contains(&mock.count(SEND)), "{}", mock.count(SEND));
}

/// A send that could not connect was never sent: it is retried, and goes out once the API
/// listens again.
#[tokio::test]
async fn a_connection_refused_is_retried() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    // A token is at hand: only the send meets the refused connection.
    let store = Arc::new(MemoryTokenStore::new());
    let far = SystemTime::now() + Duration::from_secs(3600);
    store
        .set(
            "wechat:access_token:wxAPPID:stable_token",
            AccessToken::new("KEPT", far),
        )
        .await
        .unwrap();
    let client = Client::builder("wxAPPID", "SECRET")
        .base_url(format!("http://{addr}"))
        .token_store(store)
        .build()
        .unwrap();
    let send = tokio::spawn(async move { client.send_text("OPENID", "hi").await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mock = Mock::start_on(addr, standard).await;
    tokio::time::timeout(Duration::from_secs(20), send)
        .await
        .expect("the send is done")
        .unwrap()
        .unwrap();
    assert_eq!(mock.count(SEND), 1);
    assert_eq!(mock.requests(SEND)[0].token(), "KEPT");
    assert_eq!(mock.count(TOKEN), 0);
}

/// A send whose answer did not come in time may have reached WeChat: it is not retried.
#[tokio::test]
async fn a_send_that_timed_out_is_not_retried() {
    let mock = Mock::start(|r| match r.path.as_str() {
        TOKEN => token_answer(r),
        _ => Answer::Delay(Duration::from_secs(2), Box::new(ok())),
    })
    .await;
    let client = client_with(&mock, Duration::from_millis(300), Duration::from_secs(30));
    let e = client.send_text("OPENID", "hi").await.unwrap_err();
    let Error::Transport(inner) = &e else {
        panic!("expected a transport error, got {e:?}");
    };
    assert!(inner.is::<tokio::time::error::Elapsed>(), "{e:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mock.count(SEND), 1);
}

// ---------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn dead_server_is_a_transport_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = Client::builder("wxAPPID", "SECRET")
        .base_url(format!("http://{addr}"))
        .retry_bound(Duration::from_millis(300))
        .build()
        .unwrap();
    let e = client.send_text("OPENID", "hi").await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(std::error::Error::source(&e).is_some());
}

async fn bad_token_answer(
    answer: impl Fn() -> Answer + Send + Sync + 'static,
) -> (StatusCode, BadResponseKind) {
    let mock = Mock::start(move |_| answer()).await;
    let client = client_with(&mock, Duration::from_secs(30), Duration::from_millis(300));
    match client.send_text("OPENID", "hi").await {
        Err(Error::BadResponse { status, kind }) => (status, kind),
        other => panic!("expected BadResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_answers_are_typed_errors() {
    let html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
    let (status, kind) = bad_token_answer(move || {
        Answer::Raw(StatusCode::BAD_GATEWAY, "text/html", Bytes::from(html))
    })
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        matches!(kind, BadResponseKind::NotJson { ref snippet } if snippet.starts_with("<html>"))
    );

    let (status, kind) =
        bad_token_answer(|| Answer::Raw(StatusCode::OK, "text/plain", Bytes::new())).await;
    assert_eq!((status, kind), (StatusCode::OK, BadResponseKind::Empty));

    let (_, kind) = bad_token_answer(|| {
        Answer::Raw(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(b"{\"access_token\":"),
        )
    })
    .await;
    assert!(matches!(kind, BadResponseKind::NotJson { .. }));

    let (_, kind) = bad_token_answer(|| {
        Answer::Raw(StatusCode::OK, "text/plain", Bytes::from_static(b"success"))
    })
    .await;
    assert!(matches!(kind, BadResponseKind::NotJson { .. }));

    let (_, kind) = bad_token_answer(|| {
        Answer::Raw(
            StatusCode::OK,
            "application/octet-stream",
            Bytes::from_static(&[0xff, 0xfe, 0]),
        )
    })
    .await;
    assert!(matches!(kind, BadResponseKind::NotJson { .. }));

    let (_, kind) = bad_token_answer(|| Answer::Json(json!({"expires_in": 7200}))).await;
    assert_eq!(kind, BadResponseKind::MissingField("access_token"));

    let (_, kind) = bad_token_answer(|| Answer::Json(json!({"access_token": "T"}))).await;
    assert_eq!(kind, BadResponseKind::MissingField("expires_in"));

    let (status, kind) = bad_token_answer(|| {
        Answer::Raw(
            StatusCode::SERVICE_UNAVAILABLE,
            "application/json",
            Bytes::from_static(b"{}"),
        )
    })
    .await;
    assert_eq!(
        (status, kind),
        (StatusCode::SERVICE_UNAVAILABLE, BadResponseKind::Status)
    );

    // Deeply nested JSON is refused by the parser, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (_, kind) = bad_token_answer(move || {
        Answer::Raw(
            StatusCode::OK,
            "application/json",
            Bytes::from(deep.clone()),
        )
    })
    .await;
    assert!(matches!(kind, BadResponseKind::NotJson { .. }));
}

#[tokio::test]
async fn huge_answers_are_refused() {
    let limit = 1024 * 1024;
    // With a Content-Length: refused before reading.
    let (_, kind) = bad_token_answer(move || {
        Answer::Raw(
            StatusCode::OK,
            "application/json",
            Bytes::from(vec![b' '; 8 * limit]),
        )
    })
    .await;
    assert_eq!(kind, BadResponseKind::TooLarge { limit });
    // Chunked, no length: reading stops at the limit.
    let (_, kind) = bad_token_answer(|| Answer::Stream(64 * 1024 * 1024)).await;
    assert_eq!(kind, BadResponseKind::TooLarge { limit });
    // A custom limit; a send answer over it.
    let mock = Mock::start(|r| match r.path.as_str() {
        TOKEN => token_answer(r),
        _ => Answer::Stream(10_000),
    })
    .await;
    let client = Client::builder("wxAPPID", "SECRET")
        .base_url(mock.base())
        .body_limit(4096)
        .build()
        .unwrap();
    let e = client.send_text("OPENID", "hi").await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadResponse {
                kind: BadResponseKind::TooLarge { limit: 4096 },
                ..
            }
        ),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sends_are_typed_utf8_json() {
    let mock = Mock::start(standard).await;
    let client = mock.client();
    client
        .send_text("OPENID", "你好,欢迎来到这里")
        .await
        .unwrap();
    client.send_image("OPENID", "MEDIA_ID").await.unwrap();
    client
        .send(
            "OPENID",
            &CustomMessage::mini_program_page(MiniProgramPage::new(
                "标题",
                "pages/index/index?foo=bar",
                "THUMB",
            )),
        )
        .await
        .unwrap();
    client
        .typing("OPENID", TypingCommand::Typing)
        .await
        .unwrap();
    client
        .typing("OPENID", TypingCommand::CancelTyping)
        .await
        .unwrap();

    let sends = mock.requests(SEND);
    let bodies: Vec<_> = sends
        .iter()
        .map(|r| String::from_utf8(r.body.to_vec()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            r#"{"touser":"OPENID","msgtype":"text","text":{"content":"你好,欢迎来到这里"}}"#,
            r#"{"touser":"OPENID","msgtype":"image","image":{"media_id":"MEDIA_ID"}}"#,
            r#"{"touser":"OPENID","msgtype":"miniprogrampage","miniprogrampage":{"title":"标题","pagepath":"pages/index/index?foo=bar","thumb_media_id":"THUMB"}}"#,
        ]
    );
    assert!(sends
        .iter()
        .all(|r| r.method == http::Method::POST
            && r.content_type.as_deref() == Some("application/json")));
    let typing: Vec<_> = mock
        .requests("/cgi-bin/message/custom/typing")
        .iter()
        .map(|r| String::from_utf8(r.body.to_vec()).unwrap())
        .collect();
    assert_eq!(
        typing,
        [
            r#"{"touser":"OPENID","command":"Typing"}"#,
            r#"{"touser":"OPENID","command":"CancelTyping"}"#
        ]
    );
}

#[tokio::test]
async fn upload_is_multipart_byte_for_byte() {
    let mock = Mock::start(|r| match r.path.as_str() {
        TOKEN => token_answer(r),
        _ => {
            Answer::Json(json!({"type": "image", "media_id": "MEDIA-9", "created_at": 1700000000}))
        }
    })
    .await;
    let data: Vec<u8> = b"\x89PNG\r\n\x1a\n--not-a-boundary\r\n\x00\xff".to_vec();
    let media = Media::new("bot \"reply\".png", "image/png", data.clone());
    let uploaded = mock
        .client()
        .upload_media(MediaType::Image, &media)
        .await
        .unwrap();
    assert_eq!(uploaded.media_id, "MEDIA-9");
    assert_eq!(uploaded.created_at, Some(1_700_000_000));

    let [r] = &mock.requests("/cgi-bin/media/upload")[..] else {
        panic!("expected one upload");
    };
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.query["type"], "image");
    assert_eq!(r.token(), "TOKEN-1");
    let content_type = r.content_type.as_deref().unwrap();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect(content_type);
    assert!(!boundary.is_empty() && boundary.len() <= 70);
    assert!(boundary
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let mut expected = Vec::new();
    expected.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    expected.extend_from_slice(
        b"Content-Disposition: form-data; name=\"media\"; filename=\"bot %22reply%22.png\"\r\n",
    );
    expected.extend_from_slice(b"Content-Type: image/png\r\n\r\n");
    expected.extend_from_slice(&data);
    expected.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert_eq!(r.body, expected);
}

#[tokio::test]
async fn upload_rejects_bad_content_type_and_missing_media_id() {
    let mock = Mock::start(|r| match r.path.as_str() {
        TOKEN => token_answer(r),
        _ => Answer::Json(json!({"type": "image"})),
    })
    .await;
    let client = mock.client();
    let bad = Media::new("a.png", "image/png\r\nX-Evil: 1", vec![1, 2, 3]);
    assert!(matches!(
        client.upload_media(MediaType::Image, &bad).await,
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(mock.count("/cgi-bin/media/upload"), 0);
    let good = Media::new("a.png", "image/png", vec![1, 2, 3]);
    let e = client
        .upload_media(MediaType::Image, &good)
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        Error::BadResponse {
            kind: BadResponseKind::MissingField("media_id"),
            ..
        }
    ));
}

#[tokio::test]
async fn transport_accepts_tower_layers() {
    let mock = Mock::start(standard).await;
    // A concurrency limit of 1 panics if `call` comes without `poll_ready`.
    let transport = tower::ServiceBuilder::new().concurrency_limit(1).service(
        HttpsTransport::new()
            .unwrap()
            .timeout(Duration::from_secs(5)),
    );
    let client = Client::builder("wxAPPID", "SECRET")
        .base_url(mock.base())
        .build_with_transport(transport)
        .unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.send_text("OPENID", "hi").await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(mock.count(SEND), 10);
    assert_eq!(mock.count(TOKEN), 1);
}

#[tokio::test]
async fn post_json_reaches_other_apis() {
    let mock = Mock::start(|r| match r.path.as_str() {
        TOKEN => token_answer(r),
        _ => Answer::Json(json!({"errcode": 0, "errmsg": "ok", "msgid": 42})),
    })
    .await;
    let answer = mock
        .client()
        .post_json(
            "/cgi-bin/message/subscribe/send",
            &json!({"touser": "OPENID"}),
        )
        .await
        .unwrap();
    assert_eq!(answer["msgid"], 42);
    assert_eq!(
        mock.requests("/cgi-bin/message/subscribe/send")[0].token(),
        "TOKEN-1"
    );
}

// ---------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn debug_prints_neither_secret_nor_token() {
    let mock = Mock::start(|r| match r.path.as_str() {
        TOKEN => Answer::Json(json!({"access_token": "TOPSECRET-TOKEN", "expires_in": 7200})),
        _ => ok(),
    })
    .await;
    let builder = Client::builder("wxAPPID", "TOPSECRET-APPSECRET").base_url(mock.base());
    assert!(!format!("{builder:?}").contains("TOPSECRET"));
    let client = builder.build().unwrap();
    let token = client.access_token().await.unwrap();
    for text in [
        format!("{client:?}"),
        format!("{client:#?}"),
        format!("{token:?}"),
    ] {
        assert!(!text.contains("TOPSECRET"), "{text}");
    }
    assert!(format!("{client:?}").contains("wxAPPID"));
    let stored = AccessToken::new("TOPSECRET-X", SystemTime::UNIX_EPOCH);
    assert!(!format!("{stored:?}").contains("TOPSECRET"));
}

#[test]
fn base_url_is_validated() {
    for bad in [
        "",
        "api.weixin.qq.com",
        "ftp://x",
        "https://x/?a=b",
        "not a url",
    ] {
        assert!(
            Client::builder("a", "s").base_url(bad).build().is_err(),
            "{bad}"
        );
    }
    let client = Client::builder("a", "s")
        .base_url("http://127.0.0.1:1/prefix/")
        .build()
        .unwrap();
    assert_eq!(client.base_url(), "http://127.0.0.1:1/prefix");
    assert_eq!(
        Client::new("a", "s").unwrap().base_url(),
        "https://api.weixin.qq.com"
    );
}

#[test]
fn futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    fn is_send_sync<T: Send + Sync + Clone + 'static>() {}
    is_send_sync::<Client>();
    let client = Client::new("a", "s").unwrap();
    is_send(&client.send_text("o", "t"));
    is_send(&client.upload_media(MediaType::Image, &Media::new("a", "b", Vec::new())));
    is_send(&client.access_token());
}

/// A store whose refresh lock is always held by someone else (a crashed instance and a
/// store that never expires leases).
#[derive(Debug, Default)]
struct StuckLockStore(MemoryTokenStore);

impl TokenStore for StuckLockStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>> {
        self.0.get(key)
    }
    fn set<'a>(
        &'a self,
        key: &'a str,
        token: AccessToken,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0.set(key, token)
    }
    fn invalidate<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.0.invalidate(key, value)
    }
    fn try_lock<'a>(
        &'a self,
        _key: &'a str,
        _owner: &'a str,
        _lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Ok(false) })
    }
    fn unlock<'a>(
        &'a self,
        _key: &'a str,
        _owner: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_lock_held_past_its_lease_does_not_block_forever() {
    let mock = Mock::start(standard).await;
    let client = Client::builder("wxAPPID", "SECRET")
        .base_url(mock.base())
        .token_store(Arc::new(StuckLockStore::default()))
        .refresh_lease(Duration::from_millis(100))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    client.send_text("OPENID", "hi").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(mock.count(TOKEN), 1);
    // The token it stored is used afterwards without waiting.
    client.send_text("OPENID", "again").await.unwrap();
    assert_eq!(mock.count(TOKEN), 1);
}

/// A memory store that fails every call while `broken` is set (Redis down, say). With
/// `hold_invalidate`, a compare-and-delete waits (after `entered`) until `proceed`: a slow
/// store command that other calls overtake.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: MemoryTokenStore,
    broken: AtomicBool,
    hold_invalidate: AtomicBool,
    entered: tokio::sync::Notify,
    proceed: tokio::sync::Notify,
    /// How many times the token was read.
    gets: AtomicU64,
    /// What `is_shared` says.
    shared: AtomicBool,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(StoreError::new("the store is down"))
        } else {
            Ok(())
        }
    }
}

impl TokenStore for FlakyStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        match self.check() {
            Ok(()) => self.inner.get(key),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn set<'a>(
        &'a self,
        key: &'a str,
        token: AccessToken,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        match self.check() {
            Ok(()) => self.inner.set(key, token),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn invalidate<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        match self.check() {
            Ok(()) if self.hold_invalidate.load(Ordering::SeqCst) => Box::pin(async move {
                self.entered.notify_one();
                self.proceed.notified().await;
                self.inner.invalidate(key, value).await
            }),
            Ok(()) => self.inner.invalidate(key, value),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        match self.check() {
            Ok(()) => self.inner.try_lock(key, owner, lease),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn unlock<'a>(&'a self, key: &'a str, owner: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        match self.check() {
            Ok(()) => self.inner.unlock(key, owner),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn is_shared(&self) -> bool {
        self.shared.load(Ordering::SeqCst)
    }
}

fn flaky_client(mock: &Mock, store: &Arc<FlakyStore>) -> Client {
    Client::builder("wxAPPID", "SECRET")
        .base_url(mock.base())
        .token_store(store.clone())
        .build()
        .unwrap()
}

/// With the store down from the start, the client fetches a token itself, once for all its
/// concurrent callers, and keeps it. (It used to fail every call with `Error::Store`, dropping
/// the token it had fetched when the store refused to keep it.)
#[tokio::test]
async fn a_failing_store_falls_back_to_one_fetch_in_the_process() {
    let mock = Mock::start(standard).await;
    let store = Arc::new(FlakyStore::default());
    store.broken.store(true, Ordering::SeqCst);
    let client = flaky_client(&mock, &store);
    let sends = (0..50).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { client.send_text("OPENID", &format!("m{i}")).await })
    });
    for send in sends {
        send.await.unwrap().unwrap();
    }
    assert_eq!(mock.count(TOKEN), 1);
    client.send_text("OPENID", "later").await.unwrap();
    assert_eq!(mock.count(TOKEN), 1);
    assert!(mock.requests(SEND).iter().all(|r| r.token() == "TOKEN-1"));
    // A rejected token is dropped here too, and fetched again once.
    let rejected = Mock::start(|r| match r.path.as_str() {
        TOKEN => token_answer(r),
        _ if r.token() == "TOKEN-1" => err(40001),
        _ => ok(),
    })
    .await;
    let client = flaky_client(&rejected, &store);
    client.send_text("OPENID", "one").await.unwrap();
    client.send_text("OPENID", "two").await.unwrap();
    assert_eq!(rejected.count(TOKEN), 2);
    assert_eq!(rejected.requests(SEND).last().unwrap().token(), "TOKEN-2");
}

/// A store that goes down after the token was fetched: the process's copy is used, no fetch.
/// When it answers again, the process keeps using its copy while that is valid (no store
/// round trip per send); once WeChat rejects it (another instance replaced it meanwhile), the
/// store's token is read and used, still without a fetch.
#[tokio::test]
async fn a_store_going_down_keeps_the_token_in_use() {
    let replaced = Arc::new(AtomicBool::new(false));
    let mock = Mock::start({
        let replaced = replaced.clone();
        move |r| match r.path.as_str() {
            TOKEN => token_answer(r),
            _ if r.token() == "TOKEN-1" && replaced.load(Ordering::SeqCst) => err(40001),
            _ => ok(),
        }
    })
    .await;
    let store = Arc::new(FlakyStore::default());
    let client = flaky_client(&mock, &store);
    client.send_text("OPENID", "before").await.unwrap();
    store.broken.store(true, Ordering::SeqCst);
    client.send_text("OPENID", "during").await.unwrap();
    assert_eq!(mock.count(TOKEN), 1);
    store.broken.store(false, Ordering::SeqCst);
    client.send_text("OPENID", "back").await.unwrap();
    assert_eq!(mock.requests(SEND).last().unwrap().token(), "TOKEN-1");
    // Another instance replaced the token meanwhile, and WeChat no longer takes the old one.
    let far = SystemTime::now() + Duration::from_secs(3600);
    store
        .inner
        .set(
            "wechat:access_token:wxAPPID:stable_token",
            AccessToken::new("SHARED", far),
        )
        .await
        .unwrap();
    replaced.store(true, Ordering::SeqCst);
    client.send_text("OPENID", "after").await.unwrap();
    assert_eq!(mock.requests(SEND).last().unwrap().token(), "SHARED");
    assert_eq!(mock.count(TOKEN), 1);
}

/// A store read that overtakes this process's dropping of a rejected token (sent before the
/// token is deleted from the store, answered after it was dropped here) must not bring that
/// token back: the rejected send's retry would use it and fail again. (With the process's copy
/// used before the store, it did: the retry got 40001 a second time.) Both with an unshared
/// store and with a shared one, read on every send.
#[tokio::test]
async fn a_store_read_racing_a_rejection_does_not_bring_the_token_back() {
    for shared in [false, true] {
        a_store_read_racing_a_rejection(shared).await;
    }
}

async fn a_store_read_racing_a_rejection(shared: bool) {
    let rejected = Arc::new(AtomicBool::new(false));
    let mock = Mock::start({
        let rejected = rejected.clone();
        move |r| match r.path.as_str() {
            TOKEN => token_answer(r),
            _ if r.token() == "TOKEN-1" && rejected.load(Ordering::SeqCst) => err(40001),
            _ => ok(),
        }
    })
    .await;
    let store = Arc::new(FlakyStore::default());
    store.shared.store(shared, Ordering::SeqCst);
    let client = flaky_client(&mock, &store);
    client.send_text("OPENID", "before").await.unwrap();
    rejected.store(true, Ordering::SeqCst);
    store.hold_invalidate.store(true, Ordering::SeqCst);
    // The send is rejected, drops its copy, and its store delete is slow...
    let send = tokio::spawn({
        let client = client.clone();
        async move { client.send_text("OPENID", "rejected once").await }
    });
    store.entered.notified().await;
    // ...and another caller reads the store meanwhile, which still holds TOKEN-1.
    let other = client.access_token().await.unwrap();
    assert_ne!(other.value(), "TOKEN-1");
    store.proceed.notify_one();
    send.await.unwrap().unwrap();
    assert_eq!(mock.requests(SEND).last().unwrap().token(), "TOKEN-2");
    assert_eq!(mock.count(TOKEN), 2);
}

/// With an unshared store (the memory store), the client sends on its own valid copy without
/// reading the store.
#[tokio::test]
async fn sends_on_a_valid_token_do_not_read_the_store() {
    let mock = Mock::start(standard).await;
    let store = Arc::new(FlakyStore::default());
    let client = flaky_client(&mock, &store);
    client.send_text("OPENID", "first").await.unwrap();
    let reads = store.gets.load(Ordering::SeqCst);
    for i in 0..20 {
        client.send_text("OPENID", &format!("m{i}")).await.unwrap();
    }
    assert_eq!(store.gets.load(Ordering::SeqCst), reads);
    assert_eq!(mock.count(TOKEN), 1);
}

/// With a shared store, every send reads the store's token: one that another instance stored
/// after a rejection is used at once, and the old one is not spent (before, the process's
/// copy was used until WeChat rejected it here too). While the store fails, the process's
/// copy is used.
#[tokio::test]
async fn a_shared_store_is_read_on_every_send() {
    let replaced = Arc::new(AtomicBool::new(false));
    let mock = Mock::start({
        let replaced = replaced.clone();
        move |r| match r.path.as_str() {
            TOKEN => token_answer(r),
            _ if r.token() == "TOKEN-1" && replaced.load(Ordering::SeqCst) => err(40001),
            _ => ok(),
        }
    })
    .await;
    let store = Arc::new(FlakyStore::default());
    store.shared.store(true, Ordering::SeqCst);
    let client = flaky_client(&mock, &store);
    client.send_text("OPENID", "first").await.unwrap();
    let reads = store.gets.load(Ordering::SeqCst);
    client.send_text("OPENID", "second").await.unwrap();
    assert_eq!(store.gets.load(Ordering::SeqCst), reads + 1);
    // Another instance saw TOKEN-1 rejected and stored a new one.
    let far = SystemTime::now() + Duration::from_secs(3600);
    store
        .inner
        .set(
            "wechat:access_token:wxAPPID:stable_token",
            AccessToken::new("SHARED", far),
        )
        .await
        .unwrap();
    replaced.store(true, Ordering::SeqCst);
    for i in 0..5 {
        client.send_text("OPENID", &format!("m{i}")).await.unwrap();
    }
    let sends = mock.requests(SEND);
    assert_eq!(sends.len(), 7, "no send spent on the replaced token");
    assert!(sends[2..].iter().all(|r| r.token() == "SHARED"));
    // The store goes down: the process's copy (the last token read) carries on, no fetch.
    store.broken.store(true, Ordering::SeqCst);
    client.send_text("OPENID", "down").await.unwrap();
    assert_eq!(mock.requests(SEND).last().unwrap().token(), "SHARED");
    assert_eq!(mock.count(TOKEN), 1);
}
