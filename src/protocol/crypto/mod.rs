//! Safe-mode encryption: the `EncodingAESKey`, AES-256-CBC and the WeChat plaintext layout.
//!
//! A safe-mode push carries `Encrypt`: the standard base64 of AES-256-CBC (key = the 32 bytes of
//! the `EncodingAESKey`, IV = its first 16 bytes) over
//!
//! ```text
//! random(16) | msg_len (u32, big-endian) | msg | appid | PKCS#7 padding to a multiple of 32
//! ```
//!
//! (docs/protocol.md §4). [`decrypt`] checks every step and reports each failure as its own
//! [`DecryptError`]; [`encrypt`] builds the same layout around a fresh random prefix from the
//! operating system.
//!
//! ```
//! use wechat_push::crypto::{self, EncodingAesKey};
//!
//! let key = EncodingAesKey::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")?;
//! let sealed = crypto::encrypt(&key, b"<xml>...</xml>", "wx1234567890abcdef")?;
//! let opened = crypto::decrypt(&key, &sealed, "wx1234567890abcdef")?;
//! assert_eq!(opened.as_str(), "<xml>...</xml>");
//!
//! // The AppID trailer must match byte for byte.
//! assert!(crypto::decrypt(&key, &sealed, "wx1234567890abcdeF").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod envelope;
mod key;
mod ring;

#[cfg(any(test, feature = "test-util"))]
pub(crate) use envelope::encrypt_with_prefix;
pub use envelope::{decrypt, encrypt, DecryptError, Decrypted, RandomError};
pub(crate) use envelope::{seal_buffer, seal_in_place, sealed_len};
pub use key::{EncodingAesKey, InvalidEncodingAesKey, KeyId};
pub use ring::KeyRing;

// Over a borrowed cipher: the key schedules are expanded once, when the key is configured,
// and not copied per message.
type Aes256CbcDec<'a> = cbc::Decryptor<&'a aes::Aes256>;
type Aes256CbcEnc<'a> = cbc::Encryptor<&'a aes::Aes256>;

