//! Bodies, upgrades and HTTP/2: 413, large streams, WebSocket, gRPC-style trailers.

mod support;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use gw_core::{Body, ConnInfo};
use gw_proxy::{LoadBalancer, ProxyConfig, UpstreamProtocol};
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that reads the whole body and answers with its length.
async fn counter() -> TestUpstream {
    serve(|req| async move {
        let mut body = req.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                Err(_) => return Response::builder().status(400).body(Body::empty()).unwrap(),
            }
        }
        Response::new(Body::from(n.to_string()))
    })
    .await
}

fn limited(max: u64) -> ProxyConfig {
    ProxyConfig {
        max_body_bytes: max,
        ..ProxyConfig::default()
    }
}

#[tokio::test]
async fn content_length_over_the_limit_is_413_without_contacting_upstream() {
    let up = counter().await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![up.instance("a")],
        limited(10),
    );
    let mut req = request("POST", "/", Body::from("0123456789abcdef"));
    req.headers_mut()
        .insert("content-length", HeaderValue::from_static("16"));
    let (status, body) = call(&proxy, req).await;
    assert_eq!(status, 413);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "Request body too large");
    assert_eq!(v["request_id"], REQUEST_ID);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_413() {
    let up = counter().await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![up.instance("a")],
        limited(100_000),
    );
    let body = Body::new(Generated::new(1_000_000, 8192));
    let (status, body) = call(&proxy, request("POST", "/", body)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("Request body too large"));
    // Under the limit passes.
    let body = Body::new(Generated::new(99_000, 8192));
    assert_eq!(
        call(&proxy, request("POST", "/", body)).await,
        (200, "99000".to_string())
    );
}

#[tokio::test]
async fn small_retryable_body_over_the_limit_is_413() {
    let up = counter().await;
    let config = ProxyConfig {
        retry: Some(gw_proxy::RetryPolicy {
            times: 2,
            delay: std::time::Duration::ZERO,
        }),
        ..limited(10)
    };
    let (proxy, _) = proxy(LoadBalancer::RoundRobin, vec![up.instance("a")], config);
    let body = Body::new(Generated::new(20, 4));
    assert_eq!(call(&proxy, request("PUT", "/", body)).await.0, 413);
    let body = Body::new(Generated::new(10, 4));
    assert_eq!(
        call(&proxy, request("PUT", "/", body)).await,
        (200, "10".to_string())
    );
}

#[tokio::test]
async fn large_streamed_bodies_arrive_intact_both_ways() {
    const TOTAL: usize = 50 * 1024 * 1024;
    let up = counter().await;
    let (upload, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![up.instance("a")],
        limited(TOTAL as u64 + 1),
    );
    let body = Body::new(Generated::new(TOTAL, 64 * 1024));
    assert_eq!(
        call(&upload, request("PUT", "/", body)).await,
        (200, TOTAL.to_string())
    );

    let down =
        serve(|_req| async { Response::new(Body::new(Generated::new(TOTAL, 64 * 1024))) }).await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![down.instance("a")],
        ProxyConfig::default(),
    );
    let res = send(&proxy, get("/")).await;
    let mut body = res.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        n += frame.unwrap().into_data().map_or(0, |d| d.len());
    }
    assert_eq!(n, TOTAL);
}

