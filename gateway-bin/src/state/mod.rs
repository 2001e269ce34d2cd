//! The live state: [`App`] holds the route table snapshot the request path reads, the edge
//! settings and the reloadable features (authenticator, limiter), and the state that outlives
//! a rebuild (upstreams and their pools, breakers, limiter and auth stores, the service
//! registry, metric handles, the shared store's handle). Built once by [`App::new`], changed by
//! [`App::reload`], the admin API (control.rs) and the sync with other nodes.
//!
//! Writers (admin API, reload, changes from other nodes) serialise on one async mutex
//! ([`WriteState`]) and publish a new immutable [`RouteTable`] through `ArcSwap`; the request
//! path only ever loads the current snapshot.
//!
//! - [`routes`]: publish, put and delete a route, apply the shared store's routes.
//! - [`upstreams`]: services → upstreams, and the instances each balancer is given.
//!
//! What a route's stack is made of is `assemble.rs`'s; the tasks that keep this state fresh
//! are `tasks.rs`'s.

mod routes;
mod upstreams;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use arc_swap::ArcSwap;
use deadpool_redis::Pool;
use gw_auth::{AuthStore, Authenticator, JwksOptions, JwtConfig, MemoryAuthStore, RedisAuthStore};
use gw_breaker::BreakerRegistry;
use gw_discovery::Registry;
use gw_monitor::Metrics;
use gw_proxy::{Clients, TrustedProxies, Upstream};
use gw_ratelimit::{RateLimitConfig, RateLimiter};
use gw_router::{RouteService, RouteTable};
use parking_lot::Mutex;

use crate::config::{Config, ConfigError, ConfigErrors, RouteConfig};
use crate::sync::SharedState;
use crate::tasks;

/// Where a route came from: the file is re-read on reload, admin routes live on top of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    File,
    Admin,
}

/// One route: its configuration, its built stack, and where it came from.
#[derive(Clone)]
pub(crate) struct RouteEntry {
    pub(crate) config: RouteConfig,
    pub(crate) service: RouteService,
    pub(crate) origin: Origin,
}

/// Settings the edge reads per request, swapped on reload.
#[derive(Debug)]
pub(crate) struct EdgeSettings {
    pub(crate) trusted_proxies: TrustedProxies,
    /// The canonical-request rules (path, Host, header names, head limits).
    pub(crate) policy: gw_edge::EdgePolicy,
}

/// The parts of the stacks that depend on reloadable configuration.
pub(crate) struct Features {
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) jwt: Option<JwtConfig>,
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) rate_limit: RateLimitConfig,
}

/// The gateway's shared state. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("node", &self.inner.node_id)
            .field("routes", &self.inner.table.load().len())
            .finish_non_exhaustive()
    }
}

/// What every clone of [`App`] shares.
pub(crate) struct Inner {
    pub(crate) table: Arc<ArcSwap<RouteTable>>,
    pub(crate) edge: ArcSwap<EdgeSettings>,
    pub(crate) clients: Clients,
    pub(crate) metrics: Metrics,
    pub(crate) started: std::time::Instant,
    pub(crate) node_id: String,
    /// The Redis pool and key prefix, when the backend is Redis.
    pub(crate) shared: Option<SharedState>,
    pub(crate) auth_store: Arc<dyn AuthStore>,
    pub(crate) rl_store: Arc<dyn gw_ratelimit::Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) breakers: Arc<BreakerRegistry>,
    /// Read by the outlier callback on the request path: never behind the writers' lock.
    pub(crate) upstreams: ArcSwap<HashMap<String, Arc<Upstream>>>,
    /// Instances the outlier detectors took out, per service.
    pub(crate) ejected: Mutex<HashMap<String, Vec<String>>>,
    pub(crate) features: ArcSwap<Features>,
    /// Version of the configuration state this node runs.
    pub(crate) version: AtomicU64,
    pub(crate) version_gauge: metrics::Gauge,
    /// Held by writers only (admin API, reload, sync), never by the request path.
    pub(crate) state: tokio::sync::Mutex<WriteState>,
}

/// What writers change under the lock: the configuration file applied and the route list
/// (file and admin routes, in table order).
pub(crate) struct WriteState {
    pub(crate) config: Config,
    pub(crate) routes: Vec<RouteEntry>,
}

fn unknown(path: &str, message: impl Into<String>) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        path: path.into(),
        message: message.into(),
    }])
}

