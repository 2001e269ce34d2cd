//! Token verification: every algorithm, refused algorithms, claims, JWKS.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use gw_auth::{AuthError, Authenticator, JwksOptions, JwtConfig, MemoryAuthStore};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use support::*;
use test_support::wait_for;

async fn authn(cfg: JwtConfig) -> Arc<Authenticator> {
    Authenticator::new(cfg, Arc::new(MemoryAuthStore::new()))
        .await
        .unwrap()
}

fn asym(alg: &str, public: &str) -> JwtConfig {
    JwtConfig {
        algorithms: vec![alg.into()],
        public_key_file: Some(key_path(public)),
        user_lookup: false,
        ..JwtConfig::default()
    }
}

#[tokio::test]
async fn every_algorithm_verifies() {
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let cfg = JwtConfig {
            algorithms: vec![format!("{alg:?}")],
            ..hs_config()
        };
        let a = authn(cfg).await;
        let t = sign(
            alg,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            None,
            claims("u1"),
        );
        assert_eq!(
            a.verify_token(&t, now()).await.unwrap().sub.as_deref(),
            Some("u1"),
            "{alg:?}"
        );
    }
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap();
    for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512] {
        let a = authn(asym(&format!("{alg:?}"), "rsa_public.pem")).await;
        let t = sign(alg, &rsa, None, claims("u1"));
        assert!(a.verify_token(&t, now()).await.is_ok(), "{alg:?}");
    }
    let ec = EncodingKey::from_ec_pem(&pem("ec_private.pem")).unwrap();
    let a = authn(asym("ES256", "ec_public.pem")).await;
    assert!(a
        .verify_token(&sign(Algorithm::ES256, &ec, None, claims("u1")), now())
        .await
        .is_ok());
    let ed = EncodingKey::from_ed_pem(&pem("ed_private.pem")).unwrap();
    let a = authn(asym("EdDSA", "ed_public.pem")).await;
    assert!(a
        .verify_token(&sign(Algorithm::EdDSA, &ed, None, claims("u1")), now())
        .await
        .is_ok());
    // A token signed by another RSA key fails.
    let other = EncodingKey::from_rsa_pem(&pem("rsa2_private.pem")).unwrap();
    let a = authn(asym("RS256", "rsa_public.pem")).await;
    let t = sign(Algorithm::RS256, &other, None, claims("u1"));
    assert_eq!(
        a.verify_token(&t, now()).await,
        Err(AuthError::InvalidToken)
    );
}

#[tokio::test]
async fn alg_none_and_unconfigured_algorithms_are_refused() {
    let a = authn(hs_config()).await;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    let none = format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(claims("u1"))
    );
    assert_eq!(
        a.verify_token(&none, now()).await,
        Err(AuthError::InvalidToken)
    );
    // HS512 is not configured (only HS256).
    let t = sign(
        Algorithm::HS512,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        None,
        claims("u1"),
    );
    assert_eq!(
        a.verify_token(&t, now()).await,
        Err(AuthError::InvalidToken)
    );
    assert_eq!(
        a.verify_token("not.a.jwt", now()).await,
        Err(AuthError::InvalidToken)
    );
}

#[tokio::test]
async fn hs_rs_confusion_is_refused() {
    // RS256 configured: an HS256 token signed with the public key PEM as secret must fail.
    let a = authn(asym("RS256", "rsa_public.pem")).await;
    let t = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&pem("rsa_public.pem")),
        None,
        claims("u1"),
    );
    assert_eq!(
        a.verify_token(&t, now()).await,
        Err(AuthError::InvalidToken)
    );
    // Both families configured, each with its own key: the public PEM is not the HS secret.
    let cfg = JwtConfig {
        algorithms: vec!["HS256".into(), "RS256".into()],
        secret: Some(SECRET.into()),
        public_key_file: Some(key_path("rsa_public.pem")),
        user_lookup: false,
        ..JwtConfig::default()
    };
    let a = authn(cfg).await;
    assert_eq!(
        a.verify_token(&t, now()).await,
        Err(AuthError::InvalidToken)
    );
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap();
    assert!(a
        .verify_token(&sign(Algorithm::RS256, &rsa, None, claims("u1")), now())
        .await
        .is_ok());
    assert!(a.verify_token(&hs256(claims("u1")), now()).await.is_ok());
}

