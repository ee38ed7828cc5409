//! How fast the queue's workers drain queued pushes with a no-op handler (the target: 5,000
//! pushes/s for one worker): 2,000 pushes queued first, then timed from starting the workers
//! to the last push handled (taking, rebuilding the `Request<Message>`, the handler in its own
//! task, recording the push done). One worker and four, in memory and, when `redis-server` is
//! installed, on a Redis the bench starts on a free loopback port (each iteration under a
//! fresh key prefix).
//!
//! `cargo bench --bench queue`; a quick check that it runs: `cargo test --bench queue`.

#[path = "../tests/common/queue_kit.rs"]
mod kit;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::Request;
use tower::service_fn;
use wechat_push::queue::{MemoryQueue, Queue, QueueBuilder, QueuedPush};
use wechat_push::{Message, Reply};

const PUSHES: usize = 2_000;

/// Queues the pushes, then times the workers draining them.
async fn drain(builder: QueueBuilder, pushes: &[QueuedPush]) -> Duration {
    let queue = builder.build();
    for push in pushes {
        queue.push(push.clone()).await;
    }
    let done = Arc::new(AtomicUsize::new(0));
    let counted = done.clone();
    let handler = service_fn(move |_: Request<Message>| {
        counted.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok::<_, Infallible>(Reply::Success))
    });
    let started = Instant::now();
    let workers = queue.start(handler);
    while done.load(Ordering::Relaxed) < pushes.len() {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let took = started.elapsed();
    workers.shutdown(Duration::from_secs(5)).await;
    took
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pushes: Vec<QueuedPush> = (0..PUSHES as u64).map(kit::push).collect();
    let mut group = c.benchmark_group("queue drain");
    group.throughput(Throughput::Elements(PUSHES as u64));
    group.sample_size(10);
    for workers in [1, 4] {
        group.bench_function(format!("memory, {workers} worker(s)"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let builder = Queue::builder()
                            .memory(MemoryQueue::new(PUSHES))
                            .workers(workers);
                        total += drain(builder, &pushes).await;
                    }
                    total
                })
            })
        });
    }
    #[cfg(feature = "redis")]
    if let Some(server) = redis_server::Server::start() {
        let mut prefix = 0u64;
        for workers in [1, 4] {
            group.bench_function(format!("redis, {workers} worker(s)"), |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            prefix += 1;
                            let stores = wechat_push::redis::RedisStores::builder(server.url())
                                .prefix(format!("bench{prefix}:"))
                                .build()
                                .unwrap();
                            let builder = Queue::builder()
                                .backend(stores.queue())
                                .workers(workers)
                                .batch(64)
                                .poll_interval(Duration::from_millis(1));
                            total += drain(builder, &pushes).await;
                        }
                        total
                    })
                })
            });
        }
    }
    group.finish();
}

#[cfg(feature = "redis")]
mod redis_server {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// A `redis-server` on a free loopback port, killed when dropped.
    pub(super) struct Server {
        port: u16,
        child: Child,
    }

    impl Server {
        /// One, or `None` (said on stderr) when `redis-server` is not installed.
        pub(super) fn start() -> Option<Self> {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let Ok(child) = child else {
                eprintln!("redis-server is not installed: the Redis drain benches are skipped");
                return None;
            };
            let server = Server { port, child };
            let deadline = Instant::now() + Duration::from_secs(10);
            while !server.pong() {
                if Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Some(server)
        }

        pub(super) fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/0", self.port)
        }

        fn pong(&self) -> bool {
            let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
                return false;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let mut answer = [0; 7];
            stream.write_all(b"PING\r\n").is_ok()
                && stream.read_exact(&mut answer).is_ok()
                && &answer == b"+PONG\r\n"
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

criterion_group!(queue, benches);
criterion_main!(queue);
