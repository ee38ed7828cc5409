//! The callback's query string: `signature`, `timestamp`, `nonce`, and the optional
//! `openid`, `encrypt_type`, `msg_signature` and `echostr`.
//!
//! Values are percent-decoded as RFC 3986 says, and nothing more: a `+` stays a `+` (a form
//! decoder would turn it into a space and corrupt base64). Parameters this crate does not know
//! are ignored; a known one that is repeated, badly encoded or malformed is an error, because
//! two different values for `signature` or `timestamp` can only be an attack or a bug.
//!
//! ```
//! use wechat_push::query::{CallbackQuery, EncryptType};
//!
//! let q = CallbackQuery::parse(
//!     "signature=6c5c811b55cc85e0e1b54100749188c20beb3f5d&timestamp=1714112445&nonce=415670741\
//!      &openid=o9AgO5Kd5ggOC-bXrbNODIiE3bGY&encrypt_type=aes&msg_signature=046e02f8204d34f8ba5fa3b1db94908f3df2e9b3",
//! )?;
//! assert_eq!(q.timestamp(), "1714112445");
//! assert_eq!(q.timestamp_secs(), 1714112445);
//! assert_eq!(q.encrypt_type(), EncryptType::Aes);
//! assert_eq!(q.openid(), Some("o9AgO5Kd5ggOC-bXrbNODIiE3bGY"));
//! # Ok::<(), wechat_push::query::QueryError>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use crate::protocol::hex::nibble;

/// The parameters WeChat puts on a callback URL.
///
/// The decoded values live back to back in one buffer (one allocation per request).
#[derive(Clone)]
pub struct CallbackQuery {
    buf: String,
    signature: Range<usize>,
    timestamp: Range<usize>,
    timestamp_secs: u64,
    nonce: Range<usize>,
    openid: Option<Range<usize>>,
    encrypt_type: EncryptType,
    msg_signature: Option<Range<usize>>,
    echostr: Option<Range<usize>>,
}

/// The `encrypt_type` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncryptType {
    /// Absent, or `raw`: a plaintext push.
    Plain,
    /// `aes`: the body carries `Encrypt` (safe or compatible mode).
    Aes,
}

impl CallbackQuery {
    /// Parses the query string (without the leading `?`).
    ///
    /// `signature`, `timestamp` and `nonce` are required; `timestamp` must be decimal seconds.
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        Self::parse_for(query, Signed::Plain)
    }

    /// Parses a query whose required signature is `signed` names: `signature` (mini programs,
    /// official accounts), `msg_signature` (WeCom, which sends no `signature`), or either
    /// (third-party platforms, where `msg_signature` is what counts; see `Endpoint::check`).
    pub(crate) fn parse_for(query: &str, signed: Signed) -> Result<Self, QueryError> {
        // WeChat's queries carry no escapes; one scan tells whether any piece needs decoding.
        let escaped = memchr::memchr(b'%', query.as_bytes()).is_some();
        let mut buf = String::with_capacity(query.len());
        let mut signature = None;
        let mut timestamp = None;
        let mut nonce = None;
        let mut openid = None;
        let mut encrypt_type = None;
        let mut msg_signature = None;
        let mut echostr = None;
        for pair in pairs(query) {
            let (raw_name, raw_value) = match memchr::memchr(b'=', pair.as_bytes()) {
                Some(at) => (pair.get(..at), pair.get(at + 1..)),
                None => (Some(pair), Some("")),
            };
            let (Some(raw_name), Some(raw_value)) = (raw_name, raw_value) else {
                continue;
            };
            let name = if escaped {
                percent_decode(raw_name).ok_or(QueryError::Encoding("parameter name"))?
            } else {
                Cow::Borrowed(raw_name)
            };
            let (slot, param) = match name.as_ref() {
                // WeCom signs with `msg_signature` only: there `signature` is read by no check,
                // so, like any such parameter, it is skipped (a repeat of it is no ambiguity).
                "signature" if signed != Signed::Message => (&mut signature, Param::Signature),
                "timestamp" => (&mut timestamp, Param::Timestamp),
                "nonce" => (&mut nonce, Param::Nonce),
                "openid" => (&mut openid, Param::Openid),
                "encrypt_type" => (&mut encrypt_type, Param::EncryptType),
                "msg_signature" => (&mut msg_signature, Param::MsgSignature),
                "echostr" => (&mut echostr, Param::Echostr),
                _ => continue,
            };
            if slot.is_some() {
                return Err(QueryError::Repeated(param.name()));
            }
            let start = buf.len();
            if escaped {
                buf.push_str(&percent_decode(raw_value).ok_or(QueryError::Encoding(param.name()))?);
            } else {
                buf.push_str(raw_value);
            }
            *slot = Some(start..buf.len());
        }
        let value = |range: &Range<usize>| value_in(&buf, range);

        let timestamp = timestamp.ok_or(QueryError::Missing("timestamp"))?;
        let timestamp_secs =
            parse_secs(value(&timestamp)).ok_or(QueryError::Malformed("timestamp"))?;
        let encrypt_type = match encrypt_type.as_ref().map(value) {
            None | Some("raw") | Some("") => EncryptType::Plain,
            Some("aes") => EncryptType::Aes,
            Some(_) => return Err(QueryError::Malformed("encrypt_type")),
        };
        let signature = match signed {
            Signed::Plain => signature.ok_or(QueryError::Missing("signature"))?,
            Signed::Message | Signed::Either => {
                if signed == Signed::Message && msg_signature.is_none() {
                    return Err(QueryError::Missing("msg_signature"));
                }
                // Absent: an empty range, so `signature()` is "".
                signature.unwrap_or(0..0)
            }
        };
        Ok(Self {
            signature,
            timestamp,
            timestamp_secs,
            nonce: nonce.ok_or(QueryError::Missing("nonce"))?,
            openid,
            encrypt_type,
            msg_signature,
            echostr,
            buf,
        })
    }

    fn value(&self, range: &Range<usize>) -> &str {
        value_in(&self.buf, range)
    }

    /// `signature`: SHA-1 over token, timestamp and nonce, as hex. Empty when the query was
    /// accepted without one: WeCom sends only `msg_signature`.
    pub fn signature(&self) -> &str {
        self.value(&self.signature)
    }

    /// `timestamp` exactly as received (the signature covers this text).
    pub fn timestamp(&self) -> &str {
        self.value(&self.timestamp)
    }

    /// `timestamp` as Unix seconds.
    pub fn timestamp_secs(&self) -> u64 {
        self.timestamp_secs
    }

    /// `nonce`.
    pub fn nonce(&self) -> &str {
        self.value(&self.nonce)
    }

    /// `openid`: the sender, when WeChat sends it (not in plaintext mini-program pushes).
    pub fn openid(&self) -> Option<&str> {
        self.openid.as_ref().map(|r| self.value(r))
    }

    /// `encrypt_type`.
    pub fn encrypt_type(&self) -> EncryptType {
        self.encrypt_type
    }

    /// `msg_signature`: SHA-1 over token, timestamp, nonce and `Encrypt`, on encrypted pushes.
    pub fn msg_signature(&self) -> Option<&str> {
        self.msg_signature.as_ref().map(|r| self.value(r))
    }

    /// `echostr`: present on the GET handshake only.
    pub fn echostr(&self) -> Option<&str> {
        self.echostr.as_ref().map(|r| self.value(r))
    }
}

