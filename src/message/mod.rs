//! Typed messages (placeholder, being written).
/// A decoded push.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {}