#[tokio::test]
async fn exp_nbf_iss_aud_leeway() {
    let cfg = JwtConfig {
        audience: vec!["gw".into()],
        leeway_secs: 30,
        ..hs_config()
    };
    let a = authn(cfg).await;
    let t0 = 1_700_000_000u64;
    let tok = |extra: serde_json::Value| {
        let mut c = serde_json::json!({"sub": "u1", "exp": t0, "iss": "api-gateway", "aud": "gw"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        hs256(c)
    };
    let ok = tok(serde_json::json!({}));
    assert!(a.verify_token(&ok, t0 + 29).await.is_ok(), "within leeway");
    assert_eq!(
        a.verify_token(&ok, t0 + 30).await,
        Err(AuthError::TokenExpired)
    );
    let nbf = tok(serde_json::json!({"nbf": t0 - 100}));
    assert_eq!(
        a.verify_token(&nbf, t0 - 131).await,
        Err(AuthError::InvalidToken)
    );
    assert!(a.verify_token(&nbf, t0 - 130).await.is_ok());
    let iss = tok(serde_json::json!({"iss": "someone-else"}));
    assert_eq!(
        a.verify_token(&iss, t0).await,
        Err(AuthError::InvalidIssuer)
    );
    let aud = tok(serde_json::json!({"aud": ["other", "gw"]}));
    assert!(a.verify_token(&aud, t0).await.is_ok());
    let bad_aud = tok(serde_json::json!({"aud": "other"}));
    assert_eq!(
        a.verify_token(&bad_aud, t0).await,
        Err(AuthError::InvalidToken)
    );
    let no_exp = hs256(serde_json::json!({"sub": "u1", "iss": "api-gateway", "aud": "gw"}));
    assert_eq!(
        a.verify_token(&no_exp, t0).await,
        Err(AuthError::InvalidToken)
    );
}

#[tokio::test]
async fn minted_tokens_verify_and_revocation_needs_signature() {
    let a = authn(hs_config()).await;
    let (t, exp) = a.mint_token("alice", Some("Alice"), Some("admin")).unwrap();
    let c = a.verify_token(&t, now()).await.unwrap();
    assert_eq!(c.sub.as_deref(), Some("alice"));
    assert_eq!(c.role.as_deref(), Some("admin"));
    assert_eq!(c.iss.as_deref(), Some("api-gateway"));
    assert_eq!(c.exp, Some(exp));
    assert!(c.jti.is_some());
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"other"),
        None,
        claims("u1"),
    );
    assert!(a.revoke_token(&forged).await.is_err());
    assert!(a.revoke_token(&t).await.is_ok());
    // No secret: minting is unavailable.
    let a = authn(asym("RS256", "rsa_public.pem")).await;
    assert!(a.mint_token("x", None, None).is_err());
}

// ---- JWKS ----

struct JwksServer {
    url: String,
    hits: Arc<AtomicUsize>,
    set: Arc<parking_lot::Mutex<JwkSet>>,
    task: tokio::task::JoinHandle<()>,
}

fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut j = Jwk::from_encoding_key(key, alg).unwrap();
    j.common.key_id = Some(kid.into());
    j
}

