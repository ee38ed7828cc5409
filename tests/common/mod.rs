//! Shared by the integration tests: the vectors, signed requests, handlers, and reading
//! replies.
#![allow(unreachable_pub)]
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use wechat_push::clock::FixedClock;
use wechat_push::message::Kind;
use wechat_push::test::Push;
use wechat_push::{signature, EncodingAesKey, Message, Reply, WechatLayer};

pub fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// The first encrypt case: token, key, appid and a fixed timestamp.
pub struct Case {
    pub v: Value,
}

impl Case {
    pub fn new(index: usize) -> Self {
        Self {
            v: vectors()["encrypt_cases"][index].clone(),
        }
    }
    pub fn token(&self) -> &str {
        s(&self.v, "token")
    }
    pub fn key(&self) -> EncodingAesKey {
        EncodingAesKey::new(s(&self.v, "encoding_aes_key")).unwrap()
    }
    pub fn appid(&self) -> &str {
        s(&self.v, "appid")
    }
    pub fn timestamp(&self) -> u64 {
        s(&self.v, "timestamp").parse().unwrap()
    }
    pub fn nonce(&self) -> &str {
        s(&self.v, "nonce")
    }
    /// A layer for this case, with its key and a clock stopped at its timestamp.
    pub fn layer(&self) -> WechatLayer {
        let now = self.timestamp();
        WechatLayer::new(self.token())
            .unwrap()
            .encryption(self.key(), self.appid())
            .unwrap()
            .clock(FixedClock::at_unix(now))
    }
    pub fn format(&self, format: &str) -> &Value {
        &self.v[format]
    }
    /// The plaintext query: `signature`, `timestamp`, `nonce`.
    pub fn plain_query(&self) -> String {
        plain_query(self.token(), &self.timestamp().to_string(), self.nonce())
    }
    /// This case's plaintext push in `format` (`"xml"` or `"json"`), as a signed POST.
    pub fn plain_push(&self, format: &str) -> Request<Full<Bytes>> {
        let body = s(self.format(format), "plaintext").to_owned();
        self.plain_post(Full::new(Bytes::from(body)))
    }
    /// A POST signed with the plaintext query, around any body.
    pub fn plain_post<B>(&self, body: B) -> Request<B> {
        Request::builder()
            .method(Method::POST)
            .uri(format!("/wechat?{}", self.plain_query()))
            .body(body)
            .unwrap()
    }
    /// This case's push in the test kit: its Token, key and AppID, timestamp and nonce.
    pub fn kit(&self) -> Push {
        Push::new(self.token())
            .unwrap()
            .encrypted(self.key(), self.appid())
            .unwrap()
            .timestamp(self.timestamp())
            .nonce(self.nonce())
    }
    /// Checks the `MsgSignature` of a sealed reply in `format` (`"xml"` or `"json"`) with this
    /// case's token and opens it with its key and AppID (the test kit's
    /// [`Push::open_reply`]): the clear reply document, or what is wrong.
    pub fn try_open_sealed_reply(&self, format: &str, body: &str) -> Result<String, String> {
        let is_json = body.trim_start().starts_with('{');
        if is_json != (format == "json") {
            return Err(format!("not a sealed {format} reply: {body}"));
        }
        self.kit()
            .open_reply(body.as_bytes())
            .map_err(|e| format!("{e}: {body}"))
    }
    /// [`Case::try_open_sealed_reply`], panicking with what is wrong.
    pub fn open_sealed_reply(&self, format: &str, body: &str) -> String {
        self.try_open_sealed_reply(format, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The text of the first `<tag>` element of an XML document, without its CDATA markers;
/// `None` if the document has no such element.
pub fn xml_field<'a>(doc: &'a str, tag: &str) -> Option<&'a str> {
    let (_, rest) = doc.split_once(&format!("<{tag}>"))?;
    let (inner, _) = rest.split_once(&format!("</{tag}>"))?;
    Some(
        inner
            .strip_prefix("<![CDATA[")
            .and_then(|text| text.strip_suffix("]]>"))
            .unwrap_or(inner),
    )
}

/// The envelope of a sealed reply.
#[derive(Debug)]
pub struct Sealed {
    pub encrypt: String,
    pub msg_signature: String,
    /// In decimal, as it is signed.
    pub timestamp: String,
    pub nonce: String,
}

/// Reads `Encrypt`, `MsgSignature`, `TimeStamp` and `Nonce` out of a sealed reply in `format`
/// (`"xml"` or `"json"`; in JSON the timestamp must be a number, the others strings).
pub fn sealed_envelope(format: &str, body: &str) -> Result<Sealed, String> {
    match format {
        "xml" => {
            let field = |tag: &str| {
                xml_field(body, tag)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("no {tag} in {body}"))
            };
            Ok(Sealed {
                encrypt: field("Encrypt")?,
                msg_signature: field("MsgSignature")?,
                timestamp: field("TimeStamp")?,
                nonce: field("Nonce")?,
            })
        }
        "json" => {
            let v: Value = serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
            let field = |name: &str| {
                v[name]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("no string {name} in {body}"))
            };
            Ok(Sealed {
                encrypt: field("Encrypt")?,
                msg_signature: field("MsgSignature")?,
                timestamp: v["TimeStamp"]
                    .as_u64()
                    .map(|ts| ts.to_string())
                    .ok_or_else(|| format!("no numeric TimeStamp in {body}"))?,
                nonce: field("Nonce")?,
            })
        }
        other => panic!("no format {other:?}"),
    }
}

