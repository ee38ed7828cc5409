//! A corpus of hand-made hostile requests, table-driven, against a real hyper server on
//! 127.0.0.1 wrapping `WechatLayer` (encryption on, clock stopped at the vectors' timestamp)
//! around a handler that counts its calls.
//!
//! Most rows are written byte for byte on a raw `TcpStream`, so the test controls exactly what
//! reaches the server: duplicate and badly encoded parameters, non-UTF-8 bytes, chunked bodies,
//! `Content-Length` lies, slow drips. For every row the test checks the status and the reason
//! text (the `Rejection`'s `Display`, or hyper's own answer for what never reaches the layer),
//! that the handler ran exactly when it should, and that the server still answers a valid
//! signed push afterwards. At the end the handler's call count must equal the number of rows
//! (and health checks) that were meant to reach it. `hostile_wecom_corpus` does the same for a
//! WeCom endpoint (Tencent's sample app): handshakes, envelopes, receive ids, sealed replies.

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aes::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::service_fn;
use wechat_push::apps::{App, Apps, ChooseApp};
use wechat_push::clock::FixedClock;
use wechat_push::{signature, Endpoint, Message, WechatLayer, DEFAULT_BODY_LIMIT};

const TO: &str = "gh_97417a04a28d";
const FROM: &str = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY";
/// How long one row may take before the test calls it a hang.
const ROW_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The fixture: the first encrypt case of the vectors.

struct Fx {
    case: Case,
    key_bytes: [u8; 32],
}

impl Fx {
    fn new() -> Self {
        let case = Case::new(0);
        let key_bytes = hex::decode(s(&case.v, "aes_key_hex"))
            .unwrap()
            .try_into()
            .unwrap();
        Self { case, key_bytes }
    }

    fn token(&self) -> &str {
        self.case.token()
    }

    /// The clock's "now", as the decimal text WeChat sends.
    fn now(&self) -> String {
        self.case.timestamp().to_string()
    }

    fn nonce(&self) -> &str {
        self.case.nonce()
    }

    /// `signature`, `timestamp`, `nonce` for the current time.
    fn q(&self) -> String {
        self.q_at(&self.now(), self.nonce())
    }

    fn q_at(&self, timestamp: &str, nonce: &str) -> String {
        plain_query(self.token(), timestamp, nonce)
    }

    /// The safe-mode query for `encrypt` (signed over it as carried after unescaping).
    fn qa(&self, encrypt: &str) -> String {
        let sig = signature::sign_message(self.token(), &self.now(), self.nonce(), encrypt);
        format!("{}&encrypt_type=aes&msg_signature={sig}", self.q())
    }

    /// `Encrypt` for `msg` in the exact WeChat layout, with this case's AppID (sealed by the
    /// tests' own [`reference_encrypt`], not by the crate).
    fn enc(&self, msg: &str) -> String {
        reference_encrypt(
            &self.key_bytes,
            *b"0123456789abcdef",
            msg.as_bytes(),
            self.case.appid(),
        )
    }

    /// AES-256-CBC without padding over `plain` (a multiple of 16 bytes), as base64: for
    /// building every malformed plaintext layout by hand.
    fn enc_raw(&self, plain: &[u8]) -> String {
        assert_eq!(plain.len() % 16, 0, "enc_raw needs whole blocks");
        let mut buf = plain.to_vec();
        let n = buf.len();
        let out = cbc::Encryptor::<aes::Aes256>::new(
            self.key_bytes.as_slice().into(),
            self.key_bytes[..16].into(),
        )
        .encrypt_padded_mut::<NoPadding>(&mut buf, n)
        .unwrap()
        .to_vec();
        STANDARD.encode(out)
    }
}

/// `random(16) | msg_len | msg | appid`, unpadded.
fn layout(msg_len: u32, msg: &[u8], appid: &[u8]) -> Vec<u8> {
    let mut v = b"ABCDEFGHIJKLMNOP".to_vec();
    v.extend_from_slice(&msg_len.to_be_bytes());
    v.extend_from_slice(msg);
    v.extend_from_slice(appid);
    v
}

/// PKCS#7 to a multiple of `k`, as WeChat pads with `k` = 32.
fn pkcs7(mut v: Vec<u8>, k: usize) -> Vec<u8> {
    let pad = k - v.len() % k;
    v.resize(v.len() + pad, pad as u8);
    v
}

/// A text push in XML, with every header field raw (no CDATA) so rows can break any of them.
fn xml_push(create_time: &str, msg_id: &str, content: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{TO}]]></ToUserName><FromUserName><![CDATA[{FROM}]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
}

fn xml_text(content: &str) -> String {
    xml_push("1714200000", "24567213810038956", content)
}

/// `<xml>` around the four header fields of a text push and `inner`.
fn xml_with(inner: &str) -> String {
    format!(
        "<xml><ToUserName>{TO}</ToUserName><FromUserName>{FROM}</FromUserName>\
         <CreateTime>1714200000</CreateTime><MsgType>text</MsgType>{inner}</xml>"
    )
}

fn json_push(create_time: &str, msg_id: &str, content: &str) -> String {
    format!(
        r#"{{"ToUserName":"{TO}","FromUserName":"{FROM}","CreateTime":{create_time},"MsgType":"text","Content":{content},"MsgId":{msg_id}}}"#
    )
}

fn json_text(content: &str) -> String {
    json_push("1714200000", "24567213810038956", &format!("\"{content}\""))
}

