//! Every entry of `tests/data/vectors.json` (made by an independent implementation, wechatpy,
//! and cross-checked with node `wechat-crypto`) against the sans-IO core.
//!
//! The crate opens every cipher text; rebuilding them, given each vector's prefix, is done
//! here by `common::reference_encrypt`, the tests' own implementation of the envelope on the
//! `aes` and `cbc` crates, so these tests do not check the crate against itself, and the other
//! tests' known cipher texts rest on a sealer the vectors vouch for. The crate's own
//! deterministic sealing is crate-private; its byte-for-byte check against these vectors is
//! the unit test `sealing_reproduces_the_vectors` in `src/protocol/crypto/mod.rs`.

mod common;

use common::{s, sealed_envelope, vectors, xml_field};
use serde_json::Value;
use wechat_push::crypto::{self, DecryptError, EncodingAesKey};
use wechat_push::query::{CallbackQuery, EncryptType};
use wechat_push::{reply, signature, Format};

fn prefix(v: &Value) -> [u8; 16] {
    hex::decode(s(v, "random_hex")).unwrap().try_into().unwrap()
}

/// The raw AES key (`aes_key_hex`), which [`key`] checks against the `EncodingAESKey`.
fn key_bytes(v: &Value) -> [u8; 32] {
    hex::decode(s(v, "aes_key_hex"))
        .unwrap()
        .try_into()
        .unwrap()
}

fn key(v: &Value) -> EncodingAesKey {
    let key = EncodingAesKey::new(s(v, "encoding_aes_key")).unwrap();
    assert_eq!(
        key,
        EncodingAesKey::from_bytes(key_bytes(v)),
        "{}",
        s(v, "name")
    );
    key
}

#[test]
fn signature_cases() {
    let v = vectors();
    let cases = v["signature_cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let (token, ts, nonce) = (s(case, "token"), s(case, "timestamp"), s(case, "nonce"));
        let sig = signature::sign(token, ts, nonce);
        assert_eq!(sig.to_string(), s(case, "signature"), "{}", s(case, "name"));
        assert!(signature::verify(s(case, "signature"), token, ts, nonce));
        assert!(signature::verify(
            s(case, "signature_uppercase"),
            token,
            ts,
            nonce
        ));
        if let Some(wrong) = case["wrong_numeric_sort_signature"].as_str() {
            assert!(!signature::verify(wrong, token, ts, nonce));
        }
        if let Some(query) = case["query"].as_str() {
            let q = CallbackQuery::parse(query).unwrap();
            assert_eq!(q.signature(), s(case, "signature"));
            assert_eq!(q.timestamp(), ts);
            assert_eq!(q.nonce(), nonce);
            assert_eq!(q.echostr(), Some(s(case, "expected_response_body")));
        }
    }
}

#[test]
fn official_doc_case() {
    let v = vectors();
    let case = &v["official_doc_case"];
    let key = key(case);
    let (token, ts, nonce) = (s(case, "token"), s(case, "timestamp"), s(case, "nonce"));
    let encrypt = s(case, "encrypt");
    let q = CallbackQuery::parse(s(case, "query")).unwrap();
    assert_eq!(q.encrypt_type(), EncryptType::Aes);
    assert!(signature::verify(q.signature(), token, ts, nonce));
    assert!(signature::verify_message(
        q.msg_signature().unwrap(),
        token,
        ts,
        nonce,
        encrypt
    ));
    let opened = crypto::decrypt(&key, encrypt, s(case, "appid")).unwrap();
    assert_eq!(opened.as_str(), s(case, "plaintext"));
    assert_eq!(opened.prefix(), s(case, "random_ascii").as_bytes());
    // Re-sealing the plaintext with the same prefix reproduces it.
    let reference = common::reference_encrypt(
        &key_bytes(case),
        prefix(case),
        opened.as_bytes(),
        s(case, "appid"),
    );
    assert_eq!(reference, encrypt);
}

#[test]
fn encrypt_cases() {
    let v = vectors();
    let cases = v["encrypt_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = s(case, "name");
        let key = key(case);
        let (token, ts, nonce, appid) = (
            s(case, "token"),
            s(case, "timestamp"),
            s(case, "nonce"),
            s(case, "appid"),
        );
        for format in ["xml", "json"] {
            let f = &case[format];
            let encrypt = s(f, "encrypt");
            let plaintext = s(f, "plaintext");
            assert_eq!(
                plaintext.len() as u64,
                f["plaintext_utf8_len"].as_u64().unwrap()
            );
            // Byte-identical with the same prefix, padded plaintext and all.
            // (The 4 KiB case does not spell out its padded plaintext.)
            if let Some(expected) = f["padded_plaintext_hex"].as_str() {
                let padded = common::reference_plaintext(prefix(case), plaintext.as_bytes(), appid);
                assert_eq!(hex::encode(padded), expected, "{name} {format}");
            }
            let reference = common::reference_encrypt(
                &key_bytes(case),
                prefix(case),
                plaintext.as_bytes(),
                appid,
            );
            assert_eq!(reference, encrypt, "{name} {format}");
            let opened = crypto::decrypt(&key, encrypt, appid).unwrap();
            assert_eq!(opened.as_str(), plaintext, "{name} {format}");
            assert_eq!(opened.prefix(), &prefix(case)[..]);
            // Signatures, and the query WeChat would send.
            assert_eq!(
                signature::sign(token, ts, nonce).to_string(),
                s(f, "signature")
            );
            let msg_sig = signature::sign_message(token, ts, nonce, encrypt);
            assert_eq!(
                msg_sig.to_string(),
                s(f, "msg_signature"),
                "{name} {format}"
            );
            let q = CallbackQuery::parse(s(f, "query")).unwrap();
            assert_eq!(q.msg_signature(), Some(s(f, "msg_signature")));
            assert_eq!(q.openid(), Some(s(case, "openid")));
            assert!(signature::verify_message(
                q.msg_signature().unwrap(),
                token,
                q.timestamp(),
                q.nonce(),
                encrypt
            ));
            // Any other token fails.
            assert!(!signature::verify_message(
                s(f, "msg_signature"),
                "other",
                ts,
                nonce,
                encrypt
            ));
        }
    }
}

