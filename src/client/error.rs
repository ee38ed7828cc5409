//! Errors of the customer-service client.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use http::StatusCode;

use crate::store::{BoxError, StoreError};

/// Everything that can go wrong with a call through [`Client`](super::Client).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// WeChat answered with a non-zero `errcode`. See [`ApiError::kind`] for the codes
    /// worth handling.
    Api(ApiError),
    /// The request never got an answer: connection refused, TLS failure, timeout, a body
    /// that broke off, or any error of the transport service.
    Transport(BoxError),
    /// An answer arrived but is not a WeChat JSON answer: an HTML error page, an empty or
    /// oversized body, something that is not JSON, or JSON without the expected fields.
    BadResponse {
        /// The HTTP status of the answer.
        status: StatusCode,
        /// What was wrong with it.
        kind: BadResponseKind,
    },
    /// The [`TokenStore`](super::TokenStore) failed. The client's own calls do not return
    /// it: when the store fails they carry on with a token kept in the process (see
    /// [`Client::access_token`](super::Client::access_token)).
    Store(StoreError),
    /// The request could not be built from the given input (for example a media content
    /// type with control characters). Nothing was sent.
    InvalidInput(&'static str),
}

impl Error {
    /// The API error, if WeChat answered with a non-zero `errcode`.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The kind of API error, if WeChat answered with a non-zero `errcode`.
    pub fn api_kind(&self) -> Option<ApiErrorKind> {
        self.api().map(ApiError::kind)
    }
}

impl Error {
    /// This error for one of several callers sharing it (a failed token fetch is reported
    /// to every caller that waited for it): `Api`, `BadResponse` and `InvalidInput` are
    /// cloned; `Transport` and `Store` get a [`SharedError`] pointing at the original.
    pub(crate) fn share(this: &Arc<Error>) -> Error {
        match &**this {
            Error::Api(e) => Error::Api(e.clone()),
            Error::BadResponse { status, kind } => Error::BadResponse {
                status: *status,
                kind: kind.clone(),
            },
            Error::InvalidInput(what) => Error::InvalidInput(what),
            Error::Transport(_) => Error::Transport(Box::new(SharedError(Arc::clone(this)))),
            Error::Store(_) => Error::Store(StoreError::new(SharedError(Arc::clone(this)))),
        }
    }
}

/// The error inside [`Error::Transport`] or [`Error::Store`] when one failed access-token
/// fetch is reported to several callers: every caller whose
/// [`retry_bound`](super::ClientBuilder::retry_bound) passed while fetches kept failing gets
/// the last one's error.
///
/// It displays as the original error and has the same [`source`](StdError::source);
/// [`get_ref`](Self::get_ref) gives the original, for example to downcast it.
#[derive(Clone)]
pub struct SharedError(Arc<Error>);

impl SharedError {
    /// The original error: the transport's, or the token store's.
    pub fn get_ref(&self) -> &(dyn StdError + 'static) {
        match &*self.0 {
            Error::Transport(e) => &**e,
            Error::Store(e) => e.source().unwrap_or(e),
            other => other,
        }
    }
}

impl fmt::Debug for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedError").field(&self.get_ref()).finish()
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.get_ref(), f)
    }
}

impl StdError for SharedError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.get_ref().source()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api(e) => fmt::Display::fmt(e, f),
            Error::Transport(e) => write!(f, "transport error: {e}"),
            Error::BadResponse { status, kind } => {
                write!(f, "unreadable answer (HTTP {status}): {kind}")
            }
            Error::Store(e) => fmt::Display::fmt(e, f),
            Error::InvalidInput(what) => write!(f, "invalid input: {what}"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Api(e) => Some(e),
            Error::Transport(e) => Some(&**e),
            Error::Store(e) => Some(e),
            Error::BadResponse { .. } | Error::InvalidInput(_) => None,
        }
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

/// What was wrong with an answer that could not be read (see [`Error::BadResponse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadResponseKind {
    /// The body was empty.
    Empty,
    /// The body was larger than the client's limit (in bytes); reading stopped there.
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The body is not a JSON object (an HTML error page, plain text, broken JSON …).
    NotJson {
        /// The start of the body (at most 128 bytes, lossily decoded), for logs.
        snippet: String,
    },
    /// The body is JSON but lacks a field the answer must have (for example
    /// `access_token` in a token answer).
    MissingField(&'static str),
    /// The HTTP status is not a success and the body carries no WeChat `errcode`.
    Status,
}

impl fmt::Display for BadResponseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadResponseKind::Empty => f.write_str("empty body"),
            BadResponseKind::TooLarge { limit } => write!(f, "body larger than {limit} bytes"),
            BadResponseKind::NotJson { snippet } => write!(f, "not JSON: {snippet:?}"),
            BadResponseKind::MissingField(field) => write!(f, "missing field `{field}`"),
            BadResponseKind::Status => f.write_str("unsuccessful status without errcode"),
        }
    }
}

/// WeChat answered with a non-zero `errcode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    code: i64,
    message: String,
}

impl ApiError {
    /// An API error with this `errcode` and `errmsg`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// The raw `errcode`.
    pub fn code(&self) -> i64 {
        self.code
    }

    /// The raw `errmsg` (usually English, often with an `rid` to quote to WeChat support).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The named kind of this code.
    pub fn kind(&self) -> ApiErrorKind {
        ApiErrorKind::from_code(self.code)
    }

    /// Whether the access token was rejected (40001, 40014, 42001). The client already
    /// refreshes the token and retries once on these; seeing one means the retry failed too.
    pub fn is_token_error(&self) -> bool {
        is_token_code(self.code)
    }
}

