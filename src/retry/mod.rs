//! What runs around the handler to cope with WeChat's retries: dedupe and the ack deadline
//! (on Tokio), and the replay guard.

#[cfg(feature = "tokio")]
pub mod deadline;
#[cfg(feature = "tokio")]
pub mod dedupe;
pub mod replay;
