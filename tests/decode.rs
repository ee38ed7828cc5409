//! The sans-IO body decoder: every sample push of WeChat's documentation (docs/protocol.md §5) in XML and JSON, the
//! plaintexts and envelopes of `vectors.json`, malformed input, and a fuzz test.

use std::borrow::Cow;

use proptest::prelude::*;
use wechat_push::codec::{decode_envelope, decode_message, DecodeErrorKind, Envelope, Format};
use wechat_push::message::{Event, Fields, Kind, Message, SubscribeStatus, Suggest, Value};

fn xml(doc: &str) -> Message {
    Message::from_xml(doc.as_bytes()).unwrap_or_else(|e| panic!("{e}: {doc}"))
}

fn json(doc: &str) -> Message {
    Message::from_json(doc.as_bytes()).unwrap_or_else(|e| panic!("{e}: {doc}"))
}

/// Decodes both forms, checks they are equal, and returns the message.
fn both(x: &str, j: &str) -> Message {
    let (a, b) = (xml(x), json(j));
    assert_eq!(a, b, "XML and JSON forms differ");
    // decode_envelope agrees with decode_message for plaintext pushes.
    for (body, format) in [(x, Format::Xml), (j, Format::Json)] {
        let (f, env) = decode_envelope(body.as_bytes()).unwrap();
        assert_eq!(f, format);
        assert_eq!(env, Envelope::Plain(a.clone()));
    }
    a
}

fn err(format: Format, doc: &[u8]) -> DecodeErrorKind {
    match decode_message(format, doc) {
        Ok(m) => panic!("decoded {m:?} from {:?}", String::from_utf8_lossy(doc)),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            e.kind()
        }
    }
}

fn fields<const N: usize>(entries: [(&str, Value); N]) -> Fields {
    entries.into_iter().collect()
}

fn t(s: &str) -> Value {
    Value::text(s)
}

/// Checks the header of `m` and what it carried beyond the typed content. The typed content
/// is checked with patterns: its variants and structs are `#[non_exhaustive]`.
fn assert_head(m: &Message, to: &str, from: &str, time: u64, msg_id: Option<u64>, extra: Fields) {
    assert_eq!(
        (
            m.to_user(),
            m.from_user(),
            m.create_time(),
            m.msg_id(),
            m.extra()
        ),
        (to, from, time, msg_id, &extra),
        "{m:?}"
    );
}

// ---------------------------------------------------------------- §3.2 / §5.1

#[test]
fn text() {
    let m = both(
        r#"<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1482048670</CreateTime>
  <MsgType><![CDATA[text]]></MsgType>
  <Content><![CDATA[this is a test]]></Content>
  <MsgId>1234567890123456</MsgId>
</xml>"#,
        r#"{"ToUserName":"toUser","FromUserName":"fromUser","CreateTime":1482048670,"MsgType":"text","Content":"this is a test","MsgId":1234567890123456}"#,
    );
    let expected = Message::new(
        "toUser",
        "fromUser",
        1482048670,
        Kind::text("this is a test"),
    )
    .with_msg_id(1234567890123456);
    assert_eq!(m, expected);
    assert_eq!(m.to_user(), "toUser");
    assert_eq!(m.from_user(), "fromUser");
    assert_eq!(m.create_time(), 1482048670);
    assert_eq!(m.msg_id(), Some(1234567890123456));
    assert_eq!(m.msg_type(), "text");
    assert_eq!(m.event_name(), None);
    assert!(m.extra().is_empty());
}

#[test]
fn image() {
    let m = both(
        r#"<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1482048670</CreateTime>
  <MsgType><![CDATA[image]]></MsgType>
  <PicUrl><![CDATA[this is a url]]></PicUrl>
  <MediaId><![CDATA[media_id]]></MediaId>
  <MsgId>1234567890123456</MsgId>
</xml>"#,
        r#"{"ToUserName":"toUser","FromUserName":"fromUser","CreateTime":1482048670,"MsgType":"image","PicUrl":"this is a url","MediaId":"media_id","MsgId":1234567890123456}"#,
    );
    assert_head(
        &m,
        "toUser",
        "fromUser",
        1482048670,
        Some(1234567890123456),
        Fields::new(),
    );
    let Kind::Image {
        pic_url, media_id, ..
    } = m.kind()
    else {
        panic!("{m:?}")
    };
    assert_eq!(
        (pic_url.as_str(), media_id.as_str()),
        ("this is a url", "media_id")
    );
}

/// Checks a `miniprogrampage` push: `[Title, AppId, PagePath, ThumbUrl, ThumbMediaId]`.
fn assert_mini_page(m: &Message, expected: [&str; 5]) {
    assert_head(
        m,
        "toUser",
        "fromUser",
        1482048670,
        Some(1234567890123456),
        Fields::new(),
    );
    let Kind::MiniProgramPage {
        title,
        app_id,
        page_path,
        thumb_url,
        thumb_media_id,
        ..
    } = m.kind()
    else {
        panic!("{m:?}")
    };
    assert_eq!(
        [title, app_id, page_path, thumb_url, thumb_media_id].map(String::as_str),
        expected
    );
}

#[test]
fn miniprogrampage() {
    // The §5.1 samples differ in content between the forms: check each, then a matching pair.
    let doc_xml = r#"<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1482048670</CreateTime>
  <MsgType><![CDATA[miniprogrampage]]></MsgType>
  <MsgId>1234567890123456</MsgId>
  <Title><![CDATA[Title]]></Title>
  <AppId><![CDATA[AppId]]></AppId>
  <PagePath><![CDATA[PagePath]]></PagePath>
  <ThumbUrl><![CDATA[ThumbUrl]]></ThumbUrl>
  <ThumbMediaId><![CDATA[ThumbMediaId]]></ThumbMediaId>
</xml>"#;
    let doc_json = r#"{"ToUserName":"toUser","FromUserName":"fromUser","CreateTime":1482048670,"MsgType":"miniprogrampage","MsgId":1234567890123456,"Title":"title","AppId":"appid","PagePath":"path","ThumbUrl":"","ThumbMediaId":""}"#;
    assert_mini_page(
        &xml(doc_xml),
        ["Title", "AppId", "PagePath", "ThumbUrl", "ThumbMediaId"],
    );
    assert_mini_page(&json(doc_json), ["title", "appid", "path", "", ""]);
    let pair_xml = "<xml><ToUserName>toUser</ToUserName><FromUserName>fromUser</FromUserName>\
        <CreateTime>1482048670</CreateTime><MsgType>miniprogrampage</MsgType><MsgId>1234567890123456</MsgId>\
        <Title>title</Title><AppId>appid</AppId><PagePath>path</PagePath><ThumbUrl/><ThumbMediaId></ThumbMediaId></xml>";
    both(pair_xml, doc_json);
}

