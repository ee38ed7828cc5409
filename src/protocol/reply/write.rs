//! The reply document writer: a [`Reply`] as the XML or JSON a push in that format expects.

use crate::codec::{self, Format};

use super::Reply;

impl Reply {
    /// [`Reply::encode`], appended to `out`.
    pub(super) fn write_to(
        &self,
        mut out: Vec<u8>,
        format: Format,
        to_user: &str,
        from_user: &str,
        create_time: u64,
    ) -> Vec<u8> {
        if let Self::Document(document) = self {
            out.extend_from_slice(document);
            return out;
        }
        let Some(msg_type) = self.msg_type() else {
            out.extend_from_slice(self.ack_body().unwrap_or_default());
            return out;
        };
        let mut w = Writer::new(format, out);
        w.open();
        w.text("ToUserName", to_user);
        w.text("FromUserName", from_user);
        w.number("CreateTime", create_time);
        w.text("MsgType", msg_type);
        match self {
            Self::Success | Self::Empty | Self::Document(_) => {}
            Self::TransferCustomerService { kf_account } => {
                if let Some(account) = kf_account {
                    w.begin("TransInfo");
                    w.text("KfAccount", account);
                    w.end("TransInfo");
                }
            }
            Self::Text { content } => w.text("Content", content),
            Self::Image { media_id } => media(&mut w, "Image", media_id),
            Self::Voice { media_id } => media(&mut w, "Voice", media_id),
            Self::Video {
                media_id,
                title,
                description,
            } => {
                w.begin("Video");
                w.text("MediaId", media_id);
                w.optional("Title", title);
                w.optional("Description", description);
                w.end("Video");
            }
            Self::Music(music) => {
                w.begin("Music");
                w.optional("Title", &music.title);
                w.optional("Description", &music.description);
                w.optional("MusicUrl", &music.music_url);
                w.optional("HQMusicUrl", &music.hq_music_url);
                w.text("ThumbMediaId", &music.thumb_media_id);
                w.end("Music");
            }
            Self::News(articles) => {
                w.number("ArticleCount", articles.len() as u64);
                w.begin_list("Articles");
                for article in articles {
                    w.begin_item();
                    w.text("Title", &article.title);
                    w.text("Description", &article.description);
                    w.text("PicUrl", &article.pic_url);
                    w.text("Url", &article.url);
                    w.end_item();
                }
                w.end_list("Articles");
            }
        }
        w.close()
    }
}

fn media(w: &mut Writer, element: &str, media_id: &str) {
    w.begin(element);
    w.text("MediaId", media_id);
    w.end(element);
}

/// A minimal writer for the flat documents replies are: XML elements with CDATA text, or a
/// compact JSON object with UTF-8 written as is.
struct Writer {
    format: Format,
    out: Vec<u8>,
    /// JSON: whether the next member needs a comma before it.
    comma: bool,
}

impl Writer {
    fn new(format: Format, out: Vec<u8>) -> Self {
        Self {
            format,
            out,
            comma: false,
        }
    }

    fn open(&mut self) {
        self.out.extend_from_slice(match self.format {
            Format::Xml => b"<xml>",
            Format::Json => b"{",
        });
    }

    fn close(mut self) -> Vec<u8> {
        self.out.extend_from_slice(match self.format {
            Format::Xml => b"</xml>",
            Format::Json => b"}",
        });
        self.out
    }

    fn key(&mut self, name: &str) {
        match self.format {
            Format::Xml => {
                self.out.push(b'<');
                self.out.extend_from_slice(name.as_bytes());
                self.out.push(b'>');
            }
            Format::Json => {
                if self.comma {
                    self.out.push(b',');
                }
                json_string(&mut self.out, name.as_bytes());
                self.out.push(b':');
            }
        }
    }

    fn end_key(&mut self, name: &str) {
        match self.format {
            Format::Xml => {
                self.out.extend_from_slice(b"</");
                self.out.extend_from_slice(name.as_bytes());
                self.out.push(b'>');
            }
            Format::Json => self.comma = true,
        }
    }

    fn text(&mut self, name: &str, value: &str) {
        self.key(name);
        match self.format {
            Format::Xml => cdata(&mut self.out, value.as_bytes()),
            Format::Json => json_string(&mut self.out, value.as_bytes()),
        }
        self.end_key(name);
    }

    fn optional(&mut self, name: &str, value: &Option<String>) {
        if let Some(value) = value {
            self.text(name, value);
        }
    }

    fn number(&mut self, name: &str, value: u64) {
        self.key(name);
        let mut digits = itoa_buf();
        self.out.extend_from_slice(fmt_u64(&mut digits, value));
        self.end_key(name);
    }

    fn begin(&mut self, name: &str) {
        self.key(name);
        if self.format == Format::Json {
            self.out.push(b'{');
            self.comma = false;
        }
    }

    fn end(&mut self, name: &str) {
        if self.format == Format::Json {
            self.out.push(b'}');
        }
        self.end_key(name);
    }

    fn begin_list(&mut self, name: &str) {
        self.key(name);
        if self.format == Format::Json {
            self.out.push(b'[');
            self.comma = false;
        }
    }

    fn end_list(&mut self, name: &str) {
        if self.format == Format::Json {
            self.out.push(b']');
        }
        self.end_key(name);
    }

    fn begin_item(&mut self) {
        match self.format {
            Format::Xml => self.out.extend_from_slice(b"<item>"),
            Format::Json => {
                if self.comma {
                    self.out.push(b',');
                }
                self.out.push(b'{');
                self.comma = false;
            }
        }
    }

    fn end_item(&mut self) {
        match self.format {
            Format::Xml => self.out.extend_from_slice(b"</item>"),
            Format::Json => {
                self.out.push(b'}');
                self.comma = true;
            }
        }
    }
}

/// Writes `<![CDATA[text]]>`, splitting any `]]>` in the text so the section cannot end early.
pub(super) fn cdata(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(b"<![CDATA[");
    let mut rest = text;
    while let Some(at) = codec::find_bytes(rest, b"]]>") {
        // `]]` closes this section, `>` opens the next one.
        out.extend_from_slice(&rest[..at + 2]);
        out.extend_from_slice(b"]]><![CDATA[");
        rest = &rest[at + 2..];
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(b"]]>");
}

/// Writes a JSON string: quotes, backslashes and control characters escaped, all other UTF-8
/// as is (WeChat's samples and SDKs send CJK unescaped).
pub(super) fn json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&crate::protocol::hex::lower_digits(b));
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

pub(super) fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// Formats `n` in decimal (ASCII digits) into `buf` without allocating.
pub(super) fn fmt_u64(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}
