//! A breaker in front of a flaky service: watch it open, refuse, probe and close.
//!
//! `cargo run -p gw-breaker --example flaky_service`
//!
//! Breakers live in memory on each node (as in Envoy), so there is no store to set up.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gw_breaker::{BreakerConfig, BreakerRegistry};
use gw_core::Body;
use http::{Request, Response, StatusCode};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let registry = BreakerRegistry::new(Arc::new(|service: &str, ejected: &[String]| {
        println!("  [balancer] {service}: ejected instances now {ejected:?}");
    }));
    let config = BreakerConfig {
        min_requests: 4,
        failure_rate: 0.5,
        window_secs: 10,
        open_secs: 1,
        half_open_max_requests: 1,
        success_threshold: 2,
        ..BreakerConfig::default()
    };

    let healthy = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU32::new(0));
    let svc = {
        let healthy = healthy.clone();
        let calls = calls.clone();
        ServiceBuilder::new()
            .layer(registry.layer("flaky", &config))
            .service_fn(move |_req: Request<Body>| {
                calls.fetch_add(1, Ordering::Relaxed);
                let status = if healthy.load(Ordering::Relaxed) {
                    StatusCode::OK
                } else {
                    StatusCode::BAD_GATEWAY
                };
                async move {
                    let mut res = Response::new(Body::empty());
                    *res.status_mut() = status;
                    Ok::<_, Infallible>(res)
                }
            })
    };

    let send = |label: &'static str| {
        let svc = svc.clone();
        let registry = registry.clone();
        let calls = calls.clone();
        async move {
            let res = svc.oneshot(Request::new(Body::empty())).await.unwrap();
            let stats = registry.get("flaky").unwrap();
            println!(
                "{label:<22} -> {} | state {} | inner calls {} | window {}/{} failed",
                res.status(),
                stats["state"],
                calls.load(Ordering::Relaxed),
                stats["failed_requests"],
                stats["total_requests"],
            );
        }
    };

    println!("upstream is failing:");
    for _ in 0..4 {
        send("request").await;
    }
    println!("breaker open, requests do not reach the upstream:");
    for _ in 0..2 {
        send("request").await;
    }
    println!("upstream recovers; waiting open_secs...");
    healthy.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    registry.tick();
    println!("after tick: {}", registry.get("flaky").unwrap()["state"]);
    send("probe 1").await;
    send("probe 2 (closes)").await;
    send("request").await;
}
