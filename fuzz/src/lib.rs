//! The fuzz harnesses: one function per target, each taking the raw fuzzer input and panicking
//! when an oracle fails. The `fuzz_targets/*.rs` binaries only forward libFuzzer's input here,
//! and `tests/fuzz_regressions.rs` in the main crate includes this file (`#[path]`) to replay
//! the committed seeds and every finding through exactly the same checks.
//!
//! Only the main crate's own dependencies are used, so that the include works.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use aes::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use tower::Service;
use wechat_push::apps::{App, AppName, Apps, ChooseApp};
use wechat_push::clock::FixedClock;
use wechat_push::codec::{self, Envelope, Format};
use wechat_push::crypto::{self, EncodingAesKey};
use wechat_push::message::Kind;
use wechat_push::query::{CallbackQuery, EncryptType};
use wechat_push::{signature, Endpoint, Message, PushInfo, ReceiveId, Reply, WechatLayer};

/// The layer's token, key and AppID: those of `encrypt_cases[0]` in tests/data/vectors.json, so
/// that the vectors' own requests are validly signed.
pub const TOKEN: &str = "Token123abc";
/// `encrypt_cases[0]`'s `EncodingAESKey`.
pub const KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
/// `encrypt_cases[0]`'s AppID.
pub const APPID: &str = "wx1234567890abcdef";
/// The layer's clock: `encrypt_cases[0]`'s timestamp.
pub const NOW: u64 = 1_714_200_000;
/// The layer's timestamp tolerance (the default).
pub const TOLERANCE: u64 = 300;
/// The body limit of the strict layer (flag [`STRICT`]).
pub const STRICT_LIMIT: usize = 512;

/// The second key and AppID of the `decrypt` target: the official documentation's.
pub const KEY_B: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
/// The AppID that goes with [`KEY_B`].
pub const APPID_B: &str = "wxba5fad812f8e6fb9";

// ---------------------------------------------------------------------------------------------
// query

