//! `AccessLogLayer`: one JSON line per request, written when the response body ends.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Buf;
use gw_core::{ClientAddr, Identity, RequestId, RouteTag, UpstreamInfo};
use http::{Method, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use serde::Serialize;
use tower::{Layer, Service};

use crate::access_log::AccessLog;
use crate::registry::RouteMetrics;

/// Writes one JSON line per request to an [`AccessLog`] (see the crate docs for the fields).
///
/// Method, original path, client and request id are taken when the request arrives (place
/// this layer inside [`RequestIdLayer`](crate::RequestIdLayer) and outside the router, which
/// rewrites the URI); route, service, upstream and user id come from the response
/// extensions. The line is written when the response body ends, errors or is dropped; a
/// request dropped before its answer (the client went away) is logged with status 499, one
/// whose inner service failed with 500.
#[derive(Clone, Debug)]
pub struct AccessLogLayer {
    log: AccessLog,
}

impl AccessLogLayer {
    /// A layer writing to `log`.
    pub fn new(log: AccessLog) -> Self {
        Self { log }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLogService<S>;

    fn layer(&self, inner: S) -> AccessLogService<S> {
        AccessLogService {
            inner,
            log: self.log.clone(),
        }
    }
}

/// The service made by [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLogService<S> {
    inner: S,
    log: AccessLog,
}

/// What is known when the request arrives.
#[derive(Debug)]
struct RequestPart {
    start: Instant,
    method: Method,
    uri: Uri,
    client: Option<IpAddr>,
    request_id: Option<RequestId>,
}

impl<S, B, ResBody> Service<Request<B>> for AccessLogService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<LogBody<ResBody>>;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let ext = req.extensions();
        let client = ClientAddr::of(ext).map(|c| c.ip);
        let part = RequestPart {
            start: Instant::now(),
            method: req.method().clone(),
            // A `Uri` clone shares its bytes; the path is read when the line is written.
            uri: req.uri().clone(),
            client,
            request_id: ext.get::<RequestId>().cloned(),
        };
        AccessLogFuture {
            inner: self.inner.call(req),
            // Written as 499 (client closed request, as nginx logs it) if the future is
            // dropped before the answer, 500 if the inner service fails.
            pending: Some(Box::new(Pending {
                log: self.log.clone(),
                req: part,
                status: 499,
                route: None,
                service: None,
                upstream: None,
                user_id: None,
                bytes: 0,
            })),
        }
    }
}

pin_project! {
    /// Response future of [`AccessLogService`].
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Box<Pending>>,
    }
}

impl<F> fmt::Debug for AccessLogFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLogFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body,
{
    type Output = Result<Response<LogBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = match ready!(this.inner.poll(cx)) {
            Ok(res) => res,
            Err(e) => {
                if let Some(p) = this.pending.as_mut() {
                    p.status = 500;
                }
                return Poll::Ready(Err(e));
            }
        };
        let pending = this.pending.take().map(|mut p| {
            let ext = res.extensions();
            let (route, service) = match (ext.get::<RouteTag>(), ext.get::<&'static RouteMetrics>())
            {
                (Some(tag), _) => (Some(tag.route.clone()), Some(tag.service.clone())),
                (None, Some(rm)) => (Some(rm.route().into()), Some(rm.service().into())),
                (None, None) => (None, None),
            };
            p.status = res.status().as_u16();
            p.route = route;
            p.service = service;
            p.upstream = ext.get::<UpstreamInfo>().cloned();
            p.user_id = ext.get::<Identity>().map(|i| i.user_id.clone());
            p
        });
        let (parts, body) = res.into_parts();
        Poll::Ready(Ok(Response::from_parts(
            parts,
            LogBody {
                inner: body,
                pending,
            },
        )))
    }
}

/// A line waiting for the end of the body. Dropping it writes the line.
struct Pending {
    log: AccessLog,
    req: RequestPart,
    status: u16,
    route: Option<Arc<str>>,
    service: Option<Arc<str>>,
    upstream: Option<UpstreamInfo>,
    user_id: Option<String>,
    bytes: u64,
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(serialize_with = "display")]
    time: humantime::Rfc3339Timestamp,
    request_id: Option<&'a str>,
    client: Option<IpAddr>,
    method: &'a str,
    path: &'a str,
    route: Option<&'a str>,
    service: Option<&'a str>,
    upstream: Option<&'a str>,
    status: u16,
    bytes: u64,
    request_time: f64,
    upstream_connect_time: Option<f64>,
    upstream_header_time: Option<f64>,
    upstream_response_time: Option<f64>,
    user_id: Option<&'a str>,
    /// Present (`true`) when a field was cut to [`MAX_FIELD_BYTES`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

/// Longest value of a client-controlled field (path, method, request id, user id) in a line,
/// in bytes; a longer one is cut (at a character boundary) and the line gets
/// `"truncated": true`.
pub const MAX_FIELD_BYTES: usize = 2048;

/// `s` cut to [`MAX_FIELD_BYTES`]; sets `*cut` when it was.
fn capped<'s>(s: &'s str, cut: &mut bool) -> &'s str {
    if s.len() <= MAX_FIELD_BYTES {
        return s;
    }
    *cut = true;
    let mut end = MAX_FIELD_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn display<T: fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Drop for Pending {
    fn drop(&mut self) {
        let request_time = self.req.start.elapsed().as_secs_f64();
        let up = self.upstream.as_ref();
        let mut truncated = false;
        let request_id = self
            .req
            .request_id
            .as_ref()
            .map(|r| capped(r.as_str(), &mut truncated));
        let method = capped(self.req.method.as_str(), &mut truncated);
        let path = capped(self.req.uri.path(), &mut truncated);
        let user_id = self.user_id.as_deref().map(|u| capped(u, &mut truncated));
        let line = Line {
            time: humantime::format_rfc3339_millis(SystemTime::now()),
            request_id,
            client: self.req.client,
            method,
            path,
            route: self.route.as_deref(),
            service: self.service.as_deref(),
            upstream: up.map(|u| &*u.addr),
            status: self.status,
            bytes: self.bytes,
            request_time,
            upstream_connect_time: up.and_then(|u| u.connect).map(|d| d.as_secs_f64()),
            upstream_header_time: up.map(|u| u.header.as_secs_f64()),
            upstream_response_time: up.map(|_| request_time),
            user_id,
            truncated,
        };
        let mut buf = Vec::with_capacity(384);
        if serde_json::to_writer(&mut buf, &line).is_ok() {
            buf.push(b'\n');
            self.log.send(buf);
        }
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("status", &self.status)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// Response body of [`AccessLogService`]: passes frames (trailers included) through
    /// unchanged, counts data bytes, and writes the access-log line when the body ends,
    /// fails or is dropped.
    pub struct LogBody<B> {
        #[pin]
        inner: B,
        pending: Option<Box<Pending>>,
    }
}

impl<B> LogBody<B> {
    /// Consumes the wrapper (the line is written now) and returns the inner body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> fmt::Debug for LogBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogBody")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for LogBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let (Some(p), Some(data)) = (this.pending.as_mut(), f.data_ref()) {
                    p.bytes += data.remaining() as u64;
                }
                if this.inner.is_end_stream() {
                    this.pending.take();
                }
            }
            // End or error: write the line now.
            Some(Err(_)) | None => {
                this.pending.take();
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
