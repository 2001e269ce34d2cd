//! Behaviour through the layer: headers, 429 body, keys, combined limits, failure modes, stats.

mod support;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use gw_core::{Body, ClientAddr, ConfigProblem, ConnInfo, Identity, RequestId};
use gw_ratelimit::store::{BoxFuture, Decisions};
use gw_ratelimit::{
    Algorithm, FailureMode, KeyedLimit, Limit, MemoryStore, RateLimitConfig, RateLimitLayer,
    RateLimiter, RoutePolicy, Store, StoreError,
};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use support::ManualClock;
use tower::{service_fn, Layer, Service, ServiceExt};

const T0: u64 = 1_700_000_000_000;

type Svc = tower::util::BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

fn stack(layer: RateLimitLayer, hits: Arc<AtomicUsize>) -> Svc {
    let inner = service_fn(move |_req: Request<Body>| {
        hits.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Body::from("ok"))) }
    });
    tower::util::BoxCloneSyncService::new(layer.layer(inner))
}

fn req_from(ip: &str) -> Request<Body> {
    let mut req = Request::get("/x").body(Body::empty()).unwrap();
    let ip: IpAddr = ip.parse().unwrap();
    req.extensions_mut().insert(ClientAddr { ip, https: false });
    req.extensions_mut()
        .insert(RequestId::new(HeaderValue::from_static("req-42")));
    req
}

fn req_user(ip: &str, user: &str) -> Request<Body> {
    let mut req = req_from(ip);
    req.extensions_mut().insert(Identity {
        user_id: user.to_owned(),
        ..Identity::default()
    });
    req
}

async fn call(svc: &Svc, req: Request<Body>) -> Response<Body> {
    svc.clone().oneshot(req).await.unwrap()
}

fn limiter(config: &RateLimitConfig, clock: &ManualClock) -> Arc<RateLimiter> {
    RateLimiter::with_clock(config, Arc::new(MemoryStore::new()), clock.clock())
}

fn header(res: &Response<Body>, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn headers_on_200_and_429_with_retry_after_and_json_body() {
    let clock = ManualClock::new(T0 + 250);
    let config = RateLimitConfig {
        default: Some(Limit::per_minute(3)),
        ..Default::default()
    };
    let lim = limiter(&config, &clock);
    let hits = Arc::new(AtomicUsize::new(0));
    let svc = stack(
        RateLimitLayer::new(
            lim.clone(),
            RoutePolicy::from_config("users", None, &config),
        ),
        hits.clone(),
    );

    for expected_remaining in ["2", "1", "0"] {
        let res = call(&svc, req_from("10.0.0.1")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "x-ratelimit-limit"), "3");
        assert_eq!(header(&res, "x-ratelimit-remaining"), expected_remaining);
        assert_eq!(
            header(&res, "x-ratelimit-reset"),
            ((T0 + 250 + 60_000).div_ceil(1000)).to_string()
        );
        assert_eq!(header(&res, "ratelimit-policy"), "\"default\";q=3;w=60");
        assert_eq!(
            header(&res, "ratelimit"),
            format!("\"default\";r={expected_remaining};t=60")
        );
        assert!(res.headers().get("retry-after").is_none());
    }
    clock.advance(15_000);
    let res = call(&svc, req_from("10.0.0.1")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&res, "retry-after"), "45");
    assert_eq!(header(&res, "x-ratelimit-remaining"), "0");
    assert_eq!(header(&res, "x-ratelimit-limit"), "3");
    assert_eq!(header(&res, "ratelimit"), "\"default\";r=0;t=45");
    assert_eq!(header(&res, "content-type"), "application/json");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"error": "Rate limit exceeded", "request_id": "req-42"})
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "the 429 never reached the inner service"
    );

    // A minute after the first requests the window is free again.
    clock.set(T0 + 250 + 60_000);
    assert_eq!(call(&svc, req_from("10.0.0.1")).await.status(), 200);
}

