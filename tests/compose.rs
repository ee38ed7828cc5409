//! The layer composed with tower and axum the way the README shows, each stack built and
//! served on loopback and driven by a real HTTP client: tower-http's `TimeoutLayer` outside
//! it, axum `from_fn` middleware inside it, the documented timeout and ack deadline together,
//! per-app data through `App::extension`, text replies from `&str` and `String`, and what the
//! layer logs (the rate-limited warning for refused handshakes, the span per push).

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request as AxumRequest;
use axum::handler::Handler;
use axum::middleware::{from_fn, Next};
use axum::response::Response as AxumResponse;
use axum::routing::post;
use axum::{Extension, Router};
use common::*;
use http::{HeaderValue, Method, Request, StatusCode};
use tokio::net::TcpListener;
use tower::{service_fn, ServiceBuilder};
use tower_http::timeout::TimeoutLayer;
use wechat_push::apps::{App, AppName, Apps, ChooseApp};
use wechat_push::axum::AxumBodyLayer;
use wechat_push::message::Kind;
use wechat_push::test::Push;
use wechat_push::{Endpoint, Format, Message, PushInfo, Reply, WechatLayer};

/// Serves `router` with `axum::serve` on a fresh loopback port until the test ends.
async fn serve_axum(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Sends `push` to `addr` with a real client: status, headers and body.
async fn post_push(addr: SocketAddr, push: &Push) -> (StatusCode, http::HeaderMap, String) {
    let body = String::from_utf8(push.body().to_vec()).unwrap();
    let path = push.request().uri().to_string();
    send(addr, Method::POST, &path, &body).await
}

fn push() -> Push {
    Push::new("Token123abc").unwrap().text("hello").msg_id(42)
}

fn layer() -> WechatLayer {
    WechatLayer::new("Token123abc").unwrap()
}

async fn echo_text(msg: Message) -> Reply {
    match msg.kind() {
        Kind::Text { content, .. } => Reply::text(format!("echo: {content}")),
        _ => Reply::Success,
    }
}

async fn slow(_: Message) -> Reply {
    tokio::time::sleep(Duration::from_secs(6)).await;
    Reply::text("too late")
}

// ---------------------------------------------------------------------------------------------
// tower-http's TimeoutLayer outside the layer.

#[tokio::test]
async fn timeout_layer_outside_either_mode() {
    let timeout =
        || TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(10));
    let pass_through = ServiceBuilder::new()
        .layer(timeout())
        .layer(layer().pass_through())
        .service(Router::new().route("/wechat", post(echo_text)));
    let typed = ServiceBuilder::new()
        .layer(timeout())
        .layer(layer())
        .service_fn(echo);
    for addr in [serve_hyper(pass_through).await, serve_hyper(typed).await] {
        let (status, _, body) = post_push(addr, &push()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            xml_field(&body, "Content").unwrap().ends_with("hello"),
            "{body}"
        );
    }
}

/// The timeout's own answer is an empty body of the layer's response type (`Default`).
#[tokio::test]
async fn a_timeout_that_fires_outside_a_pass_through_layer_answers_408() {
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(300),
        ))
        .layer(layer().pass_through())
        .service(Router::new().route("/wechat", post(slow)));
    let addr = serve_hyper(svc).await;
    let started = Instant::now();
    let (status, _, body) = post_push(addr, &push()).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body, "");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// axum's from_fn middleware inside the layer.

/// Marks the request on the way in: the handler answers what it saw.
async fn mark(mut req: AxumRequest, next: Next) -> AxumResponse {
    req.headers_mut()
        .insert("x-seen-by", HeaderValue::from_static("from_fn"));
    next.run(req).await
}

async fn saw(headers: http::HeaderMap, msg: Message) -> Reply {
    let seen = headers.get("x-seen-by").and_then(|v| v.to_str().ok());
    Reply::text(format!("{} via {seen:?}", msg.msg_type()))
}

