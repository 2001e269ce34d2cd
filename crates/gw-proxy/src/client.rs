//! Upstream connections: a lean keep-alive pool per instance for HTTP/1.1, hyper-util's pooled
//! client for HTTP/2.
//!
//! Why not hyper-util's legacy client for HTTP/1.1 too (see [`h1`](crate::h1) for the
//! exchange itself): per request it hashes the pool key
//! (SipHash), takes the process-wide pool lock twice, boxes and moves large futures, and
//! spawns a task that waits for the connection to become ready again. Here each instance
//! owns its idle list (an uncontended mutex around a `Vec`), a connection goes back to it
//! when the response body has been read to the end, and checking out is a `pop`.

use std::collections::HashMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use parking_lot::Mutex;
use tokio::time::Sleep;

use crate::body::{deadline, Progress, ReqBody, UpstreamBody};
use crate::h1::{self, Conn, H1Error, H1Head, PoolSlot};
use crate::upstream::Endpoint;
use crate::{ClientOptions, UpstreamProtocol};

type LegacyClient = Client<HttpConnector, ReqBody>;

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
    Http1(H1Error),
    /// The HTTP/2 client failed.
    Http2(hyper_util::client::legacy::Error),
}

/// The wait for an answer's head: `limit` from `start`, or from the last frame of a streamed
/// request body when that is later.
pub(crate) struct HeadWait<'a> {
    pub(crate) start: tokio::time::Instant,
    pub(crate) limit: Duration,
    pub(crate) progress: Option<&'a Progress>,
}

/// The answer's head did not arrive within the [`HeadWait`].
#[derive(Debug)]
pub(crate) struct Elapsed;

impl HeadWait<'_> {
    fn first_deadline(&self) -> tokio::time::Instant {
        self.start
            .checked_add(self.limit)
            .unwrap_or_else(|| deadline(self.limit))
    }

    /// A timer that fires at the first deadline or before it: `timer` itself when given,
    /// else a new one. A connection's timer still carries an earlier request's deadline,
    /// which is earlier than this one's: it is left as it is (a reset costs atomic
    /// operations on every request), and [`bound`](Self::bound) moves it on when it fires
    /// early, about once per `limit` on a busy connection.
    fn arm(&self, timer: Option<Pin<Box<Sleep>>>) -> Pin<Box<Sleep>> {
        let due = self.first_deadline();
        match timer {
            Some(mut t) => {
                if t.deadline() > due {
                    t.as_mut().reset(due);
                }
                t
            }
            None => Box::pin(tokio::time::sleep_until(due)),
        }
    }

    /// `fut`'s output, unless `sleep` fires first with no body progress since. Both are
    /// borrowed, pinned where they live: moving a request future into a wrapper would copy
    /// all of its state.
    fn bound<'a, F: Future>(
        &'a self,
        mut sleep: Pin<&'a mut Sleep>,
        mut fut: Pin<&'a mut F>,
    ) -> impl Future<Output = Result<F::Output, Elapsed>> + 'a {
        poll_fn(move |cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            loop {
                ready!(sleep.as_mut().poll(cx));
                // Fired: at the deadline, or early (see `arm`), or while the body was still
                // moving. The latest of those is when the wait really ends.
                let first = self.first_deadline();
                let due = match self.progress.and_then(|p| p.last().checked_add(self.limit)) {
                    Some(moved) => moved.max(first),
                    None => first,
                };
                if due > sleep.deadline() {
                    sleep.as_mut().reset(due);
                } else {
                    return Poll::Ready(Err(Elapsed));
                }
            }
        })
    }
}

impl HttpClient {
    /// Sends `req` to `ep` and waits for the answer's head, at most `wait`.
    pub(crate) async fn send(
        &self,
        ep: &Endpoint,
        req: Outgoing<'_>,
        wait: &HeadWait<'_>,
    ) -> Result<Result<Response<UpstreamBody>, SendError>, Elapsed> {
        match (self, req) {
            (HttpClient::Http1(c), Outgoing::H1(head, body)) => c.send(ep, head, body, wait).await,
            (HttpClient::Http2(c), Outgoing::H2(req)) => {
                let sleep = pin!(tokio::time::sleep_until(wait.first_deadline()));
                let res = wait.bound(sleep, pin!(c.request(req))).await?;
                Ok(res
                    .map(|r| r.map(UpstreamBody::H2))
                    .map_err(SendError::Http2))
            }
            _ => unreachable!("a request is built for its client's protocol"),
        }
    }
}

