//! The gateway's own HTTP/1.1 upstream client against hyper's (`hyper::client::conn::http1`)
//! on the same requests: a GET and a POST with a chunked body, each answered with a small
//! body, `REQUESTS` of them one after the other on one loopback connection per iteration.
//!
//! Both clients talk to the same minimal upstream (a loop that reads a request, with
//! `gw_core::h1`'s chunked decoder for the POST, and writes a canned answer), on one
//! current-thread runtime, so the figures compare what each client costs a request.
//! Run: `cargo bench -p gw-proxy --bench h1_client -- --warm-up-time 1 --measurement-time 3`;
//! the figures are in docs/architecture.md ("Building for speed").

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gw_core::h1::{ChunkedDecoder, Decoded};
use gw_core::Body;
use gw_proxy::h1_probe::BenchClient;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// Requests per iteration, on one connection.
const REQUESTS: u64 = 200;
/// The POST's body: this many chunks of `CHUNK`.
const CHUNKS: usize = 4;
const CHUNK: &[u8] = b"{\"name\":\"a user\",\"email\":\"user@example.com\",\"role\":\"member\"}";
/// The upstream's answer to every request (64 bytes of body).
const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 64\r\n\r\n\
{\"id\":123,\"name\":\"a user\",\"email\":\"user@example.com\",\"ok\":true}\n";

/// A request body of `CHUNKS` frames whose length is not known beforehand (sent chunked).
struct Chunks(usize);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        self.0 -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(CHUNK)))))
    }

    fn is_end_stream(&self) -> bool {
        self.0 == 0
    }
}

/// What a proxied request carries: the same fields for both clients, built per request.
fn request(post: bool) -> (Method, &'static str, HeaderMap, Body) {
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(HOST, HeaderValue::from_static("users.internal:8001"));
    headers.insert(USER_AGENT, HeaderValue::from_static("bench/1.0"));
    headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    if post {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        (
            Method::POST,
            "/api/users",
            headers,
            Body::new(Chunks(CHUNKS)),
        )
    } else {
        (
            Method::GET,
            "/api/users/123?fields=name",
            headers,
            Body::empty(),
        )
    }
}

/// The upstream: for each request, its head and body are read (the body as its head
/// frames it) and the canned answer written.
async fn upstream(listener: TcpListener) {
    loop {
        let Ok((mut io, _)) = listener.accept().await else {
            return;
        };
        let _ = io.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(16 * 1024);
            loop {
                let (len, chunked, length) = loop {
                    if let Some(head) = request_head(&buf) {
                        break head;
                    }
                    if !matches!(io.read_buf(&mut buf).await, Ok(n) if n > 0) {
                        return;
                    }
                };
                buf.advance(len);
                if chunked {
                    let mut decoder = ChunkedDecoder::new();
                    loop {
                        match decoder.decode(&mut buf, 64 * 1024) {
                            Ok(Decoded::Data(_)) => {}
                            Ok(Decoded::End) => break,
                            Ok(Decoded::More) => {
                                if !matches!(io.read_buf(&mut buf).await, Ok(n) if n > 0) {
                                    return;
                                }
                            }
                            Err(_) => return,
                        }
                    }
                } else {
                    while buf.len() < length {
                        if !matches!(io.read_buf(&mut buf).await, Ok(n) if n > 0) {
                            return;
                        }
                    }
                    buf.advance(length);
                }
                if io.write_all(ANSWER).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A complete request head at the start of `buf`: its length, whether the body is chunked,
/// and its Content-Length otherwise.
fn request_head(buf: &[u8]) -> Option<(usize, bool, usize)> {
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf).expect("a valid request") {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return None,
    };
    let mut chunked = false;
    let mut length = 0;
    for f in req.headers.iter() {
        if f.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = gw_core::h1::is_chunked(f.value);
        } else if f.name.eq_ignore_ascii_case("content-length") {
            length = gw_core::headers::parse_content_length(f.value).expect("a length") as usize;
        }
    }
    Some((len, chunked, length))
}

async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let io = TcpStream::connect(addr).await.expect("connect");
    io.set_nodelay(true).expect("nodelay");
    io
}

/// `REQUESTS` requests through the gateway's client on a new connection; the time they took.
async fn own(addr: std::net::SocketAddr, post: bool) -> Duration {
    let mut client = BenchClient::new(connect(addr).await);
    let start = Instant::now();
    for _ in 0..REQUESTS {
        let (method, target, headers, body) = request(post);
        let (status, len) = client
            .request(&method, target, &headers, body)
            .await
            .expect("an answer");
        assert_eq!((status, len), (StatusCode::OK, 64));
    }
    start.elapsed()
}

/// The same through hyper's HTTP/1.1 client connection (its connection task spawned on the
/// same runtime, as hyper requires).
async fn hyper(addr: std::net::SocketAddr, post: bool) -> Duration {
    let io = TokioIo::new(connect(addr).await);
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(io)
        .await
        .expect("handshake");
    let task = tokio::spawn(conn);
    let start = Instant::now();
    for _ in 0..REQUESTS {
        let (method, target, headers, body) = request(post);
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = http::Uri::from_static(target);
        *req.headers_mut() = headers;
        sender.ready().await.expect("ready");
        let res = sender.send_request(req).await.expect("an answer");
        let status = res.status();
        let mut body = res.into_body();
        let mut len = 0;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.expect("body").data_ref() {
                len += data.len();
            }
        }
        assert_eq!((status, len), (StatusCode::OK, 64));
    }
    let took = start.elapsed();
    drop(sender);
    let _ = task.await;
    took
}

fn bench(c: &mut Criterion) {
    let rt: Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(upstream(listener));
        addr
    });
    for (name, post) in [("get", false), ("post_chunked", true)] {
        let mut group = c.benchmark_group(format!("h1_client/{name}"));
        group.throughput(Throughput::Elements(REQUESTS));
        group.bench_function("own", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += own(addr, post).await;
                    }
                    total
                })
            })
        });
        group.bench_function("hyper", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += hyper(addr, post).await;
                    }
                    total
                })
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
