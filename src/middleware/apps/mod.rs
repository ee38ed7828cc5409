//! Several apps behind one endpoint: [`Apps`] (the registry), [`App`] (one app's checks) and
//! [`ChooseApp`] (how a request names its app), sans-IO.
//!
//! Each [`App`] is a name and an [`Endpoint`] of its own (its Token, its keys, its AppID), plus,
//! for an Open Platform authoriser, the account its pushes must be addressed to, and for a
//! WeCom app, the agent its pushes must be for. A request
//! names its app by something unauthenticated, a path segment for instance; that is safe only
//! because the request is then verified with *that* app's Token and keys, never another's:
//! an attacker can steer a request to any configured app, never past its signature. A name
//! that is not configured is refused ([`Rejection::UnknownApp`], 404); there is no fallback.
//!
//! ```
//! use http::{HeaderMap, Method, Uri};
//! use wechat_push::apps::{App, Apps, ChooseApp};
//! use wechat_push::clock::FixedClock;
//! use wechat_push::{Endpoint, Verified};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let apps = Apps::new();
//! let shop = Endpoint::new("ShopToken1")?.clock(FixedClock::at_unix(1714036504));
//! apps.insert(App::new("shop", shop)?);
//! apps.insert(App::new("club", Endpoint::new("ClubToken2")?)?);
//!
//! let choose = ChooseApp::last_segment();
//! let uri: Uri = "/wechat/shop?signature=5f2bb1e64a9a3c74e6e1b76b0d3e9e2ff9bc71b8&timestamp=1714036504&nonce=1".parse()?;
//! let app = choose.app(&apps, &uri, &HeaderMap::new()).expect("configured");
//! assert_eq!(app.name(), "shop");
//! // Then that app's own checks: this query is not signed with shop's Token.
//! assert!(app.endpoint().check(&Method::POST, uri.query()).is_err());
//! # Ok(())
//! # }
//! ```

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, PoisonError, RwLock};

use crate::endpoint::{ConfigError, Endpoint, OpenedPush};
use crate::message::Message;
use crate::query::CallbackQuery;
use crate::rejection::Rejection;

mod choose;

pub use choose::ChooseApp;

/// The name a request chose its app by: 1 to 64 ASCII letters, digits, `_`, `-` or `.`.
///
/// Cheap to clone (shared). The layer puts the chosen app's name in the handler's request
/// extensions, beside the [`PushInfo`](crate::PushInfo):
///
/// ```
/// use http::Request;
/// use wechat_push::{apps::AppName, Message};
///
/// fn app(req: &Request<Message>) -> Option<&str> {
///     req.extensions().get::<AppName>().map(AppName::as_str)
/// }
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AppName(Arc<str>);

impl AppName {
    /// `name`, if it is 1 to 64 ASCII letters, digits, `_`, `-` or `.` (an AppID, a CorpID or
    /// a name of your own all are).
    pub fn new(name: &str) -> Result<Self, ConfigError> {
        if is_name(name) {
            Ok(Self(name.into()))
        } else {
            Err(ConfigError::AppName)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `name` can name an app. A path segment with anything else (`%`, `/`, spaces)
/// names none.
fn is_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl Hash for AppName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes: the map is looked up by `&str`.
        self.as_str().hash(state);
    }
}

impl Borrow<str> for AppName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Deref for AppName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for AppName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for AppName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for AppName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One app: its name and its [`Endpoint`] (Token, keys, AppID), and, for an Open Platform
/// authoriser, the account its pushes must be addressed to ([`recipient`](Self::recipient)),
/// for a WeCom app, the agent they must be for ([`agent`](Self::agent)).
///
/// `Debug` redacts the Token and the keys (it shows the endpoint's own `Debug`).
#[derive(Clone, Debug)]
pub struct App {
    name: AppName,
    endpoint: Endpoint,
    recipient: Option<Box<str>>,
    agent: Option<u64>,
    extensions: http::Extensions,
}

impl App {
    /// The app `name` (see [`AppName`]), checked by `endpoint`.
    pub fn new(name: &str, endpoint: Endpoint) -> Result<Self, ConfigError> {
        Ok(Self {
            name: AppName::new(name)?,
            endpoint,
            recipient: None,
            agent: None,
            extensions: http::Extensions::new(),
        })
    }

