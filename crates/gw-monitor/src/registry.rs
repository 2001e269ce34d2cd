//! `Metrics`: the process-wide Prometheus recorder, pre-built per-route handles and the
//! counters behind `/admin/metrics`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gw_core::UpstreamInfo;
use http::{Method, StatusCode};
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Map, Value};

/// `gateway_requests_total{route,service,method,status}`.
pub const REQUESTS_TOTAL: &str = "gateway_requests_total";
/// `gateway_request_duration_seconds{route,service}`: time to the response headers.
pub const REQUEST_DURATION: &str = "gateway_request_duration_seconds";
/// `gateway_upstream_duration_seconds{service}`: upstream time to the response headers.
pub const UPSTREAM_DURATION: &str = "gateway_upstream_duration_seconds";
/// `gateway_requests_in_flight`.
pub const REQUESTS_IN_FLIGHT: &str = "gateway_requests_in_flight";

/// Histogram buckets (seconds) for every `*_seconds` histogram.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often the upkeep thread drains histogram samples when nobody scrapes. Often, so that
/// each drain is short: every 5 s it was ~600 000 samples at 60 000 requests/s, a stall of
/// milliseconds for the core the proxy shares, which showed in its p99.
const UPKEEP_INTERVAL: Duration = Duration::from_millis(200);

/// Status codes the JSON counters track (`StatusCode` allows 100..=999).
const STATUS_MIN: u16 = 100;
const STATUS_SLOTS: usize = 900;

/// `method` label values. Other methods share `OTHER`, so clients cannot grow the label set.
const METHOD_LABELS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

fn method_index(m: &Method) -> u8 {
    match m.as_str() {
        "GET" => 0,
        "POST" => 1,
        "PUT" => 2,
        "DELETE" => 3,
        "PATCH" => 4,
        "HEAD" => 5,
        "OPTIONS" => 6,
        "CONNECT" => 7,
        "TRACE" => 8,
        _ => 9,
    }
}

/// Process-wide metrics: a handle that is a plain reference (the one registry lives as long
/// as the process), so copying it per request costs no reference count.
///
/// [`Metrics::global`] installs the Prometheus recorder as the global `metrics` recorder, so
/// other crates' `metrics::counter!` / `gauge!` / `histogram!` calls land in the same
/// [`render_prometheus`](Metrics::render_prometheus) output.
#[derive(Clone)]
pub struct Metrics {
    inner: &'static Inner,
}

/// `(route, service)`.
type RouteKey = (Arc<str>, Arc<str>);

struct Inner {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// `gateway_requests_in_flight` as exported: set from `active` when rendered.
    in_flight: Gauge,
    /// Requests being answered, counted here: one atomic add per change, where the
    /// recorder's gauge takes a compare-and-swap loop and a generation counter.
    active: AtomicI64,
    /// Answers by status, 100–999 (every status there is): their sum is the total.
    status: Box<[AtomicU64]>,
    /// Read only when a route is built and by `snapshot_json`; never per request.
    services: RwLock<HashMap<Arc<str>, Arc<ServiceStats>>>,
    routes: Mutex<HashMap<RouteKey, &'static RouteMetrics>>,
    unmatched: &'static RouteMetrics,
}

impl Inner {
    fn total(&self) -> u64 {
        self.status.iter().map(|n| n.load(Relaxed)).sum()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("total_requests", &self.inner.total())
            .field("routes", &self.inner.routes.lock().len())
            .finish_non_exhaustive()
    }
}

/// Per-service JSON counters.
#[derive(Debug, Default)]
struct ServiceStats {
    requests: AtomicU64,
    errors: AtomicU64,
    total_micros: AtomicU64,
}

/// Pre-built metric handles for one (route, service): recording a request is a few atomic
/// operations and, for `gateway_requests_total`, a lookup in a small per-route cache.
///
/// The gateway's per-route stack puts a `&'static RouteMetrics` into the response extensions;
/// [`MetricsLayer`](crate::MetricsLayer) records against it.
pub struct RouteMetrics {
    route: Arc<str>,
    service: Arc<str>,
    recorder: Arc<PrometheusRecorder>,
    duration: Histogram,
    upstream: Histogram,
    /// `None` for the unmatched pseudo-route: it has no service in the JSON.
    stats: Option<Arc<ServiceStats>>,
    /// `(method index, status) → counter` for the few pairs a route really sees: slots
    /// filled on first use and read without a lock (a lock is two atomic operations per
    /// request), then `more` for a route that sees more pairs than there are slots.
    by_status: [OnceLock<(u8, u16, Counter)>; STATUS_PAIRS],
    more: Mutex<Vec<(u8, u16, Counter)>>,
}

/// Lock-free `(method, status)` slots per route.
const STATUS_PAIRS: usize = 24;

