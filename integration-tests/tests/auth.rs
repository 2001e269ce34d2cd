//! Identity through the real gateway (docs/http-answers.md, docs/operations.md, docs/admin-api.md):
//! every 401 message for exactly its cause (with `WWW-Authenticate`), 403 `Access denied` / `HTTPS
//! required`, the identity headers sent upstream, the users / tokens / API-keys admin API, and
//! revocation shared by two gateways over one Redis.

use std::time::Duration;

use deadpool_redis::redis;
use integration_tests::jwt::{sign_hs256, unix_now as now};
use integration_tests::{eventually, redis as test_redis, TestGateway, Upstream};
use serde_json::{json, Value};

const SECRET: &str = "it-auth-secret-0123456789";
const AUDIENCE: &str = "gw-tests";
/// base64url of `{"alg":"none","typ":"JWT"}`.
const NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

/// Claims of a valid token for `sub` with `role`.
fn claims(sub: &str, role: &str) -> Value {
    json!({
        "sub": sub,
        "role": role,
        "iss": "api-gateway",
        "aud": AUDIENCE,
        "iat": now(),
        "exp": now() + 600,
        "jti": format!("jti-{:016x}", fastrand::u64(..)),
    })
}

fn sign(claims: &Value) -> String {
    sign_hs256(claims, SECRET)
}

fn token(sub: &str, role: &str) -> String {
    sign(&claims(sub, role))
}

fn jwt_section(user_lookup: bool) -> String {
    format!(
        "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\nissuer = \"api-gateway\"\naudience = [\"{AUDIENCE}\"]\nuser_lookup = {user_lookup}\n"
    )
}

fn redis_store(prefix: &str) -> String {
    format!(
        "[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        test_redis::shared_url()
    )
}

/// A gateway with one route per feature under test. `head` adds `[store]`/`[server]` etc.
async fn gateway(up: &Upstream, user_lookup: bool, head: &str) -> TestGateway {
    TestGateway::builder()
        .raw(&jwt_section(user_lookup))
        .raw(head)
        .service("s", &[up])
        .route("id = \"open\"\npath = \"/open\"\nservice = \"s\"")
        .route("id = \"jwt\"\npath = \"/jwt\"\nservice = \"s\"\nauth_required = true")
        .route(
            "id = \"key\"\npath = \"/key\"\nservice = \"s\"\nauth_required = true\nauth = \"api_key\"",
        )
        .route("id = \"either\"\npath = \"/either\"\nservice = \"s\"\nauth_required = true\nauth = \"jwt_or_api_key\"")
        .route("id = \"admins\"\npath = \"/admins\"\nservice = \"s\"\nauth_required = true\nsecurity = { allowed_roles = [\"admin\"] }")
        .route("id = \"perms\"\npath = \"/perms\"\nservice = \"s\"\nauth_required = true\nsecurity = { required_permissions = [\"read\", \"write\"] }")
        .route("id = \"users\"\npath = \"/users\"\nservice = \"s\"\nauth_required = true\nsecurity = { resource_check = \"self\" }")
        .route("id = \"orders\"\npath = \"/orders\"\nservice = \"s\"\nauth_required = true\nsecurity = { resource_check = { owner_key = \"order:{id}:owner\" } }")
        .route("id = \"secure\"\npath = \"/secure\"\nservice = \"s\"\nauth_required = true\nsecurity = { require_https = true }")
        .start()
        .await
}

async fn get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = gw.client.get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

async fn get_bearer(gw: &TestGateway, path: &str, token: &str) -> reqwest::Response {
    get(gw, path, &[("authorization", &format!("Bearer {token}"))]).await
}

/// Asserts a gateway error answer and returns its headers.
async fn refused(res: reqwest::Response, status: u16, message: &str) -> reqwest::header::HeaderMap {
    assert_eq!(res.status().as_u16(), status, "expected {status} {message}");
    let headers = res.headers().clone();
    let body: Value = res.json().await.expect("JSON error body");
    assert_eq!(body["error"], message, "body: {body}");
    assert!(
        body["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "request_id missing: {body}"
    );
    headers
}

/// A 401 with `message` and a `WWW-Authenticate` header (whose value is returned).
async fn unauthorized(res: reqwest::Response, message: &str) -> String {
    let h = refused(res, 401, message).await;
    let challenge = h
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("401 {message} without WWW-Authenticate"));
    challenge.to_str().unwrap().to_string()
}

