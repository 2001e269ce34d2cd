//! Resilience through the real gateway: circuit breakers (trip, half-open probes, close,
//! reset, per-service overrides, gauge), outlier ejection, active health checks, instances
//! registered through the admin API, and Consul discovery against a fake agent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use integration_tests::consul::{ConsulEntry, FakeConsul};
use integration_tests::{eventually, serve_on, Protocol, Serving, TestGateway, Upstream};
use serde_json::{json, Value};
use tokio::net::TcpListener;

// ---------------------------------------------------------------- helpers

/// A proxied GET: status and JSON body (the gateway's errors and the upstreams' answers
/// are both JSON).
async fn call(gw: &TestGateway, path: &str) -> (u16, Value) {
    let res = gw.get(path).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The `instance` a proxied GET reached (asserting 200).
async fn instance_of(gw: &TestGateway, path: &str) -> String {
    let (s, b) = call(gw, path).await;
    assert_eq!(s, 200, "{b}");
    b["instance"].as_str().expect("instance").to_string()
}

fn assert_gateway_error(status: u16, body: &Value, want_status: u16, message: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], message, "{body}");
    assert!(
        body["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
}

fn instance_toml(id: &str, addr: SocketAddr) -> String {
    format!(
        "{{ id = \"{id}\", host = \"127.0.0.1\", port = {} }}",
        addr.port()
    )
}

// ---------------------------------------------------------------- switchable upstream

/// An upstream whose traffic status, delay and `/health` status can be switched while it
/// runs. Counts traffic (`hits`) apart from health checks, and health answers by status.
#[derive(Debug)]
struct Switch {
    addr: SocketAddr,
    state: Arc<SwitchState>,
    _serving: Serving,
}

#[derive(Debug)]
struct SwitchState {
    name: String,
    status: AtomicU16,
    health: AtomicU16,
    delay_ms: AtomicU64,
    hits: AtomicUsize,
    health_ok: AtomicUsize,
    health_failed: AtomicUsize,
}

impl Switch {
    async fn start(name: &str) -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(SwitchState {
            name: name.to_string(),
            status: AtomicU16::new(200),
            health: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            hits: AtomicUsize::new(0),
            health_ok: AtomicUsize::new(0),
            health_failed: AtomicUsize::new(0),
        });
        let st = state.clone();
        let serving = serve_on(listener, Protocol::Auto, move |req: Request<Incoming>| {
            let st = st.clone();
            async move { switch_answer(&st, req).await }
        });
        Switch {
            addr,
            state,
            _serving: serving,
        }
    }

    fn set_status(&self, s: u16) {
        self.state.status.store(s, Ordering::SeqCst);
    }
    fn set_health(&self, s: u16) {
        self.state.health.store(s, Ordering::SeqCst);
    }
    fn set_delay(&self, d: Duration) {
        self.state
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }
    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
    fn health_ok(&self) -> usize {
        self.state.health_ok.load(Ordering::SeqCst)
    }
    fn health_failed(&self) -> usize {
        self.state.health_failed.load(Ordering::SeqCst)
    }
}

async fn switch_answer(st: &SwitchState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let status = if req.uri().path() == "/health" {
        let s = st.health.load(Ordering::SeqCst);
        if s < 400 {
            st.health_ok.fetch_add(1, Ordering::SeqCst);
        } else {
            st.health_failed.fetch_add(1, Ordering::SeqCst);
        }
        s
    } else {
        st.hits.fetch_add(1, Ordering::SeqCst);
        let delay = st.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            // The slow upstream a test asked for.
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        st.status.load(Ordering::SeqCst)
    };
    let body = json!({"instance": st.name, "path": req.uri().path()}).to_string();
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = StatusCode::from_u16(status).expect("status");
    res.headers_mut()
        .insert("content-type", "application/json".parse().expect("valid"));
    res
}

// ---------------------------------------------------------------- circuit breaker

