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

    // -----------------------------------------------------------------------------------
    // Whole reply documents against PROTOCOL.md §6, field by field.
    // -----------------------------------------------------------------------------------

    /// One XML element of a reply document, as §6 writes them: child elements, or one value,
    /// written as CDATA (strings) or as bare text (numbers).
    #[derive(Debug, PartialEq)]
    struct El {
        name: String,
        value: Val,
    }

    #[derive(Debug, PartialEq)]
    enum Val {
        Cdata(String),
        Bare(String),
        Children(Vec<El>),
    }

    fn string(name: &str, value: &str) -> El {
        El {
            name: name.into(),
            value: Val::Cdata(value.into()),
        }
    }

    fn number(name: &str, value: &str) -> El {
        El {
            name: name.into(),
            value: Val::Bare(value.into()),
        }
    }

    fn parent(name: &str, children: Vec<El>) -> El {
        El {
            name: name.into(),
            value: Val::Children(children),
        }
    }

    /// A strict reader for reply documents, independent of the crate's codec: elements
    /// without attributes, holding child elements (whitespace between them is skipped, as in
    /// §6's indented samples), one or more adjacent CDATA sections (joined, so a split `]]>`
    /// reads back whole), or bare text without markup or entities. Anything else panics.
    fn parse_xml(doc: &str) -> El {
        fn element(rest: &mut &str) -> El {
            *rest = rest.trim_start();
            let open = rest.strip_prefix('<').expect("an element");
            let end = open.find('>').expect("a closed start tag");
            let name = &open[..end];
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()),
                "element name {name:?}"
            );
            *rest = &open[end + 1..];
            let value = if rest.starts_with("<![CDATA[") {
                let mut text = String::new();
                while let Some(section) = rest.strip_prefix("<![CDATA[") {
                    let end = section.find("]]>").expect("a closed CDATA section");
                    text.push_str(&section[..end]);
                    *rest = &section[end + 3..];
                }
                Val::Cdata(text)
            } else if rest.trim_start().starts_with("</") {
                Val::Bare(String::new())
            } else if rest.trim_start().starts_with('<') {
                let mut children = Vec::new();
                while !rest.trim_start().starts_with("</") {
                    children.push(element(rest));
                }
                *rest = rest.trim_start();
                Val::Children(children)
            } else {
                let end = rest.find('<').expect("text followed by an end tag");
                let text = &rest[..end];
                assert!(!text.contains(['&', '>']), "bare text {text:?}");
                *rest = &rest[end..];
                Val::Bare(text.into())
            };
            let close = format!("</{name}>");
            *rest = rest
                .strip_prefix(close.as_str())
                .unwrap_or_else(|| panic!("expected {close} at {rest:?}"));
            El {
                name: name.into(),
                value,
            }
        }
        let mut rest = doc;
        let root = element(&mut rest);
        assert!(rest.trim().is_empty(), "after the root: {rest:?}");
        assert_eq!(root.name, "xml", "§6: the root element is xml");
        root
    }

    /// The reply header of §6: `ToUserName`, `FromUserName`, `CreateTime`, `MsgType`.
    fn header(to: &str, from: &str, time: &str, msg_type: &str) -> Vec<El> {
        vec![
            string("ToUserName", to),
            string("FromUserName", from),
            number("CreateTime", time),
            string("MsgType", msg_type),
        ]
    }

    /// `reply` written in XML and in JSON by the layer's encoder, for the user `toUser` of the
    /// account `fromUser` at 12345678 (the values of §6's samples).
    fn encode_both(reply: &Reply) -> (El, serde_json::Value) {
        let xml = reply.encode(Format::Xml, "toUser", "fromUser", 12345678);
        let json = reply.encode(Format::Json, "toUser", "fromUser", 12345678);
        let xml = String::from_utf8(xml).unwrap();
        let json = serde_json::from_slice(&json)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
        (parse_xml(&xml), json)
    }

    /// Checks `reply` against the §6 document `body` (the elements after the header), and
    /// against `json`, the same document in JSON.
    ///
    /// §6 specifies these passive replies in XML only (official accounts answer XML), and
    /// gives JSON only for `transfer_customer_service`; §9 takes "reply in the configured
    /// format". For JSON the crate writes the same tree: an element with children becomes an
    /// object, `CreateTime` and `ArticleCount` numbers, every other value a string, and the
    /// `item`s of `Articles` an array of objects. The JSON halves pin that mapping.
    fn check(reply: &Reply, msg_type: &str, body: Vec<El>, json: serde_json::Value) {
        let mut expected = header("toUser", "fromUser", "12345678", msg_type);
        expected.extend(body);
        let (xml, actual_json) = encode_both(reply);
        assert_eq!(xml, parent("xml", expected), "{reply:?} in XML");
        let mut expected_json = serde_json::json!({
            "ToUserName": "toUser",
            "FromUserName": "fromUser",
            "CreateTime": 12345678,
            "MsgType": msg_type,
        });
        expected_json
            .as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        assert_eq!(actual_json, expected_json, "{reply:?} in JSON");
    }

    /// Text with what each format must escape or split: `]]>`, quotes, a backslash, a
    /// newline, `<&>`, CJK.
    const AWKWARD: &str = "a ]]> b \"q\" \\ <&> 你好\nend";

    /// §6's news sample, verbatim.
    const SECTION_6_NEWS: &str = "<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>12345678</CreateTime>
  <MsgType><![CDATA[news]]></MsgType>
  <ArticleCount>1</ArticleCount>
  <Articles>
    <item>
      <Title><![CDATA[title1]]></Title>
      <Description><![CDATA[description1]]></Description>
      <PicUrl><![CDATA[picurl]]></PicUrl>
      <Url><![CDATA[url]]></Url>
    </item>
  </Articles>