#[tokio::test]
async fn from_fn_inside_the_layer() {
    // Directly inside, through AxumBodyLayer (from_fn's service takes axum's body only).
    let direct = ServiceBuilder::new()
        .layer(layer().pass_through())
        .layer(AxumBodyLayer)
        .layer(from_fn(mark))
        .service(Router::new().route("/wechat", post(saw)));
    // On the handler: axum converts the body itself.
    let on_route = Router::new().route(
        "/wechat",
        post(saw.layer(from_fn(mark))).layer(layer().pass_through()),
    );
    for addr in [serve_hyper(direct).await, serve_axum(on_route).await] {
        let (status, _, body) = post_push(addr, &push()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            xml_field(&body, "Content"),
            Some("text via Some(\"from_fn\")"),
            "{body}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The README's stack: a 4 s ack deadline inside a 10 s timeout.

#[tokio::test]
async fn the_documented_stack_answers_success_to_a_slow_handler() {
    let wechat = layer().ack_deadline(Duration::from_secs(4)).pass_through();
    let app = Router::new()
        .route("/wechat", post(slow).layer(wechat))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ));
    let addr = serve_axum(app).await;
    let started = Instant::now();
    let (status, _, body) = post_push(addr, &push()).await;
    let took = started.elapsed();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
    assert!(
        took >= Duration::from_millis(3_900),
        "answered before the deadline: {took:?}"
    );
    assert!(
        took < Duration::from_millis(5_900),
        "not answered at the deadline: {took:?}"
    );
}

/// The advice this replaces: an outer timeout that is not longer than the deadline answers
/// first, and WeChat gets an error instead of `success`.
#[tokio::test]
async fn a_timeout_shorter_than_the_deadline_answers_408_instead() {
    let wechat = layer().ack_deadline(Duration::from_secs(3)).pass_through();
    let app = Router::new()
        .route("/wechat", post(slow).layer(wechat))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(1),
        ));
    let addr = serve_axum(app).await;
    let (status, _, _) = post_push(addr, &push()).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
}

// ---------------------------------------------------------------------------------------------
// Per-app data: App::extension.

