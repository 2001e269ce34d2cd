//! A request body the client spoils (a chunk size that is not one, or a body that ends before
//! its `Content-Length`) is the client's fault: 400 `Bad request`, never retried, and neither
//! the service's circuit breaker nor the instance's outlier detection counts it against the
//! upstream. Raw sockets: the broken bytes are what a client would send.

use std::time::Duration;

use integration_tests::raw::{read_until_closed, RawAnswer};
use integration_tests::{TestGateway, Upstream};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A chunked body whose first chunk size is not hexadecimal.
const BAD_CHUNK: &[u8] =
    b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";

/// A chunk size too large for any integer.
const HUGE_CHUNK: &[u8] =
    b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nhello\r\n0\r\n\r\n";

/// A gateway with a route `/` to service `cb` over `ups`, with `extra` service keys.
async fn gateway(ups: &[&Upstream], extra: &str) -> TestGateway {
    TestGateway::builder()
        .service_with("cb", extra, ups, &[])
        .route("id = \"r\"\npath = \"/\"\nservice = \"cb\"")
        .start()
        .await
}

const BREAKER: &str = "circuit_breaker = { min_requests = 5, failure_rate = 0.5 }";

/// Writes `raw` on a new connection (then closes the write side when `half_close`), and
/// reads until the gateway closes the connection. Returns what was read, which may be
/// nothing: a client that stopped sending may not be answered.
async fn exchange(gw: &TestGateway, raw: &[u8], half_close: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    stream.write_all(raw).await.unwrap();
    if half_close {
        stream.shutdown().await.unwrap();
    }
    let (wire, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "the gateway closes the connection");
    wire
}

/// Status and JSON body of the first answer in `wire` (a `Content-Length` one).
fn answer(wire: &[u8]) -> (u16, Value) {
    let all = RawAnswer::parse(wire, false, &[]);
    let res = all
        .responses
        .first()
        .unwrap_or_else(|| panic!("no whole answer: {}", all.summary()));
    (res.status, res.json())
}

fn assert_bad_request(wire: &[u8]) {
    let (status, body) = answer(wire);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "Bad request", "{body}");
    assert!(
        body["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{body}"
    );
}

/// A normal GET still reaches an instance.
async fn assert_served(gw: &TestGateway) -> String {
    let res = gw.get("/after").await;
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("a JSON body");
    assert_eq!(status, 200, "{body}");
    body["instance"].as_str().expect("an instance").to_string()
}

#[tokio::test]
async fn a_bad_chunk_size_is_400_and_not_the_upstreams_failure() {
    let up = Upstream::echo("cb-1").await;
    let gw = gateway(&[&up], BREAKER).await;
    for _ in 0..20 {
        assert_bad_request(&exchange(&gw, BAD_CHUNK, false).await);
    }
    assert_eq!(gw.breaker_state("cb").await, "closed");
    assert_eq!(assert_served(&gw).await, "cb-1");
}

#[tokio::test]
async fn an_overflowing_chunk_size_is_400() {
    let up = Upstream::echo("cb-1").await;
    let gw = gateway(&[&up], BREAKER).await;
    for _ in 0..8 {
        assert_bad_request(&exchange(&gw, HUGE_CHUNK, false).await);
    }
    assert_eq!(gw.breaker_state("cb").await, "closed");
    assert_eq!(assert_served(&gw).await, "cb-1");
}

#[tokio::test]
async fn a_body_cut_short_by_the_client_does_not_trip_the_breaker() {
    let up = Upstream::echo("cb-1").await;
    let gw = gateway(&[&up], BREAKER).await;
    let raw = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789";
    for _ in 0..12 {
        // Whether the client still hears an answer is not the point here.
        let wire = exchange(&gw, raw, true).await;
        if !wire.is_empty() {
            assert_bad_request(&wire);
        }
    }
    assert_eq!(gw.breaker_state("cb").await, "closed");
    assert_eq!(assert_served(&gw).await, "cb-1");

    // A client that closes its connection altogether.
    for _ in 0..12 {
        let mut stream = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
        stream.write_all(raw).await.unwrap();
        drop(stream);
    }
    assert_eq!(assert_served(&gw).await, "cb-1");
    assert_eq!(gw.breaker_state("cb").await, "closed");
}

#[tokio::test]
async fn the_instance_is_not_ejected_for_a_clients_bad_body() {
    let a = Upstream::echo("oe-a").await;
    let b = Upstream::echo("oe-b").await;
    let gw = gateway(
        &[&a, &b],
        "circuit_breaker = { min_requests = 1000, outlier = { consecutive_failures = 2 } }",
    )
    .await;
    for _ in 0..10 {
        assert_bad_request(&exchange(&gw, BAD_CHUNK, false).await);
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        seen.insert(assert_served(&gw).await);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["oe-a", "oe-b"],
        "both instances still serve"
    );
}

#[tokio::test]
async fn a_broken_body_is_never_retried() {
    let up = Upstream::echo("cb-1").await;
    let gw = TestGateway::builder()
        .service_with("cb", "", &[&up], &[])
        .route("id = \"r\"\npath = \"/\"\nservice = \"cb\"\nretry = { times = 2 }")
        .start()
        .await;

    // Streamed (chunked): the upstream may have seen the head, once.
    let raw = b"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n0\r\n\r\n";
    assert_bad_request(&exchange(&gw, raw, false).await);
    assert!(up.hits() <= 1, "{} attempts", up.hits());

    // Small enough to be kept for a retry: read whole before any attempt.
    let before = up.hits();
    let raw = b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234";
    assert_bad_request(&exchange(&gw, raw, true).await);
    assert_eq!(
        up.hits(),
        before,
        "no attempt for a body that never arrived whole"
    );
}

#[tokio::test]
async fn an_http2_upstream_is_not_blamed_either() {
    let up = Upstream::echo("h2-1").await;
    let gw = gateway(&[&up], &format!("protocol = \"http2\"\n{BREAKER}")).await;
    for _ in 0..10 {
        assert_bad_request(&exchange(&gw, BAD_CHUNK, false).await);
    }
    let raw = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789";
    for _ in 0..10 {
        let wire = exchange(&gw, raw, true).await;
        if !wire.is_empty() {
            assert_bad_request(&wire);
        }
    }
    assert_eq!(gw.breaker_state("cb").await, "closed");
    assert_eq!(assert_served(&gw).await, "h2-1");
}
