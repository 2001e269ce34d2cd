//! The per-route proxy service.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gw_core::{
    error_into_response, Body, ClientAddr, ConnInfo, FailedAttempts, Identity, NotForwarded,
    RequestId, UpstreamInfo,
};
use http::header::{HeaderMap, HeaderValue, CONNECTION, EXPECT, HOST};
use http::uri::{self, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;
use smallvec::SmallVec;
use tower::retry::budget::Budget;

use crate::balancer::{self, Tried};
use crate::body::{
    BodyLimitExceeded, ClientBodyError, InFlight, Progress, ReqBody, RespBody, UpstreamBody,
};
use crate::client::{Deadlines, HttpClient, Outgoing, SendError};
use crate::forwarded::{
    has_token, scan_request, set_forwarded, strip_found_hop_by_hop, strip_hop_by_hop, Added,
    AddedFields, Field, FieldValue, HOP_CONNECTION, REQ_EXPECT, REQ_ID_SAME, REQ_X_USER,
};
use crate::h1::{Conn, H1Error, H1Head};
use crate::timer::Elapsed;
use crate::{Clients, LoadBalancer, ProxyConfig, ProxyError, Upstream, UpstreamProtocol};

/// Bodies up to this size are buffered so that a retry can send them again.
const MAX_REPLAY_BYTES: u64 = 64 * 1024;

/// The per-route proxy service: forwards a request to an instance of its [`Upstream`] and
/// streams the answer back. Clone is cheap (one `Arc`).
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Shared>,
}

struct Shared {
    upstream: Arc<Upstream>,
    client: HttpClient,
    config: Arc<ProxyConfig>,
    version: HeaderValue,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("upstream", &self.inner.upstream)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Proxy {
    /// A proxy to `upstream` through the shared `clients`, configured by the route.
    pub fn new(upstream: Arc<Upstream>, clients: Clients, config: Arc<ProxyConfig>) -> Proxy {
        let client = clients.get(upstream.protocol(), config.timeouts.connect);
        Proxy {
            inner: Arc::new(Shared {
                upstream,
                client,
                config,
                version: HeaderValue::from_static(gw_core::VERSION),
            }),
        }
    }

    /// The service this proxy forwards to.
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.inner.upstream
    }
}

/// The future of `Proxy::call`.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl tower::Service<Request<Body>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> ResponseFuture {
        // One async fn for the whole request (no nested futures to move into place on the
        // first poll), written straight into its box: `Box::pin(future)` builds the future
        // on the stack and copies all of it (several KiB of state) into the allocation.
        gw_core::pin_boxed(|| self.inner.clone().forward(req))
    }
}

/// How one attempt failed.
enum Failure {
    /// Retry is allowed (refused/reset connection, connect timeout).
    Retryable(ProxyError),
    /// Give up at once.
    Final(ProxyError),
}

/// Methods that may be sent again (RFC 9110 §9.2.2).
pub(crate) fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// Whether a request whose first `Upgrade` value is `websocket` is a WebSocket handshake.
fn is_websocket(req: &http::request::Parts) -> bool {
    req.version == Version::HTTP_11
        && req
            .headers
            .get_all(CONNECTION)
            .iter()
            .any(|v| has_token(v, b"upgrade"))
}

/// Removes every header whose name starts with `x-user-`.
fn remove_x_user(headers: &mut HeaderMap) {
    let mut found: SmallVec<[http::HeaderName; 2]> = SmallVec::new();
    for name in headers.keys() {
        if name.as_str().starts_with("x-user-") {
            found.push(name.clone());
        }
    }
    for name in found {
        headers.remove(name);
    }
}

fn classify(err: SendError) -> Failure {
    let err = match err {
        SendError::ConnectTimeout => return Failure::Retryable(ProxyError::Timeout),
        SendError::Connect(e) => return Failure::Retryable(ProxyError::BadGateway(Box::new(e))),
        SendError::Http1(H1Error::Body(b)) => return body_failure(b),
        SendError::Http1(H1Error::TimedOut) => return Failure::Final(ProxyError::Timeout),
        SendError::Http1(e) => return Failure::Retryable(ProxyError::BadGateway(Box::new(e))),
        SendError::Http2(e) => e,
    };
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&err);
    let mut timed_out = false;
    while let Some(e) = src {
        if e.is::<BodyLimitExceeded>() {
            return Failure::Final(ProxyError::BodyTooLarge);
        }
        if e.is::<ClientBodyError>() {
            return Failure::Final(ProxyError::ClientBody(Box::new(err)));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        src = e.source();
    }
    if err.is_connect() && timed_out {
        Failure::Retryable(ProxyError::Timeout)
    } else {
        Failure::Retryable(ProxyError::BadGateway(Box::new(err)))
    }
}