/// 200 from the echo upstream; its JSON (with the headers the upstream saw).
async fn passed(res: reqwest::Response) -> Value {
    assert_eq!(
        res.status(),
        200,
        "expected the request to reach the upstream"
    );
    res.json().await.expect("echo JSON")
}

async fn admin(
    gw: &TestGateway,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    gw.admin(method, path, body.as_ref()).await
}

async fn redis_conn() -> deadpool_redis::Connection {
    test_redis::pool(&test_redis::shared_url())
        .get()
        .await
        .expect("redis connection")
}

// ---------------------------------------------------------------------------------------
// 401: the Authorization header

#[tokio::test]
async fn missing_and_malformed_authorization_header() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, false, "").await;

    let ch = unauthorized(get(&gw, "/jwt", &[]).await, "Missing authorization header").await;
    assert!(ch.starts_with("Bearer"), "{ch}");
    for bad in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Token abc",
        "Bearer a b",
    ] {
        let res = get(&gw, "/jwt", &[("authorization", bad)]).await;
        unauthorized(res, "Invalid authorization header format").await;
    }
    assert_eq!(up.hits(), 0, "no refused request reaches the upstream");
    // The positive control: the same route with a good token.
    passed(get_bearer(&gw, "/jwt", &token("u1", "user")).await).await;
    assert_eq!(up.hits(), 1);
}

// ---------------------------------------------------------------------------------------
// 401: the token itself

#[tokio::test]
async fn invalid_tokens_bad_signature_alg_none_wrong_audience_garbage() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, false, "").await;

    let good = claims("u1", "user");
    passed(get_bearer(&gw, "/jwt", &sign(&good)).await).await;

    // Signed with another secret.
    let other = sign_hs256(&good, "not-the-gateway-secret");
    unauthorized(get_bearer(&gw, "/jwt", &other).await, "Invalid token").await;

    // alg none: the payload of a good token, no signature.
    let payload = sign(&good).split('.').nth(1).unwrap().to_string();
    for none in [
        format!("{NONE_HEADER}.{payload}."),
        format!("{NONE_HEADER}.{payload}"),
    ] {
        unauthorized(get_bearer(&gw, "/jwt", &none).await, "Invalid token").await;
    }

    // Wrong audience, and no audience at all (one is configured).
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    unauthorized(
        get_bearer(&gw, "/jwt", &sign(&wrong_aud)).await,
        "Invalid token",
    )
    .await;
    let mut no_aud = good.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    unauthorized(
        get_bearer(&gw, "/jwt", &sign(&no_aud)).await,
        "Invalid token",
    )
    .await;

    // Not a JWT.
    let ch = unauthorized(
        get_bearer(&gw, "/jwt", "abc.def.ghi").await,
        "Invalid token",
    )
    .await;
    assert!(ch.contains("invalid_token"), "{ch}");
    unauthorized(get_bearer(&gw, "/jwt", "not-a-jwt").await, "Invalid token").await;
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn expired_token_and_wrong_issuer() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, false, "").await;

    let mut expired = claims("u1", "user");
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    unauthorized(
        get_bearer(&gw, "/jwt", &sign(&expired)).await,
        "Token expired",
    )
    .await;

    let mut issuer = claims("u1", "user");
    issuer["iss"] = json!("somebody-else");
    unauthorized(
        get_bearer(&gw, "/jwt", &sign(&issuer)).await,
        "Invalid issuer",
    )
    .await;

    // A bad signature on an expired token is still "Invalid token", not "Token expired".
    let forged = sign_hs256(&expired, "not-the-gateway-secret");
    unauthorized(get_bearer(&gw, "/jwt", &forged).await, "Invalid token").await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn minted_token_works_and_revoked_token_is_refused() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, false, "").await;

    let (s, minted) = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/tokens",
        Some(json!({"user_id": "u7", "username": "seven", "role": "user"})),
    )
    .await;
    assert_eq!(s, 201, "{minted}");
    let tok = minted["token"].as_str().expect("token").to_string();
    assert!(minted["expires_at"].as_u64().unwrap() > now());

    let body = passed(get_bearer(&gw, "/jwt", &tok).await).await;
    assert_eq!(body["headers"]["x-user-id"], "u7");
    assert_eq!(body["headers"]["x-user-role"], "user");

    let (s, b) = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/tokens/revoke",
        Some(json!({ "token": tok })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["message"], "Token revoked");
    let ch = unauthorized(
        get_bearer(&gw, "/jwt", &tok).await,
        "Token has been revoked",
    )
    .await;
    assert!(ch.starts_with("Bearer"), "{ch}");

    // Another token of the same user is not affected.
    passed(get_bearer(&gw, "/jwt", &token("u7", "user")).await).await;
}

