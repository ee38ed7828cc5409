//! The queue on Redis against real `redis-server` processes on loopback, one per test, started
//! by the test: takeover of what a killed instance held, retries, dead letters, failover to
//! memory while Redis is down or frozen, shutdown hand-back, and duplicates across instances.
//!
//! Without `redis-server` on the PATH each test prints a loud SKIPPED line and passes; with
//! `CI=true` it fails instead.
#![cfg(all(feature = "redis", feature = "tracing"))]

#[path = "common/queue_kit.rs"]
mod kit;
#[path = "common/redis_server.rs"]
mod redis_server;

use redis_server::RedisServer;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kit::{eventually, ok, push, Act, Logs, Scripted};
use redis::AsyncCommands;
use wechat_push::queue::{Enqueued, Queue, QueueBuilder};
use wechat_push::redis::RedisStores;

// ---------------------------------------------------------------------------------------
// redis-server processes (as in tests/redis.rs)
// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// Instances
// ---------------------------------------------------------------------------------------

const PREFIX: &str = "qtest:";
const STREAM: &str = "qtest:queue:stream";

/// An instance's queue on `server`: its own connection, fast retries and polling, and work
/// taken over after `takeover`.
fn instance(server: &RedisServer, takeover: Duration) -> QueueBuilder {
    let stores = RedisStores::builder(server.url())
        .prefix(PREFIX)
        .build()
        .unwrap();
    Queue::builder()
        .backend(stores.queue())
        .workers(2)
        .backoff(Duration::from_millis(200), 2)
        .poll_interval(Duration::from_millis(10))
        .takeover_after(takeover)
}

