//! [`Endpoint`]: the protocol core's entry point, sans-IO.
//!
//! Everything a WeChat callback endpoint decides, as plain functions over a query string, body
//! bytes and a [`Reply`]: [`check`](Endpoint::check) the query before reading the body,
//! [`open`](Endpoint::open) the body once it is read, [`answer`](Endpoint::answer) with the
//! reply. [`WechatLayer`](crate::WechatLayer) calls exactly these; a server on another
//! framework, or a consumer of pushes queued elsewhere, can call them too:
//!
//! ```
//! use http::Method;
//! use wechat_push::clock::FixedClock;
//! use wechat_push::{Endpoint, Reply, Verified};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = Endpoint::new("AAAAA")?.clock(FixedClock::at_unix(1714036504));
//! let query = "signature=f464b24fc39322e44b38aa78f5edd27bd1441696&timestamp=1714036504&nonce=1514711492";
//! let Verified::Push(query) = endpoint.check(&Method::POST, Some(query))? else {
//!     unreachable!("a POST")
//! };
//! let body = b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>\
//!     <CreateTime>1714036504</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content>\
//!     <MsgId>1</MsgId></xml>";
//! let push = endpoint.open(query, body)?;
//! assert_eq!(push.message().from_user(), "o1");
//! let answer = endpoint.answer(push.reply_to(), &Reply::text("hello"))?;
//! assert_eq!(answer.content_type(), "application/xml");
//! assert!(answer.body().starts_with(b"<xml>"));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::codec::Format;
use crate::crypto::{EncodingAesKey, KeyId, KeyRing};
use crate::message::Message;
use crate::query::CallbackQuery;
use crate::rejection::Rejection;
// Named by the documentation only.
#[cfg(doc)]
use crate::reply::Reply;
use crate::signature;

mod answer;
mod check;
mod open;

pub(crate) use answer::is_document;
pub use answer::Answer;
pub use check::Verified;
pub use open::{OpenedPush, PushInfo};

/// The default timestamp tolerance: 300 s, as Stripe allows for its webhooks.
pub const DEFAULT_TIMESTAMP_TOLERANCE: Duration = Duration::from_secs(300);

/// The longest timestamp tolerance: a longer one is taken as this, so that the replay guard's
/// window (and a Redis expiry) stays finite.
const MAX_TIMESTAMP_TOLERANCE: Duration = Duration::from_secs(86_400);

/// A configuration the endpoint (or the layer) refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The token is not 3 to 32 ASCII letters or digits, as the WeChat console requires.
    Token,
    /// The AppID is empty, longer than 64 bytes, or not ASCII letters, digits, `_` and `-`.
    AppId,
    /// A WeCom receive id (CorpID, SuiteID) is empty (use [`ReceiveId::Empty`] for that),
    /// longer than 64 bytes, or not ASCII letters, digits, `_` and `-`.
    ReceiveId,
    /// An app's name (see [`AppName`](crate::apps::AppName)) is empty, longer than 64 bytes,
    /// or not ASCII letters, digits, `_`, `-` and `.`.
    AppName,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Token => "the Token must be 3 to 32 ASCII letters or digits",
            Self::AppId => {
                "the AppID must be 1 to 64 ASCII letters, digits, '_' or '-' (e.g. wx1234567890abcdef)"
            }
            Self::ReceiveId => {
                "a CorpID or SuiteID must be 1 to 64 ASCII letters, digits, '_' or '-' \
                 (ReceiveId::Empty for an empty receive id)"
            }
            Self::AppName => "an app's name must be 1 to 64 ASCII letters, digits, '_', '-' or '.'",
        })
    }
}

impl std::error::Error for ConfigError {}

