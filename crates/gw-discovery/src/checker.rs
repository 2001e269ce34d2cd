//! Active health checks: a background future that the binary spawns.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::task::{AbortHandle, JoinSet};
use tokio::time::MissedTickBehavior;

use crate::client::HttpClient;
use crate::{HealthCheckConfig, Instance, Registry};

/// Checks the instances of every service that has a `health_check`, off the request path.
///
/// Each service has its own loop at its own `interval_secs`; at each tick every instance of
/// the service is checked in its own task with `GET http://host:port{path}` bounded by
/// `timeout_ms` (an instance whose previous check is still running is skipped), and each
/// result is counted as soon as it arrives, so a hanging instance delays no other instance. Services and health-check settings are followed as
/// the registry changes (reload, Consul); a service's loop restarts when its settings change.
///
/// ```no_run
/// # async fn demo() {
/// use gw_discovery::{HealthChecker, Registry};
/// let registry = Registry::new();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let task = tokio::spawn(HealthChecker::new(registry.clone()).run(async {
///     let _ = stopped.await;
/// }));
/// // … on shutdown:
/// let _ = stop.send(());
/// task.await.unwrap();
/// # }
/// ```
#[derive(Debug)]
pub struct HealthChecker {
    registry: Arc<Registry>,
    client: HttpClient,
}

impl HealthChecker {
    /// A checker of the services in `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        HealthChecker {
            registry,
            client: HttpClient::new(),
        }
    }

    /// Checks until `shutdown` completes; every check in flight is cancelled then.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut config = self.registry.subscribe_config();
        let mut tasks = JoinSet::new();
        let mut running: HashMap<String, (HealthCheckConfig, AbortHandle)> = HashMap::new();
        loop {
            config.borrow_and_update();
            let wanted: HashMap<String, HealthCheckConfig> =
                self.registry.health_checks().into_iter().collect();
            running.retain(|service, (cfg, handle)| {
                let keep = wanted.get(service) == Some(cfg);
                if !keep {
                    handle.abort();
                }
                keep
            });
            for (service, cfg) in wanted {
                if running.contains_key(&service) {
                    continue;
                }
                tracing::debug!(service, interval = ?cfg.interval(), path = %cfg.path, "health checks start");
                let handle = tasks.spawn(check_service(
                    self.registry.clone(),
                    self.client.clone(),
                    Arc::from(service.as_str()),
                    cfg.clone(),
                ));
                running.insert(service, (cfg, handle));
            }
            tokio::select! {
                () = &mut shutdown => break,
                changed = config.changed() => if changed.is_err() { break },
                // Reap ended loops (aborted, or their service vanished): forget them, so the
                // next pass starts one again if the service still wants checks.
                Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match &ended { Ok((id, ())) => *id, Err(e) => e.id() };
                    running.retain(|_, (_, handle)| handle.id() != id);
                }
            }
        }
        tasks.shutdown().await;
    }
}

/// One service's loop: every `interval`, a check of each instance that is not still being
/// checked (so an instance that hangs until `timeout` holds up no other instance's checks).
async fn check_service(
    registry: Arc<Registry>,
    client: HttpClient,
    service: Arc<str>,
    cfg: HealthCheckConfig,
) {
    let cfg = Arc::new(cfg);
    let mut interval = tokio::time::interval(cfg.interval());
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Checks in flight, by task, with the instance id they check. Dropped (and so aborted)
    // with this future when the loop is cancelled.
    let mut checks = JoinSet::new();
    let mut busy: HashMap<tokio::task::Id, String> = HashMap::new();
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let Some(instances) = registry.instances(&service) else {
                    return;
                };
                for info in instances {
                    if busy.values().any(|id| *id == info.instance.id) {
                        continue;
                    }
                    let id = info.instance.id.clone();
                    let handle = checks.spawn(check_one(
                        registry.clone(),
                        client.clone(),
                        service.clone(),
                        cfg.clone(),
                        info.instance,
                    ));
                    busy.insert(handle.id(), id);
                }
            }
            Some(done) = checks.join_next_with_id(), if !checks.is_empty() => {
                let task = match done { Ok((task, ())) => task, Err(e) => e.id() };
                busy.remove(&task);
            }
        }
    }
}

async fn check_one(
    registry: Arc<Registry>,
    client: HttpClient,
    service: Arc<str>,
    cfg: Arc<HealthCheckConfig>,
    instance: Instance,
) {
    let url = format!("http://{}{}", instance.authority(), cfg.path);
    let success = match client.status(&url, cfg.timeout()).await {
        Ok(status) if status.is_success() || status.is_redirection() => true,
        Ok(status) => {
            tracing::debug!(%service, instance = %instance.id, %status, "health check failed");
            false
        }
        Err(error) => {
            tracing::debug!(%service, instance = %instance.id, %error, "health check failed");
            false
        }
    };
    registry.record_check(&service, &instance, success, epoch_secs());
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
