//! The official-account flow: answer inside the HTTP response.
//!
//! A text push is answered with a passive text reply carrying the same content (encrypted when
//! the push was); anything else with `success`. Served with hyper on `BIND`
//! (default `127.0.0.1:3000`) at `/wechat`; SIGINT or SIGTERM stops accepting, lets in-flight
//! requests finish and exits 0.
//!
//! ```sh
//! WECHAT_TOKEN=Token123abc WECHAT_APPID=wx1234567890abcdef \
//! WECHAT_ENCODING_AES_KEY=jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C \
//!   cargo run --release --example passive_reply
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{service_fn, ServiceExt};
use wechat_push::body::Body;
use wechat_push::message::Kind;
use wechat_push::{EncodingAesKey, Message, Reply, WechatLayer};

/// The handler: echo text, acknowledge everything else.
async fn handle(req: Request<Message>) -> Result<Reply, Infallible> {
    Ok(match req.body().kind() {
        Kind::Text { content, .. } => Reply::text(content.clone()),
        _ => Reply::Success,
    })
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
    let (bind, layer) = match configure() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("passive_reply: {message}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("passive_reply: BIND: cannot listen on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(bind);
    println!("listening on http://{addr}/wechat");

    let wechat = tower::ServiceBuilder::new().layer(layer).service_fn(handle);
    // `/wechat` goes to the WeChat endpoint; every other path is 404.
    let app = service_fn(move |req: Request<Incoming>| {
        let wechat = wechat.clone();
        async move {
            if req.uri().path() == "/wechat" {
                wechat.oneshot(req).await
            } else {
                let mut not_found = Response::new(Body::from("not found"));
                *not_found.status_mut() = StatusCode::NOT_FOUND;
                Ok(not_found)
            }
        }
    });

    let mut server = http1::Builder::new();
    server.keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let conn = server.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    // A client that goes away mid-request is not an error of ours.
                    let _ = conn.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
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
