//! The configuration model: TOML file + `GW_` environment overrides (figment), and `validate()`.
//!
//! Every struct denies unknown keys, so a typo is an error that names the key, and is read
//! only from a table (through [`gw_core::strict`]: a list in its place is refused, where serde
//! alone would fill the fields from it in order). `validate()`
//! collects every semantic problem with its path (`routes[2].service: unknown service "bills"`),
//! positions zero-based as SPEC §7 asks.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use gw_auth::{AuthMethod, JwtConfig, SecurityConfig};
use gw_breaker::{BreakerConfig, BreakerOverride};
use gw_core::strict::Checked;
use gw_core::ConfigProblem;
use gw_discovery::{ConsulConfig, HealthCheckConfig};
use gw_proxy::{Instance, LoadBalancer, UpstreamProtocol};
use gw_ratelimit::{Limit, RateLimitConfig};

use crate::store::StoreConfig;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The default configuration, embedded so that `gateway` runs with no file at all.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/gateway.toml");

/// Bounds of `server.max_request_line_bytes` (hyper refuses request targets above 65534
/// bytes by itself).
const MIN_REQUEST_LINE: usize = 256;
const MAX_REQUEST_LINE: usize = 65_534;
/// Bounds of `server.max_header_bytes`.
const MIN_HEADER_BYTES: usize = 1024;
const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Upper bound of `server.max_headers`.
const MAX_HEADERS: usize = 1000;

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: the proxy listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[admin]`: the admin listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// `[log]`: process log and access log.
    #[serde(default)]
    pub log: LogConfig,
    /// `[store]`: where state shared by gateway nodes lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// `[auth]`: `[auth.jwt]`.
    #[serde(default, skip_serializing_if = "AuthSection::is_empty")]
    pub auth: AuthSection,
    /// `[rate_limit]`: algorithm, failure mode, default/global/per-IP limits.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// `[circuit_breaker]`: breaker defaults (a service may override).
    #[serde(default)]
    pub circuit_breaker: BreakerConfig,
    /// `[discovery]`: `[discovery.consul]`.
    #[serde(default)]
    pub discovery: DiscoverySection,
    /// `[services.NAME]`: upstream services.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
    /// `[[routes]]`: the route table, in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// `[auth]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `[auth.jwt]`; without it, no route may use JWT authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
}

impl AuthSection {
    fn is_empty(&self) -> bool {
        self.jwt.is_none()
    }
}

/// `[discovery]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySection {
    /// `[discovery.consul]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consul: Option<ConsulConfig>,
}

/// The admin listener's connection limit (or `server.max_connections` when smaller): a flood
/// of connections on the proxy listener leaves the admin API reachable, and one on the admin
/// listener cannot take many of the process's file descriptors.
pub const ADMIN_MAX_CONNECTIONS: usize = 256;

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the proxy listener (HTTP/1.1 and h2c on one port).
    pub listen: SocketAddr,
    /// Runtime worker threads; 0 = one per core; 1 = a single-threaded runtime.
    pub workers: usize,
    /// TLS listener (HTTP/1.1 and HTTP/2 by ALPN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: u64,
    /// CIDRs whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// How long shutdown waits for requests in flight.
    pub shutdown_timeout_secs: u64,
    /// A client connection that, for this long, starts no request, gets no byte of an
    /// answer and has no request waiting for its upstream is closed (idle keep-alive
    /// connections, slowly sent request heads, a connection stopped within the HTTP/2
    /// preface, an HTTP/2 connection without an open stream, a client that stops reading
    /// its answer or never opens its HTTP/2 flow-control window: the send timeout). Also
    /// bounds the TLS handshake and HTTP/2 keep-alive pings (interval and answer).
    pub idle_timeout_secs: u64,
    /// Most client connections open at once on the proxy listener, and again on the TLS
    /// listener (the admin listener: at most [`ADMIN_MAX_CONNECTIONS`] or this, whichever is
    /// less). A connection over the limit is accepted and closed at once, without an answer.
    pub max_connections: usize,
    /// Largest request line (`METHOD target HTTP/1.1`) in bytes; a longer one gets 414.
    pub max_request_line_bytes: usize,
    /// Largest request head (request line and every field) in bytes; a larger one gets 431.
    pub max_header_bytes: usize,
    /// Most header fields in a request; more get 431.
    pub max_headers: usize,
    /// Merge runs of `/` in request paths (nginx's `merge_slashes`).
    pub merge_slashes: bool,
    /// `%2F` / `%5C` in request paths: `"reject"` (400) or `"keep"` (data, not separators).
    pub escaped_slashes: gw_edge::EscapedSlashes,
    /// Header names with `_`: `"drop"`, `"keep"` (owned twins such as `X_User_ID` are
    /// dropped all the same) or `"reject"` (400).
    pub underscores_in_headers: gw_edge::Underscores,
}

