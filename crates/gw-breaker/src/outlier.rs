//! Per-instance outlier ejection: [`Ejections`] (pure, explicit clock) and
//! [`OutlierDetector`] (one per service: a lock, a clock and the callback to the balancer).
//!
//! An instance that fails `consecutive_failures` times in a row (a success resets the count)
//! is ejected for `base_ejection_secs × n`, where n counts its ejections, capped at
//! `max_ejection_secs` (Envoy's rule). n goes down by one for every `base_ejection_secs` the
//! instance then stays in, so an instance that recovered is soon treated as new again. At
//! most `max_ejection_percent` of the service's instances are out at once: an instance that
//! reaches the threshold while the quota is used up stays in and is ejected on its next
//! failure once there is room (Envoy's `max_ejection_percent`; with 2 or 3 instances and
//! 50 %, at most one is out; a lone instance is never ejected — the breaker handles that).
//! Once the binary reports the healthy instances ([`Ejections::set_healthy`]), the quota is a
//! share of those, and only ejected instances that are healthy use it up: instances the
//! health checks took out do not make room for ejecting the rest.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::Clock;
use crate::config::OutlierConfig;

/// Called with the service name and its complete set of ejected instance ids whenever that
/// set changes; the binary hands the set to its balancer. It must not call back into the
/// same [`OutlierDetector`]'s `record`/`tick`/`set_instances`.
pub type EjectFn = Arc<dyn Fn(&str, &[String]) + Send + Sync>;

#[derive(Clone, Debug, Default)]
struct Instance {
    consecutive: u32,
    /// Times ejected, less one per `base_ejection_secs` spent back in.
    multiplier: u32,
    /// `Some(until)` while ejected.
    ejected_until: Option<u64>,
    /// When the multiplier last changed or the ejection ended.
    since: u64,
}

/// The ejection bookkeeping of one service, pure: every call takes `now` in milliseconds.
#[derive(Clone, Debug)]
pub struct Ejections {
    config: OutlierConfig,
    instances: HashMap<String, Instance>,
    /// Instance count announced by [`set_instances`](Self::set_instances), if any.
    announced: Option<usize>,
    /// Sorted ids of the ejected instances.
    ejected: Vec<String>,
    /// Sorted ids of the healthy instances, once announced by
    /// [`set_healthy`](Self::set_healthy).
    healthy: Option<Vec<String>>,
}

impl Ejections {
    /// No instance known, none ejected.
    pub fn new(config: OutlierConfig) -> Self {
        Ejections {
            config,
            instances: HashMap::new(),
            announced: None,
            ejected: Vec::new(),
            healthy: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OutlierConfig {
        &self.config
    }

    /// Sorted ids of the instances that are out.
    pub fn ejected(&self) -> &[String] {
        &self.ejected
    }

    /// Replaces the configuration; disabling ejection lets every instance back in.
    /// Returns whether the ejected set changed.
    pub fn set_config(&mut self, config: OutlierConfig) -> bool {
        self.config = config;
        if self.config.enabled || self.ejected.is_empty() {
            return false;
        }
        for inst in self.instances.values_mut() {
            inst.ejected_until = None;
            inst.consecutive = 0;
        }
        self.ejected.clear();
        true
    }

    /// The service's current instances: stats of others are dropped (and their ejections
    /// ended), and `ids.len()` is the base of `max_ejection_percent`. Returns whether the
    /// ejected set changed.
    pub fn set_instances(&mut self, ids: &[String]) -> bool {
        self.announced = Some(ids.len());
        self.instances.retain(|id, _| ids.contains(id));
        let before = self.ejected.len();
        let instances = &self.instances;
        self.ejected.retain(|id| instances.contains_key(id));
        before != self.ejected.len()
    }

    /// The service's healthy instances (those the health checks let through): from now on
    /// the base of `max_ejection_percent`. Never changes the ejected set.
    pub fn set_healthy(&mut self, ids: &[String]) {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        self.healthy = Some(ids);
    }

    /// Records one result of `instance` at `now`. Returns whether the ejected set changed.
    pub fn record(&mut self, instance: &str, success: bool, now: u64) -> bool {
        if !self.config.enabled {
            return false;
        }
        let known = self.instances.contains_key(instance);
        if success {
            if let Some(inst) = self.instances.get_mut(instance) {
                inst.consecutive = 0;
            }
            return false;
        }
        if !known {
            self.instances.insert(
                instance.to_owned(),
                Instance {
                    since: now,
                    ..Instance::default()
                },
            );
        }
        let threshold = self.config.consecutive_failures;
        let Some(inst) = self.instances.get_mut(instance) else {
            return false;
        };
        if inst.ejected_until.is_some() {
            // A request that was in flight when the instance was ejected.
            return false;
        }
        inst.consecutive = inst.consecutive.saturating_add(1);
        if inst.consecutive < threshold || !self.has_room() {
            return false;
        }
        self.eject(instance, now);
        true
    }

    /// Ends the ejections whose time is up (and decays multipliers) at `now`. Returns
    /// whether the ejected set changed.
    pub fn tick(&mut self, now: u64) -> bool {
        let base = self.config.base_ejection_secs.saturating_mul(1000).max(1);
        let mut changed = false;
        for (id, inst) in &mut self.instances {
            match inst.ejected_until {
                Some(until) if now >= until => {
                    inst.ejected_until = None;
                    inst.consecutive = 0;
                    inst.since = now;
                    if let Ok(i) = self.ejected.binary_search(id) {
                        self.ejected.remove(i);
                    }
                    changed = true;
                }
                Some(_) => {}
                None if inst.multiplier > 0 && now.saturating_sub(inst.since) >= base => {
                    inst.multiplier -= 1;
                    inst.since = now;
                }
                None => {}
            }
        }
        changed
    }

    /// Whether `instance` is out, and until when.
    pub fn ejected_until(&self, instance: &str) -> Option<u64> {
        self.instances.get(instance)?.ejected_until
    }

    /// Lets every instance back in and forgets all counts. Returns whether the set changed.
    pub fn reset(&mut self) -> bool {
        let changed = !self.ejected.is_empty();
        self.instances.clear();
        self.ejected.clear();
        changed
    }

    /// Whether one more instance may go out without exceeding `max_ejection_percent`.
    fn has_room(&self) -> bool {
        let (total, out) = match &self.healthy {
            Some(healthy) => {
                let out = self
                    .ejected
                    .iter()
                    .filter(|id| healthy.binary_search(id).is_ok())
                    .count();
                (healthy.len() as u64, out as u64)
            }
            None => (
                self.announced.unwrap_or(0).max(self.instances.len()) as u64,
                self.ejected.len() as u64,
            ),
        };
        (out + 1) * 100 <= total * u64::from(self.config.max_ejection_percent)
    }

    fn eject(&mut self, instance: &str, now: u64) {
        let base = self.config.base_ejection_secs.saturating_mul(1000);
        let max = self.config.max_ejection_secs.saturating_mul(1000);
        if let Some(inst) = self.instances.get_mut(instance) {
            inst.multiplier = inst.multiplier.saturating_add(1);
            let length = base.saturating_mul(u64::from(inst.multiplier)).min(max);
            // Past the cap the multiplier stops growing, so decay starts from the cap.
            if base > 0 && base.saturating_mul(u64::from(inst.multiplier)) > max {
                inst.multiplier = u32::try_from(max.div_ceil(base)).unwrap_or(u32::MAX);
            }
            inst.ejected_until = Some(now.saturating_add(length));
            inst.consecutive = 0;
            inst.since = now;
            if let Err(i) = self.ejected.binary_search_by(|e| e.as_str().cmp(instance)) {
                self.ejected.insert(i, instance.to_owned());
            }
            tracing::warn!(instance, ejection_ms = length, "outlier instance ejected");
        }
    }
}

/// Outlier ejection for one service: [`Ejections`] behind a lock, with a clock and the
/// binary's [`EjectFn`].
pub struct OutlierDetector {
    service: Arc<str>,
    clock: Clock,
    state: Mutex<(Ejections, u64)>,
    /// The version last handed to `on_eject`; held while calling it so that a newer set is
    /// never overtaken by an older one.
    delivered: Mutex<u64>,
    on_eject: EjectFn,
}

impl fmt::Debug for OutlierDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutlierDetector")
            .field("service", &self.service)
            .field("ejected", &self.ejected())
            .finish_non_exhaustive()
    }
}