impl fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("route", &self.route)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl RouteMetrics {
    fn new(
        recorder: &Arc<PrometheusRecorder>,
        route: Arc<str>,
        service: Arc<str>,
        stats: Option<Arc<ServiceStats>>,
    ) -> Self {
        let (duration, upstream) = metrics::with_local_recorder(&**recorder, || {
            (
                metrics::histogram!(REQUEST_DURATION, "route" => route.to_string(), "service" => service.to_string()),
                metrics::histogram!(UPSTREAM_DURATION, "service" => service.to_string()),
            )
        });
        Self {
            route,
            service,
            recorder: recorder.clone(),
            duration,
            upstream,
            stats,
            by_status: [const { OnceLock::new() }; STATUS_PAIRS],
            more: Mutex::new(Vec::new()),
        }
    }

    /// The route id (`""` for requests no route matched).
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The service name (`""` for requests no route matched).
    pub fn service(&self) -> &str {
        &self.service
    }

    fn increment_requests(&self, method: &Method, status: u16) {
        let m = method_index(method);
        for slot in &self.by_status {
            match slot.get() {
                Some((mi, st, c)) if *mi == m && *st == status => {
                    c.increment(1);
                    return;
                }
                Some(_) => {}
                None => {
                    // First time this route sees the pair: register it (the only
                    // allocation). Another thread may take the slot first with another
                    // pair; the counter is the recorder's one for these labels either way.
                    let counter = self.register(m, status);
                    counter.increment(1);
                    let _ = slot.set((m, status, counter));
                    return;
                }
            }
        }
        let mut more = self.more.lock();
        if let Some((_, _, c)) = more.iter().find(|(mi, st, _)| *mi == m && *st == status) {
            c.increment(1);
            return;
        }
        let counter = self.register(m, status);
        counter.increment(1);
        more.push((m, status, counter));
    }

    fn register(&self, m: u8, status: u16) -> Counter {
        metrics::with_local_recorder(&*self.recorder, || {
            metrics::counter!(
                REQUESTS_TOTAL,
                "route" => self.route.to_string(),
                "service" => self.service.to_string(),
                "method" => METHOD_LABELS[m as usize],
                "status" => itoa::Buffer::new().format(status).to_owned(),
            )
        })
    }
}

impl Metrics {
    /// The process-wide metrics. The first call builds the Prometheus recorder, installs it as
    /// the global `metrics` recorder and starts a small upkeep thread (draining histogram
    /// samples every 5 s so memory stays bounded when nobody scrapes); later calls return the
    /// same `Metrics`.
    pub fn global() -> Metrics {
        static GLOBAL: OnceLock<Metrics> = OnceLock::new();
        GLOBAL.get_or_init(Metrics::install).clone()
    }

