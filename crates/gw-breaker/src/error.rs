//! The breaker's refusal as an HTTP answer: [`Rejected`] implements [`gw_core::HttpError`].

use std::fmt;

use gw_core::{messages, HttpError};
use http::StatusCode;

use crate::state::Rejected;

/// The message of a request refused by an open (or saturated half-open) breaker: the
/// gateway's one [`messages::SERVICE_UNAVAILABLE`].
pub const OPEN_MESSAGE: &str = messages::SERVICE_UNAVAILABLE;

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Open { remaining } => {
                write!(f, "circuit breaker open; probes in {remaining:?}")
            }
            Rejected::HalfOpenFull => {
                f.write_str("circuit breaker half-open; every probe slot taken")
            }
        }
    }
}

impl std::error::Error for Rejected {}

impl HttpError for Rejected {
    /// 503, whichever way the breaker refuses.
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    fn message(&self) -> &str {
        OPEN_MESSAGE
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn both_refusals_are_the_same_answer() {
        for r in [
            Rejected::Open {
                remaining: Duration::from_secs(1),
            },
            Rejected::HalfOpenFull,
        ] {
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(r.message(), "Service temporarily unavailable");
        }
    }
}
