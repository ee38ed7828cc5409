//! The mini-program flow: acknowledge at once, answer through the customer-service API.
//!
//! Every push is answered `success` straight away; the answer to the user goes out in a
//! spawned task through `POST {WECHAT_API_BASE}/cgi-bin/message/custom/send`:
//!
//! * text → the same text back;
//! * image → the same image back (its `MediaId`);
//! * mini-program card → a text naming the card's title;
//! * event `user_enter_tempsession` → a welcome text;
//! * anything else → nothing.
//!
//! The access token is the client's business: `cgi-bin/stable_token`, cached, one fetch for
//! all concurrent pushes, fetched again once when WeChat rejects it. A send that fails is
//! logged to stderr; the push has already been answered `success` (WeChat would otherwise
//! deliver it again).
//!
//! It runs the way the README recommends for production: dedupe on (an in-memory store, or
//! Redis with `REDIS_URL`), so
//! WeChat's retries of a push cause one send in all, and an acknowledgement deadline of 4 s.
//!
//! Served with axum on `BIND` (default `127.0.0.1:3000`) at `/wechat`; SIGINT or SIGTERM stops
//! accepting, lets in-flight requests and pending sends finish (sends for at most 10 s) and
//! exits 0.
//!
//! ```sh
//! WECHAT_TOKEN=Token123abc WECHAT_APPID=wx1234567890abcdef WECHAT_APP_SECRET=… \
//!   cargo run --release --features client --example customer_service
//! ```
//!
//! Optional: `WECHAT_ENCODING_AES_KEY` (43 characters) to accept safe-mode pushes too, and
//! `WECHAT_API_BASE` (default `https://api.weixin.qq.com`) to talk to another API host.
//!
//! Several instances: with `REDIS_URL` set (`redis://HOST:PORT[/DB]`; built with the
//! `redis` feature too), the access token and the dedupe records live in that Redis, shared by
//! every instance started with the same URL:
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/0 WECHAT_TOKEN=… WECHAT_APPID=… WECHAT_APP_SECRET=… \
//!   cargo run --release --features client,redis --example customer_service
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use http::Request;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::service_fn;
use wechat_push::client::{Client, ClientBuilder, CustomMessage, DEFAULT_BASE_URL};
use wechat_push::dedupe::{DedupeConfig, MemoryDedupeStore};
use wechat_push::message::{Event, Kind};
use wechat_push::{ConfigError, EncodingAesKey, Message, Reply, WechatLayer};

/// Answer WeChat within this, whatever the handler does (WeChat gives up at 5 s).
pub(crate) const ACK_DEADLINE: Duration = Duration::from_secs(4);

/// The text sent when a user opens the customer-service conversation.
pub(crate) const WELCOME: &str = "你好,欢迎来到这里";

/// How long shutdown waits for sends still in flight.
const SEND_DRAIN: Duration = Duration::from_secs(10);

/// The example's configuration, read from the environment.
#[derive(Debug)]
pub(crate) struct Config {
    /// `BIND`.
    pub(crate) bind: SocketAddr,
    /// The WeChat layer (`WECHAT_TOKEN`, `WECHAT_APPID`, `WECHAT_ENCODING_AES_KEY`).
    pub(crate) layer: WechatLayer,
    /// The customer-service client (`WECHAT_APPID`, `WECHAT_APP_SECRET`, `WECHAT_API_BASE`).
    pub(crate) client: Client,
}

/// Reads the configuration through `var` (the environment in `main`); the error names the
/// variable. Empty values count as unset.
pub(crate) fn configure(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    let bind = var("BIND").unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let bind: SocketAddr = bind
        .parse()
        .map_err(|e| format!("BIND: {e} (expected HOST:PORT, got {bind:?})"))?;
    let token = var("WECHAT_TOKEN").ok_or("WECHAT_TOKEN: required")?;
    let app_id = var("WECHAT_APPID").ok_or("WECHAT_APPID: required")?;
    let key = match var("WECHAT_ENCODING_AES_KEY") {
        Some(key) => {
            Some(EncodingAesKey::new(&key).map_err(|e| format!("WECHAT_ENCODING_AES_KEY: {e}"))?)
        }
        None => None,
    };
    let secret = var("WECHAT_APP_SECRET").ok_or("WECHAT_APP_SECRET: required")?;
    let base = var("WECHAT_API_BASE").unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    let stores = Stores::configure(var("REDIS_URL"))?;
    let layer = wechat_layer(token, key, &app_id, stores.dedupe()).map_err(|e| match e {
        ConfigError::AppId => format!("WECHAT_APPID: {e}"),
        _ => format!("WECHAT_TOKEN: {e}"),
    })?;
    let client = stores
        .token(Client::builder(app_id, secret).base_url(base))
        .build()
        .map_err(|e| format!("WECHAT_API_BASE: {e}"))?;
    Ok(Config {
        bind,
        layer,
        client,
    })
}