impl App {
    /// Builds the state for `config` (already validated). Creating the Redis pool dials
    /// nothing: the gateway starts while Redis is unreachable. Spawns nothing either: the
    /// background tasks (health checks, sync, JWKS refresh, …) are started by
    /// [`Gateway::start`](crate::Gateway::start).
    pub async fn new(config: Config, metrics: Metrics) -> Result<App, ConfigErrors> {
        let pool: Option<Pool> = config.store.pool().map_err(|e| unknown("store", e))?;
        let prefix = config.store.key_prefix.clone();
        let timeout = config.store.timeout();
        let (auth_store, rl_store): (Arc<dyn AuthStore>, Arc<dyn gw_ratelimit::Store>) = match &pool
        {
            Some(pool) => (
                Arc::new(RedisAuthStore::new(pool.clone(), prefix.clone(), timeout)),
                Arc::new(gw_ratelimit::RedisStore::new(
                    pool.clone(),
                    prefix.clone(),
                    timeout,
                )),
            ),
            None => (
                Arc::new(MemoryAuthStore::new()),
                Arc::new(gw_ratelimit::MemoryStore::new()),
            ),
        };
        let features = build_features(&config, &auth_store, &rl_store, None).await?;

        // The outlier detectors report ejections through this callback, which needs the App
        // that does not exist yet: it holds a weak reference filled in below.
        let slot: Arc<OnceLock<Weak<Inner>>> = Arc::new(OnceLock::new());
        let cb_slot = slot.clone();
        let breakers = BreakerRegistry::new(Arc::new(move |service: &str, ids: &[String]| {
            if let Some(inner) = cb_slot.get().and_then(Weak::upgrade) {
                inner
                    .ejected
                    .lock()
                    .insert(service.to_string(), ids.to_vec());
                App { inner }.push_instances(service);
            }
        }));
        let node_id = node_id();
        let shared = pool.map(|pool| {
            SharedState::new(
                pool,
                prefix,
                timeout,
                config.store.redis_url.clone(),
                node_id.clone(),
            )
        });
        let inner = Arc::new(Inner {
            table: Arc::new(ArcSwap::from_pointee(RouteTable::empty())),
            edge: ArcSwap::from_pointee(edge_settings(&config)),
            clients: Clients::new(gw_proxy::ClientOptions::default()),
            version_gauge: metrics::gauge!("gateway_config_version"),
            metrics,
            started: std::time::Instant::now(),
            node_id,
            shared,
            auth_store,
            rl_store,
            registry: Registry::new(),
            breakers,
            upstreams: ArcSwap::from_pointee(HashMap::new()),
            ejected: Mutex::new(HashMap::new()),
            features: ArcSwap::from_pointee(features),
            version: AtomicU64::new(0),
            state: tokio::sync::Mutex::new(WriteState {
                config: Config::default(),
                routes: Vec::new(),
            }),
        });
        let _ = slot.set(Arc::downgrade(&inner));
        let app = App { inner };
        {
            let mut st = app.inner.state.lock().await;
            st.config = config.clone();
            app.apply_services(&config, None);
            let mut routes = Vec::with_capacity(config.routes.len());
            for rc in &config.routes {
                routes.push(RouteEntry {
                    service: app.build_route(&st.config, rc),
                    config: rc.clone(),
                    origin: Origin::File,
                });
            }
            st.routes = routes;
            app.publish(&st).map_err(|e| unknown("routes", e))?;
        }
        // A node that starts after changes were made serves them from its first request. An
        // unreachable store is no reason not to start: the sync task keeps trying.
        if let Err(e) = app.refresh_shared(true).await {
            tracing::warn!(error = %e, "shared configuration not loaded at start; will retry");
        }
        Ok(app)
    }

    /// The live route table, as the router reads it.
    pub fn table(&self) -> Arc<ArcSwap<RouteTable>> {
        self.inner.table.clone()
    }

