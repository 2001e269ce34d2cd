//! One instance of a service, and where it came from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ConfigProblem;

/// One instance of a service.
///
/// Same shape and serde as the seed's instance object (`{id, host, port, weight?, metadata?}`),
/// in the configuration and in `POST /admin/services/{name}/instances`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// Unique id within the service.
    pub id: String,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Relative weight for `weighted` and `consistent_hash`: [`MIN_WEIGHT`]`..=`[`MAX_WEIGHT`]
    /// (default [`DEFAULT_WEIGHT`]).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Free-form metadata (version, zone, …).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// The weight of an instance that names none.
pub const DEFAULT_WEIGHT: u32 = 100;

/// The smallest weight an instance may have (0 is refused: an instance that should take no
/// traffic is deregistered instead).
pub const MIN_WEIGHT: u32 = 1;

/// The largest weight an instance may have. Weights are relative, so this bounds only the
/// ratio between two instances (10000:1), and keeps the balancers' arithmetic small.
pub const MAX_WEIGHT: u32 = 10_000;

fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}

impl Instance {
    /// An instance with the default weight and no metadata.
    pub fn new(id: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        Instance {
            id: id.into(),
            host: host.into(),
            port,
            weight: DEFAULT_WEIGHT,
            metadata: BTreeMap::new(),
        }
    }

    /// Every problem of this instance, paths relative to it (`id`, `host`, …).
    ///
    /// The one validation of an instance, whatever its source: the configuration, the admin
    /// API, Consul's catalog and the shared store all go through it.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if self.id.is_empty() {
            problems.push(ConfigProblem::new("id", "must not be empty"));
        }
        if self.host.is_empty() || self.host.contains(['/', ' ', '?', '#', '@']) {
            problems.push(ConfigProblem::new(
                "host",
                format!("invalid host \"{}\"", self.host),
            ));
        }
        if self.port == 0 {
            problems.push(ConfigProblem::new("port", "must be between 1 and 65535"));
        }
        if !(MIN_WEIGHT..=MAX_WEIGHT).contains(&self.weight) {
            problems.push(ConfigProblem::new(
                "weight",
                format!(
                    "must be between {MIN_WEIGHT} and {MAX_WEIGHT}, got {}",
                    self.weight
                ),
            ));
        }
        problems
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Where an instance came from.
///
/// When two sources name the same instance id in one service, the more specific one is used:
/// `Admin` over `Consul` over `Static`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `[services.NAME] instances` of the configuration.
    Static,
    /// Consul's catalog.
    Consul,
    /// `POST /admin/services/{name}/instances`.
    Admin,
}
