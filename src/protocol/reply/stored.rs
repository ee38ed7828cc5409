//! A compact byte encoding of [`Reply`], for stores that keep replies outside the process
//! (dedupe's record of a handled push, in Redis for example).
//!
//! Layout: a version byte (`1`), a tag byte naming the variant, then the variant's fields in
//! declaration order. A string or a document is its length as a little-endian `u32` followed
//! by its bytes; an optional string is a byte `0` (absent) or `1` followed by the string; a
//! list of articles is its length as a `u32` followed by the articles. Nothing else: decoding
//! refuses trailing bytes, unknown tags, bad UTF-8 and lengths past the end.

use std::fmt;

use bytes::Bytes;

use super::{Article, Music, Reply};

/// The version byte every encoding starts with.
const VERSION: u8 = 1;

const SUCCESS: u8 = 0;
const EMPTY: u8 = 1;
const TRANSFER: u8 = 2;
const TEXT: u8 = 3;
const IMAGE: u8 = 4;
const VOICE: u8 = 5;
const VIDEO: u8 = 6;
const MUSIC: u8 = 7;
const NEWS: u8 = 8;
const DOCUMENT: u8 = 9;

/// Bytes that [`Reply::from_bytes`] could not read: not written by [`Reply::to_bytes`] (of
/// this version), or cut short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyDecodeError(&'static str);

impl fmt::Display for ReplyDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stored reply: {}", self.0)
    }
}

impl std::error::Error for ReplyDecodeError {}