#[tokio::test]
async fn breaker_trips_answers_503_without_upstream_and_resets() {
    let up = Upstream::status("cbt-1", 500).await;
    let gw = TestGateway::builder()
        .raw("[circuit_breaker]\nfailure_rate = 0.5\nmin_requests = 4\nwindow_secs = 60\nopen_secs = 60\nhalf_open_max_requests = 1\nsuccess_threshold = 1")
        .service("cb_trip", &[&up])
        .route("id = \"cb_trip\"\npath = \"/t\"\nservice = \"cb_trip\"")
        .start()
        .await;

    let b = gw.breaker("cb_trip").await;
    assert_eq!(b["state"], "closed", "{b}");
    assert_eq!(b["service"], "cb_trip", "{b}");
    assert_eq!(
        gw.metric("gateway_circuit_breaker_state", &[("service", "cb_trip")])
            .await,
        Some(0.0)
    );

    // Below the threshold the upstream's 500s pass through.
    for i in 0..4 {
        let (s, _) = call(&gw, "/t/x").await;
        assert_eq!(s, 500, "request {i} reaches the failing upstream");
    }
    assert_eq!(up.hits(), 4);

    let b = gw.breaker("cb_trip").await;
    assert_eq!(b["state"], "open", "{b}");
    assert_eq!(b["total_requests"], 4, "{b}");
    assert_eq!(b["failed_requests"], 4, "{b}");
    assert_eq!(b["success_requests"], 0, "{b}");
    assert_eq!(b["failure_rate"].as_f64(), Some(1.0), "{b}");
    assert!(b["avg_response_time"].as_f64().is_some(), "{b}");

    // Open: answered by the gateway, the upstream is not touched.
    for _ in 0..3 {
        let (s, body) = call(&gw, "/t/x").await;
        assert_gateway_error(s, &body, 503, "Service temporarily unavailable");
    }
    assert_eq!(up.hits(), 4, "an open breaker must not call the upstream");

    let (s, all) = gw.admin_get("/admin/circuit-breakers").await;
    assert_eq!(s, 200);
    assert_eq!(all["circuit_breakers"]["cb_trip"]["state"], "open", "{all}");
    assert_eq!(
        gw.metric("gateway_circuit_breaker_state", &[("service", "cb_trip")])
            .await,
        Some(1.0)
    );

    let (s, unknown) = gw.admin_get("/admin/circuit-breakers/nope").await;
    assert_eq!(s, 404, "{unknown}");

    // Reset closes it: traffic reaches the upstream again.
    let (s, r) = gw
        .admin_post("/admin/circuit-breakers/cb_trip/reset", &json!({}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["message"], "Circuit breaker reset successfully");
    let b = gw.breaker("cb_trip").await;
    assert_eq!(b["state"], "closed", "{b}");
    assert_eq!(b["total_requests"], 0, "a reset empties the window: {b}");
    assert_eq!(
        gw.metric("gateway_circuit_breaker_state", &[("service", "cb_trip")])
            .await,
        Some(0.0)
    );
    let (s, _) = call(&gw, "/t/x").await;
    assert_eq!(s, 500);
    assert_eq!(up.hits(), 5);

    let (s, _) = gw
        .admin_post("/admin/circuit-breakers/nope/reset", &json!({}))
        .await;
    assert_eq!(s, 404);
}

/// `[circuit_breaker]` for the half-open tests: 2 results open it, 1 s open, 2 probes at
/// once, 3 successes close it; no outlier ejection (one instance).
const HALF_OPEN_BREAKER: &str = "[circuit_breaker]
failure_rate = 0.5
min_requests = 2
window_secs = 60
open_secs = 1
half_open_max_requests = 2
success_threshold = 3
outlier = { enabled = false }";

async fn trip(gw: &TestGateway, up: &Switch, service: &str) {
    up.set_status(500);
    up.set_delay(Duration::ZERO);
    for _ in 0..2 {
        assert_eq!(call(gw, "/h/x").await.0, 500);
    }
    assert_eq!(gw.breaker_state(service).await, "open");
    let before = up.hits();
    let (s, body) = call(gw, "/h/x").await;
    assert_gateway_error(s, &body, 503, "Service temporarily unavailable");
    assert_eq!(up.hits(), before, "open: the upstream is not called");
}

async fn wait_half_open(gw: &TestGateway, service: &str) {
    assert!(
        eventually(Duration::from_secs(5), || async {
            gw.breaker_state(service).await == "half_open"
        })
        .await,
        "the breaker turns half-open after open_secs"
    );
    assert_eq!(
        gw.metric("gateway_circuit_breaker_state", &[("service", service)])
            .await,
        Some(2.0)
    );
}

#[tokio::test]
async fn half_open_lets_only_a_few_probes_through_then_closes() {
    let up = Switch::start("cbh-1").await;
    let gw = TestGateway::builder()
        .raw(HALF_OPEN_BREAKER)
        .raw(&format!(
            "[services.cb_half]\ninstances = [{}]",
            instance_toml("cbh-1", up.addr)
        ))
        .route("id = \"cb_half\"\npath = \"/h\"\nservice = \"cb_half\"")
        .start()
        .await;

    trip(&gw, &up, "cb_half").await;
    assert_eq!(
        gw.metric("gateway_circuit_breaker_state", &[("service", "cb_half")])
            .await,
        Some(1.0)
    );

    // The upstream recovers, slowly: probes stay in flight while the others arrive.
    up.set_status(200);
    up.set_delay(Duration::from_millis(1000));
    wait_half_open(&gw, "cb_half").await;

    let before = up.hits();
    let results = futures_util::future::join_all((0..8).map(|_| call(&gw, "/h/x"))).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    for (s, body) in results.iter().filter(|(s, _)| *s != 200) {
        assert_gateway_error(*s, body, 503, "Service temporarily unavailable");
    }
    assert!(
        (1..=2).contains(&ok),
        "half-open lets at most half_open_max_requests = 2 probes through at once, got {ok}"
    );
    assert_eq!(up.hits() - before, ok, "only the probes reach the upstream");

    // success_threshold = 3: still half-open until the third success.
    up.set_delay(Duration::ZERO);
    let mut successes = ok;
    while successes < 2 {
        assert_eq!(call(&gw, "/h/x").await.0, 200);
        successes += 1;
    }
    assert_eq!(gw.breaker_state("cb_half").await, "half_open");
    assert_eq!(call(&gw, "/h/x").await.0, 200);
    let b = gw.breaker("cb_half").await;
    assert_eq!(b["state"], "closed", "3 successes close it: {b}");
    assert_eq!(
        b["total_requests"], 0,
        "a closing breaker starts a fresh window: {b}"
    );
    assert_eq!(
        gw.metric("gateway_circuit_breaker_state", &[("service", "cb_half")])
            .await,
        Some(0.0)
    );

    // Closed: every request goes through again.
    let before = up.hits();
    for _ in 0..5 {
        assert_eq!(call(&gw, "/h/x").await.0, 200);
    }
    assert_eq!(up.hits() - before, 5);
}

#[tokio::test]
async fn a_failed_probe_reopens_the_breaker() {
    let up = Switch::start("cbr-1").await;
    let gw = TestGateway::builder()
        .raw(HALF_OPEN_BREAKER)
        .raw(&format!(
            "[services.cb_reopen]\ninstances = [{}]",
            instance_toml("cbr-1", up.addr)
        ))
        .route("id = \"cb_reopen\"\npath = \"/h\"\nservice = \"cb_reopen\"")
        .start()
        .await;

    trip(&gw, &up, "cb_reopen").await;
    wait_half_open(&gw, "cb_reopen").await;
    // Still failing: the probe reaches the upstream, fails, and the breaker opens again.
    let before = up.hits();
    assert_eq!(call(&gw, "/h/x").await.0, 500);
    assert_eq!(up.hits() - before, 1);
    assert_eq!(gw.breaker_state("cb_reopen").await, "open");
    let (s, body) = call(&gw, "/h/x").await;
    assert_gateway_error(s, &body, 503, "Service temporarily unavailable");
    assert_eq!(
        up.hits() - before,
        1,
        "re-opened: the upstream is not called"
    );
}

#[tokio::test]
async fn a_service_overrides_the_breaker_defaults() {
    let strict = Upstream::status("ov-strict-1", 500).await;
    let lenient = Upstream::status("ov-lenient-1", 500).await;
    let gw = TestGateway::builder()
        .raw("[circuit_breaker]\nmin_requests = 50\nfailure_rate = 0.5\nopen_secs = 60")
        .service_with(
            "ov_strict",
            "circuit_breaker = { min_requests = 2 }",
            &[&strict],
            &[],
        )
        .service("ov_lenient", &[&lenient])
        .route("id = \"ov_strict\"\npath = \"/strict\"\nservice = \"ov_strict\"")
        .route("id = \"ov_lenient\"\npath = \"/lenient\"\nservice = \"ov_lenient\"")
        .start()
        .await;

    let strict_codes: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(call(&gw, "/strict").await.0);
        }
        v
    };
    let lenient_codes: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(call(&gw, "/lenient").await.0);
        }
        v
    };
    assert_eq!(
        strict_codes,
        [500, 500, 503, 503],
        "min_requests = 2 from the override"
    );
    assert_eq!(strict.hits(), 2);
    assert_eq!(
        lenient_codes,
        [500, 500, 500, 500],
        "min_requests = 50 from the defaults"
    );
    assert_eq!(lenient.hits(), 4);
    assert_eq!(gw.breaker_state("ov_strict").await, "open");
    assert_eq!(gw.breaker_state("ov_lenient").await, "closed");
}

