//! `BreakerRegistry`: the breakers and outlier detectors of every service, kept across route
//! rebuilds, and the data of the admin API.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{Map, Value};

use crate::breaker::Breaker;
use crate::config::BreakerConfig;
use crate::layer::CircuitBreakerLayer;
use crate::outlier::{EjectFn, OutlierDetector};

/// Every service's [`Breaker`] and [`OutlierDetector`], by service name.
///
/// Looked up when a route stack is built, never per request: stacks hold the `Arc`s.
pub struct BreakerRegistry {
    breakers: RwLock<HashMap<Arc<str>, Arc<Breaker>>>,
    outliers: RwLock<HashMap<Arc<str>, Arc<OutlierDetector>>>,
    on_eject: EjectFn,
}

impl fmt::Debug for BreakerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<Arc<str>> = self.breakers.read().keys().cloned().collect();
        names.sort();
        f.debug_struct("BreakerRegistry")
            .field("services", &names)
            .finish_non_exhaustive()
    }
}

impl BreakerRegistry {
    /// An empty registry; `on_eject(service, ejected_ids)` is called whenever a service's set
    /// of ejected instances changes.
    pub fn new(on_eject: EjectFn) -> Arc<Self> {
        Arc::new(BreakerRegistry {
            breakers: RwLock::new(HashMap::new()),
            outliers: RwLock::new(HashMap::new()),
            on_eject,
        })
    }

    /// The breaker of `service`, created on first use. An existing breaker keeps its state,
    /// unless `config` differs from its own: then its machine is replaced by a fresh one (the
    /// same `Arc`, so stacks built earlier see the change). The service's outlier detector
    /// takes `config.outlier`.
    pub fn breaker(&self, service: &str, config: &BreakerConfig) -> Arc<Breaker> {
        self.outliers(service).set_config(config.outlier.clone());
        if let Some(b) = self.breakers.read().get(service) {
            b.reconfigure(config);
            return b.clone();
        }
        let mut map = self.breakers.write();
        if let Some(b) = map.get(service) {
            b.reconfigure(config);
            return b.clone();
        }
        let b = Breaker::new(service, config.clone());
        map.insert(service.into(), b.clone());
        b
    }

    /// The outlier detector of `service`, created on first use (with the default
    /// configuration until [`breaker`](Self::breaker) is called for the service).
    pub fn outliers(&self, service: &str) -> Arc<OutlierDetector> {
        if let Some(o) = self.outliers.read().get(service) {
            return o.clone();
        }
        self.outliers
            .write()
            .entry(service.into())
            .or_insert_with(|| {
                OutlierDetector::new(service, Default::default(), self.on_eject.clone())
            })
            .clone()
    }

    /// The layer for a route of `service`: its breaker (see [`breaker`](Self::breaker)) and,
    /// when `config.outlier.enabled`, its outlier detector.
    pub fn layer(&self, service: &str, config: &BreakerConfig) -> CircuitBreakerLayer {
        let breaker = self.breaker(service, config);
        let outliers = config.outlier.enabled.then(|| self.outliers(service));
        CircuitBreakerLayer::new(breaker, outliers)
    }

    /// Closes the breaker of `service`, empties its window and lets its ejected instances
    /// back in. Returns false when the service has no breaker.
    pub fn reset(&self, service: &str) -> bool {
        let Some(b) = self.breakers.read().get(service).cloned() else {
            return false;
        };
        b.reset();
        // The guard is released first: `reset` calls the `EjectFn`, which may call back in.
        let o = self.outliers.read().get(service).cloned();
        if let Some(o) = o {
            o.reset();
        }
        true
    }

    /// Forgets `service` (removed from the configuration); its ejections end. Returns whether
    /// it was known.
    pub fn remove(&self, service: &str) -> bool {
        let b = self.breakers.write().remove(service);
        let o = self.outliers.write().remove(service);
        if let Some(o) = o {
            o.reset();
        }
        b.is_some()
    }

    /// `{service: stats}` for `GET /admin/circuit-breakers` (see [`get`](Self::get)).
    pub fn snapshot(&self) -> Value {
        let breakers: Vec<Arc<Breaker>> = self.breakers.read().values().cloned().collect();
        let mut map = Map::new();
        for b in breakers {
            map.insert(b.service().to_owned(), self.stats_of(&b));
        }
        Value::Object(map)
    }

    /// The stats of `service` for `GET /admin/circuit-breakers/{service}`:
    /// [`Breaker::stats`] plus `ejected_instances` (ids). `None` for an unknown service.
    pub fn get(&self, service: &str) -> Option<Value> {
        let b = self.breakers.read().get(service).cloned()?;
        Some(self.stats_of(&b))
    }

    /// The names of the services with a breaker, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut v: Vec<String> = self.breakers.read().keys().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    /// Ends ejections whose time is up (calling `on_eject` when a set changes) and turns
    /// open breakers whose `open_secs` are over half-open (so the gauge follows without
    /// traffic). The binary calls it about once a second.
    pub fn tick(&self) {
        let outliers: Vec<Arc<OutlierDetector>> = self.outliers.read().values().cloned().collect();
        for o in outliers {
            o.tick();
        }
        let breakers: Vec<Arc<Breaker>> = self.breakers.read().values().cloned().collect();
        for b in breakers {
            b.tick();
        }
    }

    /// The current instance ids of `service`, the base of `max_ejection_percent`; stats and
    /// ejections of instances no longer listed are dropped.
    pub fn set_instances(&self, service: &str, ids: &[String]) {
        self.outliers(service).set_instances(ids);
    }

    /// The healthy instance ids of `service` (see [`OutlierDetector::set_healthy`]), and the
    /// share (percent) of them below which the balancer should ignore ejections (the
    /// service's `panic_threshold_percent`). Safe to call from the [`EjectFn`].
    pub fn set_healthy(&self, service: &str, ids: &[String]) -> u32 {
        let o = self.outliers(service);
        o.set_healthy(ids);
        o.config().panic_threshold_percent
    }

    fn stats_of(&self, b: &Breaker) -> Value {
        let mut v = b.stats();
        let ejected = self
            .outliers
            .read()
            .get(b.service())
            .map(|o| o.ejected())
            .unwrap_or_default();
        if let Value::Object(m) = &mut v {
            m.insert("ejected_instances".into(), ejected.into());
        }
        v
    }
}
