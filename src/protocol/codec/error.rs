//! [`DecodeError`]: why a body could not be decoded.

use std::fmt;

use super::Format;

/// Why a push body could not be decoded into a [`Message`](crate::Message).
///
/// `Display` gives a short reason meant for a log line or a 400 response body,
/// e.g. `XML: DOCTYPE is not allowed` or `missing ToUserName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    format: Option<Format>,
    detail: Option<Box<str>>,
}

/// The reason behind a [`DecodeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The body is empty or only whitespace.
    Empty,
    /// The first non-whitespace byte is neither `<` (XML) nor `{` (JSON).
    UnknownFormat,
    /// The body is not UTF-8 (this includes UTF-16 with a byte-order mark).
    NotUtf8,
    /// The document is not well-formed (truncated, mismatched tags, bad escape, …).
    Syntax,
    /// XML: a `<!DOCTYPE …>` declaration (no DTDs, no entity expansion).
    Doctype,
    /// XML: the root element is not `<xml>`.
    Root,
    /// Elements or objects nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    TooDeep,
    /// XML: something other than whitespace, comments or processing
    /// instructions after `</xml>`.
    TrailingContent,
    /// JSON: the top level is not an object.
    NotAnObject,
    /// JSON: an integer that does not fit in 64 bits (it would lose digits).
    NumberOutOfRange,
    /// A required field is absent.
    MissingField(&'static str),
    /// A field that must appear once appears several times.
    DuplicateField(&'static str),
    /// A field has the wrong shape or is not a valid number.
    InvalidField(&'static str),
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind) -> Self {
        DecodeError {
            kind,
            format: None,
            detail: None,
        }
    }

    pub(crate) fn in_format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<Box<str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub(crate) fn xml(kind: DecodeErrorKind) -> Self {
        Self::new(kind).in_format(Format::Xml)
    }

    pub(crate) fn json(kind: DecodeErrorKind) -> Self {
        Self::new(kind).in_format(Format::Json)
    }

    pub(crate) fn missing(field: &'static str) -> Self {
        Self::new(DecodeErrorKind::MissingField(field))
    }

    pub(crate) fn duplicate(field: &'static str) -> Self {
        Self::new(DecodeErrorKind::DuplicateField(field))
    }

    pub(crate) fn invalid(field: &'static str, why: &'static str) -> Self {
        Self::new(DecodeErrorKind::InvalidField(field)).with_detail(why)
    }

    /// The reason.
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// The format being decoded when the error occurred, when known.
    pub fn format(&self) -> Option<Format> {
        self.format
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeErrorKind as K;
        match self.format {
            Some(Format::Xml) => f.write_str("XML: ")?,
            Some(Format::Json) => f.write_str("JSON: ")?,
            None => {}
        }
        match self.kind {
            K::Empty => f.write_str("body is empty")?,
            K::UnknownFormat => {
                f.write_str("body is neither XML nor JSON (expected `<` or `{`)")?
            }
            K::NotUtf8 => f.write_str("body is not UTF-8")?,
            K::Syntax => f.write_str("syntax error")?,
            K::Doctype => f.write_str("DOCTYPE is not allowed")?,
            K::Root => f.write_str("the root element must be <xml>")?,
            K::TooDeep => write!(f, "nested deeper than {} levels", super::MAX_DEPTH)?,
            K::TrailingContent => f.write_str("unexpected content after the root element")?,
            K::NotAnObject => f.write_str("expected an object at the top level")?,
            K::NumberOutOfRange => f.write_str("integer does not fit in 64 bits")?,
            K::MissingField(n) => write!(f, "missing {n}")?,
            K::DuplicateField(n) => write!(f, "duplicate {n}")?,
            K::InvalidField(n) => write!(f, "invalid {n}")?,
        }
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {}