/// PKCS#7 block size WeChat pads to: the key length, 32 (docs/protocol.md §4.1).
const PAD_BLOCK: usize = 32;
/// `random(16) | msg_len(4)`: the room [`seal_in_place`] expects before the message.
const HEADER: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

    #[test]
    fn key_errors_say_what_is_wrong() {
        assert_eq!(
            EncodingAesKey::new("").unwrap_err(),
            InvalidEncodingAesKey::Length(0)
        );
        let with_plus = format!("{}+", &KEY[..42]);
        assert_eq!(
            EncodingAesKey::new(&with_plus).unwrap_err(),
            InvalidEncodingAesKey::Character {
                position: 42,
                found: '+'
            }
        );
        let multibyte = format!("{}é", &KEY[..42]);
        assert!(matches!(
            EncodingAesKey::new(&multibyte),
            Err(InvalidEncodingAesKey::Character { position: 42, .. })
        ));
    }

    #[test]
    fn debug_hides_the_key() {
        let key = EncodingAesKey::new(KEY).unwrap();
        let ring = KeyRing::new(key.clone(), "wx1");
        for shown in [format!("{key:?}"), format!("{ring:?}")] {
            assert!(!shown.contains("jWmYm7"), "{shown}");
            assert!(!shown.contains("141"), "{shown}"); // key byte 0x8d as decimal
        }
    }

    #[test]
    fn each_failure_has_its_variant() {
        let key = EncodingAesKey::new(KEY).unwrap();
        assert_eq!(
            decrypt(&key, "%%%", "wx").unwrap_err(),
            DecryptError::Base64
        );
        assert_eq!(
            decrypt(&key, "", "wx").unwrap_err(),
            DecryptError::Length(0)
        );
        assert_eq!(
            decrypt(&key, "AAAA", "wx").unwrap_err(),
            DecryptError::Length(3)
        );
        let sealed = encrypt_with_prefix(&key, [7; 16], b"hi", "wx1");
        assert_eq!(
            decrypt(&key, &sealed, "wx2").unwrap_err(),
            DecryptError::AppIdMismatch
        );
        let other = EncodingAesKey::from_bytes([1; 32]);
        assert!(decrypt(&other, &sealed, "wx1").is_err());
        let not_utf8 = encrypt_with_prefix(&key, [7; 16], &[0xff, 0xfe], "wx1");
        assert_eq!(
            decrypt(&key, &not_utf8, "wx1").unwrap_err(),
            DecryptError::NotUtf8
        );
    }

    #[test]
    #[should_panic(expected = "HEADER bytes of room")]
    fn sealing_a_buffer_without_header_room_is_a_bug_not_a_cipher_text() {
        let key = EncodingAesKey::new(KEY).unwrap();
        let mut buf = b"<xml/>".to_vec();
        seal_in_place(&key, [7; 16], &mut buf, "wx1");
    }

    #[test]
    fn ring_falls_back_to_previous_key() {
        let old = EncodingAesKey::from_bytes([1; 32]);
        let new = EncodingAesKey::new(KEY).unwrap();
        let sealed = encrypt_with_prefix(&old, [0; 16], b"<xml/>", "wx1");
        let ring = KeyRing::new(new.clone(), "wx1");
        assert!(ring.decrypt(&sealed).is_err());
        let ring = ring.with_previous(old);
        let opened = ring.decrypt(&sealed).unwrap();
        assert_eq!(opened.key(), KeyId::Previous);
        assert_eq!(opened.as_str(), "<xml/>");
        let fresh = encrypt_with_prefix(&new, [0; 16], b"<xml/>", "wx1");
        assert_eq!(ring.decrypt(&fresh).unwrap().key(), KeyId::Current);
    }

    /// The crate's own sealing reproduces every cipher text of tests/data/vectors.json (made
    /// by wechatpy) byte for byte, given the vector's prefix. (tests/vectors.rs checks the
    /// vectors against decryption and against the tests' independent sealer; only here can
    /// the crate's deterministic path be reached.)
    #[test]
    fn sealing_reproduces_the_vectors() {
        let v: Value =
            serde_json::from_str(include_str!("../../../tests/data/vectors.json")).unwrap();
        let s = |v: &Value, key: &str| -> String {
            v[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} missing in {v}"))
                .to_owned()
        };
        let mut checked = 0;
        // `case` holds the key, AppID and prefix; `doc` the plaintext and its `Encrypt`.
        let mut check = |case: &Value, doc: &Value| {
            let key = EncodingAesKey::new(&s(case, "encoding_aes_key")).unwrap();
            let prefix: [u8; 16] = hex::decode(s(case, "random_hex"))
                .unwrap()
                .try_into()
                .unwrap();
            let sealed = encrypt_with_prefix(
                &key,
                prefix,
                s(doc, "plaintext").as_bytes(),
                &s(case, "appid"),
            );
            assert_eq!(sealed, s(doc, "encrypt"), "{}", s(case, "name"));
            checked += 1;
        };
        let official = &v["official_doc_case"];
        check(official, official);
        for case in v["encrypt_cases"].as_array().unwrap() {
            check(case, &case["xml"]);
            check(case, &case["json"]);
        }
        for case in v["reply_cases"].as_array().unwrap() {
            check(case, case);
        }
        assert_eq!(checked, 1 + 5 * 2 + 4);
    }

    /// The platforms' sealing vectors (docs/platforms.md §5): WeCom's reply (V3, wechatpy), the
    /// component's reply (V5, the official walkthrough) and WxJava's component crypto (V6).
    #[test]
    fn sealing_reproduces_the_platform_vectors() {
        let v: Value =
            serde_json::from_str(include_str!("../../../tests/data/platforms.json")).unwrap();
        let s = |v: &Value, key: &str| v[key].as_str().unwrap().to_owned();
        let cases = [
            (&v["v3"], &v["v3"]["reply"], s(&v["v3"]["reply"], "random")),
            (
                &v["v5"],
                &v["v5"]["reply"],
                s(&v["v5"]["reply"], "random_text"),
            ),
            (&v["v6"], &v["v6"], s(&v["v6"], "random")),
        ];
        for (case, doc, random) in cases {
            let key = EncodingAesKey::new(&s(case, "encoding_aes_key")).unwrap();
            let prefix: [u8; 16] = random.as_bytes().try_into().unwrap();
            let sealed = encrypt_with_prefix(
                &key,
                prefix,
                s(doc, "plaintext").as_bytes(),
                &s(case, "receive_id"),
            );
            assert_eq!(sealed, s(doc, "encrypt"), "{}", s(case, "name"));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Sealing under any prefix opens to the message, with that prefix, for any key,
        /// message and AppID.
        #[test]
        fn any_prefix_round_trips(
            raw in any::<[u8; 32]>(),
            msg in ".{0,600}",
            app_id in "[ -~]{0,40}",
            prefix in any::<[u8; 16]>(),
        ) {
            let key = EncodingAesKey::from_bytes(raw);
            let sealed = encrypt_with_prefix(&key, prefix, msg.as_bytes(), &app_id);
            let opened = decrypt(&key, &sealed, &app_id).unwrap();
            prop_assert_eq!(opened.as_str(), msg.as_str());
            prop_assert_eq!(opened.prefix(), &prefix[..]);
        }
    }
}
