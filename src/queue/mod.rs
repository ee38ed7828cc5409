//! Durable handling: pushes queued before they are answered, handled by workers with retries,
//! a dead-letter list, and takeover of what a dead instance held (feature `tokio`).
//!
//! # When to use it
//!
//! Without a queue, a push lives only in the task that handles it once `success` is sent: a
//! process killed between the answer and the handler's work (a customer-service send, say)
//! loses it, and work that fails is logged and forgotten. With a queue, a verified push is
//! appended to the queue, answered as soon as the queue has it, and handled by a worker of any
//! instance, again and again until the handler returns `Ok`: the layer's queue mode,
//! [`WechatLayer::queue`](crate::WechatLayer::queue).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use http::Request;
//! use tower::service_fn;
//! use wechat_push::queue::{Delivery, Queue};
//! use wechat_push::redis::RedisStores;
//! use wechat_push::{Message, Reply};
//!
//! let redis = RedisStores::new("redis://127.0.0.1:6379/0")?;
//! let queue = Queue::builder().backend(redis.queue()).workers(4).build();
//! let workers = queue.start(service_fn(|req: Request<Message>| async move {
//!     let delivery = req.extensions().get::<Delivery>().cloned();
//!     // … send the answer through the customer-service API; `Err` retries it.
//!     let _ = delivery;
//!     Ok::<_, Infallible>(Reply::Success)
//! }));
//! // The layer in queue mode, in front of the same handler, queues each verified push and
//! // answers: `WechatLayer::new(token)?.queue(queue.clone()).layer(handler)`.
//! // On SIGTERM:
//! let drained = workers.shutdown(Duration::from_secs(10)).await;
//! # let _ = drained;
//! # Ok(())
//! # }
//! ```
//!
//! # Guarantees, and the window
//!
//! - **At least once.** A push the queue accepted ([`Enqueued::Queued`]) is handled until the
//!   handler returns `Ok`, or it goes to the dead-letter list. A handler that returns `Err`,
//!   panics, or runs past the visibility timeout (default 60 s) is called again after a
//!   back-off: 3 s, 9 s, 27 s, … (first retry within 5 s, third attempt within 45 s of the
//!   first, 8 attempts over about 55 minutes by default).
//! - **The window**: a process killed after the handler's effect was made (WeChat's API
//!   accepted the send) and before the queue recorded it, or a handler abandoned at the
//!   shutdown bound, repeats that one handler run. Each request carries a [`Delivery`]: a
//!   stable [`PushId`] (the same on every attempt, every instance, and for WeChat's own
//!   retries) and the attempt number, so that a handler can make its effect idempotent.
//!   Likewise a push whose append to Redis timed out may have been appended all the same:
//!   it is then queued in memory too, and handled twice. And a push is as durable as Redis
//!   keeps it (its RDB or AOF persistence, its replicas).
//! - **Duplicates**: a push whose id is queued, held, or was accepted within the dedupe TTL
//!   (default 2 hours) is answered [`Enqueued::Duplicate`] and not queued twice (on Redis, the
//!   id's marker and the append are one script).
//! - **Takeover**: a worker renews what it holds every quarter of `takeover_after` (default
//!   20 s); what a dead process held is taken over by another instance once not renewed for
//!   that long, within about 25 s of the crash.
//! - **Failover**: when the shared backend fails or does not answer in time (Redis: its
//!   command timeout, 250 ms by default), the push goes to this instance's memory queue and
//!   is still accepted; one warning per outage. Durability is what an outage costs: those
//!   pushes are lost with the process, and a push queued on the shared backend before the
//!   outage is not recognised as a duplicate by the memory queue. Only a full memory queue answers [`Enqueued::Full`]
//!   (answer 503: WeChat delivers the push again). The shared backend is used again as soon
//!   as it answers.
//! - **Passive replies** cannot be sent from a queue (the push was answered already): a
//!   handler's reply other than `success` or empty is logged as unsupported (warn).
//!
//! # Backends
//!
//! [`MemoryQueue`]: bounded (default capacity 10,000), the same retries and dead-letter list,
//! **lost with the process**. [`RedisQueue`](crate::redis::RedisQueue) (feature `redis`): a
//! Redis stream with a consumer group, shared by every instance; its key layout is in its
//! docs.
//!
//! # The dead-letter list
//!
//! A push that failed every attempt is kept, with its last error, in the backend's
//! dead-letter list (bounded: the oldest are dropped past 10,000 by default), and logged at
//! `error`. [`Queue::dead_letters`] lists them; [`Queue::requeue`] puts one back for attempts
//! afresh.

