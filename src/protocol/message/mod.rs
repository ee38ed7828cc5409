//! Typed pushes: [`Message`] = common header + typed [`Kind`] + raw [`Fields`]
//! for everything the typed value does not model.
//!
//! The same push decodes to equal `Message` values from XML and from JSON.
//!
//! ```
//! use wechat_push::message::{Kind, Message};
//!
//! let msg = Message::from_xml(b"<xml>
//!   <ToUserName><![CDATA[gh_1]]></ToUserName>
//!   <FromUserName><![CDATA[o1]]></FromUserName>
//!   <CreateTime>1482048670</CreateTime>
//!   <MsgType><![CDATA[text]]></MsgType>
//!   <Content><![CDATA[ hello ]]></Content>
//!   <MsgId>1234567890123456</MsgId>
//!   <Extra>kept</Extra>
//! </xml>")?;
//! assert_eq!(msg.kind(), &Kind::text(" hello "));
//! assert_eq!(msg.from_user(), "o1");
//! assert_eq!(msg.field("Extra").and_then(|v| v.as_text()), Some("kept"));
//! # Ok::<(), wechat_push::codec::DecodeError>(())
//! ```
//!
//! Fields a typed variant documents as always present are required: a
//! `text` push without `Content` is a [`DecodeError`]. Optional ones are
//! `Option`s. Unknown `MsgType`/`Event` values decode to
//! [`Kind::Unknown`]/[`Event::Unknown`] with every field in [`Message::extra`].
//!
//! WeChat adds fields to its pushes over time, so the struct-like variants of
//! [`Kind`] and [`Event`] and the item structs ([`PopupItem`], [`MediaCheck`], …)
//! are `#[non_exhaustive]`: match them with `..`, and build them by decoding a
//! document (or with [`Kind::text`]).

use crate::codec::{self, DecodeError, Doc, Format, Raw};

mod component;
mod event;
mod fields;
mod robot;
mod wecom;

pub use component::{Authorization, ComponentEvent};
pub use event::{
    Event, MediaCheck, MediaCheckDetail, MediaCheckResult, PopupItem, SentItem, StatusItem,
    SubscribeStatus, Suggest,
};
pub use fields::{Fields, Value};
pub use robot::{RobotContent, RobotPush};
pub use wecom::{BatchJob, ContactChange, ExternalContactChange, SelectedItem, TemplateCardEvent};

/// A decoded push: the common header, the typed content, and the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    to_user: String,
    from_user: String,
    create_time: u64,
    msg_id: Option<u64>,
    kind: Kind,
    extra: Fields,
}

/// The typed content of a [`Message`], by `MsgType`.
///
/// The variants that mirror a WeChat document are `#[non_exhaustive]`, as WeChat may add
/// fields: match them with `..` (`Kind::Text { content, .. }`). To build one, e.g. in the tests
/// of your own handler, use [`Kind::text`] or decode a sample push with [`Message::from_xml`] /
/// [`Message::from_json`]; [`Kind::Unknown`] and [`Kind::Event`] of an [`Event::Unknown`] can
/// be written directly.
///
/// ```
/// use wechat_push::message::{Event, Kind, Message};
///
/// let image = Message::from_xml(b"<xml>\
///     <ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime>\
///     <MsgType>image</MsgType><PicUrl>https://example.com/a.jpg</PicUrl><MediaId>M1</MediaId>\
/// </xml>")?;
/// let Kind::Image { media_id, .. } = image.kind() else { unreachable!() };
/// assert_eq!(media_id, "M1");
///
/// let text = Message::new("gh_1", "o1", 1, Kind::text("hi"));
/// assert!(matches!(text.kind(), Kind::Text { content, .. } if content == "hi"));
///
/// let other = Kind::Event(Event::Unknown { event: "debug_demo".into() });
/// assert_eq!(Message::new("gh_1", "o1", 1, other).event_name(), Some("debug_demo"));
/// # Ok::<(), wechat_push::codec::DecodeError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Kind {
    /// `text`.
    #[non_exhaustive]
    Text {
        /// `Content`, untrimmed.
        content: String,
    },
    /// `image`.
    #[non_exhaustive]
    Image {
        /// `PicUrl`.
        pic_url: String,
        /// `MediaId` (temporary media).
        media_id: String,
    },
    /// `voice` (official accounts).
    #[non_exhaustive]
    Voice {
        /// `MediaId`.
        media_id: String,
        /// `Format` (`amr`, `speex`, …).
        format: String,
        /// `Recognition`, when speech recognition is on.
        recognition: Option<String>,
    },
    /// `video` (official accounts).
    #[non_exhaustive]
    Video {
        /// `MediaId`.
        media_id: String,
        /// `ThumbMediaId`.
        thumb_media_id: String,
    },
    /// `shortvideo` (official accounts).
    #[non_exhaustive]
    ShortVideo {
        /// `MediaId`.
        media_id: String,
        /// `ThumbMediaId`.
        thumb_media_id: String,
    },
    /// `location` (official accounts).
    #[non_exhaustive]
    Location {
        /// `Location_X`: latitude.
        latitude: f64,
        /// `Location_Y`: longitude.
        longitude: f64,
        /// `Scale`: map zoom.
        scale: u32,
        /// `Label`: place description.
        label: String,
    },
    /// `link` (official accounts).
    #[non_exhaustive]
    Link {
        /// `Title`.
        title: String,
        /// `Description`.
        description: String,
        /// `Url`.
        url: String,
    },
    /// `miniprogrampage`: the user sent a mini-program card (empty strings occur).
    #[non_exhaustive]
    MiniProgramPage {
        /// `Title`.
        title: String,
        /// `AppId` of the card's mini program.
        app_id: String,
        /// `PagePath`.
        page_path: String,
        /// `ThumbUrl`.
        thumb_url: String,
        /// `ThumbMediaId`.
        thumb_media_id: String,
    },
    /// `event`, typed by its `Event` value.
    Event(Event),
    /// A third-party platform's authorisation event (`InfoType`). These pushes have no
    /// `MsgType`: [`msg_type`](Kind::msg_type) gives the `InfoType`.
    Component(ComponentEvent),
    /// A WeCom intelligent robot's push ([`Message::from_robot_json`]);
    /// [`msg_type`](Kind::msg_type) gives its `msgtype`.
    Robot(RobotPush),
    /// Any other `MsgType`; all its fields are in [`Message::extra`].
    Unknown {
        /// The raw `MsgType`.
        msg_type: String,
    },
}