#[tokio::test]
async fn identity_and_ip_keys_are_separate() {
    let clock = ManualClock::new(T0);
    let config = RateLimitConfig {
        default: Some(Limit::per_minute(1)),
        ..Default::default()
    };
    let lim = limiter(&config, &clock);
    let svc = stack(
        RateLimitLayer::new(lim.clone(), RoutePolicy::from_config("r", None, &config)),
        Arc::default(),
    );
    // Same address, different users: each has its own quota, and the anonymous caller too.
    assert_eq!(
        call(&svc, req_user("10.0.0.1", "alice")).await.status(),
        200
    );
    assert_eq!(call(&svc, req_user("10.0.0.1", "bob")).await.status(), 200);
    assert_eq!(call(&svc, req_from("10.0.0.1")).await.status(), 200);
    assert_eq!(
        call(&svc, req_user("10.0.0.1", "alice")).await.status(),
        429
    );
    // Alice from another address is still alice.
    assert_eq!(
        call(&svc, req_user("10.9.9.9", "alice")).await.status(),
        429
    );
    assert_eq!(call(&svc, req_from("10.0.0.1")).await.status(), 429);
    assert_eq!(call(&svc, req_from("10.0.0.2")).await.status(), 200);

    // Without ClientAddr the ConnInfo peer is the address.
    let conn = |ip: &str| {
        let mut req = Request::get("/").body(Body::empty()).unwrap();
        req.extensions_mut().insert(ConnInfo {
            peer: SocketAddr::new(ip.parse().unwrap(), 5555),
            local: "127.0.0.1:8080".parse().unwrap(),
            tls: false,
        });
        req
    };
    assert_eq!(call(&svc, conn("10.0.0.3")).await.status(), 200);
    assert_eq!(call(&svc, conn("10.0.0.3")).await.status(), 429);
    assert_eq!(call(&svc, req_from("10.0.0.3")).await.status(), 429);

    let stats = lim.stats();
    let keys: Vec<&str> = stats["routes"]["r"]["top_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    for k in ["user:alice", "user:bob", "ip:10.0.0.1", "ip:10.0.0.3"] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
}

#[tokio::test]
async fn global_and_per_ip_combined_and_route_not_consumed_when_global_denies() {
    let clock = ManualClock::new(T0);
    let config = RateLimitConfig {
        default: Some(Limit::per_minute(10)),
        global: Some(Limit::per_minute(4)),
        per_ip: Some(Limit::per_minute(3)),
        ..Default::default()
    };
    let lim = limiter(&config, &clock);
    let svc_a = stack(
        RateLimitLayer::new(lim.clone(), RoutePolicy::from_config("a", None, &config)),
        Arc::default(),
    );
    let svc_b = stack(
        RateLimitLayer::new(
            lim.clone(),
            RoutePolicy::from_config("b", Some(Limit::per_minute(100)), &config),
        ),
        Arc::default(),
    );
    // per_ip spans routes: 3 for 10.0.0.1 over a and b.
    assert_eq!(call(&svc_a, req_from("10.0.0.1")).await.status(), 200);
    let res = call(&svc_b, req_from("10.0.0.1")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "ratelimit-policy"),
        "\"default\";q=100;w=60, \"per_ip\";q=3;w=60, \"global\";q=4;w=60"
    );
    // Most restrictive: per_ip has 1 left, global 2, route 99.
    assert_eq!(header(&res, "x-ratelimit-remaining"), "1");
    assert_eq!(header(&res, "x-ratelimit-limit"), "3");
    assert_eq!(header(&res, "ratelimit"), "\"per_ip\";r=1;t=60");
    assert_eq!(call(&svc_a, req_from("10.0.0.1")).await.status(), 200);
    let res = call(&svc_b, req_from("10.0.0.1")).await;
    assert_eq!(res.status(), 429, "per_ip exhausted across routes");
    assert_eq!(header(&res, "ratelimit"), "\"per_ip\";r=0;t=60");
    // Global has 1 left (3 used).
    assert_eq!(call(&svc_a, req_from("10.0.0.2")).await.status(), 200);
    // Global exhausted: everyone is denied, and those denials use no route or per_ip quota.
    for _ in 0..5 {
        let res = call(&svc_a, req_from("10.0.0.3")).await;
        assert_eq!(res.status(), 429);
        assert_eq!(header(&res, "x-ratelimit-limit"), "4");
    }
    clock.advance(60_000);
    // 10.0.0.3 was never consumed: its full per_ip quota of 3 is there (global is 4 again).
    for expected in ["2", "1", "0"] {
        let res = call(&svc_a, req_from("10.0.0.3")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "x-ratelimit-remaining"), expected);
    }
}

