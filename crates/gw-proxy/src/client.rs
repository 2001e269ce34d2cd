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
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use parking_lot::Mutex;
use tokio::time::Sleep;

use crate::body::UpstreamBody;
use crate::h1::{self, Conn, H1Error, H1Head, Phases, PoolSlot};
use crate::pool::Reusable;
use crate::timer::{bound, Elapsed};
use crate::upload::{later, Progress, ReqBody};
use crate::upstream::Endpoint;
use crate::{ClientOptions, UpstreamProtocol};

type LegacyClient = Client<Watched, ReqBody>;

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
    Http2(Box<H2Client>),
}

/// hyper-util's pooled HTTP/2 client, and what its connector tells of the connections it
/// makes (the request's phases are counted from the moment its connection is ready).
#[derive(Clone)]
pub(crate) struct H2Client {
    client: LegacyClient,
    connects: Arc<Connects>,
    connect: Duration,
}

/// The connects of an HTTP/2 client: how many are under way, and when the last one ended.
/// Written only when a connection is made; read only when a request's timer fires.
#[derive(Debug)]
struct Connects {
    base: tokio::time::Instant,
    pending: AtomicUsize,
    /// Nanoseconds from `base` to the end of the last successful connect, plus one; 0: none.
    last: AtomicU64,
}

impl Connects {
    fn new() -> Self {
        Connects {
            base: tokio::time::Instant::now(),
            pending: AtomicUsize::new(0),
            last: AtomicU64::new(0),
        }
    }

    /// What a request that started at `start` can know at `now` of when its connection was
    /// ready: at `start` unless a connection was made since (then when it was) or one is being
    /// made (then not before `now`); never later than `start + connect`, the longest a connect
    /// of its own may take.
    fn ready(
        &self,
        start: tokio::time::Instant,
        connect: Duration,
        now: tokio::time::Instant,
    ) -> tokio::time::Instant {
        let latest = later(start, connect);
        if self.pending.load(Ordering::Relaxed) > 0 {
            return now.clamp(start, latest);
        }
        match self.last.load(Ordering::Relaxed) {
            0 => start,
            ns => (self.base + Duration::from_nanos(ns - 1)).clamp(start, latest),
        }
    }
}

/// Counts a connect as under way while it lives; notes its end when it succeeded.
struct Connecting(Arc<Connects>);

impl Connecting {
    fn new(connects: Arc<Connects>) -> Self {
        connects.pending.fetch_add(1, Ordering::Relaxed);
        Connecting(connects)
    }

