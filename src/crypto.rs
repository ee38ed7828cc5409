//! Crypto (placeholder, being written).
/// A key.
#[derive(Clone)]
pub struct EncodingAesKey([u8; 32]);
impl std::fmt::Debug for EncodingAesKey { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("EncodingAesKey(..)") } }
/// Keys.
#[derive(Clone, Debug)]
pub struct KeyRing {}
