//! The HTTP/1.1 exchange with upstreams, byte by byte: framing of answers (length, chunked,
//! close-delimited, none), keep-alive reuse, idle connections closed by the upstream, interim
//! answers, malformed answers, and chunked request bodies. The upstream here is a raw socket
//! that answers with scripted bytes, so every case is exactly what goes over the wire.

use std::time::Duration;

use integration_tests::raw::{read_until, Recorded, RecordingUpstream, Reply};
use integration_tests::TestGateway;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn reply(bytes: &[u8]) -> Reply {
    Reply::bytes(bytes)
}

/// A request as the upstream received it: the head and the decoded body.
#[derive(Clone, Debug)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

/// The request line and header lines, without the empty line that ends them.
fn head_text(request: &Recorded) -> String {
    let head = &request.raw_head;
    String::from_utf8_lossy(&head[..head.len() - 4]).into_owned()
}

/// A [`RecordingUpstream`] whose script sees each request's head as text.
struct Raw(RecordingUpstream);

impl Raw {
    async fn start(script: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Raw {
        Raw(RecordingUpstream::scripted(move |request| script(&head_text(request))).await)
    }

    fn connections(&self) -> usize {
        self.0.connections()
    }

    fn seen(&self) -> Vec<Seen> {
        self.0
            .requests()
            .into_iter()
            .map(|r| Seen {
                head: head_text(&r),
                body: r.body,
            })
            .collect()
    }

    async fn gateway(&self) -> TestGateway {
        TestGateway::builder()
            .service_addrs("s", &[self.0.addr])
            .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
            .start()
            .await
    }
}

/// POSTs `parts` to `path` as a streamed body of unknown length.
async fn post_stream<T>(
    gw: &TestGateway,
    path: &str,
    parts: Vec<T>,
) -> reqwest::Result<reqwest::Response>
where
    bytes::Bytes: From<T>,
    T: Send + Sync + 'static,
{
    let parts = parts.into_iter().map(Ok::<T, std::io::Error>);
    gw.client
        .post(gw.url(path))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            parts,
        )))
        .send()
        .await
}

#[tokio::test]
async fn chunked_answer_is_decoded_and_the_connection_reused() {
    let up = Raw::start(|_| Reply {
        pieces: vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n".to_vec(),
            b"7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
        ],
        close: false,
    })
    .await;
    let gw = up.gateway().await;
    for _ in 0..3 {
        let res = gw.get("/a").await;
        assert_eq!(res.status(), 200);
        assert!(res
            .headers()
            .get("transfer-encoding")
            .is_none_or(|v| v == "chunked"));
        assert_eq!(res.text().await.unwrap(), "hello, world");
    }
    assert_eq!(
        up.connections(),
        1,
        "one keep-alive connection for all three"
    );
}

#[tokio::test]
async fn length_answer_in_pieces_and_keep_alive() {
    let up = Raw::start(|_| Reply {
        pieces: vec![
            b"HTTP/1.1 200 OK\r\nContent-".to_vec(),
            b"Length: 10\r\nX-A: 1\r\nX-A: 2\r\n\r\n01234".to_vec(),
            b"56789".to_vec(),
        ],
        close: false,
    })
    .await;
    let gw = up.gateway().await;
    for _ in 0..2 {
        let res = gw.get("/a").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-length"], "10");
        assert_eq!(res.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(res.text().await.unwrap(), "0123456789");
    }
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn close_delimited_answer_is_read_to_the_end_and_not_reused() {
    let up = Raw::start(|_| Reply {
        pieces: vec![
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ".to_vec(),
            b"the end".to_vec(),
        ],
        close: true,
    })
    .await;
    let gw = up.gateway().await;
    for _ in 0..2 {
        let res = gw.get("/a").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "until the end");
    }
    assert_eq!(
        up.connections(),
        2,
        "a close-delimited answer ends its connection"
    );
}

#[tokio::test]
async fn idle_connection_closed_by_the_upstream_is_replaced() {
    // Keep-alive answer, then the upstream closes the connection while it is idle.
    let up = Raw::start(|_| Reply {
        pieces: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()],
        close: true,
    })
    .await;
    let gw = up.gateway().await;
    for i in 0..3 {
        let res = gw.get("/a").await;
        assert_eq!(res.status(), 200, "request {i}");
        assert_eq!(res.text().await.unwrap(), "ok");
        // The scenario under test: the pooled connection sits idle while the upstream's
        // close reaches the gateway; nothing outside the pool shows that moment.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(up.connections(), 3);
}

#[tokio::test]
async fn connection_close_answer_is_not_reused() {
    let up = Raw::start(|_| {
        reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    })
    .await;
    let gw = up.gateway().await;
    for _ in 0..2 {
        let res = gw.get("/a").await;
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("connection").is_none_or(|v| v != "close"));
        assert_eq!(res.text().await.unwrap(), "ok");
    }
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn bodiless_answers_head_204_304() {
    let up = Raw::start(|head| {
        if head.starts_with("HEAD") {
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        } else if head.contains("/nc") {
            reply(b"HTTP/1.1 204 No Content\r\n\r\n")
        } else {
            reply(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
        }
    })
    .await;
    let gw = up.gateway().await;
    let res = gw.client.head(gw.url("/h")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], "1000");
    assert_eq!(gw.get("/nc").await.status(), 204);
    let res = gw.get("/nm").await;
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["etag"], "\"x\"");
    assert_eq!(
        up.connections(),
        1,
        "no body to wait for: the connection is reused"
    );
}

