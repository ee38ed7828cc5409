//! Typed events (`MsgType` = `event`).

use std::borrow::Cow;

use super::node_doc;
use super::wecom::{self, BatchJob, ContactChange, ExternalContactChange, TemplateCardEvent};
use crate::codec::{DecodeError, Doc};

mod media_check;
mod subscribe;

use media_check::media_check;
pub use media_check::{MediaCheck, MediaCheckDetail, MediaCheckResult, Suggest};
use subscribe::{list, status};
pub use subscribe::{PopupItem, SentItem, StatusItem, SubscribeStatus};

/// A typed event, by its `Event` value.
///
/// The variants that mirror a WeChat document are `#[non_exhaustive]`, and so are the item
/// structs: match them with `..` and get them by decoding a push (see [`Kind`](super::Kind)).
///
/// ```
/// use wechat_push::message::{Event, Message};
///
/// let msg = Message::from_json(br#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1,
///     "MsgType":"event","Event":"user_enter_tempsession","SessionFrom":"button"}"#)?;
/// if let Some(Event::UserEnterTempSession { session_from, .. }) = msg.event() {
///     assert_eq!(session_from, "button");
/// } else {
///     panic!("not a user_enter_tempsession event");
/// }
/// # Ok::<(), wechat_push::codec::DecodeError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `user_enter_tempsession`: the user entered the customer-service conversation.
    #[non_exhaustive]
    UserEnterTempSession {
        /// `SessionFrom`: the contact button's `session-from` attribute.
        session_from: String,
    },
    /// `subscribe_msg_popup_event`: the user acted on the subscription pop-up.
    #[non_exhaustive]
    SubscribeMsgPopup {
        /// One item per template (XML `<List>` elements; JSON `List` object or array).
        items: Vec<PopupItem>,
    },
    /// `subscribe_msg_change_event`: the user changed subscriptions from the menu.
    #[non_exhaustive]
    SubscribeMsgChange {
        /// One item per template.
        items: Vec<StatusItem>,
    },
    /// `subscribe_msg_sent_event`: delivery result of a subscribe message.
    #[non_exhaustive]
    SubscribeMsgSent {
        /// One item per sent message.
        items: Vec<SentItem>,
    },
    /// `wxa_media_check`: asynchronous content-security result.
    WxaMediaCheck(MediaCheck),
    /// `subscribe` (official accounts): a follow, possibly through a QR code.
    #[non_exhaustive]
    Subscribe {
        /// `EventKey` (`qrscene_…` for a QR scan; may be empty otherwise).
        event_key: Option<String>,
        /// `Ticket` of the QR code.
        ticket: Option<String>,
    },
    /// `unsubscribe` (official accounts).
    Unsubscribe,
    /// `SCAN` (official accounts): a follower scanned a parametric QR code.
    #[non_exhaustive]
    Scan {
        /// `EventKey`: the scene value.
        event_key: String,
        /// `Ticket` of the QR code.
        ticket: Option<String>,
    },
    /// `LOCATION` (official accounts): reported position.
    #[non_exhaustive]
    Location {
        /// `Latitude`.
        latitude: f64,
        /// `Longitude`.
        longitude: f64,
        /// `Precision`.
        precision: f64,
    },
    /// `CLICK` (official accounts): a menu click.
    #[non_exhaustive]
    Click {
        /// `EventKey`: the menu key.
        event_key: String,
    },
    /// `VIEW` (official accounts): a menu link was opened.
    #[non_exhaustive]
    View {
        /// `EventKey`: the URL.
        event_key: String,
    },
    /// `scancode_push`: a menu scan whose result the client shows itself.
    #[non_exhaustive]
    ScanCodePush {
        /// `EventKey`: the menu key.
        event_key: String,
        /// `ScanCodeInfo.ScanType` (`qrcode`, `barcode`, …).
        scan_type: String,
        /// `ScanCodeInfo.ScanResult`.
        scan_result: String,
    },
    /// `scancode_waitmsg`: a menu scan whose result waits for the server's reply.
    #[non_exhaustive]
    ScanCodeWaitMsg {
        /// `EventKey`: the menu key.
        event_key: String,
        /// `ScanCodeInfo.ScanType`.
        scan_type: String,
        /// `ScanCodeInfo.ScanResult`.
        scan_result: String,
    },
    /// `enter_agent` (WeCom): a member opened the app. `AgentID` is in the extra fields
    /// ([`Message::agent_id`](super::Message::agent_id)).
    #[non_exhaustive]
    EnterAgent {
        /// `EventKey` (empty in practice).
        event_key: Option<String>,
    },
    /// `batch_job_result` (WeCom): an asynchronous batch or export job finished.
    BatchJobResult(BatchJob),
    /// `change_contact` (WeCom): a member, department or tag changed. Sent from `sys`.
    ChangeContact(ContactChange),
    /// `change_external_contact` (WeCom): a customer contact changed. Sent from `sys`.
    ChangeExternalContact(ExternalContactChange),
    /// `template_card_event` (WeCom): a template card's button or choice.
    TemplateCardEvent(TemplateCardEvent),
    /// Any other event; its fields are in [`Message::extra`](super::Message::extra).
    Unknown {
        /// The raw `Event` value.
        event: String,
    },
}

