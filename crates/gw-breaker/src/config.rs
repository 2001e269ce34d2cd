//! Breaker and outlier-ejection configuration: `[circuit_breaker]` and a service's
//! `circuit_breaker = { ... }` override.

use gw_core::ConfigProblem;
use serde::{Deserialize, Serialize};

/// `[circuit_breaker]`: when a service's breaker opens, how long it stays open, how it
/// probes (docs/configuration.md), plus per-instance outlier ejection.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Whether the service has a breaker and outlier detection at all (true). With `false`
    /// the gateway puts no breaker layer on the service's routes.
    pub enabled: bool,
    /// The failure share (0 < x <= 1) of the window that opens the breaker (0.5).
    pub failure_rate: f64,
    /// The window must hold at least this many results before it can open (10).
    pub min_requests: u32,
    /// Length of the rolling window in seconds (60), kept as 10 buckets of `window_secs / 10`.
    pub window_secs: u64,
    /// How long the breaker stays open before it lets probes through (60).
    pub open_secs: u64,
    /// Probes in flight at once while half-open; the rest are answered 503 at once (3).
    pub half_open_max_requests: u32,
    /// Successful probes that close the breaker (3).
    pub success_threshold: u32,
    /// A request the client gave up on (its response future dropped before the upstream's
    /// answer) counts as a failure when it had been waiting at least this many seconds; a
    /// shorter one is not counted at all. `0`: never counted (10).
    pub abandoned_failure_secs: u64,
    /// Per-instance outlier ejection.
    pub outlier: OutlierConfig,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            failure_rate: 0.5,
            min_requests: 10,
            window_secs: 60,
            open_secs: 60,
            half_open_max_requests: 3,
            success_threshold: 3,
            abandoned_failure_secs: 10,
            outlier: OutlierConfig::default(),
        }
    }
}

impl BreakerConfig {
    /// Every problem; empty when the configuration is valid.
    ///
    /// Paths are relative (`failure_rate`, `outlier.max_ejection_percent`): the caller puts
    /// its own prefix (`circuit_breaker`, `services.x.circuit_breaker`) in front with
    /// [`ConfigProblem::under`].
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        let mut err = |path: &str, msg: &str| errors.push(ConfigProblem::new(path, msg));
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            err("failure_rate", "must be greater than 0 and at most 1");
        }
        if self.min_requests == 0 {
            err("min_requests", "must be at least 1");
        }
        if self.window_secs == 0 {
            err("window_secs", "must be at least 1");
        }
        if self.open_secs == 0 {
            err("open_secs", "must be at least 1");
        }
        if self.half_open_max_requests == 0 {
            err("half_open_max_requests", "must be at least 1");
        }
        if self.success_threshold == 0 {
            err("success_threshold", "must be at least 1");
        }
        let o = &self.outlier;
        if o.consecutive_failures == 0 {
            err("outlier.consecutive_failures", "must be at least 1");
        }
        if o.base_ejection_secs == 0 {
            err("outlier.base_ejection_secs", "must be at least 1");
        }
        if o.max_ejection_secs < o.base_ejection_secs {
            err(
                "outlier.max_ejection_secs",
                "must be at least base_ejection_secs",
            );
        }
        if o.max_ejection_percent > 100 {
            err("outlier.max_ejection_percent", "must be at most 100");
        }
        if o.panic_threshold_percent > 100 {
            err("outlier.panic_threshold_percent", "must be at most 100");
        }
        errors
    }
}

/// Outlier ejection (Envoy's `outlier_detection`, consecutive 5xx only): an instance that
/// fails `consecutive_failures` times in a row is taken out of the balancer for
/// `base_ejection_secs × (times ejected)`, at most `max_ejection_secs`; never more than
/// `max_ejection_percent` of a service's healthy instances are out at once, and when fewer
/// than `panic_threshold_percent` of them would be left, ejections are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierConfig {
    /// Whether instances are ejected at all (true).
    pub enabled: bool,
    /// Failures in a row that eject an instance (5).
    pub consecutive_failures: u32,
    /// The first ejection's length in seconds; the n-th lasts n times as long (30).
    pub base_ejection_secs: u64,
    /// The longest ejection in seconds (300).
    pub max_ejection_secs: u64,
    /// At most this share (percent) of a service's healthy instances is ejected at once (50).
    pub max_ejection_percent: u32,
    /// When the instances left after ejection are fewer than this share (percent) of the
    /// healthy ones, or none, the balancer ignores ejections and uses every healthy instance
    /// (Envoy's `healthy_panic_threshold`, applied to ejection only) (50).
    pub panic_threshold_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            enabled: true,
            consecutive_failures: 5,
            base_ejection_secs: 30,
            max_ejection_secs: 300,
            max_ejection_percent: 50,
            panic_threshold_percent: 50,
        }
    }
}

/// A service's `circuit_breaker = { ... }`: any subset of the [`BreakerConfig`] keys.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerOverride {
    /// Overrides [`BreakerConfig::enabled`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Overrides [`BreakerConfig::failure_rate`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<f64>,
    /// Overrides [`BreakerConfig::min_requests`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u32>,
    /// Overrides [`BreakerConfig::window_secs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
    /// Overrides [`BreakerConfig::open_secs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_secs: Option<u64>,
    /// Overrides [`BreakerConfig::half_open_max_requests`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_open_max_requests: Option<u32>,
    /// Overrides [`BreakerConfig::success_threshold`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<u32>,
    /// Overrides [`BreakerConfig::abandoned_failure_secs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned_failure_secs: Option<u64>,
    /// Overrides keys of [`BreakerConfig::outlier`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier: Option<OutlierOverride>,
}

