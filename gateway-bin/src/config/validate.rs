//! [`Config::validate`]: every semantic problem of a configuration, each as a
//! [`ConfigProblem`] with its path. Each crate checks its own section (`validate()`, paths
//! relative to it); this puts the prefixes in front and adds the checks across sections
//! (unknown services, duplicate ids).

use std::collections::{BTreeMap, HashSet};

use gw_auth::AuthMethod;
use gw_breaker::BreakerConfig;
use gw_core::ConfigProblem;

use super::{Config, ConfigErrors, RouteConfig, ServiceConfig};

/// Bounds of `server.max_request_line_bytes` (hyper refuses request targets above 65534
/// bytes by itself).
const MIN_REQUEST_LINE: usize = 256;
const MAX_REQUEST_LINE: usize = 65_534;
/// Bounds of `server.max_header_bytes`.
const MIN_HEADER_BYTES: usize = 1024;
const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Upper bound of `server.max_headers`.
const MAX_HEADERS: usize = 1000;

impl Config {
    /// Every semantic problem, each with its path.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        if self.server.max_body_bytes == 0 {
            errors.push(ConfigProblem::new(
                "server.max_body_bytes",
                "must be greater than 0",
            ));
        }
        if self.server.idle_timeout_secs == 0 {
            errors.push(ConfigProblem::new(
                "server.idle_timeout_secs",
                "must be greater than 0",
            ));
        }
        if self.server.max_connections == 0 {
            errors.push(ConfigProblem::new(
                "server.max_connections",
                "must be greater than 0",
            ));
        }
        let server = &self.server;
        for (key, value, range) in [
            (
                "server.max_request_line_bytes",
                server.max_request_line_bytes,
                MIN_REQUEST_LINE..=MAX_REQUEST_LINE,
            ),
            (
                "server.max_header_bytes",
                server.max_header_bytes,
                MIN_HEADER_BYTES..=MAX_HEADER_BYTES,
            ),
            ("server.max_headers", server.max_headers, 1..=MAX_HEADERS),
        ] {
            if !range.contains(&value) {
                errors.push(ConfigProblem::new(
                    key,
                    format!("must be between {} and {}", range.start(), range.end()),
                ));
            }
        }
        if server.max_header_bytes < server.max_request_line_bytes {
            errors.push(ConfigProblem::new(
                "server.max_header_bytes",
                "must be at least server.max_request_line_bytes",
            ));
        }
        if let Some(tls) = &self.server.tls {
            for (key, file) in [("cert", &tls.cert), ("key", &tls.key)] {
                if !file.is_file() {
                    errors.push(ConfigProblem::new(
                        format!("server.tls.{key}"),
                        format!("file not found: {}", file.display()),
                    ));
                }
            }
            if tls.listen == self.server.listen && tls.listen.port() != 0 {
                errors.push(ConfigProblem::new(
                    "server.tls.listen",
                    "must differ from server.listen",
                ));
            }
        }
        if self.admin.listen == self.server.listen && self.admin.listen.port() != 0 {
            errors.push(ConfigProblem::new(
                "admin.listen",
                "must differ from server.listen",
            ));
        }
        let token_set = self.admin.token.as_deref().is_some_and(|t| !t.is_empty());
        if self.admin.token.as_deref() == Some("") {
            errors.push(ConfigProblem::new(
                "admin.token",
                "must not be empty (an empty token does not turn authentication off; remove the key to run without a token on a loopback listener)",
            ));
        } else if !self.admin.listen.ip().is_loopback() && !token_set {
            errors.push(ConfigProblem::new(
                "admin.token",
                "required when admin.listen is not a loopback address",
            ));
        }
        for (i, host) in self.admin.allowed_hosts.iter().flatten().enumerate() {
            if host.is_empty() || host.contains(['/', ' ', '@', ',']) {
                errors.push(ConfigProblem::new(
                    format!("admin.allowed_hosts[{i}]"),
                    format!("must be a host or host:port, got \"{host}\""),
                ));
            }
        }
        if let Err(e) = crate::logging::parse_filter(&self.log.level) {
            errors.push(ConfigProblem::new("log.level", e));
        }
        let mut nested = |prefix: &str, problems: Vec<ConfigProblem>| {
            errors.extend(problems.into_iter().map(|p| p.under(prefix)));
        };
        nested("store", self.store.problems());
        if let Some(jwt) = &self.auth.jwt {
            nested("auth.jwt", jwt.validate());
        }
        nested("rate_limit", self.rate_limit.validate());
        nested("circuit_breaker", self.circuit_breaker.validate());
        if let Some(consul) = &self.discovery.consul {
            nested("discovery.consul", consul.validate());
        }
        for (name, service) in &self.services {
            validate_service(name, service, &self.circuit_breaker, &mut errors);
        }
        let mut ids = HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            errors.extend(
                route
                    .problems(&self.services, self.auth.jwt.is_some())
                    .into_iter()
                    .map(|p| p.under(&at)),
            );
            if !route.id.is_empty() && !ids.insert(route.id.as_str()) {
                errors.push(ConfigProblem::new(
                    format!("{at}.id"),
                    format!("duplicate route id \"{}\"", route.id),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

fn validate_service(
    name: &str,
    service: &ServiceConfig,
    defaults: &BreakerConfig,
    errors: &mut Vec<ConfigProblem>,
) {
    if name.is_empty() {
        errors.push(ConfigProblem::new(
            "services",
            "service name must not be empty",
        ));
    }
    let at = format!("services.{name}");
    if let Some(hc) = &service.health_check {
        errors.extend(
            hc.validate()
                .into_iter()
                .map(|p| p.under(&format!("{at}.health_check"))),
        );
    }
    if let Some(o) = &service.circuit_breaker {
        errors.extend(
            o.apply(defaults)
                .validate()
                .into_iter()
                .map(|p| p.under(&format!("{at}.circuit_breaker"))),
        );
    }
    let mut ids = HashSet::new();
    for (j, inst) in service.instances.iter().enumerate() {
        let at = format!("{at}.instances[{j}]");
        // The one instance check (gw-discovery), shared with the admin API, Consul and the
        // shared store.
        errors.extend(inst.problems().into_iter().map(|p| p.under(&at)));
        if !inst.id.is_empty() && !ids.insert(inst.id.as_str()) {
            errors.push(ConfigProblem::new(
                format!("{at}.id"),
                format!("duplicate instance id \"{}\"", inst.id),
            ));
        }
    }
}

impl RouteConfig {
    /// Problems of this route, paths relative to it (`service`, `pattern`, …).
    pub fn problems(
        &self,
        services: &BTreeMap<String, ServiceConfig>,
        jwt_configured: bool,
    ) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        if self.auth_required && self.auth != AuthMethod::ApiKey && !jwt_configured {
            errors.push(ConfigProblem::new(
                "auth",
                "JWT authentication needs an [auth.jwt] section",
            ));
        }
        if let Some(limit) = &self.rate_limit {
            errors.extend(limit.validate().into_iter().map(|p| p.under("rate_limit")));
        }
        if let Some(security) = &self.security {
            errors.extend(security.validate().into_iter().map(|p| p.under("security")));
        }
        if self.id.is_empty() {
            errors.push(ConfigProblem::new("id", "must not be empty"));
        }
        if self.service.is_empty() {
            errors.push(ConfigProblem::new("service", "must not be empty"));
        } else if !services.contains_key(&self.service) {
            errors.push(ConfigProblem::new(
                "service",
                format!("unknown service \"{}\"", self.service),
            ));
        }
        match (&self.pattern, &self.path) {
            (Some(_), Some(_)) => errors.push(ConfigProblem::new(
                "path",
                "give either pattern or path, not both",
            )),
            (None, None) => errors.push(ConfigProblem::new(
                "pattern",
                "one of pattern or path is required",
            )),
            (Some(p), None) => {
                if let Err(e) = regex::Regex::new(p) {
                    let first = e.to_string();
                    let why = first.lines().last().unwrap_or("invalid regex").trim();
                    errors.push(ConfigProblem::new(
                        "pattern",
                        format!("invalid regex: {why}"),
                    ));
                }
                if self.strip_prefix {
                    errors.push(ConfigProblem::new(
                        "strip_prefix",
                        "only applies to routes with path",
                    ));
                }
            }
            (None, Some(p)) => {
                if !p.starts_with('/') {
                    errors.push(ConfigProblem::new("path", "must start with '/'"));
                }
            }
        }
        for (k, m) in self.methods.iter().enumerate() {
            if http::Method::from_bytes(m.as_bytes()).is_err() || m.is_empty() {
                errors.push(ConfigProblem::new(
                    format!("methods[{k}]"),
                    format!("invalid method \"{m}\""),
                ));
            }
        }
        if let Some(host) = &self.host {
            if host.is_empty() || host.contains(['/', ' ']) {
                errors.push(ConfigProblem::new(
                    "host",
                    format!("invalid host \"{host}\""),
                ));
            }
        }
        if let Some(t) = &self.timeout {
            for (key, v) in [("connect", t.connect), ("send", t.send), ("read", t.read)] {
                if !(v.is_finite() && v > 0.0 && v < 1e9) {
                    errors.push(ConfigProblem::new(
                        format!("timeout.{key}"),
                        "must be a positive number of seconds",
                    ));
                }
            }
        }
        if let Some(r) = &self.retry {
            if !(r.delay.is_finite() && r.delay >= 0.0 && r.delay < 1e9) {
                errors.push(ConfigProblem::new(
                    "retry.delay",
                    "must be zero or a positive number of seconds",
                ));
            }
            if r.times > 100 {
                errors.push(ConfigProblem::new("retry.times", "must be at most 100"));
            }
        }
        if let Some(h) = &self.headers {
            for (side, rules) in [("request", &h.request), ("response", &h.response)] {
                for (name, value) in &rules.add {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        errors.push(ConfigProblem::new(
                            format!("headers.{side}.add"),
                            format!("invalid header name \"{name}\""),
                        ));
                    }
                    if http::HeaderValue::from_str(value).is_err() {
                        errors.push(ConfigProblem::new(
                            format!("headers.{side}.add.{name}"),
                            "invalid header value",
                        ));
                    }
                }
                for (k, name) in rules.remove.iter().enumerate() {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        errors.push(ConfigProblem::new(
                            format!("headers.{side}.remove[{k}]"),
                            format!("invalid header name \"{name}\""),
                        ));
                    }
                }
            }
        }
        errors
    }
}
