//! The upstreams' instances: one [`Upstream`] per service kept across reloads, and what each
//! balancer is given (healthy, not ejected, admin-registered or from the shared store). Run
//! on registry, health and ejection changes, never per request.

use std::collections::HashMap;
use std::sync::Arc;

use gw_proxy::Upstream;

use super::App;
use crate::config::Config;

impl App {
    /// Declares the configuration's services to the registry and keeps one upstream (and so
    /// its pools and balancer state) per service while its balancer and protocol stay.
    pub(crate) fn apply_services(&self, config: &Config, old: Option<&Config>) {
        let current = self.inner.upstreams.load_full();
        let mut next = HashMap::with_capacity(config.services.len());
        for (name, sc) in &config.services {
            let up = match current.get(name) {
                Some(up)
                    if up.load_balancer() == sc.load_balancer && up.protocol() == sc.protocol =>
                {
                    up.clone()
                }
                _ => Upstream::new(name, sc.load_balancer, sc.protocol, Vec::new()),
            };
            next.insert(name.clone(), up);
            let statics = sc.instances.clone();
            self.inner
                .registry
                .set_static(name, statics, sc.health_check.clone());
        }
        if let Some(old) = old {
            for name in old.services.keys() {
                if !config.services.contains_key(name) {
                    self.inner.registry.remove_service(name);
                    self.inner.breakers.remove(name);
                }
            }
        }
        self.inner.upstreams.store(Arc::new(next));
        self.push_all_instances();
    }

    /// Gives every upstream its eligible instances: healthy and not ejected.
    pub(crate) fn push_all_instances(&self) {
        let names: Vec<String> = self.inner.upstreams.load().keys().cloned().collect();
        for name in names {
            let ids: Vec<String> = self
                .inner
                .registry
                .instances(&name)
                .unwrap_or_default()
                .into_iter()
                .map(|i| i.instance.id)
                .collect();
            self.inner.breakers.set_instances(&name, &ids);
            self.push_instances(&name);
        }
    }

    /// Gives one upstream its eligible instances (called on health, registry and ejection
    /// changes; never per request): the healthy ones less the ejected ones, unless fewer than
    /// the service's `outlier.panic_threshold_percent` of the healthy ones (or none) would be
    /// left, in which case ejections are ignored. The healthy set is also handed to the
    /// outlier detector, as the base of `max_ejection_percent`.
    pub(crate) fn push_instances(&self, service: &str) {
        let Some(up) = self.inner.upstreams.load().get(service).cloned() else {
            return;
        };
        let ejected = self
            .inner
            .ejected
            .lock()
            .get(service)
            .cloned()
            .unwrap_or_default();
        let healthy = self.inner.registry.healthy(service);
        let ids: Vec<String> = healthy.iter().map(|i| i.id.clone()).collect();
        // Ejection is counted against the healthy instances; below the panic threshold
        // (or with none left) ejections are ignored rather than answering 503.
        let panic = self.inner.breakers.set_healthy(service, &ids);
        let eligible: Vec<gw_proxy::Instance> = healthy
            .iter()
            .filter(|i| !ejected.contains(&i.id))
            .cloned()
            .collect();
        let eligible = if !healthy.is_empty()
            && (eligible.is_empty()
                || (eligible.len() as u64) * 100 < (healthy.len() as u64) * u64::from(panic))
        {
            tracing::warn!(
                service,
                healthy = healthy.len(),
                ejected = healthy.len() - eligible.len(),
                "outlier panic threshold reached: ejections ignored"
            );
            healthy
        } else {
            eligible
        };
        up.set_instances(eligible);
    }

    /// Replaces the admin-registered instances with what the shared store holds.
    pub(crate) fn apply_shared_instances(&self, instances: Vec<(String, gw_discovery::Instance)>) {
        let rejected = self.inner.registry.set_admin(instances);
        for (service, inst) in rejected {
            tracing::warn!(service, instance = %inst.id, "instance from the shared store names an unknown service; skipped");
        }
        self.push_all_instances();
    }
}
