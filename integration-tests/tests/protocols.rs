//! Protocols (docs/http-answers.md): h2c prior knowledge downstream, HTTP/2 upstream with gRPC trailers,
//! WebSocket upgrades both ways, TLS termination with ALPN.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use integration_tests::{TestGateway, Upstream};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn h2c_prior_knowledge_downstream_http1_upstream() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::catch_all(&up).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = client.get(gw.url("/h2")).send().await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["version"], "HTTP/1.1", "http1 service gets HTTP/1.1");
    assert_eq!(body["path"], "/h2");
}

#[tokio::test]
async fn grpc_style_trailers_pass_through_h2_upstream() {
    let up = Upstream::trailers("g").await;
    let gw = TestGateway::builder()
        .service_with("g", "protocol = \"http2\"", &[&up], &[])
        .route("id = \"grpc\"\npath = \"/pkg.Service\"\nservice = \"g\"")
        .start()
        .await;
    let tcp = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::post(format!(
        "http://{}/pkg.Service/Method",
        gw.gateway.proxy_addr()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
    .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/grpc");
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers must pass through");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "ok");
    assert_eq!(collected.to_bytes(), Bytes::from_static(b"hello"));
}

#[tokio::test]
async fn websocket_upgrade_is_proxied_both_ways() {
    let up = Upstream::websocket("ws").await;
    let gw = TestGateway::builder()
        .service("ws", &[&up])
        .route("id = \"ws\"\npath = \"/ws\"\nservice = \"ws\"")
        .start()
        .await;
    let url = format!("ws://{}/ws/chat", gw.gateway.proxy_addr());
    let (mut ws, res) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade through the gateway");
    assert_eq!(res.status(), 101);
    for i in 0..5 {
        let text = format!("hello {i}");
        ws.send(Message::Text(text.clone())).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    ws.send(Message::Binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_data(),
        vec![1u8, 2, 3]
    );
    ws.close(None).await.unwrap();
}

fn write_temp(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gw-tls-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn fastrand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn tls_termination_with_h2_and_http1_by_alpn() {
    let up = Upstream::echo("a").await;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = write_temp("cert.pem", &certified.cert.pem());
    let key_path = write_temp("key.pem", &certified.key_pair.serialize_pem());
    let gw = TestGateway::builder()
        .raw(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntls = {{ listen = \"127.0.0.1:0\", cert = \"{}\", key = \"{}\" }}",
            cert_path.display(),
            key_path.display()
        ))
        .catch_all(&[&up])
        .start()
        .await;
    let tls_addr = gw.gateway.tls_addr().expect("TLS listener");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    for (alpn, want) in [
        (b"h2".to_vec(), http::Version::HTTP_2),
        (b"http/1.1".to_vec(), http::Version::HTTP_11),
    ] {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        config.alpn_protocols = vec![alpn.clone()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(tls_addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        let req = Request::get("https://localhost/secure")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = if want == http::Version::HTTP_2 {
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        };
        assert_eq!(res.version(), want);
        assert_eq!(res.status(), 200);
        let body: Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["path"], "/secure");
        assert_eq!(body["headers"]["x-forwarded-proto"], "https");
    }
}

/// The listener tells HTTP/2 from HTTP/1.1 by the first bytes, also when they arrive in
/// pieces: a preface split across writes still gets an HTTP/2 answer (the server's SETTINGS
/// frame), and a request line split after one byte is still served as HTTP/1.1.
#[tokio::test]
async fn protocol_is_detected_from_first_bytes_in_pieces() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::echo("a").await;
    let gw = TestGateway::catch_all(&up).await;
    let addr = gw.gateway.proxy_addr();

    let mut h2 = TcpStream::connect(addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    // A pause on purpose: the preface must arrive in two pieces (what is under test).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    h2.write_all(b"\r\nSM\r\n\r\n").await.unwrap();
    // An empty SETTINGS frame.
    h2.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let mut frame = [0u8; 9];
    tokio::time::timeout(std::time::Duration::from_secs(5), h2.read_exact(&mut frame))
        .await
        .expect("an HTTP/2 answer in time")
        .unwrap();
    assert_eq!(
        frame[3], 4,
        "the server's first frame is SETTINGS: {frame:?}"
    );

    let mut h1 = TcpStream::connect(addr).await.unwrap();
    h1.write_all(b"G").await.unwrap();
    // A pause on purpose: the first byte must arrive alone (what is under test).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    h1.write_all(b"ET /split HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        h1.read_to_string(&mut answer),
    )
    .await
    .expect("an HTTP/1.1 answer in time")
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("/split"), "{answer}");
}
