//! WeCom (企业微信) and Open Platform third-party-platform ("component") endpoints against
//! every vector of docs/platforms.md §5 (`tests/data/platforms.json`, re-derived with Python's
//! `cryptography`), through the layer: the GET verification, pushes in each format, passive
//! replies opened with the tests' own AES implementation, and the rejection table with a
//! handler that panics if called.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tower::{service_fn, ServiceExt};
use wechat_push::body::Body;
use wechat_push::clock::FixedClock;
use wechat_push::crypto::DecryptError;
use wechat_push::dedupe::dedupe_key;
use wechat_push::message::{
    Authorization, ComponentEvent, ContactChange, Event, Kind, RobotContent,
};
use wechat_push::store::{BoxFuture, StoreError};
use wechat_push::ticket::{MemoryTicketStore, TicketStore, VerifyTicket};
use wechat_push::{
    reply, signature, EncodingAesKey, Endpoint, Format, Message, ReceiveId, Rejection, Reply,
    WechatLayer,
};

fn platforms() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/platforms.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn key(v: &Value) -> EncodingAesKey {
    EncodingAesKey::new(s(v, "encoding_aes_key")).unwrap()
}

fn secs(ts: &str) -> u64 {
    ts.parse().unwrap()
}

/// A WeCom app endpoint for vector `v` (its token, key and CorpID, or `receive_id`), its
/// clock at `now`.
fn wecom(v: &Value, receive_id: ReceiveId, now: &str) -> Endpoint {
    let now = secs(now);
    Endpoint::wecom(s(v, "token"), key(v), receive_id)
        .unwrap()
        .clock(FixedClock::at_unix(now))
}

fn corp(v: &Value) -> ReceiveId {
    ReceiveId::CorpId(s(v, "receive_id").to_owned())
}

/// A WeCom query: `msg_signature`, `timestamp`, `nonce` (and `echostr`, percent-encoded).
fn wecom_query(sig: &str, ts: &str, nonce: &str, echostr: Option<&str>) -> String {
    let mut q = format!("msg_signature={sig}&timestamp={ts}&nonce={nonce}");
    if let Some(e) = echostr {
        q.push_str("&echostr=");
        q.push_str(
            &e.replace('%', "%25")
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D"),
        );
    }
    q
}

type Seen = Arc<Mutex<Vec<Message>>>;

/// Runs one request through a layer over `endpoint` whose handler records the message and
/// answers `answer`.
async fn run(
    endpoint: Endpoint,
    req: Request<http_body_util::Full<Bytes>>,
    answer: Reply,
) -> (StatusCode, String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let svc =
        WechatLayer::from_endpoint(endpoint).layer(service_fn(move |req: Request<Message>| {
            record.lock().unwrap().push(req.into_body());
            let answer = answer.clone();
            async move { Ok::<_, Infallible>(answer) }
        }));
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    (status, body_string(res.into_body()).await, seen)
}

/// Runs one request that must be refused with `status`, by a handler that panics if called;
/// returns the rejection.
async fn refused(endpoint: Endpoint, req: Request<http_body_util::Full<Bytes>>) -> Rejection {
    let svc = WechatLayer::from_endpoint(endpoint).layer(service_fn(must_not_be_called));
    let res: Response<Body> = svc.oneshot(req).await.unwrap();
    let rejection = res
        .extensions()
        .get::<Rejection>()
        .cloned()
        .unwrap_or_else(|| panic!("answered {} without a rejection", res.status()));
    assert_eq!(res.status(), rejection.status());
    rejection
}

fn one(seen: &Seen) -> Message {
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    seen[0].clone()
}

// ---------------------------------------------------------------- WeCom: GET verification

#[tokio::test]
async fn wecom_get_verification_answers_the_decrypted_echostr() {
    let v = platforms();
    for name in ["v1", "v3"] {
        let case = &v[name];
        let get = &case["get"];
        let query = wecom_query(
            s(get, "msg_signature"),
            s(get, "timestamp"),
            s(get, "nonce"),
            Some(s(get, "echostr")),
        );
        let endpoint = wecom(case, corp(case), s(get, "timestamp"));
        let (status, body, seen) =
            run(endpoint, request(Method::GET, &query, ""), Reply::Empty).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        // The plaintext alone: no quotes, no BOM, no newline.
        assert_eq!(body, s(get, "expected_body"), "{name}");
        assert!(seen.lock().unwrap().is_empty());
    }
    // vectors.json's WeCom case, its query percent-encoded as WeChat sends it.
    let all = vectors();
    let case = &all["wecom_echostr_case"];
    let now = secs(s(case, "timestamp"));
    let endpoint = Endpoint::wecom(
        s(case, "token"),
        EncodingAesKey::new(s(case, "encoding_aes_key")).unwrap(),
        ReceiveId::CorpId(s(case, "receive_id").into()),
    )
    .unwrap()
    .clock(FixedClock::at_unix(now));
    let (status, body, _) = run(
        endpoint,
        request(Method::GET, s(case, "query"), ""),
        Reply::Empty,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, s(case, "expected_response_body"))
    );
}

#[tokio::test]
async fn wecom_get_verification_refusals() {
    let v = platforms();
    let case = &v["v3"];
    let get = &case["get"];
    let (sig, ts, nonce, echo) = (
        s(get, "msg_signature"),
        s(get, "timestamp"),
        s(get, "nonce"),
        s(get, "echostr"),
    );
    let endpoint = || wecom(case, corp(case), ts);
    // wechatpy's failing case: another nonce.
    let q = wecom_query(sig, ts, s(get, "failing_nonce"), Some(echo));
    assert_eq!(
        refused(endpoint(), request(Method::GET, &q, "")).await,
        Rejection::BadMsgSignature
    );
    // A plain `signature` is not what WeCom signs with.
    let q = format!("signature={sig}&timestamp={ts}&nonce={nonce}&echostr=1");
    assert_eq!(
        refused(endpoint(), request(Method::GET, &q, "")).await,
        Rejection::MissingSignature("msg_signature")
    );
    let q = wecom_query(sig, ts, nonce, None);
    assert_eq!(
        refused(endpoint(), request(Method::GET, &q, "")).await,
        Rejection::MissingEchostr
    );
    // Another corp's receive id, and "must be empty".
    for other in [
        ReceiveId::CorpId("ww0000000000000000".into()),
        ReceiveId::Empty,
    ] {
        let q = wecom_query(sig, ts, nonce, Some(echo));
        assert_eq!(
            refused(wecom(case, other, ts), request(Method::GET, &q, "")).await,
            Rejection::Decrypt(DecryptError::AppIdMismatch)
        );
    }
    // Stale.
    let stale = wecom(case, corp(case), "1411453780");
    let q = wecom_query(sig, ts, nonce, Some(echo));
    assert!(matches!(
        refused(stale, request(Method::GET, &q, "")).await,
        Rejection::StaleTimestamp { .. }
    ));
}

// ---------------------------------------------------------------- WeCom: pushes