/// `query`: the bytes, when UTF-8, into `CallbackQuery::parse`. A parsed query must re-encode
/// (every byte percent-encoded) to a string that parses to the same query.
pub fn query(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = CallbackQuery::parse(s) else {
        return;
    };
    assert!(!q.timestamp().is_empty() && q.timestamp().bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(q.timestamp().parse::<u64>().ok(), Some(q.timestamp_secs()));
    let mut again = format!(
        "signature={}&timestamp={}&nonce={}",
        encode(q.signature()),
        encode(q.timestamp()),
        encode(q.nonce())
    );
    for (name, value) in [
        ("openid", q.openid()),
        ("msg_signature", q.msg_signature()),
        ("echostr", q.echostr()),
    ] {
        if let Some(v) = value {
            again.push_str(&format!("&{name}={}", encode(v)));
        }
    }
    if q.encrypt_type() == EncryptType::Aes {
        again.push_str("&encrypt_type=aes");
    }
    let reparsed = CallbackQuery::parse(&again).expect("a re-encoded query parses");
    assert_eq!(reparsed, q, "{again}");
}

/// Percent-encodes every byte but the RFC 3986 unreserved ones.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// xml, json

/// `xml`: `Format::sniff`, `decode_envelope` and `decode_message(Format::Xml, ..)`.
pub fn xml(data: &[u8]) {
    // The one-pass fast path must read whatever it takes exactly as the full tokenizer does.
    #[cfg(fuzzing)]
    assert!(
        codec::fuzz_xml_fast_path_agrees(data),
        "XML fast path and full tokenizer disagree"
    );
    let _ = Format::sniff(data);
    envelope_agrees(data);
    message_encodes(codec::decode_message(Format::Xml, data));
}

/// `json`: `decode_message(Format::Json, ..)` and `decode_envelope`.
pub fn json(data: &[u8]) {
    message_encodes(codec::decode_message(Format::Json, data));
    envelope_agrees(data);
}

/// A plaintext envelope is the same message `decode_message` reads in the sniffed format.
fn envelope_agrees(data: &[u8]) {
    let sniffed = Format::sniff(data);
    if let Ok((format, envelope)) = codec::decode_envelope(data) {
        assert_eq!(
            sniffed.ok(),
            Some(format),
            "decode_envelope and sniff disagree"
        );
        if let Envelope::Plain(msg) = envelope {
            let direct = codec::decode_message(format, data);
            assert_eq!(direct.as_ref().ok(), Some(&msg), "{direct:?}");
        }
    }
}

/// A decoded message can be answered: a reply to it encodes in both formats.
fn message_encodes(msg: Result<Message, codec::DecodeError>) {
    let Ok(msg) = msg else { return };
    let _ = msg.kind();
    let _ = msg.event();
    let _ = format!("{msg:?}");
    let reply = Reply::text(msg.msg_type());
    for format in [Format::Xml, Format::Json] {
        let doc = reply.encode(format, msg.from_user(), msg.to_user(), msg.create_time());
        let back = codec::decode_message(format, &doc).expect("our own reply decodes");
        assert_eq!(back.to_user(), msg.from_user());
        assert_eq!(back.from_user(), msg.to_user());
    }
}

// ---------------------------------------------------------------------------------------------
// decrypt

/// `decrypt`: byte 0 picks the mode (low two bits) and the key (bit 2); the rest is
///
/// * 0: an `Encrypt` string (when UTF-8), as received;
/// * 1: bytes, base64-encoded first;
/// * 2: an AES-CBC plaintext buffer (zero-filled to whole blocks), encrypted under the key
///   without padding and base64-encoded, so the padding, length and AppID checks see
///   arbitrary bytes;
/// * 3: a 16-byte prefix and a message, sealed properly twice: by [`reference_encrypt`] under
///   that prefix, and by the crate's `encrypt` under a fresh one. Each must open to the same
///   message (the first with that prefix) exactly when it is UTF-8.
pub fn decrypt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (encoded, appid) = if mode & 4 == 0 {
        (KEY, APPID)
    } else {
        (KEY_B, APPID_B)
    };
    let key = EncodingAesKey::new(encoded).expect("a valid key");
    let raw = aes_key(encoded);
    match mode & 3 {
        0 => {
            if let Ok(s) = std::str::from_utf8(rest) {
                opened_is_consistent(&key, &raw, s, appid);
            }
        }
        1 => opened_is_consistent(&key, &raw, &STANDARD.encode(rest), appid),
        2 => {
            let encrypt = raw_encrypt(encoded, rest);
            opened_is_consistent(&key, &raw, &encrypt, appid);
        }
        _ => {
            let mut prefix = [0u8; 16];
            let n = rest.len().min(16);
            prefix[..n].copy_from_slice(&rest[..n]);
            let msg = &rest[n..];
            let sealed = reference_encrypt(&raw, prefix, msg, appid);
            let opened = crypto::decrypt(&key, &sealed, appid);
            let fresh = crypto::encrypt(&key, msg, appid).expect("the OS random source works");
            let reopened = crypto::decrypt(&key, &fresh, appid);
            match std::str::from_utf8(msg) {
                Ok(text) => {
                    let opened = opened.expect("a sealed UTF-8 message opens");
                    assert_eq!(opened.as_str(), text);
                    assert_eq!(opened.prefix(), &prefix);
                    let reopened = reopened.expect("a UTF-8 message the crate sealed opens");
                    assert_eq!(reopened.as_str(), text);
                }
                Err(_) => {
                    assert!(opened.is_err(), "non-UTF-8 message opened");
                    assert!(
                        reopened.is_err(),
                        "non-UTF-8 message the crate sealed opened"
                    );
                }
            }
        }
    }
}

/// AES-256-CBC under the key's key and IV, no padding, over `plain` zero-filled to 16 bytes.
pub fn raw_encrypt(key: &str, plain: &[u8]) -> String {
    let mut buf = plain.to_vec();
    buf.resize(plain.len().div_ceil(16) * 16, 0);
    let raw = aes_key(key);
    let len = buf.len();
    let sealed = cbc::Encryptor::<aes::Aes256>::new(raw.as_slice().into(), raw[..16].into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, len)
        .expect("whole blocks")
        .len();
    STANDARD.encode(&buf[..sealed])
}

