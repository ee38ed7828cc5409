//! `wxa_media_check`: the asynchronous content-security verdict.

use std::borrow::Cow;

use super::super::{node_doc, Fields};
use crate::codec::{DecodeError, Doc};

/// A content-security verdict (`suggest`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suggest {
    /// `pass`.
    Pass,
    /// `review`.
    Review,
    /// `risky`.
    Risky,
    /// Any other value, as sent.
    Other(String),
}

impl Suggest {
    fn parse(s: Cow<'_, str>) -> Self {
        match &*s {
            "pass" => Self::Pass,
            "review" => Self::Review,
            "risky" => Self::Risky,
            _ => Self::Other(s.into_owned()),
        }
    }

    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pass => "pass",
            Self::Review => "review",
            Self::Risky => "risky",
            Self::Other(s) => s,
        }
    }
}

/// `wxa_media_check`: the result of `mediaCheckAsync`. Match it on `trace_id`.
/// Other fields (`errcode`, `errmsg`, v1's `isrisky`, …) are in
/// [`Message::extra`](super::super::Message::extra).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MediaCheck {
    /// `appid`.
    pub app_id: String,
    /// `trace_id`.
    pub trace_id: String,
    /// `version` (2 for the current API; absent in v1 pushes).
    pub version: Option<u32>,
    /// `result`: the verdict to use (v2).
    pub result: Option<MediaCheckResult>,
    /// `detail`: per-strategy results (may be empty).
    pub detail: Vec<MediaCheckDetail>,
}

/// `result` of a [`MediaCheck`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MediaCheckResult {
    /// `suggest`.
    pub suggest: Suggest,
    /// `label`: 100 normal, 10001 ad, 20001 politics, 20002 porn, …
    pub label: u32,
    /// Unmodelled fields.
    pub extra: Fields,
}

/// One `detail` item of a [`MediaCheck`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MediaCheckDetail {
    /// `strategy`.
    pub strategy: String,
    /// `errcode`.
    pub errcode: Option<i64>,
    /// `suggest`.
    pub suggest: Suggest,
    /// `label`.
    pub label: u32,
    /// `prob`: confidence, 0–100.
    pub prob: Option<u32>,
    /// Unmodelled fields.
    pub extra: Fields,
}

fn suggest(d: &mut Doc<'_>) -> Result<Suggest, DecodeError> {
    Ok(Suggest::parse(d.required("suggest")?.into_text("suggest")?))
}

pub(super) fn media_check(doc: &mut Doc<'_>) -> Result<MediaCheck, DecodeError> {
    let app_id = doc.string("appid")?;
    let trace_id = doc.string("trace_id")?;
    let version = doc
        .take("version")?
        .map(|r| r.to_u32("version"))
        .transpose()?;
    let result = match doc.take("result")? {
        Some(r) => {
            let mut d = node_doc(r, "result")?;
            Some(MediaCheckResult {
                suggest: suggest(&mut d)?,
                label: d.required("label")?.to_u32("label")?,
                extra: d.into_fields(),
            })
        }
        None => None,
    };
    let detail = doc
        .take_all("detail")
        .into_iter()
        .map(|r| {
            let mut d = node_doc(r, "detail")?;
            Ok(MediaCheckDetail {
                strategy: d.string("strategy")?,
                errcode: d
                    .take("errcode")?
                    .map(|r| r.to_i64("errcode"))
                    .transpose()?,
                suggest: suggest(&mut d)?,
                label: d.required("label")?.to_u32("label")?,
                prob: d.take("prob")?.map(|r| r.to_u32("prob")).transpose()?,
                extra: d.into_fields(),
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    Ok(MediaCheck {
        app_id,
        trace_id,
        version,
        result,
        detail,
    })
}
