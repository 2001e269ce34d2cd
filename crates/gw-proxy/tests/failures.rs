//! Upstream failures: 502, 504, and retries within the budget.

mod support;

use std::time::Duration;

use gw_core::{Body, UpstreamInfo};
use gw_proxy::{LoadBalancer, ProxyConfig, RetryPolicy, Timeouts, UpstreamProtocol};
use http::Response;
use http_body_util::BodyExt;
use support::*;

fn retry(times: u32) -> ProxyConfig {
    ProxyConfig {
        retry: Some(RetryPolicy {
            times,
            delay: Duration::from_millis(1),
        }),
        ..ProxyConfig::default()
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn refused_connection_is_502_json() {
    let addr = refused_addr().await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![instance("dead", addr, 100)],
        ProxyConfig::default(),
    );
    let res = send(&proxy, get("/")).await;
    assert_eq!(res.status(), 502);
    assert_eq!(res.headers()["content-type"], "application/json");
    let info = res.extensions().get::<UpstreamInfo>().cloned().unwrap();
    assert_eq!(&*info.instance, "dead");
    let v = json(&text(res).await);
    assert_eq!(v["error"], "Bad gateway");
    assert_eq!(v["request_id"], REQUEST_ID);
}

#[tokio::test]
async fn slow_upstream_headers_is_504() {
    let up = serve(|_req| async {
        // The slow upstream under test: its head comes long after the read timeout.
        tokio::time::sleep(Duration::from_secs(10)).await;
        Response::new(Body::from("late"))
    })
    .await;
    let config = ProxyConfig {
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            send: Duration::from_millis(100),
            read: Duration::from_millis(200),
        },
        ..retry(2)
    };
    let (proxy, _) = proxy(LoadBalancer::RoundRobin, vec![up.instance("a")], config);
    let (status, body) = call(&proxy, get("/")).await;
    assert_eq!(status, 504);
    assert_eq!(json(&body)["error"], "Gateway timeout");
    // A read timeout is not retried.
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn stalled_response_body_ends_with_an_error() {
    let up = serve(|_req| async {
        let (mut tx, body) = hyper_body_channel();
        tokio::spawn(async move {
            tx.send(bytes::Bytes::from_static(b"first")).await;
            // The stall under test: the body stops well past the read timeout.
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(tx);
        });
        Response::new(body)
    })
    .await;
    let config = ProxyConfig {
        timeouts: Timeouts {
            read: Duration::from_millis(300),
            ..Timeouts::default()
        },
        ..ProxyConfig::default()
    };
    let (proxy, _) = proxy(LoadBalancer::RoundRobin, vec![up.instance("a")], config);
    let res = send(&proxy, get("/")).await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first");
    assert!(body.frame().await.unwrap().is_err());
}

/// A minimal streaming body fed from a tokio channel.
fn hyper_body_channel() -> (Sender, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    (Sender(tx), Body::new(ChannelBody(rx)))
}

struct Sender(tokio::sync::mpsc::Sender<bytes::Bytes>);

impl Sender {
    async fn send(&mut self, b: bytes::Bytes) {
        let _ = self.0.send(b).await;
    }
}

struct ChannelBody(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl http_body::Body for ChannelBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// Connect timeout: a listener whose accept queue is full drops further SYNs, so the connect
/// hangs until the connector's timeout (no external address needed).
#[tokio::test]
async fn connect_timeout_is_504() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the accept queue (never accepted).
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
    }
    let config = ProxyConfig {
        timeouts: Timeouts {
            connect: Duration::from_millis(300),
            send: Duration::from_secs(10),
            read: Duration::from_secs(10),
        },
        ..ProxyConfig::default()
    };
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![instance("full", addr, 100)],
        config,
    );
    let started = std::time::Instant::now();
    let (status, body) = call(&proxy, get("/")).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(json(&body)["error"], "Gateway timeout");
    assert!(started.elapsed() < Duration::from_secs(9));
    drop(listener);
}

#[tokio::test]
async fn get_retries_on_the_other_instance_when_refused() {
    let ok = fixed("ok", 200).await;
    let dead = refused_addr().await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![instance("dead", dead, 100), ok.instance("ok")],
        retry(1),
    );
    for _ in 0..6 {
        let res = send(&proxy, get("/")).await;
        assert_eq!(res.status(), 200);
        let info = res.extensions().get::<UpstreamInfo>().cloned().unwrap();
        assert_eq!(&*info.instance, "ok");
        assert!(info.attempts == 1 || info.attempts == 2);
        assert_eq!(text(res).await, "ok");
    }
    assert_eq!(ok.hits(), 6);
}

