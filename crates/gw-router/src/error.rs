//! [`RouteError`]: why a route or a route table was rejected (and its
//! [`ConfigProblem`]); [`DispatchError`]: the router's own answers (404, 405).

use gw_core::{messages, ConfigProblem, HttpError};
use http::StatusCode;

/// Why a [`RouteSpec`](crate::RouteSpec) or a [`RouteTable`](crate::RouteTable) was rejected.
///
/// Each `Display` is a short human reason, ready to follow `Invalid route configuration: ` in
/// an admin API answer or a `routes[2]: ` path in `--check-config` output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The route id is empty.
    #[error("route id must not be empty")]
    EmptyId,
    /// The service name is empty.
    #[error("service must not be empty")]
    EmptyService,
    /// The `pattern` is not a valid regex (the regex crate's message follows).
    #[error("invalid pattern: {0}")]
    InvalidPattern(#[source] regex::Error),
    /// The `path` prefix does not start with `/`.
    #[error("invalid path prefix {0:?}: must start with '/'")]
    InvalidPrefix(String),
    /// The `host` is empty, carries a port, or is a malformed wildcard.
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two routes of one table share an id.
    #[error("duplicate route id {0:?}")]
    DuplicateId(String),
    /// Every pattern is valid on its own, but together they exceed the regex size limits.
    #[error("invalid pattern set: {0}")]
    PatternSet(#[source] regex::Error),
}

impl RouteError {
    /// The key of the route this error is about, relative to the route (`id`, `service`,
    /// `pattern`, `path`, `host`); empty for a problem of the table as a whole.
    pub fn path(&self) -> &'static str {
        match self {
            RouteError::EmptyId | RouteError::DuplicateId(_) => "id",
            RouteError::EmptyService => "service",
            RouteError::InvalidPattern(_) => "pattern",
            RouteError::InvalidPrefix(_) => "path",
            RouteError::InvalidHost { .. } => "host",
            RouteError::PatternSet(_) => "",
        }
    }
}

/// The one place a rejected route becomes a configuration problem: the key from
/// [`RouteError::path`], the message from its `Display`.
impl From<RouteError> for ConfigProblem {
    fn from(e: RouteError) -> Self {
        ConfigProblem::new(e.path(), e.to_string())
    }
}

/// Why the router answered a request itself instead of calling a route's service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// No route matches host and path: 404.
    #[error("{}", messages::ROUTE_NOT_FOUND)]
    NotFound,
    /// A route matches host and path but not the method: 405 (the answer carries `Allow`).
    #[error("{}", messages::METHOD_NOT_ALLOWED)]
    MethodNotAllowed,
}

impl HttpError for DispatchError {
    fn status(&self) -> StatusCode {
        match self {
            DispatchError::NotFound => StatusCode::NOT_FOUND,
            DispatchError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn message(&self) -> &str {
        match self {
            DispatchError::NotFound => messages::ROUTE_NOT_FOUND,
            DispatchError::MethodNotAllowed => messages::METHOD_NOT_ALLOWED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_error_names_its_key() {
        let p = ConfigProblem::from(RouteError::InvalidPrefix("api".into())).under("routes[2]");
        assert_eq!(
            p.to_string(),
            "routes[2].path: invalid path prefix \"api\": must start with '/'"
        );
        assert_eq!(ConfigProblem::from(RouteError::EmptyId).path, "id");
    }

    #[test]
    fn dispatch_errors_are_the_gateway_answers() {
        assert_eq!(DispatchError::NotFound.status(), StatusCode::NOT_FOUND);
        assert_eq!(DispatchError::NotFound.message(), "Route not found");
        assert_eq!(
            DispatchError::MethodNotAllowed.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            DispatchError::MethodNotAllowed.message(),
            "Method not allowed"
        );
    }
}
