//! The layer composed with tower and axum the way the README shows, each stack built and
//! served on loopback and driven by a real HTTP client: tower-http's `TimeoutLayer` outside
//! it, axum `from_fn` middleware inside it, the documented timeout and ack deadline together,
//! per-app data through `App::extension`, and text replies from `&str` and `String`.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
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
use wechat_push::{Endpoint, Format, Message, Reply, WechatLayer};

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
