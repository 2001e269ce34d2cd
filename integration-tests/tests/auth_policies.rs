//! Token lifetimes and ownership checks on the wire: a revocation that lasts through the
//! leeway, `exp` exclusive, a future `iat`, and `resource_check` bound to a path segment for
//! every method. Every request is written as raw bytes.

use std::net::SocketAddr;
use std::time::Duration;

use integration_tests::jwt::{sign_hs256, unix_now as now};
use integration_tests::raw::{raw_exchange_with, Exchange, RawResponse};
use integration_tests::{wait_until, TestGateway, Upstream};
use serde_json::{json, Value};

const SECRET: &str = "it-policies-secret-0123456789";

fn sign(claims: &Value) -> String {
    sign_hs256(claims, SECRET)
}

fn token(sub: &str, exp: u64) -> String {
    sign(&json!({
        "sub": sub, "iss": "api-gateway", "exp": exp,
        "jti": format!("jti-{:016x}", fastrand::u64(..)),
    }))
}

async fn gateway(up: &Upstream, leeway: u64) -> TestGateway {
    TestGateway::builder()
        .raw(&format!(
            "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\nissuer = \"api-gateway\"\nuser_lookup = false\nleeway_secs = {leeway}\n"
        ))
        .service("s", &[up])
        .route("id = \"jwt\"\npath = \"/jwt\"\nservice = \"s\"\nauth_required = true")
        .route("id = \"users\"\npath = \"/users\"\nservice = \"s\"\nauth_required = true\nsecurity = { resource_check = \"self\" }")
        .route("id = \"deep\"\npath = \"/api/users\"\nservice = \"s\"\nauth_required = true\nsecurity = { resource_check = { self_segment = 3 } }")
        .start()
        .await
}

/// One request on its own connection, written as raw bytes.
async fn send(addr: SocketAddr, method: &str, path: &str, token: &str, body: &str) -> RawResponse {
    let wire = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let how = Exchange {
        head_answers: vec![method == "HEAD"],
        ..Exchange::default()
    };
    let answer = raw_exchange_with(addr, wire.as_bytes(), &how).await;
    answer
        .single()
        .unwrap_or_else(|| panic!("one response: {}", answer.summary()))
        .clone()
}

fn error_of(res: &RawResponse) -> String {
    let v: Value = serde_json::from_slice(&res.body).unwrap_or(Value::Null);
    v["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_revoked_token_stays_refused_through_the_leeway() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, 10).await;
    let proxy = gw.gateway.proxy_addr();
    // Past its exp already, inside the 10 s leeway: accepted.
    let exp = now() - 1;
    let tok = token("alice", exp);
    assert_eq!(send(proxy, "GET", "/jwt", &tok, "").await.status, 200);
    let body = json!({ "token": tok }).to_string();
    let res = send(
        gw.gateway.admin_addr(),
        "POST",
        "/admin/tokens/revoke",
        "",
        &body,
    )
    .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let res = send(proxy, "GET", "/jwt", &tok, "").await;
    assert_eq!(
        (res.status, error_of(&res).as_str()),
        (401, "Token has been revoked")
    );
    // Wait (bounded) until the wall clock is 2 s past exp: still inside the leeway.
    wait_until(
        Duration::from_secs(30),
        "the wall clock 2 s past exp",
        || now() >= exp + 3,
    )
    .await;
    let res = send(proxy, "GET", "/jwt", &tok, "").await;
    assert_eq!(
        (res.status, error_of(&res).as_str()),
        (401, "Token has been revoked"),
        "the revocation must last until exp + leeway"
    );
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn exp_is_exclusive_and_a_future_iat_is_refused() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, 0).await;
    let proxy = gw.gateway.proxy_addr();
    // exp = now: no longer valid (RFC 7519: "on or after").
    let res = send(proxy, "GET", "/jwt", &token("alice", now()), "").await;
    assert_eq!(
        (res.status, error_of(&res).as_str()),
        (401, "Token expired")
    );
    let future = sign(&json!({
        "sub": "alice", "iss": "api-gateway", "exp": now() + 3600, "iat": now() + 600,
    }));
    let res = send(proxy, "GET", "/jwt", &future, "").await;
    assert_eq!(
        (res.status, error_of(&res).as_str()),
        (401, "Invalid token")
    );
    let ok = sign(&json!({
        "sub": "alice", "iss": "api-gateway", "exp": now() + 3600, "iat": now(),
    }));
    assert_eq!(send(proxy, "GET", "/jwt", &ok, "").await.status, 200);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn resource_check_self_covers_every_method_at_its_segment() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, 0).await;
    let proxy = gw.gateway.proxy_addr();
    let alice = token("alice", now() + 600);
    for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
        let res = send(proxy, method, "/users/bob", &alice, "{}").await;
        assert_eq!(res.status, 403, "{method} on bob's resource");
        let res = send(proxy, method, "/users/alice", &alice, "{}").await;
        assert_eq!(res.status, 200, "{method} on her own resource");
    }
    // Only the declared segment names the owner.
    let res = send(proxy, "GET", "/users/bob/alice", &alice, "").await;
    assert_eq!(
        (res.status, error_of(&res).as_str()),
        (403, "Access denied")
    );
    assert_eq!(
        send(proxy, "GET", "/users/alice/orders", &alice, "")
            .await
            .status,
        200
    );
    // A method the check cannot judge is refused.
    assert_eq!(
        send(proxy, "PROPFIND", "/users/alice", &alice, "")
            .await
            .status,
        403
    );
    // An explicit position.
    assert_eq!(
        send(proxy, "PATCH", "/api/users/alice", &alice, "{}")
            .await
            .status,
        200
    );
    assert_eq!(
        send(proxy, "PATCH", "/api/users/bob", &alice, "{}")
            .await
            .status,
        403
    );
    assert_eq!(
        send(proxy, "GET", "/api/users/bob/alice", &alice, "")
            .await
            .status,
        403
    );
}

/// Behind a trusted proxy, the scheme is the one the proxy appended to `X-Forwarded-Proto`
/// (the right-most value), not the one the client wrote first.
#[tokio::test]
async fn require_https_believes_the_trusted_proxys_forwarded_proto() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .raw("[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n")
        .service("s", &[&up])
        .route("id = \"secure\"\npath = \"/secure\"\nservice = \"s\"\nsecurity = { require_https = true }")
        .start()
        .await;
    let send = |xfp: &'static str| {
        let wire = format!(
            "GET /secure HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: {xfp}\r\nConnection: close\r\n\r\n"
        );
        let addr = gw.gateway.proxy_addr();
        async move { raw_exchange_with(addr, wire.as_bytes(), &Exchange::default()).await }
    };
    // The client claimed https; the proxy appended what it saw: http.
    let answer = send("https, http").await;
    assert_eq!(answer.statuses(), [403], "{}", answer.summary());
    let answer = send("http, https").await;
    assert_eq!(answer.statuses(), [200], "{}", answer.summary());
    assert_eq!(up.hits(), 1);
}
