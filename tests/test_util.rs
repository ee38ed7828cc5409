//! The test kit (`wechat_push::test`, feature `test-util`): the pushes it builds are the ones
//! WeChat sends (checked against the vectors and an independent sealer), a real layer on
//! loopback accepts them in every mode, and it opens the layer's sealed replies.

mod common;

use std::convert::Infallible;

use common::*;
use http::{Method, Request, StatusCode};
use tower::{service_fn, ServiceExt};
use wechat_push::test::Push;
use wechat_push::{crypto::KeyId, EncodingAesKey, Format, Message, Reply, WechatLayer};

const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const APPID: &str = "wx1234567890abcdef";

fn key() -> EncodingAesKey {
    EncodingAesKey::new(KEY).unwrap()
}

#[test]
fn a_plaintext_push_is_the_vectors_request() {
    let case = Case::new(0);
    for format in ["xml", "json"] {
        let document = s(case.format(format), "plaintext");
        let push = Push::new(case.token())
            .unwrap()
            .timestamp(case.timestamp())
            .nonce(case.nonce())
            .document(document.to_owned());
        assert_eq!(push.query(), case.plain_query());
        assert_eq!(push.body(), document.as_bytes());
        let request = push.request();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(
            request.uri().to_string(),
            format!("/wechat?{}", case.plain_query())
        );
        let (message, info) = push.open().unwrap();
        assert_eq!(message.msg_id(), Some(24567213810038956));
        assert!(info.format().content_type().ends_with(format));
        assert!(!info.is_encrypted());
    }
}

/// The sealed body opens with the reference AES code, and `msg_signature` is the reference
/// SHA-1 over the sorted strings.
#[test]
fn a_safe_mode_push_opens_with_an_independent_implementation() {
    for format in [Format::Xml, Format::Json] {
        let push = Push::new("Token123abc")
            .unwrap()
            .encrypted(key(), APPID)
            .unwrap()
            .format(format)
            .timestamp(1714200000)
            .nonce("42")
            .text("你好 ]]> \"quoted\"")
            .msg_id(9);
        let body = String::from_utf8(push.body().to_vec()).unwrap();
        let encrypt = match format {
            Format::Xml => xml_field(&body, "Encrypt").unwrap().to_owned(),
            Format::Json => serde_json::from_str::<serde_json::Value>(&body).unwrap()["Encrypt"]
                .as_str()
                .unwrap()
                .to_owned(),
        };
        let clear = reference_decrypt(KEY, &encrypt, APPID).unwrap();
        assert_eq!(clear.as_bytes(), push.message_document());
        let signature = reference_sign(&["Token123abc", "1714200000", "42", &encrypt]);
        assert!(
            push.query()
                .ends_with(&format!("&encrypt_type=aes&msg_signature={signature}")),
            "{}",
            push.query()
        );
        let (message, info) = push.open().unwrap();
        assert_eq!(info.key(), Some(KeyId::Current));
        assert_eq!(info.format(), format);
        assert_eq!(info.query().openid(), Some("o_test_openid"));
        assert_eq!(message.to_user(), "gh_test");
        assert_eq!(message.msg_id(), Some(9));
        match message.kind() {
            wechat_push::message::Kind::Text { content, .. } => {
                assert_eq!(content, "你好 ]]> \"quoted\"")
            }
            other => panic!("{other:?}"),
        }
    }
}

async fn echo_typed(req: Request<Message>) -> Result<Reply, Infallible> {
    echo(req).await
}

/// Every mode against a real layer served on loopback: the layer takes the push and the kit
/// opens the sealed reply.
#[tokio::test]
async fn a_real_layer_accepts_every_kind_of_push_and_the_kit_opens_its_replies() {
    let layer = WechatLayer::new("Token123abc")
        .unwrap()
        .encryption(key(), APPID)
        .unwrap();
    let addr = serve_hyper(layer.layer(service_fn(echo_typed))).await;
    for sealed in [false, true] {
        for format in [Format::Xml, Format::Json] {
            let mut push = Push::new("Token123abc")
                .unwrap()
                .format(format)
                .text("ping");
            if sealed {
                push = push.encrypted(key(), APPID).unwrap();
            }
            let body = String::from_utf8(push.body().to_vec()).unwrap();
            let path = push.request().uri().to_string();
            let (status, _, reply) = send(addr, Method::POST, &path, &body).await;
            assert_eq!(status, StatusCode::OK, "{sealed} {format:?}: {reply}");
            let document = if sealed {
                push.open_reply(reply.as_bytes()).unwrap()
            } else {
                assert!(push.open_reply(reply.as_bytes()).is_err());
                reply
            };
            let content = match format {
                Format::Xml => xml_field(&document, "Content").map(str::to_owned),
                Format::Json => serde_json::from_str::<serde_json::Value>(&document).unwrap()
                    ["Content"]
                    .as_str()
                    .map(str::to_owned),
            };
            assert_eq!(content.as_deref(), Some("ping"), "{document}");
        }
    }
}

