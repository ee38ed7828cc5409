//! One server, several apps: mini programs and official accounts, each with its own Token,
//! EncodingAESKey and AppID, WeCom apps (企业微信 自建应用, sealed for their corp's CorpID), and
//! Open Platform authorisers (whose pushes use the component's keys), all on `/wechat/{app}`;
//! an axum handler behind the WeChat layer in pass-through mode.
//!
//! A text push is answered with a passive text reply `{app}: {content}` (sealed with that app's
//! keys when the push was encrypted, as every WeCom push is); anything else with `success`. A
//! path naming no configured app is answered 404, a push signed for another app 401: the path
//! only chooses the app, whose own signature is then checked. Served on `BIND` (default
//! `127.0.0.1:3000`); SIGINT or SIGTERM stops it.
//!
//! The apps come from `WECHAT_APPS`, or from the file named by `WECHAT_APPS_FILE` (then SIGHUP
//! reads the file again and adds, replaces and removes apps without a restart). Entries are
//! separated by `;` or new lines (`#` starts a comment line), each `NAME=KIND:FIELDS`, where
//! NAME (ASCII letters, digits, `_`, `-`, `.`) is the path segment, and KIND says what the
//! fields are:
//!
//! | kind | fields | |
//! | --- | --- | --- |
//! | `mp` | `TOKEN[:AESKEY:APPID]` | a mini program or official account; with the key, safe and compatible mode too |
//! | `wecom` | `TOKEN:AESKEY:CORPID[:AGENTID]` | a WeCom app: its callback's Token and key, its corp's CorpID (`ww…`); with AGENTID, a push for another agent of the corp (or for none) is refused (403), which matters when agents share a Token and key |
//! | `component` | `TOKEN:AESKEY:COMPONENT_APPID:ORIGINAL_ID` | an Open Platform authoriser: NAME is its AppID (the `$APPID$` of the message URL, here `/wechat/$APPID$`), the keys are the component's, and pushes must be addressed to ORIGINAL_ID (`gh_…`) |
//! | `component` | `TOKEN:AESKEY:COMPONENT_APPID` | the component's own authorisation-event URL (`component_verify_ticket`, `authorized`, `unauthorized`, `updateauthorized`), under any NAME (`/wechat/events` for `events=component:…`): these pushes carry the component's `AppId` where messages carry `ToUserName`, so an authoriser's entry (which wants its `gh_…`) refuses them (403), and this entry refuses messages to an authoriser (403); they are answered `success` |
//!
//! Both `component` forms follow the third-party platform's query: `msg_signature` is required,
//! `signature` is checked when WeChat sends it (it does) but a push without one is served.
//! ```sh
//! WECHAT_APPS='shop=mp:ShopToken1:jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C:wx1111111111111111;
//!              club=mp:ClubToken2;
//!              hr=wecom:hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo:6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt:ww1436e0e65a779aee:1000002;
//!              wxba5fad812f8e6fb9=component:AAAAA:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:wx134c8103faa5a59e:gh_97417a04a28d;
//!              events=component:AAAAA:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:wx134c8103faa5a59e' \
//!   cargo run --example multi_app
//! ```
//!
//! Here two mini programs (`shop` sealed, `club` in plaintext), one WeCom app (`hr`, agent
//! 1000002 of its corp), one authoriser and the component's authorisation-event URL
//! (`https://HOST/wechat/events` in the component's settings; its message URL is
//! `https://HOST/wechat/$APPID$`); the WeCom app's URL in the admin console is
//! `https://HOST/wechat/hr`, and its GET verification is answered by the layer.
//!
//! Why a list in one variable rather than a TOML file: it needs no parser crate, fits a
//! container's or a unit file's environment, and the `kind` tag leaves room for more kinds
//! without changing the entries already written.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;
use wechat_push::apps::{App, AppName, Apps, ChooseApp};
use wechat_push::message::Kind;
use wechat_push::{EncodingAesKey, Endpoint, Message, ReceiveId, Reply, WechatLayer};

/// The handler: `{app}: {content}` for text, `success` for anything else.
async fn on_push(app: AppName, msg: Message) -> Reply {
    match msg.kind() {
        Kind::Text { content, .. } => Reply::text(format!("{app}: {content}")),
        _ => Reply::Success,
    }
}