/// Any subset of the [`OutlierConfig`] keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierOverride {
    /// Overrides [`OutlierConfig::enabled`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Overrides [`OutlierConfig::consecutive_failures`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// Overrides [`OutlierConfig::base_ejection_secs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_secs: Option<u64>,
    /// Overrides [`OutlierConfig::max_ejection_secs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_secs: Option<u64>,
    /// Overrides [`OutlierConfig::max_ejection_percent`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    /// Overrides [`OutlierConfig::panic_threshold_percent`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic_threshold_percent: Option<u32>,
}

impl BreakerOverride {
    /// `base` with every key set here replaced.
    pub fn apply(&self, base: &BreakerConfig) -> BreakerConfig {
        BreakerConfig {
            enabled: self.enabled.unwrap_or(base.enabled),
            failure_rate: self.failure_rate.unwrap_or(base.failure_rate),
            min_requests: self.min_requests.unwrap_or(base.min_requests),
            window_secs: self.window_secs.unwrap_or(base.window_secs),
            open_secs: self.open_secs.unwrap_or(base.open_secs),
            half_open_max_requests: self
                .half_open_max_requests
                .unwrap_or(base.half_open_max_requests),
            success_threshold: self.success_threshold.unwrap_or(base.success_threshold),
            abandoned_failure_secs: self
                .abandoned_failure_secs
                .unwrap_or(base.abandoned_failure_secs),
            outlier: match &self.outlier {
                Some(o) => o.apply(&base.outlier),
                None => base.outlier.clone(),
            },
        }
    }
}

impl OutlierOverride {
    /// `base` with every key set here replaced.
    pub fn apply(&self, base: &OutlierConfig) -> OutlierConfig {
        OutlierConfig {
            enabled: self.enabled.unwrap_or(base.enabled),
            consecutive_failures: self
                .consecutive_failures
                .unwrap_or(base.consecutive_failures),
            base_ejection_secs: self.base_ejection_secs.unwrap_or(base.base_ejection_secs),
            max_ejection_secs: self.max_ejection_secs.unwrap_or(base.max_ejection_secs),
            max_ejection_percent: self
                .max_ejection_percent
                .unwrap_or(base.max_ejection_percent),
            panic_threshold_percent: self
                .panic_threshold_percent
                .unwrap_or(base.panic_threshold_percent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_spec_values_and_valid() {
        let c = BreakerConfig::default();
        assert_eq!(c.failure_rate, 0.5);
        assert_eq!(c.min_requests, 10);
        assert_eq!(c.window_secs, 60);
        assert_eq!(c.open_secs, 60);
        assert_eq!(c.half_open_max_requests, 3);
        assert_eq!(c.success_threshold, 3);
        assert!(c.validate().is_empty());
    }

    #[test]
    fn validate_names_every_bad_field() {
        let c = BreakerConfig {
            enabled: true,
            failure_rate: 0.0,
            min_requests: 0,
            window_secs: 0,
            open_secs: 0,
            half_open_max_requests: 0,
            success_threshold: 0,
            abandoned_failure_secs: 0,
            outlier: OutlierConfig {
                enabled: true,
                consecutive_failures: 0,
                base_ejection_secs: 10,
                max_ejection_secs: 5,
                max_ejection_percent: 101,
                panic_threshold_percent: 101,
            },
        };
        let paths: Vec<String> = c.validate().into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "failure_rate",
                "min_requests",
                "window_secs",
                "open_secs",
                "half_open_max_requests",
                "success_threshold",
                "outlier.consecutive_failures",
                "outlier.max_ejection_secs",
                "outlier.max_ejection_percent",
                "outlier.panic_threshold_percent",
            ]
        );
        let nan = BreakerConfig {
            failure_rate: f64::NAN,
            ..BreakerConfig::default()
        };
        assert_eq!(nan.validate()[0].path, "failure_rate");
        let over = BreakerConfig {
            failure_rate: 1.5,
            ..BreakerConfig::default()
        };
        assert_eq!(over.validate().len(), 1);
        let one = BreakerConfig {
            failure_rate: 1.0,
            ..BreakerConfig::default()
        };
        assert!(one.validate().is_empty());
    }

    #[test]
    fn deserializes_partial_tables_and_rejects_unknown_keys() {
        let c: BreakerConfig =
            serde_json::from_str(r#"{"failure_rate": 0.25, "outlier": {"enabled": false}}"#)
                .unwrap();
        assert_eq!(c.failure_rate, 0.25);
        assert_eq!(c.min_requests, 10);
        assert!(!c.outlier.enabled);
        assert_eq!(c.outlier.consecutive_failures, 5);
        assert!(serde_json::from_str::<BreakerConfig>(r#"{"failure_ratio": 0.5}"#).is_err());
        assert!(serde_json::from_str::<BreakerOverride>(r#"{"open_sec": 5}"#).is_err());
    }

    #[test]
    fn override_replaces_only_the_keys_it_sets() {
        let base = BreakerConfig::default();
        let o: BreakerOverride =
            serde_json::from_str(r#"{"open_secs": 5, "outlier": {"max_ejection_percent": 20}}"#)
                .unwrap();
        let c = o.apply(&base);
        assert_eq!(c.open_secs, 5);
        assert_eq!(c.outlier.max_ejection_percent, 20);
        assert_eq!(
            c.outlier.consecutive_failures,
            base.outlier.consecutive_failures
        );
        assert_eq!(
            BreakerConfig {
                open_secs: 60,
                outlier: base.outlier.clone(),
                ..c
            },
            base
        );
        assert_eq!(BreakerOverride::default().apply(&base), base);
    }
}
