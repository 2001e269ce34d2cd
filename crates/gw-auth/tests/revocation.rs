//! A revoked token stays refused for as long as it could be accepted: until `exp + leeway`, in
//! the memory and the Redis store.

mod support;

use std::sync::Arc;
use std::time::Duration;

use gw_auth::*;
use support::*;
use test_support::redis as test_redis;
use test_support::wait_until;

/// Waits (bounded) until the wall clock reaches `t` (epoch seconds).
async fn until_clock(t: u64) {
    wait_until(Duration::from_secs(30), "the wall clock to reach t", || {
        now() >= t
    })
    .await;
}

async fn revoked_within_leeway(store: Arc<dyn AuthStore>) {
    let cfg = JwtConfig {
        leeway_secs: 10,
        ..hs_config()
    };
    let a = Arc::new(Authenticator::new(cfg, store).await.unwrap());
    // Past its `exp` already, but inside the leeway: accepted.
    let exp = now() - 1;
    let t = hs256(serde_json::json!({
        "sub": "u1", "exp": exp, "iss": "api-gateway", "jti": "leeway-jti",
    }));
    let pol = RoutePolicy::required(AuthMethod::Jwt);
    assert_eq!(call(&a, pol.clone(), bearer("/x", &t)).await.status(), 200);
    a.revoke_token(&t).await.unwrap();
    let res = call(&a, pol.clone(), bearer("/x", &t)).await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_of(res).await, "Token has been revoked");
    // Two seconds later the token is still inside its leeway: still revoked.
    until_clock(exp + 3).await;
    let res = call(&a, pol, bearer("/x", &t)).await;
    assert_eq!(
        res.status(),
        401,
        "revocation outlives exp within the leeway"
    );
    assert_eq!(error_of(res).await, "Token has been revoked");
}

#[tokio::test]
async fn memory_store_keeps_revocation_until_exp_plus_leeway() {
    revoked_within_leeway(Arc::new(MemoryAuthStore::new())).await;
}

#[tokio::test]
async fn redis_store_keeps_revocation_until_exp_plus_leeway() {
    let url = test_redis::shared_url();
    let p = test_redis::unique_prefix("gw-auth:leeway");
    let store = RedisAuthStore::from_url(&url, &p, Duration::from_millis(1000)).unwrap();
    revoked_within_leeway(Arc::new(store)).await;
}
