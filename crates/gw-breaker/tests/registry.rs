//! `BreakerRegistry` (admin data, route rebuilds, tick) and the state gauge.

use std::sync::Arc;
use std::time::Duration;

use gw_breaker::{Breaker, BreakerConfig, BreakerRegistry, OutlierConfig, State, STATE_GAUGE};
use metrics_exporter_prometheus::PrometheusBuilder;
use parking_lot::Mutex;

fn config() -> BreakerConfig {
    BreakerConfig {
        min_requests: 2,
        open_secs: 5,
        half_open_max_requests: 1,
        success_threshold: 1,
        ..BreakerConfig::default()
    }
}

fn fail(b: &Arc<Breaker>, n: u32) {
    for _ in 0..n {
        b.try_acquire().unwrap().record(false);
    }
}

fn noop() -> Arc<BreakerRegistry> {
    BreakerRegistry::new(Arc::new(|_: &str, _: &[String]| {}))
}

#[tokio::test(start_paused = true)]
async fn a_service_keeps_its_breaker_across_route_rebuilds() {
    let r = noop();
    let a = r.breaker("svc", &config());
    fail(&a, 2);
    // A second route of the service, or the same route rebuilt: the same breaker, still open.
    let b = r.breaker("svc", &config());
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(b.state(), State::Open);
    assert!(!Arc::ptr_eq(&a, &r.breaker("other", &config())));
}

