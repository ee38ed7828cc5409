//! The items of WeCom (企业微信) events (docs/platforms.md §1.6).

use std::borrow::Cow;

use super::{node_doc, Fields};
use crate::codec::{DecodeError, Doc, Raw};

/// `BatchJob` of a `batch_job_result` event: an asynchronous batch or export job finished.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BatchJob {
    /// `JobId`.
    pub job_id: String,
    /// `JobType`: `sync_user`, `replace_user`, `invite_user`, `replace_party`, `export_user`,
    /// … (any string is accepted: the SDKs and the documentation disagree on the export ones).
    pub job_type: String,
    /// `ErrCode`: 0 on success.
    pub err_code: i64,
    /// `ErrMsg`.
    pub err_msg: String,
    /// Unmodelled fields of `BatchJob`.
    pub extra: Fields,
}

/// A `change_contact` event's change, by `ChangeType`. Only the ids are modelled: since
/// August 2022 the other member and department fields may be absent, and whatever the
/// push carried (`Name`, `Department`, `Mobile`, …) is in
/// [`Message::extra`](super::Message::extra).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContactChange {
    /// `create_user`.
    #[non_exhaustive]
    CreateUser {
        /// `UserID`.
        user_id: String,
    },
    /// `update_user`.
    #[non_exhaustive]
    UpdateUser {
        /// `UserID`.
        user_id: String,
        /// `NewUserID`, when the UserID changed.
        new_user_id: Option<String>,
    },
    /// `delete_user`.
    #[non_exhaustive]
    DeleteUser {
        /// `UserID`.
        user_id: String,
    },
    /// `create_party`.
    #[non_exhaustive]
    CreateParty {
        /// `Id`.
        id: u64,
    },
    /// `update_party`.
    #[non_exhaustive]
    UpdateParty {
        /// `Id`.
        id: u64,
    },
    /// `delete_party`.
    #[non_exhaustive]
    DeleteParty {
        /// `Id`.
        id: u64,
    },
    /// `update_tag` (the comma-separated item lists are in the extra fields).
    #[non_exhaustive]
    UpdateTag {
        /// `TagId`.
        tag_id: u64,
    },
    /// Any other `ChangeType`.
    Other {
        /// The raw `ChangeType`.
        change_type: String,
    },
}

impl ContactChange {
    /// The raw `ChangeType`.
    pub fn change_type(&self) -> &str {
        match self {
            Self::CreateUser { .. } => "create_user",
            Self::UpdateUser { .. } => "update_user",
            Self::DeleteUser { .. } => "delete_user",
            Self::CreateParty { .. } => "create_party",
            Self::UpdateParty { .. } => "update_party",
            Self::DeleteParty { .. } => "delete_party",
            Self::UpdateTag { .. } => "update_tag",
            Self::Other { change_type } => change_type,
        }
    }

    pub(super) fn from_doc(doc: &mut Doc<'_>) -> Result<Self, DecodeError> {
        let change_type = doc.required("ChangeType")?.into_text("ChangeType")?;
        let id = |doc: &mut Doc<'_>| doc.required("Id")?.to_u64("Id");
        Ok(match &*change_type {
            "create_user" => Self::CreateUser {
                user_id: doc.string("UserID")?,
            },
            "update_user" => Self::UpdateUser {
                user_id: doc.string("UserID")?,
                new_user_id: doc.opt_string("NewUserID")?,
            },
            "delete_user" => Self::DeleteUser {
                user_id: doc.string("UserID")?,
            },
            "create_party" => Self::CreateParty { id: id(doc)? },
            "update_party" => Self::UpdateParty { id: id(doc)? },
            "delete_party" => Self::DeleteParty { id: id(doc)? },
            "update_tag" => Self::UpdateTag {
                tag_id: doc.required("TagId")?.to_u64("TagId")?,
            },
            _ => Self::Other {
                change_type: change_type.into_owned(),
            },
        })
    }
}

