//! The renewer: keeps what this instance's workers hold from the shared backend theirs, so
//! that another instance takes it over only when this one stops renewing (it died).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use super::backend::QueueBackend;
use super::{log, Shared};

/// Renews what this instance holds from the shared backend, so that a slow live handler is
/// not taken over.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(super) async fn renew(
    primary: Arc<dyn QueueBackend>,
    shared: Arc<Shared>,
    held: Arc<Mutex<HashSet<String>>>,
) {
    let every = shared.config.takeover_after / 4;
    loop {
        tokio::time::sleep(every).await;
        let entries: Vec<String> = held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        if entries.is_empty() {
            continue;
        }
        if let Err(error) = primary.renew(&shared.consumer, &entries).await {
            log!(debug, %error, "queue: renewing held pushes failed");
        }
    }
}