async fn jwks_server(keys: Vec<Jwk>) -> JwksServer {
    let hits = Arc::new(AtomicUsize::new(0));
    let set = Arc::new(parking_lot::Mutex::new(JwkSet { keys }));
    let (h, s) = (hits.clone(), set.clone());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (h, s) = (h.clone(), s.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::to_string(&*s.lock()).unwrap();
                (
                    [
                        ("content-type", "application/json"),
                        ("cache-control", "public, max-age=1"),
                    ],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    JwksServer {
        url: format!("http://{addr}/jwks.json"),
        hits,
        set,
        task,
    }
}

fn jwks_config(url: &str) -> JwtConfig {
    JwtConfig {
        algorithms: vec!["RS256".into(), "ES256".into()],
        jwks_url: Some(url.into()),
        user_lookup: false,
        ..JwtConfig::default()
    }
}

/// An authenticator on `srv`'s JWKS, refreshing at most once per `min_refresh`.
async fn jwks_authenticator(srv: &JwksServer, min_refresh: Duration) -> Arc<Authenticator> {
    let opts = JwksOptions {
        min_refresh_interval: min_refresh,
        fetch_timeout: Duration::from_secs(2),
        ..JwksOptions::default()
    };
    Authenticator::with_options(
        jwks_config(&srv.url),
        Arc::new(MemoryAuthStore::new()),
        opts,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_known_kid_new_kid_rate_limit_and_outage() {
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap();
    let rsa2 = EncodingKey::from_rsa_pem(&pem("rsa2_private.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&pem("ec_private.pem")).unwrap();
    let srv = jwks_server(vec![jwk(&rsa, Algorithm::RS256, "k1")]).await;
    let a = jwks_authenticator(&srv, Duration::from_millis(300)).await;
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1, "fetched at start");

    // Known kid: no fetch.
    let t1 = sign(Algorithm::RS256, &rsa, Some("k1"), claims("u1"));
    assert!(a.verify_token(&t1, now()).await.is_ok());
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1);

    // A wrong key under a known kid fails without a fetch.
    let forged = sign(Algorithm::RS256, &rsa2, Some("k1"), claims("u1"));
    assert_eq!(
        a.verify_token(&forged, now()).await,
        Err(AuthError::InvalidToken)
    );
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1);

    // New kid published: one refresh, then it verifies.
    srv.set.lock().keys.push(jwk(&ec, Algorithm::ES256, "k2"));
    let t2 = sign(Algorithm::ES256, &ec, Some("k2"), claims("u2"));
    assert!(a.verify_token(&t2, now()).await.is_ok());
    assert_eq!(srv.hits.load(Ordering::SeqCst), 2);

    // Unknown kids right after: refused without another fetch (rate limited).
    let t3 = sign(Algorithm::RS256, &rsa2, Some("k3"), claims("u3"));
    for _ in 0..5 {
        assert_eq!(
            a.verify_token(&t3, now()).await,
            Err(AuthError::InvalidToken)
        );
    }
    assert_eq!(srv.hits.load(Ordering::SeqCst), 2);

    // After the interval the next unknown kid may refresh again.
    srv.set.lock().keys.push(jwk(&rsa2, Algorithm::RS256, "k3"));
    wait_for(
        Duration::from_secs(10),
        "k3 verifies once the interval allows a refresh",
        || async { a.verify_token(&t3, now()).await.is_ok() },
    )
    .await;
    assert_eq!(srv.hits.load(Ordering::SeqCst), 3);

    // JWKS outage: known keys still verify; an unknown kid is refused, bounded in time.
    srv.task.abort();
    let _ = srv.task.await;
    // Past the 300 ms refresh interval on purpose: the next unknown kid may fetch, and the
    // fetch fails (the outage under test).
    tokio::time::sleep(Duration::from_millis(350)).await;
    let t4 = sign(Algorithm::RS256, &rsa, Some("k4"), claims("u4"));
    assert_eq!(
        a.verify_token(&t4, now()).await,
        Err(AuthError::InvalidToken)
    );
    assert!(a.verify_token(&t1, now()).await.is_ok());
    assert!(a.verify_token(&t2, now()).await.is_ok());
    assert!(a.verify_token(&t3, now()).await.is_ok());
}

#[tokio::test]
async fn unreachable_jwks_at_start_does_not_prevent_startup() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = jwks_config(&format!("http://127.0.0.1:{port}/jwks.json"));
    let a = Authenticator::new(cfg, Arc::new(MemoryAuthStore::new()))
        .await
        .unwrap();
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap();
    let t = sign(Algorithm::RS256, &rsa, Some("k1"), claims("u1"));
    assert_eq!(
        a.verify_token(&t, now()).await,
        Err(AuthError::InvalidToken)
    );
}

#[tokio::test]
async fn config_errors_are_reported() {
    let cfg = JwtConfig {
        algorithms: vec!["RS256".into()],
        public_key_file: Some(key_path("does-not-exist.pem")),
        ..JwtConfig::default()
    };
    assert!(Authenticator::new(cfg, Arc::new(MemoryAuthStore::new()))
        .await
        .is_err());
    // An EC key for an RSA algorithm is refused at start.
    let cfg = asym("RS256", "ec_public.pem");
    assert!(Authenticator::new(cfg, Arc::new(MemoryAuthStore::new()))
        .await
        .is_err());
    assert!(
        Authenticator::new(JwtConfig::default(), Arc::new(MemoryAuthStore::new()))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_of_a_key_dropped_from_the_jwks_is_refused_once_keys_are_refreshed() {
    // The first check of t1 is remembered; the JWKS then drops k1. Once the keys are
    // refreshed (here by a token with a new kid), t1 must be verified again, and fails.
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap();
    let rsa2 = EncodingKey::from_rsa_pem(&pem("rsa2_private.pem")).unwrap();
    let srv = jwks_server(vec![jwk(&rsa, Algorithm::RS256, "k1")]).await;
    let a = jwks_authenticator(&srv, Duration::from_millis(100)).await;
    let t1 = sign(Algorithm::RS256, &rsa, Some("k1"), claims("u1"));
    for _ in 0..3 {
        assert!(a.verify_token(&t1, now()).await.is_ok());
    }
    srv.set.lock().keys = vec![jwk(&rsa2, Algorithm::RS256, "k2")];
    // Past the 100 ms refresh interval on purpose, so that the new kid may refresh the keys.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let t2 = sign(Algorithm::RS256, &rsa2, Some("k2"), claims("u2"));
    assert!(a.verify_token(&t2, now()).await.is_ok(), "k2 fetched");
    assert_eq!(
        a.verify_token(&t1, now()).await,
        Err(AuthError::InvalidToken),
        "k1 is gone"
    );
}

/// A key withdrawn from the JWKS stops verifying on the periodic refresh (the answer's
/// `max-age`), without any token naming an unknown `kid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_key_is_dropped_by_the_periodic_refresh() {
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap();
    let rsa2 = EncodingKey::from_rsa_pem(&pem("rsa2_private.pem")).unwrap();
    let srv = jwks_server(vec![
        jwk(&rsa, Algorithm::RS256, "k1"),
        jwk(&rsa2, Algorithm::RS256, "k2"),
    ])
    .await;
    let opts = JwksOptions {
        min_refresh_interval: Duration::from_secs(3600),
        fetch_timeout: Duration::from_secs(2),
        // The server says max-age=1; the lower bound is below it.
        refresh_min: Duration::from_millis(100),
        ..JwksOptions::default()
    };
    let a = Authenticator::with_options(
        jwks_config(&srv.url),
        Arc::new(MemoryAuthStore::new()),
        opts,
    )
    .await
    .unwrap();
    let t1 = sign(Algorithm::RS256, &rsa, Some("k1"), claims("u1"));
    assert!(a.verify_token(&t1, now()).await.is_ok());
    srv.set.lock().keys = vec![jwk(&rsa2, Algorithm::RS256, "k2")];
    wait_for(
        Duration::from_secs(20),
        "the withdrawn key no longer trusted",
        || async { a.verify_token(&t1, now()).await.is_err() },
    )
    .await;
    assert_eq!(
        a.verify_token(&t1, now()).await,
        Err(AuthError::InvalidToken)
    );
    let t2 = sign(Algorithm::RS256, &rsa2, Some("k2"), claims("u2"));
    assert!(a.verify_token(&t2, now()).await.is_ok());
}

/// Only signature keys count, and a key that names its algorithm verifies only that one.
#[tokio::test]
async fn jwk_use_and_alg_are_honoured() {
    use jsonwebtoken::jwk::{KeyAlgorithm, PublicKeyUse};
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap();
    let rsa2 = EncodingKey::from_rsa_pem(&pem("rsa2_private.pem")).unwrap();
    let mut enc = jwk(&rsa, Algorithm::RS256, "enc");
    enc.common.public_key_use = Some(PublicKeyUse::Encryption);
    enc.common.key_algorithm = None;
    let mut pinned = jwk(&rsa2, Algorithm::RS256, "pinned");
    pinned.common.public_key_use = Some(PublicKeyUse::Signature);
    pinned.common.key_algorithm = Some(KeyAlgorithm::RS384);
    let srv = jwks_server(vec![enc, pinned]).await;
    let mut cfg = jwks_config(&srv.url);
    cfg.algorithms = vec!["RS256".into(), "RS384".into()];
    let a = Authenticator::with_options(
        cfg,
        Arc::new(MemoryAuthStore::new()),
        JwksOptions::default(),
    )
    .await
    .unwrap();
    let by_enc = sign(Algorithm::RS256, &rsa, Some("enc"), claims("u1"));
    assert_eq!(
        a.verify_token(&by_enc, now()).await,
        Err(AuthError::InvalidToken)
    );
    let wrong_alg = sign(Algorithm::RS256, &rsa2, Some("pinned"), claims("u1"));
    assert_eq!(
        a.verify_token(&wrong_alg, now()).await,
        Err(AuthError::InvalidToken)
    );
    let right_alg = sign(Algorithm::RS384, &rsa2, Some("pinned"), claims("u1"));
    assert!(a.verify_token(&right_alg, now()).await.is_ok());
}