fn post_of(case: &Value) -> (String, &str) {
    let post = &case["post"];
    let q = wecom_query(
        s(post, "msg_signature"),
        s(post, "timestamp"),
        s(post, "nonce"),
        None,
    );
    (q, s(post, "body"))
}

#[tokio::test]
async fn wecom_xml_pushes_decrypt_and_decode() {
    let v = platforms();
    // V1: the decrypted document has no CDATA at all.
    let case = &v["v1"];
    let (q, body) = post_of(case);
    let endpoint = wecom(case, corp(case), s(&case["post"], "timestamp"));
    let (status, answer, seen) = run(
        endpoint,
        request(Method::POST, &q, body.to_owned()),
        Reply::Success,
    )
    .await;
    // WeCom documents an empty body as the acknowledgement.
    assert_eq!((status, answer.as_str()), (StatusCode::OK, ""));
    let msg = one(&seen);
    assert_eq!(
        msg,
        Message::from_xml(s(&case["post"], "decrypted").as_bytes()).unwrap()
    );
    assert_eq!(msg.kind(), &Kind::text("你好"));
    assert_eq!(
        (msg.to_user(), msg.from_user()),
        ("ww1436e0e65a779aee", "ChenJiaShun")
    );
    assert_eq!(
        (msg.msg_id(), msg.agent_id()),
        (Some(1456453720), Some(1000002))
    );

    // V2: a MsgId above 2^53 stays exact; the envelope's AgentID (unsigned) is not read.
    let case = &v["v2"];
    let (q, body) = post_of(case);
    let body = body
        .replace("<![CDATA[218]]>", "<![CDATA[999]]>")
        .replace("<![CDATA[wx5823bf96d3bd56c7]]>", "<![CDATA[wxspoofed]]>");
    let endpoint = wecom(case, corp(case), s(&case["post"], "timestamp"));
    let (status, _, seen) = run(endpoint, request(Method::POST, &q, body), Reply::Success).await;
    assert_eq!(status, StatusCode::OK);
    let msg = one(&seen);
    assert_eq!(msg.msg_id(), Some(4561255354251345929));
    assert_eq!(
        (msg.kind(), msg.agent_id()),
        (&Kind::text("hello"), Some(218))
    );

    // V3 (wechatpy).
    let case = &v["v3"];
    let (q, body) = post_of(case);
    let endpoint = wecom(case, corp(case), s(&case["post"], "timestamp"));
    let (_, _, seen) = run(
        endpoint,
        request(Method::POST, &q, body.to_owned()),
        Reply::Success,
    )
    .await;
    let msg = one(&seen);
    assert_eq!(
        (msg.from_user(), msg.kind()),
        ("messense", &Kind::text("test"))
    );
    assert_eq!(msg.msg_id(), Some(4363689963896700987));
}

