//! WeCom intelligent-robot pushes (智能机器人, docs/platforms.md §1.10): JSON with lower-case keys.

use std::borrow::Cow;

use super::wecom::keep_rest;
use super::{node_doc, Kind, Message};
use crate::codec::{self, DecodeError, Doc, Format};

/// A WeCom intelligent robot's push. The [`Message`] around it has the bot (`aibotid`) as
/// [`to_user`](Message::to_user), the member (`from.userid`) as
/// [`from_user`](Message::from_user), and `create_time` (events only; 0 otherwise) as
/// [`create_time`](Message::create_time). Everything else it carried (`from.corpid`,
/// `quote`, `mixed.msg_item`, the event's body, …) is in [`Message::extra`].
///
/// ```
/// use wechat_push::message::{Kind, Message, RobotContent};
///
/// let msg = Message::from_robot_json(br#"{"msgid":"CAIQ16HMjQYY\/NGagIOAgAMgq4KM0AI=",
///     "aibotid":"AIBOTID","chattype":"single","from":{"userid":"USERID"},
///     "response_url":"RESPONSEURL","msgtype":"text","text":{"content":"@RobotA hello"}}"#)?;
/// let Kind::Robot(push) = msg.kind() else { unreachable!() };
/// assert_eq!(push.msg_id, "CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=");
/// assert_eq!(msg.from_user(), "USERID");
/// assert!(matches!(&push.content, RobotContent::Text { content, .. } if content == "@RobotA hello"));
/// # Ok::<(), wechat_push::codec::DecodeError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RobotPush {
    /// `msgid`: what retries are deduplicated by.
    pub msg_id: String,
    /// `chattype`: `single` or `group`.
    pub chat_type: Option<String>,
    /// `chatid`: the group (group chats only).
    pub chat_id: Option<String>,
    /// `response_url`: where an active reply may be posted, for a while.
    pub response_url: Option<String>,
    /// The typed content, by `msgtype`.
    pub content: RobotContent,
}

/// A robot push's content, by `msgtype`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RobotContent {
    /// `text`.
    #[non_exhaustive]
    Text {
        /// `text.content`.
        content: String,
    },
    /// `image`: the image is encrypted with the robot's key, its URL valid 5 minutes.
    #[non_exhaustive]
    Image {
        /// `image.url`.
        url: String,
    },
    /// `voice`, as text.
    #[non_exhaustive]
    Voice {
        /// `voice.content`: the speech recognised.
        content: String,
    },
    /// `file`: encrypted like images, URL valid 5 minutes.
    #[non_exhaustive]
    File {
        /// `file.url`.
        url: String,
    },
    /// `mixed`: text and images; `mixed` is in the extra fields.
    Mixed,
    /// `stream`: WeCom polls a streaming reply.
    #[non_exhaustive]
    Stream {
        /// `stream.id`.
        id: String,
    },
    /// `event`: `enter_chat`, `template_card_event`, `feedback_event`, …; the event's
    /// body (`event.<eventtype>`) is in the extra fields.
    #[non_exhaustive]
    Event {
        /// `event.eventtype`.
        event_type: String,
    },
    /// Any other `msgtype`.
    Unknown {
        /// The raw `msgtype`.
        msg_type: String,
    },
}

impl RobotContent {
    /// The raw `msgtype`.
    pub fn msg_type(&self) -> &str {
        match self {
            Self::Text { .. } => "text",
            Self::Image { .. } => "image",
            Self::Voice { .. } => "voice",
            Self::File { .. } => "file",
            Self::Mixed => "mixed",
            Self::Stream { .. } => "stream",
            Self::Event { .. } => "event",
            Self::Unknown { msg_type } => msg_type,
        }
    }
}

/// Takes `node.field` as text, keeping the node's other fields.
fn nested(
    doc: &mut Doc<'_>,
    node: &'static str,
    field: &'static str,
) -> Result<String, DecodeError> {
    let mut inner = node_doc(doc.required(node)?, node)?;
    let value = inner.string(field)?;
    keep_rest(doc, node, inner);
    Ok(value)
}

impl Message {
    /// Decodes a WeCom intelligent robot's (decrypted) JSON push into a [`Kind::Robot`].
    pub fn from_robot_json(doc: &[u8]) -> Result<Message, DecodeError> {
        let mut doc = codec::parse(Format::Json, doc)?;
        let msg_id = doc.string("msgid")?;
        let bot_id = doc.string("aibotid")?;
        let from_user = nested(&mut doc, "from", "userid")?;
        let chat_type = doc.opt_string("chattype")?;
        let chat_id = doc.opt_string("chatid")?;
        let response_url = doc.opt_string("response_url")?;
        let create_time = doc
            .take("create_time")?
            .map(|r| r.to_u64("create_time"))
            .transpose()?
            .unwrap_or(0);
        let msg_type: Cow<'_, str> = doc.required("msgtype")?.into_text("msgtype")?;
        let content = match &*msg_type {
            "text" => RobotContent::Text {
                content: nested(&mut doc, "text", "content")?,
            },
            "image" => RobotContent::Image {
                url: nested(&mut doc, "image", "url")?,
            },
            "voice" => RobotContent::Voice {
                content: nested(&mut doc, "voice", "content")?,
            },
            "file" => RobotContent::File {
                url: nested(&mut doc, "file", "url")?,
            },
            "mixed" => RobotContent::Mixed,
            "stream" => RobotContent::Stream {
                id: nested(&mut doc, "stream", "id")?,
            },
            "event" => RobotContent::Event {
                event_type: nested(&mut doc, "event", "eventtype")?,
            },
            _ => RobotContent::Unknown {
                msg_type: msg_type.into_owned(),
            },
        };
        Ok(Message {
            to_user: bot_id,
            from_user,
            create_time,
            msg_id: None,
            kind: Kind::Robot(RobotPush {
                msg_id,
                chat_type,
                chat_id,
                response_url,
                content,
            }),
            extra: doc.into_fields(),
        })
    }
}
