use thiserror::Error;

/// A policy document that cannot be understood.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The text is not JSON.
    #[error("policy is not valid JSON: {0}")]
    NotJson(String),
    /// The JSON is not a policy document.
    #[error("policy is malformed: {0}")]
    Malformed(String),
}
