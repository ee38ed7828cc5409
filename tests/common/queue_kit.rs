//! What the queue tests share: verified pushes, a scripted handler that records every call,
//! and a counter of the crate's warnings.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{Method, Request};
use tower::{service_fn, Service};
use wechat_push::queue::{Delivery, QueuedPush};
use wechat_push::{signature, Endpoint, Message, PushInfo, Reply, Verified};

const TOKEN: &str = "Token123abc";

/// A verified plaintext text push with `MsgId` `id`, as the layer would queue it.
pub fn push(id: u64) -> QueuedPush {
    let endpoint = Endpoint::new(TOKEN).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sig = signature::sign(TOKEN, &now, "n1");
    let query = format!("signature={sig}&timestamp={now}&nonce=n1&openid=oUser");
    let Verified::Push(query) = endpoint.check(&Method::POST, Some(&query)).unwrap() else {
        panic!("a push");
    };
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1714200000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[push {id}]]></Content><MsgId>{id}</MsgId></xml>"
    );
    let opened = endpoint.open(query, body.as_bytes()).unwrap();
    QueuedPush::new(opened.message(), opened.document(), opened.info(), None)
}

/// What a scripted handler does on one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Ok,
    Fail,
    Panic,
    /// Never finishes.
    Hang,
    /// Finishes after the delay.
    Slow(Duration),
    /// Answers a passive reply (unsupported from a queue).
    Passive,
}

/// One call the handler got.
#[derive(Clone, Debug)]
pub struct Call {
    pub id: String,
    pub attempt: u32,
    pub at: Instant,
    pub openid: Option<String>,
}

/// A handler whose `n`th call of a push (1-based) does `script(n)`, recording every call and
/// every effect (a call that returned `Ok`).
#[derive(Clone)]
pub struct Scripted {
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub effects: Arc<Mutex<Vec<String>>>,
    script: Arc<dyn Fn(usize) -> Act + Send + Sync>,
}

impl Scripted {
    pub fn new(script: impl Fn(usize) -> Act + Send + Sync + 'static) -> Self {
        Scripted {
            calls: Arc::default(),
            effects: Arc::default(),
            script: Arc::new(script),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn effects(&self) -> Vec<String> {
        self.effects.lock().unwrap().clone()
    }

    /// Effects per push id.
    pub fn effects_by_id(&self) -> HashMap<String, usize> {
        let mut by_id = HashMap::new();
        for id in self.effects() {
            *by_id.entry(id).or_insert(0) += 1;
        }
        by_id
    }

    pub fn service(
        &self,
    ) -> impl Service<Request<Message>, Response = Reply, Error = String, Future = impl Send>
           + Clone
           + Send
           + 'static {
        let this = self.clone();
        service_fn(move |req: Request<Message>| {
            let this = this.clone();
            async move {
                let delivery = req.extensions().get::<Delivery>().cloned().unwrap();
                let openid = req
                    .extensions()
                    .get::<PushInfo>()
                    .and_then(|i| i.query().openid().map(str::to_owned));
                let id = delivery.id.as_str().to_owned();
                let n = {
                    let mut calls = this.calls.lock().unwrap();
                    calls.push(Call {
                        id: id.clone(),
                        attempt: delivery.attempt,
                        at: Instant::now(),
                        openid,
                    });
                    calls.iter().filter(|c| c.id == id).count()
                };
                let act = (this.script)(n);
                match act {
                    Act::Fail => return Err(format!("boom {n}")),
                    Act::Panic => panic!("the handler panics on call {n}"),
                    Act::Hang => std::future::pending::<()>().await,
                    Act::Slow(d) => tokio::time::sleep(d).await,
                    Act::Ok | Act::Passive => {}
                }
                this.effects.lock().unwrap().push(id);
                Ok(if act == Act::Passive {
                    Reply::text("hi")
                } else {
                    Reply::Success
                })
            }
        })
    }
}

/// Waits until `done()` or `within` passes; true if it came to pass.
pub async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

/// A tracing subscriber counting this crate's warnings and errors.
pub struct Logs {
    pub warnings: Arc<AtomicUsize>,
    pub errors: Arc<AtomicUsize>,
}

impl Logs {
    pub fn new() -> (Self, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let (w, e) = (Arc::<AtomicUsize>::default(), Arc::<AtomicUsize>::default());
        (
            Logs {
                warnings: w.clone(),
                errors: e.clone(),
            },
            w,
            e,
        )
    }
}

impl tracing::Subscriber for Logs {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("wechat_push")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        match *event.metadata().level() {
            tracing::Level::WARN => self.warnings.fetch_add(1, Ordering::SeqCst),
            tracing::Level::ERROR => self.errors.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

pub fn ok(_: usize) -> Act {
    Act::Ok
}