/// Equal when every parameter is (their order in the URL does not matter).
impl PartialEq for CallbackQuery {
    fn eq(&self, other: &Self) -> bool {
        self.signature() == other.signature()
            && self.timestamp() == other.timestamp()
            && self.nonce() == other.nonce()
            && self.openid() == other.openid()
            && self.encrypt_type == other.encrypt_type
            && self.msg_signature() == other.msg_signature()
            && self.echostr() == other.echostr()
    }
}

impl Eq for CallbackQuery {}

impl fmt::Debug for CallbackQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Nothing here is secret: signatures are public digests.
        f.debug_struct("CallbackQuery")
            .field("signature", &self.signature())
            .field("timestamp", &self.timestamp())
            .field("nonce", &self.nonce())
            .field("openid", &self.openid())
            .field("encrypt_type", &self.encrypt_type)
            .field("msg_signature", &self.msg_signature())
            .field("echostr", &self.echostr())
            .finish()
    }
}

/// Which signature a query must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signed {
    /// `signature` (mini programs, official accounts).
    Plain,
    /// `msg_signature` (WeCom).
    Message,
    /// Neither is required here (third-party platforms: the endpoint requires `msg_signature`
    /// on pushes and `signature` on a handshake).
    Either,
}

#[derive(Clone, Copy)]
enum Param {
    Signature,
    Timestamp,
    Nonce,
    Openid,
    EncryptType,
    MsgSignature,
    Echostr,
}

impl Param {
    fn name(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Timestamp => "timestamp",
            Self::Nonce => "nonce",
            Self::Openid => "openid",
            Self::EncryptType => "encrypt_type",
            Self::MsgSignature => "msg_signature",
            Self::Echostr => "echostr",
        }
    }
}

