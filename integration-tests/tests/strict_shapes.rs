//! Documented shapes only: a list where the admin API or the configuration file documents a
//! table/object is refused (400, or a configuration error naming the key) and stores
//! nothing; and a user record read from the admin API can be written back as it is.
//!
//! The admin requests are written as raw HTTP/1.1 bytes, as a client sends them. Routes read
//! back from the shared Redis state are held to the same shape.

use std::net::SocketAddr;
use std::time::Duration;

use gateway_bin::config::Config;
use integration_tests::raw::first_response;
use integration_tests::{eventually, redis, TestGateway, Upstream};
use serde_json::{json, Value};

/// One request on its own connection; the status and the JSON body of the answer.
async fn raw(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let res = first_response(addr, request.as_bytes(), Duration::from_secs(30)).await;
    let json = if res.body.is_empty() {
        Value::Null
    } else {
        res.json()
    };
    (res.status, json)
}

async fn gateway(up: &Upstream) -> TestGateway {
    TestGateway::builder()
        .service("s", &[up])
        .route("id = \"base\"\npath = \"/base\"\nservice = \"s\"")
        .start()
        .await
}

/// A route body with one extra key of the given value.
fn route_with(id: &str, key: &str, value: Value) -> String {
    let mut route = json!({"id": id, "path": format!("/{id}"), "service": "s"});
    route[key] = value;
    route.to_string()
}

#[tokio::test]
async fn a_list_for_a_route_table_is_refused_and_nothing_is_stored() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    let admin = gw.gateway.admin_addr();
    let (_, before) = raw(admin, "GET", "/admin/routes", "").await;

    let cases = [
        ("timeout", json!([1, 2, 3]), "TimeoutConfig"),
        ("retry", json!([2, 0.5]), "RetryConfig"),
        ("rate_limit", json!([60, 10]), "Limit"),
        ("security", json!([true, [], [], null]), "SecurityConfig"),
        ("headers", json!([{}, {}]), "HeadersConfig"),
        ("headers", json!({"request": [{}, []]}), "HeaderRulesConfig"),
    ];
    for (n, (key, value, name)) in cases.into_iter().enumerate() {
        let id = format!("bad{n}");
        let body = route_with(&id, key, value);
        let (status, answer) = raw(admin, "POST", "/admin/routes", &body).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        let want =
            format!("Invalid route configuration: invalid type: sequence, expected struct {name}");
        assert_eq!(answer["error"], want.as_str(), "{body}");

        let (status, answer) = raw(admin, "GET", &format!("/admin/routes/{id}"), "").await;
        assert_eq!(status, 404, "{body} was stored: {answer}");
        assert_eq!(answer["error"], "Route not found");
        assert_eq!(gw.get(&format!("/{id}")).await.status(), 404, "{body}");
    }
    let (_, after) = raw(admin, "GET", "/admin/routes", "").await;
    assert_eq!(before, after, "the route table changed");

    // The documented shapes are taken.
    let good = json!({
        "id": "good", "path": "/good", "service": "s",
        "timeout": {"connect": 1, "send": 2, "read": 3},
        "retry": {"times": 1},
        "rate_limit": {"requests_per_minute": 600},
        "security": {"allowed_roles": []},
        "headers": {"request": {"add": {"x-a": "1"}}}
    });
    let (status, answer) = raw(admin, "POST", "/admin/routes", &good.to_string()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["route"]["timeout"]["read"], 3.0);
    let (status, _) = gw.get_json("/good/x").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_list_for_a_whole_body_is_refused() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    let admin = gw.gateway.admin_addr();

    let (status, answer) = raw(admin, "POST", "/admin/routes", r#"["x", "/x", "s"]"#).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid route configuration:"),
        "{answer}"
    );
    let (status, _) = raw(admin, "GET", "/admin/routes/x", "").await;
    assert_eq!(status, 404);

    let (_, before) = raw(admin, "GET", "/admin/services/s", "").await;
    let body = r#"["a2", "127.0.0.1", 9, 100, {}]"#;
    let (status, answer) = raw(admin, "POST", "/admin/services/s/instances", body).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].is_string(), "{answer}");
    let (_, after) = raw(admin, "GET", "/admin/services/s", "").await;
    assert_eq!(before, after, "an instance was registered");

    for (path, body) in [
        ("/admin/users/u1", r#"[null, null, "admin", "active", []]"#),
        ("/admin/api-keys", r#"["u1", null, "admin", [], null]"#),
    ] {
        let (status, answer) = raw(
            admin,
            if path.contains("users") {
                "PUT"
            } else {
                "POST"
            },
            path,
            body,
        )
        .await;
        assert_eq!(status, 400, "{path}: {answer}");
    }
    let (status, _) = raw(admin, "GET", "/admin/users/u1", "").await;
    assert_eq!(status, 404, "a user was stored");
}

#[tokio::test]
async fn a_user_record_round_trips_and_a_different_id_is_refused() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    let admin = gw.gateway.admin_addr();

    let record = json!({"username": "ann", "email": "ann@example.com", "role": "editor", "status": "active", "permissions": ["read", "write"]});
    let (status, answer) = raw(admin, "PUT", "/admin/users/300", &record.to_string()).await;
    assert_eq!(status, 200, "{answer}");

    // GET, then PUT the very same object back.
    let (status, got) = raw(admin, "GET", "/admin/users/300", "").await;
    assert_eq!(status, 200, "{got}");
    let user = got["user"].clone();
    assert_eq!(user["user_id"], "300");
    let (status, answer) = raw(admin, "PUT", "/admin/users/300", &user.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["user"], user);
    let (status, again) = raw(admin, "GET", "/admin/users/300", "").await;
    assert_eq!(status, 200);
    assert_eq!(again, got);

    // The same record under another id: refused, nothing stored anywhere.
    let (status, answer) = raw(admin, "PUT", "/admin/users/301", &user.to_string()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"],
        r#"Invalid user: user_id "300" does not match the path's id "301""#
    );
    let (status, _) = raw(admin, "GET", "/admin/users/301", "").await;
    assert_eq!(status, 404, "user 301 was stored");

    // A changed record naming a different id does not touch the stored one.
    let mut changed = user.clone();
    changed["user_id"] = json!("301");
    changed["role"] = json!("admin");
    let (status, answer) = raw(admin, "PUT", "/admin/users/300", &changed.to_string()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"],
        r#"Invalid user: user_id "301" does not match the path's id "300""#
    );
    let (_, now) = raw(admin, "GET", "/admin/users/300", "").await;
    assert_eq!(now, got, "the stored record changed");

    // Other unknown keys are still refused.
    let mut extra = user.clone();
    extra["nickname"] = json!("a");
    let (status, answer) = raw(admin, "PUT", "/admin/users/300", &extra.to_string()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `nickname`"),
        "{answer}"
    );
}