#[tokio::test]
async fn post_is_never_retried() {
    let a = fixed("a", 503).await;
    let b = fixed("b", 503).await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![a.instance("a"), b.instance("b")],
        retry(3),
    );
    let (status, _) = call(&proxy, request("POST", "/", Body::from("x"))).await;
    assert_eq!(status, 503);
    assert_eq!(a.hits() + b.hits(), 1);
    let (status, _) = call(&proxy, request("PATCH", "/", Body::empty())).await;
    assert_eq!(status, 503);
    assert_eq!(a.hits() + b.hits(), 2);
}

#[tokio::test]
async fn retry_after_503_then_success_with_replayed_body() {
    let bad = fixed("bad", 503).await;
    let good = serve(|req| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Response::new(Body::from(body))
    })
    .await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![bad.instance("bad"), good.instance("good")],
        retry(2),
    );
    for _ in 0..4 {
        let (status, body) = call(&proxy, request("PUT", "/", Body::from("payload"))).await;
        assert_eq!((status, body.as_str()), (200, "payload"));
    }
    assert_eq!(good.hits(), 4);
    assert!(bad.hits() >= 1 && bad.hits() <= 4);
}

#[tokio::test]
async fn exhausted_retries_return_the_last_answer() {
    let bad = fixed("bad", 502).await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![bad.instance("bad")],
        retry(2),
    );
    let (status, body) = call(&proxy, get("/")).await;
    // The upstream's own answer is passed on, not replaced.
    assert_eq!((status, body.as_str()), (502, "bad"));
    assert_eq!(bad.hits(), 3);
}

#[tokio::test]
async fn retry_budget_bounds_retries() {
    let bad = fixed("bad", 503).await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![bad.instance("bad")],
        retry(3),
    );
    let requests = 300;
    for _ in 0..requests {
        assert_eq!(call(&proxy, get("/")).await.0, 503);
    }
    let hits = bad.hits();
    // Unbounded would be 4 per request (1200). The budget allows ~100 reserve retries plus
    // 20 % of the requests.
    assert!(hits >= requests, "{hits}");
    assert!(
        hits <= requests + 100 + requests / 5 + 20,
        "budget not applied: {hits}"
    );
}

/// A client body that yields `good` bytes, then fails as a malformed one would.
struct Broken {
    good: Option<bytes::Bytes>,
    /// Its size hint: a small known length makes a retryable request buffer it first.
    len: Option<u64>,
}

impl http_body::Body for Broken {
    type Data = bytes::Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(Some(match self.good.take() {
            Some(b) => Ok(http_body::Frame::data(b)),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "invalid chunk size line",
            )),
        }))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.len.map_or_else(
            http_body::SizeHint::default,
            http_body::SizeHint::with_exact,
        )
    }
}

fn broken(len: Option<u64>) -> Body {
    Body::new(Broken {
        good: Some(bytes::Bytes::from_static(b"hello")),
        len,
    })
}

#[tokio::test]
async fn a_client_body_error_is_400_not_retried_and_not_the_instances() {
    for protocol in [UpstreamProtocol::Http1, UpstreamProtocol::Http2] {
        let up = serve_proto(protocol == UpstreamProtocol::Http2, |req| async move {
            let _ = req.into_body().collect().await;
            Response::new(Body::from("read"))
        })
        .await;
        let (proxy, _) = proxy_proto(
            LoadBalancer::RoundRobin,
            protocol,
            vec![up.instance("a")],
            retry(2),
        );
        // Streamed (unknown length), then buffered for a retry (small known length).
        for (len, attempts) in [(None, 1), (Some(100), 0)] {
            let before = up.hits();
            let res = send(&proxy, request("PUT", "/", broken(len))).await;
            assert_eq!(res.status(), 400, "{protocol:?} {len:?}");
            assert!(
                res.extensions().get::<UpstreamInfo>().is_none(),
                "nothing for the outlier detector to count"
            );
            let v = json(&text(res).await);
            assert_eq!(v["error"], "Bad request");
            assert_eq!(v["request_id"], REQUEST_ID);
            assert!(up.hits() - before <= attempts, "{protocol:?} {len:?}");
        }
        // The upstream is still fine to use.
        assert_eq!(call(&proxy, get("/")).await, (200, "read".to_string()));
    }
}
