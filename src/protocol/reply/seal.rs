//! Sealing: a reply document encrypted, signed and wrapped in the `Encrypt` envelope for an
//! encrypted push (docs/protocol.md §4.5).

use base64_simd::STANDARD;

use crate::codec::Format;
use crate::crypto::{self, EncodingAesKey, RandomError};
use crate::random;
use crate::rejection::Rejection;
use crate::signature::{self, Signature};

use super::write::{cdata, fmt_u64, itoa_buf, json_string};
use super::Reply;

/// Seals a clear reply document for an encrypted push: encrypts it under a fresh random prefix,
/// signs it, and wraps it in the `Encrypt` / `MsgSignature` / `TimeStamp` / `Nonce` envelope
/// (docs/protocol.md §4.5), with a fresh random `Nonce` of one to ten decimal digits.
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

/// Seals a reply to a WeCom intelligent robot (docs/platforms.md §1.10): the JSON document
/// (a [`Reply::Text`] becomes `{"msgtype":"text","text":{"content":…}}`, a
/// [`Reply::Document`] is taken as it is) encrypted with an empty receive id, in the robot's
/// envelope `{"encrypt","msgsignature","timestamp","nonce"}`: lower-case keys, the timestamp
/// a JSON number, and `nonce` the request's own.
pub(crate) fn seal_robot_reply(
    reply: &Reply,
    key: &EncodingAesKey,
    token: &str,
    timestamp: u64,
    nonce: &str,
) -> Result<Vec<u8>, Rejection> {
    let mut buf = crypto::seal_buffer(512);
    match reply {
        Reply::Text { content } => {
            buf.extend_from_slice(br#"{"msgtype":"text","text":{"content":"#);
            json_string(&mut buf, content.as_bytes());
            buf.extend_from_slice(b"}}");
        }
        Reply::Document(document) => buf.extend_from_slice(document),
        _ => return Err(Rejection::UnsupportedReply),
    }
    let prefix = random::os_random::<16>().map_err(|_| Rejection::Random)?;
    let cipher = crypto::seal_in_place(key, prefix, &mut buf, "");
    let encrypt = STANDARD.encode_type::<Vec<u8>>(cipher);
    let mut digits = itoa_buf();
    let ts = fmt_u64(&mut digits, timestamp);
    let sig =
        signature::sign_message_bytes(token.as_bytes(), ts, nonce.as_bytes(), &encrypt).to_hex();
    let mut out = Vec::with_capacity(encrypt.len() + 128);
    out.extend_from_slice(br#"{"encrypt":"#);
    json_string(&mut out, &encrypt);
    out.extend_from_slice(br#","msgsignature":"#);
    json_string(&mut out, &sig);
    out.extend_from_slice(br#","timestamp":"#);
    out.extend_from_slice(ts);
    out.extend_from_slice(br#","nonce":"#);
    json_string(&mut out, nonce.as_bytes());
    out.push(b'}');
    Ok(out)
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
    pub(super) fn seal(&self, mut buf: Vec<u8>, random: [u8; 24]) -> Vec<u8> {
        let mut prefix = [0u8; 16];
        let mut nonce = [0u8; 8];
        prefix.copy_from_slice(&random[..16]);
        nonce.copy_from_slice(&random[16..]);
        // At most ten decimal digits (fewer when the number is smaller, as WeChat's own are).
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
        let sig = signature::sign_message_bytes(self.token.as_bytes(), ts, nonce, &out[start..]);
        out.extend_from_slice(close);
        envelope_tail(&mut out, self.format, &sig, ts, nonce);
        out
    }
}

/// Writes the encrypted-reply envelope around an `Encrypt` value, signing it with `token`.
///
/// The output depends only on the arguments: given the `Encrypt` values of the test
/// vectors' replies, it reproduces their response bodies byte for byte.
pub fn envelope(
    format: Format,
    token: &str,
    encrypt: &str,
    timestamp: u64,
    nonce: &str,
) -> Vec<u8> {
    let mut digits = itoa_buf();
    let ts = fmt_u64(&mut digits, timestamp);
    let sig =
        signature::sign_message_bytes(token.as_bytes(), ts, nonce.as_bytes(), encrypt.as_bytes());
    let mut out = Vec::with_capacity(encrypt.len() + 160);
    match format {
        Format::Xml => {
            out.extend_from_slice(b"<xml>\n<Encrypt>");
            cdata(&mut out, encrypt.as_bytes());
            out.extend_from_slice(b"</Encrypt>");
        }
        Format::Json => {
            out.extend_from_slice(b"{\"Encrypt\":");
            json_string(&mut out, encrypt.as_bytes());
        }
    }
    envelope_tail(&mut out, format, &sig, ts, nonce.as_bytes());
    out
}

/// The envelope after `Encrypt`: signature, timestamp, nonce, end of document.
fn envelope_tail(out: &mut Vec<u8>, format: Format, sig: &Signature, ts: &[u8], nonce: &[u8]) {
    let sig = &sig.to_hex();
    match format {
        Format::Xml => {
            out.extend_from_slice(b"\n<MsgSignature>");
            cdata(out, sig);
            out.extend_from_slice(b"</MsgSignature>\n<TimeStamp>");
            out.extend_from_slice(ts);
            out.extend_from_slice(b"</TimeStamp>\n<Nonce>");
            cdata(out, nonce);
            out.extend_from_slice(b"</Nonce>\n</xml>");
        }
        Format::Json => {
            out.extend_from_slice(b",\"MsgSignature\":");
            json_string(out, sig);
            out.extend_from_slice(b",\"TimeStamp\":");
            out.extend_from_slice(ts);
            out.extend_from_slice(b",\"Nonce\":");
            json_string(out, nonce);
            out.push(b'}');
        }
    }
}
