//! [`RouteSpec`] and [`PathMatcher`]: what a route matches, as configured.

use regex::Regex;

use crate::RouteError;

/// How a route matches the request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatcher {
    /// A regex matched against the path (never the query). The upstream path is capture
    /// group 1 when the regex has one (`/` when that group is empty or did not take part),
    /// else the whole path.
    Pattern(String),
    /// A path prefix on a segment boundary: `/api` matches `/api`, `/api/` and `/api/x`,
    /// not `/apix`; `/api/` matches `/api/…` only; `/` matches every path.
    Prefix {
        /// The prefix; must start with `/`.
        path: String,
        /// Forward only the rest of the path after the prefix (`/` when nothing is left).
        strip_prefix: bool,
    },
}

/// One route as configured: what it matches and which service answers.
///
/// The service itself is passed next to the spec to [`RouteTable::new`](crate::RouteTable::new).
#[derive(Clone, Debug)]
pub struct RouteSpec {
    /// Unique id of the route within a table.
    pub id: String,
    /// Name of the service that answers (carried into [`gw_core::RouteTag`]).
    pub service: String,
    /// How the path is matched.
    pub matcher: PathMatcher,
    /// Accepted methods; empty accepts every method.
    pub methods: Vec<http::Method>,
    /// `None` matches any host. Otherwise an exact host, compared case-insensitively with the
    /// port of the request's host ignored, or `*.example.com` for any sub-domain of
    /// `example.com` (not `example.com` itself).
    pub host: Option<String>,
    /// Higher priority is tried first; default 0.
    pub priority: i32,
}

impl RouteSpec {
    /// A route with no method, host or priority restriction.
    pub fn new(id: impl Into<String>, service: impl Into<String>, matcher: PathMatcher) -> Self {
        Self {
            id: id.into(),
            service: service.into(),
            matcher,
            methods: Vec::new(),
            host: None,
            priority: 0,
        }
    }

    /// Checks the spec on its own: non-empty id and service, a pattern that compiles, a
    /// prefix that starts with `/`, a host without port. Table-wide checks (duplicate ids)
    /// happen in [`RouteTable::new`](crate::RouteTable::new).
    pub fn validate(&self) -> Result<(), RouteError> {
        self.compile().map(drop)
    }

    /// Validates and returns the compiled regex of a pattern route.
    pub(crate) fn compile(&self) -> Result<Option<Regex>, RouteError> {
        if self.id.is_empty() {
            return Err(RouteError::EmptyId);
        }
        if self.service.is_empty() {
            return Err(RouteError::EmptyService);
        }
        if let Some(host) = &self.host {
            HostMatcher::parse(host)?;
        }
        match &self.matcher {
            PathMatcher::Pattern(pattern) => Regex::new(pattern)
                .map(Some)
                .map_err(RouteError::InvalidPattern),
            PathMatcher::Prefix { path, .. } => {
                if path.starts_with('/') {
                    Ok(None)
                } else {
                    Err(RouteError::InvalidPrefix(path.clone()))
                }
            }
        }
    }
}

/// A route's host condition, normalised at build time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostMatcher {
    /// Lower-case host without trailing dot.
    Exact(Box<str>),
    /// Lower-case `.example.com` of `*.example.com`.
    Suffix(Box<str>),
}

impl HostMatcher {
    pub(crate) fn parse(host: &str) -> Result<Self, RouteError> {
        let invalid = |reason| RouteError::InvalidHost {
            host: host.to_owned(),
            reason,
        };
        let h = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if h.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if h.bytes()
            .any(|b| b.is_ascii_whitespace() || b == b'/' || b.is_ascii_control())
        {
            return Err(invalid("must be a bare host name"));
        }
        if strip_port(&h).len() != h.len() {
            return Err(invalid(
                "must not carry a port (the request's port is ignored)",
            ));
        }
        if let Some(suffix) = h.strip_prefix('*') {
            if !suffix.starts_with('.') || suffix.len() < 2 || suffix.contains('*') {
                return Err(invalid("a wildcard must look like *.example.com"));
            }
            return Ok(Self::Suffix(suffix.into()));
        }
        if h.contains('*') {
            return Err(invalid("a wildcard must look like *.example.com"));
        }
        Ok(Self::Exact(h.into()))
    }

    /// `host` is the request's host, port already stripped.
    pub(crate) fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        match self {
            Self::Exact(want) => host.eq_ignore_ascii_case(want),
            Self::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

/// `example.com:8080` → `example.com`, `[::1]:8080` → `[::1]`.
pub(crate) fn strip_port(host: &str) -> &str {
    // Byte searches: `str::find(char)` goes through the generic pattern machinery.
    let bytes = host.as_bytes();
    if bytes.first() == Some(&b'[') {
        match bytes.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match bytes.iter().position(|&b| b == b':') {
            Some(colon) => &host[..colon],
            None => host,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("a.example.com:8080"), "a.example.com");
        assert_eq!(strip_port("a.example.com"), "a.example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    #[test]
    fn host_matchers() {
        let exact = HostMatcher::parse("API.Example.com").unwrap();
        assert!(exact.matches("api.example.COM"));
        assert!(exact.matches("api.example.com."));
        assert!(!exact.matches("x.api.example.com"));

        let wild = HostMatcher::parse("*.example.com").unwrap();
        assert!(wild.matches("a.example.com"));
        assert!(wild.matches("a.b.EXAMPLE.com"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches(".example.com"));
        assert!(!wild.matches("badexample.com"));

        for bad in ["", "*", "*.", "a.*.com", "*example.com", "a.com:80", "a b"] {
            assert!(HostMatcher::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(HostMatcher::parse("[::1]").is_ok());
    }
}
