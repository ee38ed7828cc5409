//! Replies: what the handler answers, written in the push's format and sealed when the push was
//! encrypted.
//!
//! A mini program answers almost every push with [`Reply::Success`] and talks back through the
//! customer-service API; an official account can answer in the HTTP response itself with a
//! passive reply ([`Reply::Text`], [`Reply::News`], …). The layer fills in the addressing:
//! `ToUserName` is the push's `FromUserName`, `FromUserName` its `ToUserName`, `CreateTime` the
//! current time (PROTOCOL.md §6).
//!
//! ```
//! use wechat_push::{Format, Reply};
//!
//! let body = Reply::text("你好").encode(Format::Json, "openid", "gh_id", 1714200600);
//! assert_eq!(
//!     body,
//!     r#"{"ToUserName":"openid","FromUserName":"gh_id","CreateTime":1714200600,"MsgType":"text","Content":"你好"}"#.as_bytes()
//! );
//! assert_eq!(Reply::Success.encode(Format::Xml, "openid", "gh_id", 0), b"success");
//! ```

use base64_simd::STANDARD;

use crate::codec::{self, Format};
use crate::crypto::{self, EncodingAesKey, RandomError};
use crate::random;
use crate::signature::{self, Signature};

/// What the handler answers to a push.
///
/// `Success` and `Empty` are sent as they are, in clear, in every mode; every other reply is a
/// document in the push's format, encrypted when the push was.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reply {
    /// The body `success`: received, nothing to say. What a mini program answers.
    #[default]
    Success,
    /// An empty body, which WeChat also takes as "received".
    Empty,
    /// Hand the conversation to the customer-service tool, optionally to one agent.
    TransferCustomerService {
        /// The agent account (`KfAccount`), e.g. `agent@account`.
        kf_account: Option<String>,
    },
    /// A text message (newlines allowed).
    Text {
        /// The text.
        content: String,
    },
    /// An image uploaded beforehand.
    Image {
        /// Its media id.
        media_id: String,
    },
    /// A voice message uploaded beforehand.
    Voice {
        /// Its media id.
        media_id: String,
    },
    /// A video uploaded beforehand.
    Video {
        /// Its media id.
        media_id: String,
        /// Optional title.
        title: Option<String>,
        /// Optional description.
        description: Option<String>,
    },
    /// A music message.
    Music(Music),
    /// Articles (WeChat shows one when answering a user's message).
    News(Vec<Article>),
}

/// The body of a [`Reply::Music`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Music {
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Link to the music.
    pub music_url: Option<String>,
    /// Link to a high-quality version, played on Wi-Fi.
    pub hq_music_url: Option<String>,
    /// Media id of the cover thumbnail (required by WeChat).
    pub thumb_media_id: String,
}

/// One article of a [`Reply::News`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Article {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Picture link.
    pub pic_url: String,
    /// Link opened on tap.
    pub url: String,
}

impl Reply {
    /// A text reply.
    pub fn text(content: impl Into<String>) -> Self {
        Self::Text {
            content: content.into(),
        }
    }

    /// An image reply.
    pub fn image(media_id: impl Into<String>) -> Self {
        Self::Image {
            media_id: media_id.into(),
        }
    }

    /// Hands the conversation to the customer-service tool.
    pub fn transfer_customer_service() -> Self {
        Self::TransferCustomerService { kf_account: None }
    }

    /// Whether this is `Success` or `Empty`: a bare acknowledgement, never encrypted.
    pub fn is_ack(&self) -> bool {
        self.ack_body().is_some()
    }

