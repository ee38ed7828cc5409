//! The workers: take pushes, call the handler, record the outcome; and their shutdown.

use std::collections::HashSet;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use http::Request;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::Service;

use crate::message::Message;
use crate::reply::Reply;
use crate::store::BoxError;

use super::backend::{Held, QueueBackend};
use super::{log, Shared};

/// The longest shutdown bound taken (a `Duration::MAX` one must not overflow the clock).
const MAX_BOUND: Duration = Duration::from_secs(24 * 60 * 60);

/// Runs a handler on a queue's pushes; see [`Queue::start`](super::Queue::start).
#[must_use = "dropping `Workers` leaves them running; call `shutdown` to stop them"]
pub struct Workers {
    stop: watch::Sender<State>,
    tasks: Vec<JoinHandle<()>>,
    /// Renews what is held until the workers are done.
    renewer: Option<JoinHandle<()>>,
    counts: Arc<Counts>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("workers", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

/// What [`Workers::shutdown`] did with the pushes held when it began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Attempts that came to an end (handled, or failed and left for a retry).
    pub finished: usize,
    /// Pushes made available again to the other instances' workers at once.
    pub handed_back: usize,
    /// Pushes of the memory queue not handled (logged at `error`): queued, held past the
    /// bound, or waiting for a retry.
    pub lost: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    /// Shutting down, the memory queue's ready work first: take and handle as when running
    /// (what finishes now counts as finished at shutdown).
    Draining,
    /// Take nothing more; finish what is held.
    Stopping,
    /// The bound is past: abandon and hand back.
    Abandon,
}

impl State {
    /// Whether workers take nothing more.
    fn stops(self) -> bool {
        matches!(self, State::Stopping | State::Abandon)
    }
}

#[derive(Debug, Default)]
struct Counts {
    finished: AtomicUsize,
    handed_back: AtomicUsize,
    lost: AtomicUsize,
}

/// Which backend a push came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Memory,
    Primary,
}

impl Workers {
    pub(super) fn start<S>(shared: Arc<Shared>, handler: S) -> Self
    where
        S: Service<Request<Message>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Response: Into<Reply> + Send + 'static,
        S::Error: Into<BoxError> + Send + 'static,
    {
        let (stop, watching) = watch::channel(State::Running);
        let counts = Arc::new(Counts::default());
        let held = Arc::new(Mutex::new(HashSet::new()));
        let mut tasks = Vec::with_capacity(shared.config.workers + 1);
        for _ in 0..shared.config.workers.max(1) {
            let worker = Worker {
                ctx: Ctx {
                    shared: shared.clone(),
                    stop: watching.clone(),
                    counts: counts.clone(),
                    held: held.clone(),
                },
                handler: handler.clone(),
            };
            tasks.push(tokio::spawn(worker.run()));
        }
        let renewer = shared
            .primary
            .clone()
            .map(|primary| tokio::spawn(super::renew::renew(primary, shared.clone(), held)));
        Workers {
            stop,
            tasks,
            renewer,
            counts,
            shared,
        }
    }

    /// Stops the workers, within `bound` in all. First, while the memory queue has pushes
    /// ready (queued, or due for a retry), the workers go on taking and handling them: those
    /// cannot be handed to another instance. Then they take nothing more, hand back what they
    /// hold but have not begun, and finish the attempts under way; past the bound those are
    /// abandoned and handed back (the memory queue's are lost: logged at `error`, and so is
    /// what it still holds, a retry not yet due among them).
    pub async fn shutdown(self, bound: Duration) -> Drained {
        let deadline = tokio::time::Instant::now() + bound.min(MAX_BOUND);
        let _ = self.stop.send(State::Draining);
        // The memory queue cannot be handed to another instance: what it holds or has ready
        // is handled first, within the bound, and only then do the workers stop taking.
        while self.shared.memory.active_now() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.stop.send(State::Stopping);
        let mut tasks = self.tasks;
        if tokio::time::timeout_at(deadline, join(&mut tasks))
            .await
            .is_err()
        {
            let _ = self.stop.send(State::Abandon);
            // Handing back is one command each, within the backend's own timeout.
            let _ = tokio::time::timeout(Duration::from_secs(5), join(&mut tasks)).await;
            for task in &tasks {
                task.abort();
            }
        }
        if let Some(renewer) = self.renewer {
            renewer.abort();
        }
        for id in self.shared.memory.drain_ids() {
            self.counts.lost.fetch_add(1, Ordering::Relaxed);
            log!(error, push = %id, "queue: shutting down; this push in memory is lost");
        }
        Drained {
            finished: self.counts.finished.load(Ordering::Relaxed),
            handed_back: self.counts.handed_back.load(Ordering::Relaxed),
            lost: self.counts.lost.load(Ordering::Relaxed),
        }
    }
}

