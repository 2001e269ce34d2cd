//! Upstream connections: a lean keep-alive pool per instance for HTTP/1.1, hyper-util's pooled
//! client for HTTP/2.
//!
//! Why not hyper-util's legacy client for HTTP/1.1 too: per request it hashes the pool key
//! (SipHash), takes the process-wide pool lock twice, boxes and moves large futures, and
//! spawns a task that waits for the connection to become ready again. Here each instance
//! owns its idle list (an uncontended mutex around a `Vec`), a connection goes back to it
//! when the response body has been read to the end, and checking out is a `pop`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parking_lot::Mutex;

use crate::body::ReqBody;
use crate::upstream::Endpoint;
use crate::{ClientOptions, UpstreamProtocol};

type LegacyClient = Client<HttpConnector, ReqBody>;
type Sender = http1::SendRequest<ReqBody>;

/// Pooled hyper clients shared by all routes (keep-alive pools per upstream instance). One per
/// gateway; clones share the pools.
///
/// The connect timeout is a connector setting, so there is one client per (protocol, connect
/// timeout) pair, created on first use by [`Proxy::new`](crate::Proxy::new) and cached; the
/// lookup happens when a route is built, never per request. HTTP/1.1 connections are kept
/// per instance (in the service's [`Upstream`](crate::Upstream)), HTTP/2 connections in
/// hyper-util's pool.
#[derive(Clone)]
pub struct Clients {
    inner: Arc<Inner>,
}

struct Inner {
    opts: ClientOptions,
    cache: Mutex<HashMap<(UpstreamProtocol, Duration), HttpClient>>,
}

impl fmt::Debug for Clients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clients")
            .field("opts", &self.inner.opts)
            .field("clients", &self.inner.cache.lock().len())
            .finish()
    }
}

impl Clients {
    /// Empty pools with these settings.
    pub fn new(opts: ClientOptions) -> Clients {
        Clients {
            inner: Arc::new(Inner {
                opts,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub(crate) fn get(&self, protocol: UpstreamProtocol, connect: Duration) -> HttpClient {
        let mut cache = self.inner.cache.lock();
        cache
            .entry((protocol, connect))
            .or_insert_with(|| build(&self.inner.opts, protocol, connect))
            .clone()
    }
}

impl Default for Clients {
    fn default() -> Self {
        Clients::new(ClientOptions::default())
    }
}

/// How a route reaches its instances.
#[derive(Clone)]
pub(crate) enum HttpClient {
    /// HTTP/1.1: connections from the instance's [`HostPool`].
    Http1(H1Client),
    /// HTTP/2 (h2c): hyper-util's pooled client (one multiplexed connection per instance).
    Http2(Box<LegacyClient>),
}

fn build(opts: &ClientOptions, protocol: UpstreamProtocol, connect: Duration) -> HttpClient {
    if protocol == UpstreamProtocol::Http1 {
        return HttpClient::Http1(H1Client {
            connect,
            idle_timeout: opts.pool_idle_timeout,
            max_idle: opts.pool_max_idle_per_host,
        });
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect));
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(opts.pool_idle_timeout)
        .pool_max_idle_per_host(opts.pool_max_idle_per_host)
        // We set Host ourselves (the client's); don't let the client add the instance's.
        .set_host(false)
        .http2_only(true);
    HttpClient::Http2(Box::new(builder.build(connector)))
}

/// Why a request could not be sent or got no response head.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// Resolving or connecting failed (refused, unreachable, no address).
    Connect(std::io::Error),
    /// The HTTP/1.1 exchange failed (reset, closed, malformed answer, request body error).
    Http1(hyper::Error),
    /// The HTTP/2 client failed.
    Http2(hyper_util::client::legacy::Error),
}

impl HttpClient {
    /// Sends `req` (its URI in origin form for HTTP/1.1, absolute for HTTP/2) to `ep`.
    pub(crate) async fn send(
        &self,
        ep: &Endpoint,
        req: Request<ReqBody>,
    ) -> Result<(Response<Incoming>, Option<Pooled>), SendError> {
        match self {
            HttpClient::Http1(c) => c.send(ep, req).await,
            HttpClient::Http2(c) => c
                .request(req)
                .await
                .map(|r| (r, None))
                .map_err(SendError::Http2),
        }
    }
}

/// HTTP/1.1 settings of one (connect timeout) client; the connections live in the instances'
/// [`HostPool`]s.
#[derive(Clone, Debug)]
pub(crate) struct H1Client {
    connect: Duration,
    idle_timeout: Duration,
    max_idle: usize,
}

impl H1Client {
    async fn send(
        &self,
        ep: &Endpoint,
        mut req: Request<ReqBody>,
    ) -> Result<(Response<Incoming>, Option<Pooled>), SendError> {
        loop {
            let (mut tx, reused) = match ep.pool.checkout(self.idle_timeout) {
                Some(tx) => (tx, true),
                // Boxed: the connect state is large and rarely needed; keeping it out of this
                // future keeps every request's future small (it is moved and boxed).
                None => (Box::pin(self.connect(ep)).await?, false),
            };
            if reused && !tx.is_ready() && tx.ready().await.is_err() {
                continue;
            }
            match tx.try_send_request(req).await {
                Ok(res) => {
                    let pooled = Pooled {
                        tx: Some(tx),
                        pool: ep.pool.clone(),
                        max_idle: self.max_idle,
                        idle_timeout: self.idle_timeout,
                        reusable: false,
                    };
                    return Ok((res, Some(pooled)));
                }
                Err(mut e) => match e.take_message() {
                    // A pooled connection closed before the request went out: another one.
                    Some(r) if reused => req = r,
                    _ => return Err(SendError::Http1(e.into_error())),
                },
            }
        }
    }

    async fn connect(&self, ep: &Endpoint) -> Result<Sender, SendError> {
        let host = ep.instance.host.as_str();
        let port = ep.instance.port;
        let connect = async {
            let stream = match host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                Ok(ip) => tokio::net::TcpStream::connect(SocketAddr::new(ip, port)).await?,
                Err(_) => {
                    let mut last = None;
                    let mut found = None;
                    for addr in tokio::net::lookup_host((host, port)).await? {
                        match tokio::net::TcpStream::connect(addr).await {
                            Ok(s) => {
                                found = Some(s);
                                break;
                            }
                            Err(e) => last = Some(e),
                        }
                    }
                    match found {
                        Some(s) => s,
                        None => {
                            return Err(last.unwrap_or_else(|| {
                                std::io::Error::new(
                                    std::io::ErrorKind::NotFound,
                                    format!("{host}: no address"),
                                )
                            }))
                        }
                    }
                }
            };
            let _ = stream.set_nodelay(true);
            Ok(stream)
        };
        let stream = match tokio::time::timeout(self.connect, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(SendError::Connect(e)),
            Err(_) => return Err(SendError::ConnectTimeout),
        };
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http1)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }
}

