//! Against a real Redis: exactness under concurrency and across nodes, unique members, one
//! round trip, NOSCRIPT reload, Redis stopping and coming back.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, AsyncCommands};
use gw_core::{Body, ClientAddr};
use gw_ratelimit::{
    Algorithm, FailureMode, KeyedLimit, Limit, RateLimitConfig, RateLimitLayer, RateLimiter,
    RedisStore, RoutePolicy, StoreError,
};
use http::{Request, Response};
use test_support::redis::{pool, redis_url, unique_prefix, OwnRedis};
use test_support::wait_for;
use tower::{service_fn, Layer, ServiceExt};

const TIMEOUT: Duration = Duration::from_millis(300);

fn store(url: &str, prefix: &str) -> Arc<RedisStore> {
    Arc::new(RedisStore::new(pool(url), prefix, TIMEOUT))
}

async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn concurrent(limiters: &[Arc<RateLimiter>], n: usize, limits: Vec<KeyedLimit>) -> usize {
    let limits = Arc::new(limits);
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let lim = limiters[i % limiters.len()].clone();
            let limits = limits.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                lim.check(&limits).await.unwrap().iter().all(|d| d.allowed)
            })
        })
        .collect();
    let mut passed = 0;
    for t in tasks {
        passed += usize::from(t.await.unwrap());
    }
    passed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_limit_ten_exactly_ten_pass() {
    let (url, _guard) = redis_url();
    for algorithm in [Algorithm::SlidingWindow, Algorithm::TokenBucket] {
        let prefix = unique_prefix("fifty");
        let lim = RateLimiter::new(&RateLimitConfig::default(), store(&url, &prefix));
        let limits = vec![KeyedLimit::new(
            "rate_limit:ip:10.0.0.1:r",
            Limit::per_minute(10),
            algorithm,
        )];
        assert_eq!(
            concurrent(std::slice::from_ref(&lim), 50, limits).await,
            10,
            "{algorithm:?}"
        );
        assert!(!lim.is_degraded(), "the Redis path was used");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_sharing_redis_pass_exactly_the_limit() {
    let (url, _guard) = redis_url();
    for algorithm in [Algorithm::SlidingWindow, Algorithm::TokenBucket] {
        let prefix = unique_prefix("two-nodes");
        // Two gateway nodes: separate limiters, separate pools, one Redis.
        let a = RateLimiter::new(&RateLimitConfig::default(), store(&url, &prefix));
        let b = RateLimiter::new(&RateLimitConfig::default(), store(&url, &prefix));
        let limits = vec![
            KeyedLimit::new("rate_limit:user:u1:r", Limit::per_minute(25), algorithm),
            KeyedLimit::new("rate_limit:global", Limit::per_minute(1000), algorithm),
        ];
        assert_eq!(
            concurrent(&[a.clone(), b.clone()], 80, limits.clone()).await,
            25
        );
        // And sequentially, each node sees the other's consumption.
        assert!(!a.check(&limits).await.unwrap()[0].allowed);
        assert!(!b.check(&limits).await.unwrap()[0].allowed);
        assert!(!a.is_degraded() && !b.is_degraded());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_requests_in_one_millisecond_are_all_counted() {
    let (url, _guard) = redis_url();
    let prefix = unique_prefix("same-ms");
    let lim = RateLimiter::new(&RateLimitConfig::default(), store(&url, &prefix));
    let key = "rate_limit:ip:10.0.0.9:r";
    let limits = vec![KeyedLimit::new(
        key,
        Limit::per_minute(10_000),
        Algorithm::SlidingWindow,
    )];
    let passed = concurrent(&[lim], 300, limits).await;
    assert_eq!(passed, 300);
    let mut c = conn(&url).await;
    let full = format!("{prefix}{key}:sw");
    let card: usize = c.zcard(&full).await.unwrap();
    assert_eq!(card, 300, "every request is a distinct member");
    let entries: Vec<(String, f64)> = c.zrange_withscores(&full, 0, -1).await.unwrap();
    let mut per_ms = std::collections::HashMap::<u64, usize>::new();
    for (member, score) in &entries {
        let (ms, n) = member.split_once(':').unwrap();
        assert_eq!(ms.parse::<u64>().unwrap(), *score as u64);
        assert!(n.parse::<usize>().is_ok());
        *per_ms.entry(*score as u64).or_default() += 1;
    }
    // Pipelined on one connection, many land in the same millisecond.
    assert!(
        per_ms.values().any(|&n| n > 1),
        "no two requests shared a millisecond: {per_ms:?}"
    );
    let ttl: i64 = c.pttl(&full).await.unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "ttl {ttl}");
}

#[tokio::test]
async fn layer_keys_with_prefix_in_redis() {
    let (url, _guard) = redis_url();
    let prefix = unique_prefix("keys");
    let config = RateLimitConfig {
        algorithm: Algorithm::TokenBucket,
        default: Some(Limit::per_minute(60).with_burst(2)),
        global: Some(Limit::per_minute(100)),
        per_ip: Some(Limit::per_minute(100)),
        ..Default::default()
    };
    let lim = RateLimiter::new(&config, store(&url, &prefix));
    let svc = RateLimitLayer::new(lim, RoutePolicy::from_config("users", None, &config)).layer(
        service_fn(|_r: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::empty())) }),
    );
    let req = || {
        let mut r = Request::get("/").body(Body::empty()).unwrap();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        r.extensions_mut().insert(ClientAddr { ip, https: false });
        r
    };
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(svc.clone().oneshot(req()).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    let mut c = conn(&url).await;
    for key in [
        "rate_limit:ip:10.1.2.3:users",
        "rate_limit:per_ip:10.1.2.3",
        "rate_limit:global",
    ] {
        let t: String = redis::cmd("TYPE")
            .arg(format!("{prefix}{key}:tb"))
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(t, "hash", "{key}");
    }
    // Only the two allowed requests were taken from per_ip: 98 of 100 tokens left.
    let units: u64 = c
        .hget(format!("{prefix}rate_limit:per_ip:10.1.2.3:tb"), "u")
        .await
        .unwrap();
    assert!((98 * 60_000..99 * 60_000).contains(&units), "units {units}");
}

#[tokio::test]
async fn noscript_after_script_flush_reloads() {
    // Own server: SCRIPT FLUSH must not disturb other tests.
    let own = OwnRedis::start();
    let prefix = unique_prefix("noscript");
    let st = store(&own.url(), &prefix);
    let lim = RateLimiter::new(&RateLimitConfig::default(), st.clone());
    let limits = [KeyedLimit::new(
        "k",
        Limit::per_minute(3),
        Algorithm::SlidingWindow,
    )];
    assert!(lim.check(&limits).await.unwrap()[0].allowed);
    let mut c = conn(&own.url()).await;
    let exists: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(st.script_hash())
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(exists, [true]);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut c)
        .await
        .unwrap();
    let d = lim.check(&limits).await.unwrap();
    assert!(d[0].allowed);
    assert_eq!(d[0].remaining, 1, "counted in Redis, not in a fallback");
    assert!(!lim.is_degraded());

    // One round trip per request: one EVALSHA per check, no pool PINGs in between.
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut c)
        .await
        .unwrap();
    let three = [
        KeyedLimit::new("a", Limit::per_minute(100), Algorithm::SlidingWindow),
        KeyedLimit::new("b", Limit::per_minute(100), Algorithm::SlidingWindow),
        KeyedLimit::new("c", Limit::per_minute(100), Algorithm::SlidingWindow),
    ];
    for _ in 0..10 {
        lim.check(&three).await.unwrap();
    }
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .unwrap();
    let calls = |cmd: &str| {
        info.lines()
            .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|v| v.split(',').next())
            .map_or(0, |v| v.parse::<u64>().unwrap())
    };
    assert_eq!(calls("evalsha"), 10, "{info}");
    assert_eq!(calls("ping"), 0, "{info}");
    assert_eq!(calls("eval"), 0, "{info}");
}

