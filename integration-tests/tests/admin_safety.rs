//! The admin API cannot be driven from a web page: bodies must be `application/json` (415),
//! a foreign `Origin` (403) or `Host` (403, DNS rebinding) is refused before any handler runs,
//! and `admin.token = ""` is a configuration error. Requests are written as raw bytes, as a
//! browser or curl would send them.

use std::net::SocketAddr;
use std::time::Duration;

use gateway_bin::config::Config;
use integration_tests::raw::first_response;
use integration_tests::{TestGateway, Upstream};
use serde_json::Value;

/// Generous bound on one exchange (never asserted as a duration).
const WAIT: Duration = Duration::from_secs(10);

const ROUTE: &str = r#"{"id": "web", "path": "/web", "service": "safe"}"#;

async fn gateway() -> (TestGateway, Upstream) {
    let up = Upstream::echo("safe-1").await;
    let gw = TestGateway::builder()
        .raw(
            "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
        )
        .service("safe", &[&up])
        .route("id = \"base\"\npath = \"/base\"\nservice = \"safe\"")
        .start()
        .await;
    (gw, up)
}

/// Sends `head` (request line and headers, without the blank line) and `body` with a
/// `Content-Length` and `Connection: close`; returns the status and the body.
async fn exchange(addr: SocketAddr, head: &str, body: &str) -> (u16, Value) {
    let request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let res = first_response(addr, request.as_bytes(), WAIT).await;
    (
        res.status,
        serde_json::from_slice(&res.body).unwrap_or(Value::Null),
    )
}

async fn route_ids(gw: &TestGateway) -> Vec<String> {
    let admin = gw.gateway.admin_addr();
    let (status, body) = exchange(
        admin,
        &format!("GET /admin/routes HTTP/1.1\r\nHost: {admin}"),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_text_plain_post_is_refused_and_stores_nothing() {
    let (gw, _up) = gateway().await;
    let admin = gw.gateway.admin_addr();
    for content_type in [
        "Content-Type: text/plain",
        "Content-Type: application/x-www-form-urlencoded",
        "Content-Type: multipart/form-data; boundary=x",
    ] {
        let (status, body) = exchange(
            admin,
            &format!("POST /admin/routes HTTP/1.1\r\nHost: {admin}\r\n{content_type}"),
            ROUTE,
        )
        .await;
        assert_eq!(status, 415, "{content_type}: {body}");
        assert_eq!(body["error"], "Unsupported media type");
    }
    // No Content-Type at all.
    let (status, _) = exchange(
        admin,
        &format!("POST /admin/routes HTTP/1.1\r\nHost: {admin}"),
        ROUTE,
    )
    .await;
    assert_eq!(status, 415);
    assert!(!route_ids(&gw).await.contains(&"web".to_owned()));
}

#[tokio::test]
async fn a_foreign_origin_is_refused() {
    let (gw, _up) = gateway().await;
    let admin = gw.gateway.admin_addr();
    for origin in ["http://evil.example", "null", "http://localhost:1"] {
        let (status, body) = exchange(
            admin,
            &format!(
                "POST /admin/routes HTTP/1.1\r\nHost: {admin}\r\nOrigin: {origin}\r\n\
                 Content-Type: application/json"
            ),
            ROUTE,
        )
        .await;
        assert_eq!(status, 403, "{origin}: {body}");
        assert_eq!(body["error"], "Origin not allowed");
    }
    assert!(!route_ids(&gw).await.contains(&"web".to_owned()));

    // The listener's own origin is fine.
    let (status, body) = exchange(
        admin,
        &format!(
            "POST /admin/routes HTTP/1.1\r\nHost: {admin}\r\nOrigin: http://{admin}\r\n\
             Content-Type: application/json"
        ),
        ROUTE,
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_foreign_host_mints_no_token() {
    let (gw, _up) = gateway().await;
    let admin = gw.gateway.admin_addr();
    let mint = r#"{"user_id": "u1", "username": "one", "role": "admin"}"#;
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{}", admin.port()),
    ] {
        let (status, body) = exchange(
            admin,
            &format!(
                "POST /admin/tokens HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
            ),
            mint,
        )
        .await;
        assert_eq!(status, 403, "{host}: {body}");
        assert_eq!(body["error"], "Host not allowed");
        assert!(body.get("token").is_none(), "{body}");
    }
    // No Host at all (HTTP/1.0 style) is refused too.
    let (status, _) = exchange(admin, "GET /admin/health HTTP/1.0", "").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_curl_style_call_works() {
    let (gw, up) = gateway().await;
    let admin = gw.gateway.admin_addr();
    let port = admin.port();
    for host in [format!("localhost:{port}"), admin.to_string()] {
        let (status, body) = exchange(
            admin,
            &format!(
                "POST /admin/tokens HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8.5.0\r\n\
                 Accept: */*\r\nContent-Type: application/json; charset=utf-8"
            ),
            r#"{"user_id": "u1", "username": "one", "role": "user"}"#,
        )
        .await;
        assert_eq!(status, 201, "{host}: {body}");
        assert!(body["token"].is_string(), "{body}");
    }
    let (status, body) = exchange(
        admin,
        &format!(
            "POST /admin/routes HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json"
        ),
        ROUTE,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(route_ids(&gw).await.contains(&"web".to_owned()));
    assert_eq!(gw.get("/web/x").await.status(), 200);
    assert!(up.hits() > 0);
}

#[test]
fn an_empty_admin_token_is_a_configuration_error() {
    let e = Config::from_toml_str("[admin]\ntoken = \"\"\n")
        .expect_err("an empty token is refused")
        .to_string();
    assert!(e.contains("admin.token"), "{e}");
}
