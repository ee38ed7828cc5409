//! The fast path for the shape WeChat actually sends: `<xml>` holding leaf
//! elements, each with one CDATA section or plain text without references,
//! and nothing else but whitespace between them.
//!
//! It only ever answers "here is the document" or "not for me" (`None`); on
//! `None` the full tokenizer in the parent module reads the document again and
//! has the last word, errors included. When it answers, the result is exactly
//! what the full tokenizer gives for the same input (the property tests below
//! check that on flat documents and on near misses, and the `xml` fuzz target
//! on every input it tries), so it changes speed, never meaning. It saves the
//! token and frame bookkeeping of the general parser: under half the
//! instructions for a typical push.

use std::borrow::Cow;

use super::{find, is_name_byte};
use crate::codec::{is_ws, Doc, Raw};

/// Parses `src` (already UTF-8 checked, byte-order mark removed) if it has the flat shape.
pub(super) fn parse(src: &str) -> Option<Doc<'_>> {
    let bytes = src.as_bytes();
    let mut pos = skip_ws(bytes, 0);
    if !bytes.get(pos..)?.starts_with(b"<xml>") {
        return None;
    }
    pos += 5;
    let mut doc = Doc::with_capacity(8);
    loop {
        pos = skip_ws(bytes, pos);
        let rest = bytes.get(pos..)?;
        if rest.starts_with(b"</xml>") {
            pos += 6;
            return (skip_ws(bytes, pos) == bytes.len()).then_some(doc);
        }

        // `<Name>`
        if rest.first() != Some(&b'<') {
            return None;
        }
        let name_len = rest.get(1..)?.iter().position(|&b| !is_name_byte(b))?;
        if name_len == 0 || rest.get(1 + name_len) != Some(&b'>') {
            return None;
        }
        let name = src.get(pos + 1..pos + 1 + name_len)?;
        pos += name_len + 2;

        // One CDATA section, or text up to the next markup.
        let rest = bytes.get(pos..)?;
        let value = if rest.starts_with(b"<![CDATA[") {
            let start = pos + 9;
            let len = find(bytes.get(start..)?, b"]]>")?;
            pos = start + len + 3;
            src.get(start..start + len)?
        } else {
            let len = memchr::memchr2(b'<', b'&', rest)?;
            if rest.get(len) != Some(&b'<') {
                return None;
            }
            let text = src.get(pos..pos + len)?;
            pos += len;
            text
        };

        // `</Name>`
        let rest = bytes.get(pos..)?;
        let closes = rest.starts_with(b"</")
            && rest.get(2..2 + name_len) == Some(name.as_bytes())
            && rest.get(2 + name_len) == Some(&b'>');
        if !closes {
            return None;
        }
        pos += name_len + 3;
        doc.push(Cow::Borrowed(name), Raw::Str(Cow::Borrowed(value)));
    }
}

fn skip_ws(bytes: &[u8], from: usize) -> usize {
    let rest = bytes.get(from..).unwrap_or_default();
    from + rest.iter().position(|&b| !is_ws(b)).unwrap_or(rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::xml::{fast_path_agrees, parse_full};
    use proptest::prelude::*;

    /// Pieces that make flat documents when drawn in a sensible order, and
    /// every near miss (nesting, references, comments, stray markup) when not.
    const PIECES: &[&str] = &[
        "<xml>",
        "</xml>",
        "<A>",
        "</A>",
        "<B>",
        "</B>",
        "<Ab>",
        "</Ab >",
        "<A/>",
        "<A x='1'>",
        "<![CDATA[",
        "]]>",
        "]]",
        "<![CDATA[v]]>",
        "<![CDATA[]]>",
        "text",
        "t<",
        ">",
        " ",
        "\n",
        "\r\n",
        "&amp;",
        "&#20320;",
        "&",
        "<!-- c -->",
        "<?pi?>",
        "<!DOCTYPE x>",
        "中",
        "\u{1F600}",
        "<xml/>",
        "</",
        "<",
    ];

    fn flat_doc() -> impl Strategy<Value = String> {
        let field = (
            prop::sample::select(vec![
                "ToUserName",
                "Content",
                "A",
                "MsgId",
                "x.y-z:w_1",
                "名",
            ]),
            prop::bool::ANY,
            "[ -~\u{4e00}-\u{4e10}\n]{0,12}",
            prop::sample::select(vec!["", " ", "\n", "\r\n  "]),
        )
            .prop_map(|(name, cdata, text, ws)| {
                if cdata {
                    let text = text.replace("]]>", "]]");
                    format!("{ws}<{name}><![CDATA[{text}]]></{name}>")
                } else {
                    let text = text.replace(['<', '&'], "");
                    format!("{ws}<{name}>{text}</{name}>")
                }
            });
        (
            prop::sample::select(vec!["", " ", "\n"]),
            prop::collection::vec(field, 0..8),
            prop::sample::select(vec!["", "\n", " \r\n"]),
        )
            .prop_map(|(lead, fields, trail)| {
                format!("{lead}<xml>{}</xml>{trail}", fields.concat())
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Flat documents take the fast path and read as the full parser reads them.
        #[test]
        fn flat_documents_take_the_fast_path(doc in flat_doc()) {
            let fast = parse(&doc);
            prop_assert!(fast.is_some(), "fast path declined {doc:?}");
            prop_assert_eq!(fast, parse_full(&doc).ok());
        }

        /// Whatever the fast path accepts, the full parser reads the same way: random
        /// sequences of pieces, and flat documents with pieces inserted (near misses).
        #[test]
        fn fast_path_agrees_with_the_full_parser(
            pieces in prop::collection::vec(prop::sample::select(PIECES), 0..24),
            doc in flat_doc(),
            inserts in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(PIECES)), 1..3),
        ) {
            let mut near_miss = doc;
            for (at, piece) in inserts {
                let mut at = at.index(near_miss.len() + 1);
                while !near_miss.is_char_boundary(at) {
                    at -= 1;
                }
                near_miss.insert_str(at, piece);
            }
            for doc in [pieces.concat(), near_miss] {
                prop_assert!(fast_path_agrees(doc.as_bytes()), "{:?}", doc);
            }
        }
    }

    #[test]
    fn declines_what_it_does_not_model() {
        for doc in [
            "<?xml version=\"1.0\"?><xml></xml>",
            "<xml><A>a&amp;b</A></xml>",
            "<xml><A> <![CDATA[x]]></A></xml>",
            "<xml><A><![CDATA[x]]><![CDATA[y]]></A></xml>",
            "<xml><L><T>1</T></L></xml>",
            "<xml><A/></xml>",
            "<xml><A></B></xml>",
            "<xml><A></A ></xml>",
            "<xml><!-- c --></xml>",
            "<xml></xml>x",
            "<xml><A>x</A>",
        ] {
            assert_eq!(parse(doc), None, "{doc}");
        }
        assert_eq!(parse("\n<xml>\n</xml>\n").map(|d| d.len()), Some(0));
    }
}