#[tokio::test]
async fn token_bucket_headers_use_burst_and_refill() {
    let clock = ManualClock::new(T0);
    let config = RateLimitConfig {
        algorithm: Algorithm::TokenBucket,
        default: Some(Limit::per_minute(60).with_burst(2)),
        ..Default::default()
    };
    let lim = limiter(&config, &clock);
    let svc = stack(
        RateLimitLayer::new(lim, RoutePolicy::from_config("tb", None, &config)),
        Arc::default(),
    );
    let res = call(&svc, req_from("10.0.0.1")).await;
    assert_eq!(header(&res, "x-ratelimit-limit"), "2");
    assert_eq!(header(&res, "x-ratelimit-remaining"), "1");
    // Two tokens, refilled in 2 s at 60 per minute.
    assert_eq!(header(&res, "ratelimit-policy"), "\"default\";q=2;w=2");
    assert_eq!(call(&svc, req_from("10.0.0.1")).await.status(), 200);
    let res = call(&svc, req_from("10.0.0.1")).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after"), "1");
    clock.advance(1000);
    assert_eq!(call(&svc, req_from("10.0.0.1")).await.status(), 200);
    assert_eq!(call(&svc, req_from("10.0.0.1")).await.status(), 429);
}

#[tokio::test]
async fn unlimited_route_passes_without_headers_and_custom_key_overrides() {
    let clock = ManualClock::new(T0);
    let lim = limiter(&RateLimitConfig::default(), &clock);
    let svc = stack(
        RateLimitLayer::new(
            lim.clone(),
            RoutePolicy::from_config("free", None, &RateLimitConfig::default()),
        ),
        Arc::default(),
    );
    for _ in 0..20 {
        let res = call(&svc, req_from("10.0.0.1")).await;
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("x-ratelimit-limit").is_none());
    }

    // Keyed by a tenant header; requests without it fall back to the address.
    let layer = RateLimitLayer::new(
        lim.clone(),
        RoutePolicy::route("tenant", Limit::per_minute(1), Algorithm::SlidingWindow),
    )
    .with_key(|r| {
        r.headers
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(|t| format!("tenant:{t}"))
    });
    let svc = stack(layer, Arc::default());
    let tenant = |t: &'static str, ip: &str| {
        let mut r = req_from(ip);
        r.headers_mut()
            .insert("x-tenant", HeaderValue::from_static(t));
        r
    };
    assert_eq!(call(&svc, tenant("acme", "10.0.0.1")).await.status(), 200);
    assert_eq!(call(&svc, tenant("acme", "10.0.0.2")).await.status(), 429);
    assert_eq!(call(&svc, tenant("other", "10.0.0.1")).await.status(), 200);
    assert_eq!(call(&svc, req_from("10.0.0.1")).await.status(), 200);
    assert_eq!(call(&svc, req_from("10.0.0.1")).await.status(), 429);
    let stats = lim.stats();
    let top = stats["routes"]["tenant"]["top_keys"].as_array().unwrap();
    let count = |k: &str| {
        top.iter()
            .find(|e| e["key"] == k)
            .map(|e| e["requests"].clone())
    };
    assert_eq!(count("tenant:acme"), Some(2.into()));
    assert_eq!(count("tenant:other"), Some(1.into()));
    assert_eq!(count("ip:10.0.0.1"), Some(2.into()));
    assert_eq!(stats["routes"]["tenant"]["limited"], 2);
    assert_eq!(stats["routes"]["tenant"]["allowed"], 3);
}