pub(crate) fn is_token_code(code: i64) -> bool {
    matches!(code, 40001 | 40014 | 42001)
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WeChat API error {}: {}", self.code, self.message)
    }
}

impl StdError for ApiError {}

/// Named WeChat error codes worth handling (docs/protocol.md §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApiErrorKind {
    /// `-1`: system busy, retry later.
    SystemBusy,
    /// `40001`: invalid credential: wrong AppSecret, or an access token that is invalid or
    /// was replaced.
    InvalidCredential,
    /// `40014`: access token malformed or not recognised.
    InvalidAccessToken,
    /// `42001`: access token expired.
    AccessTokenExpired,
    /// `40003`: the openid does not belong to this app. Drop the message.
    InvalidOpenId,
    /// `45015`: reply window closed (48 h since the user's last message, or the user left).
    /// Drop the message.
    WindowClosed,
    /// `45047`: customer-service message quota for this window exhausted. Wait for the
    /// user's next message.
    QuotaExceeded,
    /// `45009`: daily API quota exceeded. Back off.
    DailyLimitExceeded,
    /// `45011`: per-minute API rate exceeded. Back off.
    RateLimited,
    /// `40013`: invalid AppID.
    InvalidAppId,
    /// `40125`: invalid AppSecret.
    InvalidAppSecret,
    /// `40164`: the caller's IP is not in the account's API whitelist.
    IpNotWhitelisted,
    /// `89503`, `89506`, `89507`: the caller's IP awaits (or was refused) an admin's
    /// confirmation.
    IpAwaitingConfirmation,
    /// `48001`: this API is not authorised for the account.
    Unauthorized,
    /// `45072`: typing: bad command.
    TypingBadCommand,
    /// `45080`: typing: no interaction with the user in the last 30 s.
    TypingNoRecentInteraction,
    /// `45081`: typing: already typing.
    AlreadyTyping,
    /// Any other code; see [`ApiError::code`].
    Other,
}

impl ApiErrorKind {
    /// The kind of a raw `errcode` (`Other` for codes without a name).
    pub fn from_code(code: i64) -> Self {
        match code {
            -1 => ApiErrorKind::SystemBusy,
            40001 => ApiErrorKind::InvalidCredential,
            40014 => ApiErrorKind::InvalidAccessToken,
            42001 => ApiErrorKind::AccessTokenExpired,
            40003 => ApiErrorKind::InvalidOpenId,
            45015 => ApiErrorKind::WindowClosed,
            45047 => ApiErrorKind::QuotaExceeded,
            45009 => ApiErrorKind::DailyLimitExceeded,
            45011 => ApiErrorKind::RateLimited,
            40013 => ApiErrorKind::InvalidAppId,
            40125 => ApiErrorKind::InvalidAppSecret,
            40164 => ApiErrorKind::IpNotWhitelisted,
            89503 | 89506 | 89507 => ApiErrorKind::IpAwaitingConfirmation,
            48001 => ApiErrorKind::Unauthorized,
            45072 => ApiErrorKind::TypingBadCommand,
            45080 => ApiErrorKind::TypingNoRecentInteraction,
            45081 => ApiErrorKind::AlreadyTyping,
            _ => ApiErrorKind::Other,
        }
    }
}

/// The client could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The base URL is not an absolute `http`/`https` URL.
    InvalidBaseUrl(String),
    /// The TLS configuration could not be set up.
    Tls(BoxError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidBaseUrl(url) => write!(f, "invalid base URL {url:?}"),
            BuildError::Tls(e) => write!(f, "TLS setup failed: {e}"),
        }
    }
}

impl StdError for BuildError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BuildError::Tls(e) => Some(&**e),
            BuildError::InvalidBaseUrl(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages of `e` and its sources, outermost first.
    fn chain(e: &(dyn StdError + 'static)) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut next = e.source();
        while let Some(e) = next {
            out.push(e.to_string());
            next = e.source();
        }
        out
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connection failed")
        }
    }

    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    fn outer() -> Outer {
        Outer(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        ))
    }

    #[test]
    fn shared_errors_read_like_the_original() {
        let originals = [
            Error::Api(ApiError::new(40125, "invalid appsecret rid: 1")),
            Error::BadResponse {
                status: StatusCode::BAD_GATEWAY,
                kind: BadResponseKind::NotJson {
                    snippet: "<html>".into(),
                },
            },
            Error::InvalidInput("request URI or header"),
            Error::Transport(Box::new(outer())),
            Error::Store(StoreError::new(outer())),
        ];
        for original in originals {
            let expected = chain(&original);
            let debug = format!("{original:?}");
            let shared = Arc::new(original);
            for _ in 0..2 {
                let copy = Error::share(&shared);
                assert_eq!(chain(&copy), expected, "{debug}");
                assert_eq!(
                    std::mem::discriminant(&copy),
                    std::mem::discriminant(&*shared)
                );
            }
        }
    }

    #[test]
    fn the_original_of_a_shared_error_can_be_downcast() {
        for original in [
            Error::Transport(Box::new(outer())),
            Error::Store(StoreError::new(outer())),
        ] {
            let shared = Arc::new(original);
            let copy = Error::share(&shared);
            let inner = match &copy {
                Error::Transport(e) => &**e,
                Error::Store(e) => e.source().unwrap(),
                other => panic!("{other:?}"),
            };
            let inner = inner.downcast_ref::<SharedError>().unwrap();
            assert!(inner.get_ref().downcast_ref::<Outer>().is_some());
            assert!(format!("{copy:?}").contains("TimedOut"));
        }
        let api = Arc::new(Error::Api(ApiError::new(-1, "busy")));
        assert_eq!(Error::share(&api).api().unwrap().code(), -1);
    }
}
