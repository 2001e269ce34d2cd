//! HS256 verification of a typical token (signature + claims, no store).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use gw_auth::{unix_now, Authenticator, JwtConfig, MemoryAuthStore};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = JwtConfig {
        secret: Some("bench-secret-bench-secret-bench-secret".into()),
        ..JwtConfig::default()
    };
    let auth = rt
        .block_on(Authenticator::new(cfg, Arc::new(MemoryAuthStore::new())))
        .unwrap();
    let (token, _) = auth
        .mint_token("user-12345", Some("alice"), Some("user"))
        .unwrap();
    let now = unix_now();
    assert!(rt.block_on(auth.verify_token(&token, now)).is_ok());
    c.bench_function("hs256_verify", |b| {
        b.iter(|| {
            let claims = rt.block_on(auth.verify_token(std::hint::black_box(&token), now));
            std::hint::black_box(claims.unwrap());
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