/// Entries in the stream, and entries pending (held by some consumer).
async fn stream_counts(server: &RedisServer) -> (usize, usize) {
    let mut c = server.raw().await;
    let len: usize = redis::cmd("XLEN")
        .arg(STREAM)
        .query_async(&mut c)
        .await
        .unwrap();
    // No stream yet (a Redis started afresh): no group either.
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(STREAM)
        .arg("workers")
        .query_async(&mut c)
        .await
        .unwrap_or(redis::Value::Nil);
    let pending = match pending {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => usize::try_from(*n).unwrap(),
            _ => 0,
        },
        _ => 0,
    };
    (len, pending)
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// Instance A takes a push and hangs in its handler; its whole runtime is dropped without a
/// shutdown (as `kill -9` would end it). Instance B takes the push over once A's hold is not
/// renewed, and handles it exactly once.
#[test]
fn a_push_held_by_a_killed_instance_is_handled_by_another_once() {
    let Some(server) = RedisServer::start("a_push_held_by_a_killed_instance") else {
        return;
    };
    let takeover = Duration::from_secs(2);
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    let a_runtime = runtime();
    let a_handler = Scripted::new(|_| Act::Hang);
    let a = a_runtime.block_on(async {
        let queue = instance(&server, takeover).build();
        let workers = queue.start(a_handler.service());
        assert_eq!(queue.push(push(1)).await, Enqueued::Queued);
        assert!(eventually(Duration::from_secs(10), || a_handler.calls().len() == 1).await);
        // Held past a renewal or two: renewing keeps it A's while A lives.
        tokio::time::sleep(takeover + Duration::from_secs(1)).await;
        (queue, workers)
    });
    assert_eq!(a_handler.calls().len(), 1, "not taken over while A lives");
    std::mem::forget(a);
    let killed = Instant::now();
    a_runtime.shutdown_background();

    let b_runtime = runtime();
    let b_handler = Scripted::new(ok);
    b_runtime.block_on(async {
        let queue = instance(&server, takeover).build();
        let workers = queue.start(b_handler.service());
        assert!(
            eventually(Duration::from_secs(20), || b_handler.effects().len() == 1).await,
            "B handles the push A held"
        );
        let within = killed.elapsed();
        assert!(within < takeover + Duration::from_secs(8), "{within:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let calls = b_handler.calls();
        assert_eq!(calls.len(), 1, "exactly once: {calls:?}");
        assert_eq!(calls[0].id, "gh_1|msg|1");
        assert_eq!(calls[0].attempt, 2, "A's attempt counts");
        assert_eq!(stream_counts(&server).await, (0, 0), "nothing left behind");
        workers.shutdown(Duration::from_secs(5)).await;
    });
    assert!(a_handler.effects().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_failing_three_times_is_retried_with_back_off() {
    let Some(server) = RedisServer::start("a_handler_failing_three_times") else {
        return;
    };
    let queue = instance(&server, Duration::from_secs(20)).build();
    let handler = Scripted::new(|n| if n <= 3 { Act::Fail } else { Act::Ok });
    let workers = queue.start(handler.service());
    assert_eq!(queue.push(push(1)).await, Enqueued::Queued);
    assert!(eventually(Duration::from_secs(20), || handler.effects().len() == 1).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = handler.calls();
    let attempts: Vec<u32> = calls.iter().map(|c| c.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4], "{calls:?}");
    assert_eq!(handler.effects().len(), 1);
    for (i, pair) in calls.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        // Redis' clock counts whole milliseconds.
        let want = Duration::from_millis((200 << i) - 2);
        assert!(gap >= want, "gap {i}: {gap:?} < {want:?}");
        assert!(gap < want + Duration::from_secs(3), "gap {i}: {gap:?}");
    }
    assert_eq!(stream_counts(&server).await, (0, 0));
    let mut c = server.raw().await;
    let delayed: usize = c.zcard("qtest:queue:delayed").await.unwrap();
    assert_eq!(delayed, 0);
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_failing_every_attempt_is_a_dead_letter_another_instance_requeues() {
    let Some(server) = RedisServer::start("a_push_failing_every_attempt") else {
        return;
    };
    let queue = instance(&server, Duration::from_secs(20))
        .max_attempts(3)
        .build();
    let handler = Scripted::new(|n| if n <= 3 { Act::Fail } else { Act::Ok });
    let workers = queue.start(handler.service());
    queue.push(push(9)).await;
    // Listed by another instance: the list is in Redis.
    let other = instance(&server, Duration::from_secs(20)).build();
    let mut letters = Vec::new();
    for _ in 0..1000 {
        letters = other.dead_letters(10).await.unwrap();
        if !letters.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].push().id().as_str(), "gh_1|msg|9");
    assert_eq!(letters[0].attempts(), 3);
    assert_eq!(letters[0].error(), "boom 3");
    assert_eq!(handler.calls().len(), 3);
    let mut c = server.raw().await;
    let listed: usize = c.llen("qtest:queue:dead").await.unwrap();
    assert_eq!(listed, 1);

    assert!(other.requeue(&letters[0]).await.unwrap());
    assert!(!other.requeue(&letters[0]).await.unwrap(), "once only");
    assert!(eventually(Duration::from_secs(10), || handler.effects().len() == 1).await);
    assert_eq!(handler.calls().last().unwrap().attempt, 1);
    assert!(other.dead_letters(10).await.unwrap().is_empty());
    workers.shutdown(Duration::from_secs(5)).await;
}

/// Redis stopped, or frozen, when pushes arrive: accepted in time from this instance's memory
/// and handled, one warning per outage; once Redis answers again the stream is used again.
async fn accepted_through_an_outage(frozen: bool) {
    let test = if frozen { "redis_frozen" } else { "redis_down" };
    let Some(mut server) = RedisServer::start(test) else {
        return;
    };
    let (logs, warnings, _) = Logs::new();
    let _guard = tracing::subscriber::set_default(logs);
    let queue = instance(&server, Duration::from_secs(20)).build();
    let handler = Scripted::new(ok);
    let workers = queue.start(handler.service());
    // The stream works first.
    assert_eq!(queue.push(push(1)).await, Enqueued::Queued);
    assert!(eventually(Duration::from_secs(5), || handler.effects().len() == 1).await);
    // Marked done in the stream too: a Redis stopped between the handler's effect and that
    // record would make the worker warn that it could not mark the push done, a second
    // warning that is not the outage's (it made this test flaky under load).
    let deadline = Instant::now() + Duration::from_secs(5);
    while stream_counts(&server).await != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "push 1 not marked done in the stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    if frozen {
        server.freeze(true);
    } else {
        server.stop();
    }
    for id in 2..=4 {
        let started = Instant::now();
        assert_eq!(queue.push(push(id)).await, Enqueued::Queued);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "push {id} took {took:?}");
    }
    // Many at once: every one accepted in time, still one warning.
    let started = Instant::now();
    let many: Vec<_> = (100..120)
        .map(|id| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.push(push(id)).await })
        })
        .collect();
    for pushed in many {
        assert_eq!(pushed.await.unwrap(), Enqueued::Queued);
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        eventually(Duration::from_secs(10), || handler.effects().len() == 24).await,
        "handled from memory"
    );
    assert_eq!(warnings.load(Ordering::SeqCst), 1, "one warning per outage");
    let drained = workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(drained.lost, 0);

    if frozen {
        server.freeze(false);
    } else {
        server.restart();
    }
    // After the connection's pause, the next push goes to the stream again, no restart.
    let mut in_stream = false;
    for id in 5..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(queue.push(push(id)).await, Enqueued::Queued);
        if stream_counts(&server).await.0 == 1 {
            in_stream = true;
            break;
        }
    }
    assert!(in_stream, "the stream is used again");
    assert_eq!(warnings.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn redis_down_at_accept_time_is_survived_in_memory() {
    accepted_through_an_outage(false).await;
}

#[tokio::test]
async fn redis_frozen_at_accept_time_is_survived_in_memory() {
    accepted_through_an_outage(true).await;
}

/// Shutdown with pushes held by hung handlers: handed back at the bound, and another instance
/// (which would take nothing over for a minute) handles each at once, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_back_held_work_to_another_instance() {
    let Some(server) = RedisServer::start("shutdown_hands_back") else {
        return;
    };
    let takeover = Duration::from_secs(60);
    let a = instance(&server, takeover).workers(1).build();
    for id in 0..5 {
        assert_eq!(a.push(push(id)).await, Enqueued::Queued);
    }
    let a_handler = Scripted::new(|_| Act::Hang);
    let a_workers = a.start(a_handler.service());
    assert!(eventually(Duration::from_secs(5), || a_handler.calls().len() == 1).await);
    // A took the five at once: one hung, four waiting behind it.
    assert_eq!(stream_counts(&server).await, (5, 5));
    let drained = a_workers.shutdown(Duration::from_millis(500)).await;
    assert_eq!(drained.handed_back, 5, "{drained:?}");
    assert_eq!((drained.finished, drained.lost), (0, 0));
    assert_eq!(
        stream_counts(&server).await,
        (5, 0),
        "available to all again"
    );

    let b = instance(&server, takeover).build();
    let b_handler = Scripted::new(ok);
    let started = Instant::now();
    let b_workers = b.start(b_handler.service());
    assert!(eventually(Duration::from_secs(10), || b_handler.effects().len() == 5).await);
    assert!(started.elapsed() < Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let by_id = b_handler.effects_by_id();
    assert_eq!(by_id.len(), 5);
    assert!(by_id.values().all(|n| *n == 1), "{by_id:?}");
    assert!(a_handler.effects().is_empty());
    assert_eq!(stream_counts(&server).await, (0, 0));
    b_workers.shutdown(Duration::from_secs(5)).await;
}

/// Shutdown with time enough: the push under way is finished, those held behind it are handed
/// back; none lost, none doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_attempt_under_way_and_hands_back_the_rest() {
    let Some(server) = RedisServer::start("shutdown_finishes") else {
        return;
    };
    let takeover = Duration::from_secs(60);
    let a = instance(&server, takeover).workers(1).build();
    for id in 0..4 {
        a.push(push(id)).await;
    }
    let a_handler = Scripted::new(|_| Act::Slow(Duration::from_millis(500)));
    let a_workers = a.start(a_handler.service());
    assert!(eventually(Duration::from_secs(5), || a_handler.calls().len() == 1).await);
    let drained = a_workers.shutdown(Duration::from_secs(10)).await;
    assert_eq!(drained.finished, 1, "{drained:?}");
    assert_eq!(drained.handed_back, 3, "{drained:?}");
    assert_eq!(a_handler.effects().len(), 1);

    let b = instance(&server, takeover).build();
    let b_handler = Scripted::new(ok);
    let b_workers = b.start(b_handler.service());
    assert!(eventually(Duration::from_secs(10), || b_handler.effects().len() == 3).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut all = a_handler.effects();
    all.extend(b_handler.effects());
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4, "none lost");
    assert_eq!(
        a_handler.effects().len() + b_handler.effects().len(),
        4,
        "none doubled"
    );
    b_workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_queued_or_held_on_any_instance_is_not_queued_twice() {
    let Some(server) = RedisServer::start("a_duplicate_queued_or_held") else {
        return;
    };
    let a = instance(&server, Duration::from_secs(20)).build();
    let b = instance(&server, Duration::from_secs(20)).build();
    assert_eq!(a.push(push(1)).await, Enqueued::Queued);
    assert_eq!(b.push(push(1)).await, Enqueued::Duplicate, "queued");
    let handler = Scripted::new(|_| Act::Slow(Duration::from_millis(500)));
    let workers = a.start(handler.service());
    assert!(eventually(Duration::from_secs(5), || handler.calls().len() == 1).await);
    assert_eq!(b.push(push(1)).await, Enqueued::Duplicate, "held");
    assert!(eventually(Duration::from_secs(5), || handler.effects().len() == 1).await);
    assert_eq!(b.push(push(1)).await, Enqueued::Duplicate, "handled");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handler.calls().len(), 1);
    // The marker lives under the prefix, with the dedupe TTL.
    let mut c = server.raw().await;
    let pttl: i64 = c.pttl("qtest:queue:seen:gh_1|msg|1").await.unwrap();
    let ttl = i64::try_from(wechat_push::queue::DEFAULT_DEDUPE_TTL.as_millis()).unwrap();
    assert!(pttl > ttl - 60_000 && pttl <= ttl, "{pttl}");
    workers.shutdown(Duration::from_secs(5)).await;
}