    /// The listener's settings; a guard, not an `Arc` clone: read once per request.
    pub(crate) fn edge(&self) -> arc_swap::Guard<Arc<EdgeSettings>> {
        self.inner.edge.load()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The service registry (static, admin-registered and Consul instances, health).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    pub(crate) fn shared(&self) -> Option<&SharedState> {
        self.inner.shared.as_ref()
    }

    /// This node's id (as other nodes see it in `?wait=all` answers).
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// The version of the configuration state this node runs.
    pub fn config_version(&self) -> u64 {
        self.inner.version.load(Ordering::SeqCst)
    }

    pub(crate) fn set_version(&self, v: u64) {
        self.inner.version.store(v, Ordering::SeqCst);
        self.inner.version_gauge.set(v as f64);
    }

    /// The configuration file currently applied (without admin changes).
    pub async fn config(&self) -> Config {
        self.inner.state.lock().await.config.clone()
    }

    /// Applies a new (validated) configuration: services, routes from the file, features,
    /// edge settings. Routes added through the admin API stay unless the file now has a route
    /// with that id. Listener, TLS, workers, idle timeout, admin, access-log and store
    /// settings need a restart.
    pub async fn reload(&self, config: Config) -> Result<(), ConfigErrors> {
        config.validate()?;
        let mut st = self.inner.state.lock().await;
        let old = st.config.clone();
        if old.server.listen != config.server.listen
            || old.server.tls != config.server.tls
            || old.server.workers != config.server.workers
            || old.server.idle_timeout_secs != config.server.idle_timeout_secs
            || old.server.max_connections != config.server.max_connections
            || old.server.max_header_bytes != config.server.max_header_bytes
            || old.server.max_headers != config.server.max_headers
            || old.admin != config.admin
            || old.log.access_log != config.log.access_log
            || old.store != config.store
        {
            tracing::warn!(
                "listener, TLS, workers, idle timeout, connection limit, parser buffer (max_header_bytes, max_headers), admin, access-log and store settings take effect at the next restart"
            );
        }
        let current = self.inner.features.load_full();
        let features = build_features(
            &config,
            &self.inner.auth_store,
            &self.inner.rl_store,
            Some(&current),
        )
        .await?;
        if !Arc::ptr_eq(&features.auth, &current.auth) {
            tasks::spawn_jwks_refresh(&features.auth);
        }
        let admin_routes: Vec<RouteEntry> = st
            .routes
            .iter()
            .filter(|e| e.origin == Origin::Admin)
            .filter(|e| !config.routes.iter().any(|r| r.id == e.config.id))
            .filter(|e| config.services.contains_key(&e.config.service))
            .cloned()
            .collect();
        self.inner.features.store(Arc::new(features));
        st.config = config.clone();
        self.apply_services(&config, Some(&old));
        let mut routes = Vec::with_capacity(config.routes.len() + admin_routes.len());
        for rc in &config.routes {
            routes.push(RouteEntry {
                service: self.build_route(&st.config, rc),
                config: rc.clone(),
                origin: Origin::File,
            });
        }
        // Admin routes are rebuilt too: their upstream or proxy settings may have changed.
        for e in admin_routes {
            let service = self.build_route(&st.config, &e.config);
            routes.push(RouteEntry { service, ..e });
        }
        let previous = std::mem::replace(&mut st.routes, routes);
        if let Err(e) = self.publish(&st) {
            st.routes = previous;
            st.config = old;
            self.inner.features.store(current);
            return Err(unknown("routes", e));
        }
        self.inner.edge.store(Arc::new(edge_settings(&config)));
        Ok(())
    }
}

async fn build_features(
    config: &Config,
    auth_store: &Arc<dyn AuthStore>,
    rl_store: &Arc<dyn gw_ratelimit::Store>,
    current: Option<&Features>,
) -> Result<Features, ConfigErrors> {
    let auth = match current {
        Some(f) if f.jwt == config.auth.jwt => f.auth.clone(),
        _ => {
            // Without [auth.jwt] no route may use JWTs (validation says so); the
            // authenticator still serves API keys, users and revocation, with a random secret
            // that no token is ever minted with.
            let jwt = config.auth.jwt.clone().unwrap_or_else(|| JwtConfig {
                secret: Some(random_secret()),
                ..JwtConfig::default()
            });
            // Its periodic JWKS refresh is spawned by the gateway (start and reload), not here.
            Authenticator::with_options_unstarted(jwt, auth_store.clone(), JwksOptions::default())
                .await
                .map_err(|e| unknown("auth.jwt", e.to_string()))?
        }
    };
    let limiter = match current {
        Some(f) if f.rate_limit == config.rate_limit => f.limiter.clone(),
        _ => RateLimiter::new(&config.rate_limit, rl_store.clone()),
    };
    Ok(Features {
        auth,
        jwt: config.auth.jwt.clone(),
        limiter,
        rate_limit: config.rate_limit.clone(),
    })
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    for b in &mut bytes {
        *b = fastrand::u8(..);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "node".into());
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

fn edge_settings(config: &Config) -> EdgeSettings {
    EdgeSettings {
        trusted_proxies: TrustedProxies::new(config.server.trusted_proxies.clone()),
        policy: config.server.edge_policy(),
    }
}
