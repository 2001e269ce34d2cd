//! `Metrics`: the process-wide Prometheus recorder, pre-built per-route handles and the
//! counters behind `/admin/metrics`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gw_core::UpstreamInfo;
use http::{Method, StatusCode};
use metrics::{Counter, Gauge};
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
/// `gateway_access_log_dropped_total`: access-log lines dropped because the writer fell
/// behind.
pub const ACCESS_LOG_DROPPED: &str = "gateway_access_log_dropped_total";

/// Histogram buckets (seconds) for every `*_seconds` histogram.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

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

/// A service's 5xx count for the JSON, and its `gateway_upstream_duration_seconds`. Its
/// requests and their total time are those of its routes' duration histograms.
#[derive(Debug)]
struct ServiceStats {
    errors: AtomicU64,
    upstream: LatencyHistogram,
}

impl ServiceStats {
    fn new(service: &str) -> Self {
        ServiceStats {
            errors: AtomicU64::new(0),
            upstream: LatencyHistogram::new(format!("service=\"{}\"", escape(service))),
        }
    }
}

/// A Prometheus histogram over [`LATENCY_BUCKETS`], for the two recorded on every request.
///
/// Recording is two relaxed atomic adds (the sample's bucket and the sum) and buffers
/// nothing: the exporter's own histograms keep every sample until an upkeep pass drains
/// them, which at tens of thousands of requests per second is a stall of the core the proxy
/// runs on every few hundred milliseconds, and costs several atomic operations per sample.
pub(crate) struct LatencyHistogram {
    /// The series' label pairs, rendered: `route="r",service="s"`.
    labels: String,
    /// Samples per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl LatencyHistogram {
    fn new(labels: String) -> Self {
        LatencyHistogram {
            labels,
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len() + 1],
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // Buckets count samples less than or equal to their bound (`le`).
        let i = LATENCY_BUCKETS.partition_point(|&bound| bound < secs);
        self.buckets[i].fetch_add(1, Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Samples recorded and their total time (nanoseconds).
    fn totals(&self) -> (u64, u64) {
        let count = self.buckets.iter().map(|n| n.load(Relaxed)).sum();
        (count, self.sum_nanos.load(Relaxed))
    }

    /// The series' `_bucket`, `_sum` and `_count` lines.
    fn render(&self, name: &str, out: &mut String) {
        use std::fmt::Write;
        let labels = &self.labels;
        let mut count = 0u64;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            count += n.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        count += self.buckets[LATENCY_BUCKETS.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// A label value as the text format wants it: `\`, `"` and line feeds escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
    duration: LatencyHistogram,
    /// `None` for the unmatched pseudo-route: it has no service in the JSON (nor an
    /// upstream time).
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
        let duration = LatencyHistogram::new(format!(
            "route=\"{}\",service=\"{}\"",
            escape(&route),
            escape(&service)
        ));
        Self {
            route,
            service,
            recorder: recorder.clone(),
            duration,
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
    /// The process-wide metrics. The first call builds the Prometheus recorder and installs it
    /// as the global `metrics` recorder; later calls return the same `Metrics`.
    ///
    /// It starts no thread: with one worker, the gateway is then a single-threaded process,
    /// and Linux takes no reference on the socket's file for each `recv`/`send` of a process
    /// whose file table nobody shares (two atomic operations per system call otherwise).
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
        let in_flight = metrics::with_local_recorder(&*recorder, || {
            metrics::describe_counter!(
                REQUESTS_TOTAL,
                "Requests answered, by route, service, method and status"
            );
            metrics::describe_gauge!(REQUESTS_IN_FLIGHT, "Requests being answered");
            metrics::describe_counter!(
                ACCESS_LOG_DROPPED,
                "Access log lines dropped because the writer fell behind"
            );
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
        let mut out = self.inner.handle.render();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        self.render_latency(&mut out);
        out
    }

    /// `gateway_request_duration_seconds` (per route) and
    /// `gateway_upstream_duration_seconds` (per service), in a stable order.
    fn render_latency(&self, out: &mut String) {
        let mut routes: Vec<&'static RouteMetrics> =
            self.inner.routes.lock().values().copied().collect();
        routes.sort_by(|a, b| (&a.route, &a.service).cmp(&(&b.route, &b.service)));
        out.push_str(&format!(
            "# HELP {REQUEST_DURATION} Time from receiving a request to sending the response headers\n# TYPE {REQUEST_DURATION} histogram\n"
        ));
        self.inner.unmatched.duration.render(REQUEST_DURATION, out);
        for rm in routes {
            rm.duration.render(REQUEST_DURATION, out);
        }
        let mut services: Vec<(Arc<str>, Arc<ServiceStats>)> = self
            .inner
            .services
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        services.sort_by(|a, b| a.0.cmp(&b.0));
        out.push_str(&format!(
            "\n# HELP {UPSTREAM_DURATION} Time from sending a request upstream to its response headers\n# TYPE {UPSTREAM_DURATION} histogram\n"
        ));
        for (_, stats) in services {
            stats.upstream.render(UPSTREAM_DURATION, out);
        }
    }

    /// Drains the exporter's buffered histogram samples. The per-request histograms are
    /// gw-monitor's own and buffer nothing; this serves histograms other code records
    /// through the `metrics` facade, which the exporter keeps until a scrape or this call.
    /// The gateway binary calls it once a second; an embedder that records histograms through
    /// the facade and may go unscraped should do the same.
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
        // Each service's requests and time: the sum of its routes' duration histograms.
        let mut by_service: HashMap<&str, (u64, u64)> = HashMap::new();
        let routes: Vec<&'static RouteMetrics> =
            self.inner.routes.lock().values().copied().collect();
        for rm in routes {
            let (count, nanos) = rm.duration.totals();
            let entry = by_service.entry(&rm.service).or_default();
            entry.0 += count;
            entry.1 += nanos;
        }
        let mut services = Map::new();
        for (name, s) in self.inner.services.read().iter() {
            let (requests, nanos) = by_service.get(&**name).copied().unwrap_or_default();
            let errors = s.errors.load(Relaxed);
            let (error_rate, avg) = if requests == 0 {
                (0.0, 0.0)
            } else {
                (
                    errors as f64 / requests as f64,
                    nanos as f64 / 1e9 / requests as f64,
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
            .or_insert_with(|| Arc::new(ServiceStats::new(&service)))
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
        route.increment_requests(method, code);
        route.duration.record(elapsed);
        if let (Some(up), Some(stats)) = (upstream, &route.stats) {
            stats.upstream.record(up.header);
        }
        if let Some(slot) = code
            .checked_sub(STATUS_MIN)
            .and_then(|i| self.inner.status.get(i as usize))
        {
            slot.fetch_add(1, Relaxed);
        }
        if let (true, Some(stats)) = (status.is_server_error(), &route.stats) {
            stats.errors.fetch_add(1, Relaxed);
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
    fn latency_histogram_buckets_are_cumulative_with_sum_and_count() {
        let h = LatencyHistogram::new(format!("route=\"{}\"", escape("a\"b\\c")));
        h.record(Duration::from_micros(500)); // le 0.001
        h.record(Duration::from_millis(1)); // le 0.001: bounds are inclusive
        h.record(Duration::from_millis(3)); // le 0.005
        h.record(Duration::from_secs(100)); // only +Inf
        let mut out = String::new();
        h.render("x_seconds", &mut out);
        let value = |le: &str| -> u64 {
            let prefix = format!("x_seconds_bucket{{route=\"a\\\"b\\\\c\",le=\"{le}\"}} ");
            let line = out.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
            line.unwrap_or_else(|| panic!("no {prefix} in {out}"))
                .parse()
                .unwrap()
        };
        assert_eq!(value("0.001"), 2);
        assert_eq!(value("0.0025"), 2);
        assert_eq!(value("0.005"), 3);
        assert_eq!(value("60"), 3);
        assert_eq!(value("+Inf"), 4);
        assert!(
            out.contains("x_seconds_count{route=\"a\\\"b\\\\c\"} 4\n"),
            "{out}"
        );
        let sum: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("x_seconds_sum{route=\"a\\\"b\\\\c\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 100.0045).abs() < 1e-9, "{sum}");
    }

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