/// A `change_external_contact` event (customer contact change). `State`, `WelcomeCode`,
/// `Source`, `FailReason` are in [`Message::extra`](super::Message::extra).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExternalContactChange {
    /// `ChangeType`: `add_external_contact`, `edit_external_contact`,
    /// `add_half_external_contact`, `del_external_contact`, `del_follow_user`,
    /// `transfer_fail`, `msg_audit_approved`, or another value.
    pub change_type: String,
    /// `UserID`: the corp member.
    pub user_id: Option<String>,
    /// `ExternalUserID`: the customer.
    pub external_user_id: Option<String>,
}

/// A `template_card_event`: a member clicked a template card's button or submitted a choice.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TemplateCardEvent {
    /// `EventKey`: the button's key.
    pub event_key: String,
    /// `TaskId`: the card's task id.
    pub task_id: String,
    /// `CardType`: `text_notice`, `news_notice`, `button_interaction`, `vote_interaction`,
    /// `multiple_interaction`.
    pub card_type: String,
    /// `ResponseCode`: for `update_template_card`, valid 72 hours, once.
    pub response_code: Option<String>,
    /// `SelectedItems`: the choices, for vote and multiple-choice cards.
    pub selected_items: Vec<SelectedItem>,
}

/// One `SelectedItem` of a [`TemplateCardEvent`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SelectedItem {
    /// `QuestionKey`.
    pub question_key: String,
    /// Every `OptionId` under `OptionIds`, in order.
    pub option_ids: Vec<String>,
    /// Unmodelled fields of the item.
    pub extra: Fields,
}

pub(super) fn batch_job(doc: &mut Doc<'_>) -> Result<BatchJob, DecodeError> {
    let mut d = node_doc(doc.required("BatchJob")?, "BatchJob")?;
    Ok(BatchJob {
        job_id: d.string("JobId")?,
        job_type: d.string("JobType")?,
        err_code: d.required("ErrCode")?.to_i64("ErrCode")?,
        err_msg: d.opt_string("ErrMsg")?.unwrap_or_default(),
        extra: d.into_fields(),
    })
}

pub(super) fn external_contact(doc: &mut Doc<'_>) -> Result<ExternalContactChange, DecodeError> {
    Ok(ExternalContactChange {
        change_type: doc.string("ChangeType")?,
        user_id: doc.opt_string("UserID")?,
        external_user_id: doc.opt_string("ExternalUserID")?,
    })
}

pub(super) fn template_card(doc: &mut Doc<'_>) -> Result<TemplateCardEvent, DecodeError> {
    let event_key = doc.string("EventKey")?;
    let task_id = doc.string("TaskId")?;
    let card_type = doc.string("CardType")?;
    let response_code = doc.opt_string("ResponseCode")?;
    let mut selected_items = Vec::new();
    if let Some(items) = doc.take("SelectedItems")? {
        let mut items = node_doc(items, "SelectedItems")?;
        for item in items.take_all("SelectedItem") {
            let mut d = node_doc(item, "SelectedItem")?;
            let question_key = d.string("QuestionKey")?;
            let mut option_ids = Vec::new();
            if let Some(ids) = d.take("OptionIds")? {
                let mut ids = node_doc(ids, "OptionIds")?;
                for id in ids.take_all("OptionId") {
                    option_ids.push(id.into_string("OptionId")?);
                }
                keep_rest(&mut d, "OptionIds", ids);
            }
            selected_items.push(SelectedItem {
                question_key,
                option_ids,
                extra: d.into_fields(),
            });
        }
        keep_rest(doc, "SelectedItems", items);
    }
    Ok(TemplateCardEvent {
        event_key,
        task_id,
        card_type,
        response_code,
        selected_items,
    })
}

/// Puts back what a nested node held besides the modelled fields, so nothing is lost.
pub(super) fn keep_rest(doc: &mut Doc<'_>, name: &'static str, rest: Doc<'_>) {
    let rest = rest.into_fields();
    if !rest.is_empty() {
        doc.push(Cow::Borrowed(name), Raw::Node(rest));
    }
}