impl ServerConfig {
    /// The edge's rules from these settings.
    pub fn edge_policy(&self) -> gw_edge::EdgePolicy {
        gw_edge::EdgePolicy {
            max_request_line_bytes: self.max_request_line_bytes,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            merge_slashes: self.merge_slashes,
            escaped_slashes: self.escaped_slashes,
            underscores_in_headers: self.underscores_in_headers,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        let edge = gw_edge::EdgePolicy::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            tls: None,
            max_body_bytes: 10 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            shutdown_timeout_secs: 30,
            idle_timeout_secs: 30,
            max_connections: 10_000,
            max_request_line_bytes: edge.max_request_line_bytes,
            max_header_bytes: edge.max_header_bytes,
            max_headers: edge.max_headers,
            merge_slashes: edge.merge_slashes,
            escaped_slashes: edge.escaped_slashes,
            underscores_in_headers: edge.underscores_in_headers,
        }
    }
}

/// `[server.tls]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address of the TLS listener.
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[admin]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener.
    pub listen: SocketAddr,
    /// CIDRs allowed to use the admin API.
    pub allow: Vec<IpNet>,
    /// Bearer token; required when `listen` is not a loopback address. An empty token is a
    /// configuration error (leave the key out to go without one on a loopback listener).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The names (`host:port`, as clients send them in `Host`) of the admin listener; a
    /// request naming another `Host`, or an `Origin` other than `http://` or `https://` plus
    /// one of them, is refused with 403. Default: the bound address, `localhost:PORT`,
    /// `127.0.0.1:PORT` and `[::1]:PORT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
}

impl AdminConfig {
    /// `allowed_hosts`, or the defaults for a listener bound to `bound` (its real port, also
    /// when `listen` asked for port 0).
    pub fn hosts(&self, bound: SocketAddr) -> Vec<String> {
        match &self.allowed_hosts {
            Some(hosts) => hosts.clone(),
            None => gw_admin::AccessControl::default_hosts(bound),
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
            allow: vec![
                "127.0.0.0/8".parse().expect("valid CIDR"),
                "::1/128".parse().expect("valid CIDR"),
            ],
            token: None,
            allowed_hosts: None,
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Process log filter (`info`, `gateway_bin=debug,warn`, …); `RUST_LOG` wins when set.
    pub level: String,
    /// Access log: `"stdout"`, `"off"`, or a file path (appended).
    pub access_log: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            access_log: "stdout".into(),
        }
    }
}

/// `[services.NAME]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Balancer among the instances.
    #[serde(default)]
    pub load_balancer: LoadBalancer,
    /// Protocol spoken to the instances: `"http1"` or `"http2"` (h2c, for gRPC).
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Static instances; may be empty (filled by Consul or the admin API).
    #[serde(default)]
    pub instances: Vec<Instance>,
    /// Active health checks of the instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
    /// Overrides of the `[circuit_breaker]` defaults for this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<BreakerOverride>,
}

/// `[[routes]]`, and the route object of the admin API.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique id.
    pub id: String,
    /// A service declared under `[services.*]`.
    pub service: String,
    /// Regex on the path; capture group 1 becomes the upstream path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Path prefix, matched on a segment boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// With `path`: send only the rest after the prefix.
    #[serde(default, skip_serializing_if = "is_false")]
    pub strip_prefix: bool,
    /// Allowed methods; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Host the route is bound to (`api.example.com`, `*.example.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Higher first.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// Whether callers must authenticate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auth_required: bool,
    /// How callers authenticate: `"jwt"`, `"api_key"` or `"jwt_or_api_key"`.
    #[serde(default, skip_serializing_if = "is_default_auth")]
    pub auth: AuthMethod,
    /// This route's limit (else `[rate_limit] default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Limit>,
    /// HTTPS, roles, permissions and ownership checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityConfig>,
    /// Upstream timeouts in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutConfig>,
    /// Retries of idempotent requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// Header changes on the upstream request and on the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeadersConfig>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn is_default_auth(m: &AuthMethod) -> bool {
    *m == AuthMethod::default()
}

