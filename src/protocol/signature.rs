//! `signature` and `msg_signature`: SHA-1 over the byte-wise sorted, concatenated inputs.
//!
//! WeChat signs every callback with `signature = sha1(sort(token, timestamp, nonce))` and,
//! in safe and compatible mode, the body with `msg_signature = sha1(sort(token, timestamp,
//! nonce, Encrypt))` (docs/protocol.md §2, §4.3). The inputs are sorted as byte strings, not as
//! numbers, concatenated without separator and hashed; the result is sent as 40 lowercase hex
//! digits.
//!
//! ```
//! use wechat_push::signature;
//!
//! // The official handshake example.
//! let sig = signature::sign("AAAAA", "1714036504", "1514711492");
//! assert_eq!(sig.to_string(), "f464b24fc39322e44b38aa78f5edd27bd1441696");
//! assert!(signature::verify("F464B24FC39322E44B38AA78F5EDD27BD1441696", "AAAAA", "1714036504", "1514711492"));
//! ```

use std::fmt;

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::hex;
// `query` decodes `%XX` with it.

/// A SHA-1 signature, as computed by [`sign`] or [`sign_message`].
///
/// `Display` writes it as WeChat sends it: 40 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 20]);

impl Signature {
    /// The 20 raw bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The digest as 40 lowercase hex digits, without allocating.
    pub fn to_hex(&self) -> [u8; 40] {
        hex::encode(&self.0)
    }

    /// Compares with a hex signature as received (upper- or lower-case), in constant time.
    ///
    /// Anything that is not exactly 40 hex digits is unequal.
    pub fn matches_hex(&self, hex: &str) -> bool {
        match hex::decode::<20>(hex.as_bytes()) {
            // Compared as a u128 and a u32: the same constant-time check as byte by byte,
            // in two steps instead of twenty.
            Some(theirs) => {
                let (ours_hi, ours_lo) = split_digest(&self.0);
                let (theirs_hi, theirs_lo) = split_digest(&theirs);
                bool::from(ours_hi.ct_eq(&theirs_hi) & ours_lo.ct_eq(&theirs_lo))
            }
            None => false,
        }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        // Hex digits are ASCII.
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

/// `signature` over `[token, timestamp, nonce]`: what WeChat puts in every callback's query.
pub fn sign(token: &str, timestamp: &str, nonce: &str) -> Signature {
    digest_sorted([token.as_bytes(), timestamp.as_bytes(), nonce.as_bytes()])
}

/// `msg_signature` over `[token, timestamp, nonce, encrypt]`: what authenticates a safe-mode
/// body, and what an encrypted reply carries as `MsgSignature`.
///
/// `encrypt` is the base64 text exactly as carried, after XML or JSON unescaping.
pub fn sign_message(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> Signature {
    digest_sorted([
        token.as_bytes(),
        timestamp.as_bytes(),
        nonce.as_bytes(),
        encrypt.as_bytes(),
    ])
}

/// [`sign_message`] over bytes the crate wrote itself (digits, base64), which need no UTF-8
/// check.
pub(crate) fn sign_message_bytes(
    token: &[u8],
    timestamp: &[u8],
    nonce: &[u8],
    encrypt: &[u8],
) -> Signature {
    digest_sorted([token, timestamp, nonce, encrypt])
}

/// Checks a received `signature` (hex, any case) in constant time.
pub fn verify(signature: &str, token: &str, timestamp: &str, nonce: &str) -> bool {
    sign(token, timestamp, nonce).matches_hex(signature)
}

/// Checks a received `msg_signature` (hex, any case) over `encrypt`, in constant time.
pub fn verify_message(
    msg_signature: &str,
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
) -> bool {
    sign_message(token, timestamp, nonce, encrypt).matches_hex(msg_signature)
}

/// Sorts the parts byte-wise and hashes them in that order, without concatenating into a buffer.
fn digest_sorted<const N: usize>(mut parts: [&[u8]; N]) -> Signature {
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part);
    }
    Signature(hasher.finalize().into())
}

/// A digest as its first 16 bytes and its last 4.
fn split_digest(digest: &[u8; 20]) -> (u128, u32) {
    let (hi, lo) = digest.split_at(16);
    let hi: [u8; 16] = hi.try_into().unwrap_or_default();
    let lo: [u8; 4] = lo.try_into().unwrap_or_default();
    (u128::from_le_bytes(hi), u32::from_le_bytes(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_as_bytes_not_numbers() {
        // docs/protocol.md §2: numerically 486452656 would sort first.
        let sig = sign("AAAAA", "1714037059", "486452656");
        assert_eq!(sig.to_string(), "899cf89e464efb63f54ddac96b0a0a235f53aa78");
    }

    #[test]
    fn every_digit_of_the_signature_counts() {
        let sig = sign("AAAAA", "1714036504", "1514711492");
        let hex = sig.to_string();
        assert!(sig.matches_hex(&hex));
        for i in 0..40 {
            let mut other = hex.clone().into_bytes();
            other[i] = if other[i] == b'0' { b'1' } else { b'0' };
            assert!(
                !sig.matches_hex(std::str::from_utf8(&other).unwrap()),
                "digit {i}"
            );
        }
    }

    #[test]
    fn rejects_malformed_hex() {
        let sig = sign("AAAAA", "1714036504", "1514711492");
        assert!(sig.matches_hex("f464b24fc39322e44b38aa78f5edd27bd1441696"));
        assert!(!sig.matches_hex("f464b24fc39322e44b38aa78f5edd27bd144169"));
        assert!(!sig.matches_hex("f464b24fc39322e44b38aa78f5edd27bd14416966"));
        assert!(!sig.matches_hex("g464b24fc39322e44b38aa78f5edd27bd1441696"));
        assert!(!sig.matches_hex(""));
        assert!(!sig.matches_hex("f464b24fc39322e44b38aa78f5edd27bd144169é"));
    }
}