#[test]
fn user_enter_tempsession() {
    let m = both(
        r#"<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1482048670</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[user_enter_tempsession]]></Event>
  <SessionFrom><![CDATA[sessionFrom]]></SessionFrom>
</xml>"#,
        r#"{"ToUserName":"toUser","FromUserName":"fromUser","CreateTime":1482048670,"MsgType":"event","Event":"user_enter_tempsession","SessionFrom":"sessionFrom"}"#,
    );
    assert_head(&m, "toUser", "fromUser", 1482048670, None, Fields::new());
    let Some(Event::UserEnterTempSession { session_from, .. }) = m.event() else {
        panic!("{m:?}")
    };
    assert_eq!(session_from, "sessionFrom");
    assert_eq!(m.msg_type(), "event");
    assert_eq!(m.event_name(), Some("user_enter_tempsession"));
}

#[test]
fn cloud_function_string_msg_id_is_kept_as_extra() {
    let m = json(
        r#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":"1555684067","MsgType":"text","Content":"x","MsgId":"49d72d67b16d115e7935ac386f2f0fa41535298877_1555684067"}"#,
    );
    assert_eq!(m.msg_id(), None);
    assert_eq!(m.create_time(), 1555684067);
    assert_eq!(
        m.field("MsgId"),
        Some(&t("49d72d67b16d115e7935ac386f2f0fa41535298877_1555684067"))
    );
    // A numeric string MsgId is accepted.
    let m = json(
        r#"{"ToUserName":"a","FromUserName":"b","CreateTime":1,"MsgType":"text","Content":"","MsgId":"7318273910382837761"}"#,
    );
    assert_eq!(m.msg_id(), Some(7318273910382837761));
}

// ---------------------------------------------------------------- §5.2

/// `(TemplateId, status, PopupScene)` of each item of a popup event, none with extra fields.
fn popups(m: &Message) -> Vec<(&str, SubscribeStatus, Option<u32>)> {
    let Some(Event::SubscribeMsgPopup { items, .. }) = m.event() else {
        panic!("{m:?}")
    };
    items
        .iter()
        .map(|i| {
            assert!(i.extra.is_empty(), "{i:?}");
            (i.template_id.as_str(), i.status.clone(), i.popup_scene)
        })
        .collect()
}