fn sealed_xml(encrypt: &str) -> String {
    format!("<xml><ToUserName><![CDATA[{TO}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
}

fn sealed_json(encrypt: &str) -> String {
    format!(r#"{{"ToUserName":"{TO}","Encrypt":"{encrypt}"}}"#)
}

// ---------------------------------------------------------------------------------------------
// The table.

/// How a row's bytes go on the wire.
enum Wire {
    /// Everything at once.
    Whole(Vec<u8>),
    /// The head, then the body in pieces with a pause between each (a slow client).
    Drip {
        head: Vec<u8>,
        pieces: Vec<Vec<u8>>,
        pause: Duration,
    },
    /// Everything, then the write half is shut (the client went quiet before the end).
    ThenShutdown(Vec<u8>),
}

/// What the answer's body must be.
enum Reason {
    /// The `Rejection`'s text (or the 200 body) contains this.
    Contains(String),
    /// Exactly this.
    Is(String),
    /// An encrypted reply whose `Encrypt` opens to a document containing this.
    Sealed(String),
    /// hyper's own answer (the layer never saw the request); the body is not looked at.
    Hyper,
}

struct Row {
    name: String,
    method: &'static str,
    wire: Wire,
    status: u16,
    reason: Reason,
    /// Whether the handler must run (exactly once) for this row.
    handler: bool,
}

/// The request head (and body) as bytes. `Host`, `Connection: close` and (unless the row sets
/// its own framing) `Content-Length` are added.
fn http(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n");
    let framed = headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    if !framed {
        let _ = write!(head, "content-length: {}\r\n", body.len());
    }
    for (n, v) in headers {
        let _ = write!(head, "{n}: {v}\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Rows are built through this, so each is one line in the table.
struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn push(
        &mut self,
        name: impl Into<String>,
        method: &'static str,
        wire: Wire,
        status: u16,
        reason: Reason,
        handler: bool,
    ) {
        let name = name.into();
        assert!(
            !self.rows.iter().any(|r| r.name == name),
            "duplicate row name {name}"
        );
        self.rows.push(Row {
            name,
            method,
            wire,
            status,
            reason,
            handler,
        });
    }

    /// A POST to `/wechat?{query}` with `body`, refused by the layer.
    fn post_rejected(
        &mut self,
        name: impl Into<String>,
        query: &str,
        body: impl AsRef<[u8]>,
        status: u16,
        reason: &str,
    ) {
        let wire = Wire::Whole(http(
            "POST",
            &format!("/wechat?{query}"),
            &[],
            body.as_ref(),
        ));
        self.push(
            name,
            "POST",
            wire,
            status,
            Reason::Contains(reason.to_owned()),
            false,
        );
    }

    /// A POST that reaches the handler and is answered 200 with a body containing `reply`.
    fn post_ok(
        &mut self,
        name: impl Into<String>,
        query: &str,
        body: impl AsRef<[u8]>,
        reply: &str,
    ) {
        let wire = Wire::Whole(http(
            "POST",
            &format!("/wechat?{query}"),
            &[],
            body.as_ref(),
        ));
        self.push(
            name,
            "POST",
            wire,
            200,
            Reason::Contains(reply.to_owned()),
            true,
        );
    }

    /// A safe-mode POST that reaches the handler; the sealed reply must open to `content`.
    fn post_sealed(
        &mut self,
        name: impl Into<String>,
        query: &str,
        body: impl AsRef<[u8]>,
        content: &str,
    ) {
        let wire = Wire::Whole(http(
            "POST",
            &format!("/wechat?{query}"),
            &[],
            body.as_ref(),
        ));
        self.push(
            name,
            "POST",
            wire,
            200,
            Reason::Sealed(content.to_owned()),
            true,
        );
    }

    /// A GET refused by the layer.
    fn get_rejected(&mut self, name: impl Into<String>, query: &str, status: u16, reason: &str) {
        let wire = Wire::Whole(http("GET", &format!("/wechat?{query}"), &[], b""));
        self.push(
            name,
            "GET",
            wire,
            status,
            Reason::Contains(reason.to_owned()),
            false,
        );
    }

    /// Raw bytes refused by hyper itself (before the layer) with `status`.
    fn raw_hyper(&mut self, name: impl Into<String>, bytes: Vec<u8>, status: u16) {
        self.push(
            name,
            "POST",
            Wire::Whole(bytes),
            status,
            Reason::Hyper,
            false,
        );
    }

    /// Raw bytes refused by the layer.
    fn raw_rejected(
        &mut self,
        name: impl Into<String>,
        method: &'static str,
        bytes: Vec<u8>,
        status: u16,
        reason: &str,
    ) {
        self.push(
            name,
            method,
            Wire::Whole(bytes),
            status,
            Reason::Contains(reason.to_owned()),
            false,
        );
    }
}

fn table(fx: &Fx) -> Vec<Row> {
    let mut t = Table { rows: Vec::new() };
    let q = fx.q();
    let now = fx.case.timestamp();
    let xml = xml_text("hello");

    // --- Methods -------------------------------------------------------------------------
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO", "post"] {
        let bytes = http(method, &format!("/wechat?{q}"), &[], xml.as_bytes());
        t.raw_rejected(
            format!("method {method}"),
            "POST",
            bytes,
            405,
            "method not allowed: use GET or POST",
        );
    }
    // HEAD: same answer, but a HEAD response has no body to read.
    let bytes = http("HEAD", &format!("/wechat?{q}&echostr=1"), &[], b"");
    t.push(
        "method HEAD",
        "HEAD",
        Wire::Whole(bytes),
        405,
        Reason::Is(String::new()),
        false,
    );
    // Unsigned PUT: the method is refused before the signature is looked at.
    let bytes = http("PUT", "/wechat", &[], b"");
    t.raw_rejected(
        "method PUT unsigned",
        "PUT",
        bytes,
        405,
        "method not allowed",
    );

    // --- Missing and empty parameters ----------------------------------------------------
    t.post_rejected(
        "no query at all",
        "",
        &xml,
        401,
        "missing timestamp: the request is not signed",
    );
    t.post_rejected("only separators", "&&&&", &xml, 401, "missing timestamp");
    let ts = fx.now();
    let sig = signature::sign(fx.token(), &ts, fx.nonce()).to_string();
    let nonce = fx.nonce();
    t.post_rejected(
        "missing signature",
        &format!("timestamp={ts}&nonce={nonce}"),
        &xml,
        401,
        "missing signature: the request is not signed",
    );
    t.post_rejected(
        "missing nonce",
        &format!("signature={sig}&timestamp={ts}"),
        &xml,
        401,
        "missing nonce: the request is not signed",
    );
    t.post_rejected(
        "missing timestamp",
        &format!("signature={sig}&nonce={nonce}"),
        &xml,
        401,
        "missing timestamp",
    );
    t.post_rejected(
        "empty signature",
        &format!("signature=&timestamp={ts}&nonce={nonce}"),
        &xml,
        401,
        "bad signature",
    );
    t.post_rejected(
        "signature without =",
        &format!("signature&timestamp={ts}&nonce={nonce}"),
        &xml,
        401,
        "bad signature",
    );
    t.post_rejected(
        "empty timestamp",
        &format!("signature={sig}&timestamp=&nonce={nonce}"),
        &xml,
        400,
        "bad query: query parameter timestamp is malformed",
    );
    t.post_ok(
        "empty nonce, signed over it (accepted)",
        &fx.q_at(&ts, ""),
        &xml,
        "<Content><![CDATA[hello]]></Content>",
    );
    t.post_rejected(
        "semicolons as separators",
        &format!("signature={sig};timestamp={ts};nonce={nonce}"),
        &xml,
        401,
        "missing timestamp",
    );
    t.get_rejected("GET without echostr", &q, 400, "missing echostr");
    t.push(
        "GET with empty echostr (answered empty)",
        "GET",
        Wire::Whole(http("GET", &format!("/wechat?{q}&echostr="), &[], b"")),
        200,
        Reason::Is(String::new()),
        false,
    );

    // --- Signatures ----------------------------------------------------------------------
    let mut flipped = sig.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    t.post_rejected(
        "signature one hex digit off",
        &format!("signature={flipped}&timestamp={ts}&nonce={nonce}"),
        &xml,
        401,
        "bad signature",
    );
    t.post_rejected(
        "signature 39 digits",
        &format!("signature={}&timestamp={ts}&nonce={nonce}", &sig[..39]),
        &xml,
        401,
        "bad signature",
    );
    t.post_rejected(
        "signature 41 digits",
        &format!("signature={sig}0&timestamp={ts}&nonce={nonce}"),
        &xml,
        401,
        "bad signature",
    );
    t.post_rejected(
        "signature 40 non-hex",
        &format!("signature={}&timestamp={ts}&nonce={nonce}", "g".repeat(40)),
        &xml,
        401,
        "bad signature",
    );
    t.post_rejected(
        "signature 32 KiB long",
        &format!(
            "signature={}&timestamp={ts}&nonce={nonce}",
            "a".repeat(32 * 1024)
        ),
        &xml,
        401,
        "bad signature",
    );
    // Past 64 KiB the URI is refused by hyper (the `http` crate's limit).
    t.raw_hyper(
        "request target over 64 KiB",
        http(
            "POST",
            &format!("/wechat?{q}&x={}", "a".repeat(64 * 1024)),
            &[],
            xml.as_bytes(),
        ),
        414,
    );
    t.post_rejected(
        "signature of another token",
        &plain_query("OtherToken9", &ts, nonce),
        &xml,
        401,
        "bad signature",
    );
    t.post_ok(
        "signature in uppercase (accepted)",
        &format!(
            "signature={}&timestamp={ts}&nonce={nonce}",
            sig.to_uppercase()
        ),
        &xml,
        "hello",
    );
    let pct_sig: String = sig.bytes().map(|b| format!("%{b:02x}")).collect();
    t.post_ok(
        "signature fully percent-encoded (accepted)",
        &format!("signature={pct_sig}&timestamp={ts}&nonce={nonce}"),
        &xml,
        "hello",
    );
    let wrong_nonce_sig = signature::sign(fx.token(), &ts, "a b").to_string();
    t.post_rejected(
        "plus is not a space in nonce",
        &format!("signature={wrong_nonce_sig}&timestamp={ts}&nonce=a+b"),
        &xml,
        401,
        "bad signature",
    );
    t.post_ok(
        "plus kept literally in nonce (accepted)",
        &fx.q_at(&ts, "a+b"),
        &xml,
        "hello",
    );

    // --- Duplicate parameters and percent-encoding tricks ----------------------------------
    t.post_rejected(
        "signature twice",
        &format!("{q}&signature={sig}"),
        &xml,
        400,
        "bad query: query parameter signature appears more than once",
    );
    t.post_rejected(
        "timestamp twice",
        &format!("{q}&timestamp={ts}"),
        &xml,
        400,
        "query parameter timestamp appears more than once",
    );
    t.post_rejected(
        "nonce twice",
        &format!("{q}&nonce={nonce}"),
        &xml,
        400,
        "query parameter nonce appears more than once",
    );
    t.post_rejected(
        "openid twice",
        &format!("{q}&openid={FROM}&openid={FROM}"),
        &xml,
        400,
        "query parameter openid appears more than once",
    );
    t.post_rejected(
        "encrypt_type twice",
        &format!("{q}&encrypt_type=raw&encrypt_type=aes"),
        &xml,
        400,
        "query parameter encrypt_type appears more than once",
    );
    t.post_rejected(
        "msg_signature twice",
        &format!("{q}&msg_signature=a&msg_signature=a"),
        &xml,
        400,
        "query parameter msg_signature appears more than once",
    );
    t.get_rejected(
        "echostr twice",
        &format!("{q}&echostr=1&echostr=2"),
        400,
        "query parameter echostr appears more than once",
    );
    t.post_rejected(
        "signature twice, second percent-encoded name",
        &format!("{q}&%73ignature={sig}"),
        &xml,
        400,
        "query parameter signature appears more than once",
    );
    t.post_rejected(
        "timestamp twice, second one stale",
        &format!("{q}&timestamp=1"),
        &xml,
        400,
        "timestamp appears more than once",
    );
    t.post_ok(
        "unknown parameter repeated (ignored)",
        &format!("{q}&x=1&x=2&x"),
        &xml,
        "hello",
    );
    t.post_rejected(
        "bad escape %zz in signature",
        &format!("signature=%zz&timestamp={ts}&nonce={nonce}"),
        &xml,
        400,
        "query parameter signature is badly percent-encoded",
    );
    t.post_rejected(
        "truncated escape % at the end",
        &format!("{q}&openid=%"),
        &xml,
        400,
        "query parameter openid is badly percent-encoded",
    );
    t.post_rejected(
        "truncated escape %f",
        &format!("signature={sig}&timestamp={ts}&nonce=%f"),
        &xml,
        400,
        "query parameter nonce is badly percent-encoded",
    );
    t.post_rejected(
        "escape to non-UTF-8 %ff",
        &format!("signature={sig}&timestamp={ts}&nonce=%ff"),
        &xml,
        400,
        "nonce is badly percent-encoded",
    );
    t.post_rejected(
        "overlong UTF-8 %C0%AF",
        &format!("signature={sig}&timestamp={ts}&nonce=%C0%AF"),
        &xml,
        400,
        "nonce is badly percent-encoded",
    );
    t.post_rejected(
        "lone surrogate %ED%A0%80",
        &format!("signature={sig}&timestamp={ts}&nonce=%ED%A0%80"),
        &xml,
        400,
        "nonce is badly percent-encoded",
    );
    t.post_rejected(
        "bad escape in an unknown name",
        &format!("{q}&%zz=1"),
        &xml,
        400,
        "query parameter parameter name is badly percent-encoded",
    );
    let pct_ts: String = ts.bytes().map(|b| format!("%{b:02X}")).collect();
    t.post_ok(
        "timestamp percent-encoded digits (accepted)",
        &format!("signature={sig}&timestamp={pct_ts}&nonce={nonce}"),
        &xml,
        "hello",
    );
    t.post_rejected(
        "timestamp with encoded trailing space",
        &format!("signature={sig}&timestamp={ts}%20&nonce={nonce}"),
        &xml,
        400,
        "query parameter timestamp is malformed",
    );
    t.post_rejected(
        "timestamp with plus sign",
        &format!("signature={sig}&timestamp=%2B{ts}&nonce={nonce}"),
        &xml,
        400,
        "timestamp is malformed",
    );
    t.post_ok(
        "nonce with encoded NUL, signed over it (accepted)",
        &fx.q_at(&ts, "\0").replace("nonce=\0", "nonce=%00"),
        &xml,
        "hello",
    );
    t.raw_hyper("raw non-ASCII bytes in the query", [b"POST /wechat?".as_slice(), q.as_bytes(), b"&openid=\xff\xfe HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"].concat(), 400);
    t.raw_hyper(
        "space inside the request target",
        http(
            "POST",
            &format!("/wechat?{q}&openid=a b"),
            &[],
            xml.as_bytes(),
        ),
        400,
    );
    t.post_rejected(
        "encrypt_type in uppercase",
        &format!("{q}&encrypt_type=AES"),
        &xml,
        400,
        "query parameter encrypt_type is malformed",
    );
    t.post_rejected(
        "encrypt_type unknown",
        &format!("{q}&encrypt_type=des"),
        &xml,
        400,
        "query parameter encrypt_type is malformed",
    );

    // --- Timestamps at the tolerance edge ------------------------------------------------
    for (label, at, ok) in [
        ("-300 s", now - 300, true),
        ("+300 s", now + 300, true),
        ("-301 s", now - 301, false),
        ("+301 s", now + 301, false),
    ] {
        let query = fx.q_at(&at.to_string(), nonce);
        if ok {
            t.post_ok(
                format!("timestamp {label} (accepted)"),
                &query,
                &xml,
                "hello",
            );
        } else {
            t.post_rejected(
                format!("timestamp {label}"),
                &query,
                &xml,
                401,
                &format!("stale timestamp {at}: more than 300 s from now"),
            );
        }
    }
    t.get_rejected(
        "handshake timestamp -301 s",
        &format!("{}&echostr=1", fx.q_at(&(now - 301).to_string(), nonce)),
        401,
        "stale timestamp",
    );
    t.post_rejected(
        "timestamp 0",
        &fx.q_at("0", nonce),
        &xml,
        401,
        "stale timestamp 0:",
    );
    t.post_rejected(
        "timestamp 19 nines",
        &fx.q_at("9999999999999999999", nonce),
        &xml,
        401,
        "stale timestamp 9999999999999999999",
    );
    t.post_rejected(
        "timestamp u64::MAX (20 digits)",
        &fx.q_at("18446744073709551615", nonce),
        &xml,
        400,
        "query parameter timestamp is malformed",
    );
    t.post_rejected(
        "timestamp 2^64",
        &fx.q_at("18446744073709551616", nonce),
        &xml,
        400,
        "timestamp is malformed",
    );
    t.post_rejected(
        "timestamp negative",
        &fx.q_at("-1714200000", nonce),
        &xml,
        400,
        "timestamp is malformed",
    );
    t.post_rejected(
        "timestamp in exponent form",
        &fx.q_at("1.7142e9", nonce),
        &xml,
        400,
        "timestamp is malformed",
    );
    t.post_rejected(
        "timestamp in milliseconds",
        &fx.q_at(&format!("{now}000"), nonce),
        &xml,
        401,
        "stale timestamp",
    );
    t.post_ok(
        "timestamp with leading zeros (accepted)",
        &fx.q_at(&format!("000{now}"), nonce),
        &xml,
        "hello",
    );

    // --- Body format ---------------------------------------------------------------------
    t.post_rejected("empty body", &q, "", 400, "malformed push: body is empty");
    t.post_rejected(
        "whitespace-only body",
        &q,
        " \r\n\t ",
        400,
        "malformed push: body is empty",
    );
    t.post_rejected(
        "body is `success`",
        &q,
        "success",
        400,
        "body is neither XML nor JSON",
    );
    t.post_rejected(
        "body is a JSON array",
        &q,
        "[1,2]",
        400,
        "body is neither XML nor JSON",
    );
    t.post_rejected(
        "form-encoded body",
        &q,
        "ToUserName=gh&Content=x",
        400,
        "neither XML nor JSON",
    );
    let utf16le: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(xml.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    t.post_rejected(
        "UTF-16LE with BOM",
        &q,
        utf16le,
        400,
        "UTF-16 byte-order mark; only UTF-8 is supported",
    );
    let utf16be: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(xml.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    t.post_rejected(
        "UTF-16BE with BOM",
        &q,
        utf16be,
        400,
        "UTF-16 byte-order mark",
    );
    let utf16_no_bom: Vec<u8> = xml.encode_utf16().flat_map(u16::to_le_bytes).collect();
    t.post_rejected(
        "UTF-16LE without BOM",
        &q,
        utf16_no_bom,
        400,
        "malformed push: XML:",
    );
    t.post_ok(
        "UTF-8 BOM before XML (accepted)",
        &q,
        format!("\u{feff}{xml}"),
        "hello",
    );
    t.post_ok(
        "UTF-8 BOM before JSON (accepted)",
        &q,
        format!("\u{feff}{}", json_text("hello")),
        "\"Content\":\"hello\"",
    );
    let mut latin1 = xml_text("caf_").into_bytes();
    let at = latin1.iter().position(|&b| b == b'_').unwrap();
    latin1[at] = 0xE9;
    t.post_rejected(
        "Latin-1 byte in XML",
        &q,
        latin1,
        400,
        "malformed push: XML: body is not UTF-8",
    );
    t.post_rejected(
        "non-UTF-8 byte in JSON",
        &q,
        [json_text("x").as_bytes(), b"\xc3"].concat(),
        400,
        "malformed push: JSON: body is not UTF-8",
    );
    t.post_rejected(
        "UTF-8 encoded surrogate in XML",
        &q,
        [
            &b"<xml><ToUserName>\xed\xa0\x80"[..],
            b"</ToUserName></xml>",
        ]
        .concat(),
        400,
        "XML: body is not UTF-8",
    );
    for cut in [5, 30, 120, 200, xml.len() - 1] {
        t.post_rejected(
            format!("XML truncated to {cut} bytes"),
            &q,
            &xml[..cut],
            400,
            "malformed push: XML: ",
        );
    }
    let json = json_text("hello");
    for cut in [1, 40, json.len() - 1] {
        t.post_rejected(
            format!("JSON truncated to {cut} bytes"),
            &q,
            &json[..cut],
            400,
            "malformed push: JSON: ",
        );
    }
    t.post_rejected(
        "XML root is not <xml>",
        &q,
        xml.replace("xml>", "doc>"),
        400,
        "XML: the root element must be <xml>",
    );
    t.post_rejected(
        "XML mismatched end tag",
        &q,
        xml.replace("</Content>", "</Contents>"),
        400,
        "XML: syntax error: found </Contents>, expected </Content>",
    );
    t.post_rejected(
        "XML text mixed with elements",
        &q,
        xml.replace("<Content>", "<Content>x<b/>"),
        400,
        "text mixed with elements",
    );
    t.post_rejected(
        "XML second root",
        &q,
        format!("{xml}{xml}"),
        400,
        "XML: unexpected content after the root element",
    );
    t.post_rejected(
        "XML trailing text",
        &q,
        format!("{xml}garbage"),
        400,
        "unexpected content after the root element",
    );
    t.post_ok(
        "XML trailing comment and PI (accepted)",
        &q,
        format!("<?xml version=\"1.0\"?>{xml}<!-- c --><?pi x?>\n"),
        "hello",
    );
    t.post_rejected(
        "XML unterminated comment",
        &q,
        xml.replace("<Content>", "<!-- <Content>"),
        400,
        "unterminated comment",
    );
    t.post_rejected(
        "XML unterminated CDATA",
        &q,
        xml.replace("]]></Content>", "</Content>"),
        400,
        "unterminated CDATA",
    );
    t.post_rejected(
        "XML unterminated processing instruction",
        &q,
        format!("<?xml {xml}"),
        400,
        "unterminated processing instruction",
    );
    t.post_rejected(
        "XML <!ENTITY outside a DOCTYPE",
        &q,
        format!("<!ENTITY a \"b\">{xml}"),
        400,
        "unexpected <!",
    );
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>"#;
    t.post_rejected(
        "billion laughs DOCTYPE",
        &q,
        format!("{laughs}{}", xml_with("<Content>&lol9;</Content>")),
        400,
        "malformed push: XML: DOCTYPE is not allowed",
    );
    t.post_rejected(
        "XXE external entity",
        &q,
        format!(
            "<!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}",
            xml_with("<Content>&x;</Content>")
        ),
        400,
        "DOCTYPE is not allowed",
    );
    t.post_rejected(
        "DOCTYPE inside the root",
        &q,
        xml_with("<!DOCTYPE x><Content>a</Content>"),
        400,
        "DOCTYPE is not allowed",
    );
    t.post_rejected(
        "undeclared entity reference",
        &q,
        xml_with("<Content>&lol9;</Content>"),
        400,
        "unknown entity &lol9;",
    );
    t.post_rejected(
        "entity reference without semicolon",
        &q,
        xml_with("<Content>&amp</Content>"),
        400,
        "unterminated or unknown entity reference",
    );
    t.post_rejected(
        "character reference to NUL",
        &q,
        xml_with("<Content>&#0;</Content>"),
        400,
        "unknown entity &#0;",
    );
    t.post_rejected(
        "character reference to a surrogate",
        &q,
        xml_with("<Content>&#xD800;</Content>"),
        400,
        "unknown entity &#xD800;",
    );
    t.post_rejected(
        "character reference past U+10FFFF",
        &q,
        xml_with("<Content>&#x110000;</Content>"),
        400,
        "unknown entity &#x110000;",
    );
    t.post_rejected(
        "character reference overflowing u32",
        &q,
        xml_with("<Content>&#99999999999;</Content>"),
        400,
        "unknown entity",
    );
    t.post_ok(
        "character and entity references (accepted)",
        &q,
        xml_with("<Content>&#x41;&#66;&lt;&amp;&gt;&quot;&apos;</Content>"),
        "<Content><![CDATA[AB<&>\"']]></Content>",
    );
    let deep = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
    t.post_ok(
        "XML nested exactly 32 deep (accepted)",
        &q,
        xml_with(&format!("<Content>x</Content>{}", deep(31))),
        "<Content><![CDATA[x]]></Content>",
    );
    t.post_rejected(
        "XML nested 33 deep",
        &q,
        xml_with(&format!("<Content>x</Content>{}", deep(32))),
        400,
        "XML: nested deeper than 32 levels",
    );
    t.post_rejected(
        "XML nested 100000 deep",
        &q,
        xml_with(&"<a>".repeat(100_000)),
        400,
        "nested deeper than 32 levels",
    );
    t.post_rejected(
        "JSON nested 100000 deep",
        &q,
        format!(r#"{{"ToUserName":{}"#, "[".repeat(100_000)),
        400,
        "malformed push: JSON: ",
    );
    t.post_rejected(
        "JSON objects nested 100000 deep",
        &q,
        format!("{{\"a\":{}", "{\"a\":".repeat(100_000)),
        400,
        "malformed push: JSON: ",
    );
    let attrs: String = (0..60_000).map(|i| format!(" a{i}=\"{i}\"")).collect();
    t.post_ok(
        "60000 attributes on the root (ignored)",
        &q,
        xml.replacen("<xml>", &format!("<xml{attrs}>"), 1),
        "hello",
    );
    t.post_ok(
        "60000 attributes on Content (ignored)",
        &q,
        xml.replacen("<Content>", &format!("<Content{attrs}>"), 1),
        "hello",
    );
    t.post_rejected(
        "attribute value with <",
        &q,
        xml.replacen("<Content>", "<Content a=\"<\">", 1),
        400,
        "`<` in an attribute value",
    );
    t.post_rejected(
        "unterminated attribute value",
        &q,
        xml.replacen("<Content>", "<Content a=\"x>", 1),
        400,
        "XML: syntax error",
    );
    t.post_rejected(
        "unquoted attribute value",
        &q,
        xml.replacen("<Content>", "<Content a=x>", 1),
        400,
        "expected a quoted attribute value",
    );
    let many: String = (0..50_000).map(|i| format!("<F{i}/>")).collect();
    t.post_ok(
        "50000 extra elements (kept as extras)",
        &q,
        xml_with(&format!("<Content>x</Content>{many}")),
        "<Content><![CDATA[x]]></Content>",
    );
    t.post_ok(
        "element name of 100 KiB (kept as an extra)",
        &q,
        xml_with(&format!(
            "<Content>x</Content><{0}>v</{0}>",
            "N".repeat(100 * 1024)
        )),
        "<Content><![CDATA[x]]></Content>",
    );
    let big = "長".repeat(300 * 1024);
    t.post_ok(
        "Content of 900 KiB (accepted, echoed)",
        &q,
        xml_text(&big),
        "長長長長]]></Content>",
    );
    t.post_ok(
        "CDATA split around ]]> (accepted)",
        &q,
        xml_with("<Content><![CDATA[a]]]]><![CDATA[>b]]></Content>"),
        "a]]]]><![CDATA[>b",
    );
    t.post_ok(
        "raw NUL and control bytes in Content (accepted)",
        &q,
        xml_text("a\0b\x01c"),
        "a\0b\x01c",
    );
    let bytes = http(
        "POST",
        &format!("/wechat?{q}"),
        &[("content-type", "application/json")],
        xml.as_bytes(),
    );
    t.push(
        "Content-Type says JSON, body is XML (sniffed)",
        "POST",
        Wire::Whole(bytes),
        200,
        Reason::Contains("<Content><![CDATA[hello]]>".into()),
        true,
    );

    // --- Fields ---------------------------------------------------------------------------
    t.post_rejected(
        "duplicate ToUserName",
        &q,
        xml.replacen("<xml>", &format!("<xml><ToUserName>{TO}</ToUserName>"), 1),
        400,
        "malformed push: duplicate ToUserName",
    );
    t.post_rejected(
        "duplicate MsgType",
        &q,
        xml_with("<MsgType>image</MsgType><Content>x</Content>"),
        400,
        "duplicate MsgType",
    );
    t.post_rejected(
        "duplicate Content",
        &q,
        xml_with("<Content>a</Content><Content>b</Content>"),
        400,
        "duplicate Content",
    );
    t.post_rejected(
        "JSON duplicate key ToUserName",
        &q,
        json.replacen('{', &format!("{{\"ToUserName\":\"{TO}\","), 1),
        400,
        "duplicate ToUserName",
    );
    t.post_rejected(
        "missing ToUserName",
        &q,
        xml.replace(&format!("<ToUserName><![CDATA[{TO}]]></ToUserName>"), ""),
        400,
        "malformed push: missing ToUserName",
    );
    t.post_rejected(
        "missing CreateTime",
        &q,
        xml.replace("<CreateTime>1714200000</CreateTime>", ""),
        400,
        "missing CreateTime",
    );
    t.post_rejected(
        "text without Content",
        &q,
        xml_with(""),
        400,
        "missing Content",
    );
    t.post_rejected("empty <xml/>", &q, "<xml/>", 400, "missing ToUserName");
    t.post_rejected("JSON empty object", &q, "{}", 400, "missing ToUserName");
    t.post_rejected(
        "ToUserName as a nested element",
        &q,
        xml.replacen(&format!("<![CDATA[{TO}]]>"), "<a>b</a>", 1),
        400,
        "invalid ToUserName",
    );
    t.post_ok(
        "JSON null Content (empty text, accepted)",
        &q,
        json_push("1714200000", "1", "null"),
        "\"Content\":\"\"",
    );
    t.post_ok(
        "JSON CreateTime as a string (accepted)",
        &q,
        json_push("\"1714200000\"", "1", "\"hi\""),
        "\"Content\":\"hi\"",
    );

    // --- Numbers out of range --------------------------------------------------------------
    t.post_ok(
        "CreateTime u64::MAX (accepted)",
        &q,
        xml_push("18446744073709551615", "1", "hi"),
        "hi",
    );
    t.post_rejected(
        "CreateTime 2^64",
        &q,
        xml_push("18446744073709551616", "1", "hi"),
        400,
        "malformed push: invalid CreateTime: expected an unsigned 64-bit integer",
    );
    t.post_rejected(
        "CreateTime 30 digits",
        &q,
        xml_push(&"9".repeat(30), "1", "hi"),
        400,
        "invalid CreateTime",
    );
    t.post_rejected(
        "CreateTime negative",
        &q,
        xml_push("-1", "1", "hi"),
        400,
        "invalid CreateTime",
    );
    t.post_rejected(
        "CreateTime fractional",
        &q,
        xml_push("1714200000.5", "1", "hi"),
        400,
        "invalid CreateTime",
    );
    t.post_rejected(
        "CreateTime hexadecimal",
        &q,
        xml_push("0x66", "1", "hi"),
        400,
        "invalid CreateTime",
    );
    t.post_rejected(
        "CreateTime empty",
        &q,
        xml_push("", "1", "hi"),
        400,
        "invalid CreateTime",
    );
    t.post_ok(
        "CreateTime padded with whitespace (accepted)",
        &q,
        xml_push(" \n1714200000\t", "1", "hi"),
        "hi",
    );
    t.post_rejected(
        "JSON CreateTime 2^64",
        &q,
        json_push("18446744073709551616", "1", "\"hi\""),
        400,
        "malformed push: JSON: integer does not fit in 64 bits",
    );
    t.post_rejected(
        "JSON CreateTime negative",
        &q,
        json_push("-1", "1", "\"hi\""),
        400,
        "invalid CreateTime",
    );
    t.post_rejected(
        "JSON CreateTime 1e3",
        &q,
        json_push("1e3", "1", "\"hi\""),
        400,
        "invalid CreateTime",
    );
    t.post_rejected(
        "JSON CreateTime true",
        &q,
        json_push("true", "1", "\"hi\""),
        400,
        "invalid CreateTime",
    );
    t.post_ok(
        "MsgId 2^64 in XML (kept as an extra)",
        &q,
        xml_push("1714200000", "18446744073709551616", "hi"),
        "hi",
    );
    t.post_ok(
        "MsgId not a number in XML (kept as an extra)",
        &q,
        xml_push("1714200000", "abc", "hi"),
        "hi",
    );
    t.post_rejected(
        "JSON MsgId 2^64",
        &q,
        json_push("1714200000", "18446744073709551616", "\"hi\""),
        400,
        "integer does not fit in 64 bits",
    );
    t.post_rejected(
        "JSON MsgId -2^63-1",
        &q,
        json_push("1714200000", "-9223372036854775809", "\"hi\""),
        400,
        "integer does not fit in 64 bits",
    );
    t.post_rejected(
        "JSON MsgId 1e400",
        &q,
        json_push("1714200000", "1e400", "\"hi\""),
        400,
        "malformed push: JSON: ",
    );
    t.post_ok(
        "JSON MsgId u64::MAX (accepted)",
        &q,
        json_push("1714200000", "18446744073709551615", "\"hi\""),
        "\"Content\":\"hi\"",
    );
    let location = |x: &str, scale: &str| {
        format!(
            "<xml><ToUserName>{TO}</ToUserName><FromUserName>{FROM}</FromUserName><CreateTime>1</CreateTime>\
             <MsgType>location</MsgType><Location_X>{x}</Location_X><Location_Y>113.3</Location_Y>\
             <Scale>{scale}</Scale><Label>l</Label></xml>"
        )
    };
    t.post_rejected(
        "Location_X NaN",
        &q,
        location("NaN", "20"),
        400,
        "invalid Location_X: expected a number",
    );
    t.post_rejected(
        "Location_X 1e999 (infinite)",
        &q,
        location("1e999", "20"),
        400,
        "invalid Location_X",
    );
    t.post_rejected(
        "Scale 2^32",
        &q,
        location("23.1", "4294967296"),
        400,
        "invalid Scale: expected an unsigned 32-bit integer",
    );
    t.post_ok(
        "location at the edges (acknowledged)",
        &q,
        location("-90.0", "4294967295"),
        "success",
    );

    // --- Safe mode: envelopes and signatures ---------------------------------------------
    let good = fx.enc(&xml);
    let good_json = fx.enc(&json);
    t.post_sealed(
        "valid safe-mode XML (control)",
        &fx.qa(&good),
        sealed_xml(&good),
        "<Content><![CDATA[hello]]></Content>",
    );
    t.post_sealed(
        "valid safe-mode JSON (control)",
        &fx.qa(&good_json),
        sealed_json(&good_json),
        "\"Content\":\"hello\"",
    );
    let compatible = xml.replace("hello", "forged").replace(
        "</xml>",
        &format!("<Encrypt><![CDATA[{good}]]></Encrypt></xml>"),
    );
    t.post_sealed(
        "compatible mode: clear copy forged, Encrypt wins",
        &fx.qa(&good),
        compatible,
        "<Content><![CDATA[hello]]></Content>",
    );
    t.post_sealed(
        "Encrypt with XML character references",
        &fx.qa(&good),
        format!(
            "<xml><ToUserName>{TO}</ToUserName><Encrypt>{}</Encrypt></xml>",
            good.replace('+', "&#x2B;").replace('/', "&#47;")
        ),
        "hello",
    );
    t.post_sealed(
        "JSON Encrypt with escaped slashes",
        &fx.qa(&good_json),
        sealed_json(&good_json).replace('/', "\\/"),
        "hello",
    );
    t.post_sealed(
        "encrypt_type=raw but the body is encrypted and signed",
        &fx.qa(&good).replace("encrypt_type=aes", "encrypt_type=raw"),
        sealed_xml(&good),
        "hello",
    );
    t.post_rejected(
        "Encrypt without msg_signature",
        &q,
        sealed_xml(&good),
        401,
        "missing msg_signature for Encrypt",
    );
    t.post_rejected(
        "Encrypt with aes but without msg_signature",
        &format!("{q}&encrypt_type=aes"),
        sealed_xml(&good),
        401,
        "missing msg_signature for Encrypt",
    );
    t.post_rejected(
        "msg_signature empty",
        &format!("{q}&encrypt_type=aes&msg_signature="),
        sealed_xml(&good),
        401,
        "bad msg_signature",
    );
    t.post_rejected(
        "msg_signature over another Encrypt",
        &fx.qa(&good_json),
        sealed_xml(&good),
        401,
        "bad msg_signature",
    );
    t.post_rejected(
        "msg_signature is the plain signature",
        &format!("{q}&encrypt_type=aes&msg_signature={sig}"),
        sealed_xml(&good),
        401,
        "bad msg_signature",
    );
    t.post_rejected(
        "encrypt_type=aes but plaintext body",
        &format!("{q}&encrypt_type=aes"),
        &xml,
        400,
        "encrypt_type=aes but the body has no Encrypt",
    );
    t.post_rejected(
        "duplicate Encrypt",
        &fx.qa(&good),
        sealed_xml(&good).replace("</xml>", &format!("<Encrypt>{good}</Encrypt></xml>")),
        400,
        "duplicate Encrypt",
    );
    t.post_rejected(
        "Encrypt as a nested element",
        &fx.qa("x"),
        sealed_xml("").replace("<![CDATA[]]>", "<a>x</a>"),
        400,
        "invalid Encrypt: expected text",
    );
    t.post_rejected(
        "JSON Encrypt as a number",
        &fx.qa("1"),
        r#"{"Encrypt":1}"#,
        400,
        "invalid Encrypt: expected text",
    );
    t.post_rejected(
        "Encrypt with a space inserted",
        &fx.qa(&format!(" {good}")),
        sealed_xml(&format!(" {good}")),
        400,
        "cannot decrypt: Encrypt is not valid base64",
    );
    let wrapped = format!("{}\n{}", &good[..76], &good[76..]);
    t.post_rejected(
        "Encrypt with a line break",
        &fx.qa(&wrapped),
        sealed_xml(&wrapped),
        400,
        "Encrypt is not valid base64",
    );
    let urlsafe = good.replace('+', "-").replace('/', "_");
    t.post_rejected(
        "Encrypt in URL-safe base64",
        &fx.qa(&urlsafe),
        sealed_xml(&urlsafe),
        400,
        "Encrypt is not valid base64",
    );
    let unpadded = good.trim_end_matches('=').to_owned();
    t.post_rejected(
        "Encrypt without its = padding",
        &fx.qa(&unpadded),
        sealed_xml(&unpadded),
        400,
        "Encrypt is not valid base64",
    );
    t.post_rejected(
        "Encrypt that is not base64 at all",
        &fx.qa("!!!!"),
        sealed_xml("!!!!"),
        400,
        "Encrypt is not valid base64",
    );

    // --- Encrypt of every wrong length ---------------------------------------------------
    for n in 0..=64usize {
        let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
        let (encrypt, reason) = if n == 0 || n % 16 != 0 {
            (
                STANDARD.encode(&bytes),
                format!(
                    "cannot decrypt: Encrypt decodes to {n} bytes, not a non-zero multiple of 16"
                ),
            )
        } else {
            // Whole blocks whose last plaintext byte is never a valid pad: 0, 33, 200, 255.
            let mut plain = bytes.clone();
            plain[n - 1] = [0, 33, 200, 255][n / 16 - 1];
            (
                fx.enc_raw(&plain),
                "cannot decrypt: bad padding after decryption (wrong EncodingAESKey?)".to_owned(),
            )
        };
        t.post_rejected(
            format!("Encrypt decoding to {n} bytes"),
            &fx.qa(&encrypt),
            sealed_xml(&encrypt),
            400,
            &reason,
        );
    }

    // --- Padding and layout --------------------------------------------------------------
    let appid = fx.case.appid().as_bytes();
    let msg = xml.as_bytes();
    let full = layout(msg.len() as u32, msg, appid);
    let with_pad = |fill: u8, count: usize| {
        let mut v = full.clone();
        v.resize(v.len() + count, fill);
        v
    };
    let to_block = |len: usize, at_least: usize| at_least + (16 - (len + at_least) % 16) % 16;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "padding byte 0",
            with_pad(0, to_block(full.len(), 1)),
            "bad padding after decryption (wrong EncodingAESKey?)",
        ),
        (
            "padding byte 33",
            with_pad(33, to_block(full.len(), 33)),
            "bad padding after decryption (wrong EncodingAESKey?)",
        ),
        (
            "padding byte 255",
            with_pad(255, to_block(full.len(), 1)),
            "bad padding after decryption (wrong EncodingAESKey?)",
        ),
        (
            "padding bytes not all equal",
            {
                let mut v = pkcs7(full.clone(), 32);
                let n = v.len();
                v[n - 2] ^= 1;
                v
            },
            "bad padding after decryption (wrong EncodingAESKey?)",
        ),
        (
            "padding longer than the text",
            vec![32; 16],
            "bad padding after decryption (wrong EncodingAESKey?)",
        ),
        (
            "valid padding, nothing else (16 bytes of 16)",
            vec![16; 16],
            "decrypted text is shorter than its 20-byte header",
        ),
        (
            "header cut: 19 bytes before padding",
            pkcs7(vec![7; 19], 32),
            "decrypted text is shorter than its 20-byte header",
        ),
        (
            "msg_len one past the end",
            pkcs7(layout((msg.len() + appid.len() + 1) as u32, msg, appid), 32),
            "decrypted message length runs past the end",
        ),
        (
            "msg_len u32::MAX",
            pkcs7(layout(u32::MAX, msg, appid), 32),
            "decrypted message length runs past the end",
        ),
        (
            "msg_len one byte long: takes an AppID byte",
            pkcs7(layout(msg.len() as u32 + 1, msg, appid), 32),
            "decrypted AppID does not match the configured one",
        ),
        (
            "msg_len one byte short: AppID gets a byte",
            pkcs7(layout(msg.len() as u32 - 1, msg, appid), 32),
            "decrypted AppID does not match the configured one",
        ),
        (
            "AppID one byte shorter",
            pkcs7(layout(msg.len() as u32, msg, &appid[..appid.len() - 1]), 32),
            "decrypted AppID does not match the configured one",
        ),
        (
            "AppID one byte longer",
            pkcs7(layout(msg.len() as u32, msg, &[appid, b"f"].concat()), 32),
            "decrypted AppID does not match the configured one",
        ),
        (
            "AppID last byte changed",
            {
                let mut a = appid.to_vec();
                *a.last_mut().unwrap() ^= 0x20;
                pkcs7(layout(msg.len() as u32, msg, &a), 32)
            },
            "decrypted AppID does not match the configured one",
        ),
        (
            "AppID first byte changed",
            {
                let mut a = appid.to_vec();
                a[0] ^= 1;
                pkcs7(layout(msg.len() as u32, msg, &a), 32)
            },
            "decrypted AppID does not match the configured one",
        ),
        (
            "AppID empty",
            pkcs7(layout(msg.len() as u32, msg, b""), 32),
            "decrypted AppID does not match the configured one",
        ),
        (
            "message not UTF-8",
            pkcs7(layout(3, b"\xff\xfe\xfd", appid), 32),
            "decrypted message is not UTF-8",
        ),
    ];
    for (name, plain, reason) in cases {
        let encrypt = fx.enc_raw(&plain);
        t.post_rejected(
            name,
            &fx.qa(&encrypt),
            sealed_xml(&encrypt),
            400,
            &format!("cannot decrypt: {reason}"),
        );
    }
    // PKCS#7 to 16-byte blocks still unpads (1..=32 equal bytes): accepted.
    let k16 = fx.enc_raw(&pkcs7(full.clone(), 16));
    t.post_sealed(
        "padding to 16-byte blocks (accepted)",
        &fx.qa(&k16),
        sealed_xml(&k16),
        "hello",
    );
    let other_key = [7; 32];
    let foreign = reference_encrypt(&other_key, [1; 16], msg, fx.case.appid());
    t.post_rejected(
        "encrypted under another key",
        &fx.qa(&foreign),
        sealed_xml(&foreign),
        400,
        "cannot decrypt: ",
    );
    let inner_json = fx.enc(&json);
    t.post_rejected(
        "XML envelope around a JSON message",
        &fx.qa(&inner_json),
        sealed_xml(&inner_json),
        400,
        "malformed push: XML: ",
    );
    let inner_doctype = fx.enc(&format!("{laughs}{xml}"));
    t.post_rejected(
        "encrypted billion laughs",
        &fx.qa(&inner_doctype),
        sealed_xml(&inner_doctype),
        400,
        "malformed push: XML: DOCTYPE is not allowed",
    );
    let inner_bad =
        fx.enc(&xml.replace("<CreateTime>1714200000", "<CreateTime>99999999999999999999"));
    t.post_rejected(
        "encrypted CreateTime out of range",
        &fx.qa(&inner_bad),
        sealed_xml(&inner_bad),
        400,
        "invalid CreateTime",
    );

    // --- Handshakes ----------------------------------------------------------------------
    for (name, echostr, expected) in [
        (
            "handshake echoes HTML verbatim",
            "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            "<script>alert(1)</script>",
        ),
        (
            "handshake echostr of 16 KiB",
            &"7".repeat(16 * 1024),
            &"7".repeat(16 * 1024),
        ),
        ("handshake echostr with UTF-8", "%E4%BD%A0%E5%A5%BD", "你好"),
    ] {
        let bytes = http("GET", &format!("/wechat?{q}&echostr={echostr}"), &[], b"");
        t.push(
            name,
            "GET",
            Wire::Whole(bytes),
            200,
            Reason::Is(expected.to_owned()),
            false,
        );
    }
    t.get_rejected(
        "handshake echostr not UTF-8",
        &format!("{q}&echostr=%ff"),
        400,
        "query parameter echostr is badly percent-encoded",
    );
    t.get_rejected(
        "handshake with a bad signature",
        &format!("signature={flipped}&timestamp={ts}&nonce={nonce}&echostr=1"),
        401,
        "bad signature",
    );
    let bytes = http(
        "GET",
        &format!("/wechat?{q}&echostr=42"),
        &[],
        xml.as_bytes(),
    );
    t.push(
        "handshake with a body (ignored)",
        "GET",
        Wire::Whole(bytes),
        200,
        Reason::Is("42".into()),
        false,
    );

    // --- Body size and framing -----------------------------------------------------------
    let limit = DEFAULT_BODY_LIMIT;
    let pad_to = |n: usize| format!("{}{}", " ".repeat(n - xml.len()), xml);
    t.post_ok(
        "body exactly at the limit (accepted)",
        &q,
        pad_to(limit),
        "hello",
    );
    t.post_rejected(
        "body one byte over the limit",
        &q,
        pad_to(limit + 1),
        413,
        &format!("body larger than {limit} bytes"),
    );
    let head = |cl: &str| {
        http(
            "POST",
            &format!("/wechat?{q}"),
            &[("content-length", cl)],
            b"",
        )
    };
    t.raw_rejected(
        "Content-Length limit+1, no body sent",
        "POST",
        head(&(limit + 1).to_string()),
        413,
        "body larger than 1048576 bytes",
    );
    t.raw_rejected(
        "Content-Length 1 TiB, no body sent",
        "POST",
        head("1099511627776"),
        413,
        "body larger than",
    );
    // hyper keeps u64::MAX for itself and answers 431 before the layer sees the request.
    t.raw_hyper(
        "Content-Length u64::MAX, no body sent",
        head("18446744073709551615"),
        431,
    );
    t.raw_hyper("Content-Length 2^64", head("18446744073709551616"), 400);
    t.raw_hyper("Content-Length negative", head("-1"), 400);
    t.raw_hyper("Content-Length not a number", head("abc"), 400);
    t.raw_hyper(
        "two different Content-Lengths",
        http(
            "POST",
            &format!("/wechat?{q}"),
            &[("content-length", "5"), ("content-length", "6")],
            b"<xml>",
        ),
        400,
    );
    let short = http(
        "POST",
        &format!("/wechat?{q}"),
        &[("content-length", "100")],
        xml.as_bytes(),
    );
    t.raw_rejected(
        "Content-Length smaller than the body",
        "POST",
        short,
        400,
        "malformed push: XML: ",
    );
    let long = http(
        "POST",
        &format!("/wechat?{q}"),
        &[("content-length", &(xml.len() + 10).to_string())],
        xml.as_bytes(),
    );
    t.push(
        "Content-Length larger than the body, then EOF",
        "POST",
        Wire::ThenShutdown(long),
        400,
        Reason::Contains("could not read the body".into()),
        false,
    );
    let chunked = |chunks: &[&[u8]], tail: &str| {
        let mut body = Vec::new();
        for c in chunks {
            body.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(tail.as_bytes());
        http(
            "POST",
            &format!("/wechat?{q}"),
            &[("transfer-encoding", "chunked")],
            &body,
        )
    };
    let (a, b) = xml.as_bytes().split_at(100);
    t.push(
        "chunked body (accepted)",
        "POST",
        Wire::Whole(chunked(&[a, b], "0\r\n\r\n")),
        200,
        Reason::Contains("hello".into()),
        true,
    );
    let ones: Vec<&[u8]> = xml.as_bytes().chunks(1).collect();
    t.push(
        "chunked, one byte per chunk (accepted)",
        "POST",
        Wire::Whole(chunked(&ones, "0\r\n\r\n")),
        200,
        Reason::Contains("hello".into()),
        true,
    );
    t.push(
        "chunked with trailers (accepted)",
        "POST",
        Wire::Whole(chunked(&[a, b], "0\r\nx-trailer: 1\r\n\r\n")),
        200,
        Reason::Contains("hello".into()),
        true,
    );
    let mut ext = chunked(&[a, b], "0\r\n\r\n");
    let at = ext.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    ext.splice(at..at + 2, b"64;name=value".iter().copied());
    t.push(
        "chunked with a chunk extension (accepted)",
        "POST",
        Wire::Whole(ext),
        200,
        Reason::Contains("hello".into()),
        true,
    );
    let big_chunk = vec![b' '; limit + 1];
    t.raw_rejected(
        "one chunk over the limit",
        "POST",
        chunked(&[&big_chunk, xml.as_bytes()], "0\r\n\r\n"),
        413,
        "body larger than 1048576 bytes",
    );
    let mut huge_size = chunked(&[], "");
    huge_size.extend_from_slice(b"ffffffffffffffffff\r\n");
    t.raw_rejected(
        "chunk size overflowing u64",
        "POST",
        huge_size,
        400,
        "could not read the body",
    );
    let mut bad_size = chunked(&[], "");
    bad_size.extend_from_slice(b"zz\r\n<xml>\r\n0\r\n\r\n");
    t.raw_rejected(
        "chunk size not hex",
        "POST",
        bad_size,
        400,
        "could not read the body",
    );
    t.raw_hyper(
        "chunked and Content-Length together",
        http(
            "POST",
            &format!("/wechat?{q}"),
            &[("transfer-encoding", "chunked"), ("content-length", "3")],
            b"0\r\n\r\n",
        ),
        400,
    );
    let many_headers: Vec<(String, String)> =
        (0..200).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let refs: Vec<(&str, &str)> = many_headers
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    t.raw_hyper(
        "200 headers",
        http("POST", &format!("/wechat?{q}"), &refs, xml.as_bytes()),
        431,
    );
    t.raw_hyper(
        "request line of 1 MiB",
        http(
            "POST",
            &format!("/wechat?{q}&x={}", "a".repeat(1 << 20)),
            &[],
            xml.as_bytes(),
        ),
        431,
    );
    let obs = [
        &http("POST", &format!("/wechat?{q}"), &[], xml.as_bytes())[..],
        b"",
    ]
    .concat();
    let obs = {
        let at = obs.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        [&obs[..at], b"x-latin: caf\xe9\r\n", &obs[at..]].concat()
    };
    t.push(
        "non-UTF-8 header value (ignored)",
        "POST",
        Wire::Whole(obs),
        200,
        Reason::Contains("hello".into()),
        true,
    );

    // --- Slow drips ----------------------------------------------------------------------
    let drip = |body: &[u8], pieces: usize| {
        let head = http(
            "POST",
            &format!("/wechat?{q}"),
            &[("content-length", &body.len().to_string())],
            b"",
        );
        let size = body.len().div_ceil(pieces);
        Wire::Drip {
            head,
            pieces: body.chunks(size).map(<[u8]>::to_vec).collect(),
            pause: Duration::from_millis(30),
        }
    };
    t.push(
        "slow drip: valid push in 10 pieces over 300 ms",
        "POST",
        drip(xml.as_bytes(), 10),
        200,
        Reason::Contains("<Content><![CDATA[hello]]></Content>".into()),
        true,
    );
    let sealed = sealed_xml(&good);
    t.push(
        "slow drip: safe-mode push in 8 pieces",
        "POST",
        {
            let mut w = drip(sealed.as_bytes(), 8);
            if let Wire::Drip { head, .. } = &mut w {
                *head = http(
                    "POST",
                    &format!("/wechat?{}", fx.qa(&good)),
                    &[("content-length", &sealed.len().to_string())],
                    b"",
                );
            }
            w
        },
        200,
        Reason::Sealed("hello".into()),
        true,
    );
    t.push(
        "slow drip: malformed body in 6 pieces",
        "POST",
        drip(xml.replace("</xml>", "</xm>").as_bytes(), 6),
        400,
        Reason::Contains("malformed push: XML: syntax error".into()),
        false,
    );

    t.rows
}

// ---------------------------------------------------------------------------------------------
// The runner.

/// A parsed answer.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 response (`Content-Length` framed, or up to EOF).
async fn read_answer(stream: &mut TcpStream, head_request: bool) -> Result<Answer, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "connection closed before an answer ({} bytes)",
                buf.len()
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head:?}"))?;
    let length = head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let mut body = buf[end..].to_vec();
    if head_request {
        return Ok(Answer {
            status,
            body: Vec::new(),
        });
    }
    match length {
        Some(n) => {
            while body.len() < n {
                let k = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("read body: {e}"))?;
                if k == 0 {
                    return Err("connection closed inside the body".into());
                }
                body.extend_from_slice(&chunk[..k]);
            }
            body.truncate(n);
        }
        None => {
            let _ = stream.read_to_end(&mut body).await;
        }
    }
    Ok(Answer { status, body })
}

async fn send(addr: SocketAddr, wire: &Wire, head_request: bool) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    match wire {
        Wire::Whole(bytes) => {
            // The server may answer (413, hyper's 4xx) and close before taking every byte.
            let (rd, mut wr) = stream.into_split();
            let bytes = bytes.clone();
            let writer = tokio::spawn(async move {
                let _ = wr.write_all(&bytes).await;
                wr
            });
            let mut joined = rd.reunite(writer.await.unwrap()).unwrap();
            read_answer(&mut joined, head_request).await
        }
        Wire::ThenShutdown(bytes) => {
            stream.write_all(bytes).await.map_err(|e| e.to_string())?;
            stream.shutdown().await.map_err(|e| e.to_string())?;
            read_answer(&mut stream, head_request).await
        }
        Wire::Drip {
            head,
            pieces,
            pause,
        } => {
            stream.write_all(head).await.map_err(|e| e.to_string())?;
            for piece in pieces {
                tokio::time::sleep(*pause).await;
                stream.write_all(piece).await.map_err(|e| e.to_string())?;
            }
            read_answer(&mut stream, head_request).await
        }
    }
}

/// The known-good push sent after every row: must be answered 200 with its own content.
async fn health(fx: &Fx, addr: SocketAddr, path: &str, i: usize) -> Result<(), String> {
    let content = format!("health-{i}");
    let bytes = http(
        "POST",
        &format!("{path}?{}", fx.q()),
        &[],
        xml_text(&content).as_bytes(),
    );
    let answer = send(addr, &Wire::Whole(bytes), false).await?;
    let body = String::from_utf8_lossy(&answer.body);
    if answer.status == 200 && body.contains(&format!("<Content><![CDATA[{content}]]></Content>")) {
        Ok(())
    } else {
        Err(format!("health check {i}: {} {body}", answer.status))
    }
}

fn check_reason(fx: &Fx, reason: &Reason, body: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(body);
    match reason {
        Reason::Hyper => Ok(()),
        Reason::Contains(want) if text.contains(want.as_str()) => Ok(()),
        Reason::Is(want) if text == *want => Ok(()),
        Reason::Sealed(want) => {
            let format = if text.starts_with('{') { "json" } else { "xml" };
            let opened = fx.case.try_open_sealed_reply(format, &text)?;
            if opened.contains(want.as_str()) {
                Ok(())
            } else {
                Err(format!("sealed reply opens to {opened:?}, wanted {want:?}"))
            }
        }
        Reason::Contains(want) | Reason::Is(want) => {
            let shown: String = text.chars().take(300).collect();
            Err(format!("body {shown:?}, wanted {want:?}"))
        }
    }
}

/// Serves the layer (encryption on, clock stopped) around a counting echo handler; with
/// `apps`, a multi-app layer instead, choosing by the path's last segment.
async fn server(fx: &Fx, calls: Counter, apps: Option<Apps>) -> SocketAddr {
    let handler = service_fn(move |req: Request<Message>| {
        let calls = calls.clone();
        async move {
            calls.hit();
            echo(req).await
        }
    });
    match apps {
        None => serve_hyper(fx.case.layer().layer(handler)).await,
        Some(apps) => {
            serve_hyper(WechatLayer::apps(apps, ChooseApp::last_segment()).layer(handler)).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Several apps: the same corpus at `/wechat/main` (the fixture's keys) on a multi-app layer,
// plus rows that aim at the choice of the app itself.

/// The fixture's app, `main`, and `other`, with another Token, key and AppID.
fn apps(fx: &Fx) -> Apps {
    let now = fx.case.timestamp();
    let main = Endpoint::new(fx.token())
        .unwrap()
        .encryption(fx.case.key(), fx.case.appid())
        .unwrap()
        .clock(FixedClock::at_unix(now));
    let other = Endpoint::new("OtherToken9")
        .unwrap()
        .encryption(
            wechat_push::EncodingAesKey::from_bytes([7; 32]),
            "wxotherotherother0",
        )
        .unwrap()
        .clock(FixedClock::at_unix(now));
    [
        App::new("main", main).unwrap(),
        App::new("other", other).unwrap(),
    ]
    .into_iter()
    .collect()
}

/// `bytes` with the request line's `/wechat` turned into `/wechat/main`.
fn retarget(bytes: &[u8]) -> Vec<u8> {
    let line_end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(bytes.len());
    match bytes[..line_end].windows(8).position(|w| w == b" /wechat") {
        Some(at) => [&bytes[..at + 8], b"/main", &bytes[at + 8..]].concat(),
        None => bytes.to_vec(),
    }
}

/// The single-app corpus, aimed at `/wechat/main`.
fn retargeted(rows: Vec<Row>) -> Vec<Row> {
    rows.into_iter()
        .map(|mut row| {
            row.wire = match row.wire {
                Wire::Whole(bytes) => Wire::Whole(retarget(&bytes)),
                Wire::ThenShutdown(bytes) => Wire::ThenShutdown(retarget(&bytes)),
                Wire::Drip {
                    head,
                    pieces,
                    pause,
                } => Wire::Drip {
                    head: retarget(&head),
                    pieces,
                    pause,
                },
            };
            row
        })
        .collect()
}

/// Rows about choosing the app: a push signed for `main` sent elsewhere, names that are not
/// configured or not names, and paths that only look like `main`'s.
fn app_rows(fx: &Fx, t: &mut Table) {
    let q = fx.q();
    let xml = xml_text("hello");
    let unknown = "unknown app: no app is configured under the name this URL gives";
    let post = |path: &str| Wire::Whole(http("POST", &format!("{path}?{q}"), &[], xml.as_bytes()));
    t.push(
        "apps: main's push at other's path",
        "POST",
        post("/wechat/other"),
        401,
        Reason::Is("bad signature".into()),
        false,
    );
    t.push(
        "apps: main's sealed push at other's path",
        "POST",
        Wire::Whole(http(
            "POST",
            &format!("/wechat/other?{}", fx.qa(&fx.enc(&xml))),
            &[],
            sealed_xml(&fx.enc(&xml)).as_bytes(),
        )),
        401,
        Reason::Is("bad signature".into()),
        false,
    );
    let long = format!("/wechat/{}", "m".repeat(10_000));
    let odd = [
        "/wechat/nobody",
        "/wechat/",
        "/wechat",
        "/wechat/%6Dain",
        "/wechat/MAIN",
        "/wechat/main%00",
        "/wechat/main;other",
        "/wechat/main%2F",
        "/wechat/ma%20in",
        long.as_str(),
    ];
    for path in odd {
        let shown: String = path.chars().take(40).collect();
        t.push(
            format!("apps: POST {shown}"),
            "POST",
            post(path),
            404,
            Reason::Is(unknown.into()),
            false,
        );
    }
    t.push(
        "apps: GET handshake at an unknown app",
        "GET",
        Wire::Whole(http(
            "GET",
            &format!("/wechat/nobody?{q}&echostr=e"),
            &[],
            b"",
        )),
        404,
        Reason::Is(unknown.into()),
        false,
    );
    t.push(
        "apps: PUT at an unknown app (the app is chosen first)",
        "POST",
        Wire::Whole(http("PUT", &format!("/wechat/nobody?{q}"), &[], b"")),
        404,
        Reason::Is(unknown.into()),
        false,
    );
    // The last segment decides, as the router's `{app}` would: `..` is not resolved here.
    t.push(
        "apps: /wechat/main/../other is other's",
        "POST",
        post("/wechat/main/../other"),
        401,
        Reason::Is("bad signature".into()),
        false,
    );
    t.push(
        "apps: a trailing slash still names main",
        "POST",
        post("/wechat/main/"),
        200,
        Reason::Contains("<Content><![CDATA[hello]]></Content>".into()),
        true,
    );
}

/// Sends one row; for a slow drip, also sends valid pushes on other connections meanwhile and
/// returns how many were served before the slow one finished.
async fn run_row(
    fx: &Fx,
    addr: SocketAddr,
    path: &str,
    i: usize,
    row: &Row,
) -> Result<(Answer, usize), String> {
    if !matches!(row.wire, Wire::Drip { .. }) {
        return Ok((send(addr, &row.wire, row.method == "HEAD").await?, 0));
    }
    let slow = send(addr, &row.wire, false);
    tokio::pin!(slow);
    let mut served = 0;
    let next = tokio::time::sleep(Duration::from_millis(50));
    tokio::pin!(next);
    loop {
        tokio::select! {
            answer = &mut slow => return Ok((answer?, served)),
            () = &mut next, if served < 3 => {
                health(fx, addr, path, 10_000 + i * 10 + served)
                    .await
                    .map_err(|e| format!("while dripping: {e}"))?;
                served += 1;
                next.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(50));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_corpus() {
    let fx = Fx::new();
    let calls = Counter::default();
    let addr = server(&fx, calls.clone(), None).await;
    run_corpus(&fx, addr, "/wechat", calls, table(&fx)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_corpus_on_a_multi_app_layer() {
    let fx = Fx::new();
    let calls = Counter::default();
    let addr = server(&fx, calls.clone(), Some(apps(&fx))).await;
    let mut t = Table {
        rows: retargeted(table(&fx)),
    };
    app_rows(&fx, &mut t);
    run_corpus(&fx, addr, "/wechat/main", calls, t.rows).await;
}

/// Sends every row to the server on `addr`, the health check's push going to `path`.
async fn run_corpus(fx: &Fx, addr: SocketAddr, path: &str, calls: Counter, rows: Vec<Row>) {
    assert!(rows.len() >= 100, "only {} rows", rows.len());

    let mut failures = Vec::new();
    let mut expected_calls = 0;
    let started = Instant::now();
    for (i, row) in rows.iter().enumerate() {
        let before = calls.get();
        let drip = matches!(row.wire, Wire::Drip { .. });
        let outcome = tokio::time::timeout(ROW_TIMEOUT, run_row(fx, addr, path, i, row)).await;
        let (answer, concurrent) = match outcome {
            Err(_) => {
                failures.push(format!("{}: no answer within {ROW_TIMEOUT:?}", row.name));
                continue;
            }
            Ok(Err(e)) => {
                failures.push(format!("{}: {e}", row.name));
                continue;
            }
            Ok(Ok(x)) => x,
        };
        if drip && concurrent == 0 {
            failures.push(format!(
                "{}: no other request was served during the drip",
                row.name
            ));
        }
        expected_calls += concurrent;
        if answer.status != row.status {
            let shown: String = String::from_utf8_lossy(&answer.body)
                .chars()
                .take(200)
                .collect();
            failures.push(format!(
                "{}: status {}, wanted {} ({shown:?})",
                row.name, answer.status, row.status
            ));
        } else if let Err(e) = check_reason(fx, &row.reason, &answer.body) {
            failures.push(format!("{}: {e}", row.name));
        }
        let ran = calls.get() - before - concurrent;
        if ran != usize::from(row.handler) {
            failures.push(format!(
                "{}: the handler ran {ran} times, wanted {}",
                row.name,
                usize::from(row.handler)
            ));
        }
        expected_calls += usize::from(row.handler);
        // The server still answers a valid push.
        match tokio::time::timeout(ROW_TIMEOUT, health(fx, addr, path, i)).await {
            Ok(Ok(())) => expected_calls += 1,
            Ok(Err(e)) => failures.push(format!("after {}: {e}", row.name)),
            Err(_) => failures.push(format!("after {}: the health check hung", row.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert_eq!(calls.get(), expected_calls, "handler calls");
    let reaching = rows.iter().filter(|r| r.handler).count();
    eprintln!(
        "{} hostile rows ({} reach the handler, {} refused) in {:?}",
        rows.len(),
        reaching,
        rows.len() - reaching,
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// WeCom: the same kind of corpus against a layer over `Endpoint::wecom` (docs/platforms.md §1),
// with Tencent's sample app (tests/data/platforms.json, V1) and its clock stopped.

const W_TOKEN: &str = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo";
const W_KEY: &str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";
const W_CORP: &str = "ww1436e0e65a779aee";
const W_NOW: &str = "1476422779";

fn w_doc(content: &str) -> String {
    format!(
        "<xml><ToUserName>{W_CORP}</ToUserName><FromUserName>ChenJiaShun</FromUserName>\
         <CreateTime>{W_NOW}</CreateTime><MsgType>text</MsgType><Content>{content}</Content>\
         <MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
    )
}

/// `Encrypt` for `msg`, sealed by the tests' own AES for `receive_id` under `key`.
fn w_seal(key: &str, msg: &str, receive_id: &str) -> String {
    reference_encrypt(
        &reference_key(key),
        *b"hostile-wecom-16",
        msg.as_bytes(),
        receive_id,
    )
}

fn w_xml(encrypt: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{W_CORP}]]></ToUserName>\n<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n\
         <AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
    )
}

/// The WeCom query signing `signed` (an `Encrypt`, or a GET's `echostr`).
fn w_q(signed: &str, timestamp: &str, nonce: &str) -> String {
    let sig = reference_sign(&[W_TOKEN, timestamp, nonce, signed]);
    format!("msg_signature={sig}&timestamp={timestamp}&nonce={nonce}")
}

fn w_escape(echostr: &str) -> String {
    echostr
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

fn w_post(query: &str, body: impl AsRef<[u8]>) -> Wire {
    Wire::Whole(http("POST", &format!("/wecom?{query}"), &[], body.as_ref()))
}

fn w_get(query: &str) -> Wire {
    Wire::Whole(http("GET", &format!("/wecom?{query}"), &[], b""))
}

fn wecom_table() -> Vec<Row> {
    let mut t = Table { rows: Vec::new() };
    let e = w_seal(W_KEY, &w_doc("hi"), W_CORP);
    let q = w_q(&e, W_NOW, "1");
    let sealed =
        |content: &str| Reason::Sealed(format!("<Content><![CDATA[{content}]]></Content>"));
    let refused = |s: &str| Reason::Contains(s.to_owned());

    // What reaches the handler.
    t.push(
        "xml envelope",
        "POST",
        w_post(&q, w_xml(&e)),
        200,
        sealed("hi"),
        true,
    );
    // A JSON callback (`callback_format=json`): JSON inside, the reply sealed in JSON.
    let json_doc = format!(
        r#"{{"ToUserName":"{W_CORP}","FromUserName":"u1","CreateTime":{W_NOW},"MsgType":"text","Content":"hi","MsgId":1,"AgentID":1000002}}"#
    );
    let je = w_seal(W_KEY, &json_doc, W_CORP);
    let json = format!(r#"{{"tousername":"{W_CORP}","encrypt":"{je}","agentid":"1000002"}}"#);
    t.push(
        "lower-case json envelope",
        "POST",
        w_post(&w_q(&je, W_NOW, "1"), &json),
        200,
        Reason::Sealed(r#""Content":"hi""#.into()),
        true,
    );
    let spoofed = w_xml(&e).replace("<![CDATA[1000002]]>", "<![CDATA[999]]>");
    t.push(
        "envelope AgentID is not read",
        "POST",
        w_post(&q, spoofed),
        200,
        sealed("hi"),
        true,
    );
    let upper = q.replacen(
        &reference_sign(&[W_TOKEN, W_NOW, "1", &e]),
        &reference_sign(&[W_TOKEN, W_NOW, "1", &e]).to_uppercase(),
        1,
    );
    t.push(
        "upper-case msg_signature",
        "POST",
        w_post(&upper, w_xml(&e)),
        200,
        sealed("hi"),
        true,
    );
    let chunked = {
        let body = w_xml(&e);
        let mut bytes = http(
            "POST",
            &format!("/wecom?{q}"),
            &[("transfer-encoding", "chunked")],
            b"",
        );
        for piece in body.as_bytes().chunks(40) {
            bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            bytes.extend_from_slice(piece);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
        bytes
    };
    t.push(
        "chunked envelope",
        "POST",
        Wire::Whole(chunked),
        200,
        sealed("hi"),
        true,
    );
    let cjk = w_seal(W_KEY, &w_doc("你好 &amp; &lt;b&gt;"), W_CORP);
    t.push(
        "escaped and CJK content",
        "POST",
        w_post(&w_q(&cjk, W_NOW, "2"), w_xml(&cjk)),
        200,
        sealed("你好 & <b>"),
        true,
    );
    let huge_id = w_seal(
        W_KEY,
        &w_doc("id").replace("1456453720", "99999999999999999999999"),
        W_CORP,
    );
    t.push(
        "MsgId beyond u64 stays raw",
        "POST",
        w_post(&w_q(&huge_id, W_NOW, "3"), w_xml(&huge_id)),
        200,
        sealed("id"),
        true,
    );

    // GET verification.
    let echo = w_seal(W_KEY, "1288432023552776189", W_CORP);
    let gq = |echostr: &str, signed: &str| format!("{}&echostr={echostr}", w_q(signed, W_NOW, "4"));
    t.push(
        "handshake",
        "GET",
        w_get(&gq(&w_escape(&echo), &echo)),
        200,
        Reason::Is("1288432023552776189".into()),
        false,
    );
    // A literal `+` stays a `+` (no form decoding), so the unescaped echostr verifies too.
    t.push(
        "handshake, echostr unescaped",
        "GET",
        w_get(&gq(&echo.replace('=', "%3D"), &echo)),
        200,
        Reason::Is("1288432023552776189".into()),
        false,
    );
    if echo.contains('+') {
        t.push(
            "handshake, + read as space",
            "GET",
            w_get(&gq(&echo.replace('+', "%20"), &echo)),
            401,
            refused("bad msg_signature"),
            false,
        );
    }
    let other = w_seal(W_KEY, "1", "ww0000000000000000");
    t.push(
        "handshake for another corp",
        "GET",
        w_get(&gq(&w_escape(&other), &other)),
        400,
        refused("does not match"),
        false,
    );
    let empty = w_seal(W_KEY, "1", "");
    t.push(
        "handshake with an empty receive id",
        "GET",
        w_get(&gq(&w_escape(&empty), &empty)),
        400,
        refused("does not match"),
        false,
    );
    let plain_sig = plain_query(W_TOKEN, W_NOW, "4");
    t.push(
        "handshake with signature only",
        "GET",
        w_get(&format!("{plain_sig}&echostr=1")),
        401,
        refused("missing msg_signature"),
        false,
    );
    t.push(
        "handshake without echostr",
        "GET",
        w_get(&w_q("", W_NOW, "4")),
        400,
        refused("missing echostr"),
        false,
    );
    t.push(
        "handshake echostr not base64",
        "GET",
        w_get(&gq("%25%25%25", "%%%")),
        400,
        refused("base64"),
        false,
    );

    // Refused before the handler.
    t.push(
        "stale",
        "POST",
        w_post(&w_q(&e, "1476422000", "1"), w_xml(&e)),
        401,
        refused("stale timestamp"),
        false,
    );
    t.push(
        "bad msg_signature",
        "POST",
        w_post(&q.replace("nonce=1", "nonce=2"), w_xml(&e)),
        401,
        refused("bad msg_signature"),
        false,
    );
    t.push(
        "repeated msg_signature",
        "POST",
        w_post(&format!("{q}&msg_signature=0"), w_xml(&e)),
        400,
        refused("more than once"),
        false,
    );
    t.push(
        "no msg_signature",
        "POST",
        w_post(&format!("timestamp={W_NOW}&nonce=1"), w_xml(&e)),
        401,
        refused("missing msg_signature"),
        false,
    );
    t.push(
        "plaintext push",
        "POST",
        w_post(&q, w_doc("hi")),
        400,
        refused("Encrypt"),
        false,
    );
    let twice =
        format!("<xml><Encrypt><![CDATA[{e}]]></Encrypt><Encrypt><![CDATA[{e}]]></Encrypt></xml>");
    t.push(
        "Encrypt twice",
        "POST",
        w_post(&q, twice),
        400,
        refused("Encrypt"),
        false,
    );
    let both = format!(r#"{{"Encrypt":"{e}","encrypt":"{e}"}}"#);
    t.push(
        "Encrypt and encrypt",
        "POST",
        w_post(&q, both),
        400,
        refused("Encrypt"),
        false,
    );
    let nested = format!("<xml><Encrypt><x>{e}</x></Encrypt></xml>");
    t.push(
        "Encrypt nested",
        "POST",
        w_post(&q, nested),
        400,
        refused("Encrypt"),
        false,
    );
    t.push(
        "encrypt a number",
        "POST",
        w_post(&q, r#"{"encrypt":12}"#),
        400,
        refused("Encrypt"),
        false,
    );
    let doctype = format!("<!DOCTYPE xml [<!ENTITY e \"{e}\">]><xml><Encrypt>&e;</Encrypt></xml>");
    t.push(
        "DOCTYPE",
        "POST",
        w_post(&q, doctype),
        400,
        refused("DOCTYPE"),
        false,
    );
    t.push(
        "truncated envelope",
        "POST",
        w_post(&q, &w_xml(&e)[..60]),
        400,
        refused("malformed"),
        false,
    );
    t.push(
        "empty body",
        "POST",
        w_post(&q, ""),
        400,
        refused("malformed"),
        false,
    );
    let junk = "!!notbase64!!";
    t.push(
        "Encrypt not base64",
        "POST",
        w_post(&w_q(junk, W_NOW, "5"), w_xml(junk)),
        400,
        refused("base64"),
        false,
    );
    let other_key = w_seal(
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &w_doc("x"),
        W_CORP,
    );
    t.push(
        "another key",
        "POST",
        w_post(&w_q(&other_key, W_NOW, "6"), w_xml(&other_key)),
        400,
        refused("cannot decrypt"),
        false,
    );
    let other_corp = w_seal(W_KEY, &w_doc("x"), "ww0000000000000000");
    t.push(
        "another corp",
        "POST",
        w_post(&w_q(&other_corp, W_NOW, "7"), w_xml(&other_corp)),
        400,
        refused("does not match"),
        false,
    );
    let no_corp = w_seal(W_KEY, &w_doc("x"), "");
    t.push(
        "empty receive id",
        "POST",
        w_post(&w_q(&no_corp, W_NOW, "8"), w_xml(&no_corp)),
        400,
        refused("does not match"),
        false,
    );
    let longer = w_seal(W_KEY, &w_doc("x"), &format!("{W_CORP}x"));
    t.push(
        "CorpID with a suffix",
        "POST",
        w_post(&w_q(&longer, W_NOW, "9"), w_xml(&longer)),
        400,
        refused("does not match"),
        false,
    );
    let no_type = w_seal(
        W_KEY,
        &w_doc("x").replace("<MsgType>text</MsgType>", ""),
        W_CORP,
    );
    t.push(
        "plaintext without MsgType",
        "POST",
        w_post(&w_q(&no_type, W_NOW, "10"), w_xml(&no_type)),
        400,
        refused("MsgType"),
        false,
    );
    let deep = w_seal(
        W_KEY,
        &format!("<xml>{}{}</xml>", "<a>".repeat(40), "</a>".repeat(40)),
        W_CORP,
    );
    t.push(
        "plaintext too deep",
        "POST",
        w_post(&w_q(&deep, W_NOW, "11"), w_xml(&deep)),
        400,
        refused("malformed"),
        false,
    );
    let robot = w_seal(
        W_KEY,
        r#"{"msgid":"1","aibotid":"A","msgtype":"text"}"#,
        W_CORP,
    );
    t.push(
        "robot JSON to an app",
        "POST",
        w_post(
            &w_q(&robot, W_NOW, "12"),
            format!(r#"{{"encrypt":"{robot}"}}"#),
        ),
        400,
        refused("ToUserName"),
        false,
    );
    let big = format!(
        "{}{}",
        w_xml(&e),
        " ".repeat(wechat_push::DEFAULT_BODY_LIMIT)
    );
    t.push(
        "over the limit",
        "POST",
        w_post(&q, big),
        413,
        refused("larger than"),
        false,
    );
    t.push(
        "PUT",
        "PUT",
        Wire::Whole(http(
            "PUT",
            &format!("/wecom?{q}"),
            &[],
            w_xml(&e).as_bytes(),
        )),
        405,
        refused("method not allowed"),
        false,
    );
    t.rows
}

async fn w_health(addr: SocketAddr, i: usize) -> Result<(), String> {
    let content = format!("health-{i}");
    let e = w_seal(W_KEY, &w_doc(&content), W_CORP);
    let answer = send(
        addr,
        &w_post(&w_q(&e, W_NOW, &format!("h{i}")), w_xml(&e)),
        false,
    )
    .await?;
    let body = String::from_utf8_lossy(&answer.body).into_owned();
    match w_open(&body) {
        Ok(doc) if answer.status == 200 && doc.contains(&content) => Ok(()),
        other => Err(format!(
            "health check {i}: {} {body} {other:?}",
            answer.status
        )),
    }
}

/// Opens a sealed WeCom reply with the tests' own AES, after checking its signature.
fn w_open(body: &str) -> Result<String, String> {
    let format = if body.starts_with('{') { "json" } else { "xml" };
    let sealed = sealed_envelope(format, body)?;
    let sig = reference_sign(&[W_TOKEN, &sealed.timestamp, &sealed.nonce, &sealed.encrypt]);
    if sig != sealed.msg_signature {
        return Err(format!("bad MsgSignature in {body}"));
    }
    reference_decrypt(W_KEY, &sealed.encrypt, W_CORP)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_wecom_corpus() {
    let calls = Counter::default();
    let counted = calls.clone();
    let now: u64 = W_NOW.parse().unwrap();
    let endpoint = wechat_push::Endpoint::wecom(
        W_TOKEN,
        wechat_push::EncodingAesKey::new(W_KEY).unwrap(),
        wechat_push::ReceiveId::CorpId(W_CORP.into()),
    )
    .unwrap()
    .clock(FixedClock::at_unix(now));
    let handler = service_fn(move |req: Request<Message>| {
        let calls = counted.clone();
        async move {
            calls.hit();
            echo(req).await
        }
    });
    let addr = serve_hyper(wechat_push::WechatLayer::from_endpoint(endpoint).layer(handler)).await;
    let rows = wecom_table();
    assert!(rows.len() >= 35, "only {} rows", rows.len());
    let mut failures = Vec::new();
    let mut expected_calls = 0;
    for (i, row) in rows.iter().enumerate() {
        let before = calls.get();
        let answer = match tokio::time::timeout(ROW_TIMEOUT, send(addr, &row.wire, false)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                failures.push(format!("{}: {e}", row.name));
                continue;
            }
            Err(_) => {
                failures.push(format!("{}: no answer within {ROW_TIMEOUT:?}", row.name));
                continue;
            }
        };
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        let shown: String = text.chars().take(200).collect();
        if answer.status != row.status {
            failures.push(format!(
                "{}: status {}, wanted {} ({shown:?})",
                row.name, answer.status, row.status
            ));
        } else {
            let ok = match &row.reason {
                Reason::Contains(want) => text.contains(want.as_str()),
                Reason::Is(want) => text == *want,
                Reason::Sealed(want) => w_open(&text).is_ok_and(|doc| doc.contains(want.as_str())),
                Reason::Hyper => true,
            };
            if !ok {
                failures.push(format!("{}: body {shown:?}", row.name));
            }
        }
        let ran = calls.get() - before;
        if ran != usize::from(row.handler) {
            failures.push(format!("{}: the handler ran {ran} times", row.name));
        }
        expected_calls += usize::from(row.handler);
        match tokio::time::timeout(ROW_TIMEOUT, w_health(addr, i)).await {
            Ok(Ok(())) => expected_calls += 1,
            Ok(Err(e)) => failures.push(format!("after {}: {e}", row.name)),
            Err(_) => failures.push(format!("after {}: the health check hung", row.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert_eq!(calls.get(), expected_calls, "handler calls");
}
