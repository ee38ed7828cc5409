//! Dedupe: each push handled once, however often WeChat delivers it.
//!
//! WeChat waits five seconds for an answer, then delivers the same push again (three
//! deliveries in all). With [`WechatLayer::dedupe`](crate::WechatLayer::dedupe) the layer keys
//! every push ([`dedupe_key`]) and records its reply in a [`DedupeStore`]:
//!
//! - the first delivery claims the key and goes to the handler;
//! - a duplicate arriving while the first is being handled waits for that reply and answers it
//!   too (encrypted for its own request);
//! - a duplicate after a completed delivery gets the stored reply; the handler is not called;
//! - a duplicate after a *failed* first attempt (handler error, panic, the first request
//!   dropped before it finished, or the store failing to record the reply) is handled again:
//!   the claim is released, not kept. With the [ack deadline](crate::deadline) inside, a
//!   dropped first request does not stop its handler (it runs in its own task), so there it
//!   counts as answered `success`, as at the deadline: the handler runs once. If that handler
//!   is cancelled (the runtime shuts down), the record is withdrawn and the retry handled.
//!
//! The reply is recorded off the answer's path: at once with [`MemoryDedupeStore`], in a task
//! of its own with a remote store (so a first delivery costs one round trip to it, the claim);
//! a recording that has not landed after 3 s is given up and the claim released.
//!
//! Pushes are keyed by their `MsgId`, or by a digest of their decrypted document when they
//! have none ([`dedupe_key`]).
//!
//! Entries expire (five minutes by default) and [`MemoryDedupeStore`] holds a bounded number
//! of them. If the store itself fails, the push is handled anyway: a duplicate is better than a
//! lost message.

use std::time::Duration;

mod key;
mod service;
mod store;

pub use key::dedupe_key;
pub(crate) use key::{scoped_dedupe_key, DedupeKey};
pub use service::DedupeConfig;
pub(crate) use service::{Dedupe, HeldClaim};
pub use store::{Claim, DedupeStore, MemoryDedupeStore};

/// How long a completed push is remembered, by default: five minutes, past WeChat's retries.
pub const DEFAULT_DEDUPE_TTL: Duration = Duration::from_secs(300);

/// How long a claim holds while its handler runs, at most: past it, a duplicate may run the
/// handler again (a handler stuck that long has failed WeChat anyway).
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(60);