#[tokio::test]
async fn wecom_json_pushes_in_both_key_spellings() {
    let v = platforms();
    // V4: crypto succeeds, the plaintext is invalid JSON: 400, the handler never runs.
    let case = &v["v4"];
    let (q, body) = post_of(case);
    let rejection = refused(
        wecom(case, corp(case), s(&case["post"], "timestamp")),
        request(Method::POST, &q, body.to_owned()),
    )
    .await;
    assert!(
        matches!(rejection, Rejection::Malformed(_)),
        "{rejection:?}"
    );
    assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);

    // A JSON app callback with lower-case envelope keys (`callback_format=json`).
    let case = &v["v1"];
    let doc = r#"{"ToUserName":"ww1436e0e65a779aee","FromUserName":"zhangsan","CreateTime":1476422779,"MsgType":"text","Content":"hi","MsgId":7,"AgentID":1000002}"#;
    let encrypt = reference_encrypt(
        &reference_key(s(case, "encoding_aes_key")),
        *b"0123456789abcdef",
        doc.as_bytes(),
        "ww1436e0e65a779aee",
    );
    let (ts, nonce) = ("1476422779", "77");
    let sig = reference_sign(&[s(case, "token"), ts, nonce, &encrypt]);
    for envelope in [
        format!(
            r#"{{"tousername":"ww1436e0e65a779aee","encrypt":"{encrypt}","agentid":"1000002"}}"#
        ),
        format!(r#"{{"ToUserName":"ww1436e0e65a779aee","Encrypt":"{encrypt}","AgentID":1000002}}"#),
    ] {
        let q = wecom_query(&sig, ts, nonce, None);
        let (status, _, seen) = run(
            wecom(case, corp(case), ts),
            request(Method::POST, &q, envelope),
            Reply::Success,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one(&seen).kind(), &Kind::text("hi"));
    }
    // Both spellings at once is ambiguous.
    let both = format!(r#"{{"encrypt":"{encrypt}","Encrypt":"{encrypt}"}}"#);
    let q = wecom_query(&sig, ts, nonce, None);
    assert!(matches!(
        refused(wecom(case, corp(case), ts), request(Method::POST, &q, both)).await,
        Rejection::Malformed(_)
    ));
}

#[tokio::test]
async fn wecom_rejection_table() {
    let v = platforms();
    let case = &v["v1"];
    let post = &case["post"];
    let (sig, ts, nonce) = (
        s(post, "msg_signature"),
        s(post, "timestamp"),
        s(post, "nonce"),
    );
    let body = s(post, "body").to_owned();
    let endpoint = || wecom(case, corp(case), ts);
    let q = wecom_query(sig, ts, nonce, None);

    // Wrong receive id: another CorpID, or "must be empty" (the trailer is the CorpID).
    for other in [
        ReceiveId::CorpId("ww0000000000000000".into()),
        ReceiveId::Empty,
        ReceiveId::SuiteId("wwsuite".into()),
    ] {
        assert_eq!(
            refused(
                wecom(case, other, ts),
                request(Method::POST, &q, body.clone())
            )
            .await,
            Rejection::Decrypt(DecryptError::AppIdMismatch)
        );
    }
    // Wrong signature, missing signature.
    let bad = wecom_query(&sig.replace('0', "1"), ts, nonce, None);
    assert_eq!(
        refused(endpoint(), request(Method::POST, &bad, body.clone())).await,
        Rejection::BadMsgSignature
    );
    let unsigned = format!("timestamp={ts}&nonce={nonce}");
    assert_eq!(
        refused(endpoint(), request(Method::POST, &unsigned, body.clone())).await,
        Rejection::MissingSignature("msg_signature")
    );
    // A tampered Encrypt.
    let tampered = body.replacen("Kl7k", "Kl7j", 1);
    assert_eq!(
        refused(endpoint(), request(Method::POST, &q, tampered)).await,
        Rejection::BadMsgSignature
    );
    // WeCom never sends plaintext: a clear document is refused, signed or not.
    let clear = s(post, "decrypted").to_owned();
    assert!(matches!(
        refused(endpoint(), request(Method::POST, &q, clear)).await,
        Rejection::Malformed(e) if e.to_string().contains("Encrypt")
    ));
    // Stale timestamp, wrong method.
    let stale = wecom(case, corp(case), "1476500000");
    assert!(matches!(
        refused(stale, request(Method::POST, &q, body.clone())).await,
        Rejection::StaleTimestamp { .. }
    ));
    assert_eq!(
        refused(endpoint(), request(Method::PUT, &q, body)).await,
        Rejection::MethodNotAllowed
    );
}

// ---------------------------------------------------------------- WeCom: replies

#[tokio::test]
async fn wecom_passive_reply_opens_with_wechats_scheme() {
    let v = platforms();
    let case = &v["v3"];
    let (q, body) = post_of(case);
    let (ts, nonce) = (s(&case["post"], "timestamp"), s(&case["post"], "nonce"));
    let (status, answer, _) = run(
        wecom(case, corp(case), ts),
        request(Method::POST, &q, body.to_owned()),
        Reply::text("test"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let sealed = sealed_envelope("xml", &answer).unwrap();
    assert_eq!(sealed.timestamp, ts);
    assert_eq!(
        sealed.msg_signature,
        reference_sign(&[
            s(case, "token"),
            &sealed.timestamp,
            &sealed.nonce,
            &sealed.encrypt
        ])
    );
    // Sealed for the CorpID, addressed to the member, from the corp.
    let doc = reference_decrypt(
        s(case, "encoding_aes_key"),
        &sealed.encrypt,
        "wx49f0ab532d5d035a",
    )
    .unwrap();
    assert_eq!(xml_field(&doc, "ToUserName"), Some("messense"));
    assert_eq!(xml_field(&doc, "FromUserName"), Some("wx49f0ab532d5d035a"));
    assert_eq!(xml_field(&doc, "Content"), Some("test"));
    assert_eq!(xml_field(&doc, "MsgType"), Some("text"));

    // wechatpy's own reply (V3): the tests' sealer rebuilds its Encrypt from its prefix, and
    // the crate's envelope writer rebuilds its whole body byte for byte.
    let r = &case["reply"];
    let encrypt = reference_encrypt(
        &reference_key(s(case, "encoding_aes_key")),
        s(r, "random").as_bytes().try_into().unwrap(),
        s(r, "plaintext").as_bytes(),
        s(case, "receive_id"),
    );
    assert_eq!(encrypt, s(r, "encrypt"));
    let expected = format!(
        "<xml>\n<Encrypt><![CDATA[{}]]></Encrypt>\n<MsgSignature><![CDATA[{}]]></MsgSignature>\n<TimeStamp>{}</TimeStamp>\n<Nonce><![CDATA[{}]]></Nonce>\n</xml>",
        s(r, "encrypt"), s(r, "msg_signature"), s(r, "timestamp"), s(r, "nonce")
    );
    let written = reply::envelope(
        Format::Xml,
        s(case, "token"),
        &encrypt,
        secs(s(r, "timestamp")),
        nonce,
    );
    assert_eq!(String::from_utf8(written).unwrap(), expected);
}

#[tokio::test]
async fn wecom_acknowledgements_and_unsupported_replies() {
    let v = platforms();
    let case = &v["v1"];
    let (q, body) = post_of(case);
    let ts = s(&case["post"], "timestamp");
    for ack in [Reply::Success, Reply::Empty] {
        let (status, answer, _) = run(
            wecom(case, corp(case), ts),
            request(Method::POST, &q, body.to_owned()),
            ack,
        )
        .await;
        assert_eq!((status, answer.as_str()), (StatusCode::OK, ""));
    }
    // Music and customer-service transfer are MP/OA replies: a handler bug on WeCom.
    for reply in [
        Reply::Music(reply::Music::new("thumb")),
        Reply::TransferCustomerService { kf_account: None },
    ] {
        let (status, answer, _) = run(
            wecom(case, corp(case), ts),
            request(Method::POST, &q, body.to_owned()),
            reply,
        )
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
        assert!(
            answer.contains("does not exist on this platform"),
            "{answer}"
        );
    }

    // A third-party app's instruction callback (receive id = SuiteID) is answered `success`.
    let suite = "wwsuite0123456789";
    let doc = "<xml><SuiteId><![CDATA[wwsuite0123456789]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType><TimeStamp>1403610513</TimeStamp><SuiteTicket><![CDATA[asdfasfdasdfasdf]]></SuiteTicket></xml>";
    let doc = doc.replace("<SuiteId>", "<ToUserName>wwsuite0123456789</ToUserName><FromUserName>sys</FromUserName><CreateTime>1403610513</CreateTime><MsgType>event</MsgType><Event>suite_ticket</Event><SuiteId>");
    let encrypt = reference_encrypt(
        &reference_key(s(case, "encoding_aes_key")),
        *b"fedcba9876543210",
        doc.as_bytes(),
        suite,
    );
    let nonce = "5";
    let sig = reference_sign(&[s(case, "token"), ts, nonce, &encrypt]);
    let envelope = format!("<xml><ToUserName><![CDATA[{suite}]]></ToUserName><AgentID><![CDATA[]]></AgentID><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
    let q = wecom_query(&sig, ts, nonce, None);
    let (status, answer, seen) = run(
        wecom(case, ReceiveId::SuiteId(suite.into()), ts),
        request(Method::POST, &q, envelope),
        Reply::Empty,
    )
    .await;
    assert_eq!((status, answer.as_str()), (StatusCode::OK, "success"));
    assert_eq!(one(&seen).event_name(), Some("suite_ticket"));
}

// ---------------------------------------------------------------- WeCom: typed events

fn wecom_event(event: &str, body: &str) -> Message {
    let doc = format!(
        "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[{event}]]></Event>{body}</xml>"
    );
    Message::from_xml(doc.as_bytes()).unwrap_or_else(|e| panic!("{event}: {e}"))
}

#[test]
fn wecom_events_are_typed() {
    assert!(matches!(
        wecom_event("subscribe", "<AgentID>1</AgentID>").event(),
        Some(Event::Subscribe {
            event_key: None,
            ..
        })
    ));
    assert_eq!(
        wecom_event("unsubscribe", "<AgentID>1</AgentID>").event(),
        Some(&Event::Unsubscribe)
    );
    let enter = wecom_event(
        "enter_agent",
        "<EventKey><![CDATA[]]></EventKey><AgentID>1</AgentID>",
    );
    assert!(
        matches!(enter.event(), Some(Event::EnterAgent { event_key: Some(k), .. }) if k.is_empty())
    );
    assert_eq!(enter.agent_id(), Some(1));
    let location = wecom_event("LOCATION", "<Latitude>23.104</Latitude><Longitude>113.320</Longitude><Precision>65.000</Precision><AgentID>1</AgentID><AppType><![CDATA[wxwork]]></AppType>");
    assert!(
        matches!(location.event(), Some(Event::Location { latitude, .. }) if (*latitude - 23.104).abs() < 1e-9)
    );
    assert_eq!(
        location.field("AppType").and_then(|v| v.as_text()),
        Some("wxwork")
    );
    // WeCom's menu events are lower case; OA's upper case: both typed.
    assert!(
        matches!(wecom_event("click", "<EventKey>k1</EventKey>").event(), Some(Event::Click { event_key, .. }) if event_key == "k1")
    );
    assert!(matches!(
        wecom_event("view", "<EventKey>https://a</EventKey>").event(),
        Some(Event::View { .. })
    ));
    let scan = wecom_event("scancode_push", "<EventKey>s</EventKey><ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>1</ScanResult></ScanCodeInfo>");
    assert!(
        matches!(scan.event(), Some(Event::ScanCodePush { scan_type, scan_result, .. }) if scan_type == "qrcode" && scan_result == "1")
    );

    // change_contact, bare values as in the official samples; every non-id field optional.
    let create = wecom_event("change_contact", "<ChangeType>create_user</ChangeType><UserID><![CDATA[zhangsan]]></UserID><Department><![CDATA[1,2,3]]></Department>");
    assert!(
        matches!(create.event(), Some(Event::ChangeContact(ContactChange::CreateUser { user_id, .. })) if user_id == "zhangsan")
    );
    assert_eq!(
        create.field("Department").and_then(|v| v.as_text()),
        Some("1,2,3")
    );
    let renamed = wecom_event(
        "change_contact",
        "<ChangeType>update_user</ChangeType><UserID>a</UserID><NewUserID>b</NewUserID>",
    );
    assert!(
        matches!(renamed.event(), Some(Event::ChangeContact(ContactChange::UpdateUser { new_user_id: Some(n), .. })) if n == "b")
    );
    let party = wecom_event(
        "change_contact",
        "<ChangeType>delete_party</ChangeType><Id>2</Id>",
    );
    assert!(matches!(
        party.event(),
        Some(Event::ChangeContact(ContactChange::DeleteParty {
            id: 2,
            ..
        }))
    ));
    let tag = wecom_event(
        "change_contact",
        "<ChangeType>update_tag</ChangeType><TagId>1</TagId><AddUserItems>a,b</AddUserItems>",
    );
    assert!(
        matches!(tag.event(), Some(Event::ChangeContact(c)) if c.change_type() == "update_tag")
    );
    let other = wecom_event("change_contact", "<ChangeType>something_new</ChangeType>");
    assert!(
        matches!(other.event(), Some(Event::ChangeContact(ContactChange::Other { change_type })) if change_type == "something_new")
    );

    let external = wecom_event("change_external_contact", "<ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA]]></ExternalUserID><State><![CDATA[teststate]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode>");
    let Some(Event::ChangeExternalContact(change)) = external.event() else {
        panic!("{external:?}")
    };
    assert_eq!(change.change_type, "add_external_contact");
    assert_eq!(
        change.external_user_id.as_deref(),
        Some("woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA")
    );
    assert_eq!(
        external.field("WelcomeCode").and_then(|v| v.as_text()),
        Some("WELCOMECODE")
    );

    let job = wecom_event("batch_job_result", "<BatchJob><JobId><![CDATA[S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4]]></JobId><JobType><![CDATA[export_taguser]]></JobType><ErrCode>0</ErrCode><ErrMsg><![CDATA[ok]]></ErrMsg></BatchJob>");
    let Some(Event::BatchJobResult(job)) = job.event() else {
        panic!()
    };
    assert_eq!((job.job_type.as_str(), job.err_code), ("export_taguser", 0));

    // The official template_card_event sample (docs/platforms.md §1.6).
    let card = Message::from_xml(
        br#"<xml>
<ToUserName><![CDATA[toUser]]></ToUserName>
<FromUserName><![CDATA[FromUser]]></FromUserName>
<CreateTime>123456789</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[template_card_event]]></Event>
<EventKey><![CDATA[key111]]></EventKey>
<TaskId><![CDATA[taskid111]]></TaskId>
<CardType><![CDATA[text_notice]]></CardType>
<ResponseCode><![CDATA[ResponseCode]]></ResponseCode>
<AgentID>1</AgentID>
<SelectedItems>
    <SelectedItem>
        <QuestionKey><![CDATA[QuestionKey1]]></QuestionKey>
        <OptionIds>
            <OptionId><![CDATA[OptionId1]]></OptionId>
            <OptionId><![CDATA[OptionId2]]></OptionId>
        </OptionIds>
    </SelectedItem>
</SelectedItems>
</xml>"#,
    )
    .unwrap();
    let Some(Event::TemplateCardEvent(card_event)) = card.event() else {
        panic!("{card:?}")
    };
    assert_eq!(
        (
            card_event.event_key.as_str(),
            card_event.task_id.as_str(),
            card_event.card_type.as_str()
        ),
        ("key111", "taskid111", "text_notice")
    );
    assert_eq!(card_event.response_code.as_deref(), Some("ResponseCode"));
    assert_eq!(card_event.selected_items.len(), 1);
    assert_eq!(card_event.selected_items[0].question_key, "QuestionKey1");
    assert_eq!(
        card_event.selected_items[0].option_ids,
        ["OptionId1", "OptionId2"]
    );
    assert_eq!(card.agent_id(), Some(1));

    // Unknown events stay raw.
    let unknown = wecom_event("living_status_change", "<LivingId>L1</LivingId>");
    assert_eq!(
        unknown.event(),
        Some(&Event::Unknown {
            event: "living_status_change".into()
        })
    );
    assert_eq!(
        unknown.field("LivingId").and_then(|v| v.as_text()),
        Some("L1")
    );
}

#[test]
fn wecom_dedupe_keys_do_not_collide_for_system_events() {
    // Two contact changes from `sys` in the same second: FromUserName + CreateTime, the key
    // WeCom recommends for events, would merge them.
    let doc = |user: &str| {
        format!(
        "<xml><ToUserName>ww1</ToUserName><FromUserName>sys</FromUserName><CreateTime>1403610513</CreateTime>\
         <MsgType>event</MsgType><Event>change_contact</Event><ChangeType>delete_user</ChangeType><UserID>{user}</UserID></xml>"
    )
    };
    let key = |d: &str| dedupe_key(&Message::from_xml(d.as_bytes()).unwrap(), d.as_bytes());
    let (a, b) = (doc("zhangsan"), doc("lisi"));
    assert_ne!(key(&a), key(&b));
    assert_eq!(key(&a), key(&a), "a retry carries the same document");
    // Messages: the MsgId, scoped by the corp and the app (the agents of a corp share the
    // CorpID).
    let v = platforms();
    let v1 = s(&v["v1"]["post"], "decrypted");
    assert_eq!(key(v1), "ww1436e0e65a779aee/1000002|msg|1456453720");
    let other_agent = v1.replace("<AgentID>1000002</AgentID>", "<AgentID>1000003</AgentID>");
    assert_ne!(key(v1), key(&other_agent));
}

// ---------------------------------------------------------------- WeCom: intelligent robot

const ROBOT_TOKEN: &str = "RobotToken1";
const ROBOT_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

fn robot() -> Endpoint {
    Endpoint::wecom_robot(ROBOT_TOKEN, EncodingAesKey::new(ROBOT_KEY).unwrap())
        .unwrap()
        .clock(FixedClock::at_unix(1641002400))
}

/// A robot push of `doc`, sealed with the tests' own AES for `receive_id`.
fn robot_push(doc: &str, receive_id: &str, nonce: &str) -> Request<http_body_util::Full<Bytes>> {
    let encrypt = reference_encrypt(
        &reference_key(ROBOT_KEY),
        *b"robot-prefix-16b",
        doc.as_bytes(),
        receive_id,
    );
    let ts = "1641002400";
    let sig = reference_sign(&[ROBOT_TOKEN, ts, nonce, &encrypt]);
    request(
        Method::POST,
        &wecom_query(&sig, ts, nonce, None),
        format!(r#"{{"encrypt":"{encrypt}"}}"#),
    )
}

const ROBOT_TEXT: &str = r#"{"msgid":"CAIQ16HMjQYY\/NGagIOAgAMgq4KM0AI=","aibotid":"AIBOTID","chatid":"CHATID","chattype":"group","from":{"userid":"USERID","corpid":"CORPID"},"response_url":"RESPONSEURL","msgtype":"text","text":{"content":"@RobotA hello robot"}}"#;

#[tokio::test]
async fn robot_push_and_reply() {
    let nonce = "1592707296";
    let (status, answer, seen) = run(
        robot(),
        robot_push(ROBOT_TEXT, "", nonce),
        Reply::text("你好"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let msg = one(&seen);
    let Kind::Robot(push) = msg.kind() else {
        panic!("{msg:?}")
    };
    // The escaped `\/` compares as the parsed string.
    assert_eq!(push.msg_id, "CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=");
    assert_eq!(
        (push.chat_type.as_deref(), push.chat_id.as_deref()),
        (Some("group"), Some("CHATID"))
    );
    assert!(
        matches!(&push.content, RobotContent::Text { content, .. } if content == "@RobotA hello robot")
    );
    assert_eq!(
        (msg.to_user(), msg.from_user(), msg.msg_type()),
        ("AIBOTID", "USERID", "text")
    );
    // `from.corpid` is kept.
    let from = msg.field("from").and_then(|v| v.as_node()).unwrap();
    assert_eq!(from.get("corpid").and_then(|v| v.as_text()), Some("CORPID"));
    assert_eq!(
        dedupe_key(&msg, ROBOT_TEXT.as_bytes()),
        "AIBOTID|msg|CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI="
    );

    // The reply: lower-case keys, a numeric timestamp, the request's nonce, empty receive id.
    let reply: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(reply["nonce"], nonce);
    assert_eq!(reply["timestamp"], 1641002400);
    let encrypt = reply["encrypt"].as_str().unwrap();
    assert_eq!(
        reply["msgsignature"],
        reference_sign(&[ROBOT_TOKEN, "1641002400", nonce, encrypt])
    );
    let doc: Value =
        serde_json::from_str(&reference_decrypt(ROBOT_KEY, encrypt, "").unwrap()).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"msgtype": "text", "text": {"content": "你好"}})
    );

    // A handler-written stream reply is sealed as it is; an acknowledgement is empty.
    let stream = r#"{"msgtype":"stream","stream":{"id":"S1","finish":false,"content":"..."}}"#;
    let (_, answer, _) = run(
        robot(),
        robot_push(ROBOT_TEXT, "", nonce),
        Reply::document(stream),
    )
    .await;
    let reply: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        reference_decrypt(ROBOT_KEY, reply["encrypt"].as_str().unwrap(), "").unwrap(),
        stream
    );
    let (status, answer, _) = run(robot(), robot_push(ROBOT_TEXT, "", nonce), Reply::Success).await;
    assert_eq!((status, answer.as_str()), (StatusCode::OK, ""));
    // News does not exist for robots.
    let news = Reply::News(vec![reply::Article::new(
        "t",
        "d",
        "https://p",
        "https://u",
    )]);
    let (status, _, _) = run(robot(), robot_push(ROBOT_TEXT, "", nonce), news).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn robot_events_and_refusals() {
    let event = r#"{"msgid":"M2","create_time":1700000000,"aibotid":"AIBOTID","from":{"userid":"USERID"},"msgtype":"event","event":{"eventtype":"enter_chat"}}"#;
    let (status, _, seen) = run(robot(), robot_push(event, "", "9"), Reply::Empty).await;
    assert_eq!(status, StatusCode::OK);
    let msg = one(&seen);
    assert!(
        matches!(msg.kind(), Kind::Robot(p) if matches!(&p.content, RobotContent::Event { event_type, .. } if event_type == "enter_chat"))
    );
    assert_eq!(msg.create_time(), 1700000000);
    // The receive id must be empty: a corp's trailer is refused.
    assert_eq!(
        refused(robot(), robot_push(ROBOT_TEXT, "ww1436e0e65a779aee", "9")).await,
        Rejection::Decrypt(DecryptError::AppIdMismatch)
    );
    // A robot document without msgid is malformed, not a handler call.
    assert!(matches!(
        refused(
            robot(),
            robot_push(
                r#"{"aibotid":"A","from":{"userid":"U"},"msgtype":"text","text":{"content":"x"}}"#,
                "",
                "9"
            )
        )
        .await,
        Rejection::Malformed(_)
    ));
}

// ---------------------------------------------------------------- component

fn component(v: &Value, receive_id: &str, now: &str) -> Endpoint {
    let now = secs(now);
    Endpoint::component(s(v, "token"), key(v), receive_id)
        .unwrap()
        .clock(FixedClock::at_unix(now))
}

#[tokio::test]
async fn component_message_url_push_decrypts_with_the_component_keys() {
    let v = platforms();
    let case = &v["v5"];
    let post = &case["post"];
    let target = format!("{}?{}", s(post, "path"), s(post, "query"));
    let req = || {
        Request::builder()
            .method(Method::POST)
            .uri(&target)
            .body(http_body_util::Full::new(Bytes::from(
                s(post, "body").to_owned(),
            )))
            .unwrap()
    };
    let endpoint = || component(case, s(case, "receive_id"), s(post, "timestamp"));
    let (status, answer, seen) = run(endpoint(), req(), Reply::Success).await;
    assert_eq!((status, answer.as_str()), (StatusCode::OK, "success"));
    let msg = one(&seen);
    assert_eq!(
        msg,
        Message::from_xml(s(post, "decrypted").as_bytes()).unwrap()
    );
    assert_eq!(
        (msg.to_user(), msg.event_name()),
        ("gh_97417a04a28d", Some("debug_demo"))
    );
    assert_eq!(
        msg.field("debug_str").and_then(|v| v.as_text()),
        Some("hello world")
    );

    // The path is not authenticated: the same push at another authoriser's URL is served
    // identically (the multi-app routing checks the decrypted ToUserName against it).
    let elsewhere = Request::builder()
        .method(Method::POST)
        .uri(format!("/wx0000000000000000/revice?{}", s(post, "query")))
        .body(http_body_util::Full::new(Bytes::from(
            s(post, "body").to_owned(),
        )))
        .unwrap();
    let (status, _, seen) = run(endpoint(), elsewhere, Reply::Success).await;
    assert_eq!((status, one(&seen)), (StatusCode::OK, msg.clone()));

    // The authoriser's AppID (from the path) is not the receive id.
    let wrong = component(case, s(case, "authorizer"), s(post, "timestamp"));
    assert_eq!(
        refused(wrong, req()).await,
        Rejection::Decrypt(DecryptError::AppIdMismatch)
    );

    // A passive reply is sealed with the component's keys and trailer.
    let (_, answer, _) = run(endpoint(), req(), Reply::text("good luck")).await;
    let sealed = sealed_envelope("xml", &answer).unwrap();
    assert_eq!(
        sealed.msg_signature,
        reference_sign(&["AAAAA", &sealed.timestamp, &sealed.nonce, &sealed.encrypt])
    );
    let doc = reference_decrypt(
        s(case, "encoding_aes_key"),
        &sealed.encrypt,
        s(case, "receive_id"),
    )
    .unwrap();
    assert_eq!(
        xml_field(&doc, "ToUserName"),
        Some("o9AgO5Kd5ggOC-bXrbNODIiE3bGY")
    );
    assert_eq!(xml_field(&doc, "FromUserName"), Some("gh_97417a04a28d"));

    // The walkthrough's own reply: its Encrypt opens to its document, for the component.
    let r = &case["reply"];
    assert_eq!(
        reference_decrypt(
            s(case, "encoding_aes_key"),
            s(r, "encrypt"),
            s(case, "receive_id")
        )
        .unwrap(),
        s(r, "plaintext")
    );
    assert_eq!(
        reference_sign(&["AAAAA", s(r, "timestamp"), s(r, "nonce"), s(r, "encrypt")]),
        s(r, "msg_signature")
    );
    assert!(signature::verify_message(
        s(r, "msg_signature"),
        "AAAAA",
        s(r, "timestamp"),
        s(r, "nonce"),
        s(r, "encrypt")
    ));
}

#[tokio::test]
async fn component_rejection_table() {
    let v = platforms();
    let case = &v["v5"];
    let post = &case["post"];
    let (ts, nonce) = (s(post, "timestamp"), s(post, "nonce"));
    let endpoint = || component(case, s(case, "receive_id"), ts);
    let body = s(post, "body").to_owned();
    let msg_sig = s(post, "msg_signature");
    // Without `signature`: msg_signature is what counts.
    let q = format!("timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={msg_sig}");
    let (status, _, _) = run(
        endpoint(),
        request(Method::POST, &q, body.clone()),
        Reply::Success,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A wrong `signature`, when sent, is refused before the body is read.
    let q = format!(
        "signature={}&timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={msg_sig}",
        "0".repeat(40)
    );
    assert_eq!(
        refused(endpoint(), request(Method::POST, &q, body.clone())).await,
        Rejection::BadSignature
    );
    // No msg_signature; a wrong one.
    let q = format!(
        "signature={}&timestamp={ts}&nonce={nonce}&encrypt_type=aes",
        s(post, "signature")
    );
    assert_eq!(
        refused(endpoint(), request(Method::POST, &q, body.clone())).await,
        Rejection::MissingMsgSignature
    );
    let q = format!(
        "timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={}",
        "1".repeat(40)
    );
    assert_eq!(
        refused(endpoint(), request(Method::POST, &q, body)).await,
        Rejection::BadMsgSignature
    );
    // Plaintext is refused even when correctly signed.
    let clear = s(post, "decrypted").to_owned();
    let q = format!(
        "signature={}&timestamp={ts}&nonce={nonce}&msg_signature={msg_sig}",
        s(post, "signature")
    );
    assert_eq!(
        refused(endpoint(), request(Method::POST, &q, clear)).await,
        Rejection::MissingEncrypt
    );
}

#[tokio::test]
async fn component_get_checks_signature_and_echoes() {
    let v = platforms();
    let case = &v["v5"];
    let (ts, nonce) = ("1715943329", "1590219412");
    let endpoint = || component(case, s(case, "receive_id"), ts);
    let q = format!("{}&echostr=hello", plain_query("AAAAA", ts, nonce));
    let (status, body, _) = run(endpoint(), request(Method::GET, &q, ""), Reply::Success).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    let unsigned = format!("timestamp={ts}&nonce={nonce}&echostr=hello");
    assert_eq!(
        refused(endpoint(), request(Method::GET, &unsigned, "")).await,
        Rejection::MissingSignature("signature")
    );
    let wrong = format!(
        "signature={}&timestamp={ts}&nonce={nonce}&echostr=hello",
        "0".repeat(40)
    );
    assert_eq!(
        refused(endpoint(), request(Method::GET, &wrong, "")).await,
        Rejection::BadSignature
    );
}

#[test]
fn component_crypto_of_wxjava() {
    // V6: Tencent's open-platform crypto sample as WxJava tests it.
    let v = platforms();
    let case = &v["v6"];
    assert!(signature::verify_message(
        s(case, "msg_signature"),
        s(case, "token"),
        s(case, "timestamp"),
        s(case, "nonce"),
        s(case, "encrypt")
    ));
    assert!(!signature::verify_message(
        s(case, "rejected_signature"),
        s(case, "token"),
        s(case, "timestamp"),
        s(case, "nonce"),
        s(case, "encrypt")
    ));
    let now = secs(s(case, "timestamp"));
    let endpoint = Endpoint::component(s(case, "token"), key(case), s(case, "receive_id"))
        .unwrap()
        .clock(FixedClock::at_unix(now));
    let body = format!(
        "<xml><AppId><![CDATA[{}]]></AppId><Encrypt><![CDATA[{}]]></Encrypt></xml>",
        s(case, "receive_id"),
        s(case, "encrypt")
    );
    let query = |sig: &str| {
        format!(
            "timestamp={}&nonce={}&encrypt_type=aes&msg_signature={sig}",
            s(case, "timestamp"),
            s(case, "nonce")
        )
    };
    let check = |sig: &str| match endpoint.check(&Method::POST, Some(&query(sig))).unwrap() {
        wechat_push::Verified::Push(q) => q,
        other => panic!("{other:?}"),
    };
    // Verified and decrypted; the plaintext (`我是中文abcd123`) is no push: 400, not a panic.
    let err = endpoint
        .open(check(s(case, "msg_signature")), body.as_bytes())
        .unwrap_err();
    assert!(matches!(err, Rejection::Malformed(_)), "{err:?}");
    assert_eq!(
        endpoint
            .open(check(s(case, "rejected_signature")), body.as_bytes())
            .unwrap_err(),
        Rejection::BadMsgSignature
    );
    assert_eq!(
        reference_decrypt(
            s(case, "encoding_aes_key"),
            s(case, "encrypt"),
            s(case, "receive_id")
        )
        .unwrap(),
        s(case, "plaintext")
    );
}

/// A component authorisation-event push of `doc`, sealed for V5's component.
fn component_push(v: &Value, doc: &str) -> Request<http_body_util::Full<Bytes>> {
    let case = &v["v5"];
    let encrypt = reference_encrypt(
        &reference_key(s(case, "encoding_aes_key")),
        *b"ticket-prefix-16",
        doc.as_bytes(),
        s(case, "receive_id"),
    );
    let (ts, nonce) = ("1715943329", "42");
    let sig = reference_sign(&["AAAAA", ts, nonce]);
    let msg_sig = reference_sign(&["AAAAA", ts, nonce, &encrypt]);
    let body = format!(
        "<xml><AppId><![CDATA[{}]]></AppId><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>",
        s(case, "receive_id")
    );
    request(
        Method::POST,
        &format!(
            "signature={sig}&timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={msg_sig}"
        ),
        body,
    )
}

fn ticket_doc(ticket: &str, create_time: u64) -> String {
    format!("<xml><AppId><![CDATA[wx134c8103faa5a59e]]></AppId><CreateTime>{create_time}</CreateTime><InfoType><![CDATA[component_verify_ticket]]></InfoType><ComponentVerifyTicket><![CDATA[{ticket}]]></ComponentVerifyTicket></xml>")
}

#[tokio::test]
async fn the_layer_stores_the_verify_ticket_before_the_handler() {
    let v = platforms();
    let tickets = Arc::new(MemoryTicketStore::new());
    let seen: Seen = Arc::default();
    let (record, store) = (seen.clone(), tickets.clone());
    let svc = WechatLayer::from_endpoint(component(&v["v5"], "wx134c8103faa5a59e", "1715943329"))
        .ticket_store(tickets.clone())
        .layer(service_fn(move |req: Request<Message>| {
            let (record, store) = (record.clone(), store.clone());
            async move {
                // Stored already when the handler runs.
                let stored = store.get(req.body().to_user()).await.unwrap();
                assert!(stored.is_some_and(|t| t.create_time() >= req.body().create_time()));
                record.lock().unwrap().push(req.into_body());
                Ok::<_, Infallible>(())
            }
        }));
    for (ticket, at) in [("ticket@@@new", 1715943329), ("ticket@@@old", 1715942729)] {
        let res = svc
            .clone()
            .oneshot(component_push(&v, &ticket_doc(ticket, at)))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body_string(res.into_body()).await, "success");
    }
    // The handler got both pushes, typed.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(matches!(
        seen[0].component_event(),
        Some(ComponentEvent::VerifyTicket { ticket, .. }) if ticket == "ticket@@@new"
    ));
    // A retried older push does not replace the newer ticket.
    let stored = tickets.get("wx134c8103faa5a59e").await.unwrap().unwrap();
    assert_eq!(
        (stored.value(), stored.create_time()),
        ("ticket@@@new", 1715943329)
    );
    assert!(
        stored.is_valid_at(1715943329 + 11 * 3600) && !stored.is_valid_at(1715943329 + 12 * 3600)
    );
    assert!(!format!("{stored:?}").contains("ticket@@@"));
}

#[tokio::test]
async fn other_pushes_leave_the_ticket_store_alone() {
    let v = platforms();
    // A store that fails on every call: any use would answer 503.
    let layer = WechatLayer::from_endpoint(component(&v["v5"], "wx134c8103faa5a59e", "1715943329"))
        .ticket_store(Arc::new(Down));
    let authorized = "<xml><AppId>wx134c8103faa5a59e</AppId><CreateTime>1</CreateTime><InfoType>unauthorized</InfoType><AuthorizerAppid>wx2</AuthorizerAppid></xml>";
    let res = layer
        .layer(service_fn(echo))
        .oneshot(component_push(&v, authorized))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_handler_can_store_the_ticket_itself() {
    let v = platforms();
    let tickets: Arc<dyn TicketStore> = Arc::new(MemoryTicketStore::new());
    let store = tickets.clone();
    let svc = WechatLayer::from_endpoint(component(&v["v5"], "wx134c8103faa5a59e", "1715943329"))
        .layer(service_fn(move |req: Request<Message>| {
            let store = store.clone();
            async move {
                store.remember(req.body()).await?;
                Ok::<_, StoreError>(Reply::Success)
            }
        }));
    let res = svc
        .oneshot(component_push(&v, &ticket_doc("t@@@1", 1715943329)))
        .await
        .unwrap();
    assert_eq!(body_string(res.into_body()).await, "success");
    let stored = tickets.get("wx134c8103faa5a59e").await.unwrap().unwrap();
    assert_eq!(stored.value(), "t@@@1");
    // Other pushes are not tickets.
    let other = Message::from_xml(s(&v["v5"]["post"], "decrypted").as_bytes()).unwrap();
    assert!(!tickets.remember(&other).await.unwrap());
    // The handler's way: a store error is the handler's error.
    let err = Down
        .remember(&Message::from_xml(ticket_doc("t", 1).as_bytes()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "store error: down");
}

/// A store that fails, as a lost Redis connection would.
#[derive(Debug)]
struct Down;

impl TicketStore for Down {
    fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<VerifyTicket>, StoreError>> {
        Box::pin(async { Err(StoreError::new("down")) })
    }
    fn set<'a>(&'a self, _: &'a str, _: VerifyTicket) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError::new("down")) })
    }
}

#[tokio::test]
async fn a_ticket_the_store_refuses_is_answered_503_without_the_handler() {
    let v = platforms();
    let endpoint = component(&v["v5"], "wx134c8103faa5a59e", "1715943329");
    let res = WechatLayer::from_endpoint(endpoint)
        .ticket_store(Arc::new(Down))
        .layer(service_fn(must_not_be_called))
        .oneshot(component_push(&v, &ticket_doc("t", 1715943329)))
        .await
        .unwrap();
    // Not `success`: WeChat pushes the ticket again.
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.extensions().get::<Rejection>(),
        Some(&Rejection::TicketStore)
    );
    assert_eq!(
        body_string(res.into_body()).await,
        "ticket store unavailable"
    );
}

#[tokio::test]
async fn component_authorisation_events_are_typed() {
    let v = platforms();
    let authorized = "<xml><AppId><![CDATA[wx134c8103faa5a59e]]></AppId><CreateTime>1413192760</CreateTime><InfoType><![CDATA[authorized]]></InfoType><AuthorizerAppid><![CDATA[wxba5fad812f8e6fb9]]></AuthorizerAppid><AuthorizationCode><![CDATA[queryauthcode@@@abc]]></AuthorizationCode><AuthorizationCodeExpiredTime>1413196360</AuthorizationCodeExpiredTime><PreAuthCode><![CDATA[preauthcode@@@xyz]]></PreAuthCode></xml>";
    let (status, answer, seen) = run(
        component(&v["v5"], "wx134c8103faa5a59e", "1715943329"),
        component_push(&v, authorized),
        Reply::Success,
    )
    .await;
    assert_eq!((status, answer.as_str()), (StatusCode::OK, "success"));
    let msg = one(&seen);
    assert_eq!(
        (
            msg.to_user(),
            msg.from_user(),
            msg.create_time(),
            msg.msg_type()
        ),
        ("wx134c8103faa5a59e", "", 1413192760, "authorized")
    );
    let Some(ComponentEvent::Authorized(Authorization {
        authorizer_app_id,
        authorization_code,
        authorization_code_expired_time,
        pre_auth_code,
        ..
    })) = msg.component_event()
    else {
        panic!("{msg:?}")
    };
    assert_eq!(
        (
            authorizer_app_id.as_str(),
            authorization_code.as_str(),
            *authorization_code_expired_time
        ),
        ("wxba5fad812f8e6fb9", "queryauthcode@@@abc", 1413196360)
    );
    assert_eq!(pre_auth_code.as_deref(), Some("preauthcode@@@xyz"));

    let update = Message::from_xml(
        authorized
            .replace("[authorized]", "[updateauthorized]")
            .as_bytes(),
    )
    .unwrap();
    assert!(matches!(
        update.component_event(),
        Some(ComponentEvent::UpdateAuthorized(_))
    ));
    let revoked = Message::from_xml(b"<xml><AppId>wx1</AppId><CreateTime>1</CreateTime><InfoType>unauthorized</InfoType><AuthorizerAppid>wx2</AuthorizerAppid></xml>").unwrap();
    assert!(
        matches!(revoked.component_event(), Some(ComponentEvent::Unauthorized { authorizer_app_id, .. }) if authorizer_app_id == "wx2")
    );
    let other = Message::from_xml(b"<xml><AppId>wx1</AppId><CreateTime>1</CreateTime><InfoType>notify_third_fasteregister</InfoType><appid>wx3</appid><status>0</status></xml>").unwrap();
    assert_eq!(
        other.component_event(),
        Some(&ComponentEvent::Unknown {
            info_type: "notify_third_fasteregister".into()
        })
    );
    assert_eq!(other.field("appid").and_then(|v| v.as_text()), Some("wx3"));
    // Neither ToUserName nor InfoType: still an error naming ToUserName.
    let err =
        Message::from_xml(b"<xml><AppId>wx1</AppId><CreateTime>1</CreateTime></xml>").unwrap_err();
    assert!(err.to_string().contains("ToUserName"), "{err}");
}

#[test]
fn receive_ids_are_validated_and_empty_means_empty() {
    let key = || EncodingAesKey::new(ROBOT_KEY).unwrap();
    for bad in [
        ReceiveId::CorpId(String::new()),
        ReceiveId::SuiteId("ww 1".into()),
    ] {
        let err = Endpoint::wecom("Token1", key(), bad).unwrap_err();
        assert_eq!(err, wechat_push::ConfigError::ReceiveId);
        assert!(err.to_string().contains("ReceiveId::Empty"), "{err}");
    }
    assert!(Endpoint::component("Token1", key(), "").is_err());
    assert!(Endpoint::wecom("Token1", key(), ReceiveId::Empty).is_ok());
    assert_eq!(ReceiveId::Empty.as_str(), "");
    // A classic endpoint still refuses an empty AppID; a WeCom one takes a key ring with an
    // empty receive id (a key change on a robot).
    assert!(Endpoint::new("Token1")
        .unwrap()
        .key_ring(wechat_push::KeyRing::new(key(), ""))
        .is_err());
    let robot = Endpoint::wecom_robot("Token1", key()).unwrap();
    assert!(robot
        .key_ring(wechat_push::KeyRing::new(key(), "").with_previous(key()))
        .is_ok());
    // Debug redacts the token.
    assert!(!format!(
        "{:?}",
        Endpoint::wecom("Secret123", key(), ReceiveId::Empty).unwrap()
    )
    .contains("Secret123"));
}

/// A WeCom endpoint in pass-through mode, in front of an axum handler taking `Message`, over a
/// real loopback connection: the handler's `Reply` is sealed for the corp.
#[cfg(feature = "axum")]
#[tokio::test]
async fn wecom_in_front_of_an_axum_handler() {
    use axum::routing::post;

    let v = platforms();
    let case = &v["v3"];
    let (q, body) = post_of(case);
    let layer = WechatLayer::from_endpoint(wecom(case, corp(case), s(&case["post"], "timestamp")));
    async fn handler(msg: Message) -> Reply {
        match msg.kind() {
            Kind::Text { content, .. } => {
                Reply::text(format!("{content}, agent {:?}", msg.agent_id()))
            }
            _ => Reply::Empty,
        }
    }
    let router = axum::Router::new().route("/wecom", post(handler).layer(layer.pass_through()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let (status, _, answer) = send(addr, Method::POST, &format!("/wecom?{q}"), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let sealed = sealed_envelope("xml", &answer).unwrap();
    let doc = reference_decrypt(
        s(case, "encoding_aes_key"),
        &sealed.encrypt,
        "wx49f0ab532d5d035a",
    )
    .unwrap();
    assert_eq!(xml_field(&doc, "Content"), Some("test, agent Some(1)"));
    // The handshake, answered by the layer.
    let get = &case["get"];
    let hq = wecom_query(
        s(get, "msg_signature"),
        s(get, "timestamp"),
        s(get, "nonce"),
        Some(s(get, "echostr")),
    );
    let layer = WechatLayer::from_endpoint(wecom(case, corp(case), s(get, "timestamp")));
    let router = axum::Router::new().route(
        "/wecom",
        post(handler).get(handler).layer(layer.pass_through()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let (status, _, answer) = send(addr, Method::GET, &format!("/wecom?{hq}"), "").await;
    assert_eq!(
        (status, answer.as_str()),
        (StatusCode::OK, s(get, "expected_body"))
    );
}

/// A plaintext ticket push on a layer with the replay guard too: the guard's look-up comes
/// first, then the ticket is kept (it used to be dropped when both were on).
#[tokio::test]
async fn a_ticket_is_kept_behind_the_replay_guard_too() {
    let case = Case::new(0);
    let tickets = Arc::new(MemoryTicketStore::new());
    let svc = case
        .layer()
        .replay_guard(wechat_push::replay::MemoryReplayStore::new(100))
        .ticket_store(tickets.clone())
        .layer(service_fn(echo));
    let doc = ticket_doc("ticket@@@plain", case.timestamp());
    let res = svc
        .oneshot(case.plain_post(http_body_util::Full::new(Bytes::from(doc))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let stored = tickets.get("wx134c8103faa5a59e").await.unwrap();
    assert_eq!(
        stored.map(|t| t.value().to_owned()).as_deref(),
        Some("ticket@@@plain")
    );
}