// ---------------------------------------------------------------- outlier ejection

#[tokio::test]
async fn outlier_ejection_sends_traffic_to_the_healthy_instance() {
    let good = Upstream::echo("oe-good").await;
    let bad = Upstream::status("oe-bad", 500).await;
    let gw = TestGateway::builder()
        .raw(
            "[circuit_breaker]\nfailure_rate = 1.0\nmin_requests = 1000\nopen_secs = 60\n\
             outlier = { enabled = true, consecutive_failures = 3, base_ejection_secs = 60, max_ejection_secs = 60, max_ejection_percent = 50 }",
        )
        .service("oe_svc", &[&good, &bad])
        .route("id = \"oe\"\npath = \"/o\"\nservice = \"oe_svc\"")
        .start()
        .await;

    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(call(&gw, "/o/x").await.0);
    }
    assert_eq!(
        bad.hits(),
        3,
        "the failing instance is taken out after 3 consecutive 5xx: {codes:?}"
    );
    assert_eq!(codes.iter().filter(|c| **c == 500).count(), 3, "{codes:?}");

    let good_before = good.hits();
    for _ in 0..10 {
        assert_eq!(instance_of(&gw, "/o/x").await, "oe-good");
    }
    assert_eq!(good.hits() - good_before, 10);
    assert_eq!(bad.hits(), 3, "an ejected instance gets no traffic");
    let b = gw.breaker("oe_svc").await;
    assert_eq!(b["state"], "closed", "{b}");
    assert_eq!(b["ejected_instances"], json!(["oe-bad"]), "{b}");

    // A breaker reset lets ejected instances back in.
    let (s, _) = gw
        .admin_post("/admin/circuit-breakers/oe_svc/reset", &json!({}))
        .await;
    assert_eq!(s, 200);
    for _ in 0..4 {
        call(&gw, "/o/x").await;
    }
    assert!(bad.hits() > 3, "after a reset the instance is back in");
}

