//! Rate limits through the real gateway (docs/http-answers.md, docs/operations.md,
//! docs/admin-api.md): the headers on every answer of a limited route, 429 answers, `default`, per-user vs
//! per-IP keys, exactness under concurrency (memory, Redis, two gateways on one Redis), Redis
//! outages in both failure modes, `GET /admin/rate-limits` and `gateway_rate_limited_total`.

use std::time::Duration;

use deadpool_redis::redis;
use futures_util::future::join_all;
use integration_tests::jwt::{sign_hs256, unix_now as now};
use integration_tests::redis::{self as test_redis, OwnRedis};
use integration_tests::{eventually, TestGateway, Upstream};
use serde_json::{json, Value};

const SECRET: &str = "it-rate-limit-secret";

fn token(sub: &str) -> String {
    let claims = json!({"sub": sub, "role": "user", "iss": "api-gateway", "exp": now() + 600, "jti": format!("{:016x}", fastrand::u64(..))});
    sign_hs256(&claims, SECRET)
}

fn redis_store(url: &str, prefix: &str, extra: &str) -> String {
    format!(
        "[store]\nbackend = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"{prefix}\"\n{extra}\n"
    )
}

/// A route id no other test uses (the metrics registry is process-wide).
fn route_id(name: &str) -> String {
    format!("{name}_{:08x}", fastrand::u32(..))
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

fn num(res: &reqwest::Response, name: &str) -> u64 {
    header(res, name)
        .unwrap_or_else(|| panic!("{name} missing on a {} answer", res.status()))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// The headers every answer of a limited route carries; returns `(limit, remaining, reset)`.
fn limit_headers(res: &reqwest::Response) -> (u64, u64, u64) {
    let limit = num(res, "x-ratelimit-limit");
    let remaining = num(res, "x-ratelimit-remaining");
    let reset = num(res, "x-ratelimit-reset");
    assert!(
        reset + 1 >= now(),
        "X-RateLimit-Reset is epoch seconds, got {reset}"
    );
    assert!(
        reset <= now() + 3600,
        "X-RateLimit-Reset is epoch seconds, got {reset}"
    );
    assert!(
        header(res, "ratelimit").is_some_and(|v| !v.is_empty()),
        "RateLimit missing"
    );
    assert!(
        header(res, "ratelimit-policy").is_some_and(|v| !v.is_empty()),
        "RateLimit-Policy missing"
    );
    (limit, remaining, reset)
}

/// Asserts a 429 as docs/http-answers.md gives it.
async fn assert_limited(res: reqwest::Response) {
    assert_eq!(res.status(), 429);
    limit_headers(&res);
    assert_eq!(num(&res, "x-ratelimit-remaining"), 0);
    let retry = num(&res, "retry-after");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "Rate limit exceeded");
    assert!(
        body["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
}

/// `n` concurrent GETs of `path` spread over `gateways`; the statuses.
async fn burst(gateways: &[&TestGateway], path: &str, n: usize) -> Vec<u16> {
    let futs = (0..n).map(|i| {
        let gw = gateways[i % gateways.len()];
        async move { gw.get(path).await.status().as_u16() }
    });
    join_all(futs).await
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

async fn admin_json(gw: &TestGateway, path: &str) -> Value {
    let res = gw.client.get(gw.admin_url(path)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn headers_on_every_answer_of_a_limited_route_and_429() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .service("s", &[&up])
        .route("id = \"limited\"\npath = \"/limited\"\nservice = \"s\"\nrate_limit = { requests_per_minute = 3 }")
        .route("id = \"free\"\npath = \"/free\"\nservice = \"s\"")
        .start()
        .await;

    for expected_remaining in [2, 1, 0] {
        let res = gw.get("/limited").await;
        assert_eq!(res.status(), 200);
        let (limit, remaining, _) = limit_headers(&res);
        assert_eq!((limit, remaining), (3, expected_remaining));
    }
    for _ in 0..2 {
        assert_limited(gw.get("/limited").await).await;
    }
    assert_eq!(up.hits(), 3, "a 429 never reaches the upstream");

    // An unlimited route says nothing about limits.
    for _ in 0..5 {
        let res = gw.get("/free").await;
        assert_eq!(res.status(), 200);
        for h in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "ratelimit",
            "ratelimit-policy",
            "retry-after",
        ] {
            assert!(res.headers().get(h).is_none(), "{h} on an unlimited route");
        }
    }
}

#[tokio::test]
async fn limit_headers_on_upstream_errors_too() {
    let up = Upstream::status("down", 500).await;
    let gw = TestGateway::builder()
        .service("s", &[&up])
        .route(
            "id = \"r\"\npath = \"/r\"\nservice = \"s\"\nrate_limit = { requests_per_minute = 2 }",
        )
        .start()
        .await;
    let res = gw.get("/r").await;
    assert_eq!(res.status(), 500);
    let (limit, remaining, _) = limit_headers(&res);
    assert_eq!((limit, remaining), (2, 1));
    let res = gw.get("/r").await;
    assert_eq!(res.status(), 500);
    assert_eq!(limit_headers(&res).1, 0);
    assert_limited(gw.get("/r").await).await;
}

#[tokio::test]
async fn default_applies_to_routes_without_their_own_limit() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .raw("[rate_limit]\ndefault = { requests_per_minute = 2, burst = 2 }\n")
        .service("s", &[&up])
        .route("id = \"plain\"\npath = \"/plain\"\nservice = \"s\"")
        .route("id = \"own\"\npath = \"/own\"\nservice = \"s\"\nrate_limit = { requests_per_minute = 5 }")
        .start()
        .await;

    for _ in 0..2 {
        let res = gw.get("/plain").await;
        assert_eq!(res.status(), 200);
        assert_eq!(limit_headers(&res).0, 2);
    }
    assert_limited(gw.get("/plain").await).await;

    // The route's own limit wins, and its budget is its own.
    for i in 0..5 {
        let res = gw.get("/own").await;
        assert_eq!(res.status(), 200, "request {i} on /own");
        assert_eq!(limit_headers(&res).0, 5);
    }
    assert_limited(gw.get("/own").await).await;
}

#[tokio::test]
async fn authenticated_callers_have_their_own_budgets_anonymous_ones_share_the_address() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .raw(&format!("[auth.jwt]\nsecret = \"{SECRET}\"\nuser_lookup = false\n"))
        .raw("[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n")
        .service("s", &[&up])
        .route("id = \"auth\"\npath = \"/auth\"\nservice = \"s\"\nauth_required = true\nrate_limit = { requests_per_minute = 2 }")
        .route("id = \"anon\"\npath = \"/anon\"\nservice = \"s\"\nrate_limit = { requests_per_minute = 2 }")
        .start()
        .await;
    let alice = token("alice");
    let bob = token("bob");
    let as_user = |tok: &str| gw.client.get(gw.url("/auth")).bearer_auth(tok).send();

    // Authentication comes first: refused callers spend no budget.
    for _ in 0..5 {
        let res = gw.client.get(gw.url("/auth")).send().await.unwrap();
        assert_eq!(res.status(), 401);
    }
    for _ in 0..2 {
        assert_eq!(as_user(&alice).await.unwrap().status(), 200);
    }
    assert_limited(as_user(&alice).await.unwrap()).await;
    // Same address, another user: a fresh budget.
    let res = as_user(&bob).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(limit_headers(&res).1, 1);
    // A new token of alice is still alice.
    assert_limited(as_user(&token("alice")).await.unwrap()).await;

    // Without authentication the key is the client address (here given by a trusted proxy).
    let from = |ip: &'static str| {
        gw.client
            .get(gw.url("/anon"))
            .header("x-forwarded-for", ip)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(from("10.0.0.1").await.unwrap().status(), 200);
    }
    assert_limited(from("10.0.0.1").await.unwrap()).await;
    // A token on an unauthenticated route does not make a user budget.
    let res = gw
        .client
        .get(gw.url("/anon"))
        .header("x-forwarded-for", "10.0.0.1")
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_limited(res).await;
    assert_eq!(from("10.0.0.2").await.unwrap().status(), 200);
}

#[tokio::test]
async fn memory_backend_50_concurrent_with_limit_10_lets_exactly_10_through() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .service("s", &[&up])
        .route(
            "id = \"r\"\npath = \"/r\"\nservice = \"s\"\nrate_limit = { requests_per_minute = 10 }",
        )
        .start()
        .await;
    let statuses = burst(&[&gw], "/r", 50).await;
    assert_eq!(count(&statuses, 200), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 40, "{statuses:?}");
    assert_eq!(up.hits(), 10);
}

