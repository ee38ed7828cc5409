//! [`Config`]: what every request of a layer shares, validated once and kept behind an `Arc`.
//! The layer builds it, the service and its future read it; the options are run-time
//! settings (`Option`s), so turning one on does not change the layer's type.

use std::sync::Arc;
#[cfg(feature = "tokio")]
use std::time::Duration;

use super::apps::{App, Apps, ChooseApp};
#[cfg(feature = "tokio")]
use crate::dedupe::DedupeConfig;
use crate::endpoint::Endpoint;
use crate::rejection::Rejection;
use crate::replay::ReplayStore;
use crate::ticket::TicketStore;

/// The default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Where a layer's requests find their endpoint.
// One per layer, behind its `Arc<Config>`: the size does not matter, and boxing the endpoint
// would add an indirection to every single-app request.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// One app: this endpoint.
    One(Endpoint),
    /// Several apps: the one each request names.
    Many { apps: Apps, choose: ChooseApp },
}

/// What every request of a layer shares: the endpoint's checks and the layer's own options.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) source: Source,
    pub(crate) body_limit: usize,
    /// The replay guard's store, when the guard is on.
    pub(crate) replay: Option<Arc<dyn ReplayStore>>,
    /// Where `component_verify_ticket` pushes are stored before the handler runs.
    pub(crate) tickets: Option<Arc<dyn TicketStore>>,
    /// Dedupe, when on: key each push by its document and handle it once.
    #[cfg(feature = "tokio")]
    pub(crate) dedupe: Option<DedupeConfig>,
    /// The ack deadline, when on.
    #[cfg(feature = "tokio")]
    pub(crate) deadline: Option<Duration>,
    /// Queue mode: each verified push is queued, then answered; workers call the handler.
    #[cfg(feature = "tokio")]
    pub(crate) queue: Option<crate::queue::Queue>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("Config");
        out.field("source", &self.source)
            .field("body_limit", &self.body_limit)
            .field("replay_guard", &self.replay.is_some())
            .field("ticket_store", &self.tickets.is_some());
        #[cfg(feature = "tokio")]
        out.field("dedupe", &self.dedupe)
            .field("ack_deadline", &self.deadline)
            .field("queue", &self.queue);
        out.finish_non_exhaustive()
    }
}

impl Config {
    pub(crate) fn new(source: Source) -> Self {
        Self {
            source,
            body_limit: DEFAULT_BODY_LIMIT,
            replay: None,
            tickets: None,
            #[cfg(feature = "tokio")]
            dedupe: None,
            #[cfg(feature = "tokio")]
            deadline: None,
            #[cfg(feature = "tokio")]
            queue: None,
        }
    }

    /// The endpoint serving a request: the chosen app's, or the layer's own. An error only for
    /// a multi-app layer's request that chose no app, which the service refuses before.
    pub(crate) fn endpoint<'a>(&'a self, app: Option<&'a App>) -> Result<&'a Endpoint, Rejection> {
        match (app, &self.source) {
            (Some(app), _) => Ok(app.endpoint()),
            (None, Source::One(endpoint)) => Ok(endpoint),
            (None, Source::Many { .. }) => Err(Rejection::UnknownApp),
        }
    }

    /// Dedupe is on: each push is keyed by its document (see
    /// [`dedupe_key`](crate::dedupe::dedupe_key)), and a pass-through 200 is read to be recorded.
    pub(crate) fn dedupe_keys(&self) -> bool {
        #[cfg(feature = "tokio")]
        return self.dedupe.is_some();
        #[cfg(not(feature = "tokio"))]
        false
    }

    /// A retry option (dedupe, the ack deadline) or queue mode is on: the push goes to Tokio.
    pub(crate) fn retries(&self) -> bool {
        #[cfg(feature = "tokio")]
        return self.dedupe.is_some() || self.deadline.is_some() || self.queue.is_some();
        #[cfg(not(feature = "tokio"))]
        false
    }

    /// Queue mode is on: the push is queued, not handed to the handler.
    pub(crate) fn queued(&self) -> bool {
        #[cfg(feature = "tokio")]
        return self.queue.is_some();
        #[cfg(not(feature = "tokio"))]
        false
    }
}
