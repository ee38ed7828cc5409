//! The mini-program flow: acknowledge at once, answer through the customer-service API, from
//! a durable queue.
//!
//! Every push is queued, then answered `success`; the answer to the user is the queued work,
//! sent by a worker (of any instance, with `REDIS_URL`) through
//! `POST {WECHAT_API_BASE}/cgi-bin/message/custom/send`:
//!
//! * text → the same text back;
//! * image → the same image back (its `MediaId`);
//! * mini-program card → a text naming the card's title;
//! * event `user_enter_tempsession` → a welcome text;
//! * anything else → nothing.
//!
//! The access token is the client's business: `cgi-bin/stable_token`, cached, one fetch for
//! all concurrent pushes, fetched again once when WeChat rejects it, waited for up to 30 s
//! while its endpoint fails.
//!
//! It runs in the layer's queue mode (see the README, "Durable handling"): a send that fails
//! with `errcode` -1, an HTTP 5xx, or cannot reach the API (or its token endpoint, past the
//! 30 s token wait) is an `Err` of the handler, and the queue tries it again after a back-off
//! (3 s, 9 s, 27 s, …; 8 attempts over about an hour), then keeps it in its dead-letter list,
//! logged at `error`. The client itself retries `-1` and "could not connect" within its 30 s
//! bound (first after 250 ms), so the first retry comes within 5 s, and the third attempt
//! within 45 s of the first, counting the sends WeChat sees; a 5xx is not retried by the
//! client (it may have been delivered), so the queue's 3 s and 9 s make its attempts at 0, 3
//! and 12 s. A send WeChat refused for good (`45015`: the 48-hour window closed, `40003`: not
//! this app's user, …) is logged and dropped: trying again cannot help. The same push
//! delivered again while queued or held is answered `success` and not queued twice.
//!
//! The queue: without `REDIS_URL`, in memory (10,000 pushes; lost with the process); with it,
//! a Redis stream shared by every instance, whose workers take over what a killed instance
//! held within about 19 s (not renewed for 15 s, found by a scan every 3.75 s). When Redis is down or hung, pushes are queued in this instance's
//! memory (one warning per outage) and still answered in time.
//!
//! Served with axum on `BIND` (default `127.0.0.1:3000`) at `/wechat`; SIGINT or SIGTERM stops
//! accepting, lets in-flight requests finish, and gives the workers 10 s to finish or hand
//! back what they hold (without `REDIS_URL`, what is left is logged as lost), then exits 0.
//! The crate's warnings and errors go to stderr.
//!
//! ```sh
//! WECHAT_TOKEN=Token123abc WECHAT_APPID=wx1234567890abcdef WECHAT_APP_SECRET=… \
//!   cargo run --release --features client,redis --example customer_service
//! ```
//!
//! Optional: `WECHAT_ENCODING_AES_KEY` (43 characters) to accept safe-mode pushes too, and
//! `WECHAT_API_BASE` (default `https://api.weixin.qq.com`) to talk to another API host.
//!
//! Several instances: with `REDIS_URL` set (`redis://HOST:PORT[/DB]`; built with the
//! `redis` feature), the queue and the access token live in that Redis, shared by every
//! instance started with the same URL:
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/0 WECHAT_TOKEN=… WECHAT_APPID=… WECHAT_APP_SECRET=… \
//!   cargo run --release --features client,redis --example customer_service
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::error_handling::HandleError;
use axum::Router;
use http::Request;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::service_fn;
use wechat_push::client::{
    ApiErrorKind, Client, ClientBuilder, CustomMessage, Error as SendError, DEFAULT_BASE_URL,
};
use wechat_push::message::{Event, Kind};
use wechat_push::queue::{Queue, Workers};
use wechat_push::{ConfigError, EncodingAesKey, Message, Reply, WechatLayer};

/// The text sent when a user opens the customer-service conversation.
pub(crate) const WELCOME: &str = "你好,欢迎来到这里";

/// How long a push held by an instance that stopped renewing it waits to be taken over.
const TAKEOVER: Duration = Duration::from_secs(15);

/// How long shutdown gives the workers to finish or hand back what they hold.
const DRAIN: Duration = Duration::from_secs(10);

/// The example's configuration, read from the environment.
#[derive(Debug)]
pub(crate) struct Config {
    /// `BIND`.
    pub(crate) bind: SocketAddr,
    /// The WeChat layer (`WECHAT_TOKEN`, `WECHAT_APPID`, `WECHAT_ENCODING_AES_KEY`), in queue
    /// mode.
    pub(crate) layer: WechatLayer,
    /// The queue the layer appends to and the workers take from (`REDIS_URL`).
    pub(crate) queue: Queue,
    /// Whether the queue is in this process only (no `REDIS_URL`).
    pub(crate) in_memory: bool,
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
    let queue = stores.queue();
    let layer = wechat_layer(token, key, &app_id, queue.clone()).map_err(|e| match e {
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
        in_memory: matches!(stores, Stores::Memory),
        queue,
        client,
    })
}

