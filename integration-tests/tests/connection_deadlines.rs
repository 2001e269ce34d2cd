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
        .service("s", &[up])
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
        .start()
        .await
}

/// Reads (and throws away) whatever the gateway sends until it closes the connection;
/// panics when it is still open after [`CLOSE_BOUND`].
async fn assert_closed<T: AsyncRead + Unpin>(mut io: T, what: &str) {
    let closed = tokio::time::timeout(CLOSE_BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "{what}: still open after {CLOSE_BOUND:?}");
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
    let gw = gateway(
        &up,
        &format!(
            "tls = {{ listen = \"127.0.0.1:0\", cert = \"{}\", key = \"{}\" }}",
            cert_path.display(),
            key_path.display()
        ),
    )
    .await;
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