#[test]
fn subscribe_msg_popup_event() {
    let doc_xml = r#"<xml>
  <ToUserName><![CDATA[gh_123456789abc]]></ToUserName>
  <FromUserName><![CDATA[otFpruAK8D-E6EfStSYonYSBZ8_4]]></FromUserName>
  <CreateTime>1610969440</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[subscribe_msg_popup_event]]></Event>
  <SubscribeMsgPopupEvent>
    <List>
      <TemplateId><![CDATA[VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId>
      <SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString>
      <PopupScene>2</PopupScene>
    </List>
    <List>
      <TemplateId><![CDATA[9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI]]></TemplateId>
      <SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString>
      <PopupScene>2</PopupScene>
    </List>
  </SubscribeMsgPopupEvent>
</xml>"#;
    let m = xml(doc_xml);
    assert_head(
        &m,
        "gh_123456789abc",
        "otFpruAK8D-E6EfStSYonYSBZ8_4",
        1610969440,
        None,
        Fields::new(),
    );
    assert_eq!(
        popups(&m),
        [
            (
                "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc",
                SubscribeStatus::Accept,
                Some(2)
            ),
            (
                "9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI",
                SubscribeStatus::Reject,
                Some(2)
            ),
        ]
    );
    // The same content as a JSON array (PopupScene as string and as number).
    both(
        doc_xml,
        r#"{"ToUserName":"gh_123456789abc","FromUserName":"otFpruAK8D-E6EfStSYonYSBZ8_4","CreateTime":1610969440,"MsgType":"event","Event":"subscribe_msg_popup_event","List":[{"TemplateId":"VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc","SubscribeStatusString":"accept","PopupScene":"2"},{"TemplateId":"9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI","SubscribeStatusString":"reject","PopupScene":2}]}"#,
    );

    // §5.2 JSON sample: `List` is an object for one item, `PopupScene` a string.
    let doc_json = r#"{"ToUserName":"gh_123456789abc","FromUserName":"o7esq5OI1Uej6Xixw1lA2H7XDVbc","CreateTime":1620973045,"MsgType":"event","Event":"subscribe_msg_popup_event","List":{"TemplateId":"hD-ixGOhYmUfjOnI8MCzQMPshzGVeux_2vzyvQu7O68","SubscribeStatusString":"accept","PopupScene":"0"}}"#;
    let m = json(doc_json);
    assert_head(
        &m,
        "gh_123456789abc",
        "o7esq5OI1Uej6Xixw1lA2H7XDVbc",
        1620973045,
        None,
        Fields::new(),
    );
    assert_eq!(
        popups(&m),
        [(
            "hD-ixGOhYmUfjOnI8MCzQMPshzGVeux_2vzyvQu7O68",
            SubscribeStatus::Accept,
            Some(0)
        )]
    );
    let one_xml = "<xml><ToUserName>gh_123456789abc</ToUserName><FromUserName>o7esq5OI1Uej6Xixw1lA2H7XDVbc</FromUserName>\
        <CreateTime>1620973045</CreateTime><MsgType>event</MsgType><Event>subscribe_msg_popup_event</Event>\
        <SubscribeMsgPopupEvent><List><TemplateId>hD-ixGOhYmUfjOnI8MCzQMPshzGVeux_2vzyvQu7O68</TemplateId>\
        <SubscribeStatusString>accept</SubscribeStatusString><PopupScene>0</PopupScene></List></SubscribeMsgPopupEvent></xml>";
    both(one_xml, doc_json);
}

/// `TemplateId` of each item of a change event, checking each is a `reject` without extra fields.
fn rejected_templates(m: &Message) -> Vec<&str> {
    let Some(Event::SubscribeMsgChange { items, .. }) = m.event() else {
        panic!("{m:?}")
    };
    items
        .iter()
        .map(|i| {
            assert_eq!(
                (&i.status, i.extra.is_empty()),
                (&SubscribeStatus::Reject, true),
                "{i:?}"
            );
            i.template_id.as_str()
        })
        .collect()
}

#[test]
fn subscribe_msg_change_event() {
    let doc_xml = r#"<xml>
  <ToUserName><![CDATA[gh_123456789abc]]></ToUserName>
  <FromUserName><![CDATA[otFpruAK8D-E6EfStSYonYSBZ8_4]]></FromUserName>
  <CreateTime>1610969440</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[subscribe_msg_change_event]]></Event>
  <SubscribeMsgChangeEvent>
    <List>
      <TemplateId><![CDATA[VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId>
      <SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString>
    </List>
  </SubscribeMsgChangeEvent>
</xml>"#;
    let m = xml(doc_xml);
    assert_head(
        &m,
        "gh_123456789abc",
        "otFpruAK8D-E6EfStSYonYSBZ8_4",
        1610969440,
        None,
        Fields::new(),
    );
    assert_eq!(
        rejected_templates(&m),
        ["VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc"]
    );
    both(
        doc_xml,
        r#"{"ToUserName":"gh_123456789abc","FromUserName":"otFpruAK8D-E6EfStSYonYSBZ8_4","CreateTime":1610969440,"MsgType":"event","Event":"subscribe_msg_change_event","List":{"TemplateId":"VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc","SubscribeStatusString":"reject"}}"#,
    );

    let doc_json = r#"{"ToUserName":"gh_123456789abc","FromUserName":"o7esq5OI1Uej6Xixw1lA2H7XDVbc","CreateTime":1610968440,"MsgType":"event","Event":"subscribe_msg_change_event","List":[{"TemplateId":"savKN0g_My3T-Hb6t5yUJ2HfG6Wj56HRJzxGOyU2z_Y","SubscribeStatusString":"reject"},{"TemplateId":"gIg6LaccfJuD1IAKzSdodAT7U3Z4ZEHZbPcLo1Q-VUo","SubscribeStatusString":"reject"}]}"#;
    let m = json(doc_json);
    assert_head(
        &m,
        "gh_123456789abc",
        "o7esq5OI1Uej6Xixw1lA2H7XDVbc",
        1610968440,
        None,
        Fields::new(),
    );
    assert_eq!(
        rejected_templates(&m),
        [
            "savKN0g_My3T-Hb6t5yUJ2HfG6Wj56HRJzxGOyU2z_Y",
            "gIg6LaccfJuD1IAKzSdodAT7U3Z4ZEHZbPcLo1Q-VUo"
        ]
    );
}

#[test]
fn subscribe_msg_sent_event() {
    let doc_xml = r#"<xml>
  <ToUserName><![CDATA[gh_123456789abc]]></ToUserName>
  <FromUserName><![CDATA[otFpruAK8D-E6EfStSYonYSBZ8_4]]></FromUserName>
  <CreateTime>1610969468</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[subscribe_msg_sent_event]]></Event>
  <SubscribeMsgSentEvent>
    <List>
      <TemplateId><![CDATA[VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId>
      <MsgID>1700827132819554304</MsgID>
      <ErrorCode>0</ErrorCode>
      <ErrorStatus><![CDATA[success]]></ErrorStatus>
    </List>
  </SubscribeMsgSentEvent>
</xml>"#;
    let m = xml(doc_xml);
    assert_head(
        &m,
        "gh_123456789abc",
        "otFpruAK8D-E6EfStSYonYSBZ8_4",
        1610969468,
        None,
        Fields::new(),
    );
    let Some(Event::SubscribeMsgSent { items, .. }) = m.event() else {
        panic!("{m:?}")
    };
    let [sent] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert_eq!(
        (
            sent.template_id.as_str(),
            sent.msg_id,
            sent.error_code,
            sent.error_status.as_str(),
            &sent.extra
        ),
        (
            "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc",
            1700827132819554304,
            0,
            "success",
            &Fields::new()
        )
    );
    let head = r#""ToUserName":"gh_123456789abc","FromUserName":"otFpruAK8D-E6EfStSYonYSBZ8_4","CreateTime":"1610969468","MsgType":"event","Event":"subscribe_msg_sent_event""#;
    let item = r#"{"TemplateId":"VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc","MsgID":"1700827132819554304","ErrorCode":"0","ErrorStatus":"success"}"#;
    let item_numbers = r#"{"TemplateId":"VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc","MsgID":1700827132819554304,"ErrorCode":0,"ErrorStatus":"success"}"#;
    // Object, array, nested under SubscribeMsgSentEvent; strings or numbers.
    both(doc_xml, &format!("{{{head},\"List\":{item}}}"));
    both(doc_xml, &format!("{{{head},\"List\":[{item_numbers}]}}"));
    both(
        doc_xml,
        &format!("{{{head},\"SubscribeMsgSentEvent\":{{\"List\":{item}}}}}"),
    );
    both(
        doc_xml,
        &format!("{{{head},\"SubscribeMsgSentEvent\":{{\"List\":[{item}]}}}}"),
    );

    // §5.2 JSON sample.
    let m = json(
        r#"{"ToUserName":"gh_123456789abc","FromUserName":"o7esq5PHRGBQYmeNyfG064wEFVpQ","CreateTime":1620963428,"MsgType":"event","Event":"subscribe_msg_sent_event","List":{"TemplateId":"BEwX0BO-T3MqK3Uc5oTU3CGBqzjpndk2jzUf7VfExd8","MsgID":"1864323726461255680","ErrorCode":"0","ErrorStatus":"success"}}"#,
    );
    let Some(Event::SubscribeMsgSent { items, .. }) = m.event() else {
        panic!("{m:?}")
    };
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].msg_id, 1864323726461255680);
    assert_eq!(items[0].error_code, 0);
    assert_eq!(
        items[0].template_id,
        "BEwX0BO-T3MqK3Uc5oTU3CGBqzjpndk2jzUf7VfExd8"
    );
    assert_eq!(m.create_time(), 1620963428);

    // A refusal, negative error codes, several items.
    let m = json(&format!(
        "{{{head},\"List\":[{item},{{\"TemplateId\":\"t2\",\"MsgID\":\"2\",\"ErrorCode\":43101,\"ErrorStatus\":\"failed:user refuse to accept the msg\",\"Extra\":1}}]}}"
    ));
    let Some(Event::SubscribeMsgSent { items, .. }) = m.event() else {
        panic!("{m:?}")
    };
    assert_eq!(items[1].error_code, 43101);
    assert_eq!(items[1].extra, fields([("Extra", t("1"))]));
}

// ---------------------------------------------------------------- §5.3

#[test]
fn wxa_media_check() {
    let doc_xml = r#"<xml>
  <ToUserName><![CDATA[gh_6e306981e699]]></ToUserName>
  <FromUserName><![CDATA[oeaTy0Ej7xM_LexOCWGeJtL4ABoE]]></FromUserName>
  <CreateTime>1659967849</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[wxa_media_check]]></Event>
  <appid><![CDATA[wx12b4f63276b14d4c]]></appid>
  <trace_id><![CDATA[62f11967-2b24d27a-34715985]]></trace_id>
  <version>2</version>
  <detail>
    <strategy><![CDATA[content_model]]></strategy>
    <errcode>0</errcode>
    <suggest><![CDATA[pass]]></suggest>
    <label>100</label>
    <prob>90</prob>
  </detail>
  <errcode>0</errcode>
  <errmsg><![CDATA[ok]]></errmsg>
  <result>
    <suggest><![CDATA[pass]]></suggest>
    <label>100</label>
  </result>
</xml>"#;
    // Both samples carry the same verdict: pass, label 100, one `content_model` detail.
    let check = |m: &Message, app_id: &str, trace_id: &str| {
        let Some(Event::WxaMediaCheck(c)) = m.event() else {
            panic!("{m:?}")
        };
        assert_eq!(
            (c.app_id.as_str(), c.trace_id.as_str(), c.version),
            (app_id, trace_id, Some(2))
        );
        let Some(r) = &c.result else { panic!("{c:?}") };
        assert_eq!(
            (&r.suggest, r.label, &r.extra),
            (&Suggest::Pass, 100, &Fields::new())
        );
        let [d] = c.detail.as_slice() else {
            panic!("{c:?}")
        };
        assert_eq!(
            (
                d.strategy.as_str(),
                d.errcode,
                &d.suggest,
                d.label,
                d.prob,
                &d.extra
            ),
            (
                "content_model",
                Some(0),
                &Suggest::Pass,
                100,
                Some(90),
                &Fields::new()
            )
        );
    };
    let m = xml(doc_xml);
    assert_head(
        &m,
        "gh_6e306981e699",
        "oeaTy0Ej7xM_LexOCWGeJtL4ABoE",
        1659967849,
        None,
        fields([("errcode", t("0")), ("errmsg", t("ok"))]),
    );
    check(&m, "wx12b4f63276b14d4c", "62f11967-2b24d27a-34715985");
    assert_eq!(m.field("errmsg"), Some(&t("ok")));
    both(
        doc_xml,
        r#"{"ToUserName":"gh_6e306981e699","FromUserName":"oeaTy0Ej7xM_LexOCWGeJtL4ABoE","CreateTime":1659967849,"MsgType":"event","Event":"wxa_media_check","appid":"wx12b4f63276b14d4c","trace_id":"62f11967-2b24d27a-34715985","version":2,"detail":[{"strategy":"content_model","errcode":0,"suggest":"pass","label":100,"prob":90}],"errcode":0,"errmsg":"ok","result":{"suggest":"pass","label":"100"}}"#,
    );

    // §5.3 JSON sample (a real push: `label` as a string, no errcode/errmsg).
    let m = json(
        r#"{"ToUserName":"gh_7bf1f1389686","FromUserName":"or9bw69jaWwJlF-6u0z3qT3KmO2k","CreateTime":1762329554,"MsgType":"event","Event":"wxa_media_check","appid":"wxb04d1be1ede56d47","trace_id":"690b03d2-301f6111-35ffbd44","version":2,"result":{"suggest":"pass","label":"100"},"detail":[{"strategy":"content_model","errcode":0,"suggest":"pass","label":"100","prob":90}]}"#,
    );
    assert_head(
        &m,
        "gh_7bf1f1389686",
        "or9bw69jaWwJlF-6u0z3qT3KmO2k",
        1762329554,
        None,
        Fields::new(),
    );
    check(&m, "wxb04d1be1ede56d47", "690b03d2-301f6111-35ffbd44");
}