/// The receive id WeChat writes after the message inside every cipher text, which decryption
/// checks byte for byte (docs/platforms.md §1.3, §2.2). Which one applies depends on the kind of
/// app, so it is named explicitly:
///
/// | endpoint | receive id |
/// | --- | --- |
/// | mini program, official account | [`AppId`](Self::AppId): the app's AppID |
/// | third-party platform (both URLs) | [`AppId`](Self::AppId): the **component** AppID |
/// | WeCom self-built app | [`CorpId`](Self::CorpId): the corp's CorpID |
/// | WeCom third-party app, data callback | [`CorpId`](Self::CorpId): the authorising corp's |
/// | WeCom third-party app, instruction callback | [`SuiteId`](Self::SuiteId) |
/// | WeCom intelligent robot, personal providers' apps | [`Empty`](Self::Empty) |
///
/// `Empty` means "must be empty": a cipher text carrying any receive id is refused, as one
/// carrying another CorpID is. (WxJava and EasyWeChat skip this check; this crate never does.)
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReceiveId {
    /// An AppID (`wx…`): a mini program's, an official account's, or a third-party
    /// platform's component AppID.
    AppId(String),
    /// A WeCom CorpID (`ww…`).
    CorpId(String),
    /// A WeCom third-party app's SuiteID: its instruction callbacks are answered `success`.
    SuiteId(String),
    /// No receive id: the cipher text must end right after the message.
    Empty,
}

impl ReceiveId {
    /// The bytes expected after the message (empty for [`Empty`](Self::Empty)).
    pub fn as_str(&self) -> &str {
        match self {
            Self::AppId(id) | Self::CorpId(id) | Self::SuiteId(id) => id,
            Self::Empty => "",
        }
    }
}

/// The kind of callback an endpoint serves: what its query carries, whether pushes are
/// encrypted, how the handshake and acknowledgements look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Platform {
    /// Mini program or official account (docs/protocol.md).
    Classic,
    /// WeCom app callback; `success_ack` for third-party instruction callbacks (SuiteID).
    WeCom { success_ack: bool },
    /// WeCom intelligent robot: JSON with lower-case keys, receive id empty.
    WeComRobot,
    /// Open Platform third-party platform (component): both of its URLs.
    Component,
}

impl Platform {
    fn is_wecom(self) -> bool {
        matches!(self, Self::WeCom { .. } | Self::WeComRobot)
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One callback endpoint's configuration: the Token, the keys, and what is accepted.
///
/// Cheap to clone (the clock is shared). `Debug` redacts the Token and the keys.
#[derive(Clone)]
pub struct Endpoint {
    platform: Platform,
    token: String,
    keys: Option<KeyRing>,
    require_encryption: bool,
    tolerance: Option<Duration>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("platform", &self.platform)
            .field("token", &"<redacted>")
            .field("keys", &self.keys)
            .field("require_encryption", &self.require_encryption)
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint checking signatures with `token` (the Token typed into the WeChat console).
    ///
    /// Plaintext pushes only until [`encryption`](Self::encryption) is set. The token must be
    /// 3 to 32 ASCII letters or digits, as the console requires: a short or empty token would
    /// make signatures guessable.
    pub fn new(token: impl Into<String>) -> Result<Self, ConfigError> {
        let token = token.into();
        if !(3..=32).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ConfigError::Token);
        }
        Ok(Self {
            platform: Platform::Classic,
            token,
            keys: None,
            require_encryption: false,
            tolerance: Some(DEFAULT_TIMESTAMP_TOLERANCE),
            clock: Arc::new(SystemClock),
        })
    }

    /// A WeCom (企业微信) app callback: every push encrypted, signed with `msg_signature` only,
    /// decrypted with `key` and checked against `receive_id` (see [`ReceiveId`] for which one).
    ///
    /// The GET verification decrypts `echostr` and answers the plaintext (docs/platforms.md §1.2).
    /// Acknowledgements ([`Reply::Success`], [`Reply::Empty`]) are answered with an empty body,
    /// as WeCom documents, except on a [`ReceiveId::SuiteId`] endpoint (third-party
    /// instruction callbacks), where both are answered `success`. Passive replies are sealed
    /// XML; [`Reply::Music`] and [`Reply::TransferCustomerService`] do not exist in WeCom and
    /// are refused ([`Rejection::UnsupportedReply`]).
    ///
    /// ```
    /// use http::Method;
    /// use wechat_push::clock::FixedClock;
    /// use wechat_push::{EncodingAesKey, Endpoint, ReceiveId, Verified};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Tencent's sample app (docs/platforms.md §5, V1).
    /// let key = EncodingAesKey::new("6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt")?;
    /// let endpoint = Endpoint::wecom("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", key,
    ///     ReceiveId::CorpId("ww1436e0e65a779aee".into()))?
    ///     .clock(FixedClock::at_unix(1476416373));
    /// let query = "msg_signature=012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb&timestamp=1476416373\
    ///     &nonce=47744683&echostr=fsi1xnbH4yQh0%2BPJxcOdhhK6TDXkjMyhEPA7xB2TGz6b%2Bg7xyAbEkRxN\
    ///     %2F3cNXW9qdqjnoVzEtpbhnFyq6SVHyA%3D%3D";
    /// let Verified::Handshake(echo) = endpoint.check(&Method::GET, Some(query))? else {
    ///     unreachable!("a GET")
    /// };
    /// assert_eq!(&echo[..], b"1288432023552776189");
    /// # Ok(())
    /// # }
    /// ```
    pub fn wecom(
        token: impl Into<String>,
        key: EncodingAesKey,
        receive_id: ReceiveId,
    ) -> Result<Self, ConfigError> {
        let success_ack = matches!(receive_id, ReceiveId::SuiteId(_));
        if !matches!(receive_id, ReceiveId::Empty) && !valid_id(receive_id.as_str()) {
            return Err(ConfigError::ReceiveId);
        }
        let mut endpoint = Self::new(token)?;
        endpoint.platform = Platform::WeCom { success_ack };
        endpoint.require_encryption = true;
        endpoint.keys = Some(KeyRing::new(key, receive_id.as_str()));
        Ok(endpoint)
    }