/// `Encrypt` for `msg` under the raw key with a chosen prefix: WeChat's layout (docs/protocol.md §4,
/// `prefix | msg_len (u32, big-endian) | msg | appid`, PKCS#7 to 32 bytes) under AES-256-CBC
/// (IV = the key's first 16 bytes), standard base64. Built here on the `aes` and `cbc` crates,
/// as the main crate's `tests/common` does (the crate itself seals only under fresh random
/// prefixes), so the crate's decryption is checked against an independent sealer.
pub fn reference_encrypt(key: &[u8; 32], prefix: [u8; 16], msg: &[u8], appid: &str) -> String {
    let len = u32::try_from(msg.len()).expect("fuzz inputs are far shorter than 4 GiB");
    let mut buf = prefix.to_vec();
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(msg);
    buf.extend_from_slice(appid.as_bytes());
    let pad = 32 - buf.len() % 32;
    buf.resize(buf.len() + pad, pad as u8);
    let total = buf.len();
    let cipher = cbc::Encryptor::<aes::Aes256>::new(key.into(), key[..16].into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, total)
        .expect("whole blocks");
    STANDARD.encode(cipher)
}

/// The 32 AES key bytes of a 43-character `EncodingAESKey` (spare bits allowed).
pub fn aes_key(encoded: &str) -> [u8; 32] {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    let bytes = LENIENT.decode(encoded).expect("a valid key");
    bytes.try_into().expect("32 bytes")
}

/// Whatever opens, re-seals under its own prefix (by [`reference_encrypt`], under `raw`, the
/// bytes of `key`) to something that opens to the same text.
fn opened_is_consistent(key: &EncodingAesKey, raw: &[u8; 32], encrypt: &str, appid: &str) {
    let Ok(opened) = crypto::decrypt(key, encrypt, appid) else {
        return;
    };
    let prefix: [u8; 16] = opened.prefix().try_into().expect("a 16-byte prefix");
    let sealed = reference_encrypt(raw, prefix, opened.as_bytes(), appid);
    let again = crypto::decrypt(key, &sealed, appid).expect("re-sealed opens");
    assert_eq!(again.as_str(), opened.as_str());
}

// ---------------------------------------------------------------------------------------------
// layer

/// Flag: replace `signature` (and `timestamp`, unless [`KEEP_TIMESTAMP`]) with a valid one.
pub const SIGN: u8 = 1;
/// Flag: the body is a plaintext push; seal it under the key in an `Encrypt` envelope, with
/// `encrypt_type=aes` and a valid `msg_signature`.
pub const SEAL: u8 = 2;
/// Flag: with [`SEAL`], a JSON envelope (else XML).
pub const SEAL_JSON: u8 = 4;
/// Flag: set `msg_signature` to the valid one for the body's own `Encrypt`, if any.
pub const SIGN_BODY: u8 = 8;
/// Flag: the strict layer: `require_encryption(true)`, `body_limit(STRICT_LIMIT)`.
pub const STRICT: u8 = 16;
/// Flag: with [`SIGN`], keep the fuzzed `timestamp` (tolerance edges) instead of [`NOW`].
pub const KEEP_TIMESTAMP: u8 = 32;
/// Flag: deliver the body in frames of (byte 0 % 7 + 1) bytes, with no size hint.
pub const CHUNKED: u8 = 64;
/// Flag: send a `Content-Length` header of body length + 1 (over the limit when at it).
pub const CONTENT_LENGTH: u8 = 128;

/// Method byte: with this bit, a multi-app layer (`main` with [`TOKEN`], [`KEY`] and
/// [`APPID`]; `other` with [`OTHER_TOKEN`], [`KEY_B`] and [`APPID_B`]) at `/wechat/{PATH}`,
/// where PATH is what precedes the query's first `?` (`main` when it has none). The method is
/// read from the other seven bits.
pub const MULTI_APP: u8 = 0x80;
/// The Token of the multi-app layer's `other` app.
pub const OTHER_TOKEN: &str = "OtherToken9";

/// What the inner service saw.
#[derive(Default)]
struct Calls {
    count: usize,
    message: Option<Message>,
    info: Option<PushInfo>,
    app: Option<AppName>,
}

// Shared through a mutex, not an `Rc`: the layer's service needs a `Send` handler (dedupe and
// the ack deadline, run-time options, may move it into a task).
#[derive(Clone)]
struct Recorder(Arc<Mutex<Calls>>);

