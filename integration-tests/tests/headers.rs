//! Headers of docs/http-answers.md: request id, gateway headers, forwarded headers, hop-by-hop,
//! client X-User-*, per-route add/remove.

use integration_tests::{TestGateway, Upstream};
use serde_json::Value;

async fn gateway(up: &Upstream, server: &str) -> TestGateway {
    TestGateway::builder()
        .raw(server)
        .service("s", &[up])
        .route(
            r#"id = "r"
path = "/"
service = "s"
headers = { request = { add = { "x-env" = "prod" }, remove = ["x-drop-me"] }, response = { add = { "x-served-by" = "gw" }, remove = ["x-upstream"] } }"#,
        )
        .start()
        .await
}

#[tokio::test]
async fn request_id_is_generated_and_the_same_upstream_and_downstream() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let res = gw.get("/x").await;
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!id.is_empty());
    assert!(res.headers().contains_key("x-gateway"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["headers"]["x-request-id"], id.as_str());
    assert_eq!(body["headers"]["x-gateway-version"], gw_core::VERSION);
}

#[tokio::test]
async fn valid_client_request_id_is_kept_invalid_replaced() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let res = gw
        .client
        .get(gw.url("/x"))
        .header("x-request-id", "abc.DEF-1:2_3")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc.DEF-1:2_3");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["headers"]["x-request-id"], "abc.DEF-1:2_3");
    let res = gw
        .client
        .get(gw.url("/x"))
        .header("x-request-id", "bad id!")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "bad id!");
}

#[tokio::test]
async fn forwarded_for_replaced_unless_peer_is_trusted() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let res = gw
        .client
        .get(gw.url("/x"))
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .header("host", "shop.example")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["headers"]["x-forwarded-for"], "127.0.0.1",
        "untrusted peer: spoofed value dropped"
    );
    assert_eq!(body["headers"]["x-forwarded-proto"], "http");
    assert_eq!(body["headers"]["x-forwarded-host"], "shop.example");

    let trusted = gateway(
        &up,
        "[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]",
    )
    .await;
    let res = trusted
        .client
        .get(trusted.url("/x"))
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["headers"]["x-forwarded-for"], "1.2.3.4, 127.0.0.1");
    assert_eq!(body["headers"]["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn hop_by_hop_and_client_user_headers_are_not_forwarded() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let res = gw
        .client
        .get(gw.url("/x"))
        .header("connection", "x-secret-hop")
        .header("x-secret-hop", "1")
        .header("proxy-authorization", "Basic Zm9v")
        .header("x-user-id", "admin")
        .header("x-user-role", "admin")
        .header("x-keep", "yes")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let h = &body["headers"];
    assert!(
        h.get("x-secret-hop").is_none(),
        "header named in Connection must go: {h}"
    );
    assert!(h.get("proxy-authorization").is_none());
    assert!(
        h.get("x-user-id").is_none(),
        "client X-User-ID must never pass"
    );
    assert!(h.get("x-user-role").is_none());
    assert_eq!(h["x-keep"], "yes");
}

#[tokio::test]
async fn route_header_rules_apply_both_ways() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let res = gw
        .client
        .get(gw.url("/x"))
        .header("x-drop-me", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-served-by"], "gw");
    assert!(
        res.headers().get("x-upstream").is_none(),
        "response remove rule"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["headers"]["x-env"], "prod");
    assert!(body["headers"].get("x-drop-me").is_none());
}

/// The values of `name` the upstream received, in order (every line, repeats included).
fn received(body: &Value, name: &str) -> Vec<String> {
    body["header_list"]
        .as_array()
        .expect("header_list")
        .iter()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().unwrap().to_string())
        .collect()
}

/// Without per-route request rules the gateway writes its fields straight into the HTTP/1.1
/// head: what the client sent under those names must be gone, not sent twice.
#[tokio::test]
async fn gateway_fields_replace_the_clients_exactly_once() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::catch_all(&up).await;
    let res = gw
        .client
        .get(gw.url("/x"))
        .header("host", "shop.example")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("x-gateway-version", "0.0.0-spoofed")
        .header("x-request-id", "bad id!")
        .header("x-user-id", "admin")
        .header("x-keep", "yes")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id, "bad id!");
    let body: Value = res.json().await.unwrap();
    assert_eq!(received(&body, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(received(&body, "x-forwarded-proto"), ["http"]);
    assert_eq!(received(&body, "x-forwarded-host"), ["shop.example"]);
    assert_eq!(received(&body, "x-gateway-version"), [gw_core::VERSION]);
    assert_eq!(received(&body, "x-request-id"), [id]);
    assert_eq!(received(&body, "host"), ["shop.example"]);
    assert!(received(&body, "x-user-id").is_empty());
    assert_eq!(received(&body, "x-keep"), ["yes"]);

    // A valid client id is kept, and sent once.
    let res = gw
        .client
        .get(gw.url("/x"))
        .header("x-request-id", "client-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-id-1");
    let body: Value = res.json().await.unwrap();
    assert_eq!(received(&body, "x-request-id"), ["client-id-1"]);
    assert_eq!(received(&body, "x-forwarded-for"), ["127.0.0.1"]);
}
