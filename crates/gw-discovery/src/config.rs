//! Plain configuration: `[services.NAME] health_check` and `[discovery.consul]`.

use std::time::Duration;

use gw_core::ConfigProblem;
use serde::{Deserialize, Serialize};

/// Active health checks of one service:
/// `health_check = { path = "/health", interval_secs = 30, timeout_ms = 5000,
/// healthy_threshold = 1, unhealthy_threshold = 1 }`.
///
/// Each instance gets `GET http://host:port{path}` every `interval_secs`; a 2xx or 3xx answer
/// within `timeout_ms` is a success, anything else a failure. `unhealthy_threshold`
/// consecutive failures make a healthy instance unhealthy; `healthy_threshold` consecutive
/// successes make an unhealthy one healthy again.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// The path requested (with an optional query), starting with `/`.
    pub path: String,
    /// Seconds between two checks of an instance; fractional values allowed.
    pub interval_secs: f64,
    /// How long one check may take, headers and body.
    pub timeout_ms: u64,
    /// Consecutive successes that make an unhealthy instance healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy instance unhealthy.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            path: "/health".into(),
            interval_secs: 30.0,
            timeout_ms: 5000,
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        }
    }
}

impl HealthCheckConfig {
    /// Every problem, paths relative to the `health_check` table; empty when valid.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if !self.path.starts_with('/') || self.path.contains([' ', '#']) {
            problems.push(ConfigProblem::new(
                "path",
                format!("must be a path starting with \"/\", got \"{}\"", self.path),
            ));
        }
        // Below 1 ms a check loop would spin; above ~30 years Duration math gets silly.
        if !self.interval_secs.is_finite() || !(0.001..=1.0e9).contains(&self.interval_secs) {
            problems.push(ConfigProblem::new(
                "interval_secs",
                "must be a number of seconds of at least 0.001",
            ));
        }
        if self.timeout_ms == 0 {
            problems.push(ConfigProblem::new("timeout_ms", "must be greater than 0"));
        }
        if self.healthy_threshold == 0 {
            problems.push(ConfigProblem::new(
                "healthy_threshold",
                "must be greater than 0",
            ));
        }
        if self.unhealthy_threshold == 0 {
            problems.push(ConfigProblem::new(
                "unhealthy_threshold",
                "must be greater than 0",
            ));
        }
        problems
    }

    /// `interval_secs` as a duration (at least 1 ms, whatever the value).
    pub fn interval(&self) -> Duration {
        Duration::try_from_secs_f64(self.interval_secs)
            .unwrap_or(Duration::from_secs(30))
            .max(Duration::from_millis(1))
    }

    /// `timeout_ms` as a duration (at least 1 ms).
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

/// `[discovery.consul]`: where Consul is and which services to take from it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulConfig {
    /// Base URL of a Consul agent, `http://host:port` (plain HTTP).
    pub url: String,
    /// Services to watch; empty: every service in the catalog.
    #[serde(default)]
    pub services: Vec<String>,
    /// How long one blocking query may wait for a change (Consul's `wait`), seconds.
    #[serde(default = "default_wait_secs")]
    pub wait_secs: u64,
}

fn default_wait_secs() -> u64 {
    30
}

impl Default for ConsulConfig {
    fn default() -> Self {
        ConsulConfig {
            url: "http://127.0.0.1:8500".into(),
            services: Vec::new(),
            wait_secs: default_wait_secs(),
        }
    }
}

impl ConsulConfig {
    /// Every problem, paths relative to the `discovery.consul` table; empty when valid.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        match self.url.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => {
                if uri.query().is_some() {
                    problems.push(ConfigProblem::new("url", "must not have a query"));
                }
            }
            Ok(_) => problems.push(ConfigProblem::new(
                "url",
                format!("must be an http:// URL with a host, got \"{}\"", self.url),
            )),
            Err(e) => problems.push(ConfigProblem::new(
                "url",
                format!("invalid URL \"{}\": {e}", self.url),
            )),
        }
        for (i, name) in self.services.iter().enumerate() {
            if name.is_empty() {
                problems.push(ConfigProblem::new(
                    format!("services[{i}]"),
                    "must not be empty",
                ));
            }
        }
        if self.wait_secs == 0 || self.wait_secs > 600 {
            problems.push(ConfigProblem::new(
                "wait_secs",
                "must be between 1 and 600 (Consul caps blocking queries at 10 minutes)",
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_defaults_follow_the_seed() {
        let c: HealthCheckConfig = serde_json::from_str(r#"{"interval_secs": 0.05}"#).unwrap();
        assert_eq!(c.path, "/health");
        assert_eq!(c.timeout_ms, 5000);
        assert_eq!(c.interval(), Duration::from_millis(50));
        assert!(c.validate().is_empty());
        assert!(serde_json::from_str::<HealthCheckConfig>(r#"{"bogus": 1}"#).is_err());
    }

    #[test]
    fn health_validation_names_every_problem() {
        let c = HealthCheckConfig {
            path: "health".into(),
            interval_secs: 0.0,
            timeout_ms: 0,
            healthy_threshold: 0,
            unhealthy_threshold: 0,
        };
        let paths: Vec<_> = c.validate().into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "path",
                "interval_secs",
                "timeout_ms",
                "healthy_threshold",
                "unhealthy_threshold"
            ]
        );
        let nan = HealthCheckConfig {
            interval_secs: f64::NAN,
            ..Default::default()
        };
        assert!(!nan.validate().is_empty());
    }

    #[test]
    fn consul_defaults_and_validation() {
        let c: ConsulConfig = serde_json::from_str(r#"{"url": "http://127.0.0.1:8500"}"#).unwrap();
        assert_eq!(c.wait_secs, 30);
        assert!(c.services.is_empty());
        assert!(c.validate().is_empty());

        let bad = ConsulConfig {
            url: "https://consul".into(),
            services: vec!["a".into(), String::new()],
            wait_secs: 0,
        };
        let problems = bad.validate();
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["url", "services[1]", "wait_secs"]);
        assert!(problems[0]
            .to_string()
            .starts_with("url: must be an http:// URL"));
    }
}