#[tokio::test(start_paused = true)]
async fn a_changed_config_replaces_the_machine_in_place() {
    let r = noop();
    let a = r.breaker("svc", &config());
    let held = a.try_acquire().unwrap();
    fail(&a, 2);
    let changed = BreakerConfig {
        min_requests: 3,
        ..config()
    };
    let b = r.breaker("svc", &changed);
    assert!(
        Arc::ptr_eq(&a, &b),
        "stacks built earlier see the new machine"
    );
    assert_eq!(a.state(), State::Closed);
    assert_eq!(a.config().min_requests, 3);
    // A request admitted by the old machine does not count in the new one.
    held.record(false);
    assert_eq!(a.stats()["total_requests"], 0);
    fail(&a, 2);
    assert_eq!(a.state(), State::Closed);
    fail(&a, 1);
    assert_eq!(a.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn admin_data_has_the_spec_shape() {
    let r = noop();
    let cfg = BreakerConfig {
        min_requests: 10,
        ..config()
    };
    let b = r.breaker("user_service", &cfg);
    b.try_acquire().unwrap().record(true);
    fail(&b, 1);
    r.breaker("order_service", &config());

    let one = r.get("user_service").unwrap();
    assert_eq!(one["service"], "user_service");
    assert_eq!(one["state"], "closed");
    assert_eq!(one["total_requests"], 2);
    assert_eq!(one["failed_requests"], 1);
    assert_eq!(one["success_requests"], 1);
    assert_eq!(one["failure_rate"], 0.5);
    assert!(one["avg_response_time"].is_f64());
    assert_eq!(one["ejected_instances"], serde_json::json!([]));
    assert!(r.get("nope").is_none());

    let all = r.snapshot();
    let names: Vec<&String> = all.as_object().unwrap().keys().collect();
    assert_eq!(names.len(), 2);
    assert_eq!(all["order_service"]["state"], "closed");
    assert_eq!(all["user_service"], one);
    assert_eq!(r.services(), ["order_service", "user_service"]);
}

#[tokio::test(start_paused = true)]
async fn reset_closes_the_breaker_and_lets_instances_back() {
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let sink = seen.clone();
    let r = BreakerRegistry::new(Arc::new(move |_: &str, ids: &[String]| {
        sink.lock().push(ids.to_vec())
    }));
    let cfg = BreakerConfig {
        outlier: OutlierConfig {
            consecutive_failures: 1,
            ..OutlierConfig::default()
        },
        ..config()
    };
    let b = r.breaker("svc", &cfg);
    r.set_instances("svc", &["a".to_owned(), "b".to_owned()]);
    r.outliers("svc").record("a", false);
    fail(&b, 2);
    assert_eq!(
        r.get("svc").unwrap()["ejected_instances"],
        serde_json::json!(["a"])
    );

    assert!(r.reset("svc"));
    assert_eq!(b.state(), State::Closed);
    assert_eq!(r.get("svc").unwrap()["total_requests"], 0);
    assert_eq!(*seen.lock(), [vec!["a".to_owned()], vec![]]);
    assert!(!r.reset("unknown"));
}

#[tokio::test(start_paused = true)]
async fn tick_ends_ejections_and_turns_open_breakers_half_open() {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let r = BreakerRegistry::new(Arc::new(move |s: &str, ids: &[String]| {
        sink.lock().push((s.to_owned(), ids.to_vec()))
    }));
    let cfg = BreakerConfig {
        outlier: OutlierConfig {
            consecutive_failures: 2,
            base_ejection_secs: 3,
            ..OutlierConfig::default()
        },
        ..config()
    };
    let b = r.breaker("svc", &cfg);
    let o = r.outliers("svc");
    r.set_instances("svc", &["a".to_owned(), "b".to_owned(), "c".to_owned()]);
    o.record("c", false);
    o.record("c", false);
    fail(&b, 2);

    tokio::time::advance(Duration::from_secs(3)).await;
    r.tick();
    assert!(o.ejected().is_empty());
    assert_eq!(r.get("svc").unwrap()["state"], "open");
    tokio::time::advance(Duration::from_secs(2)).await;
    r.tick();
    assert_eq!(r.get("svc").unwrap()["state"], "half_open");
    assert_eq!(
        *seen.lock(),
        [
            ("svc".to_owned(), vec!["c".to_owned()]),
            ("svc".to_owned(), vec![])
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn disabled_outliers_are_not_wired_into_the_layer() {
    let r = noop();
    let cfg = BreakerConfig {
        outlier: OutlierConfig {
            enabled: false,
            ..OutlierConfig::default()
        },
        ..config()
    };
    let layer = r.layer("svc", &cfg);
    assert!(format!("{layer:?}").contains("outliers: false"));
    assert!(!r.outliers("svc").config().enabled);
    assert!(r.remove("svc"));
    assert!(r.get("svc").is_none());
}

/// The value of `gateway_circuit_breaker_state{service="<service>"}` in `text`.
fn gauge(text: &str, service: &str) -> Option<f64> {
    let prefix = format!("{STATE_GAUGE}{{service=\"{service}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

#[tokio::test(start_paused = true)]
async fn the_state_gauge_follows_every_transition() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // The handle is built once, with the breaker, from the recorder in place then.
    let b = metrics::with_local_recorder(&recorder, || Breaker::new("gauge-svc", config()));
    let value = || gauge(&handle.render(), "gauge-svc");

    assert_eq!(value(), Some(0.0));
    fail(&b, 2);
    assert_eq!(value(), Some(1.0));
    tokio::time::advance(Duration::from_secs(5)).await;
    b.tick();
    assert_eq!(value(), Some(2.0));
    b.try_acquire().unwrap().record(false);
    assert_eq!(value(), Some(1.0));
    tokio::time::advance(Duration::from_secs(5)).await;
    // The transition made by a request (not by tick) updates the gauge too.
    let probe = b.try_acquire().unwrap();
    assert_eq!(value(), Some(2.0));
    probe.record(true);
    assert_eq!(value(), Some(0.0));
    fail(&b, 2);
    assert_eq!(value(), Some(1.0));
    b.reset();
    assert_eq!(value(), Some(0.0));
}

/// What the eject callback was called with: (service, ejected ids), in order.
type Seen = Arc<Mutex<Vec<(String, Vec<String>)>>>;
