//! The layer behind real servers on 127.0.0.1, driven by a real HTTP client: hyper 1 through
//! `TowerToHyperService`, axum with tower-http layers outside, and the `customer_service`
//! example's server (for docs/examples.md's retry row with a fresh query; its other contract tests
//! are in tests/customer_service.rs).

mod common;
#[cfg(all(feature = "client", feature = "tokio"))]
#[allow(dead_code)]
#[path = "../examples/customer_service.rs"]
mod example;
#[cfg(all(feature = "client", feature = "tokio"))]
#[path = "common/mock_api.rs"]
mod mock_api;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use http::{Method, Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{service_fn, ServiceBuilder};
use wechat_push::Message;

async fn serve_axum(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// The three pushes of the issue: a plaintext XML push, a safe-mode JSON push, and an
/// encrypted passive reply, each checked against the vectors.
async fn exercise(addr: SocketAddr) {
    let case = Case::new(0);
    let xml = case.format("xml");
    let json = case.format("json");

    // Plaintext XML push → clear passive reply.
    let (status, headers, body) = send(
        addr,
        Method::POST,
        &format!("/wechat?{}", case.plain_query()),
        s(xml, "plaintext"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/xml");
    assert_eq!(headers["content-length"], body.len().to_string().as_str());
    assert_eq!(
        body,
        format!(
            "<xml><ToUserName><![CDATA[o9AgO5Kd5ggOC-bXrbNODIiE3bGY]]></ToUserName><FromUserName><![CDATA[gh_97417a04a28d]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content></xml>",
            case.timestamp()
        )
    );

    // Safe-mode JSON push → sealed JSON reply that opens to the expected document.
    let (status, headers, body) = send(
        addr,
        Method::POST,
        &format!("/wechat?{}", s(json, "query")),
        s(json, "request_body_safe"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let opened = case.open_sealed_reply("json", &body);
    assert_eq!(
        opened,
        format!(
            r#"{{"ToUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","FromUserName":"gh_97417a04a28d","CreateTime":{},"MsgType":"text","Content":"hello"}}"#,
            case.timestamp()
        )
    );

    // Safe-mode XML push → sealed XML reply.
    let (status, _, body) = send(
        addr,
        Method::POST,
        &format!("/wechat?{}", s(xml, "query")),
        s(xml, "request_body_safe"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("<xml>\n<Encrypt><![CDATA["), "{body}");

    // The handshake, a bad signature, and another method.
    let (status, _, body) = send(
        addr,
        Method::GET,
        &format!("/wechat?{}&echostr=4375120948345356249", case.plain_query()),
        "",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "4375120948345356249")
    );
    let (status, _, _) = send(
        addr,
        Method::POST,
        &format!("/wechat?{}", plain_query("nottoken", "1714200000", "1")),
        s(xml, "plaintext"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, headers, _) = send(
        addr,
        Method::PUT,
        &format!("/wechat?{}", case.plain_query()),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, POST");
}

/// Streams a 2 MiB chunked body on a raw connection; the answer must be 413, sent before the
/// body is finished.
async fn streamed_two_mib_gets_413(addr: SocketAddr) {
    let case = Case::new(0);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /wechat?{} HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\n\r\n",
        case.plain_query()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0usize;
        for _ in 0..32 {
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            if write.write_all(&framed).await.is_err() {
                break; // the server stopped reading: fine
            }
            sent += chunk.len();
        }
        let _ = write.write_all(b"0\r\n\r\n").await;
        sent
    });
    let mut answer = vec![0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), read.read_exact(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");
    let _ = writer.await;
}

#[tokio::test]
async fn hyper_server() {
    let case = Case::new(0);
    let svc = ServiceBuilder::new().layer(case.layer()).service_fn(echo);
    let addr = serve_hyper(svc).await;
    exercise(addr).await;
    streamed_two_mib_gets_413(addr).await;
    // Still answering after the oversized body.
    exercise(addr).await;
}

#[tokio::test]
async fn axum_router_with_tower_http_layers_outside() {
    use axum::routing::get;
    use tower_http::timeout::TimeoutLayer;
    use tower_http::trace::TraceLayer;

    let case = Case::new(0);
    let wechat = case.layer().layer(service_fn(echo));
    let app = axum::Router::new()
        .route_service("/wechat", wechat)
        .route("/health", get(|| async { "ok" }))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(5),
        ))
        .layer(TraceLayer::new_for_http());
    let addr = serve_axum(app).await;
    exercise(addr).await;
    streamed_two_mib_gets_413(addr).await;
    exercise(addr).await;
    let (status, _, body) = send(addr, Method::GET, "/health", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (status, _, _) = send(addr, Method::POST, "/elsewhere", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A handler in axum that reads the verified query from the extensions.
#[tokio::test]
async fn axum_handler_sees_push_info() {
    let case = Case::new(0);
    let handler = service_fn(|req: Request<Message>| async move {
        let info = req.extensions().get::<wechat_push::PushInfo>().unwrap();
        Ok::<_, Infallible>(wechat_push::Reply::text(format!(
            "{} {}",
            info.query().openid().unwrap_or("-"),
            info.is_encrypted()
        )))
    });
    let app = axum::Router::new().route_service("/wechat", case.layer().layer(handler));
    let addr = serve_axum(app).await;
    let xml = case.format("xml");
    let (status, _, body) = send(
        addr,
        Method::POST,
        &format!("/wechat?{}", s(xml, "query")),
        s(xml, "request_body_safe"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let opened = case.open_sealed_reply("xml", &body);
    assert!(
        opened.contains("o9AgO5Kd5ggOC-bXrbNODIiE3bGY true"),
        "{opened}"
    );
}

/// docs/examples.md, `customer_service`, retries: a push delivered three times causes one
/// `custom/send` in all and every delivery is answered 200; here with a fresh query each time: a
/// new `timestamp` and `nonce`, so new signatures, around byte-identical bodies. Against the
/// `customer_service` example's own server (dedupe and the 4 s deadline on, as it ships) and a
/// loopback mock of the WeChat API.
#[cfg(all(feature = "client", feature = "tokio"))]
mod retried_with_a_fresh_query {
    use std::collections::HashMap;
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::common::{plain_query, s, send, Case};
    use super::example;
    use super::mock_api::{standard, Mock, SEND};
    use http::{Method, StatusCode};
    use tokio::net::TcpListener;
    use wechat_push::{crypto, signature};

    const OPENID: &str = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY";

    /// Three deliveries' `timestamp`s (within the default tolerance of now, one distinct
    /// second each) and `nonce`s.
    fn fresh_queries() -> [(String, &'static str); 3] {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        [
            ((now - 60).to_string(), "415670741"),
            ((now - 30).to_string(), "1514711492"),
            (now.to_string(), "846135702"),
        ]
    }

    /// Delivers `body` with each query of `queries` to the example started against `mock`,
    /// stops the server (which waits for its pending sends) and answers what the three
    /// deliveries got.
    async fn deliver(mock: &Mock, queries: &[String; 3], body: &str) -> Vec<(StatusCode, String)> {
        assert!(
            queries[0] != queries[1] && queries[1] != queries[2] && queries[0] != queries[2],
            "fresh queries: {queries:#?}"
        );
        let case = Case::new(0);
        let env: HashMap<&str, String> = HashMap::from([
            ("BIND", "127.0.0.1:0".to_owned()),
            ("WECHAT_TOKEN", case.token().to_owned()),
            ("WECHAT_APPID", case.appid().to_owned()),
            (
                "WECHAT_ENCODING_AES_KEY",
                s(&case.v, "encoding_aes_key").to_owned(),
            ),
            ("WECHAT_APP_SECRET", "SECRET".to_owned()),
            ("WECHAT_API_BASE", mock.base()),
        ]);
        let config = example::configure(|name| env.get(name).cloned()).unwrap();
        let listener = TcpListener::bind(config.bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(example::serve(listener, config, async move {
            let _ = stopped.await;
        }));
        let mut answers = Vec::new();
        for query in queries {
            let (status, _, text) =
                send(addr, Method::POST, &format!("/wechat?{query}"), body).await;
            answers.push((status, text));
        }
        // The example queues the push and sends from a worker: wait for the send (and a
        // moment more for a second one) before stopping, which takes no queued work.
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while mock.count(SEND) == 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let _ = stop.send(());
        tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
        answers
    }

    fn all_success(answers: &[(StatusCode, String)]) -> bool {
        answers
            .iter()
            .all(|(status, body)| *status == StatusCode::OK && body == "success")
    }

    /// The exact `custom/send` body echoing `content` to [`OPENID`].
    fn text_send(content: &str) -> String {
        format!(r#"{{"touser":"{OPENID}","msgtype":"text","text":{{"content":"{content}"}}}}"#)
    }

    #[tokio::test]
    async fn a_plaintext_push_causes_one_send() {
        let mock = Mock::start(standard).await;
        let token = Case::new(0).token().to_owned();
        let queries = fresh_queries().map(|(ts, nonce)| plain_query(&token, &ts, nonce));
        let body = format!(
            "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName><CreateTime>1714200000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[fresh query, plaintext]]></Content><MsgId>24567213810038001</MsgId></xml>"
        );
        let answers = deliver(&mock, &queries, &body).await;
        assert!(all_success(&answers), "{answers:?}");
        let sends = mock.requests(SEND);
        assert_eq!(sends.len(), 1, "one send in all: {sends:#?}");
        assert_eq!(sends[0].text(), text_send("fresh query, plaintext"));
    }

    #[tokio::test]
    async fn a_safe_mode_push_causes_one_send() {
        let mock = Mock::start(standard).await;
        let case = Case::new(0);
        let plaintext = format!(
            r#"{{"ToUserName":"gh_97417a04a28d","FromUserName":"{OPENID}","CreateTime":1714200000,"MsgType":"text","Content":"fresh query, safe mode","MsgId":24567213810038002}}"#
        );
        // One encryption: the three bodies are the same bytes; only the query is re-signed.
        let encrypt = crypto::encrypt(&case.key(), plaintext.as_bytes(), case.appid()).unwrap();
        let body = format!(r#"{{"ToUserName":"gh_97417a04a28d","Encrypt":"{encrypt}"}}"#);
        let queries = fresh_queries().map(|(ts, nonce)| {
            let msg_signature = signature::sign_message(case.token(), &ts, nonce, &encrypt);
            format!(
                "{}&openid={OPENID}&encrypt_type=aes&msg_signature={msg_signature}",
                plain_query(case.token(), &ts, nonce)
            )
        });
        let answers = deliver(&mock, &queries, &body).await;
        assert!(all_success(&answers), "{answers:?}");
        let sends = mock.requests(SEND);
        assert_eq!(sends.len(), 1, "one send in all: {sends:#?}");
        assert_eq!(sends[0].text(), text_send("fresh query, safe mode"));
    }
}
