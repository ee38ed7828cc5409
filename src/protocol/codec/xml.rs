//! XML bodies: `<xml>` with one child element per field.
//!
//! A small tokenizer for the subset pushes use (elements, attributes, text,
//! CDATA, the five predefined entities, character references, comments,
//! processing instructions), reading straight from the borrowed body. It
//! replaced quick-xml: same documents, about twice as fast on a typical push
//! and no allocations of its own (quick-xml always records open tag names).
//!
//! Anything outside the subset is an error; in particular `<!DOCTYPE` is
//! rejected, so there is no DTD and no entity expansion. No recursion: open
//! elements live on an explicit stack, bounded by [`MAX_DEPTH`]. Text is
//! borrowed from the body unless it had to be assembled from several pieces
//! (entities, several CDATA sections). Line endings are kept as sent.

use std::borrow::Cow;

mod flat;

use super::{is_ws, strip_bom, DecodeError, DecodeErrorKind as K, Doc, Raw, MAX_DEPTH};
use crate::message::{Fields, Value};

/// An open element below the root.
struct Frame<'a> {
    name: &'a str,
    /// Text seen so far; only kept while the element has no child elements.
    text: Option<Cow<'a, str>>,
    /// `Some` once a child element has been seen.
    children: Option<Fields>,
}

impl<'a> Frame<'a> {
    fn new(name: &'a str) -> Self {
        Frame {
            name,
            text: None,
            children: None,
        }
    }

    fn push_text(&mut self, piece: &'a str) -> Result<(), DecodeError> {
        if self.children.is_some() {
            return whitespace_only(piece, self.name);
        }
        self.text = Some(match self.text.take() {
            None => Cow::Borrowed(piece),
            Some(Cow::Borrowed("")) => Cow::Borrowed(piece),
            Some(prev) => {
                let mut s = prev.into_owned();
                s.push_str(piece);
                Cow::Owned(s)
            }
        });
        Ok(())
    }

    fn push_char(&mut self, c: char) -> Result<(), DecodeError> {
        let mut buf = [0u8; 4];
        if self.children.is_some() {
            return whitespace_only(c.encode_utf8(&mut buf), self.name);
        }
        let mut s = self.text.take().map(Cow::into_owned).unwrap_or_default();
        s.push(c);
        self.text = Some(Cow::Owned(s));
        Ok(())
    }

    /// The element gets a child: its text so far must be whitespace.
    fn children(&mut self) -> Result<&mut Fields, DecodeError> {
        if self.children.is_none() {
            if let Some(t) = self.text.take() {
                whitespace_only(&t, self.name)?;
            }
        }
        Ok(self.children.get_or_insert_with(Fields::new))
    }

    fn finish(self) -> Raw<'a> {
        match self.children {
            Some(f) => Raw::Node(f),
            None => Raw::Str(self.text.unwrap_or(Cow::Borrowed(""))),
        }
    }
}

fn whitespace_only(text: &str, element: &str) -> Result<(), DecodeError> {
    if text.bytes().all(is_ws) {
        Ok(())
    } else {
        Err(syntax(format!("text mixed with elements in <{element}>")))
    }
}

fn syntax(detail: impl Into<Box<str>>) -> DecodeError {
    DecodeError::xml(K::Syntax).with_detail(detail)
}

#[derive(PartialEq)]
enum State {
    Prolog,
    Root,
    Done,
}

pub(crate) fn parse(doc: &[u8]) -> Result<Doc<'_>, DecodeError> {
    let src = std::str::from_utf8(strip_bom(doc)).map_err(|_| DecodeError::xml(K::NotUtf8))?;
    match flat::parse(src) {
        Some(doc) => Ok(doc),
        None => parse_full(src),
    }
}

/// Whether the fast path, when it takes `doc`, reads it exactly as the full tokenizer does
/// (`true` when it declines). For the `xml` fuzz target and the tests.
#[cfg(any(test, fuzzing))]
pub(crate) fn fast_path_agrees(doc: &[u8]) -> bool {
    let Ok(src) = std::str::from_utf8(strip_bom(doc)) else {
        return true;
    };
    match flat::parse(src) {
        Some(fast) => parse_full(src).ok() == Some(fast),
        None => true,
    }
}

