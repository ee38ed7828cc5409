//! Testing your handler (feature `test-util`): signed pushes as WeChat sends them, sealed
//! replies opened, and the [`Message`] and [`PushInfo`] a handler receives, without WeChat.
//!
//! [`Push`] builds one push for a Token (and, in safe mode, a key and AppID): its message is a
//! document of yours or built from fields, in XML or JSON. From it you get the signed
//! [`request`](Push::request) to send through your layer (or to a real server), the
//! [`Message`] and [`PushInfo`] a handler would get ([`open`](Push::open)), to call a
//! handler function directly, and the clear document of a sealed reply
//! ([`open_reply`](Push::open_reply)).
//!
//! ```
//! use std::convert::Infallible;
//! use http::Request;
//! use tower::{service_fn, Layer, ServiceExt};
//! use wechat_push::{message::Kind, test::Push, EncodingAesKey, Format, Message, Reply, WechatLayer};
//!
//! async fn echo(req: Request<Message>) -> Result<Reply, Infallible> {
//!     Ok(match req.body().kind() {
//!         Kind::Text { content, .. } => Reply::text(content.clone()),
//!         _ => Reply::Success,
//!     })
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = EncodingAesKey::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")?;
//! let layer = WechatLayer::new("Token123abc")?.encryption(key.clone(), "wx1234567890abcdef")?;
//!
//! // A safe-mode JSON text push, signed and sealed as WeChat sends it.
//! let push = Push::new("Token123abc")?
//!     .encrypted(key, "wx1234567890abcdef")?
//!     .format(Format::Json)
//!     .text("hello");
//! let response = layer.layer(service_fn(echo)).oneshot(push.request()).await?;
//! let body = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
//! let reply = push.open_reply(&body)?;
//! assert!(reply.contains(r#""Content":"hello""#), "{reply}");
//!
//! // Or call the handler without the layer, with the message it would get.
//! let (message, info) = push.open()?;
//! assert!(info.is_encrypted());
//! assert_eq!(echo(Request::new(message)).await?, Reply::text("hello"));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Uri};

mod document;
mod reply;

use document::{encode, Fields, Value};
pub use reply::OpenReplyError;

use crate::body::Body;
use crate::codec::Format;
use crate::crypto::{self, EncodingAesKey};
use crate::endpoint::{ConfigError, Endpoint, PushInfo, Verified};
use crate::message::Message;
use crate::rejection::Rejection;
use crate::signature;

/// The "random" prefix of every push this module seals: fixed, so that a push's body and
/// `msg_signature` are the same each time they are built.
const PREFIX: [u8; 16] = *b"wechat-push-test";

/// One push, as WeChat would send it to a mini program's or official account's URL (see the
/// [module](self)).
///
/// Defaults: plaintext, XML, a text message `hello` from `o_test_openid` to `gh_test`, signed
/// now (the system clock) with nonce `1234567890`, at `/wechat`.
#[derive(Clone)]
pub struct Push {
    token: String,
    /// Safe mode: the key and AppID the push is sealed for.
    sealed: Option<(EncodingAesKey, String)>,
    format: Format,
    /// The message as a document of the user's, when given; else built from `fields`.
    document: Option<Bytes>,
    fields: Fields,
    timestamp: u64,
    nonce: String,
    path: String,
}

impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("token", &"<redacted>")
            .field("encrypted", &self.sealed.is_some())
            .field("format", &self.format)
            .field("document", &self.document)
            .field("fields", &self.fields)
            .field("timestamp", &self.timestamp)
            .field("nonce", &self.nonce)
            .field("path", &self.path)
            .finish()
    }
}

impl Push {
    /// A plaintext push signed with `token` (checked as [`Endpoint::new`] checks it).
    pub fn new(token: &str) -> Result<Self, ConfigError> {
        Endpoint::new(token)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        Ok(Self {
            token: token.to_owned(),
            sealed: None,
            format: Format::Xml,
            document: None,
            fields: Fields {
                to_user: "gh_test".into(),
                from_user: "o_test_openid".into(),
                create_time: None,
                msg_type: "text".into(),
                fields: vec![("Content".into(), Value::Text("hello".into()))],
                msg_id: None,
            },
            timestamp: now,
            nonce: "1234567890".into(),
            path: "/wechat".into(),
        })
    }

    /// Safe mode: the message sealed with `key` for `app_id` (`encrypt_type=aes`, with
    /// `msg_signature`), as after `WechatLayer::encryption(key, app_id)`.
    pub fn encrypted(mut self, key: EncodingAesKey, app_id: &str) -> Result<Self, ConfigError> {
        Endpoint::new(&self.token)?.encryption(key.clone(), app_id)?;
        self.sealed = Some((key, app_id.to_owned()));
        Ok(self)
    }

