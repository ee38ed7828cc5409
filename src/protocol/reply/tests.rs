//! The reply model, writer and sealer against docs/protocol.md §6 and the vectors.

use super::write::{cdata, fmt_u64, itoa_buf, json_string};
use super::*;
use crate::crypto::{self, EncodingAesKey};

#[test]
fn in_place_sealing_matches_the_public_steps() {
    // The request path encodes into the cipher buffer and base64-encodes into the
    // envelope; it must give the bytes that encode + encrypt_with_prefix + envelope give.
    let key = EncodingAesKey::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").unwrap();
    let long = "长".repeat(300);
    for format in [Format::Xml, Format::Json] {
        for reply in [Reply::text("hi ]]> \"there\""), Reply::text(long.as_str())] {
            let mut random = [0u8; 24];
            random[..16].copy_from_slice(b"0123456789abcdef");
            random[16..].copy_from_slice(&1_234_567_890u64.to_le_bytes());
            let sealer = Sealer::new(format, &key, "wx1234567890abcdef", "tok", 1_714_200_000);
            let buf = reply.write_to(
                crypto::seal_buffer(0),
                format,
                "oUser",
                "gh_x",
                1_714_200_000,
            );
            let fast = sealer.seal(buf, random);

            let document = reply.encode(format, "oUser", "gh_x", 1_714_200_000);
            let encrypt = crypto::encrypt_with_prefix(
                &key,
                *b"0123456789abcdef",
                &document,
                "wx1234567890abcdef",
            );
            let slow = envelope(format, "tok", &encrypt, 1_714_200_000, "1234567890");
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(slow).unwrap()
            );
        }
    }
}

#[test]
fn cdata_splits_terminators() {
    let mut out = Vec::new();
    cdata(&mut out, b"a]]>b]]>");
    assert_eq!(out, b"<![CDATA[a]]]]><![CDATA[>b]]]]><![CDATA[>]]>");
}

#[test]
fn json_escapes_only_what_it_must() {
    let mut out = Vec::new();
    json_string(&mut out, "你\"\\\n\u{1}/".as_bytes());
    assert_eq!(String::from_utf8(out).unwrap(), "\"你\\\"\\\\\\n\\u0001/\"");
}

#[test]
fn formats_numbers() {
    let mut buf = itoa_buf();
    assert_eq!(fmt_u64(&mut buf, 0), b"0");
    let mut buf = itoa_buf();
    assert_eq!(fmt_u64(&mut buf, u64::MAX), b"18446744073709551615");
}

// -----------------------------------------------------------------------------------
// Whole reply documents against docs/protocol.md §6, field by field.
// -----------------------------------------------------------------------------------

/// One XML element of a reply document, as §6 writes them: child elements, or one value,
/// written as CDATA (strings) or as bare text (numbers).
#[derive(Debug, PartialEq)]
struct El {
    name: String,
    value: Val,
}

#[derive(Debug, PartialEq)]
enum Val {
    Cdata(String),
    Bare(String),
    Children(Vec<El>),
}

fn string(name: &str, value: &str) -> El {
    El {
        name: name.into(),
        value: Val::Cdata(value.into()),
    }
}

fn number(name: &str, value: &str) -> El {
    El {
        name: name.into(),
        value: Val::Bare(value.into()),
    }
}

fn parent(name: &str, children: Vec<El>) -> El {
    El {
        name: name.into(),
        value: Val::Children(children),
    }
}

