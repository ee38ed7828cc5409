//! The documents a [`Push`](super::Push) sends: its message built from fields, the safe-mode
//! envelope, and the percent-encoding of its URI.

use crate::codec::Format;

/// A message built from fields.
#[derive(Clone, Debug)]
pub(super) struct Fields {
    pub(super) to_user: String,
    pub(super) from_user: String,
    pub(super) create_time: Option<u64>,
    pub(super) msg_type: String,
    /// In order, after `MsgType`.
    pub(super) fields: Vec<(String, Value)>,
    pub(super) msg_id: Option<u64>,
}

#[derive(Clone, Debug)]
pub(super) enum Value {
    Text(String),
    Number(u64),
}

impl Fields {
    /// The message document in `format`; `CreateTime` defaults to `timestamp`.
    pub(super) fn write(&self, format: Format, timestamp: u64) -> String {
        let Fields {
            to_user,
            from_user,
            create_time,
            msg_type,
            fields,
            msg_id,
        } = self;
        let create_time = create_time.unwrap_or(timestamp);
        let mut all = vec![
            ("ToUserName", Value::Text(to_user.clone())),
            ("FromUserName", Value::Text(from_user.clone())),
            ("CreateTime", Value::Number(create_time)),
            ("MsgType", Value::Text(msg_type.clone())),
        ];
        all.extend(
            fields
                .iter()
                .map(|(name, value)| (name.as_str(), value.clone())),
        );
        if let Some(id) = msg_id {
            all.push(("MsgId", Value::Number(*id)));
        }
        match format {
            Format::Xml => {
                let mut out = String::from("<xml>");
                for (name, value) in all {
                    let value = match value {
                        Value::Text(text) => cdata(&text),
                        Value::Number(n) => n.to_string(),
                    };
                    out.push_str(&format!("<{name}>{value}</{name}>"));
                }
                out + "</xml>"
            }
            Format::Json => {
                let fields: Vec<String> = all
                    .into_iter()
                    .map(|(name, value)| {
                        let value = match value {
                            Value::Text(text) => json(&text),
                            Value::Number(n) => n.to_string(),
                        };
                        format!("{}:{value}", json(name))
                    })
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
        }
    }
}

/// The safe-mode body: `ToUserName` and `Encrypt`, in `format`.
pub(super) fn envelope(format: Format, to_user: &str, encrypt: &str) -> String {
    match format {
        Format::Xml => format!(
            "<xml><ToUserName>{}</ToUserName><Encrypt>{}</Encrypt></xml>",
            cdata(to_user),
            cdata(encrypt)
        ),
        Format::Json => format!(
            "{{\"ToUserName\":{},\"Encrypt\":{}}}",
            json(to_user),
            json(encrypt)
        ),
    }
}

/// `text` in CDATA sections (a `]]>` inside split across two).
fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// `text` as a JSON string.
fn json(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// Percent-encodes every byte outside the URI's unreserved set (and `/` when `path`).
pub(super) fn encode(text: &str, path: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || (path && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
