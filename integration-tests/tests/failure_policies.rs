//! Failure policies: what counts against an instance (outlier ejection) and against a
//! service (circuit breaker), and what the proxy does with upstream answers that cannot be
//! passed on.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use integration_tests::raw::{raw_exchange_with, Exchange, RawAnswer};
use integration_tests::{eventually, refused_addr, TestGateway, Upstream};
use serde_json::Value;

fn instance(id: &str, port: u16) -> String {
    format!("{{ id = \"{id}\", host = \"127.0.0.1\", port = {port} }}")
}

#[tokio::test]
async fn an_instance_refusing_every_connection_is_ejected_although_retries_hide_it() {
    let dead = refused_addr().await;
    let live = Upstream::echo("live").await;
    let gw = TestGateway::builder()
        .raw(&format!(
            "[services.s]\ncircuit_breaker = {{ min_requests = 1000, outlier = {{ consecutive_failures = 3 }} }}\ninstances = [{}, {}]",
            instance("dead", dead.port()),
            instance("live", live.addr.port())
        ))
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"\nretry = { times = 1, delay = 0 }")
        .start()
        .await;
    for _ in 0..20 {
        let res = gw.get("/x").await;
        assert_eq!(res.status(), 200, "the retry hides the dead instance");
    }
    assert_eq!(
        gw.breaker("s").await["ejected_instances"],
        serde_json::json!(["dead"]),
        "every refused attempt counts against the instance"
    );
    // Once out, the dead instance sees no attempt: the live one gets each request once.
    let before = live.hits();
    for _ in 0..10 {
        assert_eq!(gw.get("/x").await.status(), 200);
    }
    assert_eq!(live.hits() - before, 10);
}

/// The `status` the admin API gives instance `id` of `service`.
async fn wait_status(gw: &TestGateway, service: &str, id: &str, status: &str) {
    assert!(
        eventually(Duration::from_secs(10), || async {
            gw.instance(service, id).await["status"] == status
        })
        .await,
        "{id} never became {status}"
    );
}

#[tokio::test]
async fn no_healthy_upstream_is_not_a_breaker_failure() {
    let dead = refused_addr().await;
    let gw = TestGateway::builder()
        .raw(&format!(
            "[services.s]\ncircuit_breaker = {{ min_requests = 2 }}\ninstances = [{}]\n\
             health_check = {{ path = \"/health\", interval_secs = 0.05, timeout_ms = 500 }}",
            instance("dead", dead.port())
        ))
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
        .start()
        .await;
    wait_status(&gw, "s", "dead", "unhealthy").await;
    for _ in 0..10 {
        let res = gw.get("/x").await;
        assert_eq!(res.status(), 503);
        let body: Value = res.json().await.expect("JSON error");
        assert_eq!(body["error"], "No healthy upstream");
    }
    assert_eq!(
        gw.breaker("s").await["state"],
        "closed",
        "the gateway's own 503 says nothing about the upstream"
    );
}

