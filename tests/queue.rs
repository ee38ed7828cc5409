//! The queue in memory: retries with back-off, the dead-letter list, panics and timeouts,
//! duplicates, a full queue, passive replies, and shutdown.
#![cfg(all(feature = "tokio", feature = "tracing"))]

#[path = "common/queue_kit.rs"]
mod kit;

use std::sync::atomic::Ordering;
use std::time::Duration;

use kit::{eventually, ok, push, Act, Logs, Scripted};
use wechat_push::queue::{Enqueued, MemoryQueue, Queue};

/// A memory queue with retries fast enough for a test: 100 ms, then × 2.
fn fast() -> wechat_push::queue::QueueBuilder {
    Queue::builder()
        .workers(2)
        .backoff(Duration::from_millis(100), 2)
        .poll_interval(Duration::from_millis(10))
}

#[tokio::test]
async fn a_handler_failing_three_times_is_called_four_times_with_back_off() {
    let queue = fast().build();
    let handler = Scripted::new(|n| if n <= 3 { Act::Fail } else { Act::Ok });
    let workers = queue.start(handler.service());
    assert_eq!(queue.push(push(1)).await, Enqueued::Queued);
    assert!(eventually(Duration::from_secs(10), || handler.effects().len() == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = handler.calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(handler.effects().len(), 1);
    let attempts: Vec<u32> = calls.iter().map(|c| c.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    // The back-off: 100, 200, 400 ms between the attempts (and not much more).
    for (i, pair) in calls.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let want = Duration::from_millis(100 << i);
        assert!(gap >= want, "gap {i}: {gap:?} < {want:?}");
        assert!(gap < want + Duration::from_secs(2), "gap {i}: {gap:?}");
    }
    // Every call carried the push's id and its verified query.
    assert!(calls.iter().all(|c| c.id == "gh_1|msg|1"));
    assert!(calls.iter().all(|c| c.openid.as_deref() == Some("oUser")));
    let drained = workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(drained.lost, 0);
}

#[tokio::test]
async fn a_push_failing_every_attempt_is_a_dead_letter_and_requeues() {
    let (logs, _, errors) = Logs::new();
    let _guard = tracing::subscriber::set_default(logs);
    let queue = fast().max_attempts(3).build();
    // Three failures, then (after the re-queue) success.
    let handler = Scripted::new(|n| if n <= 3 { Act::Fail } else { Act::Ok });
    let workers = queue.start(handler.service());
    assert_eq!(queue.push(push(7)).await, Enqueued::Queued);
    let mut letters = Vec::new();
    for _ in 0..500 {
        letters = queue.dead_letters(10).await.unwrap();
        if !letters.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.push().id().as_str(), "gh_1|msg|7");
    assert_eq!(letter.attempts(), 3);
    assert_eq!(letter.error(), "boom 3", "the last error");
    assert_eq!(handler.calls().len(), 3);
    assert!(handler.effects().is_empty());
    assert_eq!(errors.load(Ordering::SeqCst), 1, "logged at error once");

    assert!(queue.requeue(letter).await.unwrap());
    assert!(!queue.requeue(letter).await.unwrap(), "re-queued once only");
    assert!(eventually(Duration::from_secs(5), || handler.effects().len() == 1).await);
    assert_eq!(
        handler.calls().last().unwrap().attempt,
        1,
        "attempts afresh"
    );
    assert!(queue.dead_letters(10).await.unwrap().is_empty());
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_panic_and_a_handler_past_the_visibility_timeout_are_failed_attempts() {
    let queue = fast()
        .visibility_timeout(Duration::from_millis(300))
        .build();
    let handler = Scripted::new(|n| match n {
        1 => Act::Panic,
        2 => Act::Hang,
        _ => Act::Ok,
    });
    let workers = queue.start(handler.service());
    queue.push(push(2)).await;
    assert!(eventually(Duration::from_secs(10), || handler.effects().len() == 1).await);
    let calls = handler.calls();
    assert_eq!(calls.len(), 3);
    // The hung attempt ended at the visibility timeout, then the back-off (200 ms).
    let gap = calls[2].at - calls[1].at;
    assert!(gap >= Duration::from_millis(500), "{gap:?}");
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_duplicate_queued_or_held_is_not_queued_twice() {
    let queue = fast().build();
    // Not started yet: queued.
    assert_eq!(queue.push(push(3)).await, Enqueued::Queued);
    assert_eq!(queue.push(push(3)).await, Enqueued::Duplicate);
    let handler = Scripted::new(|_| Act::Slow(Duration::from_millis(500)));
    let workers = queue.start(handler.service());
    assert!(eventually(Duration::from_secs(5), || handler.calls().len() == 1).await);
    // Held by a worker.
    assert_eq!(queue.push(push(3)).await, Enqueued::Duplicate);
    assert!(eventually(Duration::from_secs(5), || handler.effects().len() == 1).await);
    // Handled: WeChat's late retry is still recognised.
    assert_eq!(queue.push(push(3)).await, Enqueued::Duplicate);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handler.calls().len(), 1);
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_full_memory_queue_refuses() {
    let queue = Queue::builder().memory(MemoryQueue::new(2)).build();
    assert_eq!(queue.push(push(1)).await, Enqueued::Queued);
    assert_eq!(queue.push(push(2)).await, Enqueued::Queued);
    assert_eq!(queue.push(push(3)).await, Enqueued::Full);
    assert_eq!(queue.memory().len(), 2);
    // Once handled, there is room again.
    let handler = Scripted::new(ok);
    let workers = queue.start(handler.service());
    assert!(eventually(Duration::from_secs(5), || handler.effects().len() == 2).await);
    assert!(eventually(Duration::from_secs(5), || queue.memory().is_empty()).await);
    assert_eq!(queue.push(push(3)).await, Enqueued::Queued);
    assert!(eventually(Duration::from_secs(5), || handler.effects().len() == 3).await);
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_passive_reply_is_logged_as_unsupported() {
    let (logs, warnings, _) = Logs::new();
    let _guard = tracing::subscriber::set_default(logs);
    let queue = fast().build();
    let handler = Scripted::new(|_| Act::Passive);
    let workers = queue.start(handler.service());
    queue.push(push(4)).await;
    queue.push(push(5)).await;
    assert!(eventually(Duration::from_secs(5), || handler.effects().len() == 2).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        warnings.load(Ordering::SeqCst),
        2,
        "one warning per passive reply"
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn shutdown_finishes_what_is_held_within_the_bound() {
    let queue = fast().workers(3).build();
    let handler = Scripted::new(|_| Act::Slow(Duration::from_millis(300)));
    let workers = queue.start(handler.service());
    for id in 0..3 {
        queue.push(push(id)).await;
    }
    assert!(eventually(Duration::from_secs(5), || handler.calls().len() == 3).await);
    let drained = workers.shutdown(Duration::from_secs(10)).await;
    assert_eq!(drained.finished, 3, "{drained:?}");
    assert_eq!((drained.handed_back, drained.lost), (0, 0));
    assert_eq!(handler.effects().len(), 3);
    assert!(queue.memory().is_empty());
}

/// Pushes queued in memory but not yet taken when the shutdown begins are handled within the
/// bound, not dropped: no other instance can take them. (They used to be logged as lost at
/// once, however much of the bound was left.)
#[tokio::test]
async fn shutdown_handles_what_the_memory_queue_has_ready_within_the_bound() {
    let queue = fast().workers(1).build();
    let handler = Scripted::new(|_| Act::Slow(Duration::from_millis(100)));
    let workers = queue.start(handler.service());
    for id in 0..5 {
        queue.push(push(id)).await;
    }
    let drained = workers.shutdown(Duration::from_secs(10)).await;
    assert_eq!((drained.finished, drained.lost), (5, 0), "{drained:?}");
    assert_eq!(handler.effects().len(), 5);
    assert!(queue.memory().is_empty());
}

#[tokio::test]
async fn shutdown_past_the_bound_counts_and_logs_the_memory_queue_as_lost() {
    let (logs, _, errors) = Logs::new();
    let _guard = tracing::subscriber::set_default(logs);
    let queue = fast().workers(1).build();
    let handler = Scripted::new(|_| Act::Hang);
    let workers = queue.start(handler.service());
    queue.push(push(1)).await;
    assert!(eventually(Duration::from_secs(5), || handler.calls().len() == 1).await);
    // One held (hung), one queued behind it.
    queue.push(push(2)).await;
    let started = std::time::Instant::now();
    let drained = workers.shutdown(Duration::from_millis(300)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(drained.finished, 0);
    assert_eq!(drained.lost, 2, "{drained:?}");
    assert_eq!(errors.load(Ordering::SeqCst), 2, "each lost push logged");
    assert!(queue.memory().is_empty());
    assert!(handler.effects().is_empty());
}

/// The CPU time this thread has used (Linux), in clock ticks of 10 ms.
fn thread_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Dropping `Workers` without a shutdown leaves them running, and idle ones wait, not spin
/// (the workers run on this test's thread: its CPU time is theirs).
#[tokio::test]
async fn dropped_workers_run_on_without_spinning() {
    let queue = fast().build();
    let handler = Scripted::new(ok);
    drop(queue.start(handler.service()));
    queue.push(push(1)).await;
    queue.push(push(2)).await;
    assert!(eventually(Duration::from_secs(5), || handler.effects().len() == 2).await);
    let Some(before) = thread_cpu_ticks() else {
        return;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = thread_cpu_ticks().unwrap() - before;
    assert!(used < 10, "idle workers used {used}0 ms of CPU in 1 s");
}