#[tokio::test]
async fn redis_backend_50_concurrent_with_limit_10_lets_exactly_10_through() {
    let up = Upstream::echo("a").await;
    let prefix = test_redis::unique_prefix("rl_redis_exact");
    let gw = TestGateway::builder()
        .raw(&redis_store(&test_redis::shared_url(), &prefix, ""))
        .service("s", &[&up])
        .route(
            "id = \"r\"\npath = \"/r\"\nservice = \"s\"\nrate_limit = { requests_per_minute = 10 }",
        )
        .start()
        .await;
    let statuses = burst(&[&gw], "/r", 50).await;
    assert_eq!(count(&statuses, 200), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 40, "{statuses:?}");
    assert_eq!(up.hits(), 10);

    // The limiter state lives in Redis under the prefix (docs/operations.md, "Store layout").
    let mut conn = test_redis::pool(&test_redis::shared_url())
        .get()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}rate_limit:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        keys.iter().any(
            |k| k.starts_with(&format!("{prefix}rate_limit:ip:127.0.0.1")) && k.ends_with(":r:sw")
        ),
        "{keys:?}"
    );
}

#[tokio::test]
async fn two_gateways_sharing_redis_let_exactly_the_limit_through() {
    let up = Upstream::echo("a").await;
    let prefix = test_redis::unique_prefix("rl_two_nodes");
    let start = || {
        TestGateway::builder()
            .raw(&redis_store(&test_redis::shared_url(), &prefix, ""))
            .service("s", &[&up])
            .route("id = \"r\"\npath = \"/r\"\nservice = \"s\"\nrate_limit = { requests_per_minute = 10 }")
            .start()
    };
    let gw1 = start().await;
    let gw2 = start().await;
    let statuses = burst(&[&gw1, &gw2], "/r", 50).await;
    assert_eq!(count(&statuses, 200), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 40, "{statuses:?}");
    assert_eq!(up.hits(), 10);
    // Both nodes now refuse.
    assert_limited(gw1.get("/r").await).await;
    assert_limited(gw2.get("/r").await).await;
}