/// Where the queue and the access token live: in memory, or in the Redis at `REDIS_URL`.
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

    /// The queue: 4 workers, 8 attempts (3 s, then × 3), a 60 s visibility timeout (room for
    /// the client's 30 s token wait), in memory 10,000 pushes (also the failover of the Redis
    /// queue): the defaults. What a killed instance held is taken over once not renewed for
    /// [`TAKEOVER`], found by a scan every quarter of it: within about 19 s of the kill, well
    /// inside the 30 s the example promises.
    fn queue(&self) -> Queue {
        let queue = Queue::builder().takeover_after(TAKEOVER);
        match self {
            Stores::Memory => queue.build(),
            #[cfg(feature = "redis")]
            Stores::Redis(redis) => queue.backend(redis.queue()).build(),
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
/// body limit, safe mode when a key is configured (plaintext pushes are still accepted), and
/// queue mode (the queue answers duplicates, so no dedupe or deadline is needed).
pub(crate) fn wechat_layer(
    token: String,
    key: Option<EncodingAesKey>,
    app_id: &str,
    queue: Queue,
) -> Result<WechatLayer, ConfigError> {
    let layer = WechatLayer::new(token)?;
    let layer = match key {
        Some(key) => layer.encryption(key, app_id)?,
        None => layer,
    };
    Ok(layer.queue(queue))
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

/// Whether a failed send is worth another attempt: WeChat busy or rate-limiting, a token it
/// refused, an answer that was not WeChat's (an HTTP 5xx page), the API or the token
/// endpoint out of reach. A refusal for good (window closed, not this app's user, quota) is
/// not: trying again cannot help.
fn worth_retrying(error: &SendError) -> bool {
    match error {
        SendError::Api(api) => matches!(
            api.kind(),
            ApiErrorKind::SystemBusy
                | ApiErrorKind::RateLimited
                | ApiErrorKind::InvalidCredential
                | ApiErrorKind::InvalidAccessToken
                | ApiErrorKind::AccessTokenExpired
        ),
        SendError::InvalidInput(_) => false,
        _ => true,
    }
}

/// The queue's work for one push: its send, if it has one. `Err` tries it again later.
async fn handle(client: Client, req: Request<Message>) -> Result<Reply, SendError> {
    let message = req.body();
    let Some(answer) = answer(message) else {
        return Ok(Reply::Success);
    };
    let touser = message.from_user();
    match client.send(touser, &answer).await {
        Ok(()) => Ok(Reply::Success),
        Err(e) if worth_retrying(&e) => {
            eprintln!("customer_service: send to {touser} failed, to be tried again: {e}");
            Err(e)
        }
        Err(e) => {
            // 45015 (48-hour window closed) and 45047 (quota used up) land here too.
            eprintln!("customer_service: send to {touser} dropped: {e}");
            Ok(Reply::Success)
        }
    }
}

/// Serves on `listener` until `shutdown` resolves, the workers sending meanwhile; then stops
/// accepting, lets in-flight requests finish, and gives the workers [`DRAIN`] to finish or
/// hand back what they hold.
pub(crate) async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let client = config.client;
    let handler = service_fn(move |req: Request<Message>| handle(client.clone(), req));
    // In queue mode the layer never calls the handler on the request's path, so never answers
    // its error; axum wants it handled all the same.
    let wechat = HandleError::new(
        config.layer.layer(handler.clone()),
        |e: SendError| async move { (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()) },
    );
    let app = Router::new().route_service("/wechat", wechat);
    let workers = config.queue.start(handler);
    // One signal for both: the server stops accepting while the workers stop taking work.
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let mut server_stopping = stopping.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = server_stopping.wait_for(|stop| *stop).await;
    });
    let (served, ()) = tokio::join!(
        async move { server.await },
        drain(workers, stopping, config.in_memory)
    );
    served
}

/// Once `stopping`, stops the workers within [`DRAIN`], and says what became of their work.
async fn drain(workers: Workers, mut stopping: watch::Receiver<bool>, in_memory: bool) {
    let _ = stopping.wait_for(|stop| *stop).await;
    let drained = workers.shutdown(DRAIN).await;
    if drained.lost > 0 && in_memory {
        eprintln!(
            "customer_service: {} queued pushes lost at shutdown (the queue is in memory without REDIS_URL)",
            drained.lost
        );
    }
    if drained.handed_back > 0 {
        eprintln!(
            "customer_service: {} pushes handed back to the queue for another instance",
            drained.handed_back
        );
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = tracing::subscriber::set_global_default(Stderr);
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

/// The crate's warnings and errors (a Redis outage, a dead letter, work lost at shutdown),
/// one line each on stderr.
struct Stderr;

impl tracing::Subscriber for Stderr {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = format!(
            "{} {}:",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut Fields(&mut line));
        eprintln!("{line}");
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Writes an event's fields as ` name=value`, the message bare.
struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = match field.name() {
            "message" => write!(self.0, " {value:?}"),
            name => write!(self.0, " {name}={value:?}"),
        };
    }
}