#[test]
fn wxa_media_check_v1_and_risky() {
    let m = both(
        "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>\
         <MsgType>event</MsgType><Event>wxa_media_check</Event><isrisky>0</isrisky>\
         <extra_info_json></extra_info_json><appid>wx1</appid><trace_id>t1</trace_id>\
         <status_code>4294966288</status_code></xml>",
        r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1,"MsgType":"event","Event":"wxa_media_check","isrisky":0,"extra_info_json":"","appid":"wx1","trace_id":"t1","status_code":4294966288}"#,
    );
    assert_head(
        &m,
        "gh",
        "o",
        1,
        None,
        fields([
            ("isrisky", t("0")),
            ("extra_info_json", t("")),
            ("status_code", t("4294966288")),
        ]),
    );
    let Some(Event::WxaMediaCheck(c)) = m.event() else {
        panic!("{m:?}")
    };
    assert_eq!(
        (
            c.app_id.as_str(),
            c.trace_id.as_str(),
            c.version,
            &c.result,
            c.detail.len()
        ),
        ("wx1", "t1", None, &None, 0)
    );

    let m = json(
        r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1,"MsgType":"event","Event":"wxa_media_check","appid":"wx1","trace_id":"t1","version":"2","result":{"suggest":"risky","label":20002},"detail":[]}"#,
    );
    let Some(Event::WxaMediaCheck(c)) = m.event() else {
        panic!("{m:?}")
    };
    assert_eq!(
        c.result.as_ref().map(|r| (&r.suggest, r.label)),
        Some((&Suggest::Risky, 20002))
    );
    assert!(c.detail.is_empty());
    assert!(m.extra().is_empty());
}

// ---------------------------------------------------------------- official-account types (§5.4)

const OA_XML_HEAD: &str = "<xml><ToUserName><![CDATA[gh_oa]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1348831860</CreateTime>";
const OA_JSON_HEAD: &str = r#""ToUserName":"gh_oa","FromUserName":"oUser","CreateTime":1348831860"#;

fn oa(xml_body: &str, json_body: &str) -> Message {
    both(
        &format!("{OA_XML_HEAD}{xml_body}</xml>"),
        &format!("{{{OA_JSON_HEAD},{json_body}}}"),
    )
}

fn oa_expected(kind: Kind) -> Message {
    Message::new("gh_oa", "oUser", 1348831860, kind)
}

fn assert_oa(m: &Message, msg_id: Option<u64>, extra: Fields) {
    assert_head(m, "gh_oa", "oUser", 1348831860, msg_id, extra);
}