/// A store that fails while `down` is set, else delegates to memory.
#[derive(Debug, Default)]
struct Flaky {
    down: AtomicBool,
    calls: AtomicUsize,
    inner: MemoryStore,
}

impl Store for Flaky {
    fn check<'a>(
        &'a self,
        now_ms: u64,
        limits: &'a [KeyedLimit],
    ) -> BoxFuture<'a, Result<Decisions, StoreError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Box::pin(async { Err(StoreError::Protocol("down".into())) })
        } else {
            self.inner.check(now_ms, limits)
        }
    }
    fn name(&self) -> &'static str {
        "flaky"
    }
}

#[tokio::test]
async fn failure_modes_and_recovery_with_explicit_clock() {
    for mode in [FailureMode::Open, FailureMode::Closed] {
        let clock = ManualClock::new(T0);
        let config = RateLimitConfig {
            failure_mode: mode,
            default: Some(Limit::per_minute(2)),
            ..Default::default()
        };
        let store = Arc::new(Flaky::default());
        let lim = RateLimiter::with_clock(&config, store.clone(), clock.clock());
        let svc = stack(
            RateLimitLayer::new(lim.clone(), RoutePolicy::from_config("r", None, &config)),
            Arc::default(),
        );
        assert_eq!(call(&svc, req_from("10.0.0.1")).await.status(), 200);
        store.down.store(true, Ordering::SeqCst);
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(call(&svc, req_from("10.0.0.1")).await.status().as_u16());
        }
        match mode {
            // The local fallback enforces the same policy (its own count starts at 0).
            FailureMode::Open => assert_eq!(statuses, [200, 200, 429, 429]),
            FailureMode::Closed => assert_eq!(statuses, [503; 4]),
        }
        if mode == FailureMode::Closed {
            let res = call(&svc, req_from("10.0.0.1")).await;
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(
                &body[..],
                br#"{"error":"Service temporarily unavailable","request_id":"req-42"}"#
            );
        }
        assert!(lim.is_degraded());
        assert_eq!(lim.stats()["degraded"], true);
        // Within the retry interval the store is not asked again.
        assert_eq!(store.calls.load(Ordering::SeqCst), 2, "{mode:?}");

        // The store is back; after the 1 s retry interval the shared path resumes.
        store.down.store(false, Ordering::SeqCst);
        clock.advance(999);
        call(&svc, req_from("10.0.0.2")).await;
        assert_eq!(store.calls.load(Ordering::SeqCst), 2);
        clock.advance(1);
        assert_eq!(call(&svc, req_from("10.0.0.2")).await.status(), 200);
        assert_eq!(store.calls.load(Ordering::SeqCst), 3);
        assert!(!lim.is_degraded());
        // The shared store still holds 10.0.0.1's first request: one more passes there.
        assert_eq!(call(&svc, req_from("10.0.0.1")).await.status(), 200);
        assert_eq!(call(&svc, req_from("10.0.0.1")).await.status(), 429);
        assert_eq!(store.calls.load(Ordering::SeqCst), 5);
    }
}

#[test]
fn config_deserializes_and_validates() {
    let config: RateLimitConfig = serde_json::from_value(serde_json::json!({
        "algorithm": "token_bucket",
        "failure_mode": "closed",
        "default": {"requests_per_minute": 100, "burst": 20},
        "global": {"requests_per_minute": 0},
        "per_ip": {"requests_per_minute": 5, "burst": 0},
    }))
    .unwrap();
    assert_eq!(config.algorithm, Algorithm::TokenBucket);
    assert_eq!(config.failure_mode, FailureMode::Closed);
    assert_eq!(config.default, Some(Limit::per_minute(100).with_burst(20)));
    assert_eq!(
        config.validate(),
        vec![
            ConfigProblem::new("global.requests_per_minute", "must be greater than 0"),
            ConfigProblem::new("per_ip.burst", "must be greater than 0"),
        ]
    );
    assert!(RateLimitConfig::default().validate().is_empty());
    assert!(serde_json::from_value::<RateLimitConfig>(serde_json::json!({"bogus": 1})).is_err());
    assert!(serde_json::from_value::<Limit>(
        serde_json::json!({"requests_per_minute": 1, "burts": 2})
    )
    .is_err());
    let policy = RoutePolicy::from_config("r", None, &config);
    assert_eq!(policy.limit, config.default);
    let own = RoutePolicy::from_config("r", Some(Limit::per_minute(7)), &config);
    assert_eq!(own.limit, Some(Limit::per_minute(7)));
}