#[tokio::test]
async fn the_request_goes_through_a_layer_in_process() {
    let layer = WechatLayer::new("Token123abc").unwrap();
    let push = Push::new("Token123abc").unwrap().event("subscribe");
    let response = layer
        .layer(service_fn(|req: Request<Message>| async move {
            assert_eq!(req.body().event_name(), Some("subscribe"));
            Ok::<_, Infallible>(Reply::Empty)
        }))
        .oneshot(push.request())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_string(response.into_body()).await, "");
}

#[tokio::test]
async fn the_handshake_is_answered_for_the_right_token_only() {
    let svc = WechatLayer::new("Token123abc")
        .unwrap()
        .layer(service_fn(must_not_be_called));
    let right = Push::new("Token123abc").unwrap().handshake("e c/ho");
    let response = svc.clone().oneshot(right).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_string(response.into_body()).await, "e c/ho");
    let wrong = Push::new("OtherToken1").unwrap().handshake("echo");
    let response = svc.oneshot(wrong).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn a_stale_push_is_refused_as_the_layer_would() {
    let push = Push::new("Token123abc").unwrap().timestamp(1);
    // `open` checks with the push's own clock: it opens.
    assert!(push.open().is_ok());
    // A layer on the system clock refuses it.
    let refused = WechatLayer::new("Token123abc")
        .unwrap()
        .layer(service_fn(must_not_be_called));
    let response = block_on(refused.oneshot(push.request())).unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn a_reply_that_is_not_sealed_for_the_push_does_not_open() {
    let push = Push::new("Token123abc")
        .unwrap()
        .encrypted(key(), APPID)
        .unwrap();
    let other = Push::new("OtherToken1")
        .unwrap()
        .encrypted(key(), APPID)
        .unwrap();
    // A reply sealed by the layer for `other`'s Token has the wrong MsgSignature for `push`.
    let endpoint = other.endpoint();
    let query = other.query();
    let wechat_push::Verified::Push(query) = endpoint.check(&Method::POST, Some(&query)).unwrap()
    else {
        panic!("not a push")
    };
    let body = other.body();
    let opened = endpoint.open(query, &body).unwrap();
    let answer = endpoint
        .answer(opened.reply_to(), &Reply::text("x"))
        .unwrap();
    assert!(other.open_reply(answer.body()).unwrap().contains("x"));
    let error = push.open_reply(answer.body()).unwrap_err();
    assert!(error.to_string().contains("MsgSignature"), "{error}");
    assert!(push.open_reply(b"success").is_err());
    assert!(push.open_reply(b"\xff").is_err());
}

#[test]
fn debug_does_not_show_the_token() {
    let push = Push::new("SecretToken77")
        .unwrap()
        .encrypted(key(), APPID)
        .unwrap();
    let debug = format!("{push:?}");
    assert!(!debug.contains("SecretToken77"), "{debug}");
    assert!(!debug.contains(KEY), "{debug}");
}

#[test]
fn a_bad_token_or_app_id_is_a_config_error() {
    assert!(Push::new("no").is_err());
    assert!(Push::new("Token123abc")
        .unwrap()
        .encrypted(key(), "")
        .is_err());
}

#[test]
fn paths_and_nonces_are_percent_encoded() {
    let push = Push::new("Token123abc")
        .unwrap()
        .path("wechat/a b")
        .nonce("n o&n=ce");
    let uri = push.request().uri().clone();
    assert_eq!(uri.path(), "/wechat/a%20b");
    assert!(push.open().is_ok(), "the signed nonce is the decoded one");
    assert!(uri.query().unwrap().contains("nonce=n%20o%26n%3Dce"));
}
