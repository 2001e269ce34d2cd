//! The proxy's errors and their HTTP answers.

use gw_core::{messages, BoxError};
use http::StatusCode;

/// Why the proxy answered itself instead of passing on the upstream's answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The connection was refused or reset, or the upstream's answer was malformed (502).
    #[error("bad gateway: {0}")]
    BadGateway(#[source] BoxError),
    /// Connecting, sending the request or waiting for the response headers took too long
    /// (504).
    #[error("upstream timed out")]
    Timeout,
    /// The service has no instance to send the request to (503).
    #[error("no healthy upstream")]
    NoHealthyUpstream,
    /// The request body is larger than `max_body_bytes` (413).
    #[error("request body too large")]
    BodyTooLarge,
    /// The client's request body could not be read: malformed chunked framing, a body that
    /// ended before its `Content-Length`, a reset stream (400). The client's fault: never
    /// retried, and not reported against the instance.
    #[error("client request body: {0}")]
    ClientBody(#[source] BoxError),
}

impl gw_core::HttpError for ProxyError {
    fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::NoHealthyUpstream => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> &str {
        match self {
            ProxyError::BadGateway(_) => messages::BAD_GATEWAY,
            ProxyError::Timeout => messages::GATEWAY_TIMEOUT,
            ProxyError::NoHealthyUpstream => messages::NO_HEALTHY_UPSTREAM,
            ProxyError::BodyTooLarge => messages::BODY_TOO_LARGE,
            ProxyError::ClientBody(_) => messages::BAD_REQUEST,
        }
    }
}