</xml>";

    /// §6's `transfer_customer_service` sample, verbatim, and its JSON form.
    const SECTION_6_TRANSFER: &str = "<xml>
  <ToUserName><![CDATA[touser]]></ToUserName>
  <FromUserName><![CDATA[fromuser]]></FromUserName>
  <CreateTime>1399197672</CreateTime>
  <MsgType><![CDATA[transfer_customer_service]]></MsgType>
</xml>";
    const SECTION_6_TRANSFER_JSON: &str = r#"{"ToUserName":"<openid>","FromUserName":"<gh_id>","CreateTime":1399197672,"MsgType":"transfer_customer_service"}"#;

    #[test]
    fn the_reader_reads_section_6_samples_and_refuses_what_it_does_not_know() {
        let news = parse_xml(SECTION_6_NEWS);
        let Val::Children(children) = &news.value else {
            panic!("{news:?}")
        };
        assert_eq!(children.len(), 6);
        assert_eq!(children[4], number("ArticleCount", "1"));
        let split = parse_xml("<xml><A><![CDATA[x]]]]><![CDATA[>y]]></A></xml>");
        assert_eq!(split, parent("xml", vec![string("A", "x]]>y")]));
        for bad in [
            "<xml><A>x</B></xml>",
            "<xml><A a=\"1\">x</A></xml>",
            "<xml><A>&amp;</A></xml>",
            "<xml><A><![CDATA[x]]>y</A></xml>",
            "<root></root>",
            "<xml></xml>trailing",
        ] {
            let read = std::panic::catch_unwind(|| parse_xml(bad));
            assert!(read.is_err(), "{bad} was read as {read:?}");
        }
    }

    #[test]
    fn image_reply_is_section_6() {
        check(
            &Reply::image("MEDIA_ID ]]>"),
            "image",
            vec![parent("Image", vec![string("MediaId", "MEDIA_ID ]]>")])],
            serde_json::json!({"Image": {"MediaId": "MEDIA_ID ]]>"}}),
        );
    }

    #[test]
    fn voice_reply_is_section_6() {
        check(
            &Reply::Voice {
                media_id: "VOICE_ID".into(),
            },
            "voice",
            vec![parent("Voice", vec![string("MediaId", "VOICE_ID")])],
            serde_json::json!({"Voice": {"MediaId": "VOICE_ID"}}),
        );
    }

    #[test]
    fn video_reply_is_section_6_with_and_without_its_optional_fields() {
        check(
            &Reply::Video {
                media_id: "VIDEO_ID".into(),
                title: Some(AWKWARD.into()),
                description: Some("description".into()),
            },
            "video",
            vec![parent(
                "Video",
                vec![
                    string("MediaId", "VIDEO_ID"),
                    string("Title", AWKWARD),
                    string("Description", "description"),
                ],
            )],
            serde_json::json!({"Video": {
                "MediaId": "VIDEO_ID", "Title": AWKWARD, "Description": "description"
            }}),
        );
        // Title and Description are optional: absent, not empty.
        check(
            &Reply::Video {
                media_id: "VIDEO_ID".into(),
                title: None,
                description: None,
            },
            "video",
            vec![parent("Video", vec![string("MediaId", "VIDEO_ID")])],
            serde_json::json!({"Video": {"MediaId": "VIDEO_ID"}}),
        );
    }

    #[test]
    fn music_reply_is_section_6_with_and_without_its_optional_fields() {
        check(
            &Reply::Music(Music {
                title: Some("title".into()),
                description: Some(AWKWARD.into()),
                music_url: Some("https://example.com/m.mp3?a=1&b=2".into()),
                hq_music_url: Some("https://example.com/hq.mp3".into()),
                thumb_media_id: "THUMB_ID".into(),
            }),
            "music",
            vec![parent(
                "Music",
                vec![
                    string("Title", "title"),
                    string("Description", AWKWARD),
                    string("MusicUrl", "https://example.com/m.mp3?a=1&b=2"),
                    string("HQMusicUrl", "https://example.com/hq.mp3"),
                    string("ThumbMediaId", "THUMB_ID"),
                ],
            )],
            serde_json::json!({"Music": {
                "Title": "title",
                "Description": AWKWARD,
                "MusicUrl": "https://example.com/m.mp3?a=1&b=2",
                "HQMusicUrl": "https://example.com/hq.mp3",
                "ThumbMediaId": "THUMB_ID"
            }}),
        );
        // Only ThumbMediaId is required.
        check(
            &Reply::Music(Music {
                thumb_media_id: "THUMB_ID".into(),
                ..Music::default()
            }),
            "music",
            vec![parent("Music", vec![string("ThumbMediaId", "THUMB_ID")])],
            serde_json::json!({"Music": {"ThumbMediaId": "THUMB_ID"}}),
        );
    }

    #[test]
    fn news_reply_is_section_6() {
        // §6's own sample, element for element.
        let one = Reply::News(vec![Article {
            title: "title1".into(),
            description: "description1".into(),
            pic_url: "picurl".into(),
            url: "url".into(),
        }]);
        assert_eq!(encode_both(&one).0, parse_xml(SECTION_6_NEWS));

        // More than one article (allowed outside answers to user messages): one item each,
        // in order, counted by ArticleCount.
        let article = |n: u32| Article {
            title: format!("title{n}"),
            description: if n == 2 {
                AWKWARD.into()
            } else {
                format!("description{n}")
            },
            pic_url: format!("https://example.com/{n}.png"),
            url: format!("https://example.com/{n}?x=1&y=2"),
        };
        let item = |n: u32| {
            let a = article(n);
            parent(
                "item",
                vec![
                    string("Title", &a.title),
                    string("Description", &a.description),
                    string("PicUrl", &a.pic_url),
                    string("Url", &a.url),
                ],
            )
        };
        let json_item = |n: u32| {
            let a = article(n);
            serde_json::json!({
                "Title": a.title, "Description": a.description, "PicUrl": a.pic_url, "Url": a.url
            })
        };
        check(
            &Reply::News(vec![article(1), article(2)]),
            "news",
            vec![
                number("ArticleCount", "2"),
                parent("Articles", vec![item(1), item(2)]),
            ],
            serde_json::json!({"ArticleCount": 2, "Articles": [json_item(1), json_item(2)]}),
        );
    }

    #[test]
    fn transfer_customer_service_reply_is_section_6() {
        // §6's samples, XML and JSON, exactly: nothing after MsgType.
        let transfer = Reply::transfer_customer_service();
        let xml = transfer.encode(Format::Xml, "touser", "fromuser", 1399197672);
        assert_eq!(
            parse_xml(std::str::from_utf8(&xml).unwrap()),
            parse_xml(SECTION_6_TRANSFER)
        );
        let json = transfer.encode(Format::Json, "<openid>", "<gh_id>", 1399197672);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&json).unwrap(),
            serde_json::from_str::<serde_json::Value>(SECTION_6_TRANSFER_JSON).unwrap()
        );
        check(
            &transfer,
            "transfer_customer_service",
            vec![],
            serde_json::json!({}),
        );

        // To one agent: the older multi-agent docs' TransInfo/KfAccount.
        check(
            &Reply::TransferCustomerService {
                kf_account: Some("test1@test".into()),
            },
            "transfer_customer_service",
            vec![parent("TransInfo", vec![string("KfAccount", "test1@test")])],
            serde_json::json!({"TransInfo": {"KfAccount": "test1@test"}}),
        );
    }
}
