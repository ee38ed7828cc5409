//! The envelope: [`decrypt`] and [`encrypt`] of WeChat's plaintext layout, and the in-place
//! sealing the reply writers use.

use std::fmt;

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut};
use base64_simd::STANDARD;

use super::{EncodingAesKey, KeyId, HEADER, PAD_BLOCK};
use crate::random;

/// A decrypted message: the plaintext document, known to be UTF-8.
#[derive(Clone, PartialEq, Eq)]
pub struct Decrypted {
    buf: Vec<u8>,
    msg_end: usize,
    key: KeyId,
}

impl Decrypted {
    /// The plaintext document (XML or JSON).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes())
            .expect("invariant: `open` checked that the message is UTF-8")
    }

    /// The plaintext document's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf
            .get(HEADER..self.msg_end)
            .expect("invariant: `open` checked HEADER <= msg_end <= the plaintext's length")
    }

    /// The 16-byte random prefix the sender chose.
    pub fn prefix(&self) -> &[u8] {
        self.buf
            .get(..16)
            .expect("invariant: `open` checked that the plaintext holds the 20-byte header")
    }

    /// Which key opened it ([`KeyId::Current`] for [`decrypt`]).
    pub fn key(&self) -> KeyId {
        self.key
    }
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("msg", &self.as_str())
            .field("key", &self.key)
            .finish()
    }
}

/// Why an `Encrypt` value could not be opened. Each step of docs/protocol.md §4.4 has its variant.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecryptError {
    /// `Encrypt` is not standard base64.
    Base64,
    /// The cipher text is empty or not a multiple of the 16-byte AES block (its length).
    Length(usize),
    /// The PKCS#7 padding is not 1 to 32 bytes of equal value.
    Padding,
    /// Less than the 20-byte header remains after unpadding.
    TooShort,
    /// The `msg_len` field points past the end of the plaintext.
    MessageLength,
    /// The AppID trailer is not the configured AppID.
    AppIdMismatch,
    /// The message is not UTF-8.
    NotUtf8,
}

impl fmt::Display for DecryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Base64 => f.write_str("Encrypt is not valid base64"),
            Self::Length(n) => write!(
                f,
                "Encrypt decodes to {n} bytes, not a non-zero multiple of 16"
            ),
            Self::Padding => f.write_str("bad padding after decryption (wrong EncodingAESKey?)"),
            Self::TooShort => f.write_str("decrypted text is shorter than its 20-byte header"),
            Self::MessageLength => f.write_str("decrypted message length runs past the end"),
            Self::AppIdMismatch => f.write_str(
                "decrypted AppID does not match the configured one (the receive id: AppID, CorpID, SuiteID or empty)",
            ),
            Self::NotUtf8 => f.write_str("decrypted message is not UTF-8"),
        }
    }
}

impl std::error::Error for DecryptError {}

/// The operating system's random source failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RandomError(pub(crate) ());

impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the operating system's random source failed")
    }
}

impl std::error::Error for RandomError {}

/// Decrypts an `Encrypt` value and checks its AppID trailer against `app_id`.
///
/// Verify `msg_signature` first ([`crate::signature::verify_message`]): decrypting an
/// unauthenticated cipher text gives an attacker a padding oracle.
pub fn decrypt(
    key: &EncodingAesKey,
    encrypt: &str,
    app_id: &str,
) -> Result<Decrypted, DecryptError> {
    open(key, decode_base64(encrypt)?, app_id, KeyId::Current)
}

/// Encrypts `msg` for `app_id` under a fresh random 16-byte prefix and returns `Encrypt`.
///
/// # Panics
///
/// If `msg` is 4 GiB or longer: the layout stores its length in 32 bits, so such a message
/// cannot be sealed. (WeChat takes replies of a few kilobytes.)
pub fn encrypt(key: &EncodingAesKey, msg: &[u8], app_id: &str) -> Result<String, RandomError> {
    Ok(encrypt_with_prefix(key, random::os_random()?, msg, app_id))
}

