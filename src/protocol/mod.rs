//! The protocol core, sans-IO: signatures, the AES envelope, the XML/JSON codec, typed messages
//! and replies, and the checks that turn a verified query and a body into an opened push.
//! Plain functions over bytes; nothing here knows tower, tokio or a socket.

pub mod clock;
pub mod codec;
pub mod crypto;
pub(crate) mod endpoint;
pub(crate) mod hex;
pub mod message;
pub mod query;
pub(crate) mod random;
pub(crate) mod rejection;
pub mod reply;
pub mod signature;
