//! The items of subscribe-message events (`subscribe_msg_popup_event`,
//! `subscribe_msg_change_event`, `subscribe_msg_sent_event`).

use std::borrow::Cow;

use super::super::{node_doc, Fields};
use crate::codec::{DecodeError, Doc, Raw};

/// The user's choice for one template (`SubscribeStatusString`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubscribeStatus {
    /// `accept`.
    Accept,
    /// `reject`.
    Reject,
    /// `ban`.
    Ban,
    /// `acceptWithAudio`.
    AcceptWithAudio,
    /// `acceptWithAlert`.
    AcceptWithAlert,
    /// Any other value, as sent.
    Other(String),
}

impl SubscribeStatus {
    fn parse(s: Cow<'_, str>) -> Self {
        match &*s {
            "accept" => Self::Accept,
            "reject" => Self::Reject,
            "ban" => Self::Ban,
            "acceptWithAudio" => Self::AcceptWithAudio,
            "acceptWithAlert" => Self::AcceptWithAlert,
            _ => Self::Other(s.into_owned()),
        }
    }

    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::Ban => "ban",
            Self::AcceptWithAudio => "acceptWithAudio",
            Self::AcceptWithAlert => "acceptWithAlert",
            Self::Other(s) => s,
        }
    }
}

/// One `List` item of `subscribe_msg_popup_event`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PopupItem {
    /// `TemplateId`.
    pub template_id: String,
    /// `SubscribeStatusString`.
    pub status: SubscribeStatus,
    /// `PopupScene` (0 mini-program page; official accounts: 1 H5, 2 article).
    pub popup_scene: Option<u32>,
    /// Unmodelled fields of the item.
    pub extra: Fields,
}

/// One `List` item of `subscribe_msg_change_event`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StatusItem {
    /// `TemplateId`.
    pub template_id: String,
    /// `SubscribeStatusString` (currently always `reject`).
    pub status: SubscribeStatus,
    /// Unmodelled fields of the item.
    pub extra: Fields,
}

/// One `List` item of `subscribe_msg_sent_event`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SentItem {
    /// `TemplateId`.
    pub template_id: String,
    /// `MsgID`: the id returned by the send call.
    pub msg_id: u64,
    /// `ErrorCode`: 0 on success (e.g. 43101: the user refused).
    pub error_code: i64,
    /// `ErrorStatus`.
    pub error_status: String,
    /// Unmodelled fields of the item.
    pub extra: Fields,
}

pub(super) fn status(d: &mut Doc<'_>) -> Result<SubscribeStatus, DecodeError> {
    let raw = d.required("SubscribeStatusString")?;
    Ok(SubscribeStatus::parse(
        raw.into_text("SubscribeStatusString")?,
    ))
}

/// Subscribe-event items: top-level `List` entries (JSON object or array) and
/// `List` elements nested in `wrapper` (XML; an older JSON shape).
pub(super) fn list(
    doc: &mut Doc<'_>,
    wrapper: &'static str,
) -> Result<Vec<Doc<'static>>, DecodeError> {
    let mut raws: Vec<Raw<'_>> = doc.take_all("List");
    if let Some(w) = doc.take(wrapper)? {
        let mut inner = node_doc(w, wrapper)?;
        raws.extend(inner.take_all("List"));
        let rest = inner.into_fields();
        if !rest.is_empty() {
            doc.push(Cow::Borrowed(wrapper), Raw::Node(rest));
        }
    }
    raws.into_iter().map(|r| node_doc(r, "List")).collect()
}
