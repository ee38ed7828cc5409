//! How a request names its app: [`ChooseApp`].

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, Uri};

use super::{App, Apps};

/// A function reading an app's name from a request's URI and headers.
type AppKey = dyn for<'r> Fn(&'r Uri, &'r HeaderMap) -> Option<&'r str> + Send + Sync;

/// How a request names its app: a segment of its path (`/wechat/{app}`, the Open Platform's
/// `/$APPID$/…`), or a function of its URI and headers.
///
/// Whatever names the app is not authenticated (neither the path nor the query is signed):
/// the chosen app's own signature check is what authenticates the request.
#[derive(Clone)]
pub struct ChooseApp(Choose);

#[derive(Clone)]
enum Choose {
    LastSegment,
    Segment(usize),
    With(Arc<AppKey>),
}

impl fmt::Debug for ChooseApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Choose::LastSegment => f.write_str("ChooseApp::last_segment()"),
            Choose::Segment(i) => write!(f, "ChooseApp::segment({i})"),
            Choose::With(_) => f.write_str("ChooseApp::with(..)"),
        }
    }
}

impl ChooseApp {
    /// The path's last segment: `shop` in `/wechat/shop` (and in `/wechat/shop/`), as with
    /// axum's `/wechat/{app}`, however the router is nested.
    pub fn last_segment() -> Self {
        Self(Choose::LastSegment)
    }

    /// The path's segment `index`, from 0: `segment(0)` is the authoriser's AppID in the Open
    /// Platform's `/$APPID$/callback`, `segment(1)` in `/aaa/$APPID$/bbb/cgi`. The path is the
    /// one the layer sees (a router that strips a prefix strips it first).
    pub fn segment(index: usize) -> Self {
        Self(Choose::Segment(index))
    }

    /// A function of the request's URI and headers, for a query parameter (EasyWeChat's
    /// `?id=`) or a header set by a proxy:
    ///
    /// ```
    /// use wechat_push::apps::ChooseApp;
    ///
    /// let by_query = ChooseApp::with(|uri, _headers| {
    ///     uri.query()?.split('&').find_map(|pair| pair.strip_prefix("app="))
    /// });
    /// # let _ = by_query;
    /// ```
    pub fn with<F>(key: F) -> Self
    where
        F: for<'r> Fn(&'r Uri, &'r HeaderMap) -> Option<&'r str> + Send + Sync + 'static,
    {
        Self(Choose::With(Arc::new(key)))
    }

    /// The name this request gives, if any.
    pub fn name<'r>(&self, uri: &'r Uri, headers: &'r HeaderMap) -> Option<&'r str> {
        let path = uri.path();
        match &self.0 {
            Choose::LastSegment => {
                let path = path.strip_suffix('/').unwrap_or(path);
                path.rsplit('/').next()
            }
            Choose::Segment(index) => path.trim_start_matches('/').split('/').nth(*index),
            Choose::With(key) => key(uri, headers),
        }
    }

    /// The app of `apps` this request names; `None` when it names none, or one that is not
    /// configured.
    pub fn app(&self, apps: &Apps, uri: &Uri, headers: &HeaderMap) -> Option<Arc<App>> {
        // Only valid names are ever inserted, so anything else finds nothing.
        self.name(uri, headers).and_then(|name| apps.get(name))
    }
}
