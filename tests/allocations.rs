//! Heap allocations of one request through the layer, counted by dhat's allocator (a count,
//! not a timing: speed is `benches/core.rs`'s business).
//!
//! Each case sends one request through `WechatLayer` with `oneshot`, polled by hand with a
//! no-op waker (no runtime: the body is one ready frame and the handler a ready
//! `service_fn`). The layered service and the request (URI, headers, body bytes) are built
//! before counting starts. What is counted is everything from `oneshot` to the finished
//! `http::Response`: parsing and checking the query, collecting the body, decoding the push
//! (in safe mode also checking `msg_signature` and decrypting), the `Request<Message>` with
//! its `PushInfo` extension, the handler's reply (the echoing handler allocates the reply's
//! `String`), the encoded and, for an encrypted push, sealed answer, and the response. Reading
//! and checking the answer comes after. Each case runs once before it is counted, so nothing a
//! thread sets up on first use (sealing reads its randomness ahead per thread) is counted.
//!
//! Every case has a ceiling: the count measured when this test was written ([`TODAY`]), plus
//! 2. Up to two allocations more on the request path are tolerated, three fail; fewer is
//! welcome (then lower [`TODAY`]). The counts are printed:
//! `cargo test --test allocations -- --nocapture`.
//!
//! One `#[test]` only: dhat counts the allocations of every thread, and allows one profiler
//! per process.

mod common;

use std::convert::Infallible;
use std::future::{ready, Future};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use common::{echo, request, s, Case};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Service, ServiceExt};
use wechat_push::apps::{App, Apps, ChooseApp};
use wechat_push::body::Body;
use wechat_push::clock::FixedClock;
use wechat_push::{Endpoint, Message, Reply, WechatLayer};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// The counts measured when this test was written (on commit bfcd629; the multi-app cases
/// later); the ceilings are these plus [`SLACK`].
const TODAY: [(&str, u64); 8] = [
    ("plaintext xml push, success", 11),
    ("safe-mode xml push, success", 13),
    ("safe-mode xml push, sealed text reply", 18),
    ("plaintext json push, success", 11),
    ("safe-mode json push, success", 13),
    ("safe-mode json push, sealed text reply", 17),
    // The same push through a 1,000-app layer (on 85a6efa): one more, the handler's request
    // extensions growing for the `AppName`.
    ("multi-app plaintext xml push, success", 12),
    ("multi-app plaintext json push, success", 12),
];

/// How many allocations above [`TODAY`] a case may make before the test fails.
const SLACK: u64 = 2;

/// Polls `future` once; everything on these paths is ready, so it must finish.
fn poll_once<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("pending with a ready body and a ready handler"),
    }
}

/// Sends `req` through a clone of `svc`: the allocations counted, and the response.
fn count<S>(svc: &S, req: Request<Full<Bytes>>) -> (u64, Response<Body>)
where
    S: Service<Request<Full<Bytes>>, Response = Response<Body>, Error = Infallible> + Clone,
{
    let svc = svc.clone();
    let before = dhat::HeapStats::get().total_blocks;
    let response = poll_once(svc.oneshot(req)).unwrap();
    let after = dhat::HeapStats::get().total_blocks;
    (after - before, response)
}

/// The response's status, `Content-Type` and body text.
fn read(response: Response<Body>) -> (StatusCode, String, String) {
    let (parts, body) = response.into_parts();
    let content_type = parts.headers[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let body = poll_once(body.collect()).unwrap().to_bytes();
    (
        parts.status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[test]
fn one_request_through_the_layer_allocates_no_more_than_today() {
    let case = Case::new(0);
    let layer = case.layer();
    let acknowledging = layer.layer(service_fn(|_: Request<Message>| {
        ready(Ok::<_, Infallible>(Reply::Success))
    }));
    let echoing = layer.layer(service_fn(echo));
    let plain = |format: &str| case.plain_push(format);
    let safe = |format: &str| {
        let v = case.format(format);
        request(
            Method::POST,
            s(v, "query"),
            s(v, "request_body_safe").to_owned(),
        )
    };
    // The text reply the echoing handler gives, as the user sees it once opened.
    let reply = |format: &str| {
        match format {
        "json" => format!(
            r#"{{"ToUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","FromUserName":"gh_97417a04a28d","CreateTime":{},"MsgType":"text","Content":"hello"}}"#,
            case.timestamp()
        ),
        _ => format!(
            "<xml><ToUserName><![CDATA[o9AgO5Kd5ggOC-bXrbNODIiE3bGY]]></ToUserName><FromUserName><![CDATA[gh_97417a04a28d]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content></xml>",
            case.timestamp()
        ),
    }
    };

    // A multi-app layer: 1,000 apps with this case's keys under other names, one of them
    // chosen by the path.
    let apps: Apps = (0..1000)
        .map(|i| {
            let now = case.timestamp();
            let endpoint = Endpoint::new(case.token())
                .unwrap()
                .encryption(case.key(), case.appid())
                .unwrap()
                .clock(FixedClock::at_unix(now));
            App::new(&format!("app{i}"), endpoint).unwrap()
        })
        .collect();
    let target = "app333";
    let multi = WechatLayer::apps(apps, ChooseApp::last_segment()).layer(service_fn(
        |_: Request<Message>| ready(Ok::<_, Infallible>(Reply::Success)),
    ));

    let _profiler = dhat::Profiler::builder().testing().build();
    let mut over = Vec::new();
    for format in ["xml", "json"] {
        // (case, allocations)
        let mut counted: Vec<(String, u64)> = Vec::new();

        // A plaintext push, answered `success`.
        count(&acknowledging, plain(format));
        let (n, response) = count(&acknowledging, plain(format));
        let (status, _, body) = read(response);
        assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
        counted.push((format!("plaintext {format} push, success"), n));

        // A safe-mode push, answered `success` (in clear, as always).
        count(&acknowledging, safe(format));
        let (n, response) = count(&acknowledging, safe(format));
        let (status, _, body) = read(response);
        assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
        counted.push((format!("safe-mode {format} push, success"), n));

        // A safe-mode text push, answered with a text reply, sealed.
        count(&echoing, safe(format));
        let (n, response) = count(&echoing, safe(format));
        let (status, content_type, body) = read(response);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, format!("application/{format}"));
        assert_eq!(case.open_sealed_reply(format, &body), reply(format));
        counted.push((format!("safe-mode {format} push, sealed text reply"), n));

        // The plaintext push through a multi-app layer of 1,000 apps, at `/wechat/{app}`.
        let again = || {
            let mut req = plain(format);
            let uri = format!("/wechat/{target}?{}", req.uri().query().unwrap());
            *req.uri_mut() = uri.parse().unwrap();
            req
        };
        count(&multi, again());
        let (n, response) = count(&multi, again());
        let (status, _, body) = read(response);
        assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
        counted.push((format!("multi-app plaintext {format} push, success"), n));

        for (name, n) in counted {
            let today = TODAY.iter().find(|(case, _)| *case == name).unwrap().1;
            let ceiling = today + SLACK;
            println!("{name}: {n} allocations (today {today}, ceiling {ceiling})");
            assert!(n >= 1, "{name}: the allocator must be counting");
            if n > ceiling {
                over.push(format!("{name}: {n} allocations, ceiling {ceiling}"));
            }
        }
    }
    assert!(over.is_empty(), "{over:#?}");
}
