//! Assembly: turns the configuration into per-route stacks and a route table, keeps the state
//! that outlives a rebuild (upstreams and their pools, metric handles), and implements the
//! admin API's [`ControlPlane`].
//!
//! Writers (admin API, reload) serialise on one mutex and publish a new immutable
//! [`RouteTable`] through `ArcSwap`; the request path only ever loads the current snapshot.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use gw_admin::{ControlPlane, RouteChange};
use gw_core::Body;
use gw_monitor::Metrics;
use gw_proxy::{Clients, HeaderRules, Proxy, ProxyConfig, RetryPolicy, TrustedProxies, Upstream};
use gw_router::{PathMatcher, RouteService, RouteSpec, RouteTable};
use http::{HeaderName, HeaderValue, Method, Request, Response};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;

use crate::config::{Config, ConfigErrors, HeaderRulesConfig, RouteConfig, ServiceConfig};

/// Where a route came from: the file is re-read on reload, admin routes live on top of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    File,
    Admin,
}

#[derive(Clone)]
struct RouteEntry {
    config: RouteConfig,
    service: RouteService,
    origin: Origin,
}

/// Settings the edge reads per request, swapped on reload.
#[derive(Debug)]
pub(crate) struct EdgeSettings {
    pub(crate) trusted_proxies: TrustedProxies,
}

/// The gateway's shared state. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("routes", &self.inner.table.load().len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    table: Arc<ArcSwap<RouteTable>>,
    edge: ArcSwap<EdgeSettings>,
    clients: Clients,
    metrics: Metrics,
    started: std::time::Instant,
    /// Held by writers only (admin API, reload), never by the request path.
    state: Mutex<WriteState>,
}

struct WriteState {
    config: Config,
    upstreams: HashMap<String, Arc<Upstream>>,
    routes: Vec<RouteEntry>,
}

impl App {
    /// Builds the state for `config` (already validated).
    pub fn new(config: Config, metrics: Metrics) -> Result<App, ConfigErrors> {
        let clients = Clients::new(gw_proxy::ClientOptions::default());
        let upstreams = build_upstreams(&config, &HashMap::new());
        let inner = Arc::new(Inner {
            table: Arc::new(ArcSwap::from_pointee(RouteTable::empty())),
            edge: ArcSwap::from_pointee(edge_settings(&config)),
            clients,
            metrics,
            started: std::time::Instant::now(),
            state: Mutex::new(WriteState {
                config: config.clone(),
                upstreams,
                routes: Vec::new(),
            }),
        });
        let app = App { inner };
        {
            let mut st = app.inner.state.lock();
            let mut routes = Vec::with_capacity(config.routes.len());
            for rc in &config.routes {
                let service = app.build_route(&st, rc);
                routes.push(RouteEntry {
                    config: rc.clone(),
                    service,
                    origin: Origin::File,
                });
            }
            st.routes = routes;
            app.publish(&st).map_err(|e| {
                ConfigErrors(vec![crate::config::ConfigError {
                    path: "routes".into(),
                    message: e,
                }])
            })?;
        }
        Ok(app)
    }

    /// The live route table, as the router reads it.
    pub fn table(&self) -> Arc<ArcSwap<RouteTable>> {
        self.inner.table.clone()
    }

