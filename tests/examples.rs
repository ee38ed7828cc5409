//! docs/examples.md against the example servers themselves: `passive_reply` and `axum_app` are built
//! with cargo (this test's features plus `axum`, this test's profile), started as processes with
//! `BIND=127.0.0.1:0`, found through their `listening on` line and driven over loopback HTTP with
//! a real client (hyper-util's), or a raw TCP stream where the test must pace the body itself.
//! Requests are signed with a fresh timestamp (the examples run on the real clock) and built
//! from the first encrypt case of `tests/data/vectors.json`; sealed replies are verified and
//! opened before they are compared.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{
    plain_query, reference_decrypt, reference_encrypt, reference_key, reference_sign, s, Case,
};
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use wechat_push::{crypto, signature};

/// How long any single step may take: a request, a start-up, an exit.
const WAIT: Duration = Duration::from_secs(10);
/// The push's sender, and the official account it was sent to (the vectors' names).
const OPENID: &str = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY";
const ACCOUNT: &str = "gh_97417a04a28d";

// ---------------------------------------------------------------------------------------------
// The example processes.

/// Builds both examples once per test run, with the features this test was built with (so the
/// library is not built again) plus `axum`; answers an example's executable.
fn executable(example: &str) -> PathBuf {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let mut features = vec!["axum"];
        for (on, feature) in [
            (cfg!(feature = "tracing"), "tracing"),
            (cfg!(feature = "tokio"), "tokio"),
            (cfg!(feature = "client"), "client"),
            (cfg!(feature = "redis"), "redis"),
        ] {
            if on {
                features.push(feature);
            }
        }
        let mut cargo = Command::new(env!("CARGO"));
        // What cargo sets for this test process describes this package to it; passed on, it
        // would look like a changed environment to build scripts that watch it (ring's), and
        // every build would redo them.
        for (var, _) in std::env::vars_os() {
            let var = var.to_string_lossy();
            if var.starts_with("CARGO_PKG_")
                || var.starts_with("CARGO_BIN_")
                || var.starts_with("CARGO_MANIFEST_")
                || matches!(
                    &*var,
                    "OUT_DIR"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                )
            {
                cargo.env_remove(&*var);
            }
        }
        cargo
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--message-format=json-render-diagnostics"])
            .args(["-p", "wechat-push", "--no-default-features", "--features"])
            .arg(features.join(","))
            .args(["--example", "passive_reply", "--example", "axum_app"])
            .args(["--example", "multi_app"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let mut child = cargo.spawn().expect("cargo build starts");
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_string(&mut out)
            .expect("cargo's output is UTF-8");
        // Bounded by the build itself; generous for a cold machine.
        let status = wait_for_exit(&mut child, Duration::from_secs(600));
        assert!(status.success(), "cargo build of the examples: {status}");
        out.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .filter_map(|m| {
                let name = m["target"]["name"].as_str()?.to_owned();
                let exe = m["executable"].as_str()?.into();
                Some((name, exe))
            })
            .collect()
    });
    built
        .get(example)
        .unwrap_or_else(|| panic!("cargo built no executable for {example}: {built:?}"))
        .clone()
}

/// Polls `child` until it exits; kills it and fails after `limit`.
fn wait_for_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} still running after {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The variables every example needs: the first encrypt case's token, AppID and key.
fn contract_env(case: &Case) -> Vec<(&'static str, String)> {
    vec![
        ("BIND", "127.0.0.1:0".to_owned()),
        ("WECHAT_TOKEN", case.token().to_owned()),
        ("WECHAT_APPID", case.appid().to_owned()),
        (
            "WECHAT_ENCODING_AES_KEY",
            s(&case.v, "encoding_aes_key").to_owned(),
        ),
    ]
}

/// Starts `example` with exactly `env` (nothing inherited).
fn start(example: &str, env: &[(&str, String)]) -> Child {
    Command::new(executable(example))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{example} starts: {e}"))
}

/// Reads `pipe` to the end on a thread (so the child never blocks on a full pipe).
fn drain(pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(pipe).read_to_string(&mut text);
        text
    })
}

/// A running example server; killed when dropped (a failing test leaves nothing behind).
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    stderr: Option<JoinHandle<String>>,
}

impl Server {
    /// Starts `example` on a free loopback port and waits for its `listening on` line.
    fn spawn(name: &'static str, env: &[(&str, String)]) -> Self {
        let mut child = start(name, env);
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = Some(drain(child.stderr.take().expect("piped stderr")));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {} // keep the pipe open and drained
        });
        let mut server = Self {
            name,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let line = match rx.recv_timeout(WAIT) {
            Ok(Some(Ok(line))) => line,
            other => panic!("{name}: no `listening on` line within {WAIT:?}: {other:?}"),
        };
        let addr = line
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.strip_suffix("/wechat"))
            .unwrap_or_else(|| panic!("{name}: unexpected start-up line {line:?}"));
        server.addr = addr
            .parse()
            .expect("the start-up line names a socket address");
        assert!(
            server.addr.ip().is_loopback() && server.addr.port() != 0,
            "{line}"
        );
        server
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {}", self.child.id());
    }

    /// Waits (bounded) for the exit after [`terminate`](Self::terminate); answers the status
    /// and everything the server wrote to stderr.
    fn exit(mut self) -> (ExitStatus, String) {
        let status = wait_for_exit(&mut self.child, WAIT);
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().expect("stderr reader"))
            .unwrap_or_default();
        (status, stderr)
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and answers.

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A plaintext-mode query signed with `token`.
fn plain_signed(token: &str, timestamp: u64, nonce: &str) -> String {
    format!(
        "{}&openid={OPENID}",
        plain_query(token, &timestamp.to_string(), nonce)
    )
}

