//! Failure policies: what counts against an instance (outlier ejection) and against a
//! service (circuit breaker), and what the proxy does with upstream answers that cannot be
//! passed on.

use std::time::Duration;

use integration_tests::{eventually, refused_addr, TestGateway, Upstream};
use serde_json::Value;

/// `GET /admin/circuit-breakers/{service}`.
async fn breaker(gw: &TestGateway, service: &str) -> Value {
    let res = gw
        .client
        .get(gw.admin_url(&format!("/admin/circuit-breakers/{service}")))
        .send()
        .await
        .expect("admin request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("admin JSON");
    body["circuit_breaker"].clone()
}

fn instance(id: &str, port: u16) -> String {
    format!("{{ id = \"{id}\", host = \"127.0.0.1\", port = {port} }}")
}

#[tokio::test]
async fn an_instance_refusing_every_connection_is_ejected_although_retries_hide_it() {
    let dead = refused_addr().await;
    let live = Upstream::echo("live").await;
    let gw = TestGateway::builder()
        .raw(&format!(
            "[services.s]\ncircuit_breaker = {{ min_requests = 1000, outlier = {{ consecutive_failures = 3 }} }}\ninstances = [{}, {}]",
            instance("dead", dead.port()),
            instance("live", live.addr.port())
        ))
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"\nretry = { times = 1, delay = 0 }")
        .start()
        .await;
    for _ in 0..20 {
        let res = gw.get("/x").await;
        assert_eq!(res.status(), 200, "the retry hides the dead instance");
    }
    assert_eq!(
        breaker(&gw, "s").await["ejected_instances"],
        serde_json::json!(["dead"]),
        "every refused attempt counts against the instance"
    );
    // Once out, the dead instance sees no attempt: the live one gets each request once.
    let before = live.hits();
    for _ in 0..10 {
        assert_eq!(gw.get("/x").await.status(), 200);
    }
    assert_eq!(live.hits() - before, 10);
}

/// The `status` the admin API gives instance `id` of `service`.
async fn instance_status(gw: &TestGateway, service: &str, id: &str) -> Value {
    let res = gw
        .client
        .get(gw.admin_url(&format!("/admin/services/{service}")))
        .send()
        .await
        .expect("admin request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("admin JSON");
    body["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .find(|i| i["id"] == id)
        .map(|i| i["status"].clone())
        .unwrap_or(Value::Null)
}

async fn wait_status(gw: &TestGateway, service: &str, id: &str, status: &str) {
    assert!(
        eventually(Duration::from_secs(10), || async {
            instance_status(gw, service, id).await == status
        })
        .await,
        "{id} never became {status}"
    );
}

#[tokio::test]
async fn no_healthy_upstream_is_not_a_breaker_failure() {
    let dead = refused_addr().await;
    let gw = TestGateway::builder()
        .raw(&format!(
            "[services.s]\ncircuit_breaker = {{ min_requests = 2 }}\ninstances = [{}]\n\
             health_check = {{ path = \"/health\", interval_secs = 0.05, timeout_ms = 500 }}",
            instance("dead", dead.port())
        ))
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
        .start()
        .await;
    wait_status(&gw, "s", "dead", "unhealthy").await;
    for _ in 0..10 {
        let res = gw.get("/x").await;
        assert_eq!(res.status(), 503);
        let body: Value = res.json().await.expect("JSON error");
        assert_eq!(body["error"], "No healthy upstream");
    }
    assert_eq!(
        breaker(&gw, "s").await["state"],
        "closed",
        "the gateway's own 503 says nothing about the upstream"
    );
}