#[test]
fn official_account_messages() {
    let m = oa(
        "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m1]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[腾讯微信团队]]></Recognition><MsgId>1234567890123456</MsgId>",
        r#""MsgType":"voice","MediaId":"m1","Format":"amr","Recognition":"腾讯微信团队","MsgId":1234567890123456"#,
    );
    assert_oa(&m, Some(1234567890123456), Fields::new());
    let voice = |m: &Message| {
        let Kind::Voice {
            media_id,
            format,
            recognition,
            ..
        } = m.kind()
        else {
            panic!("{m:?}")
        };
        (media_id.clone(), format.clone(), recognition.clone())
    };
    assert_eq!(
        voice(&m),
        ("m1".into(), "amr".into(), Some("腾讯微信团队".into()))
    );
    let m = oa(
        "<MsgType>voice</MsgType><MediaId>m1</MediaId><Format>speex</Format><MsgDataId>xxxx</MsgDataId><Idx>1</Idx>",
        r#""MsgType":"voice","MediaId":"m1","Format":"speex","MsgDataId":"xxxx","Idx":1"#,
    );
    assert_oa(
        &m,
        None,
        fields([("MsgDataId", t("xxxx")), ("Idx", t("1"))]),
    );
    assert_eq!(voice(&m), ("m1".into(), "speex".into(), None));
    for ty in ["video", "shortvideo"] {
        let m = oa(
            &format!("<MsgType>{ty}</MsgType><MediaId>m2</MediaId><ThumbMediaId>th</ThumbMediaId><MsgId>9007199254740993</MsgId>"),
            &format!(r#""MsgType":"{ty}","MediaId":"m2","ThumbMediaId":"th","MsgId":9007199254740993"#),
        );
        assert_oa(&m, Some(9007199254740993), Fields::new());
        assert_eq!(m.msg_type(), ty);
        let (Kind::Video {
            media_id,
            thumb_media_id,
            ..
        }
        | Kind::ShortVideo {
            media_id,
            thumb_media_id,
            ..
        }) = m.kind()
        else {
            panic!("{m:?}")
        };
        assert_eq!((media_id.as_str(), thumb_media_id.as_str()), ("m2", "th"));
    }
    let m = oa(
        "<MsgType>location</MsgType><Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[位置信息]]></Label><MsgId>1</MsgId>",
        r#""MsgType":"location","Location_X":23.134521,"Location_Y":"113.358803","Scale":20,"Label":"位置信息","MsgId":1"#,
    );
    assert_oa(&m, Some(1), Fields::new());
    let Kind::Location {
        latitude,
        longitude,
        scale,
        label,
        ..
    } = m.kind()
    else {
        panic!("{m:?}")
    };
    assert_eq!(
        (*latitude, *longitude, *scale, label.as_str()),
        (23.134521, 113.358803, 20, "位置信息")
    );
    let m = oa(
        "<MsgType>link</MsgType><Title>公众平台官网链接</Title><Description>公众平台官网链接</Description><Url>https://mp.weixin.qq.com/?a=1&amp;b=2</Url><MsgId>1</MsgId>",
        r#""MsgType":"link","Title":"公众平台官网链接","Description":"公众平台官网链接","Url":"https:\/\/mp.weixin.qq.com\/?a=1&b=2","MsgId":1"#,
    );
    assert_oa(&m, Some(1), Fields::new());
    let Kind::Link {
        title,
        description,
        url,
        ..
    } = m.kind()
    else {
        panic!("{m:?}")
    };
    assert_eq!(
        (title.as_str(), description.as_str(), url.as_str()),
        (
            "公众平台官网链接",
            "公众平台官网链接",
            "https://mp.weixin.qq.com/?a=1&b=2"
        )
    );
}

#[test]
fn official_account_events() {
    let ev = |e: &str, xml_rest: &str, json_rest: &str| {
        oa(
            &format!(
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{e}]]></Event>{xml_rest}"
            ),
            &format!(r#""MsgType":"event","Event":"{e}"{json_rest}"#),
        )
    };
    // `(EventKey, Ticket)` of a subscribe event.
    let subscribe = |m: &Message| {
        assert_oa(m, None, Fields::new());
        let Some(Event::Subscribe {
            event_key, ticket, ..
        }) = m.event()
        else {
            panic!("{m:?}")
        };
        (event_key.clone(), ticket.clone())
    };
    assert_eq!(subscribe(&ev("subscribe", "", "")), (None, None));
    let m = ev(
        "subscribe",
        "<EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
        r#","EventKey":"qrscene_123123","Ticket":"TICKET""#,
    );
    assert_eq!(
        subscribe(&m),
        (Some("qrscene_123123".into()), Some("TICKET".into()))
    );
    assert_eq!(m.event_name(), Some("subscribe"));
    assert_eq!(
        ev("unsubscribe", "", ""),
        oa_expected(Kind::Event(Event::Unsubscribe))
    );
    let m = ev(
        "SCAN",
        "<EventKey><![CDATA[SCENE_VALUE]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
        r#","EventKey":"SCENE_VALUE","Ticket":"TICKET""#,
    );
    assert_oa(&m, None, Fields::new());
    let Some(Event::Scan {
        event_key, ticket, ..
    }) = m.event()
    else {
        panic!("{m:?}")
    };
    assert_eq!(
        (event_key.as_str(), ticket.as_deref()),
        ("SCENE_VALUE", Some("TICKET"))
    );
    let m = ev(
        "LOCATION",
        "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>",
        r#","Latitude":23.137466,"Longitude":113.352425,"Precision":"119.385040""#,
    );
    assert_oa(&m, None, Fields::new());
    let Some(Event::Location {
        latitude,
        longitude,
        precision,
        ..
    }) = m.event()
    else {
        panic!("{m:?}")
    };
    assert_eq!(
        (*latitude, *longitude, *precision),
        (23.137466, 113.352425, 119.38504)
    );
    let m = ev(
        "CLICK",
        "<EventKey><![CDATA[EVENTKEY]]></EventKey>",
        r#","EventKey":"EVENTKEY""#,
    );
    assert_oa(&m, None, Fields::new());
    let Some(Event::Click { event_key, .. }) = m.event() else {
        panic!("{m:?}")
    };
    assert_eq!(event_key, "EVENTKEY");
    let m = ev(
        "VIEW",
        "<EventKey><![CDATA[www.qq.com]]></EventKey><MenuId>123</MenuId>",
        r#","EventKey":"www.qq.com","MenuId":123"#,
    );
    assert_oa(&m, None, fields([("MenuId", t("123"))]));
    let Some(Event::View { event_key, .. }) = m.event() else {
        panic!("{m:?}")
    };
    assert_eq!(event_key, "www.qq.com");
    assert_eq!(m.field("MenuId"), Some(&t("123")));
}