#[test]
fn a_config_file_with_a_list_for_a_route_timeout_names_the_key() {
    let dir = std::env::temp_dir().join(format!("gw-strict-shapes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(
        &file,
        r#"
[services.s]
instances = [{ id = "a", host = "127.0.0.1", port = 8001 }]

[[routes]]
id = "r"
path = "/r"
service = "s"
timeout = [1, 2, 3]
"#,
    )
    .unwrap();
    let errors = Config::load(Some(&file)).unwrap_err();
    let text = errors.to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(errors.0.len(), 1, "{text}");
    assert_eq!(errors.0[0].path, "routes[0].timeout", "{text}");
    assert!(
        errors.0[0]
            .message
            .starts_with("invalid type: found sequence, expected struct TimeoutConfig"),
        "{text}"
    );
}

#[tokio::test]
async fn a_list_shaped_route_in_the_shared_store_is_not_loaded() {
    let prefix = redis::unique_prefix("strict-shapes");
    let pool = redis::pool(&redis::shared_url());
    let mut conn = pool.get().await.expect("redis connection");
    // What another tool could have written: one good route, one with a list for a table.
    let good = json!({"id": "shared-good", "path": "/shared-good", "service": "s"});
    let listy =
        json!({"id": "shared-list", "path": "/shared-list", "service": "s", "timeout": [1, 2, 3]});
    let _: () = deadpool_redis::redis::cmd("HSET")
        .arg(format!("{prefix}gw:routes"))
        .arg("shared-good")
        .arg(good.to_string())
        .arg("shared-list")
        .arg(listy.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = deadpool_redis::redis::cmd("HSET")
        .arg(format!("{prefix}gw:route_order"))
        .arg("shared-good")
        .arg(1)
        .arg("shared-list")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = deadpool_redis::redis::cmd("SET")
        .arg(format!("{prefix}gw:version"))
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();

    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .raw(&format!(
            "[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"",
            redis::shared_url()
        ))
        .service("s", &[&up])
        .route("id = \"base\"\npath = \"/base\"\nservice = \"s\"")
        .start()
        .await;
    let admin = gw.gateway.admin_addr();
    let loaded = eventually(Duration::from_secs(10), || async {
        raw(admin, "GET", "/admin/routes/shared-good", "").await.0 == 200
    })
    .await;
    assert!(loaded, "the shared state was not loaded");
    let (status, answer) = raw(admin, "GET", "/admin/routes/shared-list", "").await;
    assert_eq!(status, 404, "a list-shaped timeout was loaded: {answer}");
    assert_eq!(gw.get("/shared-list/x").await.status(), 404);
    assert_eq!(gw.get("/shared-good/x").await.status(), 200);

    let keys: Vec<String> = deadpool_redis::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = deadpool_redis::redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}
