//! The admin listener: access control, the routes API changing live traffic, metrics, health.

use integration_tests::{TestGateway, Upstream};
use serde_json::{json, Value};

async fn gateway(up: &Upstream, admin: &str) -> TestGateway {
    TestGateway::builder()
        .raw(admin)
        .service("s", &[up])
        .route("id = \"base\"\npath = \"/base\"\nservice = \"s\"")
        .start()
        .await
}

#[tokio::test]
async fn route_crud_changes_live_traffic() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    assert_eq!(gw.get("/new/x").await.status(), 404);

    let route = json!({"id": "new", "path": "/new", "strip_prefix": true, "service": "s", "methods": ["GET"]});
    let res = gw
        .client
        .post(gw.admin_url("/admin/routes"))
        .json(&route)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["message"], "Route added");
    assert_eq!(body["route"]["id"], "new");

    let (s, b) = gw.get_json("/new/x").await;
    assert_eq!(s, 200);
    assert_eq!(b["path"], "/x");

    let list: Value = gw.admin_json("/admin/routes").await;
    let ids: Vec<&str> = list["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["base", "new"]);

    let one: Value = gw.admin_json("/admin/routes/new").await;
    assert_eq!(one["route"]["path"], "/new");

    // Update: same id, now without strip_prefix.
    let route = json!({"id": "new", "path": "/new", "service": "s"});
    let res = gw
        .client
        .post(gw.admin_url("/admin/routes"))
        .json(&route)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.json::<Value>().await.unwrap()["message"],
        "Route updated"
    );
    assert_eq!(gw.get_json("/new/x").await.1["path"], "/new/x");

    let res = gw
        .client
        .delete(gw.admin_url("/admin/routes/new"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["message"],
        "Route removed"
    );
    assert_eq!(gw.get("/new/x").await.status(), 404);
    let res = gw
        .client
        .delete(gw.admin_url("/admin/routes/new"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "Route not found"
    );
}

#[tokio::test]
async fn invalid_routes_are_refused_and_change_nothing() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let before: Value = gw.admin_json("/admin/routes").await;

    let res = gw
        .client
        .post(gw.admin_url("/admin/routes"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "Invalid JSON");

    for (bad, why) in [
        (
            json!({"id": "x", "path": "/x", "service": "bills"}),
            "unknown service \"bills\"",
        ),
        (
            json!({"id": "x", "pattern": "^/(x", "service": "s"}),
            "invalid regex",
        ),
        (json!({"id": "x", "service": "s"}), "one of pattern or path"),
        (
            json!({"id": "x", "path": "/x", "service": "s", "bogus": 1}),
            "bogus",
        ),
        (
            json!({"id": "base", "path": "nope", "service": "s"}),
            "must start with '/'",
        ),
    ] {
        let res = gw
            .client
            .post(gw.admin_url("/admin/routes"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
        let err = res.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(err.starts_with("Invalid route configuration: "), "{err}");
        assert!(err.contains(why), "{err} should mention {why}");
    }
    let after: Value = gw.admin_json("/admin/routes").await;
    assert_eq!(before, after);
    assert_eq!(
        gw.get("/base/1").await.status(),
        200,
        "the existing route still serves"
    );
}

#[tokio::test]
async fn outside_allow_is_403_and_changes_nothing() {
    let up = Upstream::echo("a").await;
    let gw = gateway(
        &up,
        "[admin]\nlisten = \"127.0.0.1:0\"\nallow = [\"10.0.0.0/8\"]",
    )
    .await;
    let route = json!({"id": "evil", "path": "/evil", "service": "s"});
    let res = gw
        .client
        .post(gw.admin_url("/admin/routes"))
        .json(&route)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(gw.get("/evil").await.status(), 404);
    assert_eq!(
        gw.client
            .get(gw.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}

#[tokio::test]
async fn token_is_required_when_set() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cret\"").await;
    let route = json!({"id": "t", "path": "/t", "service": "s"});
    let res = gw
        .client
        .post(gw.admin_url("/admin/routes"))
        .json(&route)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = gw
        .client
        .post(gw.admin_url("/admin/routes"))
        .bearer_auth("wrong")
        .json(&route)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        gw.get("/t").await.status(),
        404,
        "refused writes change nothing"
    );
    let res = gw
        .client
        .post(gw.admin_url("/admin/routes"))
        .bearer_auth("s3cret")
        .json(&route)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(gw.get("/t").await.status(), 200);
}

#[tokio::test]
async fn unknown_endpoint_and_wrong_method() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let res = gw
        .client
        .get(gw.admin_url("/admin/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "Endpoint not found"
    );
    let res = gw
        .client
        .put(gw.admin_url("/admin/routes"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "Method not allowed"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .service("metrics_svc", &[&up])
        .route("id = \"metrics_route\"\npath = \"/m\"\nservice = \"metrics_svc\"")
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(gw.get("/m/x").await.status(), 200);
    }
    let text = gw.metrics_text().await;
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("gateway_requests_total{")
                && l.contains("route=\"metrics_route\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no requests_total line for the route in:\n{text}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(text.contains("gateway_request_duration_seconds_bucket"));
    assert!(text.contains("gateway_upstream_duration_seconds_bucket"));
    assert!(text.contains("gateway_requests_in_flight"));
    let prom = gw
        .client
        .get(gw.admin_url("/admin/metrics/prometheus"))
        .send()
        .await
        .unwrap();
    assert!(prom.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));

    let json: Value = gw.admin_json("/admin/metrics").await;
    assert!(json["metrics"]["total_requests"].as_u64().unwrap() >= 3);
    assert!(
        json["metrics"]["services"]["metrics_svc"]["requests"]
            .as_u64()
            .unwrap()
            >= 3
    );
}

#[tokio::test]
async fn admin_health_reports_services() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let h: Value = gw.admin_json("/admin/health").await;
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["version"], gw_core::VERSION);
    assert_eq!(h["services"]["s"]["total_instances"], 1);
    assert!(h["timestamp"].as_u64().unwrap() > 0);
    assert!(h["circuit_breakers"].is_object());
}
