//! The protocol core, in process: signature check, safe-mode decode (verify `msg_signature`,
//! decrypt, decode) of a ~200-byte text push in XML and JSON, and sealing a text reply.
//!
//! `cargo bench --bench core`. The same work as `../shared/bench/inproc` measures for the peers
//! and the naive Rust reference; the README's performance section quotes the medians.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use wechat_push::codec::{self, Envelope};
use wechat_push::crypto::{self, EncodingAesKey, KeyRing};
use wechat_push::{reply, signature, Format, Reply};

const TOKEN: &str = "benchtoken";
const APPID: &str = "wx1234567890abcdef";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const TS: &str = "1714200000";
const NONCE: &str = "1234567890";

/// A signed safe-mode push, shaped like the load harness's W2/W3 requests.
#[derive(Debug)]
pub(crate) struct Push {
    /// The POST body: the envelope around `Encrypt`.
    pub(crate) body: Vec<u8>,
    /// The query's `msg_signature`.
    pub(crate) msg_signature: String,
}

/// Builds the push for `format`.
pub(crate) fn push(format: Format) -> Push {
    let key = EncodingAesKey::new(KEY).unwrap();
    let plain = match format {
        Format::Xml => "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1714200000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>23456789012345678</MsgId></xml>",
        Format::Json => r#"{"ToUserName":"gh_x","FromUserName":"oUser","CreateTime":1714200000,"MsgType":"text","Content":"hello","MsgId":23456789012345678}"#,
    };
    let encrypt = crypto::encrypt_with_prefix(&key, *b"0123456789abcdef", plain.as_bytes(), APPID);
    let body = match format {
        Format::Xml => format!("<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"),
        Format::Json => format!(r#"{{"ToUserName":"gh_x","Encrypt":"{encrypt}"}}"#),
    };
    let msg_signature = signature::sign_message(TOKEN, TS, NONCE, &encrypt).to_string();
    Push {
        body: body.into_bytes(),
        msg_signature,
    }
}

/// The whole safe-mode decode, as the layer does it once the body is in.
pub(crate) fn open(keys: &KeyRing, push: &Push) -> wechat_push::Message {
    let (format, envelope) = codec::decode_envelope(&push.body).unwrap();
    let Envelope::Encrypted(encrypt) = envelope else {
        panic!("encrypted push expected")
    };
    assert!(signature::verify_message(
        &push.msg_signature,
        TOKEN,
        TS,
        NONCE,
        &encrypt
    ));
    let opened = keys.decrypt(&encrypt).unwrap();
    codec::decode_message(format, opened.as_bytes()).unwrap()
}

fn benches(c: &mut Criterion) {
    let sig = signature::sign(TOKEN, TS, NONCE).to_string();
    c.bench_function("verify signature", |b| {
        b.iter(|| signature::verify(black_box(&sig), TOKEN, black_box(TS), black_box(NONCE)))
    });

    let keys = KeyRing::new(EncodingAesKey::new(KEY).unwrap(), APPID);
    for (name, format) in [("xml", Format::Xml), ("json", Format::Json)] {
        let push = push(format);
        c.bench_function(&format!("safe-mode decode {name}"), |b| {
            b.iter(|| open(&keys, black_box(&push)))
        });
    }

    let key = EncodingAesKey::new(KEY).unwrap();
    let text = Reply::text("hello");
    c.bench_function("encode + seal text reply xml", |b| {
        b.iter(|| {
            let doc = black_box(&text).encode(Format::Xml, "oUser", "gh_x", 1714200000);
            reply::seal(Format::Xml, &key, APPID, TOKEN, &doc, 1714200000).unwrap()
        })
    });
}

criterion_group!(core, benches);
criterion_main!(core);