    /// The fixed body of an acknowledgement (`success`, or nothing); `None` for a reply
    /// document.
    pub(crate) fn ack_body(&self) -> Option<&'static [u8]> {
        match self {
            Self::Success => Some(b"success"),
            Self::Empty => Some(b""),
            _ => None,
        }
    }

    /// `MsgType` of the reply document (`None` for an acknowledgement).
    pub fn msg_type(&self) -> Option<&'static str> {
        Some(match self {
            Self::Success | Self::Empty => return None,
            Self::TransferCustomerService { .. } => "transfer_customer_service",
            Self::Text { .. } => "text",
            Self::Image { .. } => "image",
            Self::Voice { .. } => "voice",
            Self::Video { .. } => "video",
            Self::Music(_) => "music",
            Self::News(_) => "news",
        })
    }

    /// Writes the reply as the clear body for a push in `format`.
    ///
    /// `to_user` is the push's `FromUserName` (the user), `from_user` its `ToUserName` (the
    /// account); `create_time` is in Unix seconds. Acknowledgements ignore all three.
    pub fn encode(
        &self,
        format: Format,
        to_user: &str,
        from_user: &str,
        create_time: u64,
    ) -> Vec<u8> {
        self.write_to(
            Vec::with_capacity(256),
            format,
            to_user,
            from_user,
            create_time,
        )
    }

    /// [`Reply::encode`], appended to `out`.
    fn write_to(
        &self,
        mut out: Vec<u8>,
        format: Format,
        to_user: &str,
        from_user: &str,
        create_time: u64,
    ) -> Vec<u8> {
        let Some(msg_type) = self.msg_type() else {
            out.extend_from_slice(self.ack_body().unwrap_or_default());
            return out;
        };
        let mut w = Writer::new(format, out);
        w.open();
        w.text("ToUserName", to_user);
        w.text("FromUserName", from_user);
        w.number("CreateTime", create_time);
        w.text("MsgType", msg_type);
        match self {
            Self::Success | Self::Empty => {}
            Self::TransferCustomerService { kf_account } => {
                if let Some(account) = kf_account {
                    w.begin("TransInfo");
                    w.text("KfAccount", account);
                    w.end("TransInfo");
                }
            }
            Self::Text { content } => w.text("Content", content),
            Self::Image { media_id } => media(&mut w, "Image", media_id),
            Self::Voice { media_id } => media(&mut w, "Voice", media_id),
            Self::Video {
                media_id,
                title,
                description,
            } => {
                w.begin("Video");
                w.text("MediaId", media_id);
                w.optional("Title", title);
                w.optional("Description", description);
                w.end("Video");
            }
            Self::Music(music) => {
                w.begin("Music");
                w.optional("Title", &music.title);
                w.optional("Description", &music.description);
                w.optional("MusicUrl", &music.music_url);
                w.optional("HQMusicUrl", &music.hq_music_url);
                w.text("ThumbMediaId", &music.thumb_media_id);
                w.end("Music");
            }
            Self::News(articles) => {
                w.number("ArticleCount", articles.len() as u64);
                w.begin_list("Articles");
                for article in articles {
                    w.begin_item();
                    w.text("Title", &article.title);
                    w.text("Description", &article.description);
                    w.text("PicUrl", &article.pic_url);
                    w.text("Url", &article.url);
                    w.end_item();
                }
                w.end_list("Articles");
            }
        }
        w.close()
    }
}

impl From<()> for Reply {
    fn from((): ()) -> Self {
        Self::Success
    }
}

fn media(w: &mut Writer, element: &str, media_id: &str) {
    w.begin(element);
    w.text("MediaId", media_id);
    w.end(element);
}

/// Seals a clear reply document for an encrypted push: encrypts it under a fresh random prefix,
/// signs it, and wraps it in the `Encrypt` / `MsgSignature` / `TimeStamp` / `Nonce` envelope
/// (PROTOCOL.md §4.5), with a fresh random ten-digit `Nonce`.
///
/// `timestamp` is the reply's time in Unix seconds. The prefix and the nonce are 24 bytes
/// read from the operating system's random source for this reply alone (one `getrandom` call
/// per reply, nothing kept between calls, so nothing a forked process could reuse).
pub fn seal(
    format: Format,
    key: &EncodingAesKey,
    app_id: &str,
    token: &str,
    document: &[u8],
    timestamp: u64,
) -> Result<Vec<u8>, RandomError> {
    let mut buf = crypto::seal_buffer(crypto::sealed_len(document.len(), app_id));
    buf.extend_from_slice(document);
    let sealer = Sealer::new(format, key, app_id, token, timestamp);
    Ok(sealer.seal(buf, random::os_random()?))
}

/// Encodes `reply` for an encrypted push and seals it: [`Reply::encode`] then [`seal`], with
/// the document written straight into the buffer that is encrypted.
pub(crate) fn seal_reply(
    reply: &Reply,
    to_user: &str,
    from_user: &str,
    sealer: Sealer<'_>,
) -> Result<Vec<u8>, RandomError> {
    let random = random::os_random()?;
    let buf = crypto::seal_buffer(512);
    let buf = reply.write_to(buf, sealer.format, to_user, from_user, sealer.timestamp);
    Ok(sealer.seal(buf, random))
}