    fn connected(&self) {
        let c = &self.0;
        let ns = u64::try_from(c.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        c.last.fetch_max(ns + 1, Ordering::Relaxed);
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The HTTP/2 client's connector: [`HttpConnector`], reporting to [`Connects`].
#[derive(Clone)]
pub(crate) struct Watched {
    inner: HttpConnector,
    connects: Arc<Connects>,
}

type ConnectResult = Result<
    <HttpConnector as tower::Service<Uri>>::Response,
    <HttpConnector as tower::Service<Uri>>::Error,
>;

impl tower::Service<Uri> for Watched {
    type Response = <HttpConnector as tower::Service<Uri>>::Response;
    type Error = <HttpConnector as tower::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = ConnectResult> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = Connecting::new(self.connects.clone());
        let connect = self.inner.call(uri);
        Box::pin(async move {
            let res = connect.await;
            if res.is_ok() {
                connecting.connected();
            }
            res
        })
    }
}

fn build(opts: &ClientOptions, protocol: UpstreamProtocol, connect: Duration) -> HttpClient {
    if protocol == UpstreamProtocol::Http1 {
        return HttpClient::Http1(H1Client {
            connect,
            idle_timeout: opts.pool_idle_timeout,
            max_idle: opts.pool_max_idle_per_host,
        });
    }
    let mut inner = HttpConnector::new();
    inner.set_nodelay(true);
    inner.set_connect_timeout(Some(connect));
    let connects = Arc::new(Connects::new());
    let connector = Watched {
        inner,
        connects: connects.clone(),
    };
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(opts.pool_idle_timeout)
        .pool_max_idle_per_host(opts.pool_max_idle_per_host)
        // We set Host ourselves (the client's); don't let the client add the instance's.
        .set_host(false)
        .http2_only(true);
    HttpClient::Http2(Box::new(H2Client {
        client: builder.build(connector),
        connects,
        connect,
    }))
}

/// Why a request could not be sent or got no response head.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// Sending the request, or waiting for the answer's head, took longer than its timeout.
    TimedOut,
    /// Resolving or connecting failed (refused, unreachable, no address).
    Connect(std::io::Error),
    /// The HTTP/1.1 exchange failed (reset, closed, malformed answer, request body error).
    Http1(H1Error),
    /// The HTTP/2 client failed.
    Http2(hyper_util::client::legacy::Error),
}

/// A request's upstream timeouts, each bounding a phase of its own (`connect` is the
/// connector's): `send` from the moment the connection is ready until the request's last
/// byte is written, then `read` until the answer's head arrives (the response body's gaps
/// are [`RespBody`](crate::body::RespBody)'s).
///
/// One timer serves every phase. It is set at the earliest moment any phase can end,
/// `min(send, read)` after the connection is ready, and moved on when it fires early;
/// a phase that ends earlier than the timer is set (a `read` that starts after a long
/// upload) moves it back.
pub(crate) struct Deadlines<'a> {
    /// When the request started: its connection is ready then unless one has to be made.
    pub(crate) start: tokio::time::Instant,
    pub(crate) send: Duration,
    pub(crate) read: Duration,
    /// The streamed request body's progress (HTTP/2 learns from it when the upload ended).
    pub(crate) progress: Option<&'a Progress>,
}

impl Deadlines<'_> {
    /// The earliest end of any phase of a request whose connection was ready at `ready`.
    fn first(&self, ready: tokio::time::Instant) -> tokio::time::Instant {
        later(ready, self.send.min(self.read))
    }

    /// A timer that fires at [`first`](Self::first) or before it: `timer` itself when given,
    /// else a new one. A connection's timer still carries an earlier request's deadline,
    /// which is earlier than this one's: it is left as it is (a reset costs atomic
    /// operations on every request), and [`bound`] moves it on when it fires early, about
    /// once per `min(send, read)` on a busy connection.
    fn arm(&self, timer: Option<Pin<Box<Sleep>>>, ready: tokio::time::Instant) -> Pin<Box<Sleep>> {
        let due = self.first(ready);
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

    fn phases(&self, ready: tokio::time::Instant) -> Phases {
        Phases {
            ready,
            send: self.send,
            read: self.read,
        }
    }

    /// HTTP/2: when the phase the request is in at `now` ends. hyper-util's client makes the
    /// connection and sends the request inside one future, so the phase is told from the
    /// outside: the upload goes on until the streamed body's last frame was handed on (a
    /// body-less or buffered request goes out as soon as its connection is ready), and the
    /// connection was ready as [`Connects::ready`] says.
    fn h2_due(
        &self,
        connects: &Connects,
        connect: Duration,
        now: tokio::time::Instant,
    ) -> tokio::time::Instant {
        match self.progress.map(|p| p.sent()) {
            Some(Some(sent)) => later(sent, self.read),
            Some(None) => later(connects.ready(self.start, connect, now), self.send),
            None => later(connects.ready(self.start, connect, now), self.read),
        }
    }
}

