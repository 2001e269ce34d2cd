//! [`RouteError`]: why a route or a route table was rejected.

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
