//! Routing rules of docs/configuration.md and the 404 / 405 answers of docs/http-answers.md, end to end.

use integration_tests::{TestGateway, Upstream};
use serde_json::Value;

async fn body(res: reqwest::Response) -> Value {
    res.json().await.expect("JSON")
}

#[tokio::test]
async fn pattern_capture_group_becomes_upstream_path_and_query_is_kept() {
    let up = Upstream::echo("users").await;
    let gw = TestGateway::builder()
        .service("users", &[&up])
        .route(
            r#"id = "users"
pattern = "^/api/v1/users(/.*)?$"
service = "users""#,
        )
        .start()
        .await;
    let (s, b) = gw.get_json("/api/v1/users/42?x=1&y=2").await;
    assert_eq!(s, 200);
    assert_eq!(b["path"], "/42");
    assert_eq!(b["query"], "x=1&y=2");
    // Group 1 did not participate: upstream path is "/".
    let (_, b) = gw.get_json("/api/v1/users").await;
    assert_eq!(b["path"], "/");
}

#[tokio::test]
async fn pattern_without_group_sends_the_whole_path() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .service("a", &[&up])
        .route("id = \"a\"\npattern = \"^/files/[a-z]+$\"\nservice = \"a\"")
        .start()
        .await;
    let (s, b) = gw.get_json("/files/abc").await;
    assert_eq!(s, 200);
    assert_eq!(b["path"], "/files/abc");
    assert_eq!(gw.get("/files/ABC").await.status(), 404);
}

#[tokio::test]
async fn prefix_matches_on_segment_boundary_and_strip_prefix() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .service("a", &[&up])
        .route("id = \"keep\"\npath = \"/api\"\nservice = \"a\"")
        .route("id = \"strip\"\npath = \"/orders\"\nstrip_prefix = true\nservice = \"a\"")
        .start()
        .await;
    assert_eq!(gw.get_json("/api/x/y").await.1["path"], "/api/x/y");
    assert_eq!(gw.get_json("/api").await.1["path"], "/api");
    assert_eq!(
        gw.get("/apix").await.status(),
        404,
        "prefix must stop at a segment boundary"
    );
    assert_eq!(gw.get_json("/orders/7?q=1").await.1["path"], "/7");
    assert_eq!(gw.get_json("/orders").await.1["path"], "/");
}

#[tokio::test]
async fn precedence_priority_then_longest_path_then_pattern_order() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let c = Upstream::echo("c").await;
    let d = Upstream::echo("d").await;
    let gw = TestGateway::builder()
        .service("a", &[&a])
        .service("b", &[&b])
        .service("c", &[&c])
        .service("d", &[&d])
        // Added first, but a pattern: loses to any path route of equal priority.
        .route("id = \"pat1\"\npattern = \"^/shop/.*$\"\nservice = \"a\"")
        .route("id = \"pat2\"\npattern = \"^/shop/items/.*$\"\nservice = \"d\"")
        .route("id = \"short\"\npath = \"/shop\"\nservice = \"b\"")
        .route("id = \"long\"\npath = \"/shop/items\"\nservice = \"c\"")
        .route("id = \"vip\"\npattern = \"^/shop/items/vip$\"\nservice = \"d\"\npriority = 10")
        .start()
        .await;
    assert_eq!(
        gw.get_json("/shop/items/1").await.1["instance"],
        "c",
        "longest path wins"
    );
    assert_eq!(
        gw.get_json("/shop/other").await.1["instance"],
        "b",
        "path before pattern"
    );
    assert_eq!(
        gw.get_json("/shop/items/vip").await.1["instance"],
        "d",
        "priority first"
    );
}

#[tokio::test]
async fn patterns_match_in_insertion_order() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let gw = TestGateway::builder()
        .service("a", &[&a])
        .service("b", &[&b])
        .route("id = \"first\"\npattern = \"^/p/.*$\"\nservice = \"a\"")
        .route("id = \"second\"\npattern = \"^/p/x$\"\nservice = \"b\"")
        .start()
        .await;
    assert_eq!(gw.get_json("/p/x").await.1["instance"], "a");
}

#[tokio::test]
async fn unknown_path_is_404_json_with_request_id() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .service("a", &[&up])
        .route("id = \"a\"\npath = \"/a\"\nservice = \"a\"")
        .start()
        .await;
    let res = gw.get("/nowhere").await;
    assert_eq!(res.status(), 404);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(res.headers()["content-type"], "application/json");
    let b = body(res).await;
    assert_eq!(b["error"], "Route not found");
    assert_eq!(b["request_id"], id.as_str());
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .service("a", &[&up])
        .route("id = \"r1\"\npath = \"/pay\"\nservice = \"a\"\nmethods = [\"POST\"]")
        .route("id = \"r2\"\npath = \"/pay\"\nservice = \"a\"\nmethods = [\"GET\"]\nhost = \"other.example\"")
        .route("id = \"r3\"\npattern = \"^/pay.*$\"\nservice = \"a\"\nmethods = [\"PUT\"]")
        .start()
        .await;
    let res = gw.client.delete(gw.url("/pay")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    let allow = res.headers()["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("POST") && allow.contains("PUT"), "{allow}");
    assert!(
        !allow.contains("GET"),
        "a route bound to another host must not count: {allow}"
    );
    assert_eq!(body(res).await["error"], "Method not allowed");
    let res = gw.client.post(gw.url("/pay")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn host_bound_routes() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let gw = TestGateway::builder()
        .service("a", &[&a])
        .service("b", &[&b])
        .route("id = \"api\"\npath = \"/\"\nservice = \"a\"\nhost = \"api.example.com\"")
        .route("id = \"wild\"\npath = \"/\"\nservice = \"b\"\nhost = \"*.example.org\"")
        .start()
        .await;
    let get = |host: &'static str| gw.client.get(gw.url("/x")).header("host", host).send();
    let res = get("api.example.com:8080").await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["instance"], "a");
    let res = get("shop.example.org").await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["instance"], "b");
    assert_eq!(get("example.net").await.unwrap().status(), 404);
}

#[tokio::test]
async fn health_on_proxy_listener() {
    let gw = TestGateway::builder().start().await;
    let (s, b) = gw.get_json("/health").await;
    assert_eq!(s, 200);
    assert_eq!(b, serde_json::json!({"status": "healthy"}));
}
