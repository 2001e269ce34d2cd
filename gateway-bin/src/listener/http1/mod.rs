//! The plain HTTP/1.1 listener's own loop for the common request: no body, no upgrade, no
//! `Expect`. Such a request is parsed here straight into an `http::Request` and its answer
//! written with one `write` when the body is at hand. hyper's dispatcher does the same job
//! for every kind of request; for a proxied GET this loop runs ~2 000 fewer instructions
//! (26 155 → 24 144 per request for the whole gateway, callgrind).
//!
//! The first request that is not of that kind (a body, an upgrade, `Expect`, HTTP/1.0,
//! `CONNECT`, a head that does not parse) is not touched: the connection, with every byte
//! read so far, goes to hyper's HTTP/1.1 server for the rest of its life, which then answers
//! it (and any error) exactly as before.
//!
//! Every head is held to the `[server]` head limits here, on its bytes as they arrive (a
//! request line without its LF within `max_request_line_bytes`: 414; more than
//! `max_header_bytes` or `max_headers`: 431), before anything else is decided: the answer is
//! the edge's JSON error, made by the service like any other answer, and the connection is
//! closed after a short lingering drain.
//!
//! The wire format (field names, the status line and fields, chunk size lines) is
//! [`gw_core::h1`]'s, which the upstream client (`gw-proxy`) writes and reads with too.
//!
//! - this file: the connection loop (read, dispatch, answer, hand-off to hyper, refusal).
//! - [`head`]: a request head into an `http::Request`, and the limits (414/431).
//! - [`answer`]: writing the answer (head and body in one write, chunked).

mod answer;
mod head;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use gw_core::Body;
use http::{Request, Response, Version};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use gw_edge::{EdgeError, Rejected};

use super::deadline::{Activity, Counted, Waiting};
use super::hyper_conn::hyper_service;
use answer::write_response;
use head::{parse, Head, Parsed};

pub(crate) use head::HeadLimits;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 8 * 1024;

/// Why a connection ended badly.
pub(crate) type ConnError = Box<dyn std::error::Error + Send + Sync>;

/// A connection served by [`serve`], with the flag that asks it to finish (close after the
/// request in flight, as hyper's graceful shutdown does).
pub(crate) struct Fast<F> {
    fut: Pin<Box<F>>,
    stop: Arc<AtomicBool>,
}

impl<F> Fast<F> {
    pub(crate) fn new(fut: F, stop: Arc<AtomicBool>) -> Self {
        Fast {
            fut: Box::pin(fut),
            stop,
        }
    }

    /// Asks the connection to finish; it notices on its next poll.
    pub(crate) fn graceful_shutdown(self: Pin<&mut Self>) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl<F: Future> Future for Fast<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.fut.as_mut().poll(cx)
    }
}

/// What serves a connection's requests, here or after the hand-off.
pub(crate) struct Serving<S> {
    /// The connection's service.
    pub(crate) service: Arc<S>,
    /// The watchdog's counters.
    pub(crate) activity: Arc<Activity>,
    /// Set when the connection is to finish (graceful shutdown).
    pub(crate) stop: Arc<AtomicBool>,
    /// hyper's HTTP/1.1 server, for the hand-off.
    pub(crate) h1: http1::Builder,
    /// The head limits (`server.max_request_line_bytes` …).
    pub(crate) limits: HeadLimits,
}

/// Serves `io` until the client closes, `stop` is set, or a request goes to hyper.
pub(crate) async fn serve<S, F>(
    mut io: Counted<TcpStream>,
    serving: Serving<S>,
) -> Result<(), ConnError>
where
    S: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let Serving {
        service,
        activity,
        stop,
        limits,
        ..
    } = &serving;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        // The next request head.
        let head = loop {
            if !buf.is_empty() {
                match parse(&mut buf, limits) {
                    Parsed::Simple(head) => break head,
                    Parsed::Partial => {}
                    Parsed::HandOff => return hand_off(io, buf, serving).await,
                    Parsed::Refused(err) => return refuse(io, &mut wbuf, service, err).await,
                }
            }
            let read = poll_fn(|cx| {
                // An idle connection finishes at once when asked to.
                if buf.is_empty() && stop.load(Ordering::Relaxed) {
                    return Poll::Ready(Ok(0));
                }
                poll_read_buf(&mut io, cx, &mut buf)
            })
            .await?;
            if read == 0 {
                // Closed (or stopping) between requests, or in the middle of a head.
                return Ok(());
            }
        };

        let Head {
            request,
            keep_alive,
            head,
        } = head;
        let waiting = Waiting::start(activity);
        let mut answer = pin!(service(request));
        // While the answer is prepared, the socket is watched: a client that closes its side
        // cancels the request (hyper's default, no half-close); bytes of a pipelined request
        // are kept for later.
        let mut eof = false;
        let answered = poll_fn(|cx| {
            if let Poll::Ready(res) = answer.as_mut().poll(cx) {
                return Poll::Ready(Some(res));
            }
            if !eof && buf.len() < limits.head {
                match poll_read_buf(&mut io, cx, &mut buf) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        eof = true;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Ok(_)) => cx.waker().wake_by_ref(),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await;
        drop(waiting);
        let Some(Ok(response)) = answered else {
            return Ok(());
        };
        let close = !keep_alive || stop.load(Ordering::Relaxed);
        let keep = write_response(&mut io, &mut wbuf, response, head, close).await?;
        if !keep || stop.load(Ordering::Relaxed) {
            let _ = io.shutdown().await;
            return Ok(());
        }
    }
}

