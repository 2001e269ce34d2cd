//! The registry: services, their instances from every source, and each instance's health.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::health::{HealthState, Status};
use crate::{HealthCheckConfig, Instance, RegisterError, Source};

/// The name of the gauge exported for every instance (1 healthy, 0 unhealthy).
pub const HEALTH_GAUGE: &str = "gateway_upstream_healthy";

/// One instance as the registry sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceInfo {
    /// The instance.
    pub instance: Instance,
    /// Where it came from (the winning source when several name the same id).
    pub source: Source,
    /// Its health.
    pub health: HealthState,
}

#[derive(Debug, Default)]
struct ServiceState {
    /// Declared in the configuration (through `set_static`).
    declared: bool,
    /// In Consul's catalog (through `set_consul`).
    discovered: bool,
    health_check: Option<HealthCheckConfig>,
    statics: Vec<Instance>,
    consul: Vec<Instance>,
    admin: Vec<Instance>,
    /// Health by instance id, with the `host:port` it was measured on.
    health: HashMap<String, (String, HealthState)>,
}

impl ServiceState {
    /// The instances in use: every source, by id, `Admin` over `Consul` over `Static`, in
    /// first-seen order.
    fn effective(&self) -> Vec<(&Instance, Source)> {
        let mut out: Vec<(&Instance, Source)> =
            Vec::with_capacity(self.statics.len() + self.consul.len() + self.admin.len());
        for (list, source) in [
            (&self.statics, Source::Static),
            (&self.consul, Source::Consul),
            (&self.admin, Source::Admin),
        ] {
            for inst in list {
                match out.iter_mut().find(|(i, _)| i.id == inst.id) {
                    Some(slot) => *slot = (inst, source),
                    None => out.push((inst, source)),
                }
            }
        }
        out
    }

    fn status_of(&self, id: &str) -> HealthState {
        self.health.get(id).map(|(_, h)| *h).unwrap_or_default()
    }

    fn healthy(&self) -> Vec<Instance> {
        self.effective()
            .into_iter()
            .filter(|(i, _)| self.status_of(&i.id).status == Status::Healthy)
            .map(|(i, _)| i.clone())
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.statics.is_empty() && self.consul.is_empty() && self.admin.is_empty()
    }

    /// Brings `health` in line with the effective instances: new ids start healthy, an id
    /// whose address changed starts over, ids that left are dropped.
    fn reconcile(&mut self, service: &str, gauges: &mut Vec<Gauge>) {
        let current: Vec<(String, String)> = self
            .effective()
            .into_iter()
            .map(|(i, _)| (i.id.clone(), i.authority()))
            .collect();
        self.health.retain(|id, _| {
            let keep = current.iter().any(|(cid, _)| cid == id);
            if !keep {
                gauges.push(Gauge::new(service, id, false));
            }
            keep
        });
        for (id, addr) in current {
            match self.health.get_mut(&id) {
                Some((known, _)) if *known == addr => {}
                Some(entry) => {
                    *entry = (addr, HealthState::default());
                    gauges.push(Gauge::new(service, &id, true));
                }
                None => {
                    gauges.push(Gauge::new(service, &id, true));
                    self.health.insert(id, (addr, HealthState::default()));
                }
            }
        }
    }
}

/// A gauge value to set once the lock is released.
#[derive(Debug)]
struct Gauge {
    service: String,
    instance: String,
    healthy: bool,
}

impl Gauge {
    fn new(service: &str, instance: &str, healthy: bool) -> Self {
        Gauge {
            service: service.to_owned(),
            instance: instance.to_owned(),
            healthy,
        }
    }

    fn emit(self) {
        metrics::gauge!(HEALTH_GAUGE, "service" => self.service, "instance" => self.instance)
            .set(if self.healthy { 1.0 } else { 0.0 });
    }
}

