//! The Redis store: revocation across nodes, key prefix, API keys, outage.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gw_auth::*;
use gw_core::Body;
use support::*;
use test_support::redis as test_redis;

fn store(url: &str, prefix: &str, timeout_ms: u64) -> Arc<RedisAuthStore> {
    Arc::new(RedisAuthStore::from_url(url, prefix, Duration::from_millis(timeout_ms)).unwrap())
}

async fn raw(url: &str) -> deadpool_redis::Connection {
    test_redis::pool(url).get().await.unwrap()
}

#[tokio::test]
async fn revocation_reaches_every_node() {
    let url = test_redis::shared_url();
    let p = test_redis::unique_prefix("gw-auth:revoke");
    let cfg = JwtConfig {
        user_lookup: true,
        ..hs_config()
    };
    let node_a = Authenticator::new(cfg.clone(), store(&url, &p, 1000))
        .await
        .unwrap();
    let node_b = Authenticator::new(cfg, store(&url, &p, 1000))
        .await
        .unwrap();
    node_a.put_user("u1", UserInput::default()).await.unwrap();
    let (t, exp) = node_a.mint_token("u1", None, Some("user")).unwrap();
    let pol = RoutePolicy::required(AuthMethod::Jwt);
    assert_eq!(
        call(&node_b, pol.clone(), bearer("/x", &t)).await.status(),
        200,
        "user written on A seen by B"
    );
    node_a.revoke_token(&t).await.unwrap();
    let res = call(&node_b, pol, bearer("/x", &t)).await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_of(res).await, "Token has been revoked");
    // The blacklist entry lives in the layout of docs/operations.md, "Store layout", expiring with the token.
    let jti = node_b.verify_token(&t, now()).await.unwrap().jti.unwrap();
    let mut c = raw(&url).await;
    let ttl: i64 = deadpool_redis::redis::cmd("TTL")
        .arg(format!("{p}blacklist:{jti}"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl as u64 <= exp - now() + 1, "ttl {ttl}");
}

#[tokio::test]
async fn users_and_api_keys_in_redis() {
    let url = test_redis::shared_url();
    let p = test_redis::unique_prefix("gw-auth:keys");
    let a = Authenticator::new(hs_config(), store(&url, &p, 1000))
        .await
        .unwrap();
    let rec = a
        .put_user(
            "u5",
            UserInput {
                role: Some("admin".into()),
                ..UserInput::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.get_user("u5").await.unwrap(), Some(rec));
    assert!(a.delete_user("u5").await.unwrap());
    assert_eq!(a.get_user("u5").await.unwrap(), None);

    let (key, key_id) = a
        .create_api_key(ApiKeyInput {
            user_id: "svc".into(),
            role: Some("svc".into()),
            ..ApiKeyInput::default()
        })
        .await
        .unwrap();
    let mut c = raw(&url).await;
    let stored: String = deadpool_redis::redis::cmd("GET")
        .arg(format!("{p}api_key:{}", hash_api_key(&key)))
        .query_async(&mut c)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(v["key_id"], key_id.as_str());
    assert_eq!(v["status"], "active");
    let pol = RoutePolicy::required(AuthMethod::ApiKey);
    let req = || {
        get("/x")
            .header("x-api-key", key.as_str())
            .body(Body::empty())
            .unwrap()
    };
    let res = call(&a, pol.clone(), req()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["seen-user-id"], "svc");
    assert!(a.delete_api_key(&key_id).await.unwrap());
    let res = call(&a, pol, req()).await;
    assert_eq!(error_of(res).await, "Invalid API key");
}

#[tokio::test]
async fn owner_key_uses_the_prefix() {
    let url = test_redis::shared_url();
    let p = test_redis::unique_prefix("gw-auth:owner");
    let a = Authenticator::new(hs_config(), store(&url, &p, 1000))
        .await
        .unwrap();
    let mut c = raw(&url).await;
    let _: () = deadpool_redis::redis::cmd("SET")
        .arg(format!("{p}order:42:owner"))
        .arg("u1")
        .query_async(&mut c)
        .await
        .unwrap();
    let sec = SecurityConfig {
        resource_check: Some(ResourceCheck::OwnerKey("order:{id}:owner".into())),
        ..Default::default()
    };
    let pol = RoutePolicy::required(AuthMethod::Jwt).with_security(sec);
    assert_eq!(
        call(&a, pol.clone(), bearer("/orders/42", &hs256(claims("u1"))))
            .await
            .status(),
        200
    );
    let res = call(&a, pol, bearer("/orders/42", &hs256(claims("u2")))).await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_of(res).await, "Access denied");
}

#[tokio::test]
async fn store_down_is_503_bounded_by_the_timeout() {
    let mut own = test_redis::OwnRedis::start();
    let p = test_redis::unique_prefix("gw-auth:down");
    let cfg = JwtConfig {
        user_lookup: true,
        ..hs_config()
    };
    let a = Authenticator::new(cfg, store(&own.url(), &p, 300))
        .await
        .unwrap();
    a.put_user("u1", UserInput::default()).await.unwrap();
    let (t, _) = a.mint_token("u1", None, None).unwrap();
    let pol = RoutePolicy::required(AuthMethod::Jwt);
    assert_eq!(call(&a, pol.clone(), bearer("/x", &t)).await.status(), 200);
    own.kill();
    let start = Instant::now();
    let res = call(&a, pol.clone(), bearer("/x", &t)).await;
    assert_eq!(res.status(), 503);
    assert_eq!(error_of(res).await, "Service temporarily unavailable");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        start.elapsed()
    );
    // Open routes do not care.
    assert_eq!(
        call(&a, RoutePolicy::open(), bearer("/x", &t))
            .await
            .status(),
        200
    );
    // Admin functions report the store error.
    assert!(matches!(a.get_user("u1").await, Err(AdminError::Store(_))));
}

#[tokio::test]
async fn unreachable_redis_times_out() {
    // A listener that accepts and never answers: the timeout must bound the wait.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", l.local_addr().unwrap());
    let a = Authenticator::new(hs_config(), store(&url, "x:", 200))
        .await
        .unwrap();
    let (key, _) = ("gwk_x", ());
    let req = get("/x")
        .header("x-api-key", key)
        .body(Body::empty())
        .unwrap();
    let start = Instant::now();
    let res = call(&a, RoutePolicy::required(AuthMethod::ApiKey), req).await;
    assert_eq!(res.status(), 503);
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(l);
}