/// The request body failed while it was being sent: over the limit (413), or the client's
/// body could not be read (400). Neither is worth another attempt.
fn body_failure(err: gw_core::BoxError) -> Failure {
    if caused_by::<BodyLimitExceeded>(&*err) {
        Failure::Final(ProxyError::BodyTooLarge)
    } else if caused_by::<ClientBodyError>(&*err) {
        Failure::Final(ProxyError::ClientBody(err))
    } else {
        Failure::Retryable(ProxyError::BadGateway(Box::new(H1Error::Body(err))))
    }
}

/// Whether `err` or an error in its source chain is a `T`.
fn caused_by<T: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut src = Some(err);
    while let Some(e) = src {
        if e.is::<T>() {
            return true;
        }
        src = e.source();
    }
    false
}

impl Shared {
    async fn forward(self: Arc<Self>, req: Request<Body>) -> Result<Response<Body>, Infallible> {
        let (mut parts, body) = req.into_parts();
        let request_id = parts.extensions.get::<RequestId>().cloned();
        // Instances whose attempt failed before a retry (allocated only then).
        let mut failed: Vec<Arc<str>> = Vec::new();
        let (result, info) = 'run: {
            let config = &*self.config;
            let max = config.max_body_bytes;
            let upstream = &*self.upstream;
            // One pass over the fields answers what the steps below ask of them.
            let scan = scan_request(
                &parts.headers,
                request_id.as_ref().map(|id| id.header_value().as_bytes()),
            );
            if scan.content_length.is_some_and(|len| len > max) {
                break 'run (Err(ProxyError::BodyTooLarge), None);
            }

            // What the request's extensions tell us; they are not forwarded, and travel on
            // with the answer (below).
            let upgrade = upstream.protocol() == UpstreamProtocol::Http1
                && scan.websocket
                && is_websocket(&parts);
            let client_upgrade = if upgrade {
                parts.extensions.remove::<OnUpgrade>()
            } else {
                None
            };
            let client = ClientAddr::of(&parts.extensions);
            // Taken out: with the answer's two entries the map then stays within the
            // capacity it was first given (three), so it is not grown per request.
            let conn = parts.extensions.remove::<ConnInfo>();
            let identity = parts.extensions.get::<Identity>();
            let key_hash = (upstream.load_balancer() == LoadBalancer::ConsistentHash).then(|| {
                balancer::key(identity.map(|id| id.user_id.as_str()), client.map(|c| c.ip))
            });
            // Without the listener's upgrade handle the handshake cannot be completed: forward
            // as a plain request.
            let upgrade = client_upgrade.is_some();

            // Headers to the upstream. For HTTP/1.1, what the gateway sets is written after the
            // request's own fields when the head is encoded; with per-route request rules
            // (which may name those fields) and for HTTP/2 it goes into the map.
            let headers = &mut parts.headers;
            let mut fields = AddedFields::default();
            let direct =
                upstream.protocol() == UpstreamProtocol::Http1 && config.request_headers.is_empty();
            let mut added = if direct {
                Added::Fields {
                    fields: &mut fields,
                    present: scan.present,
                }
            } else {
                // Room for what is added below (request id, version, X-Forwarded-*), so the
                // map grows at most once instead of once per insert.
                headers.reserve(6);
                Added::Map
            };
            let present = scan.present;
            let had_host = scan.host.is_some();
            let original_host = scan.host.or_else(|| {
                parts
                    .uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            });
            strip_found_hop_by_hop(headers, present, true, upgrade);
            if present & REQ_X_USER != 0 {
                remove_x_user(headers);
            }
            if let Some(id) = identity {
                if let Ok(v) = HeaderValue::from_str(&id.user_id) {
                    added.set(headers, Field::UserId, FieldValue::Header(v));
                }
                if let Some(role) = id
                    .role
                    .as_deref()
                    .and_then(|r| HeaderValue::from_str(r).ok())
                {
                    added.set(headers, Field::UserRole, FieldValue::Header(role));
                }
            }
            if let Some(id) = &request_id {
                if present & REQ_ID_SAME == 0 || !direct {
                    let id = FieldValue::Header(id.header_value().clone());
                    added.set(headers, Field::RequestId, id);
                }
            }
            let version = FieldValue::Header(self.version.clone());
            added.set(headers, Field::GatewayVersion, version);
            let peer = conn.map(|c| c.peer.ip()).or(client.map(|c| c.ip));
            let peer_trusted = conn.is_some_and(|c| config.trusted_proxies.contains(c.peer.ip()));
            let tls = conn.map_or_else(|| client.is_some_and(|c| c.https), |c| c.tls);
            // Host goes through unchanged; one taken out because `Connection` named it, or
            // missing (HTTP/2 clients send `:authority`), is set from the original.
            if let Some(h) = &original_host {
                if (!had_host || present & HOP_CONNECTION != 0) && !headers.contains_key(HOST) {
                    headers.insert(HOST, h.clone());
                }
            }
            set_forwarded(
                headers,
                &mut added,
                peer,
                tls,
                peer_trusted,
                original_host.as_ref(),
            );
            // The listener answers `Expect: 100-continue` itself when the body is first read.
            if present & REQ_EXPECT != 0 {
                headers.remove(EXPECT);
            }
            if upstream.protocol() == UpstreamProtocol::Http2 {
                // HTTP/2 carries the authority in `:authority` (the instance's address, which the
                // pool is keyed on); a differing Host is not allowed (RFC 9113 §8.3.1). The
                // original host travels in X-Forwarded-Host.
                headers.remove(HOST);
            }
            config.request_headers.apply(headers);

            let version = match upstream.protocol() {
                UpstreamProtocol::Http1 => Version::HTTP_11,
                UpstreamProtocol::Http2 => Version::HTTP_2,
            };
            let pq = std::mem::take(&mut parts.uri)
                .into_parts()
                .path_and_query
                .unwrap_or_else(|| PathAndQuery::from_static("/"));

            // The body: replayable when a retry may follow, else streamed once.
            let retry = config
                .retry
                .as_ref()
                .filter(|r| r.times > 0 && !upgrade && idempotent(&parts.method));
            let mut stream = None;
            let mut replay = None;
            let mut progress = None;
            if body.is_end_stream() {
                // Nothing to stream (most GETs): no limit counting, no progress tracking.
                replay = Some(Bytes::new());
            } else if retry.is_some()
                && body
                    .size_hint()
                    .upper()
                    .is_some_and(|n| n <= MAX_REPLAY_BYTES)
            {
                // Boxed (cold path): keeps the per-request future small.
                match Box::pin(ReqBody::stream(body, max, Progress::new()).collect()).await {
                    Ok(c) => replay = Some(c.to_bytes()),
                    Err(e) if e.is::<BodyLimitExceeded>() => {
                        break 'run (Err(ProxyError::BodyTooLarge), None)
                    }
                    // Every error of the client's body is one (`ReqBody`).
                    Err(e) => break 'run (Err(ProxyError::ClientBody(e)), None),
                }
            } else {
                let p = Progress::new();
                progress = Some(p.clone());
                stream = Some(ReqBody::stream(body, max, p));
            }
            let max_attempts = match (&replay, retry) {
                (Some(_), Some(r)) => r.times.saturating_add(1),
                _ => 1,
            };
            if max_attempts > 1 {
                upstream.budget.deposit();
            }

            let snap = upstream.snapshot();
            let mut tried = Tried::default();
            let mut attempts = 0u32;
            let mut headers = std::mem::take(&mut parts.headers);
            loop {
                attempts += 1;
                let Some(idx) = upstream.pick(&snap, key_hash, &tried) else {
                    break 'run (Err(ProxyError::NoHealthyUpstream), None);
                };
                tried.insert(idx);
                let ep = &snap.endpoints[idx];
                let last = attempts >= max_attempts;

                let req_body = match (&replay, stream.take()) {
                    (Some(bytes), _) => ReqBody::full(bytes.clone()),
                    (None, Some(s)) => s,
                    (None, None) => ReqBody::full(Bytes::new()),
                };
                let req = if version == Version::HTTP_2 {
                    let headers = if last {
                        std::mem::take(&mut headers)
                    } else {
                        headers.clone()
                    };
                    h2_request(ep, &parts.method, &pq, headers, req_body)
                } else {
                    // HTTP/1.1 connections are made by the pool: the request line is
                    // origin-form, and the parts are borrowed (a retry sends them again).
                    let head = H1Head {
                        method: &parts.method,
                        target: pq.as_str(),
                        headers: &headers,
                        added: &fields,
                    };
                    Outgoing::H1(head, req_body)
                };

                let guard = (upstream.load_balancer() == LoadBalancer::LeastConn)
                    .then(|| InFlight::new(&ep.in_flight));
                // Tokio's clock: one reading serves the deadlines and the header time.
                let start = tokio::time::Instant::now();
                // `send` bounds the upload, `read` the wait for the answer's head after it.
                let wait = Deadlines {
                    start,
                    send: config.timeouts.send,
                    read: config.timeouts.read,
                    progress: progress.as_deref(),
                };
                let result = self.client.send(ep, req, &wait).await;
                let info = UpstreamInfo {
                    addr: ep.addr.clone(),
                    instance: ep.id.clone(),
                    connect: None,
                    header: start.elapsed(),
                    attempts,
                };
                let failure = match result {
                    Ok(Ok(res)) => {
                        let status = res.status();
                        let retry_status = matches!(
                            status,
                            StatusCode::BAD_GATEWAY
                                | StatusCode::SERVICE_UNAVAILABLE
                                | StatusCode::GATEWAY_TIMEOUT
                        );
                        if !(retry_status && !last && upstream.budget.withdraw()) {
                            let res = self.respond(res, guard, client_upgrade);
                            break 'run (Ok(res), Some(info));
                        }
                        drop(res);
                        None
                    }
                    Ok(Err(_)) if progress.as_ref().is_some_and(|p| p.exceeded()) => {
                        break 'run (Err(ProxyError::BodyTooLarge), Some(info));
                    }
                    // The client's fault, whatever the exchange's error says (HTTP/2 reports
                    // the stream it reset): no word about the instance to the outlier
                    // detector, which reads `UpstreamInfo`.
                    Ok(Err(err)) if progress.as_ref().is_some_and(|p| p.client_failed()) => {
                        let err = match classify(err) {
                            Failure::Final(e @ ProxyError::ClientBody(_)) => e,
                            Failure::Final(e) | Failure::Retryable(e) => {
                                ProxyError::ClientBody(Box::new(e))
                            }
                        };
                        break 'run (Err(err), None);
                    }
                    Ok(Err(err)) => match classify(err) {
                        Failure::Final(e @ ProxyError::ClientBody(_)) => break 'run (Err(e), None),
                        Failure::Final(e) => break 'run (Err(e), Some(info)),
                        Failure::Retryable(e) => {
                            if last || !upstream.budget.withdraw() {
                                break 'run (Err(e), Some(info));
                            }
                            Some(e)
                        }
                    },
                    Err(Elapsed) => break 'run (Err(ProxyError::Timeout), Some(info)),
                };
                drop(guard);
                log_retry(upstream.name(), &ep.id, attempts, failure.as_ref());
                failed.push(ep.id.clone());
                if let Some(r) = retry {
                    if !r.delay.is_zero() {
                        Box::pin(tokio::time::sleep(r.delay)).await;
                    }
                }
            }
        };
        let mut res = match result {
            Ok(res) => res,
            Err(err) => {
                let forwarded = !matches!(err, ProxyError::NoHealthyUpstream);
                let mut res = proxy_error(self.upstream.name(), &err, request_id.as_ref());
                if !forwarded {
                    res.extensions_mut().insert(NotForwarded);
                }
                res
            }
        };
        // The answer takes over the request's extensions (request id, identity, …): the
        // layers above read what they need from the answer, and the map allocated for the
        // request is reused instead of a new one per answer.
        let own = std::mem::replace(res.extensions_mut(), parts.extensions);
        res.extensions_mut().extend(own);
        if let Some(info) = info {
            res.extensions_mut().insert(info);
        }
        if !failed.is_empty() {
            res.extensions_mut().insert(FailedAttempts(failed));
        }
        Ok(res)
    }

    fn respond(
        &self,
        res: Response<UpstreamBody>,
        guard: Option<InFlight>,
        client_upgrade: Option<OnUpgrade>,
    ) -> Response<Body> {
        let read = self.config.timeouts.read;
        let (mut parts, mut body) = res.into_parts();
        let mut guard = guard;
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(res) = self.switch(&mut parts, &mut body, &mut guard, client_upgrade) {
                return res;
            }
        }
        // The HTTP/1.1 client leaves out what concerns only its connection; most answers
        // hold nothing else that is hop-by-hop.
        if !matches!(&body, UpstreamBody::H1(b) if b.hop_clean()) {
            strip_hop_by_hop(&mut parts.headers, false, false);
        }
        self.config.response_headers.apply(&mut parts.headers);
        Response::from_parts(parts, Body::new(RespBody::new(body, read, guard)))
    }

    /// A 101 to a WebSocket handshake: the answer to the client, and a task that joins the
    /// two connections once it has been written. `None` (the answer goes on as any other)
    /// when either side's connection cannot be had.
    #[cold]
    #[inline(never)]
    fn switch(
        &self,
        parts: &mut http::response::Parts,
        body: &mut UpstreamBody,
        guard: &mut Option<InFlight>,
        client_upgrade: Option<OnUpgrade>,
    ) -> Option<Response<Body>> {
        let upgraded = match body {
            UpstreamBody::H1(b) => b.upgraded(),
            _ => None,
        };
        let (Some(client_upgrade), Some(conn)) = (client_upgrade, upgraded) else {
            return None;
        };
        let idle = self.config.timeouts.read;
        tokio::spawn(tunnel(client_upgrade, conn, guard.take(), idle));
        let fresh = Response::new(()).into_parts().0;
        let mut res = Response::from_parts(std::mem::replace(parts, fresh), Body::empty());
        self.config.response_headers.apply(res.headers_mut());
        Some(res)
    }
}

