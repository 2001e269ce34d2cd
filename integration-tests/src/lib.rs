//! Test support: upstream servers on `127.0.0.1:0`, the gateway in-process on ephemeral ports,
//! a plain HTTP client, and a bounded poll.
//!
//! ```no_run
//! # async fn t() {
//! use integration_tests::{TestGateway, Upstream};
//! let up = Upstream::echo("a").await;
//! let gw = TestGateway::builder().service("svc", &[&up]).route(r#"id = "r"
//! path = "/api"
//! service = "svc""#).start().await;
//! let res = gw.get("/api/x").await;
//! assert_eq!(res.status(), 200);
//! # }
//! ```

pub mod raw;
pub mod redis;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use gateway_bin::{Config, Gateway};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

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

/// An address where nothing listens (bound, then released).
pub async fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    addr
}

/// Builds the TOML of a test gateway: listeners on port 0, access log off.
#[derive(Debug, Default, Clone)]
pub struct GatewayBuilder {
    head: String,
    services: Vec<String>,
    routes: Vec<String>,
}

impl GatewayBuilder {
    /// Extra top-level TOML (e.g. `[server]` keys are merged: give whole sections).
    pub fn raw(mut self, toml: &str) -> Self {
        self.head.push_str(toml);
        self.head.push('\n');
        self
    }

    /// A round-robin service over `upstreams`.
    pub fn service(self, name: &str, upstreams: &[&Upstream]) -> Self {
        self.service_with(name, "", upstreams, &[])
    }

    /// A service with extra keys (`load_balancer = "weighted"`) and per-instance weights
    /// (empty: 100 each).
    pub fn service_with(
        mut self,
        name: &str,
        extra: &str,
        upstreams: &[&Upstream],
        weights: &[u32],
    ) -> Self {
        let instances: Vec<String> = upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| {
                format!(
                    "{{ id = \"{}\", host = \"127.0.0.1\", port = {}, weight = {} }}",
                    u.name,
                    u.addr.port(),
                    weights.get(i).copied().unwrap_or(100)
                )
            })
            .collect();
        self.services.push(format!(
            "[services.{name}]\n{extra}\ninstances = [{}]\n",
            instances.join(", ")
        ));
        self
    }

    /// A service whose instances are given as raw addresses.
    pub fn service_addrs(mut self, name: &str, addrs: &[SocketAddr]) -> Self {
        let instances: Vec<String> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                format!(
                    "{{ id = \"{name}-{i}\", host = \"{}\", port = {} }}",
                    a.ip(),
                    a.port()
                )
            })
            .collect();
        self.services.push(format!(
            "[services.{name}]\ninstances = [{}]\n",
            instances.join(", ")
        ));
        self
    }

    /// One `[[routes]]` table's body.
    pub fn route(mut self, body: &str) -> Self {
        self.routes.push(format!("[[routes]]\n{body}\n"));
        self
    }

    /// The TOML text.
    pub fn toml(&self) -> String {
        let mut text = String::new();
        if !self.head.contains("[server]") {
            text.push_str("[server]\nlisten = \"127.0.0.1:0\"\n");
        }
        if !self.head.contains("[admin]") {
            text.push_str("[admin]\nlisten = \"127.0.0.1:0\"\n");
        }
        if !self.head.contains("[log]") {
            text.push_str("[log]\naccess_log = \"off\"\nlevel = \"warn\"\n");
        }
        text.push_str(&self.head);
        for s in &self.services {
            text.push_str(s);
        }
        for r in &self.routes {
            text.push_str(r);
        }
        text
    }

    /// Parses, validates and starts the gateway.
    pub async fn start(self) -> TestGateway {
        let text = self.toml();
        let config = Config::from_toml_str(&text)
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n---\n{text}"));
        TestGateway::start(config).await
    }
}

/// A gateway started in-process, with a client.
#[derive(Debug)]
pub struct TestGateway {
    /// The gateway.
    pub gateway: Gateway,
    /// A client with no proxy and no pooling surprises.
    pub client: reqwest::Client,
}

impl TestGateway {
    /// A builder for the configuration.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    /// Starts a gateway with `config`.
    pub async fn start(config: Config) -> TestGateway {
        let gateway = Gateway::start(config, None).await.expect("gateway starts");
        TestGateway {
            gateway,
            client: client(),
        }
    }

    /// `http://proxy/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.proxy_addr())
    }

    /// `http://admin/path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.admin_addr())
    }

    /// GET on the proxy listener.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// GET on the proxy listener, answer as JSON (with the status).
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let res = self.get(path).await;
        let status = res.status().as_u16();
        (status, res.json().await.expect("JSON body"))
    }
}

/// A reqwest client that never uses a proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Polls `f` every 20 ms until it returns true or `limit` passes; returns whether it did.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