    /// A WeCom intelligent robot (智能机器人) callback: like [`wecom`](Self::wecom) with an
    /// empty receive id, but the pushes are JSON with lower-case keys (`{"encrypt": …}`),
    /// decoded into [`Kind::Robot`](crate::message::Kind::Robot), and the sealed reply is the
    /// robot's JSON (`encrypt`, `msgsignature`, `timestamp`, `nonce`), reusing the request's
    /// `nonce` as the robot documentation requires (docs/platforms.md §1.10).
    ///
    /// A [`Reply::Text`] becomes `{"msgtype":"text","text":{"content":…}}`; any other robot
    /// reply (`stream`, `template_card`, …) is given as a [`Reply::Document`] holding its JSON.
    /// Acknowledgements are an empty body.
    pub fn wecom_robot(token: impl Into<String>, key: EncodingAesKey) -> Result<Self, ConfigError> {
        let mut endpoint = Self::wecom(token, key, ReceiveId::Empty)?;
        endpoint.platform = Platform::WeComRobot;
        Ok(endpoint)
    }

    /// An Open Platform third-party platform (第三方平台, "component") endpoint: its
    /// authorisation-event URL and its message URL alike. Every push is encrypted with the
    /// component's Token and key and carries the component AppID as receive id, whatever
    /// authoriser it concerns (docs/platforms.md §2.2).
    ///
    /// `msg_signature` is required; `signature` is checked when present. Authorisation events
    /// (`InfoType`) decode into [`Kind::Component`](crate::message::Kind::Component) and should
    /// be answered [`Reply::Success`] (what `()` turns into). Which authoriser a message-URL
    /// push is for is not authenticated by the crypto: the path carries it, and the decrypted
    /// `ToUserName` must be checked against it (docs/platforms.md §3.3).
    pub fn component(
        token: impl Into<String>,
        key: EncodingAesKey,
        component_app_id: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let mut endpoint = Self::new(token)?.encryption(key, component_app_id)?;
        endpoint.platform = Platform::Component;
        endpoint.require_encryption = true;
        Ok(endpoint)
    }

    /// Accepts safe-mode and compatible-mode pushes, decrypted with `key` and checked against
    /// `app_id` (the AppID, `wx…`, which WeChat puts inside every cipher text).
    pub fn encryption(
        self,
        key: EncodingAesKey,
        app_id: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        self.key_ring(KeyRing::new(key, app_id))
    }

    /// Like [`encryption`](Self::encryption), with a [`KeyRing`] that may also hold the
    /// previous key during a key change.
    ///
    /// On a WeCom endpoint the ring's AppID is the receive id, and may be empty
    /// ([`ReceiveId::Empty`]).
    pub fn key_ring(mut self, keys: KeyRing) -> Result<Self, ConfigError> {
        let app_id = keys.app_id();
        let valid = valid_id(app_id) || (app_id.is_empty() && self.platform.is_wecom());
        if !valid {
            return Err(ConfigError::AppId);
        }
        self.keys = Some(keys);
        Ok(self)
    }

    /// Refuses plaintext pushes when `yes`. Set it once the console is in safe mode: the
    /// plaintext `signature` does not cover the body. WeCom and third-party-platform
    /// endpoints refuse plaintext pushes whatever this says: those platforms always encrypt.
    #[must_use]
    pub fn require_encryption(mut self, yes: bool) -> Self {
        self.require_encryption = yes;
        self
    }

