//! A queued push: what a worker needs to rebuild the handler's `Request<Message>`, and its
//! encoding for a backend that stores bytes.

// Without Redis, only the tests use the reader and writer.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::fmt;

use bytes::Bytes;
use http::{Method, Request, Uri};

use crate::apps::AppName;
use crate::codec::{self, DecodeError, Format};
use crate::crypto::KeyId;
use crate::dedupe::scoped_dedupe_key;
use crate::message::{Kind, Message};
use crate::query::{CallbackQuery, Signed};
use crate::PushInfo;

/// A push's stable identity in the queue: its dedupe key (see
/// [`dedupe_key`](crate::dedupe::dedupe_key)), within its app on a multi-app layer.
///
/// The same on every attempt and on every instance, and the same for WeChat's own retries of
/// the push: a handler can record the ids whose effect it made, and skip them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PushId(String);

impl PushId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PushId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a worker puts in the extensions of the request it hands the handler, beside
/// [`PushInfo`] and, on a multi-app layer, [`AppName`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The push's stable id.
    pub id: PushId,
    /// This attempt's number: 1 for the first one.
    pub attempt: u32,
}

/// The push's document, in the extensions of the request a worker builds: what a
/// pass-through handler gets as its body.
#[derive(Clone, Debug)]
pub(crate) struct QueuedDocument(pub(crate) Bytes);

/// How the document decodes back into the [`Message`] it was decoded to at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decoding {
    Xml,
    Json,
    Robot,
}

/// A verified push, as the queue holds it: the decrypted document (the message is decoded
/// from it again by the worker), what [`PushInfo`] held, the app and the request URI.
#[derive(Clone)]
pub struct QueuedPush {
    id: PushId,
    document: Bytes,
    decoding: Decoding,
    query: CallbackQuery,
    format: Format,
    key: Option<KeyId>,
    app: Option<AppName>,
    uri: Uri,
}

impl fmt::Debug for QueuedPush {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the document: it is the user's message.
        f.debug_struct("QueuedPush")
            .field("id", &self.id)
            .field("app", &self.app)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl QueuedPush {
    /// The push `message`, decoded from `document` (its XML or JSON, decrypted), verified as
    /// `info` tells; `app` names the app of a multi-app layer (it scopes the id).
    pub fn new(message: &Message, document: &[u8], info: &PushInfo, app: Option<AppName>) -> Self {
        let decoding = if matches!(message.kind(), Kind::Robot(_)) {
            Decoding::Robot
        } else {
            match Format::sniff(document).unwrap_or(info.format()) {
                Format::Xml => Decoding::Xml,
                Format::Json => Decoding::Json,
            }
        };
        let id = PushId(scoped_dedupe_key(
            app.as_ref().map(AppName::as_str),
            message,
            document,
        ));
        QueuedPush {
            id,
            document: Bytes::copy_from_slice(document),
            decoding,
            query: info.query().clone(),
            format: info.format(),
            key: info.key(),
            app,
            uri: Uri::from_static("/"),
        }
    }

    /// The URI the push was posted to (default `/`), given back on the rebuilt request.
    #[must_use]
    pub fn with_uri(mut self, uri: Uri) -> Self {
        self.uri = uri;
        self
    }

    /// The push's stable id.
    pub fn id(&self) -> &PushId {
        &self.id
    }

    /// The app it came to, on a multi-app layer.
    pub fn app(&self) -> Option<&AppName> {
        self.app.as_ref()
    }

    /// The handler's request for attempt `attempt`: a `POST` to the URI, the message decoded
    /// again from the document, and [`PushInfo`], [`AppName`] and [`Delivery`] in its
    /// extensions.
    pub(crate) fn request(&self, attempt: u32) -> Result<Request<Message>, DecodeError> {
        let message = match self.decoding {
            Decoding::Xml => codec::decode_message(Format::Xml, &self.document)?,
            Decoding::Json => codec::decode_message(Format::Json, &self.document)?,
            Decoding::Robot => Message::from_robot_json(&self.document)?,
        };
        let mut request = Request::new(message);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let extensions = request.extensions_mut();
        extensions.insert(PushInfo::rebuilt(self.query.clone(), self.format, self.key));
        if let Some(app) = &self.app {
            extensions.insert(app.clone());
        }
        extensions.insert(Delivery {
            id: self.id.clone(),
            attempt,
        });
        // For a pass-through handler, whose body it becomes (crate-private: a typed handler
        // cannot see it).
        extensions.insert(QueuedDocument(self.document.clone()));
        Ok(request)
    }

    /// The push as bytes, for a backend that stores bytes (the document is in them: they
    /// hold the user's message).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.document.len() + 256);
        out.push(VERSION);
        put(&mut out, self.id.0.as_bytes());
        put(&mut out, &self.document);
        out.push(match self.decoding {
            Decoding::Xml => b'x',
            Decoding::Json => b'j',
            Decoding::Robot => b'r',
        });
        put(&mut out, encode_query(&self.query).as_bytes());
        out.push(match self.format {
            Format::Xml => b'x',
            Format::Json => b'j',
        });
        out.push(match self.key {
            None => b'-',
            Some(KeyId::Current) => b'c',
            Some(KeyId::Previous) => b'p',
        });
        put(
            &mut out,
            self.app.as_ref().map_or("", AppName::as_str).as_bytes(),
        );
        put(&mut out, self.uri.to_string().as_bytes());
        out
    }

