//! [`Endpoint::answer`]: the reply document, sealed when the push was.

use bytes::Bytes;

use super::{Endpoint, Platform, ReplyTo};
use crate::rejection::Rejection;
use crate::reply::{self, Reply, Sealer};

impl Endpoint {
    /// The answer to a push: the clear reply document, or the sealed envelope when the push
    /// was encrypted; acknowledgements (`success`, empty), and a [`Reply::Document`] that is
    /// not a reply document (`<xml…` or `{…`), always in clear.
    ///
    /// On WeCom, acknowledgements are an empty body (`success` on a
    /// [`ReceiveId::SuiteId`](super::ReceiveId::SuiteId) endpoint); see [`wecom`](Self::wecom)
    /// and [`wecom_robot`](Self::wecom_robot).
    ///
    /// Fails when the operating system's random source fails while sealing
    /// ([`Rejection::Random`]), and when the reply does not exist on this platform
    /// ([`Rejection::UnsupportedReply`]).
    pub fn answer(&self, to: &ReplyTo, reply: &Reply) -> Result<Answer, Rejection> {
        if let Some(ack) = reply.ack_body() {
            let ack: &'static [u8] = match self.platform {
                Platform::Classic | Platform::Component => ack,
                Platform::WeCom { success_ack: true } => b"success",
                Platform::WeCom { success_ack: false } | Platform::WeComRobot => b"",
            };
            return Ok(Answer {
                body: Bytes::from_static(ack),
                content_type: TEXT_PLAIN,
            });
        }
        if let Reply::Document(text) = reply {
            if !is_document(text) {
                // Not a reply document: nothing to seal, sent as it is.
                return Ok(Answer {
                    body: text.clone(),
                    content_type: TEXT_PLAIN,
                });
            }
        }
        if self.platform.is_wecom()
            && matches!(
                reply,
                Reply::Music(_) | Reply::TransferCustomerService { .. }
            )
        {
            return Err(Rejection::UnsupportedReply);
        }
        let now = self.now();
        let body = match (to.key, &self.keys) {
            (Some(id), Some(keys)) if self.platform == Platform::WeComRobot => {
                reply::seal_robot_reply(reply, keys.key(id), &self.token, now, to.nonce())?
            }
            (Some(id), Some(keys)) => {
                let sealer = Sealer::new(to.format, keys.key(id), keys.app_id(), &self.token, now);
                reply::seal_reply(reply, to.addressee(), to.sender(), sealer)
                    .map_err(|_| Rejection::Random)?
            }
            _ => reply.encode(to.format, to.addressee(), to.sender(), now),
        };
        Ok(Answer {
            body: Bytes::from(body),
            content_type: to.format.content_type(),
        })
    }
}

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Whether `body` is a reply document (`<xml…` or `{…`, after leading white space): what is
/// sealed for an encrypted push. Anything else (`ok`, `success`) is sent as it is.
pub(crate) fn is_document(body: &[u8]) -> bool {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let body = &body[start..];
    body.starts_with(b"<xml") || body.starts_with(b"{")
}

/// The body and content type answering a push, from [`Endpoint::answer`]. Sent with 200.
#[derive(Clone, Debug)]
pub struct Answer {
    body: Bytes,
    content_type: &'static str,
}

impl Answer {
    /// The response body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The response body, owned.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// The `Content-Type` to send it with.
    pub fn content_type(&self) -> &'static str {
        self.content_type
    }
}