#[test]
fn unknown_types_keep_every_field() {
    // §3.2: the official debug push.
    let m = json(
        r#"{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}"#,
    );
    let expected = Message::new(
        "gh_97417a04a28d",
        "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
        1714112445,
        Kind::Event(Event::Unknown {
            event: "debug_demo".into(),
        }),
    )
    .with_extra(fields([("debug_str", t("hello world"))]));
    assert_eq!(m, expected);
    assert_eq!(m.event_name(), Some("debug_demo"));

    // An unknown MsgType with nested, repeated and typed-looking fields.
    let m = both(
        "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>\
         <MsgType>xpay_goods_deliver_notify</MsgType><OpenId>o</OpenId><Env>0</Env>\
         <WeChatPayInfo><MchOrderNo>m</MchOrderNo><PaidTime>1700000000</PaidTime></WeChatPayInfo>\
         <Actions><ActionTime>1</ActionTime></Actions><Actions><ActionTime>2</ActionTime></Actions>\
         <Content>not a text message</Content><Flag>true</Flag><Null></Null></xml>",
        r#"{"ToUserName":"a","FromUserName":"b","CreateTime":1,"MsgType":"xpay_goods_deliver_notify","OpenId":"o","Env":0,
            "WeChatPayInfo":{"MchOrderNo":"m","PaidTime":1700000000},
            "Actions":[{"ActionTime":1},{"ActionTime":"2"}],"Content":"not a text message","Flag":true,"Null":null}"#,
    );
    assert_eq!(m.msg_type(), "xpay_goods_deliver_notify");
    assert_eq!(m.event_name(), None);
    assert_eq!(
        m.kind(),
        &Kind::Unknown {
            msg_type: "xpay_goods_deliver_notify".into()
        }
    );
    let expected = fields([
        ("OpenId", t("o")),
        ("Env", t("0")),
        (
            "WeChatPayInfo",
            Value::Node(fields([
                ("MchOrderNo", t("m")),
                ("PaidTime", t("1700000000")),
            ])),
        ),
        ("Actions", Value::Node(fields([("ActionTime", t("1"))]))),
        ("Actions", Value::Node(fields([("ActionTime", t("2"))]))),
        ("Content", t("not a text message")),
        ("Flag", t("true")),
        ("Null", t("")),
    ]);
    assert_eq!(m.extra(), &expected);
    assert_eq!(m.extra().get_all("Actions").count(), 2);
}

// ---------------------------------------------------------------- XML details

#[test]
fn xml_text_forms() {
    let head = "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>";
    let content = |body: &str| match xml(&format!("{head}<Content>{body}</Content></xml>")).kind() {
        Kind::Text { content, .. } => content.clone(),
        k => panic!("{k:?}"),
    };
    assert_eq!(content("plain"), "plain");
    assert_eq!(content("  spaced \n"), "  spaced \n");
    assert_eq!(content("<![CDATA[ <b>&amp; ]]>"), " <b>&amp; ");
    assert_eq!(content("a &amp; b &lt;&gt;&quot;&apos;"), "a & b <>\"'");
    assert_eq!(content("&#20320;&#x597D;&#x1F642;"), "你好🙂");
    assert_eq!(
        content("x<![CDATA[y]]>z<![CDATA[]]]]><![CDATA[>]]>"),
        "xyz]]>"
    );
    assert_eq!(content(""), "");
    assert_eq!(content("<!-- note -->kept"), "kept");
    assert_eq!(content("<?pi x?>a>b"), "a>b");
    let m = xml(&format!(
        "{head}<Content a=\"x>y/\" b = 'z' >c</Content  ></xml >"
    ));
    assert_eq!(m.kind(), &Kind::text("c"));
    // Any order, declaration, comments, attributes, BOM.
    let m = xml(
        "\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c --><xml a=\"1\">\n\t<MsgId>5</MsgId>\
         <Content x='y'>c</Content><MsgType>text</MsgType><CreateTime> 7 </CreateTime>\
         <FromUserName>b</FromUserName><ToUserName>a</ToUserName></xml>\n<!-- end -->\n",
    );
    assert_eq!(m, Message::new("a", "b", 7, Kind::text("c")).with_msg_id(5));
}