#[tokio::test]
async fn interim_answer_is_skipped() {
    let up = Raw::start(|_| {
        reply(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
    })
    .await;
    let gw = up.gateway().await;
    let res = gw
        .client
        .post(gw.url("/p"))
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.text().await.unwrap(), "done");
    let seen = up.seen();
    assert_eq!(seen[0].body, b"data");
    assert!(seen[0]
        .head
        .to_ascii_lowercase()
        .contains("content-length: 4"));
}

#[tokio::test]
async fn malformed_answers_are_502() {
    let up = Raw::start(|head| {
        if head.contains("/garbage") {
            reply(b"NOT HTTP AT ALL\r\n\r\n")
        } else if head.contains("/lengths") {
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc")
        } else {
            Reply {
                pieces: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".to_vec()],
                close: true,
            }
        }
    })
    .await;
    let gw = up.gateway().await;
    for path in ["/garbage", "/lengths"] {
        let res = gw.get(path).await;
        assert_eq!(res.status(), 502, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "Bad gateway");
    }
    // The head was fine and is already on its way: the cut body ends the client's answer
    // with an error instead of a complete body.
    match gw.client.get(gw.url("/short")).send().await {
        Ok(res) => assert!(res.bytes().await.is_err(), "a truncated body must look cut"),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
}

#[tokio::test]
async fn body_of_unknown_length_goes_chunked() {
    let up = Raw::start(|_| reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")).await;
    let gw = up.gateway().await;
    let parts: Vec<&'static [u8]> = vec![b"first,", b"second,", b"third"];
    let res = post_stream(&gw, "/upload", parts).await.unwrap();
    assert_eq!(res.status(), 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0]
        .head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    assert_eq!(seen[0].body, b"first,second,third");
}

#[tokio::test]
async fn request_head_is_forwarded_as_sent() {
    let up = Raw::start(|_| reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")).await;
    let gw = up.gateway().await;
    let res = gw
        .client
        .get(gw.url("/path/x?q=1&r=2"))
        .header("x-custom", "a")
        .header("x-custom", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let head = up.seen()[0].head.to_ascii_lowercase();
    assert!(
        head.starts_with("get /path/x?q=1&r=2 http/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains("x-custom: a\r\n") && head.contains("x-custom: b"),
        "{head}"
    );
    assert!(
        !head.contains("content-length"),
        "no length on a GET without body: {head}"
    );
    assert!(!head.contains("transfer-encoding"), "{head}");
}

#[tokio::test]
async fn early_answer_to_an_unread_upload_is_passed_on() {
    // The upstream answers 413 as soon as it has the head and closes without reading the
    // body; the gateway's write of the rest fails, and the answer must still reach the client.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_until(&mut stream, &mut buf, b"\r\n\r\n")
                    .await
                    .is_none()
                {
                    return;
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!",
                    )
                    .await;
                // Dropped with the body unread: the kernel resets the connection.
            });
        }
    });
    let gw = TestGateway::builder()
        .service_addrs("s", &[addr])
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
        .start()
        .await;
    let parts: Vec<Vec<u8>> = (0..64).map(|_| vec![b'x'; 64 * 1024]).collect();
    let res = post_stream(&gw, "/upload", parts)
        .await
        .expect("the answer reaches the client");
    assert_eq!(res.status(), 413);
    assert_eq!(res.text().await.unwrap(), "too big!");
}

#[tokio::test]
async fn hop_by_hop_fields_of_the_answer_stay_with_the_upstream_connection() {
    let up = Raw::start(|head| {
        if head.starts_with("GET /named") {
            reply(
                b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
                  Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nX-End: 2\r\n\
                  Content-Length: 2\r\n\r\nok",
            )
        } else {
            reply(
                b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5, max=100\r\n\
                  Upgrade: h2c\r\nX-End: 3\r\nContent-Length: 2\r\n\r\nok",
            )
        }
    })
    .await;
    let gw = up.gateway().await;
    for (path, end) in [("/named", "2"), ("/plain", "3")] {
        let res = gw.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        for hop in [
            "connection",
            "x-hop",
            "keep-alive",
            "proxy-connection",
            "upgrade",
        ] {
            assert!(h.get(hop).is_none(), "{path}: {hop} passed on: {h:?}");
        }
        assert_eq!(h["x-end"], end, "{path}");
        assert_eq!(res.text().await.unwrap(), "ok");
    }
    assert_eq!(up.connections(), 1, "the keep-alive connection is reused");
}

#[tokio::test]
async fn head_timeout_still_applies_on_a_connection_used_many_times() {
    // The head-wait timer lives in the pooled connection and is reset per request: after
    // several quick answers on one connection, a slow one must still end in 504 on time.
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let up = Raw::start(|head| {
        if head.starts_with("GET /slow") {
            // 150 pauses of 20 ms before the answer: 3 s.
            let mut pieces = vec![Vec::new(); 150];
            pieces.push(OK.to_vec());
            Reply {
                pieces,
                close: false,
            }
        } else {
            reply(OK)
        }
    })
    .await;
    let gw = TestGateway::builder()
        .service_addrs("s", &[up.0.addr])
        .route(
            "id = \"r\"\npath = \"/\"\nservice = \"s\"\n\
             timeout = { connect = 1, send = 0.1, read = 0.3 }",
        )
        .start()
        .await;
    for _ in 0..5 {
        let res = gw.get("/fast").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "ok");
    }
    assert_eq!(up.connections(), 1);
    let started = std::time::Instant::now();
    let res = gw.get("/slow").await;
    assert_eq!(res.status(), 504);
    // Not a speed assertion: only that the timeout, not the upstream, ended the wait.
    assert!(started.elapsed() < Duration::from_millis(2500));
    let res = gw.get("/fast").await;
    assert_eq!(
        res.status(),
        200,
        "a new connection after the timed-out one"
    );
    assert_eq!(up.connections(), 2);
}
