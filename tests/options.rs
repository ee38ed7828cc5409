//! The layer's options are run-time settings: one layer type, whatever is on, so an option can
//! follow configuration (`if config.dedupe { layer = layer.dedupe(store) }`). Against a real
//! hyper server on loopback.
#![cfg(feature = "tokio")]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use http::{Method, Request, StatusCode};
use tower::service_fn;
use wechat_push::dedupe::MemoryDedupeStore;
use wechat_push::{Message, Reply, WechatLayer};

/// What the example configuration of an application would hold.
struct Settings {
    dedupe: bool,
    ack_deadline: Option<Duration>,
}

/// The layer as an application builds it from its settings: one type, options on or off.
fn layer_from(case: &Case, settings: &Settings) -> WechatLayer {
    let mut layer = case.layer();
    if settings.dedupe {
        layer = layer.dedupe(MemoryDedupeStore::new(100));
    }
    if let Some(deadline) = settings.ack_deadline {
        layer = layer.ack_deadline(deadline);
    }
    layer
}

async fn post(addr: SocketAddr, query: &str, body: &str) -> (StatusCode, String) {
    let (status, _, body) = send(addr, Method::POST, &format!("/wechat?{query}"), body).await;
    (status, body)
}

/// A handler that counts its calls, waits `delay`, and echoes text.
async fn serve(
    case: &Case,
    settings: &Settings,
    delay: Duration,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let handler = service_fn(move |_: Request<Message>| {
        let calls = counted.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(Reply::text("hello"))
        }
    });
    (
        serve_hyper(layer_from(case, settings).layer(handler)).await,
        calls,
    )
}

#[tokio::test]
async fn dedupe_is_on_when_the_configuration_says_so() {
    for dedupe in [true, false] {
        let case = Case::new(0);
        let settings = Settings {
            dedupe,
            ack_deadline: None,
        };
        let (addr, calls) = serve(&case, &settings, Duration::ZERO).await;
        let xml = s(case.format("xml"), "plaintext");
        for _ in 0..3 {
            let (status, body) = post(addr, &case.plain_query(), xml).await;
            assert_eq!(status, StatusCode::OK);
            assert!(
                body.contains("<Content><![CDATA[hello]]></Content>"),
                "{body}"
            );
        }
        let expected = if dedupe { 1 } else { 3 };
        assert_eq!(calls.load(Ordering::SeqCst), expected, "dedupe {dedupe}");
    }
}

#[tokio::test]
async fn the_ack_deadline_is_on_when_the_configuration_says_so() {
    // The handler takes 3 s; the deadline is 300 ms. Margins for a loaded machine: the
    // deadline's answer must come before 2.5 s, the handler's own after 3 s.
    let slow = Duration::from_secs(3);
    for deadline in [Some(Duration::from_millis(300)), None] {
        let case = Case::new(0);
        let settings = Settings {
            dedupe: false,
            ack_deadline: deadline,
        };
        let (addr, calls) = serve(&case, &settings, slow).await;
        let xml = s(case.format("xml"), "plaintext");
        let started = Instant::now();
        let (status, body) = post(addr, &case.plain_query(), xml).await;
        let took = started.elapsed();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        match deadline {
            Some(_) => {
                assert_eq!(body, "success", "answered at the deadline");
                assert!(took < Duration::from_millis(2500), "took {took:?}");
            }
            None => {
                assert!(
                    body.contains("<Content><![CDATA[hello]]></Content>"),
                    "{body}"
                );
                assert!(took >= slow, "took {took:?}");
            }
        }
    }
}

#[tokio::test]
async fn both_options_from_configuration_in_pass_through_mode() {
    // The same run-time choice on a pass-through layer: dedupe on, the handler runs once.
    let case = Case::new(0);
    let settings = Settings {
        dedupe: true,
        ack_deadline: Some(Duration::from_secs(4)),
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let handler = service_fn(move |_: Request<wechat_push::body::Body>| {
        let calls = counted.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(http::Response::new(wechat_push::body::Body::from(
                "success",
            )))
        }
    });
    let layer: WechatLayer<wechat_push::PassThrough> = layer_from(&case, &settings).pass_through();
    let addr = serve_hyper(layer.layer(handler)).await;
    let xml = s(case.format("xml"), "plaintext");
    for _ in 0..3 {
        let (status, body) = post(addr, &case.plain_query(), xml).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