/// A raw upstream that passes its health checks (`GET /health`: 200) and answers every other
/// request 500; counts those.
struct Flaky {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Flaky {
    async fn start() -> Flaky {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer: &[u8] = if head.starts_with(b"GET /health ") {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    } else {
                        counter.fetch_add(1, Ordering::SeqCst);
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    };
                    let _ = stream.write_all(answer).await;
                });
            }
        });
        Flaky { addr, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Four instances: two refusing connections (taken out by the health checks), two healthy
/// but answering 500 (ejected by outlier detection as far as the rules allow). Every request
/// must still reach one of the two healthy ones (a 500), never a gateway 503.
async fn four_instances_two_unhealthy(outlier: &str) -> (TestGateway, Flaky, Flaky) {
    let (d1, d2) = (refused_addr().await, refused_addr().await);
    let (f1, f2) = (Flaky::start().await, Flaky::start().await);
    let gw = TestGateway::builder()
        .raw(&format!(
            "[services.s]\ncircuit_breaker = {{ min_requests = 1000, outlier = {{ consecutive_failures = 2{outlier} }} }}\n\
             instances = [{}, {}, {}, {}]\n\
             health_check = {{ path = \"/health\", interval_secs = 0.05, timeout_ms = 500 }}",
            instance("d1", d1.port()),
            instance("d2", d2.port()),
            instance("f1", f1.addr.port()),
            instance("f2", f2.addr.port()),
        ))
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
        .start()
        .await;
    wait_status(&gw, "s", "d1", "unhealthy").await;
    wait_status(&gw, "s", "d2", "unhealthy").await;
    wait_status(&gw, "s", "f1", "healthy").await;
    wait_status(&gw, "s", "f2", "healthy").await;
    for i in 0..20 {
        let res = gw.get("/x").await;
        assert_eq!(
            res.status(),
            500,
            "request {i}: an instance must still be used"
        );
    }
    (gw, f1, f2)
}

#[tokio::test]
async fn ejection_counts_against_the_healthy_instances() {
    let (gw, f1, f2) = four_instances_two_unhealthy("").await;
    // 50 % of the two healthy instances: one is out, the other keeps serving.
    let ejected = gw.breaker("s").await["ejected_instances"].clone();
    assert_eq!(ejected.as_array().map(Vec::len), Some(1), "{ejected}");
    assert_eq!(f1.hits() + f2.hits(), 20);
}

#[tokio::test]
async fn below_the_panic_threshold_ejections_are_ignored() {
    let (gw, f1, f2) = four_instances_two_unhealthy(", max_ejection_percent = 100").await;
    // Both may be ejected, but then none would be left: both keep getting traffic.
    let ejected = gw.breaker("s").await["ejected_instances"].clone();
    assert_eq!(ejected.as_array().map(Vec::len), Some(2), "{ejected}");
    let (h1, h2) = (f1.hits(), f2.hits());
    for _ in 0..10 {
        assert_eq!(gw.get("/x").await.status(), 500);
    }
    assert!(
        f1.hits() > h1 && f2.hits() > h2,
        "both healthy instances serve"
    );
}

/// A raw upstream that answers every request with the same bytes, keeping the connection
/// open; counts connections, and requests that came on a connection already used.
struct Scripted {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    reused: Arc<AtomicUsize>,
}

impl Scripted {
    async fn start(answer: &'static [u8]) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let reused = Arc::new(AtomicUsize::new(0));
        let (conns, again) = (connections.clone(), reused.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let again = again.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    for n in 0.. {
                        let mut head = Vec::new();
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => head.extend_from_slice(&buf[..k]),
                            }
                        }
                        if n > 0 {
                            again.fetch_add(1, Ordering::SeqCst);
                        }
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Scripted {
            addr,
            connections,
            reused,
        }
    }
}

async fn scripted_gateway(up: &Scripted) -> TestGateway {
    TestGateway::builder()
        .raw(&format!(
            "[services.s]\ninstances = [{}]",
            instance("raw", up.addr.port())
        ))
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
        .start()
        .await
}

/// One raw GET on a new client connection; returns once its answer is complete.
async fn raw_get(gw: &TestGateway) -> RawAnswer {
    let how = Exchange {
        stop_after: Some(1),
        ..Exchange::default()
    };
    raw_exchange_with(
        gw.gateway.proxy_addr(),
        b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
        &how,
    )
    .await
}

#[tokio::test]
async fn an_unsolicited_101_is_a_bad_gateway_and_its_connection_is_not_reused() {
    let up = Scripted::start(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
    )
    .await;
    let gw = scripted_gateway(&up).await;
    for i in 1..=2 {
        let answer = raw_get(&gw).await;
        assert_eq!(answer.statuses(), [502], "{}", answer.summary());
        assert_eq!(up.connections.load(Ordering::SeqCst), i);
    }
    assert_eq!(
        up.reused.load(Ordering::SeqCst),
        0,
        "nothing more is sent on a connection that switched protocols"
    );
}

#[tokio::test]
async fn an_answer_with_chunked_and_content_length_arrives_whole() {
    let up = Scripted::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    let gw = scripted_gateway(&up).await;
    let answer = raw_get(&gw).await;
    let res = answer
        .single()
        .unwrap_or_else(|| panic!("{}", answer.summary()));
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"hello world");
    assert_ne!(
        res.header("content-length"),
        Some(&b"3"[..]),
        "the upstream's Content-Length does not reach the client"
    );
    // The answer's framing was the chunked one: the pooled connection serves the next
    // request.
    let again = raw_get(&gw).await;
    let res = again
        .single()
        .unwrap_or_else(|| panic!("{}", again.summary()));
    assert_eq!(res.body, b"hello world");
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_client_giving_up_on_a_hung_upstream_counts_against_the_service() {
    let hung = Upstream::delay("hung", Duration::from_secs(30)).await;
    let gw = TestGateway::builder()
        .raw(&format!(
            "[services.s]\ncircuit_breaker = {{ min_requests = 1, abandoned_failure_secs = 1 }}\ninstances = [{}]",
            instance("hung", hung.addr.port())
        ))
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
        .start()
        .await;
    let mut stream = tokio::net::TcpStream::connect(gw.gateway.proxy_addr())
        .await
        .expect("connect");
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    // The client waits longer than abandoned_failure_secs, gets nothing, and gives up.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_millis(1500), stream.read(&mut buf)).await;
    assert!(read.is_err(), "no answer from a hung upstream");
    drop(stream);
    assert!(
        eventually(Duration::from_secs(10), || async {
            gw.breaker("s").await["state"] == "open"
        })
        .await,
        "the abandoned request counts as a failure"
    );
}
