//! Streaming bodies both ways and `server.max_body_bytes` → 413.

use bytes::Bytes;
use integration_tests::{TestGateway, Upstream};
use serde_json::Value;

fn limit_config() -> &'static str {
    "[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 1048576"
}

#[tokio::test]
async fn large_streamed_upload_arrives_whole() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .raw("[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 1073741824")
        .catch_all(&[&up])
        .start()
        .await;
    // 64 MiB sent chunk by chunk with no Content-Length (chunked): neither side holds it whole.
    let chunk = Bytes::from(vec![b'z'; 256 * 1024]);
    let n = 256usize;
    let stream =
        futures_util::stream::iter((0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let res = gw
        .client
        .post(gw.url("/upload"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["body_len"], (n * 256 * 1024) as u64);
}

#[tokio::test]
async fn large_download_streams_through() {
    let size = 32 * 1024 * 1024u64;
    let up = Upstream::download("d", size).await;
    let gw = TestGateway::catch_all(&up).await;
    let mut res = gw.get("/file").await;
    assert_eq!(res.status(), 200);
    let mut got = 0u64;
    while let Some(chunk) = res.chunk().await.unwrap() {
        got += chunk.len() as u64;
    }
    assert_eq!(got, size);
}

#[tokio::test]
async fn body_over_limit_by_content_length_is_413_without_upstream() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .raw(limit_config())
        .catch_all(&[&up])
        .start()
        .await;
    let res = gw
        .client
        .post(gw.url("/x"))
        .body(vec![0u8; 2 * 1024 * 1024])
        .send()
        .await;
    // The gateway may answer before reading the body and close; either way no upstream hit.
    if let Ok(res) = res {
        assert_eq!(res.status(), 413);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "Request body too large");
    }
    assert_eq!(up.hits(), 0);
    let res = gw
        .client
        .post(gw.url("/x"))
        .body(vec![0u8; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a body under the limit passes");
}

#[tokio::test]
async fn streamed_body_over_limit_is_refused() {
    let up = Upstream::echo("a").await;
    let gw = TestGateway::builder()
        .raw(limit_config())
        .catch_all(&[&up])
        .start()
        .await;
    let chunk = Bytes::from(vec![b'z'; 64 * 1024]);
    let stream =
        futures_util::stream::iter((0..64).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let res = gw
        .client
        .post(gw.url("/x"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    match res {
        Ok(res) => {
            assert_eq!(res.status(), 413);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"], "Request body too large");
        }
        // The connection may be cut while the client still sends; that is a refusal too.
        Err(e) => assert!(e.is_request() || e.is_body() || e.is_connect(), "{e}"),
    }
}
