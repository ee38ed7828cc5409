//! Several apps behind one layer (issue 15): the app chosen per request by its path, checked
//! with its own keys; the Open Platform authoriser check; typed and pass-through modes; apps
//! added and replaced while a real server serves; dedupe and the replay guard across apps; the
//! WeCom agent check.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{body_string, must_not_be_called, plain_query, send, serve_hyper, Counter};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use tower::{service_fn, ServiceExt};
use wechat_push::apps::{App, AppName, Apps, ChooseApp};
use wechat_push::clock::FixedClock;
use wechat_push::replay::MemoryReplayStore;
use wechat_push::{
    crypto, signature, EncodingAesKey, Endpoint, Message, PushInfo, ReceiveId, Rejection, Reply,
    WechatLayer,
};

const NOW: u64 = 1714036504;
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

fn key() -> EncodingAesKey {
    EncodingAesKey::new(KEY).unwrap()
}

/// A mini program: its token, its AppID, encryption on (plaintext accepted too), the clock
/// stopped at [`NOW`].
fn mini_program(name: &str, token: &str, appid: &str) -> App {
    let endpoint = Endpoint::new(token)
        .unwrap()
        .encryption(key(), appid)
        .unwrap()
        .clock(FixedClock::at_unix(NOW));
    App::new(name, endpoint).unwrap()
}

/// The Open Platform walkthrough's push (docs/platforms.md §5 V5), copied into `tests/data`.
fn v5() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/component_v5.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The component's endpoint: its token, key and AppID, for every authoriser.
fn component() -> Endpoint {
    let v = v5();
    let now = v["timestamp"].as_u64().unwrap();
    Endpoint::new(v["token"].as_str().unwrap())
        .unwrap()
        .encryption(
            EncodingAesKey::new(v["encoding_aes_key"].as_str().unwrap()).unwrap(),
            v["component_appid"].as_str().unwrap(),
        )
        .unwrap()
        .require_encryption(true)
        .clock(FixedClock::at_unix(now))
}

/// Apps `a` and `b` (two mini programs), and two component authorisers: the walkthrough's
/// and one of the release-test accounts (docs/platforms.md §2.5).
fn apps() -> Apps {
    let v = v5();
    [
        mini_program("a", "TokenA1", "wxaaaaaaaaaaaaaaaa"),
        mini_program("b", "TokenB2", "wxbbbbbbbbbbbbbbbb"),
        App::new(v["authoriser_appid"].as_str().unwrap(), component())
            .unwrap()
            .recipient(v["authoriser_original_id"].as_str().unwrap()),
        App::new("wx570bc396a51b8ff8", component())
            .unwrap()
            .recipient("gh_3c884a361561"),
    ]
    .into_iter()
    .collect()
}

fn text_push(to: &str, msg_id: u64, content: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>\
         <CreateTime>{NOW}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
}

/// A plaintext push signed with `token`, to `path`.
fn plain(path: &str, token: &str, nonce: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post(format!(
        "{path}?{}",
        plain_query(token, &NOW.to_string(), nonce)
    ))
    .body(Full::new(Bytes::from(body.to_owned())))
    .unwrap()
}