/// A stream at its capacity sends new pushes to the instance's memory queue (still accepted,
/// still handled), and only a full memory queue refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_falls_back_to_memory_and_a_full_memory_refuses() {
    let Some(server) = RedisServer::start("a_full_stream_falls_back") else {
        return;
    };
    let stores = RedisStores::builder(server.url())
        .prefix(PREFIX)
        .build()
        .unwrap();
    let queue = Queue::builder()
        .backend(stores.queue().capacity(1))
        .memory(wechat_push::queue::MemoryQueue::new(1))
        .poll_interval(Duration::from_millis(10))
        .build();
    assert_eq!(queue.push(push(1)).await, Enqueued::Queued);
    assert_eq!(queue.push(push(2)).await, Enqueued::Queued);
    assert_eq!(queue.push(push(3)).await, Enqueued::Full);
    assert_eq!(stream_counts(&server).await.0, 1);
    assert_eq!(queue.memory().len(), 1);
    let handler = Scripted::new(ok);
    let workers = queue.start(handler.service());
    assert!(eventually(Duration::from_secs(10), || handler.effects().len() == 2).await);
    let mut effects = handler.effects();
    effects.sort();
    assert_eq!(effects, ["gh_1|msg|1", "gh_1|msg|2"]);
    workers.shutdown(Duration::from_secs(5)).await;
}

/// An entry this crate did not write is moved to the dead-letter list, never handed to the
/// handler, and does not stop the pushes beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_entry_is_put_aside_not_handled() {
    let Some(server) = RedisServer::start("a_foreign_entry_is_put_aside") else {
        return;
    };
    let queue = instance(&server, Duration::from_secs(20)).build();
    assert_eq!(queue.push(push(1)).await, Enqueued::Queued);
    let mut c = server.raw().await;
    let _: String = redis::cmd("XADD")
        .arg(STREAM)
        .arg("*")
        .arg("a")
        .arg("0")
        .arg("d")
        .arg("not a push")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(queue.push(push(2)).await, Enqueued::Queued);
    let handler = Scripted::new(ok);
    let workers = queue.start(handler.service());
    assert!(eventually(Duration::from_secs(10), || handler.effects().len() == 2).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handler.calls().len(), 2);
    let dead: usize = c.llen("qtest:queue:dead").await.unwrap();
    assert_eq!(dead, 1);
    assert_eq!(stream_counts(&server).await, (0, 0));
    workers.shutdown(Duration::from_secs(5)).await;
}
