//! The layer behind real servers on 127.0.0.1, driven by a real HTTP client: hyper 1 through
//! `TowerToHyperService`, and axum with tower-http layers outside.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use http::{Method, Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{service_fn, ServiceBuilder};
use wechat_push::{crypto, signature, Message};

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
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let encrypt = v["Encrypt"].as_str().unwrap();
    let ts = v["TimeStamp"].as_u64().unwrap().to_string();
    assert!(signature::verify_message(
        v["MsgSignature"].as_str().unwrap(),
        case.token(),
        &ts,
        v["Nonce"].as_str().unwrap(),
        encrypt
    ));
    let opened = crypto::decrypt(&case.key(), encrypt, case.appid()).unwrap();
    assert_eq!(
        opened.as_str(),
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
    let (encrypt, ..) = {
        let inner = body
            .split("<Encrypt><![CDATA[")
            .nth(1)
            .unwrap()
            .split("]]>")
            .next()
            .unwrap()
            .to_owned();
        (inner, ())
    };
    let opened = crypto::decrypt(&case.key(), &encrypt, case.appid()).unwrap();
    assert!(
        opened
            .as_str()
            .contains("o9AgO5Kd5ggOC-bXrbNODIiE3bGY true"),
        "{}",
        opened.as_str()
    );
}