#[tokio::test]
async fn revocation_is_seen_by_a_second_gateway_sharing_redis() {
    let up = Upstream::echo("a").await;
    let prefix = test_redis::unique_prefix("auth_revoke_two");
    let gw1 = gateway(&up, false, &redis_store(&prefix)).await;
    let gw2 = gateway(&up, false, &redis_store(&prefix)).await;

    let (s, minted) = admin(
        &gw1,
        reqwest::Method::POST,
        "/admin/tokens",
        Some(json!({"user_id": "shared", "role": "user"})),
    )
    .await;
    assert_eq!(s, 201, "{minted}");
    let tok = minted["token"].as_str().unwrap().to_string();
    passed(get_bearer(&gw2, "/jwt", &tok).await).await;

    let (s, _) = admin(
        &gw1,
        reqwest::Method::POST,
        "/admin/tokens/revoke",
        Some(json!({ "token": tok })),
    )
    .await;
    assert_eq!(s, 200);
    let seen = eventually(Duration::from_secs(1), || async {
        get_bearer(&gw2, "/jwt", &tok).await.status() == 401
    })
    .await;
    assert!(
        seen,
        "gateway 2 did not see the revocation within one second"
    );
    unauthorized(
        get_bearer(&gw2, "/jwt", &tok).await,
        "Token has been revoked",
    )
    .await;
    unauthorized(
        get_bearer(&gw1, "/jwt", &tok).await,
        "Token has been revoked",
    )
    .await;

    // The record sits under the prefix, as docs/operations.md, "Store layout" lays it out.
    let mut conn = redis_conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}blacklist:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
}

// ---------------------------------------------------------------------------------------
// 401: user lookup, and the users API

#[tokio::test]
async fn user_lookup_not_found_inactive_and_users_api() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, true, "").await;
    // The token says "user"; with user_lookup the record's role wins.
    let tok = token("u42", "user");

    unauthorized(get_bearer(&gw, "/jwt", &tok).await, "User not found").await;
    let (s, b) = admin(&gw, reqwest::Method::GET, "/admin/users/u42", None).await;
    assert_eq!((s, b["error"].as_str()), (404, Some("User not found")));

    let record = json!({"username": "answer", "email": "a@example.com", "role": "editor", "status": "active", "permissions": ["read"]});
    let (s, b) = admin(&gw, reqwest::Method::PUT, "/admin/users/u42", Some(record)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["user"]["user_id"], "u42");
    assert_eq!(b["user"]["role"], "editor");
    let (s, b) = admin(&gw, reqwest::Method::GET, "/admin/users/u42", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["user"]["username"], "answer");
    assert_eq!(b["user"]["email"], "a@example.com");
    assert_eq!(b["user"]["status"], "active");
    assert_eq!(b["user"]["permissions"], json!(["read"]));

    let body = passed(get_bearer(&gw, "/jwt", &tok).await).await;
    assert_eq!(body["headers"]["x-user-id"], "u42");
    assert_eq!(body["headers"]["x-user-role"], "editor");

    let suspended = json!({"username": "answer", "email": "a@example.com", "role": "editor", "status": "suspended", "permissions": []});
    let (s, _) = admin(
        &gw,
        reqwest::Method::PUT,
        "/admin/users/u42",
        Some(suspended),
    )
    .await;
    assert_eq!(s, 200);
    unauthorized(
        get_bearer(&gw, "/jwt", &tok).await,
        "User account is not active",
    )
    .await;

    let (s, b) = admin(&gw, reqwest::Method::DELETE, "/admin/users/u42", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["message"], "User deleted");
    let (s, b) = admin(&gw, reqwest::Method::DELETE, "/admin/users/u42", None).await;
    assert_eq!((s, b["error"].as_str()), (404, Some("User not found")));
    unauthorized(get_bearer(&gw, "/jwt", &tok).await, "User not found").await;
}

