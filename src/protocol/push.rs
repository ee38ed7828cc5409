//! The checks between HTTP and the protocol core: the query before the body is read, the body
//! once it is, and the reply on the way out. Plain functions over bytes; the service and its
//! future only move data between them and HTTP.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

use crate::body::ResponseBody;
use crate::codec::{self, Envelope, Format};
use crate::crypto::KeyId;
use crate::message::Message;
use crate::middleware::Config;
use crate::query::{CallbackQuery, EncryptType, QueryError};
use crate::rejection::Rejection;
use crate::reply::{self, Reply, Sealer};
use crate::signature;

/// What the layer verified about a push. The inner service finds it in the request's
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

/// A request whose query passed every check.
pub(crate) enum Checked {
    /// A GET handshake: answer this `echostr`.
    Handshake(Bytes),
    /// A POST whose body is still to be read.
    Push(CallbackQuery),
}

/// Checks method, signature and freshness: everything that can be decided before reading.
pub(crate) fn check_request(
    config: &Config,
    method: &Method,
    query: Option<&str>,
) -> Result<Checked, Rejection> {
    let is_get = method == Method::GET;
    if !is_get && method != Method::POST {
        return Err(Rejection::MethodNotAllowed);
    }
    let query = CallbackQuery::parse(query.unwrap_or("")).map_err(|e| match e {
        QueryError::Missing(p) => Rejection::MissingSignature(p),
        e => Rejection::Query(e),
    })?;
    if !signature::verify(
        query.signature(),
        &config.token,
        query.timestamp(),
        query.nonce(),
    ) {
        return Err(Rejection::BadSignature);
    }
    if let Some(tolerance) = config.tolerance {
        if config.now().abs_diff(query.timestamp_secs()) > tolerance.as_secs() {
            return Err(Rejection::StaleTimestamp {
                timestamp: query.timestamp_secs(),
                tolerance,
            });
        }
    }
    if is_get {
        return match query.echostr() {
            Some(echo) => Ok(Checked::Handshake(Bytes::copy_from_slice(echo.as_bytes()))),
            None => Err(Rejection::MissingEchostr),
        };
    }
    match query.encrypt_type() {
        EncryptType::Aes if config.keys.is_none() => Err(Rejection::EncryptionNotConfigured),
        EncryptType::Plain if config.require_encryption => Err(Rejection::EncryptionRequired),
        _ => Ok(Checked::Push(query)),
    }
}

/// Where a reply goes and how it is sealed.
#[derive(Debug)]
pub(crate) struct ReplyTo {
    /// The push's `FromUserName` (the reply's addressee), then its `ToUserName` (the
    /// reply's sender), in one allocation.
    names: String,
    /// Where the second name starts in `names`.
    split: usize,
    format: Format,
    key: Option<KeyId>,
}

impl ReplyTo {
    fn addressee(&self) -> &str {
        self.names.get(..self.split).unwrap_or_default()
    }

    fn sender(&self) -> &str {
        self.names.get(self.split..).unwrap_or_default()
    }
}

/// A push that passed every check: the message, what the handler learns about it, where its
/// reply goes, and its dedupe key when dedupe is on.
pub(crate) type OpenedPush = (Message, PushInfo, ReplyTo, Option<String>);

/// Verifies `msg_signature`, decrypts and decodes a collected body.
pub(crate) fn open(
    config: &Config,
    query: CallbackQuery,
    body: &[u8],
) -> Result<OpenedPush, Rejection> {
    let (format, envelope) = codec::decode_envelope(body).map_err(Rejection::Malformed)?;
    let (message, key, dedupe_key) = match envelope {
        Envelope::Plain(message) => {
            if query.encrypt_type() == EncryptType::Aes {
                return Err(Rejection::MissingEncrypt);
            }
            let dedupe_key = dedupe_key(config, &message, body);
            (message, None, dedupe_key)
        }
        Envelope::Encrypted(encrypt) => {
            let msg_signature = query
                .msg_signature()
                .ok_or(Rejection::MissingMsgSignature)?;
            if !signature::verify_message(
                msg_signature,
                &config.token,
                query.timestamp(),
                query.nonce(),
                &encrypt,
            ) {
                return Err(Rejection::BadMsgSignature);
            }
            let keys = config
                .keys
                .as_ref()
                .ok_or(Rejection::EncryptionNotConfigured)?;
            let opened = keys.decrypt(&encrypt).map_err(Rejection::Decrypt)?;
            let message =
                codec::decode_message(format, opened.as_bytes()).map_err(Rejection::Malformed)?;
            let dedupe_key = dedupe_key(config, &message, opened.as_bytes());
            (message, Some(opened.key()), dedupe_key)
        }
    };
    let (to_user, from_user) = (message.from_user(), message.to_user());
    let mut names = String::with_capacity(to_user.len() + from_user.len());
    names.push_str(to_user);
    names.push_str(from_user);
    let reply_to = ReplyTo {
        names,
        split: to_user.len(),
        format,
        key,
    };
    let info = PushInfo { query, format, key };
    Ok((message, info, reply_to, dedupe_key))
}

/// The push's dedupe key, keyed by its (decrypted) `document`, when dedupe is on.
fn dedupe_key(config: &Config, message: &Message, document: &[u8]) -> Option<String> {
    #[cfg(feature = "tokio")]
    if config.dedupe_keys {
        return Some(crate::dedupe::dedupe_key(message, document));
    }
    let _ = (config, message, document);
    None
}

/// Answers the handshake with `echostr`, verbatim.
pub(crate) fn handshake(echostr: Bytes) -> Response<ResponseBody> {
    text_response(StatusCode::OK, echostr)
}

/// Turns the handler's reply into the response: the clear document, or the sealed envelope
/// when the push was encrypted; acknowledgements always in clear.
pub(crate) fn answer(config: &Config, to: &ReplyTo, reply: &Reply) -> Response<ResponseBody> {
    if let Some(ack) = reply.ack_body() {
        return text_response(StatusCode::OK, Bytes::from_static(ack));
    }
    let now = config.now();
    let body = match (to.key, &config.keys) {
        (Some(id), Some(keys)) => {
            let sealer = Sealer::new(to.format, keys.key(id), keys.app_id(), &config.token, now);
            match reply::seal_reply(reply, to.addressee(), to.sender(), sealer) {
                Ok(sealed) => sealed,
                Err(_) => return Rejection::Random.into_response(),
            }
        }
        _ => reply.encode(to.format, to.addressee(), to.sender(), now),
    };
    let mut response = Response::new(ResponseBody::new(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(to.format.content_type()),
    );
    response
}

fn text_response(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