/// The general tokenizer: every document the subset allows, and every error.
fn parse_full(src: &str) -> Result<Doc<'_>, DecodeError> {
    let mut lexer = Lexer { src, pos: 0 };

    let mut out = Doc::with_capacity(8);
    let mut state = State::Prolog;
    // The innermost open element below the root, and the ones enclosing it.
    let mut current: Option<Frame<'_>> = None;
    let mut parents: Vec<Frame<'_>> = Vec::new();

    loop {
        match lexer.next()? {
            Tok::Doctype => return Err(DecodeError::xml(K::Doctype)),
            Tok::Skip => {}
            Tok::Eof if state == State::Done => return Ok(out),
            Tok::Eof if state == State::Prolog => return Err(syntax("no root element")),
            Tok::Eof => return Err(syntax("unexpected end of document (truncated?)")),

            Tok::Start(name, empty) if state != State::Root => {
                check_root(&state, name)?;
                // `<xml/>` is an empty document (its header fields will be missing).
                state = if empty { State::Done } else { State::Root };
            }
            Tok::Start(name, empty) => {
                // root + parents + current + this one
                if 2 + parents.len() + usize::from(current.is_some()) > MAX_DEPTH {
                    return Err(DecodeError::xml(K::TooDeep));
                }
                match (current.as_mut(), empty) {
                    (Some(frame), true) => frame.children()?.push(name, Value::Text(String::new())),
                    (None, true) => out.push(Cow::Borrowed(name), Raw::Str(Cow::Borrowed(""))),
                    (_, false) => {
                        if let Some(mut frame) = current.take() {
                            frame.children()?;
                            parents.push(frame);
                        }
                        current = Some(Frame::new(name));
                    }
                }
            }
            Tok::End(name) => match current.take() {
                Some(frame) => {
                    if frame.name != name {
                        return Err(mismatched(name, frame.name));
                    }
                    let key = frame.name;
                    let value = frame.finish();
                    match parents.pop() {
                        Some(mut parent) => {
                            parent.children()?.push(key, value.into_value());
                            current = Some(parent);
                        }
                        None => out.push(Cow::Borrowed(key), value),
                    }
                }
                None if state == State::Root && name == "xml" => state = State::Done,
                None if state == State::Root => return Err(mismatched(name, "xml")),
                None => return Err(syntax("unexpected end tag")),
            },
            Tok::Text(text) => match current.as_mut() {
                Some(frame) => frame.push_text(text)?,
                None if text.bytes().all(is_ws) => {}
                None if state == State::Done => return Err(DecodeError::xml(K::TrailingContent)),
                None if state == State::Root => return Err(syntax("text directly inside <xml>")),
                None => return Err(syntax("text before the root element")),
            },
            Tok::CData(text) => match current.as_mut() {
                Some(frame) => frame.push_text(text)?,
                None if state == State::Done => return Err(DecodeError::xml(K::TrailingContent)),
                None => return Err(syntax("CDATA outside a field element")),
            },
            Tok::Ref(resolved) => match current.as_mut() {
                Some(frame) => match resolved {
                    Ok(s) => frame.push_text(s)?,
                    Err(c) => frame.push_char(c)?,
                },
                None if state == State::Done => return Err(DecodeError::xml(K::TrailingContent)),
                None => return Err(syntax("entity reference outside a field element")),
            },
        }
    }
}

fn check_root(state: &State, name: &str) -> Result<(), DecodeError> {
    if *state == State::Done {
        Err(DecodeError::xml(K::TrailingContent))
    } else if name != "xml" {
        Err(DecodeError::xml(K::Root))
    } else {
        Ok(())
    }
}

fn mismatched(found: &str, expected: &str) -> DecodeError {
    syntax(format!("found </{found}>, expected </{expected}>"))
}