/// What sealing a reply needs besides the document and the randomness.
pub(crate) struct Sealer<'a> {
    format: Format,
    key: &'a EncodingAesKey,
    app_id: &'a str,
    token: &'a str,
    timestamp: u64,
}

impl<'a> Sealer<'a> {
    pub(crate) fn new(
        format: Format,
        key: &'a EncodingAesKey,
        app_id: &'a str,
        token: &'a str,
        timestamp: u64,
    ) -> Self {
        Self {
            format,
            key,
            app_id,
            token,
            timestamp,
        }
    }

    /// Encrypts `buf` (from [`crypto::seal_buffer`], then the document) in place and
    /// writes the envelope, base64 going straight into it. `random` gives the prefix (16
    /// bytes) and the nonce (8).
    fn seal(&self, mut buf: Vec<u8>, random: [u8; 24]) -> Vec<u8> {
        let (prefix, nonce) = random.split_at(16);
        let prefix: [u8; 16] = prefix.try_into().unwrap_or_default();
        let nonce: [u8; 8] = nonce.try_into().unwrap_or_default();
        // Ten decimal digits, the shape of WeChat's own nonces.
        let mut nonce_digits = itoa_buf();
        let nonce = fmt_u64(
            &mut nonce_digits,
            u64::from_le_bytes(nonce) % 10_000_000_000,
        );
        let mut ts_digits = itoa_buf();
        let ts = fmt_u64(&mut ts_digits, self.timestamp);
        let cipher = crypto::seal_in_place(self.key, prefix, &mut buf, self.app_id);
        let mut out = Vec::with_capacity(cipher.len().div_ceil(3) * 4 + 160);
        // Base64 needs no CDATA splitting and no JSON escaping.
        let (open, close): (&[u8], &[u8]) = match self.format {
            Format::Xml => (b"<xml>\n<Encrypt><![CDATA[", b"]]></Encrypt>"),
            Format::Json => (b"{\"Encrypt\":\"", b"\""),
        };
        out.extend_from_slice(open);
        let start = out.len();
        STANDARD.encode_append(cipher, &mut out);
        let encrypt = std::str::from_utf8(&out[start..]).unwrap_or_default();
        let sig = signature::sign_message(self.token, ts, nonce, encrypt);
        out.extend_from_slice(close);
        envelope_tail(&mut out, self.format, &sig, ts, nonce);
        out
    }
}

/// Writes the encrypted-reply envelope around an `Encrypt` value, signing it with `token`.
///
/// With [`crypto::encrypt_with_prefix`] this reproduces the test vectors byte for byte.
pub fn envelope(
    format: Format,
    token: &str,
    encrypt: &str,
    timestamp: u64,
    nonce: &str,
) -> Vec<u8> {
    let mut digits = itoa_buf();
    let ts = fmt_u64(&mut digits, timestamp);
    let sig = signature::sign_message(token, ts, nonce, encrypt);
    let mut out = Vec::with_capacity(encrypt.len() + 160);
    match format {
        Format::Xml => {
            out.extend_from_slice(b"<xml>\n<Encrypt>");
            cdata(&mut out, encrypt);
            out.extend_from_slice(b"</Encrypt>");
        }
        Format::Json => {
            out.extend_from_slice(b"{\"Encrypt\":");
            json_string(&mut out, encrypt);
        }
    }
    envelope_tail(&mut out, format, &sig, ts, nonce);
    out
}

/// The envelope after `Encrypt`: signature, timestamp, nonce, end of document.
fn envelope_tail(out: &mut Vec<u8>, format: Format, sig: &Signature, ts: &str, nonce: &str) {
    let sig = sig.to_hex();
    let sig = std::str::from_utf8(&sig).unwrap_or_default();
    match format {
        Format::Xml => {
            out.extend_from_slice(b"\n<MsgSignature>");
            cdata(out, sig);
            out.extend_from_slice(b"</MsgSignature>\n<TimeStamp>");
            out.extend_from_slice(ts.as_bytes());
            out.extend_from_slice(b"</TimeStamp>\n<Nonce>");
            cdata(out, nonce);
            out.extend_from_slice(b"</Nonce>\n</xml>");
        }
        Format::Json => {
            out.extend_from_slice(b",\"MsgSignature\":");
            json_string(out, sig);
            out.extend_from_slice(b",\"TimeStamp\":");
            out.extend_from_slice(ts.as_bytes());
            out.extend_from_slice(b",\"Nonce\":");
            json_string(out, nonce);
            out.push(b'}');
        }
    }
}

