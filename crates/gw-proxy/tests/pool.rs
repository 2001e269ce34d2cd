//! The HTTP/1.1 keep-alive pool: connections are reused once a response body has been read to
//! its end, and closed when it was not.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use gw_core::Body;
use gw_proxy::{LoadBalancer, ProxyConfig};
use http::Response;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::*;
use tokio::net::TcpListener;

/// An HTTP/1.1 upstream that counts accepted connections; `/big` answers 1 MiB.
async fn counting() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = conns.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let body = if req.uri().path() == "/big" {
                    Body::from(Bytes::from(vec![b'x'; 1 << 20]))
                } else {
                    Body::from("ok")
                };
                Ok::<_, Infallible>(Response::new(body))
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, conns)
}

#[tokio::test]
async fn connection_is_reused_after_the_body_ends() {
    let (addr, conns) = counting().await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![instance("a", addr, 100)],
        ProxyConfig::default(),
    );
    for _ in 0..5 {
        assert_eq!(call(&proxy, get("/")).await, (200, "ok".to_string()));
    }
    let (status, body) = call(&proxy, get("/big")).await;
    assert_eq!((status, body.len()), (200, 1 << 20));
    assert_eq!(call(&proxy, get("/")).await.0, 200);
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unread_body_closes_the_connection() {
    let (addr, conns) = counting().await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![instance("a", addr, 100)],
        ProxyConfig::default(),
    );
    // Headers only: the 1 MiB body is dropped unread, so this connection cannot serve again.
    let res = send(&proxy, get("/big")).await;
    assert_eq!(res.status(), 200);
    drop(res);
    assert_eq!(call(&proxy, get("/")).await, (200, "ok".to_string()));
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    // That second connection was read to the end: reused.
    assert_eq!(call(&proxy, get("/")).await.0, 200);
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}
