//! Property tests of the crypto and signature core.

mod common;

use common::reference_encrypt;
use proptest::prelude::*;
use wechat_push::crypto::{self, EncodingAesKey};
use wechat_push::signature;

fn key() -> impl Strategy<Value = EncodingAesKey> {
    any::<[u8; 32]>().prop_map(EncodingAesKey::from_bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Encrypt then decrypt gives the message back, for any message, AppID and prefix (sealed
    /// by the tests' own `reference_encrypt`, so the prefix is known).
    #[test]
    fn encrypt_decrypt_round_trip(raw in any::<[u8; 32]>(), msg in ".{0,600}", app_id in "[ -~]{0,40}", prefix in any::<[u8; 16]>()) {
        let key = EncodingAesKey::from_bytes(raw);
        let sealed = reference_encrypt(&raw, prefix, msg.as_bytes(), &app_id);
        let opened = crypto::decrypt(&key, &sealed, &app_id).unwrap();
        prop_assert_eq!(opened.as_str(), msg.as_str());
        prop_assert_eq!(opened.prefix(), &prefix[..]);
        // The fresh-prefix variant opens too.
        let fresh = crypto::encrypt(&key, msg.as_bytes(), &app_id).unwrap();
        let reopened = crypto::decrypt(&key, &fresh, &app_id).unwrap();
        prop_assert_eq!(reopened.as_str(), msg.as_str());
    }

    /// Flipping any bit of `Encrypt` makes `msg_signature` verification fail (the layer checks
    /// it before decrypting) — and decryption of the flipped text never panics.
    #[test]
    fn any_bit_flip_of_encrypt_is_caught(raw in any::<[u8; 32]>(), msg in ".{0,200}", bit in any::<prop::sample::Index>()) {
        let key = EncodingAesKey::from_bytes(raw);
        let app_id = "wx1234567890abcdef";
        let encrypt = reference_encrypt(&raw, [7; 16], msg.as_bytes(), app_id);
        let sig = signature::sign_message("Token123", "1714200000", "42", &encrypt).to_string();
        let mut bytes = encrypt.clone().into_bytes();
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        // Flipped bytes may not be UTF-8; then they could never arrive as a string at all.
        if let Ok(flipped) = String::from_utf8(bytes) {
            prop_assert!(!signature::verify_message(&sig, "Token123", "1714200000", "42", &flipped));
            let _ = crypto::decrypt(&key, &flipped, app_id);
        }
    }

    /// Flipping any bit of the signature, the timestamp or the nonce fails verification.
    #[test]
    fn any_bit_flip_of_the_signed_inputs_is_caught(
        ts in "[0-9]{10}",
        nonce in "[0-9]{9,10}",
        encrypt in "[A-Za-z0-9+/]{24,64}",
        field in 0usize..4,
        bit in any::<prop::sample::Index>(),
    ) {
        let token = "Token123";
        let sig = signature::sign(token, &ts, &nonce).to_string();
        let msg_sig = signature::sign_message(token, &ts, &nonce, &encrypt).to_string();
        let mut parts = [sig.clone(), msg_sig.clone(), ts.clone(), nonce.clone()];
        let target = &mut parts[field];
        let mut bytes = target.clone().into_bytes();
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        prop_assume!(bytes.is_ascii());
        let flipped = String::from_utf8(bytes).unwrap();
        // A flip that only changes the case of a hex letter is the same signature.
        prop_assume!(!flipped.eq_ignore_ascii_case(target));
        *target = flipped;
        let [s, m, t, n] = &parts;
        prop_assert!(!signature::verify(s, token, t, n) || field == 1);
        prop_assert!(!signature::verify_message(m, token, t, n, &encrypt) || field == 0);
    }

    /// Decrypting arbitrary base64 with any key never panics.
    #[test]
    fn decrypting_garbage_never_panics(key in key(), raw in prop::collection::vec(any::<u8>(), 0..300)) {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(&raw);
        let _ = crypto::decrypt(&key, &text, "wx1234567890abcdef");
    }
}