/// Offset of the first occurrence of `pat` in `bytes`. CDATA sections hold the longest
/// values (`Encrypt`, `Content`), so the first byte is looked for with `memchr`.
pub(crate) fn find(bytes: &[u8], pat: &[u8]) -> Option<usize> {
    let first = *pat.first()?;
    let mut from = 0;
    while let Some(i) = memchr::memchr(first, bytes.get(from..)?) {
        let at = from + i;
        if bytes.get(at..at + pat.len()) == Some(pat) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Bytes allowed in element and attribute names: ASCII letters, digits, `_-.:`, and any
/// byte of a multi-byte UTF-8 character (so a name always ends on a character boundary).
fn is_name_byte(b: u8) -> bool {
    NAME_BYTES[usize::from(b)]
}

const NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':') || b >= 0x80;
        i += 1;
    }
    table
};

/// One piece of markup or text.
enum Tok<'a> {
    /// `<name …>` or, when the flag is set, `<name …/>`.
    Start(&'a str, bool),
    /// `</name>`.
    End(&'a str),
    /// Character data up to the next `<` or `&`.
    Text(&'a str),
    /// The inside of `<![CDATA[…]]>`.
    CData(&'a str),
    /// A resolved entity (`Ok`) or character reference (`Err`).
    Ref(Result<&'static str, char>),
    /// `<!DOCTYPE`.
    Doctype,
    /// A comment, a processing instruction or the XML declaration.
    Skip,
    Eof,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes().get(self.pos..).unwrap_or_default()
    }

    fn error(&self, what: &str) -> DecodeError {
        syntax(format!("{what} at byte {}", self.pos))
    }

    fn slice(&self, from: usize, to: usize) -> Result<&'a str, DecodeError> {
        self.src
            .get(from..to)
            .ok_or_else(|| self.error("bad UTF-8 boundary"))
    }

    /// Skips `<` + `open`, then everything up to and including `close`.
    fn skip_delimited(
        &mut self,
        open: usize,
        close: &[u8],
        what: &str,
    ) -> Result<(usize, usize), DecodeError> {
        self.pos += open;
        let Some(len) = find(self.bytes(), close) else {
            return Err(self.error(what));
        };
        let start = self.pos;
        self.pos += len + close.len();
        Ok((start, start + len))
    }

    fn name(&mut self) -> Result<&'a str, DecodeError> {
        let len = self
            .bytes()
            .iter()
            .position(|&b| !is_name_byte(b))
            .unwrap_or(self.bytes().len());
        if len == 0 {
            return Err(self.error("expected a name"));
        }
        let name = self.slice(self.pos, self.pos + len)?;
        self.pos += len;
        Ok(name)
    }

    fn skip_ws(&mut self) {
        self.pos += self
            .bytes()
            .iter()
            .position(|&b| !is_ws(b))
            .unwrap_or(self.bytes().len());
    }

    fn next(&mut self) -> Result<Tok<'a>, DecodeError> {
        let bytes = self.bytes();
        match bytes.first() {
            None => Ok(Tok::Eof),
            Some(b'<') => self.markup(bytes),
            Some(b'&') => self.reference(),
            Some(_) => {
                let len = memchr::memchr2(b'<', b'&', bytes).unwrap_or(bytes.len());
                let text = self.slice(self.pos, self.pos + len)?;
                self.pos += len;
                Ok(Tok::Text(text))
            }
        }
    }

    fn markup(&mut self, bytes: &[u8]) -> Result<Tok<'a>, DecodeError> {
        if bytes.starts_with(b"<!--") {
            self.skip_delimited(4, b"-->", "unterminated comment")?;
            Ok(Tok::Skip)
        } else if bytes.starts_with(b"<![CDATA[") {
            let (start, end) = self.skip_delimited(9, b"]]>", "unterminated CDATA")?;
            Ok(Tok::CData(self.slice(start, end)?))
        } else if bytes.starts_with(b"<!DOCTYPE") {
            Ok(Tok::Doctype)
        } else if bytes.starts_with(b"<!") {
            Err(self.error("unexpected <!"))
        } else if bytes.starts_with(b"<?") {
            self.skip_delimited(2, b"?>", "unterminated processing instruction")?;
            Ok(Tok::Skip)
        } else if bytes.starts_with(b"</") {
            self.pos += 2;
            let name = self.name()?;
            self.skip_ws();
            self.expect(b'>')?;
            Ok(Tok::End(name))
        } else {
            self.pos += 1;
            let name = self.name()?;
            self.attributes()?;
            let empty = self.bytes().first() == Some(&b'/');
            if empty {
                self.pos += 1;
            }
            self.expect(b'>')?;
            Ok(Tok::Start(name, empty))
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), DecodeError> {
        if self.bytes().first() == Some(&b) {
            self.pos += 1;
            Ok(())
        } else if self.bytes().is_empty() {
            Err(self.error("unexpected end of document (truncated?)"))
        } else {
            Err(self.error(&format!("expected `{}`", char::from(b))))
        }
    }

    /// Skips `name="value"` pairs (attributes are ignored).
    fn attributes(&mut self) -> Result<(), DecodeError> {
        loop {
            let before = self.pos;
            self.skip_ws();
            match self.bytes().first() {
                Some(b'>' | b'/') | None => return Ok(()),
                Some(_) if self.pos == before => {
                    return Err(self.error("expected whitespace before an attribute"))
                }
                Some(_) => {}
            }
            self.name()?;
            self.skip_ws();
            self.expect(b'=')?;
            self.skip_ws();
            let quote = match self.bytes().first() {
                Some(q @ (b'"' | b'\'')) => *q,
                _ => return Err(self.error("expected a quoted attribute value")),
            };
            let (start, end) = self.skip_delimited(1, &[quote], "unterminated attribute value")?;
            if self
                .src
                .as_bytes()
                .get(start..end)
                .is_some_and(|v| v.contains(&b'<'))
            {
                return Err(self.error("`<` in an attribute value"));
            }
        }
    }

    /// `&name;` or `&#…;`: only the five predefined entities and character references.
    fn reference(&mut self) -> Result<Tok<'a>, DecodeError> {
        let bytes = self.bytes();
        let Some(len) = bytes.iter().take(12).position(|&b| b == b';') else {
            return Err(self.error("unterminated or unknown entity reference"));
        };
        let name = self.slice(self.pos + 1, self.pos + len)?;
        let resolved = match name {
            "amp" => Ok("&"),
            "lt" => Ok("<"),
            "gt" => Ok(">"),
            "quot" => Ok("\""),
            "apos" => Ok("'"),
            _ => {
                let code = match name.strip_prefix("#x") {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => name.strip_prefix('#').and_then(|d| d.parse::<u32>().ok()),
                };
                match code.filter(|c| *c != 0).and_then(char::from_u32) {
                    Some(c) => Err(c),
                    None => return Err(self.error(&format!("unknown entity &{name};"))),
                }
            }
        };
        self.pos += len + 1;
        Ok(Tok::Ref(resolved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_borrow_from_the_body() {
        let mut doc =
            parse(b"<xml><A><![CDATA[x y]]></A><B>plain</B><C>a&amp;b</C><D/></xml>").unwrap();
        assert!(matches!(
            doc.take("A"),
            Ok(Some(Raw::Str(Cow::Borrowed("x y"))))
        ));
        assert!(matches!(
            doc.take("B"),
            Ok(Some(Raw::Str(Cow::Borrowed("plain"))))
        ));
        assert!(matches!(doc.take("C"), Ok(Some(Raw::Str(Cow::Owned(s)))) if s == "a&b"));
        assert!(matches!(
            doc.take("D"),
            Ok(Some(Raw::Str(Cow::Borrowed(""))))
        ));
    }

    #[test]
    fn nested_and_repeated() {
        let fields = parse(b"<xml><L>\n <T>1</T>\n <T>2</T>\n</L></xml>")
            .unwrap()
            .into_fields();
        let l = fields.get("L").and_then(Value::as_node).unwrap();
        let ts: Vec<_> = l.get_all("T").filter_map(Value::as_text).collect();
        assert_eq!(ts, ["1", "2"]);
    }
}