impl Event {
    /// The `Event` value. Event names are matched case-insensitively where WeChat and WeCom
    /// spell them differently (`CLICK`/`click`, `VIEW`/`view`, `LOCATION`): those variants
    /// name themselves as official accounts spell them.
    pub fn name(&self) -> &str {
        match self {
            Event::UserEnterTempSession { .. } => "user_enter_tempsession",
            Event::SubscribeMsgPopup { .. } => "subscribe_msg_popup_event",
            Event::SubscribeMsgChange { .. } => "subscribe_msg_change_event",
            Event::SubscribeMsgSent { .. } => "subscribe_msg_sent_event",
            Event::WxaMediaCheck(_) => "wxa_media_check",
            Event::Subscribe { .. } => "subscribe",
            Event::Unsubscribe => "unsubscribe",
            Event::Scan { .. } => "SCAN",
            Event::Location { .. } => "LOCATION",
            Event::Click { .. } => "CLICK",
            Event::View { .. } => "VIEW",
            Event::ScanCodePush { .. } => "scancode_push",
            Event::ScanCodeWaitMsg { .. } => "scancode_waitmsg",
            Event::EnterAgent { .. } => "enter_agent",
            Event::BatchJobResult(_) => "batch_job_result",
            Event::ChangeContact(_) => "change_contact",
            Event::ChangeExternalContact(_) => "change_external_contact",
            Event::TemplateCardEvent(_) => "template_card_event",
            Event::Unknown { event } => event,
        }
    }

    pub(crate) fn from_doc(name: Cow<'_, str>, doc: &mut Doc<'_>) -> Result<Event, DecodeError> {
        Ok(match &*name {
            "user_enter_tempsession" => Event::UserEnterTempSession {
                session_from: doc.string("SessionFrom")?,
            },
            "subscribe_msg_popup_event" => Event::SubscribeMsgPopup {
                items: list(doc, "SubscribeMsgPopupEvent")?
                    .into_iter()
                    .map(|mut d| {
                        Ok(PopupItem {
                            template_id: d.string("TemplateId")?,
                            status: status(&mut d)?,
                            popup_scene: d
                                .take("PopupScene")?
                                .map(|r| r.to_u32("PopupScene"))
                                .transpose()?,
                            extra: d.into_fields(),
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?,
            },
            "subscribe_msg_change_event" => Event::SubscribeMsgChange {
                items: list(doc, "SubscribeMsgChangeEvent")?
                    .into_iter()
                    .map(|mut d| {
                        Ok(StatusItem {
                            template_id: d.string("TemplateId")?,
                            status: status(&mut d)?,
                            extra: d.into_fields(),
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?,
            },
            "subscribe_msg_sent_event" => Event::SubscribeMsgSent {
                items: list(doc, "SubscribeMsgSentEvent")?
                    .into_iter()
                    .map(|mut d| {
                        Ok(SentItem {
                            template_id: d.string("TemplateId")?,
                            msg_id: d.required("MsgID")?.to_u64("MsgID")?,
                            error_code: d.required("ErrorCode")?.to_i64("ErrorCode")?,
                            error_status: d.string("ErrorStatus")?,
                            extra: d.into_fields(),
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?,
            },
            "wxa_media_check" => Event::WxaMediaCheck(media_check(doc)?),
            "subscribe" => Event::Subscribe {
                event_key: doc.opt_string("EventKey")?,
                ticket: doc.opt_string("Ticket")?,
            },
            "unsubscribe" => Event::Unsubscribe,
            "SCAN" => Event::Scan {
                event_key: doc.string("EventKey")?,
                ticket: doc.opt_string("Ticket")?,
            },
            n if n.eq_ignore_ascii_case("LOCATION") => Event::Location {
                latitude: doc.required("Latitude")?.to_f64("Latitude")?,
                longitude: doc.required("Longitude")?.to_f64("Longitude")?,
                precision: doc.required("Precision")?.to_f64("Precision")?,
            },
            n if n.eq_ignore_ascii_case("CLICK") => Event::Click {
                event_key: doc.string("EventKey")?,
            },
            n if n.eq_ignore_ascii_case("VIEW") => Event::View {
                event_key: doc.string("EventKey")?,
            },
            "scancode_push" | "scancode_waitmsg" => {
                let event_key = doc.string("EventKey")?;
                let mut info = node_doc(doc.required("ScanCodeInfo")?, "ScanCodeInfo")?;
                let scan_type = info.string("ScanType")?;
                let scan_result = info.string("ScanResult")?;
                wecom::keep_rest(doc, "ScanCodeInfo", info);
                if &*name == "scancode_push" {
                    Event::ScanCodePush {
                        event_key,
                        scan_type,
                        scan_result,
                    }
                } else {
                    Event::ScanCodeWaitMsg {
                        event_key,
                        scan_type,
                        scan_result,
                    }
                }
            }
            "enter_agent" => Event::EnterAgent {
                event_key: doc.opt_string("EventKey")?,
            },
            "batch_job_result" => Event::BatchJobResult(wecom::batch_job(doc)?),
            "change_contact" => Event::ChangeContact(ContactChange::from_doc(doc)?),
            "change_external_contact" => {
                Event::ChangeExternalContact(wecom::external_contact(doc)?)
            }
            "template_card_event" => Event::TemplateCardEvent(wecom::template_card(doc)?),
            _ => Event::Unknown {
                event: name.into_owned(),
            },
        })
    }
}
