//! `signature` and `msg_signature`: SHA-1 over the byte-wise sorted, concatenated inputs.
//!
//! WeChat signs every callback with `signature = sha1(sort(token, timestamp, nonce))` and,
//! in safe and compatible mode, the body with `msg_signature = sha1(sort(token, timestamp,
//! nonce, Encrypt))` (PROTOCOL.md §2, §4.3). The inputs are sorted as byte strings, not as
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
        hex(&self.0)
    }

    /// Compares with a hex signature as received (upper- or lower-case), in constant time.
    ///
    /// Anything that is not exactly 40 hex digits is unequal.
    pub fn matches_hex(&self, hex: &str) -> bool {
        match decode_hex(hex.as_bytes()) {
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
        // The table above only writes ASCII.
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

/// A 20-byte digest as 40 lowercase hex digits.
pub(crate) fn hex(digest: &[u8; 20]) -> [u8; 40] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 40];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
    out
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

/// Decodes exactly 40 hex digits of either case; `None` for anything else.
///
/// Its time depends only on the received text, never on the digest it is compared with.
fn decode_hex(hex: &[u8]) -> Option<[u8; 20]> {
    if hex.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        invalid |= (hi | lo) & INVALID;
        *byte = (hi << 4) | (lo & 0x0f);
    }
    (invalid == 0).then_some(out)
}

/// Marks a byte that is not a hex digit in [`HEX_VALUE`].
const INVALID: u8 = 0x80;

/// The value of each byte as a hex digit of either case, or [`INVALID`].
const HEX_VALUE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// The value of one hex digit of either case.
pub(crate) fn nibble(c: u8) -> Option<u8> {
    let v = HEX_VALUE[usize::from(c)];
    (v & INVALID == 0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_as_bytes_not_numbers() {
        // PROTOCOL.md §2: numerically 486452656 would sort first.
        let sig = sign("AAAAA", "1714037059", "486452656");
        assert_eq!(sig.to_string(), "899cf89e464efb63f54ddac96b0a0a235f53aa78");
    }

    #[test]
    fn hex_table_agrees_with_to_digit() {
        for b in 0..=255u8 {
            let expected = char::from(b).to_digit(16).map(|d| d as u8);
            assert_eq!(nibble(b), expected, "byte {b:#04x}");
        }
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