/// Where the dedupe records and the access token live: in memory, or in the Redis at
/// `REDIS_URL`.
enum Stores {
    Memory,
    #[cfg(feature = "redis")]
    Redis(wechat_push::redis::RedisStores),
}

impl Stores {
    /// The stores `REDIS_URL` asks for. An invalid URL is an error; an unreachable Redis is
    /// not (the stores use it once it answers, and fall back meanwhile).
    fn configure(url: Option<String>) -> Result<Self, String> {
        match url {
            None => Ok(Stores::Memory),
            #[cfg(feature = "redis")]
            Some(url) => wechat_push::redis::RedisStores::new(url)
                .map(Stores::Redis)
                .map_err(|e| format!("REDIS_URL: {e}")),
            #[cfg(not(feature = "redis"))]
            Some(_) => Err(
                "REDIS_URL: this build has no Redis support (build with --features redis)"
                    .to_owned(),
            ),
        }
    }

    fn dedupe(&self) -> DedupeConfig {
        match self {
            Stores::Memory => DedupeConfig::new(MemoryDedupeStore::default()),
            #[cfg(feature = "redis")]
            Stores::Redis(redis) => DedupeConfig::new(redis.dedupe_store()),
        }
    }

    fn token(&self, client: ClientBuilder) -> ClientBuilder {
        match self {
            Stores::Memory => client,
            #[cfg(feature = "redis")]
            Stores::Redis(redis) => client.token_store(redis.token_store()),
        }
    }
}

/// The WeChat layer as this example runs it: signatures, the default timestamp tolerance and
/// body limit, safe mode when a key is configured (plaintext pushes are still accepted), dedupe
/// (in memory, or in Redis) and a 4 s acknowledgement deadline.
pub(crate) fn wechat_layer(
    token: String,
    key: Option<EncodingAesKey>,
    app_id: &str,
    dedupe: DedupeConfig,
) -> Result<WechatLayer, ConfigError> {
    let layer = WechatLayer::new(token)?;
    let layer = match key {
        Some(key) => layer.encryption(key, app_id)?,
        None => layer,
    };
    Ok(layer.dedupe_with(dedupe).ack_deadline(ACK_DEADLINE))
}

/// What the example sends back for a push, if anything.
pub(crate) fn answer(message: &Message) -> Option<CustomMessage> {
    match message.kind() {
        Kind::Text { content, .. } => Some(CustomMessage::text(content.clone())),
        Kind::Image { media_id, .. } => Some(CustomMessage::image(media_id.clone())),
        Kind::MiniProgramPage { title, .. } => {
            Some(CustomMessage::text(format!("你发送了小程序卡片：{title}")))
        }
        Kind::Event(Event::UserEnterTempSession { .. }) => Some(CustomMessage::text(WELCOME)),
        _ => None,
    }
}

/// Sends answers in spawned tasks. Every task holds a clone of `pending`, so shutdown can
/// wait until all of them are done.
#[derive(Clone, Debug)]
struct Responder {
    client: Client,
    pending: mpsc::Sender<()>,
}

impl Responder {
    /// Starts sending the answer to `message`, if it has one, and returns at once.
    fn respond(&self, message: &Message) {
        let Some(answer) = answer(message) else {
            return;
        };
        let client = self.client.clone();
        let pending = self.pending.clone();
        let touser = message.from_user().to_owned();
        tokio::spawn(async move {
            if let Err(e) = client.send(&touser, &answer).await {
                // 45015 (48-hour window closed) and 45047 (quota used up) land here too:
                // nothing to do but drop the answer.
                eprintln!("customer_service: send to {touser} failed: {e}");
            }
            drop(pending);
        });
    }
}

/// The router: the WeChat endpoint at `/wechat`, 404 everywhere else.
fn router(layer: &WechatLayer, responder: Responder) -> Router {
    let handler = service_fn(move |req: Request<Message>| {
        responder.respond(req.body());
        // Acknowledge at once: the answer goes through the customer-service API.
        std::future::ready(Ok::<_, Infallible>(Reply::Success))
    });
    Router::new().route_service("/wechat", layer.layer(handler))
}

/// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish and
/// waits (at most [`SEND_DRAIN`]) for the sends still pending.
pub(crate) async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (pending, mut drained) = mpsc::channel::<()>(1);
    let responder = Responder {
        client: config.client,
        pending,
    };
    let app = router(&config.layer, responder);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    // Nothing is ever sent on the channel: `recv` returns `None` once every task has dropped
    // its sender (the router's own was dropped with the server).
    if tokio::time::timeout(SEND_DRAIN, drained.recv())
        .await
        .is_err()
    {
        eprintln!("customer_service: exiting with sends still pending");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match configure(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("customer_service: {message}");
            return ExitCode::FAILURE;
        }
    };
    let bind = config.bind;
    let listener = match TcpListener::bind(bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("customer_service: BIND: cannot listen on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(bind);
    println!("listening on http://{addr}/wechat");
    match serve(listener, config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("customer_service: {e}");
            ExitCode::FAILURE
        }
    }
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