impl Kind {
    /// A `text` message with this `Content`.
    ///
    /// ```
    /// use wechat_push::message::{Kind, Message};
    ///
    /// let msg = Message::new("gh_1", "o1", 1714200600, Kind::text("hello")).with_msg_id(1);
    /// assert_eq!(msg.msg_type(), "text");
    /// assert_eq!(msg.kind(), &Kind::text("hello"));
    /// ```
    pub fn text(content: impl Into<String>) -> Self {
        Kind::Text {
            content: content.into(),
        }
    }

    /// The raw `MsgType` value.
    pub fn msg_type(&self) -> &str {
        match self {
            Kind::Text { .. } => "text",
            Kind::Image { .. } => "image",
            Kind::Voice { .. } => "voice",
            Kind::Video { .. } => "video",
            Kind::ShortVideo { .. } => "shortvideo",
            Kind::Location { .. } => "location",
            Kind::Link { .. } => "link",
            Kind::MiniProgramPage { .. } => "miniprogrampage",
            Kind::Event(_) => "event",
            Kind::Component(event) => event.info_type(),
            Kind::Robot(push) => push.content.msg_type(),
            Kind::Unknown { msg_type } => msg_type,
        }
    }
}

impl Message {
    /// A message with no `MsgId` and no extra fields (see [`with_msg_id`](Self::with_msg_id),
    /// [`with_extra`](Self::with_extra)); handy in tests of your own service, with
    /// [`Kind::text`] or the [`kind`](Self::kind) of a decoded sample push.
    pub fn new(
        to_user: impl Into<String>,
        from_user: impl Into<String>,
        create_time: u64,
        kind: Kind,
    ) -> Self {
        Message {
            to_user: to_user.into(),
            from_user: from_user.into(),
            create_time,
            msg_id: None,
            kind,
            extra: Fields::new(),
        }
    }

    /// Sets the `MsgId`.
    #[must_use]
    pub fn with_msg_id(mut self, msg_id: u64) -> Self {
        self.msg_id = Some(msg_id);
        self
    }

    /// Sets the unmodelled fields.
    #[must_use]
    pub fn with_extra(mut self, extra: Fields) -> Self {
        self.extra = extra;
        self
    }

    /// Decodes an XML message (`<xml>…</xml>`).
    pub fn from_xml(doc: &[u8]) -> Result<Message, DecodeError> {
        codec::decode_message(Format::Xml, doc)
    }

    /// Decodes a JSON message (a top-level object).
    pub fn from_json(doc: &[u8]) -> Result<Message, DecodeError> {
        codec::decode_message(Format::Json, doc)
    }

    /// `ToUserName`: the mini program's / account's original id (`gh_…`); on WeCom the
    /// CorpID; for a third-party platform's authorisation event its `AppId` (the component
    /// AppID); for a WeCom robot its `aibotid`.
    pub fn to_user(&self) -> &str {
        &self.to_user
    }

    /// `FromUserName`: the sender's openid (on WeCom the member's UserID, `sys` for system
    /// events); empty for a third-party platform's authorisation event.
    pub fn from_user(&self) -> &str {
        &self.from_user
    }

    /// `CreateTime`, Unix seconds.
    pub fn create_time(&self) -> u64 {
        self.create_time
    }

    /// `MsgId`, when present and numeric (a non-numeric one stays in [`extra`](Self::extra)).
    pub fn msg_id(&self) -> Option<u64> {
        self.msg_id
    }

    /// The raw `MsgType`.
    pub fn msg_type(&self) -> &str {
        self.kind.msg_type()
    }