mod backend;
mod memory;
mod push;
mod renew;
// Without `tracing`, what would be logged goes unused.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
mod worker;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use tower::Service;

use crate::message::Message;
use crate::reply::Reply;
use crate::store::{BoxError, Outage, StoreError};

pub use backend::{DeadLetter, Enqueued, Held, QueueBackend};
pub use memory::{
    MemoryQueue, DEFAULT_DEAD_LETTER_CAPACITY, DEFAULT_DEDUPE_TTL, DEFAULT_MEMORY_CAPACITY,
};
pub(crate) use push::QueuedDocument;
#[cfg(feature = "redis")]
pub(crate) use push::{put, Reader};
pub use push::{Delivery, PushId, QueuedPush};
pub use worker::{Drained, Workers};

/// Logs through `tracing` when the feature is on.
macro_rules! log {
    ($level:ident, $($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        tracing::$level!($($arg)*);
    }};
}
pub(crate) use log;

/// The queue's timing and sizes; every one has a default matching the module docs.
#[derive(Clone, Debug)]
struct Config {
    workers: usize,
    batch: usize,
    max_attempts: u32,
    first_retry: Duration,
    backoff_factor: u32,
    visibility_timeout: Duration,
    takeover_after: Duration,
    poll_interval: Duration,
}

impl Config {
    /// The delay after failed attempt `attempt` (1-based).
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = self
            .backoff_factor
            .max(1)
            .saturating_pow(attempt.saturating_sub(1));
        self.first_retry
            .saturating_mul(factor)
            .min(Duration::from_secs(24 * 60 * 60))
    }
}

/// A queue of pushes: a shared backend (or none), this instance's memory queue as the
/// failover, and the workers' settings. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    primary: Option<Arc<dyn QueueBackend>>,
    memory: Arc<MemoryQueue>,
    outage: Outage,
    config: Config,
    consumer: String,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("backend", &self.shared.primary)
            .field("consumer", &self.shared.consumer)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// A builder: in memory only unless given a [`backend`](QueueBuilder::backend).
    pub fn builder() -> QueueBuilder {
        QueueBuilder {
            primary: None,
            memory: None,
            config: Config {
                workers: 4,
                batch: 16,
                max_attempts: 8,
                first_retry: Duration::from_secs(3),
                backoff_factor: 3,
                visibility_timeout: Duration::from_secs(60),
                takeover_after: Duration::from_secs(20),
                poll_interval: Duration::from_millis(50),
            },
            consumer: None,
        }
    }

    /// Queues a verified push: [`Enqueued::Queued`] or [`Enqueued::Duplicate`] (answer
    /// `success`), or [`Enqueued::Full`] (answer 503). On the shared backend when it answers,
    /// in this instance's memory otherwise.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub async fn push(&self, push: QueuedPush) -> Enqueued {
        if let Some(primary) = &self.shared.primary {
            match primary.add(&push).await {
                Ok(Enqueued::Full) => {
                    log!(warn, "queue: the shared queue is full; queuing in memory");
                }
                Ok(enqueued) => {
                    if self.shared.outage.answered() {
                        log!(info, "queue: the shared queue answers again");
                    }
                    return enqueued;
                }
                Err(error) => {
                    if self.shared.outage.failed() {
                        log!(warn, %error, "queue: the shared queue failed; queuing in this instance's memory (further failures logged at debug until it answers again)");
                    } else {
                        log!(debug, %error, "queue: the shared queue failed; queuing in memory");
                    }
                }
            }
        }
        self.shared.memory.add_now(&push)
    }

    /// Starts the workers on `handler`; stop them with [`Workers::shutdown`]. Each call of the
    /// handler gets the push's `Request<Message>` with [`PushInfo`](crate::PushInfo), the
    /// [`AppName`](crate::apps::AppName) on a multi-app layer, and [`Delivery`] in its
    /// extensions. Needs a Tokio runtime. A pass-through (HTTP) handler starts with
    /// [`start_pass_through`](Self::start_pass_through).
    pub fn start<S>(&self, handler: S) -> Workers
    where
        S: Service<Request<Message>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Response: Into<Reply> + Send + 'static,
        S::Error: Into<BoxError> + Send + 'static,
    {
        Workers::start(self.shared.clone(), handler)
    }

    /// Up to `max` dead letters of the shared backend and of this instance's memory, the
    /// latest of each first.
    pub async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let mut letters = match &self.shared.primary {
            Some(primary) => primary.dead_letters(max).await?,
            None => Vec::new(),
        };
        let room = max.saturating_sub(letters.len());
        letters.extend(self.shared.memory.dead_letters(room).await?);
        Ok(letters)
    }

    /// Puts `letter` back in the queue it died in, for attempts afresh (the attempt count
    /// starts again at 1); false if it is no longer in the list.
    pub async fn requeue(&self, letter: &DeadLetter) -> Result<bool, StoreError> {
        if self.shared.memory.requeue(letter).await? {
            return Ok(true);
        }
        match &self.shared.primary {
            Some(primary) => primary.requeue(letter).await,
            None => Ok(false),
        }
    }

    /// This instance's memory queue (the failover, or the queue itself without a backend).
    pub fn memory(&self) -> &MemoryQueue {
        &self.shared.memory
    }
}

