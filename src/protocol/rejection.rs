//! Why the layer answered a request itself instead of calling the handler.
//!
//! Every failure the layer detects becomes a response, never a service error, so an
//! `Infallible` handler gives an `Infallible` stack (what axum needs). The response carries a
//! short `text/plain` reason, and the [`Rejection`] itself in its extensions, so outer layers
//! (tracing, metrics) can see why:
//!
//! ```
//! # use http::Response;
//! # use wechat_push::Rejection;
//! fn why<B>(response: &Response<B>) -> Option<&Rejection> {
//!     response.extensions().get::<Rejection>()
//! }
//! ```
//!
//! | status | rejections |
//! | --- | --- |
//! | 400 Bad Request | [`Query`](Rejection::Query), [`MissingEchostr`](Rejection::MissingEchostr), [`BodyRead`](Rejection::BodyRead), [`Malformed`](Rejection::Malformed), [`MissingEncrypt`](Rejection::MissingEncrypt), [`EncryptionNotConfigured`](Rejection::EncryptionNotConfigured), [`Decrypt`](Rejection::Decrypt) |
//! | 401 Unauthorized | [`MissingSignature`](Rejection::MissingSignature), [`BadSignature`](Rejection::BadSignature), [`MissingMsgSignature`](Rejection::MissingMsgSignature), [`BadMsgSignature`](Rejection::BadMsgSignature), [`StaleTimestamp`](Rejection::StaleTimestamp), [`EncryptionRequired`](Rejection::EncryptionRequired), [`ReplayedSignature`](Rejection::ReplayedSignature) |
//! | 403 Forbidden | [`WrongRecipient`](Rejection::WrongRecipient), [`WrongAgent`](Rejection::WrongAgent) |
//! | 404 Not Found | [`UnknownApp`](Rejection::UnknownApp) |
//! | 405 Method Not Allowed (with `Allow: GET, POST`) | [`MethodNotAllowed`](Rejection::MethodNotAllowed) |
//! | 413 Content Too Large | [`BodyTooLarge`](Rejection::BodyTooLarge) |
//! | 500 Internal Server Error | [`Random`](Rejection::Random), [`NoRuntime`](Rejection::NoRuntime), [`UnsupportedReply`](Rejection::UnsupportedReply) |
//! | 503 Service Unavailable | [`Store`](Rejection::Store), [`TicketStore`](Rejection::TicketStore), [`QueueFull`](Rejection::QueueFull) |

use std::fmt;
use std::time::Duration;

use http::StatusCode;

use crate::codec::DecodeError;
use crate::crypto::DecryptError;
use crate::query::QueryError;

/// A request the layer refused, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// Neither GET nor POST.
    MethodNotAllowed,
    /// `signature`, `timestamp` or `nonce` is absent (the parameter named).
    MissingSignature(&'static str),
    /// The query string is malformed: a repeated, badly encoded or ill-formed parameter.
    Query(QueryError),
    /// `signature` does not match.
    BadSignature,
    /// The signed `timestamp` is further from now than the configured tolerance.
    StaleTimestamp {
        /// The timestamp received, in Unix seconds.
        timestamp: u64,
        /// The tolerance in force.
        tolerance: Duration,
    },
    /// A GET without `echostr`.
    MissingEchostr,
    /// A plaintext push while encryption is required.
    EncryptionRequired,
    /// An encrypted push, but no `EncodingAESKey` is configured.
    EncryptionNotConfigured,
    /// `encrypt_type=aes` but the body has no `Encrypt`.
    MissingEncrypt,
    /// The body has `Encrypt` but the query has no `msg_signature`.
    MissingMsgSignature,
    /// `msg_signature` does not match the `Encrypt` received.
    BadMsgSignature,
    /// The body is over the limit (in bytes).
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The body could not be read.
    BodyRead,
    /// The body (or the decrypted message) is not a well-formed push.
    Malformed(DecodeError),
    /// `Encrypt` did not decrypt, or decrypted to another AppID.
    Decrypt(DecryptError),
    /// The query was seen before with another body: a replay (see
    /// [`replay_guard`](crate::WechatLayer::replay_guard)).
    ReplayedSignature,
    /// The replay guard's store failed.
    Store,
    /// The ticket store (see [`ticket_store`](crate::WechatLayer::ticket_store)) failed to
    /// keep a `component_verify_ticket`: answered 503 so that WeChat pushes it again.
    TicketStore,
    /// Queue mode (see [`queue`](crate::WechatLayer::queue)): the queue is full, the push was
    /// not queued; answered 503 so that WeChat delivers it again.
    QueueFull,
    /// The operating system's random source failed while sealing a reply.
    Random,
    /// The handler's reply does not exist on this endpoint's platform (a music reply on
    /// WeCom, a news reply to a WeCom robot): a bug in the handler, not in the request.
    UnsupportedReply,
    /// A multi-app layer: the request names no configured app (see
    /// [`apps`](crate::apps)). Never answered with another app's keys.
    UnknownApp,
    /// The push verified with the chosen app's keys but is addressed (its decrypted
    /// `ToUserName`) to another account than the app's
    /// [`recipient`](crate::apps::App::recipient): a push for one Open Platform authoriser
    /// sent to another's path.
    WrongRecipient,
    /// The push verified with the chosen app's keys but its decrypted `AgentID` is not the
    /// app's [`agent`](crate::apps::App::agent), or it has none: a push for one WeCom agent
    /// sent to another agent's path (agents of one corp share its CorpID, and may share a
    /// Token and key).
    WrongAgent,
    /// The retry options ([`dedupe`](crate::WechatLayer::dedupe),
    /// [`ack_deadline`](crate::WechatLayer::ack_deadline)) are on, but the push is not being
    /// served on a Tokio runtime, which they need (so does queue mode).
    NoRuntime,
}

