//! Raw fields: what a push carried beyond the typed parts of a [`Message`](super::Message).

use std::fmt;

/// An ordered list of named values, the same for XML and JSON pushes.
///
/// * An XML element becomes one entry; its text is a [`Value::Text`], and an
///   element with child elements is a [`Value::Node`].
/// * A JSON string, number or boolean becomes a [`Value::Text`] holding its
///   literal (`1234` → `"1234"`, `true` → `"true"`, `null` → `""`); an object is
///   a [`Value::Node`].
/// * Repeated XML elements and JSON arrays both become repeated entries with the
///   same name (`"detail":[a,b]` ≡ `<detail>a</detail><detail>b</detail>`); an
///   empty JSON array gives no entry.
///
/// Entries keep document order. An empty `Fields` does not allocate.
///
/// ```
/// use wechat_push::message::{Fields, Value};
///
/// let mut fields = Fields::new();
/// fields.push("debug_str", Value::text("hello world"));
/// assert_eq!(fields.get("debug_str").and_then(Value::as_text), Some("hello world"));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Fields(Vec<(String, Value)>);

/// One raw value inside [`Fields`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// Text, exactly as carried (XML entities and JSON escapes resolved, nothing trimmed).
    Text(String),
    /// A nested element or object.
    Node(Fields),
}

impl Fields {
    /// An empty list (does not allocate).
    pub const fn new() -> Self {
        Fields(Vec::new())
    }

    /// Appends an entry.
    pub fn push(&mut self, name: impl Into<String>, value: Value) {
        self.0.push((name.into(), value));
    }

    /// The first value named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Every value named `name`, in document order.
    pub fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Value> + 's {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// All entries, in document order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> + '_ {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(s) => fmt::Debug::fmt(s, f),
            Value::Node(n) => fmt::Debug::fmt(n, f),
        }
    }
}

impl<K: Into<String>> FromIterator<(K, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        Fields(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl IntoIterator for Fields {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Value {
    /// A [`Value::Text`].
    pub fn text(s: impl Into<String>) -> Self {
        Value::Text(s.into())
    }

    /// The text, if this is a [`Value::Text`].
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            Value::Node(_) => None,
        }
    }

    /// The nested fields, if this is a [`Value::Node`].
    pub fn as_node(&self) -> Option<&Fields> {
        match self {
            Value::Node(n) => Some(n),
            Value::Text(_) => None,
        }
    }
}