/// A safe-mode push of `doc`, sealed with `token` and the AppID `appid`, to `path`.
fn sealed(path: &str, token: &str, appid: &str, doc: &str) -> Request<Full<Bytes>> {
    let (ts, nonce) = (NOW.to_string(), "77");
    let encrypt = crypto::encrypt(&key(), doc.as_bytes(), appid).unwrap();
    let query = format!(
        "{}&encrypt_type=aes&msg_signature={}",
        plain_query(token, &ts, nonce),
        signature::sign_message(token, &ts, nonce, &encrypt)
    );
    Request::post(format!("{path}?{query}"))
        .body(Full::new(Bytes::from(format!(
            "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ))))
        .unwrap()
}

/// The walkthrough's push, at `path_and_query` (its own by default).
fn v5_push(path_and_query: Option<&str>) -> Request<Full<Bytes>> {
    let v = v5();
    let uri = path_and_query
        .map(str::to_owned)
        .unwrap_or_else(|| v["path_and_query"].as_str().unwrap().to_owned());
    Request::post(uri)
        .body(Full::new(Bytes::from(
            v["body"].as_str().unwrap().to_owned(),
        )))
        .unwrap()
}

fn v5_at(authoriser: &str) -> String {
    let v = v5();
    let pq = v["path_and_query"].as_str().unwrap();
    pq.replacen(v["authoriser_appid"].as_str().unwrap(), authoriser, 1)
}

/// What is sent, whether to the component URL (else `/wechat/{app}`), and the refusal.
type RefusedCase = (
    &'static str,
    Request<Full<Bytes>>,
    bool,
    StatusCode,
    Rejection,
);

#[tokio::test]
async fn requests_the_chosen_app_cannot_verify_never_reach_the_handler() {
    let by_path =
        WechatLayer::apps(apps(), ChooseApp::last_segment()).layer(service_fn(must_not_be_called));
    // The Open Platform's `$APPID$` URL: `/{authoriser}/revice`.
    let component_url =
        WechatLayer::apps(apps(), ChooseApp::segment(0)).layer(service_fn(must_not_be_called));
    let push_for_a = text_push("gh_a", 1, "hi");
    let cases: Vec<RefusedCase> = vec![
        (
            "a plaintext push for a, sent to b's path",
            plain("/wechat/b", "TokenA1", "1", &push_for_a),
            false,
            StatusCode::UNAUTHORIZED,
            Rejection::BadSignature,
        ),
        (
            "a sealed push for a (a's token and AppID), sent to b's path",
            sealed("/wechat/b", "TokenA1", "wxaaaaaaaaaaaaaaaa", &push_for_a),
            false,
            StatusCode::UNAUTHORIZED,
            Rejection::BadSignature,
        ),
        (
            "an unknown app",
            plain("/wechat/zzz", "TokenA1", "1", &push_for_a),
            false,
            StatusCode::NOT_FOUND,
            Rejection::UnknownApp,
        ),
        (
            "no app at all",
            plain("/wechat/", "TokenA1", "1", &push_for_a),
            false,
            StatusCode::NOT_FOUND,
            Rejection::UnknownApp,
        ),
        (
            "a name that is not a name",
            plain("/wechat/a%2Fb", "TokenA1", "1", &push_for_a),
            false,
            StatusCode::NOT_FOUND,
            Rejection::UnknownApp,
        ),
        (
            "a GET handshake for an unknown app",
            Request::get(format!(
                "/wechat/zzz?{}&echostr=e",
                plain_query("TokenA1", &NOW.to_string(), "1")
            ))
            .body(Full::new(Bytes::new()))
            .unwrap(),
            false,
            StatusCode::NOT_FOUND,
            Rejection::UnknownApp,
        ),
        (
            "the walkthrough's push for wxba5fad812f8e6fb9, replayed at another authoriser's path",
            v5_push(Some(&v5_at("wx570bc396a51b8ff8"))),
            true,
            StatusCode::FORBIDDEN,
            Rejection::WrongRecipient,
        ),
        (
            "the walkthrough's push at an authoriser that is not configured",
            v5_push(Some(&v5_at("wx9252c5e0bb1836fc"))),
            true,
            StatusCode::NOT_FOUND,
            Rejection::UnknownApp,
        ),
    ];
    for (what, req, at_component_url, status, rejection) in cases {
        let svc = if at_component_url {
            component_url.clone()
        } else {
            by_path.clone()
        };
        let response = svc.oneshot(req).await.unwrap();
        assert_eq!(response.status(), status, "{what}");
        assert_eq!(
            response.extensions().get::<Rejection>(),
            Some(&rejection),
            "{what}"
        );
        let reason = body_string(response.into_body()).await;
        assert_eq!(reason, rejection.to_string(), "{what}");
    }
}

/// What the handler saw: the app, the message's `ToUserName`, whether it was encrypted.
type Seen = Arc<Mutex<Vec<(String, String, bool)>>>;

#[tokio::test]
async fn typed_mode_behind_axum_routes_each_app_with_its_own_keys_and_its_name_in_the_request() {
    let seen = Seen::default();
    let handler = {
        let seen = seen.clone();
        service_fn(move |req: Request<Message>| {
            let seen = seen.clone();
            async move {
                let app = req.extensions().get::<AppName>().unwrap().to_string();
                let encrypted = req.extensions().get::<PushInfo>().unwrap().is_encrypted();
                let reply = Reply::text(format!("{app} got it"));
                seen.lock()
                    .unwrap()
                    .push((app, req.body().to_user().to_owned(), encrypted));
                Ok::<_, Infallible>(reply)
            }
        })
    };
    // One axum router: `/wechat/{app}`, and the Open Platform's `/{appid}/revice`.
    let router = axum::Router::new()
        .route_service(
            "/wechat/{app}",
            WechatLayer::apps(apps(), ChooseApp::last_segment()).layer(handler.clone()),
        )
        .route_service(
            "/{appid}/revice",
            WechatLayer::apps(apps(), ChooseApp::segment(0)).layer(handler),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let component_addr = addr;

    // A plaintext push for each mini program, at its own path.
    for (app, token) in [("a", "TokenA1"), ("b", "TokenB2")] {
        let req = plain(
            &format!("/wechat/{app}"),
            token,
            "5",
            &text_push("gh_x", 9, "hi"),
        );
        let (status, body) = send_req(addr, req).await;
        assert_eq!(status, StatusCode::OK, "{app}: {body}");
        assert!(
            body.contains(&format!("<![CDATA[{app} got it]]>")),
            "{body}"
        );
    }
    // A sealed push for b: opened with b's key and AppID, the reply sealed for b.
    let req = sealed(
        "/wechat/b",
        "TokenB2",
        "wxbbbbbbbbbbbbbbbb",
        &text_push("gh_b", 10, "hi"),
    );
    let (status, body) = send_req(addr, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let encrypt = common::xml_field(&body, "Encrypt").unwrap();
    let reply = crypto::decrypt(&key(), encrypt, "wxbbbbbbbbbbbbbbbb").unwrap();
    assert!(reply.as_str().contains("b got it"), "{}", reply.as_str());
    // The walkthrough's push at its own authoriser's path: opened with the component's keys.
    let (status, body) = send_req(component_addr, v5_push(None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("a".into(), "gh_x".into(), false),
            ("b".into(), "gh_x".into(), false),
            ("b".into(), "gh_b".into(), true),
            ("wxba5fad812f8e6fb9".into(), "gh_97417a04a28d".into(), true),
        ]
    );
}

/// Sends `req` to the server on `addr` with a real client: the status and the body text.
async fn send_req(addr: SocketAddr, req: Request<Full<Bytes>>) -> (StatusCode, String) {
    let (parts, body) = req.into_parts();
    let body = body_string(body).await;
    let path = parts.uri.path_and_query().unwrap().as_str();
    let (status, _, text) = send(addr, parts.method, path, &body).await;
    (status, text)
}

#[cfg(feature = "axum")]
async fn on_push(app: AppName, msg: Message) -> Reply {
    use wechat_push::message::Kind;

    match msg.kind() {
        Kind::Text { content, .. } => Reply::text(format!("{app}: {content}")),
        _ => Reply::Success,
    }
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn pass_through_mode_behind_an_axum_route_with_the_app_in_the_path() {
    use axum::routing::post;
    use axum::Router;
    use tokio::net::TcpListener;

    let hits = Counter::default();
    let wechat = WechatLayer::apps(apps(), ChooseApp::last_segment()).pass_through();
    let router = Router::new().route(
        "/wechat/{app}",
        post({
            let hits = hits.clone();
            move |app: AppName,
                  axum::extract::Path(segment): axum::extract::Path<String>,
                  msg: Message| {
                hits.hit();
                assert_eq!(app.as_str(), segment);
                on_push(app, msg)
            }
        })
        .layer(wechat),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let (status, body) = send_req(
        addr,
        plain("/wechat/a", "TokenA1", "1", &text_push("gh_a", 1, "hi")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<![CDATA[a: hi]]>"), "{body}");
    let req = sealed(
        "/wechat/b",
        "TokenB2",
        "wxbbbbbbbbbbbbbbbb",
        &text_push("gh_b", 2, "yo"),
    );
    let (status, body) = send_req(addr, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let encrypt = common::xml_field(&body, "Encrypt").unwrap();
    let reply = crypto::decrypt(&key(), encrypt, "wxbbbbbbbbbbbbbbbb").unwrap();
    assert!(reply.as_str().contains("b: yo"), "{}", reply.as_str());
    // Refused before the handler: a's push at b, an unknown app.
    let (status, _) = send_req(
        addr,
        plain("/wechat/b", "TokenA1", "1", &text_push("gh_a", 1, "hi")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send_req(
        addr,
        plain("/wechat/zzz", "TokenA1", "1", &text_push("gh_a", 1, "hi")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(hits.get(), 2);
}

#[tokio::test]
async fn apps_added_and_replaced_while_the_server_serves() {
    let registry = apps();
    let svc = WechatLayer::apps(registry.clone(), ChooseApp::last_segment()).layer(service_fn(
        |req: Request<Message>| async move {
            let app = req.extensions().get::<AppName>().unwrap().clone();
            Ok::<_, Infallible>(Reply::text(format!("from {app}")))
        },
    ));
    let addr = serve_hyper(svc).await;
    let push = |path: &str, token: &str| plain(path, token, "3", &text_push("gh_c", 3, "hi"));

    // Not configured yet: 404.
    let (status, _) = send_req(addr, push("/wechat/c", "TokenC3")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Added while serving: the next request finds it.
    assert!(registry
        .insert(mini_program("c", "TokenC3", "wxcccccccccccccccc"))
        .is_none());
    let (status, body) = send_req(addr, push("/wechat/c", "TokenC3")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("from c"), "{body}");

    // a's Token replaced while serving: the old one is refused, the new one accepted.
    let (status, _) = send_req(addr, push("/wechat/a", "TokenA1")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(registry
        .insert(mini_program("a", "TokenA9", "wxaaaaaaaaaaaaaaaa"))
        .is_some());
    let (status, _) = send_req(addr, push("/wechat/a", "TokenA1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = send_req(addr, push("/wechat/a", "TokenA9")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Removed: 404 again, not another app's keys.
    assert!(registry.remove("c").is_some());
    let (status, _) = send_req(addr, push("/wechat/c", "TokenC3")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn dedupe_keys_are_scoped_by_app_the_same_msg_id_in_two_apps_is_handled_once_each() {
    use wechat_push::dedupe::MemoryDedupeStore;

    let calls = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let calls = calls.clone();
        service_fn(move |req: Request<Message>| {
            let calls = calls.clone();
            async move {
                let app = req.extensions().get::<AppName>().unwrap().to_string();
                calls.lock().unwrap().push(app);
                Ok::<_, Infallible>(Reply::Success)
            }
        })
    };
    // One store shared by every app.
    let svc = WechatLayer::apps(apps(), ChooseApp::last_segment())
        .dedupe(MemoryDedupeStore::new(100))
        .layer(handler);
    // The same document (same ToUserName, same MsgId) to both apps, each signed for its app.
    let doc = text_push("gh_same", 42, "hi");
    for (path, token) in [
        ("/wechat/a", "TokenA1"),
        ("/wechat/b", "TokenB2"),
        ("/wechat/a", "TokenA1"),
        ("/wechat/b", "TokenB2"),
    ] {
        let response = svc
            .clone()
            .oneshot(plain(path, token, "8", &doc))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    assert_eq!(*calls.lock().unwrap(), ["a", "b"]);
}

#[tokio::test]
async fn the_replay_guard_keys_by_the_signed_query_across_apps() {
    // Two apps whose admins gave them the same Token: a plaintext query captured for one is
    // refused at the other with another body, since the guard's store is shared and its key is
    // the signed query, not the app.
    let registry: Apps = [
        mini_program("a", "SharedTok1", "wxaaaaaaaaaaaaaaaa"),
        mini_program("b", "SharedTok1", "wxbbbbbbbbbbbbbbbb"),
    ]
    .into_iter()
    .collect();
    let hits = Counter::default();
    let svc = WechatLayer::apps(registry, ChooseApp::last_segment())
        .replay_guard(MemoryReplayStore::new(100))
        .layer(service_fn({
            let hits = hits.clone();
            move |_: Request<Message>| {
                hits.hit();
                async { Ok::<_, Infallible>(Reply::Success) }
            }
        }));
    let genuine = plain("/wechat/a", "SharedTok1", "4", &text_push("gh_a", 1, "hi"));
    assert_eq!(
        svc.clone().oneshot(genuine).await.unwrap().status(),
        StatusCode::OK
    );
    let forged = plain(
        "/wechat/b",
        "SharedTok1",
        "4",
        &text_push("gh_b", 2, "pay me"),
    );
    let response = svc.clone().oneshot(forged).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.extensions().get::<Rejection>(),
        Some(&Rejection::ReplayedSignature)
    );
    assert_eq!(hits.get(), 1);
}

#[test]
fn the_sans_io_core_checks_the_recipient_too() {
    let v = v5();
    let apps = apps();
    let query = |pq: &str| {
        let uri: http::Uri = pq.parse().unwrap();
        let app = ChooseApp::segment(0)
            .app(&apps, &uri, &http::HeaderMap::new())
            .unwrap();
        let checked = app.endpoint().check(&Method::POST, uri.query()).unwrap();
        let wechat_push::Verified::Push(query) = checked else {
            panic!("a POST")
        };
        (app, query)
    };
    let body = v["body"].as_str().unwrap().as_bytes();
    let (app, q) = query(v["path_and_query"].as_str().unwrap());
    let opened = app.open(q, body).unwrap();
    assert_eq!(opened.message().to_user(), "gh_97417a04a28d");
    let (other, q) = query(&v5_at("wx570bc396a51b8ff8"));
    // The component's keys open it at the other path too: only the recipient check refuses.
    assert!(other.endpoint().open(q.clone(), body).is_ok());
    assert_eq!(other.open(q, body).unwrap_err(), Rejection::WrongRecipient);
}

/// docs/platforms.md §5 V1 (Tencent's WeCom sample, a push for agent 1000002), copied into
/// `tests/data`.
fn wecom_v1() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/platforms.json");
    let all: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all["v1"].clone()
}

/// Agent `agent_id` of V1's corp, with V1's Token and key (shared by every agent here), the
/// clock at V1's push.
fn wecom_agent(name: &str, agent_id: u64) -> App {
    let v = wecom_v1();
    let now: u64 = v["post"]["timestamp"].as_str().unwrap().parse().unwrap();
    let endpoint = Endpoint::wecom(
        v["token"].as_str().unwrap(),
        EncodingAesKey::new(v["encoding_aes_key"].as_str().unwrap()).unwrap(),
        ReceiveId::CorpId(v["receive_id"].as_str().unwrap().to_owned()),
    )
    .unwrap()
    .clock(FixedClock::at_unix(now));
    App::new(name, endpoint).unwrap().agent(agent_id)
}

/// V1's push (for agent 1000002), to `path`.
fn wecom_v1_push(path: &str) -> Request<Full<Bytes>> {
    let post = &wecom_v1()["post"];
    let field = |name: &str| post[name].as_str().unwrap();
    Request::post(format!(
        "{path}?msg_signature={}&timestamp={}&nonce={}",
        field("msg_signature"),
        field("timestamp"),
        field("nonce")
    ))
    .body(Full::new(Bytes::from(field("body").to_owned())))
    .unwrap()
}

/// Two agents of one corp with the same Token and key: a push for agent 1000002 verifies and
/// decrypts at agent 1000003's path too, and only the decrypted `AgentID` tells them apart.
#[tokio::test]
async fn a_wecom_push_for_one_agent_is_refused_at_another_agent_s_path() {
    let registry: Apps = [wecom_agent("it", 1000002), wecom_agent("hr", 1000003)]
        .into_iter()
        .collect();
    let refusing = WechatLayer::apps(registry.clone(), ChooseApp::last_segment())
        .layer(service_fn(must_not_be_called));
    let response = refusing.oneshot(wecom_v1_push("/wechat/hr")).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.extensions().get::<Rejection>(),
        Some(&Rejection::WrongAgent)
    );
    assert_eq!(
        body_string(response.into_body()).await,
        "push not for the WeCom agent of the app this URL names"
    );

    // The keys alone would have let it through: only the agent check refuses it.
    let hr = registry.get("hr").unwrap();
    let uri: http::Uri = wecom_v1_push("/wechat/hr").uri().clone();
    let wechat_push::Verified::Push(query) =
        hr.endpoint().check(&Method::POST, uri.query()).unwrap()
    else {
        panic!("a POST")
    };
    let body = wecom_v1()["post"]["body"].as_str().unwrap().to_owned();
    let opened = hr.endpoint().open(query, body.as_bytes()).unwrap();
    assert_eq!(opened.message().agent_id(), Some(1000002));

    // At its own agent's path it is served.
    type Seen = Arc<Mutex<Vec<(AppName, Option<u64>)>>>;
    let seen: Seen = Arc::default();
    let serving = WechatLayer::apps(registry, ChooseApp::last_segment()).layer(service_fn({
        let seen = seen.clone();
        move |req: Request<Message>| {
            let app = req.extensions().get::<AppName>().cloned().unwrap();
            seen.lock().unwrap().push((app, req.body().agent_id()));
            async { Ok::<_, Infallible>(Reply::Success) }
        }
    }));
    let response = serving.oneshot(wecom_v1_push("/wechat/it")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        *seen.lock().unwrap(),
        [(AppName::new("it").unwrap(), Some(1000002))]
    );
}

/// A push V1's corp seals for agents `it` and `hr` whose decrypted document is `doc`, to `path`.
fn wecom_sealed(path: &str, doc: &str) -> Request<Full<Bytes>> {
    let v = wecom_v1();
    let post = &v["post"];
    let (token, ts, nonce) = (
        v["token"].as_str().unwrap(),
        post["timestamp"].as_str().unwrap(),
        post["nonce"].as_str().unwrap(),
    );
    let key = EncodingAesKey::new(v["encoding_aes_key"].as_str().unwrap()).unwrap();
    let corp = v["receive_id"].as_str().unwrap();
    let encrypt = crypto::encrypt(&key, doc.as_bytes(), corp).unwrap();
    Request::post(format!(
        "{path}?msg_signature={}&timestamp={ts}&nonce={nonce}",
        signature::sign_message(token, ts, nonce, &encrypt)
    ))
    .body(Full::new(Bytes::from(format!(
        "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    ))))
    .unwrap()
}

/// A decrypted push carrying two `AgentID`s (or two `ToUserName`s) is refused with 400 at
/// either agent's path, in either order: the agent check cannot read one copy and the handler
/// or the dedupe key the other. A third-party platform's event with two `AppId`s likewise.
#[tokio::test]
async fn a_push_with_two_agent_ids_or_two_recipients_is_refused_in_either_order() {
    let registry: Apps = [
        wecom_agent("it", 1000002),
        wecom_agent("hr", 1000003).recipient("ww1436e0e65a779aee"),
    ]
    .into_iter()
    .collect();
    let layer = WechatLayer::apps(registry, ChooseApp::last_segment());
    let doc = |fields: &str| {
        format!(
            "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>u1</FromUserName>\
             <CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>hi</Content>\
             <MsgId>1456453720</MsgId>{fields}</xml>"
        )
    };
    let (a, b) = ("<AgentID>1000002</AgentID>", "<AgentID>1000003</AgentID>");
    let cases = [
        (doc(&format!("{a}{b}")), "duplicate AgentID"),
        (doc(&format!("{b}{a}")), "duplicate AgentID"),
        (doc(&format!("{a}<X>1</X>{a}")), "duplicate AgentID"),
        (
            doc(&format!("<ToUserName>ww0000000000000000</ToUserName>{a}")),
            "duplicate ToUserName",
        ),
        (
            format!(
                "<xml><ToUserName>ww0000000000000000</ToUserName>{}",
                &doc(b)["<xml>".len()..]
            ),
            "duplicate ToUserName",
        ),
    ];
    for (doc, reason) in &cases {
        for path in ["/wechat/it", "/wechat/hr"] {
            let svc = layer.clone().layer(service_fn(must_not_be_called));
            let response = svc.oneshot(wecom_sealed(path, doc)).await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path} {doc}");
            assert!(matches!(
                response.extensions().get::<Rejection>(),
                Some(Rejection::Malformed(_))
            ));
            let text = body_string(response.into_body()).await;
            assert!(text.contains(reason), "{path} {doc}: {text}");
        }
    }
    // One AgentID of each: served at its own agent's path, refused at the other's.
    let served = Counter::default();
    for (agent, own, other) in [
        (a, "/wechat/it", "/wechat/hr"),
        (b, "/wechat/hr", "/wechat/it"),
    ] {
        let svc = layer.clone().layer(service_fn({
            let served = served.clone();
            move |_: Request<Message>| {
                served.hit();
                async { Ok::<_, Infallible>(Reply::Success) }
            }
        }));
        let response = svc
            .clone()
            .oneshot(wecom_sealed(own, &doc(agent)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{own}");
        let response = svc.oneshot(wecom_sealed(other, &doc(agent))).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{other}");
    }
    assert_eq!(served.get(), 2);

    // A third-party platform's event: its `AppId` is what the ticket store and the recipient
    // check read.
    for (first, second) in [
        ("wxaaaaaaaaaaaaaaaa", "wxbbbbbbbbbbbbbbbb"),
        ("wxbbbbbbbbbbbbbbbb", "wxaaaaaaaaaaaaaaaa"),
    ] {
        let event = format!(
            "<xml><AppId>{first}</AppId><CreateTime>1413192605</CreateTime>\
             <InfoType>component_verify_ticket</InfoType>\
             <ComponentVerifyTicket>ticket@@@x</ComponentVerifyTicket><AppId>{second}</AppId></xml>"
        );
        let err = Message::from_xml(event.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "duplicate AppId", "{event}");
    }
    // JSON: a repeated key, in either order, or an array.
    let json = |agents: &str| {
        format!(
            r#"{{"ToUserName":"ww1436e0e65a779aee","FromUserName":"u1","CreateTime":1,"MsgType":"text","Content":"hi",{agents}}}"#
        )
    };
    for agents in [
        r#""AgentID":1000002,"AgentID":1000003"#,
        r#""AgentID":1000003,"AgentID":"1000002""#,
        r#""AgentID":[1000002,1000003]"#,
    ] {
        let err = Message::from_json(json(agents).as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "duplicate AgentID", "{agents}");
    }
    let one = Message::from_json(json(r#""AgentID":1000003"#).as_bytes()).unwrap();
    assert_eq!(one.agent_id(), Some(1000003));
}

/// An app replaced or removed while one of its pushes is with the handler: that push finishes
/// with the app it chose (its reply sealed with the old keys), the next push sees the change.
#[tokio::test]
async fn a_push_in_flight_keeps_the_app_it_chose_when_the_app_changes() {
    use tokio::sync::Notify;

    for change in ["replace", "remove"] {
        let registry = apps();
        let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let handler = service_fn({
            let (entered, release) = (entered.clone(), release.clone());
            move |_: Request<Message>| {
                let (entered, release) = (entered.clone(), release.clone());
                async move {
                    entered.notify_one();
                    release.notified().await;
                    Ok::<_, Infallible>(Reply::text("late"))
                }
            }
        });
        let svc = WechatLayer::apps(registry.clone(), ChooseApp::last_segment()).layer(handler);
        let push = || {
            sealed(
                "/wechat/b",
                "TokenB2",
                "wxbbbbbbbbbbbbbbbb",
                &text_push("gh_b", 5, "hi"),
            )
        };
        let in_flight = tokio::spawn(svc.clone().oneshot(push()));
        entered.notified().await;
        match change {
            "replace" => {
                registry.insert(mini_program("b", "TokenB3", "wxbbbbbbbbbbbbbbb3"));
            }
            _ => {
                registry.remove("b");
            }
        }
        release.notify_one();
        let response = in_flight.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{change}");
        let body = body_string(response.into_body()).await;
        let sealed_reply = common::sealed_envelope("xml", &body).unwrap();
        assert!(
            signature::verify_message(
                &sealed_reply.msg_signature,
                "TokenB2",
                &sealed_reply.timestamp,
                &sealed_reply.nonce,
                &sealed_reply.encrypt
            ),
            "{change}: signed with the old token"
        );
        let opened = crypto::decrypt(&key(), &sealed_reply.encrypt, "wxbbbbbbbbbbbbbbbb").unwrap();
        assert!(opened.as_str().contains("late"), "{change}");
        // The next push sees the change.
        let next = svc.clone().oneshot(push()).await.unwrap();
        let expected = match change {
            "replace" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::NOT_FOUND,
        };
        assert_eq!(next.status(), expected, "{change}");
    }
}

#[test]
fn a_multi_app_layer_s_debug_shows_names_not_secrets() {
    let layer = WechatLayer::apps(apps(), ChooseApp::segment(1));
    let text = format!("{layer:?}");
    for secret in [
        "TokenA1",
        "TokenB2",
        KEY,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(
        text.contains("\"a\"") && text.contains("segment(1)"),
        "{text}"
    );
}