#[derive(Clone, Debug, PartialEq)]
struct Greeting(&'static str);

#[derive(Clone, Debug, PartialEq)]
struct Limit(u32);

fn two_apps() -> Apps {
    [
        App::new("shop", Endpoint::new("ShopToken1").unwrap())
            .unwrap()
            .extension(Greeting("welcome to the shop"))
            .extension(Limit(5)),
        App::new("club", Endpoint::new("ClubToken2").unwrap())
            .unwrap()
            .extension(Greeting("hello, member")),
    ]
    .into_iter()
    .collect()
}

async fn greet(
    Extension(greeting): Extension<Greeting>,
    limit: Option<Extension<Limit>>,
    app: AppName,
) -> Reply {
    let limit = limit.map(|Extension(Limit(n))| n);
    Reply::text(format!("{app}: {} ({limit:?})", greeting.0))
}

async fn greet_typed(req: Request<Message>) -> Result<Reply, Infallible> {
    let greeting = req.extensions().get::<Greeting>().unwrap();
    let limit = req.extensions().get::<Limit>().map(|l| l.0);
    let app = req.extensions().get::<AppName>().unwrap();
    Ok(Reply::text(format!("{app}: {} ({limit:?})", greeting.0)))
}

#[tokio::test]
async fn each_app_s_extensions_reach_its_handler_in_both_modes() {
    let apps = two_apps();
    let pass_through = Router::new().route(
        "/wechat/{app}",
        post(greet)
            .layer(WechatLayer::apps(apps.clone(), ChooseApp::last_segment()).pass_through()),
    );
    let typed = ServiceBuilder::new()
        .layer(WechatLayer::apps(apps, ChooseApp::last_segment()))
        .service_fn(greet_typed);
    for addr in [serve_axum(pass_through).await, serve_hyper(typed).await] {
        for (path, token, expected) in [
            (
                "/wechat/shop",
                "ShopToken1",
                "shop: welcome to the shop (Some(5))",
            ),
            ("/wechat/club", "ClubToken2", "club: hello, member (None)"),
        ] {
            let push = Push::new(token).unwrap().path(path).text("hi");
            let (status, _, body) = post_push(addr, &push).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_eq!(xml_field(&body, "Content"), Some(expected), "{body}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Text replies from strings.

#[tokio::test]
async fn a_typed_handler_may_answer_a_str_or_a_string() {
    let str_reply = ServiceBuilder::new()
        .layer(layer())
        .service_fn(|_: Request<Message>| async { Ok::<_, Infallible>("from a str") });
    let string_reply = ServiceBuilder::new().layer(layer()).service(service_fn(
        |req: Request<Message>| async move {
            Ok::<_, Infallible>(format!("{} from a String", req.body().msg_type()))
        },
    ));
    let push = push().format(Format::Json);
    let (_, _, body) = post_push(serve_hyper(str_reply).await, &push).await;
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["Content"], "from a str", "{body}");
    let (_, _, body) = post_push(serve_hyper(string_reply).await, &push).await;
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["Content"], "text from a String", "{body}");
}

// ---------------------------------------------------------------------------------------------
// Logging.

/// A span's name and fields.
type SpanRecord = (String, HashMap<String, String>);

/// A tracing subscriber keeping this crate's warnings and its spans' fields.
#[derive(Clone, Default)]
struct Recorder {
    warnings: Arc<Mutex<Vec<String>>>,
    spans: Arc<Mutex<Vec<SpanRecord>>>,
    ids: Arc<AtomicUsize>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("wechat_push")
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push((attrs.metadata().name().to_owned(), fields));
        tracing::span::Id::from_u64(spans.len() as u64)
    }
    fn record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        let index = usize::try_from(id.into_u64()).unwrap() - 1;
        values.record(&mut Fields(&mut spans[index].1));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut fields = HashMap::new();
            event.record(&mut Fields(&mut fields));
            self.warnings.lock().unwrap().push(format!("{fields:?}"));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {
        self.ids.fetch_add(1, Ordering::SeqCst);
    }
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The only test of this file that sends refused handshakes: the limit is per process.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_handshake_is_a_warning_at_most_once_a_minute() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let addr = serve_hyper(ServiceBuilder::new().layer(layer()).service_fn(echo)).await;

    // The console's URL check with another Token: refused, with the reason.
    let wrong = Push::new("WrongToken9").unwrap().handshake("echo-me");
    for _ in 0..20 {
        let (status, _, _) = send(addr, Method::GET, &wrong.uri().to_string(), "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let warnings = recorder.warnings.lock().unwrap().clone();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("signature"), "{warnings:?}");
    assert!(warnings[0].contains("\"left_out\": \"0\""), "{warnings:?}");

    // A refused POST is not a handshake: no warning.
    let forged = Push::new("WrongToken9").unwrap();
    let (status, _, _) = post_push(addr, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The right Token's handshake is answered.
    let right = Push::new("Token123abc").unwrap().handshake("echo-me");
    let (status, _, body) = send(addr, Method::GET, &right.uri().to_string(), "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "echo-me"));
    assert_eq!(recorder.warnings.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn each_push_has_a_span_with_its_app_format_encryption_type_and_id() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let seen_in_span = Arc::new(AtomicUsize::new(0));
    let (ids, seen) = (recorder.ids.clone(), seen_in_span.clone());
    let svc = ServiceBuilder::new()
        .layer(WechatLayer::apps(two_apps(), ChooseApp::last_segment()))
        .service(service_fn(move |req: Request<Message>| {
            let (ids, seen) = (ids.clone(), seen.clone());
            async move {
                // Called inside the push's span.
                seen.store(ids.load(Ordering::SeqCst), Ordering::SeqCst);
                let _info = req.extensions().get::<PushInfo>().unwrap();
                Ok::<_, Infallible>(Reply::Success)
            }
        }));
    let addr = serve_hyper(svc).await;
    let push = Push::new("ClubToken2")
        .unwrap()
        .path("/wechat/club")
        .format(Format::Json)
        .text("hi")
        .msg_id(7001);
    let (status, _, body) = post_push(addr, &push).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
    let spans = recorder.spans.lock().unwrap().clone();
    let pushes: Vec<_> = spans
        .iter()
        .filter(|(name, _)| name == "wechat_push")
        .collect();
    assert_eq!(pushes.len(), 1, "{spans:?}");
    let fields = &pushes[0].1;
    assert_eq!(fields["app"], "club");
    assert_eq!(fields["format"], "Json");
    assert_eq!(fields["encrypted"], "false");
    assert_eq!(fields["msg_type"], "text");
    assert_eq!(fields["id"], "7001");
    assert!(
        seen_in_span.load(Ordering::SeqCst) > 0,
        "the handler ran outside the span"
    );
}