/// A minimal writer for the flat documents replies are: XML elements with CDATA text, or a
/// compact JSON object with UTF-8 written as is.
struct Writer {
    format: Format,
    out: Vec<u8>,
    /// JSON: whether the next member needs a comma before it.
    comma: bool,
}

impl Writer {
    fn new(format: Format, out: Vec<u8>) -> Self {
        Self {
            format,
            out,
            comma: false,
        }
    }

    fn open(&mut self) {
        self.out.extend_from_slice(match self.format {
            Format::Xml => b"<xml>",
            Format::Json => b"{",
        });
    }

    fn close(mut self) -> Vec<u8> {
        self.out.extend_from_slice(match self.format {
            Format::Xml => b"</xml>",
            Format::Json => b"}",
        });
        self.out
    }

    fn key(&mut self, name: &str) {
        match self.format {
            Format::Xml => {
                self.out.push(b'<');
                self.out.extend_from_slice(name.as_bytes());
                self.out.push(b'>');
            }
            Format::Json => {
                if self.comma {
                    self.out.push(b',');
                }
                json_string(&mut self.out, name);
                self.out.push(b':');
            }
        }
    }

    fn end_key(&mut self, name: &str) {
        match self.format {
            Format::Xml => {
                self.out.extend_from_slice(b"</");
                self.out.extend_from_slice(name.as_bytes());
                self.out.push(b'>');
            }
            Format::Json => self.comma = true,
        }
    }

    fn text(&mut self, name: &str, value: &str) {
        self.key(name);
        match self.format {
            Format::Xml => cdata(&mut self.out, value),
            Format::Json => json_string(&mut self.out, value),
        }
        self.end_key(name);
    }

    fn optional(&mut self, name: &str, value: &Option<String>) {
        if let Some(value) = value {
            self.text(name, value);
        }
    }

    fn number(&mut self, name: &str, value: u64) {
        self.key(name);
        let mut digits = itoa_buf();
        self.out
            .extend_from_slice(fmt_u64(&mut digits, value).as_bytes());
        self.end_key(name);
    }

    fn begin(&mut self, name: &str) {
        self.key(name);
        if self.format == Format::Json {
            self.out.push(b'{');
            self.comma = false;
        }
    }

    fn end(&mut self, name: &str) {
        if self.format == Format::Json {
            self.out.push(b'}');
        }
        self.end_key(name);
    }

    fn begin_list(&mut self, name: &str) {
        self.key(name);
        if self.format == Format::Json {
            self.out.push(b'[');
            self.comma = false;
        }
    }

    fn end_list(&mut self, name: &str) {
        if self.format == Format::Json {
            self.out.push(b']');
        }
        self.end_key(name);
    }

    fn begin_item(&mut self) {
        match self.format {
            Format::Xml => self.out.extend_from_slice(b"<item>"),
            Format::Json => {
                if self.comma {
                    self.out.push(b',');
                }
                self.out.push(b'{');
                self.comma = false;
            }
        }
    }

    fn end_item(&mut self) {
        match self.format {
            Format::Xml => self.out.extend_from_slice(b"</item>"),
            Format::Json => {
                self.out.push(b'}');
                self.comma = true;
            }
        }
    }
}

/// Writes `<![CDATA[text]]>`, splitting any `]]>` in the text so the section cannot end early.
fn cdata(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"<![CDATA[");
    let mut rest = text;
    while let Some(at) = codec::find_bytes(rest.as_bytes(), b"]]>") {
        // `]]` closes this section, `>` opens the next one.
        out.extend_from_slice(&rest.as_bytes()[..at + 2]);
        out.extend_from_slice(b"]]><![CDATA[");
        rest = &rest[at + 2..];
    }
    out.extend_from_slice(rest.as_bytes());
    out.extend_from_slice(b"]]>");
}

