//! Retries (docs/http-answers.md, "Retries"): idempotent methods only, on another instance, bounded.

use integration_tests::{refused_addr, TestGateway, Upstream};
use serde_json::Value;

#[tokio::test]
async fn get_is_retried_on_another_instance_after_refused_connection() {
    let dead = refused_addr().await;
    let live = Upstream::echo("live").await;
    let gw = TestGateway::builder()
        .raw(&format!(
            "[services.s]\ninstances = [{{ id = \"dead\", host = \"127.0.0.1\", port = {} }}, {{ id = \"live\", host = \"127.0.0.1\", port = {} }}]",
            dead.port(),
            live.addr.port()
        ))
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"\nretry = { times = 1, delay = 0 }")
        .start()
        .await;
    for _ in 0..6 {
        let res = gw.get("/x").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["instance"], "live");
    }
}

#[tokio::test]
async fn get_is_retried_after_503_and_put_too() {
    let bad = Upstream::status("bad", 503).await;
    let good = Upstream::echo("good").await;
    let gw = TestGateway::builder()
        .service("s", &[&bad, &good])
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"\nretry = { times = 2, delay = 0.01 }")
        .start()
        .await;
    for _ in 0..4 {
        assert_eq!(gw.get("/x").await.status(), 200);
        let res = gw
            .client
            .put(gw.url("/x"))
            .body("abc")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.json::<Value>().await.unwrap()["body_len"],
            3,
            "the replayed body arrives whole"
        );
    }
    assert!(bad.hits() >= 1);
}

#[tokio::test]
async fn post_is_never_retried() {
    let bad = Upstream::status("bad", 503).await;
    let gw = TestGateway::builder()
        .service("s", &[&bad])
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"\nretry = { times = 3, delay = 0 }")
        .start()
        .await;
    let res = gw.client.post(gw.url("/x")).body("x").send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(bad.hits(), 1, "POST must reach the upstream exactly once");
    let res = gw.get("/x").await;
    assert_eq!(res.status(), 503);
    assert_eq!(bad.hits(), 5, "GET: 1 attempt + 3 retries");
}

#[tokio::test]
async fn no_retry_section_means_one_attempt() {
    let bad = Upstream::status("bad", 502).await;
    let gw = TestGateway::builder()
        .catch_all(&[&bad])
        .route("id = \"z\"\npath = \"/zero\"\nservice = \"s\"\nretry = { times = 0 }")
        .start()
        .await;
    assert_eq!(gw.get("/x").await.status(), 502);
    assert_eq!(bad.hits(), 1);
    assert_eq!(gw.get("/zero").await.status(), 502);
    assert_eq!(bad.hits(), 2);
}

#[tokio::test]
async fn retry_budget_bounds_retries_under_sustained_failure() {
    let bad = Upstream::status("bad", 503).await;
    let gw = TestGateway::builder()
        .service("s", &[&bad])
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"\nretry = { times = 3, delay = 0 }")
        .start()
        .await;
    let n = 300;
    for _ in 0..n {
        assert_eq!(gw.get("/x").await.status(), 503);
    }
    // Without a budget this would be 4 × 300 = 1200 upstream hits.
    let hits = bad.hits();
    assert!(
        hits < 2 * n,
        "retries must be bounded by the budget, got {hits} hits for {n} requests"
    );
}
