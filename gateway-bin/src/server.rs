//! Listeners (proxy, TLS, admin), the edge of the request path, graceful shutdown and reload.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future;
use gw_admin::{admin_router, AccessControl};
use gw_core::{Body, ClientAddr, ConnInfo};
use gw_monitor::{AccessLog, AccessLogLayer, Metrics, MetricsLayer, RequestIdLayer};
use gw_monitor::{MetricsService, SetRequestId};
use gw_router::ResponseFuture as RouterFuture;
use gw_router::Router;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Ready;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::util::{BoxCloneSyncService, Either};
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::app::{health_response, is_health_check, App, EdgeService};
use crate::config::{Config, ConfigErrors, ADMIN_MAX_CONNECTIONS};
use crate::control::Control;
use crate::fast_h1;

/// Error starting the gateway.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// The access log file could not be opened.
    #[error("access log: {0}")]
    AccessLog(std::io::Error),
}

/// A gateway running on the current tokio runtime.
#[derive(Debug)]
pub struct Gateway {
    app: App,
    proxy_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    admin_addr: SocketAddr,
    config_path: Option<PathBuf>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl Gateway {
    /// Binds the listeners of `config` (port 0 picks a free port) and starts serving.
    /// `config_path` is what [`Gateway::reload_from_file`] re-reads.
    pub async fn start(
        config: Config,
        config_path: Option<PathBuf>,
    ) -> Result<Gateway, StartError> {
        config.validate()?;
        let metrics = Metrics::global();
        let app = App::new(config.clone(), metrics.clone()).await?;
        let access_log = match config.log.access_log.as_str() {
            "off" | "" => None,
            "stdout" => Some(AccessLog::stdout()),
            path => {
                Some(AccessLog::file(std::path::Path::new(path)).map_err(StartError::AccessLog)?)
            }
        };
        let edge = edge_service(&app, &metrics, access_log);

        let (stop, stop_rx) = watch::channel(false);
        // Health checks, Consul, breaker ticks, limiter sweeps, sync with other nodes.
        let mut tasks = app.spawn_background(stop_rx.clone());
        let shutdown_timeout = Duration::from_secs(config.server.shutdown_timeout_secs);
        let idle_timeout = Duration::from_secs(config.server.idle_timeout_secs);
        let limits = fast_h1::HeadLimits {
            line: config.server.max_request_line_bytes,
            head: config.server.max_header_bytes,
            headers: config.server.max_headers,
        };

        // Per connection: a function from request to answer, which first records who the
        // client is (after trusted proxies).
        let make_proxy = {
            let app = app.clone();
            move |conn: ConnInfo| {
                let app = app.clone();
                let edge = edge.clone();
                move |mut req: Request<Body>| {
                    let settings = app.edge();
                    let client =
                        gw_proxy::client_addr(&conn, req.headers(), &settings.trusted_proxies);
                    // The one canonical request: what the router matches, every layer checks
                    // and the upstream gets. A refusal is answered at the end of the edge
                    // layers (`EdgeRoutes`), so that it has a request id and is counted.
                    if let Err(e) = gw_edge::canonicalize(&mut req, &settings.policy) {
                        req.extensions_mut().insert(gw_edge::Rejected(e));
                    }
                    if req.version() < http::Version::HTTP_11 {
                        gw_edge::default_host(&mut req, conn.local);
                    }
                    drop(settings);
                    let ext = req.extensions_mut();
                    ext.insert(conn);
                    // Readers fall back to the connection (`ClientAddr::of`): only a client
                    // that differs from it (trusted proxies, a mapped IPv6 peer) is stored.
                    if client != ClientAddr::of_conn(&conn) {
                        ext.insert(client);
                    }
                    // Every layer of the edge is always ready: call it directly.
                    edge.clone().call(req)
                }
            }
        };

        let proxy_listener = bind(config.server.listen).await?;
        let proxy_addr = local(&proxy_listener, config.server.listen);
        tasks.push(tokio::spawn(serve(
            proxy_listener,
            None,
            make_proxy.clone(),
            stop_rx.clone(),
            shutdown_timeout,
            idle_timeout,
            limits,
            config.server.max_connections,
        )));

        let mut tls_addr = None;
        if let Some(tls) = &config.server.tls {
            let acceptor = tls_acceptor(&tls.cert, &tls.key)?;
            let listener = bind(tls.listen).await?;
            tls_addr = Some(local(&listener, tls.listen));
            tasks.push(tokio::spawn(serve(
                listener,
                Some(acceptor),
                make_proxy.clone(),
                stop_rx.clone(),
                shutdown_timeout,
                idle_timeout,
                limits,
                config.server.max_connections,
            )));
        }

        let admin_listener = bind(config.admin.listen).await?;
        let admin_addr = local(&admin_listener, config.admin.listen);
        let access = AccessControl {
            allow: config.admin.allow.clone(),
            token: config.admin.token.clone(),
            hosts: Some(config.admin.hosts(admin_addr)),
        };
        let admin = admin_router(Arc::new(Control::new(app.clone())), access);
        tasks.push(tokio::spawn(serve(
            admin_listener,
            None,
            move |conn: ConnInfo| {
                let admin = admin.clone();
                move |mut req: Request<Body>| {
                    // A head the listener refused (414 / 431) is answered as on the proxy
                    // listener, not routed.
                    if let Some(gw_edge::Rejected(e)) = req.extensions().get::<gw_edge::Rejected>()
                    {
                        let res = gw_edge::rejection(&req, *e);
                        return future::Either::Left(std::future::ready(Ok(res)));
                    }
                    req.extensions_mut().insert(conn);
                    future::Either::Right(admin.clone().oneshot(req))
                }
            },
            stop_rx,
            shutdown_timeout,
            idle_timeout,
            limits,
            config.server.max_connections.min(ADMIN_MAX_CONNECTIONS),
        )));

        tracing::info!(%proxy_addr, ?tls_addr, %admin_addr, version = gw_core::VERSION, "gateway listening");
        Ok(Gateway {
            app,
            proxy_addr,
            tls_addr,
            admin_addr,
            config_path,
            stop,
            tasks,
            shutdown_timeout,
        })
    }

    /// Address of the proxy listener.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    /// Address of the TLS listener, when configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Address of the admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The shared state.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Applies a new configuration; an invalid one is refused and the running one stays.
    pub async fn reload(&self, config: Config) -> Result<(), ConfigErrors> {
        self.app.reload(config).await
    }

    /// Re-reads the configuration file (with `GW_` overrides) and applies it.
    pub async fn reload_from_file(&self) -> Result<(), ConfigErrors> {
        let config = Config::load(self.config_path.as_deref())?;
        self.reload(config).await
    }

    /// Stops accepting, lets requests in flight finish (bounded by
    /// `server.shutdown_timeout_secs`), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let bound = self.shutdown_timeout + Duration::from_secs(1);
        for task in self.tasks {
            let _ = tokio::time::timeout(bound, task).await;
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn local(listener: &TcpListener, fallback: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(fallback)
}

/// The edge stack as the listener calls it. Without an access log (the fast path) it is a
/// concrete type, so a request costs no boxed future and no boxed service clone here.
type Edge = Either<SetRequestId<MetricsService<EdgeRoutes>>, EdgeService>;

/// RequestId → Metrics → AccessLog → (`/health` | Router): built once, cloned per request.
fn edge_service(app: &App, metrics: &Metrics, access_log: Option<AccessLog>) -> Edge {
    let inner = EdgeRoutes {
        // Each route's stack puts its `&'static RouteMetrics` (route and service names included)
        // into the answer, and the metrics and the access log read that: no `RouteTag`.
        router: Router::new(app.table()).tag_responses(false),
    };
    let base = ServiceBuilder::new()
        .layer(RequestIdLayer)
        .layer(MetricsLayer::new(metrics.clone()));
    match access_log {
        None => Either::Left(base.service(inner)),
        Some(log) => Either::Right(BoxCloneSyncService::new(
            base.map_response(|res: Response<_>| res.map(Body::new))
                .layer(AccessLogLayer::new(log))
                .service(inner),
        )),
    }
}

/// A request the edge refused answered here, `GET|HEAD /health` too, everything else through
/// the [`Router`].
#[derive(Clone, Debug)]
struct EdgeRoutes {
    router: Router,
}

impl Service<Request<Body>> for EdgeRoutes {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = future::Either<Ready<Result<Response<Body>, Infallible>>, RouterFuture>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if let Some(gw_edge::Rejected(e)) = req.extensions().get::<gw_edge::Rejected>() {
            return future::Either::Left(std::future::ready(Ok(gw_edge::rejection(&req, *e))));
        }
        if is_health_check(&req) {
            return future::Either::Left(std::future::ready(Ok(health_response())));
        }
        future::Either::Right(self.router.call(req))
    }
}

/// How connections are served: plain TCP goes to the gateway's own HTTP/1.1 loop (or hyper's
/// HTTP/2 server when the client opens with the h2 preface); TLS connections go through
/// hyper-util's auto builder (ALPN or preface). Every path runs under the idle watchdog of
/// [`graceful`].
struct Builders {
    idle: Duration,
    limits: fast_h1::HeadLimits,
    auto: auto::Builder<TokioExecutor>,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new(idle: Duration, limits: fast_h1::HeadLimits) -> Builders {
        // hyper's own limits sit above the edge's (twice them): a head over the edge's limit
        // but within hyper's reaches the edge, which answers 414/431 with the JSON error;
        // only a grossly larger one is refused by hyper itself (431, no body).
        let buf = (limits.head * 2).max(8192);
        let fields = limits.headers * 2;
        let h2_list = u32::try_from(buf + 32 * fields).unwrap_or(u32::MAX);
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(idle)
            .max_buf_size(buf)
            .max_headers(fields);
        // Pings find a vanished peer; the idle watchdog (see `serve_watched`) closes a
        // connection with no open stream.
        auto.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(idle)
            .keep_alive_timeout(idle)
            .max_header_list_size(h2_list);
        // Plain HTTP/1.1 connections are watched by `graceful` (see `Activity`) instead of
        // hyper's header read timeout, which arms a boxed timer (and makes hyper take a new
        // read buffer) for every request.
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size(buf)
            .max_headers(fields);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .keep_alive_interval(idle)
            .keep_alive_timeout(idle)
            .max_header_list_size(h2_list);
        Builders {
            idle,
            limits,
            auto,
            h1,
            h2,
        }
    }
}

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a plain connection's first bytes say.
enum Sniffed {
    Http1,
    Http2,
    /// A partial preface so far: let the auto builder read on.
    Unsure,
}

/// Looks at the first bytes without taking them (one `recv(MSG_PEEK)` per connection).
async fn sniff(stream: &tokio::net::TcpStream) -> std::io::Result<Sniffed> {
    let mut buf = [0u8; 24];
    let n = stream.peek(&mut buf).await?;
    Ok(if n == 0 || buf[..n] != H2_PREFACE[..n] {
        Sniffed::Http1
    } else if n == H2_PREFACE.len() {
        Sniffed::Http2
    } else {
        Sniffed::Unsure
    })
}

/// Accepts connections until `stop` turns true, serving each with HTTP/1.1 or HTTP/2
/// (prior knowledge or ALPN), then drains the open connections for at most `drain`.
///
/// At most `max_conns` connections are open at once: one over the limit is accepted and
/// closed at once (as Envoy's connection limits do), so that it neither waits in the
/// kernel's backlog nor keeps a file descriptor. When `accept` itself fails (EMFILE, ENFILE,
/// ENOBUFS) the loop waits [`ACCEPT_BACKOFF`] before trying again; both are logged at most
/// once per second.
#[allow(clippy::too_many_arguments)]
async fn serve<M, S, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    make: M,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
    idle: Duration,
    limits: fast_h1::HeadLimits,
    max_conns: usize,
) where
    M: Fn(ConnInfo) -> S + Send + 'static,
    S: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let builders = Arc::new(Builders::new(idle, limits));
    // Every connection task holds a sender; draining ends when all are gone.
    let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
    let local_addr = listener.local_addr().ok();
    let slots = Arc::new(tokio::sync::Semaphore::new(max_conns));
    let mut accept_failed = Throttled::default();
    let mut over_limit = Throttled::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                if let Some(more) = accept_failed.due() {
                    tracing::warn!(error = %e, more, "accept failed");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Some(more) = over_limit.due() {
                tracing::warn!(%peer, max_conns, more, "connection limit reached: connection closed");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo {
            peer,
            local: stream.local_addr().ok().or(local_addr).unwrap_or(peer),
            tls: tls.is_some(),
        };
        let service = Arc::new(make(conn));
        let builders = builders.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            match tls {
                // A client that sends nothing at all is dropped after the idle timeout too.
                None => match tokio::time::timeout(builders.idle, sniff(&stream))
                    .await
                    .unwrap_or(Err(std::io::ErrorKind::TimedOut.into()))
                {
                    Ok(Sniffed::Http1) => {
                        let activity = Arc::new(Activity::default());
                        let io = Counted {
                            io: stream,
                            activity: activity.clone(),
                        };
                        let finish = Arc::new(AtomicBool::new(false));
                        let serving = fast_h1::Serving {
                            service,
                            activity: activity.clone(),
                            stop: finish.clone(),
                            h1: builders.h1.clone(),
                            limits: builders.limits,
                        };
                        let conn = fast_h1::serve(io, serving);
                        let conn = fast_h1::Fast::new(conn, finish);
                        let watch = Some((builders.idle, activity));
                        graceful(conn, stop, |c| c.graceful_shutdown(), watch).await
                    }
                    Ok(Sniffed::Http2) => {
                        let activity = Arc::new(Activity::default());
                        let service = stream_service(service, activity.clone());
                        let conn = builders.h2.serve_connection(TokioIo::new(stream), service);
                        let watch = Some((builders.idle, activity));
                        graceful(conn, stop, |c| c.graceful_shutdown(), watch).await
                    }
                    Ok(Sniffed::Unsure) => serve_auto(&builders, stop, stream, service).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "connection failed"),
                },
                Some(acceptor) => {
                    // The handshake is bounded by the idle timeout as well.
                    let accept = tokio::time::timeout(builders.idle, acceptor.accept(stream));
                    match accept.await {
                        Ok(Ok(stream)) => serve_auto(&builders, stop, stream, service).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(open);
            drop(slot);
        });
    }
    drop(listener);
    drop(open_tx);
    if tokio::time::timeout(drain, open_rx.recv()).await.is_err() {
        tracing::warn!("shutdown timeout reached with connections still open");
    }
}

/// How long the accept loop waits after `accept` failed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A log line at most once per second; counts the occurrences left out in between.
#[derive(Default)]
struct Throttled {
    last: Option<tokio::time::Instant>,
    skipped: u64,
}

impl Throttled {
    /// `Some(occurrences left out since the last line)` when a line is due.
    fn due(&mut self) -> Option<u64> {
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.skipped += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.skipped))
    }
}