impl OutlierDetector {
    /// A detector for `service` that reports changes of its ejected set to `on_eject`.
    pub fn new(service: &str, config: OutlierConfig, on_eject: EjectFn) -> Arc<Self> {
        Arc::new(OutlierDetector {
            service: service.into(),
            clock: Clock::new(),
            state: Mutex::new((Ejections::new(config), 0)),
            delivered: Mutex::new(0),
            on_eject,
        })
    }

    /// The service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Sorted ids of the instances that are out.
    pub fn ejected(&self) -> Vec<String> {
        self.state.lock().0.ejected().to_vec()
    }

    /// The configuration.
    pub fn config(&self) -> OutlierConfig {
        self.state.lock().0.config().clone()
    }

    /// Records one result of `instance` (re-evaluating its ejection).
    pub fn record(&self, instance: &str, success: bool) {
        let now = self.clock.now_ms();
        self.update(|e| e.record(instance, success, now));
    }

    /// Ends ejections whose time is up; the binary calls it about once a second.
    pub fn tick(&self) {
        let now = self.clock.now_ms();
        self.update(|e| e.tick(now));
    }

    /// The service's current instances (see [`Ejections::set_instances`]).
    pub fn set_instances(&self, ids: &[String]) {
        self.update(|e| e.set_instances(ids));
    }

    /// The service's healthy instances (see [`Ejections::set_healthy`]). Takes only the
    /// state lock and never calls the [`EjectFn`], so the callback itself may call it.
    pub fn set_healthy(&self, ids: &[String]) {
        self.state.lock().0.set_healthy(ids);
    }

    /// Replaces the configuration (see [`Ejections::set_config`]).
    pub fn set_config(&self, config: OutlierConfig) {
        if self.state.lock().0.config() == &config {
            return;
        }
        self.update(|e| e.set_config(config));
    }

    /// Lets every instance back in and forgets all counts.
    pub fn reset(&self) {
        self.update(Ejections::reset);
    }

    fn update(&self, f: impl FnOnce(&mut Ejections) -> bool) {
        {
            let mut state = self.state.lock();
            if !f(&mut state.0) {
                return;
            }
            state.1 += 1;
        }
        // Deliver the newest set, outside the state lock (the callback may be slow or
        // read the detector), in version order.
        let mut delivered = self.delivered.lock();
        let (version, set) = {
            let state = self.state.lock();
            (state.1, state.0.ejected().to_vec())
        };
        if version > *delivered {
            *delivered = version;
            (self.on_eject)(&self.service, &set);
        }
    }
}