    fn install() -> Metrics {
        let recorder = Arc::new(build_recorder());
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder.clone()) {
            // Our own handles still work: they are registered on `recorder` directly.
            tracing::warn!(error = %e, "a global metrics recorder was already installed; metrics from other crates will not appear in gw-monitor's output");
        }
        let upkeep = handle.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("gw-metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            })
        {
            tracing::warn!(error = %e, "could not start the metrics upkeep thread");
        }
        let in_flight = metrics::with_local_recorder(&*recorder, || {
            metrics::describe_counter!(
                REQUESTS_TOTAL,
                "Requests answered, by route, service, method and status"
            );
            metrics::describe_histogram!(
                REQUEST_DURATION,
                metrics::Unit::Seconds,
                "Time from receiving a request to sending the response headers"
            );
            metrics::describe_histogram!(
                UPSTREAM_DURATION,
                metrics::Unit::Seconds,
                "Time from sending a request upstream to its response headers"
            );
            metrics::describe_gauge!(REQUESTS_IN_FLIGHT, "Requests being answered");
            metrics::gauge!(REQUESTS_IN_FLIGHT)
        });
        let unmatched: &'static RouteMetrics = Box::leak(Box::new(RouteMetrics::new(
            &recorder,
            "".into(),
            "".into(),
            None,
        )));
        Metrics {
            // Built once per process (`global`) and kept for its life.
            inner: Box::leak(Box::new(Inner {
                recorder,
                handle,
                in_flight,
                active: AtomicI64::new(0),
                status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
                services: RwLock::new(HashMap::new()),
                routes: Mutex::new(HashMap::new()),
                unmatched,
            })),
        }
    }

    /// The Prometheus text exposition of everything recorded in this process.
    pub fn render_prometheus(&self) -> String {
        self.inner
            .in_flight
            .set(self.inner.active.load(Relaxed).max(0) as f64);
        self.inner.handle.render()
    }

    /// Drains buffered histogram samples (the upkeep thread does this five times a second).
    pub fn run_upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    /// The `/admin/metrics` body's `metrics` object:
    /// `{"timestamp", "total_requests", "status_codes": {"200": n}, "services": {name:
    /// {"requests", "errors", "error_rate", "avg_response_time"}}}` (times in seconds).
    pub fn snapshot_json(&self) -> Value {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut status_codes = Map::new();
        for (i, n) in self.inner.status.iter().enumerate() {
            let n = n.load(Relaxed);
            if n > 0 {
                let code = STATUS_MIN as usize + i;
                status_codes.insert(code.to_string(), json!(n));
            }
        }
        let mut services = Map::new();
        for (name, s) in self.inner.services.read().iter() {
            let requests = s.requests.load(Relaxed);
            let errors = s.errors.load(Relaxed);
            let micros = s.total_micros.load(Relaxed);
            let (error_rate, avg) = if requests == 0 {
                (0.0, 0.0)
            } else {
                (
                    errors as f64 / requests as f64,
                    micros as f64 / 1e6 / requests as f64,
                )
            };
            services.insert(
                name.to_string(),
                json!({
                    "requests": requests,
                    "errors": errors,
                    "error_rate": error_rate,
                    "avg_response_time": avg,
                }),
            );
        }
        json!({
            "timestamp": timestamp,
            "total_requests": self.inner.total(),
            "status_codes": status_codes,
            "services": services,
        })
    }

    /// Pre-built handles for one route, cached by (route, service) so a rebuilt route
    /// reuses them. Call when a route is built, not per request. The cache keeps every
    /// entry for the life of the process (the exported series do too), so the handle is a
    /// plain reference: passing it along with each answer costs no reference count.
    pub fn route(&self, route: &str, service: &str) -> &'static RouteMetrics {
        let mut routes = self.inner.routes.lock();
        if let Some(rm) = routes.get(&(Arc::<str>::from(route), Arc::<str>::from(service))) {
            return rm;
        }
        let route: Arc<str> = route.into();
        let service: Arc<str> = service.into();
        let stats = self
            .inner
            .services
            .write()
            .entry(service.clone())
            .or_default()
            .clone();
        let rm: &'static RouteMetrics = Box::leak(Box::new(RouteMetrics::new(
            &self.inner.recorder,
            route.clone(),
            service.clone(),
            Some(stats),
        )));
        routes.insert((route, service), rm);
        rm
    }

    /// The pseudo-route (`route=""`, `service=""`) for answers without a `RouteMetrics`.
    pub(crate) fn unmatched(&self) -> &'static RouteMetrics {
        self.inner.unmatched
    }

    /// One more request being answered (`up`), or one less.
    pub(crate) fn in_flight(&self, up: bool) {
        if up {
            self.inner.active.fetch_add(1, Relaxed);
        } else {
            self.inner.active.fetch_sub(1, Relaxed);
        }
    }

    /// Records one answered request against `route`.
    pub(crate) fn record(
        &self,
        route: &RouteMetrics,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
        upstream: Option<&UpstreamInfo>,
    ) {
        let code = status.as_u16();
        let secs = elapsed.as_secs_f64();
        route.increment_requests(method, code);
        route.duration.record(secs);
        if let Some(up) = upstream {
            route.upstream.record(up.header.as_secs_f64());
        }
        if let Some(slot) = code
            .checked_sub(STATUS_MIN)
            .and_then(|i| self.inner.status.get(i as usize))
        {
            slot.fetch_add(1, Relaxed);
        }
        if let Some(stats) = &route.stats {
            stats.requests.fetch_add(1, Relaxed);
            if status.is_server_error() {
                stats.errors.fetch_add(1, Relaxed);
            }
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            stats.total_micros.fetch_add(micros, Relaxed);
        }
    }
}

fn build_recorder() -> PrometheusRecorder {
    let builder = PrometheusBuilder::new();
    // Every `*_seconds` histogram (ours and later crates') is a real Prometheus histogram.
    match builder.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS) {
        Ok(b) => b.build_recorder(),
        // Only fails for empty buckets, which LATENCY_BUCKETS is not.
        Err(_) => PrometheusBuilder::new().build_recorder(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_handles_are_cached() {
        let m = Metrics::global();
        let a = m.route("unit-cache", "svc");
        let b = m.route("unit-cache", "svc");
        assert!(std::ptr::eq(a, b));
        let c = m.route("unit-cache", "other");
        assert!(!std::ptr::eq(a, c));
        assert_eq!(c.service(), "other");
    }

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(method_index(&Method::GET), 0);
        assert_eq!(method_index(&Method::from_bytes(b"BREW").unwrap()), 9);
        assert_eq!(METHOD_LABELS[9], "OTHER");
    }
}
