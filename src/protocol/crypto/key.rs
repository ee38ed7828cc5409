//! [`EncodingAesKey`]: the key as typed into the console, validated and expanded once.

use std::fmt;
use std::str::FromStr;

use aes::cipher::{InnerIvInit, KeyInit};

use super::{Aes256CbcDec, Aes256CbcEnc};

/// The 32-byte AES key behind a 43-character `EncodingAESKey`.
///
/// Validated once, when configured: exactly 43 characters of `[A-Za-z0-9]`, as the WeChat
/// console generates them. `Debug` never shows the key.
#[derive(Clone)]
pub struct EncodingAesKey {
    key: [u8; 32],
    /// The expanded key schedules, computed once instead of per message.
    cipher: aes::Aes256,
}

impl PartialEq for EncodingAesKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(&self.key[..], &other.key[..]))
    }
}

impl Eq for EncodingAesKey {}

impl EncodingAesKey {
    /// Parses the key as typed into the WeChat console.
    ///
    /// ```
    /// use wechat_push::EncodingAesKey;
    ///
    /// assert!(EncodingAesKey::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").is_ok());
    /// let err = EncodingAesKey::new("too-short").unwrap_err();
    /// assert_eq!(err.to_string(), "EncodingAESKey must be 43 characters long, got 9");
    /// ```
    pub fn new(encoded: &str) -> Result<Self, InvalidEncodingAesKey> {
        let chars = encoded.chars().count();
        if chars != 43 {
            return Err(InvalidEncodingAesKey::Length(chars));
        }
        if let Some((position, found)) = encoded
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_alphanumeric())
        {
            return Err(InvalidEncodingAesKey::Character { position, found });
        }
        // Real keys often carry non-zero spare bits in the last character, which a strict
        // decoder rejects (docs/protocol.md §1). WHATWG's forgiving base64 ignores them (and the
        // missing `=`); its whitespace skipping does not matter after the check above.
        let bytes = base64_simd::forgiving_decode_to_vec(encoded.as_bytes())
            .map_err(|_| InvalidEncodingAesKey::Decode)?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| InvalidEncodingAesKey::Decode)?;
        Ok(Self::from_bytes(key))
    }

    /// Uses 32 raw key bytes directly.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let cipher = aes::Aes256::new(&key.into());
        Self { key, cipher }
    }

    fn iv(&self) -> &[u8] {
        &self.key[..16]
    }

    pub(super) fn encryptor(&self) -> Aes256CbcEnc<'_> {
        Aes256CbcEnc::inner_iv_init(&self.cipher, self.iv().into())
    }

    pub(super) fn decryptor(&self) -> Aes256CbcDec<'_> {
        Aes256CbcDec::inner_iv_init(&self.cipher, self.iv().into())
    }
}

impl FromStr for EncodingAesKey {
    type Err = InvalidEncodingAesKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Debug for EncodingAesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncodingAesKey(<redacted>)")
    }
}

/// Why a string is not a usable `EncodingAESKey`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidEncodingAesKey {
    /// The key is not 43 characters long (the count found).
    Length(usize),
    /// The key holds a character outside `[A-Za-z0-9]`.
    Character {
        /// Zero-based position of the character.
        position: usize,
        /// The character found there.
        found: char,
    },
    /// The characters do not decode to 32 bytes.
    Decode,
}

impl fmt::Display for InvalidEncodingAesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length(n) => write!(f, "EncodingAESKey must be 43 characters long, got {n}"),
            Self::Character { position, found } => write!(
                f,
                "EncodingAESKey may only hold A-Z, a-z and 0-9, found {found:?} at position {position}"
            ),
            Self::Decode => f.write_str("EncodingAESKey does not decode to 32 bytes"),
        }
    }
}

impl std::error::Error for InvalidEncodingAesKey {}

/// Which key of a [`KeyRing`](super::KeyRing) opened a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyId {
    /// The current key.
    Current,
    /// The previous key, still accepted after a key change in the console.
    Previous,
}