/// Services and their instances — static from the configuration, registered through the
/// admin API, discovered in Consul — with each instance's health.
///
/// Every method takes a short `parking_lot` lock and never awaits; the proxy does not read
/// the registry per request but gets [`Registry::healthy`] pushed to it whenever
/// [`Registry::subscribe`] signals a change.
///
/// Instance ids are unique within a service. When several sources name the same id, the
/// instance of the more specific source is used (`Admin` over `Consul` over `Static`); the
/// others come back when it goes. Health is kept by id and survives any update that keeps
/// the instance's `host:port`.
///
/// Every instance's health is exported as the gauge `gateway_upstream_healthy{service,
/// instance}`: 1 when it appears or becomes healthy, 0 when it becomes unhealthy or leaves.
#[derive(Debug)]
pub struct Registry {
    services: RwLock<BTreeMap<String, ServiceState>>,
    /// Bumped when any service's healthy set changes.
    healthy_tx: watch::Sender<u64>,
    /// Bumped when services come or go or a health-check configuration changes.
    config_tx: watch::Sender<u64>,
}

#[derive(Default)]
struct Effects {
    gauges: Vec<Gauge>,
    healthy_changed: bool,
    config_changed: bool,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Registry {
            services: RwLock::new(BTreeMap::new()),
            healthy_tx: watch::channel(0).0,
            config_tx: watch::channel(0).0,
        })
    }

    /// Runs `f` on one service under the write lock, then (unlocked) sets gauges and sends
    /// notifications. `f` returns whether the service should be dropped afterwards.
    fn update<R>(
        &self,
        service: &str,
        create: bool,
        f: impl FnOnce(&mut ServiceState, &mut Effects) -> R,
    ) -> Option<R> {
        let mut effects = Effects::default();
        let result = {
            let mut services = self.services.write();
            if create && !services.contains_key(service) {
                services.insert(service.to_owned(), ServiceState::default());
                effects.config_changed = true;
            }
            let state = services.get_mut(service)?;
            let before = state.healthy();
            let health_before = state.health_check.clone();
            let result = f(state, &mut effects);
            state.reconcile(service, &mut effects.gauges);
            if state.health_check.is_none() {
                // Without checks nothing says otherwise: every instance is healthy.
                for (id, (_, health)) in &mut state.health {
                    if *health != HealthState::default() {
                        if health.status == Status::Unhealthy {
                            effects.gauges.push(Gauge::new(service, id, true));
                        }
                        *health = HealthState::default();
                    }
                }
            }
            if health_before != state.health_check {
                effects.config_changed = true;
            }
            let remove = !state.declared && !state.discovered && state.is_empty();
            if remove {
                services.remove(service);
                effects.config_changed = true;
                effects.healthy_changed |= !before.is_empty();
            } else {
                effects.healthy_changed |= before != state.healthy();
            }
            result
        };
        self.apply(effects);
        Some(result)
    }

    fn apply(&self, effects: Effects) {
        for g in effects.gauges {
            g.emit();
        }
        if effects.healthy_changed {
            self.healthy_tx.send_modify(|v| *v = v.wrapping_add(1));
        }
        if effects.config_changed {
            self.config_tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Declares a service from the configuration (at start and on every reload): its static
    /// instances and its health check. Admin and Consul instances stay, and so does the
    /// health of every instance that keeps its address — unless `health` is `None`: without
    /// checks every instance is healthy.
    pub fn set_static(
        &self,
        service: &str,
        instances: Vec<Instance>,
        health: Option<HealthCheckConfig>,
    ) {
        self.update(service, true, |state, _| {
            state.declared = true;
            state.statics = dedup(instances);
            state.health_check = health;
        });
    }

    /// Undeclares a service that left the configuration: drops its static and admin
    /// instances and its health check. Its Consul instances stay while Consul lists it.
    pub fn remove_service(&self, service: &str) {
        self.update(service, false, |state, _| {
            state.declared = false;
            state.statics.clear();
            state.admin.clear();
            state.health_check = None;
        });
    }

    /// Registers (or replaces, by id) an instance through the admin API.
    ///
    /// The service must be declared in the configuration or discovered in Consul (docs/admin-api.md).
    pub fn register(&self, service: &str, instance: Instance) -> Result<Instance, RegisterError> {
        let problems = instance.problems();
        if !problems.is_empty() {
            return Err(RegisterError::InvalidInstance(problems));
        }
        let registered = instance.clone();
        self.update(service, false, move |state, _| {
            match state.admin.iter_mut().find(|i| i.id == instance.id) {
                Some(slot) => *slot = instance,
                None => state.admin.push(instance),
            }
        })
        .ok_or_else(|| RegisterError::UnknownService(service.to_owned()))?;
        tracing::info!(service, instance = %registered.id, addr = %registered.authority(), "service instance registered");
        Ok(registered)
    }

    /// Removes the instance `id` from `service`, whatever its source; `false` when there was
    /// none. A static instance comes back with the next [`Registry::set_static`] (reload), a
    /// Consul one with Consul's next change of that service.
    pub fn deregister(&self, service: &str, id: &str) -> bool {
        let removed = self
            .update(service, false, |state, _| {
                let n = state.statics.len() + state.consul.len() + state.admin.len();
                state.statics.retain(|i| i.id != id);
                state.consul.retain(|i| i.id != id);
                state.admin.retain(|i| i.id != id);
                n != state.statics.len() + state.consul.len() + state.admin.len()
            })
            .unwrap_or(false);
        if removed {
            tracing::info!(service, instance = id, "service instance deregistered");
        }
        removed
    }

    /// Replaces every admin-registered instance of every service (e.g. from the shared
    /// store, when another node changed them). Entries of services the registry does not
    /// know are returned, not applied; invalid instances ([`Instance::problems`]) are skipped
    /// with a warning.
    pub fn set_admin(&self, instances: Vec<(String, Instance)>) -> Vec<(String, Instance)> {
        let mut by_service: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        let known: Vec<String> = self.services();
        let mut rejected = Vec::new();
        for (service, inst) in instances {
            if !inst.problems().is_empty() {
                tracing::warn!(service, instance = %inst.id, "invalid instance skipped");
                continue;
            }
            if known.contains(&service) {
                by_service.entry(service).or_default().push(inst);
            } else {
                rejected.push((service, inst));
            }
        }
        for service in known {
            let list = by_service.remove(&service).unwrap_or_default();
            self.update(&service, false, |state, _| state.admin = dedup(list));
        }
        rejected
    }

    /// Sets the Consul instances of a service, replacing the previous ones; a service that
    /// is not declared is added (as discovered).
    /// Invalid instances ([`Instance::problems`]) are skipped with a warning.
    pub fn set_consul(&self, service: &str, mut instances: Vec<Instance>) {
        instances.retain(|i| {
            let ok = i.problems().is_empty();
            if !ok {
                tracing::warn!(service, instance = %i.id, "invalid instance skipped");
            }
            ok
        });
        self.update(service, true, |state, _| {
            state.discovered = true;
            state.consul = dedup(instances);
        });
    }

    /// A service left Consul's catalog (or is no longer watched): drops its Consul
    /// instances, and the service itself when nothing else declares or fills it.
    pub fn remove_consul(&self, service: &str) {
        self.update(service, false, |state, _| {
            state.discovered = false;
            state.consul.clear();
        });
    }

    /// Counts one health-check result of `instance` made at `now` (epoch seconds), against
    /// the service's thresholds; returns the new status when it changed.
    ///
    /// Ignored (`None`) when the service has no health check, or the instance left or moved
    /// to another address since the check began.
    pub fn record_check(
        &self,
        service: &str,
        instance: &Instance,
        success: bool,
        now: u64,
    ) -> Option<Status> {
        let authority = instance.authority();
        let changed = self
            .update(service, false, |state, effects| {
                let cfg = state.health_check.as_ref()?;
                let (healthy_t, unhealthy_t) = (cfg.healthy_threshold, cfg.unhealthy_threshold);
                let (addr, health) = state.health.get_mut(&instance.id)?;
                if *addr != authority {
                    return None;
                }
                let changed = health.record(success, now, healthy_t, unhealthy_t)?;
                effects.gauges.push(Gauge::new(
                    service,
                    &instance.id,
                    changed == Status::Healthy,
                ));
                Some(changed)
            })
            .flatten();
        match changed {
            Some(Status::Unhealthy) => tracing::warn!(
                service,
                instance = %instance.id,
                addr = %authority,
                "upstream instance is unhealthy"
            ),
            Some(Status::Healthy) => tracing::info!(
                service,
                instance = %instance.id,
                addr = %authority,
                "upstream instance is healthy again"
            ),
            None => {}
        }
        changed
    }

    /// The healthy instances of a service: what its load balancer should get (empty for an
    /// unknown service; the proxy then answers 503 `No healthy upstream`).
    pub fn healthy(&self, service: &str) -> Vec<Instance> {
        self.services
            .read()
            .get(service)
            .map(ServiceState::healthy)
            .unwrap_or_default()
    }

    /// Signals every change of any service's healthy set (the value is a counter). The
    /// binary reacts by pushing [`Registry::healthy`] into the proxy's upstreams.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.healthy_tx.subscribe()
    }

    /// Signals services coming and going and health-check configurations changing.
    pub(crate) fn subscribe_config(&self) -> watch::Receiver<u64> {
        self.config_tx.subscribe()
    }

    /// Names of every known service (declared or discovered), sorted.
    pub fn services(&self) -> Vec<String> {
        self.services.read().keys().cloned().collect()
    }

    /// Whether a service is known (declared or discovered).
    pub fn contains(&self, service: &str) -> bool {
        self.services.read().contains_key(service)
    }

    /// The instances of a service with their source and health; `None` for an unknown one.
    pub fn instances(&self, service: &str) -> Option<Vec<InstanceInfo>> {
        let services = self.services.read();
        let state = services.get(service)?;
        Some(
            state
                .effective()
                .into_iter()
                .map(|(i, source)| InstanceInfo {
                    instance: i.clone(),
                    source,
                    health: state.status_of(&i.id),
                })
                .collect(),
        )
    }

    /// Services with an active health check, and their configuration.
    pub(crate) fn health_checks(&self) -> Vec<(String, HealthCheckConfig)> {
        self.services
            .read()
            .iter()
            .filter_map(|(name, s)| Some((name.clone(), s.health_check.clone()?)))
            .collect()
    }

    /// `{name: {total_instances, healthy_instances, health_ratio}}` for `GET /admin/services`
    /// (the value under `"services"`). `health_ratio` is 0 for a service without instances.
    pub fn summary(&self) -> Value {
        let services = self.services.read();
        let map = services
            .iter()
            .map(|(name, state)| {
                let total = state.effective().len();
                let healthy = state.healthy().len();
                let ratio = if total == 0 {
                    0.0
                } else {
                    healthy as f64 / total as f64
                };
                (
                    name.clone(),
                    json!({
                        "total_instances": total,
                        "healthy_instances": healthy,
                        "health_ratio": ratio,
                    }),
                )
            })
            .collect();
        Value::Object(map)
    }

    /// `{"service": name, "instances": [{id, host, port, weight, status, last_check,
    /// metadata}]}` for `GET /admin/services/{name}`; `None` for an unknown service.
    pub fn detail(&self, service: &str) -> Option<Value> {
        let instances: Vec<Value> = self
            .instances(service)?
            .into_iter()
            .map(|info| {
                let i = info.instance;
                json!({
                    "id": i.id,
                    "host": i.host,
                    "port": i.port,
                    "weight": i.weight,
                    "status": info.health.status.as_str(),
                    "last_check": info.health.last_check,
                    "metadata": i.metadata,
                })
            })
            .collect();
        Some(json!({ "service": service, "instances": instances }))
    }

    /// Every admin-registered instance as `(service, instance)`, for persistence.
    pub fn admin_instances(&self) -> Vec<(String, Instance)> {
        self.services
            .read()
            .iter()
            .flat_map(|(name, s)| s.admin.iter().map(move |i| (name.clone(), i.clone())))
            .collect()
    }
}

/// Keeps the last of several instances with one id, at the first one's position.
fn dedup(mut instances: Vec<Instance>) -> Vec<Instance> {
    let mut out: Vec<Instance> = Vec::with_capacity(instances.len());
    for inst in instances.drain(..) {
        match out.iter_mut().find(|i| i.id == inst.id) {
            Some(slot) => *slot = inst,
            None => out.push(inst),
        }
    }
    out
}
