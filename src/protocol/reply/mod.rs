//! Replies: what the handler answers, written in the push's format and sealed when the push was
//! encrypted.
//!
//! A mini program answers almost every push with [`Reply::Success`] and talks back through the
//! customer-service API; an official account can answer in the HTTP response itself with a
//! passive reply ([`Reply::Text`], [`Reply::News`], …). The layer fills in the addressing:
//! `ToUserName` is the push's `FromUserName`, `FromUserName` its `ToUserName`, `CreateTime` the
//! current time (docs/protocol.md §6).
//!
//! ```
//! use wechat_push::{Format, Reply};
//!
//! let body = Reply::text("你好").encode(Format::Json, "openid", "gh_id", 1714200600);
//! assert_eq!(
//!     body,
//!     r#"{"ToUserName":"openid","FromUserName":"gh_id","CreateTime":1714200600,"MsgType":"text","Content":"你好"}"#.as_bytes()
//! );
//! assert_eq!(Reply::Success.encode(Format::Xml, "openid", "gh_id", 0), b"success");
//! ```

use bytes::Bytes;

use crate::codec::Format;

mod seal;
mod stored;
#[cfg(test)]
mod tests;
mod write;

pub use seal::{envelope, seal};
pub(crate) use seal::{seal_reply, seal_robot_reply, Sealer};
pub use stored::ReplyDecodeError;

/// What the handler answers to a push.
///
/// `Success` and `Empty` are sent as they are, in clear, in every mode; every other reply is a
/// document in the push's format, encrypted when the push was.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reply {
    /// The body `success`: received, nothing to say. What a mini program answers.
    #[default]
    Success,
    /// An empty body, which WeChat also takes as "received".
    Empty,
    /// Hand the conversation to the customer-service tool, optionally to one agent.
    TransferCustomerService {
        /// The agent account (`KfAccount`), e.g. `agent@account`.
        kf_account: Option<String>,
    },
    /// A text message (newlines allowed).
    Text {
        /// The text.
        content: String,
    },
    /// An image uploaded beforehand.
    Image {
        /// Its media id.
        media_id: String,
    },
    /// A voice message uploaded beforehand.
    Voice {
        /// Its media id.
        media_id: String,
    },
    /// A video uploaded beforehand.
    Video {
        /// Its media id.
        media_id: String,
        /// Optional title.
        title: Option<String>,
        /// Optional description.
        description: Option<String>,
    },
    /// A music message.
    Music(Music),
    /// Articles (WeChat shows one when answering a user's message).
    News(Vec<Article>),
    /// A reply document the handler wrote itself, in the push's format (`<xml>…</xml>` or a
    /// JSON object): sent as it is, or sealed when the push was encrypted. A body that is not
    /// a reply document (`ok`) is always sent as it is, as `text/plain`. What pass-through
    /// handlers that write their own reply XML answer, and how dedupe records their 200s.
    Document(Bytes),
}

/// The body of a [`Reply::Music`].
///
/// `#[non_exhaustive]`, as WeChat may add fields: build it with [`Music::new`] and the
/// `with_…` methods.
///
/// ```
/// use wechat_push::{reply::Music, Format, Reply};
///
/// let music = Music::new("THUMB_ID")
///     .with_title("Song")
///     .with_music_url("https://example.com/song.mp3");
/// let body = Reply::Music(music).encode(Format::Json, "openid", "gh_id", 1714200600);
/// assert_eq!(
///     body,
///     br#"{"ToUserName":"openid","FromUserName":"gh_id","CreateTime":1714200600,"MsgType":"music","Music":{"Title":"Song","MusicUrl":"https://example.com/song.mp3","ThumbMediaId":"THUMB_ID"}}"#
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Music {
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Link to the music.
    pub music_url: Option<String>,
    /// Link to a high-quality version, played on Wi-Fi.
    pub hq_music_url: Option<String>,
    /// Media id of the cover thumbnail (required by WeChat).
    pub thumb_media_id: String,
}

/// One article of a [`Reply::News`].
///
/// `#[non_exhaustive]`, as WeChat may add fields: build it with [`Article::new`].
///
/// ```
/// use wechat_push::{reply::Article, Format, Reply};
///
/// let article = Article::new(
///     "Title",
///     "Description",
///     "https://example.com/a.png",
///     "https://example.com/",
/// );
/// let body = Reply::News(vec![article]).encode(Format::Json, "openid", "gh_id", 1714200600);
/// assert_eq!(
///     body,
///     br#"{"ToUserName":"openid","FromUserName":"gh_id","CreateTime":1714200600,"MsgType":"news","ArticleCount":1,"Articles":[{"Title":"Title","Description":"Description","PicUrl":"https://example.com/a.png","Url":"https://example.com/"}]}"#
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Article {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Picture link.
    pub pic_url: String,
    /// Link opened on tap.
    pub url: String,
}