    /// What [`to_bytes`](Self::to_bytes) wrote; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.byte()? != VERSION {
            return None;
        }
        let id = PushId(String::from_utf8(r.field()?.to_vec()).ok()?);
        let document = Bytes::copy_from_slice(r.field()?);
        let decoding = match r.byte()? {
            b'x' => Decoding::Xml,
            b'j' => Decoding::Json,
            b'r' => Decoding::Robot,
            _ => return None,
        };
        let query = std::str::from_utf8(r.field()?).ok()?;
        let query = CallbackQuery::parse_for(query, Signed::Either).ok()?;
        let format = match r.byte()? {
            b'x' => Format::Xml,
            b'j' => Format::Json,
            _ => return None,
        };
        let key = match r.byte()? {
            b'-' => None,
            b'c' => Some(KeyId::Current),
            b'p' => Some(KeyId::Previous),
            _ => return None,
        };
        let app = match std::str::from_utf8(r.field()?).ok()? {
            "" => None,
            name => Some(AppName::new(name).ok()?),
        };
        let uri = Uri::try_from(r.field()?).ok()?;
        r.0.is_empty().then_some(QueuedPush {
            id,
            document,
            decoding,
            query,
            format,
            key,
            app,
            uri,
        })
    }
}

const VERSION: u8 = 1;

/// A length (4 bytes, big-endian) and the bytes.
pub(crate) fn put(out: &mut Vec<u8>, field: &[u8]) {
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field.get(..len as usize).unwrap_or(field));
}

/// Reads what [`put`] wrote.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    pub(crate) fn field(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        let field = rest.get(..len)?;
        self.0 = rest.get(len..)?;
        Some(field)
    }
}

/// The query's parameters as a query string that parses back to the same values.
fn encode_query(q: &CallbackQuery) -> String {
    let mut out = String::with_capacity(128);
    let mut pair = |name: &str, value: Option<&str>| {
        let Some(value) = value else { return };
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        for b in value.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(char::from(b));
            } else {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    };
    pair("signature", Some(q.signature()).filter(|s| !s.is_empty()));
    pair("timestamp", Some(q.timestamp()));
    pair("nonce", Some(q.nonce()));
    pair("openid", q.openid());
    pair(
        "encrypt_type",
        match q.encrypt_type() {
            crate::query::EncryptType::Plain => None,
            crate::query::EncryptType::Aes => Some("aes"),
        },
    );
    pair("msg_signature", q.msg_signature());
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_survives_its_encoding() {
        let doc = br#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1,"MsgType":"text","Content":"hi &=%","MsgId":42}"#;
        let message = Message::from_json(doc).unwrap();
        let query = CallbackQuery::parse(
            "signature=abc&timestamp=17&nonce=n%26%3D%20x&openid=o1&encrypt_type=aes&msg_signature=def",
        )
        .unwrap();
        let info = PushInfo::rebuilt(query.clone(), Format::Json, Some(KeyId::Previous));
        let push = QueuedPush::new(&message, doc, &info, Some(AppName::new("app-1").unwrap()))
            .with_uri(Uri::from_static("/wx/app-1?x=1"));
        assert_eq!(push.id().as_str(), "app-1/gh_1|msg|42");
        let bytes = push.to_bytes();
        let back = QueuedPush::from_bytes(&bytes).unwrap();
        let request = back.request(3).unwrap();
        assert_eq!(request.body(), &message);
        assert_eq!(request.uri(), "/wx/app-1?x=1");
        let info = request.extensions().get::<PushInfo>().unwrap();
        assert_eq!(info.query(), &query);
        assert_eq!(info.key(), Some(KeyId::Previous));
        assert_eq!(info.format(), Format::Json);
        assert_eq!(
            request.extensions().get::<AppName>().map(AppName::as_str),
            Some("app-1")
        );
        let delivery = request.extensions().get::<Delivery>().unwrap();
        assert_eq!(
            (delivery.id.as_str(), delivery.attempt),
            ("app-1/gh_1|msg|42", 3)
        );
        // Truncated or extended bytes are refused, never misread.
        for cut in 0..bytes.len() {
            assert!(QueuedPush::from_bytes(&bytes[..cut]).is_none(), "{cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(QueuedPush::from_bytes(&longer).is_none());
    }
}
