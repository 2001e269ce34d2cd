//! Errors of the registry's admin-facing operations.

use crate::ConfigProblem;

/// Why [`Registry::register`](crate::Registry::register) refused an instance.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegisterError {
    /// The service is neither declared under `[services.*]` nor discovered in Consul
    /// (the admin API answers 404).
    #[error("Service not found: {0}")]
    UnknownService(String),
    /// The instance is malformed (the admin API answers 400).
    #[error("Invalid instance: {}", ConfigProblem::join(.0))]
    InvalidInstance(Vec<ConfigProblem>),
}
