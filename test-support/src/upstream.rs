//! Servers on `127.0.0.1:0` for tests to send to: the ready-made [`Upstream`] (echo, fixed
//! status, delay, close, WebSocket, trailers, download), a [`HealthServer`] whose `/health`
//! answer a test switches, a [`Server`] answering with any closure over HTTP/1.1 or HTTP/2,
//! and [`refused_addr`], where nothing listens.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// The boxed body test upstreams answer with.
pub type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).boxed()
}

/// What a test upstream does with each request.
#[derive(Clone, Debug)]
enum Behaviour {
    /// JSON `{instance, method, path, query, headers, body_len}`; a request with
    /// `x-test-delay-ms: N` is answered after N milliseconds.
    Echo,
    /// A fixed status (with the echo body).
    Status(u16),
    /// Echo after a delay.
    Delay(Duration),
    /// Close the connection without answering.
    Close,
    /// A WebSocket echo server.
    WebSocket,
    /// HTTP/2 (h2c) answer with a body and `grpc-status: 0` trailers.
    Trailers,
    /// Stream `n` bytes back, in 64 KiB chunks.
    Download(u64),
}

/// A test upstream on `127.0.0.1:0`, stopped when dropped.
#[derive(Debug)]
pub struct Upstream {
    /// Its address.
    pub addr: SocketAddr,
    /// Its name, reported in echo bodies as `instance`.
    pub name: String,
    hits: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl Upstream {
    /// An echo server reporting `name`.
    pub async fn echo(name: &str) -> Upstream {
        Self::start(name, Behaviour::Echo).await
    }

    /// Answers every request with `status`.
    pub async fn status(name: &str, status: u16) -> Upstream {
        Self::start(name, Behaviour::Status(status)).await
    }

    /// Echoes after `delay`.
    pub async fn delay(name: &str, delay: Duration) -> Upstream {
        Self::start(name, Behaviour::Delay(delay)).await
    }

    /// Accepts connections and closes them without answering.
    pub async fn close(name: &str) -> Upstream {
        Self::start(name, Behaviour::Close).await
    }

    /// A WebSocket echo server.
    pub async fn websocket(name: &str) -> Upstream {
        Self::start(name, Behaviour::WebSocket).await
    }

    /// An h2c server answering `hello` with `grpc-status: 0` / `grpc-message: ok` trailers.
    pub async fn trailers(name: &str) -> Upstream {
        Self::start(name, Behaviour::Trailers).await
    }

    /// Answers with `n` bytes, streamed.
    pub async fn download(name: &str, n: u64) -> Upstream {
        Self::start(name, Behaviour::Download(n)).await
    }

    /// How many requests (or connections, for `close`) it has seen.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The address as `host:port`.
    pub fn host_port(&self) -> (String, u16) {
        (self.addr.ip().to_string(), self.addr.port())
    }

    async fn start(name: &str, behaviour: Behaviour) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let name = name.to_string();
        let (task_hits, task_name) = (hits.clone(), name.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(p) => p, Err(_) => continue },
                    _ = &mut stopped => return,
                };
                let behaviour = behaviour.clone();
                let hits = task_hits.clone();
                let name = task_name.clone();
                tokio::spawn(async move {
                    match behaviour {
                        Behaviour::Close => {
                            hits.fetch_add(1, Ordering::SeqCst);
                            drop(stream);
                        }
                        Behaviour::WebSocket => {
                            hits.fetch_add(1, Ordering::SeqCst);
                            if let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await {
                                while let Some(Ok(msg)) = ws.next().await {
                                    if msg.is_close() {
                                        break;
                                    }
                                    if ws.send(msg).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        Behaviour::Trailers => {
                            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                                hits.fetch_add(1, Ordering::SeqCst);
                                async move { Ok::<_, Infallible>(trailers_answer(req).await) }
                            });
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        }
                        behaviour => {
                            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                                hits.fetch_add(1, Ordering::SeqCst);
                                let behaviour = behaviour.clone();
                                let name = name.clone();
                                async move { Ok::<_, Infallible>(answer(&name, &behaviour, req).await) }
                            });
                            let _ =
                                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            name,
            hits,
            _stop: stop,
        }
    }
}

async fn answer(name: &str, behaviour: &Behaviour, req: Request<Incoming>) -> Response<TestBody> {
    if let Behaviour::Delay(d) = behaviour {
        tokio::time::sleep(*d).await;
    }
    if let Behaviour::Echo = behaviour {
        let asked = req
            .headers()
            .get("x-test-delay-ms")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(ms) = asked {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    if let Behaviour::Download(n) = behaviour {
        let n = *n;
        let chunks = futures_util::stream::unfold(0u64, move |sent| async move {
            if sent >= n {
                return None;
            }
            let len = (n - sent).min(64 * 1024);
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; len as usize]))),
                sent + len,
            ))
        });
        return Response::new(BodyExt::boxed(StreamBody::new(chunks)));
    }
    let (parts, mut body) = req.into_parts();
    // Count the body as it streams: never hold it whole.
    let mut body_len: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    body_len += d.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    // Every field line in order, repeated names included (the map above keeps the last).
    let header_list: Vec<[String; 2]> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            [
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            ]
        })
        .collect();
    let body = serde_json::json!({
        "instance": name,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "header_list": header_list,
        "body_len": body_len,
    });
    let status = match behaviour {
        Behaviour::Status(s) => *s,
        _ => 200,
    };
    let mut res = Response::new(full(body.to_string()));
    *res.status_mut() = StatusCode::from_u16(status).expect("valid status");
    res.headers_mut()
        .insert("content-type", "application/json".parse().expect("valid"));
    res.headers_mut()
        .insert("x-upstream", name.parse().expect("valid name"));
    res
}

