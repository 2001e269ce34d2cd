//! Token verification (`Authenticator::verify_token`, HS256 configured): never a panic;
//! arbitrary text is refused; a token whose header is the input (signed correctly with the
//! configured secret, with valid claims) is accepted only when that header is a JSON object
//! naming `"alg": "HS256"`, and is accepted when the header rebuilt from its `alg`, `typ`
//! and `kid` is (the same oracle as `crates/gw-auth/tests/prop_jwt.rs`).
//!
//! Input: one byte (bit 0: the rest is a whole token; else it is the header's JSON text),
//! then the bytes.

#![no_main]

use std::sync::{Arc, LazyLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use gw_auth::{Authenticator, JwtConfig, MemoryAuthStore};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const SECRET: &str = "fuzz-secret-0123456789-abcdefghijkl";
/// The verification clock.
const NOW: u64 = 1_700_000_000;

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
});

static AUTH: LazyLock<Arc<Authenticator>> = LazyLock::new(|| {
    let config = JwtConfig {
        secret: Some(SECRET.into()),
        user_lookup: false,
        // Every token is verified from scratch.
        cache_size: 0,
        ..JwtConfig::default()
    };
    RT.block_on(Authenticator::new(config, Arc::new(MemoryAuthStore::new())))
        .expect("valid configuration")
});

fn accepted(token: &str) -> bool {
    RT.block_on(AUTH.verify_token(token, NOW)).is_ok()
}

/// `header` (raw bytes), valid claims, an HS256 signature with the secret.
fn signed(header: &[u8]) -> String {
    let claims = json!({"sub": "u1", "exp": NOW + 60, "iss": "api-gateway"});
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256)
        .expect("HMAC signing");
    format!("{message}.{sig}")
}

fuzz_target!(|data: &[u8]| {
    let [flags, rest @ ..] = data else {
        return;
    };
    if flags & 1 != 0 {
        // A forged token: no HMAC is found by chance.
        let token = String::from_utf8_lossy(rest);
        assert!(!accepted(&token), "accepted {token:?}");
        return;
    }
    let header: Option<serde_json::Map<String, Value>> = serde_json::from_slice(rest).ok();
    let alg = header.as_ref().and_then(|h| h.get("alg")).cloned();
    if accepted(&signed(rest)) {
        assert_eq!(
            alg,
            Some(Value::from("HS256")),
            "accepted header {:?}",
            String::from_utf8_lossy(rest)
        );
    }
    // The same header reduced to `alg`, `typ` and `kid`, when they are strings: accepted
    // exactly when `alg` is HS256.
    let Some(h) = header else { return };
    let mut plain = serde_json::Map::new();
    for key in ["alg", "typ", "kid"] {
        match h.get(key) {
            Some(v @ Value::String(_)) => {
                plain.insert(key.to_owned(), v.clone());
            }
            Some(_) => return,
            None => {}
        }
    }
    let plain = Value::Object(plain).to_string();
    assert_eq!(
        accepted(&signed(plain.as_bytes())),
        alg == Some(Value::from("HS256")),
        "plain header {plain}"
    );
});
