//! `server.idle_timeout_secs`: client connections that stay silent are closed (idle
//! keep-alive, nothing sent, a request head sent too slowly), and connections that are busy
//! (a slow upstream, a download read slowly) are not.

use std::time::{Duration, Instant};

use integration_tests::raw::read_until_closed;
use integration_tests::{TestGateway, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn gateway(up: &Upstream) -> TestGateway {
    TestGateway::builder()
        .raw("[server]\nlisten = \"127.0.0.1:0\"\nidle_timeout_secs = 1")
        .service("s", &[up])
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"\ntimeout = { read = 10 }")
        .start()
        .await
}

#[tokio::test]
async fn idle_and_silent_connections_are_closed() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    let addr = gw.gateway.proxy_addr();

    // Keep-alive connection left idle after one answer.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // A connection that never sends anything.
    let mut silent = TcpStream::connect(addr).await.unwrap();

    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let closed = closed.expect("idle keep-alive connection closed");
    assert!(
        closed >= Duration::from_millis(900),
        "not before a period: {closed:?}"
    );
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "silent connection closed");
}

#[tokio::test]
async fn slowly_sent_head_is_cut_off() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    let mut slow = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    let start = Instant::now();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    // One header byte every 100 ms, never finishing the head.
    let mut cut = false;
    while start.elapsed() < Duration::from_secs(6) {
        // The slow client under test.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if slow.write_all(b"X").await.is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 64];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await
        {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "a head sent byte by byte must not keep the connection forever"
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn busy_connections_stay_open() {
    // An upstream slower than the idle timeout: the request is waiting, not idle.
    let slow = Upstream::delay("slow", Duration::from_millis(2500)).await;
    let gw = gateway(&slow).await;
    let res = gw.get("/wait").await;
    assert_eq!(res.status(), 200);

    // A download read slowly: the gateway keeps writing, so it is not idle either.
    let big = Upstream::download("big", 8 * 1024 * 1024).await;
    let gw = gateway(&big).await;
    let mut conn = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    conn.write_all(b"GET /file HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    while start.elapsed() < Duration::from_secs(15) {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed after {got} bytes, {:?}", start.elapsed());
        got += n;
        if got >= 8 * 1024 * 1024 {
            break;
        }
        // The slow reader under test.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert!(got >= 8 * 1024 * 1024, "read {got} bytes");
    assert!(
        start.elapsed() > Duration::from_millis(1500),
        "the read was slow enough"
    );
}