    /// The raw `Event` value when `MsgType` is `event`.
    pub fn event_name(&self) -> Option<&str> {
        match &self.kind {
            Kind::Event(e) => Some(e.name()),
            _ => None,
        }
    }

    /// The typed content.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// `AgentID`, the WeCom app, when the (decrypted) push carries a numeric one. It stays in
    /// [`extra`](Self::extra) as well; a push carrying two does not decode. The envelope's
    /// `AgentID` is not signed and never read.
    pub fn agent_id(&self) -> Option<u64> {
        let id = self.extra.get("AgentID")?.as_text()?;
        id.trim().parse().ok()
    }

    /// The third-party platform's authorisation event, when this is one.
    pub fn component_event(&self) -> Option<&ComponentEvent> {
        match &self.kind {
            Kind::Component(e) => Some(e),
            _ => None,
        }
    }

    /// The typed event, when `MsgType` is `event`.
    pub fn event(&self) -> Option<&Event> {
        match &self.kind {
            Kind::Event(e) => Some(e),
            _ => None,
        }
    }

    /// Every field of the push that the typed value does not model, in document order.
    pub fn extra(&self) -> &Fields {
        &self.extra
    }

    /// The first extra (unmodelled) field named `name`.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.extra.get(name)
    }

    pub(crate) fn from_doc(mut doc: Doc<'_>) -> Result<Message, DecodeError> {
        // `AgentID` stays an extra field, but the agent check and the dedupe key read it:
        // two of them would make their answer depend on the order.
        doc.ensure_unique("AgentID")?;
        let to_user = match doc.take("ToUserName")? {
            Some(raw) => raw.into_string("ToUserName")?,
            None => return Message::from_info_doc(doc),
        };
        let from_user = doc.string("FromUserName")?;
        let create_time = doc.required("CreateTime")?.to_u64("CreateTime")?;
        let msg_type = doc.required("MsgType")?.into_text("MsgType")?;
        let msg_id = doc.take_if("MsgId", |r| r.to_u64("MsgId").ok())?;
        let kind = match &*msg_type {
            "text" => Kind::Text {
                content: doc.string("Content")?,
            },
            "image" => Kind::Image {
                pic_url: doc.string("PicUrl")?,
                media_id: doc.string("MediaId")?,
            },
            "voice" => Kind::Voice {
                media_id: doc.string("MediaId")?,
                format: doc.string("Format")?,
                recognition: doc.opt_string("Recognition")?,
            },
            "video" => Kind::Video {
                media_id: doc.string("MediaId")?,
                thumb_media_id: doc.string("ThumbMediaId")?,
            },
            "shortvideo" => Kind::ShortVideo {
                media_id: doc.string("MediaId")?,
                thumb_media_id: doc.string("ThumbMediaId")?,
            },
            "location" => Kind::Location {
                latitude: doc.required("Location_X")?.to_f64("Location_X")?,
                longitude: doc.required("Location_Y")?.to_f64("Location_Y")?,
                scale: doc.required("Scale")?.to_u32("Scale")?,
                label: doc.string("Label")?,
            },
            "link" => Kind::Link {
                title: doc.string("Title")?,
                description: doc.string("Description")?,
                url: doc.string("Url")?,
            },
            "miniprogrampage" => Kind::MiniProgramPage {
                title: doc.string("Title")?,
                app_id: doc.string("AppId")?,
                page_path: doc.string("PagePath")?,
                thumb_url: doc.string("ThumbUrl")?,
                thumb_media_id: doc.string("ThumbMediaId")?,
            },
            "event" => {
                let name = doc.required("Event")?.into_text("Event")?;
                Kind::Event(Event::from_doc(name, &mut doc)?)
            }
            _ => Kind::Unknown {
                msg_type: msg_type.into_owned(),
            },
        };
        Ok(Message {
            to_user,
            from_user,
            create_time,
            msg_id,
            kind,
            extra: doc.into_fields(),
        })
    }
}

impl Message {
    /// A third-party platform's authorisation event (`InfoType`, no `ToUserName`).
    fn from_info_doc(mut doc: Doc<'_>) -> Result<Message, DecodeError> {
        let Some(info_type) = doc.take("InfoType")? else {
            return Err(DecodeError::missing("ToUserName"));
        };
        let info_type = info_type.into_text("InfoType")?;
        let app_id = doc.string("AppId")?;
        let create_time = doc.required("CreateTime")?.to_u64("CreateTime")?;
        let event = ComponentEvent::from_doc(info_type, &mut doc)?;
        Ok(Message {
            to_user: app_id,
            from_user: String::new(),
            create_time,
            msg_id: None,
            kind: Kind::Component(event),
            extra: doc.into_fields(),
        })
    }
}

/// Typed nested items (`List`, `detail`, `result`) are built from owned fields.
pub(crate) fn node_doc(raw: Raw<'_>, field: &'static str) -> Result<Doc<'static>, DecodeError> {
    raw.into_node(field).map(Doc::from_fields)
}
