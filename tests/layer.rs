//! The layer against every row of docs/examples.md's answer table, driven with `oneshot` (no server). Handlers that
//! panic prove each short-circuit.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use wechat_push::clock::FixedClock;
use wechat_push::crypto;
use wechat_push::message::Kind;
use wechat_push::{signature, Message, PushInfo, Rejection, Reply, WechatLayer};

#[tokio::test]
async fn handshake_echoes_echostr_without_calling_the_handler() {
    let v = vectors();
    let case = &v["signature_cases"][0];
    let now: u64 = s(case, "timestamp").parse().unwrap();
    let svc = WechatLayer::new(s(case, "token"))
        .unwrap()
        .clock(FixedClock::at_unix(now))
        .layer(service_fn(must_not_be_called));
    let res = svc
        .oneshot(request(Method::GET, s(case, "query"), ""))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        res.headers().get(header::CONTENT_LENGTH),
        None,
        "set by the server from size_hint"
    );
    assert_eq!(
        body_string(res.into_body()).await,
        s(case, "expected_response_body")
    );
}

#[tokio::test]
async fn handshake_with_uppercase_signature_and_percent_encoding() {
    let v = vectors();
    let case = &v["signature_cases"][0];
    let now: u64 = s(case, "timestamp").parse().unwrap();
    let svc = WechatLayer::new(s(case, "token"))
        .unwrap()
        .clock(FixedClock::at_unix(now))
        .layer(service_fn(must_not_be_called));
    let query = format!(
        "signature={}&timestamp={}&nonce={}&echostr=a%2Bb%20c",
        s(case, "signature_uppercase"),
        s(case, "timestamp"),
        s(case, "nonce")
    );
    let res = svc.oneshot(request(Method::GET, &query, "")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_string(res.into_body()).await, "a+b c");
}

async fn rejected(
    svc_layer: WechatLayer,
    req: Request<http_body_util::Full<Bytes>>,
) -> (StatusCode, Rejection, String) {
    let res = svc_layer
        .layer(service_fn(must_not_be_called))
        .oneshot(req)
        .await
        .unwrap();
    let status = res.status();
    let rejection = res
        .extensions()
        .get::<Rejection>()
        .cloned()
        .expect("a Rejection extension");
    assert_eq!(rejection.status(), status);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    let body = body_string(res.into_body()).await;
    assert_eq!(body, rejection.to_string());
    (status, rejection, body)
}

