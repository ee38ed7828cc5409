//! Sans-IO decoding of push bodies: bytes → [`Format`] → [`Envelope`] → [`Message`].
//!
//! The format is sniffed from the first non-whitespace byte (`<` → XML, `{` →
//! JSON, after an optional UTF-8 byte-order mark), never from `Content-Type`
//! (WeChat has been seen labelling JSON pushes `text/xml`).
//!
//! ```
//! use wechat_push::codec::{decode_envelope, Envelope, Format};
//!
//! let body = br#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1482048670,
//!                 "MsgType":"text","Content":"hi","MsgId":1234567890123456}"#;
//! let (format, envelope) = decode_envelope(body)?;
//! assert_eq!(format, Format::Json);
//! let Envelope::Plain(msg) = envelope else { panic!("not encrypted") };
//! assert_eq!(msg.msg_type(), "text");
//! assert_eq!(msg.msg_id(), Some(1234567890123456));
//! # Ok::<(), wechat_push::codec::DecodeError>(())
//! ```
//!
//! Decoding rules shared by both formats:
//!
//! * Values are kept exactly as carried: nothing is trimmed (except around
//!   numbers), XML line endings are not rewritten.
//! * Integers (`CreateTime`, `MsgId`, `ErrorCode`, …) are accepted as JSON
//!   numbers or strings and never pass through `f64`. A JSON integer that does
//!   not fit in 64 bits is rejected ([`DecodeErrorKind::NumberOutOfRange`]).
//!   Non-integer JSON numbers are kept as the shortest text that reads back as
//!   the same `f64` (`1.50` → `"1.5"`).
//! * Repeated XML elements and JSON arrays become repeated entries in
//!   [`Fields`]. A header field (`ToUserName`, `FromUserName`, `CreateTime`,
//!   `MsgType`, `Event`, `MsgId`, `Encrypt`), a field a check reads (WeCom's
//!   `AgentID`, a third-party platform event's `AppId`) or a modelled field that
//!   appears twice is an error ([`DecodeErrorKind::DuplicateField`]); other repeated
//!   names (including duplicate JSON keys) are kept as repeated entries.
//! * Nesting is limited to [`MAX_DEPTH`] levels.
//! * XML: DOCTYPE is rejected (no DTD, no entity expansion); only the five
//!   predefined entities and character references are resolved; the root must
//!   be `<xml>`; attributes are ignored; text mixed with child elements is an
//!   error. JSON: `null` becomes empty text, booleans `"true"`/`"false"`.

use std::borrow::Cow;

use crate::message::{Fields, Message, Value};

mod error;
mod json;
mod xml;

pub use error::{DecodeError, DecodeErrorKind};
/// Substring search tuned for short haystacks (used by the reply writer as well).
pub(crate) use xml::find as find_bytes;

/// The deepest nesting accepted (the root `<xml>` or top-level JSON object is level 1).
pub const MAX_DEPTH: usize = 32;

/// The wire format of a push body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// XML (`<xml>…</xml>`), the default and the only format for official accounts.
    Xml,
    /// JSON (a top-level object), available to mini programs.
    Json,
}

impl Format {
    /// Tells XML from JSON by the first non-whitespace byte, after an optional
    /// UTF-8 byte-order mark. A UTF-16 byte-order mark, an empty body or any
    /// other first byte is an error.
    ///
    /// ```
    /// use wechat_push::Format;
    /// assert_eq!(Format::sniff(b"\n <xml/>").unwrap(), Format::Xml);
    /// assert_eq!(Format::sniff(b"\xEF\xBB\xBF{}").unwrap(), Format::Json);
    /// assert!(Format::sniff(b"success").is_err());
    /// ```
    pub fn sniff(body: &[u8]) -> Result<Format, DecodeError> {
        if body.starts_with(&[0xFE, 0xFF]) || body.starts_with(&[0xFF, 0xFE]) {
            return Err(DecodeError::new(DecodeErrorKind::NotUtf8)
                .with_detail("UTF-16 byte-order mark; only UTF-8 is supported"));
        }
        match strip_bom(body).iter().find(|b| !is_ws(**b)) {
            Some(b'<') => Ok(Format::Xml),
            Some(b'{') => Ok(Format::Json),
            Some(_) => Err(DecodeError::new(DecodeErrorKind::UnknownFormat)),
            None => Err(DecodeError::new(DecodeErrorKind::Empty)),
        }
    }

