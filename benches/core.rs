//! In process, no sockets: the `signature` check on its own, and whole requests through the
//! layer, the path a server runs once hyper has the request.
//!
//! Each layer bench sends one request through `WechatLayer` with `oneshot`, polled by hand
//! with a no-op waker (the body is one ready frame and the handler a ready `service_fn`, so
//! no runtime is involved): a plaintext push answered `success`, a safe-mode push answered
//! `success`, and a safe-mode text push answered with a sealed text reply, each a ~200-byte
//! text push in XML and in JSON. Timed: from `oneshot` to the finished `http::Response` (query
//! parse and `signature` check, body collection, `msg_signature` check, decryption, decoding,
//! the handler, encoding and sealing the reply). Not timed: building the request and cloning
//! the service before, dropping the response after (criterion's `iter_batched`).
//!
//! Several apps: `choose app of 1000` times what a multi-app layer adds per request, reading
//! the app's name from the path (`/wechat/{app}`) and looking it up among 1,000 configured apps
//! (the registry's read lock, the hash lookup, the `Arc` clone and drop); `layer 1000
//! apps plaintext xml push, success` is the whole request through such a layer, to set beside
//! the single-app `layer plaintext xml push, success`. `choose app of 1000, 2 threads` is the
//! same choice made on two threads at once (time per choice, per thread).
//!
//! `cargo bench --bench core`; `cargo bench --bench core -- --list` names the benches.
//! The load harness's `inproc` bench (outside this repository) times the peers' decrypt-and-parse and encrypt-a-reply functions
//! alone (no request, no framework, no handler), so its figures do not compare like for like
//! with the layer benches here, which also parse the query, collect the body, call the
//! handler and build the response.

use std::convert::Infallible;
use std::future::{ready, Future};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{HeaderMap, Uri};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Service, ServiceExt};
use wechat_push::apps::{App, Apps, ChooseApp};
use wechat_push::body::Body as LayerBody;
use wechat_push::clock::FixedClock;
use wechat_push::crypto::EncodingAesKey;
use wechat_push::message::Kind;
use wechat_push::{signature, Endpoint, Format, Message, Reply, WechatLayer};

const TOKEN: &str = "benchtoken";
const APPID: &str = "wx1234567890abcdef";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const TS: &str = "1714200000";
const NONCE: &str = "1234567890";

/// The text push, in clear.
fn plaintext(format: Format) -> &'static str {
    match format {
        Format::Xml => "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1714200000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>23456789012345678</MsgId></xml>",
        Format::Json => r#"{"ToUserName":"gh_x","FromUserName":"oUser","CreateTime":1714200000,"MsgType":"text","Content":"hello","MsgId":23456789012345678}"#,
    }
}

/// `Encrypt` for `msg` under [`KEY`] and [`APPID`] with a fixed prefix, so that every run times
/// the same bytes. The crate only seals under fresh random prefixes, so this builds WeChat's
/// layout itself (docs/protocol.md §4: `prefix | msg_len (u32, big-endian) | msg | appid`, PKCS#7
/// to 32 bytes, AES-256-CBC with IV = the key's first 16 bytes, standard base64) on the `aes`
/// and `cbc` crates, as `tests/common`'s `reference_encrypt` does.
fn encrypt_fixed(msg: &[u8]) -> String {
    use aes::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
    use base64::engine::DecodePaddingMode;
    use base64::Engine as _;

    // The key's last character carries spare bits, which a strict decoder rejects.
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    let key: [u8; 32] = lenient.decode(KEY).unwrap().try_into().unwrap();
    let mut buf = b"0123456789abcdef".to_vec();
    buf.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
    buf.extend_from_slice(msg);
    buf.extend_from_slice(APPID.as_bytes());
    let pad = 32 - buf.len() % 32;
    buf.resize(buf.len() + pad, pad as u8);
    let len = buf.len();
    let cipher = cbc::Encryptor::<aes::Aes256>::new(&key.into(), key[..16].into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, len)
        .unwrap();
    STANDARD.encode(cipher)
}

/// A signed push: its query and body.
#[derive(Clone, Debug)]
struct Push {
    uri: String,
    body: Bytes,
}

impl Push {
    /// The plaintext push, signed as in plaintext mode.
    fn plain(format: Format) -> Push {
        let sig = signature::sign(TOKEN, TS, NONCE);
        Push {
            uri: format!("/wechat?signature={sig}&timestamp={TS}&nonce={NONCE}"),
            body: Bytes::from_static(plaintext(format).as_bytes()),
        }
    }

    /// The same push in safe mode: encrypted into an envelope, with `msg_signature`, shaped
    /// like the load harness's W2/W3 requests.
    fn safe(format: Format) -> Push {
        let encrypt = encrypt_fixed(plaintext(format).as_bytes());
        let body = match format {
            Format::Xml => format!("<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"),
            Format::Json => format!(r#"{{"ToUserName":"gh_x","Encrypt":"{encrypt}"}}"#),
        };
        let sig = signature::sign(TOKEN, TS, NONCE);
        let msg_signature = signature::sign_message(TOKEN, TS, NONCE, &encrypt);
        Push {
            uri: format!(
                "/wechat?signature={sig}&timestamp={TS}&nonce={NONCE}&openid=oUser&encrypt_type=aes&msg_signature={msg_signature}"
            ),
            body: Bytes::from(body),
        }
    }

    fn request(&self) -> Request<Full<Bytes>> {
        Request::builder()
            .method(Method::POST)
            .uri(self.uri.as_str())
            .body(Full::new(self.body.clone()))
            .unwrap()
    }
}

/// Polls `future` once; with a ready body and a ready handler the layer's future finishes.
fn poll_once<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("pending with a ready body and a ready handler"),
    }
}

