//! Replies (placeholder, being written).
/// A reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `success`.
    Success,
}
