//! Test upstreams on 127.0.0.1:0 and request helpers.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gw_core::{Body, ClientAddr, ConnInfo, RequestId};
use gw_proxy::{Clients, Instance, LoadBalancer, Proxy, ProxyConfig, Upstream, UpstreamProtocol};
use http::{HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub const PEER: &str = "192.0.2.10:5555";
pub const REQUEST_ID: &str = "test-req-1";

/// A running test upstream.
#[derive(Clone, Debug)]
pub struct TestUpstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl TestUpstream {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn instance(&self, id: &str) -> Instance {
        instance(id, self.addr, 100)
    }
}

pub fn instance(id: &str, addr: SocketAddr, weight: u32) -> Instance {
    Instance {
        id: id.into(),
        host: addr.ip().to_string(),
        port: addr.port(),
        weight,
        metadata: BTreeMap::new(),
    }
}

/// Serves HTTP/1.1 (with upgrades) or HTTP/2 (prior knowledge) with `f`, counting requests.
pub async fn serve_proto<F, Fut>(h2: bool, f: F) -> TestUpstream
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let f = f.clone();
            let counter = counter.clone();
            let svc = service_fn(move |req| {
                counter.fetch_add(1, Ordering::SeqCst);
                let fut = f(req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            tokio::spawn(async move {
                let io = TokioIo::new(stream);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .with_upgrades()
                        .await;
                }
            });
        }
    });
    TestUpstream { addr, hits }
}

pub async fn serve<F, Fut>(f: F) -> TestUpstream
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    serve_proto(false, f).await
}

/// An upstream that answers `status` with its `id` as the body.
pub async fn fixed(id: &'static str, status: u16) -> TestUpstream {
    serve(move |_req| async move {
        Response::builder()
            .status(status)
            .body(Body::from(id))
            .unwrap()
    })
    .await
}

/// A port on which nothing listens.
pub async fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

pub fn proxy(
    lb: LoadBalancer,
    instances: Vec<Instance>,
    config: ProxyConfig,
) -> (Proxy, Arc<Upstream>) {
    proxy_proto(lb, UpstreamProtocol::Http1, instances, config)
}

pub fn proxy_proto(
    lb: LoadBalancer,
    protocol: UpstreamProtocol,
    instances: Vec<Instance>,
    config: ProxyConfig,
) -> (Proxy, Arc<Upstream>) {
    let upstream = Upstream::new("svc", lb, protocol, instances);
    let proxy = Proxy::new(upstream.clone(), Clients::default(), Arc::new(config));
    (proxy, upstream)
}

/// A request as the router hands it over: extensions set, path already rewritten.
pub fn request(method: &str, path: &str, body: Body) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "gw.example")
        .body(body)
        .unwrap();
    add_extensions(&mut req);
    req
}

pub fn get(path: &str) -> Request<Body> {
    request("GET", path, Body::empty())
}

pub fn add_extensions<B>(req: &mut Request<B>) {
    let peer: SocketAddr = PEER.parse().unwrap();
    let ext = req.extensions_mut();
    ext.insert(ConnInfo {
        peer,
        local: "127.0.0.1:8080".parse().unwrap(),
        tls: false,
    });
    ext.insert(ClientAddr {
        ip: peer.ip(),
        https: false,
    });
    ext.insert(RequestId::new(HeaderValue::from_static(REQUEST_ID)));
}

pub async fn send(proxy: &Proxy, req: Request<Body>) -> Response<Body> {
    use tower::ServiceExt;
    proxy.clone().oneshot(req).await.unwrap()
}

pub async fn text(res: Response<Body>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Sends `req` and returns (status, body text).
pub async fn call(proxy: &Proxy, req: Request<Body>) -> (u16, String) {
    let res = send(proxy, req).await;
    let status = res.status().as_u16();
    (status, text(res).await)
}

/// A body of `total` bytes produced `chunk` bytes at a time, of unknown length (chunked).
#[derive(Debug)]
pub struct Generated {
    pub remaining: usize,
    pub chunk: Bytes,
}

impl Generated {
    pub fn new(total: usize, chunk_size: usize) -> Self {
        Generated {
            remaining: total,
            chunk: Bytes::from(vec![b'x'; chunk_size]),
        }
    }
}

impl http_body::Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len());
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }
}

/// Polls `cond` until it holds (bounded).
pub async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in time");
}