impl Service<Request<Message>> for Recorder {
    type Response = Reply;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Reply, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Message>) -> Self::Future {
        let mut calls = self.0.lock().expect("not poisoned");
        calls.count += 1;
        calls.info = req.extensions().get::<PushInfo>().cloned();
        calls.app = req.extensions().get::<AppName>().cloned();
        let reply = match req.body().kind() {
            Kind::Text { content, .. } => Reply::text(content.clone()),
            _ => Reply::Success,
        };
        calls.message = Some(req.into_body());
        std::future::ready(Ok(reply))
    }
}

/// A request body in frames of a given size; no size hint when chunked.
pub struct Frames {
    data: Bytes,
    chunk: usize,
    hint: bool,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.chunk.min(self.data.len());
        let frame = self.data.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.hint {
            SizeHint::with_exact(self.data.len() as u64)
        } else {
            SizeHint::default()
        }
    }
}

/// Drives a future that needs no wake-ups to completion with a no-op waker.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("the response future never completed");
}

fn body_bytes<B: Body>(body: B) -> Vec<u8> {
    let mut body = pin!(body);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    for _ in 0..1000 {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(mut data) = frame.into_data() {
                    use bytes::Buf;
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        out.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                }
            }
            Poll::Ready(_) => return out,
            Poll::Pending => panic!("a response body was pending"),
        }
    }
    panic!("a response body never ended");
}

