//! Dedupe: each push handled once, however often WeChat delivers it.
//!
//! WeChat waits five seconds for an answer, then delivers the same push again (three
//! deliveries in all). With [`WechatLayer::dedupe`](crate::WechatLayer::dedupe) the layer keys
//! every push ([`dedupe_key`]) and records its reply in a [`DedupeStore`]:
//!
//! - the first delivery claims the key, under an owner token of its own (random), and goes to
//!   the handler;
//! - a duplicate arriving while the first is being handled waits for that reply and answers it
//!   too (encrypted for its own request);
//! - a duplicate after a completed delivery gets the stored reply; the handler is not called;
//! - a duplicate after a *failed* first attempt (handler error, panic, the first request
//!   dropped before it finished, or the store failing to record the reply) is handled again:
//!   the claim is released, not kept. With the [ack deadline](crate::deadline) inside, a
//!   dropped first request does not stop its handler (it runs in its own task), so there it
//!   counts as answered `success`, as at the deadline: the handler runs once, and a duplicate
//!   meanwhile answers `success` at once.
//!
//! # A claim cannot outlive its owner
//!
//! A claim is a short lease ([`DEFAULT_CLAIM_LEASE`], three seconds) that its owner renews
//! every second while the handler runs. If the owner dies (the process is killed, the node
//! lost, the runtime shut down), nothing renews it and it expires before WeChat's next
//! delivery, five seconds later, which takes the push over, at this instance or another one
//! sharing the store. What else could leave a claim behind is settled too:
//!
//! - a release the store refuses (Redis timing out, or in its one-second pause after a
//!   timeout) is tried again, with back-off, until it goes through or the lease would have
//!   expired the claim anyway;
//! - a claim whose answer was lost (a timeout) may still land in the store later: the push is
//!   handled anyway (a duplicate is better than a lost message), and the claim is renewed,
//!   recorded or released under the owner token picked before claiming, as if acquired
//!   (renewing, recording or releasing a claim that never landed is harmless);
//! - a release that cannot run any more (its runtime is shutting down) is left to the lease.
//!
//! A duplicate keeps trying the claim while it waits, so it takes over an expired one, but it
//! never waits more than four seconds, under WeChat's five. A claim still held then has been
//! renewed past a whole lease since the duplicate arrived: its owner is alive and handling the
//! push. The duplicate answers `success`, as the ack deadline answers for a handler that is
//! still running, rather than run the handler a second time; the owner records the push's
//! reply when its handler ends, or releases the push for the next delivery if it fails.
//!
//! The reply is recorded off the answer's path: at once with [`MemoryDedupeStore`], in a task
//! of its own with a remote store (so a first delivery costs one round trip to it, the claim);
//! a recording that has not landed after 3 s is given up and the claim released.
//!
//! Pushes are keyed by their `MsgId`, or by a digest of their decrypted document when they
//! have none ([`dedupe_key`]).
//!
//! Entries expire (five minutes by default, thirty days at most) and [`MemoryDedupeStore`]
//! holds a bounded number of them. If the store itself fails, the push is handled anyway: a
//! duplicate is better than a lost message.

use std::time::Duration;

mod claim;
mod key;
mod service;
mod store;

pub(crate) use claim::HeldClaim;
pub use key::dedupe_key;
pub(crate) use key::{scoped_dedupe_key, DedupeKey};
pub(crate) use service::Dedupe;
pub use service::DedupeConfig;
pub use store::{Claim, DedupeStore, MemoryDedupeStore};

/// How long a completed push is remembered, by default: five minutes, past WeChat's retries.
pub const DEFAULT_DEDUPE_TTL: Duration = Duration::from_secs(300);

/// How long a claim outlives its owner's last renewal, by default (and at most): three
/// seconds, so that the claim of an instance that died is free again before WeChat's next
/// delivery, five seconds later.
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(3);

/// How long a duplicate waits on a push in flight elsewhere, at most: past a whole lease, and
/// under WeChat's five seconds.
const DUPLICATE_WAIT: Duration = Duration::from_secs(4);