#[tokio::test]
async fn http2_upstream_passes_trailers() {
    let up = serve_proto(true, |req| async move {
        assert_eq!(req.version(), http::Version::HTTP_2);
        let te = req.headers().get("te").cloned();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let body = Full::new(Bytes::from_static(b"\0\0\0\0\x02hi"))
            .map_err(|e: Infallible| match e {})
            .with_trailers(async move { Some(Ok::<_, Infallible>(trailers)) });
        let mut res = Response::builder()
            .header("content-type", "application/grpc")
            .body(Body::new(body))
            .unwrap();
        if let Some(te) = te {
            res.headers_mut().insert("x-saw-te", te);
        }
        res
    })
    .await;
    let (proxy, upstream) = proxy_proto(
        LoadBalancer::RoundRobin,
        UpstreamProtocol::Http2,
        vec![up.instance("grpc")],
        ProxyConfig::default(),
    );
    assert_eq!(upstream.protocol(), UpstreamProtocol::Http2);
    let mut req = request("POST", "/pkg.Service/Method", Body::from("\0\0\0\0\0"));
    req.headers_mut()
        .insert("te", HeaderValue::from_static("trailers"));
    req.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    let res = send(&proxy, req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-saw-te"], "trailers");
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(&collected.to_bytes()[..], b"\0\0\0\0\x02hi");
}

/// An upstream that accepts a WebSocket handshake and echoes raw bytes afterwards.
async fn ws_echo() -> TestUpstream {
    serve(|mut req| async move {
        if req.headers().get("upgrade").map(|v| v.as_bytes()) != Some(b"websocket") {
            return Response::builder().status(400).body(Body::empty()).unwrap();
        }
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let upgraded = on_upgrade.await.unwrap();
            let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-accept", "dummy")
            .body(Body::empty())
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn websocket_upgrade_echoes_through_the_proxy() {
    let up = ws_echo().await;
    let (proxy, _) = proxy(
        LoadBalancer::LeastConn,
        vec![up.instance("ws")],
        ProxyConfig::default(),
    );
    let proxy = Arc::new(proxy);

    // A real downstream server in front of the proxy, so the OnUpgrade extension exists.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let proxy = proxy.clone();
                    async move {
                        let mut req = req.map(Body::new);
                        add_extensions(&mut req);
                        req.extensions_mut().insert(ConnInfo {
                            peer,
                            local: front,
                            tls: false,
                        });
                        Ok::<_, Infallible>(send(&proxy, req).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });

    let mut client = TcpStream::connect(front).await.unwrap();
    client
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: gw.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(client.read(&mut byte).await.unwrap(), 1, "closed: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("connection: upgrade"), "{head}");

    for msg in [&b"hello"[..], b"second message"] {
        client.write_all(msg).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, msg);
    }
}

/// A body that sends a chunk every `gap`.
struct Trickle {
    left: usize,
    gap: std::time::Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        std::task::ready!(std::future::Future::poll(self.sleep.as_mut(), cx));
        self.left -= 1;
        let next = tokio::time::Instant::now() + self.gap;
        self.sleep.as_mut().reset(next);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            b"chunk",
        )))))
    }
}

/// A 0.9 s upload (15 frames, 60 ms apart) through a proxy with these timeouts.
async fn trickled_upload(protocol: UpstreamProtocol, send: u64, read: u64) -> (u16, String) {
    let up = serve_proto(protocol == UpstreamProtocol::Http2, |req| async move {
        let n = match req.into_body().collect().await {
            Ok(c) => c.to_bytes().len(),
            Err(_) => 0,
        };
        Response::new(Body::from(n.to_string()))
    })
    .await;
    let config = ProxyConfig {
        timeouts: gw_proxy::Timeouts {
            connect: std::time::Duration::from_secs(5),
            send: std::time::Duration::from_millis(send),
            read: std::time::Duration::from_millis(read),
        },
        ..ProxyConfig::default()
    };
    let (proxy, _) = proxy_proto(
        LoadBalancer::RoundRobin,
        protocol,
        vec![up.instance("a")],
        config,
    );
    let gap = std::time::Duration::from_millis(60);
    let body = Body::new(Trickle {
        left: 15,
        gap,
        // The slow client under test: one piece every `gap`.
        sleep: Box::pin(tokio::time::sleep(gap)),
    });
    call(&proxy, request("PUT", "/", body)).await
}

#[tokio::test]
async fn read_starts_when_a_long_upload_is_over() {
    for protocol in [UpstreamProtocol::Http1, UpstreamProtocol::Http2] {
        // The upload takes six times `read`, within `send`.
        assert_eq!(
            trickled_upload(protocol, 5_000, 150).await,
            (200, "75".to_string()),
            "{protocol:?}"
        );
    }
}

#[tokio::test]
async fn send_bounds_the_whole_upload_however_steady() {
    for protocol in [UpstreamProtocol::Http1, UpstreamProtocol::Http2] {
        // Never idle for long, but longer than `send` in all.
        let (status, body) = trickled_upload(protocol, 300, 5_000).await;
        assert_eq!(status, 504, "{protocol:?}: {body}");
    }
}

#[tokio::test]
async fn http2_streamed_body_over_the_limit_is_413() {
    let up = serve_proto(true, |req| async move {
        let n = match req.into_body().collect().await {
            Ok(c) => c.to_bytes().len(),
            Err(_) => 0,
        };
        Response::new(Body::from(n.to_string()))
    })
    .await;
    let (proxy, _) = proxy_proto(
        LoadBalancer::RoundRobin,
        UpstreamProtocol::Http2,
        vec![up.instance("a")],
        limited(100_000),
    );
    let body = Body::new(Generated::new(1_000_000, 8192));
    let (status, body) = call(&proxy, request("POST", "/", body)).await;
    assert_eq!(status, 413, "{body}");
    let body = Body::new(Generated::new(50_000, 8192));
    assert_eq!(
        call(&proxy, request("POST", "/", body)).await,
        (200, "50000".to_string())
    );
}