async fn timed_check(lim: &RateLimiter, limits: &[KeyedLimit]) -> (Result<bool, ()>, Duration) {
    let start = Instant::now();
    let r = lim
        .check(limits)
        .await
        .map(|d| d.iter().all(|d| d.allowed))
        .map_err(|_| ());
    (r, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_test_open_and_closed_then_restarted() {
    let mut own = OwnRedis::start();
    let port = own.port;
    let prefix = unique_prefix("outage");
    let open_cfg = RateLimitConfig::default();
    let closed_cfg = RateLimitConfig {
        failure_mode: FailureMode::Closed,
        ..Default::default()
    };
    let open = RateLimiter::new(&open_cfg, store(&own.url(), &prefix));
    let closed = RateLimiter::new(&closed_cfg, store(&own.url(), &prefix));
    let limits = [KeyedLimit::new(
        "rate_limit:ip:10.0.0.1:r",
        Limit::per_minute(5),
        Algorithm::SlidingWindow,
    )];
    // Two requests through Redis.
    assert_eq!(timed_check(&open, &limits).await.0, Ok(true));
    assert_eq!(timed_check(&closed, &limits).await.0, Ok(true));

    own.kill();
    let bound = TIMEOUT + Duration::from_secs(2);
    // Open: the local fallback (same policy, its own count) lets 5 through, then limits.
    let mut results = Vec::new();
    for _ in 0..7 {
        let (r, took) = timed_check(&open, &limits).await;
        assert!(took < bound, "open-mode request took {took:?}");
        results.push(r);
    }
    assert_eq!(
        results,
        [
            Ok(true),
            Ok(true),
            Ok(true),
            Ok(true),
            Ok(true),
            Ok(false),
            Ok(false)
        ]
    );
    assert!(open.is_degraded());
    // Closed: 503 (Unavailable), also within the timeout.
    for _ in 0..3 {
        let (r, took) = timed_check(&closed, &limits).await;
        assert!(took < bound, "closed-mode request took {took:?}");
        assert_eq!(r, Err(()));
    }
    assert!(closed.is_degraded());

    // Redis comes back on the same port (empty: nothing was saved).
    let _again = OwnRedis::start_on(port);
    let (closed, open, limits) = (&closed, &open, &limits);
    wait_for(
        Duration::from_secs(10),
        "the shared path to resume",
        || async move {
            let (r, took) = timed_check(closed, limits).await;
            assert!(took < bound);
            r.is_ok() && !closed.is_degraded()
        },
    )
    .await;
    wait_for(
        Duration::from_secs(10),
        "the open limiter to resume",
        || async move {
            timed_check(open, limits).await.0.unwrap();
            !open.is_degraded()
        },
    )
    .await;
    // The shared count lives in the new Redis again.
    let mut c = conn(&format!("redis://127.0.0.1:{port}")).await;
    let card: u64 = c
        .zcard(format!("{prefix}rate_limit:ip:10.0.0.1:r:sw"))
        .await
        .unwrap();
    assert!(card >= 2, "zcard {card}");
}

#[tokio::test]
async fn unreachable_redis_at_start_open_mode_serves_within_timeout() {
    // A port nobody listens on: the gateway starts while Redis is unreachable.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let lim = RateLimiter::new(
        &RateLimitConfig::default(),
        store(&format!("redis://127.0.0.1:{port}"), "x:"),
    );
    let limits = [KeyedLimit::new(
        "k",
        Limit::per_minute(1),
        Algorithm::TokenBucket,
    )];
    let (r, took) = timed_check(&lim, &limits).await;
    assert_eq!(r, Ok(true));
    assert!(took < TIMEOUT + Duration::from_secs(2), "{took:?}");
    assert_eq!(timed_check(&lim, &limits).await.0, Ok(false));
    assert_eq!(lim.stats()["store"], "redis");
    assert_eq!(lim.stats()["degraded"], true);
}

/// A reload that switches the algorithm (or two nodes configured differently) meets the other
/// algorithm's keys: each algorithm has keys of its own, so both keep deciding through Redis.
#[tokio::test]
async fn switching_the_algorithm_keeps_the_shared_store_working() {
    let (url, _guard) = redis_url();
    let prefix = unique_prefix("switch");
    let cfg = |algorithm| RateLimitConfig {
        algorithm,
        failure_mode: FailureMode::Closed,
        ..Default::default()
    };
    let sw = RateLimiter::new(&cfg(Algorithm::SlidingWindow), store(&url, &prefix));
    let tb = RateLimiter::new(&cfg(Algorithm::TokenBucket), store(&url, &prefix));
    let key = "rate_limit:ip:10.0.0.1:r";
    let limits = |algorithm| [KeyedLimit::new(key, Limit::per_minute(5), algorithm)];
    for _ in 0..3 {
        for (lim, algorithm) in [
            (&sw, Algorithm::SlidingWindow),
            (&tb, Algorithm::TokenBucket),
        ] {
            let d = lim
                .check(&limits(algorithm))
                .await
                .expect("decided by Redis");
            assert!(d[0].allowed, "{algorithm:?}");
        }
    }
    assert!(!sw.is_degraded() && !tb.is_degraded());
    let mut c = conn(&url).await;
    for (suffix, ty) in [(":sw", "zset"), (":tb", "hash")] {
        let t: String = redis::cmd("TYPE")
            .arg(format!("{prefix}{key}{suffix}"))
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(t, ty, "{suffix}");
    }
}

/// A key holding another type (old layout, written by hand) is reset by the script instead of
/// failing every decision, and the other requests never notice.
#[tokio::test]
async fn a_key_of_the_wrong_type_is_not_an_outage() {
    let (url, _guard) = redis_url();
    let prefix = unique_prefix("wrongtype");
    let cfg = RateLimitConfig {
        failure_mode: FailureMode::Closed,
        ..Default::default()
    };
    let lim = RateLimiter::new(&cfg, store(&url, &prefix));
    let bad = "rate_limit:ip:10.0.0.66:r";
    let mut c = conn(&url).await;
    for algorithm in [Algorithm::SlidingWindow, Algorithm::TokenBucket] {
        for k in [
            format!("{prefix}{bad}"),
            format!("{prefix}{bad}:sw"),
            format!("{prefix}{bad}:tb"),
        ] {
            let () = c.set(k, "not-a-limiter-key").await.unwrap();
        }
        let limits = [
            KeyedLimit::new(bad, Limit::per_minute(5), algorithm),
            KeyedLimit::new("rate_limit:global", Limit::per_minute(100), algorithm),
        ];
        let d = lim.check(&limits).await.expect("decided by Redis");
        assert!(d.iter().all(|d| d.allowed), "{algorithm:?}");
        assert!(!lim.is_degraded());
    }
    // What Redis says about a wrong type is an answer, not an outage.
    let k = format!("{prefix}plain");
    let () = c.set(&k, "x").await.unwrap();
    let err = c.hget::<_, _, Option<String>>(&k, "u").await.unwrap_err();
    assert!(!StoreError::from(err).is_outage());
}

/// Fails every decision that involves the key `bad` with Redis's error answer `err`; others go
/// to memory.
#[derive(Debug)]
struct OneBadKey(gw_ratelimit::MemoryStore, redis::RedisError);

impl gw_ratelimit::Store for OneBadKey {
    fn check<'a>(
        &'a self,
        now_ms: u64,
        limits: &'a [KeyedLimit],
    ) -> gw_ratelimit::store::BoxFuture<'a, Result<gw_ratelimit::store::Decisions, StoreError>>
    {
        if limits.iter().any(|l| l.key == "bad") {
            let err = self.1.clone();
            return Box::pin(async move { Err(StoreError::Redis(err)) });
        }
        self.0.check(now_ms, limits)
    }

    fn name(&self) -> &'static str {
        "one-bad-key"
    }
}

#[tokio::test]
async fn an_error_answer_for_one_key_does_not_take_the_store_down() {
    let cfg = RateLimitConfig {
        failure_mode: FailureMode::Closed,
        ..Default::default()
    };
    let (url, _guard) = redis_url();
    let mut c = conn(&url).await;
    let k = format!("{}plain", unique_prefix("wrongtype-answer"));
    let () = c.set(&k, "x").await.unwrap();
    let wrongtype = c.hget::<_, _, Option<String>>(&k, "u").await.unwrap_err();
    let store = OneBadKey(gw_ratelimit::MemoryStore::new(), wrongtype);
    let lim = RateLimiter::new(&cfg, Arc::new(store));
    let one = |key: &str| {
        [KeyedLimit::new(
            key,
            Limit::per_minute(5),
            Algorithm::SlidingWindow,
        )]
    };
    assert!(
        lim.check(&one("bad")).await.is_err(),
        "closed: that request is refused"
    );
    assert!(!lim.is_degraded());
    let d = lim
        .check(&one("good"))
        .await
        .expect("others still decided by the store");
    assert!(d[0].allowed);
}
