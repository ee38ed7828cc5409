//! End to end: the `customer_service` example's server on 127.0.0.1, fed real signed pushes by
//! a real HTTP client, talking to a loopback mock of the WeChat API.
#![cfg(all(feature = "client", feature = "tokio"))]

mod common;

#[allow(dead_code)]
#[path = "../examples/customer_service.rs"]
mod example;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{plain_query, Case};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wechat_push::{crypto, signature};

const OPENID: &str = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY";
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// The mock WeChat API (tests/common/mock_api.rs)
// ---------------------------------------------------------------------------------------

#[path = "common/mock_api.rs"]
mod mock_api;

use mock_api::{
    standard, token_answer, Answer, Mock, Recorded, SEND as SEND_PATH, TOKEN as TOKEN_PATH,
};

/// A mock like WeChat's when all goes well (token `TOKEN-<n>` on the n-th fetch, `errcode` 0
/// for every send), answering after `delay`.
async fn ok_mock_after(delay: Duration) -> Mock {
    Mock::start(move |r| Answer::Delay(delay, Box::new(standard(r)))).await
}

// ---------------------------------------------------------------------------------------
// The example's server
// ---------------------------------------------------------------------------------------

/// The example's server on a loopback port, configured like the example reads the
/// environment.
struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    case: Case,
}