#[tokio::test]
async fn missing_or_wrong_signature_is_401() {
    let case = Case::new(0);
    let ts = case.timestamp().to_string();
    let good = case.plain_query();
    let wrong = plain_query("OtherToken", &ts, case.nonce());
    let missing = [
        format!("timestamp={ts}&nonce=1"),
        "signature=00&nonce=1".to_owned(),
        format!("signature=00&timestamp={ts}"),
        String::new(),
    ];
    for method in [Method::GET, Method::POST] {
        for query in &missing {
            let (status, rejection, _) =
                rejected(case.layer(), request(method.clone(), query, "")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{query}");
            assert!(matches!(rejection, Rejection::MissingSignature(_)));
        }
        let (status, rejection, body) = rejected(
            case.layer(),
            request(method.clone(), &format!("{wrong}&echostr=1"), "<xml/>"),
        )
        .await;
        assert_eq!(
            (status, rejection),
            (StatusCode::UNAUTHORIZED, Rejection::BadSignature)
        );
        assert_eq!(body, "bad signature");
        // Truncated and altered signatures.
        let altered = good.replacen("signature=", "signature=0", 1);
        let (status, _, _) = rejected(case.layer(), request(method.clone(), &altered, "")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn timestamp_outside_tolerance_is_401_naming_it() {
    let case = Case::new(0);
    let ts = case.timestamp();
    for (now, fresh) in [
        (ts + 300, true),
        (ts - 300, true),
        (ts + 301, false),
        (ts - 301, false),
    ] {
        let layer = case.layer().clock(FixedClock::at_unix(now));
        let query = format!("{}&echostr=42", case.plain_query());
        let svc = layer.layer(service_fn(must_not_be_called));
        let res = svc.oneshot(request(Method::GET, &query, "")).await.unwrap();
        if fresh {
            assert_eq!(res.status(), StatusCode::OK, "now={now}");
        } else {
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "now={now}");
            let body = body_string(res.into_body()).await;
            assert!(
                body.contains(&ts.to_string()) && body.contains("timestamp"),
                "{body}"
            );
        }
    }
    // Configurable, and switchable off.
    let layer = case
        .layer()
        .clock(FixedClock::at_unix(ts + 3600))
        .timestamp_tolerance(Some(Duration::from_secs(4000)));
    let res = layer
        .layer(service_fn(must_not_be_called))
        .oneshot(request(
            Method::GET,
            &format!("{}&echostr=1", case.plain_query()),
            "",
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let layer = case
        .layer()
        .clock(FixedClock::at_unix(0))
        .timestamp_tolerance(None);
    let res = layer
        .layer(service_fn(must_not_be_called))
        .oneshot(request(
            Method::GET,
            &format!("{}&echostr=1", case.plain_query()),
            "",
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let case = Case::new(0);
    let q = case.plain_query();
    for body in [
        "",
        "not xml",
        "<xml><ToUserName>a</ToUserName>",
        "{\"ToUserName\":",
        "<html></html>",
        "[1,2]",
        "\u{feff}",
    ] {
        let (status, rejection, _) = rejected(case.layer(), request(Method::POST, &q, body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert!(
            matches!(rejection, Rejection::Malformed(_)),
            "{body:?}: {rejection:?}"
        );
    }
}

#[tokio::test]
async fn undecryptable_or_foreign_encrypt_is_400() {
    let v = vectors();
    let case = Case::new(0);
    // Another AppID: the vectors' appid_mismatch case is signed correctly.
    let neg = &v["negative_cases"][0];
    let layer = WechatLayer::new(s(neg, "token"))
        .unwrap()
        .encryption(
            wechat_push::EncodingAesKey::new(s(neg, "encoding_aes_key")).unwrap(),
            s(neg, "configured_appid"),
        )
        .unwrap()
        .timestamp_tolerance(None);
    let query = format!(
        "{}&encrypt_type=aes&msg_signature={}",
        plain_query(s(neg, "token"), s(neg, "timestamp"), s(neg, "nonce")),
        s(neg, "msg_signature")
    );
    let (status, rejection, body) = rejected(
        layer,
        request(Method::POST, &query, s(neg, "request_body_safe").to_owned()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        rejection,
        Rejection::Decrypt(crypto::DecryptError::AppIdMismatch)
    );
    assert!(body.contains("AppID"), "{body}");

    // Correctly signed garbage: does not decrypt.
    for encrypt in ["AAAA", "not base64!", "QUJD", &"A".repeat(44)] {
        let ts = case.timestamp().to_string();
        let msg_sig = signature::sign_message(case.token(), &ts, case.nonce(), encrypt);
        let query = format!(
            "{}&encrypt_type=aes&msg_signature={msg_sig}",
            case.plain_query()
        );
        let body = format!("<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
        let (status, rejection, _) =
            rejected(case.layer(), request(Method::POST, &query, body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{encrypt}");
        assert!(matches!(rejection, Rejection::Decrypt(_)), "{rejection:?}");
    }
}

#[tokio::test]
async fn msg_signature_is_checked_before_decrypting() {
    let v = vectors();
    let case = Case::new(0);
    for neg in &v["negative_cases"].as_array().unwrap()[1..3] {
        let query = format!(
            "{}&encrypt_type=aes&msg_signature={}",
            plain_query(s(neg, "token"), s(neg, "timestamp"), s(neg, "nonce")),
            s(neg, "msg_signature")
        );
        let (status, rejection, _) = rejected(
            case.layer(),
            request(Method::POST, &query, s(neg, "request_body_safe").to_owned()),
        )
        .await;
        assert_eq!(
            (status, rejection),
            (StatusCode::UNAUTHORIZED, Rejection::BadMsgSignature)
        );
    }
    // Encrypt in the body but no msg_signature in the query.
    let xml = case.format("xml");
    let (status, rejection, _) = rejected(
        case.layer(),
        request(
            Method::POST,
            &case.plain_query(),
            s(xml, "request_body_safe").to_owned(),
        ),
    )
    .await;
    assert_eq!(
        (status, rejection),
        (StatusCode::UNAUTHORIZED, Rejection::MissingMsgSignature)
    );
}

#[tokio::test]
async fn encryption_modes() {
    let case = Case::new(0);
    let xml = case.format("xml");
    // encrypt_type=aes without a configured key.
    let plain_only = WechatLayer::new(case.token())
        .unwrap()
        .clock(FixedClock::at_unix(case.timestamp()));
    let (status, rejection, _) = rejected(
        plain_only,
        request(
            Method::POST,
            s(xml, "query"),
            s(xml, "request_body_safe").to_owned(),
        ),
    )
    .await;
    assert_eq!(
        (status, rejection),
        (StatusCode::BAD_REQUEST, Rejection::EncryptionNotConfigured)
    );
    // encrypt_type=aes, plaintext body.
    let (status, rejection, _) = rejected(
        case.layer(),
        request(
            Method::POST,
            s(xml, "query"),
            s(xml, "plaintext").to_owned(),
        ),
    )
    .await;
    assert_eq!(
        (status, rejection),
        (StatusCode::BAD_REQUEST, Rejection::MissingEncrypt)
    );
    // require_encryption refuses plaintext pushes.
    let (status, rejection, _) = rejected(
        case.layer().require_encryption(true),
        case.plain_push("xml"),
    )
    .await;
    assert_eq!(
        (status, rejection),
        (StatusCode::UNAUTHORIZED, Rejection::EncryptionRequired)
    );
    // ... but takes encrypted ones.
    let svc = case
        .layer()
        .require_encryption(true)
        .layer(service_fn(echo));
    let res = svc
        .oneshot(request(
            Method::POST,
            s(xml, "query"),
            s(xml, "request_body_safe").to_owned(),
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let case = Case::new(0);
    for method in [
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
    ] {
        let (status, rejection, _) = rejected(
            case.layer(),
            request(method.clone(), &case.plain_query(), ""),
        )
        .await;
        assert_eq!(
            (status, rejection),
            (StatusCode::METHOD_NOT_ALLOWED, Rejection::MethodNotAllowed)
        );
        let res = case
            .layer()
            .layer(service_fn(must_not_be_called))
            .oneshot(request(method, "", ""))
            .await
            .unwrap();
        assert_eq!(res.headers()[header::ALLOW], "GET, POST");
    }
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let case = Case::new(0);
    let xml = case.format("xml");
    let body = s(xml, "plaintext").to_owned();
    let len = body.len();
    // Exactly at the limit passes; one byte less of limit is refused.
    let svc = case.layer().body_limit(len).layer(service_fn(echo));
    assert_eq!(
        svc.oneshot(request(Method::POST, &case.plain_query(), body.clone()))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (status, rejection, _) = rejected(
        case.layer().body_limit(len - 1),
        request(Method::POST, &case.plain_query(), body),
    )
    .await;
    assert_eq!(
        (status, rejection),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::BodyTooLarge { limit: len - 1 }
        )
    );
    // A Content-Length over the limit: refused before any of the body is polled.
    let mut req = case.plain_post(PanicBody);
    req.headers_mut()
        .insert(header::CONTENT_LENGTH, "2000000".parse().unwrap());
    let res = case
        .layer()
        .layer(service_fn(must_not_be_called))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A streamed body: refused when it crosses the limit, the rest never polled.
    let polled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let body = CountingBody {
        frames: (0..6)
            .map(|_| Bytes::from(vec![b' '; 400 * 1024]))
            .collect(),
        polled: polled.clone(),
    };
    let req = case.plain_post(body);
    let res = case
        .layer()
        .layer(service_fn(must_not_be_called))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        polled.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "stopped at the frame that crossed 1 MiB"
    );
}

#[tokio::test]
async fn a_push_split_across_frames_reads_as_one() {
    let case = Case::new(0);
    for format in ["xml", "json"] {
        let whole = Bytes::from(s(case.format(format), "plaintext").to_owned());
        let one = case
            .layer()
            .layer(service_fn(echo))
            .oneshot(case.plain_push(format))
            .await
            .unwrap();
        assert_eq!(one.status(), StatusCode::OK);
        let expected = body_string(one.into_body()).await;
        // Empty frames, single bytes and larger pieces, in that order.
        let mut frames = std::collections::VecDeque::from([Bytes::new()]);
        let (head, rest) = whole.split_at(3);
        frames.extend(head.iter().map(|&b| Bytes::copy_from_slice(&[b])));
        frames.push_back(Bytes::new());
        frames.extend(rest.chunks(17).map(Bytes::copy_from_slice));
        let body = CountingBody {
            frames,
            polled: Default::default(),
        };
        let split = case
            .layer()
            .layer(service_fn(echo))
            .oneshot(case.plain_post(body))
            .await
            .unwrap();
        assert_eq!(split.status(), StatusCode::OK, "{format}");
        assert_eq!(body_string(split.into_body()).await, expected, "{format}");
    }
}

/// A body that panics when polled: proves the layer never read it.
struct PanicBody;

impl http_body::Body for PanicBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        panic!("the body must not be read")
    }
}

/// A body of data frames that counts how many were polled.
struct CountingBody {
    frames: std::collections::VecDeque<Bytes>,
    polled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl http_body::Body for CountingBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.polled
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::task::Poll::Ready(
            self.frames
                .pop_front()
                .map(|b| Ok(http_body::Frame::data(b))),
        )
    }
}

/// A body that fails.
struct ErrBody;

impl http_body::Body for ErrBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::other("connection reset"))))
    }
}

#[tokio::test]
async fn valid_pushes_reach_the_handler_with_request_parts_and_push_info() {
    let case = Case::new(0);
    for format in ["xml", "json"] {
        let f = case.format(format);
        for (query, body, encrypted) in [
            (case.plain_query(), s(f, "plaintext"), false),
            (s(f, "query").to_owned(), s(f, "request_body_safe"), true),
            (
                s(f, "query").to_owned(),
                s(f, "request_body_compatible"),
                true,
            ),
        ] {
            let handler = service_fn(move |req: Request<Message>| async move {
                assert_eq!(req.method(), Method::POST);
                assert_eq!(req.uri().path(), "/wechat");
                assert_eq!(req.headers()["x-test"], "kept");
                assert_eq!(req.extensions().get::<&str>(), Some(&"ext"));
                let info = req.extensions().get::<PushInfo>().expect("PushInfo");
                assert_eq!(info.is_encrypted(), encrypted);
                assert_eq!(info.query().timestamp(), "1714200000");
                let Kind::Text { content, .. } = req.body().kind() else {
                    panic!("text expected")
                };
                assert_eq!(content, "hello");
                assert_eq!(req.body().msg_id(), Some(24567213810038956));
                Ok::<_, Infallible>(Reply::Success)
            });
            let mut req = request(Method::POST, &query, body.to_owned());
            req.headers_mut().insert("x-test", "kept".parse().unwrap());
            req.extensions_mut().insert("ext");
            let res = case.layer().layer(handler).oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{format} {body}");
            assert_eq!(body_string(res.into_body()).await, "success");
        }
    }
}

#[tokio::test]
async fn replies_are_encoded_in_the_push_format_and_sealed_when_encrypted() {
    let case = Case::new(0);
    for format in ["xml", "json"] {
        let f = case.format(format);
        // Plaintext push: clear reply, addressed back.
        let res = case
            .layer()
            .layer(service_fn(echo))
            .oneshot(case.plain_push(format))
            .await
            .unwrap();
        let ctype = res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            ctype,
            if format == "xml" {
                "application/xml"
            } else {
                "application/json"
            }
        );
        let body = body_string(res.into_body()).await;
        let reply = if format == "xml" {
            Message::from_xml(body.as_bytes())
        } else {
            Message::from_json(body.as_bytes())
        }
        .unwrap();
        assert_eq!(reply.to_user(), "o9AgO5Kd5ggOC-bXrbNODIiE3bGY");
        assert_eq!(reply.from_user(), "gh_97417a04a28d");
        assert_eq!(reply.create_time(), case.timestamp());
        assert!(matches!(reply.kind(), Kind::Text { content, .. } if content == "hello"));

        // Encrypted push: sealed reply that verifies and opens with the same key.
        let res = case
            .layer()
            .layer(service_fn(echo))
            .oneshot(request(
                Method::POST,
                s(f, "query"),
                s(f, "request_body_safe").to_owned(),
            ))
            .await
            .unwrap();
        let body = body_string(res.into_body()).await;
        let sealed = sealed_envelope(format, &body).unwrap();
        assert_eq!(sealed.timestamp, case.timestamp().to_string());
        let opened = case.open_sealed_reply(format, &body);
        let reply = if format == "xml" {
            Message::from_xml(opened.as_bytes())
        } else {
            Message::from_json(opened.as_bytes())
        }
        .unwrap();
        assert!(matches!(reply.kind(), Kind::Text { content, .. } if content == "hello"));
        assert_eq!(reply.to_user(), "o9AgO5Kd5ggOC-bXrbNODIiE3bGY");
    }
}

#[tokio::test]
async fn acknowledgements_are_never_encrypted() {
    let case = Case::new(0);
    let f = case.format("xml");
    for (reply, expected) in [(Reply::Success, "success"), (Reply::Empty, "")] {
        let handler = service_fn(move |_: Request<Message>| {
            let reply = reply.clone();
            async move { Ok::<_, Infallible>(reply) }
        });
        let res = case
            .layer()
            .layer(handler)
            .oneshot(request(
                Method::POST,
                s(f, "query"),
                s(f, "request_body_safe").to_owned(),
            ))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body_string(res.into_body()).await, expected);
    }
    // A handler returning () answers success.
    let handler = service_fn(|_: Request<Message>| async { Ok::<(), Infallible>(()) });
    let res = case
        .layer()
        .layer(handler)
        .oneshot(case.plain_push("xml"))
        .await
        .unwrap();
    assert_eq!(body_string(res.into_body()).await, "success");
}

#[tokio::test]
async fn handler_errors_pass_through() {
    let case = Case::new(0);
    let handler = service_fn(|_: Request<Message>| async { Err::<Reply, _>("handler failed") });
    let err = case
        .layer()
        .layer(handler)
        .oneshot(case.plain_push("xml"))
        .await
        .unwrap_err();
    assert_eq!(err, "handler failed");
}

#[tokio::test]
async fn a_concurrency_limit_inside_works() {
    let case = Case::new(0);
    let svc = ServiceBuilder::new()
        .layer(case.layer())
        .concurrency_limit(1)
        .service_fn(echo);
    let mut svc = svc;
    for _ in 0..3 {
        let req = case.plain_push("xml");
        let res = ServiceExt::<Request<http_body_util::Full<Bytes>>>::ready(&mut svc)
            .await
            .unwrap()
            .call(req)
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    // Two in flight at once: the second waits for the permit, neither panics.
    let a = svc.clone().oneshot(case.plain_push("xml"));
    let b = svc.clone().oneshot(case.plain_push("xml"));
    let (a, b) = tokio::join!(a, b);
    assert_eq!(
        (a.unwrap().status(), b.unwrap().status()),
        (StatusCode::OK, StatusCode::OK)
    );
}

#[test]
fn debug_never_shows_secrets() {
    let case = Case::new(0);
    let layer = case.layer();
    let svc = layer.clone().layer(service_fn(echo));
    for shown in [format!("{layer:?}"), format!("{svc:?}")] {
        assert!(!shown.contains(case.token()), "{shown}");
        assert!(!shown.contains(s(&case.v, "encoding_aes_key")), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}

#[test]
fn configuration_is_validated_when_built() {
    for token in ["", "ab", "has space", "x".repeat(33).as_str(), "tökën"] {
        assert!(WechatLayer::new(token).is_err(), "{token:?}");
    }
    assert!(WechatLayer::new("abc").is_ok());
    assert!(wechat_push::EncodingAesKey::new("short").is_err());
}

#[tokio::test]
async fn body_errors_are_400() {
    let case = Case::new(0);
    let req = case.plain_post(ErrBody);
    let res = case
        .layer()
        .layer(service_fn(must_not_be_called))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.extensions().get::<Rejection>(),
        Some(&Rejection::BodyRead)
    );
    let _ = res.into_body().collect().await;
}