    /// Refuses a push whose (decrypted) `ToUserName` is not `original_id`
    /// ([`Rejection::WrongRecipient`], 403).
    ///
    /// For the Open Platform's message URL (`…/$APPID$/…`): every authoriser's pushes are
    /// signed and sealed with the component's one Token and key and carry the component's
    /// AppID, so a push for authoriser A verifies and decrypts just as well at B's path. Only
    /// the decrypted `ToUserName`, the authoriser's original id (`gh_…`, from
    /// `api_get_authorizer_info`'s `authorizer_info.user_name`), says whom it is for. Also
    /// useful for apps whose admins gave them the same Token and key. In plaintext mode the
    /// body is not signed, and the check is only as good as the body.
    #[must_use]
    pub fn recipient(mut self, original_id: impl Into<String>) -> Self {
        self.recipient = Some(original_id.into().into_boxed_str());
        self
    }

    /// Refuses a push whose (decrypted) `AgentID` is not `agent_id`, or that carries none
    /// ([`Rejection::WrongAgent`], 403).
    ///
    /// For WeCom apps (企业微信 自建应用) of one corp: their pushes are all sealed for the
    /// corp's CorpID and addressed (`ToUserName`) to it, so when two agents' callbacks share a
    /// Token and key (the admin may give them the same), a push for agent 1000002 verifies and
    /// decrypts just as well at agent 1000003's path. Only the decrypted `AgentID`
    /// ([`Message::agent_id`]) says which agent it is for; the envelope's `AgentID` is not
    /// signed and never read. A push without one (a corp-level event on an agent's URL) is
    /// refused too: it cannot be shown to be this agent's.
    ///
    /// ```
    /// use wechat_push::apps::App;
    /// use wechat_push::{EncodingAesKey, Endpoint, ReceiveId};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let key = EncodingAesKey::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")?;
    /// let corp = ReceiveId::CorpId("ww1436e0e65a779aee".into());
    /// let hr = App::new("hr", Endpoint::wecom("CorpToken1", key, corp)?)?.agent(1000002);
    /// assert_eq!(hr.expected_agent(), Some(1000002));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn agent(mut self, agent_id: u64) -> Self {
        self.agent = Some(agent_id);
        self
    }

    /// Adds `value` to the app's extensions: the layer inserts them into the handler's
    /// request (in the typed and the pass-through modes), beside the [`AppName`], so per-app
    /// data (the app's API client, its greeting) travels with the app instead of in a second
    /// map kept in sync by hand. One value per type: a second value of a type replaces the
    /// first. In axum, extract it with `axum::Extension<T>`; in a typed handler,
    /// `req.extensions().get::<T>()`.
    ///
    /// ```
    /// use wechat_push::apps::App;
    /// use wechat_push::Endpoint;
    ///
    /// #[derive(Clone)]
    /// struct Greeting(&'static str);
    ///
    /// # fn main() -> Result<(), wechat_push::ConfigError> {
    /// let shop = App::new("shop", Endpoint::new("ShopToken1")?)?.extension(Greeting("welcome to the shop"));
    /// assert_eq!(shop.extensions().get::<Greeting>().map(|g| g.0), Some("welcome to the shop"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// The app's extensions (see [`extension`](Self::extension)).
    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }

    /// Copies the app's extensions into a request's (nothing to do for an app without any).
    pub(crate) fn extend_request(&self, extensions: &mut http::Extensions) {
        if !self.extensions.is_empty() {
            extensions.extend(self.extensions.clone());
        }
    }

    /// The app's name.
    pub fn name(&self) -> &AppName {
        &self.name
    }

    /// The app's endpoint: its checks, its keys.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The account the app's pushes must be addressed to, when set.
    pub fn expected_recipient(&self) -> Option<&str> {
        self.recipient.as_deref()
    }

    /// The WeCom agent the app's pushes must be for, when set.
    pub fn expected_agent(&self) -> Option<u64> {
        self.agent
    }

    /// [`Endpoint::open`], then the [`recipient`](Self::recipient) and
    /// [`agent`](Self::agent) checks.
    pub fn open<'a>(
        &self,
        query: CallbackQuery,
        body: &'a [u8],
    ) -> Result<OpenedPush<'a>, Rejection> {
        let opened = self.endpoint.open(query, body)?;
        self.check_recipient(opened.message())?;
        Ok(opened)
    }

    /// The [`recipient`](Self::recipient) and [`agent`](Self::agent) checks alone, on an
    /// opened push's message.
    pub fn check_recipient(&self, message: &Message) -> Result<(), Rejection> {
        if let Some(expected) = &self.recipient {
            if **expected != *message.to_user() {
                return Err(Rejection::WrongRecipient);
            }
        }
        match self.agent {
            Some(expected) if message.agent_id() != Some(expected) => Err(Rejection::WrongAgent),
            _ => Ok(()),
        }
    }
}