/// A safe-mode query for `encrypt`, signed with `token`.
fn safe_signed(token: &str, timestamp: u64, nonce: &str, encrypt: &str) -> String {
    let ts = timestamp.to_string();
    let msg_signature = signature::sign_message(token, &ts, nonce, encrypt);
    format!(
        "{}&encrypt_type=aes&msg_signature={msg_signature}",
        plain_signed(token, timestamp, nonce)
    )
}

fn xml_envelope(encrypt: &str) -> String {
    format!("<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
}

fn json_envelope(encrypt: &str) -> String {
    serde_json::json!({ "ToUserName": ACCOUNT, "Encrypt": encrypt }).to_string()
}

/// The passive text reply to `content`, as the examples write it (`CreateTime` normalized).
fn xml_reply(content: &str) -> String {
    format!("<xml><ToUserName><![CDATA[{OPENID}]]></ToUserName><FromUserName><![CDATA[{ACCOUNT}]]></FromUserName><CreateTime>NOW</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content></xml>")
}

fn json_reply(content: &str) -> String {
    format!(
        r#"{{"ToUserName":"{OPENID}","FromUserName":"{ACCOUNT}","CreateTime":NOW,"MsgType":"text","Content":{}}}"#,
        Value::from(content)
    )
}

/// What docs/examples.md says the answer to a probe is.
#[derive(Debug)]
enum Expect {
    /// 200 with this `Content-Type` and this body (sealed replies opened, see [`open_reply`]).
    Ok(&'static str, String),
    /// This status with a short one-line `text/plain` reason containing this text.
    Rejected(u16, &'static str),
    /// 405 with `Allow: GET, POST`.
    NotAllowed,
    /// 404.
    NotFound,
}

/// One request of the comparison, and its contractual answer.
struct Probe {
    name: &'static str,
    method: Method,
    target: String,
    content_type: &'static str,
    body: String,
    expect: Expect,
}

impl Probe {
    fn new(
        name: &'static str,
        method: Method,
        target: String,
        body: String,
        expect: Expect,
    ) -> Self {
        let content_type = if body.starts_with('{') {
            "application/json"
        } else {
            "text/xml"
        };
        Self {
            name,
            method,
            target,
            content_type,
            body,
            expect,
        }
    }

    fn post(name: &'static str, query: &str, body: String, expect: Expect) -> Self {
        Self::new(name, Method::POST, format!("/wechat?{query}"), body, expect)
    }

    /// A verified push, which reaches the example's handler.
    fn is_push(&self) -> bool {
        self.method == Method::POST && matches!(self.expect, Expect::Ok(..))
    }

    fn is_encrypted(&self) -> bool {
        self.target.contains("encrypt_type=aes")
    }
}

fn check(name: &str, answer: &Answer, expect: &Expect) {
    let text_plain = Some("text/plain; charset=utf-8");
    match expect {
        Expect::Ok(content_type, body) => {
            assert_eq!(answer.status, 200, "{name}: {answer:?}");
            assert_eq!(
                answer.content_type.as_deref(),
                Some(*content_type),
                "{name}"
            );
            assert_eq!(&answer.body, body, "{name}");
        }
        Expect::Rejected(status, reason) => {
            assert_eq!(answer.status, *status, "{name}: {answer:?}");
            assert_eq!(answer.content_type.as_deref(), text_plain, "{name}");
            let short = !answer.body.is_empty() && answer.body.len() < 120;
            assert!(
                short && !answer.body.contains('\n'),
                "{name}: reason {:?}",
                answer.body
            );
            assert!(
                answer.body.contains(reason),
                "{name}: reason {:?}",
                answer.body
            );
        }
        Expect::NotAllowed => {
            assert_eq!(answer.status, 405, "{name}: {answer:?}");
            assert_eq!(answer.allow.as_deref(), Some("GET, POST"), "{name}");
        }
        Expect::NotFound => assert_eq!(answer.status, 404, "{name}: {answer:?}"),
    }
}

/// The probes, signed now with the first encrypt case's token (nonces tell them apart).
fn probes(case: &Case) -> Vec<Probe> {
    let token = case.token();
    let ts = now();
    let (xml, json) = (case.format("xml"), case.format("json"));
    let key: [u8; 32] = hex::decode(s(&case.v, "aes_key_hex"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let seal = |doc: &str, appid: &str| {
        reference_encrypt(&key, *b"0123456789abcdef", doc.as_bytes(), appid)
    };
    let text_xml = |content: &str| {
        format!("<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content><MsgId>{ts}1</MsgId></xml>")
    };
    let text_json = |content: &str| {
        serde_json::json!({
            "ToUserName": ACCOUNT, "FromUserName": OPENID, "CreateTime": ts,
            "MsgType": "text", "Content": content, "MsgId": ts * 10 + 2,
        })
        .to_string()
    };
    let image = format!("<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://example.com/a.jpg]]></PicUrl><MediaId><![CDATA[media_id]]></MediaId><MsgId>{ts}3</MsgId></xml>");
    let event = serde_json::json!({
        "ToUserName": ACCOUNT, "FromUserName": OPENID, "CreateTime": ts,
        "MsgType": "event", "Event": "user_enter_tempsession", "SessionFrom": "sessionFrom",
    })
    .to_string();
    let utf8 = "你好，世界 🌏 & <b> \"quoted\"";
    let (utf8_xml, utf8_json) = (
        seal(&text_xml(utf8), case.appid()),
        seal(&text_json(utf8), case.appid()),
    );
    let (event_seal, other_app) = (
        seal(&event, case.appid()),
        seal(&text_xml("hi"), "wxffffffffffffffff"),
    );
    let plain = |nonce| plain_signed(token, ts, nonce);
    let safe = |nonce, encrypt: &str| safe_signed(token, ts, nonce, encrypt);
    let ok = Expect::Ok;
    let (app_xml, app_json, text) = (
        "application/xml",
        "application/json",
        "text/plain; charset=utf-8",
    );
    vec![
        Probe::new(
            "handshake",
            Method::GET,
            format!("/wechat?{}&echostr=4375120948345356249", plain("1")),
            String::new(),
            ok(text, "4375120948345356249".into()),
        ),
        Probe::post(
            "plaintext XML text",
            &plain("2"),
            s(xml, "plaintext").into(),
            ok(app_xml, xml_reply("hello")),
        ),
        Probe::post(
            "plaintext JSON text",
            &plain("3"),
            s(json, "plaintext").into(),
            ok(app_json, json_reply("hello")),
        ),
        Probe::post(
            "safe-mode XML text",
            &safe("4", s(xml, "encrypt")),
            s(xml, "request_body_safe").into(),
            ok(app_xml, format!("sealed: {}", xml_reply("hello"))),
        ),
        Probe::post(
            "safe-mode JSON text",
            &safe("5", s(json, "encrypt")),
            s(json, "request_body_safe").into(),
            ok(app_json, format!("sealed: {}", json_reply("hello"))),
        ),
        Probe::post(
            "compatible-mode XML text",
            &safe("6", s(xml, "encrypt")),
            s(xml, "request_body_compatible").into(),
            ok(app_xml, format!("sealed: {}", xml_reply("hello"))),
        ),
        Probe::post(
            "safe-mode XML text, non-ASCII",
            &safe("7", &utf8_xml),
            xml_envelope(&utf8_xml),
            ok(app_xml, format!("sealed: {}", xml_reply(utf8))),
        ),
        Probe::post(
            "safe-mode JSON text, non-ASCII and quotes",
            &safe("8", &utf8_json),
            json_envelope(&utf8_json),
            ok(app_json, format!("sealed: {}", json_reply(utf8))),
        ),
        Probe::post(
            "plaintext XML image",
            &plain("9"),
            image.clone(),
            ok(text, "success".into()),
        ),
        Probe::post(
            "safe-mode JSON event",
            &safe("10", &event_seal),
            json_envelope(&event_seal),
            ok(text, "success".into()),
        ),
        Probe::post(
            "signed with another token",
            &plain_signed("NotTheToken1", ts, "11"),
            s(xml, "plaintext").into(),
            Expect::Rejected(401, "signature"),
        ),
        Probe::new(
            "no query",
            Method::POST,
            "/wechat".into(),
            s(xml, "plaintext").into(),
            Expect::Rejected(401, ""),
        ),
        Probe::post(
            "msg_signature over another Encrypt",
            &safe("13", s(json, "encrypt")),
            s(xml, "request_body_safe").into(),
            Expect::Rejected(401, "msg_signature"),
        ),
        Probe::post(
            "timestamp 1000 s old",
            &plain_signed(token, ts - 1000, "14"),
            s(xml, "plaintext").into(),
            Expect::Rejected(401, "timestamp"),
        ),
        Probe::post(
            "truncated XML",
            &plain("15"),
            s(xml, "plaintext")[..60].into(),
            Expect::Rejected(400, ""),
        ),
        Probe::post(
            "Encrypt sealed for another AppID",
            &safe("16", &other_app),
            xml_envelope(&other_app),
            Expect::Rejected(400, ""),
        ),
        Probe::post(
            "Encrypt that does not decrypt",
            &safe("17", "AAAAAAAAAAAAAAAAAAAAAA=="),
            xml_envelope("AAAAAAAAAAAAAAAAAAAAAA=="),
            Expect::Rejected(400, ""),
        ),
        Probe::new(
            "PUT",
            Method::PUT,
            format!("/wechat?{}", plain("18")),
            image.clone(),
            Expect::NotAllowed,
        ),
        Probe::new(
            "DELETE",
            Method::DELETE,
            format!("/wechat?{}", plain("19")),
            String::new(),
            Expect::NotAllowed,
        ),
        Probe::new(
            "PATCH",
            Method::PATCH,
            "/wechat".into(),
            String::new(),
            Expect::NotAllowed,
        ),
        Probe::new(
            "OPTIONS",
            Method::OPTIONS,
            "/wechat".into(),
            String::new(),
            Expect::NotAllowed,
        ),
        Probe::new(
            "HEAD",
            Method::HEAD,
            format!("/wechat?{}", plain("20")),
            String::new(),
            Expect::NotAllowed,
        ),
        Probe::new(
            "GET /",
            Method::GET,
            "/".into(),
            String::new(),
            Expect::NotFound,
        ),
        Probe::new(
            "POST /wechat/ (trailing slash)",
            Method::POST,
            format!("/wechat/?{}", plain("21")),
            s(xml, "plaintext").into(),
            Expect::NotFound,
        ),
        Probe::new(
            "POST /wechat/more",
            Method::POST,
            format!("/wechat/more?{}", plain("22")),
            s(xml, "plaintext").into(),
            Expect::NotFound,
        ),
        Probe::new(
            "GET /other",
            Method::GET,
            "/other".into(),
            String::new(),
            Expect::NotFound,
        ),
    ]
}

/// Sends every probe to `addr` (one keep-alive client), then the two oversized bodies; answers
/// each answer by name. Outside `/wechat` only the status is kept (the 404 bodies may differ).
async fn exercise(addr: SocketAddr, case: &Case, probes: &[Probe]) -> Vec<(&'static str, Answer)> {
    let client = client();
    let mut answers = Vec::new();
    for probe in probes {
        let mut answer = call(&client, addr, probe, case).await;
        if probe.target.split('?').next() != Some("/wechat") {
            answer = Answer {
                status: answer.status,
                content_type: None,
                allow: None,
                body: String::new(),
            };
        }
        answers.push((probe.name, answer));
    }
    let query = plain_signed(case.token(), now(), "oversize");
    answers.push((
        "2 MiB declared",
        declared_oversize(addr, &query, case).await,
    ));
    answers.push((
        "2 MiB streamed",
        streamed_oversize(addr, &query, case).await,
    ));
    answers
}

/// What the test compares of an answer: status, `Content-Type` and `Allow` (on `/wechat`),
/// and the body, with sealed replies opened and `CreateTime` checked and normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    allow: Option<String>,
    body: String,
}

impl Answer {
    fn new(status: u16, headers: &[(String, String)], body: String, case: &Case) -> Self {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        Self {
            status,
            content_type: header("content-type"),
            // Only a 405's `Allow` is part of the contract. axum_app also sends `Allow: POST`
            // with every other answer to a GET (the handshake included): axum's method router
            // adds it to whatever its method fallback answers, and the layer wraps that
            // fallback. Left out of the comparison; reported.
            allow: header("allow").filter(|_| status == 405),
            body: open_reply(case, &body),
        }
    }
}

/// A sealed reply (`Encrypt`, `MsgSignature`, `TimeStamp`, `Nonce`) is verified and opened
/// into `sealed: DOCUMENT`; every reply's `CreateTime` must be current and becomes `NOW`.
fn open_reply(case: &Case, body: &str) -> String {
    let envelope = if body.starts_with("<xml>") && body.contains("<Encrypt>") {
        Some((
            xml_field(body, "Encrypt"),
            xml_field(body, "MsgSignature"),
            xml_field(body, "TimeStamp"),
            xml_field(body, "Nonce"),
        ))
    } else if body.starts_with('{') && body.contains("\"Encrypt\"") {
        let v: Value = serde_json::from_str(body).expect("a JSON envelope");
        let field = |k: &str| match &v[k] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Some((
            field("Encrypt"),
            field("MsgSignature"),
            field("TimeStamp"),
            field("Nonce"),
        ))
    } else {
        None
    };
    let Some((encrypt, msg_signature, timestamp, nonce)) = envelope else {
        return normalize_create_time(body);
    };
    assert!(
        signature::verify_message(&msg_signature, case.token(), &timestamp, &nonce, &encrypt),
        "the sealed reply's MsgSignature does not verify: {body}"
    );
    let ts: u64 = timestamp.parse().expect("a numeric TimeStamp");
    assert!(now().abs_diff(ts) <= 60, "stale TimeStamp {ts}");
    let opened = crypto::decrypt(&case.key(), &encrypt, case.appid())
        .unwrap_or_else(|e| panic!("the sealed reply does not open: {e:?}: {body}"));
    format!("sealed: {}", normalize_create_time(opened.as_str()))
}

/// The text of `<name>` in an XML document, without its CDATA wrapper.
fn xml_field(doc: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = doc
        .find(&open)
        .unwrap_or_else(|| panic!("no <{name}> in {doc}"))
        + open.len();
    let end = start
        + doc[start..]
            .find(&close)
            .unwrap_or_else(|| panic!("no </{name}> in {doc}"));
    let text = &doc[start..end];
    text.strip_prefix("<![CDATA[")
        .and_then(|t| t.strip_suffix("]]>"))
        .unwrap_or(text)
        .to_owned()
}

/// Checks that a reply's `CreateTime` is within a minute of now and replaces it with `NOW`.
fn normalize_create_time(doc: &str) -> String {
    for (open, close) in [("<CreateTime>", "</CreateTime>"), ("\"CreateTime\":", ",")] {
        if let Some(at) = doc.find(open) {
            let start = at + open.len();
            let len = doc[start..].find(close).expect("CreateTime ends");
            let t: u64 = doc[start..start + len].parse().expect("numeric CreateTime");
            assert!(now().abs_diff(t) <= 60, "CreateTime {t} is not current");
            return format!("{}NOW{}", &doc[..start], &doc[start + len..]);
        }
    }
    doc.to_owned()
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `probe` to `addr` with the real client.
async fn call(client: &HttpClient, addr: SocketAddr, probe: &Probe, case: &Case) -> Answer {
    let req = Request::builder()
        .method(probe.method.clone())
        .uri(format!("http://{addr}{}", probe.target))
        .header(header::CONTENT_TYPE, probe.content_type)
        .body(Full::new(Bytes::from(probe.body.clone())))
        .expect("a valid request");
    let exchange = async {
        let res = client.request(req).await.expect("an answer");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("the body").to_bytes();
        (parts, body)
    };
    let (parts, body) = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{}: no answer within {WAIT:?}", probe.name));
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("<binary>").to_owned()))
        .collect();
    let body = String::from_utf8(body.to_vec()).expect("a UTF-8 body");
    Answer::new(parts.status.as_u16(), &headers, body, case)
}

/// An HTTP/1.1 connection driven by hand, for requests whose body the test paces.
struct Raw {
    read: OwnedReadHalf,
    write: Option<OwnedWriteHalf>,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect within the limit")
            .expect("connect");
        let (read, write) = stream.into_split();
        Self {
            read,
            write: Some(write),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let write = self.write.as_mut().expect("the write half");
        tokio::time::timeout(WAIT, write.write_all(bytes))
            .await
            .expect("write within the limit")
            .expect("write");
    }

    /// Reads one response (an interim `100 Continue` counts as one): status, headers, body
    /// (by `Content-Length`).
    async fn response(&mut self) -> (u16, Vec<(String, String)>, String) {
        tokio::time::timeout(WAIT, self.read_response())
            .await
            .expect("a response within the limit")
    }

    async fn read_response(&mut self) -> (u16, Vec<(String, String)>, String) {
        let head_end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await;
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map_or(0, |(_, v)| v.parse().expect("a numeric Content-Length"));
        while self.buf.len() < head_end + length {
            self.fill().await;
        }
        let body = String::from_utf8(self.buf[head_end..head_end + length].to_vec())
            .expect("a UTF-8 body");
        self.buf.drain(..head_end + length);
        (status, headers, body)
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = self.read.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed mid-response: {:?}", self.buf);
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

/// 2 MiB declared by `Content-Length`, not one byte of it sent: the 413 must come anyway (the
/// body is refused before it is read).
async fn declared_oversize(addr: SocketAddr, query: &str, case: &Case) -> Answer {
    let mut raw = Raw::connect(addr).await;
    let head = format!(
        "POST /wechat?{query} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\r\n",
        2 << 20
    );
    raw.send(head.as_bytes()).await;
    let (status, headers, body) = raw.response().await;
    Answer::new(status, &headers, body, case)
}

/// 2 MiB streamed in chunks without a length: answered 413 once past the limit, before the
/// body ends.
async fn streamed_oversize(addr: SocketAddr, query: &str, case: &Case) -> Answer {
    let mut raw = Raw::connect(addr).await;
    let mut write = raw.write.take().expect("the write half");
    let head = format!(
        "POST /wechat?{query} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: text/xml\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        let chunk = [b' '; 64 * 1024];
        for _ in 0..32 {
            let size = format!("{:x}\r\n", chunk.len());
            write.write_all(size.as_bytes()).await?;
            write.write_all(&chunk).await?;
            write.write_all(b"\r\n").await?;
        }
        write.write_all(b"0\r\n\r\n").await?;
        std::io::Result::Ok(write)
    });
    let (status, headers, body) = raw.response().await;
    writer.abort(); // the server may have stopped reading: that is the point
    Answer::new(status, &headers, body, case)
}

// ---------------------------------------------------------------------------------------------
// The tests.

const EXAMPLES: [&str; 2] = ["passive_reply", "axum_app"];

/// Every row of docs/examples.md's table for `/wechat` (and 404 elsewhere), asked of both examples:
/// each answer is the contract's, and `axum_app` answers exactly as `passive_reply` does
/// (status, `Content-Type`, a 405's `Allow`, the body; sealed replies verified, opened and
/// compared opened). Then SIGTERM: both exit 0, and `axum_app`'s handler (which counts in its
/// `State`) ran once per verified push and never for a request the layer refused.
#[tokio::test]
async fn both_examples_keep_the_contract_with_the_same_answers() {
    let case = Case::new(0);
    let env = contract_env(&case);
    let servers = EXAMPLES.map(|name| Server::spawn(name, &env));
    let probes = probes(&case);
    let mut answers = Vec::new();
    for server in &servers {
        let answers_of = exercise(server.addr, &case, &probes).await;
        for ((name, answer), probe) in answers_of.iter().zip(&probes) {
            check(&format!("{}: {name}", server.name), answer, &probe.expect);
        }
        for (name, answer) in &answers_of[probes.len()..] {
            let name = format!("{}: {name}", server.name);
            check(&name, answer, &Expect::Rejected(413, ""));
        }
        answers.push(answers_of);
    }
    for (passive, axum) in answers[0].iter().zip(&answers[1]) {
        assert_eq!(passive, axum, "passive_reply and axum_app answer alike");
    }
    assert_eq!(answers[0].len(), answers[1].len());

    let pushes = probes.iter().filter(|p| p.is_push()).count();
    let encrypted = probes
        .iter()
        .filter(|p| p.is_push() && p.is_encrypted())
        .count();
    assert_eq!(
        (pushes, encrypted),
        (9, 6),
        "the probes changed: update this count"
    );
    for server in servers {
        server.terminate();
        let name = server.name;
        let (status, stderr) = server.exit();
        assert_eq!(
            status.code(),
            Some(0),
            "{name} after SIGTERM; stderr: {stderr}"
        );
        if name == "axum_app" {
            assert_eq!(
                stderr.trim(),
                format!("axum_app: pushes handled: {pushes}, encrypted: {encrypted}")
            );
        }
    }
}

/// `GET /healthz` is `axum_app`'s own route: 200 `ok` without any signature (and not a route
/// of `passive_reply`, which answers it 404 like any path but `/wechat`).
#[tokio::test]
async fn axum_app_answers_healthz_without_a_signature() {
    let case = Case::new(0);
    let env = contract_env(&case);
    let client = client();
    for (name, expected) in [
        ("axum_app", (200, "ok")),
        ("passive_reply", (404, "not found")),
    ] {
        let server = Server::spawn(name, &env);
        let probe = Probe::new(
            "healthz",
            Method::GET,
            "/healthz".into(),
            String::new(),
            Expect::NotFound,
        );
        let answer = call(&client, server.addr, &probe, &case).await;
        assert_eq!((answer.status, answer.body.as_str()), expected, "{name}");
    }
}

/// SIGTERM while a push is being received (its head read, `100 Continue` sent, half its body
/// still to come): the server stops accepting connections, yet answers that push in full
/// once the rest of its body arrives, and then exits 0.
#[tokio::test]
async fn sigterm_finishes_the_push_in_flight_then_exits_0() {
    let case = Case::new(0);
    let env = contract_env(&case);
    let body = s(case.format("xml"), "plaintext");
    let (first, rest) = body.split_at(body.len() / 2);
    for name in EXAMPLES {
        let mut server = Server::spawn(name, &env);
        let addr = server.addr;
        let mut raw = Raw::connect(addr).await;
        let query = plain_signed(case.token(), now(), "inflight");
        let head = format!(
            "POST /wechat?{query} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
            body.len()
        );
        raw.send(head.as_bytes()).await;
        let (status, _, _) = raw.response().await;
        assert_eq!(status, 100, "{name}: the push is being read");
        raw.send(first.as_bytes()).await;

        server.terminate();
        // Stops accepting: new connections are refused (once the signal is handled).
        let deadline = Instant::now() + WAIT;
        loop {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                _ if Instant::now() > deadline => panic!("{name} still accepts after SIGTERM"),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert!(server.running(), "{name} exited with a push in flight");

        raw.send(rest.as_bytes()).await;
        let (status, headers, reply) = raw.response().await;
        let answer = Answer::new(status, &headers, reply, &case);
        check(
            name,
            &answer,
            &Expect::Ok("application/xml", xml_reply("hello")),
        );
        let (status, stderr) = server.exit();
        assert_eq!(status.code(), Some(0), "{name}; stderr: {stderr}");
    }
}

/// A missing or invalid variable: a non-zero exit and one line on stderr naming it, before
/// anything is bound (no `listening on` line).
#[test]
fn a_bad_variable_is_a_start_up_error_naming_it() {
    let case = Case::new(0);
    let good = contract_env(&case);
    let without = |var: &str| -> Vec<(&'static str, String)> {
        good.iter().filter(|(k, _)| *k != var).cloned().collect()
    };
    let with = |var: &'static str, value: &str| -> Vec<(&'static str, String)> {
        let mut env = without(var);
        env.push((var, value.to_owned()));
        env
    };
    let cases = [
        ("WECHAT_TOKEN", without("WECHAT_TOKEN")),
        ("WECHAT_APPID", without("WECHAT_APPID")),
        ("WECHAT_TOKEN", with("WECHAT_TOKEN", "a!")),
        (
            "WECHAT_ENCODING_AES_KEY",
            with("WECHAT_ENCODING_AES_KEY", "tooshort"),
        ),
        ("WECHAT_APPID", with("WECHAT_APPID", "not an app id")),
        ("BIND", with("BIND", "localhost")),
    ];
    for name in EXAMPLES {
        for (var, env) in &cases {
            let mut child = start(name, env);
            let stdout = drain(child.stdout.take().expect("piped stdout"));
            let stderr = drain(child.stderr.take().expect("piped stderr"));
            let status = wait_for_exit(&mut child, WAIT);
            let (stdout, stderr) = (
                stdout.join().expect("stdout"),
                stderr.join().expect("stderr"),
            );
            assert!(!status.success(), "{name} without a good {var}: {status}");
            assert_eq!(stdout, "", "{name}: nothing is bound without a good {var}");
            assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr:?}");
            assert!(stderr.contains(var), "{name}: {stderr:?} names {var}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// multi_app (docs/examples.md, `multi_app`): one push per app, then an app added by SIGHUP.

/// `multi_app` serves each configured app with its own keys on `/wechat/{app}`: a plaintext
/// and a sealed mini program, an Open Platform authoriser (the component's keys, its
/// original id checked, `msg_signature` required and `signature` optional) and the
/// component's authorisation-event URL (ticket and `authorized` pushes, addressed by `AppId`);
/// a push signed for one app is refused at another's path and an unknown app is 404; after an app is added to the file and SIGHUP is sent, it is served
/// without a restart.
#[tokio::test]
async fn multi_app_serves_each_app_and_takes_a_new_one_on_sighup() {
    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const COMPONENT_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let file = std::env::temp_dir().join(format!(
        "wechat-push-multi-app-{}-{}.conf",
        std::process::id(),
        now()
    ));
    let apps = format!(
        "# two mini programs, an authoriser and the component's event URL\n\
         shop=mp:ShopToken1:{KEY}:wx1111111111111111\n\
         club=mp:ClubToken2\n\
         wxba5fad812f8e6fb9=component:AAAAA:{COMPONENT_KEY}:wx134c8103faa5a59e:gh_97417a04a28d\n\
         events=component:AAAAA:{COMPONENT_KEY}:wx134c8103faa5a59e\n"
    );
    std::fs::write(&file, &apps).unwrap();
    let mut server = Server::spawn(
        "multi_app",
        &[
            ("BIND", "127.0.0.1:0".to_owned()),
            ("WECHAT_APPS_FILE", file.display().to_string()),
        ],
    );
    let client = client();
    let text = |to: &str, content: &str| {
        format!(
            "<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>\
             <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>\
             <MsgId>1</MsgId></xml>",
            now()
        )
    };
    let post = |path: String, query: String, body: String| {
        let client = client.clone();
        let addr = server.addr;
        async move {
            let req = Request::post(format!("http://{addr}{path}?{query}"))
                .header(header::CONTENT_TYPE, "text/xml")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let res = tokio::time::timeout(WAIT, client.request(req))
                .await
                .expect("an answer in time")
                .expect("an answer");
            let status = res.status().as_u16();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let sealed = |key: &str, appid: &str, token: &str, to: &str, doc: String| {
        let key = wechat_push::EncodingAesKey::new(key).unwrap();
        let encrypt = crypto::encrypt(&key, doc.as_bytes(), appid).unwrap();
        let query = safe_signed(token, now(), "42", &encrypt);
        let body = format!(
            "<xml><ToUserName><![CDATA[{to}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        );
        (query, body)
    };
    let open = |key: &str, appid: &str, body: &str| {
        let key = wechat_push::EncodingAesKey::new(key).unwrap();
        crypto::decrypt(&key, &xml_field(body, "Encrypt"), appid)
            .unwrap()
            .as_str()
            .to_owned()
    };

    // club: plaintext.
    let (status, body) = post(
        "/wechat/club".into(),
        plain_signed("ClubToken2", now(), "1"),
        text("gh_club", "hi"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<![CDATA[club: hi]]>"), "{body}");
    // shop: sealed with shop's key and AppID, answered sealed.
    let (query, envelope) = sealed(
        KEY,
        "wx1111111111111111",
        "ShopToken1",
        "gh_shop",
        text("gh_shop", "yo"),
    );
    let (status, body) = post("/wechat/shop".into(), query, envelope).await;
    assert_eq!(status, 200, "{body}");
    assert!(open(KEY, "wx1111111111111111", &body).contains("<![CDATA[shop: yo]]>"));
    // The authoriser: the component's keys; then the same push at shop's path is refused, and
    // a push for another account at the authoriser's path too.
    let (query, envelope) = sealed(
        COMPONENT_KEY,
        "wx134c8103faa5a59e",
        "AAAAA",
        "gh_97417a04a28d",
        text("gh_97417a04a28d", "hey"),
    );
    let (status, body) = post(
        "/wechat/wxba5fad812f8e6fb9".into(),
        query.clone(),
        envelope.clone(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(open(COMPONENT_KEY, "wx134c8103faa5a59e", &body)
        .contains("<![CDATA[wxba5fad812f8e6fb9: hey]]>"));
    let (status, _) = post("/wechat/shop".into(), query, envelope).await;
    assert_eq!(status, 401);
    let (query, envelope) = sealed(
        COMPONENT_KEY,
        "wx134c8103faa5a59e",
        "AAAAA",
        "gh_3c884a361561",
        text("gh_3c884a361561", "hey"),
    );
    let (status, _) = post("/wechat/wxba5fad812f8e6fb9".into(), query, envelope).await;
    assert_eq!(status, 403);

    // The third-party platform's query: `msg_signature` required, `signature` optional (but
    // checked when present).
    let component = |doc: String, nonce: &str| {
        let key = wechat_push::EncodingAesKey::new(COMPONENT_KEY).unwrap();
        let encrypt = crypto::encrypt(&key, doc.as_bytes(), "wx134c8103faa5a59e").unwrap();
        let ts = now().to_string();
        let msg_signature = signature::sign_message("AAAAA", &ts, nonce, &encrypt);
        let query =
            format!("timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={msg_signature}");
        let body = format!(
            "<xml><AppId><![CDATA[wx134c8103faa5a59e]]></AppId><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        );
        (query, body)
    };
    let (query, envelope) = component(text("gh_97417a04a28d", "no signature"), "3");
    let (status, body) = post(
        "/wechat/wxba5fad812f8e6fb9".into(),
        query.clone(),
        envelope.clone(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(open(COMPONENT_KEY, "wx134c8103faa5a59e", &body)
        .contains("<![CDATA[wxba5fad812f8e6fb9: no signature]]>"));
    let forged = format!("signature=0000000000000000000000000000000000000000&{query}");
    let (status, _) = post(
        "/wechat/wxba5fad812f8e6fb9".into(),
        forged,
        envelope.clone(),
    )
    .await;
    assert_eq!(status, 401, "a wrong signature is refused when present");
    let (query, envelope) = component(text("gh_97417a04a28d", "without"), "4");
    let (status, body) = post(
        "/wechat/wxba5fad812f8e6fb9".into(),
        query.replace("msg_signature=", "msg_signatur="),
        envelope,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (401, "missing msg_signature for Encrypt"),
        "msg_signature is required"
    );

    // The authorisation-event URL (`events`): a ticket and an `authorized` push, which carry
    // the component's AppId instead of a ToUserName, are answered `success` there, and refused
    // at an authoriser's path; a message for an authoriser is refused there.
    let ticket = format!(
        "<xml><AppId><![CDATA[wx134c8103faa5a59e]]></AppId><CreateTime>{}</CreateTime>\
         <InfoType><![CDATA[component_verify_ticket]]></InfoType>\
         <ComponentVerifyTicket><![CDATA[ticket@@@chaos]]></ComponentVerifyTicket></xml>",
        now()
    );
    let authorized = format!(
        "<xml><AppId><![CDATA[wx134c8103faa5a59e]]></AppId><CreateTime>{}</CreateTime>\
         <InfoType><![CDATA[authorized]]></InfoType><AuthorizerAppid><![CDATA[wxba5fad812f8e6fb9]]></AuthorizerAppid>\
         <AuthorizationCode><![CDATA[queryauthcode@@@x]]></AuthorizationCode>\
         <AuthorizationCodeExpiredTime>{}</AuthorizationCodeExpiredTime>\
         <PreAuthCode><![CDATA[preauthcode@@@y]]></PreAuthCode></xml>",
        now(),
        now() + 3600
    );
    for (i, event) in [ticket, authorized].into_iter().enumerate() {
        let (query, envelope) = component(event.clone(), &format!("5{i}"));
        let (status, body) = post("/wechat/events".into(), query, envelope).await;
        assert_eq!((status, body.as_str()), (200, "success"), "{event}");
        let (query, envelope) = component(event.clone(), &format!("6{i}"));
        let (status, _) = post("/wechat/wxba5fad812f8e6fb9".into(), query, envelope).await;
        assert_eq!(status, 403, "{event}");
    }
    let (query, envelope) = component(text("gh_97417a04a28d", "wrong URL"), "7");
    let (status, _) = post("/wechat/events".into(), query, envelope).await;
    assert_eq!(status, 403);

    // Not configured (yet).
    let news = || {
        post(
            "/wechat/news".into(),
            plain_signed("NewsToken3", now(), "2"),
            text("gh_news", "hello"),
        )
    };
    assert_eq!(news().await.0, 404);

    // Added to the file, then SIGHUP: served without a restart.
    std::fs::write(&file, format!("{apps}news=mp:NewsToken3\n")).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + WAIT;
    let (status, body) = loop {
        let (status, body) = news().await;
        if status != 404 || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<![CDATA[news: hello]]>"), "{body}");
    assert!(server.running(), "still the same process");

    server.terminate();
    let (status, stderr) = server.exit();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("serving club, events, news, shop, wxba5fad812f8e6fb9"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(&file);
}

/// `multi_app` configured from `WECHAT_APPS` as issue 15 puts it: two mini programs and one
/// WeCom app (docs/platforms.md §5 V1's Token, key and CorpID, bound to agent 1000002). The WeCom
/// GET verification (`msg_signature` over the encrypted `echostr`) is answered with the
/// decrypted `echostr`; a WeCom text push is answered with a reply sealed for the CorpID,
/// opened here with the tests' own AES code; a push for another agent of the corp is refused
/// (403). Everything is sealed here too, with a fresh timestamp (the example runs on the real
/// clock).
#[tokio::test]
async fn multi_app_serves_two_mini_programs_and_a_wecom_app_from_the_environment() {
    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    let platforms: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/platforms.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let v1 = &platforms["v1"];
    let (token, aes_key, corp) = (
        s(v1, "token"),
        s(v1, "encoding_aes_key"),
        s(v1, "receive_id"),
    );
    let server = Server::spawn(
        "multi_app",
        &[
            ("BIND", "127.0.0.1:0".to_owned()),
            (
                "WECHAT_APPS",
                format!(
                    "shop=mp:ShopToken1:{KEY}:wx1111111111111111; club=mp:ClubToken2;\n\
                     hr=wecom:{token}:{aes_key}:{corp}:1000002"
                ),
            ),
        ],
    );
    let client = client();
    let send = |method: Method, path_and_query: String, body: String| {
        let client = client.clone();
        let addr = server.addr;
        async move {
            let req = Request::builder()
                .method(method)
                .uri(format!("http://{addr}{path_and_query}"))
                .header(header::CONTENT_TYPE, "text/xml")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let res = tokio::time::timeout(WAIT, client.request(req))
                .await
                .expect("an answer in time")
                .expect("an answer");
            let status = res.status().as_u16();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    // Sealed for the corp with the tests' own AES code, signed over a fresh timestamp.
    let seal = |msg: &str, nonce: &str| {
        let encrypt = reference_encrypt(
            &reference_key(aes_key),
            *b"0123456789abcdef",
            msg.as_bytes(),
            corp,
        );
        let ts = now().to_string();
        let sig = reference_sign(&[token, &ts, nonce, &encrypt]);
        (
            format!("msg_signature={sig}&timestamp={ts}&nonce={nonce}"),
            encrypt,
        )
    };

    // The GET verification: the encrypted echostr (percent-encoded), answered decrypted.
    let (query, echostr) = seal("5927638429016357392", "11");
    let echostr = echostr
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let (status, body) = send(
        Method::GET,
        format!("/wechat/hr?{query}&echostr={echostr}"),
        String::new(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "5927638429016357392"));

    // A text push for agent 1000002: the reply `hr: 你好`, sealed for the corp.
    let push = |agent: u32, nonce: &str| {
        let doc = format!(
            "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[ChenJiaShun]]></FromUserName>\
             <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content>\
             <MsgId>1456453720</MsgId><AgentID>{agent}</AgentID></xml>",
            now()
        );
        let (query, encrypt) = seal(&doc, nonce);
        let envelope = format!(
            "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>\
             <AgentID><![CDATA[{agent}]]></AgentID></xml>"
        );
        (format!("/wechat/hr?{query}"), envelope)
    };
    let (target, envelope) = push(1000002, "12");
    let (status, body) = send(Method::POST, target, envelope).await;
    assert_eq!(status, 200, "{body}");
    let sealed = common::sealed_envelope("xml", &body).unwrap();
    assert!(
        now().abs_diff(sealed.timestamp.parse().unwrap()) <= 60,
        "{body}"
    );
    assert_eq!(
        sealed.msg_signature,
        reference_sign(&[token, &sealed.timestamp, &sealed.nonce, &sealed.encrypt]),
        "{body}"
    );
    let reply = reference_decrypt(aes_key, &sealed.encrypt, corp).unwrap();
    assert_eq!(
        common::xml_field(&reply, "Content"),
        Some("hr: 你好"),
        "{reply}"
    );
    assert_eq!(common::xml_field(&reply, "ToUserName"), Some("ChenJiaShun"));
    assert_eq!(common::xml_field(&reply, "FromUserName"), Some(corp));

    // The same corp's keys, another agent: refused, whatever the envelope says.
    let (target, envelope) = push(1000003, "13");
    let (status, body) = send(Method::POST, target, envelope).await;
    assert_eq!(status, 403, "{body}");
    // The same WeCom push at a mini program's path: not signed with its Token.
    let (target, envelope) = push(1000002, "14");
    let (status, _) = send(Method::POST, target.replace("/hr?", "/club?"), envelope).await;
    assert_eq!(status, 401);
    // The mini programs are served beside it.
    let (status, body) = send(
        Method::POST,
        format!("/wechat/club?{}", plain_signed("ClubToken2", now(), "15")),
        format!(
            "<xml><ToUserName><![CDATA[gh_club]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>\
             <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content>\
             <MsgId>2</MsgId></xml>",
            now()
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<![CDATA[club: hi]]>"), "{body}");

    server.terminate();
    let (status, stderr) = server.exit();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("serving club, hr, shop"), "{stderr}");
}

/// A bad `WECHAT_APPS` entry (or none at all) stops `multi_app` before it binds, with one line
/// naming the variable and the entry.
#[test]
fn multi_app_refuses_a_bad_app_list() {
    for (list, says) in [
        ("shop=mp:ab", "shop"),
        ("shop=robot:Token123", "unknown kind"),
        ("shop=wecom:Token123", "wecom:TOKEN:AESKEY:CORPID[:AGENTID]"),
        (
            "hr=wecom:Token123:jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C:ww1436e0e65a779aee:x",
            "AGENTID",
        ),
        ("shop mp:Token123", "NAME=KIND:FIELDS"),
        ("sh/op=mp:Token123", "sh/op"),
        ("shop=mp:Token123:tooshort:wx1", "shop"),
        ("", "WECHAT_APPS or WECHAT_APPS_FILE"),
    ] {
        let mut child = start(
            "multi_app",
            &[
                ("BIND", "127.0.0.1:0".to_owned()),
                ("WECHAT_APPS", list.to_owned()),
            ],
        );
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let status = wait_for_exit(&mut child, WAIT);
        let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
        assert!(!status.success(), "{list:?}: {status}");
        assert_eq!(stdout, "", "{list:?}: nothing is bound");
        assert_eq!(stderr.lines().count(), 1, "{list:?}: {stderr:?}");
        assert!(stderr.contains("WECHAT_APPS"), "{list:?}: {stderr:?}");
        assert!(stderr.contains(says), "{list:?}: {stderr:?} names {says}");
    }
}