async fn outage_gateway(own: &OwnRedis, mode: &str, route: &str, up: &Upstream) -> TestGateway {
    let prefix = test_redis::unique_prefix("rl_outage");
    TestGateway::builder()
        .raw(&redis_store(&own.url(), &prefix, "timeout_ms = 300"))
        .raw(&format!("[rate_limit]\nfailure_mode = \"{mode}\"\n"))
        .service("s", &[up])
        .route(&format!("id = \"{route}\"\npath = \"/r\"\nservice = \"s\"\nrate_limit = {{ requests_per_minute = 5 }}"))
        .start()
        .await
}

/// A GET that must be answered (not hang): bounded well above the store timeout.
async fn answered(gw: &TestGateway, path: &str) -> reqwest::Response {
    tokio::time::timeout(Duration::from_secs(10), gw.get(path))
        .await
        .expect("the gateway answers while Redis is down")
}

#[tokio::test]
async fn redis_down_closed_mode_answers_503_then_recovers_on_restart() {
    let up = Upstream::echo("a").await;
    let mut own = OwnRedis::start();
    let port = own.port;
    let gw = outage_gateway(&own, "closed", &route_id("closed"), &up).await;
    assert_eq!(gw.get("/r").await.status(), 200);

    own.kill();
    for _ in 0..3 {
        let res = answered(&gw, "/r").await;
        assert_eq!(res.status(), 503);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "Service temporarily unavailable");
        assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    }
    assert_eq!(up.hits(), 1);
    let stats = admin_json(&gw, "/admin/rate-limits").await;
    assert_eq!(stats["rate_limits"]["degraded"], true, "{stats}");

    let _redis = OwnRedis::start_on(port);
    let back = eventually(Duration::from_secs(10), || async {
        gw.get("/r").await.status() == 200
    })
    .await;
    assert!(back, "limiting did not resume after Redis came back");
    // Shared limiting again: a fresh Redis, so 5 in all, then 429.
    let mut passed = 1;
    loop {
        let res = gw.get("/r").await;
        match res.status().as_u16() {
            200 => passed += 1,
            429 => break,
            s => panic!("unexpected {s} after Redis came back"),
        }
        assert!(
            passed <= 5,
            "more than the limit passed after Redis came back"
        );
    }
    assert_eq!(passed, 5);
}