    /// How far the signed `timestamp` may be from now (default 300 s); `None` turns the check
    /// off. At most one day: a longer one is taken as a day (the replay guard remembers each
    /// query for as long as the tolerance lets it in).
    #[must_use]
    pub fn timestamp_tolerance(mut self, tolerance: Option<Duration>) -> Self {
        self.tolerance = tolerance.map(|t| t.min(MAX_TIMESTAMP_TOLERANCE));
        self
    }

    /// Replaces the clock (default [`SystemClock`]) used for the timestamp check and for the
    /// time written into replies. For tests that replay fixed timestamps:
    /// [`FixedClock`](crate::clock::FixedClock).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The timestamp tolerance in force.
    pub fn tolerance(&self) -> Option<Duration> {
        self.tolerance
    }

    /// The current time by this endpoint's clock, in Unix seconds.
    pub fn now(&self) -> u64 {
        crate::clock::unix_secs(self.clock.now())
    }

    /// `msg_signature` over `data` (a push's `Encrypt`, a WeCom handshake's `echostr`), in
    /// constant time.
    fn verify_msg_signature(&self, query: &CallbackQuery, data: &str) -> Result<(), Rejection> {
        let msg_signature = query
            .msg_signature()
            .ok_or(Rejection::MissingMsgSignature)?;
        if signature::verify_message(
            msg_signature,
            &self.token,
            query.timestamp(),
            query.nonce(),
            data,
        ) {
            Ok(())
        } else {
            Err(Rejection::BadMsgSignature)
        }
    }
}

/// Where a push's reply goes and how it is sealed: the push's sender and receiver, its format,
/// and the key that opened it.
#[derive(Clone, Debug)]
pub struct ReplyTo {
    /// The push's `FromUserName` (the reply's addressee), then its `ToUserName` (the
    /// reply's sender), then the request's nonce when the reply reuses it (WeCom robots), in
    /// one allocation.
    names: String,
    /// Where the second name starts in `names`.
    split: usize,
    /// Where the nonce starts in `names`.
    split_nonce: usize,
    format: Format,
    key: Option<KeyId>,
}

impl ReplyTo {
    fn new(message: &Message, format: Format, key: Option<KeyId>, nonce: &str) -> Self {
        let (to_user, from_user) = (message.from_user(), message.to_user());
        let mut names = String::with_capacity(to_user.len() + from_user.len() + nonce.len());
        names.push_str(to_user);
        names.push_str(from_user);
        let split_nonce = names.len();
        names.push_str(nonce);
        Self {
            names,
            split: to_user.len(),
            split_nonce,
            format,
            key,
        }
    }

    /// The reply's `ToUserName`: the push's `FromUserName`.
    pub fn addressee(&self) -> &str {
        self.names.get(..self.split).unwrap_or_default()
    }

    /// The reply's `FromUserName`: the push's `ToUserName`.
    pub fn sender(&self) -> &str {
        self.names
            .get(self.split..self.split_nonce)
            .unwrap_or_default()
    }

    /// The request's `nonce` the reply reuses (WeCom robots); empty otherwise.
    fn nonce(&self) -> &str {
        self.names.get(self.split_nonce..).unwrap_or_default()
    }

    /// The format the reply is written in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the reply will be sealed.
    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EncodingAesKey {
        EncodingAesKey::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").unwrap()
    }

    #[test]
    fn the_app_id_is_validated_when_configured() {
        let endpoint = || Endpoint::new("Token123").unwrap();
        for good in ["wx1234567890abcdef", "ww_corp-1", &"a".repeat(64)] {
            assert!(endpoint().encryption(key(), good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "wx 123",
            "wx1234567890abcdef\n",
            "应用",
            &"a".repeat(65),
        ] {
            assert_eq!(
                endpoint().encryption(key(), bad).unwrap_err(),
                ConfigError::AppId,
                "{bad:?}"
            );
        }
        assert_eq!(Endpoint::new("ab").unwrap_err(), ConfigError::Token);
    }

    #[test]
    fn debug_redacts_the_token() {
        let endpoint = Endpoint::new("Token123secret").unwrap();
        assert!(!format!("{endpoint:?}").contains("Token123secret"));
    }
}
