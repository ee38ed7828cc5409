//! Typed customer-service messages (docs/protocol.md §7.1, §7.2).

use serde::Serialize;

/// A customer-service message, the body of `cgi-bin/message/custom/send` apart from
/// `touser`.
///
/// ```
/// use wechat_push::client::{CustomMessage, Link};
///
/// let text = CustomMessage::text("你好");
/// let image = CustomMessage::image("MEDIA_ID");
/// let link = CustomMessage::link(Link::new(
///     "Happy Day",
///     "Is Really A Happy Day",
///     "https://example.com/",
///     "https://example.com/thumb.png",
/// ));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "msgtype", rename_all = "lowercase")]
#[non_exhaustive]
pub enum CustomMessage {
    /// `msgtype` `text`. The content may contain mini-program links built with
    /// [`mini_program_link`].
    Text {
        /// The `text` object.
        text: Text,
    },
    /// `msgtype` `image`.
    Image {
        /// The `image` object.
        image: Image,
    },
    /// `msgtype` `link` (an article card).
    Link {
        /// The `link` object.
        link: Link,
    },
    /// `msgtype` `miniprogrampage` (a mini-program card).
    #[serde(rename = "miniprogrampage")]
    MiniProgramPage {
        /// The `miniprogrampage` object.
        miniprogrampage: MiniProgramPage,
    },
}

impl CustomMessage {
    /// A text message.
    pub fn text(content: impl Into<String>) -> Self {
        CustomMessage::Text {
            text: Text {
                content: content.into(),
            },
        }
    }

    /// An image message; `media_id` comes from [`Client::upload_media`](super::Client::upload_media)
    /// or from an image push.
    pub fn image(media_id: impl Into<String>) -> Self {
        CustomMessage::Image {
            image: Image {
                media_id: media_id.into(),
            },
        }
    }

    /// A link (article card) message.
    pub fn link(link: Link) -> Self {
        CustomMessage::Link { link }
    }

    /// A mini-program card.
    pub fn mini_program_page(page: MiniProgramPage) -> Self {
        CustomMessage::MiniProgramPage {
            miniprogrampage: page,
        }
    }
}

/// The `text` object of a text message, built by [`CustomMessage::text`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Text {
    /// The text; may contain mini-program links (see [`mini_program_link`]).
    pub content: String,
}

/// The `image` object of an image message, built by [`CustomMessage::image`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Image {
    /// A temporary media id.
    pub media_id: String,
}

/// The `link` object of a link message: build it with [`Link::new`] (it is
/// `#[non_exhaustive]`, as WeChat may add fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Link {
    /// Title of the card.
    pub title: String,
    /// Description under the title.
    pub description: String,
    /// Where a tap leads.
    pub url: String,
    /// URL of the thumbnail.
    pub thumb_url: String,
}

/// The `miniprogrampage` object of a mini-program card: build it with
/// [`MiniProgramPage::new`] (it is `#[non_exhaustive]`, as WeChat may add fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MiniProgramPage {
    /// Title of the card.
    pub title: String,
    /// Page path with query, e.g. `pages/index/index?foo=bar`.
    pub pagepath: String,
    /// Media id of the cover (520×416 recommended), from
    /// [`Client::upload_media`](super::Client::upload_media).
    pub thumb_media_id: String,
}

impl Link {
    /// A link card: its title, the description under it, where a tap leads, and the URL of
    /// its thumbnail.
    ///
    /// ```
    /// use wechat_push::client::{CustomMessage, Link};
    ///
    /// let link = Link::new(
    ///     "Title",
    ///     "Description",
    ///     "https://example.com/",
    ///     "https://example.com/t.png",
    /// );
    /// assert_eq!(link.url, "https://example.com/");
    /// let message = CustomMessage::link(link);
    /// ```
    pub fn new(
        title: impl Into<String>,
        description: impl Into<String>,
        url: impl Into<String>,
        thumb_url: impl Into<String>,
    ) -> Self {
        Link {
            title: title.into(),
            description: description.into(),
            url: url.into(),
            thumb_url: thumb_url.into(),
        }
    }
}

impl MiniProgramPage {
    /// A mini-program card: its title, the page path with query, and the media id of its
    /// cover.
    ///
    /// ```
    /// use wechat_push::client::{CustomMessage, MiniProgramPage};
    ///
    /// let page = MiniProgramPage::new("Title", "pages/index/index?foo=bar", "MEDIA_ID");
    /// assert_eq!(page.pagepath, "pages/index/index?foo=bar");
    /// let message = CustomMessage::mini_program_page(page);
    /// ```
    pub fn new(
        title: impl Into<String>,
        pagepath: impl Into<String>,
        thumb_media_id: impl Into<String>,
    ) -> Self {
        MiniProgramPage {
            title: title.into(),
            pagepath: pagepath.into(),
            thumb_media_id: thumb_media_id.into(),
        }
    }
}

/// The typing indicator command (`cgi-bin/message/custom/typing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum TypingCommand {
    /// `Typing`: show "typing…" for up to 15 s.
    Typing,
    /// `CancelTyping`: hide it.
    CancelTyping,
}

/// The kind of temporary media to upload (`cgi-bin/media/upload?type=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaType {
    /// `image`: the only kind customer-service messages of mini programs use.
    Image,
    /// `voice`.
    Voice,
    /// `video`.
    Video,
    /// `thumb`.
    Thumb,
}