#[test]
fn xml_rejects() {
    let x = |s: &str| err(Format::Xml, s.as_bytes());
    let ok = "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>c</Content></xml>";
    xml(ok);
    assert_eq!(x("<!DOCTYPE xml><xml/>"), DecodeErrorKind::Doctype);
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>&lol3;</ToUserName></xml>"#;
    assert_eq!(x(laughs), DecodeErrorKind::Doctype);
    let ext = r#"<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>"#;
    assert_eq!(x(ext), DecodeErrorKind::Doctype);
    // An undeclared entity is not expanded.
    assert_eq!(x(&ok.replace(">c<", ">&xxe;<")), DecodeErrorKind::Syntax);
    assert_eq!(
        x(&ok.replace("<xml>", "<root>").replace("</xml>", "</root>")),
        DecodeErrorKind::Root
    );
    assert_eq!(
        x(&ok.replace("</xml>", "</xml><xml/>")),
        DecodeErrorKind::TrailingContent
    );
    assert_eq!(x(&format!("{ok}garbage")), DecodeErrorKind::TrailingContent);
    assert_eq!(
        x(&format!("{ok}<![CDATA[x]]>")),
        DecodeErrorKind::TrailingContent
    );
    assert_eq!(x(&ok[..ok.len() - 3]), DecodeErrorKind::Syntax);
    for cut in [10, 40, ok.len() - 6] {
        assert_eq!(x(&ok[..cut]), DecodeErrorKind::Syntax, "{}", &ok[..cut]);
    }
    assert_eq!(
        x(&ok.replace("</Content>", "</Other>")),
        DecodeErrorKind::Syntax
    );
    assert_eq!(
        x(&ok.replace("<Content>c", "<Content>c<b>d</b>")),
        DecodeErrorKind::Syntax
    );
    assert_eq!(
        x(&ok.replace("<Content>", "stray<Content>")),
        DecodeErrorKind::Syntax
    );
    assert_eq!(x("text<xml/>"), DecodeErrorKind::Syntax);
    assert_eq!(x(""), DecodeErrorKind::Syntax);
    assert_eq!(x("<xml>"), DecodeErrorKind::Syntax);
    assert_eq!(
        err(Format::Xml, b"<xml><ToUserName>\xff\xfe</ToUserName></xml>"),
        DecodeErrorKind::NotUtf8
    );
    // Depth: 32 levels are fine (then the header is missing), 33 are not.
    let nest = |n: usize| format!("<xml>{}{}</xml>", "<a>".repeat(n - 1), "</a>".repeat(n - 1));
    assert_eq!(x(&nest(32)), DecodeErrorKind::MissingField("ToUserName"));
    assert_eq!(x(&nest(33)), DecodeErrorKind::TooDeep);
    assert_eq!(
        x(&format!("<xml>{}", "<a>".repeat(100_000))),
        DecodeErrorKind::TooDeep
    );
    assert_eq!(
        x(&format!("<xml>{}<a/>", "<a>".repeat(31))),
        DecodeErrorKind::TooDeep
    );
    assert_eq!(x("<xml/>"), DecodeErrorKind::MissingField("ToUserName"));
    for bad in [
        "<Content a=x>c</Content>",
        "<Content\"a\">c</Content>",
        "<Content a='1'b='2'>c</Content>",
        "<Content a=\"<\">c</Content>",
        "<Content>&#0;</Content>",
        "<Content>&#xD800;</Content>",
        "<Content>&amp</Content>",
        "<Content>a & b</Content>",
        "<Content><!-- open</Content>",
        "<Content><![CDATA[open</Content>",
        "<Content><!ELEMENT x></Content>",
        "<Content>< b</Content>",
        "<>c</>",
    ] {
        assert_eq!(
            x(&ok.replace("<Content>c</Content>", bad)),
            DecodeErrorKind::Syntax,
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------- JSON details

#[test]
fn json_details() {
    let m = json(
        "\u{FEFF} {\"ToUserName\":\"a\\u0062\",\"FromUserName\":\"b\",\"CreateTime\":1,\"MsgType\":\"text\",\"Content\":\" \\n\",\"Dup\":1,\"Dup\":\"2\",\"F\":1.50,\"N\":-3} ",
    );
    assert_eq!(
        m,
        Message::new("ab", "b", 1, Kind::text(" \n")).with_extra(fields([
            ("Dup", t("1")),
            ("Dup", t("2")),
            ("F", t("1.5")),
            ("N", t("-3"))
        ]))
    );
    let j = |s: &str| err(Format::Json, s.as_bytes());
    assert_eq!(j("[1,2]"), DecodeErrorKind::NotAnObject);
    assert_eq!(j("\"x\""), DecodeErrorKind::NotAnObject);
    assert_eq!(j("  "), DecodeErrorKind::Empty);
    assert_eq!(j("{\"ToUserName\":\"a\""), DecodeErrorKind::Syntax);
    assert_eq!(j("{\"a\":1,}"), DecodeErrorKind::Syntax);
    assert_eq!(j("{} {}"), DecodeErrorKind::Syntax);
    assert_eq!(j("{\"a\":\"\\ud800\"}"), DecodeErrorKind::Syntax);
    assert_eq!(
        err(Format::Json, b"{\"a\":\"\xc3\x28\"}"),
        DecodeErrorKind::NotUtf8
    );
    assert_eq!(
        j("{\"MsgId\":184467440737095516160}"),
        DecodeErrorKind::NumberOutOfRange
    );
    assert_eq!(
        j("{\"x\":[-9223372036854775809]}"),
        DecodeErrorKind::NumberOutOfRange
    );
    assert_eq!(j("{\"x\":1e300}"), DecodeErrorKind::NumberOutOfRange);
    // Same counting as XML: `{"a":{"a":1}}` ≡ `<xml><a><a>1</a></a></xml>`, 3 levels.
    let deep = |n: usize| {
        format!(
            "{{{}\"a\":1{}}}",
            "\"a\":{".repeat(n - 2),
            "}".repeat(n - 2)
        )
    };
    assert_eq!(
        j(&format!(
            "{{\"a\":[{}1{}]}}",
            "[".repeat(30),
            "]".repeat(30)
        )),
        DecodeErrorKind::MissingField("ToUserName")
    );
    assert_eq!(
        j(&format!(
            "{{\"a\":[{}1{}]}}",
            "[".repeat(31),
            "]".repeat(31)
        )),
        DecodeErrorKind::TooDeep
    );
    assert_eq!(j(&deep(32)), DecodeErrorKind::MissingField("ToUserName"));
    assert_eq!(j(&deep(33)), DecodeErrorKind::TooDeep);
    assert_eq!(
        j(&format!("{{\"a\":{}", "[".repeat(100_000))),
        DecodeErrorKind::TooDeep
    );
}

#[test]
fn header_errors() {
    let full = [
        ("ToUserName", "\"a\""),
        ("FromUserName", "\"b\""),
        ("CreateTime", "1"),
        ("MsgType", "\"text\""),
        ("Content", "\"c\""),
    ];
    for skip in 0..full.len() {
        let body: Vec<String> = full
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, (k, v))| format!("\"{k}\":{v}"))
            .collect();
        let kind = err(Format::Json, format!("{{{}}}", body.join(",")).as_bytes());
        assert_eq!(kind, DecodeErrorKind::MissingField(full[skip].0));
        let xml_body: String = full
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, (k, v))| format!("<{k}>{}</{k}>", v.trim_matches('"')))
            .collect();
        assert_eq!(
            err(Format::Xml, format!("<xml>{xml_body}</xml>").as_bytes()),
            DecodeErrorKind::MissingField(full[skip].0)
        );
    }
    let j = |s: &str| {
        err(
            Format::Json,
            format!("{{\"ToUserName\":\"a\",\"FromUserName\":\"b\",\"MsgType\":\"text\",\"Content\":\"\",{s}}}").as_bytes(),
        )
    };
    let bad = DecodeErrorKind::InvalidField("CreateTime");
    assert_eq!(j("\"CreateTime\":\"x\""), bad);
    assert_eq!(j("\"CreateTime\":-1"), bad);
    assert_eq!(j("\"CreateTime\":1.5"), bad);
    assert_eq!(j("\"CreateTime\":\"\""), bad);
    assert_eq!(j("\"CreateTime\":\"18446744073709551616\""), bad);
    assert_eq!(j("\"CreateTime\":{}"), bad);
    assert_eq!(
        j("\"CreateTime\":1,\"CreateTime\":2"),
        DecodeErrorKind::DuplicateField("CreateTime")
    );
    assert_eq!(
        j("\"CreateTime\":[1,2]"),
        DecodeErrorKind::DuplicateField("CreateTime")
    );
    assert_eq!(
        j("\"CreateTime\":1,\"MsgId\":1,\"MsgId\":2"),
        DecodeErrorKind::DuplicateField("MsgId")
    );
    assert_eq!(
        err(
            Format::Json,
            br#"{"ToUserName":"a","FromUserName":"b","CreateTime":1,"MsgType":"event"}"#
        ),
        DecodeErrorKind::MissingField("Event")
    );
    assert_eq!(
        err(
            Format::Json,
            br#"{"ToUserName":"a","FromUserName":"b","CreateTime":1,"MsgType":"location","Location_X":"NaN","Location_Y":1,"Scale":1,"Label":""}"#
        ),
        DecodeErrorKind::InvalidField("Location_X")
    );
    assert_eq!(
        err(
            Format::Xml,
            b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>subscribe_msg_popup_event</Event><List><TemplateId>t</TemplateId></List></xml>"
        ),
        DecodeErrorKind::MissingField("SubscribeStatusString")
    );
}