/// Builds a [`Queue`]; see [`Queue::builder`].
#[must_use]
pub struct QueueBuilder {
    primary: Option<Arc<dyn QueueBackend>>,
    memory: Option<MemoryQueue>,
    config: Config,
    consumer: Option<String>,
}

impl fmt::Debug for QueueBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("backend", &self.primary)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl QueueBuilder {
    /// The queue shared by every instance ([`RedisQueue`](crate::redis::RedisQueue)); this
    /// instance's memory queue becomes its failover.
    pub fn backend(mut self, backend: impl QueueBackend) -> Self {
        self.primary = Some(Arc::new(backend));
        self
    }

    /// This instance's memory queue (default: a [`MemoryQueue`] of
    /// [`DEFAULT_MEMORY_CAPACITY`]).
    pub fn memory(mut self, memory: MemoryQueue) -> Self {
        self.memory = Some(memory);
        self
    }

    /// How many workers [`Queue::start`] runs (default 4).
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers.max(1);
        self
    }

    /// How many pushes a worker takes at once from the shared backend (default 16, at most
    /// 1,000); it marks those it handled done together, at the end of the batch or every
    /// 20 ms.
    pub fn batch(mut self, batch: usize) -> Self {
        self.config.batch = batch.clamp(1, 1000);
        self
    }

    /// Attempts before a push goes to the dead-letter list (default 8).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts.max(1);
        self
    }

    /// The back-off: `first` after the first failed attempt, times `factor` after each next
    /// one (default 3 s and 3: 3 s, 9 s, 27 s, …, about 55 minutes over 8 attempts).
    pub fn backoff(mut self, first: Duration, factor: u32) -> Self {
        self.config.first_retry = first;
        self.config.backoff_factor = factor.max(1);
        self
    }

    /// How long one attempt may run (default 60 s: room for the client's 30 s token wait);
    /// past it the attempt has failed, and the push is taken again after the back-off. A
    /// live worker renews its hold meanwhile, so a slow attempt is not taken over.
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.config.visibility_timeout = timeout;
        self
    }

    /// How long a push held by an instance that stopped renewing it (a dead process) waits
    /// before another instance takes it over (default 20 s; renewals come every quarter of
    /// it).
    pub fn takeover_after(mut self, after: Duration) -> Self {
        self.config.takeover_after = after.max(Duration::from_millis(4));
        self
    }

    /// How long an idle worker waits before looking for work again (default 50 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// This instance's name among the consumers of the shared backend (default: random).
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = Some(name.into());
        self
    }

    /// The queue.
    pub fn build(self) -> Queue {
        let consumer = self.consumer.unwrap_or_else(|| {
            let bytes = crate::random::os_random::<8>().unwrap_or_else(|_| {
                // No OS randomness: the time and process id still tell instances apart.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                (u64::from(nanos) << 32 | u64::from(std::process::id())).to_be_bytes()
            });
            let mut name = String::from("instance-");
            crate::protocol::hex::push_str(&mut name, &bytes);
            name
        });
        Queue {
            shared: Arc::new(Shared {
                primary: self.primary,
                memory: Arc::new(self.memory.unwrap_or_default()),
                outage: Outage::default(),
                config: self.config,
                consumer,
            }),
        }
    }
}
