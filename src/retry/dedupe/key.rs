//! The key a push is deduplicated by.

use std::fmt::Write as _;

use sha1::{Digest, Sha1};

use crate::message::{Kind, Message, Value};
use crate::protocol::hex;

/// The key one push is deduplicated by, scoped to the receiving account (`ToUserName`).
///
/// `MsgId` (numeric or not) when the push has one; otherwise the SHA-1 of `document`, the
/// push's decrypted XML or JSON. A retry carries the same document, and two different pushes
/// do not: two order events of the same account in the same second differ in their order ids,
/// so they get two keys (a key of sender, time and event name would merge them and answer the
/// second with the first one's reply).
///
/// ```
/// use wechat_push::{dedupe::dedupe_key, Message};
///
/// let doc = br#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1,"MsgType":"text","Content":"hi","MsgId":42}"#;
/// assert_eq!(dedupe_key(&Message::from_json(doc)?, doc), "gh_1|msg|42");
///
/// let event = br#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1,"MsgType":"event","Event":"trade_manage_order_settlement","transaction_id":"t1"}"#;
/// let key = dedupe_key(&Message::from_json(event)?, event);
/// assert!(key.starts_with("gh_1|doc|"));
/// # Ok::<(), wechat_push::codec::DecodeError>(())
/// ```
///
/// WeCom: the agents of one corp share its CorpID as `ToUserName`, so a push naming its
/// `AgentID` is scoped by it too (`corp/agent|…`); system events (`FromUserName` `sys`,
/// no `MsgId`) are keyed by their document, so two contact changes in the same second do not
/// collide (docs/platforms.md §1.8). A robot push is keyed by its `msgid`.
pub fn dedupe_key(message: &Message, document: &[u8]) -> String {
    let mut key = String::with_capacity(64);
    push_key(&mut key, message, document);
    key
}

/// [`dedupe_key`], written after what `key` holds.
fn push_key(key: &mut String, message: &Message, document: &[u8]) {
    key.push_str(message.to_user());
    if let Some(agent) = message.agent_id() {
        let _ = write!(key, "/{agent}");
    }
    if let Kind::Robot(push) = message.kind() {
        key.push_str("|msg|");
        key.push_str(&push.msg_id);
        return;
    }
    if let Some(id) = message.msg_id() {
        // Writing to a String cannot fail.
        let _ = write!(key, "|msg|{id}");
        return;
    }
    if let Some(id) = message
        .field("MsgId")
        .and_then(Value::as_text)
        .filter(|id| !id.is_empty())
    {
        key.push_str("|msg|");
        key.push_str(id);
        return;
    }
    key.push_str("|doc|");
    hex::push_str(key, &Sha1::digest(document));
}

/// [`dedupe_key`] within `scope` (a multi-app layer's app name): `{scope}/` before the key,
/// so the same `MsgId` in two apps gives two keys. App names have no `/`.
pub(crate) fn scoped_dedupe_key(scope: Option<&str>, message: &Message, document: &[u8]) -> String {
    let Some(scope) = scope else {
        return dedupe_key(message, document);
    };
    let mut key = String::with_capacity(scope.len() + 65);
    key.push_str(scope);
    key.push('/');
    push_key(&mut key, message, document);
    key
}

/// The key of the push a request carries, put in its extensions by the layer (which has the
/// decrypted document) when dedupe is on.
#[derive(Clone, Debug)]
pub(crate) struct DedupeKey(pub(crate) String);

/// The key of a push whose document the caller does not have: its `MsgId`, or none.
pub(super) fn id_key(message: &Message) -> Option<String> {
    let has_id = message.msg_id().is_some()
        || matches!(message.kind(), Kind::Robot(_))
        || message
            .field("MsgId")
            .and_then(Value::as_text)
            .is_some_and(|id| !id.is_empty());
    has_id.then(|| dedupe_key(message, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(json: &str) -> Message {
        Message::from_json(json.as_bytes()).unwrap()
    }

    fn key(json: &str) -> String {
        dedupe_key(&message(json), json.as_bytes())
    }

    #[test]
    fn keys() {
        // A numeric or string MsgId is the key, whatever else the document holds.
        assert_eq!(
            key(
                r#"{"ToUserName":"gh2","FromUserName":"o","CreateTime":1,"MsgType":"text","Content":"hi","MsgId":42}"#
            ),
            "gh2|msg|42"
        );
        assert_eq!(
            key(
                r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1,"MsgType":"text","Content":"hi","MsgId":"a-1"}"#
            ),
            "gh|msg|a-1"
        );
        // Without one, the document's digest: two order events of one account in one second
        // differ, the same document (a retry) does not.
        let order = |id: &str| {
            format!(
                r#"{{"ToUserName":"gh","FromUserName":"o","CreateTime":7,"MsgType":"event","Event":"trade_manage_order_settlement","transaction_id":"{id}"}}"#
            )
        };
        let (a, b) = (key(&order("t1")), key(&order("t2")));
        assert_ne!(a, b);
        assert_eq!(a, key(&order("t1")));
        assert!(
            a.starts_with("gh|doc|") && a.len() == "gh|doc|".len() + 40,
            "{a}"
        );
        // Scoped by the receiving account.
        let other = key(&order("t1").replace(r#""gh""#, r#""gh9""#));
        assert!(other.starts_with("gh9|doc|"));
        // An empty string MsgId is no id.
        assert!(key(r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1,"MsgType":"event","Event":"x","MsgId":""}"#).starts_with("gh|doc|"));
    }

    #[test]
    fn scoped_keys() {
        for json in [
            r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1,"MsgType":"text","Content":"hi","MsgId":42}"#,
            r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1,"MsgType":"event","Event":"x"}"#,
        ] {
            let (m, doc) = (message(json), json.as_bytes());
            let plain = dedupe_key(&m, doc);
            assert_eq!(scoped_dedupe_key(None, &m, doc), plain);
            let (a, b) = (
                scoped_dedupe_key(Some("a"), &m, doc),
                scoped_dedupe_key(Some("b"), &m, doc),
            );
            assert_eq!(a, format!("a/{plain}"));
            assert_ne!(a, b);
        }
    }
}