/// The connection's service as hyper calls it. Only plain HTTP/1.1 connections have a
/// watchdog to read the `activity` counters; the others do not count.
pub(crate) fn hyper_service<S, F>(
    service: Arc<S>,
    activity: Option<Arc<Activity>>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
> + Send
       + 'static
where
    S: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let waiting = activity.as_ref().map(Waiting::start);
        let answer = service(req.map(Body::new));
        async move {
            let answer = answer.await;
            drop(waiting);
            answer
        }
    })
}

/// Runs a connection; when `stop` turns true it is asked to finish gracefully (HTTP/1.1:
/// close after the request in flight; HTTP/2: GOAWAY) and still awaited. With `watch`, the
/// connection is dropped (closed) once a whole period passed in which it started no request,
/// wrote nothing and had no request waiting for its answer: an idle connection, a slow head,
/// and a client that stopped reading its answer alike.
///
/// The stop signal and the watchdog timer are polled with a waker of their own, and only
/// again after that waker fired: a connection's ordinary wake-ups (every request) touch
/// neither the watch channel nor the timer.
async fn graceful<C, E>(
    conn: C,
    stop: watch::Receiver<bool>,
    shutdown: fn(Pin<&mut C>),
    watch: Option<(Duration, Arc<Activity>)>,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut conn = std::pin::pin!(conn);
    let mut stopped = std::pin::pin!(async move {
        let mut stop = stop;
        // Only `true` or a closed channel (the gateway is gone) ends this wait.
        let _ = stop.wait_for(|s| *s).await;
    });
    let mut watchdog = watch.map(|(period, activity)| Watchdog {
        sleep: Box::pin(tokio::time::sleep(period)),
        period,
        last: activity.snapshot(),
        activity,
    });
    let flag = Arc::new(SideWaker::default());
    let side_waker = std::task::Waker::from(flag.clone());
    let mut shutting_down = false;
    // The waker last given to `flag.task`. Only a side wake-up takes it out (after setting
    // `fired`), and that wake-up polls this task again: so the task registers again only
    // then, or when its waker changed, and an ordinary poll costs one plain load here
    // instead of three atomic read-modify-writes.
    let mut registered: Option<std::task::Waker> = None;
    let result = std::future::poll_fn(|cx| {
        let fired = flag.fired.load(Ordering::Acquire) && flag.fired.swap(false, Ordering::AcqRel);
        if fired || !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            flag.task.register(cx.waker());
            registered = Some(cx.waker().clone());
        }
        if fired {
            let mut side = Context::from_waker(&side_waker);
            if !shutting_down && stopped.as_mut().poll(&mut side).is_ready() {
                shutting_down = true;
                shutdown(conn.as_mut());
            }
            if let Some(w) = watchdog.as_mut() {
                while w.sleep.as_mut().poll(&mut side).is_ready() {
                    if w.silent() {
                        return Poll::Ready(None);
                    }
                    let next = tokio::time::Instant::now() + w.period;
                    w.sleep.as_mut().reset(next);
                }
            }
        }
        conn.as_mut().poll(cx).map(Some)
    })
    .await;
    match result {
        Some(Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
        Some(Ok(())) => {}
        None => tracing::debug!("idle connection closed"),
    }
}