/// Writes a JSON string: quotes, backslashes and control characters escaped, all other UTF-8
/// as is (WeChat's samples and SDKs send CJK unescaped).
fn json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// Formats `n` in decimal into `buf` without allocating.
fn fmt_u64(buf: &mut [u8; 20], mut n: u64) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_sealing_matches_the_public_steps() {
        // The request path encodes into the cipher buffer and base64-encodes into the
        // envelope; it must give the bytes that encode + encrypt_with_prefix + envelope give.
        let key = EncodingAesKey::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").unwrap();
        let long = "长".repeat(300);
        for format in [Format::Xml, Format::Json] {
            for reply in [Reply::text("hi ]]> \"there\""), Reply::text(long.as_str())] {
                let mut random = [0u8; 24];
                random[..16].copy_from_slice(b"0123456789abcdef");
                random[16..].copy_from_slice(&1_234_567_890u64.to_le_bytes());
                let sealer = Sealer::new(format, &key, "wx1234567890abcdef", "tok", 1_714_200_000);
                let buf = reply.write_to(
                    crypto::seal_buffer(0),
                    format,
                    "oUser",
                    "gh_x",
                    1_714_200_000,
                );
                let fast = sealer.seal(buf, random);

                let document = reply.encode(format, "oUser", "gh_x", 1_714_200_000);
                let encrypt = crypto::encrypt_with_prefix(
                    &key,
                    *b"0123456789abcdef",
                    &document,
                    "wx1234567890abcdef",
                );
                let slow = envelope(format, "tok", &encrypt, 1_714_200_000, "1234567890");
                assert_eq!(
                    String::from_utf8(fast).unwrap(),
                    String::from_utf8(slow).unwrap()
                );
            }
        }
    }

    #[test]
    fn cdata_splits_terminators() {
        let mut out = Vec::new();
        cdata(&mut out, "a]]>b]]>");
        assert_eq!(out, b"<![CDATA[a]]]]><![CDATA[>b]]]]><![CDATA[>]]>");
    }

    #[test]
    fn json_escapes_only_what_it_must() {
        let mut out = Vec::new();
        json_string(&mut out, "你\"\\\n\u{1}/");
        assert_eq!(String::from_utf8(out).unwrap(), "\"你\\\"\\\\\\n\\u0001/\"");
    }

    #[test]
    fn formats_numbers() {
        let mut buf = itoa_buf();
        assert_eq!(fmt_u64(&mut buf, 0), "0");
        let mut buf = itoa_buf();
        assert_eq!(fmt_u64(&mut buf, u64::MAX), "18446744073709551615");
    }

    #[test]
    fn every_kind_in_both_formats() {
        let replies = [
            Reply::Image {
                media_id: "m".into(),
            },
            Reply::Voice {
                media_id: "m".into(),
            },
            Reply::Video {
                media_id: "m".into(),
                title: Some("t".into()),
                description: None,
            },
            Reply::Music(Music {
                title: Some("t".into()),
                thumb_media_id: "th".into(),
                ..Music::default()
            }),
            Reply::News(vec![
                Article {
                    title: "a".into(),
                    ..Article::default()
                },
                Article::default(),
            ]),
            Reply::TransferCustomerService {
                kf_account: Some("k@a".into()),
            },
        ];
        for reply in replies {
            let xml = String::from_utf8(reply.encode(Format::Xml, "u", "g", 1)).unwrap();
            let json = String::from_utf8(reply.encode(Format::Json, "u", "g", 1)).unwrap();
            assert!(
                xml.starts_with("<xml><ToUserName><![CDATA[u]]></ToUserName>"),
                "{xml}"
            );
            let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(parsed["MsgType"], reply.msg_type().unwrap(), "{json}");
            assert_eq!(parsed["CreateTime"], 1);
        }
        let news = Reply::News(vec![Article::default(), Article::default()]);
        let json: serde_json::Value =
            serde_json::from_slice(&news.encode(Format::Json, "u", "g", 1)).unwrap();
        assert_eq!(json["ArticleCount"], 2);
        assert_eq!(json["Articles"].as_array().unwrap().len(), 2);
        let music = Reply::Music(Music {
            thumb_media_id: "th".into(),
            ..Music::default()
        });
        assert_eq!(
            String::from_utf8(music.encode(Format::Xml, "u", "g", 1)).unwrap(),
            "<xml><ToUserName><![CDATA[u]]></ToUserName><FromUserName><![CDATA[g]]></FromUserName>\
             <CreateTime>1</CreateTime><MsgType><![CDATA[music]]></MsgType>\
             <Music><ThumbMediaId><![CDATA[th]]></ThumbMediaId></Music></xml>"
        );
    }
}
