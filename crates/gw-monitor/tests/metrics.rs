//! `MetricsLayer` and `Metrics` through a tower stack. Every test uses its own route names:
//! the recorder is process-wide.

use std::convert::Infallible;
use std::time::Duration;

use gw_core::UpstreamInfo;
use gw_monitor::{Metrics, MetricsLayer, RouteMetrics};
use http::{Method, Request, Response, StatusCode};
use test_support::wait_until;
use tower::{ServiceBuilder, ServiceExt};

/// Sends one request whose answer carries `route` (if any), `status` and maybe an upstream.
async fn send(
    metrics: &Metrics,
    route: Option<&'static RouteMetrics>,
    method: Method,
    status: u16,
    upstream: bool,
) {
    let svc = ServiceBuilder::new()
        .layer(MetricsLayer::new(metrics.clone()))
        .service_fn(move |_req: Request<()>| async move {
            let mut res = Response::new(());
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(r) = route {
                res.extensions_mut().insert(r);
            }
            if upstream {
                res.extensions_mut().insert(UpstreamInfo {
                    addr: "127.0.0.1:9".into(),
                    instance: "i-1".into(),
                    connect: None,
                    header: Duration::from_millis(3),
                    attempts: 1,
                });
            }
            Ok::<_, Infallible>(res)
        });
    let req = Request::builder().method(method).body(()).unwrap();
    svc.oneshot(req).await.unwrap();
}

/// The value of the sample line of `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let rest = rest.strip_prefix('{')?;
        let (lbls, value) = rest.split_once("} ")?;
        let all = labels
            .iter()
            .all(|(k, v)| lbls.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        all.then(|| value.trim().parse().unwrap())
    })
}

fn in_flight(text: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix("gateway_requests_in_flight "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "current_thread")]
async fn counts_by_route_method_and_status() {
    let m = Metrics::global();
    let r1 = m.route("m-r1", "m-svc1");
    send(&m, Some(r1), Method::GET, 200, true).await;
    send(&m, Some(r1), Method::GET, 200, true).await;
    send(&m, Some(r1), Method::POST, 503, false).await;

    let text = m.render_prometheus();
    let total = |method, status| {
        sample(
            &text,
            "gateway_requests_total",
            &[
                ("route", "m-r1"),
                ("service", "m-svc1"),
                ("method", method),
                ("status", status),
            ],
        )
    };
    assert_eq!(total("GET", "200"), Some(2.0), "{text}");
    assert_eq!(total("POST", "503"), Some(1.0), "{text}");
    assert_eq!(total("POST", "200"), None);
    assert_eq!(
        sample(
            &text,
            "gateway_request_duration_seconds_count",
            &[("route", "m-r1"), ("service", "m-svc1")]
        ),
        Some(3.0),
        "{text}"
    );
    assert!(
        text.contains("gateway_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "gateway_upstream_duration_seconds_count",
            &[("service", "m-svc1")]
        ),
        Some(2.0),
        "{text}"
    );
    assert!(text.contains("gateway_upstream_duration_seconds_bucket{"));
    assert!(
        !text.contains("quantile="),
        "histograms, not summaries: {text}"
    );
    in_flight_returns_to_zero(&m).await;
}

#[tokio::test(flavor = "current_thread")]
async fn rebuilt_route_reuses_handles() {
    let m = Metrics::global();
    send(
        &m,
        Some(m.route("m-rebuilt", "m-svc2")),
        Method::GET,
        200,
        false,
    )
    .await;
    send(
        &m,
        Some(m.route("m-rebuilt", "m-svc2")),
        Method::GET,
        200,
        false,
    )
    .await;
    let text = m.render_prometheus();
    if std::env::var_os("GW_PRINT_METRICS").is_some() {
        println!("{text}");
    }
    assert_eq!(
        sample(
            &text,
            "gateway_requests_total",
            &[("route", "m-rebuilt"), ("status", "200")]
        ),
        Some(2.0)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn snapshot_json_counts_services_and_statuses() {
    let m = Metrics::global();
    let r = m.route("m-json", "m-json-svc");
    let before = m.snapshot_json();
    for status in [200, 200, 500, 404] {
        send(&m, Some(r), Method::GET, status, false).await;
    }
    send(&m, None, Method::GET, 418, false).await;
    let after = m.snapshot_json();

    let svc = &after["services"]["m-json-svc"];
    assert_eq!(svc["requests"], 4);
    assert_eq!(svc["errors"], 1);
    assert_eq!(svc["error_rate"], 0.25);
    assert!(svc["avg_response_time"].as_f64().unwrap() >= 0.0);
    // Other tests run in the same process: compare with before, at least.
    let n = |v: &serde_json::Value, k: &str| v["status_codes"][k].as_u64().unwrap_or(0);
    assert!(n(&after, "200") >= n(&before, "200") + 2);
    assert!(n(&after, "418") > n(&before, "418"));
    assert!(
        after["total_requests"].as_u64().unwrap() >= before["total_requests"].as_u64().unwrap() + 5
    );
    assert!(after["timestamp"].as_u64().unwrap() > 1_600_000_000);
    // Unmatched answers count under route="" and not as a service.
    assert!(after["services"].get("").is_none());
    let text = m.render_prometheus();
    assert!(
        sample(
            &text,
            "gateway_requests_total",
            &[("route", ""), ("service", ""), ("status", "418")]
        )
        .is_some(),
        "{text}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn in_flight_counts_pending_and_dropped_requests() {
    let m = Metrics::global();
    let svc = ServiceBuilder::new()
        .layer(MetricsLayer::new(m.clone()))
        .service_fn(|_req: Request<()>| std::future::pending::<Result<Response<()>, Infallible>>());
    let fut = svc.oneshot(Request::new(()));
    let mut fut = Box::pin(fut);
    // Poll once so the request is entered and pending.
    assert!(futures_poll_once(fut.as_mut()).await.is_none());
    assert!(in_flight(&m.render_prometheus()) >= 1.0);
    drop(fut);
    in_flight_returns_to_zero(&m).await;
}

/// Bounded poll: other tests of this process may hold a request in flight for a moment.
async fn in_flight_returns_to_zero(m: &Metrics) {
    wait_until(
        Duration::from_secs(2),
        "the in-flight gauge back at 0",
        || in_flight(&m.render_prometheus()) == 0.0,
    )
    .await;
}

async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}
