//! The listeners: the accept loop (connection limit, `accept` failures backed off), what a
//! plain connection's first bytes say (HTTP/1.1 to the gateway's own loop in [`http1`],
//! HTTP/2 prior knowledge to hyper), the TLS handshake, and draining at shutdown.
//!
//! - [`http1`]: the gateway's own HTTP/1.1 server loop, which hands a connection to hyper
//!   for what it does not serve itself (bodies, upgrades, `Expect`).
//! - [`deadline`]: how long a connection may live: the stop signal, the idle watchdog and
//!   the counters it reads ([`Activity`], [`Counted`], [`Waiting`]).
//! - [`hyper_conn`]: hyper's builders and the glue for HTTP/2, TLS and the hand-off from
//!   the HTTP/1.1 loop (upgrades).
//! - [`tls`]: the rustls acceptor.
//!
//! What a connection's requests go through is built in `assemble`; the listener only calls
//! the per-connection function it is given.

mod deadline;
mod http1;
mod hyper_conn;
mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use gw_core::{Body, ConnInfo};
use http::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::server::StartError;

pub(crate) use http1::HeadLimits;
// For the HTTP/1.1 benchmark (`benches/h1.rs`, through the crate root); not part of the API.
#[doc(hidden)]
pub use http1::serve_plain;
pub(crate) use tls::tls_acceptor;

use deadline::{graceful, Activity, Counted};
use hyper_conn::{serve_auto, stream_service, Builders};

/// Binds `addr` (port 0 picks a free port).
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// The address `listener` is bound to (`fallback` if the system cannot say).
pub(crate) fn local(listener: &TcpListener, fallback: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(fallback)
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
pub(crate) async fn serve<M, S, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    make: M,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
    idle: Duration,
    limits: HeadLimits,
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
            connection(stream, peer, tls, &builders, stop, service).await;
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

/// One connection, from its first bytes to its end: a plain one is sniffed (a client that
/// sends nothing is dropped after the idle timeout) and served by the gateway's HTTP/1.1
/// loop, hyper's HTTP/2 server, or the auto builder when the first bytes are only a prefix of
/// the HTTP/2 preface; a TLS one after its handshake (bounded by the idle timeout too) by the
/// auto builder. Every path runs under [`graceful`] with the idle watchdog.
async fn connection<S, F>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    builders: &Builders,
    stop: watch::Receiver<bool>,
    service: Arc<S>,
) where
    S: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
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
                let serving = http1::Serving {
                    service,
                    activity: activity.clone(),
                    stop: finish.clone(),
                    h1: builders.h1.clone(),
                    limits: builders.limits,
                };
                let conn = http1::serve(io, serving);
                let conn = http1::Fast::new(conn, finish);
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
            Ok(Sniffed::Unsure) => serve_auto(builders, stop, stream, service).await,
            Err(e) => tracing::debug!(%peer, error = %e, "connection failed"),
        },
        Some(acceptor) => {
            // The handshake is bounded by the idle timeout as well.
            let accept = tokio::time::timeout(builders.idle, acceptor.accept(stream));
            match accept.await {
                Ok(Ok(stream)) => serve_auto(builders, stop, stream, service).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
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