#[tokio::test]
async fn user_records_live_in_redis_under_the_prefix() {
    let up = Upstream::echo("a").await;
    let prefix = test_redis::unique_prefix("auth_users_redis");
    let gw = gateway(&up, true, &redis_store(&prefix)).await;
    let tok = token("r1", "user");
    unauthorized(get_bearer(&gw, "/jwt", &tok).await, "User not found").await;

    // Written directly as docs/operations.md, "Store layout" lays it out (another tool, or the seed's data).
    let mut conn = redis_conn().await;
    let rec = json!({"user_id": "r1", "username": "r", "email": "r@example.com", "role": "admin", "status": "active", "permissions": []});
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}user:r1"))
        .arg(rec.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    let body = passed(get_bearer(&gw, "/jwt", &tok).await).await;
    assert_eq!(body["headers"]["x-user-role"], "admin");

    let rec = json!({"user_id": "r1", "username": "r", "email": "r@example.com", "role": "admin", "status": "banned", "permissions": []});
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}user:r1"))
        .arg(rec.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    unauthorized(
        get_bearer(&gw, "/jwt", &tok).await,
        "User account is not active",
    )
    .await;

    // And the admin API writes there too.
    let (s, _) = admin(
        &gw,
        reqwest::Method::PUT,
        "/admin/users/r2",
        Some(json!({"username": "r2", "email": "r2@example.com", "role": "user", "status": "active", "permissions": []})),
    )
    .await;
    assert_eq!(s, 200);
    let stored: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}user:r2"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let stored: Value = serde_json::from_str(&stored.expect("user:r2 written")).unwrap();
    assert_eq!(stored["status"], "active");
    assert_eq!(stored["role"], "user");
}

// ---------------------------------------------------------------------------------------
// 401: API keys, and the API-keys API