// Out of line and cold: what follows runs rarely, and kept inside `forward` it would spread
// the common path's code over more instruction-cache lines.

#[cold]
#[inline(never)]
fn h2_request(
    ep: &crate::upstream::Endpoint,
    method: &Method,
    pq: &PathAndQuery,
    headers: HeaderMap,
    body: ReqBody,
) -> Outgoing<'static> {
    let mut uri_parts = uri::Parts::default();
    uri_parts.scheme = Some(Scheme::HTTP);
    uri_parts.authority = Some(ep.authority.clone());
    uri_parts.path_and_query = Some(pq.clone());
    let uri = Uri::from_parts(uri_parts).expect("scheme, authority and path are valid");
    let mut req = Request::new(body);
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_2;
    *req.headers_mut() = headers;
    Outgoing::H2(req)
}

#[cold]
#[inline(never)]
fn log_retry(service: &str, instance: &str, attempt: u32, error: Option<&ProxyError>) {
    tracing::debug!(
        service,
        instance,
        attempt,
        ?error,
        "retrying upstream request"
    );
}

#[cold]
#[inline(never)]
fn proxy_error(service: &str, err: &ProxyError, request_id: Option<&RequestId>) -> Response<Body> {
    tracing::debug!(service, error = %err, "proxy error");
    error_into_response(err, request_id)
}