impl Server {
    /// Starts the example against the API at `base`, with the first vector case's Token,
    /// AppID and EncodingAESKey.
    async fn start(base: &str) -> Server {
        let case = Case::new(0);
        let env: HashMap<&str, String> = HashMap::from([
            ("BIND", "127.0.0.1:0".to_owned()),
            ("WECHAT_TOKEN", case.token().to_owned()),
            ("WECHAT_APPID", case.appid().to_owned()),
            (
                "WECHAT_ENCODING_AES_KEY",
                common::s(&case.v, "encoding_aes_key").to_owned(),
            ),
            ("WECHAT_APP_SECRET", "SECRET".to_owned()),
            ("WECHAT_API_BASE", base.to_owned()),
        ]);
        let config = example::configure(|name| env.get(name).cloned()).unwrap();
        let listener = TcpListener::bind(config.bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(example::serve(listener, config, shutdown));
        Server {
            addr,
            stop,
            task,
            case,
        }
    }

    /// Posts `body` as a plaintext push, signed with the current time.
    async fn push_plain(&self, body: &str) -> (StatusCode, String) {
        let query = plain_query(self.case.token(), &now(), "1234567");
        post(self.addr, &format!("/wechat?{query}"), body).await
    }

    /// Posts `plaintext` (a JSON push) as a safe-mode JSON push, encrypted and signed now.
    async fn push_safe_json(&self, plaintext: &str) -> (StatusCode, String) {
        let case = &self.case;
        let (timestamp, nonce) = (now(), "7654321");
        let encrypt = crypto::encrypt(&case.key(), plaintext.as_bytes(), case.appid()).unwrap();
        let msg_signature =
            signature::sign_message(case.token(), &timestamp, nonce, &encrypt).to_string();
        let query = format!(
            "{}&openid={OPENID}&encrypt_type=aes&msg_signature={msg_signature}",
            plain_query(case.token(), &timestamp, nonce)
        );
        let body = json!({"ToUserName": "gh_97417a04a28d", "Encrypt": encrypt}).to_string();
        post(self.addr, &format!("/wechat?{query}"), &body).await
    }

    /// Stops the server the way SIGTERM does and waits until it has finished, pending sends
    /// included (the example gives them 10 s: a send still trying to reach a dead API is
    /// given up then).
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT + Duration::from_secs(10), self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

fn now() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

async fn request(
    addr: SocketAddr,
    method: Method,
    path_and_query: &str,
    body: &str,
) -> (StatusCode, String) {
    let (status, _, body) = common::send(addr, method, path_and_query, body).await;
    (status, body)
}

async fn post(addr: SocketAddr, path_and_query: &str, body: &str) -> (StatusCode, String) {
    request(addr, Method::POST, path_and_query, body).await
}

fn success() -> (StatusCode, String) {
    (StatusCode::OK, "success".to_owned())
}

/// An XML push from [`OPENID`] with `fields` after the header.
fn xml_push(msg_type: &str, fields: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName><CreateTime>1714200000</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{fields}</xml>"
    )
}

/// The exact `custom/send` body of a text to [`OPENID`].
fn text_send(content: &str) -> String {
    format!(r#"{{"touser":"{OPENID}","msgtype":"text","text":{{"content":"{content}"}}}}"#)
}

/// Checks the one token fetch of a test: a stable_token request without `force_refresh`.
fn assert_token_fetch(fetch: &Recorded, appid: &str) {
    let body: Value = serde_json::from_str(fetch.text()).unwrap();
    assert_eq!(
        body,
        json!({"grant_type": "client_credential", "appid": appid, "secret": "SECRET", "force_refresh": false})
    );
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn text_pushes_plaintext_and_safe_mode_are_echoed_through_custom_send() {
    let mock = Mock::start(standard).await;
    let server = Server::start(&mock.base()).await;

    // The vector's plaintext XML text push ("hello").
    let case = Case::new(0);
    let plaintext = common::s(case.format("xml"), "plaintext");
    assert_eq!(server.push_plain(plaintext).await, success());
    let sends = mock.wait_for(SEND_PATH, 1).await;
    assert_eq!(sends[0].text(), text_send("hello"));
    assert_eq!(sends[0].query["access_token"], "TOKEN-1");

    // A safe-mode JSON push with CJK content: sent back as raw UTF-8.
    let push = json!({
        "ToUserName": "gh_97417a04a28d", "FromUserName": OPENID, "CreateTime": 1714200000,
        "MsgType": "text", "Content": "你好 \"世界\"", "MsgId": 24567213810038957u64
    });
    assert_eq!(server.push_safe_json(&push.to_string()).await, success());
    let sends = mock.wait_for(SEND_PATH, 2).await;
    assert_eq!(sends[1].text(), text_send(r#"你好 \"世界\""#));
    assert_eq!(sends[1].query["access_token"], "TOKEN-1");

    server.stop().await;
    // One token fetch served both sends.
    let fetches = mock.requests(TOKEN_PATH);
    assert_eq!(fetches.len(), 1, "{fetches:#?}");
    assert_token_fetch(&fetches[0], case.appid());
    assert_eq!(mock.requests(SEND_PATH).len(), 2);
}

#[tokio::test]
async fn retries_of_one_push_cause_one_send() {
    let mock = Mock::start(standard).await;
    let server = Server::start(&mock.base()).await;
    // The same push delivered three times with the same query: `push_plain` signs with the
    // current second and one nonce (a second boundary may change the timestamp). With a
    // fresh query each time: tests/server.rs, `retried_with_a_fresh_query`.
    let push = xml_push(
        "text",
        "<Content><![CDATA[only once]]></Content><MsgId>77</MsgId>",
    );
    for _ in 0..3 {
        assert_eq!(server.push_plain(&push).await, success());
    }
    // Two deliveries of another push at the same time.
    let other = xml_push(
        "text",
        "<Content><![CDATA[at once]]></Content><MsgId>78</MsgId>",
    );
    let (a, b) = tokio::join!(server.push_plain(&other), server.push_plain(&other));
    assert_eq!((a, b), (success(), success()));
    let sends = mock.wait_for(SEND_PATH, 2).await;
    server.stop().await;
    assert_eq!(mock.requests(SEND_PATH).len(), 2, "{sends:#?}");
    let bodies: Vec<_> = mock
        .requests(SEND_PATH)
        .into_iter()
        .map(|r| r.text().to_owned())
        .collect();
    assert!(bodies.contains(&text_send("only once")) && bodies.contains(&text_send("at once")));
}

#[tokio::test]
async fn image_push_sends_the_image_back() {
    let mock = Mock::start(standard).await;
    let server = Server::start(&mock.base()).await;
    let push = xml_push(
        "image",
        "<PicUrl><![CDATA[https://mmbiz.qpic.cn/x]]></PicUrl><MediaId><![CDATA[MEDIA_ID_1]]></MediaId><MsgId>1</MsgId>",
    );
    assert_eq!(server.push_plain(&push).await, success());
    let sends = mock.wait_for(SEND_PATH, 1).await;
    assert_eq!(
        sends[0].text(),
        format!(r#"{{"touser":"{OPENID}","msgtype":"image","image":{{"media_id":"MEDIA_ID_1"}}}}"#)
    );
    server.stop().await;
    assert_eq!(mock.requests(SEND_PATH).len(), 1);
}

#[tokio::test]
async fn mini_program_card_is_answered_with_a_text_naming_its_title() {
    let mock = Mock::start(standard).await;
    let server = Server::start(&mock.base()).await;
    let push = xml_push(
        "miniprogrampage",
        "<Title><![CDATA[春季新品]]></Title><AppId><![CDATA[wx1234567890abcdef]]></AppId><PagePath><![CDATA[pages/index/index?foo=bar]]></PagePath><ThumbUrl><![CDATA[https://example.com/t.png]]></ThumbUrl><ThumbMediaId><![CDATA[THUMB]]></ThumbMediaId><MsgId>2</MsgId>",
    );
    assert_eq!(server.push_plain(&push).await, success());
    let sends = mock.wait_for(SEND_PATH, 1).await;
    assert_eq!(sends[0].text(), text_send("你发送了小程序卡片：春季新品"));
    server.stop().await;
    assert_eq!(mock.requests(SEND_PATH).len(), 1);
}

#[tokio::test]
async fn user_enter_tempsession_gets_the_welcome_text() {
    let mock = Mock::start(standard).await;
    let server = Server::start(&mock.base()).await;
    // As a safe-mode JSON push, the way mini programs usually configure it.
    let push = json!({
        "ToUserName": "gh_97417a04a28d", "FromUserName": OPENID, "CreateTime": 1714200000,
        "MsgType": "event", "Event": "user_enter_tempsession", "SessionFrom": "contact-button"
    });
    assert_eq!(server.push_safe_json(&push.to_string()).await, success());
    let sends = mock.wait_for(SEND_PATH, 1).await;
    assert_eq!(sends[0].text(), text_send("你好,欢迎来到这里"));
    server.stop().await;
    assert_eq!(mock.requests(SEND_PATH).len(), 1);
}

#[tokio::test]
async fn unknown_types_and_other_events_send_nothing() {
    let mock = Mock::start(standard).await;
    let server = Server::start(&mock.base()).await;
    let pushes = [
        xml_push("hologram", "<Shape><![CDATA[cube]]></Shape>"),
        xml_push(
            "event",
            "<Event><![CDATA[debug_demo]]></Event><debug_str><![CDATA[hi]]></debug_str>",
        ),
        xml_push("event", "<Event><![CDATA[no_such_event]]></Event>"),
        xml_push(
            "voice",
            "<MediaId><![CDATA[M]]></MediaId><Format><![CDATA[amr]]></Format><MsgId>3</MsgId>",
        ),
    ];
    for push in &pushes {
        assert_eq!(server.push_plain(push).await, success(), "{push}");
    }
    // Stopping waits for every spawned send: none may have been started.
    server.stop().await;
    assert!(mock.all().is_empty(), "{:#?}", mock.all());
}

#[tokio::test]
async fn a_rejected_token_is_fetched_again_once_and_the_send_retried_once() {
    // The first send answers 40001, everything after succeeds.
    let mock = Mock::start(|r| match (r.path.as_str(), r.nth) {
        (TOKEN_PATH, _) => token_answer(r),
        (SEND_PATH, 1) => Answer::Json(
            json!({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}),
        ),
        _ => mock_api::ok(),
    })
    .await;
    let server = Server::start(&mock.base()).await;
    let push = xml_push(
        "text",
        "<Content><![CDATA[again]]></Content><MsgId>4</MsgId>",
    );
    assert_eq!(server.push_plain(&push).await, success());

    let sends = mock.wait_for(SEND_PATH, 2).await;
    assert_eq!(sends[0].query["access_token"], "TOKEN-1");
    assert_eq!(sends[1].query["access_token"], "TOKEN-2");
    assert_eq!(sends[0].text(), text_send("again"));
    assert_eq!(sends[1].text(), sends[0].text());

    server.stop().await;
    let fetches = mock.requests(TOKEN_PATH);
    assert_eq!(fetches.len(), 2, "one fetch, one refetch: {fetches:#?}");
    for fetch in &fetches {
        assert_token_fetch(fetch, Case::new(0).appid());
    }
    assert_eq!(mock.requests(SEND_PATH).len(), 2, "one send, one retry");
}

#[tokio::test]
async fn a_dead_api_still_gets_the_push_answered_success() {
    // A port that was just closed: every connection is refused.
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let server = Server::start(&format!("http://{dead}")).await;
    let text = xml_push(
        "text",
        "<Content><![CDATA[anyone?]]></Content><MsgId>5</MsgId>",
    );
    assert_eq!(server.push_plain(&text).await, success());
    let event = json!({
        "ToUserName": "gh_97417a04a28d", "FromUserName": OPENID, "CreateTime": 1714200000,
        "MsgType": "event", "Event": "user_enter_tempsession", "SessionFrom": ""
    });
    assert_eq!(server.push_safe_json(&event.to_string()).await, success());
    // The failed sends are logged and dropped; the server keeps going and stops cleanly.
    assert_eq!(server.push_plain(&text).await, success());
    server.stop().await;
}

#[tokio::test]
async fn the_example_keeps_the_layer_contract() {
    let mock = Mock::start(standard).await;
    let server = Server::start(&mock.base()).await;
    let case = Case::new(0);
    let query = plain_query(case.token(), &now(), "1");

    let (status, body) = request(
        server.addr,
        Method::GET,
        &format!("/wechat?{query}&echostr=4375120948345356249"),
        "",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "4375120948345356249")
    );

    let text = xml_push("text", "<Content><![CDATA[x]]></Content>");
    let bad = plain_query("WrongToken1", &now(), "1");
    let (status, _) = post(server.addr, &format!("/wechat?{bad}"), &text).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let stale = plain_query(case.token(), "1714200000", "1");
    let (status, body) = post(server.addr, &format!("/wechat?{stale}"), &text).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("timestamp"), "{body}");
    let (status, _) = post(server.addr, &format!("/wechat?{query}"), "<xml><oops").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = request(server.addr, Method::PUT, &format!("/wechat?{query}"), "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = post(server.addr, &format!("/elsewhere?{query}"), &text).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    server.stop().await;
    assert!(mock.all().is_empty(), "{:#?}", mock.all());
}

#[test]
fn configuration_errors_name_the_variable() {
    let full = [
        ("WECHAT_TOKEN", "Token123abc"),
        ("WECHAT_APPID", "wx1234567890abcdef"),
        ("WECHAT_APP_SECRET", "SECRET"),
    ];
    let configure = |changes: &[(&str, &str)]| {
        let mut env: HashMap<&str, &str> = full.into_iter().collect();
        for &(name, value) in changes {
            env.insert(name, value);
        }
        example::configure(|name| env.get(name).map(|v| (*v).to_owned()))
    };
    let config = configure(&[]).unwrap();
    assert_eq!(config.bind.to_string(), "127.0.0.1:3000");
    assert_eq!(config.client.base_url(), "https://api.weixin.qq.com");
    assert_eq!(config.client.appid(), "wx1234567890abcdef");

    for (name, value) in [
        ("WECHAT_TOKEN", ""),
        ("WECHAT_TOKEN", "no"),
        ("WECHAT_APPID", ""),
        ("WECHAT_APP_SECRET", ""),
        ("WECHAT_ENCODING_AES_KEY", "tooshort"),
        ("WECHAT_API_BASE", "ftp://api.example.com"),
        ("BIND", "localhost"),
    ] {
        let error = configure(&[(name, value)]).unwrap_err();
        assert!(
            error.starts_with(&format!("{name}: ")),
            "{name}={value:?}: {error}"
        );
        assert!(!error.contains('\n'), "{error}");
    }
}

#[tokio::test]
async fn stopping_lets_the_workers_finish_the_sends_they_hold() {
    // A slow API: the token arrives a second after the workers took the pushes, the sends a
    // second later still.
    let mock = ok_mock_after(Duration::from_secs(1)).await;
    let server = Server::start(&mock.base()).await;
    // As many pushes as the example has workers: each one held by a worker (in memory, work
    // still queued at shutdown is lost, and logged so).
    for n in 0..4 {
        let push = xml_push(
            "text",
            &format!(
                "<Content><![CDATA[{n}]]></Content><MsgId>{}</MsgId>",
                100 + n
            ),
        );
        assert_eq!(server.push_plain(&push).await, success());
    }
    // The workers hold them once the token fetch began (and the others polled, every 50 ms).
    let until = tokio::time::Instant::now() + WAIT;
    while mock.requests(TOKEN_PATH).is_empty() && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        mock.requests(SEND_PATH).is_empty(),
        "the sends are still held"
    );
    // Stopping (like SIGTERM) lets the sends under way finish.
    server.stop().await;
    assert_eq!(
        mock.requests(TOKEN_PATH).len(),
        1,
        "one fetch shared by four pushes"
    );
    let mut sent: Vec<String> = mock
        .requests(SEND_PATH)
        .into_iter()
        .map(|r| r.text().to_owned())
        .collect();
    sent.sort();
    let expected: Vec<String> = (0..4).map(|n| text_send(&n.to_string())).collect();
    assert_eq!(sent, expected);
}

/// CONTRACT.md: when a token fetch fails, the sends waiting for a token are not failed at
/// once; a push that arrives a second after a failed fetch still gets its send once the token
/// endpoint answers again. (Before, the first push's send got the fetch's error, and the
/// pushes within a second after it got that error at once, without a fetch: all dropped.)
#[tokio::test]
async fn pushes_during_a_token_outage_get_their_sends_once_it_ends() {
    let down = Arc::new(AtomicBool::new(true));
    let mock = Mock::start({
        let down = down.clone();
        move |r| match r.path.as_str() {
            TOKEN_PATH if down.load(Ordering::SeqCst) => mock_api::err(-1),
            _ => standard(r),
        }
    })
    .await;
    let server = Server::start(&mock.base()).await;
    let push = |n: u64| {
        xml_push(
            "text",
            &format!(
                "<Content><![CDATA[outage {n}]]></Content><MsgId>{}</MsgId>",
                800 + n
            ),
        )
    };
    // The first push's token fetch fails …
    assert_eq!(server.push_plain(&push(0)).await, success());
    mock.wait_for(TOKEN_PATH, 1).await;
    // … a push half a second later, and one a second later still, while it is down …
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.push_plain(&push(1)).await, success());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(server.push_plain(&push(2)).await, success());
    // … then the endpoint answers again: every push gets its send.
    tokio::time::sleep(Duration::from_millis(300)).await;
    down.store(false, Ordering::SeqCst);
    let sends = mock.wait_for(SEND_PATH, 3).await;
    server.stop().await;
    let mut sent: Vec<String> = sends.iter().map(|r| r.text().to_owned()).collect();
    sent.sort();
    let expected: Vec<String> = (0..3).map(|n| text_send(&format!("outage {n}"))).collect();
    assert_eq!(sent, expected);
    assert_eq!(mock.requests(SEND_PATH).len(), 3);
    let fetches = mock.requests(TOKEN_PATH).len();
    assert!(
        (2..=4).contains(&fetches),
        "at most one fetch a second: {fetches}"
    );
    let token = format!("TOKEN-{fetches}");
    assert!(sends.iter().all(|r| r.query["access_token"] == token));
}