// ---------------------------------------------------------------- active health checks

async fn wait_status(gw: &TestGateway, service: &str, id: &str, status: &str) -> bool {
    eventually(Duration::from_secs(5), || async {
        gw.instance(service, id).await["status"] == status
    })
    .await
}

#[tokio::test]
async fn health_checks_take_instances_out_and_back_in() {
    let a = Switch::start("hc-a").await;
    let b = Switch::start("hc-b").await;
    let gw = TestGateway::builder()
        .raw(&format!(
            "[services.hc_svc]\ninstances = [{}, {}]\n\
             health_check = {{ path = \"/health\", interval_secs = 0.1, timeout_ms = 500, healthy_threshold = 2, unhealthy_threshold = 2 }}",
            instance_toml("hc-a", a.addr),
            instance_toml("hc-b", b.addr)
        ))
        .route("id = \"hc\"\npath = \"/hc\"\nservice = \"hc_svc\"")
        .start()
        .await;

    // Checks run: both instances have a last_check and are healthy.
    assert!(
        eventually(Duration::from_secs(5), || async {
            let d = gw.service_detail("hc_svc").await;
            d["instances"].as_array().is_some_and(|is| {
                is.len() == 2
                    && is
                        .iter()
                        .all(|i| i["status"] == "healthy" && i["last_check"].as_u64().is_some())
            })
        })
        .await,
        "both instances checked and healthy: {}",
        gw.service_detail("hc_svc").await
    );
    let d = gw.service_detail("hc_svc").await;
    assert_eq!(d["service"], "hc_svc");
    let ia = d["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "hc-a")
        .cloned()
        .expect("hc-a listed");
    assert_eq!(ia["host"], "127.0.0.1");
    assert_eq!(ia["port"], a.addr.port());
    assert!(ia["weight"].as_u64().is_some(), "{ia}");
    assert!(ia["metadata"].is_object(), "{ia}");
    let (_, all) = gw.admin_get("/admin/services").await;
    assert_eq!(all["services"]["hc_svc"]["total_instances"], 2, "{all}");
    assert_eq!(all["services"]["hc_svc"]["healthy_instances"], 2, "{all}");
    assert_eq!(
        all["services"]["hc_svc"]["health_ratio"].as_f64(),
        Some(1.0),
        "{all}"
    );
    assert_eq!(
        gw.metric(
            "gateway_upstream_healthy",
            &[("service", "hc_svc"), ("instance", "hc-a")]
        )
        .await,
        Some(1.0)
    );

    // hc-a fails its checks: out after unhealthy_threshold = 2 failed checks.
    let failed_before = a.health_failed();
    a.set_health(500);
    assert!(wait_status(&gw, "hc_svc", "hc-a", "unhealthy").await);
    assert!(
        a.health_failed() - failed_before >= 2,
        "marked unhealthy only after 2 failed checks"
    );
    let (_, all) = gw.admin_get("/admin/services").await;
    assert_eq!(all["services"]["hc_svc"]["healthy_instances"], 1, "{all}");
    assert_eq!(
        all["services"]["hc_svc"]["health_ratio"].as_f64(),
        Some(0.5),
        "{all}"
    );
    assert_eq!(
        gw.metric(
            "gateway_upstream_healthy",
            &[("service", "hc_svc"), ("instance", "hc-a")]
        )
        .await,
        Some(0.0)
    );
    let a_hits = a.hits();
    for _ in 0..6 {
        assert_eq!(instance_of(&gw, "/hc/x").await, "hc-b");
    }
    assert_eq!(a.hits(), a_hits, "an unhealthy instance gets no traffic");

    // Both fail: no instance left.
    b.set_health(500);
    assert!(wait_status(&gw, "hc_svc", "hc-b", "unhealthy").await);
    let (s, body) = call(&gw, "/hc/x").await;
    assert_gateway_error(s, &body, 503, "No healthy upstream");
    let (_, all) = gw.admin_get("/admin/services").await;
    assert_eq!(all["services"]["hc_svc"]["healthy_instances"], 0, "{all}");

    // hc-a recovers: back in after healthy_threshold = 2 good checks.
    let ok_before = a.health_ok();
    a.set_health(200);
    assert!(wait_status(&gw, "hc_svc", "hc-a", "healthy").await);
    assert!(
        a.health_ok() - ok_before >= 2,
        "marked healthy only after 2 good checks"
    );
    for _ in 0..4 {
        assert_eq!(instance_of(&gw, "/hc/x").await, "hc-a");
    }
    assert_eq!(
        gw.metric(
            "gateway_upstream_healthy",
            &[("service", "hc_svc"), ("instance", "hc-a")]
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        gw.metric(
            "gateway_upstream_healthy",
            &[("service", "hc_svc"), ("instance", "hc-b")]
        )
        .await,
        Some(0.0)
    );
}

// ---------------------------------------------------------------- admin instances, health

#[tokio::test]
async fn admin_registers_and_deregisters_instances() {
    let a = Upstream::echo("reg-a").await;
    let b = Upstream::echo("reg-b").await;
    let gw = TestGateway::builder()
        .service("reg_svc", &[&a])
        .route("id = \"reg\"\npath = \"/reg\"\nservice = \"reg_svc\"")
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(instance_of(&gw, "/reg/x").await, "reg-a");
    }

    let inst = json!({"id": "reg-b", "host": "127.0.0.1", "port": b.addr.port(), "weight": 100});
    let (s, body) = gw
        .admin_post("/admin/services/reg_svc/instances", &inst)
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["message"], "Service instance registered");
    assert_eq!(body["instance"]["id"], "reg-b", "{body}");
    assert_eq!(body["instance"]["port"], b.addr.port(), "{body}");

    let d = gw.service_detail("reg_svc").await;
    assert_eq!(d["instances"].as_array().map(Vec::len), Some(2), "{d}");
    let (_, all) = gw.admin_get("/admin/services").await;
    assert_eq!(all["services"]["reg_svc"]["total_instances"], 2, "{all}");
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(instance_of(&gw, "/reg/x").await);
    }
    assert!(
        seen.iter().any(|i| i == "reg-b"),
        "traffic reaches the new instance: {seen:?}"
    );
    assert!(seen.iter().any(|i| i == "reg-a"), "{seen:?}");

    let (s, body) = gw
        .admin_delete("/admin/services/reg_svc/instances/reg-b")
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["message"], "Service instance deregistered");
    let b_hits = b.hits();
    for _ in 0..6 {
        assert_eq!(instance_of(&gw, "/reg/x").await, "reg-a");
    }
    assert_eq!(b.hits(), b_hits);
    let d = gw.service_detail("reg_svc").await;
    assert_eq!(d["instances"].as_array().map(Vec::len), Some(1), "{d}");

    let (s, _) = gw
        .admin_delete("/admin/services/reg_svc/instances/reg-b")
        .await;
    assert_eq!(s, 404, "deregistering twice");
    let (s, _) = gw
        .admin_delete("/admin/services/nope/instances/reg-a")
        .await;
    assert_eq!(s, 404, "unknown service");
    let (s, _) = gw.admin_post("/admin/services/nope/instances", &inst).await;
    assert_eq!(s, 404, "registering on an unknown service");
    let (s, _) = gw.admin_get("/admin/services/nope").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn an_empty_service_answers_503_until_an_instance_is_registered() {
    let up = Upstream::echo("empty-1").await;
    let gw = TestGateway::builder()
        .raw("[services.empty_svc]\ninstances = []")
        .route("id = \"empty\"\npath = \"/e\"\nservice = \"empty_svc\"")
        .start()
        .await;
    let (s, body) = call(&gw, "/e").await;
    assert_gateway_error(s, &body, 503, "No healthy upstream");
    let inst = json!({"id": "empty-1", "host": "127.0.0.1", "port": up.addr.port()});
    let (s, _) = gw
        .admin_post("/admin/services/empty_svc/instances", &inst)
        .await;
    assert_eq!(s, 201);
    assert_eq!(instance_of(&gw, "/e").await, "empty-1");
}