/// Waits for the tasks not finished yet (a `JoinHandle` is not polled after it completed).
async fn join(tasks: &mut [JoinHandle<()>]) {
    for task in tasks.iter_mut() {
        if !task.is_finished() {
            let _ = task.await;
        }
    }
}

struct Worker<S> {
    ctx: Ctx,
    handler: S,
}

/// What a worker's steps need besides the handler (which need not be `Sync`).
struct Ctx {
    shared: Arc<Shared>,
    stop: watch::Receiver<State>,
    counts: Arc<Counts>,
    held: Arc<Mutex<HashSet<String>>>,
}

impl<S> Worker<S>
where
    S: Service<Request<Message>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Into<Reply> + Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
{
    async fn run(mut self) {
        let config = self.ctx.shared.config.clone();
        // The first pass looks for work to take over at once (a restart after a crash).
        let mut last_scan: Option<tokio::time::Instant> = None;
        loop {
            if self.ctx.stop.borrow().stops() {
                return;
            }
            // One at a time from memory (no round trip to save): idle workers share the work.
            let mut batch = self.ctx.shared.memory.take_now(1);
            let mut source = Source::Memory;
            if batch.is_empty() {
                if let Some(primary) = &self.ctx.shared.primary {
                    let scan = last_scan.is_none_or(|at| at.elapsed() >= config.takeover_after / 4);
                    let takeover = scan.then_some(config.takeover_after);
                    match primary
                        .take(&self.ctx.shared.consumer, config.batch, takeover)
                        .await
                    {
                        Ok(taken) => {
                            if scan {
                                last_scan = Some(tokio::time::Instant::now());
                            }
                            batch = taken;
                            source = Source::Primary;
                        }
                        Err(error) => log!(debug, %error, "queue: taking work failed"),
                    }
                }
            }
            if batch.is_empty() {
                let idle = race(
                    tokio::time::sleep(config.poll_interval),
                    self.ctx.stop.changed(),
                );
                if let Either::Right(Err(_)) = idle.await {
                    // `Workers` was dropped: they run on, with no one to stop them.
                    tokio::time::sleep(config.poll_interval).await;
                }
                continue;
            }
            if source == Source::Primary {
                let mut held = self.ctx.held.lock().unwrap_or_else(PoisonError::into_inner);
                held.extend(batch.iter().map(|h| h.entry.clone()));
            }
            let mut done = Vec::new();
            let mut flushed = tokio::time::Instant::now();
            for held in batch {
                if let Some(handled) = self.handle(source, held).await {
                    done.push(handled);
                }
                if flushed.elapsed() >= FLUSH_EVERY {
                    self.ctx.finish(source, &mut done).await;
                    flushed = tokio::time::Instant::now();
                }
            }
            self.ctx.finish(source, &mut done).await;
        }
    }

    /// One push: the handled one comes back, to be marked done with others.
    async fn handle(&mut self, source: Source, held: Held) -> Option<Held> {
        let stopping = self.ctx.stop.borrow().stops();
        if stopping {
            self.ctx.give_back(source, &held).await;
        } else {
            match self.attempt(&held).await {
                Some(Ok(())) => {
                    self.ctx.count_finished();
                    return Some(held);
                }
                Some(Err(error)) => {
                    self.ctx.failed(source, &held, &error).await;
                    self.ctx.count_finished();
                }
                None => self.ctx.give_back(source, &held).await,
            }
        }
        self.ctx.release(source, std::slice::from_ref(&held));
        None
    }

    /// One attempt: `None` when abandoned at shutdown.
    async fn attempt(&mut self, held: &Held) -> Option<Result<(), String>> {
        let request = match held.push.request(held.attempt) {
            Ok(request) => request,
            Err(error) => {
                return Some(Err(format!(
                    "the queued document no longer decodes: {error}"
                )))
            }
        };
        let mut handler = self.handler.clone();
        let task = tokio::spawn(async move {
            poll_fn(|cx| handler.poll_ready(cx))
                .await
                .map_err(|e| e.into().to_string())?;
            handler
                .call(request)
                .await
                .map(Into::into)
                .map_err(|e| e.into().to_string())
        });
        let abort = task.abort_handle();
        let timeout = self.ctx.shared.config.visibility_timeout;
        let mut stop = self.ctx.stop.clone();
        let abandoned = async move {
            while *stop.borrow_and_update() != State::Abandon {
                if stop.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let result = match race(tokio::time::timeout(timeout, task), abandoned).await {
            Either::Left(result) => result,
            Either::Right(()) => {
                abort.abort();
                return None;
            }
        };
        Some(match result {
            Ok(Ok(Ok(reply))) => {
                if !reply.is_ack() {
                    log!(warn, push = %held.push.id(), "queue: the handler returned a passive reply, which cannot be sent from the queue (the push was answered already); send it through the customer-service API instead");
                }
                Ok(())
            }
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(join)) if join.is_panic() => Err("the handler panicked".to_owned()),
            Ok(Err(_)) => Err("the handler's task was cancelled".to_owned()),
            Err(_) => {
                abort.abort();
                Err(format!(
                    "the handler outlived the visibility timeout ({timeout:?})"
                ))
            }
        })
    }
}

impl Ctx {
    /// Marks the handled pushes done, in one call.
    async fn finish(&self, source: Source, done: &mut Vec<Held>) {
        if done.is_empty() {
            return;
        }
        if let Err(error) = self.backend(source).finish(done).await {
            log!(warn, pushes = done.len(), %error, "queue: handled pushes could not be marked done; they may be handled again");
        }
        self.release(source, done);
        done.clear();
    }

    /// No longer held: no longer renewed.
    fn release(&self, source: Source, held: &[Held]) {
        if source == Source::Primary {
            let mut renewed = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            for held in held {
                renewed.remove(&held.entry);
            }
        }
    }

    fn backend(&self, source: Source) -> &dyn QueueBackend {
        match (source, &self.shared.primary) {
            (Source::Primary, Some(primary)) => &**primary,
            _ => &*self.shared.memory,
        }
    }

    fn count_finished(&self) {
        if *self.stop.borrow() != State::Running {
            self.counts.finished.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands a push back, or (memory) counts it among the lost ones at shutdown.
    async fn give_back(&self, source: Source, held: &Held) {
        match self
            .backend(source)
            .hand_back(&self.shared.consumer, held)
            .await
        {
            Ok(()) if source == Source::Primary => {
                self.counts.handed_back.fetch_add(1, Ordering::Relaxed);
            }
            // Back in the memory queue: the shutdown counts and logs it as lost.
            Ok(()) => {}
            Err(error) => {
                log!(warn, push = %held.push.id(), %error, "queue: handing a push back failed; another instance takes it over once its hold expires");
            }
        }
    }

    async fn failed(&self, source: Source, held: &Held, error: &str) {
        let config = &self.shared.config;
        let error = truncated(error);
        let retry_in = (held.attempt < config.max_attempts).then(|| config.backoff(held.attempt));
        match retry_in {
            Some(delay) => {
                log!(warn, push = %held.push.id(), attempt = held.attempt, %error, ?delay, "queue: the handler failed; retrying after the delay");
            }
            None => {
                log!(error, push = %held.push.id(), attempts = held.attempt, %error, "queue: the handler failed every attempt; the push is in the dead-letter list");
            }
        }
        if let Err(store) = self
            .backend(source)
            .fail(&self.shared.consumer, held, error, retry_in)
            .await
        {
            log!(warn, push = %held.push.id(), error = %store, "queue: recording a failed attempt failed; another instance takes the push over once its hold expires");
        }
    }
}

enum Either<A, B> {
    Left(A),
    Right(B),
}

/// The output of whichever of `a` and `b` finishes first (`a` when both are ready).
async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(out));
        }
        b.as_mut().poll(cx).map(Either::Right)
    })
    .await
}

/// At most [`MAX_ERROR`] bytes of `error` (on a character boundary): what a dead letter keeps.
fn truncated(error: &str) -> &str {
    let mut end = error.len().min(MAX_ERROR);
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    error.get(..end).unwrap_or(error)
}

/// How often a worker marks the pushes it handled done, within a batch.
const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// How much of a handler's error is kept.
const MAX_ERROR: usize = 2048;
