//! The per-route proxy service.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use gw_core::{
    error_into_response, Body, ClientAddr, ConnInfo, FailedAttempts, Identity, NotForwarded,
    RequestId, UpstreamInfo,
};
use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use hyper::upgrade::OnUpgrade;

use crate::attempt::{self, Exchange};
use crate::balancer;
use crate::body::{InFlight, RespBody, UpstreamBody};
use crate::client::HttpClient;
use crate::fields::{scan_request, strip_hop_by_hop, AddedFields, RequestScan};
use crate::forwarded::{is_websocket, rewrite_request, Origin, Outbound};
use crate::payload::{Payload, Reading};
use crate::retry::{self, Ending, Retries};
use crate::upgrade::tunnel;
use crate::{Clients, LoadBalancer, ProxyConfig, ProxyError, Upstream, UpstreamProtocol};

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

impl Shared {
    /// The request's way through the proxy: its upstream head, its body, the attempts with
    /// their retries, and the answer.
    async fn forward(self: Arc<Self>, req: Request<Body>) -> Result<Response<Body>, Infallible> {
        let (mut parts, body) = req.into_parts();
        let request_id = parts.extensions.get::<RequestId>().cloned();
        // Instances whose attempt failed before a retry (allocated only then).
        let mut failed: Vec<Arc<str>> = Vec::new();
        let (result, info) = 'run: {
            let (config, upstream) = (&*self.config, &*self.upstream);
            let max = config.max_body_bytes;
            // One pass over the fields answers what the steps below ask of them.
            let scan = scan_request(
                &parts.headers,
                request_id.as_ref().map(|id| id.header_value().as_bytes()),
            );
            if scan.content_length.is_some_and(|len| len > max) {
                break 'run (Err(ProxyError::BodyTooLarge), None);
            }
            // Without the listener's upgrade handle the handshake cannot be completed: it is
            // forwarded as a plain request.
            let client_upgrade = self.take_upgrade(&mut parts, &scan);
            let upgrade = client_upgrade.is_some();
            let key = self.balance_key(&parts.extensions);
            let mut fields = AddedFields::default();
            self.rewrite_head(&mut parts, scan, request_id.as_ref(), upgrade, &mut fields);
            let target = take_target(&mut parts.uri);
            // The body: replayable when a retry may follow, else streamed once.
            let retry = retry::eligible(config.retry.as_ref(), &parts.method, upgrade);
            let mut payload = match Payload::read(body, retry.is_some(), max) {
                Reading::Done(payload) => payload,
                Reading::Buffer(buffering) => match buffering.await {
                    Ok(payload) => payload,
                    Err(e) => break 'run (Err(e), None),
                },
            };
            let mut retries = Retries::new(retry, payload.replayable(), &upstream.budget);
            let mut exchange = Exchange {
                client: &self.client,
                timeouts: &config.timeouts,
                count_in_flight: upstream.load_balancer() == LoadBalancer::LeastConn,
                method: &parts.method,
                target: &target,
                headers: &mut parts.headers,
                fields: &fields,
                payload: &mut payload,
            };
            let snap = upstream.snapshot();
            loop {
                let number = retries.start();
                let Some(idx) = upstream.pick(&snap, key, retries.tried()) else {
                    break 'run (Err(ProxyError::NoHealthyUpstream), None);
                };
                retries.sent_to(idx);
                let ep = &snap.endpoints[idx];
                let guard = exchange.in_flight(ep);
                // Tokio's clock: one reading serves the deadlines and the header time.
                let start = tokio::time::Instant::now();
                let result = exchange.send(ep, start, retries.last()).await;
                let info = attempt::info(ep, start, number);
                // An answer is passed on unless a retry follows (502, 503, 504: dropped).
                let error = match result {
                    Ok(res) if retries.retry(Ending::Answered(res.status())) => None,
                    Ok(res) => {
                        break 'run (Ok(self.respond(res, guard, client_upgrade)), Some(info))
                    }
                    Err(err) => match exchange.failure(err) {
                        f if retries.retry(f.ending()) => Some(f.into_error()),
                        f => break 'run f.settle(info),
                    },
                };
                drop(guard);
                log_retry(upstream.name(), &ep.id, number, error.as_ref());
                failed.push(ep.id.clone());
                if !retries.delay().is_zero() {
                    Box::pin(tokio::time::sleep(retries.delay())).await;
                }
            }
        };
        Ok(self.answer(result, info, parts.extensions, failed, request_id.as_ref()))
    }

    /// The listener's upgrade handle of a WebSocket handshake to an HTTP/1.1 service (taken
    /// out of the extensions: the upstream's connection is joined to it after a `101`).
    #[inline]
    fn take_upgrade(
        &self,
        parts: &mut http::request::Parts,
        scan: &RequestScan,
    ) -> Option<OnUpgrade> {
        let upgrade = self.upstream.protocol() == UpstreamProtocol::Http1
            && scan.websocket
            && is_websocket(parts);
        if upgrade {
            parts.extensions.remove::<OnUpgrade>()
        } else {
            None
        }
    }

    /// The request's point on the hash ring, on a `consistent_hash` service.
    #[inline]
    fn balance_key(&self, extensions: &http::Extensions) -> Option<u64> {
        (self.upstream.load_balancer() == LoadBalancer::ConsistentHash).then(|| {
            let user = extensions.get::<Identity>().map(|id| id.user_id.as_str());
            let client = ClientAddr::of(extensions).map(|c| c.ip);
            balancer::key(user, client)
        })
    }

    /// The upstream request's fields: the forwarded-header rules, then the route's request
    /// header rules. What the request's extensions tell is read here; they are not
    /// forwarded, and travel on with the answer.
    #[inline]
    fn rewrite_head(
        &self,
        parts: &mut http::request::Parts,
        scan: RequestScan,
        request_id: Option<&RequestId>,
        upgrade: bool,
        fields: &mut AddedFields,
    ) {
        let config = &*self.config;
        let h1 = self.upstream.protocol() == UpstreamProtocol::Http1;
        // Before `ConnInfo` is taken out: without a `ClientAddr` extension, it tells the client.
        let client = ClientAddr::of(&parts.extensions);
        // Taken out: with the answer's two entries the map then stays within the capacity it
        // was first given (three), so it is not grown per request.
        let conn = parts.extensions.remove::<ConnInfo>();
        let from = Origin {
            conn: conn.as_ref(),
            client,
            identity: parts.extensions.get::<Identity>(),
            request_id,
            authority: parts.uri.authority(),
        };
        let to = Outbound {
            trusted: &config.trusted_proxies,
            version: &self.version,
            direct: h1 && config.request_headers.is_empty(),
            h2: !h1,
            upgrade,
        };
        rewrite_request(&mut parts.headers, fields, scan, &from, &to);
        config.request_headers.apply(&mut parts.headers);
    }

    /// The answer to the client: the upstream's, or the error's JSON answer; with the
    /// request's extensions, what the attempts tell of the instances.
    #[inline]
    fn answer(
        &self,
        result: Result<Response<Body>, ProxyError>,
        info: Option<UpstreamInfo>,
        extensions: http::Extensions,
        failed: Vec<Arc<str>>,
        request_id: Option<&RequestId>,
    ) -> Response<Body> {
        let mut res = match result {
            Ok(res) => res,
            Err(err) => {
                let forwarded = !matches!(err, ProxyError::NoHealthyUpstream);
                let mut res = proxy_error(self.upstream.name(), &err, request_id);
                if !forwarded {
                    res.extensions_mut().insert(NotForwarded);
                }
                res
            }
        };
        // The answer takes over the request's extensions (request id, identity, …): the
        // layers above read what they need from the answer, and the map allocated for the
        // request is reused instead of a new one per answer.
        let own = std::mem::replace(res.extensions_mut(), extensions);
        res.extensions_mut().extend(own);
        if let Some(info) = info {
            res.extensions_mut().insert(info);
        }
        if !failed.is_empty() {
            res.extensions_mut().insert(FailedAttempts(failed));
        }
        res
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

/// The request target (origin-form) for the upstream, taken out of the rewritten URI.
#[inline]
fn take_target(uri: &mut Uri) -> PathAndQuery {
    std::mem::take(uri)
        .into_parts()
        .path_and_query
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
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