#[tokio::test]
async fn admin_health_has_services_breakers_and_config_version() {
    let up = Upstream::echo("ah-1").await;
    let gw = TestGateway::builder()
        .service("ah_svc", &[&up])
        .route("id = \"ah\"\npath = \"/ah\"\nservice = \"ah_svc\"")
        .start()
        .await;
    let (s, h) = gw.admin_get("/admin/health").await;
    assert_eq!(s, 200);
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["services"]["ah_svc"]["total_instances"], 1, "{h}");
    assert_eq!(h["services"]["ah_svc"]["healthy_instances"], 1, "{h}");
    assert_eq!(h["circuit_breakers"]["ah_svc"]["state"], "closed", "{h}");
    let v0 = h["config_version"].as_u64().expect("config_version");

    let (s, _) = gw
        .admin_post(
            "/admin/routes",
            &json!({"id": "ah2", "path": "/ah2", "service": "ah_svc"}),
        )
        .await;
    assert_eq!(s, 201);
    let (_, h) = gw.admin_get("/admin/health").await;
    assert!(
        h["config_version"].as_u64().expect("config_version") > v0,
        "an admin change bumps config_version: {h}"
    );
}

// ---------------------------------------------------------------- Consul

/// An instance of the fake catalog at `127.0.0.1:port`.
fn entry(id: &str, port: u16, passing: bool) -> ConsulEntry {
    ConsulEntry {
        address: "127.0.0.1".into(),
        passing,
        ..ConsulEntry::new(id, port)
    }
}

