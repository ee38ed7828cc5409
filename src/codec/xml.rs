//! XML bodies: `<xml>` with one child element per field, read with quick-xml
//! straight from the borrowed body.
//!
//! No recursion: open elements live on an explicit stack, bounded by
//! [`MAX_DEPTH`]. Text is borrowed from the body unless it had to be assembled
//! from several pieces (entities, several CDATA sections).

use std::borrow::Cow;

use quick_xml::events::{BytesRef, Event};
use quick_xml::Reader;

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

/// `part` must be a slice of `src`; returns it with `src`'s lifetime.
fn reborrow<'a>(src: &'a str, part: &[u8]) -> Option<&'a str> {
    let start = (part.as_ptr() as usize).checked_sub(src.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    src.get(start..end)
}

/// Text of an event as a `&'a str` of the body.
fn text_of<'a>(src: &'a str, raw: Cow<'_, [u8]>) -> Result<&'a str, DecodeError> {
    reborrow(src, &raw).ok_or_else(|| syntax("unexpected text"))
}

fn name_of<'a>(src: &'a str, name: &[u8]) -> Result<&'a str, DecodeError> {
    match reborrow(src, name) {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(syntax("bad element name")),
    }
}

fn resolve_ref(r: &BytesRef<'_>) -> Result<Result<&'static str, char>, DecodeError> {
    let unknown = || syntax(format!("unknown entity &{};", String::from_utf8_lossy(r)));
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) => Ok(Err(c)),
            _ => Err(unknown()),
        };
    }
    Ok(Ok(match &**r {
        b"amp" => "&",
        b"lt" => "<",
        b"gt" => ">",
        b"quot" => "\"",
        b"apos" => "'",
        _ => return Err(unknown()),
    }))
}

#[derive(PartialEq)]
enum State {
    Prolog,
    Root,
    Done,
}

pub(crate) fn parse(doc: &[u8]) -> Result<Doc<'_>, DecodeError> {
    let src = std::str::from_utf8(strip_bom(doc)).map_err(|_| DecodeError::xml(K::NotUtf8))?;
    let mut reader = Reader::from_str(src);
    {
        let c = reader.config_mut();
        // We match end tags ourselves (no allocation), and keep text untouched.
        c.check_end_names = false;
        c.expand_empty_elements = false;
        c.trim_text(false);
    }

    let mut out = Doc::with_capacity(8);
    let mut state = State::Prolog;
    // The innermost open element below the root, and the ones enclosing it.
    let mut current: Option<Frame<'_>> = None;
    let mut parents: Vec<Frame<'_>> = Vec::new();

    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                return Err(syntax(format!("{e} (at byte {})", reader.error_position())));
            }
        };
        match event {
            Event::DocType(_) => return Err(DecodeError::xml(K::Doctype)),
            Event::Comment(_) | Event::PI(_) => {}
            Event::Decl(_) if state == State::Prolog => {}
            Event::Decl(_) => return Err(syntax("XML declaration inside the document")),
            Event::Eof if state == State::Done => return Ok(out),
            Event::Eof if state == State::Prolog => return Err(syntax("no root element")),
            Event::Eof => return Err(syntax("unexpected end of document (truncated?)")),

            Event::Start(e) if state != State::Root => {
                check_root(&state, e.name().as_ref())?;
                state = State::Root;
            }
            Event::Empty(e) if state != State::Root => {
                // `<xml/>`: an empty document (its header fields will be missing).
                check_root(&state, e.name().as_ref())?;
                state = State::Done;
            }
            Event::Start(e) => {
                let name = name_of(src, e.name().as_ref())?;
                // root + parents + current + this one
                if 2 + parents.len() + usize::from(current.is_some()) > MAX_DEPTH {
                    return Err(DecodeError::xml(K::TooDeep));
                }
                if let Some(mut frame) = current.take() {
                    frame.children()?;
                    parents.push(frame);
                }
                current = Some(Frame::new(name));
            }
            Event::Empty(e) => {
                let name = name_of(src, e.name().as_ref())?;
                if 2 + parents.len() + usize::from(current.is_some()) > MAX_DEPTH {
                    return Err(DecodeError::xml(K::TooDeep));
                }
                match current.as_mut() {
                    Some(frame) => frame.children()?.push(name, Value::Text(String::new())),
                    None => out.push(Cow::Borrowed(name), Raw::Str(Cow::Borrowed(""))),
                }
            }
            Event::End(e) => {
                let name = e.name();
                let name = name.as_ref();
                match current.take() {
                    Some(frame) => {
                        if frame.name.as_bytes() != name {
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
                    None if state == State::Root && name == b"xml" => state = State::Done,
                    None if state == State::Root => return Err(mismatched(name, "xml")),
                    None => return Err(syntax("unexpected end tag")),
                }
            }
            Event::Text(t) => {
                let text = text_of(src, t.into_inner())?;
                match current.as_mut() {
                    Some(frame) => frame.push_text(text)?,
                    None if text.bytes().all(is_ws) => {}
                    None if state == State::Done => {
                        return Err(DecodeError::xml(K::TrailingContent))
                    }
                    None if state == State::Root => {
                        return Err(syntax("text directly inside <xml>"))
                    }
                    None => return Err(syntax("text before the root element")),
                }
            }
            Event::CData(t) => {
                let text = text_of(src, t.into_inner())?;
                match current.as_mut() {
                    Some(frame) => frame.push_text(text)?,
                    None if state == State::Done => {
                        return Err(DecodeError::xml(K::TrailingContent))
                    }
                    None => return Err(syntax("CDATA outside a field element")),
                }
            }
            Event::GeneralRef(r) => {
                let resolved = resolve_ref(&r)?;
                match current.as_mut() {
                    Some(frame) => match resolved {
                        Ok(s) => frame.push_text(s)?,
                        Err(c) => frame.push_char(c)?,
                    },
                    None if state == State::Done => {
                        return Err(DecodeError::xml(K::TrailingContent))
                    }
                    None => return Err(syntax("entity reference outside a field element")),
                }
            }
        }
    }
}

fn check_root(state: &State, name: &[u8]) -> Result<(), DecodeError> {
    if *state == State::Done {
        Err(DecodeError::xml(K::TrailingContent))
    } else if name != b"xml" {
        Err(DecodeError::xml(K::Root))
    } else {
        Ok(())
    }
}

fn mismatched(found: &[u8], expected: &str) -> DecodeError {
    syntax(format!(
        "found </{}>, expected </{expected}>",
        String::from_utf8_lossy(found)
    ))
}
