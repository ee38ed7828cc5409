//! The client's token on a real `redis-server` shared by several instances: a token one
//! instance saw rejected and replaced is not spent by any other, in the library and through
//! the `customer_service` example. Each test starts its own `redis-server` on a free loopback
//! port (no persistence).
//!
//! Without `redis-server` on the PATH each test prints a loud SKIPPED line and passes; with
//! `CI=true` it fails instead (`.ci/run` installs the Debian package).
#![cfg(all(feature = "redis", feature = "client", feature = "tokio"))]

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
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{plain_query, Case};
use http::{Method, StatusCode};
use mock_api::{err, ok, token_answer, Answer, Mock, Recorded, SEND, TOKEN};
use wechat_push::client::Client;
use wechat_push::redis::RedisStores;

// ---------------------------------------------------------------------------------------
// A WeChat API that stops taking the first token
// ---------------------------------------------------------------------------------------

/// Tokens as `token_answer`; sends succeed, except those with `TOKEN-1` once `rejecting` is
/// set (another instance's refresh replaced it, say).
fn rejecting_first_token(
    rejecting: Arc<AtomicBool>,
) -> impl Fn(&Recorded) -> Answer + Send + Sync + 'static {
    move |r| match r.path.as_str() {
        TOKEN => token_answer(r),
        _ if rejecting.load(Ordering::SeqCst) && r.token() == "TOKEN-1" => err(40001),
        _ => ok(),
    }
}

/// Checks what the mock saw after the rejection: `before` sends until then, one rejected
/// send and its retry at the instance that saw it, then exactly `after` sends, all with the
/// new token, and two token fetches in all.
fn assert_no_send_spent_on_the_old_token(mock: &Mock, before: usize, after: usize) {
    let sends = mock.requests(SEND);
    let tokens: Vec<&str> = sends.iter().map(Recorded::token).collect();
    assert_eq!(
        sends.len(),
        before + 2 + after,
        "one send per message, none on the replaced token: {tokens:?}"
    );
    assert_eq!(tokens[before], "TOKEN-1", "the rejected send");
    assert!(
        tokens[before + 1..].iter().all(|t| *t == "TOKEN-2"),
        "{tokens:?}"
    );
    assert_eq!(
        mock.count(TOKEN),
        2,
        "one fetch, one refetch for all instances"
    );
}

// ---------------------------------------------------------------------------------------
// The library
// ---------------------------------------------------------------------------------------

/// Three clients (three instances) on one Redis, each with its own connection. A sees the
/// token rejected and stores a new one; the 30 sends spread over A, B and C after that make
/// exactly 30 calls (before, B and C kept their own copy and each concurrent send there spent
/// one call on the old token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_on_one_redis_spend_no_send_on_a_replaced_token() {
    let Some(server) =
        RedisServer::start("three_clients_on_one_redis_spend_no_send_on_a_replaced_token")
    else {
        return;
    };
    let rejecting = Arc::new(AtomicBool::new(false));
    let mock = Mock::start(rejecting_first_token(rejecting.clone())).await;
    let instance = || {
        let stores = RedisStores::builder(server.url())
            .prefix("three:")
            .build()
            .unwrap();
        Client::builder("wxAPPID", "SECRET")
            .base_url(mock.base())
            .token_store(Arc::new(stores.token_store()))
            .build()
            .unwrap()
    };
    let clients = [instance(), instance(), instance()];
    // Every instance has sent with TOKEN-1 (so holds a copy of it).
    for client in &clients {
        client.send_text("OPENID", "before").await.unwrap();
    }
    assert_eq!(mock.count(TOKEN), 1);
    // WeChat stops taking it; A sees that, fetches TOKEN-2 and stores it.
    rejecting.store(true, Ordering::SeqCst);
    clients[0].send_text("OPENID", "rejected").await.unwrap();
    let sends: Vec<_> = (0..30)
        .map(|i| {
            let client = clients[i % 3].clone();
            tokio::spawn(async move { client.send_text("OPENID", &format!("m{i}")).await })
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }
    assert_no_send_spent_on_the_old_token(&mock, 3, 30);
}

// ---------------------------------------------------------------------------------------
// The customer_service example with REDIS_URL (CONTRACT.md, "Several instances")
// ---------------------------------------------------------------------------------------

impl Instance {
    /// Delivers the text push `id`, signed now; it must be answered `success`.
    async fn push(&self, case: &Case, id: u64) {
        push(self.addr, case.token().to_owned(), id).await;
    }
}

/// Delivers the text push `id` to `addr`, signed now with `token`; it must be answered
/// `success`.
async fn push(addr: SocketAddr, token: String, id: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let query = plain_query(&token, &now.to_string(), "1234567");
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1714200000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[push {id}]]></Content><MsgId>{id}</MsgId></xml>"
    );
    let (status, _, answer) =
        common::send(addr, Method::POST, &format!("/wechat?{query}"), &body).await;
    assert_eq!(
        (status, answer.as_str()),
        (StatusCode::OK, "success"),
        "push {id}"
    );
}

/// CONTRACT.md: "a token that one instance saw rejected and replaced is not used again by any
/// instance (no send is spent on it)". Three instances of the example on one Redis have each
/// sent with the first token; WeChat stops taking it and A replaces it; the 30 pushes that
/// follow, spread over A, B and C, make exactly 30 sends, all with the new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_service_instances_spend_no_send_on_a_token_one_replaced() {
    let Some(server) =
        RedisServer::start("customer_service_instances_spend_no_send_on_a_token_one_replaced")
    else {
        return;
    };
    let case = Case::new(0);
    let rejecting = Arc::new(AtomicBool::new(false));
    let mock = Mock::start(rejecting_first_token(rejecting.clone())).await;
    let env = HashMap::from([
        ("BIND", "127.0.0.1:0".to_owned()),
        ("WECHAT_TOKEN", case.token().to_owned()),
        ("WECHAT_APPID", case.appid().to_owned()),
        ("WECHAT_APP_SECRET", "SECRET".to_owned()),
        ("WECHAT_API_BASE", mock.base()),
        ("REDIS_URL", server.url()),
    ]);
    let instances = [
        Instance::start(&env).await,
        Instance::start(&env).await,
        Instance::start(&env).await,
    ];
    for (n, instance) in instances.iter().enumerate() {
        instance.push(&case, 7000 + n as u64).await;
        mock.wait_for(SEND, n + 1).await;
    }
    assert_eq!(mock.count(TOKEN), 1);
    rejecting.store(true, Ordering::SeqCst);
    instances[0].push(&case, 7100).await;
    mock.wait_for(SEND, 5).await;
    let pushes: Vec<_> = (0..30u64)
        .map(|i| {
            let addr = instances[i as usize % 3].addr;
            tokio::spawn(push(addr, case.token().to_owned(), 7200 + i))
        })
        .collect();
    for push in pushes {
        push.await.unwrap();
    }
    mock.wait_for(SEND, 35).await;
    let [a, b, c] = instances;
    for instance in [a, b, c] {
        instance.stop().await;
    }
    assert_no_send_spent_on_the_old_token(&mock, 3, 30);
}
