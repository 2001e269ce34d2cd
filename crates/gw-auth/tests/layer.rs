//! The layer with the memory store: every message of docs/http-answers.md, headers, extensions, policies.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gw_auth::*;
use gw_core::{Body, ClientAddr, Identity, RequestId};
use http::{HeaderValue, Request};
use support::*;

/// A store that counts every call.
#[derive(Debug, Default)]
struct Counting {
    inner: MemoryAuthStore,
    calls: AtomicUsize,
}

impl AuthStore for Counting {
    fn lookup<'a>(&'a self, q: Lookup<'a>) -> BoxFuture<'a, Result<LookupResult, StoreError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.lookup(q)
    }
    fn revoke<'a>(&'a self, jti: &'a str, ttl: Duration) -> BoxFuture<'a, Result<(), StoreError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.revoke(jti, ttl)
    }
    fn put_user<'a>(&'a self, u: &'a UserRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.put_user(u)
    }
    fn get_user<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.get_user(id)
    }
    fn delete_user<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.inner.delete_user(id)
    }
    fn put_api_key<'a>(
        &'a self,
        h: &'a str,
        r: &'a ApiKeyRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.put_api_key(h, r)
    }
    fn delete_api_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.inner.delete_api_key(id)
    }
    fn set_value<'a>(&'a self, k: &'a str, v: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.set_value(k, v)
    }
}

async fn setup(cfg: JwtConfig) -> (Arc<Authenticator>, Arc<Counting>) {
    let store = Arc::new(Counting::default());
    let a = Authenticator::new(cfg, store.clone()).await.unwrap();
    (a, store)
}

fn jwt() -> RoutePolicy {
    RoutePolicy::required(AuthMethod::Jwt)
}

fn www(res: &http::Response<Body>) -> Vec<String> {
    res.headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

async fn expect(res: http::Response<Body>, status: u16, msg: &str) -> Vec<String> {
    assert_eq!(res.status(), status, "{msg}");
    let w = www(&res);
    assert_eq!(error_of(res).await, msg);
    w
}

#[tokio::test]
async fn every_jwt_401_with_its_challenge() {
    let cfg = JwtConfig {
        user_lookup: true,
        ..hs_config()
    };
    let (a, _) = setup(cfg).await;
    let res = call(&a, jwt(), get("/x").body(Body::empty()).unwrap()).await;
    assert_eq!(
        expect(res, 401, "Missing authorization header").await,
        ["Bearer realm=\"api-gateway\""]
    );
    let req = get("/x")
        .header("authorization", "Basic dXNlcg==")
        .body(Body::empty())
        .unwrap();
    let w = expect(
        call(&a, jwt(), req).await,
        401,
        "Invalid authorization header format",
    )
    .await;
    assert!(w[0].starts_with("Bearer realm=\"api-gateway\""));
    let tok_err = ["Bearer realm=\"api-gateway\", error=\"invalid_token\""];
    let res = call(&a, jwt(), bearer("/x", "garbage")).await;
    assert_eq!(expect(res, 401, "Invalid token").await, tok_err);
    let mut c = claims("u1");
    c["exp"] = (now() - 100).into();
    assert_eq!(
        expect(
            call(&a, jwt(), bearer("/x", &hs256(c))).await,
            401,
            "Token expired"
        )
        .await,
        tok_err
    );
    let mut c = claims("u1");
    c["iss"] = "evil".into();
    assert_eq!(
        expect(
            call(&a, jwt(), bearer("/x", &hs256(c))).await,
            401,
            "Invalid issuer"
        )
        .await,
        tok_err
    );

    // user_lookup: missing, inactive, active.
    let (t, _) = a.mint_token("u1", None, None).unwrap();
    expect(
        call(&a, jwt(), bearer("/x", &t)).await,
        401,
        "User not found",
    )
    .await;
    let inactive = UserInput {
        status: Some("suspended".into()),
        ..UserInput::default()
    };
    a.put_user("u1", inactive).await.unwrap();
    expect(
        call(&a, jwt(), bearer("/x", &t)).await,
        401,
        "User account is not active",
    )
    .await;
    let active = UserInput {
        role: Some("editor".into()),
        permissions: vec!["p".into()],
        ..UserInput::default()
    };
    a.put_user("u1", active).await.unwrap();
    let res = call(&a, jwt(), bearer("/x", &t)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["seen-user-role"],
        "editor",
        "role from the user record"
    );

    // Revocation.
    a.revoke_token(&t).await.unwrap();
    expect(
        call(&a, jwt(), bearer("/x", &t)).await,
        401,
        "Token has been revoked",
    )
    .await;
    let (t2, _) = a.mint_token("u1", None, None).unwrap();
    assert_eq!(
        call(&a, jwt(), bearer("/x", &t2)).await.status(),
        200,
        "other tokens still pass"
    );
}

#[tokio::test]
async fn answers_carry_request_id_and_json() {
    let (a, _) = setup(hs_config()).await;
    let mut req = get("/x").body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(RequestId::new(HeaderValue::from_static("rid-7")));
    let res = call(&a, jwt(), req).await;
    assert_eq!(res.headers()["content-type"], "application/json");
    use http_body_util::BodyExt;
    let b = res.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"error": "Missing authorization header", "request_id": "rid-7"})
    );
}

