//! A plain axum app with the gateway's request id, metrics and JSON access log: prints each
//! answer's `x-request-id`, the access-log lines and the Prometheus counters.
//!
//! `cargo run -p gw-monitor --example axum_metrics`

use axum::routing::get;
use gw_monitor::{AccessLog, AccessLogLayer, Metrics, MetricsLayer, RequestIdLayer};
use http::Request;
use http_body_util::BodyExt;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let metrics = Metrics::global();
    // Built once per route: the handles a request records into without a lock.
    let route = metrics.route("hello", "hello_service");

    let app = axum::Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(axum::middleware::map_response(
            // `route` is a `&'static RouteMetrics`: copied into each answer, not cloned.
            move |mut res: axum::response::Response| async move {
                res.extensions_mut().insert(route);
                res
            },
        ));
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer)
        .layer(MetricsLayer::new(metrics.clone()))
        .layer(AccessLogLayer::new(AccessLog::stdout()))
        .service(app);

    for id in [None, Some("client-chosen-id"), Some("not a valid id!")] {
        let mut req = Request::get("/hello");
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        let res = svc
            .clone()
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        println!(
            "sent {id:?} -> x-request-id {:?}",
            res.headers()["x-request-id"]
        );
        // The access-log line is written when the body has been sent.
        let _ = res.into_body().collect().await;
    }
    // The writer thread prints the lines; give it a moment before reading the counters.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    for line in metrics.render_prometheus().lines() {
        if line.starts_with("gateway_requests_total") {
            println!("{line}");
        }
    }
}