#[tokio::test]
async fn api_keys_missing_invalid_created_and_revoked() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, false, "").await;

    let ch = unauthorized(get(&gw, "/key", &[]).await, "Missing API key").await;
    assert!(ch.starts_with("ApiKey"), "{ch}");
    // A bearer token is no API key.
    let res = get_bearer(&gw, "/key", &token("u1", "user")).await;
    unauthorized(res, "Missing API key").await;
    unauthorized(
        get(&gw, "/key", &[("x-api-key", "gwk_nope")]).await,
        "Invalid API key",
    )
    .await;

    let (s, created) = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/api-keys",
        Some(json!({"user_id": "svc1", "username": "billing", "role": "service", "permissions": ["read"]})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let key = created["key"].as_str().expect("key").to_string();
    let key_id = created["key_id"].as_str().expect("key_id").to_string();
    assert_ne!(key, key_id);

    let body = passed(get(&gw, "/key", &[("x-api-key", &key)]).await).await;
    assert_eq!(body["headers"]["x-user-id"], "svc1");
    assert_eq!(body["headers"]["x-user-role"], "service");

    let (s, b) = admin(
        &gw,
        reqwest::Method::DELETE,
        &format!("/admin/api-keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    unauthorized(
        get(&gw, "/key", &[("x-api-key", &key)]).await,
        "Invalid API key",
    )
    .await;
    let (s, _) = admin(
        &gw,
        reqwest::Method::DELETE,
        &format!("/admin/api-keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn api_key_expired_and_not_active() {
    let up = Upstream::echo("a").await;
    let prefix = test_redis::unique_prefix("auth_api_keys");
    let gw = gateway(&up, false, &redis_store(&prefix)).await;

    let (s, created) = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/api-keys",
        Some(json!({"user_id": "old", "role": "service", "permissions": [], "expires_at": now() - 60})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let expired = created["key"].as_str().unwrap().to_string();
    let ch = unauthorized(
        get(&gw, "/key", &[("x-api-key", &expired)]).await,
        "API key has expired",
    )
    .await;
    assert!(ch.starts_with("ApiKey"), "{ch}");

    // A key that expires later works.
    let (_, created) = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/api-keys",
        Some(json!({"user_id": "fresh", "role": "service", "permissions": [], "expires_at": now() + 3600})),
    )
    .await;
    let fresh = created["key"].as_str().unwrap().to_string();
    passed(get(&gw, "/key", &[("x-api-key", &fresh)]).await).await;

    // Records written straight to Redis as docs/operations.md, "Store layout" lays them out: api_key:{sha256 hex}.
    let mut conn = redis_conn().await;
    let put = |key: &str, status: &str| {
        (
            format!("{prefix}api_key:{}", sha256_hex(key.as_bytes())),
            json!({"key_id": format!("legacy-{status}"), "user_id": "legacy", "username": "l", "role": "service", "permissions": [], "status": status, "expires_at": null}).to_string(),
        )
    };
    for (k, v) in [
        put("legacy-active-key", "active"),
        put("legacy-disabled-key", "disabled"),
    ] {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg(v)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let body = passed(get(&gw, "/key", &[("x-api-key", "legacy-active-key")]).await).await;
    assert_eq!(body["headers"]["x-user-id"], "legacy");
    let ch = unauthorized(
        get(&gw, "/key", &[("x-api-key", "legacy-disabled-key")]).await,
        "API key is not active",
    )
    .await;
    assert!(ch.starts_with("ApiKey"), "{ch}");
}

#[tokio::test]
async fn jwt_or_api_key_takes_either() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, false, "").await;
    let res = get(&gw, "/either", &[]).await;
    let h = refused(res, 401, "Missing authorization header").await;
    let challenges: Vec<&str> = h
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(!challenges.is_empty());
    passed(get_bearer(&gw, "/either", &token("u1", "user")).await).await;
    unauthorized(
        get(&gw, "/either", &[("x-api-key", "gwk_nope")]).await,
        "Invalid API key",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// 403

#[tokio::test]
async fn roles_and_permissions() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, false, "").await;

    let h = refused(
        get_bearer(&gw, "/admins", &token("u1", "user")).await,
        403,
        "Access denied",
    )
    .await;
    assert!(h.get("www-authenticate").is_none());
    passed(get_bearer(&gw, "/admins", &token("u1", "admin")).await).await;
    // No role claim at all.
    let mut no_role = claims("u1", "x");
    no_role.as_object_mut().unwrap().remove("role");
    refused(
        get_bearer(&gw, "/admins", &sign(&no_role)).await,
        403,
        "Access denied",
    )
    .await;

    let with_perms = |perms: Value| {
        let mut c = claims("u1", "user");
        c["permissions"] = perms;
        sign(&c)
    };
    refused(
        get_bearer(&gw, "/perms", &token("u1", "user")).await,
        403,
        "Access denied",
    )
    .await;
    refused(
        get_bearer(&gw, "/perms", &with_perms(json!(["read"]))).await,
        403,
        "Access denied",
    )
    .await;
    passed(
        get_bearer(
            &gw,
            "/perms",
            &with_perms(json!(["write", "read", "delete"])),
        )
        .await,
    )
    .await;

    // Authentication comes before authorization.
    unauthorized(
        get(&gw, "/admins", &[]).await,
        "Missing authorization header",
    )
    .await;
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn resource_check_self_with_admin_bypass() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, false, "").await;
    let u1 = token("u1", "user");

    passed(get_bearer(&gw, "/users/u1", &u1).await).await;
    refused(
        get_bearer(&gw, "/users/u2", &u1).await,
        403,
        "Access denied",
    )
    .await;
    passed(get_bearer(&gw, "/users/u2", &token("boss", "admin")).await).await;
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let res = gw
            .client
            .request(method.clone(), gw.url("/users/u2"))
            .bearer_auth(&u1)
            .send()
            .await
            .unwrap();
        refused(res, 403, "Access denied").await;
        let res = gw
            .client
            .request(method, gw.url("/users/u1"))
            .bearer_auth(&u1)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    // POST is checked too (every method is).
    let res = gw
        .client
        .post(gw.url("/users/u2"))
        .bearer_auth(&u1)
        .send()
        .await
        .unwrap();
    refused(res, 403, "Access denied").await;
}

#[tokio::test]
async fn resource_check_owner_key_reads_the_prefixed_store_key() {
    let up = Upstream::echo("a").await;
    let prefix = test_redis::unique_prefix("auth_owner_key");
    let gw = gateway(&up, false, &redis_store(&prefix)).await;
    let mut conn = redis_conn().await;
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}order:42:owner"))
        .arg("u1")
        .query_async(&mut conn)
        .await
        .unwrap();
    // The unprefixed key says u2: the gateway must not read it.
    let unprefixed = format!("order:{}:owner", fastrand::u64(..));
    let _: () = redis::cmd("SET")
        .arg(&unprefixed)
        .arg("u2")
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .unwrap();

    passed(get_bearer(&gw, "/orders/42", &token("u1", "user")).await).await;
    refused(
        get_bearer(&gw, "/orders/42", &token("u2", "user")).await,
        403,
        "Access denied",
    )
    .await;
    // No owner recorded: nobody owns it (not even an admin, unlike "self").
    refused(
        get_bearer(&gw, "/orders/43", &token("u1", "user")).await,
        403,
        "Access denied",
    )
    .await;
    let id = unprefixed.split(':').nth(1).unwrap().to_string();
    refused(
        get_bearer(&gw, &format!("/orders/{id}"), &token("u2", "user")).await,
        403,
        "Access denied",
    )
    .await;
}