#[test]
fn reply_cases_are_byte_identical() {
    let v = vectors();
    let cases = v["reply_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = s(case, "name");
        let key = key(case);
        let (token, nonce, appid) = (s(case, "token"), s(case, "nonce"), s(case, "appid"));
        let ts: u64 = s(case, "timestamp").parse().unwrap();
        let encrypt = s(case, "encrypt");
        let reference = common::reference_encrypt(
            &key_bytes(case),
            prefix(case),
            s(case, "plaintext").as_bytes(),
            appid,
        );
        assert_eq!(reference, encrypt, "{name}");
        let xml = reply::envelope(Format::Xml, token, encrypt, ts, nonce);
        assert_eq!(
            String::from_utf8(xml).unwrap(),
            s(case, "response_body_xml"),
            "{name}"
        );
        let json = reply::envelope(Format::Json, token, encrypt, ts, nonce);
        assert_eq!(
            String::from_utf8(json).unwrap(),
            s(case, "response_body_json"),
            "{name}"
        );
        // A fresh-prefix seal opens to the same document and verifies.
        let format = if s(case, "data_format") == "json" {
            Format::Json
        } else {
            Format::Xml
        };
        let sealed = reply::seal(
            format,
            &key,
            appid,
            token,
            s(case, "plaintext").as_bytes(),
            ts,
        )
        .unwrap();
        let text = String::from_utf8(sealed).unwrap();
        let envelope = sealed_envelope(s(case, "data_format"), &text).unwrap();
        let (fresh, fresh_nonce) = (envelope.encrypt, envelope.nonce);
        assert_ne!(fresh, encrypt, "fresh random prefix");
        assert_eq!(
            crypto::decrypt(&key, &fresh, appid).unwrap().as_str(),
            s(case, "plaintext")
        );
        assert!(
            !fresh_nonce.is_empty()
                && fresh_nonce.len() <= 10
                && fresh_nonce.bytes().all(|b| b.is_ascii_digit()),
            "{fresh_nonce}"
        );
        assert!(text.contains(
            &signature::sign_message(token, &ts.to_string(), &fresh_nonce, &fresh).to_string()
        ));
    }
}

#[test]
fn passive_replies_match_the_vector_plaintexts() {
    let v = vectors();
    for case in v["reply_cases"].as_array().unwrap().iter().skip(1) {
        let plaintext = s(case, "plaintext");
        let format = if s(case, "data_format") == "json" {
            Format::Json
        } else {
            Format::Xml
        };
        let ts: u64 = s(case, "timestamp").parse().unwrap();
        let reply = if plaintext.contains("transfer_customer_service") {
            wechat_push::Reply::transfer_customer_service()
        } else {
            wechat_push::Reply::text("你好 hello")
        };
        let body = reply.encode(
            format,
            "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
            "gh_97417a04a28d",
            ts,
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            plaintext,
            "{}",
            s(case, "name")
        );
    }
}

#[test]
fn wecom_echostr_decrypts_with_receive_id() {
    let v = vectors();
    let case = &v["wecom_echostr_case"];
    let key = key(case);
    // WeCom's query has no `signature`, so it is not a callback query this crate accepts.
    assert!(CallbackQuery::parse(s(case, "query")).is_err());
    let echostr = s(case, "echostr");
    assert!(signature::verify_message(
        s(case, "msg_signature"),
        s(case, "token"),
        s(case, "timestamp"),
        s(case, "nonce"),
        echostr
    ));
    let opened = crypto::decrypt(&key, echostr, s(case, "receive_id")).unwrap();
    assert_eq!(opened.as_str(), s(case, "expected_response_body"));
}

#[test]
fn negative_cases() {
    let v = vectors();
    let cases = v["negative_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = s(case, "name");
        let (token, ts, nonce) = (s(case, "token"), s(case, "timestamp"), s(case, "nonce"));
        match name {
            "appid_mismatch" => {
                let key = EncodingAesKey::new(s(case, "encoding_aes_key")).unwrap();
                let encrypt = s(case, "encrypt");
                assert!(signature::verify_message(
                    s(case, "msg_signature"),
                    token,
                    ts,
                    nonce,
                    encrypt
                ));
                assert_eq!(
                    crypto::decrypt(&key, encrypt, s(case, "configured_appid")).unwrap_err(),
                    DecryptError::AppIdMismatch
                );
                assert!(crypto::decrypt(&key, encrypt, s(case, "appid_inside_ciphertext")).is_ok());
            }
            "msg_signature_mismatch" | "encrypt_modified" => {
                let body = s(case, "request_body_safe");
                let encrypt = xml_field(body, "Encrypt").unwrap();
                assert!(!signature::verify_message(
                    s(case, "msg_signature"),
                    token,
                    ts,
                    nonce,
                    encrypt
                ));
                if let Some(sig) = case["signature"].as_str() {
                    assert!(
                        signature::verify(sig, token, ts, nonce),
                        "only the body signature is wrong"
                    );
                }
            }
            "signature_mismatch_get" => {
                assert!(!signature::verify(s(case, "signature"), token, ts, nonce));
            }
            other => panic!("unknown negative case {other}"),
        }
    }
}
