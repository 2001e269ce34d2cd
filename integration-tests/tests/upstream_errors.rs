//! 502 / 503 / 504 answers of docs/http-answers.md: the gateway's own JSON with the request id.

use std::time::Duration;

use integration_tests::{refused_addr, TestGateway, Upstream};
use serde_json::Value;

async fn error_of(res: reqwest::Response) -> (u16, String, String, Value) {
    let status = res.status().as_u16();
    let id = res
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let gw = res
        .headers()
        .get("x-gateway")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, id, gw, res.json().await.expect("JSON error body"))
}

#[tokio::test]
async fn refused_connection_is_502() {
    let addr = refused_addr().await;
    let gw = TestGateway::builder()
        .service_addrs("s", &[addr])
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
        .start()
        .await;
    let (status, id, xgw, body) = error_of(gw.get("/x").await).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"], "Bad gateway");
    assert_eq!(body["request_id"], id.as_str());
    assert!(!xgw.is_empty(), "X-Gateway on gateway-made answers too");
}

#[tokio::test]
async fn connection_closed_without_answer_is_502() {
    let up = Upstream::close("c").await;
    let gw = TestGateway::catch_all(&up).await;
    let (status, _, _, body) = error_of(gw.get("/x").await).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"], "Bad gateway");
}

#[tokio::test]
async fn no_instances_is_503() {
    let gw = TestGateway::builder()
        .raw("[services.empty]\ninstances = []")
        .route("id = \"r\"\npath = \"/\"\nservice = \"empty\"")
        .start()
        .await;
    let (status, _, _, body) = error_of(gw.get("/x").await).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "No healthy upstream");
}

#[tokio::test]
async fn slow_upstream_is_504_after_read_timeout() {
    let up = Upstream::delay("slow", Duration::from_secs(5)).await;
    let gw = TestGateway::builder()
        .service("s", &[&up])
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"\ntimeout = { connect = 1, send = 0.1, read = 0.2 }")
        .start()
        .await;
    let started = std::time::Instant::now();
    let (status, _, _, body) = error_of(gw.get("/x").await).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"], "Gateway timeout");
    // Not a speed assertion: only that the timeout, not the upstream, ended the wait.
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// A pooled connection keeps its head-wait timer from one request to the next, with the
/// deadline of an earlier request: firing at that deadline must not end a later request's
/// wait early, and the later request's own deadline still holds.
#[tokio::test]
async fn a_reused_connection_times_out_on_each_requests_own_deadline() {
    let up = Upstream::echo("e").await;
    let gw = TestGateway::builder()
        .service("s", &[&up])
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"\ntimeout = { connect = 1, send = 0.5, read = 1.5 }")
        .start()
        .await;
    let client = reqwest::Client::new();
    let get = |delay_ms: u64| {
        client
            .get(gw.url("/x"))
            .header("x-test-delay-ms", delay_ms.to_string())
            .send()
    };
    assert_eq!(get(0).await.unwrap().status(), 200);
    // The connection's timer still holds a deadline set for the first request (its read
    // phase would have ended 1.5 s after it began, 0.3 s into this one): the pause is the
    // scenario under test.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        get(1300).await.unwrap().status(),
        200,
        "answered 1.3 s into a 2 s wait"
    );
    let (status, _, _, body) = error_of(get(4000).await.unwrap()).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(up.hits(), 3, "one upstream request each, no retries");
}

#[tokio::test]
async fn upstream_status_passes_through() {
    let up = Upstream::status("s", 500).await;
    let gw = TestGateway::catch_all(&up).await;
    let res = gw.get("/x").await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.json::<Value>().await.unwrap()["instance"], "s");
}