async fn trailers_answer(req: Request<Incoming>) -> Response<TestBody> {
    let _ = req.into_body().collect().await;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().expect("valid"));
    trailers.insert("grpc-message", "ok".parse().expect("valid"));
    let frames = futures_util::stream::iter(vec![
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"hello"))),
        Ok(Frame::trailers(trailers)),
    ]);
    let mut res = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    res.headers_mut()
        .insert("content-type", "application/grpc".parse().expect("valid"));
    res
}

/// How a [`Server`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1, upgrades (WebSocket, `CONNECT`) allowed.
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    Http2,
    /// Either, told apart by the first bytes of each connection.
    Auto,
}

/// A response body hyper can serve: any `Send` body whose errors are boxable.
pub trait ServedBody:
    http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
{
}

impl<B> ServedBody for B where
    B: http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static
{
}

/// The tasks of a server started by [`serve_on`]: the accept loop and, under it, every
/// connection. Dropping it stops them all (open connections and requests in flight included).
#[derive(Debug)]
pub struct Serving {
    _tasks: JoinSet<()>,
}

/// Serves `listener` with `f` over `protocol` until the returned [`Serving`] is dropped.
pub fn serve_on<F, Fut, B>(listener: TcpListener, protocol: Protocol, f: F) -> Serving
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: ServedBody,
{
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        // Owned by the accept task: aborting that task drops (and so aborts) every connection.
        let mut conns = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let f = f.clone();
            let svc = service_fn(move |req| {
                let fut = f(req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            conns.spawn(async move {
                let io = TokioIo::new(stream);
                match protocol {
                    Protocol::Http1 => {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .with_upgrades()
                            .await;
                    }
                    Protocol::Http2 => {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, svc)
                            .await;
                    }
                    Protocol::Auto => {
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(io, svc)
                            .await;
                    }
                }
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Serving { _tasks: tasks }
}

/// A server on `127.0.0.1:0` answering every request with a closure, counting requests.
/// Clones share it; it stops when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Server {
    /// Its address.
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    _serving: Arc<Serving>,
}

impl Server {
    /// Starts one answering with `f` over `protocol`.
    pub async fn start<F, Fut, B>(protocol: Protocol, f: F) -> Server
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<B>> + Send + 'static,
        B: ServedBody,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test server");
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let serving = serve_on(listener, protocol, move |req| {
            counter.fetch_add(1, Ordering::SeqCst);
            f(req)
        });
        Server {
            addr,
            hits,
            _serving: Arc::new(serving),
        }
    }

    /// How many requests it has seen.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// An address where nothing listens (bound, then released).
pub async fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    addr
}

/// A JSON answer: `status` with `body` as it is.
pub(crate) fn json_answer(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .expect("a valid answer")
}

/// A health endpoint: answers `status` (switchable), or hangs when told to.
#[derive(Debug)]
pub struct HealthServer {
    /// Its address.
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    hang: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    oks: Arc<AtomicUsize>,
    fails: Arc<AtomicUsize>,
    _task: Serving,
}

impl HealthServer {
    /// Starts one answering `GET /health` with `status` (other paths: 404).
    pub async fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let st = Arc::new(AtomicU16::new(status));
        let hang = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let oks = Arc::new(AtomicUsize::new(0));
        let fails = Arc::new(AtomicUsize::new(0));
        let (s, h, n, o, f) = (
            st.clone(),
            hang.clone(),
            hits.clone(),
            oks.clone(),
            fails.clone(),
        );
        let task = serve_on(listener, Protocol::Http1, move |req: Request<Incoming>| {
            let (s, h, n, o, f) = (s.clone(), h.clone(), n.clone(), o.clone(), f.clone());
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                if h.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                if req.uri().path() != "/health" {
                    f.fetch_add(1, Ordering::SeqCst);
                    return json_answer(404, "not found");
                }
                let status = s.load(Ordering::SeqCst);
                if status < 400 {
                    o.fetch_add(1, Ordering::SeqCst);
                } else {
                    f.fetch_add(1, Ordering::SeqCst);
                }
                json_answer(status, "{}")
            }
        });
        HealthServer {
            addr,
            status: st,
            hang,
            hits,
            oks,
            fails,
            _task: task,
        }
    }

    /// Answers `status` from now on.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
    /// Leaves requests unanswered (`true`) or answers them again.
    pub fn set_hang(&self, hang: bool) {
        self.hang.store(hang, Ordering::SeqCst);
    }
    /// Requests received.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    /// Answers sent with a status below 400.
    pub fn oks(&self) -> usize {
        self.oks.load(Ordering::SeqCst)
    }
    /// Answers sent with a status of 400 or more.
    pub fn fails(&self) -> usize {
        self.fails.load(Ordering::SeqCst)
    }
}