impl MediaType {
    /// The value of the `type` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Image => "image",
            MediaType::Voice => "voice",
            MediaType::Video => "video",
            MediaType::Thumb => "thumb",
        }
    }
}

/// A file to upload as temporary media: build it with [`Media::new`] (it is
/// `#[non_exhaustive]`, as uploads may gain form fields).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Media {
    /// The file name sent in the multipart part (e.g. `reply.png`). `"`, CR and LF are
    /// percent-encoded as browsers do.
    pub filename: String,
    /// The content type of the part (e.g. `image/png`); printable ASCII only.
    pub content_type: String,
    /// The file's bytes.
    pub data: bytes::Bytes,
}

impl Media {
    /// A file with this name, content type and content.
    ///
    /// ```
    /// use wechat_push::client::Media;
    ///
    /// let media = Media::new("reply.png", "image/png", vec![0x89, b'P', b'N', b'G']);
    /// assert_eq!((media.filename.as_str(), media.data.len()), ("reply.png", 4));
    /// ```
    pub fn new(
        filename: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<bytes::Bytes>,
    ) -> Self {
        Media {
            filename: filename.into(),
            content_type: content_type.into(),
            data: data.into(),
        }
    }
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("len", &self.data.len())
            .finish()
    }
}

/// An uploaded temporary media file (valid for 3 days).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadedMedia {
    /// The id to put in [`Image::media_id`] or [`MiniProgramPage::thumb_media_id`].
    pub media_id: String,
    /// When WeChat stored it (Unix seconds), if the answer said.
    pub created_at: Option<i64>,
}

/// Builds the mini-program link markup a text message may contain:
/// `<a href="HREF" data-miniprogram-appid="APPID" data-miniprogram-path="PATH">TEXT</a>`.
///
/// Attribute values are escaped (`&`, `"`, `'`, `<`, `>`), and so are `&`, `<` and `>` in
/// the text, so no input can break out of the markup. `appid` must be the sending mini
/// program's own; `href` is where clients that cannot open mini programs go.
///
/// ```
/// use wechat_push::client::mini_program_link;
///
/// assert_eq!(
///     mini_program_link("Open", "https://example.com/?a=1&b=2", "wx123", "pages/index/index"),
///     r#"<a href="https://example.com/?a=1&amp;b=2" data-miniprogram-appid="wx123" data-miniprogram-path="pages/index/index">Open</a>"#,
/// );
/// ```
pub fn mini_program_link(text: &str, href: &str, appid: &str, path: &str) -> String {
    let mut out = String::with_capacity(80 + text.len() + href.len() + appid.len() + path.len());
    out.push_str("<a href=\"");
    escape_into(&mut out, href, true);
    out.push_str("\" data-miniprogram-appid=\"");
    escape_into(&mut out, appid, true);
    out.push_str("\" data-miniprogram-path=\"");
    escape_into(&mut out, path, true);
    out.push_str("\">");
    escape_into(&mut out, text, false);
    out.push_str("</a>");
    out
}

fn escape_into(out: &mut String, s: &str, attribute: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Wire shape of `custom/send`.
#[derive(Serialize)]
pub(crate) struct SendBody<'a> {
    pub(crate) touser: &'a str,
    #[serde(flatten)]
    pub(crate) message: &'a CustomMessage,
}

/// Wire shape of `custom/typing`.
#[derive(Serialize)]
pub(crate) struct TypingBody<'a> {
    pub(crate) touser: &'a str,
    pub(crate) command: TypingCommand,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes() {
        let body = |m: &CustomMessage| {
            serde_json::to_string(&SendBody {
                touser: "OPENID",
                message: m,
            })
            .unwrap()
        };
        assert_eq!(
            body(&CustomMessage::text("你好")),
            r#"{"touser":"OPENID","msgtype":"text","text":{"content":"你好"}}"#
        );
        assert_eq!(
            body(&CustomMessage::image("M")),
            r#"{"touser":"OPENID","msgtype":"image","image":{"media_id":"M"}}"#
        );
        assert_eq!(
            body(&CustomMessage::link(Link::new("t", "d", "u", "th"))),
            r#"{"touser":"OPENID","msgtype":"link","link":{"title":"t","description":"d","url":"u","thumb_url":"th"}}"#
        );
        assert_eq!(
            body(&CustomMessage::mini_program_page(MiniProgramPage::new(
                "t",
                "pages/index/index?foo=bar",
                "M"
            ))),
            r#"{"touser":"OPENID","msgtype":"miniprogrampage","miniprogrampage":{"title":"t","pagepath":"pages/index/index?foo=bar","thumb_media_id":"M"}}"#
        );
        assert_eq!(
            serde_json::to_string(&TypingBody {
                touser: "O",
                command: TypingCommand::CancelTyping
            })
            .unwrap(),
            r#"{"touser":"O","command":"CancelTyping"}"#
        );
    }

    #[test]
    fn link_markup_escapes() {
        assert_eq!(
            mini_program_link("<b>&", "x\"y", "a'b", "p?q=1&r=<2>"),
            "<a href=\"x&quot;y\" data-miniprogram-appid=\"a&#39;b\" \
             data-miniprogram-path=\"p?q=1&amp;r=&lt;2&gt;\">&lt;b&gt;&amp;</a>"
        );
    }
}