// ---------------------------------------------------------------- envelopes

#[test]
fn envelopes() {
    let (f, e) = decode_envelope(br#"{"ToUserName":"gh","Encrypt":"a+b/c="}"#).unwrap();
    assert_eq!(f, Format::Json);
    assert!(matches!(e, Envelope::Encrypted(Cow::Borrowed("a+b/c="))));
    let (_, e) = decode_envelope(br#"{"ToUserName":"gh","Encrypt":"a+b\/c="}"#).unwrap();
    assert!(matches!(&e, Envelope::Encrypted(Cow::Owned(s)) if s == "a+b/c="));
    let (f, e) = decode_envelope(b" <xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[a+b/c=]]></Encrypt><AgentID>1</AgentID></xml>").unwrap();
    assert_eq!(f, Format::Xml);
    assert!(matches!(e, Envelope::Encrypted(Cow::Borrowed("a+b/c="))));
    // Compatible mode: the clear copy is not checked at all.
    let (_, e) = decode_envelope(br#"{"CreateTime":"bad","Encrypt":"x"}"#).unwrap();
    assert_eq!(e, Envelope::Encrypted(Cow::Borrowed("x")));
    assert_eq!(
        decode_envelope(br#"{"Encrypt":1}"#).unwrap_err().kind(),
        DecodeErrorKind::InvalidField("Encrypt")
    );
    assert_eq!(
        decode_envelope(br#"{"Encrypt":"a","Encrypt":"b"}"#)
            .unwrap_err()
            .kind(),
        DecodeErrorKind::DuplicateField("Encrypt")
    );
    assert_eq!(
        decode_envelope(b"<xml><Encrypt><a>b</a></Encrypt></xml>")
            .unwrap_err()
            .kind(),
        DecodeErrorKind::InvalidField("Encrypt")
    );
    assert_eq!(
        decode_envelope(b"\xFF\xFE<\0").unwrap_err().kind(),
        DecodeErrorKind::NotUtf8
    );
    assert_eq!(
        decode_envelope(b"success").unwrap_err().kind(),
        DecodeErrorKind::UnknownFormat
    );
    assert_eq!(
        decode_envelope(b"").unwrap_err().kind(),
        DecodeErrorKind::Empty
    );
    assert_eq!(
        decode_envelope(b"[]").unwrap_err().kind(),
        DecodeErrorKind::UnknownFormat
    );
}

// ---------------------------------------------------------------- vectors.json

fn vectors() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} missing"))
}

#[test]
fn vector_plaintexts_and_envelopes() {
    let v = vectors();
    let cases = v["encrypt_cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let name = s(case, "name");
        let x = decode_message(Format::Xml, s(&case["xml"], "plaintext").as_bytes()).unwrap();
        let j = decode_message(Format::Json, s(&case["json"], "plaintext").as_bytes()).unwrap();
        let plain: serde_json::Value = serde_json::from_str(s(&case["json"], "plaintext")).unwrap();
        assert_eq!(j.to_user(), s(&plain, "ToUserName"), "{name}");
        assert_eq!(j.from_user(), s(case, "openid"), "{name}");
        assert_eq!(
            j.create_time(),
            plain["CreateTime"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(j.msg_id(), plain["MsgId"].as_u64(), "{name}");
        match j.kind() {
            Kind::Text { content, .. } => assert_eq!(content, s(&plain, "Content"), "{name}"),
            Kind::Event(Event::UserEnterTempSession { session_from, .. }) => {
                assert_eq!(session_from, s(&plain, "SessionFrom"))
            }
            k => panic!("{name}: {k:?}"),
        }
        assert!(j.extra().is_empty(), "{name}");
        if name == "full_block_padding" {
            // The two forms carry different Content (to hit the full block in each).
            assert_eq!(
                (x.to_user(), x.msg_id(), x.create_time()),
                (j.to_user(), j.msg_id(), j.create_time())
            );
        } else {
            assert_eq!(x, j, "{name}");
        }
        for format in ["xml", "json"] {
            let encrypt = s(&case[format], "encrypt");
            for body in ["request_body_safe", "request_body_compatible"] {
                let (f, e) = decode_envelope(s(&case[format], body).as_bytes()).unwrap();
                assert_eq!(
                    f,
                    if format == "xml" {
                        Format::Xml
                    } else {
                        Format::Json
                    }
                );
                assert!(
                    matches!(&e, Envelope::Encrypted(Cow::Borrowed(got)) if *got == encrypt),
                    "{name} {format} {body}: {e:?}"
                );
            }
        }
    }
    // 2^53 + 1 and a 19-digit MsgId survive exactly.
    let ids: Vec<_> = cases
        .iter()
        .filter_map(|c| {
            decode_message(Format::Json, s(&c["json"], "plaintext").as_bytes())
                .unwrap()
                .msg_id()
        })
        .collect();
    assert!(ids.contains(&9007199254740993) && ids.contains(&7318273910382837761));

    let official = &v["official_doc_case"];
    let (_, e) = decode_envelope(s(official, "request_body_safe").as_bytes()).unwrap();
    assert_eq!(
        e,
        Envelope::Encrypted(Cow::Borrowed(s(official, "encrypt")))
    );
    let m = decode_message(Format::Json, s(official, "plaintext").as_bytes()).unwrap();
    assert_eq!(m.event_name(), Some("debug_demo"));
    assert_eq!(m.field("debug_str"), Some(&t("hello world")));
}

// ---------------------------------------------------------------- fuzz

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_envelope(&body);
        let _ = decode_message(Format::Xml, &body);
        let _ = decode_message(Format::Json, &body);
    }

    #[test]
    fn xmlish_text_never_panics(body in "(<xml>|</xml>|<[A-Za-z]{1,3}>|</[A-Za-z]{1,3}>|<!\\[CDATA\\[|\\]\\]>|&[a-z#0-9x]{0,5};?|<!DOCTYPE|<!--|-->|<\\?xml\\?>|[a-z0-9 ]{0,4}|/>|\"){0,40}") {
        let _ = decode_envelope(body.as_bytes());
        let _ = decode_message(Format::Xml, body.as_bytes());
    }

    #[test]
    fn jsonish_text_never_panics(body in "(\\{|\\}|\\[|\\]|\"[A-Za-z]{0,8}\"|:|,|-?[0-9]{1,22}(\\.[0-9]{1,3})?(e[0-9]{1,3})?|true|null|\\\\u[0-9a-f]{4}| ){0,40}") {
        let _ = decode_envelope(body.as_bytes());
        let _ = decode_message(Format::Json, body.as_bytes());
    }
}