impl Rejection {
    /// The HTTP status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::MissingSignature(_)
            | Self::BadSignature
            | Self::StaleTimestamp { .. }
            | Self::EncryptionRequired
            | Self::MissingMsgSignature
            | Self::BadMsgSignature
            | Self::ReplayedSignature => StatusCode::UNAUTHORIZED,
            Self::Store | Self::TicketStore | Self::QueueFull => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnknownApp => StatusCode::NOT_FOUND,
            Self::WrongRecipient | Self::WrongAgent => StatusCode::FORBIDDEN,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Query(_)
            | Self::MissingEchostr
            | Self::EncryptionNotConfigured
            | Self::MissingEncrypt
            | Self::BodyRead
            | Self::Malformed(_)
            | Self::Decrypt(_) => StatusCode::BAD_REQUEST,
            Self::Random | Self::NoRuntime | Self::UnsupportedReply => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The reason, when it does not depend on the request (answered without allocating).
    pub(crate) fn fixed_reason(&self) -> Option<&'static str> {
        Some(match self {
            Self::MethodNotAllowed => "method not allowed: use GET or POST",
            Self::BadSignature => "bad signature",
            Self::MissingEchostr => "missing echostr",
            Self::EncryptionRequired => "plaintext push refused: this endpoint requires safe mode",
            Self::EncryptionNotConfigured => "encrypted push, but no EncodingAESKey is configured",
            Self::MissingEncrypt => "encrypt_type=aes but the body has no Encrypt",
            Self::MissingMsgSignature => "missing msg_signature for Encrypt",
            Self::BadMsgSignature => "bad msg_signature",
            Self::BodyRead => "could not read the body",
            Self::ReplayedSignature => "replayed signature",
            Self::Store => "replay store unavailable",
            Self::TicketStore => "ticket store unavailable",
            Self::QueueFull => "queue full: the push was not queued, deliver it again later",
            Self::Random => "could not seal the reply",
            Self::UnsupportedReply => "the handler's reply does not exist on this platform",
            Self::NoRuntime => "dedupe and the ack deadline need a Tokio runtime",
            Self::UnknownApp => "unknown app: no app is configured under the name this URL gives",
            Self::WrongRecipient => "push addressed to another account than the app this URL names",
            Self::WrongAgent => "push not for the WeCom agent of the app this URL names",
            Self::MissingSignature(_)
            | Self::Query(_)
            | Self::StaleTimestamp { .. }
            | Self::BodyTooLarge { .. }
            | Self::Malformed(_)
            | Self::Decrypt(_) => return None,
        })
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingSignature(p) => write!(f, "missing {p}: the request is not signed"),
            Self::Query(e) => write!(f, "bad query: {e}"),
            Self::StaleTimestamp {
                timestamp,
                tolerance,
            } => write!(
                f,
                "stale timestamp {timestamp}: more than {} s from now",
                tolerance.as_secs()
            ),
            Self::BodyTooLarge { limit } => write!(f, "body larger than {limit} bytes"),
            Self::Malformed(e) => write!(f, "malformed push: {e}"),
            Self::Decrypt(e) => write!(f, "cannot decrypt: {e}"),
            fixed => f.write_str(fixed.fixed_reason().unwrap_or_default()),
        }
    }
}

impl std::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Query(e) => Some(e),
            Self::Malformed(e) => Some(e),
            Self::Decrypt(e) => Some(e),
            _ => None,
        }
    }
}