pub fn plain_query(token: &str, timestamp: &str, nonce: &str) -> String {
    let sig = signature::sign(token, timestamp, nonce);
    format!("signature={sig}&timestamp={timestamp}&nonce={nonce}")
}

pub fn request(method: Method, query: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("/wechat?{query}"))
        .body(Full::new(body.into()))
        .unwrap()
}

pub async fn body_string<B>(body: B) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// A handler that must never run: proves that a request was answered by the layer.
pub async fn must_not_be_called(_: Request<Message>) -> Result<Reply, Infallible> {
    panic!("the handler must not be called for this request")
}

/// Echoes text back as a passive reply, `success` for everything else.
pub async fn echo(req: Request<Message>) -> Result<Reply, Infallible> {
    Ok(match req.body().kind() {
        Kind::Text { content, .. } => Reply::text(content.clone()),
        _ => Reply::Success,
    })
}

/// Counts calls.
#[derive(Clone, Default)]
pub struct Counter(pub Arc<AtomicUsize>);

impl Counter {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    pub fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Serves `svc` (any HTTP service: typed mode's, pass-through mode's) with hyper on a fresh
/// loopback port until the test ends.
pub async fn serve_hyper<S, B>(svc: S) -> SocketAddr
where
    S: tower::Service<
            Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Sends one request with a real HTTP client (hyper-util's) to a server on `addr`; answers its
/// status, headers and body text.
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path_and_query: &str,
    body: &str,
) -> (StatusCode, HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path_and_query}"))
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (parts.status, parts.headers, body)
}

/// WeChat's safe-mode plaintext for `msg` (docs/protocol.md §4.2), padded (§4.1):
/// `prefix (16) | msg_len (u32, big-endian) | msg | appid`, then PKCS#7 to a multiple of 32
/// bytes (a whole block of 32 × `0x20` when already aligned).
pub fn reference_plaintext(prefix: [u8; 16], msg: &[u8], appid: &str) -> Vec<u8> {
    let mut plain = prefix.to_vec();
    plain.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
    plain.extend_from_slice(msg);
    plain.extend_from_slice(appid.as_bytes());
    let pad = 32 - plain.len() % 32;
    plain.resize(plain.len() + pad, pad as u8);
    plain
}

/// `Encrypt` for `msg` under the raw 32-byte AES key: [`reference_plaintext`], AES-256-CBC
/// without padding (IV = the key's first 16 bytes), standard base64 (docs/protocol.md §4.1).
///
/// Built here with the `aes`, `cbc` and `base64` crates, not with the crate's own sealing:
/// tests that need a known cipher text for a known prefix compare the crate against this
/// independent implementation, which `tests/vectors.rs` checks against the vectors.
pub fn reference_encrypt(key: &[u8; 32], prefix: [u8; 16], msg: &[u8], appid: &str) -> String {
    use aes::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
    use base64::Engine as _;

    let mut buf = reference_plaintext(prefix, msg, appid);
    let len = buf.len();
    let cipher = cbc::Encryptor::<aes::Aes256>::new(key.into(), key[..16].into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, len)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(cipher)
}

/// The 32 AES key bytes of an `EncodingAESKey`, decoded leniently (non-zero spare bits in
/// the last character, as WeChat's consoles generate them), with the `base64` crate.
pub fn reference_key(encoding_aes_key: &str) -> [u8; 32] {
    use base64::engine::{general_purpose, DecodePaddingMode, GeneralPurpose};
    use base64::{alphabet, Engine as _};

    let lenient = GeneralPurpose::new(
        &alphabet::STANDARD,
        general_purpose::PAD
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    lenient
        .decode(encoding_aes_key)
        .unwrap()
        .try_into()
        .unwrap()
}

/// Opens `Encrypt` the way WeChat does (docs/protocol.md §4.4) with the `aes`, `cbc` and `base64`
/// crates, not the crate's own code: the message, after checking that the receive id
/// trailer is `receive_id` byte for byte (empty included).
pub fn reference_decrypt(
    encoding_aes_key: &str,
    encrypt: &str,
    receive_id: &str,
) -> Result<String, String> {
    use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
    use base64::Engine as _;

    let key = reference_key(encoding_aes_key);
    let mut buf = base64::engine::general_purpose::STANDARD
        .decode(encrypt)
        .map_err(|e| e.to_string())?;
    let plain = cbc::Decryptor::<aes::Aes256>::new((&key).into(), key[..16].into())
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|e| e.to_string())?;
    let pad = usize::from(*plain.last().ok_or("empty")?);
    let plain = &plain[..plain.len() - pad];
    let len = u32::from_be_bytes(plain[16..20].try_into().unwrap()) as usize;
    let (msg, trailer) = plain[20..].split_at(len);
    if trailer != receive_id.as_bytes() {
        return Err(format!(
            "receive id {:?}, expected {receive_id:?}",
            String::from_utf8_lossy(trailer)
        ));
    }
    String::from_utf8(msg.to_vec()).map_err(|e| e.to_string())
}

/// `msg_signature` computed here: SHA-1 over the sorted strings, in hex.
pub fn reference_sign(parts: &[&str]) -> String {
    use sha1::{Digest, Sha1};

    let mut parts = parts.to_vec();
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}