type Map = HashMap<AppName, Arc<App>>;

/// The apps one layer serves, by name. Add or replace an app at any time, also while serving:
/// the next request sees it.
///
/// A handle: clones share the registry (keep one to change the apps the layer serves). A
/// request's lookup holds a read lock for the hash lookup and the `Arc` clone of its app, no
/// longer; a change holds the write lock for one insert or removal. The registry holds only
/// what is inserted: a request naming anything else is refused, never looked up elsewhere.
#[derive(Clone, Default)]
pub struct Apps {
    map: Arc<RwLock<Map>>,
}

impl fmt::Debug for Apps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Apps")
            .field("names", &self.names())
            .finish()
    }
}

impl Apps {
    /// No apps yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `app`, or replaces the app of that name; the replaced app is returned. Requests
    /// already past the lookup finish with the app they chose.
    pub fn insert(&self, app: App) -> Option<Arc<App>> {
        let app = Arc::new(app);
        self.write().insert(app.name.clone(), app)
    }

    /// Removes the app `name`; later requests naming it are refused.
    pub fn remove(&self, name: &str) -> Option<Arc<App>> {
        self.write().remove(name)
    }

    /// The app `name`.
    pub fn get(&self, name: &str) -> Option<Arc<App>> {
        self.read().get(name).cloned()
    }

    /// How many apps there are.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The apps' names, sorted.
    pub fn names(&self) -> Vec<AppName> {
        let mut names: Vec<AppName> = self.read().keys().cloned().collect();
        names.sort();
        names
    }

