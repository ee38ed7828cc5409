//! Opening a sealed reply: what [`Push::open_reply`](super::Push::open_reply) does.

use std::fmt;

use crate::crypto::{self, EncodingAesKey};
use crate::signature;

/// Why [`Push::open_reply`](super::Push::open_reply) could not open a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenReplyError(&'static str);

impl OpenReplyError {
    pub(super) fn new(reason: &'static str) -> Self {
        Self(reason)
    }
}

impl fmt::Display for OpenReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot open the reply: {}", self.0)
    }
}

impl std::error::Error for OpenReplyError {}

/// The envelope of a sealed reply, XML or JSON.
struct Sealed {
    encrypt: String,
    msg_signature: String,
    timestamp: String,
    nonce: String,
}

impl Sealed {
    fn read(body: &str) -> Option<Self> {
        if body.trim_start().starts_with('{') {
            let value: serde_json::Value = serde_json::from_str(body).ok()?;
            let text = |name: &str| value.get(name)?.as_str().map(str::to_owned);
            Some(Self {
                encrypt: text("Encrypt")?,
                msg_signature: text("MsgSignature")?,
                timestamp: value.get("TimeStamp")?.as_u64()?.to_string(),
                nonce: text("Nonce")?,
            })
        } else {
            let field = |tag: &str| {
                let (_, rest) = body.split_once(&format!("<{tag}>"))?;
                let (inner, _) = rest.split_once(&format!("</{tag}>"))?;
                let inner = inner
                    .strip_prefix("<![CDATA[")
                    .and_then(|text| text.strip_suffix("]]>"))
                    .unwrap_or(inner);
                Some(inner.to_owned())
            };
            Some(Self {
                encrypt: field("Encrypt")?,
                msg_signature: field("MsgSignature")?,
                timestamp: field("TimeStamp")?,
                nonce: field("Nonce")?,
            })
        }
    }
}

/// The clear document of a sealed reply `body`: `MsgSignature` checked with `token`, then
/// decrypted with `key` and checked for `app_id`.
pub(super) fn open(
    token: &str,
    key: &EncodingAesKey,
    app_id: &str,
    body: &[u8],
) -> Result<String, OpenReplyError> {
    let text = std::str::from_utf8(body).map_err(|_| OpenReplyError("not UTF-8"))?;
    let sealed = Sealed::read(text).ok_or(OpenReplyError(
        "not a sealed reply (Encrypt, MsgSignature, TimeStamp, Nonce)",
    ))?;
    if !signature::verify_message(
        &sealed.msg_signature,
        token,
        &sealed.timestamp,
        &sealed.nonce,
        &sealed.encrypt,
    ) {
        return Err(OpenReplyError("MsgSignature does not match"));
    }
    let opened = crypto::decrypt(key, &sealed.encrypt, app_id)
        .map_err(|_| OpenReplyError("Encrypt does not open with the key and AppID"))?;
    Ok(opened.as_str().to_owned())
}