/// Why a callback query string was refused. Each names the parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryError {
    /// A required parameter is absent.
    Missing(&'static str),
    /// A parameter appears more than once.
    Repeated(&'static str),
    /// A value has a bad `%` escape or is not UTF-8 once decoded.
    Encoding(&'static str),
    /// A value has the wrong shape (a timestamp that is not decimal seconds, an unknown
    /// `encrypt_type`).
    Malformed(&'static str),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(p) => write!(f, "missing query parameter {p}"),
            Self::Repeated(p) => write!(f, "query parameter {p} appears more than once"),
            Self::Encoding(p) => write!(f, "query parameter {p} is badly percent-encoded"),
            Self::Malformed(p) => write!(f, "query parameter {p} is malformed"),
        }
    }
}

impl std::error::Error for QueryError {}

/// Decimal seconds: 1 to 19 ASCII digits (no sign, no spaces), within `u64`.
fn parse_secs(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A decoded value: `range` of `buf`. Ranges come from `parse`, over that very buffer, so the
/// fallback is never used.
fn value_in<'b>(buf: &'b str, range: &Range<usize>) -> &'b str {
    buf.get(range.clone()).unwrap_or_default()
}

/// The non-empty `&`-separated pieces of a query string. (`str::split` with a `char` pattern
/// scans with the generic byte-at-a-time `memchr`, which showed up in profiles; these are
/// found with the memchr crate's vectorised one.)
fn pairs(query: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(query);
    std::iter::from_fn(move || loop {
        let current = rest?;
        let (pair, next) = match memchr::memchr(b'&', current.as_bytes()) {
            // `&` is ASCII, so both sides are on character boundaries.
            Some(at) => (current.get(..at), current.get(at + 1..)),
            None => (Some(current), None),
        };
        rest = next;
        match pair {
            Some(pair) if !pair.is_empty() => return Some(pair),
            _ => {}
        }
    })
}

/// RFC 3986 percent-decoding; `None` on a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if memchr::memchr(b'%', s.as_bytes()).is_none() {
        return Some(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|&c| nibble(c))?;
            let lo = bytes.get(i + 2).and_then(|&c| nibble(c))?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "signature=abc&timestamp=1714036504&nonce=1514711492";

    #[test]
    fn decodes_percent_but_not_plus() {
        let q = CallbackQuery::parse(&format!("{BASE}&echostr=a%2Bb%2F%3D+c")).unwrap();
        assert_eq!(q.echostr(), Some("a+b/=+c"));
        let q = CallbackQuery::parse("%73ignature=x&timestamp=1&nonce=%E4%BD%A0").unwrap();
        assert_eq!(q.signature(), "x");
        assert_eq!(q.nonce(), "你");
    }

    #[test]
    fn a_wecom_query_skips_signature_even_repeated() {
        let q = "signature=a&signature=b&timestamp=1&nonce=2&msg_signature=x";
        let parsed = CallbackQuery::parse_for(q, Signed::Message).unwrap();
        assert_eq!(parsed.signature(), "");
        assert_eq!(parsed.msg_signature(), Some("x"));
        // Where `signature` is read, a repeat is still refused.
        for signed in [Signed::Plain, Signed::Either] {
            assert_eq!(
                CallbackQuery::parse_for(q, signed).unwrap_err(),
                QueryError::Repeated("signature")
            );
        }
    }

    #[test]
    fn typed_errors() {
        let cases = [
            ("timestamp=1&nonce=2", QueryError::Missing("signature")),
            ("signature=a&nonce=2", QueryError::Missing("timestamp")),
            ("signature=a&timestamp=1", QueryError::Missing("nonce")),
            (
                "signature=a&signature=a&timestamp=1&nonce=2",
                QueryError::Repeated("signature"),
            ),
            (
                "signature=a&timestamp=1&timestamp=1&nonce=2",
                QueryError::Repeated("timestamp"),
            ),
            (
                "signature=a&timestamp=1&nonce=2&nonce=2",
                QueryError::Repeated("nonce"),
            ),
            (
                "signature=%zz&timestamp=1&nonce=2",
                QueryError::Encoding("signature"),
            ),
            (
                "signature=%f&timestamp=1&nonce=2",
                QueryError::Encoding("signature"),
            ),
            (
                "signature=%ff&timestamp=1&nonce=2",
                QueryError::Encoding("signature"),
            ),
            (
                "signature=a&timestamp=-1&nonce=2",
                QueryError::Malformed("timestamp"),
            ),
            (
                "signature=a&timestamp=1e9&nonce=2",
                QueryError::Malformed("timestamp"),
            ),
            (
                "signature=a&timestamp=&nonce=2",
                QueryError::Malformed("timestamp"),
            ),
            (
                "signature=a&timestamp=99999999999999999999&nonce=2",
                QueryError::Malformed("timestamp"),
            ),
            (
                "signature=a&timestamp=1&nonce=2&encrypt_type=des",
                QueryError::Malformed("encrypt_type"),
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(
                CallbackQuery::parse(query).unwrap_err(),
                expected,
                "{query}"
            );
        }
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        let q = CallbackQuery::parse(&format!("{BASE}&x=1&x=2&&foo&encrypt_type=raw")).unwrap();
        assert_eq!(q.encrypt_type(), EncryptType::Plain);
        assert_eq!(q.openid(), None);
    }
}
