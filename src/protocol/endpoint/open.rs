//! [`Endpoint::open`]: a push's body, verified, decrypted and decoded.

use super::{Endpoint, Platform, ReplyTo};
use crate::codec::{self, Envelope, Format};
use crate::crypto::{Decrypted, KeyId};
use crate::message::Message;
use crate::query::{CallbackQuery, EncryptType};
use crate::rejection::Rejection;

impl Endpoint {
    /// Opens a push's body: verifies `msg_signature`, decrypts (safe and compatible mode) and
    /// decodes it, `query` being what [`check`](Self::check) verified.
    pub fn open<'a>(
        &self,
        query: CallbackQuery,
        body: &'a [u8],
    ) -> Result<OpenedPush<'a>, Rejection> {
        let (format, envelope) = match self.platform {
            Platform::WeCom { .. } | Platform::WeComRobot => codec::decode_wecom_envelope(body),
            Platform::Classic | Platform::Component => codec::decode_envelope(body),
        }
        .map_err(Rejection::Malformed)?;
        let (message, key, document) = match envelope {
            Envelope::Plain(message) => {
                if query.encrypt_type() == EncryptType::Aes || self.platform != Platform::Classic {
                    return Err(Rejection::MissingEncrypt);
                }
                (message, None, Document::Body(body))
            }
            Envelope::Encrypted(encrypt) => {
                self.verify_msg_signature(&query, &encrypt)?;
                let keys = self
                    .keys
                    .as_ref()
                    .ok_or(Rejection::EncryptionNotConfigured)?;
                let opened = keys.decrypt(&encrypt).map_err(Rejection::Decrypt)?;
                let plain = opened.as_bytes();
                let message = match self.platform {
                    Platform::Classic | Platform::Component => codec::decode_message(format, plain),
                    // WeCom's envelope and document formats are sniffed separately.
                    Platform::WeCom { .. } => {
                        Format::sniff(plain).and_then(|f| codec::decode_message(f, plain))
                    }
                    Platform::WeComRobot => Message::from_robot_json(plain),
                }
                .map_err(Rejection::Malformed)?;
                (message, Some(opened.key()), Document::Decrypted(opened))
            }
        };
        let nonce = match self.platform {
            Platform::WeComRobot => query.nonce(),
            _ => "",
        };
        let reply_to = ReplyTo::new(&message, format, key, nonce);
        let info = PushInfo { query, format, key };
        Ok(OpenedPush {
            message,
            info,
            reply_to,
            document,
        })
    }
}

/// What the endpoint verified about a push. The layer's handler finds it in the request's
/// extensions:
///
/// ```
/// use http::Request;
/// use wechat_push::{Message, PushInfo};
///
/// fn sender(req: &Request<Message>) -> Option<&str> {
///     req.extensions().get::<PushInfo>()?.query().openid()
/// }
/// ```
#[derive(Clone, Debug)]
pub struct PushInfo {
    query: CallbackQuery,
    format: Format,
    key: Option<KeyId>,
}

impl PushInfo {
    /// What a queued push was verified with, rebuilt by the queue's workers.
    #[cfg(feature = "tokio")]
    pub(crate) fn rebuilt(query: CallbackQuery, format: Format, key: Option<KeyId>) -> Self {
        PushInfo { query, format, key }
    }

    /// The verified query: `openid`, `timestamp`, `nonce`, signatures.
    pub fn query(&self) -> &CallbackQuery {
        &self.query
    }

    /// The format the push came in (and the reply goes out in).
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the push was encrypted (safe or compatible mode).
    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }

    /// The key that opened an encrypted push.
    pub fn key(&self) -> Option<KeyId> {
        self.key
    }
}

/// A push that passed every check of [`Endpoint::open`].
#[derive(Debug)]
pub struct OpenedPush<'a> {
    message: Message,
    info: PushInfo,
    reply_to: ReplyTo,
    document: Document<'a>,
}

/// The push's document: the body itself, or what it decrypted to.
#[derive(Debug)]
enum Document<'a> {
    Body(&'a [u8]),
    Decrypted(Decrypted),
}

impl<'a> OpenedPush<'a> {
    /// The decoded push.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// What was verified about it.
    pub fn info(&self) -> &PushInfo {
        &self.info
    }

    /// Where its reply goes, for [`Endpoint::answer`].
    pub fn reply_to(&self) -> &ReplyTo {
        &self.reply_to
    }

    /// The push's XML or JSON document: the body of a plaintext push, the decrypted document
    /// of an encrypted one. A retry of a push carries the same document.
    pub fn document(&self) -> &[u8] {
        match &self.document {
            Document::Body(body) => body,
            Document::Decrypted(opened) => opened.as_bytes(),
        }
    }

    /// The message, what was verified, and where the reply goes.
    pub fn into_parts(self) -> (Message, PushInfo, ReplyTo) {
        (self.message, self.info, self.reply_to)
    }
}