/// A strict reader for reply documents, independent of the crate's codec: elements
/// without attributes, holding child elements (whitespace between them is skipped, as in
/// §6's indented samples), one or more adjacent CDATA sections (joined, so a split `]]>`
/// reads back whole), or bare text without markup or entities. Anything else panics.
fn parse_xml(doc: &str) -> El {
    fn element(rest: &mut &str) -> El {
        *rest = rest.trim_start();
        let open = rest.strip_prefix('<').expect("an element");
        let end = open.find('>').expect("a closed start tag");
        let name = &open[..end];
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()),
            "element name {name:?}"
        );
        *rest = &open[end + 1..];
        let value = if rest.starts_with("<![CDATA[") {
            let mut text = String::new();
            while let Some(section) = rest.strip_prefix("<![CDATA[") {
                let end = section.find("]]>").expect("a closed CDATA section");
                text.push_str(&section[..end]);
                *rest = &section[end + 3..];
            }
            Val::Cdata(text)
        } else if rest.trim_start().starts_with("</") {
            Val::Bare(String::new())
        } else if rest.trim_start().starts_with('<') {
            let mut children = Vec::new();
            while !rest.trim_start().starts_with("</") {
                children.push(element(rest));
            }
            *rest = rest.trim_start();
            Val::Children(children)
        } else {
            let end = rest.find('<').expect("text followed by an end tag");
            let text = &rest[..end];
            assert!(!text.contains(['&', '>']), "bare text {text:?}");
            *rest = &rest[end..];
            Val::Bare(text.into())
        };
        let close = format!("</{name}>");
        *rest = rest
            .strip_prefix(close.as_str())
            .unwrap_or_else(|| panic!("expected {close} at {rest:?}"));
        El {
            name: name.into(),
            value,
        }
    }
    let mut rest = doc;
    let root = element(&mut rest);
    assert!(rest.trim().is_empty(), "after the root: {rest:?}");
    assert_eq!(root.name, "xml", "§6: the root element is xml");
    root
}

/// The reply header of §6: `ToUserName`, `FromUserName`, `CreateTime`, `MsgType`.
fn header(to: &str, from: &str, time: &str, msg_type: &str) -> Vec<El> {
    vec![
        string("ToUserName", to),
        string("FromUserName", from),
        number("CreateTime", time),
        string("MsgType", msg_type),
    ]
}

/// `reply` written in XML and in JSON by the layer's encoder, for the user `toUser` of the
/// account `fromUser` at 12345678 (the values of §6's samples).
fn encode_both(reply: &Reply) -> (El, serde_json::Value) {
    let xml = reply.encode(Format::Xml, "toUser", "fromUser", 12345678);
    let json = reply.encode(Format::Json, "toUser", "fromUser", 12345678);
    let xml = String::from_utf8(xml).unwrap();
    let json = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
    (parse_xml(&xml), json)
}

/// Checks `reply` against the §6 document `body` (the elements after the header), and
/// against `json`, the same document in JSON.
///
/// §6 specifies these passive replies in XML only (official accounts answer XML), and
/// gives JSON only for `transfer_customer_service`; §9 takes "reply in the configured
/// format". For JSON the crate writes the same tree: an element with children becomes an
/// object, `CreateTime` and `ArticleCount` numbers, every other value a string, and the
/// `item`s of `Articles` an array of objects. The JSON halves pin that mapping.
fn check(reply: &Reply, msg_type: &str, body: Vec<El>, json: serde_json::Value) {
    let mut expected = header("toUser", "fromUser", "12345678", msg_type);
    expected.extend(body);
    let (xml, actual_json) = encode_both(reply);
    assert_eq!(xml, parent("xml", expected), "{reply:?} in XML");
    let mut expected_json = serde_json::json!({
        "ToUserName": "toUser",
        "FromUserName": "fromUser",
        "CreateTime": 12345678,
        "MsgType": msg_type,
    });
    expected_json
        .as_object_mut()
        .unwrap()
        .extend(json.as_object().unwrap().clone());
    assert_eq!(actual_json, expected_json, "{reply:?} in JSON");
}

/// Text with what each format must escape or split: `]]>`, quotes, a backslash, a
/// newline, `<&>`, CJK.
const AWKWARD: &str = "a ]]> b \"q\" \\ <&> 你好\nend";