#[tokio::test]
async fn poll_ready_and_clone_semantics() {
    // The layer works through Service::call after poll_ready (not only oneshot).
    let clock = ManualClock::new(T0);
    let config = RateLimitConfig {
        default: Some(Limit::per_minute(1)),
        ..Default::default()
    };
    let lim = limiter(&config, &clock);
    let mut svc = stack(
        RateLimitLayer::new(lim, RoutePolicy::from_config("r", None, &config)),
        Arc::default(),
    );
    let a = svc
        .ready()
        .await
        .unwrap()
        .call(req_from("10.0.0.1"))
        .await
        .unwrap();
    let b = svc
        .ready()
        .await
        .unwrap()
        .call(req_from("10.0.0.1"))
        .await
        .unwrap();
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 429));
}

type Registered = Vec<(String, Vec<(String, String)>)>;

/// Records `gateway_rate_limited_total{route}` registrations and their increments.
#[derive(Debug, Default)]
struct CountingRecorder {
    registered: parking_lot::Mutex<Registered>,
    counter: Arc<std::sync::atomic::AtomicU64>,
}

impl metrics::Recorder for CountingRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        self.registered.lock().push((
            key.name().to_owned(),
            key.labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect(),
        ));
        metrics::Counter::from_arc(self.counter.clone())
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[tokio::test]
async fn rate_limited_counter_is_built_once_and_counts_429s() {
    let recorder = CountingRecorder::default();
    let clock = ManualClock::new(T0);
    let config = RateLimitConfig {
        default: Some(Limit::per_minute(1)),
        ..Default::default()
    };
    let lim = limiter(&config, &clock);
    let layer = metrics::with_local_recorder(&recorder, || {
        RateLimitLayer::new(lim, RoutePolicy::from_config("orders", None, &config))
    });
    let svc = stack(layer, Arc::default());
    for _ in 0..4 {
        call(&svc, req_from("10.0.0.1")).await;
    }
    assert_eq!(
        *recorder.registered.lock(),
        vec![(
            "gateway_rate_limited_total".to_owned(),
            vec![("route".to_owned(), "orders".to_owned())]
        )],
        "one handle, registered when the layer was built"
    );
    assert_eq!(recorder.counter.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn sweeper_task_evicts_idle_entries_and_ends_with_the_limiter() {
    let clock = ManualClock::new(T0);
    let store = Arc::new(MemoryStore::new());
    let lim = RateLimiter::with_clock(&RateLimitConfig::default(), store.clone(), clock.clock());
    for i in 0..100 {
        let limits = [KeyedLimit::new(
            format!("k{i}"),
            Limit::per_minute(5),
            Algorithm::SlidingWindow,
        )];
        lim.check(&limits).await.unwrap();
    }
    assert_eq!(store.len(), 100);
    let task = tokio::spawn(lim.sweeper(std::time::Duration::from_secs(10)));
    clock.advance(60_000);
    // Paused time: the sleep moves the virtual clock past the sweeper's 10 s tick.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    assert_eq!(store.len(), 0, "the sweeper ran after the window passed");
    drop(lim);
    // Paused time again: one more tick, which finds the limiter gone.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    assert!(
        task.is_finished(),
        "the sweeper ends when the limiter is gone"
    );
}
