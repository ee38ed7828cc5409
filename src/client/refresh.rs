//! The access token: read from the store, or fetched once for every concurrent caller, its
//! failure shared and backed off.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body::Body as HttpBody;
use serde::Serialize;
use serde_json::Value;
use tower::Service;

use crate::body::Body;
use crate::store::{BoxError, StoreError};

use super::wire::{as_i64, build_request, json_bytes, percent_encode};
use super::{AccessToken, BadResponseKind, Client, Error, TokenEndpoint};

impl<S, B> Client<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    /// A valid access token: the cached one, or a freshly fetched one.
    ///
    /// Concurrent callers share one fetch. Useful for APIs this client does not wrap; if
    /// such a call answers 40001, 40014 or 42001, call [`invalidate_token`](Self::invalidate_token)
    /// with the token that failed.
    ///
    /// If the [`TokenStore`](super::TokenStore) fails, the client carries on with the last
    /// token this process read or fetched, and fetches one itself (one fetch for the whole
    /// process) when it has none: a store outage is logged once, never returned.
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        if let Some(token) = self.local_valid_token() {
            return Ok(token);
        }
        if let Some(token) = self.stored_token().await {
            return Ok(token);
        }
        self.refresh().await
    }

    /// Drops the cached token if it is still `failed` (compare-then-invalidate); returns
    /// whether it did. A newer token stored meanwhile is kept. If the store fails, only this
    /// process's copy is dropped.
    pub async fn invalidate_token(&self, failed: &AccessToken) -> Result<bool, Error> {
        let inner = &*self.inner;
        let dropped_here = {
            let mut local = inner.local_token();
            let same = local
                .token
                .as_ref()
                .is_some_and(|t| t.value() == failed.value());
            if same {
                local.token = None;
            }
            local.rejected = Some(failed.clone());
            same
        };
        let dropped = match inner
            .store
            .invalidate(&inner.token_key, failed.value())
            .await
        {
            Ok(dropped) => {
                self.store_answered();
                dropped
            }
            Err(e) => {
                self.store_failed(&e);
                dropped_here
            }
        };
        debug!(appid = %inner.appid, dropped, "access token rejected by WeChat");
        Ok(dropped)
    }

    /// This process's copy of the token, while it is valid: a send costs no store round trip
    /// (with Redis, one less per push). A token another instance saw rejected is used here
    /// until WeChat rejects it here too; the send that fails invalidates it and the retry reads
    /// the store again (that one send is the price of no store round trip per send).
    fn local_valid_token(&self) -> Option<AccessToken> {
        let inner = &*self.inner;
        let now = inner.clock.now();
        inner
            .local_token()
            .token
            .as_ref()
            .filter(|t| t.is_valid_at(now))
            .cloned()
    }

    /// The store's valid token; this process's own copy if the store fails.
    async fn stored_token(&self) -> Option<AccessToken> {
        let inner = &*self.inner;
        let token = match inner.store.get(&inner.token_key).await {
            Ok(token) => {
                self.store_answered();
                let mut local = inner.local_token();
                match token {
                    // A read that raced this process's rejection of the token (sent before
                    // it was dropped, answered after) does not bring it back.
                    Some(t) if local.is_rejected(&t) => None,
                    token => {
                        local.token.clone_from(&token);
                        token
                    }
                }
            }
            Err(e) => {
                self.store_failed(&e);
                inner.local_token().token.clone()
            }
        };
        let now = inner.clock.now();
        token.filter(|t| t.is_valid_at(now))
    }

    fn store_failed(&self, _error: &StoreError) {
        let _first = self.inner.outage.failed();
        #[cfg(feature = "tracing")]
        if _first {
            tracing::warn!(appid = %self.inner.appid, error = %_error, "token store failed; using this process's token and fetching it here (further failures logged at debug until the store answers again)");
        } else {
            debug!(appid = %self.inner.appid, error = %_error, "token store failed");
        }
    }

    fn store_answered(&self) {
        if self.inner.outage.answered() {
            #[cfg(feature = "tracing")]
            tracing::info!(appid = %self.inner.appid, "token store answering again");
        }
    }

    /// A new token, fetched by one of the concurrent callers in this process; the others
    /// get its outcome, the token or the error.
    async fn refresh(&self) -> Result<AccessToken, Error> {
        self.inner.flight.run(|| self.refresh_shared()).await
    }

    async fn refresh_shared(&self) -> Result<AccessToken, Error> {
        let inner = &*self.inner;
        if let Some(token) = self.stored_token().await {
            return Ok(token);
        }
        // One refresh at a time across instances sharing the store.
        let mut delay = Duration::from_millis(25);
        let start = Instant::now();
        let give_up = start
            .checked_add(inner.lease.saturating_add(Duration::from_secs(1)))
            .unwrap_or(start);
        let locked = loop {
            match inner
                .store
                .try_lock(&inner.lock_key, &inner.owner, inner.lease)
                .await
            {
                Ok(true) => break true,
                Ok(false) => {}
                // No lock to be had: this process fetches on its own (still once for all
                // its callers).
                Err(e) => {
                    self.store_failed(&e);
                    break false;
                }
            }
            if let Some(token) = self.stored_token().await {
                return Ok(token);
            }
            if Instant::now() >= give_up {
                // The store kept the lock past its lease; fetching anyway is safe with
                // stable_token and better than failing.
                break false;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        };
        let result = self.refresh_locked().await;
        if locked {
            // If this fails, the lease runs out.
            let _ = inner.store.unlock(&inner.lock_key, &inner.owner).await;
        }
        result
    }

    async fn refresh_locked(&self) -> Result<AccessToken, Error> {
        let inner = &*self.inner;
        if let Some(token) = self.stored_token().await {
            return Ok(token);
        }
        let token = self.fetch_token().await?;
        // Kept here whatever the store does: a token that could not be shared is still good.
        {
            let mut local = inner.local_token();
            // WeChat handed this value out again: it is no longer the rejected one.
            if local.is_rejected(&token) {
                local.rejected = None;
            }
            local.token = Some(token.clone());
        }
        match inner.store.set(&inner.token_key, token.clone()).await {
            Ok(()) => self.store_answered(),
            Err(e) => self.store_failed(&e),
        }
        Ok(token)
    }

    async fn fetch_token(&self) -> Result<AccessToken, Error> {
        let inner = &*self.inner;
        debug!(appid = %inner.appid, endpoint = ?inner.endpoint, "fetching access token");
        let request = match inner.endpoint {
            TokenEndpoint::StableToken => {
                #[derive(Serialize)]
                struct StableTokenBody<'a> {
                    grant_type: &'static str,
                    appid: &'a str,
                    secret: &'a str,
                    force_refresh: bool,
                }
                let body = json_bytes(&StableTokenBody {
                    grant_type: "client_credential",
                    appid: &inner.appid,
                    secret: &inner.secret,
                    force_refresh: false,
                })?;
                let uri = format!("{}/cgi-bin/stable_token", inner.base);
                build_request(Method::POST, &uri, Some("application/json"), body)?
            }
            TokenEndpoint::Token => {
                let uri = format!(
                    "{}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
                    inner.base,
                    percent_encode(&inner.appid),
                    percent_encode(&inner.secret)
                );
                build_request(Method::GET, &uri, None, Bytes::new())?
            }
        };
        let now = inner.clock.now();
        let (status, answer) = self.execute(request).await?;
        let missing = |field| Error::BadResponse {
            status,
            kind: BadResponseKind::MissingField(field),
        };
        let value = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("access_token"))?;
        let expires_in = answer
            .get("expires_in")
            .and_then(as_i64)
            .ok_or_else(|| missing("expires_in"))?;
        let expires_in = u64::try_from(expires_in).unwrap_or(0).min(86_400 * 365);
        let lifetime = Duration::from_secs(expires_in).saturating_sub(margin(expires_in));
        let expires_at = now.checked_add(lifetime).unwrap_or(now);
        debug!(appid = %inner.appid, expires_in, "fetched access token");
        Ok(AccessToken::new(value, expires_at))
    }
}

/// How long before the announced expiry a token stops being used.
fn margin(expires_in: u64) -> Duration {
    if expires_in >= 1200 {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(expires_in / 4)
    }
}
