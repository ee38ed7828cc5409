//! JSON bodies: one top-level object, read with serde_json through our own
//! visitors (no `serde_json::Value`): top-level strings stay borrowed from the
//! body when they contain no escapes, integers stay integers.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{is_ws, strip_bom, DecodeError, DecodeErrorKind as K, Doc, Raw, MAX_DEPTH};
use crate::message::{Fields, Value};

/// Where a visitor leaves the precise reason before failing through serde.
type Reason<'r> = &'r Cell<Option<K>>;

fn fail<E: de::Error>(reason: Reason<'_>, kind: K) -> E {
    reason.set(Some(kind));
    E::custom("")
}

pub(crate) fn parse(doc: &[u8]) -> Result<Doc<'_>, DecodeError> {
    let doc = strip_bom(doc);
    let src = std::str::from_utf8(doc).map_err(|_| DecodeError::json(K::NotUtf8))?;
    match src.bytes().find(|b| !is_ws(*b)) {
        Some(b'{') => {}
        Some(_) => return Err(DecodeError::json(K::NotAnObject)),
        None => return Err(DecodeError::json(K::Empty)),
    }
    let reason = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(src);
    let result = TopSeed(&reason)
        .deserialize(&mut de)
        .and_then(|doc| de.end().map(|()| doc));
    result.map_err(|e| match reason.take() {
        Some(kind) => DecodeError::json(kind),
        None if e.is_eof() => {
            DecodeError::json(K::Syntax).with_detail("unexpected end of document (truncated?)")
        }
        None => DecodeError::json(K::Syntax).with_detail(e.to_string()),
    })
}

struct TopSeed<'r>(Reason<'r>);

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Doc<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Doc<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Doc<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let mut doc = Doc::with_capacity(8);
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match map.next_value_seed(TopValue {
                reason: self.0,
                key: &key,
            })? {
                Top::One(raw) => doc.push(key, raw),
                Top::Many(values) => {
                    for v in values {
                        doc.push(key.clone(), Raw::from_value(v));
                    }
                }
            }
        }
        Ok(doc)
    }
}

/// Object keys, borrowed unless they contained escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A top-level value: one entry, or an array (repeated entries).
enum Top<'de> {
    One(Raw<'de>),
    Many(Vec<Value>),
}

struct TopValue<'r, 'k> {
    reason: Reason<'r>,
    key: &'k str,
}

impl<'de> DeserializeSeed<'de> for TopValue<'_, '_> {
    type Value = Top<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

fn check_f64<E: de::Error>(reason: Reason<'_>, v: f64) -> Result<f64, E> {
    // serde_json hands integers that overflow u64/i64 over as f64; they round to
    // at least 2^64 or at most -2^63. Reject them rather than keep rounded digits.
    const MIN: f64 = -9_223_372_036_854_775_808.0;
    const MAX: f64 = 18_446_744_073_709_551_616.0;
    if v.fract() == 0.0 && (v <= MIN || v >= MAX) {
        return Err(fail(reason, K::NumberOutOfRange));
    }
    Ok(v)
}

impl<'de> Visitor<'de> for TopValue<'_, '_> {
    type Value = Top<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Top::One(Raw::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Top::One(Raw::Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Top::One(Raw::Str(Cow::Owned(v))))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Top::One(Raw::U64(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Top::One(match u64::try_from(v) {
            Ok(u) => Raw::U64(u),
            Err(_) => Raw::I64(v),
        }))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        check_f64(self.reason, v).map(|v| Top::One(Raw::F64(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Top::One(Raw::Str(Cow::Borrowed(if v {
            "true"
        } else {
            "false"
        }))))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Top::One(Raw::Str(Cow::Borrowed(""))))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Nested {
            reason: self.reason,
            key: self.key,
            depth: 2,
            in_array: false,
        }
        .visit_map(map)
        .map(|v| Top::One(Raw::from_value(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Nested {
            reason: self.reason,
            key: self.key,
            depth: 2,
            in_array: false,
        }
        .items(seq)
        .map(Top::Many)
    }
}

/// A value below the top level, always owned.
///
/// `depth` counts like XML elements: the top-level object is level 1, its
/// values level 2, and so on. Array items sit at the level of the array (they
/// are repeated entries), except items of an array inside an array.
#[derive(Clone, Copy)]
struct Nested<'r, 'k> {
    reason: Reason<'r>,
    key: &'k str,
    depth: usize,
    in_array: bool,
}

/// A nested value: arrays stay arrays until their parent flattens them.
enum Item {
    One(Value),
    Many(Vec<Value>),
}

impl Nested<'_, '_> {
    fn items<'de, A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        let depth = self.depth + usize::from(self.in_array);
        let inner = Nested {
            depth,
            in_array: true,
            ..self
        };
        let mut out = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            out.push(match item {
                Item::One(v) => v,
                // An array inside an array: a node whose entries repeat the key.
                Item::Many(vs) => Value::Node(vs.into_iter().map(|v| (self.key, v)).collect()),
            });
        }
        Ok(out)
    }
}

impl<'de> DeserializeSeed<'de> for Nested<'_, '_> {
    type Value = Item;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(fail(self.reason, K::TooDeep));
        }
        d.deserialize_any(NestedVisitor(self))
    }
}

struct NestedVisitor<'r, 'k>(Nested<'r, 'k>);

impl<'de> Visitor<'de> for NestedVisitor<'_, '_> {
    type Value = Item;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<Item, E> {
        Ok(Item::One(Value::Text(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Item, E> {
        Ok(Item::One(Value::Text(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Item, E> {
        Ok(Item::One(Value::Text(v.to_string())))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Item, E> {
        Ok(Item::One(Value::Text(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Item, E> {
        check_f64(self.0.reason, v).map(|v| Item::One(Value::Text(v.to_string())))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Item, E> {
        Ok(Item::One(Value::text(if v { "true" } else { "false" })))
    }
    fn visit_unit<E>(self) -> Result<Item, E> {
        Ok(Item::One(Value::Text(String::new())))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
        self.0.visit_map(map).map(Item::One)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
        self.0.items(seq).map(Item::Many)
    }
}

impl Nested<'_, '_> {
    fn visit_map<'de, A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Fields::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let inner = Nested {
                reason: self.reason,
                key: &key,
                depth: self.depth + 1,
                in_array: false,
            };
            match map.next_value_seed(inner)? {
                Item::One(v) => fields.push(key.into_owned(), v),
                Item::Many(vs) => {
                    for v in vs {
                        fields.push(key.as_ref(), v);
                    }
                }
            }
        }
        Ok(Value::Node(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_numbers_stay_exact() {
        let mut doc =
            parse(br#"{"A":"x","B":"a\/b","C":18446744073709551615,"D":-5,"E":[1,[2,3]]}"#)
                .unwrap();
        assert!(matches!(
            doc.take("A"),
            Ok(Some(Raw::Str(Cow::Borrowed("x"))))
        ));
        assert!(matches!(doc.take("B"), Ok(Some(Raw::Str(Cow::Owned(s)))) if s == "a/b"));
        assert!(matches!(doc.take("C"), Ok(Some(Raw::U64(u64::MAX)))));
        assert!(matches!(doc.take("D"), Ok(Some(Raw::I64(-5)))));
        let e: Vec<Value> = doc.take_all("E").into_iter().map(Raw::into_value).collect();
        let inner: Fields = [("E", Value::text("2")), ("E", Value::text("3"))]
            .into_iter()
            .collect();
        assert_eq!(e, [Value::text("1"), Value::Node(inner)]);
    }
}
