//! Queue mode on a real server on loopback: a verified push is queued, then answered
//! `success`; the handler runs in the workers (typed and pass-through), never on the request's
//! path; duplicates are answered without queuing twice; a full queue answers 503.
#![cfg(all(feature = "tokio", feature = "tracing"))]

mod common;
#[path = "common/queue_kit.rs"]
mod kit;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{send, serve_hyper};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceExt};
use wechat_push::message::Kind;
use wechat_push::queue::{Delivery, MemoryQueue, Queue};
use wechat_push::test::Push;
use wechat_push::{EncodingAesKey, Message, PushInfo, Reply, WechatLayer};

const TOKEN: &str = "Token123abc";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const APPID: &str = "wx1234567890abcdef";

/// What a handler saw on one call: the text, the attempt, the push id.
type Seen = Arc<Mutex<Vec<(String, u32, String)>>>;

/// A typed handler recording each call; its first `fail` calls answer `Err`.
fn typed(
    seen: Seen,
    fail: usize,
) -> impl tower::Service<
    Request<Message>,
    Response = Reply,
    Error = std::io::Error,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    service_fn(move |req: Request<Message>| {
        let seen = seen.clone();
        async move {
            let text = match req.body().kind() {
                Kind::Text { content, .. } => content.clone(),
                other => format!("{other:?}"),
            };
            let delivery = req.extensions().get::<Delivery>().cloned();
            assert!(req.extensions().get::<PushInfo>().is_some());
            let (attempt, id) =
                delivery.map_or((0, String::new()), |d| (d.attempt, d.id.to_string()));
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push((text, attempt, id));
                seen.len()
            };
            if n <= fail {
                return Err(std::io::Error::other("not yet"));
            }
            Ok(Reply::Success)
        }
    })
}

/// The layer in queue mode never calls the handler on the request's path, so never answers
/// its error: served as infallible.
fn never_fails<S, R>(
    service: S,
) -> impl tower::Service<
    Request<hyper::body::Incoming>,
    Response = R,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static
where
    S: tower::Service<Request<hyper::body::Incoming>, Response = R> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Debug,
{
    service_fn(move |req| {
        let service = service.clone();
        async move {
            let answer = service.oneshot(req).await;
            Ok(answer.expect("queue mode: the handler is not called here"))
        }
    })
}

fn fast() -> wechat_push::queue::QueueBuilder {
    Queue::builder()
        .workers(2)
        .backoff(Duration::from_millis(100), 2)
        .poll_interval(Duration::from_millis(10))
}

