//! [`Client`]: the customer-service calls, each with the shared access token.

use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::Method;
use http_body::Body as HttpBody;
use serde::Serialize;
use serde_json::{Map, Value};
use tower::Service;

use crate::body::Body;
use crate::store::{BoxError, Outage};

use super::message::{SendBody, TypingBody};
use super::retry::{self, FIRST_RETRY, LAST_RETRY};
use super::wire::{
    self, as_i64, build_request, json_bytes, parse_answer, percent_encode, read_body,
};
use super::{
    flight, AccessToken, BadResponseKind, BuildError, ClientBuilder, Clock, CustomMessage, Error,
    HttpsTransport, Media, MediaType, TokenEndpoint, TokenStore, TypingCommand, UploadedMedia,
};

/// The customer-service API client. Cheap to clone: clones share the token and the
/// transport's connection pool.
///
/// See the [module docs](super) for an example. `Debug` prints neither the secret nor the
/// token.
pub struct Client<S = HttpsTransport> {
    pub(super) inner: Arc<Inner>,
    pub(super) transport: S,
}

pub(super) struct Inner {
    pub(super) appid: String,
    pub(super) secret: String,
    pub(super) base: String,
    pub(super) endpoint: TokenEndpoint,
    pub(super) store: Arc<dyn TokenStore>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) body_limit: usize,
    pub(super) lease: Duration,
    /// How long a call keeps trying (see [`ClientBuilder::retry_bound`]).
    pub(super) bound: Duration,
    pub(super) token_key: String,
    pub(super) lock_key: String,
    pub(super) owner: String,
    pub(super) flight: flight::Flight,
    /// The last token this process read from the store or fetched, and the last one WeChat
    /// rejected here.
    pub(super) local: Mutex<LocalToken>,
    /// Whether the store is failing (one warning per outage).
    pub(super) outage: Outage,
}

/// This process's copy of the token (used while it is valid, and while the store fails), and
/// the value WeChat last rejected here: a store read that raced the rejection (sent before
/// the token was dropped, answered after) must not bring it back.
#[derive(Default)]
pub(super) struct LocalToken {
    pub(super) token: Option<AccessToken>,
    pub(super) rejected: Option<AccessToken>,
}

impl LocalToken {
    /// Whether WeChat rejected `token` here.
    pub(super) fn is_rejected(&self, token: &AccessToken) -> bool {
        self.rejected
            .as_ref()
            .is_some_and(|r| r.value() == token.value())
    }
}

impl Inner {
    pub(super) fn local_token(&self) -> MutexGuard<'_, LocalToken> {
        // Every update is a single assignment: a panic elsewhere cannot leave it half-done.
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: Clone> Clone for Client<S> {
    fn clone(&self) -> Self {
        Client {
            inner: Arc::clone(&self.inner),
            transport: self.transport.clone(),
        }
    }
}

impl<S> fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("appid", &self.inner.appid)
            .field("secret", &"<redacted>")
            .field("base_url", &self.inner.base)
            .field("token_endpoint", &self.inner.endpoint)
            .field("token_store", &self.inner.store)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `appid` with the default transport and settings.
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> Result<Self, BuildError> {
        Self::builder(appid, secret).build()
    }

    /// A builder for a client of `appid`.
    pub fn builder(appid: impl Into<String>, secret: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(appid.into(), secret.into())
    }
}

impl<S> Client<S> {
    /// The app's AppID.
    pub fn appid(&self) -> &str {
        &self.inner.appid
    }

    /// The base URL requests go to (without a trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The transport.
    pub fn transport(&self) -> &S {
        &self.transport
    }
}