    /// The format (XML by default) of a message built from fields, and of the safe-mode
    /// envelope.
    #[must_use]
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The message as a whole document of yours (XML or JSON, clear); its format is sniffed
    /// from it (and kept as set when it cannot be). A field set afterwards goes back to the
    /// message built from fields.
    ///
    /// ```
    /// use wechat_push::test::Push;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let push = Push::new("Token123abc")?.document(
    ///     r#"{"ToUserName":"gh_1","FromUserName":"o_1","CreateTime":1,"MsgType":"event","Event":"user_enter_tempsession","SessionFrom":"menu"}"#,
    /// );
    /// let (message, _info) = push.open()?;
    /// assert_eq!(message.event_name(), Some("user_enter_tempsession"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn document(mut self, document: impl Into<Bytes>) -> Self {
        let document = document.into();
        if let Ok(format) = Format::sniff(&document) {
            self.format = format;
        }
        self.document = Some(document);
        self
    }

    /// A text message with `content`.
    #[must_use]
    pub fn text(self, content: &str) -> Self {
        self.msg_type("text").field("Content", content)
    }

    /// An event message (`MsgType` `event`) named `event` (`subscribe`,
    /// `user_enter_tempsession`, …).
    #[must_use]
    pub fn event(self, event: &str) -> Self {
        self.msg_type("event").field("Event", event)
    }

    /// A message of type `msg_type` with no fields yet (`image`, `miniprogrampage`, …): add
    /// them with [`field`](Self::field) and [`number`](Self::number).
    #[must_use]
    pub fn msg_type(mut self, msg_type: &str) -> Self {
        let fields = self.fields();
        fields.msg_type = msg_type.to_owned();
        fields.fields.clear();
        self
    }

    /// Adds a text field (`Content`, `PicUrl`, `MediaId`, …), after those already added.
    #[must_use]
    pub fn field(mut self, name: &str, value: &str) -> Self {
        let fields = self.fields();
        fields
            .fields
            .push((name.to_owned(), Value::Text(value.to_owned())));
        self
    }

    /// Adds a numeric field (`AppId`, `Latitude` as an integer, …).
    #[must_use]
    pub fn number(mut self, name: &str, value: u64) -> Self {
        let fields = self.fields();
        fields.fields.push((name.to_owned(), Value::Number(value)));
        self
    }

    /// The `MsgId` (none by default: events have none).
    #[must_use]
    pub fn msg_id(mut self, id: u64) -> Self {
        self.fields().msg_id = Some(id);
        self
    }

    /// The sender, `FromUserName` (an openid), also sent as the query's `openid`.
    #[must_use]
    pub fn from_user(mut self, openid: &str) -> Self {
        self.fields().from_user = openid.to_owned();
        self
    }

    /// The receiving account, `ToUserName` (an original id, `gh_…`).
    #[must_use]
    pub fn to_user(mut self, original_id: &str) -> Self {
        self.fields().to_user = original_id.to_owned();
        self
    }

    /// `CreateTime` (the signing timestamp by default).
    #[must_use]
    pub fn create_time(mut self, secs: u64) -> Self {
        self.fields().create_time = Some(secs);
        self
    }

    /// The signed `timestamp`, Unix seconds (now by default). A layer checks it against its
    /// clock and tolerance.
    #[must_use]
    pub fn timestamp(mut self, secs: u64) -> Self {
        self.timestamp = secs;
        self
    }

    /// The signed `nonce`.
    #[must_use]
    pub fn nonce(mut self, nonce: &str) -> Self {
        self.nonce = nonce.to_owned();
        self
    }

    /// The request's path (`/wechat` by default), e.g. the app's segment on a multi-app
    /// layer.
    #[must_use]
    pub fn path(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }

    /// The clear document of the message.
    pub fn message_document(&self) -> Bytes {
        match &self.document {
            Some(document) => document.clone(),
            None => Bytes::from(self.fields.write(self.format, self.timestamp)),
        }
    }

    /// The request body: the document, or in safe mode its envelope (`ToUserName` and
    /// `Encrypt`).
    pub fn body(&self) -> Bytes {
        match self.encrypt() {
            None => self.message_document(),
            Some(encrypt) => {
                Bytes::from(document::envelope(self.format, self.addressee(), &encrypt))
            }
        }
    }

    /// The signed query: `signature`, `timestamp`, `nonce`, `openid`, and in safe mode
    /// `encrypt_type=aes` and `msg_signature`.
    pub fn query(&self) -> String {
        let timestamp = self.timestamp.to_string();
        let mut query = format!(
            "signature={}&timestamp={timestamp}&nonce={}",
            signature::sign(&self.token, &timestamp, &self.nonce),
            encode(&self.nonce, false),
        );
        if let Some(openid) = self.openid() {
            query.push_str("&openid=");
            query.push_str(&encode(openid, false));
        }
        if let Some(encrypt) = self.encrypt() {
            let sig = signature::sign_message(&self.token, &timestamp, &self.nonce, &encrypt);
            query.push_str("&encrypt_type=aes&msg_signature=");
            query.push_str(&sig.to_string());
        }
        query
    }

    /// The push as an HTTP request: `POST {path}?{query}` with the body and its
    /// `Content-Type`, for a layer or an HTTP client.
    pub fn request(&self) -> Request<Body> {
        let body = self.body();
        let mut request = Request::new(Body::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri(&self.query());
        let content_type = HeaderValue::from_static(match self.format {
            Format::Xml => "text/xml",
            Format::Json => "application/json",
        });
        request
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
        request
    }

    /// The console's URL check for the same Token: `GET {path}?signature=…&echostr=…`.
    pub fn handshake(&self, echostr: &str) -> Request<Body> {
        let timestamp = self.timestamp.to_string();
        let query = format!(
            "signature={}&timestamp={timestamp}&nonce={}&echostr={}",
            signature::sign(&self.token, &timestamp, &self.nonce),
            encode(&self.nonce, false),
            encode(echostr, false),
        );
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = self.uri(&query);
        request
    }

    /// An endpoint configured as the push expects (its Token, key and AppID), its clock
    /// stopped at the push's timestamp.
    pub fn endpoint(&self) -> Endpoint {
        let timestamp = self.timestamp;
        let endpoint = Endpoint::new(&self.token)
            .map(|endpoint| endpoint.clock(crate::clock::FixedClock::at_unix(timestamp)));
        let endpoint = match &self.sealed {
            None => endpoint,
            Some((key, app_id)) => endpoint.and_then(|e| e.encryption(key.clone(), app_id)),
        };
        // `new` and `encrypted` checked the Token and the AppID.
        endpoint.expect("the Token and AppID were checked when the push was built")
    }

    /// The [`Message`] and [`PushInfo`] a handler receives for this push: the push checked
    /// and opened by [`endpoint`](Self::endpoint). Fails as the layer would refuse the push
    /// (a malformed document of yours, for instance).
    ///
    /// ```
    /// use wechat_push::{test::Push, Format};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (message, info) = Push::new("Token123abc")?
    ///     .format(Format::Json)
    ///     .msg_type("image")
    ///     .field("PicUrl", "https://example.com/a.png")
    ///     .field("MediaId", "media-1")
    ///     .msg_id(7)
    ///     .open()?;
    /// assert_eq!(message.msg_type(), "image");
    /// assert_eq!(message.msg_id(), Some(7));
    /// assert_eq!(info.format(), Format::Json);
    /// assert_eq!(info.query().openid(), Some("o_test_openid"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(&self) -> Result<(Message, PushInfo), Rejection> {
        let endpoint = self.endpoint();
        let query = self.query();
        let Verified::Push(query) = endpoint.check(&Method::POST, Some(&query))? else {
            // A POST is never a handshake.
            return Err(Rejection::MethodNotAllowed);
        };
        let body = self.body();
        let (message, info, _) = endpoint.open(query, &body)?.into_parts();
        Ok((message, info))
    }

    /// The [`PushInfo`] a handler receives for this push (see [`open`](Self::open)).
    pub fn push_info(&self) -> Result<PushInfo, Rejection> {
        self.open().map(|(_, info)| info)
    }

    /// The clear reply document inside a sealed reply `body` answered to this push: its
    /// `MsgSignature` checked with the Token, then decrypted with the key and checked for the
    /// AppID. An acknowledgement (`success`, empty) or a clear document is not sealed, and is
    /// an error here.
    pub fn open_reply(&self, body: &[u8]) -> Result<String, OpenReplyError> {
        match &self.sealed {
            Some((key, app_id)) => reply::open(&self.token, key, app_id, body),
            None => Err(OpenReplyError::new(
                "the push is not encrypted: its replies are not sealed",
            )),
        }
    }

    /// The fields, to change: the message is built from them again.
    fn fields(&mut self) -> &mut Fields {
        self.document = None;
        &mut self.fields
    }

    fn openid(&self) -> Option<&str> {
        self.document
            .is_none()
            .then_some(self.fields.from_user.as_str())
    }

    fn addressee(&self) -> &str {
        match self.document {
            Some(_) => "gh_test",
            None => &self.fields.to_user,
        }
    }

    fn encrypt(&self) -> Option<String> {
        let (key, app_id) = self.sealed.as_ref()?;
        Some(crypto::encrypt_with_prefix(
            key,
            PREFIX,
            &self.message_document(),
            app_id,
        ))
    }

    fn uri(&self, query: &str) -> Uri {
        let path = if self.path.starts_with('/') {
            encode(&self.path, true)
        } else {
            format!("/{}", encode(&self.path, true))
        };
        // Every byte outside the unreserved set (and `/` in the path) is percent-encoded, and
        // the query is `name=value` pairs of such values and hex digits.
        Uri::try_from(format!("{path}?{query}")).expect("a percent-encoded path and query")
    }
}