/// What a connection did, for the idle watchdog: writes to the client (write calls on the
/// plain HTTP/1.1 loop, body frames taken on hyper's paths), requests started, requests
/// waiting for their answer. On the plain HTTP/1.1 loop only the connection's own task
/// touches it (plain loads and stores); hyper's paths use atomic read-modify-writes (see
/// [`stream_service`]).
#[derive(Debug, Default)]
pub(crate) struct Activity {
    writes: AtomicU64,
    started: AtomicU64,
    waiting: AtomicU64,
}

impl Activity {
    fn snapshot(&self) -> (u64, u64) {
        (
            self.writes.load(Ordering::Relaxed),
            self.started.load(Ordering::Relaxed),
        )
    }
}

fn bump(counter: &AtomicU64, up: bool) {
    let v = counter.load(Ordering::Relaxed);
    counter.store(
        if up {
            v.wrapping_add(1)
        } else {
            v.saturating_sub(1)
        },
        Ordering::Relaxed,
    );
}

/// A request from its head until its answer's head: the watchdog leaves the connection alone.
pub(crate) struct Waiting(Arc<Activity>);

impl Waiting {
    pub(crate) fn start(activity: &Arc<Activity>) -> Waiting {
        bump(&activity.started, true);
        bump(&activity.waiting, true);
        Waiting(activity.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        bump(&self.0.waiting, false);
    }
}

struct Watchdog {
    sleep: Pin<Box<tokio::time::Sleep>>,
    period: Duration,
    last: (u64, u64),
    activity: Arc<Activity>,
}

impl Watchdog {
    /// Whether nothing happened since the last look (and remembers what it saw).
    fn silent(&mut self) -> bool {
        let now = self.activity.snapshot();
        let quiet = now == self.last && self.activity.waiting.load(Ordering::Relaxed) == 0;
        self.last = now;
        quiet
    }
}

/// The client socket, counting writes for the watchdog.
pub(crate) struct Counted<T> {
    pub(crate) io: T,
    pub(crate) activity: Arc<Activity>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> Counted<T> {
    fn counted(&self, r: &Poll<std::io::Result<usize>>) {
        if matches!(r, Poll::Ready(Ok(n)) if *n > 0) {
            bump(&self.activity.writes, true);
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.counted(&r);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.counted(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The waker the stop signal and the idle watchdog are polled with: notes that it fired and
/// wakes the connection, which then polls them again.
struct SideWaker {
    fired: AtomicBool,
    task: futures_util::task::AtomicWaker,
}

impl Default for SideWaker {
    fn default() -> Self {
        // Fired at first, so that the first poll registers with the watch channel and the timer.
        SideWaker {
            fired: AtomicBool::new(true),
            task: futures_util::task::AtomicWaker::new(),
        }
    }
}

impl std::task::Wake for SideWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Serves a connection with hyper-util's auto builder (TLS, or a plain connection whose first
/// bytes are a prefix of the HTTP/2 preface), under the idle watchdog: a connection that for
/// a whole period starts no request (HTTP/1.1) or stream (HTTP/2) and has none open is
/// closed, whether it never sent a byte, stopped within the preface or sits idle.
async fn serve_auto<I, S, F>(
    builders: &Builders,
    stop: watch::Receiver<bool>,
    io: I,
    service: Arc<S>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let service = stream_service(service, activity.clone());
    let conn = builders
        .auto
        .serve_connection_with_upgrades(TokioIo::new(io), service);
    let watch = Some((builders.idle, activity));
    graceful(conn, stop, |c| c.graceful_shutdown(), watch).await
}

/// The connection's service for hyper's HTTP/2 server and the auto builder, feeding the idle
/// watchdog: `started` counts requests (streams), `waiting` those whose answer waits for the
/// gateway (the service's future, or the answer's body pending on its upstream), and
/// `writes` the body frames the connection took. An answer whose next frame the connection
/// does not take (a client that stops reading, or never opens its HTTP/2 flow-control
/// window) counts as none of them, so the connection is closed after one or two idle
/// periods without progress: the idle timeout is also the send timeout here (the plain
/// HTTP/1.1 loop counts the socket's writes to the same effect).
///
/// HTTP/2 runs each stream in a task of its own, hence atomic read-modify-writes here
/// (these paths are not the plain HTTP/1.1 fast path).
fn stream_service<S, F>(
    service: Arc<S>,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Tracked>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Tracked>, Infallible>> + Send + 'static,
> + Send
       + 'static
where
    S: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let open = Open::start(&activity);
        let answer = service(req.map(Body::new));
        async move {
            let answer = answer.await?;
            Ok(answer.map(|body| {
                let activity = (!http_body::Body::is_end_stream(&body)).then(|| open.0.clone());
                drop(open);
                Tracked {
                    body,
                    activity,
                    waiting: false,
                }
            }))
        }
    })
}

/// A request whose answer's head is not ready yet, counted in an [`Activity`] (atomically:
/// see [`stream_service`]).
struct Open(Arc<Activity>);

impl Open {
    fn start(activity: &Arc<Activity>) -> Open {
        activity.started.fetch_add(1, Ordering::Relaxed);
        activity.waiting.fetch_add(1, Ordering::Relaxed);
        Open(activity.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An answer's body reporting to the idle watchdog (see [`stream_service`]): a frame taken
/// counts as a write, a poll left pending (the upstream has not sent more yet) as waiting.
pub(crate) struct Tracked {
    body: Body,
    /// The connection's counters; `None` once the body ended.
    activity: Option<Arc<Activity>>,
    /// Whether this body is counted in `waiting`.
    waiting: bool,
}

impl Tracked {
    fn set_waiting(&mut self, activity: &Activity, waiting: bool) {
        if self.waiting != waiting {
            self.waiting = waiting;
            if waiting {
                activity.waiting.fetch_add(1, Ordering::Relaxed);
            } else {
                activity.waiting.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Some(activity) = this.activity.take() {
            match &polled {
                Poll::Pending => this.set_waiting(&activity, true),
                Poll::Ready(Some(Ok(_))) => {
                    this.set_waiting(&activity, false);
                    activity.writes.fetch_add(1, Ordering::Relaxed);
                }
                Poll::Ready(_) => {
                    this.set_waiting(&activity, false);
                    return polled;
                }
            }
            this.activity = Some(activity);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(activity) = self.activity.take() {
            self.set_waiting(&activity, false);
        }
    }
}

/// Loads a PEM certificate chain and key into a rustls acceptor offering h2 and HTTP/1.1.
fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, StartError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StartError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(StartError::Tls(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| StartError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