impl<S, B> Client<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    /// Sends a customer-service message to the user `touser` (an openid).
    ///
    /// Errors worth handling: [`ApiErrorKind::WindowClosed`](super::ApiErrorKind::WindowClosed) (45015) and
    /// [`ApiErrorKind::QuotaExceeded`](super::ApiErrorKind::QuotaExceeded) (45047) mean the message cannot be sent now;
    /// [`ApiErrorKind::InvalidOpenId`](super::ApiErrorKind::InvalidOpenId) (40003) that `touser` is not this app's user.
    pub async fn send(&self, touser: &str, message: &CustomMessage) -> Result<(), Error> {
        let body = json_bytes(&SendBody { touser, message })?;
        self.call_json("cgi-bin/message/custom/send", body).await?;
        Ok(())
    }

    /// Sends a text message (shorthand for [`send`](Self::send) with [`CustomMessage::text`](super::CustomMessage::text)).
    pub async fn send_text(&self, touser: &str, content: &str) -> Result<(), Error> {
        self.send(touser, &CustomMessage::text(content)).await
    }

    /// Sends an image message (shorthand for [`send`](Self::send) with [`CustomMessage::image`](super::CustomMessage::image)).
    pub async fn send_image(&self, touser: &str, media_id: &str) -> Result<(), Error> {
        self.send(touser, &CustomMessage::image(media_id)).await
    }

    /// Shows or hides the typing indicator for `touser` (`cgi-bin/message/custom/typing`).
    pub async fn typing(&self, touser: &str, command: TypingCommand) -> Result<(), Error> {
        let body = json_bytes(&TypingBody { touser, command })?;
        self.call_json("cgi-bin/message/custom/typing", body)
            .await?;
        Ok(())
    }

    /// Uploads temporary media (`cgi-bin/media/upload?type=…`, multipart field `media`)
    /// and returns its `media_id`, valid for 3 days.
    pub async fn upload_media(
        &self,
        kind: MediaType,
        media: &Media,
    ) -> Result<UploadedMedia, Error> {
        let (body, boundary) = wire::multipart(media)?;
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let query = format!("type={}", kind.as_str());
        let answer = self
            .call_with_token("cgi-bin/media/upload", &query, &content_type, body)
            .await?;
        let media_id = answer
            .get("media_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(Error::BadResponse {
                status: http::StatusCode::OK,
                kind: BadResponseKind::MissingField("media_id"),
            })?
            .to_owned();
        let created_at = answer.get("created_at").and_then(as_i64);
        Ok(UploadedMedia {
            media_id,
            created_at,
        })
    }

    /// Posts a JSON body to any other API that takes `?access_token=` (for example
    /// `cgi-bin/message/subscribe/send`), with the same token handling, and returns the
    /// answer's JSON object.
    pub async fn post_json<T>(&self, path: &str, body: &T) -> Result<Map<String, Value>, Error>
    where
        T: Serialize + ?Sized,
    {
        let body = json_bytes(body)?;
        self.call_json(path.trim_start_matches('/'), body).await
    }

    async fn call_json(&self, path: &str, body: Bytes) -> Result<Map<String, Value>, Error> {
        self.call_with_token(path, "", "application/json", body)
            .await
    }

    /// Calls `path` with the token; on a token error drops that token, fetches once and
    /// retries once; retries with back-off, within the retry bound, a call answered with
    /// `errcode` -1 or one that could not connect.
    async fn call_with_token(
        &self,
        path: &str,
        query: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Map<String, Value>, Error> {
        let deadline = self.deadline();
        let mut token_retried = false;
        let mut delay = FIRST_RETRY;
        loop {
            let token = self.access_token_until(deadline).await?;
            match self
                .call_once(path, query, content_type, body.clone(), &token)
                .await
            {
                Err(Error::Api(e)) if e.is_token_error() && !token_retried => {
                    token_retried = true;
                    self.invalidate_token(&token).await?;
                }
                Err(e) if retry::worth_retrying(&e) && Instant::now() + delay < deadline => {
                    debug!(appid = %self.inner.appid, path, error = %e, ?delay, "call failed before WeChat took it; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(LAST_RETRY);
                }
                other => return other,
            }
        }
    }

    async fn call_once(
        &self,
        path: &str,
        query: &str,
        content_type: &str,
        body: Bytes,
        token: &AccessToken,
    ) -> Result<Map<String, Value>, Error> {
        let sep = if query.is_empty() { "" } else { "&" };
        let uri = format!(
            "{}/{path}?access_token={}{sep}{query}",
            self.inner.base,
            percent_encode(token.value())
        );
        let request = build_request(Method::POST, &uri, Some(content_type), body)?;
        Ok(self.execute(request).await?.1)
    }

    pub(super) async fn execute(
        &self,
        request: http::Request<Body>,
    ) -> Result<(http::StatusCode, Map<String, Value>), Error> {
        let mut transport = self.transport.clone();
        poll_fn(|cx| transport.poll_ready(cx))
            .await
            .map_err(|e| Error::Transport(e.into()))?;
        let response = transport
            .call(request)
            .await
            .map_err(|e| Error::Transport(e.into()))?;
        let (parts, body) = response.into_parts();
        let bytes = read_body(body, self.inner.body_limit, parts.status).await?;
        Ok((parts.status, parse_answer(parts.status, &bytes)?))
    }
}