/// The set of instances that answer `n` requests in a row.
async fn instances_seen(gw: &TestGateway, path: &str, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let (s, b) = call(gw, path).await;
        let name = if s == 200 {
            b["instance"].as_str().unwrap_or("?").to_string()
        } else {
            format!("status {s}")
        };
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen.sort();
    seen
}

#[tokio::test]
async fn consul_instances_are_followed() {
    let c1 = Upstream::echo("consul-1").await;
    let c2 = Upstream::echo("consul-2").await;
    let consul = FakeConsul::start().await;
    consul.set("consul_svc", vec![entry("consul-1", c1.addr.port(), true)]);
    let gw = TestGateway::builder()
        .raw(&format!(
            "[discovery.consul]\nurl = \"{}\"\nwait_secs = 1\n[services.consul_svc]\ninstances = []",
            consul.url()
        ))
        .route("id = \"consul\"\npath = \"/c\"\nservice = \"consul_svc\"")
        .start()
        .await;

    // The instance Consul lists gets the traffic.
    assert!(
        eventually(Duration::from_secs(5), || async {
            call(&gw, "/c/x").await.0 == 200
        })
        .await,
        "traffic reaches the instance Consul lists"
    );
    assert_eq!(instances_seen(&gw, "/c/x", 4).await, ["consul-1"]);
    let d = gw.service_detail("consul_svc").await;
    assert_eq!(d["instances"][0]["id"], "consul-1", "{d}");
    assert_eq!(d["instances"][0]["port"], c1.addr.port(), "{d}");

    // A new instance is picked up.
    consul.set(
        "consul_svc",
        vec![
            entry("consul-1", c1.addr.port(), true),
            entry("consul-2", c2.addr.port(), true),
        ],
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            instances_seen(&gw, "/c/x", 4).await == ["consul-1", "consul-2"]
        })
        .await,
        "the new instance is used"
    );

    // An instance that stops passing is dropped.
    consul.set(
        "consul_svc",
        vec![
            entry("consul-1", c1.addr.port(), false),
            entry("consul-2", c2.addr.port(), true),
        ],
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            instances_seen(&gw, "/c/x", 4).await == ["consul-2"]
        })
        .await,
        "the failing instance is dropped"
    );
    let c1_hits = c1.hits();
    assert_eq!(instances_seen(&gw, "/c/x", 6).await, ["consul-2"]);
    assert_eq!(c1.hits(), c1_hits);
    let d = gw.service_detail("consul_svc").await;
    assert_eq!(d["instances"].as_array().map(Vec::len), Some(1), "{d}");
}