    pub(crate) fn edge(&self) -> Arc<EdgeSettings> {
        self.inner.edge.load_full()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The configuration currently applied (the file's, without admin changes).
    pub fn config(&self) -> Config {
        self.inner.state.lock().config.clone()
    }

    /// Applies a new (validated) configuration: services, routes from the file, edge settings.
    /// Routes added through the admin API stay unless the file now has a route with that id.
    /// Listener addresses, workers, TLS and admin settings need a restart.
    pub fn reload(&self, config: Config) -> Result<(), ConfigErrors> {
        config.validate()?;
        let mut st = self.inner.state.lock();
        let old = std::mem::replace(&mut st.config, config.clone());
        if old.server.listen != config.server.listen
            || old.server.tls != config.server.tls
            || old.server.workers != config.server.workers
            || old.admin != config.admin
            || old.log.access_log != config.log.access_log
        {
            tracing::warn!(
                "listener, TLS, workers, admin and access-log settings take effect at the next restart"
            );
        }
        st.upstreams = build_upstreams(&config, &st.upstreams);
        let admin_routes: Vec<RouteEntry> = st
            .routes
            .iter()
            .filter(|e| e.origin == Origin::Admin)
            .filter(|e| !config.routes.iter().any(|r| r.id == e.config.id))
            .filter(|e| config.services.contains_key(&e.config.service))
            .cloned()
            .collect();
        let mut routes = Vec::with_capacity(config.routes.len() + admin_routes.len());
        for rc in &config.routes {
            let service = self.build_route(&st, rc);
            routes.push(RouteEntry {
                config: rc.clone(),
                service,
                origin: Origin::File,
            });
        }
        // Admin routes are rebuilt too: their upstream or proxy settings may have changed.
        for e in admin_routes {
            let service = self.build_route(&st, &e.config);
            routes.push(RouteEntry { service, ..e });
        }
        let previous = std::mem::replace(&mut st.routes, routes);
        if let Err(e) = self.publish(&st) {
            st.routes = previous;
            st.config = old;
            return Err(ConfigErrors(vec![crate::config::ConfigError {
                path: "routes".into(),
                message: e,
            }]));
        }
        self.inner.edge.store(Arc::new(edge_settings(&config)));
        Ok(())
    }

    /// Builds one route's stack. Later features add their layers here, outermost first.
    fn build_route(&self, st: &WriteState, rc: &RouteConfig) -> RouteService {
        let upstream = st.upstreams.get(&rc.service).cloned().unwrap_or_else(|| {
            Upstream::new(
                &rc.service,
                Default::default(),
                Default::default(),
                Vec::new(),
            )
        });
        let config = Arc::new(ProxyConfig {
            timeouts: rc.timeouts(),
            retry: rc.retry.as_ref().map(|r| RetryPolicy {
                times: r.times,
                delay: Duration::from_secs_f64(r.delay),
            }),
            request_headers: header_rules(rc.headers.as_ref().map(|h| &h.request)),
            response_headers: header_rules(rc.headers.as_ref().map(|h| &h.response)),
            max_body_bytes: st.config.server.max_body_bytes,
            trusted_proxies: TrustedProxies::new(st.config.server.trusted_proxies.clone()),
        });
        let proxy = Proxy::new(upstream, self.inner.clients.clone(), config);
        let route_metrics = self.inner.metrics.route(&rc.id, &rc.service);
        let stack = ServiceBuilder::new()
            .map_response(move |mut res: Response<Body>| {
                res.extensions_mut().insert(route_metrics.clone());
                res
            })
            .service(proxy);
        BoxCloneSyncService::new(stack)
    }

    /// Publishes the current route list as a new table snapshot.
    fn publish(&self, st: &WriteState) -> Result<(), String> {
        let entries = st
            .routes
            .iter()
            .map(|e| (route_spec(&e.config), e.service.clone()))
            .collect();
        let table = RouteTable::new(entries).map_err(|e| e.to_string())?;
        self.inner.table.store(Arc::new(table));
        Ok(())
    }

    fn services_json(&self) -> Value {
        let st = self.inner.state.lock();
        let mut out = serde_json::Map::new();
        for (name, up) in &st.upstreams {
            let total = up.instances().len();
            out.insert(
                name.clone(),
                json!({
                    "total_instances": total,
                    "healthy_instances": total,
                    "health_ratio": if total == 0 { 0.0 } else { 1.0 },
                }),
            );
        }
        Value::Object(out)
    }
}

fn edge_settings(config: &Config) -> EdgeSettings {
    EdgeSettings {
        trusted_proxies: TrustedProxies::new(config.server.trusted_proxies.clone()),
    }
}

/// Keeps an existing upstream (and so its pools and balancer state) when its balancer and
/// protocol are unchanged; only its instances are swapped.
fn build_upstreams(
    config: &Config,
    old: &HashMap<String, Arc<Upstream>>,
) -> HashMap<String, Arc<Upstream>> {
    config
        .services
        .iter()
        .map(|(name, sc): (&String, &ServiceConfig)| {
            let up = match old.get(name) {
                Some(up)
                    if up.load_balancer() == sc.load_balancer && up.protocol() == sc.protocol =>
                {
                    up.set_instances(sc.instances.clone());
                    up.clone()
                }
                _ => Upstream::new(name, sc.load_balancer, sc.protocol, sc.instances.clone()),
            };
            (name.clone(), up)
        })
        .collect()
}

fn header_rules(cfg: Option<&HeaderRulesConfig>) -> HeaderRules {
    let Some(cfg) = cfg else {
        return HeaderRules::default();
    };
    // Validated before we get here; invalid entries cannot occur.
    HeaderRules {
        add: cfg
            .add
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect(),
        remove: cfg
            .remove
            .iter()
            .filter_map(|k| HeaderName::from_bytes(k.as_bytes()).ok())
            .collect(),
    }
}

/// The router's view of a route.
pub(crate) fn route_spec(rc: &RouteConfig) -> RouteSpec {
    let matcher = match (&rc.pattern, &rc.path) {
        (Some(p), _) => PathMatcher::Pattern(p.clone()),
        (None, Some(p)) => PathMatcher::Prefix {
            path: p.clone(),
            strip_prefix: rc.strip_prefix,
        },
        (None, None) => PathMatcher::Prefix {
            path: "/".into(),
            strip_prefix: false,
        },
    };
    RouteSpec {
        id: rc.id.clone(),
        service: rc.service.clone(),
        matcher,
        methods: rc
            .methods
            .iter()
            .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .collect(),
        host: rc.host.clone(),
        priority: rc.priority,
    }
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The admin API's view of the gateway.
#[derive(Clone, Debug)]
pub struct Control {
    app: App,
}

impl Control {
    /// The control plane over `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

impl ControlPlane for Control {
    async fn list_routes(&self) -> Vec<Value> {
        let st = self.app.inner.state.lock();
        st.routes
            .iter()
            .map(|e| serde_json::to_value(&e.config).unwrap_or(Value::Null))
            .collect()
    }

    async fn get_route(&self, id: &str) -> Option<Value> {
        let st = self.app.inner.state.lock();
        st.routes
            .iter()
            .find(|e| e.config.id == id)
            .and_then(|e| serde_json::to_value(&e.config).ok())
    }

    async fn put_route(&self, route: Value) -> Result<RouteChange, String> {
        let rc: RouteConfig = serde_json::from_value(route).map_err(|e| e.to_string())?;
        let mut st = self.app.inner.state.lock();
        let problems = rc.problems(&st.config.services);
        if !problems.is_empty() {
            return Err(problems
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "));
        }
        let service = self.app.build_route(&st, &rc);
        let entry = RouteEntry {
            config: rc.clone(),
            service,
            origin: Origin::Admin,
        };
        let position = st.routes.iter().position(|e| e.config.id == rc.id);
        let previous = match position {
            Some(i) => Some(std::mem::replace(&mut st.routes[i], entry)),
            None => {
                st.routes.push(entry);
                None
            }
        };
        if let Err(e) = self.app.publish(&st) {
            // Put the list back as it was; the live table was never replaced.
            match (position, previous) {
                (Some(i), Some(prev)) => st.routes[i] = prev,
                _ => {
                    st.routes.pop();
                }
            }
            return Err(e);
        }
        Ok(RouteChange {
            route: serde_json::to_value(&rc).map_err(|e| e.to_string())?,
            created: position.is_none(),
        })
    }

    async fn delete_route(&self, id: &str) -> bool {
        let mut st = self.app.inner.state.lock();
        let Some(i) = st.routes.iter().position(|e| e.config.id == id) else {
            return false;
        };
        let removed = st.routes.remove(i);
        if self.app.publish(&st).is_err() {
            st.routes.insert(i, removed);
            return false;
        }
        true
    }

    fn metrics_json(&self) -> Value {
        self.app.metrics().snapshot_json()
    }

    fn metrics_prometheus(&self) -> String {
        self.app.metrics().render_prometheus()
    }

    async fn health(&self) -> Value {
        json!({
            "status": "healthy",
            "timestamp": epoch_secs(),
            "version": gw_core::VERSION,
            "uptime_secs": self.app.inner.started.elapsed().as_secs(),
            "services": self.app.services_json(),
            "circuit_breakers": {},
        })
    }
}

/// `GET /health` on the proxy listener, answered before routing.
pub(crate) fn health_response() -> Response<Body> {
    let mut res = Response::new(Body::from(r#"{"status":"healthy"}"#));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Whether a request is the proxy listener's own health check.
pub(crate) fn is_health_check<B>(req: &Request<B>) -> bool {
    req.uri().path() == "/health" && matches!(*req.method(), Method::GET | Method::HEAD)
}

/// Type of the whole per-request stack, as the listener calls it.
pub(crate) type EdgeService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;