/// The idle HTTP/1.1 connections to one instance, most recently used last.
#[derive(Default)]
pub(crate) struct HostPool {
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    tx: Sender,
    since: Instant,
}

impl fmt::Debug for HostPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostPool")
            .field("idle", &self.idle.lock().len())
            .finish()
    }
}

impl HostPool {
    /// The most recently used connection that is still open and idle for less than
    /// `idle_timeout`; older ones are closed.
    fn checkout(&self, idle_timeout: Duration) -> Option<Sender> {
        let mut idle = self.idle.lock();
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() > idle_timeout {
                // Everything below is older still.
                idle.clear();
                return None;
            }
            if !entry.tx.is_closed() {
                return Some(entry.tx);
            }
        }
        None
    }

    /// Keeps `tx` for reuse (up to `max_idle`); the oldest entry is dropped when it has
    /// expired or closed, so connections that stopped being used do not stay forever.
    fn put(&self, tx: Sender, max_idle: usize, idle_timeout: Duration) {
        // One clock reading for both the expiry check and the new entry's time.
        let now = Instant::now();
        let mut idle = self.idle.lock();
        if idle.first().is_some_and(|e| {
            e.tx.is_closed() || now.saturating_duration_since(e.since) > idle_timeout
        }) {
            idle.remove(0);
        }
        if idle.len() < max_idle {
            idle.push(Idle { tx, since: now });
        }
    }
}

/// A checked-out HTTP/1.1 connection, held by the response body: it goes back to its pool
/// when dropped after the body was read to the end, and is closed otherwise.
pub(crate) struct Pooled {
    tx: Option<Sender>,
    pool: Arc<HostPool>,
    max_idle: usize,
    idle_timeout: Duration,
    reusable: bool,
}

impl Pooled {
    /// The response body was read to its end: the connection can serve another request.
    pub(crate) fn done(&mut self) {
        self.reusable = true;
    }
}

impl fmt::Debug for Pooled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("reusable", &self.reusable)
            .finish()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if self.reusable {
            if let Some(tx) = self.tx.take() {
                if !tx.is_closed() {
                    self.pool.put(tx, self.max_idle, self.idle_timeout);
                }
            }
        }
    }
}