/// Serves one plain HTTP/1.1 connection as the listener does (this loop, then hyper's
/// server built by `h1` after a hand-off), with the default head limits and without the idle
/// watchdog: for the benchmark `benches/h1.rs`, which compares it with hyper's server alone.
/// Not part of the crate's API.
#[doc(hidden)]
pub async fn serve_plain<S, F>(
    stream: TcpStream,
    service: S,
    h1: http1::Builder,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let edge = gw_edge::EdgePolicy::default();
    let activity = Arc::new(Activity::default());
    let io = Counted {
        io: stream,
        activity: activity.clone(),
    };
    let serving = Serving {
        service: Arc::new(service),
        activity,
        stop: Arc::new(AtomicBool::new(false)),
        h1,
        limits: HeadLimits {
            line: edge.max_request_line_bytes,
            head: edge.max_header_bytes,
            headers: edge.max_headers,
        },
    };
    serve(io, serving).await
}

/// Answers a head the loop refuses: a stand-in request marked [`Rejected`] goes through the
/// service (so the answer has a request id and is counted and logged), its answer is
/// written, and the connection is closed without reading the rest of the head.
async fn refuse<S, F>(
    mut io: Counted<TcpStream>,
    wbuf: &mut Vec<u8>,
    service: &Arc<S>,
    err: EdgeError,
) -> Result<(), ConnError>
where
    S: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    // HTTP/1.0 and `/`: a request the edge itself has nothing against.
    let mut request = Request::new(Body::empty());
    *request.version_mut() = Version::HTTP_10;
    request.extensions_mut().insert(Rejected(err));
    let Ok(response) = service(request).await;
    write_response(&mut io, wbuf, response, false, true).await?;
    linger(io).await;
    Ok(())
}

/// How long, and how much, a refused client's unread bytes are drained before the socket is
/// closed: closing with unread data sends a reset, which can destroy the answer before the
/// client reads it (nginx's lingering close).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

async fn linger(mut io: Counted<TcpStream>) {
    use tokio::io::AsyncReadExt;
    let _ = io.shutdown().await;
    let drain = async {
        let mut scratch = [0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match io.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Gives the connection, and what was read of it, to hyper's HTTP/1.1 server.
async fn hand_off<S, F>(
    io: Counted<TcpStream>,
    read: BytesMut,
    serving: Serving<S>,
) -> Result<(), ConnError>
where
    S: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let io = Rewind {
        read: read.freeze(),
        io,
    };
    let service = hyper_service(serving.service, Some(serving.activity));
    let conn = serving.h1.serve_connection(TokioIo::new(io), service);
    let mut conn = pin!(conn.with_upgrades());
    let mut stopping = false;
    poll_fn(|cx| {
        if !stopping && serving.stop.load(Ordering::Relaxed) {
            stopping = true;
            conn.as_mut().graceful_shutdown();
        }
        conn.as_mut().poll(cx)
    })
    .await
    .map_err(Into::into)
}

/// Reads what the socket has into `buf`'s spare room; `Ok(0)` at end of stream.
fn poll_read_buf(
    io: &mut Counted<TcpStream>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_CHUNK);
    }
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

/// The client socket, with bytes already read from it served first (to hyper, after a
/// hand-off).
pub(crate) struct Rewind {
    read: Bytes,
    io: Counted<TcpStream>,
}

impl AsyncRead for Rewind {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.read.is_empty() {
            let n = this.read.len().min(buf.remaining());
            buf.put_slice(&this.read[..n]);
            this.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