/// Encrypts under a caller-chosen prefix: what [`encrypt`] does after drawing the prefix.
///
/// Crate-private: a public way to choose the "random" prefix would invite reusing one. The
/// unit tests below use it to reproduce the test vectors byte for byte; the integration tests,
/// benches and fuzz harnesses build known cipher texts with their own sealer instead.
///
/// # Panics
///
/// If `msg` is 4 GiB or longer (see [`encrypt`]).
pub(crate) fn encrypt_with_prefix(
    key: &EncodingAesKey,
    prefix: [u8; 16],
    msg: &[u8],
    app_id: &str,
) -> String {
    let mut buf = seal_buffer(sealed_len(msg.len(), app_id));
    buf.extend_from_slice(msg);
    let cipher = seal_in_place(key, prefix, &mut buf, app_id);
    STANDARD.encode_to_string(cipher)
}

/// The cipher text length for a message of `msg_len` bytes.
pub(crate) fn sealed_len(msg_len: usize, app_id: &str) -> usize {
    let unpadded = HEADER + msg_len + app_id.len();
    unpadded + PAD_BLOCK - unpadded % PAD_BLOCK
}

/// A buffer for [`seal_in_place`]: [`HEADER`] bytes of room, with `capacity` in all for the
/// message to be written after them (and the AppID and padding sealing adds).
pub(crate) fn seal_buffer(capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(capacity.max(HEADER));
    buf.resize(HEADER, 0);
    buf
}

/// Encrypts, in place, a buffer that holds [`HEADER`] bytes of room followed by the
/// message: fills in the prefix and length, appends the AppID and the padding, and returns
/// the cipher text (the whole buffer).
///
/// # Panics
///
/// If `buf` is shorter than [`HEADER`] (it did not come from [`seal_buffer`]: a bug here),
/// or if the message is 4 GiB or longer (the caller's message cannot be sealed; the public
/// functions document it).
pub(crate) fn seal_in_place<'a>(
    key: &EncodingAesKey,
    prefix: [u8; 16],
    buf: &'a mut Vec<u8>,
    app_id: &str,
) -> &'a [u8] {
    let msg_len = buf
        .len()
        .checked_sub(HEADER)
        .expect("invariant: a buffer to seal starts with HEADER bytes of room (seal_buffer)");
    let len = u32::try_from(msg_len)
        .expect("a message to seal is shorter than 4 GiB: its length field is 32 bits");
    buf[..16].copy_from_slice(&prefix);
    buf[16..HEADER].copy_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(app_id.as_bytes());
    let unpadded = buf.len();
    let total = sealed_len(msg_len, app_id);
    // The padding length is 1..=32, so it fits in a byte.
    buf.resize(total, (total - unpadded) as u8);
    key.encryptor()
        .encrypt_padded_mut::<NoPadding>(buf, total)
        .expect("invariant: the buffer is `total` bytes, a whole number of AES blocks")
}

pub(super) fn decode_base64(encrypt: &str) -> Result<Vec<u8>, DecryptError> {
    STANDARD
        .decode_to_vec(encrypt)
        .map_err(|_| DecryptError::Base64)
}

pub(super) fn open(
    key: &EncodingAesKey,
    mut buf: Vec<u8>,
    app_id: &str,
    id: KeyId,
) -> Result<Decrypted, DecryptError> {
    if buf.is_empty() || !buf.len().is_multiple_of(16) {
        return Err(DecryptError::Length(buf.len()));
    }
    let total = buf.len();
    let len = key
        .decryptor()
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| DecryptError::Length(total))?
        .len();
    let pad = usize::from(*buf.get(len.wrapping_sub(1)).ok_or(DecryptError::Padding)?);
    if pad == 0 || pad > PAD_BLOCK || pad > len {
        return Err(DecryptError::Padding);
    }
    let unpadded = len - pad;
    if buf[unpadded..len].iter().any(|&b| usize::from(b) != pad) {
        return Err(DecryptError::Padding);
    }
    let header: [u8; 4] = buf
        .get(16..HEADER)
        .and_then(|s| s.try_into().ok())
        .filter(|_| unpadded >= HEADER)
        .ok_or(DecryptError::TooShort)?;
    let msg_len =
        usize::try_from(u32::from_be_bytes(header)).map_err(|_| DecryptError::MessageLength)?;
    let msg_end = HEADER
        .checked_add(msg_len)
        .filter(|&end| end <= unpadded)
        .ok_or(DecryptError::MessageLength)?;
    if &buf[msg_end..unpadded] != app_id.as_bytes() {
        return Err(DecryptError::AppIdMismatch);
    }
    if std::str::from_utf8(&buf[HEADER..msg_end]).is_err() {
        return Err(DecryptError::NotUtf8);
    }
    Ok(Decrypted {
        buf,
        msg_end,
        key: id,
    })
}
