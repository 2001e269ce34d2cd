//! The memory store: atomic multi-limit checks, concurrency, eviction.

use std::sync::Arc;

use gw_ratelimit::algorithm::WINDOW_MS;
use gw_ratelimit::{Algorithm, KeyedLimit, Limit, MemoryStore, Store};

const T0: u64 = 1_700_000_000_000;

fn sw(key: &str, rpm: u64) -> KeyedLimit {
    KeyedLimit::new(key, Limit::per_minute(rpm), Algorithm::SlidingWindow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_limit_ten_exactly_ten_pass() {
    for algorithm in [Algorithm::SlidingWindow, Algorithm::TokenBucket] {
        let store = Arc::new(MemoryStore::new());
        let barrier = Arc::new(tokio::sync::Barrier::new(50));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let store = store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    let limits = [KeyedLimit::new(
                        "rate_limit:ip:10.0.0.1:r",
                        Limit::per_minute(10),
                        algorithm,
                    )];
                    barrier.wait().await;
                    store.check(T0, &limits).await.unwrap()[0].allowed
                })
            })
            .collect();
        let mut passed = 0;
        for t in tasks {
            passed += usize::from(t.await.unwrap());
        }
        assert_eq!(passed, 10, "{algorithm:?}");
    }
}

#[test]
fn threads_hammering_shared_and_own_keys_stay_exact() {
    // 8 threads × 500 requests, each with its own route key and a shared global limit of 1000.
    let store = Arc::new(MemoryStore::new());
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let limits = [
                    sw(&format!("rate_limit:ip:{i}:r"), 200),
                    sw("rate_limit:global", 1000),
                ];
                (0..500)
                    .filter(|_| store.check_now(T0, &limits).iter().all(|d| d.allowed))
                    .count()
            })
        })
        .collect();
    let per_thread: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // Each thread is capped by its route key, and all together by the global limit.
    assert!(per_thread.iter().all(|&n| n <= 200), "{per_thread:?}");
    assert_eq!(per_thread.iter().sum::<usize>(), 1000, "{per_thread:?}");
}

#[test]
fn global_denial_does_not_consume_route_limit() {
    let store = MemoryStore::new();
    let route = sw("rate_limit:ip:1.1.1.1:r", 5);
    let global = sw("rate_limit:global", 2);
    let both = [route.clone(), global.clone()];
    assert!(store.check_now(T0, &both).iter().all(|d| d.allowed));
    assert!(store.check_now(T0, &both).iter().all(|d| d.allowed));
    for _ in 0..10 {
        let d = store.check_now(T0, &both);
        assert!(d[0].allowed && !d[1].allowed);
        // The route limit reports what it has left without this request.
        assert_eq!(d[0].remaining, 3);
    }
    // Only the two allowed requests used the route quota: 3 left.
    let d = store.check_now(T0, std::slice::from_ref(&route));
    assert!(d[0].allowed);
    assert_eq!(d[0].remaining, 2);
}

#[test]
fn decisions_carry_headers_values() {
    let store = MemoryStore::new();
    let l = [sw("k", 2)];
    let d = &store.check_now(T0 + 500, &l)[0];
    assert_eq!((d.limit, d.remaining, d.retry_after_secs), (2, 1, 0));
    assert_eq!(d.reset_epoch_secs, (T0 + 500 + WINDOW_MS).div_ceil(1000));
    assert_eq!(d.reset_after_secs, 60);
    store.check_now(T0 + 500, &l);
    let d = &store.check_now(T0 + 20_500, &l)[0];
    assert!(!d.allowed);
    assert_eq!(d.retry_after_secs, 40);
}

#[test]
fn sweep_evicts_a_million_idle_keys() {
    let store = MemoryStore::new();
    let mut limit = sw("", 10);
    // One million distinct client addresses within one second.
    for i in 0..1_000_000u32 {
        limit.key.clear();
        use std::fmt::Write;
        let _ = write!(limit.key, "rate_limit:ip:{}:r", std::net::Ipv4Addr::from(i));
        assert!(store.check_now(T0 + u64::from(i) / 1000, std::slice::from_ref(&limit))[0].allowed);
    }
    // All are live within the window: nothing may be forgotten early.
    assert_eq!(store.len(), 1_000_000);
    store.sweep(T0 + WINDOW_MS - 1);
    assert_eq!(
        store.len(),
        1_000_000,
        "nothing is idle 1 ms before the window ends"
    );
    // After the window passed, every entry is idle.
    store.sweep(T0 + 1000 + WINDOW_MS);
    assert_eq!(store.len(), 0);
}

#[test]
fn amortized_sweep_bounds_memory_without_explicit_sweeps() {
    let store = MemoryStore::new();
    let mut limit = KeyedLimit::new(
        "",
        Limit::per_minute(10).with_burst(1),
        Algorithm::TokenBucket,
    );
    // 600 000 distinct keys over 10 minutes (1000 per second); a token bucket of 1 refilled
    // at 10/min is full again 6 s after its request, so at most ~6 000 keys are live at a time.
    let mut max_len = 0;
    for i in 0..600_000u64 {
        limit.key = format!("rate_limit:ip:{i}:r");
        store.check_now(T0 + i, std::slice::from_ref(&limit));
        if i % 50_000 == 0 {
            max_len = max_len.max(store.len());
        }
    }
    max_len = max_len.max(store.len());
    assert!(max_len < 100_000, "memory grew to {max_len} entries");
}

#[test]
fn algorithm_change_on_a_key_starts_fresh() {
    let store = MemoryStore::new();
    let w = sw("k", 1);
    assert!(store.check_now(T0, std::slice::from_ref(&w))[0].allowed);
    assert!(!store.check_now(T0, std::slice::from_ref(&w))[0].allowed);
    let b = KeyedLimit::new("k", Limit::per_minute(1), Algorithm::TokenBucket);
    assert!(store.check_now(T0, std::slice::from_ref(&b))[0].allowed);
}