/// A request as its client sends it.
pub(crate) enum Outgoing<'a> {
    /// HTTP/1.1: the borrowed head and the body.
    H1(H1Head<'a>, ReqBody),
    /// HTTP/2: the whole request, its URI absolute.
    H2(Request<ReqBody>),
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
    /// The head wait's timer lives in the connection and is reset per request: a reset to a
    /// later deadline is one atomic operation, where a new timer takes the timer wheel's lock
    /// to register and again to deregister (~480 instructions per request).
    async fn send(
        &self,
        ep: &Endpoint,
        head: H1Head<'_>,
        mut body: ReqBody,
        wait: &HeadWait<'_>,
    ) -> Result<Result<Response<UpstreamBody>, SendError>, Elapsed> {
        let mut timer = None;
        loop {
            // The request's start is a fresh enough clock for the idle check.
            let now = wait.start.into_std();
            let (mut conn, reused) = match ep.pool.checkout(now, self.idle_timeout) {
                Some(conn) => (conn, true),
                None => {
                    let armed = wait.arm(timer.take());
                    let t = timer.insert(armed);
                    // Boxed: the connect state is large and rarely needed; keeping it out of
                    // this future keeps every request's future small.
                    let mut connect = Box::pin(self.connect(ep));
                    match wait.bound(t.as_mut(), connect.as_mut()).await? {
                        Ok(conn) => (conn, false),
                        Err(e) => return Ok(Err(e)),
                    }
                }
            };
            let mut t = wait.arm(timer.take().or_else(|| conn.take_timer()));
            // The answer's body gives the connection back to this pool.
            let slot = PoolSlot {
                pool: ep.pool.clone(),
                max_idle: self.max_idle,
                idle_timeout: self.idle_timeout,
            };
            let send = pin!(h1::send(conn, head, body, reused, slot));
            match wait.bound(t.as_mut(), send).await? {
                Ok(mut res) => {
                    res.body_mut().keep_timer(t);
                    return Ok(Ok(res.map(UpstreamBody::H1)));
                }
                // A pooled connection the upstream had closed while idle: another one.
                Err((_, Some(again))) => {
                    body = again;
                    timer = Some(t);
                }
                Err((e, None)) => return Ok(Err(SendError::Http1(e))),
            }
        }
    }

    async fn connect(&self, ep: &Endpoint) -> Result<Box<Conn>, SendError> {
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
        match tokio::time::timeout(self.connect, connect).await {
            Ok(Ok(s)) => Ok(Conn::new(s)),
            Ok(Err(e)) => Err(SendError::Connect(e)),
            Err(_) => Err(SendError::ConnectTimeout),
        }
    }
}

/// The idle HTTP/1.1 connections to one instance, most recently used last.
#[derive(Default)]
pub(crate) struct HostPool {
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    conn: Box<Conn>,
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
    /// `idle_timeout` at `now`; older ones are closed.
    fn checkout(&self, now: Instant, idle_timeout: Duration) -> Option<Box<Conn>> {
        let mut idle = self.idle.lock();
        while let Some(entry) = idle.pop() {
            if now.saturating_duration_since(entry.since) > idle_timeout {
                // Everything below is older still.
                idle.clear();
                return None;
            }
            if entry.conn.usable() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse (up to `max_idle`); the oldest entry is dropped when it has
    /// expired, so connections that stopped being used do not stay forever, or, when the
    /// list is full, closed (a closed one must not keep a live one out). Checkout finds the
    /// other closed ones; asking a socket costs a waker registration, so it is not done on
    /// every return.
    pub(crate) fn put(&self, conn: Box<Conn>, max_idle: usize, idle_timeout: Duration) {
        // One clock reading for both the expiry check and the new entry's time.
        let now = Instant::now();
        let mut idle = self.idle.lock();
        let full = idle.len() >= max_idle;
        if idle.first().is_some_and(|e| {
            now.saturating_duration_since(e.since) > idle_timeout || (full && !e.conn.usable())
        }) {
            idle.remove(0);
        }
        if idle.len() < max_idle {
            idle.push(Idle { conn, since: now });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    /// A connection to `listener` and the listener's end of it.
    async fn pair(listener: &TcpListener) -> (Box<Conn>, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Conn::new(client), server)
    }

    #[tokio::test]
    async fn a_full_pool_drops_a_closed_connection_not_the_returned_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idle = Duration::from_secs(60);
        let pool = HostPool::default();
        let (first, first_server) = pair(&listener).await;
        let (second, second_server) = pair(&listener).await;
        let second_addr = second_server.peer_addr().unwrap();
        pool.put(first, 1, idle);
        // The upstream closes the idle one; the pool learns of it when the list is full.
        drop(first_server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        pool.put(second, 1, idle);
        let kept = pool
            .checkout(Instant::now(), idle)
            .expect("the returned connection is kept");
        let (kept, _) = (*kept).into_upgraded();
        assert_eq!(kept.local_addr().unwrap(), second_addr);
        assert!(pool.checkout(Instant::now(), idle).is_none());
    }
}
