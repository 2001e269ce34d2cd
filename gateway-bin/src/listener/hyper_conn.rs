//! hyper on the gateway's connections: the builders (HTTP/1.1 for the hand-off from the plain
//! loop, HTTP/2, and the auto builder for TLS and uncertain prefaces) and the services that
//! feed the idle watchdog from hyper's paths ([`stream_service`], [`Tracked`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use gw_core::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::watch;

use super::deadline::{graceful, Activity, Waiting};
use super::HeadLimits;

/// How connections are served: plain TCP goes to the gateway's own HTTP/1.1 loop (or hyper's
/// HTTP/2 server when the client opens with the h2 preface); TLS connections go through
/// hyper-util's auto builder (ALPN or preface). Every path runs under the idle watchdog of
/// [`graceful`].
pub(super) struct Builders {
    pub(super) idle: Duration,
    pub(super) limits: HeadLimits,
    auto: auto::Builder<TokioExecutor>,
    pub(super) h1: http1::Builder,
    pub(super) h2: http2::Builder<TokioExecutor>,
}

impl Builders {
    pub(super) fn new(idle: Duration, limits: HeadLimits) -> Builders {
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

/// Serves a connection with hyper-util's auto builder (TLS, or a plain connection whose first
/// bytes are a prefix of the HTTP/2 preface), under the idle watchdog: a connection that for
/// a whole period starts no request (HTTP/1.1) or stream (HTTP/2) and has none open is
/// closed, whether it never sent a byte, stopped within the preface or sits idle.
pub(super) async fn serve_auto<I, S, F>(
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
pub(super) fn stream_service<S, F>(
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