impl HttpClient {
    /// Sends `req` to `ep` and waits for the answer's head, each phase within its timeout.
    pub(crate) async fn send(
        &self,
        ep: &Endpoint,
        req: Outgoing<'_>,
        wait: Deadlines<'_>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let wait = &wait;
        match (self, req) {
            (HttpClient::Http1(c), Outgoing::H1(head, body)) => c.send(ep, head, body, wait).await,
            (HttpClient::Http2(c), Outgoing::H2(req)) => {
                let sleep = pin!(tokio::time::sleep_until(wait.first(wait.start)));
                let due = || wait.h2_due(&c.connects, c.connect, tokio::time::Instant::now());
                match bound(sleep, pin!(c.client.request(req)), due).await {
                    Ok(Ok(res)) => Ok(res.map(UpstreamBody::H2)),
                    Ok(Err(e)) => Err(SendError::Http2(e)),
                    Err(Elapsed) => Err(SendError::TimedOut),
                }
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
    /// The timer of the request's phases lives in the connection and is reset per request:
    /// a reset to a later deadline is one atomic operation, where a new timer takes the timer
    /// wheel's lock to register and again to deregister (~480 instructions per request).
    async fn send(
        &self,
        ep: &Endpoint,
        head: H1Head<'_>,
        mut body: ReqBody,
        wait: &Deadlines<'_>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let mut timer = None;
        // A pooled connection is ready when the request starts.
        let mut ready = wait.start;
        loop {
            // The request's start is a fresh enough clock for the idle check.
            let now = wait.start.into_std();
            let (mut conn, reused) = match ep.pool.checkout(now, self.idle_timeout) {
                Some(conn) => (conn, true),
                None => {
                    // Boxed: the connect state is large and rarely needed; keeping it out of
                    // this future keeps every request's future small. `connect` bounds it.
                    match Box::pin(self.connect(ep)).await {
                        Ok(conn) => {
                            ready = tokio::time::Instant::now();
                            (conn, false)
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            let mut t = wait.arm(timer.take().or_else(|| conn.take_timer()), ready);
            // The answer's body gives the connection back to this pool.
            let slot = PoolSlot {
                pool: ep.pool.clone(),
                max_idle: self.max_idle,
                idle_timeout: self.idle_timeout,
            };
            let phases = wait.phases(ready);
            match h1::send(conn, head, body, reused, slot, t.as_mut(), phases).await {
                Ok(mut res) => {
                    res.body_mut().keep_timer(t);
                    return Ok(res.map(UpstreamBody::H1));
                }
                Err((H1Error::TimedOut, _)) => return Err(SendError::TimedOut),
                // A pooled connection the upstream had closed while idle: another one.
                Err((_, Some(again))) => {
                    body = again;
                    timer = Some(t);
                    ready = tokio::time::Instant::now();
                }
                Err((e, None)) => return Err(SendError::Http1(e)),
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

/// The HTTP/1.1 connection in its instance's [`HostPool`](crate::pool::HostPool).
impl Reusable for Conn {
    #[inline]
    fn usable(&self) -> bool {
        Conn::usable(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::HostPool;
    use std::time::Instant;
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

    use tokio::time::Instant as TInstant;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn http2_phases_count_from_the_connection_and_the_upload() {
        let start = TInstant::now();
        let connects = Connects::new();
        let connect = ms(1000);
        let wait = |progress| Deadlines {
            start,
            send: ms(300),
            read: ms(100),
            progress,
        };
        let now = start + ms(50);
        // A pooled connection: ready at the start.
        assert_eq!(wait(None).h2_due(&connects, connect, now), start + ms(100));
        let body = Progress::new();
        assert_eq!(
            wait(Some(&body)).h2_due(&connects, connect, now),
            start + ms(300)
        );
        // A connection being made: not ready before now, nor later than `start + connect`.
        let making = Connecting::new(Arc::new(Connects::new()));
        let pending = &making.0;
        assert_eq!(wait(None).h2_due(pending, connect, now), now + ms(100));
        let late = start + ms(5000);
        assert_eq!(wait(None).h2_due(pending, connect, late), start + ms(1100));
        // Made 40 ms in: the phases count from then.
        tokio::time::advance(ms(40)).await;
        making.connected();
        let made = making.0.clone();
        drop(making);
        assert_eq!(wait(None).h2_due(&made, connect, now), start + ms(140));
        // The upload over: `read` from then.
        tokio::time::advance(ms(60)).await;
        body.finish();
        assert_eq!(
            wait(Some(&body)).h2_due(&made, connect, now),
            start + ms(200)
        );
    }
}
