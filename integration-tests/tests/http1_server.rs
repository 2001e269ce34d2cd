//! The plain HTTP/1.1 listener on the wire: its own loop answers requests without a body,
//! and hands a connection to hyper at the first request it does not take (a body, an
//! upgrade, `Expect`, HTTP/1.0, a bad head). Raw sockets, so that framing, pipelining and
//! the hand-off are seen as a client sees them.

use std::time::Duration;

use integration_tests::raw::{RawAnswer, RawResponse};
use integration_tests::{TestGateway, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn gateway(up: &Upstream) -> TestGateway {
    TestGateway::builder().catch_all(&[up]).start().await
}

/// Sends `raw` on a new connection and reads until the gateway closes it.
async fn exchange(gw: &TestGateway, raw: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut all))
        .await
        .expect("the gateway closes the connection")
        .unwrap();
    all
}

/// Splits what a connection received into answers (chunked bodies decoded); `heads` marks
/// answers to HEAD requests. Every byte must belong to a whole answer.
fn answers(wire: &[u8], heads: &[bool]) -> Vec<RawResponse> {
    let all = RawAnswer::parse(wire, true, heads);
    assert!(
        all.malformed.is_none() && all.rest.is_empty(),
        "not whole answers: {}",
        all.summary()
    );
    all.responses
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    let wire = exchange(
        &gw,
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /second?q=1 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let got = answers(&wire, &[]);
    assert_eq!(got.len(), 3, "{:?}", String::from_utf8_lossy(&wire));
    let paths: Vec<String> = got
        .iter()
        .map(|a| {
            let j = a.json();
            format!(
                "{}{}",
                j["path"].as_str().unwrap(),
                j["query"]
                    .as_str()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(paths, ["/first", "/second?q=1", "/third"]);
    assert!(got.iter().all(|a| a.status == 200));
    assert!(got[0].header_str("x-request-id").is_some());
    assert!(got[0].header_str("date").is_some());
    assert_eq!(got[2].header_str("connection"), Some("close"));
    assert_eq!(got[0].header_str("connection"), None);
}

#[tokio::test]
async fn head_answers_carry_no_body_and_the_connection_goes_on() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    let wire = exchange(
        &gw,
        b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let got = answers(&wire, &[true, true, false]);
    assert_eq!(got.len(), 3, "{:?}", String::from_utf8_lossy(&wire));
    assert_eq!(got[0].status, 200);
    assert!(got[0].body.is_empty());
    assert_eq!(got[1].status, 200);
    assert!(
        got[1].header_str("content-length").is_some(),
        "HEAD /health: {:?}",
        got[1].headers
    );
    assert_eq!(got[2].json()["path"], "/y");
}

#[tokio::test]
async fn a_request_with_a_body_hands_the_connection_to_hyper() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    let wire = exchange(
        &gw,
        b"GET /before HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let got = answers(&wire, &[]);
    assert_eq!(got.len(), 3, "{:?}", String::from_utf8_lossy(&wire));
    assert_eq!(got[0].json()["path"], "/before");
    let post = got[1].json();
    assert_eq!(post["method"], "POST");
    assert_eq!(post["body_len"], 5);
    assert_eq!(got[2].json()["path"], "/after");
}

#[tokio::test]
async fn a_chunked_upload_and_a_zero_length_body() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    let wire = exchange(
        &gw,
        b"DELETE /zero HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n\
          PUT /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    .await;
    let got = answers(&wire, &[]);
    assert_eq!(got.len(), 2, "{:?}", String::from_utf8_lossy(&wire));
    assert_eq!(got[0].json()["method"], "DELETE");
    assert_eq!(got[0].json()["body_len"], 0);
    assert_eq!(got[1].json()["body_len"], 5);
}

#[tokio::test]
async fn answers_of_unknown_length_are_chunked() {
    let up = Upstream::download("d", 200_000).await;
    let gw = gateway(&up).await;
    let wire = exchange(
        &gw,
        b"GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let got = answers(&wire, &[]);
    assert_eq!(got.len(), 2);
    for a in &got {
        assert_eq!(a.status, 200);
        assert_eq!(a.header_str("transfer-encoding"), Some("chunked"));
        assert_eq!(a.body.len(), 200_000);
        assert!(a.body.iter().all(|&b| b == b'x'));
    }
}

#[tokio::test]
async fn http10_and_malformed_heads_are_hypers() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    // HTTP/1.0 without keep-alive: answered, then closed.
    let wire = exchange(&gw, b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n").await;
    let got = answers(&wire, &[]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, 200);
    assert!(
        wire.starts_with(b"HTTP/1.0 200"),
        "{:?}",
        String::from_utf8_lossy(&wire)
    );
    // A head httparse refuses.
    let wire = exchange(&gw, b"GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        wire.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&wire)
    );
    // After a good request on the same connection, too.
    let wire = exchange(
        &gw,
        b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /bad\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&wire);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    // A head larger than the loop parses goes to hyper, which accepts it.
    let mut big = b"GET /large HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
    for i in 0..40 {
        big.extend_from_slice(format!("x-filler-{i}: {}\r\n", "v".repeat(500)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    let wire = exchange(&gw, &big).await;
    let got = answers(&wire, &[]);
    assert_eq!(got.len(), 1, "{:?}", String::from_utf8_lossy(&wire));
    assert_eq!(got[0].json()["path"], "/large");
}

#[tokio::test]
async fn gateway_answers_get_a_date_and_a_length() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    let wire = exchange(
        &gw,
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let got = answers(&wire, &[]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, 200);
    let date = got[0].header_str("date").expect("date");
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    assert_eq!(
        got[0]
            .header_str("content-length")
            .map(|n| n.parse::<usize>().unwrap()),
        Some(got[0].body.len())
    );
    assert_eq!(got[0].json()["status"], "healthy");
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_its_request() {
    // An upstream that takes the request and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gw = TestGateway::builder()
        .service_addrs("s", &[addr])
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"\ntimeout = { read = 30 }")
        .start()
        .await;
    let mut client = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (mut upstream, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the request reaches the upstream")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = upstream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"GET /slow"));
    drop(client);
    // The gateway drops the request, and with it the upstream connection.
    let read = tokio::time::timeout(Duration::from_secs(5), upstream.read(&mut buf))
        .await
        .expect("the upstream connection is closed when the client goes away");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}
