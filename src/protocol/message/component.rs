//! Authorisation events of an Open Platform third-party platform (`InfoType`, docs/platforms.md
//! §2.3). They have no `ToUserName`, `FromUserName` or `MsgType`: the component's `AppId`
//! stands for the receiver.

use std::borrow::Cow;

use crate::codec::{DecodeError, Doc};

/// A third-party platform's authorisation event, by `InfoType` (matched case-insensitively,
/// as wechatpy does).
///
/// ```
/// use wechat_push::message::{ComponentEvent, Kind, Message};
///
/// let msg = Message::from_xml(b"<xml><AppId>wx134c8103faa5a59e</AppId>\
///     <CreateTime>1413192605</CreateTime><InfoType>component_verify_ticket</InfoType>\
///     <ComponentVerifyTicket>ticket@@@1</ComponentVerifyTicket></xml>")?;
/// assert_eq!(msg.to_user(), "wx134c8103faa5a59e");
/// let Kind::Component(ComponentEvent::VerifyTicket { ticket, .. }) = msg.kind() else {
///     unreachable!()
/// };
/// assert_eq!(ticket, "ticket@@@1");
/// # Ok::<(), wechat_push::codec::DecodeError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComponentEvent {
    /// `component_verify_ticket`: pushed every 10 minutes, valid 12 hours, what the
    /// platform's `component_access_token` is fetched with. Keep the latest (see
    /// [`TicketStore`](crate::ticket::TicketStore)).
    #[non_exhaustive]
    VerifyTicket {
        /// `ComponentVerifyTicket`.
        ticket: String,
    },
    /// `authorized`: an account authorised the platform.
    Authorized(Authorization),
    /// `updateauthorized`: an account changed the permissions it granted.
    UpdateAuthorized(Authorization),
    /// `unauthorized`: an account withdrew its authorisation; stop using its tokens.
    #[non_exhaustive]
    Unauthorized {
        /// `AuthorizerAppid`.
        authorizer_app_id: String,
    },
    /// Any other `InfoType` (`notify_third_fasteregister`, …); its fields are in
    /// [`Message::extra`](super::Message::extra).
    Unknown {
        /// The raw `InfoType`.
        info_type: String,
    },
}

/// The body of `authorized` and `updateauthorized`. Exchange the code with
/// `api_query_auth` after answering, not inside the 5-second window.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Authorization {
    /// `AuthorizerAppid`: the account that authorised the platform.
    pub authorizer_app_id: String,
    /// `AuthorizationCode`.
    pub authorization_code: String,
    /// `AuthorizationCodeExpiredTime`, as sent.
    pub authorization_code_expired_time: u64,
    /// `PreAuthCode`.
    pub pre_auth_code: Option<String>,
}

impl ComponentEvent {
    /// The `InfoType` value (the documented ones in lower case).
    pub fn info_type(&self) -> &str {
        match self {
            Self::VerifyTicket { .. } => "component_verify_ticket",
            Self::Authorized(_) => "authorized",
            Self::UpdateAuthorized(_) => "updateauthorized",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Unknown { info_type } => info_type,
        }
    }

    pub(super) fn from_doc(
        info_type: Cow<'_, str>,
        doc: &mut Doc<'_>,
    ) -> Result<Self, DecodeError> {
        let is = |name: &str| info_type.eq_ignore_ascii_case(name);
        Ok(if is("component_verify_ticket") {
            Self::VerifyTicket {
                ticket: doc.string("ComponentVerifyTicket")?,
            }
        } else if is("authorized") {
            Self::Authorized(authorization(doc)?)
        } else if is("updateauthorized") {
            Self::UpdateAuthorized(authorization(doc)?)
        } else if is("unauthorized") {
            Self::Unauthorized {
                authorizer_app_id: doc.string("AuthorizerAppid")?,
            }
        } else {
            Self::Unknown {
                info_type: info_type.into_owned(),
            }
        })
    }
}

fn authorization(doc: &mut Doc<'_>) -> Result<Authorization, DecodeError> {
    Ok(Authorization {
        authorizer_app_id: doc.string("AuthorizerAppid")?,
        authorization_code: doc.string("AuthorizationCode")?,
        authorization_code_expired_time: doc
            .required("AuthorizationCodeExpiredTime")?
            .to_u64("AuthorizationCodeExpiredTime")?,
        pre_auth_code: doc.opt_string("PreAuthCode")?,
    })
}
