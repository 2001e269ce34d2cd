//! `CircuitBreakerLayer` through a tower stack, with paused time.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gw_breaker::{
    Breaker, BreakerConfig, CircuitBreakerLayer, OutlierConfig, OutlierDetector, State,
};
use gw_core::{Body, FailedAttempts, NotForwarded, RequestId, UpstreamInfo};
use http::{HeaderValue, Request, Response, StatusCode};
use parking_lot::Mutex;
use tokio::sync::{mpsc, Semaphore};
use tower::{Service, ServiceBuilder, ServiceExt};

fn config() -> BreakerConfig {
    BreakerConfig {
        failure_rate: 0.5,
        min_requests: 4,
        window_secs: 10,
        open_secs: 5,
        half_open_max_requests: 3,
        success_threshold: 3,
        ..BreakerConfig::default()
    }
}

/// The upstream the breaker guards: counts calls, answers `status`, optionally waits for a
/// permit of `gate` first.
#[derive(Clone)]
struct Upstream {
    calls: Arc<AtomicU32>,
    failing: Arc<AtomicBool>,
    gate: Option<Arc<Semaphore>>,
}

impl Upstream {
    fn new() -> Self {
        Upstream {
            calls: Arc::default(),
            failing: Arc::new(AtomicBool::new(true)),
            gate: None,
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn service(
        &self,
        layer: CircuitBreakerLayer,
    ) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
           + Clone
           + Send
           + 'static {
        let up = self.clone();
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(move |_req: Request<Body>| {
                let up = up.clone();
                async move {
                    up.calls.fetch_add(1, Ordering::SeqCst);
                    if let Some(gate) = &up.gate {
                        gate.acquire().await.unwrap().forget();
                    }
                    let mut res = Response::new(Body::empty());
                    if up.failing.load(Ordering::SeqCst) {
                        *res.status_mut() = StatusCode::BAD_GATEWAY;
                    }
                    Ok::<_, Infallible>(res)
                }
            })
    }
}

fn request() -> Request<Body> {
    let mut req = Request::new(Body::empty());
    req.extensions_mut()
        .insert(RequestId::new(HeaderValue::from_static("req-42")));
    req
}

async fn send<S>(svc: &S) -> Response<Body>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone,
{
    svc.clone().oneshot(request()).await.unwrap()
}

async fn body_json(res: Response<Body>) -> serde_json::Value {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Trips `breaker` through `svc` (which must fail) with `min_requests` failures.
async fn trip<S>(svc: &S, breaker: &Breaker)
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone,
{
    for _ in 0..breaker.config().min_requests {
        assert_eq!(send(svc).await.status(), StatusCode::BAD_GATEWAY);
    }
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn trips_and_then_answers_503_without_the_inner_service() {
    let up = Upstream::new();
    let breaker = Breaker::new("svc", config());
    let svc = up.service(CircuitBreakerLayer::new(breaker.clone(), None));

    for i in 0..3 {
        assert_eq!(
            send(&svc).await.status(),
            StatusCode::BAD_GATEWAY,
            "request {i}"
        );
        assert_eq!(breaker.state(), State::Closed);
    }
    assert_eq!(send(&svc).await.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(up.calls(), 4);

    for _ in 0..5 {
        let res = send(&svc).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["content-type"], "application/json");
        let body = body_json(res).await;
        assert_eq!(body["error"], "Service temporarily unavailable");
        assert_eq!(body["request_id"], "req-42");
    }
    assert_eq!(up.calls(), 4, "an open breaker must not call the upstream");

    // Still open just before open_secs.
    tokio::time::advance(Duration::from_millis(4_990)).await;
    assert_eq!(send(&svc).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(up.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn successes_below_the_rate_keep_it_closed() {
    let up = Upstream::new();
    let breaker = Breaker::new("svc", config());
    let svc = up.service(CircuitBreakerLayer::new(breaker.clone(), None));
    // Alternate 200 and 502 while 502 stays under half: 1 failure in 3.
    for _ in 0..5 {
        up.set_failing(false);
        send(&svc).await;
        send(&svc).await;
        up.set_failing(true);
        send(&svc).await;
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(up.calls(), 15);
    let stats = breaker.stats();
    assert_eq!(stats["total_requests"], 15);
    assert_eq!(stats["failed_requests"], 5);
    assert_eq!(stats["success_requests"], 10);
}

#[tokio::test(start_paused = true)]
async fn inner_errors_count_as_failures() {
    let breaker = Breaker::new("svc", config());
    let svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone(), None))
        .service_fn(|_req: Request<Body>| async { Err::<Response<Body>, &str>("refused") });
    for _ in 0..4 {
        assert!(svc.clone().oneshot(request()).await.is_err());
    }
    assert_eq!(breaker.state(), State::Open);
    let res = svc.clone().oneshot(request()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_exactly_max_probes_through_under_concurrency() {
    let gate = Arc::new(Semaphore::new(0));
    let up = Upstream {
        gate: None,
        ..Upstream::new()
    };
    let breaker = Breaker::new("svc", config());
    let svc = up.service(CircuitBreakerLayer::new(breaker.clone(), None));
    trip(&svc, &breaker).await;

    // The upstream recovers but is slow: probes wait on the gate.
    up.set_failing(false);
    let slow = Upstream {
        gate: Some(gate.clone()),
        ..up.clone()
    };
    let svc = slow.service(CircuitBreakerLayer::new(breaker.clone(), None));
    tokio::time::advance(Duration::from_secs(5)).await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    for _ in 0..20 {
        let svc = svc.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let res = svc.oneshot(request()).await.unwrap();
            tx.send(res.status()).unwrap();
        });
    }
    // The 17 refused answer at once, while the probes are still held at the gate.
    for _ in 0..17 {
        assert_eq!(rx.recv().await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(
        up.calls(),
        4 + 3,
        "exactly half_open_max_requests probes reach the upstream"
    );
    assert_eq!(breaker.state(), State::HalfOpen);
    assert!(rx.try_recv().is_err());

    gate.add_permits(3);
    for _ in 0..3 {
        assert_eq!(rx.recv().await.unwrap(), StatusCode::OK);
    }
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn success_threshold_closes_with_a_fresh_window() {
    let up = Upstream::new();
    let breaker = Breaker::new("svc", config());
    let svc = up.service(CircuitBreakerLayer::new(breaker.clone(), None));
    trip(&svc, &breaker).await;
    tokio::time::advance(Duration::from_secs(5)).await;

    up.set_failing(false);
    for _ in 0..2 {
        assert_eq!(send(&svc).await.status(), StatusCode::OK);
        assert_eq!(breaker.state(), State::HalfOpen);
    }
    assert_eq!(send(&svc).await.status(), StatusCode::OK);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.stats()["total_requests"], 0);

    // A fresh window: three failures are below min_requests again.
    up.set_failing(true);
    for _ in 0..3 {
        send(&svc).await;
    }
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens() {
    let up = Upstream::new();
    let breaker = Breaker::new("svc", config());
    let svc = up.service(CircuitBreakerLayer::new(breaker.clone(), None));
    trip(&svc, &breaker).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(send(&svc).await.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(breaker.state(), State::Open);
    let calls = up.calls();
    assert_eq!(send(&svc).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(up.calls(), calls);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_future_releases_its_probe_slot() {
    let config = BreakerConfig {
        half_open_max_requests: 1,
        success_threshold: 1,
        ..config()
    };
    let up = Upstream::new();
    let breaker = Breaker::new("svc", config);
    let svc = up.service(CircuitBreakerLayer::new(breaker.clone(), None));
    trip(&svc, &breaker).await;
    tokio::time::advance(Duration::from_secs(5)).await;

    let gate = Arc::new(Semaphore::new(0));
    let slow = Upstream {
        gate: Some(gate.clone()),
        ..up.clone()
    };
    let mut blocked = slow.service(CircuitBreakerLayer::new(breaker.clone(), None));
    let probe = blocked.ready().await.unwrap().call(request());
    // The only slot is taken.
    assert_eq!(send(&svc).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(probe);
    assert_eq!(
        breaker.state(),
        State::HalfOpen,
        "an abandoned probe is no failure"
    );

    // The slot is free again: this probe reaches the (now healthy) upstream and closes.
    up.set_failing(false);
    let before = up.calls();
    assert_eq!(send(&svc).await.status(), StatusCode::OK);
    assert_eq!(up.calls(), before + 1);
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn latency_is_measured_for_the_admin_api() {
    let breaker = Breaker::new("svc", config());
    let svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone(), None))
        .service_fn(|_req: Request<Body>| async {
            // The latency under test, on the paused clock: 250 ms pass at no cost.
            tokio::time::sleep(Duration::from_millis(250)).await;
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
    svc.clone().oneshot(request()).await.unwrap();
    let avg = breaker.stats()["avg_response_time"].as_f64().unwrap();
    assert!((avg - 0.25).abs() < 0.01, "avg_response_time {avg}");
}

#[tokio::test(start_paused = true)]
async fn the_answering_instance_feeds_outlier_ejection() {
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let sink = seen.clone();
    let outliers = OutlierDetector::new(
        "svc",
        OutlierConfig {
            consecutive_failures: 3,
            ..OutlierConfig::default()
        },
        Arc::new(move |_: &str, ids: &[String]| sink.lock().push(ids.to_vec())),
    );
    outliers.set_instances(&["a".to_owned(), "b".to_owned()]);
    let breaker = Breaker::new(
        "svc",
        BreakerConfig {
            min_requests: 1000,
            ..config()
        },
    );
    let next = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker, Some(outliers.clone())))
        .service_fn(move |_req: Request<Body>| {
            // Round robin over a (always 500) and b (always 200).
            let n = next.fetch_add(1, Ordering::SeqCst);
            async move {
                let (id, status) = if n & 1 == 0 { ("a", 500) } else { ("b", 200) };
                let mut res = Response::new(Body::empty());
                *res.status_mut() = StatusCode::from_u16(status).unwrap();
                res.extensions_mut().insert(UpstreamInfo {
                    addr: "127.0.0.1:1".into(),
                    instance: id.into(),
                    connect: None,
                    header: Duration::ZERO,
                    attempts: 1,
                });
                Ok::<_, Infallible>(res)
            }
        });
    for _ in 0..4 {
        svc.clone().oneshot(request()).await.unwrap();
    }
    assert!(
        outliers.ejected().is_empty(),
        "b's successes do not reset a's count"
    );
    svc.clone().oneshot(request()).await.unwrap();
    assert_eq!(outliers.ejected(), ["a"]);
    assert_eq!(*seen.lock(), [vec!["a".to_owned()]]);
}

#[tokio::test(start_paused = true)]
async fn failed_attempts_before_a_retry_count_against_their_instance_only() {
    let outliers = OutlierDetector::new(
        "svc",
        OutlierConfig {
            consecutive_failures: 3,
            ..OutlierConfig::default()
        },
        Arc::new(|_: &str, _: &[String]| {}),
    );
    outliers.set_instances(&["a".to_owned(), "b".to_owned()]);
    let breaker = Breaker::new(
        "svc",
        BreakerConfig {
            min_requests: 1,
            ..config()
        },
    );
    let svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(
            breaker.clone(),
            Some(outliers.clone()),
        ))
        .service_fn(|_req: Request<Body>| async {
            // a failed, the retry on b succeeded.
            let mut res = Response::new(Body::empty());
            res.extensions_mut().insert(UpstreamInfo {
                addr: "127.0.0.1:2".into(),
                instance: "b".into(),
                connect: None,
                header: Duration::ZERO,
                attempts: 2,
            });
            res.extensions_mut()
                .insert(FailedAttempts(vec!["a".into()]));
            Ok::<_, Infallible>(res)
        });
    for _ in 0..3 {
        assert_eq!(svc.clone().oneshot(request()).await.unwrap().status(), 200);
    }
    assert_eq!(outliers.ejected(), ["a"]);
    assert_eq!(
        breaker.state(),
        State::Closed,
        "the breaker counts the request by its final answer"
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_made_without_any_upstream_is_not_counted() {
    let breaker = Breaker::new(
        "svc",
        BreakerConfig {
            min_requests: 2,
            ..config()
        },
    );
    let svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone(), None))
        .service_fn(|_req: Request<Body>| async {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            res.extensions_mut().insert(NotForwarded);
            Ok::<_, Infallible>(res)
        });
    for _ in 0..10 {
        assert_eq!(svc.clone().oneshot(request()).await.unwrap().status(), 503);
    }
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_request_given_up_after_abandoned_failure_secs_is_a_failure() {
    let config = BreakerConfig {
        min_requests: 1,
        abandoned_failure_secs: 10,
        ..config()
    };
    let breaker = Breaker::new("svc", config);
    let hung = Upstream {
        gate: Some(Arc::new(Semaphore::new(0))),
        ..Upstream::new()
    };
    let mut svc = hung.service(CircuitBreakerLayer::new(breaker.clone(), None));

    // Given up early: not counted.
    let early = svc.ready().await.unwrap().call(request());
    tokio::time::advance(Duration::from_secs(9)).await;
    drop(early);
    assert_eq!(breaker.state(), State::Closed);

    // Given up after waiting 10 s: the upstream was too slow, a failure.
    let late = svc.ready().await.unwrap().call(request());
    tokio::time::advance(Duration::from_secs(10)).await;
    drop(late);
    assert_eq!(breaker.state(), State::Open);
}
