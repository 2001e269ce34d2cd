//! The gateway's own HTTP/1.1 server loop (`src/listener/http1/`) against hyper's HTTP/1.1
//! server, built as the listener builds it for a hand-off, on the same requests: a GET and a
//! POST with a chunked body, each answered with a small body by the same service, `REQUESTS`
//! of them one after the other on one loopback connection per iteration.
//!
//! The own loop takes only requests without a body: the chunked POST is handed to hyper on
//! the connection's first request, so that case measures the hand-off path. The client is a
//! minimal one (canned request bytes, answers read by their `Content-Length`), the same for
//! both, on one current-thread runtime with the servers.
//! Run: `cargo bench -p gateway-bin --bench h1 -- --warm-up-time 1 --measurement-time 3`;
//! the figures are in docs/architecture.md ("Building for speed").

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gw_core::Body;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Requests per iteration, on one connection.
const REQUESTS: u64 = 200;

const GET: &[u8] = b"GET /api/users/123?fields=name HTTP/1.1\r\nHost: gateway.example\r\n\
User-Agent: bench/1.0\r\nAccept: */*\r\n\r\n";

const POST: &[u8] =
    b"POST /api/users HTTP/1.1\r\nHost: gateway.example\r\nUser-Agent: bench/1.0\r\n\
Accept: */*\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
3c\r\n{\"name\":\"a user\",\"email\":\"user@example.com\",\"role\":\"member\"}\r\n\
3c\r\n{\"name\":\"a user\",\"email\":\"user@example.com\",\"role\":\"member\"}\r\n\
3c\r\n{\"name\":\"a user\",\"email\":\"user@example.com\",\"role\":\"member\"}\r\n\
3c\r\n{\"name\":\"a user\",\"email\":\"user@example.com\",\"role\":\"member\"}\r\n0\r\n\r\n";

/// The answer's body (64 bytes).
const ANSWER: &[u8] =
    b"{\"id\":123,\"name\":\"a user\",\"email\":\"user@example.com\",\"ok\":true}\n";

/// The service behind both servers: reads the request's body, answers `ANSWER`.
async fn service(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let read = req
        .into_body()
        .collect()
        .await
        .map_or(0, |b| b.to_bytes().len());
    assert!(read == 0 || read == 240, "read {read} body bytes");
    let mut res = Response::new(Body::from(Bytes::from_static(ANSWER)));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(res)
}

/// hyper's HTTP/1.1 server as the listener configures it for a hand-off.
fn builder() -> http1::Builder {
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(64 * 1024)
        .max_headers(200);
    h1
}

/// Accepts connections and serves each with the own loop (`own`) or hyper's server.
async fn listen(listener: TcpListener, own: bool) {
    loop {
        let Ok((io, _)) = listener.accept().await else {
            return;
        };
        let _ = io.set_nodelay(true);
        tokio::spawn(async move {
            if own {
                let _ = gateway_bin::bench_serve_h1(io, service, builder()).await;
            } else {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| {
                    service(req.map(Body::new))
                });
                let _ = builder().serve_connection(TokioIo::new(io), svc).await;
            }
        });
    }
}

/// `REQUESTS` times `request` on a new connection to `addr`, each answer read whole before
/// the next request; the time they took.
async fn run(addr: SocketAddr, request: &[u8]) -> Duration {
    let mut io = TcpStream::connect(addr).await.expect("connect");
    io.set_nodelay(true).expect("nodelay");
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let start = Instant::now();
    for _ in 0..REQUESTS {
        io.write_all(request).await.expect("write");
        let need = loop {
            if let Some(need) = answer_len(&buf) {
                break need;
            }
            assert!(io.read_buf(&mut buf).await.expect("read") > 0, "closed");
        };
        while buf.len() < need {
            assert!(io.read_buf(&mut buf).await.expect("read") > 0, "closed");
        }
        buf.advance(need);
    }
    start.elapsed()
}

/// The length of the 200 answer at the start of `buf`, head and body, once its head is in.
fn answer_len(buf: &[u8]) -> Option<usize> {
    let mut fields = [httparse::EMPTY_HEADER; 16];
    let mut res = httparse::Response::new(&mut fields);
    let head = match res.parse(buf).expect("a valid answer") {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return None,
    };
    assert_eq!(res.code, Some(200));
    let length = res
        .headers
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("content-length"))
        .and_then(|f| gw_core::headers::parse_content_length(f.value))
        .expect("a content-length");
    assert_eq!(length, ANSWER.len() as u64);
    Some(head + ANSWER.len())
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (own, hyper) = rt.block_on(async {
        let own = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let hyper = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addrs = (
            own.local_addr().expect("addr"),
            hyper.local_addr().expect("addr"),
        );
        tokio::spawn(listen(own, true));
        tokio::spawn(listen(hyper, false));
        addrs
    });
    for (name, request) in [("get", GET), ("post_chunked", POST)] {
        let mut group = c.benchmark_group(format!("h1_server/{name}"));
        group.throughput(Throughput::Elements(REQUESTS));
        for (server, addr) in [("own", own), ("hyper", hyper)] {
            group.bench_function(server, |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += run(addr, request).await;
                        }
                        total
                    })
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
