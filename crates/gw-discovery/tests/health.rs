//! The health checker against real local HTTP servers. One process-wide Prometheus recorder
//! reads the `gateway_upstream_healthy` gauge; every test uses its own service names.

mod support;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gw_discovery::{HealthCheckConfig, HealthChecker, Registry, Status};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use support::{HealthServer, InstanceOf};
use test_support::{wait_until, Running};

const LIMIT: Duration = Duration::from_secs(10);

fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("one recorder per test binary");
        handle
    })
}

fn gauge(service: &str, instance: &str) -> Option<f64> {
    let text = recorder().render();
    let want_s = format!("service=\"{service}\"");
    let want_i = format!("instance=\"{instance}\"");
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("gateway_upstream_healthy{")?;
        let (labels, value) = rest.split_once("} ")?;
        let ok = labels.split(',').any(|l| l == want_s) && labels.split(',').any(|l| l == want_i);
        ok.then(|| value.trim().parse().unwrap())
    })
}

fn fast(healthy: u32, unhealthy: u32, timeout_ms: u64) -> Option<HealthCheckConfig> {
    Some(HealthCheckConfig {
        path: "/health".into(),
        interval_secs: 0.05,
        timeout_ms,
        healthy_threshold: healthy,
        unhealthy_threshold: unhealthy,
    })
}

fn start(registry: &Arc<Registry>) -> Running {
    let checker = HealthChecker::new(registry.clone());
    Running::spawn(|stopped| checker.run(stopped))
}

fn healthy_ids(r: &Registry, service: &str) -> Vec<String> {
    r.healthy(service).into_iter().map(|i| i.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_decide_and_healthy_follows() {
    recorder();
    let up = HealthServer::start(200).await;
    let other = HealthServer::start(200).await;
    let r = Registry::new();
    r.set_static(
        "h-thr",
        vec![up.instance("a"), other.instance("b")],
        fast(2, 3, 1000),
    );
    // Healthy until a check says otherwise.
    assert_eq!(healthy_ids(&r, "h-thr"), ["a", "b"]);
    assert_eq!(gauge("h-thr", "a"), Some(1.0));
    let mut changes = r.subscribe();
    changes.borrow_and_update();
    let checker = start(&r);

    wait_until(LIMIT, "first checks", || up.oks() >= 2 && other.oks() >= 2).await;
    assert_eq!(healthy_ids(&r, "h-thr"), ["a", "b"]);
    assert!(r.instances("h-thr").unwrap()[0].health.last_check.is_some());

    up.set_status(500);
    wait_until(LIMIT, "a unhealthy", || healthy_ids(&r, "h-thr") == ["b"]).await;
    assert!(
        up.fails() >= 3,
        "3 failures in a row were needed, saw {}",
        up.fails()
    );
    assert!(changes.has_changed().unwrap());
    assert_eq!(gauge("h-thr", "a"), Some(0.0));
    assert_eq!(gauge("h-thr", "b"), Some(1.0));
    assert_eq!(
        r.detail("h-thr").unwrap()["instances"][0]["status"],
        "unhealthy"
    );

    let oks_before = up.oks();
    up.set_status(204);
    wait_until(LIMIT, "a healthy again", || {
        healthy_ids(&r, "h-thr") == ["a", "b"]
    })
    .await;
    assert!(
        up.oks() - oks_before >= 2,
        "2 successes in a row were needed"
    );
    assert_eq!(gauge("h-thr", "a"), Some(1.0));
    checker.shutdown(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_healthy_client_errors_are_not() {
    let up = HealthServer::start(302).await;
    let r = Registry::new();
    r.set_static("h-3xx", vec![up.instance("a")], fast(1, 1, 1000));
    let checker = start(&r);
    wait_until(LIMIT, "checked", || up.oks() >= 3).await;
    assert_eq!(
        r.instances("h-3xx").unwrap()[0].health.status,
        Status::Healthy
    );
    up.set_status(404);
    wait_until(LIMIT, "404 is a failure", || r.healthy("h-3xx").is_empty()).await;
    checker.shutdown(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_instance_fails_by_timeout_and_delays_no_other() {
    recorder();
    let hung = HealthServer::start(200).await;
    hung.set_hang(true);
    let quick = HealthServer::start(200).await;
    let slow_timeout = HealthServer::start(200).await;
    slow_timeout.set_hang(true);
    let r = Registry::new();
    // A timeout far longer than the test: the hung instance's one check stays in flight.
    r.set_static(
        "h-hang",
        vec![hung.instance("hung"), quick.instance("quick")],
        fast(1, 1, 60_000),
    );
    // A short timeout: the hanging instance is marked unhealthy.
    r.set_static(
        "h-timeout",
        vec![slow_timeout.instance("t")],
        fast(1, 1, 100),
    );
    let checker = start(&r);

    wait_until(LIMIT, "quick is checked again and again", || {
        quick.hits() >= 10
    })
    .await;
    assert_eq!(
        hung.hits(),
        1,
        "one check of the hung instance, still running"
    );
    assert_eq!(
        healthy_ids(&r, "h-hang"),
        ["hung", "quick"],
        "no result yet for hung"
    );

    quick.set_status(503);
    wait_until(LIMIT, "quick unhealthy while hung still hangs", || {
        healthy_ids(&r, "h-hang") == ["hung"]
    })
    .await;
    assert_eq!(hung.hits(), 1);

    wait_until(LIMIT, "timeout is a failure", || {
        r.healthy("h-timeout").is_empty()
    })
    .await;
    assert!(r.instances("h-timeout").unwrap()[0]
        .health
        .last_check
        .is_some());
    assert_eq!(gauge("h-timeout", "t"), Some(0.0));
    checker.shutdown(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_follow_configuration_changes() {
    let up = HealthServer::start(500).await;
    let r = Registry::new();
    let checker = start(&r);
    // Declared without checks: never checked, stays healthy.
    r.set_static("h-cfg", vec![up.instance("a")], None);
    let other = HealthServer::start(200).await;
    r.set_static("h-cfg-other", vec![other.instance("o")], fast(1, 1, 1000));
    wait_until(LIMIT, "the other service is checked", || other.hits() >= 3).await;
    assert_eq!(up.hits(), 0);
    assert_eq!(healthy_ids(&r, "h-cfg"), ["a"]);

    // Checks switched on by a reload: the failing instance goes.
    r.set_static("h-cfg", vec![up.instance("a")], fast(1, 1, 1000));
    wait_until(LIMIT, "checked after reload", || {
        r.healthy("h-cfg").is_empty()
    })
    .await;

    // A registered instance is checked too.
    let added = HealthServer::start(200).await;
    r.register("h-cfg", added.instance("b")).unwrap();
    wait_until(LIMIT, "registered instance checked", || added.hits() >= 2).await;
    assert_eq!(healthy_ids(&r, "h-cfg"), ["b"]);

    // Checks switched off: they stop, and nothing says "unhealthy" any more.
    r.set_static("h-cfg", vec![up.instance("a")], None);
    assert_eq!(healthy_ids(&r, "h-cfg"), ["a", "b"]);
    let mut quiet = false;
    for _ in 0..20 {
        let before = up.hits();
        // The quiet window under test: no new check may come in it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Six intervals without a new check (one may have been in flight).
        if up.hits() <= before + 1 {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "checks did not stop");
    assert_eq!(healthy_ids(&r, "h-cfg"), ["a", "b"]);
    checker.shutdown(LIMIT).await;
}
