//! The background tasks, all started by [`Gateway::start`](crate::Gateway::start) through
//! [`spawn`] (constructors spawn nothing):
//!
//! - health checks (gw-discovery's `HealthChecker`) and, when configured, the Consul watcher;
//! - registry changes (health, Consul, admin) pushed to the balancers;
//! - upkeep, once a second: breaker ticks (half-open transitions, end of outlier
//!   ejections), the metrics exporter's upkeep, and every ten seconds the limiter's sweep;
//! - with Redis, the sync with other nodes: the changes subscriber and the poller;
//! - the JWKS refresh of the authenticator ([`spawn_jwks_refresh`]), detached: it ends with
//!   its authenticator, and a reload that builds a new one starts that one's refresh.
//!
//! Every task but the JWKS refresh ends when `stop` turns true; the gateway awaits them at
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use gw_auth::Authenticator;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::state::App;
use crate::sync::SharedState;

/// Starts the background work of `app` (see the module's list); returns the tasks to await at
/// shutdown.
pub(crate) fn spawn(app: &App, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = Vec::new();
    spawn_jwks_refresh(&app.inner.features.load().auth);
    let registry = app.inner.registry.clone();
    tasks.push(tokio::spawn(
        gw_discovery::HealthChecker::new(registry.clone()).run(stopped(stop.clone())),
    ));
    // Consul, when configured (read once: a change of [discovery.consul] needs a restart).
    let consul = app
        .inner
        .state
        .try_lock()
        .ok()
        .and_then(|st| st.config.discovery.consul.clone());
    if let Some(consul) = consul {
        tasks.push(tokio::spawn(
            gw_discovery::ConsulWatcher::new(consul, registry.clone()).run(stopped(stop.clone())),
        ));
    }
    // Subscribed now, so that no change made before the task first runs is missed.
    let changes = registry.subscribe();
    tasks.push(tokio::spawn(push_registry_changes(
        app.clone(),
        changes,
        stop.clone(),
    )));
    tasks.push(tokio::spawn(upkeep(app.clone(), stop.clone())));
    if let Some(shared) = app.shared().cloned() {
        let (kick_tx, kick_rx) = mpsc::channel::<()>(1);
        tasks.push(tokio::spawn(sync_subscriber(
            shared.clone(),
            kick_tx,
            stop.clone(),
        )));
        tasks.push(tokio::spawn(sync_poller(
            app.clone(),
            shared,
            kick_rx,
            stop,
        )));
    }
    tasks
}

/// Starts `auth`'s periodic JWKS refresh (with a `jwks_url`); it ends once `auth` is dropped.
pub(crate) fn spawn_jwks_refresh(auth: &Arc<Authenticator>) {
    if let Some(refresh) = auth.jwks_refresh() {
        tokio::spawn(refresh);
    }
}

/// Registry changes (health, Consul, admin) → balancers.
async fn push_registry_changes(
    app: App,
    mut changes: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        app.push_all_instances();
    }
}

/// Breaker ticks (half-open transitions, end of ejections), limiter sweeps and the metrics
/// exporter's upkeep.
async fn upkeep(app: App, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = stop.wait_for(|s| *s) => return,
        }
        app.inner.breakers.tick();
        // Histograms other crates record through the `metrics` facade (gw-monitor starts no
        // thread of its own for this).
        app.inner.metrics.run_upkeep();
        n += 1;
        if n.is_multiple_of(10) {
            app.inner.features.load().limiter.sweep();
        }
    }
}

/// The changes other nodes announce: one dedicated connection, re-dialled with a backoff
/// (100 ms doubling to 5 s); every message kicks the poller.
async fn sync_subscriber(
    shared: SharedState,
    kick: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::select! {
            r = shared.follow_changes(&kick) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "shared-config subscription lost; retrying");
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The safety net for missed messages: every second (or when kicked) compares the shared
/// version with this node's and refreshes when it is newer, else sends the heartbeat. The
/// first round forces a refresh; at stop the node leaves the heartbeat hash.
async fn sync_poller(
    app: App,
    shared: SharedState,
    mut kick: mpsc::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        let kicked = tokio::select! {
            _ = tick.tick() => Some(false),
            k = kick.recv() => Some(k.is_some()),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(kicked) = kicked else {
            shared.leave().await;
            return;
        };
        let result = if kicked || first {
            app.refresh_shared(first).await
        } else {
            match shared.version().await {
                Ok(v) if v > app.config_version() => app.refresh_shared(false).await,
                Ok(_) => shared.heartbeat(app.config_version()).await,
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => first = false,
            Err(e) => tracing::debug!(error = %e, "shared configuration not reachable"),
        }
    }
}
