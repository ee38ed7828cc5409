//! A load generator for `examples/passive_reply` (or any server keeping its contract): drives it
//! over loopback HTTP/1.1 keep-alive with a mix of valid and invalid pushes and checks every
//! answer.
//!
//! ```sh
//! cargo build --release --example passive_reply -p loadgen
//! # start the server itself, 1,000,000 requests over 32 connections:
//! target/release/loadgen --spawn target/release/examples/passive_reply --requests 1000000
//! # a 5-minute soak, sampling the server's RSS every 10 s:
//! target/release/loadgen --spawn target/release/examples/passive_reply --duration 300
//! # against a server already running (same WECHAT_* variables as the server):
//! target/release/loadgen --addr 127.0.0.1:3000 --requests 10000
//! ```
//!
//! # Flags
//!
//! | flag | default | meaning |
//! | --- | --- | --- |
//! | `--addr HOST:PORT` | `127.0.0.1:3000` | the server to drive (loopback only) |
//! | `--spawn PATH` | | start `PATH` as the server instead: `BIND=127.0.0.1:0` and the `WECHAT_*` variables below, wait for its `listening on http://ADDR/wechat` line, sample its RSS (`VmRSS` in `/proc/PID/status`) before the load, every `--sample` seconds and after it, then stop it with SIGTERM and require exit status 0 |
//! | `--server-cpus LIST` | | with `--spawn`: run the server under `taskset -c LIST` (e.g. `0`; then run the generator under `taskset -c 1`) |
//! | `--requests N` | `10000` | stop after `N` requests |
//! | `--duration SECS` | | run for `SECS` seconds instead of a request count |
//! | `--connections C` | `32` | keep-alive connections, one request in flight on each |
//! | `--threads T` | `1` | client runtime threads (1: a current-thread runtime) |
//! | `--pool N` | `4096` | distinct requests per generation (distinct nonce, content, echostr) |
//! | `--refresh SECS` | `60` | make a new generation (fresh timestamps) this often; must stay well under the server's 300 s tolerance |
//! | `--sample SECS` | `10` | RSS sampling period with `--spawn` |
//! | `--token T`, `--appid A`, `--aes-key K` | `WECHAT_TOKEN`, `WECHAT_APPID`, `WECHAT_ENCODING_AES_KEY`, else the README's example values | what the requests are signed and encrypted with (and, with `--spawn`, what the server gets) |
//! | `--plain-only` | | no encrypted requests (for a server without `WECHAT_ENCODING_AES_KEY`) |
//! | `--no-check` | | count answers by status without checking them: for measuring, with the same client, a server that checks nothing (such as the load harness's floor, which answers `success` to everything) |
//! | `--path P` | `/wechat` | the callback path |
//! | `--ack` | | valid text pushes are answered `success` (a server acknowledging and answering through the customer-service API, such as `examples/customer_service`) |
//! | `--mock-api` | | with `--spawn`: serve a loopback WeChat API (`stable_token` answers a token, everything else `errcode` 0) and point the server at it (`WECHAT_API_BASE`, `WECHAT_APP_SECRET`); the summary counts its requests |
//!
//! The spawned server inherits the environment otherwise (`REDIS_URL`, say). With `--pool` at
//! least `--requests`, every push is delivered once: each one is a first delivery for dedupe.
//!
//! # The mix, and what is checked
//!
//! Out of every 25 requests (in this order, cycling through the pool):
//!
//! | n | request | expected answer |
//! | --- | --- | --- |
//! | 5 | plaintext XML text push | 200 `application/xml`: a text reply to the sender with the same `Content` |
//! | 3 | plaintext JSON text push | 200 `application/json`: the same, in JSON |
//! | 5 | safe-mode XML text push | 200: an XML envelope whose `MsgSignature` verifies and whose `Encrypt` opens (with the AppID) to the text reply |
//! | 3 | safe-mode JSON text push | 200: the same, as a JSON envelope |
//! | 1 | plaintext XML image push | 200 `success` |
//! | 1 | safe-mode JSON `user_enter_tempsession` event | 200 `success` (acknowledgements are never encrypted) |
//! | 2 | GET handshake | 200, body = `echostr` exactly |
//! | 1 | bad `signature` | 401 |
//! | 1 | bad `msg_signature` | 401 |
//! | 1 | malformed (truncated) XML body | 400 |
//! | 1 | `Encrypt` sealed for another AppID | 400 |
//! | 1 | timestamp 1000 s old | 401 |
//!
//! (`--plain-only` turns the safe-mode rows into their plaintext twins and drops the two
//! invalid safe-mode rows.) Any other status, body or header is an *unexpected answer*; a
//! dropped connection counts as one too. The summary gives requests, req/s, answers by status,
//! unexpected answers, 5xx, latency percentiles and, with `--spawn`, the server's RSS at the
//! start, at the end and at its maximum. The exit status is non-zero on any unexpected answer,
//! any 5xx, or a server that does not exit 0 after SIGTERM.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wechat_push::{crypto, signature, EncodingAesKey};

