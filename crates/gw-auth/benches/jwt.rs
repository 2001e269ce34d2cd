//! HS256 verification of a typical token (signature + claims, no store): every time
//! (`cache_size = 0`), and for a token verified before (the default memory of verified tokens).

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use gw_auth::{unix_now, Authenticator, JwtConfig, MemoryAuthStore};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, cache_size) in [("hs256_verify", 0), ("hs256_verify_remembered", 4096)] {
        let cfg = JwtConfig {
            secret: Some("bench-secret-bench-secret-bench-secret".into()),
            cache_size,
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
        c.bench_function(name, |b| {
            b.iter(|| {
                let claims = rt.block_on(auth.verify_token(std::hint::black_box(&token), now));
                std::hint::black_box(claims.unwrap());
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