    // No code panics while holding the lock (a map insert or removal, a lookup, a clone), so
    // a poisoned lock still guards a whole map: go on with it.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FromIterator<App> for Apps {
    fn from_iter<I: IntoIterator<Item = App>>(iter: I) -> Self {
        let map: Map = iter
            .into_iter()
            .map(|app| (app.name.clone(), Arc::new(app)))
            .collect();
        Self {
            map: Arc::new(RwLock::new(map)),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Uri};

    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    fn apps() -> Apps {
        ["a", "b", "wxba5fad812f8e6fb9"]
            .into_iter()
            .map(|n| App::new(n, Endpoint::new("Token123").unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn names() {
        for good in ["a", "wx1234567890abcdef", "shop-1.v2_x", &"a".repeat(64)] {
            assert!(AppName::new(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "a%2Fb", "a b", "应用", &"a".repeat(65)] {
            assert_eq!(
                AppName::new(bad).unwrap_err(),
                ConfigError::AppName,
                "{bad}"
            );
        }
    }

    #[test]
    fn choosing() {
        let apps = apps();
        let h = HeaderMap::new();
        let name = |c: &ChooseApp, u: &str| c.app(&apps, &uri(u), &h).map(|a| a.name().clone());
        let last = ChooseApp::last_segment();
        assert_eq!(name(&last, "/wechat/a?x=1").unwrap(), "a");
        assert_eq!(name(&last, "/wechat/b/").unwrap(), "b");
        assert_eq!(name(&last, "/b").unwrap(), "b");
        for none in ["/wechat/c", "/wechat/", "/", "/wechat/a%20", "/wechat/A"] {
            assert!(name(&last, none).is_none(), "{none}");
        }
        let first = ChooseApp::segment(0);
        assert_eq!(
            name(&first, "/wxba5fad812f8e6fb9/revice?signature=x").unwrap(),
            "wxba5fad812f8e6fb9"
        );
        assert!(name(&ChooseApp::segment(3), "/a/b").is_none());
        let by_header = ChooseApp::with(|_: &Uri, h: &HeaderMap| h.get("x-app")?.to_str().ok());
        let mut headers = HeaderMap::new();
        headers.insert("x-app", "b".parse().unwrap());
        assert_eq!(
            by_header.app(&apps, &uri("/"), &headers).unwrap().name(),
            "b"
        );
    }

    #[test]
    fn insert_replace_remove() {
        let apps = apps();
        let handle = apps.clone();
        assert_eq!(apps.len(), 3);
        let old = handle.insert(App::new("a", Endpoint::new("Other123").unwrap()).unwrap());
        assert!(old.is_some());
        assert_eq!(apps.len(), 3);
        assert!(handle
            .insert(App::new("c", Endpoint::new("Tok").unwrap()).unwrap())
            .is_none());
        assert_eq!(apps.names(), ["a", "b", "c", "wxba5fad812f8e6fb9"]);
        assert!(apps.remove("c").is_some());
        assert!(apps.get("c").is_none());
        assert!(apps.remove("c").is_none());
    }

    #[test]
    fn the_agent_check() {
        let push = |agent: &str| {
            Message::from_xml(
                format!(
                    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>u</FromUserName>\
                     <CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content>\
                     <MsgId>1</MsgId>{agent}</xml>"
                )
                .as_bytes(),
            )
            .unwrap()
        };
        let app = |agent: Option<u64>| {
            let app = App::new("hr", Endpoint::new("Token123").unwrap()).unwrap();
            match agent {
                Some(id) => app.agent(id),
                None => app,
            }
        };
        let bound = app(Some(1000002));
        assert_eq!(bound.expected_agent(), Some(1000002));
        assert_eq!(
            bound.check_recipient(&push("<AgentID>1000002</AgentID>")),
            Ok(())
        );
        for other in ["<AgentID>1000003</AgentID>", "<AgentID>x</AgentID>", ""] {
            assert_eq!(
                bound.check_recipient(&push(other)),
                Err(Rejection::WrongAgent),
                "{other:?}"
            );
        }
        // Unbound: any agent, or none.
        assert_eq!(app(None).expected_agent(), None);
        for any in ["<AgentID>1000003</AgentID>", ""] {
            assert_eq!(app(None).check_recipient(&push(any)), Ok(()), "{any:?}");
        }
        // Both checks: the recipient first.
        let both = app(Some(1000002)).recipient("ww0000000000000000");
        assert_eq!(
            both.check_recipient(&push("<AgentID>1000002</AgentID>")),
            Err(Rejection::WrongRecipient)
        );
        assert_eq!(Rejection::WrongAgent.status(), http::StatusCode::FORBIDDEN);
    }

    #[test]
    fn debug_redacts_the_tokens() {
        let apps: Apps = [App::new("a", Endpoint::new("Secret123").unwrap()).unwrap()]
            .into_iter()
            .collect();
        let text = format!("{apps:?} {:?}", apps.get("a").unwrap());
        assert!(!text.contains("Secret123"), "{text}");
    }
}