    /// The `Content-Type` for a reply in this format: `application/xml` or `application/json`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => "application/xml",
            Format::Json => "application/json",
        }
    }
}

/// A decoded push body before decryption.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // boxing would cost an allocation per push
pub enum Envelope<'a> {
    /// A plaintext push (plaintext mode).
    Plain(Message),
    /// The `Encrypt` value, unescaped (safe and compatible modes). Borrowed
    /// from the body when no unescaping was needed. In compatible mode the
    /// clear copy of the message is ignored: it is not authenticated.
    Encrypted(Cow<'a, str>),
}

/// Sniffs the format and decodes a body in one parse: an `Encrypt` field makes
/// it [`Envelope::Encrypted`] (nothing else is checked then), otherwise it must
/// be a complete [`Message`].
pub fn decode_envelope(body: &[u8]) -> Result<(Format, Envelope<'_>), DecodeError> {
    let format = Format::sniff(body)?;
    let mut doc = parse(format, body)?;
    let envelope = match doc.take("Encrypt")? {
        Some(Raw::Str(s)) => Envelope::Encrypted(s),
        Some(_) => return Err(DecodeError::invalid("Encrypt", "expected text")),
        None => Envelope::Plain(Message::from_doc(doc)?),
    };
    Ok((format, envelope))
}

/// Decodes a WeCom push body: it must carry `Encrypt` (XML, JSON) or `encrypt` (JSON app
/// callbacks and robots, docs/platforms.md §1.10); WeCom never sends plaintext pushes. The other
/// envelope fields (`ToUserName`, `AgentID`) are not signed and are ignored.
pub fn decode_wecom_envelope(body: &[u8]) -> Result<(Format, Envelope<'_>), DecodeError> {
    let format = Format::sniff(body)?;
    let mut doc = parse(format, body)?;
    let encrypt = match (doc.take("Encrypt")?, doc.take("encrypt")?) {
        (Some(raw), None) | (None, Some(raw)) => raw,
        (Some(_), Some(_)) => return Err(DecodeError::duplicate("Encrypt")),
        (None, None) => return Err(DecodeError::missing("Encrypt")),
    };
    match encrypt {
        Raw::Str(s) => Ok((format, Envelope::Encrypted(s))),
        _ => Err(DecodeError::invalid("Encrypt", "expected text")),
    }
}

/// Decodes a complete message in a known format (e.g. a decrypted plaintext).
/// A leading UTF-8 byte-order mark is skipped.
pub fn decode_message(format: Format, doc: &[u8]) -> Result<Message, DecodeError> {
    Message::from_doc(parse(format, doc)?)
}

/// Fuzzing hook, not API: whether the XML fast path agrees with the full tokenizer on `doc`
/// (see `src/codec/xml/flat.rs`). Only built under `--cfg fuzzing` (cargo-fuzz sets it).
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz_xml_fast_path_agrees(doc: &[u8]) -> bool {
    xml::fast_path_agrees(doc)
}

pub(crate) fn parse(format: Format, doc: &[u8]) -> Result<Doc<'_>, DecodeError> {
    match format {
        Format::Xml => xml::parse(doc),
        Format::Json => json::parse(doc),
    }
}

pub(crate) fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A top-level value, borrowed from the body where possible.
#[derive(Debug, PartialEq)]
pub(crate) enum Raw<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    I64(i64),
    F64(f64),
    Node(Fields),
}