#[tokio::test]
async fn identity_headers_and_extensions() {
    let (a, _) = setup(hs_config()).await;
    let req = get("/x")
        .header("authorization", format!("Bearer {}", hs256(claims("u42"))))
        .header("x-user-id", "spoofed")
        .header("x-user-role", "admin")
        .header("x-user-evil", "1")
        .body(Body::empty())
        .unwrap();
    let res = call(&a, jwt(), req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["seen-user-id"], "u42");
    assert_eq!(res.headers()["seen-user-role"], "user");
    assert_eq!(res.headers()["seen-identity"], "u42");
    assert!(res.headers().get("seen-evil").is_none());
    let id = res
        .extensions()
        .get::<Identity>()
        .expect("identity in response extensions");
    assert_eq!(id.user_id, "u42");
    assert_eq!(id.permissions, ["read"]);
}

#[tokio::test]
async fn open_route_strips_headers_and_touches_no_store() {
    let (a, store) = setup(JwtConfig {
        user_lookup: true,
        ..hs_config()
    })
    .await;
    let req = get("/x")
        .header("x-user-id", "spoofed")
        .header("x-user-evil", "1")
        .header("authorization", "Bearer garbage")
        .body(Body::empty())
        .unwrap();
    let res = call(&a, RoutePolicy::open(), req).await;
    assert_eq!(res.status(), 200, "no authentication on an open route");
    assert!(res.headers().get("seen-user-id").is_none());
    assert!(res.headers().get("seen-evil").is_none());
    assert!(res.extensions().get::<Identity>().is_none());
    assert_eq!(store.calls.load(Ordering::SeqCst), 0);
    // Authenticated: exactly one store round trip (revocation + user together).
    a.put_user("u1", UserInput::default()).await.unwrap();
    let (t, _) = a.mint_token("u1", None, None).unwrap();
    assert_eq!(call(&a, jwt(), bearer("/x", &t)).await.status(), 200);
    assert_eq!(store.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn require_https_before_authentication() {
    let (a, store) = setup(hs_config()).await;
    let sec = SecurityConfig {
        require_https: true,
        ..Default::default()
    };
    let res = call(
        &a,
        RoutePolicy::open().with_security(sec.clone()),
        get("/x").body(Body::empty()).unwrap(),
    )
    .await;
    expect(res, 403, "HTTPS required").await;
    let res = call(
        &a,
        jwt().with_security(sec.clone()),
        get("/x").body(Body::empty()).unwrap(),
    )
    .await;
    expect(res, 403, "HTTPS required").await;
    let mut req = bearer("/x", &hs256(claims("u1")));
    req.extensions_mut().insert(ClientAddr {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        https: true,
    });
    assert_eq!(
        call(&a, jwt().with_security(sec.clone()), req)
            .await
            .status(),
        200
    );
    let mut req = get("/x").body(Body::empty()).unwrap();
    req.extensions_mut().insert(gw_core::ConnInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        local: "127.0.0.1:2".parse().unwrap(),
        tls: true,
    });
    assert_eq!(
        call(&a, RoutePolicy::open().with_security(sec), req)
            .await
            .status(),
        200
    );
    assert_eq!(store.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn roles_permissions_and_self() {
    let (a, _) = setup(hs_config()).await;
    let pol = |sec| jwt().with_security(sec);
    let admin_only = SecurityConfig {
        allowed_roles: vec!["admin".into()],
        ..Default::default()
    };
    let res = call(
        &a,
        pol(admin_only.clone()),
        bearer("/x", &hs256(claims("u1"))),
    )
    .await;
    assert!(
        res.extensions().get::<Identity>().is_some(),
        "403 keeps the identity for the log"
    );
    assert!(res.headers().get("www-authenticate").is_none());
    expect(res, 403, "Access denied").await;
    let mut admin = claims("root");
    admin["role"] = "admin".into();
    assert_eq!(
        call(&a, pol(admin_only), bearer("/x", &hs256(admin.clone())))
            .await
            .status(),
        200
    );

    let perms = SecurityConfig {
        required_permissions: vec!["read".into(), "write".into()],
        ..Default::default()
    };
    expect(
        call(&a, pol(perms.clone()), bearer("/x", &hs256(claims("u1")))).await,
        403,
        "Access denied",
    )
    .await;
    let mut rw = claims("u1");
    rw["permissions"] = serde_json::json!(["read", "write"]);
    assert_eq!(
        call(&a, pol(perms), bearer("/x", &hs256(rw)))
            .await
            .status(),
        200
    );

    let me = SecurityConfig {
        resource_check: Some(ResourceCheck::SelfId),
        ..Default::default()
    };
    assert_eq!(
        call(
            &a,
            pol(me.clone()),
            bearer("/users/u1", &hs256(claims("u1")))
        )
        .await
        .status(),
        200
    );
    expect(
        call(
            &a,
            pol(me.clone()),
            bearer("/users/u2", &hs256(claims("u1"))),
        )
        .await,
        403,
        "Access denied",
    )
    .await;
    assert_eq!(
        call(&a, pol(me.clone()), bearer("/users/u2", &hs256(admin)))
            .await
            .status(),
        200,
        "admin bypass"
    );
    let post = Request::post("/users/u2")
        .header("authorization", format!("Bearer {}", hs256(claims("u1"))))
        .body(Body::empty())
        .unwrap();
    expect(call(&a, pol(me), post).await, 403, "Access denied").await;
}

#[tokio::test]
async fn owner_key_memory() {
    let (a, _) = setup(hs_config()).await;
    a.store().set_value("order:o1:owner", "u1").await.unwrap();
    let sec = SecurityConfig {
        resource_check: Some(ResourceCheck::OwnerKey("order:{id}:owner".into())),
        ..Default::default()
    };
    let pol = jwt().with_security(sec);
    assert_eq!(
        call(&a, pol.clone(), bearer("/orders/o1", &hs256(claims("u1"))))
            .await
            .status(),
        200
    );
    expect(
        call(&a, pol.clone(), bearer("/orders/o1", &hs256(claims("u2")))).await,
        403,
        "Access denied",
    )
    .await;
    expect(
        call(&a, pol, bearer("/orders/o9", &hs256(claims("u1")))).await,
        403,
        "Access denied",
    )
    .await;
}

fn with_key(path: &str, key: &str) -> Request<Body> {
    get(path)
        .header("x-api-key", key)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn api_keys_lifecycle() {
    let (a, _) = setup(hs_config()).await;
    let pol = RoutePolicy::required(AuthMethod::ApiKey);
    let api_ch = ["ApiKey realm=\"api-gateway\""];
    let w = expect(
        call(&a, pol.clone(), get("/x").body(Body::empty()).unwrap()).await,
        401,
        "Missing API key",
    )
    .await;
    assert_eq!(w, api_ch);
    let w = expect(
        call(&a, pol.clone(), with_key("/x", "gwk_nope")).await,
        401,
        "Invalid API key",
    )
    .await;
    assert_eq!(w, api_ch);

    let input = ApiKeyInput {
        user_id: "svc-1".into(),
        username: Some("billing".into()),
        role: Some("service".into()),
        permissions: vec!["bill".into()],
        expires_at: None,
    };
    let (key, key_id) = a.create_api_key(input.clone()).await.unwrap();
    assert!(key.starts_with("gwk_") && key.len() > 40);
    let res = call(&a, pol.clone(), with_key("/x", &key)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["seen-user-id"], "svc-1");
    assert_eq!(res.headers()["seen-user-role"], "service");
    assert_eq!(
        res.extensions().get::<Identity>().unwrap().permissions,
        ["bill"]
    );

    // Expired.
    let (old, _) = a
        .create_api_key(ApiKeyInput {
            expires_at: Some(now() - 1),
            ..input.clone()
        })
        .await
        .unwrap();
    expect(
        call(&a, pol.clone(), with_key("/x", &old)).await,
        401,
        "API key has expired",
    )
    .await;
    // Not active (a record written by another tool).
    let hash = hash_api_key("gwk_inactive");
    let rec = ApiKeyRecord {
        key_id: "k-in".into(),
        user_id: "svc-2".into(),
        username: None,
        role: None,
        permissions: vec![],
        status: "revoked".into(),
        expires_at: None,
        key_hash: None,
    };
    a.store().put_api_key(&hash, &rec).await.unwrap();
    expect(
        call(&a, pol.clone(), with_key("/x", "gwk_inactive")).await,
        401,
        "API key is not active",
    )
    .await;

    // Deleted.
    assert!(a.delete_api_key(&key_id).await.unwrap());
    assert!(!a.delete_api_key(&key_id).await.unwrap());
    expect(
        call(&a, pol, with_key("/x", &key)).await,
        401,
        "Invalid API key",
    )
    .await;
}

#[tokio::test]
async fn jwt_or_api_key_picks_by_header() {
    let (a, _) = setup(JwtConfig {
        user_lookup: true,
        ..hs_config()
    })
    .await;
    let pol = RoutePolicy::required(AuthMethod::JwtOrApiKey);
    let (key, _) = a
        .create_api_key(ApiKeyInput {
            user_id: "svc".into(),
            ..ApiKeyInput::default()
        })
        .await
        .unwrap();
    // API key path: user_lookup does not apply (no user:svc record).
    assert_eq!(
        call(&a, pol.clone(), with_key("/x", &key)).await.status(),
        200
    );
    expect(
        call(&a, pol.clone(), with_key("/x", "bad")).await,
        401,
        "Invalid API key",
    )
    .await;
    let w = expect(
        call(&a, pol.clone(), get("/x").body(Body::empty()).unwrap()).await,
        401,
        "Missing authorization header",
    )
    .await;
    assert_eq!(
        w,
        [
            "Bearer realm=\"api-gateway\"",
            "ApiKey realm=\"api-gateway\""
        ]
    );
    // JWT path: user_lookup applies.
    let (t, _) = a.mint_token("nobody", None, None).unwrap();
    expect(call(&a, pol, bearer("/x", &t)).await, 401, "User not found").await;
}

#[tokio::test]
async fn admin_user_functions() {
    let (a, _) = setup(hs_config()).await;
    assert_eq!(a.get_user("u9").await.unwrap(), None);
    let rec = a
        .put_user(
            "u9",
            UserInput {
                username: Some("nine".into()),
                email: Some("n@x".into()),
                ..UserInput::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rec.status, "active");
    assert_eq!(a.get_user("u9").await.unwrap(), Some(rec));
    assert!(a.delete_user("u9").await.unwrap());
    assert!(!a.delete_user("u9").await.unwrap());
    assert_eq!(a.get_user("u9").await.unwrap(), None);
}