#[tokio::test]
async fn redis_down_open_mode_limits_locally_then_shares_again_on_restart() {
    let up = Upstream::echo("a").await;
    let mut own = OwnRedis::start();
    let port = own.port;
    let route = route_id("open");
    let gw = outage_gateway(&own, "open", &route, &up).await;
    for _ in 0..2 {
        assert_eq!(gw.get("/r").await.status(), 200);
    }

    own.kill();
    // Still limited, by this node alone: some pass (at most the limit), then 429.
    let mut passed = 0;
    loop {
        let res = answered(&gw, "/r").await;
        match res.status().as_u16() {
            200 => {
                passed += 1;
                assert_eq!(limit_headers(&res).0, 5);
            }
            429 => {
                assert_limited(res).await;
                break;
            }
            s => panic!("open mode answered {s} while Redis is down"),
        }
        assert!(
            passed <= 5,
            "more than the limit passed while Redis is down"
        );
    }
    assert!(
        passed >= 1,
        "open mode must keep serving while Redis is down"
    );
    let stats = admin_json(&gw, "/admin/rate-limits").await;
    assert_eq!(stats["rate_limits"]["degraded"], true, "{stats}");

    let restarted = OwnRedis::start_on(port);
    let back = eventually(Duration::from_secs(10), || async {
        gw.get("/r").await.status() == 200
    })
    .await;
    assert!(back, "shared limiting did not resume after Redis came back");
    let mut passed = 1;
    loop {
        match gw.get("/r").await.status().as_u16() {
            200 => passed += 1,
            429 => break,
            s => panic!("unexpected {s} after Redis came back"),
        }
        assert!(
            passed <= 5,
            "more than the limit passed after Redis came back"
        );
    }
    assert_eq!(
        passed, 5,
        "the restarted (empty) Redis holds the whole budget"
    );
    let stats = admin_json(&gw, "/admin/rate-limits").await;
    assert_eq!(stats["rate_limits"]["degraded"], false, "{stats}");
    // And the state is in the restarted Redis.
    let mut conn = test_redis::pool(&restarted.url()).get().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*rate_limit:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        keys.iter().any(|k| k.ends_with(&format!("{route}:sw"))),
        "{keys:?}"
    );
}

#[tokio::test]
async fn admin_rate_limits_shows_policy_and_usage() {
    let up = Upstream::echo("a").await;
    let route = route_id("stats");
    let gw = TestGateway::builder()
        .service("s", &[&up])
        .route(&format!("id = \"{route}\"\npath = \"/r\"\nservice = \"s\"\nrate_limit = {{ requests_per_minute = 2 }}"))
        .route("id = \"free\"\npath = \"/free\"\nservice = \"s\"")
        .start()
        .await;
    for _ in 0..2 {
        assert_eq!(gw.get("/r").await.status(), 200);
    }
    for _ in 0..3 {
        assert_eq!(gw.get("/r").await.status(), 429);
    }
    let body = admin_json(&gw, "/admin/rate-limits").await;
    let all = &body["rate_limits"];
    assert!(all.is_object(), "{body}");
    let text = all.to_string();
    let r = &all["routes"][&route];
    assert_eq!(r["limit"]["requests_per_minute"], 2, "{text}");
    assert_eq!(r["allowed"], 2, "{text}");
    assert_eq!(r["limited"], 3, "{text}");
    assert!(
        r["top_keys"].as_array().is_some_and(|k| k
            .iter()
            .any(|k| k["key"].as_str().unwrap_or("").contains("127.0.0.1"))),
        "{text}"
    );
    assert!(all["routes"].get("free").is_none(), "{text}");
}

fn metric(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .next()
}

#[tokio::test]
async fn rate_limited_total_counts_429s() {
    let up = Upstream::echo("a").await;
    let route = route_id("metric");
    let gw = TestGateway::builder()
        .service("s", &[&up])
        .route(&format!("id = \"{route}\"\npath = \"/r\"\nservice = \"s\"\nrate_limit = {{ requests_per_minute = 1 }}"))
        .start()
        .await;
    let label = format!("route=\"{route}\"");
    let scrape = || async {
        let res = gw
            .client
            .get(gw.admin_url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    };
    let before = metric(&scrape().await, "gateway_rate_limited_total", &label).unwrap_or(0.0);
    assert_eq!(before, 0.0);
    assert_eq!(gw.get("/r").await.status(), 200);
    for _ in 0..4 {
        assert_eq!(gw.get("/r").await.status(), 429);
    }
    let text = scrape().await;
    assert_eq!(
        metric(&text, "gateway_rate_limited_total", &label),
        Some(4.0),
        "{}",
        text.lines()
            .filter(|l| l.contains("rate_limited"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn token_bucket_uses_burst_as_capacity() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .raw("[rate_limit]\nalgorithm = \"token_bucket\"\n")
        .service("s", &[&up])
        .route("id = \"r\"\npath = \"/r\"\nservice = \"s\"\nrate_limit = { requests_per_minute = 1, burst = 4 }")
        .start()
        .await;
    let statuses = burst(&[&gw], "/r", 12).await;
    assert_eq!(count(&statuses, 200), 4, "{statuses:?}");
    let res = gw.get("/r").await;
    assert_eq!(limit_headers(&res).0, 4);
    assert_limited(res).await;
}