/// §6's news sample, verbatim.
const SECTION_6_NEWS: &str = "<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>12345678</CreateTime>
  <MsgType><![CDATA[news]]></MsgType>
  <ArticleCount>1</ArticleCount>
  <Articles>
<item>
  <Title><![CDATA[title1]]></Title>
  <Description><![CDATA[description1]]></Description>
  <PicUrl><![CDATA[picurl]]></PicUrl>
  <Url><![CDATA[url]]></Url>
</item>
  </Articles>
</xml>";

/// §6's `transfer_customer_service` sample, verbatim, and its JSON form.
const SECTION_6_TRANSFER: &str = "<xml>
  <ToUserName><![CDATA[touser]]></ToUserName>
  <FromUserName><![CDATA[fromuser]]></FromUserName>
  <CreateTime>1399197672</CreateTime>
  <MsgType><![CDATA[transfer_customer_service]]></MsgType>
</xml>";
const SECTION_6_TRANSFER_JSON: &str = r#"{"ToUserName":"<openid>","FromUserName":"<gh_id>","CreateTime":1399197672,"MsgType":"transfer_customer_service"}"#;

#[test]
fn the_reader_reads_section_6_samples_and_refuses_what_it_does_not_know() {
    let news = parse_xml(SECTION_6_NEWS);
    let Val::Children(children) = &news.value else {
        panic!("{news:?}")
    };
    assert_eq!(children.len(), 6);
    assert_eq!(children[4], number("ArticleCount", "1"));
    let split = parse_xml("<xml><A><![CDATA[x]]]]><![CDATA[>y]]></A></xml>");
    assert_eq!(split, parent("xml", vec![string("A", "x]]>y")]));
    for bad in [
        "<xml><A>x</B></xml>",
        "<xml><A a=\"1\">x</A></xml>",
        "<xml><A>&amp;</A></xml>",
        "<xml><A><![CDATA[x]]>y</A></xml>",
        "<root></root>",
        "<xml></xml>trailing",
    ] {
        let read = std::panic::catch_unwind(|| parse_xml(bad));
        assert!(read.is_err(), "{bad} was read as {read:?}");
    }
}

#[test]
fn image_reply_is_section_6() {
    check(
        &Reply::image("MEDIA_ID ]]>"),
        "image",
        vec![parent("Image", vec![string("MediaId", "MEDIA_ID ]]>")])],
        serde_json::json!({"Image": {"MediaId": "MEDIA_ID ]]>"}}),
    );
}

#[test]
fn voice_reply_is_section_6() {
    check(
        &Reply::Voice {
            media_id: "VOICE_ID".into(),
        },
        "voice",
        vec![parent("Voice", vec![string("MediaId", "VOICE_ID")])],
        serde_json::json!({"Voice": {"MediaId": "VOICE_ID"}}),
    );
}

#[test]
fn video_reply_is_section_6_with_and_without_its_optional_fields() {
    check(
        &Reply::Video {
            media_id: "VIDEO_ID".into(),
            title: Some(AWKWARD.into()),
            description: Some("description".into()),
        },
        "video",
        vec![parent(
            "Video",
            vec![
                string("MediaId", "VIDEO_ID"),
                string("Title", AWKWARD),
                string("Description", "description"),
            ],
        )],
        serde_json::json!({"Video": {
            "MediaId": "VIDEO_ID", "Title": AWKWARD, "Description": "description"
        }}),
    );
    // Title and Description are optional: absent, not empty.
    check(
        &Reply::Video {
            media_id: "VIDEO_ID".into(),
            title: None,
            description: None,
        },
        "video",
        vec![parent("Video", vec![string("MediaId", "VIDEO_ID")])],
        serde_json::json!({"Video": {"MediaId": "VIDEO_ID"}}),
    );
}

