//! Memory limiter decision cost (sliding window and token bucket), ns per decision.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gw_ratelimit::algorithm::{SlidingWindow, TokenBucket};
use gw_ratelimit::{Algorithm, KeyedLimit, Limit, MemoryStore, RateLimitConfig, RateLimiter};

const T0: u64 = 1_700_000_000_000;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("algorithm");
    g.bench_function("sliding_window_check", |b| {
        let mut w = SlidingWindow::new();
        let mut t = T0;
        b.iter(|| {
            t += 1;
            black_box(w.check(1000, t))
        })
    });
    g.bench_function("token_bucket_check", |b| {
        let mut bucket = TokenBucket::full(100, T0);
        let mut t = T0;
        b.iter(|| {
            t += 1;
            black_box(bucket.check(6000, 100, t))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("memory_store");
    for algorithm in [Algorithm::SlidingWindow, Algorithm::TokenBucket] {
        let store = MemoryStore::new();
        // 10 000 clients, one route limit each.
        let limits: Vec<KeyedLimit> = (0..10_000)
            .map(|i| {
                KeyedLimit::new(
                    format!("rate_limit:ip:10.0.{}.{}:users", i / 256, i % 256),
                    Limit::per_minute(1000).with_burst(100),
                    algorithm,
                )
            })
            .collect();
        let mut i = 0usize;
        let mut t = T0;
        g.bench_function(format!("{}_one_limit", algorithm.as_str()), |b| {
            b.iter(|| {
                i = (i + 1) % limits.len();
                t += 1;
                black_box(store.check_now(t, std::slice::from_ref(&limits[i])))
            })
        });
        let three = [
            limits[0].clone(),
            KeyedLimit::new(
                "rate_limit:per_ip:10.0.0.0",
                Limit::per_minute(1_000_000),
                algorithm,
            ),
            KeyedLimit::new(
                "rate_limit:global",
                Limit::per_minute(1_000_000_000),
                algorithm,
            ),
        ];
        g.bench_function(format!("{}_three_limits", algorithm.as_str()), |b| {
            b.iter(|| {
                t += 1;
                black_box(store.check_now(t, &three))
            })
        });
    }
    g.finish();

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let limiter = RateLimiter::new(&RateLimitConfig::default(), Arc::new(MemoryStore::new()));
    let one = [KeyedLimit::new(
        "rate_limit:ip:10.0.0.1:users",
        Limit::per_minute(u64::MAX / 1_000_000),
        Algorithm::TokenBucket,
    )];
    c.bench_function("rate_limiter_check_memory", |b| {
        b.iter(|| rt.block_on(async { black_box(limiter.check(&one).await.unwrap()) }))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
