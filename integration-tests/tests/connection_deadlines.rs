//! Every client connection has a deadline, whatever it sends and whichever protocol it
//! speaks: a connection that stops within the HTTP/2 preface, an idle HTTP/2 connection
//! (plain or TLS), a TLS connection that sends nothing after its handshake, on the proxy
//! and the admin listener. With `idle_timeout_secs = 1` the gateway closes each within two
//! periods; the tests wait up to four seconds for the close (an outcome bound).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use integration_tests::raw::read_until_closed;
use integration_tests::{TestGateway, Upstream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for the gateway to close a connection (idle timeout 1 s).
const CLOSE_BOUND: Duration = Duration::from_secs(4);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

async fn gateway(up: &Upstream, server: &str) -> TestGateway {
    TestGateway::builder()
        .raw(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nidle_timeout_secs = 1\n{server}"
        ))
        .catch_all(&[up])
        .start()
        .await
}

/// Reads (and throws away) whatever the gateway sends until it closes the connection;
/// panics when it is still open after [`CLOSE_BOUND`].
async fn assert_closed<T: AsyncRead + Unpin>(mut io: T, what: &str) {
    let (_, closed) = read_until_closed(&mut io, CLOSE_BOUND).await;
    assert!(closed.is_some(), "{what}: still open after {CLOSE_BOUND:?}");
}

async fn one_byte(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"P").await.unwrap();
    tcp
}

#[tokio::test]
async fn one_byte_of_the_preface_is_closed_on_the_proxy_listener() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let tcp = one_byte(gw.gateway.proxy_addr()).await;
    assert_closed(tcp, "`P` on the proxy listener").await;
}

#[tokio::test]
async fn one_byte_of_the_preface_is_closed_on_the_admin_listener() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let tcp = one_byte(gw.gateway.admin_addr()).await;
    assert_closed(tcp, "`P` on the admin listener").await;
}

#[tokio::test]
async fn the_whole_preface_then_silence_is_closed() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let mut tcp = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    tcp.write_all(PREFACE).await.unwrap();
    assert_closed(tcp, "the preface alone").await;
}

/// An HTTP/2 client over `io`: sends one GET, reads its answer, then keeps the connection
/// (and its sender) open without a request; returns once the connection ended, or panics.
async fn h2_request_then_idle<T>(io: T, uri: &str, what: &str)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    let ended = tokio::time::timeout(CLOSE_BOUND, conn).await;
    assert!(ended.is_ok(), "{what}: still open after {CLOSE_BOUND:?}");
    drop(send);
}

#[tokio::test]
async fn an_idle_h2c_connection_is_closed_after_a_request() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let tcp = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    let uri = format!("http://{}/idle", gw.gateway.proxy_addr());
    h2_request_then_idle(tcp, &uri, "idle h2c").await;
}

struct Tls {
    gw: TestGateway,
    /// The `tls = { … }` line of `[server]`.
    server_keys: String,
    connector: tokio_rustls::TlsConnector,
    _up: Upstream,
}

async fn tls_gateway(alpn: &[u8]) -> Tls {
    let up = Upstream::echo("a").await;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "gw-deadlines-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).unwrap();
    let server_keys = format!(
        "tls = {{ listen = \"127.0.0.1:0\", cert = \"{}\", key = \"{}\" }}",
        cert_path.display(),
        key_path.display()
    );
    let gw = gateway(&up, &server_keys).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Tls {
        gw,
        server_keys,
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        _up: up,
    }
}

impl Tls {
    async fn connect(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let addr = self.gw.gateway.tls_addr().expect("TLS listener");
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        self.connector
            .connect(name, tcp)
            .await
            .expect("TLS handshake")
    }
}

#[tokio::test]
async fn a_tls_connection_silent_after_its_handshake_is_closed() {
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let tls = tls_gateway(alpn).await;
        let stream = tls.connect().await;
        assert_closed(stream, "TLS, nothing after the handshake").await;
    }
}

#[tokio::test]
async fn an_idle_tls_h2_connection_is_closed_after_a_request() {
    let tls = tls_gateway(b"h2").await;
    let stream = tls.connect().await;
    h2_request_then_idle(stream, "https://localhost/idle", "idle TLS h2").await;
}

#[tokio::test]
async fn a_tcp_connection_that_never_completes_the_tls_handshake_is_closed() {
    let tls = tls_gateway(b"h2").await;
    let addr = tls.gw.gateway.tls_addr().expect("TLS listener");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // The first byte of a TLS record (handshake), then nothing.
    tcp.write_all(&[0x16]).await.unwrap();
    assert_closed(tcp, "a partial ClientHello").await;
}

/// An upstream that answers its first request with an endless download (a huge
/// `content-length`, zeros as fast as the gateway takes them) and reports when its
/// connection was closed under it.
async fn endless_upstream() -> (SocketAddr, tokio::sync::oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tcp
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000000\r\n\r\n")
            .await;
        let chunk = vec![0u8; 64 * 1024];
        while tcp.write_all(&chunk).await.is_ok() {}
        let _ = closed_tx.send(());
        // Later connections (none expected) are not served.
        drop(listener);
    });
    (addr, closed_rx)
}

/// How long a test waits for a stalled download to be cut (idle timeout 1 s; the socket
/// buffers must fill first).
const CUT_BOUND: Duration = Duration::from_secs(10);

