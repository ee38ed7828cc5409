//! A loopback mock of the WeChat API for the client and example tests: it records every
//! request and answers with a handler's choice (JSON, raw bytes, a chunked stream, or any of
//! those after a delay). Included with `#[path]` by tests/client.rs and
//! tests/customer_service.rs.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: http::Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// 1-based count of requests to this path so far, this one included.
    pub nth: usize,
}

impl Recorded {
    /// The body as text (the client and the example send UTF-8 JSON).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 request body")
    }

    /// The `access_token` query parameter ("" when absent).
    pub fn token(&self) -> &str {
        self.query
            .get("access_token")
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// What the mock answers.
pub enum Answer {
    /// 200 with this JSON.
    Json(serde_json::Value),
    /// Any status, content type and body.
    Raw(StatusCode, &'static str, Bytes),
    /// A body streamed in chunks without a length (chunked encoding).
    Stream(usize),
    /// Wait, then answer.
    Delay(Duration, Box<Answer>),
}

/// Decides the answer to each recorded request.
pub type Handler = dyn Fn(&Recorded) -> Answer + Send + Sync;

/// A WeChat API on a loopback port that records every request.
pub struct Mock {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Mock {
    /// Starts a mock answering with `handler`.
    pub async fn start(handler: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Mock {
        Mock::start_on("127.0.0.1:0".parse().unwrap(), handler).await
    }

    /// Starts a mock on `addr` (a loopback address, port 0 for any).
    pub async fn start_on(
        addr: SocketAddr,
        handler: impl Fn(&Recorded) -> Answer + Send + Sync + 'static,
    ) -> Mock {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let state = (log.clone(), handler);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, handler) = state.clone();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (log, handler) = (log.clone(), handler.clone());
                    async move { Ok::<_, Infallible>(serve(req, &log, &*handler).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Mock { addr, log }
    }

    /// `http://ADDR`, the base URL to give a client.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests to `path` so far, in order.
    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// How many requests to `path` so far.
    pub fn count(&self, path: &str) -> usize {
        self.requests(path).len()
    }

    /// Every request so far, in order.
    pub fn all(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until `n` requests to `path` have arrived, and returns them.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Recorded> {
        const WAIT: Duration = Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let seen = self.requests(path);
            if seen.len() >= n {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {WAIT:?} for {n} request(s) to {path}, got {seen:#?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The stable-token endpoint.
pub const TOKEN: &str = "/cgi-bin/stable_token";
/// The customer-service send endpoint.
pub const SEND: &str = "/cgi-bin/message/custom/send";

type MockBody = Either<Full<Bytes>, Chunks>;

async fn serve(
    req: Request<Incoming>,
    log: &Mutex<Vec<Recorded>>,
    handler: &Handler,
) -> Response<MockBody> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let query = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let recorded = {
        let mut log = log.lock().unwrap();
        let path = parts.uri.path().to_owned();
        let nth = log.iter().filter(|r| r.path == path).count() + 1;
        let recorded = Recorded {
            method: parts.method,
            path,
            query,
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body,
            nth,
        };
        log.push(recorded.clone());
        recorded
    };
    let mut answer = handler(&recorded);
    while let Answer::Delay(d, next) = answer {
        tokio::time::sleep(d).await;
        answer = *next;
    }
    match answer {
        Answer::Json(v) => Response::builder()
            .header("content-type", "application/json; encoding=utf-8")
            .body(Either::Left(Full::new(Bytes::from(v.to_string()))))
            .unwrap(),
        Answer::Raw(status, ct, body) => Response::builder()
            .status(status)
            .header("content-type", ct)
            .body(Either::Left(Full::new(body)))
            .unwrap(),
        Answer::Stream(total) => Response::new(Either::Right(Chunks { left: total })),
        Answer::Delay(..) => unreachable!(),
    }
}

/// `left` bytes of `{` in 64 KiB chunks, with no length announced.
pub struct Chunks {
    left: usize,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 * 1024);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'{'; n])))))
    }
}

/// `errcode` 0.
pub fn ok() -> Answer {
    Answer::Json(json!({"errcode": 0, "errmsg": "ok"}))
}

/// `errcode` `code`, with an errmsg like WeChat's.
pub fn err(code: i64) -> Answer {
    Answer::Json(json!({"errcode": code, "errmsg": format!("error {code} rid: 1234")}))
}

/// Issues `TOKEN-n` on the n-th token request, valid 7200 s.
pub fn token_answer(r: &Recorded) -> Answer {
    Answer::Json(json!({"access_token": format!("TOKEN-{}", r.nth), "expires_in": 7200}))
}

/// Tokens as `token_answer`, every other call `ok`.
pub fn standard(r: &Recorded) -> Answer {
    match r.path.as_str() {
        TOKEN | "/cgi-bin/token" => token_answer(r),
        _ => ok(),
    }
}