impl<'a> Raw<'a> {
    pub(crate) fn from_value(v: Value) -> Raw<'static> {
        match v {
            Value::Text(s) => Raw::Str(Cow::Owned(s)),
            Value::Node(f) => Raw::Node(f),
        }
    }

    pub(crate) fn into_value(self) -> Value {
        match self {
            Raw::Str(s) => Value::Text(s.into_owned()),
            Raw::U64(n) => Value::Text(n.to_string()),
            Raw::I64(n) => Value::Text(n.to_string()),
            Raw::F64(n) => Value::Text(n.to_string()),
            Raw::Node(f) => Value::Node(f),
        }
    }

    /// Text (numbers are accepted and rendered as their digits).
    pub(crate) fn into_text(self, field: &'static str) -> Result<Cow<'a, str>, DecodeError> {
        match self {
            Raw::Str(s) => Ok(s),
            Raw::Node(_) => Err(DecodeError::invalid(field, "expected text")),
            other => match other.into_value() {
                Value::Text(s) => Ok(Cow::Owned(s)),
                Value::Node(_) => Err(DecodeError::invalid(field, "expected text")),
            },
        }
    }

    pub(crate) fn into_string(self, field: &'static str) -> Result<String, DecodeError> {
        self.into_text(field).map(Cow::into_owned)
    }

    pub(crate) fn to_u64(&self, field: &'static str) -> Result<u64, DecodeError> {
        match self {
            Raw::Str(s) => parse_u64(s.trim_matches(is_ws_char))
                .ok_or_else(|| DecodeError::invalid(field, "expected an unsigned 64-bit integer")),
            Raw::U64(n) => Ok(*n),
            _ => Err(DecodeError::invalid(
                field,
                "expected an unsigned 64-bit integer",
            )),
        }
    }

    pub(crate) fn to_u32(&self, field: &'static str) -> Result<u32, DecodeError> {
        u32::try_from(self.to_u64(field)?)
            .map_err(|_| DecodeError::invalid(field, "expected an unsigned 32-bit integer"))
    }

    pub(crate) fn to_i64(&self, field: &'static str) -> Result<i64, DecodeError> {
        let bad = || DecodeError::invalid(field, "expected a 64-bit integer");
        match self {
            Raw::Str(s) => {
                let s = s.trim_matches(is_ws_char);
                match s.strip_prefix('-') {
                    Some(digits) => parse_u64(digits)
                        .and_then(|n| 0i64.checked_sub_unsigned(n))
                        .ok_or_else(bad),
                    None => parse_u64(s)
                        .and_then(|n| i64::try_from(n).ok())
                        .ok_or_else(bad),
                }
            }
            Raw::U64(n) => i64::try_from(*n).map_err(|_| bad()),
            Raw::I64(n) => Ok(*n),
            _ => Err(bad()),
        }
    }

    pub(crate) fn to_f64(&self, field: &'static str) -> Result<f64, DecodeError> {
        let bad = || DecodeError::invalid(field, "expected a number");
        let v = match self {
            Raw::Str(s) => {
                let s = s.trim_matches(is_ws_char);
                // Only plain decimal notation: no "inf", "NaN", no sign-only strings.
                if !s
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
                {
                    return Err(bad());
                }
                s.parse::<f64>().map_err(|_| bad())?
            }
            Raw::U64(n) => *n as f64,
            Raw::I64(n) => *n as f64,
            Raw::F64(n) => *n,
            Raw::Node(_) => return Err(bad()),
        };
        if v.is_finite() {
            Ok(v)
        } else {
            Err(bad())
        }
    }

    /// A nested element or object (empty text counts as an empty node).
    pub(crate) fn into_node(self, field: &'static str) -> Result<Fields, DecodeError> {
        match self {
            Raw::Node(f) => Ok(f),
            Raw::Str(s) if s.bytes().all(is_ws) => Ok(Fields::new()),
            _ => Err(DecodeError::invalid(field, "expected nested fields")),
        }
    }
}

fn is_ws_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Strict decimal digits (no sign, no whitespace), checked for overflow.
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// The fields of a document (or of one nested node) in order, before typing.
///
/// Typing takes fields out by name; a taken field leaves a `None` in its place, so taking
/// never shifts the rest and what is left keeps its document order.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Doc<'a> {
    entries: Vec<(Cow<'a, str>, Option<Raw<'a>>)>,
}