const DEFAULT_TOKEN: &str = "Token123abc";
const DEFAULT_APPID: &str = "wx1234567890abcdef";
const DEFAULT_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const TO: &str = "gh_97417a04a28d";

// ---------------------------------------------------------------------------------------------
// Options.

struct Options {
    addr: SocketAddr,
    spawn: Option<String>,
    server_cpus: Option<String>,
    requests: Option<u64>,
    duration: Option<Duration>,
    connections: usize,
    threads: usize,
    pool: usize,
    refresh: Duration,
    sample: Duration,
    token: String,
    appid: String,
    aes_key: String,
    plain_only: bool,
    no_check: bool,
    path: String,
    ack: bool,
    mock_api: bool,
}

fn usage() -> &'static str {
    "usage: loadgen [--addr HOST:PORT | --spawn PATH [--server-cpus LIST]] [--requests N | --duration SECS]\n\
     \x20              [--connections C] [--threads T] [--pool N] [--refresh SECS] [--sample SECS]\n\
     \x20              [--token T] [--appid A] [--aes-key K] [--plain-only] [--no-check] [--path P]\n\
     \x20              [--ack] [--mock-api]\n\
     (see the top of examples/loadgen.rs)"
}

fn parse_options() -> Result<Options, String> {
    let env = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let mut o = Options {
        addr: "127.0.0.1:3000".parse().map_err(|_| "unreachable")?,
        spawn: None,
        server_cpus: None,
        requests: None,
        duration: None,
        connections: 32,
        threads: 1,
        pool: 4096,
        refresh: Duration::from_secs(60),
        sample: Duration::from_secs(10),
        token: env("WECHAT_TOKEN", DEFAULT_TOKEN),
        appid: env("WECHAT_APPID", DEFAULT_APPID),
        aes_key: env("WECHAT_ENCODING_AES_KEY", DEFAULT_KEY),
        plain_only: false,
        no_check: false,
        path: "/wechat".to_owned(),
        ack: false,
        mock_api: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if ["--plain-only", "--no-check", "--ack", "--mock-api"].contains(&flag.as_str()) {
            o.plain_only |= flag == "--plain-only";
            o.no_check |= flag == "--no-check";
            o.ack |= flag == "--ack";
            o.mock_api |= flag == "--mock-api";
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        const VALUED: [&str; 14] = [
            "--addr",
            "--spawn",
            "--server-cpus",
            "--requests",
            "--duration",
            "--connections",
            "--threads",
            "--pool",
            "--refresh",
            "--sample",
            "--token",
            "--appid",
            "--aes-key",
            "--path",
        ];
        if !VALUED.contains(&flag.as_str()) {
            return Err(format!("unknown flag {flag}"));
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        let secs = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or(format!("{flag} {v}: expected a positive number of seconds"))
        };
        match flag.as_str() {
            "--addr" => o.addr = value.parse().map_err(|e| format!("--addr {value}: {e}"))?,
            "--spawn" => o.spawn = Some(value),
            "--server-cpus" => o.server_cpus = Some(value),
            "--requests" => o.requests = Some(num(&value)?),
            "--duration" => o.duration = Some(secs(&value)?),
            "--connections" => o.connections = num(&value)?.max(1) as usize,
            "--threads" => o.threads = num(&value)?.max(1) as usize,
            "--pool" => o.pool = num(&value)?.max(25) as usize,
            "--refresh" => o.refresh = secs(&value)?,
            "--sample" => o.sample = secs(&value)?,
            "--token" => o.token = value,
            "--appid" => o.appid = value,
            "--aes-key" => o.aes_key = value,
            "--path" => o.path = value,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if o.requests.is_some() && o.duration.is_some() {
        return Err("give --requests or --duration, not both".into());
    }
    if o.requests.is_none() && o.duration.is_none() {
        o.requests = Some(10_000);
    }
    if !o.addr.ip().is_loopback() {
        return Err(format!("--addr {}: loopback addresses only", o.addr));
    }
    if o.refresh >= Duration::from_secs(240) {
        return Err("--refresh must stay under 240 s (the server allows 300 s)".into());
    }
    EncodingAesKey::new(&o.aes_key).map_err(|e| format!("--aes-key: {e}"))?;
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// The request pool.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fmt {
    Xml,
    Json,
}

/// What a request must be answered with.
enum Expect {
    /// 200, the body is exactly this `echostr`.
    Echo(String),
    /// 200, a text reply to `to_user` carrying `content`, sealed or in clear.
    Text {
        fmt: Fmt,
        sealed: bool,
        to_user: String,
        content: String,
    },
    /// 200 `success`.
    Success,
    /// Refused with this status.
    Status(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    PlainXml,
    PlainJson,
    SealedXml,
    SealedJson,
    ImageAck,
    EventAck,
    Handshake,
    BadSignature,
    BadMsgSignature,
    Malformed,
    WrongAppId,
    Stale,
}

/// Every 25 requests, in order.
const MIX: [Kind; 25] = {
    use Kind::*;
    [
        PlainXml,
        SealedXml,
        PlainJson,
        SealedJson,
        Handshake,
        PlainXml,
        SealedXml,
        BadSignature,
        PlainXml,
        ImageAck,
        SealedXml,
        PlainJson,
        Malformed,
        SealedJson,
        PlainXml,
        BadMsgSignature,
        SealedXml,
        EventAck,
        Handshake,
        PlainJson,
        WrongAppId,
        PlainXml,
        SealedXml,
        Stale,
        SealedJson,
    ]
};

struct Entry {
    bytes: Vec<u8>,
    expect: Expect,
    kind: Kind,
}

struct Pool {
    entries: Vec<Entry>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Maker<'a> {
    o: &'a Options,
    key: EncodingAesKey,
    host: String,
}

impl Maker<'_> {
    fn request(&self, method: &str, query: &str, body: &[u8], content_type: &str) -> Vec<u8> {
        let mut out = format!(
            "{method} {}?{query} HTTP/1.1\r\nhost: {}\r\n",
            self.o.path, self.host
        )
        .into_bytes();
        if method != "GET" {
            out.extend_from_slice(
                format!(
                    "content-type: {content_type}\r\ncontent-length: {}\r\n",
                    body.len()
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }

    fn query(&self, token: &str, ts: &str, nonce: &str) -> String {
        let sig = signature::sign(token, ts, nonce);
        format!("signature={sig}&timestamp={ts}&nonce={nonce}")
    }

    fn text_doc(fmt: Fmt, from: &str, ts: &str, content: &str, msg_id: u64) -> String {
        match fmt {
            Fmt::Xml => format!(
                "<xml><ToUserName><![CDATA[{TO}]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
                 <CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
                 <Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
            ),
            Fmt::Json => serde_json::json!({
                "ToUserName": TO,
                "FromUserName": from,
                "CreateTime": ts.parse::<u64>().unwrap_or(0),
                "MsgType": "text",
                "Content": content,
                "MsgId": msg_id,
            })
            .to_string(),
        }
    }

    fn envelope(fmt: Fmt, encrypt: &str) -> String {
        match fmt {
            Fmt::Xml => format!(
                "<xml><ToUserName><![CDATA[{TO}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
            ),
            Fmt::Json => serde_json::json!({ "ToUserName": TO, "Encrypt": encrypt }).to_string(),
        }
    }

    /// A sealed push: the query with `msg_signature` (of `sign_over`, normally `encrypt`) and the
    /// envelope.
    fn sealed(&self, fmt: Fmt, ts: &str, nonce: &str, doc: &str, appid: &str) -> (String, String) {
        let encrypt = crypto::encrypt(&self.key, doc.as_bytes(), appid).unwrap_or_default();
        let msg_sig = signature::sign_message(&self.o.token, ts, nonce, &encrypt);
        let query = format!(
            "{}&openid=o{nonce}&encrypt_type=aes&msg_signature={msg_sig}",
            self.query(&self.o.token, ts, nonce)
        );
        (query, Self::envelope(fmt, &encrypt))
    }

    fn entry(&self, generation: u64, i: usize, ts: u64) -> Entry {
        let mut kind = MIX[i % MIX.len()];
        if self.o.plain_only {
            kind = match kind {
                Kind::SealedXml | Kind::BadMsgSignature | Kind::WrongAppId => Kind::PlainXml,
                Kind::SealedJson | Kind::EventAck => Kind::PlainJson,
                k => k,
            };
        }
        let ts_s = ts.to_string();
        let nonce = format!("{generation}{i:07}");
        let from = format!("oLoad{generation}x{i}");
        let content = format!("load {generation}-{i} 你好 <&> \"q\"");
        let msg_id = generation << 32 | i as u64;
        let ct = |fmt| match fmt {
            Fmt::Xml => "text/xml",
            Fmt::Json => "application/json",
        };
        let text = |fmt, sealed| {
            if self.o.ack {
                Expect::Success
            } else {
                Expect::Text {
                    fmt,
                    sealed,
                    to_user: from.clone(),
                    content: content.clone(),
                }
            }
        };
        let (bytes, expect) = match kind {
            Kind::PlainXml | Kind::PlainJson => {
                let fmt = if kind == Kind::PlainXml {
                    Fmt::Xml
                } else {
                    Fmt::Json
                };
                let doc = Self::text_doc(fmt, &from, &ts_s, &content, msg_id);
                let q = self.query(&self.o.token, &ts_s, &nonce);
                (
                    self.request("POST", &q, doc.as_bytes(), ct(fmt)),
                    text(fmt, false),
                )
            }
            Kind::SealedXml | Kind::SealedJson => {
                let fmt = if kind == Kind::SealedXml {
                    Fmt::Xml
                } else {
                    Fmt::Json
                };
                let doc = Self::text_doc(fmt, &from, &ts_s, &content, msg_id);
                let (q, body) = self.sealed(fmt, &ts_s, &nonce, &doc, &self.o.appid);
                (
                    self.request("POST", &q, body.as_bytes(), ct(fmt)),
                    text(fmt, true),
                )
            }
            Kind::ImageAck => {
                let doc = format!(
                    "<xml><ToUserName><![CDATA[{TO}]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
                     <CreateTime>{ts_s}</CreateTime><MsgType><![CDATA[image]]></MsgType>\
                     <PicUrl><![CDATA[http://127.0.0.1/{i}.png]]></PicUrl><MediaId><![CDATA[m{i}]]></MediaId>\
                     <MsgId>{msg_id}</MsgId></xml>"
                );
                let q = self.query(&self.o.token, &ts_s, &nonce);
                (
                    self.request("POST", &q, doc.as_bytes(), "text/xml"),
                    Expect::Success,
                )
            }
            Kind::EventAck => {
                let doc = serde_json::json!({
                    "ToUserName": TO, "FromUserName": from, "CreateTime": ts,
                    "MsgType": "event", "Event": "user_enter_tempsession", "SessionFrom": "loadgen",
                })
                .to_string();
                let (q, body) = self.sealed(Fmt::Json, &ts_s, &nonce, &doc, &self.o.appid);
                (
                    self.request("POST", &q, body.as_bytes(), "application/json"),
                    Expect::Success,
                )
            }
            Kind::Handshake => {
                let echostr = format!("{}{generation}{i:07}", 4_375_120_948u64 + i as u64);
                let q = format!(
                    "{}&echostr={echostr}",
                    self.query(&self.o.token, &ts_s, &nonce)
                );
                (self.request("GET", &q, b"", ""), Expect::Echo(echostr))
            }
            Kind::BadSignature => {
                let doc = Self::text_doc(Fmt::Xml, &from, &ts_s, &content, msg_id);
                let q = self.query(&format!("{}x", self.o.token), &ts_s, &nonce);
                (
                    self.request("POST", &q, doc.as_bytes(), "text/xml"),
                    Expect::Status(401),
                )
            }
            Kind::BadMsgSignature => {
                let doc = Self::text_doc(Fmt::Xml, &from, &ts_s, &content, msg_id);
                let (q, body) = self.sealed(Fmt::Xml, &ts_s, &nonce, &doc, &self.o.appid);
                // A digit more: 41 hex digits never match.
                let q = q.replace("msg_signature=", "msg_signature=0");
                (
                    self.request("POST", &q, body.as_bytes(), "text/xml"),
                    Expect::Status(401),
                )
            }
            Kind::Malformed => {
                let doc = Self::text_doc(Fmt::Xml, &from, &ts_s, &content, msg_id);
                let cut = doc.len() - 10;
                let q = self.query(&self.o.token, &ts_s, &nonce);
                (
                    self.request("POST", &q, &doc.as_bytes()[..cut], "text/xml"),
                    Expect::Status(400),
                )
            }
            Kind::WrongAppId => {
                let doc = Self::text_doc(Fmt::Xml, &from, &ts_s, &content, msg_id);
                let other = format!("{}x", self.o.appid);
                let (q, body) = self.sealed(Fmt::Xml, &ts_s, &nonce, &doc, &other);
                (
                    self.request("POST", &q, body.as_bytes(), "text/xml"),
                    Expect::Status(400),
                )
            }
            Kind::Stale => {
                let old = (ts - 1000).to_string();
                let doc = Self::text_doc(Fmt::Xml, &from, &old, &content, msg_id);
                let q = self.query(&self.o.token, &old, &nonce);
                (
                    self.request("POST", &q, doc.as_bytes(), "text/xml"),
                    Expect::Status(401),
                )
            }
        };
        Entry {
            bytes,
            expect,
            kind,
        }
    }

    fn pool(&self, generation: u64) -> Pool {
        let ts = unix_now();
        Pool {
            entries: (0..self.o.pool)
                .map(|i| self.entry(generation, i, ts))
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checking answers.

struct Answer<'a> {
    status: u16,
    content_type: Option<&'a str>,
    body: &'a [u8],
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

/// `ToUserName`, `MsgType`, `Content` of a reply document.
fn reply_fields(fmt: Fmt, doc: &str) -> Result<(String, String, String), String> {
    match fmt {
        Fmt::Xml => {
            let field = |name: &str| {
                between(doc, &format!("<{name}><![CDATA["), &format!("]]></{name}>"))
                    .map(str::to_owned)
                    .ok_or_else(|| format!("no {name} in the XML reply {doc:?}"))
            };
            Ok((field("ToUserName")?, field("MsgType")?, field("Content")?))
        }
        Fmt::Json => {
            let v: serde_json::Value =
                serde_json::from_str(doc).map_err(|e| format!("JSON reply {doc:?}: {e}"))?;
            let field = |name: &str| {
                v[name]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("no {name} in the JSON reply {doc:?}"))
            };
            Ok((field("ToUserName")?, field("MsgType")?, field("Content")?))
        }
    }
}

/// Verifies and opens a sealed reply.
fn open_sealed(o: &Options, key: &EncodingAesKey, fmt: Fmt, body: &str) -> Result<String, String> {
    let (encrypt, sig, ts, nonce) = match fmt {
        Fmt::Xml => {
            let f = |open: &str, close: &str| {
                between(body, open, close)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("no {open} in the sealed reply {body:?}"))
            };
            (
                f("<Encrypt><![CDATA[", "]]></Encrypt>")?,
                f("<MsgSignature><![CDATA[", "]]></MsgSignature>")?,
                f("<TimeStamp>", "</TimeStamp>")?,
                f("<Nonce><![CDATA[", "]]></Nonce>")?,
            )
        }
        Fmt::Json => {
            let v: serde_json::Value =
                serde_json::from_str(body).map_err(|e| format!("sealed reply {body:?}: {e}"))?;
            let s = |name: &str| {
                v[name]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("no {name} in the sealed reply {body:?}"))
            };
            let ts = v["TimeStamp"]
                .as_u64()
                .ok_or_else(|| format!("no numeric TimeStamp in {body:?}"))?;
            (
                s("Encrypt")?,
                s("MsgSignature")?,
                ts.to_string(),
                s("Nonce")?,
            )
        }
    };
    if !signature::verify_message(&sig, &o.token, &ts, &nonce, &encrypt) {
        return Err(format!(
            "sealed reply: MsgSignature does not verify: {body:?}"
        ));
    }
    let opened = crypto::decrypt(key, &encrypt, &o.appid)
        .map_err(|e| format!("sealed reply does not open: {e}"))?;
    Ok(opened.as_str().to_owned())
}

fn check(o: &Options, key: &EncodingAesKey, expect: &Expect, a: &Answer<'_>) -> Result<(), String> {
    let body = std::str::from_utf8(a.body).map_err(|_| "body is not UTF-8".to_owned())?;
    let want_status = match expect {
        Expect::Status(s) => *s,
        _ => 200,
    };
    if a.status != want_status {
        let shown: String = body.chars().take(200).collect();
        return Err(format!(
            "status {}, wanted {want_status}: {shown:?}",
            a.status
        ));
    }
    match expect {
        Expect::Status(_) => Ok(()),
        Expect::Echo(echostr) if body == echostr => Ok(()),
        Expect::Echo(echostr) => Err(format!("echostr {echostr:?} answered {body:?}")),
        Expect::Success if body == "success" => Ok(()),
        Expect::Success => Err(format!("wanted `success`, got {body:?}")),
        Expect::Text {
            fmt,
            sealed,
            to_user,
            content,
        } => {
            let want_type = match fmt {
                Fmt::Xml => "application/xml",
                Fmt::Json => "application/json",
            };
            if a.content_type != Some(want_type) {
                return Err(format!(
                    "content-type {:?}, wanted {want_type}",
                    a.content_type
                ));
            }
            let doc = if *sealed {
                open_sealed(o, key, *fmt, body)?
            } else {
                body.to_owned()
            };
            let (to, msg_type, got) = reply_fields(*fmt, &doc)?;
            if &to != to_user || msg_type != "text" || &got != content {
                return Err(format!(
                    "reply to {to:?} ({msg_type}) with {got:?}, wanted to {to_user:?} with {content:?}"
                ));
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 on a raw connection.

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

struct Head {
    status: u16,
    content_type: Option<(usize, usize)>,
    length: usize,
    close: bool,
    end: usize,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) else {
        return Ok(None);
    };
    let head = &buf[..end];
    if !head.starts_with(b"HTTP/1.1 ") || head.len() < 12 {
        return Err(format!(
            "bad status line {:?}",
            String::from_utf8_lossy(head)
        ));
    }
    let status = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("bad status code")?;
    let mut h = Head {
        status,
        content_type: None,
        length: 0,
        close: false,
        end,
    };
    let mut offset = 0;
    for line in head.split(|&b| b == b'\n') {
        let line_start = offset;
        offset += line.len() + 1;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            h.length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or("bad content-length")?;
        } else if name.eq_ignore_ascii_case(b"content-type") {
            let start = line_start
                + colon
                + 1
                + (line[colon + 1..].len() - line[colon + 1..].trim_ascii_start().len());
            h.content_type = Some((start, start + value.len()));
        } else if name.eq_ignore_ascii_case(b"connection") && value.eq_ignore_ascii_case(b"close") {
            h.close = true;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err("chunked answers are not expected".into());
        }
    }
    Ok(Some(h))
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Reads what the server sent next into `buf` (no zeroing: straight into spare capacity).
    async fn fill(&mut self) -> Result<(), String> {
        self.buf.reserve(8 * 1024);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err("connection closed before the end of the answer".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// Sends one request and reads its answer; returns the head and the whole response's length
    /// in `buf`.
    async fn exchange(&mut self, request: &[u8]) -> Result<(Head, usize), String> {
        self.buf.clear();
        self.stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let head = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            self.fill().await?;
        };
        let total = head.end + head.length;
        while self.buf.len() < total {
            self.fill().await?;
        }
        if self.buf.len() > total {
            return Err("bytes after the answer".into());
        }
        Ok((head, total))
    }
}

// ---------------------------------------------------------------------------------------------
// Workers.

#[derive(Default)]
struct Stats {
    done: u64,
    unexpected: u64,
    server_errors: u64,
    reconnects: u64,
    statuses: BTreeMap<u16, u64>,
    kinds: BTreeMap<Kind, u64>,
    /// Latency of every 8th request, in microseconds.
    latencies: Vec<u32>,
    samples: Vec<String>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.done += other.done;
        self.unexpected += other.unexpected;
        self.server_errors += other.server_errors;
        self.reconnects += other.reconnects;
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.kinds {
            *self.kinds.entry(k).or_default() += v;
        }
        self.latencies.extend(other.latencies);
        for s in other.samples {
            if self.samples.len() < 10 {
                self.samples.push(s);
            }
        }
    }

    /// Counts an unexpected answer; `what` is only formatted for the first few.
    fn unexpected(&mut self, what: impl FnOnce() -> String) {
        self.unexpected += 1;
        if self.samples.len() < 10 {
            self.samples.push(what());
        }
    }
}

struct Shared {
    o: Options,
    key: EncodingAesKey,
    pool: RwLock<Arc<Pool>>,
    issued: AtomicU64,
    deadline: Option<Instant>,
    stop: AtomicBool,
}

async fn worker(shared: Arc<Shared>) -> Stats {
    let mut stats = Stats::default();
    let o = &shared.o;
    let mut conn = None;
    let mut pool = shared
        .pool
        .read()
        .map(|p| p.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let n = shared.issued.fetch_add(1, Ordering::Relaxed);
        if o.requests.is_some_and(|limit| n >= limit)
            || shared.deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        if n % 256 == 0 {
            if let Ok(p) = shared.pool.read() {
                pool = p.clone();
            }
        }
        let entry = &pool.entries[(n % pool.entries.len() as u64) as usize];
        if conn.is_none() {
            match Conn::open(o.addr).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    stats.unexpected(|| format!("connect to {}: {e}", o.addr));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let started = Instant::now();
        let result = c.exchange(&entry.bytes).await;
        let elapsed = started.elapsed();
        stats.done += 1;
        *stats.kinds.entry(entry.kind).or_default() += 1;
        if n % 8 == 0 {
            stats
                .latencies
                .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
        }
        match result {
            Err(e) => {
                stats.unexpected(|| format!("{:?}: {e}", entry.kind));
                conn = None;
                stats.reconnects += 1;
            }
            Ok((head, total)) => {
                *stats.statuses.entry(head.status).or_default() += 1;
                if head.status >= 500 {
                    stats.server_errors += 1;
                }
                let answer = Answer {
                    status: head.status,
                    content_type: head
                        .content_type
                        .and_then(|(a, b)| std::str::from_utf8(&c.buf[a..b]).ok()),
                    body: &c.buf[head.end..total],
                };
                if o.no_check {
                    // Counted by status only.
                } else if let Err(e) = check(o, &shared.key, &entry.expect, &answer) {
                    stats.unexpected(|| format!("{:?}: {e}", entry.kind));
                }
                if head.close {
                    conn = None;
                    stats.reconnects += 1;
                }
            }
        }
    }
    stats
}

// ---------------------------------------------------------------------------------------------
// The server process.

struct Server {
    child: Child,
    pid: u32,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only if something went wrong before the orderly SIGTERM.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback WeChat API for `--mock-api`: `stable_token` answers a token, every other path
/// `errcode` 0. Counts token fetches and other calls.
#[derive(Default)]
struct MockApi {
    tokens: AtomicU64,
    calls: AtomicU64,
}

impl MockApi {
    fn start() -> Result<(SocketAddr, Arc<MockApi>), String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let api = Arc::new(MockApi::default());
        let counts = api.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counts = counts.clone();
                std::thread::spawn(move || counts.serve(stream));
            }
        });
        Ok((addr, api))
    }

    /// Answers the requests of one keep-alive connection.
    fn serve(&self, stream: std::net::TcpStream) {
        use std::io::{Read, Write};
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let answer = if request_line.contains("/cgi-bin/stable_token") {
                self.tokens.fetch_add(1, Ordering::Relaxed);
                r#"{"access_token":"LOADGEN-TOKEN","expires_in":7200}"#
            } else {
                self.calls.fetch_add(1, Ordering::Relaxed);
                r#"{"errcode":0,"errmsg":"ok"}"#
            };
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            if writer.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }
}

fn spawn_server(o: &Options, path: &str, api: Option<SocketAddr>) -> Result<Server, String> {
    let mut cmd = match &o.server_cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus, path]);
            c
        }
        None => Command::new(path),
    };
    cmd.env("BIND", "127.0.0.1:0")
        .env("WECHAT_TOKEN", &o.token)
        .env("WECHAT_APPID", &o.appid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(api) = api {
        cmd.env("WECHAT_API_BASE", format!("http://{api}"))
            .env("WECHAT_APP_SECRET", "loadgen");
    }
    if o.plain_only {
        cmd.env_remove("WECHAT_ENCODING_AES_KEY");
    } else {
        cmd.env("WECHAT_ENCODING_AES_KEY", &o.aes_key);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {path}: {e}"))?;
    let pid = child.id();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut sent = false;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(rest) = line.strip_prefix("listening on http://") {
                    let addr = rest.split('/').next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                    continue;
                }
            }
            println!("server: {line}");
        }
    });
    let mut server = Server {
        child,
        pid,
        addr: o.addr,
    };
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| format!("{path} printed no `listening on` line within 30 s"))?;
    server.addr = line
        .parse()
        .map_err(|e| format!("{path} listens on {line:?}: {e}"))?;
    Ok(server)
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of `pid` (or `self`), in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn stop_server(mut server: Server) -> Result<(), String> {
    let status = Command::new("kill")
        .args(["-TERM", &server.pid.to_string()])
        .status()
        .map_err(|e| format!("kill -TERM: {e}"))?;
    if !status.success() {
        return Err(format!("kill -TERM {} failed", server.pid));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match server.child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("server exited with {status} after SIGTERM")),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => return Err("server still running 15 s after SIGTERM".into()),
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn main() -> ExitCode {
    let o = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("loadgen: {e}");
            }
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
    };
    match run(o) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut o: Options) -> Result<bool, String> {
    let api = match (o.mock_api, o.spawn.is_some()) {
        (false, _) => None,
        (true, true) => Some(MockApi::start()?),
        (true, false) => return Err("--mock-api needs --spawn".into()),
    };
    let mut server = match o.spawn.clone() {
        Some(path) => {
            let s = spawn_server(&o, &path, api.as_ref().map(|(addr, _)| *addr))?;
            o.addr = s.addr;
            Some(s)
        }
        None => None,
    };
    let key = EncodingAesKey::new(&o.aes_key).map_err(|e| e.to_string())?;
    let maker = Maker {
        o: &o,
        key: key.clone(),
        host: o.addr.to_string(),
    };
    let t0 = Instant::now();
    let pool = maker.pool(1);
    let pool_ms = t0.elapsed().as_secs_f64() * 1000.0;
    drop(maker);

    // RSS before any load, then every --sample seconds.
    let rss: Arc<Mutex<Vec<(f64, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let sampler = server.as_ref().map(|s| {
        let (pid, rss, sampling, every) = (s.pid, rss.clone(), sampling.clone(), o.sample);
        if let (Some(kib), Ok(mut v)) = (rss_kib(pid), rss.lock()) {
            v.push((0.0, kib));
        }
        std::thread::spawn(move || {
            let mut next = started + every;
            while sampling.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if Instant::now() >= next {
                    next += every;
                    if let (Some(kib), Ok(mut v)) = (rss_kib(pid), rss.lock()) {
                        v.push((started.elapsed().as_secs_f64(), kib));
                    }
                }
            }
        })
    });

    let shared = Arc::new(Shared {
        deadline: o.duration.map(|d| Instant::now() + d),
        key,
        pool: RwLock::new(Arc::new(pool)),
        issued: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        o,
    });
    let runtime = if shared.o.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(shared.o.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("runtime: {e}"))?;

    // Fresh timestamps every --refresh seconds, on a plain thread off the load's path.
    let refresher = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let maker = Maker {
                o: &shared.o,
                key: shared.key.clone(),
                host: shared.o.addr.to_string(),
            };
            let mut generation = 1;
            let mut next = Instant::now() + shared.o.refresh;
            while !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if Instant::now() >= next {
                    generation += 1;
                    let pool = Arc::new(maker.pool(generation));
                    if let Ok(mut p) = shared.pool.write() {
                        *p = pool;
                    }
                    next = Instant::now() + shared.o.refresh;
                }
            }
            generation
        })
    };

    let server_pid = server.as_ref().map(|s| s.pid.to_string());
    let cpu_before = (cpu_ticks("self"), server_pid.as_deref().and_then(cpu_ticks));
    let load_started = Instant::now();
    let stats = runtime.block_on(async {
        let tasks: Vec<_> = (0..shared.o.connections)
            .map(|_| tokio::spawn(worker(shared.clone())))
            .collect();
        let mut total = Stats::default();
        for t in tasks {
            match t.await {
                Ok(s) => total.merge(s),
                Err(e) => total.unexpected(|| format!("worker failed: {e}")),
            }
        }
        total
    });
    let elapsed = load_started.elapsed();
    let cpu_after = (cpu_ticks("self"), server_pid.as_deref().and_then(cpu_ticks));
    shared.stop.store(true, Ordering::Relaxed);
    let generations = refresher.join().unwrap_or(0);

    // RSS at the end (after the load, before SIGTERM).
    sampling.store(false, Ordering::Relaxed);
    if let Some(t) = sampler {
        let _ = t.join();
    }
    let mut exit = Ok(());
    if let Some(s) = server.as_ref() {
        if let (Some(kib), Ok(mut v)) = (rss_kib(s.pid), rss.lock()) {
            v.push((started.elapsed().as_secs_f64(), kib));
        }
    }
    if let Some(s) = server.take() {
        exit = stop_server(s);
    }

    // Summary.
    let o = &shared.o;
    let mut lat = stats.latencies.clone();
    lat.sort_unstable();
    println!(
        "loadgen: {} requests in {:.2} s over {} connections ({} client thread{}): {:.0} req/s",
        stats.done,
        elapsed.as_secs_f64(),
        o.connections,
        o.threads,
        if o.threads == 1 { "" } else { "s" },
        stats.done as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  target: http://{}{}{}; pool: {} distinct requests per generation ({pool_ms:.0} ms to build), {generations} generation(s)",
        o.addr,
        o.path,
        if o.spawn.is_some() { " (spawned)" } else { "" },
        o.pool
    );
    let statuses: Vec<String> = stats
        .statuses
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    println!("  answers by status: {}", statuses.join(", "));
    if let Some((addr, api)) = &api {
        println!(
            "  mock API at {addr}: {} token fetch(es), {} other call(s) (sends)",
            api.tokens.load(Ordering::Relaxed),
            api.calls.load(Ordering::Relaxed)
        );
    }
    let kinds: Vec<String> = stats
        .kinds
        .iter()
        .map(|(k, v)| format!("{k:?} {v}"))
        .collect();
    println!("  requests by kind: {}", kinds.join(", "));
    println!(
        "  latency (every 8th request): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!(
        "  unexpected answers: {}{}; 5xx: {}; reconnects: {}",
        stats.unexpected,
        if o.no_check {
            " (answers not checked: --no-check)"
        } else {
            ""
        },
        stats.server_errors,
        stats.reconnects
    );
    for s in &stats.samples {
        println!("    e.g. {s}");
    }
    let busy = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(b), Some(a)) => format!("{:.0} %", (a - b) as f64 / elapsed.as_secs_f64()),
        _ => "?".to_owned(),
    };
    print!(
        "  CPU busy during the load (100 % = one core): loadgen {}",
        busy(cpu_before.0, cpu_after.0)
    );
    if o.spawn.is_some() {
        print!(", server {}", busy(cpu_before.1, cpu_after.1));
    }
    println!();
    if o.spawn.is_some() {
        let samples = rss.lock().map(|v| v.clone()).unwrap_or_default();
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            let max = samples.iter().map(|s| s.1).max().unwrap_or(0);
            println!(
                "  server RSS: start {} ({} KiB), end {} ({} KiB), max {} ({max} KiB)",
                mib(first.1),
                first.1,
                mib(last.1),
                last.1,
                mib(max)
            );
            let series: Vec<String> = samples
                .iter()
                .map(|(t, k)| format!("{t:.0}s {:.1}", *k as f64 / 1024.0))
                .collect();
            println!("  server RSS samples (MiB): {}", series.join(", "));
        }
        match &exit {
            Ok(()) => println!("  server: exited 0 after SIGTERM"),
            Err(e) => println!("  server: {e}"),
        }
    }
    let ok = stats.unexpected == 0 && stats.server_errors == 0 && exit.is_ok() && stats.done > 0;
    println!("  result: {}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}
