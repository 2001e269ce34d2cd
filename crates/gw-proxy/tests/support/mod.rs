//! gw-proxy's own test helpers: upstream instances, proxies and requests over its API (the
//! servers themselves, polls and the rest come from the workspace's test-support crate).
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use gw_core::{Body, ClientAddr, ConnInfo, RequestId};
use gw_proxy::{Clients, Instance, LoadBalancer, Proxy, ProxyConfig, Upstream, UpstreamProtocol};
use http::{HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use test_support::Protocol;

pub const PEER: &str = "192.0.2.10:5555";
pub const REQUEST_ID: &str = "test-req-1";

/// A running test upstream (the workspace's test-support [`Server`](test_support::Server)).
pub use test_support::{refused_addr, Server as TestUpstream};

/// The [`Instance`] of a test upstream.
pub trait InstanceOf {
    /// The upstream as instance `id` of weight 100.
    fn instance(&self, id: &str) -> Instance;
}

impl InstanceOf for TestUpstream {
    fn instance(&self, id: &str) -> Instance {
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
    let protocol = if h2 { Protocol::Http2 } else { Protocol::Http1 };
    TestUpstream::start(protocol, f).await
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