/// The body of `res`.
fn text(res: Response<LayerBody>) -> String {
    let body = poll_once(res.into_body().collect()).unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// Times one `oneshot` of `push` through `svc`, after checking the answer once with `check`.
fn bench_layer<S>(
    c: &mut Criterion,
    name: &str,
    svc: &S,
    push: &Push,
    check: impl Fn(Response<LayerBody>) -> String,
) where
    S: Service<Request<Full<Bytes>>, Response = Response<LayerBody>, Error = Infallible> + Clone,
{
    let body = check(poll_once(svc.clone().oneshot(push.request())).unwrap());
    assert!(!body.is_empty(), "{name}");
    c.bench_function(name, |b| {
        b.iter_batched(
            || (svc.clone(), push.request()),
            |(svc, req)| poll_once(svc.oneshot(black_box(req))).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

fn benches(c: &mut Criterion) {
    let sig = signature::sign(TOKEN, TS, NONCE).to_string();
    c.bench_function("verify signature", |b| {
        b.iter(|| signature::verify(black_box(&sig), TOKEN, black_box(TS), black_box(NONCE)))
    });

    let layer = WechatLayer::new(TOKEN)
        .unwrap()
        .encryption(EncodingAesKey::new(KEY).unwrap(), APPID)
        .unwrap()
        .clock(FixedClock::at_unix(1_714_200_000));
    let acknowledging = layer.layer(service_fn(|_: Request<Message>| {
        ready(Ok::<_, Infallible>(Reply::Success))
    }));
    let echoing = layer.layer(service_fn(|req: Request<Message>| {
        ready(Ok::<_, Infallible>(match req.body().kind() {
            Kind::Text { content, .. } => Reply::text(content.clone()),
            _ => Reply::Success,
        }))
    }));
    let success = |res: Response<LayerBody>| {
        assert_eq!(res.status(), 200);
        let body = text(res);
        assert_eq!(body, "success");
        body
    };
    for (name, format) in [("xml", Format::Xml), ("json", Format::Json)] {
        let sealed = |res: Response<LayerBody>| {
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-type"], format.content_type());
            let body = text(res);
            assert!(
                body.contains("Encrypt") && body.contains("MsgSignature"),
                "{body}"
            );
            body
        };
        bench_layer(
            c,
            &format!("layer plaintext {name} push, success"),
            &acknowledging,
            &Push::plain(format),
            success,
        );
        if format == Format::Xml {
            bench_apps(c, &Push::plain(format), success);
        }
        bench_layer(
            c,
            &format!("layer safe-mode {name} push, success"),
            &acknowledging,
            &Push::safe(format),
            success,
        );
        bench_layer(
            c,
            &format!("layer safe-mode {name} push, sealed text reply"),
            &echoing,
            &Push::safe(format),
            sealed,
        );
    }
}

/// A multi-app layer with 1,000 apps: choosing one alone, and a whole push through it.
fn bench_apps(c: &mut Criterion, push: &Push, check: impl Fn(Response<LayerBody>) -> String) {
    const APPS: usize = 1000;
    let name = |i: usize| format!("wx{i:016x}");
    let apps: Apps = (0..APPS)
        .map(|i| {
            let endpoint = Endpoint::new(TOKEN)
                .unwrap()
                .encryption(EncodingAesKey::new(KEY).unwrap(), APPID)
                .unwrap()
                .clock(FixedClock::at_unix(1_714_200_000));
            App::new(&name(i), endpoint).unwrap()
        })
        .collect();
    let choose = ChooseApp::last_segment();
    let target = name(APPS / 3);
    let uri: Uri = push
        .uri
        .replacen("/wechat", &format!("/wechat/{target}"), 1)
        .parse()
        .unwrap();
    let headers = HeaderMap::new();
    assert_eq!(
        choose.app(&apps, &uri, &headers).unwrap().name().as_str(),
        target
    );
    c.bench_function("choose app of 1000", |b| {
        b.iter(|| choose.app(black_box(&apps), black_box(&uri), &headers))
    });

    bench_concurrent(c, &apps, &choose, &uri);

    let svc = WechatLayer::apps(apps, choose).layer(service_fn(|_: Request<Message>| {
        ready(Ok::<_, Infallible>(Reply::Success))
    }));
    let push = Push {
        uri: uri.to_string(),
        body: push.body.clone(),
    };
    bench_layer(
        c,
        "layer 1000 apps plaintext xml push, success",
        &svc,
        &push,
        check,
    );
}

/// Choosing an app on two threads at once. Each thread runs `iters` choices; the time is the
/// slower thread's.
fn bench_concurrent(c: &mut Criterion, apps: &Apps, choose: &ChooseApp, uri: &Uri) {
    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    fn on_threads(threads: usize, iters: u64, work: impl Fn() + Sync) -> Duration {
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..iters {
                            work();
                        }
                        start.elapsed()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .max()
                .unwrap_or_default()
        })
    }
    let headers = HeaderMap::new();
    c.bench_function("choose app of 1000, 2 threads", |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters, || {
                black_box(choose.app(black_box(apps), black_box(uri), &headers));
            })
        })
    });
}

criterion_group!(core, benches);
criterion_main!(core);