#[test]
fn music_reply_is_section_6_with_and_without_its_optional_fields() {
    check(
        &Reply::Music(Music {
            title: Some("title".into()),
            description: Some(AWKWARD.into()),
            music_url: Some("https://example.com/m.mp3?a=1&b=2".into()),
            hq_music_url: Some("https://example.com/hq.mp3".into()),
            thumb_media_id: "THUMB_ID".into(),
        }),
        "music",
        vec![parent(
            "Music",
            vec![
                string("Title", "title"),
                string("Description", AWKWARD),
                string("MusicUrl", "https://example.com/m.mp3?a=1&b=2"),
                string("HQMusicUrl", "https://example.com/hq.mp3"),
                string("ThumbMediaId", "THUMB_ID"),
            ],
        )],
        serde_json::json!({"Music": {
            "Title": "title",
            "Description": AWKWARD,
            "MusicUrl": "https://example.com/m.mp3?a=1&b=2",
            "HQMusicUrl": "https://example.com/hq.mp3",
            "ThumbMediaId": "THUMB_ID"
        }}),
    );
    // Only ThumbMediaId is required.
    check(
        &Reply::Music(Music {
            thumb_media_id: "THUMB_ID".into(),
            ..Music::default()
        }),
        "music",
        vec![parent("Music", vec![string("ThumbMediaId", "THUMB_ID")])],
        serde_json::json!({"Music": {"ThumbMediaId": "THUMB_ID"}}),
    );
}

#[test]
fn news_reply_is_section_6() {
    // §6's own sample, element for element.
    let one = Reply::News(vec![Article {
        title: "title1".into(),
        description: "description1".into(),
        pic_url: "picurl".into(),
        url: "url".into(),
    }]);
    assert_eq!(encode_both(&one).0, parse_xml(SECTION_6_NEWS));

    // More than one article (allowed outside answers to user messages): one item each,
    // in order, counted by ArticleCount.
    let article = |n: u32| Article {
        title: format!("title{n}"),
        description: if n == 2 {
            AWKWARD.into()
        } else {
            format!("description{n}")
        },
        pic_url: format!("https://example.com/{n}.png"),
        url: format!("https://example.com/{n}?x=1&y=2"),
    };
    let item = |n: u32| {
        let a = article(n);
        parent(
            "item",
            vec![
                string("Title", &a.title),
                string("Description", &a.description),
                string("PicUrl", &a.pic_url),
                string("Url", &a.url),
            ],
        )
    };
    let json_item = |n: u32| {
        let a = article(n);
        serde_json::json!({
            "Title": a.title, "Description": a.description, "PicUrl": a.pic_url, "Url": a.url
        })
    };
    check(
        &Reply::News(vec![article(1), article(2)]),
        "news",
        vec![
            number("ArticleCount", "2"),
            parent("Articles", vec![item(1), item(2)]),
        ],
        serde_json::json!({"ArticleCount": 2, "Articles": [json_item(1), json_item(2)]}),
    );
}

#[test]
fn transfer_customer_service_reply_is_section_6() {
    // §6's samples, XML and JSON, exactly: nothing after MsgType.
    let transfer = Reply::transfer_customer_service();
    let xml = transfer.encode(Format::Xml, "touser", "fromuser", 1399197672);
    assert_eq!(
        parse_xml(std::str::from_utf8(&xml).unwrap()),
        parse_xml(SECTION_6_TRANSFER)
    );
    let json = transfer.encode(Format::Json, "<openid>", "<gh_id>", 1399197672);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&json).unwrap(),
        serde_json::from_str::<serde_json::Value>(SECTION_6_TRANSFER_JSON).unwrap()
    );
    check(
        &transfer,
        "transfer_customer_service",
        vec![],
        serde_json::json!({}),
    );

    // To one agent: the older multi-agent docs' TransInfo/KfAccount.
    check(
        &Reply::TransferCustomerService {
            kf_account: Some("test1@test".into()),
        },
        "transfer_customer_service",
        vec![parent("TransInfo", vec![string("KfAccount", "test1@test")])],
        serde_json::json!({"TransInfo": {"KfAccount": "test1@test"}}),
    );
}
