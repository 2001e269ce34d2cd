//! Rate-limit policies on the wire: the token bucket's `RateLimit-Policy`, and nodes that
//! disagree on the algorithm sharing one Redis. Every request is written as raw bytes.

use std::net::SocketAddr;

use integration_tests::raw::{raw_exchange, RawResponse};
use integration_tests::redis as test_redis;
use integration_tests::{TestGateway, Upstream};

async fn get(addr: SocketAddr, path: &str) -> RawResponse {
    let wire = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
    let answer = raw_exchange(addr, wire.as_bytes()).await;
    answer
        .single()
        .unwrap_or_else(|| panic!("one response: {}", answer.summary()))
        .clone()
}

fn header(res: &RawResponse, name: &str) -> String {
    String::from_utf8_lossy(res.header(name).unwrap_or_default()).into_owned()
}

#[tokio::test]
async fn token_bucket_policy_states_burst_per_refill_window() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .raw("[rate_limit]\nalgorithm = \"token_bucket\"\n")
        .service("s", &[&up])
        .route("id = \"tb\"\npath = \"/tb\"\nservice = \"s\"\nrate_limit = { requests_per_minute = 100, burst = 5 }")
        .start()
        .await;
    let res = get(gw.gateway.proxy_addr(), "/tb").await;
    assert_eq!(res.status, 200);
    // 5 tokens, refilled from empty in 3 s at 100 per minute.
    assert_eq!(header(&res, "ratelimit-policy"), "\"default\";q=5;w=3");
    assert_eq!(header(&res, "x-ratelimit-limit"), "5");
}

/// Two nodes, one Redis, different algorithms, `failure_mode = "closed"`: both keep deciding
/// (no WRONGTYPE outage, no 503).
#[tokio::test]
async fn nodes_with_different_algorithms_share_redis_without_an_outage() {
    let up = Upstream::echo("a").await;
    let prefix = test_redis::unique_prefix("rl_mixed_algorithms");
    let start = |algorithm: &str| {
        TestGateway::builder()
            .raw(&format!(
                "[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"\n[rate_limit]\nalgorithm = \"{algorithm}\"\nfailure_mode = \"closed\"\n",
                test_redis::shared_url()
            ))
            .service("s", &[&up])
            .route("id = \"r\"\npath = \"/r\"\nservice = \"s\"\nrate_limit = { requests_per_minute = 100 }")
            .start()
    };
    let sw = start("sliding_window").await;
    let tb = start("token_bucket").await;
    for _ in 0..5 {
        for gw in [&sw, &tb] {
            let res = get(gw.gateway.proxy_addr(), "/r").await;
            assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
        }
    }
    assert_eq!(up.hits(), 10);
}
