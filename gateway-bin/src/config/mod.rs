//! The configuration model: TOML file + `GW_` environment overrides (figment).
//!
//! Every struct denies unknown keys, so a typo is an error that names the key, and is read
//! only from a table (through [`gw_core::strict`]: a list in its place is refused, where serde
//! alone would fill the fields from it in order). [`Config::validate`] (in `validate.rs`)
//! collects every semantic problem with its path (`routes[2].service: unknown service "bills"`),
//! positions zero-based (docs/configuration.md).

use std::collections::BTreeMap;
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

mod validate;

/// The default configuration, embedded so that `gateway` runs with no file at all.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/gateway.toml");

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
}

impl RouteConfig {
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
mod tests;