/// One entry, `NAME=KIND:FIELDS`; the error says what is wrong.
fn parse_app(entry: &str) -> Result<App, String> {
    let (name, spec) = entry
        .split_once('=')
        .ok_or_else(|| format!("{entry:?}: expected NAME=KIND:FIELDS"))?;
    let (name, spec) = (name.trim(), spec.trim());
    let fields: Vec<&str> = spec.split(':').collect();
    let key = |s: &str| EncodingAesKey::new(s).map_err(|e| format!("{name}: {e}"));
    let token = |s: &str| Endpoint::new(s).map_err(|e| format!("{name}: {e}"));
    let app = |endpoint: Endpoint| App::new(name, endpoint).map_err(|e| format!("{name}: {e}"));
    let component_endpoint = |t: &str, k: &str, component: &str| {
        Endpoint::component(t, key(k)?, component).map_err(|e| format!("{name}: {e}"))
    };
    let wecom = |t: &str, k: &str, corp: &str| {
        // Every WeCom push is sealed (safe mode only), for the corp's CorpID.
        Endpoint::wecom(t, key(k)?, ReceiveId::CorpId(corp.to_owned()))
            .map_err(|e| format!("{name}: {e}"))
    };
    match fields.as_slice() {
        ["mp", t] => app(token(t)?),
        ["mp", t, k, appid] => app(token(t)?
            .encryption(key(k)?, *appid)
            .map_err(|e| format!("{name}: {e}"))?),
        ["wecom", t, k, corp] => app(wecom(t, k, corp)?),
        ["wecom", t, k, corp, agent] => {
            let agent: u64 = agent
                .parse()
                .map_err(|_| format!("{name}: AGENTID {agent:?} is not a number"))?;
            Ok(app(wecom(t, k, corp)?)?.agent(agent))
        }
        // The Open Platform seals every push (safe mode only), for the component's AppID;
        // `msg_signature` is required, `signature` optional.
        ["component", t, k, component, original_id] => {
            Ok(app(component_endpoint(t, k, component)?)?.recipient(*original_id))
        }
        // The authorisation-event URL: its pushes carry the component's AppID as `AppId`.
        ["component", t, k, component] => {
            Ok(app(component_endpoint(t, k, component)?)?.recipient(*component))
        }
        [kind, ..] => Err(format!(
            "{name}: unknown kind {kind:?} or wrong number of fields (mp:TOKEN[:AESKEY:APPID], \
             wecom:TOKEN:AESKEY:CORPID[:AGENTID], component:TOKEN:AESKEY:COMPONENT_APPID[:ORIGINAL_ID])"
        )),
        [] => Err(format!("{name}: no kind")),
    }
}

/// Every entry of `list`; the error names the first bad one.
fn parse_apps(list: &str) -> Result<Vec<App>, String> {
    list.split([';', '\n'])
        .map(str::trim)
        .filter(|entry| !entry.is_empty() && !entry.starts_with('#'))
        .map(parse_app)
        .collect()
}

/// Where the apps come from.
enum Source {
    Env(String),
    File(String),
}

impl Source {
    fn read(&self) -> Result<Vec<App>, String> {
        match self {
            Source::Env(list) => parse_apps(list).map_err(|e| format!("WECHAT_APPS: {e}")),
            Source::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("WECHAT_APPS_FILE: {path}: {e}"))
                .and_then(|list| parse_apps(&list).map_err(|e| format!("{path}: {e}"))),
        }
    }
}

/// Makes `apps` hold exactly `wanted`: adds and replaces, then removes the others.
fn apply(apps: &Apps, wanted: Vec<App>) {
    let names: Vec<AppName> = wanted.iter().map(|app| app.name().clone()).collect();
    for app in wanted {
        apps.insert(app);
    }
    for old in apps.names() {
        if !names.contains(&old) {
            apps.remove(&old);
        }
    }
    let names: Vec<String> = apps.names().iter().map(ToString::to_string).collect();
    eprintln!("multi_app: serving {}", names.join(", "));
}

fn configure() -> Result<(SocketAddr, Source), String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let bind = var("BIND").unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let bind: SocketAddr = bind
        .parse()
        .map_err(|e| format!("BIND: {e} (expected HOST:PORT, got {bind:?})"))?;
    let source = match (var("WECHAT_APPS_FILE"), var("WECHAT_APPS")) {
        (Some(path), _) => Source::File(path),
        (None, Some(list)) => Source::Env(list),
        (None, None) => return Err("WECHAT_APPS or WECHAT_APPS_FILE: required".to_owned()),
    };
    Ok((bind, source))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let (bind, source) = match configure() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("multi_app: {message}");
            return ExitCode::FAILURE;
        }
    };
    let apps = Apps::new();
    match source.read() {
        Ok(wanted) => apply(&apps, wanted),
        Err(message) => {
            eprintln!("multi_app: {message}");
            return ExitCode::FAILURE;
        }
    }
    let listener = match TcpListener::bind(bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("multi_app: BIND: cannot listen on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(bind);
    println!("listening on http://{addr}/wechat");

    // The app is the path's last segment; each request is checked with that app's keys.
    let wechat = WechatLayer::apps(apps.clone(), ChooseApp::last_segment()).pass_through();
    let app = Router::new()
        // `layer`, not `route_layer`: the GET handshake reaches the WeChat layer too.
        .route("/wechat/{app}", post(on_push).layer(wechat))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") });

    #[cfg(unix)]
    if let Source::File(_) = source {
        tokio::spawn(reload_on_hangup(source, apps));
    }
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        eprintln!("multi_app: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Reads the apps again on each SIGHUP; a bad file changes nothing (the error is printed).
#[cfg(unix)]
async fn reload_on_hangup(source: Source, apps: Apps) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangup.recv().await.is_some() {
        match source.read() {
            Ok(wanted) => apply(&apps, wanted),
            Err(message) => eprintln!("multi_app: reload refused: {message}"),
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