/// Route `timeout`, in (possibly fractional) seconds.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutConfig {
    /// Opening the upstream connection.
    pub connect: f64,
    /// Sending the request (added to `read` for the wait for the response headers).
    pub send: f64,
    /// Waiting for the response headers, and the longest gap between response body frames.
    pub read: f64,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            connect: 60.0,
            send: 60.0,
            read: 60.0,
        }
    }
}

/// Route `retry`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt.
    pub times: u32,
    /// Seconds between attempts.
    #[serde(default)]
    pub delay: f64,
}

/// Route `headers`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    /// Changes to the request sent upstream.
    #[serde(default)]
    pub request: HeaderRulesConfig,
    /// Changes to the response sent to the client.
    #[serde(default)]
    pub response: HeaderRulesConfig,
}

/// `add` (set, replacing) and `remove`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRulesConfig {
    /// Headers to set.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Headers to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Every problem found in a configuration, each with its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// One problem: where (`routes[2].service`, `server.listen`, … empty for the file as a whole)
/// and why. The gateway's name for the one shape every crate's `validate()` returns.
pub type ConfigError = ConfigProblem;

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads `path` (or the embedded default when `path` is `None`), applies `GW_` environment
    /// overrides and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        let base = match path {
            Some(p) => {
                if !p.exists() {
                    return Err(ConfigErrors(vec![ConfigError::new(
                        "",
                        format!("{}: file not found", p.display()),
                    )]));
                }
                Figment::from(Toml::file_exact(p))
            }
            None => Figment::from(Toml::string(DEFAULT_CONFIG)),
        };
        let env = Env::prefixed("GW_").split("__").filter(|k| k != "config");
        Self::extract(base.merge(env))
    }

    /// Parses TOML text without environment overrides, and validates (for tests and tools).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        Self::extract(Figment::from(Toml::string(text)))
    }

    fn extract(figment: Figment) -> Result<Config, ConfigErrors> {
        // Through `Strict`: a struct only from a table, never from a list read positionally
        // (`timeout = [1, 2, 3]`); figment still names the key and the file.
        let Checked(config) = figment
            .extract::<Checked<Config>>()
            .map_err(|e| ConfigErrors(e.into_iter().map(figment_error).collect()))?;
        config.validate()?;
        Ok(config)
    }

    /// Every semantic problem, each with its path.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        if self.server.max_body_bytes == 0 {
            errors.push(ConfigError::new(
                "server.max_body_bytes",
                "must be greater than 0",
            ));
        }
        if self.server.idle_timeout_secs == 0 {
            errors.push(ConfigError::new(
                "server.idle_timeout_secs",
                "must be greater than 0",
            ));
        }
        if self.server.max_connections == 0 {
            errors.push(ConfigError::new(
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
                errors.push(ConfigError::new(
                    key,
                    format!("must be between {} and {}", range.start(), range.end()),
                ));
            }
        }
        if server.max_header_bytes < server.max_request_line_bytes {
            errors.push(ConfigError::new(
                "server.max_header_bytes",
                "must be at least server.max_request_line_bytes",
            ));
        }
        if let Some(tls) = &self.server.tls {
            for (key, file) in [("cert", &tls.cert), ("key", &tls.key)] {
                if !file.is_file() {
                    errors.push(ConfigError::new(
                        format!("server.tls.{key}"),
                        format!("file not found: {}", file.display()),
                    ));
                }
            }
            if tls.listen == self.server.listen && tls.listen.port() != 0 {
                errors.push(ConfigError::new(
                    "server.tls.listen",
                    "must differ from server.listen",
                ));
            }
        }
        if self.admin.listen == self.server.listen && self.admin.listen.port() != 0 {
            errors.push(ConfigError::new(
                "admin.listen",
                "must differ from server.listen",
            ));
        }
        let token_set = self.admin.token.as_deref().is_some_and(|t| !t.is_empty());
        if self.admin.token.as_deref() == Some("") {
            errors.push(ConfigError::new(
                "admin.token",
                "must not be empty (an empty token does not turn authentication off; remove the key to run without a token on a loopback listener)",
            ));
        } else if !self.admin.listen.ip().is_loopback() && !token_set {
            errors.push(ConfigError::new(
                "admin.token",
                "required when admin.listen is not a loopback address",
            ));
        }
        for (i, host) in self.admin.allowed_hosts.iter().flatten().enumerate() {
            if host.is_empty() || host.contains(['/', ' ', '@', ',']) {
                errors.push(ConfigError::new(
                    format!("admin.allowed_hosts[{i}]"),
                    format!("must be a host or host:port, got \"{host}\""),
                ));
            }
        }
        if let Err(e) = crate::logging::parse_filter(&self.log.level) {
            errors.push(ConfigError::new("log.level", e));
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
                errors.push(ConfigError::new(
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
    errors: &mut Vec<ConfigError>,
) {
    if name.is_empty() {
        errors.push(ConfigError::new(
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
        errors.extend(instance_problems(inst).into_iter().map(|p| p.under(&at)));
        if !inst.id.is_empty() && !ids.insert(inst.id.as_str()) {
            errors.push(ConfigError::new(
                format!("{at}.id"),
                format!("duplicate instance id \"{}\"", inst.id),
            ));
        }
    }
}

/// Problems of one instance, paths relative to it: [`Instance::problems`], the one instance
/// validation shared with the admin API, Consul and the shared store.
pub fn instance_problems(inst: &Instance) -> Vec<ConfigError> {
    inst.problems()
}

impl RouteConfig {
    /// Problems of this route, paths relative to it (`service`, `pattern`, …).
    pub fn problems(
        &self,
        services: &BTreeMap<String, ServiceConfig>,
        jwt_configured: bool,
    ) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.auth_required && self.auth != AuthMethod::ApiKey && !jwt_configured {
            errors.push(ConfigError::new(
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
            errors.push(ConfigError::new("id", "must not be empty"));
        }
        if self.service.is_empty() {
            errors.push(ConfigError::new("service", "must not be empty"));
        } else if !services.contains_key(&self.service) {
            errors.push(ConfigError::new(
                "service",
                format!("unknown service \"{}\"", self.service),
            ));
        }
        match (&self.pattern, &self.path) {
            (Some(_), Some(_)) => errors.push(ConfigError::new(
                "path",
                "give either pattern or path, not both",
            )),
            (None, None) => errors.push(ConfigError::new(
                "pattern",
                "one of pattern or path is required",
            )),
            (Some(p), None) => {
                if let Err(e) = regex::Regex::new(p) {
                    let first = e.to_string();
                    let why = first.lines().last().unwrap_or("invalid regex").trim();
                    errors.push(ConfigError::new("pattern", format!("invalid regex: {why}")));
                }
                if self.strip_prefix {
                    errors.push(ConfigError::new(
                        "strip_prefix",
                        "only applies to routes with path",
                    ));
                }
            }
            (None, Some(p)) => {
                if !p.starts_with('/') {
                    errors.push(ConfigError::new("path", "must start with '/'"));
                }
            }
        }
        for (k, m) in self.methods.iter().enumerate() {
            if http::Method::from_bytes(m.as_bytes()).is_err() || m.is_empty() {
                errors.push(ConfigError::new(
                    format!("methods[{k}]"),
                    format!("invalid method \"{m}\""),
                ));
            }
        }
        if let Some(host) = &self.host {
            if host.is_empty() || host.contains(['/', ' ']) {
                errors.push(ConfigError::new("host", format!("invalid host \"{host}\"")));
            }
        }
        if let Some(t) = &self.timeout {
            for (key, v) in [("connect", t.connect), ("send", t.send), ("read", t.read)] {
                if !(v.is_finite() && v > 0.0 && v < 1e9) {
                    errors.push(ConfigError::new(
                        format!("timeout.{key}"),
                        "must be a positive number of seconds",
                    ));
                }
            }
        }
        if let Some(r) = &self.retry {
            if !(r.delay.is_finite() && r.delay >= 0.0 && r.delay < 1e9) {
                errors.push(ConfigError::new(
                    "retry.delay",
                    "must be zero or a positive number of seconds",
                ));
            }
            if r.times > 100 {
                errors.push(ConfigError::new("retry.times", "must be at most 100"));
            }
        }
        if let Some(h) = &self.headers {
            for (side, rules) in [("request", &h.request), ("response", &h.response)] {
                for (name, value) in &rules.add {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        errors.push(ConfigError::new(
                            format!("headers.{side}.add"),
                            format!("invalid header name \"{name}\""),
                        ));
                    }
                    if http::HeaderValue::from_str(value).is_err() {
                        errors.push(ConfigError::new(
                            format!("headers.{side}.add.{name}"),
                            "invalid header value",
                        ));
                    }
                }
                for (k, name) in rules.remove.iter().enumerate() {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        errors.push(ConfigError::new(
                            format!("headers.{side}.remove[{k}]"),
                            format!("invalid header name \"{name}\""),
                        ));
                    }
                }
            }
        }
        errors
    }

    /// Timeouts as durations (defaults when absent).
    pub fn timeouts(&self) -> gw_proxy::Timeouts {
        let t = self.timeout.clone().unwrap_or_default();
        gw_proxy::Timeouts {
            connect: Duration::from_secs_f64(t.connect),
            send: Duration::from_secs_f64(t.send),
            read: Duration::from_secs_f64(t.read),
        }
    }
}

/// Turns a figment error into `path: why`, with sequence positions as `[i]`.
fn figment_error(e: figment::Error) -> ConfigError {
    let mut path = String::new();
    for part in &e.path {
        if part.parse::<usize>().is_ok() {
            path.push('[');
            path.push_str(part);
            path.push(']');
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(part);
        }
    }
    let mut message = e.kind.to_string();
    if let Some(source) = &e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
        message.push_str(&format!(" (in {source})"));
    }
    ConfigError::new(path, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[services.users]
instances = [{ id = "u1", host = "127.0.0.1", port = 8001 }]

[[routes]]
id = "users"
path = "/api/users"
service = "users"
"#;

    #[test]
    fn default_config_is_valid() {
        Config::from_toml_str(DEFAULT_CONFIG).expect("embedded default must validate");
    }

    #[test]
    fn minimal_config_parses() {
        let c = Config::from_toml_str(BASE).unwrap();
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.services["users"].instances[0].weight, 100);
        assert_eq!(c.server.listen.port(), 8080);
    }

    #[test]
    fn unknown_key_is_named() {
        let e =
            Config::from_toml_str("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("lisen"), "{text}");
    }

    #[test]
    fn wrong_type_has_path() {
        let text = format!("{BASE}\n[[routes]]\nid = \"b\"\npath = \"/b\"\nservice = \"users\"\npriority = \"high\"\n");
        let e = Config::from_toml_str(&text).unwrap_err();
        assert!(e.to_string().starts_with("routes[1].priority:"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = r#"
[services.users]
instances = [{ id = "u1", host = "127.0.0.1", port = 0 }]

[[routes]]
id = "a"
path = "/a"
service = "users"

[[routes]]
id = "a"
pattern = "^/(unclosed"
service = "users"

[[routes]]
id = "c"
path = "/c"
service = "bills"
methods = ["GET", "BAD METHOD"]
timeout = { connect = 0, send = 1, read = 1 }
"#;
        let e = Config::from_toml_str(text).unwrap_err().to_string();
        for want in [
            "services.users.instances[0].port: must be between 1 and 65535",
            "routes[1].id: duplicate route id \"a\"",
            "routes[1].pattern: invalid regex",
            "routes[2].service: unknown service \"bills\"",
            "routes[2].methods[1]: invalid method",
            "routes[2].timeout.connect: must be a positive number of seconds",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn admin_token_required_off_loopback() {
        let e = Config::from_toml_str("[admin]\nlisten = \"0.0.0.0:9901\"\n").unwrap_err();
        assert!(e.to_string().contains("admin.token: required"), "{e}");
        Config::from_toml_str("[admin]\nlisten = \"0.0.0.0:9901\"\ntoken = \"t\"\n").unwrap();
    }

    #[test]
    fn an_empty_admin_token_is_an_error() {
        for listen in ["127.0.0.1:9901", "0.0.0.0:9901"] {
            let e =
                Config::from_toml_str(&format!("[admin]\nlisten = \"{listen}\"\ntoken = \"\"\n"))
                    .unwrap_err()
                    .to_string();
            assert!(e.contains("admin.token: must not be empty"), "{e}");
        }
    }

    #[test]
    fn admin_allowed_hosts_default_and_configured() {
        let c = Config::from_toml_str("").unwrap();
        let bound: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        assert_eq!(
            c.admin.hosts(bound),
            ["127.0.0.1:4567", "localhost:4567", "[::1]:4567"]
        );
        let c =
            Config::from_toml_str("[admin]\nallowed_hosts = [\"admin.internal:9901\"]\n").unwrap();
        assert_eq!(c.admin.hosts(bound), ["admin.internal:9901"]);
        let e = Config::from_toml_str("[admin]\nallowed_hosts = [\"http://x/\"]\n").unwrap_err();
        assert!(e.to_string().contains("admin.allowed_hosts[0]"), "{e}");
    }

    /// A list where a table is documented is refused, with the key's path, at every level.
    #[test]
    fn a_list_for_a_table_is_refused_with_its_path() {
        let route = "[[routes]]\nid = \"r\"\npath = \"/r\"\nservice = \"users\"\n";
        let service =
            "[services.users]\ninstances = [{ id = \"u1\", host = \"127.0.0.1\", port = 8001 }]\n";
        let cases = [
            (
                format!("{service}{route}timeout = [1, 2, 3]\n"),
                "routes[0].timeout",
                "TimeoutConfig",
            ),
            (
                format!("{service}{route}retry = [2, 0.5]\n"),
                "routes[0].retry",
                "RetryConfig",
            ),
            (
                format!("{service}{route}rate_limit = [60, 10]\n"),
                "routes[0].rate_limit",
                "Limit",
            ),
            (
                format!("{service}{route}security = [true]\n"),
                "routes[0].security",
                "SecurityConfig",
            ),
            (
                format!("{service}{route}headers = [{{}}, {{}}]\n"),
                "routes[0].headers",
                "HeadersConfig",
            ),
            (
                format!("{service}{route}headers = {{ request = [{{}}, []] }}\n"),
                "routes[0].headers.request",
                "HeaderRulesConfig",
            ),
            (
                format!("{service}{route}[routes.timeout]\nconnect = 1\n[[routes]]\nid = \"s\"\npath = \"/s\"\nservice = \"users\"\ntimeout = [1, 2, 3]\n"),
                "routes[1].timeout",
                "TimeoutConfig",
            ),
            (
                "[server]\ntls = [\"127.0.0.1:8443\", \"cert.pem\", \"key.pem\"]\n".to_owned(),
                "server.tls",
                "TlsConfig",
            ),
            (
                "[rate_limit]\ndefault = [100, 20]\n".to_owned(),
                "rate_limit.default",
                "Limit",
            ),
            (
                "server = [\"127.0.0.1:8080\"]\n".to_owned(),
                "server",
                "ServerConfig",
            ),
            (
                "[services.users]\ninstances = [[\"u1\", \"127.0.0.1\", 8001, 100, {}]]\n"
                    .to_owned(),
                "services.users.instances[0]",
                "Instance",
            ),
            (
                "[services.users]\ncircuit_breaker = [5]\n".to_owned(),
                "services.users.circuit_breaker",
                "BreakerOverride",
            ),
        ];
        for (text, path, name) in cases {
            let e = Config::from_toml_str(&text).unwrap_err().to_string();
            let want = format!("{path}: invalid type: found sequence, expected struct {name}");
            assert!(
                e.starts_with(&want),
                "want {want:?}, got:\n{e}\n---\n{text}"
            );
        }
        // The documented shapes still parse.
        let text = format!(
            "{service}{route}timeout = {{ connect = 1, send = 2, read = 3 }}\nretry = {{ times = 2 }}\n\
             rate_limit = {{ requests_per_minute = 60 }}\nsecurity = {{ allowed_roles = [\"a\"] }}\n\
             headers = {{ request = {{ remove = [\"x-a\"] }} }}\n"
        );
        let c = Config::from_toml_str(&text).unwrap();
        assert_eq!(c.routes[0].timeout.as_ref().unwrap().read, 3.0);
    }

    #[test]
    fn a_list_for_a_table_is_refused_in_a_file() {
        let dir = std::env::temp_dir().join(format!("gw-config-strict-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gateway.toml");
        std::fs::write(&file, format!("{BASE}timeout = [1, 2, 3]\n")).unwrap();
        let e = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "routes[0].timeout: invalid type: found sequence, expected struct TimeoutConfig"
            ),
            "{e}"
        );
        assert!(
            e.contains(&file.display().to_string()),
            "names the file: {e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn either_pattern_or_path() {
        let text = "[services.s]\n[[routes]]\nid = \"r\"\nservice = \"s\"\n";
        let e = Config::from_toml_str(text).unwrap_err();
        assert!(
            e.to_string()
                .contains("routes[0].pattern: one of pattern or path is required"),
            "{e}"
        );
    }
}
