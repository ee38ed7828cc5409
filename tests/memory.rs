//! Memory the server takes on a client's word: a body that announces 1 MiB and then trickles
//! in must not make the layer reserve the 1 MiB before the bytes arrive.
//!
//! A test binary of its own, so that nothing else allocates in the process while the server's
//! address space (`VmSize` in `/proc/self/status`) is measured. Everything runs on one thread
//! (a current-thread runtime), so no new thread's stack or malloc arena shows up in between.
#![cfg(target_os = "linux")]

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower::{service_fn, ServiceBuilder};

use common::{echo, s, send, serve_hyper, Case};

const CONNECTIONS: usize = 200;
const ANNOUNCED: usize = 1024 * 1024;
const MIB: u64 = 1024 * 1024;

/// The process's address space in bytes (`VmSize`, which counts mapped pages whether touched
/// or not: what `ulimit -v` and strict overcommit hold a process to).
fn vm_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmSize:"))
        .expect("VmSize in /proc/self/status");
    let kb: u64 = line
        .trim_start_matches("VmSize:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// hyper's body, counting the non-empty data frames it hands on; everything else, the size
/// hint (the announced length) included, is hyper's.
struct Counted {
    inner: Incoming,
    frames: Arc<AtomicUsize>,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if frame.data_ref().is_some_and(|d| !d.is_empty()) {
                self.frames.fetch_add(1, Ordering::SeqCst);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Waits until the layer has been handed `n` data frames in all.
async fn frames_reach(frames: &AtomicUsize, n: usize) {
    for _ in 0..1000 {
        if frames.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the server took {} of {n} body frames in 10 s",
        frames.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn trickled_bodies_do_not_reserve_their_announced_length() {
    let case = Case::new(0);
    // Counts the data frames hyper hands to the layer, so the test knows when the server has
    // read what was sent.
    let frames = Arc::new(AtomicUsize::new(0));
    let counted = frames.clone();
    let svc = ServiceBuilder::new()
        .map_request(move |req: Request<Incoming>| {
            let frames = counted.clone();
            req.map(|inner| Counted { inner, frames })
        })
        .layer(case.layer())
        .service(service_fn(echo));
    let addr = serve_hyper(svc).await;

    // One push first, so whatever the server and the client set up once is in the baseline.
    let push = s(case.format("xml"), "plaintext");
    let path = format!("/wechat?{}", case.plain_query());
    let (status, _, _) = send(addr, Method::POST, &path, push).await;
    assert_eq!(status, StatusCode::OK);
    frames.store(0, Ordering::SeqCst);
    let before = vm_size();

    // Each connection passes the signature check (the body is read only after it), announces
    // 1 MiB and sends one byte ...
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n\
         Content-Length: {ANNOUNCED}\r\n\r\n<"
    );
    let mut streams = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        streams.push(stream);
    }
    frames_reach(&frames, CONNECTIONS).await;
    // ... and, once the server has taken that as a frame, a second one; then waits.
    for stream in &mut streams {
        stream.write_all(b"x").await.unwrap();
        stream.flush().await.unwrap();
    }
    frames_reach(&frames, 2 * CONNECTIONS).await;
    // Let the collectors act on the second frame.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let after = vm_size();
    let grown = after.saturating_sub(before);
    println!(
        "VmSize {} KiB -> {} KiB (+{} KiB) with {CONNECTIONS} connections",
        before / 1024,
        after / 1024,
        grown / 1024
    );
    assert!(
        grown < 20 * MIB,
        "{CONNECTIONS} connections that sent 2 bytes each grew the address space by {} MiB",
        grown / MIB
    );

    // The server still answers a valid push, with the connections still open.
    let (status, _, body) = send(addr, Method::POST, &path, push).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("<Content><![CDATA[hello]]></Content>"),
        "{body}"
    );
    drop(streams);
}