/// Drops the `&`-separated pairs whose raw name is one of `names`.
fn without(query: &str, names: &[&str]) -> String {
    query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            !names.contains(&name)
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A request as the `layer` target builds it from the input, and what the harness knows.
pub struct Built {
    /// The request.
    pub request: Request<Frames>,
    /// The strict layer.
    pub strict: bool,
    /// The plaintext that [`SEAL`] sealed, and its format.
    pub sealed: Option<(Format, Vec<u8>)>,
    /// The request's `Content-Length` header, if any.
    pub content_length: Option<usize>,
    /// With [`MULTI_APP`], the path after `/wechat/`.
    pub app_path: Option<String>,
}

/// Splits the input: byte 0 the method, byte 1 the flags, then the query up to the first
/// `\n`, then the body. `None` when the query does not make a valid URI (hyper refuses those
/// before any service sees them).
pub fn build(data: &[u8]) -> Option<Built> {
    let [m, flags, rest @ ..] = data else {
        return None;
    };
    let multi = m & MULTI_APP != 0;
    let (flags, m) = (*flags, *m & !MULTI_APP);
    let method = match m {
        b'G' => Method::GET,
        b'P' => Method::POST,
        b'H' => Method::HEAD,
        b'U' => Method::PUT,
        b'D' => Method::DELETE,
        b'O' => Method::OPTIONS,
        b'X' => Method::from_bytes(b"PROPFIND").ok()?,
        _ if m & 1 == 0 => Method::POST,
        _ => Method::GET,
    };
    let (query, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let mut query = String::from_utf8_lossy(query).into_owned();
    let mut body = body.to_vec();
    let app_path = multi.then(|| match query.split_once('?') {
        Some((path, rest)) => {
            let path = path.to_owned();
            query = rest.to_owned();
            path
        }
        None => "main".to_owned(),
    });

    let mut sealed = None;
    let mut encrypt = None;
    if flags & SEAL != 0 {
        let format = if flags & SEAL_JSON != 0 {
            Format::Json
        } else {
            Format::Xml
        };
        let e = reference_encrypt(&aes_key(KEY), *b"0123456789abcdef", &body, APPID);
        let envelope = match format {
            Format::Xml => format!(
                "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName>\
                 <Encrypt><![CDATA[{e}]]></Encrypt></xml>"
            ),
            Format::Json => format!(r#"{{"ToUserName":"gh_97417a04a28d","Encrypt":"{e}"}}"#),
        };
        sealed = Some((format, std::mem::replace(&mut body, envelope.into_bytes())));
        encrypt = Some(e);
        query = without(&query, &["encrypt_type", "msg_signature"]);
        query.push_str("&encrypt_type=aes");
    } else if flags & SIGN_BODY != 0 {
        if let Ok((_, Envelope::Encrypted(e))) = codec::decode_envelope(&body) {
            encrypt = Some(e.into_owned());
            query = without(&query, &["msg_signature"]);
        }
    }
    if flags & SIGN != 0 {
        query = if flags & KEEP_TIMESTAMP != 0 {
            without(&query, &["signature"])
        } else {
            let mut q = without(&query, &["signature", "timestamp"]);
            q.push_str(&format!("&timestamp={NOW}"));
            q
        };
        // Parse with a placeholder to learn the decoded timestamp and nonce.
        let probe = format!("{query}&signature=0");
        if let Ok(parsed) = CallbackQuery::parse(&probe) {
            let sig = signature::sign(TOKEN, parsed.timestamp(), parsed.nonce());
            query.push_str(&format!("&signature={sig}"));
            if let Some(e) = &encrypt {
                let ms = signature::sign_message(TOKEN, parsed.timestamp(), parsed.nonce(), e);
                query.push_str(&format!("&msg_signature={ms}"));
            }
        } else {
            query.push_str("&signature=0");
        }
    } else if let Some(e) = &encrypt {
        // Unsigned, but `msg_signature` over the fuzzed timestamp and nonce when they parse.
        let probe = format!("{query}&signature=0&msg_signature=0");
        if let Ok(parsed) = CallbackQuery::parse(&probe) {
            let ms = signature::sign_message(TOKEN, parsed.timestamp(), parsed.nonce(), e);
            query.push_str(&format!("&msg_signature={ms}"));
        }
    }

    let uri: Uri = match &app_path {
        Some(path) => format!("/wechat/{path}?{query}").parse().ok()?,
        None => format!("/wechat?{query}").parse().ok()?,
    };
    let chunked = flags & CHUNKED != 0;
    let mut request = Request::new(Frames {
        data: Bytes::from(body),
        chunk: if chunked {
            usize::from(m % 7) + 1
        } else {
            usize::MAX
        },
        hint: !chunked,
    });
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    let mut content_length = None;
    if flags & CONTENT_LENGTH != 0 {
        let len = request.body().data.len() + 1;
        request
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        content_length = Some(len);
    }
    Some(Built {
        request,
        strict: flags & STRICT != 0,
        sealed,
        content_length,
        app_path,
    })
}

/// `layer`: the input (see [`build`]) into a `WechatLayer` service around a recording inner
/// service. The inner service is never called unless the signature verifies, the timestamp is
/// fresh, the method is POST and, for an `Encrypt` body, `msg_signature` verifies; no answer
/// is 5xx; and a valid sealed push is always delivered, as the message it seals.
///
/// Returns the status and whether the handler was called (`None` for an input [`build`]
/// skips), for the regression tests.
pub fn layer(data: &[u8]) -> Option<(StatusCode, bool)> {
    if let [b'W', rest @ ..] = data {
        return wecom_layer(rest);
    }
    let built = build(data)?;
    let Built {
        request,
        strict,
        sealed,
        content_length,
        app_path,
    } = built;
    let method = request.method().clone();
    // On a multi-app layer, the app the path names (its last segment, as `ChooseApp` reads it).
    let named = app_path.is_some().then(|| {
        let path = request.uri().path();
        let path = path.strip_suffix('/').unwrap_or(path);
        path.rsplit('/').next().unwrap_or_default().to_owned()
    });
    let raw_query = request.uri().query().unwrap_or("").to_owned();
    let body = request.body().data.clone();
    let limit = if strict {
        STRICT_LIMIT
    } else {
        wechat_push::DEFAULT_BODY_LIMIT
    };

    let key = EncodingAesKey::new(KEY).expect("a valid key");
    let calls = Arc::new(Mutex::new(Calls::default()));
    let response: Response<_> = if named.is_some() {
        let main = Endpoint::new(TOKEN)
            .expect("a valid token")
            .encryption(key, APPID)
            .expect("a valid AppID")
            .require_encryption(strict)
            .clock(FixedClock::at_unix(NOW));
        let other = Endpoint::new(OTHER_TOKEN)
            .expect("a valid token")
            .encryption(EncodingAesKey::new(KEY_B).expect("a valid key"), APPID_B)
            .expect("a valid AppID")
            .clock(FixedClock::at_unix(NOW));
        let apps: Apps = [
            App::new("main", main).expect("a valid name"),
            App::new("other", other).expect("a valid name"),
        ]
        .into_iter()
        .collect();
        let layer = WechatLayer::apps(apps, ChooseApp::last_segment()).body_limit(limit);
        let mut service = layer.layer(Recorder(calls.clone()));
        block_on(service.call(request)).expect("infallible")
    } else {
        let mut layer = WechatLayer::new(TOKEN)
            .expect("a valid token")
            .encryption(key, APPID)
            .expect("a valid AppID")
            .clock(FixedClock::at_unix(NOW));
        if strict {
            layer = layer.require_encryption(true).body_limit(STRICT_LIMIT);
        }
        let mut service = layer.layer(Recorder(calls.clone()));
        block_on(service.call(request)).expect("infallible")
    };
    let status = response.status();
    assert!(status.as_u16() < 500, "{status} for {raw_query:?}");

    let calls = calls.lock().expect("not poisoned");
    match named.as_deref() {
        // Only `main`'s keys can verify what the harness signs: nothing else reaches the
        // handler, and a name that is not configured is 404 whatever the request.
        Some(name) => {
            if calls.count > 0 {
                assert_eq!(name, "main", "the handler was called for app {name:?}");
                assert_eq!(calls.app.as_ref().map(AppName::as_str), Some("main"));
            }
            if name != "main" && name != "other" {
                assert_eq!(status, StatusCode::NOT_FOUND, "app {name:?}");
                return Some((status, false));
            }
        }
        None => assert!(calls.app.is_none(), "an AppName on a one-app layer"),
    }
    let parsed = CallbackQuery::parse(&raw_query);
    if calls.count > 0 {
        assert_eq!(calls.count, 1);
        assert_eq!(method, Method::POST, "the handler was called on {method}");
        assert_eq!(status, StatusCode::OK);
        let q = parsed
            .as_ref()
            .expect("the handler was called on a bad query");
        assert!(
            signature::verify(q.signature(), TOKEN, q.timestamp(), q.nonce()),
            "the handler was called with a bad signature: {raw_query}"
        );
        assert!(
            NOW.abs_diff(q.timestamp_secs()) <= TOLERANCE,
            "stale timestamp"
        );
        assert!(
            body.len() <= limit,
            "the handler was called with an oversized body"
        );
        assert!(content_length.is_none_or(|n| n <= limit));
        let info = calls.info.as_ref().expect("a PushInfo extension");
        match codec::decode_envelope(&body) {
            Ok((_, Envelope::Encrypted(e))) => {
                let ms = q.msg_signature().expect("called without msg_signature");
                assert!(
                    signature::verify_message(ms, TOKEN, q.timestamp(), q.nonce(), &e),
                    "the handler was called with a bad msg_signature"
                );
                assert!(info.is_encrypted());
            }
            Ok((_, Envelope::Plain(msg))) => {
                assert!(!strict, "a plaintext push passed require_encryption");
                assert_eq!(q.encrypt_type(), EncryptType::Plain);
                assert!(!info.is_encrypted());
                assert_eq!(calls.message.as_ref(), Some(&msg));
            }
            Err(e) => panic!("the handler was called on an undecodable body: {e}"),
        }
    } else if method == Method::POST {
        assert!(
            status.is_client_error(),
            "{status} without calling the handler"
        );
    } else if method == Method::GET && status == StatusCode::OK {
        let q = parsed
            .as_ref()
            .expect("a handshake answered on a bad query");
        assert!(signature::verify(
            q.signature(),
            TOKEN,
            q.timestamp(),
            q.nonce()
        ));
        let echo = q.echostr().expect("a handshake without echostr");
        assert_eq!(body_bytes(response.into_body()), echo.as_bytes());
        return Some((status, false));
    } else {
        assert!(status.is_client_error(), "{method} answered {status}");
    }

    // A valid sealed push is never lost.
    let for_main = named.as_deref().is_none_or(|name| name == "main");
    if let (Some((format, plain)), Ok(q), true) = (&sealed, &parsed, for_main) {
        let signed = signature::verify(q.signature(), TOKEN, q.timestamp(), q.nonce())
            && NOW.abs_diff(q.timestamp_secs()) <= TOLERANCE;
        let fits = body.len() <= limit && content_length.is_none_or(|n| n <= limit);
        if method == Method::POST && signed && fits {
            if let Ok(expected) = codec::decode_message(*format, plain) {
                assert_eq!(calls.count, 1, "a valid sealed push was refused: {status}");
                assert_eq!(calls.message.as_ref(), Some(&expected));
            }
        }
    }
    Some((status, calls.count > 0))
}

// ---------------------------------------------------------------------------------------------
// layer, WeCom path: inputs that start with `W`

/// The WeCom endpoint's CorpID (its receive id); token and key are [`TOKEN`] and [`KEY`].
pub const CORP: &str = "ww1436e0e65a779aee";

/// The WeCom half of the `layer` target (inputs `W` + method + flags + query + `\n` + body).
/// The flags mean what they mean for [`build`], in WeCom's terms: [`SEAL`] seals the body for
/// [`CORP`] (a POST's XML envelope with an `AgentID`, or with [`SEAL_JSON`] the lower-case
/// JSON one; a GET's `echostr`), [`SIGN`] sets a valid `msg_signature` (and `timestamp`),
/// [`SIGN_BODY`] signs the body's own `Encrypt`/`encrypt`.
///
/// Oracles: no 5xx; the handler runs only on a POST whose `msg_signature` verifies over the
/// body's `Encrypt` and whose timestamp is fresh, and always for a valid sealed push whose
/// plaintext decodes; a GET is answered 200 only with the decrypted `echostr`, and always for a
/// valid sealed one.
pub fn wecom_layer(data: &[u8]) -> Option<(StatusCode, bool)> {
    let [m, flags, rest @ ..] = data else {
        return None;
    };
    let (flags, m) = (*flags, *m);
    let method = match m {
        b'U' => Method::PUT,
        _ if m & 1 == 0 => Method::POST,
        _ => Method::GET,
    };
    let (query, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let mut query = String::from_utf8_lossy(query).into_owned();
    let mut body = body.to_vec();
    let mut sealed = None;
    let mut encrypt = None;
    if flags & SEAL != 0 {
        let e = reference_encrypt(&aes_key(KEY), *b"wecom-prefix-16b", &body, CORP);
        let plain = if method == Method::GET {
            query = without(&query, &["echostr"]);
            let escaped = e
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D");
            query.push_str(&format!("&echostr={escaped}"));
            std::mem::take(&mut body)
        } else {
            let envelope = if flags & SEAL_JSON != 0 {
                format!(r#"{{"tousername":"{CORP}","encrypt":"{e}","agentid":218}}"#)
            } else {
                format!(
                    "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName>\
                     <AgentID><![CDATA[218]]></AgentID><Encrypt><![CDATA[{e}]]></Encrypt></xml>"
                )
            };
            std::mem::replace(&mut body, envelope.into_bytes())
        };
        sealed = Some(plain);
        encrypt = Some(e);
    } else if flags & SIGN_BODY != 0 {
        if let Ok((_, Envelope::Encrypted(e))) = codec::decode_wecom_envelope(&body) {
            encrypt = Some(e.into_owned());
        }
    }
    if flags & SIGN != 0 {
        query = if flags & KEEP_TIMESTAMP != 0 {
            without(&query, &["msg_signature"])
        } else {
            let mut q = without(&query, &["msg_signature", "timestamp"]);
            q.push_str(&format!("&timestamp={NOW}"));
            q
        };
        let signed = probe(&query).map(|parsed| {
            let over = match (&encrypt, parsed.echostr()) {
                (Some(e), _) => e.clone(),
                (None, Some(echo)) if method == Method::GET => echo.to_owned(),
                _ => String::new(),
            };
            signature::sign_message(TOKEN, parsed.timestamp(), parsed.nonce(), &over)
        });
        match signed {
            Some(ms) => query.push_str(&format!("&msg_signature={ms}")),
            None => query.push_str("&msg_signature=0"),
        }
    }
    let uri: Uri = format!("/wecom?{query}").parse().ok()?;
    let chunked = flags & CHUNKED != 0;
    let mut request = Request::new(Frames {
        data: Bytes::from(body.clone()),
        chunk: if chunked {
            usize::from(m % 7) + 1
        } else {
            usize::MAX
        },
        hint: !chunked,
    });
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri;
    // What the endpoint reads: the URI's query (a `#` ends it).
    let query = request.uri().query().unwrap_or("").to_owned();
    let strict = flags & STRICT != 0;
    let limit = if strict {
        STRICT_LIMIT
    } else {
        wechat_push::DEFAULT_BODY_LIMIT
    };
    let key = EncodingAesKey::new(KEY).expect("a valid key");
    let endpoint = Endpoint::wecom(TOKEN, key.clone(), ReceiveId::CorpId(CORP.into()))
        .expect("a valid WeCom endpoint")
        .clock(FixedClock::at_unix(NOW));
    let mut layer = WechatLayer::from_endpoint(endpoint);
    if strict {
        layer = layer.body_limit(STRICT_LIMIT);
    }
    let calls = Arc::new(Mutex::new(Calls::default()));
    let mut service = layer.layer(Recorder(calls.clone()));
    let response: Response<_> = block_on(service.call(request)).expect("infallible");
    let status = response.status();
    assert!(status.as_u16() < 500, "{status} for {query:?}");

    let calls = calls.lock().expect("not poisoned");
    let parsed = probe(&query);
    let fresh = |q: &CallbackQuery| NOW.abs_diff(q.timestamp_secs()) <= TOLERANCE;
    if calls.count > 0 {
        assert_eq!(
            (calls.count, &method, status),
            (1, &Method::POST, StatusCode::OK)
        );
        let q = parsed
            .as_ref()
            .expect("the handler was called on a bad query");
        assert!(fresh(q), "stale timestamp");
        assert!(
            body.len() <= limit,
            "the handler was called with an oversized body"
        );
        let Ok((_, Envelope::Encrypted(e))) = codec::decode_wecom_envelope(&body) else {
            panic!("the handler was called without Encrypt");
        };
        let ms = q.msg_signature().expect("called without msg_signature");
        assert!(
            signature::verify_message(ms, TOKEN, q.timestamp(), q.nonce(), &e),
            "the handler was called with a bad msg_signature"
        );
        let opened =
            crypto::decrypt(&key, &e, CORP).expect("called on a cipher text for another corp");
        assert!(calls.info.as_ref().is_some_and(PushInfo::is_encrypted));
        let decoded = Format::sniff(opened.as_bytes())
            .and_then(|f| codec::decode_message(f, opened.as_bytes()))
            .expect("called with a plaintext that does not decode");
        assert_eq!(calls.message.as_ref(), Some(&decoded));
    } else if method == Method::GET && status == StatusCode::OK {
        let q = parsed
            .as_ref()
            .expect("a handshake answered on a bad query");
        let echo = q.echostr().expect("a handshake without echostr");
        let ms = q
            .msg_signature()
            .expect("a handshake without msg_signature");
        assert!(signature::verify_message(
            ms,
            TOKEN,
            q.timestamp(),
            q.nonce(),
            echo
        ));
        let opened = crypto::decrypt(&key, echo, CORP).expect("a handshake that does not open");
        assert_eq!(body_bytes(response.into_body()), opened.as_bytes());
        return Some((status, false));
    } else {
        assert!(status.is_client_error(), "{method} answered {status}");
    }

    // A valid sealed push or handshake is never lost.
    if let (Some(plain), Some(q), true) = (&sealed, &parsed, flags & SIGN != 0) {
        let fits = body.len() <= limit;
        // What the harness appended reached the endpoint: not cut off by a `#` (the URI's
        // fragment) earlier in the fuzzed query.
        let intact =
            q.msg_signature().is_some() && (method != Method::GET || q.echostr().is_some());
        if fresh(q) && fits && intact && std::str::from_utf8(plain).is_ok() {
            if method == Method::GET {
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "a valid WeCom handshake was refused"
                );
            } else if method == Method::POST {
                let expected = Format::sniff(plain).and_then(|f| codec::decode_message(f, plain));
                if let Ok(expected) = expected {
                    assert_eq!(calls.count, 1, "a valid WeCom push was refused: {status}");
                    assert_eq!(calls.message.as_ref(), Some(&expected));
                }
            }
        }
    }
    Some((status, calls.count > 0))
}

/// The query as the WeCom endpoint reads it (a placeholder `signature` makes the public
/// parser take it), or `None` when it does not parse.
fn probe(query: &str) -> Option<CallbackQuery> {
    // Drop every pair whose name decodes to `signature`, however it is escaped.
    let rest = query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            decode_name(name).as_deref() != Some(b"signature".as_slice())
        })
        .collect::<Vec<_>>()
        .join("&");
    CallbackQuery::parse(&format!("{rest}&signature=0")).ok()
}

/// A parameter name with its `%XX` escapes decoded (`None` when an escape is bad).
fn decode_name(name: &str) -> Option<Vec<u8>> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}
