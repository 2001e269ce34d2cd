//! The limiter's errors, each knowing its HTTP answer.

use gw_core::{messages, HttpError};
use http::StatusCode;

/// Why a request is not let through.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RateLimitError {
    /// A limit is exhausted: 429 `Rate limit exceeded`.
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    Limited {
        /// Seconds until a request could pass.
        retry_after_secs: u64,
    },
    /// The shared store is unreachable and `failure_mode = "closed"`: 503.
    #[error("rate limit store unavailable (failure_mode = closed)")]
    Unavailable,
}

impl HttpError for RateLimitError {
    fn status(&self) -> StatusCode {
        match self {
            RateLimitError::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
            RateLimitError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self) -> &str {
        match self {
            RateLimitError::Limited { .. } => messages::RATE_LIMIT_EXCEEDED,
            RateLimitError::Unavailable => messages::SERVICE_UNAVAILABLE,
        }
    }
}
