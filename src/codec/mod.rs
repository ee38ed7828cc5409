//! Body codec (placeholder, being written).
/// The wire format of a push body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// XML.
    Xml,
    /// JSON.
    Json,
}