/// Copies bytes both ways between the upgraded client connection and the upstream's socket.
/// Relays an upgraded connection both ways until either side closes, or until no byte went
/// either way for a whole `idle` period (the route's `timeout.read`, as nginx's
/// `proxy_read_timeout` bounds its WebSocket tunnels): it is checked once per period, so a
/// silent tunnel is closed between one and two periods after its last byte.
async fn tunnel(client: OnUpgrade, upstream: Box<Conn>, guard: Option<InFlight>, idle: Duration) {
    use tokio::io::AsyncWriteExt;
    // The client's side resolves once the 101 has been written to it.
    let (upstream, early) = (*upstream).into_upgraded();
    match client.await {
        Ok(client) => {
            let mut client = hyper_util::rt::TokioIo::new(client);
            // What the upstream sent right after its 101 goes first.
            if !early.is_empty() {
                if let Err(e) = client.write_all(&early).await {
                    tracing::debug!(error = %e, "upgraded connection ended with an error");
                    return;
                }
            }
            let progress = AtomicU64::new(0);
            let mut client = Ticking {
                io: client,
                progress: &progress,
            };
            let mut upstream = Ticking {
                io: upstream,
                progress: &progress,
            };
            let mut relay =
                std::pin::pin!(tokio::io::copy_bidirectional(&mut client, &mut upstream));
            let mut sleep = std::pin::pin!(tokio::time::sleep(idle));
            let mut seen = 0;
            let ended = std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = relay.as_mut().poll(cx) {
                    return Poll::Ready(r.map(|_| ()));
                }
                while sleep.as_mut().poll(cx).is_ready() {
                    let now = progress.load(Ordering::Relaxed);
                    if now == seen {
                        return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
                    }
                    seen = now;
                    sleep.as_mut().reset(tokio::time::Instant::now() + idle);
                }
                Poll::Pending
            })
            .await;
            if let Err(e) = ended {
                tracing::debug!(error = %e, "upgraded connection ended with an error");
            }
        }
        Err(e) => tracing::debug!(error = %e, "client upgrade failed"),
    }
    drop(guard);
}

/// One side of a tunnel, counting the reads that brought bytes in `progress`.
struct Ticking<'a, T> {
    io: T,
    progress: &'a AtomicU64,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Ticking<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.progress.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Ticking<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Retryable(e) | Failure::Final(e) => fmt::Display::fmt(e, f),
        }
    }
}