impl Music {
    /// A music reply body with this cover thumbnail (the one field WeChat requires) and no
    /// other field.
    pub fn new(thumb_media_id: impl Into<String>) -> Self {
        Music {
            thumb_media_id: thumb_media_id.into(),
            ..Music::default()
        }
    }

    /// Sets the title.
    #[must_use]
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the link to the music.
    #[must_use]
    pub fn with_music_url(mut self, music_url: impl Into<String>) -> Self {
        self.music_url = Some(music_url.into());
        self
    }

    /// Sets the link to the high-quality version.
    #[must_use]
    pub fn with_hq_music_url(mut self, hq_music_url: impl Into<String>) -> Self {
        self.hq_music_url = Some(hq_music_url.into());
        self
    }
}

impl Article {
    /// An article with this title, description, picture link and link.
    pub fn new(
        title: impl Into<String>,
        description: impl Into<String>,
        pic_url: impl Into<String>,
        url: impl Into<String>,
    ) -> Self {
        Article {
            title: title.into(),
            description: description.into(),
            pic_url: pic_url.into(),
            url: url.into(),
        }
    }
}

impl Reply {
    /// A text reply.
    pub fn text(content: impl Into<String>) -> Self {
        Self::Text {
            content: content.into(),
        }
    }

    /// An image reply.
    pub fn image(media_id: impl Into<String>) -> Self {
        Self::Image {
            media_id: media_id.into(),
        }
    }

    /// A reply document written by hand, in the push's format; see [`Reply::Document`].
    ///
    /// ```
    /// use wechat_push::{Format, Reply};
    ///
    /// let doc = "<xml><ToUserName><![CDATA[o1]]></ToUserName><FromUserName><![CDATA[gh_1]]></FromUserName>\
    ///     <CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>";
    /// let reply = Reply::document(doc);
    /// assert_eq!(reply.encode(Format::Xml, "ignored", "ignored", 0), doc.as_bytes());
    /// ```
    pub fn document(document: impl Into<Bytes>) -> Self {
        Self::Document(document.into())
    }

    /// Hands the conversation to the customer-service tool.
    pub fn transfer_customer_service() -> Self {
        Self::TransferCustomerService { kf_account: None }
    }

    /// Whether this is `Success` or `Empty`: a bare acknowledgement, never encrypted.
    pub fn is_ack(&self) -> bool {
        self.ack_body().is_some()
    }

    /// The fixed body of an acknowledgement (`success`, or nothing); `None` for a reply
    /// document.
    pub(crate) fn ack_body(&self) -> Option<&'static [u8]> {
        match self {
            Self::Success => Some(b"success"),
            Self::Empty => Some(b""),
            _ => None,
        }
    }

    /// `MsgType` of the reply document (`None` for an acknowledgement or a
    /// [`Document`](Self::Document) written by hand).
    pub fn msg_type(&self) -> Option<&'static str> {
        Some(match self {
            Self::Success | Self::Empty => return None,
            Self::TransferCustomerService { .. } => "transfer_customer_service",
            Self::Text { .. } => "text",
            Self::Image { .. } => "image",
            Self::Voice { .. } => "voice",
            Self::Video { .. } => "video",
            Self::Music(_) => "music",
            Self::News(_) => "news",
            Self::Document(_) => return None,
        })
    }

    /// Writes the reply as the clear body for a push in `format`.
    ///
    /// `to_user` is the push's `FromUserName` (the user), `from_user` its `ToUserName` (the
    /// account); `create_time` is in Unix seconds. Acknowledgements ignore all three.
    pub fn encode(
        &self,
        format: Format,
        to_user: &str,
        from_user: &str,
        create_time: u64,
    ) -> Vec<u8> {
        self.write_to(
            Vec::with_capacity(256),
            format,
            to_user,
            from_user,
            create_time,
        )
    }
}

impl From<()> for Reply {
    fn from((): ()) -> Self {
        Self::Success
    }
}

/// A text reply: `Reply::from("hi")` is `Reply::text("hi")`, so a typed handler may answer
/// a `&str`.
///
/// ```
/// use wechat_push::Reply;
///
/// assert_eq!(Reply::from("hi"), Reply::text("hi"));
/// ```
impl From<&str> for Reply {
    fn from(content: &str) -> Self {
        Self::text(content)
    }
}

/// A text reply: `Reply::from(s)` is `Reply::text(s)`, so a typed handler may answer a
/// `String`.
///
/// ```
/// use wechat_push::Reply;
///
/// assert_eq!(Reply::from(String::from("hi")), Reply::text("hi"));
/// ```
impl From<String> for Reply {
    fn from(content: String) -> Self {
        Self::text(content)
    }
}