#[tokio::test]
async fn https_required_on_plain_http_unless_a_trusted_proxy_says_https() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, false, "").await;
    let tok = token("u1", "user");
    refused(
        get_bearer(&gw, "/secure", &tok).await,
        403,
        "HTTPS required",
    )
    .await;
    // Checked before authentication.
    refused(get(&gw, "/secure", &[]).await, 403, "HTTPS required").await;
    // An untrusted peer's X-Forwarded-Proto counts for nothing.
    let res = get(
        &gw,
        "/secure",
        &[
            ("authorization", &format!("Bearer {tok}")),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    refused(res, 403, "HTTPS required").await;
    assert_eq!(up.hits(), 0);

    let trusted = gateway(
        &up,
        false,
        "[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    )
    .await;
    let res = get(
        &trusted,
        "/secure",
        &[
            ("authorization", &format!("Bearer {tok}")),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    passed(res).await;
    refused(
        get_bearer(&trusted, "/secure", &tok).await,
        403,
        "HTTPS required",
    )
    .await;
    let res = get(
        &trusted,
        "/secure",
        &[
            ("authorization", &format!("Bearer {tok}")),
            ("x-forwarded-proto", "http"),
        ],
    )
    .await;
    refused(res, 403, "HTTPS required").await;
}

// ---------------------------------------------------------------------------------------
// Identity headers and open routes

#[tokio::test]
async fn identity_headers_reach_the_upstream_and_client_ones_do_not() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, false, "").await;
    let tok = token("u9", "editor");
    let forged = [
        ("x-user-id", "evil"),
        ("x-user-role", "admin"),
        ("x-user-permissions", "all"),
    ];

    let mut h = forged.to_vec();
    let bearer = format!("Bearer {tok}");
    h.push(("authorization", &bearer));
    let body = passed(get(&gw, "/jwt", &h).await).await;
    assert_eq!(body["headers"]["x-user-id"], "u9");
    assert_eq!(body["headers"]["x-user-role"], "editor");
    assert!(
        body["headers"].get("x-user-permissions").is_none(),
        "{body}"
    );

    // A route without authentication: none of the client's X-User-* reaches the upstream.
    let body = passed(get(&gw, "/open", &forged).await).await;
    for (k, _) in forged {
        assert!(
            body["headers"].get(k).is_none(),
            "{k} reached the upstream: {body}"
        );
    }
    // Not even with a valid token: no authentication ran, so no identity.
    let body = passed(get(&gw, "/open", &h).await).await;
    assert!(body["headers"].get("x-user-id").is_none(), "{body}");
}

#[tokio::test]
async fn a_route_without_auth_required_needs_no_token() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, true, "").await;
    passed(get(&gw, "/open/x", &[]).await).await;
    // A broken Authorization header is not looked at either.
    passed(get(&gw, "/open/x", &[("authorization", "Bearer garbage")]).await).await;
    passed(get(&gw, "/open/x", &[("authorization", "Basic Zm9vOmJhcg==")]).await).await;
    // While the authenticated route next to it refuses.
    unauthorized(get(&gw, "/jwt", &[]).await, "Missing authorization header").await;
    assert_eq!(up.hits(), 3);
}

// ---------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), to write API-key records under `api_key:{sha256 hex}`.

fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in chunk.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [
                t1.wrapping_add(t2),
                v[0],
                v[1],
                v[2],
                v[3].wrapping_add(t1),
                v[4],
                v[5],
                v[6],
            ];
        }
        for (a, b) in h.iter_mut().zip(v) {
            *a = a.wrapping_add(b);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[test]
fn sha256_helper_matches_the_standard_vectors() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
