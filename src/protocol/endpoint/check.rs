//! [`Endpoint::check`]: what can be decided about a request before its body is read (method,
//! `signature`, freshness, the handshake).

use bytes::Bytes;
use http::Method;

use super::{Endpoint, Platform};
use crate::query::{CallbackQuery, EncryptType, QueryError, Signed};
use crate::rejection::Rejection;
use crate::signature;

impl Endpoint {
    /// Checks method, signature and freshness: everything that can be decided before the body
    /// is read. Only GET and POST pass; a GET must carry `echostr`.
    ///
    /// On a WeCom endpoint the GET is verified with `msg_signature` over the encrypted
    /// `echostr`, which is then decrypted: the handshake's body is its plaintext.
    pub fn check(&self, method: &Method, query: Option<&str>) -> Result<Verified, Rejection> {
        let is_get = method == Method::GET;
        if !is_get && method != Method::POST {
            return Err(Rejection::MethodNotAllowed);
        }
        let query = query.unwrap_or("");
        match self.platform {
            Platform::Classic => self.check_classic(is_get, query),
            Platform::WeCom { .. } | Platform::WeComRobot => self.check_wecom(is_get, query),
            Platform::Component => self.check_component(is_get, query),
        }
    }

    fn check_classic(&self, is_get: bool, query: &str) -> Result<Verified, Rejection> {
        let query = parse_query(query, Signed::Plain)?;
        self.check_signature(&query)?;
        self.check_fresh(&query)?;
        if is_get {
            return echo(&query);
        }
        match query.encrypt_type() {
            EncryptType::Aes if self.keys.is_none() => Err(Rejection::EncryptionNotConfigured),
            EncryptType::Plain if self.require_encryption => Err(Rejection::EncryptionRequired),
            _ => Ok(Verified::Push(query)),
        }
    }

    fn check_wecom(&self, is_get: bool, query: &str) -> Result<Verified, Rejection> {
        let query = parse_query(query, Signed::Message)?;
        if !is_get {
            // `msg_signature` covers the body's `Encrypt`: `open` verifies it.
            self.check_fresh(&query)?;
            return Ok(Verified::Push(query));
        }
        let echostr = query.echostr().ok_or(Rejection::MissingEchostr)?;
        self.verify_msg_signature(&query, echostr)?;
        self.check_fresh(&query)?;
        let keys = self
            .keys
            .as_ref()
            .ok_or(Rejection::EncryptionNotConfigured)?;
        let opened = keys.decrypt(echostr).map_err(Rejection::Decrypt)?;
        Ok(Verified::Handshake(Bytes::copy_from_slice(
            opened.as_bytes(),
        )))
    }

    fn check_component(&self, is_get: bool, query: &str) -> Result<Verified, Rejection> {
        let query = parse_query(query, Signed::Either)?;
        if is_get || !query.signature().is_empty() {
            if query.signature().is_empty() {
                return Err(Rejection::MissingSignature("signature"));
            }
            self.check_signature(&query)?;
        }
        self.check_fresh(&query)?;
        if is_get {
            return echo(&query);
        }
        if query.msg_signature().is_none() {
            return Err(Rejection::MissingMsgSignature);
        }
        Ok(Verified::Push(query))
    }

    fn check_signature(&self, query: &CallbackQuery) -> Result<(), Rejection> {
        if signature::verify(
            query.signature(),
            &self.token,
            query.timestamp(),
            query.nonce(),
        ) {
            Ok(())
        } else {
            Err(Rejection::BadSignature)
        }
    }

    fn check_fresh(&self, query: &CallbackQuery) -> Result<(), Rejection> {
        if let Some(tolerance) = self.tolerance {
            if self.now().abs_diff(query.timestamp_secs()) > tolerance.as_secs() {
                return Err(Rejection::StaleTimestamp {
                    timestamp: query.timestamp_secs(),
                    tolerance,
                });
            }
        }
        Ok(())
    }
}

fn parse_query(query: &str, signed: Signed) -> Result<CallbackQuery, Rejection> {
    CallbackQuery::parse_for(query, signed).map_err(|e| match e {
        QueryError::Missing(p) => Rejection::MissingSignature(p),
        e => Rejection::Query(e),
    })
}

/// The plain handshake: `echostr`, verbatim.
fn echo(query: &CallbackQuery) -> Result<Verified, Rejection> {
    match query.echostr() {
        Some(echo) => Ok(Verified::Handshake(Bytes::copy_from_slice(echo.as_bytes()))),
        None => Err(Rejection::MissingEchostr),
    }
}

/// A query that passed [`Endpoint::check`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Verified {
    /// A GET handshake: answer these bytes, verbatim, with 200: the `echostr`, or on WeCom
    /// its decrypted plaintext.
    Handshake(Bytes),
    /// A POST whose body is still to be read, then given to [`Endpoint::open`].
    Push(CallbackQuery),
}
