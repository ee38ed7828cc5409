//! `passive_reply` as an ordinary axum app: the WeChat layer in pass-through mode in front of
//! an axum handler that takes extractors (`State`, `PushInfo`, `Message`) and returns a `Reply`.
//!
//! A text push is answered with a passive text reply carrying the same content (in the push's
//! format, encrypted when the push was); anything else with `success`. `GET /healthz` answers
//! `ok` without a signature; every other path is 404. Served on `BIND` (default
//! `127.0.0.1:3000`) at `/wechat`; SIGINT or SIGTERM stops accepting, lets in-flight requests
//! finish, prints how many pushes were handled and exits 0.
//!
//! ```sh
//! WECHAT_TOKEN=Token123abc WECHAT_APPID=wx1234567890abcdef \
//! WECHAT_ENCODING_AES_KEY=jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C \
//!   cargo run --release --example axum_app
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use wechat_push::message::Kind;
use wechat_push::{EncodingAesKey, Message, PushInfo, Reply, WechatLayer};

/// The app's state: how many pushes reached the handler, and how many of them were encrypted.
#[derive(Debug, Default)]
struct Stats {
    pushes: AtomicU64,
    encrypted: AtomicU64,
}

/// The handler: echo text, acknowledge everything else. Only verified pushes get here; the
/// layer answers handshakes and rejections itself, and writes (and seals) the `Reply`.
async fn on_push(State(stats): State<Arc<Stats>>, info: PushInfo, msg: Message) -> Reply {
    stats.pushes.fetch_add(1, Ordering::Relaxed);
    if info.is_encrypted() {
        stats.encrypted.fetch_add(1, Ordering::Relaxed);
    }
    match msg.kind() {
        Kind::Text { content, .. } => Reply::text(content.clone()),
        _ => Reply::Success,
    }
}

/// Reads the configuration from the environment; the error names the variable.
fn configure() -> Result<(SocketAddr, WechatLayer), String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let bind = var("BIND").unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let bind: SocketAddr = bind
        .parse()
        .map_err(|e| format!("BIND: {e} (expected HOST:PORT, got {bind:?})"))?;
    let token = var("WECHAT_TOKEN").ok_or("WECHAT_TOKEN: required")?;
    let app_id = var("WECHAT_APPID").ok_or("WECHAT_APPID: required")?;
    let mut layer = WechatLayer::new(token).map_err(|e| format!("WECHAT_TOKEN: {e}"))?;
    if let Some(key) = var("WECHAT_ENCODING_AES_KEY") {
        let key = EncodingAesKey::new(&key).map_err(|e| format!("WECHAT_ENCODING_AES_KEY: {e}"))?;
        layer = layer
            .encryption(key, app_id)
            .map_err(|e| format!("WECHAT_APPID: {e}"))?;
    }
    Ok((bind, layer))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let (bind, wechat) = match configure() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("axum_app: {message}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("axum_app: BIND: cannot listen on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(bind);
    println!("listening on http://{addr}/wechat");

    let stats = Arc::new(Stats::default());
    let app = Router::new()
        // `layer`, not `route_layer`: it also wraps the route's method fallback, so the GET
        // handshake (and any other method, answered 405) reaches the WeChat layer.
        .route("/wechat", post(on_push).layer(wechat.pass_through()))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .with_state(stats.clone());

    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        eprintln!("axum_app: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "axum_app: pushes handled: {}, encrypted: {}",
        stats.pushes.load(Ordering::Relaxed),
        stats.encrypted.load(Ordering::Relaxed)
    );
    ExitCode::SUCCESS
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
