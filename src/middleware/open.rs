//! Opening a collected push: the endpoint's checks on the body, the request the handler gets
//! (message, [`PushInfo`](crate::PushInfo), app name, dedupe key, document), and the steps
//! that must pass before the handler (the replay guard, the ticket store).

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::Request;

use super::apps::App;
use super::config::Config;
use super::mode::Document;
use super::trace::PushSpan;
use crate::endpoint::ReplyTo;
use crate::message::Message;
use crate::query::CallbackQuery;
use crate::rejection::Rejection;
use crate::store::BoxFuture;

/// A request whose query passed the checks, waiting for its body.
pub(crate) struct Pending<H> {
    pub(crate) parts: Parts,
    pub(crate) inner: H,
    pub(crate) config: Arc<Config>,
    /// The app the request chose, on a multi-app layer.
    pub(crate) app: Option<Arc<App>>,
    pub(crate) query: CallbackQuery,
}

/// A verified, decoded push waiting for the handler.
pub(crate) struct Opened<H> {
    pub(crate) request: Request<Message>,
    pub(crate) inner: H,
    pub(crate) to: Recipient,
}

/// Whom the handler's answer goes to: what finishing the response needs.
pub(crate) struct Recipient {
    pub(crate) config: Arc<Config>,
    pub(crate) app: Option<Arc<App>>,
    pub(crate) reply_to: ReplyTo,
    /// The push's span: entered while the handler is called and polled.
    pub(crate) span: PushSpan,
}

/// What must succeed before the handler is called: the replay guard's look-up, then the
/// ticket store's save.
pub(crate) type Step = BoxFuture<'static, Result<(), Rejection>>;

/// Opens the collected push `body` and builds the handler's request, with the steps to run
/// before the handler (`None` when no guard or store applies). `keep_document`: the request
/// carries the push's document too (pass-through).
pub(crate) fn open<H>(
    pending: Pending<H>,
    body: &[u8],
    keep_document: bool,
) -> Result<(Opened<H>, Option<Step>), Rejection> {
    let Pending {
        parts,
        inner,
        config,
        app,
        query,
    } = pending;
    let endpoint = config.endpoint(app.as_deref())?;
    let opened = match &app {
        Some(app) => app.open(query, body)?,
        None => endpoint.open(query, body)?,
    };
    #[cfg(feature = "tokio")]
    let dedupe_key = config.dedupe_keys().then(|| {
        crate::dedupe::scoped_dedupe_key(
            app.as_deref().map(|app| app.name().as_str()),
            opened.message(),
            opened.document(),
        )
    });
    // Queue mode keeps the document too: the queue holds it, and the worker decodes it again.
    let document = (keep_document || config.queued())
        .then(|| Document(Bytes::copy_from_slice(opened.document())));
    let (message, info, reply_to) = opened.into_parts();
    let span = PushSpan::new(app.as_deref(), &info, &message);
    let save = config
        .tickets
        .as_ref()
        .and_then(|store| crate::ticket::keep(store, &message));
    // Only a plaintext push that passed every check is remembered (and its body hashed): in
    // safe mode `msg_signature` covers the body, and a retry may be sealed afresh.
    let check = match &config.replay {
        Some(store) if !info.is_encrypted() => {
            Some(crate::replay::guard(store, endpoint, info.query(), body)?)
        }
        _ => None,
    };
    #[cfg(feature = "tokio")]
    if config.retries() && tokio::runtime::Handle::try_current().is_err() {
        return Err(Rejection::NoRuntime);
    }
    let mut request = Request::from_parts(parts, message);
    #[cfg(feature = "tokio")]
    if let Some(key) = dedupe_key {
        request
            .extensions_mut()
            .insert(crate::dedupe::DedupeKey(key));
    }
    request.extensions_mut().insert(info);
    if let Some(app) = &app {
        app.extend_request(request.extensions_mut());
        request.extensions_mut().insert(app.name().clone());
    }
    if let Some(document) = document {
        request.extensions_mut().insert(document);
    }
    let step: Option<Step> = match (check, save) {
        (None, None) => None,
        (Some(check), None) => Some(check),
        (None, Some(save)) => Some(save),
        (Some(check), Some(save)) => Some(Box::pin(async move {
            check.await?;
            save.await
        })),
    };
    let to = Recipient {
        config,
        app,
        reply_to,
        span,
    };
    Ok((Opened { request, inner, to }, step))
}