async fn download_gateway(upstream: SocketAddr, server: &str) -> TestGateway {
    TestGateway::builder()
        .raw(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nidle_timeout_secs = 1\n{server}"
        ))
        .service_addrs("s", &[upstream])
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"\ntimeout = { read = 3600.0 }")
        .start()
        .await
}

/// Waits for the upstream's connection to be closed by the gateway, then reads what the
/// client got: the connection ends (EOF or reset) long before the whole answer.
async fn assert_cut<T: AsyncRead + Unpin>(
    closed: tokio::sync::oneshot::Receiver<()>,
    mut client: T,
    what: &str,
) {
    let released = tokio::time::timeout(CUT_BOUND, closed).await;
    assert!(
        matches!(released, Ok(Ok(()))),
        "{what}: the upstream connection is still in use after {CUT_BOUND:?}"
    );
    let total = tokio::time::timeout(CLOSE_BOUND, async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n as u64,
            }
        }
    })
    .await;
    let total = total.unwrap_or_else(|_| panic!("{what}: the client connection is still open"));
    assert!(
        total < 1_000_000_000,
        "{what}: the answer was cut ({total} bytes)"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_over_tls_http1_is_cut_and_the_upstream_released() {
    let tls = tls_gateway(b"http/1.1").await;
    let (upstream, closed) = endless_upstream().await;
    let gw = download_gateway(upstream, &tls.server_keys).await;
    let addr = gw.gateway.tls_addr().expect("TLS listener");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = tls
        .connector
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    stream.flush().await.unwrap();
    // The client reads nothing until the upstream's connection is gone.
    assert_cut(closed, stream, "TLS HTTP/1.1 download").await;
}

#[tokio::test]
async fn a_client_that_stops_reading_over_plain_http1_is_cut_and_the_upstream_released() {
    let (upstream, closed) = endless_upstream().await;
    let gw = download_gateway(upstream, "").await;
    let mut tcp = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    tcp.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_cut(closed, tcp, "plain HTTP/1.1 download").await;
}

#[tokio::test]
async fn an_h2c_client_that_never_opens_its_window_is_cut_and_the_upstream_released() {
    let (upstream, closed) = endless_upstream().await;
    let gw = download_gateway(upstream, "").await;
    let tcp = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = Request::get(format!("http://{}/big", gw.gateway.proxy_addr()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    // The body is never read: no WINDOW_UPDATE once the first window is full.
    let released = tokio::time::timeout(CUT_BOUND, closed).await;
    assert!(
        matches!(released, Ok(Ok(()))),
        "the upstream connection is still in use after {CUT_BOUND:?}"
    );
    let ended = tokio::time::timeout(CLOSE_BOUND, conn).await;
    assert!(ended.is_ok(), "the client connection is still open");
    drop((send, res));
}

/// A request head sent a byte at a time, starting with a byte the listener cannot classify
/// yet (`P`, as in `POST`, is also the first byte of the HTTP/2 preface) or one it can (`G`):
/// the head is cut by the idle timeout, however steadily its bytes arrive.
#[tokio::test]
async fn a_head_trickled_byte_by_byte_is_cut() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    for head in [&b"POST / HTTP/1.1\r\n"[..], b"GET / HTTP/1.1\r\n"] {
        let mut tcp = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
        let trickle = async {
            for _ in 0..40 {
                for b in head {
                    if tcp.write_all(&[*b]).await.is_err() {
                        return true;
                    }
                    // The slow client under test: one byte every 100 ms.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // A header field, byte by byte, for ever.
                head_field(&mut tcp).await;
            }
            false
        };
        let cut = tokio::time::timeout(Duration::from_secs(8), trickle).await;
        let head = String::from_utf8_lossy(head);
        assert!(
            matches!(cut, Ok(true)),
            "{head:?} trickled: the connection is still open"
        );
    }
}

async fn head_field(tcp: &mut TcpStream) {
    for b in b"X-A: b\r\n" {
        if tcp.write_all(&[*b]).await.is_err() {
            return;
        }
        // The slow client under test: one byte every 100 ms.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn websocket_gateway(up: &Upstream) -> TestGateway {
    TestGateway::builder()
        .service("ws", &[up])
        .route("id = \"ws\"\npath = \"/ws\"\nservice = \"ws\"\ntimeout = { read = 1.0 }")
        .start()
        .await
}

/// A WebSocket tunnel with no byte either way for the route's `timeout.read` (1 s) is
/// closed; one that keeps talking (a message every half period, for three periods) is not.
#[tokio::test]
async fn a_silent_websocket_tunnel_is_closed_after_the_read_timeout() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let up = Upstream::websocket("ws").await;
    let gw = websocket_gateway(&up).await;
    let url = format!("ws://{}/ws/chat", gw.gateway.proxy_addr());

    let (mut ws, res) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("upgrade through the gateway");
    assert_eq!(res.status(), 101);
    for i in 0..6 {
        let text = format!("tick {i}");
        ws.send(Message::Text(text.clone())).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
        // The pace under test: a message every half read timeout keeps the tunnel open.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Now silence: the gateway ends the tunnel.
    let ended = tokio::time::timeout(CLOSE_BOUND, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the silent tunnel is still open after {CLOSE_BOUND:?}"
    );
}
