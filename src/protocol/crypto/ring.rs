//! [`KeyRing`]: the current key, the previous one during a key change, and the AppID.

use std::fmt;

use super::envelope::{decode_base64, open};
use super::{encrypt, DecryptError, Decrypted, EncodingAesKey, KeyId, RandomError};

/// The keys and AppID one application decrypts with.
///
/// An administrator can change the `EncodingAESKey` in the console while pushes encrypted under
/// the old one are in flight. Give the ring the previous key for that window: decryption tries
/// the current key, then the previous one, and [`Decrypted::key`] tells which one opened the
/// push so the reply can be sealed with the same key.
#[derive(Clone)]
pub struct KeyRing {
    current: EncodingAesKey,
    previous: Option<EncodingAesKey>,
    app_id: String,
}

impl KeyRing {
    /// A ring with one key, checking the AppID trailer against `app_id`.
    pub fn new(current: EncodingAesKey, app_id: impl Into<String>) -> Self {
        Self {
            current,
            previous: None,
            app_id: app_id.into(),
        }
    }

    /// Also accepts pushes under `previous` (the key before the last change).
    #[must_use]
    pub fn with_previous(mut self, previous: EncodingAesKey) -> Self {
        self.previous = Some(previous);
        self
    }

    /// The AppID every cipher text must carry.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The key with this id (the current one when no previous key is configured).
    pub fn key(&self, id: KeyId) -> &EncodingAesKey {
        match (id, &self.previous) {
            (KeyId::Previous, Some(previous)) => previous,
            _ => &self.current,
        }
    }

    /// Decrypts with the current key, then with the previous one.
    ///
    /// When both fail, the current key's error is returned.
    pub fn decrypt(&self, encrypt: &str) -> Result<Decrypted, DecryptError> {
        let buf = decode_base64(encrypt)?;
        match &self.previous {
            None => open(&self.current, buf, &self.app_id, KeyId::Current),
            Some(previous) => {
                let copy = buf.clone();
                open(&self.current, buf, &self.app_id, KeyId::Current).or_else(|err| {
                    open(previous, copy, &self.app_id, KeyId::Previous).map_err(|_| err)
                })
            }
        }
    }

    /// Encrypts `msg` with the key `id` names, under a fresh random prefix.
    ///
    /// # Panics
    ///
    /// If `msg` is 4 GiB or longer (see [`encrypt`]).
    pub fn encrypt(&self, id: KeyId, msg: &[u8]) -> Result<String, RandomError> {
        encrypt(self.key(id), msg, &self.app_id)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("previous", &self.previous)
            .field("app_id", &self.app_id)
            .finish()
    }
}