impl<'a> Doc<'a> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Doc {
            entries: Vec::with_capacity(n),
        }
    }

    pub(crate) fn from_fields(fields: Fields) -> Doc<'static> {
        Doc {
            entries: fields
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), Some(Raw::from_value(v))))
                .collect(),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.iter().filter(|(_, v)| v.is_some()).count()
    }

    pub(crate) fn push(&mut self, name: Cow<'a, str>, value: Raw<'a>) {
        self.entries.push((name, Some(value)));
    }

    /// The index of the only field still in place named `name`.
    fn find_unique(&self, name: &'static str) -> Result<Option<usize>, DecodeError> {
        let mut found = None;
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if v.is_some() && k == name {
                if found.is_some() {
                    return Err(DecodeError::duplicate(name));
                }
                found = Some(i);
            }
        }
        Ok(found)
    }

    /// Refuses a document with several fields named `name` still in place, leaving them
    /// there: for an unmodelled field a check reads (`AgentID`), which must not depend on
    /// which of two copies it reads.
    pub(crate) fn ensure_unique(&self, name: &'static str) -> Result<(), DecodeError> {
        self.find_unique(name).map(drop)
    }

    /// Removes and returns the only value named `name` (several → error).
    pub(crate) fn take(&mut self, name: &'static str) -> Result<Option<Raw<'a>>, DecodeError> {
        Ok(self
            .find_unique(name)?
            .and_then(|i| self.entries.get_mut(i))
            .and_then(|(_, v)| v.take()))
    }

    /// Like [`take`](Self::take), but leaves the value in place (to stay an
    /// extra field) unless `f` accepts it.
    pub(crate) fn take_if<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&Raw<'a>) -> Option<T>,
    ) -> Result<Option<T>, DecodeError> {
        let Some(i) = self.find_unique(name)? else {
            return Ok(None);
        };
        let Some((_, slot)) = self.entries.get_mut(i) else {
            return Ok(None);
        };
        let Some(t) = slot.as_ref().and_then(f) else {
            return Ok(None);
        };
        *slot = None;
        Ok(Some(t))
    }

    /// Removes and returns every value named `name`, in order.
    pub(crate) fn take_all(&mut self, name: &str) -> Vec<Raw<'a>> {
        self.entries
            .iter_mut()
            .filter(|(k, _)| k == name)
            .filter_map(|(_, v)| v.take())
            .collect()
    }

    pub(crate) fn required(&mut self, name: &'static str) -> Result<Raw<'a>, DecodeError> {
        self.take(name)?.ok_or_else(|| DecodeError::missing(name))
    }

    pub(crate) fn string(&mut self, name: &'static str) -> Result<String, DecodeError> {
        self.required(name)?.into_string(name)
    }

    pub(crate) fn opt_string(&mut self, name: &'static str) -> Result<Option<String>, DecodeError> {
        self.take(name)?.map(|r| r.into_string(name)).transpose()
    }

    pub(crate) fn into_fields(self) -> Fields {
        self.entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.into_owned(), v.into_value())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_formats() {
        assert_eq!(Format::sniff(b"<xml/>"), Ok(Format::Xml));
        assert_eq!(Format::sniff(b" \r\n\t{}"), Ok(Format::Json));
        assert_eq!(Format::sniff(b"\xEF\xBB\xBF <xml/>"), Ok(Format::Xml));
        let e = Format::sniff(b"\xFF\xFE<\0x\0").unwrap_err();
        assert_eq!(e.kind(), DecodeErrorKind::NotUtf8);
        assert_eq!(
            Format::sniff(b"\xFE\xFF\0<").unwrap_err().kind(),
            DecodeErrorKind::NotUtf8
        );
        assert_eq!(
            Format::sniff(b"  ").unwrap_err().kind(),
            DecodeErrorKind::Empty
        );
        assert_eq!(
            Format::sniff(b"").unwrap_err().kind(),
            DecodeErrorKind::Empty
        );
        assert_eq!(
            Format::sniff(b"[1]").unwrap_err().kind(),
            DecodeErrorKind::UnknownFormat
        );
        assert_eq!(Format::Xml.content_type(), "application/xml");
        assert_eq!(Format::Json.content_type(), "application/json");
    }

    #[test]
    fn integers() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64("+1"), None);
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("1a"), None);
        let r = Raw::Str(Cow::Borrowed(" -9223372036854775808 "));
        assert_eq!(r.to_i64("x"), Ok(i64::MIN));
        assert!(Raw::Str(Cow::Borrowed("-9223372036854775809"))
            .to_i64("x")
            .is_err());
        assert!(Raw::Str(Cow::Borrowed("inf")).to_f64("x").is_err());
        assert!(Raw::Str(Cow::Borrowed("1e999")).to_f64("x").is_err());
        assert_eq!(
            Raw::Str(Cow::Borrowed("23.134521")).to_f64("x"),
            Ok(23.134521)
        );
        assert!(Raw::F64(1.5).to_u64("x").is_err());
    }

    #[test]
    fn error_display() {
        assert_eq!(
            DecodeError::xml(DecodeErrorKind::Doctype).to_string(),
            "XML: DOCTYPE is not allowed"
        );
        assert_eq!(
            DecodeError::json(DecodeErrorKind::NotAnObject).to_string(),
            "JSON: expected an object at the top level"
        );
        assert_eq!(
            DecodeError::missing("ToUserName").to_string(),
            "missing ToUserName"
        );
    }
}