async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < until {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

async fn post(addr: std::net::SocketAddr, push: &Push) -> (StatusCode, String) {
    let body = String::from_utf8(push.body().to_vec()).unwrap();
    let (status, _, text) = send(
        addr,
        Method::POST,
        &format!("/wechat?{}", push.query()),
        &body,
    )
    .await;
    (status, text)
}

#[tokio::test]
async fn a_typed_push_is_answered_once_queued_and_handled_by_a_worker() {
    let seen = Seen::default();
    let queue = fast().build();
    let handler = typed(seen.clone(), 1);
    let layer = WechatLayer::new(TOKEN).unwrap().queue(queue.clone());
    let addr = serve_hyper(never_fails(layer.layer(handler.clone()))).await;

    // No worker yet: the push is answered `success`, the handler not called.
    let push = Push::new(TOKEN).unwrap().text("queued hello").msg_id(41);
    assert_eq!(post(addr, &push).await, (StatusCode::OK, "success".into()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "not called on the request's path"
    );
    assert_eq!(queue.memory().len(), 1);
    // WeChat's retry of the queued push: answered, not queued twice.
    assert_eq!(post(addr, &push).await, (StatusCode::OK, "success".into()));
    assert_eq!(queue.memory().len(), 1);

    // The workers call the same handler: the first attempt fails, the second finishes it.
    let workers = queue.start(handler);
    assert!(eventually(Duration::from_secs(10), || seen.lock().unwrap().len() == 2).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, "queued hello");
    assert_eq!((seen[0].1, seen[1].1), (1, 2));
    assert_eq!(seen[0].2, "gh_test|msg|41");
    assert_eq!(seen[0].2, seen[1].2);
    // Handled: a delivery again is still a duplicate.
    assert_eq!(post(addr, &push).await, (StatusCode::OK, "success".into()));
    let drained = workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(drained.lost, 0);
}

#[tokio::test]
async fn a_full_queue_answers_503_and_a_duplicate_still_success() {
    let queue = Queue::builder().memory(MemoryQueue::new(1)).build();
    let layer = WechatLayer::new(TOKEN).unwrap().queue(queue.clone());
    let addr = serve_hyper(never_fails(layer.layer(typed(Seen::default(), 0)))).await;
    let first = Push::new(TOKEN).unwrap().text("one").msg_id(1);
    let second = Push::new(TOKEN).unwrap().text("two").msg_id(2);
    assert_eq!(post(addr, &first).await, (StatusCode::OK, "success".into()));
    let (status, reason) = post(addr, &second).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reason.contains("queue full"), "{reason}");
    assert_eq!(post(addr, &first).await, (StatusCode::OK, "success".into()));
    assert_eq!(queue.memory().len(), 1);
}

#[tokio::test]
async fn an_encrypted_push_is_acknowledged_and_its_worker_gets_the_clear_message() {
    let seen = Seen::default();
    let queue = fast().build();
    let handler = typed(seen.clone(), 0);
    let key = EncodingAesKey::new(KEY).unwrap();
    let layer = WechatLayer::new(TOKEN)
        .unwrap()
        .encryption(key.clone(), APPID)
        .unwrap()
        .queue(queue.clone());
    let addr = serve_hyper(never_fails(layer.layer(handler.clone()))).await;
    let workers = queue.start(handler);
    let push = Push::new(TOKEN)
        .unwrap()
        .encrypted(key, APPID)
        .unwrap()
        .text("sealed hi")
        .msg_id(7);
    assert_eq!(post(addr, &push).await, (StatusCode::OK, "success".into()));
    assert!(eventually(Duration::from_secs(10), || seen.lock().unwrap().len() == 1).await);
    assert_eq!(seen.lock().unwrap()[0].0, "sealed hi");
    workers.shutdown(Duration::from_secs(5)).await;
}

/// What a pass-through handler saw: method, path, content type, body, message text, attempt.
type HttpSeen = Arc<Mutex<Vec<(Method, String, String, String, String, u32)>>>;

#[tokio::test]
async fn a_pass_through_handler_gets_the_rebuilt_request_and_a_non_2xx_retries() {
    let seen = HttpSeen::default();
    let record = seen.clone();
    let handler = service_fn(move |req: Request<wechat_push::body::Body>| {
        let seen = record.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let text = match parts.extensions.get::<Message>().map(Message::kind) {
                Some(Kind::Text { content, .. }) => content.clone(),
                other => format!("{other:?}"),
            };
            assert!(parts.extensions.get::<PushInfo>().is_some());
            let attempt = parts.extensions.get::<Delivery>().map_or(0, |d| d.attempt);
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push((
                    parts.method.clone(),
                    parts.uri.path().to_owned(),
                    content_type,
                    String::from_utf8_lossy(&body).into_owned(),
                    text,
                    attempt,
                ));
                seen.len()
            };
            // The first attempt answers 500: a failed attempt, retried.
            let status = if n == 1 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::from_static(b"")))
                    .unwrap(),
            )
        }
    });
    let queue = fast().build();
    let layer = WechatLayer::new(TOKEN)
        .unwrap()
        .queue(queue.clone())
        .pass_through();
    let addr = serve_hyper(never_fails(layer.layer(handler.clone()))).await;
    let push = Push::new(TOKEN).unwrap().text("through").msg_id(9);
    assert_eq!(post(addr, &push).await, (StatusCode::OK, "success".into()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "not called on the request's path"
    );

    let workers = queue.start_pass_through(handler);
    assert!(eventually(Duration::from_secs(10), || seen.lock().unwrap().len() == 2).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "a 2xx finishes the push: {seen:?}");
    let (method, path, content_type, body, text, attempt) = &seen[0];
    assert_eq!(method, Method::POST);
    assert_eq!(path, "/wechat");
    assert_eq!(content_type, "application/xml", "as at the edge");
    assert_eq!(body.as_bytes(), &push.message_document()[..]);
    assert_eq!(text, "through");
    assert_eq!((*attempt, seen[1].5), (1, 2));
    let drained = workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(drained.lost, 0);
}

#[tokio::test]
async fn a_pass_through_handlers_own_reply_document_is_logged_as_unsupported() {
    let (logs, warnings, _) = kit::Logs::new();
    let _guard = tracing::subscriber::set_default(logs);
    let calls = Arc::new(Mutex::new(0));
    let count = calls.clone();
    // A plaintext push, a handler writing its own passive reply: it cannot be sent from a
    // queue (the push was answered already), and says so.
    let handler = service_fn(move |_req: Request<wechat_push::body::Body>| {
        *count.lock().unwrap() += 1;
        async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                b"<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>",
            ))))
        }
    });
    let queue = fast().build();
    let layer = WechatLayer::new(TOKEN)
        .unwrap()
        .queue(queue.clone())
        .pass_through();
    let addr = serve_hyper(never_fails(layer.layer(handler.clone()))).await;
    let workers = queue.start_pass_through(handler);
    let push = Push::new(TOKEN).unwrap().text("reply?").msg_id(11);
    assert_eq!(post(addr, &push).await, (StatusCode::OK, "success".into()));
    assert!(eventually(Duration::from_secs(10), || *calls.lock().unwrap() == 1).await);
    assert!(
        eventually(Duration::from_secs(5), || warnings
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1)
        .await,
        "one warning: the passive reply is unsupported"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*calls.lock().unwrap(), 1, "handled: not retried");
    workers.shutdown(Duration::from_secs(5)).await;
}
