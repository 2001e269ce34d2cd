//! A route's upstream timeouts, each bounding its own phase of the exchange:
//! `connect` the connection, `send` the upload of the request (head and body), `read` each
//! wait for the upstream (its answer's head from the moment the request was sent, then every
//! gap in its body). Expiry of any is 504 `Gateway timeout`.
//!
//! Where the client's side matters (a body sent in pieces) the client is a raw socket.

use std::time::Duration;

use integration_tests::raw::RawAnswer;
use integration_tests::{TestGateway, Upstream};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway with one route `/` to `up` (spoken to with `protocol`) and `timeout`.
async fn gateway(up: &Upstream, protocol: &str, timeout: &str) -> TestGateway {
    TestGateway::builder()
        .service_with("s", &format!("protocol = \"{protocol}\""), &[up], &[])
        .route(&format!(
            "id = \"r\"\npath = \"/\"\nservice = \"s\"\ntimeout = {timeout}"
        ))
        .start()
        .await
}

/// Status and JSON body of a proxied GET.
async fn get(gw: &TestGateway, path: &str) -> (u16, Value) {
    let res = gw.get(path).await;
    let status = res.status().as_u16();
    (status, res.json().await.expect("a JSON body"))
}

/// The gateway's own 504, not the upstream's (late) echo.
fn assert_gateway_timeout(status: u16, body: &Value) {
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"], "Gateway timeout", "{body}");
    assert!(
        body.get("instance").is_none(),
        "not the upstream's answer: {body}"
    );
}

#[tokio::test]
async fn read_bounds_the_wait_for_the_head_whatever_send_is() {
    for protocol in ["http1", "http2"] {
        // `send` is left at its 60 s default: `read` alone bounds the wait for the answer.
        let up = Upstream::delay("slow", Duration::from_secs(3)).await;
        let gw = gateway(&up, protocol, "{ connect = 1, read = 1 }").await;
        let (status, body) = get(&gw, "/x").await;
        assert_gateway_timeout(status, &body);
        assert_eq!(up.hits(), 1, "{protocol}: the request reached the upstream");
    }
}

#[tokio::test]
async fn read_bounds_every_request_on_busy_pooled_connections() {
    for protocol in ["http1", "http2"] {
        let up = Upstream::echo("e").await;
        let gw = gateway(&up, protocol, "{ connect = 1, send = 2, read = 0.5 }").await;
        let gw = &gw;
        let round = |delay_ms: u64| {
            futures_util::future::join_all((0..20).map(move |_| async move {
                let res = gw
                    .client
                    .get(gw.url("/x"))
                    .header("x-test-delay-ms", delay_ms.to_string())
                    .send()
                    .await
                    .expect("request");
                let status = res.status().as_u16();
                (status, res.json::<Value>().await.expect("a JSON body"))
            }))
        };
        // Quick answers first: their connections go back to the pool, each with a timer
        // that still carries its request's deadline.
        for (status, body) in round(0).await {
            assert_eq!(status, 200, "{protocol}: {body}");
        }
        for (status, body) in round(1500).await {
            assert_gateway_timeout(status, &body);
        }
    }
}

#[tokio::test]
async fn a_short_send_does_not_cut_the_wait_after_a_bodyless_request_went_out() {
    for protocol in ["http1", "http2"] {
        let up = Upstream::delay("half", Duration::from_millis(500)).await;
        let gw = gateway(&up, protocol, "{ connect = 1, send = 0.1, read = 1 }").await;
        let (status, body) = get(&gw, "/x").await;
        assert_eq!(status, 200, "{protocol}: {body}");
        assert_eq!(body["instance"], "half");
    }
}

/// Sends a request head and then each of `pieces` `gap` apart on a new connection, reading
/// the answer at the same time; returns the answer's status and JSON body. Writes that fail
/// because the gateway already answered and closed are not an error.
async fn trickle(gw: &TestGateway, head: &str, pieces: &[&[u8]], gap: Duration) -> (u16, Value) {
    let stream = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
    let writer = tokio::spawn(async move {
        for piece in pieces {
            // The slow client under test: one piece every `gap`.
            tokio::time::sleep(gap).await;
            if wr.write_all(&piece).await.is_err() {
                return;
            }
        }
        // Keep the write side open until the answer has been read.
        std::future::pending::<()>().await;
    });
    let mut wire = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(answer) = parse_answer(&wire) {
                return answer;
            }
            let n = rd.read(&mut buf).await.expect("read the answer");
            assert!(
                n > 0,
                "closed before a whole answer: {:?}",
                String::from_utf8_lossy(&wire)
            );
            wire.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer");
    writer.abort();
    read
}

/// A complete answer with a `Content-Length` body at the start of `wire`.
fn parse_answer(wire: &[u8]) -> Option<(u16, Value)> {
    let all = RawAnswer::parse(wire, false, &[]);
    if let Some(m) = &all.malformed {
        panic!("not a valid answer ({m}): {}", all.summary());
    }
    all.responses.first().map(|res| (res.status, res.json()))
}

#[tokio::test]
async fn read_starts_once_a_streamed_upload_is_complete() {
    for protocol in ["http1", "http2"] {
        // The echo upstream answers as soon as it has the whole body.
        let up = Upstream::echo("e").await;
        let gw = gateway(&up, protocol, "{ connect = 1, send = 5, read = 0.5 }").await;
        // Five chunks 250 ms apart: the upload takes longer than `read`, well within `send`.
        let chunk: &[u8] = b"5\r\nhello\r\n";
        let (status, body) = trickle(
            &gw,
            "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            &[chunk, chunk, chunk, chunk, chunk, b"0\r\n\r\n"],
            Duration::from_millis(250),
        )
        .await;
        assert_eq!(status, 200, "{protocol}: {body}");
        assert_eq!(body["body_len"], 25, "{body}");
    }
}

/// 504 was the answer to an expired `send` before (it bounded the upload together with
/// `read`), and stays the answer: the upload to the upstream took too long.
#[tokio::test]
async fn send_bounds_the_whole_upload() {
    for protocol in ["http1", "http2"] {
        let up = Upstream::echo("e").await;
        let gw = gateway(&up, protocol, "{ connect = 1, send = 0.3 }").await;
        // 40 bytes in eight pieces 200 ms apart: never idle for long, but 1.6 s in all.
        let piece: &[u8] = b"hello";
        let (status, body) = trickle(
            &gw,
            "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n",
            &[piece; 8],
            Duration::from_millis(200),
        )
        .await;
        assert_gateway_timeout(status, &body);
    }
}