impl Reply {
    /// The reply as bytes that [`Reply::from_bytes`] reads back to an equal reply: what a
    /// store outside the process keeps (see the [module docs](crate::reply)).
    ///
    /// ```
    /// use wechat_push::Reply;
    ///
    /// let reply = Reply::text("你好");
    /// assert_eq!(Reply::from_bytes(&reply.to_bytes()), Ok(reply));
    /// assert!(Reply::from_bytes(b"\x01\xff").is_err());
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.push(VERSION);
        match self {
            Reply::Success => out.push(SUCCESS),
            Reply::Empty => out.push(EMPTY),
            Reply::TransferCustomerService { kf_account } => {
                out.push(TRANSFER);
                put_opt(&mut out, kf_account.as_deref());
            }
            Reply::Text { content } => {
                out.push(TEXT);
                put(&mut out, content.as_bytes());
            }
            Reply::Image { media_id } => {
                out.push(IMAGE);
                put(&mut out, media_id.as_bytes());
            }
            Reply::Voice { media_id } => {
                out.push(VOICE);
                put(&mut out, media_id.as_bytes());
            }
            Reply::Video {
                media_id,
                title,
                description,
            } => {
                out.push(VIDEO);
                put(&mut out, media_id.as_bytes());
                put_opt(&mut out, title.as_deref());
                put_opt(&mut out, description.as_deref());
            }
            Reply::Music(music) => {
                out.push(MUSIC);
                put_opt(&mut out, music.title.as_deref());
                put_opt(&mut out, music.description.as_deref());
                put_opt(&mut out, music.music_url.as_deref());
                put_opt(&mut out, music.hq_music_url.as_deref());
                put(&mut out, music.thumb_media_id.as_bytes());
            }
            Reply::News(articles) => {
                out.push(NEWS);
                put_len(&mut out, articles.len());
                for article in articles {
                    put(&mut out, article.title.as_bytes());
                    put(&mut out, article.description.as_bytes());
                    put(&mut out, article.pic_url.as_bytes());
                    put(&mut out, article.url.as_bytes());
                }
            }
            Reply::Document(document) => {
                out.push(DOCUMENT);
                put(&mut out, document);
            }
        }
        out
    }

    /// Reads bytes written by [`Reply::to_bytes`]; anything else is an error (never a panic).
    pub fn from_bytes(bytes: &[u8]) -> Result<Reply, ReplyDecodeError> {
        let mut r = Reader(bytes);
        if r.byte()? != VERSION {
            return Err(ReplyDecodeError("unknown version"));
        }
        let reply = match r.byte()? {
            SUCCESS => Reply::Success,
            EMPTY => Reply::Empty,
            TRANSFER => Reply::TransferCustomerService {
                kf_account: r.opt()?,
            },
            TEXT => Reply::Text {
                content: r.string()?,
            },
            IMAGE => Reply::Image {
                media_id: r.string()?,
            },
            VOICE => Reply::Voice {
                media_id: r.string()?,
            },
            VIDEO => Reply::Video {
                media_id: r.string()?,
                title: r.opt()?,
                description: r.opt()?,
            },
            MUSIC => Reply::Music(Music {
                title: r.opt()?,
                description: r.opt()?,
                music_url: r.opt()?,
                hq_music_url: r.opt()?,
                thumb_media_id: r.string()?,
            }),
            NEWS => {
                let count = r.len()?;
                // Each article takes at least 16 bytes: a count past that is a lie, and must
                // not reserve memory.
                let mut articles = Vec::with_capacity(count.min(r.0.len() / 16));
                for _ in 0..count {
                    articles.push(Article {
                        title: r.string()?,
                        description: r.string()?,
                        pic_url: r.string()?,
                        url: r.string()?,
                    });
                }
                Reply::News(articles)
            }
            DOCUMENT => Reply::Document(Bytes::copy_from_slice(r.bytes()?)),
            _ => return Err(ReplyDecodeError("unknown variant")),
        };
        if !r.0.is_empty() {
            return Err(ReplyDecodeError("trailing bytes"));
        }
        Ok(reply)
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Replies are built in memory from HTTP-sized data; a length past `u32` cannot occur, and
    // would be cut to a value the decoder then refuses rather than misreads.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_opt(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put(out, value.as_bytes());
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ReplyDecodeError> {
        if n > self.0.len() {
            return Err(ReplyDecodeError("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, ReplyDecodeError> {
        Ok(self.take(1)?[0])
    }

    fn len(&mut self) -> Result<usize, ReplyDecodeError> {
        let mut le = [0; 4];
        le.copy_from_slice(self.take(4)?);
        usize::try_from(u32::from_le_bytes(le)).map_err(|_| ReplyDecodeError("length too large"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], ReplyDecodeError> {
        let len = self.len()?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, ReplyDecodeError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ReplyDecodeError("not UTF-8"))
    }

    fn opt(&mut self) -> Result<Option<String>, ReplyDecodeError> {
        match self.byte()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err(ReplyDecodeError("bad option marker")),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn opt() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(".{0,12}")
    }

    fn reply() -> impl Strategy<Value = Reply> {
        let article = (".{0,8}", ".{0,8}", ".{0,8}", ".{0,8}")
            .prop_map(|(t, d, p, u)| Article::new(t, d, p, u));
        prop_oneof![
            Just(Reply::Success),
            Just(Reply::Empty),
            opt().prop_map(|kf_account| Reply::TransferCustomerService { kf_account }),
            ".{0,40}".prop_map(Reply::text),
            ".{0,20}".prop_map(Reply::image),
            ".{0,20}".prop_map(|media_id| Reply::Voice { media_id }),
            (".{0,20}", opt(), opt()).prop_map(|(media_id, title, description)| Reply::Video {
                media_id,
                title,
                description
            }),
            (opt(), opt(), opt(), opt(), ".{0,12}").prop_map(|(t, d, u, hq, thumb)| {
                Reply::Music(Music {
                    title: t,
                    description: d,
                    music_url: u,
                    hq_music_url: hq,
                    thumb_media_id: thumb,
                })
            }),
            proptest::collection::vec(article, 0..5).prop_map(Reply::News),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Reply::document),
        ]
    }

    proptest! {
        #[test]
        fn every_variant_round_trips(reply in reply()) {
            let bytes = reply.to_bytes();
            prop_assert_eq!(Reply::from_bytes(&bytes), Ok(reply));
            // Every strict prefix is refused, never misread.
            for cut in 0..bytes.len() {
                prop_assert!(Reply::from_bytes(&bytes[..cut]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(Reply::from_bytes(&longer).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(reply) = Reply::from_bytes(&bytes) {
                // What decodes encodes back to the same bytes: one encoding per reply.
                prop_assert_eq!(reply.to_bytes(), bytes);
            }
        }
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        for bad in [
            &b""[..],
            b"\x02\x00",                     // another version
            b"\x01\x0a",                     // unknown tag
            b"\x01\x03\x05\x00\x00\x00ab",   // length past the end
            b"\x01\x03\x01\x00\x00\x00\xff", // not UTF-8
            b"\x01\x02\x07",                 // bad option marker
            b"\x01\x08\xff\xff\xff\xff",     // an article count that is a lie
        ] {
            assert!(Reply::from_bytes(bad).is_err(), "{bad:?}");
        }
    }
}
