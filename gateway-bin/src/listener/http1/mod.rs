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

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::mem::MaybeUninit;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use gw_core::h1::{self as wire, ChunkSize};
use gw_core::Body;
use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use gw_edge::{EdgeError, Rejected};

use super::deadline::{Activity, Counted, Waiting};
use super::hyper_conn::hyper_service;

/// Most fields in a request head parsed here; a head with more goes to hyper when the
/// configured limit allows more (hyper's parser is given that limit), else it is refused.
const MAX_HEADERS: usize = 100;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 8 * 1024;
/// Body frames up to this size are copied behind the head (one `write`); larger ones are
/// written as they are.
const COPY_FRAME: usize = 16 * 1024;

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

/// What a request head asks of the loop.
struct Head {
    request: Request<Body>,
    /// The client wants the connection kept.
    keep_alive: bool,
    /// A `HEAD` request: the answer has no body.
    head: bool,
}

// Returned once per request and taken apart at once: boxing `Simple` would cost an
// allocation per request.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    /// More bytes are needed.
    Partial,
    /// A request for this loop (its head taken out of the buffer).
    Simple(Head),
    /// A head over the limits, or whose target is not a URI: answered with the edge's
    /// error, connection closed (the rest of the head is not read).
    Refused(EdgeError),
    /// Anything else: hyper's (nothing taken out).
    HandOff,
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

/// Limits on a request head, checked on its bytes as they arrive: a client cannot make the
/// gateway buffer more than `head` bytes of one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadLimits {
    /// Longest request line, CRLF included (414 above).
    pub(crate) line: usize,
    /// Largest head (431 above).
    pub(crate) head: usize,
    /// Most fields (431 above).
    pub(crate) headers: usize,
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

/// Parses the request head at the start of `buf`, within `limits`.
fn parse(buf: &mut BytesMut, limits: &HeadLimits) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return match over_limits(buf, buf.len(), limits) {
                Some(err) => Parsed::Refused(err),
                None => Parsed::Partial,
            };
        }
        Err(httparse::Error::TooManyHeaders) if limits.headers <= MAX_HEADERS => {
            let err = over_limits(buf, buf.len(), limits).unwrap_or(EdgeError::HeadTooLarge);
            return Parsed::Refused(err);
        }
        Err(_) => return Parsed::HandOff,
    };
    if let Some(err) = over_limits(buf, len, limits) {
        return Parsed::Refused(err);
    }
    if req.headers.len() > limits.headers {
        return Parsed::Refused(EdgeError::HeadTooLarge);
    }
    if req.version != Some(1) {
        return Parsed::HandOff;
    }
    let Ok(method) = Method::from_bytes(req.method.unwrap_or("").as_bytes()) else {
        return Parsed::HandOff;
    };
    if method == Method::CONNECT {
        return Parsed::HandOff;
    }
    let base = buf.as_ptr() as usize;
    let path = req.path.unwrap_or("");
    let target = (path.as_ptr() as usize - base, path.len());
    let mut keep_alive = true;
    let mut fields: smallvec::SmallVec<[(HeaderName, usize, usize); 16]> =
        smallvec::SmallVec::new();
    for h in req.headers.iter() {
        let Some((name, _)) = wire::field_name(h.name.as_bytes()) else {
            return Parsed::HandOff;
        };
        if name == CONTENT_LENGTH {
            // A body: hyper's.
            if h.value != b"0" {
                return Parsed::HandOff;
            }
        } else if name == TRANSFER_ENCODING || name == EXPECT || name == UPGRADE {
            return Parsed::HandOff;
        } else if name == CONNECTION {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::HandOff;
                }
            }
        }
        fields.push((name, h.value.as_ptr() as usize - base, h.value.len()));
    }
    let count = fields.len();
    let head = buf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(target.0..target.0 + target.1)) else {
        return Parsed::Refused(EdgeError::InvalidTarget);
    };
    // Room for what the gateway adds (request id), so the map is not grown per request.
    let mut headers = HeaderMap::with_capacity(count + 4);
    for (name, at, n) in fields {
        // httparse accepted the bytes: visible ASCII, obs-text, spaces and tabs.
        match HeaderValue::from_maybe_shared(head.slice(at..at + n)) {
            Ok(value) => {
                headers.append(name, value);
            }
            Err(_) => return Parsed::Refused(EdgeError::InvalidTarget),
        }
    }
    let is_head = method == Method::HEAD;
    let mut request = Request::new(Body::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Parsed::Simple(Head {
        request,
        keep_alive,
        head: is_head,
    })
}

/// Whether the first `len` bytes of `buf` (a whole head, or all that arrived of one) break
/// a limit: a request line without its LF within `limits.line` bytes, or more than
/// `limits.head` bytes.
fn over_limits(buf: &[u8], len: usize, limits: &HeadLimits) -> Option<EdgeError> {
    if len > limits.line {
        let window = &buf[..len.min(limits.line)];
        if !window.contains(&b'\n') {
            return Some(EdgeError::UriTooLong);
        }
    }
    (len > limits.head).then_some(EdgeError::HeadTooLarge)
}

/// How an answer's body is framed on the wire.
enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length`: this many bytes are still to come.
    Length(u64),
    Chunked,
}

/// Writes `res` to the client. Returns whether the connection can take another request.
async fn write_response(
    io: &mut Counted<TcpStream>,
    out: &mut Vec<u8>,
    res: Response<Body>,
    head_request: bool,
    mut close: bool,
) -> Result<bool, ConnError> {
    let (parts, mut body) = res.into_parts();
    out.clear();
    wire::push_status_line(out, parts.status);
    let mut length: Option<u64> = None;
    let mut has_date = false;
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH {
            match gw_core::headers::parse_content_length(value.as_bytes()) {
                Some(n) if length.is_none_or(|l| l == n) => {
                    if length.is_some() {
                        continue;
                    }
                    length = Some(n);
                }
                // Unusable: framed below instead.
                _ => continue,
            }
        } else if name == TRANSFER_ENCODING {
            // The framing is ours.
            continue;
        } else if name == DATE {
            has_date = true;
        } else if name == CONNECTION {
            if gw_core::headers::has_token(value, b"close") {
                close = true;
            }
            if close {
                continue;
            }
        }
        wire::push_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        date::write(out);
        out.extend_from_slice(b"\r\n");
    }
    let bodyless = wire::bodyless_status(parts.status);
    let mut framing = if head_request || bodyless {
        if head_request && length.is_none() && !bodyless {
            if let Some(n) = body.size_hint().exact() {
                wire::push_content_length(out, n);
            }
        }
        Framing::None
    } else if let Some(n) = length {
        Framing::Length(n)
    } else if let Some(n) = body.size_hint().exact() {
        wire::push_content_length(out, n);
        Framing::Length(n)
    } else {
        out.extend_from_slice(wire::CHUNKED);
        Framing::Chunked
    };
    if close {
        out.extend_from_slice(wire::CONNECTION_CLOSE);
    }
    out.extend_from_slice(b"\r\n");
    drop(parts);

    if let Framing::None = framing {
        drop(body);
        io.write_all(out).await?;
        return Ok(!close);
    }
    loop {
        // A frame at hand goes behind what is buffered; otherwise the buffer is written
        // before waiting for one.
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                if !out.is_empty() {
                    io.write_all(out).await?;
                    out.clear();
                }
                body.frame().await
            }
        };
        match frame {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    // Trailers: HTTP/1.1 answers here carry none.
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                match &mut framing {
                    Framing::Length(left) => {
                        let n = data.len() as u64;
                        if n > *left {
                            return Err("answer body longer than its content-length".into());
                        }
                        *left -= n;
                        push_data(io, out, data).await?;
                        // All of it, and the body says it is done (the upstream connection is
                        // back in its pool): no poll just to see the end.
                        if *left == 0 && body.is_end_stream() {
                            break;
                        }
                    }
                    Framing::Chunked => {
                        out.extend_from_slice(ChunkSize::new(data.len()).as_bytes());
                        push_data(io, out, data).await?;
                        out.extend_from_slice(b"\r\n");
                    }
                    Framing::None => {}
                }
            }
            Some(Err(e)) => {
                // Too late for another status: the client sees the connection end early.
                let _ = io.write_all(out).await;
                return Err(e.into());
            }
            None => break,
        }
    }
    let complete = match framing {
        Framing::Length(left) => left == 0,
        Framing::Chunked => {
            out.extend_from_slice(wire::LAST_CHUNK);
            true
        }
        Framing::None => true,
    };
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(complete && !close)
}

/// Appends a small frame to `out`; writes a large one (after `out`) as it is.
async fn push_data(io: &mut Counted<TcpStream>, out: &mut Vec<u8>, data: Bytes) -> io::Result<()> {
    if data.len() <= COPY_FRAME {
        out.extend_from_slice(&data);
        return Ok(());
    }
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    io.write_all(&data).await
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

/// The `Date` value, formatted once per second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }

    pub(super) fn write(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != secs {
                *c = (secs, httpdate::fmt_http_date(now));
            }
            out.extend_from_slice(c.1.as_bytes());
        });
    }
}

/// The loop's head parser against httparse on the same bytes: the same verdict, and for a
/// request the loop takes, the same method, target and fields in the same order.
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: HeadLimits = HeadLimits {
        line: 8192,
        head: 32 * 1024,
        headers: 100,
    };

    /// What httparse makes of `bytes`: `None` partial, `Some(Err)` malformed, else the head's
    /// length, method, target and fields.
    #[allow(clippy::type_complexity)]
    fn reference(
        bytes: &[u8],
    ) -> Option<Result<(usize, String, String, Vec<(String, Vec<u8>)>), ()>> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(bytes) {
            Ok(httparse::Status::Partial) => None,
            Err(_) => Some(Err(())),
            Ok(httparse::Status::Complete(len)) => Some(Ok((
                len,
                req.method.unwrap().to_string(),
                req.path.unwrap().to_string(),
                req.headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                    .collect(),
            ))),
        }
    }

    /// Whether the loop must leave a complete head to hyper (or refuse it).
    fn not_simple(method: &str, fields: &[(String, Vec<u8>)], bytes: &[u8]) -> bool {
        let version_11 = bytes
            .windows(10)
            .any(|w| w == b" HTTP/1.1\r" || w == b" HTTP/1.1\n");
        !version_11
            || method == "CONNECT"
            || fields.iter().any(|(n, v)| {
                (n == "content-length" && v.as_slice() != b"0")
                    || n == "transfer-encoding"
                    || n == "expect"
                    || n == "upgrade"
                    || (n == "connection"
                        && v.to_ascii_lowercase().windows(7).any(|w| w == b"upgrade"))
            })
    }

    fn head() -> impl Strategy<Value = Vec<u8>> {
        let method = prop::sample::select(vec![
            "GET", "HEAD", "POST", "DELETE", "OPTIONS", "CONNECT", "get", "PATCH", "G-T", "",
        ]);
        let target = prop::sample::select(vec![
            "/",
            "/a/b?c=d",
            "*",
            "http://h.test/x",
            "/%zz",
            "/a%20b",
            "/a\\b",
            "/é",
            "",
            "/a b",
            "//x",
            "/x#frag",
        ]);
        let version = prop::sample::select(vec![
            "HTTP/1.1",
            "HTTP/1.0",
            "HTTP/2.0",
            "HTTP/1.1 ",
            "http/1.1",
        ]);
        let name = prop::sample::select(vec![
            "Host",
            "host",
            "User-Agent",
            "Accept",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Expect",
            "Upgrade",
            "X_Under",
            "x-custom",
            "Bad Name",
            "",
            "Cookie",
        ]);
        let value = prop::sample::select(vec![
            "a",
            "0",
            "5",
            "chunked",
            "close",
            "keep-alive, Upgrade",
            "100-continue",
            "",
            " padded ",
            "v\u{7f}",
            "tab\there",
            "é",
        ]);
        let eol = prop::sample::select(vec!["\r\n", "\n"]);
        (
            method,
            target,
            version,
            prop::collection::vec((name, value, eol.clone()), 0..6),
            eol,
            any::<bool>(),
        )
            .prop_map(|(m, t, v, fields, end, whole)| {
                let mut out = format!("{m} {t} {v}\r\n").into_bytes();
                for (n, val, e) in fields {
                    out.extend_from_slice(format!("{n}: {val}{e}").as_bytes());
                }
                if whole {
                    out.extend_from_slice(end.as_bytes());
                }
                out
            })
    }

    /// A head with a few bytes changed, inserted or removed.
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        (
            head(),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..4),
        )
            .prop_map(|(mut bytes, edits)| {
                for (at, byte, kind) in edits {
                    if bytes.is_empty() {
                        break;
                    }
                    let i = at.index(bytes.len());
                    match kind {
                        0 => bytes[i] = byte,
                        1 => bytes.insert(i, byte),
                        _ => {
                            bytes.remove(i);
                        }
                    }
                }
                bytes
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn agrees_with_httparse(bytes in prop_oneof![head(), mutated()]) {
            let mut buf = BytesMut::from(&bytes[..]);
            let ours = parse(&mut buf, &LIMITS);
            match (reference(&bytes), ours) {
                (None, Parsed::Partial) => prop_assert_eq!(buf.len(), bytes.len()),
                (None, other) => prop_assert!(false, "httparse: partial; ours: {}", kind(&other)),
                (Some(Err(())), Parsed::HandOff) => prop_assert_eq!(buf.len(), bytes.len()),
                (Some(Err(())), other) => prop_assert!(false, "httparse: error; ours: {}", kind(&other)),
                (Some(Ok((len, method, target, fields))), Parsed::Simple(head)) => {
                    prop_assert!(!not_simple(&method, &fields, &bytes), "took a request for hyper");
                    prop_assert_eq!(buf.len(), bytes.len() - len, "the head is taken out");
                    let req = head.request;
                    prop_assert_eq!(req.method().as_str(), method.as_str());
                    // The http types drop a fragment (it never goes upstream).
                    let target = target.split('#').next().unwrap_or("");
                    prop_assert_eq!(req.uri().to_string(), target);
                    let got: Vec<(String, Vec<u8>)> = req
                        .headers()
                        .iter()
                        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                        .collect();
                    // HeaderMap groups repeated names; compare as multisets per name.
                    let mut want = fields.clone();
                    want.sort();
                    let mut got = got;
                    got.sort();
                    prop_assert_eq!(got, want);
                }
                (Some(Ok((_, method, _, fields))), Parsed::HandOff) => {
                    prop_assert!(
                        not_simple(&method, &fields, &bytes)
                            || Method::from_bytes(method.as_bytes()).is_err()
                            || fields.iter().any(|(n, _)| HeaderName::from_bytes(n.as_bytes()).is_err()),
                        "handed off a simple request"
                    );
                    prop_assert_eq!(buf.len(), bytes.len(), "nothing taken out");
                }
                (Some(Ok(_)), Parsed::Refused(e)) => {
                    // Only a target or field value the http types refuse.
                    prop_assert_eq!(e, EdgeError::InvalidTarget);
                }
                (Some(Ok(_)), Parsed::Partial) => prop_assert!(false, "httparse: complete; ours: partial"),
            }
        }

        #[test]
        fn limits_hold_on_partial_heads(extra in 0usize..20_000, fields in 0usize..150) {
            let small = HeadLimits { line: 256, head: 1024, headers: 10 };
            let mut bytes = format!("GET /{} HTTP/1.1\r\nHost: h\r\n", "a".repeat(extra)).into_bytes();
            for i in 0..fields {
                bytes.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
            }
            let line = extra + 16;
            let mut buf = BytesMut::from(&bytes[..]);
            match parse(&mut buf, &small) {
                Parsed::Refused(EdgeError::UriTooLong) => prop_assert!(line > small.line),
                Parsed::Refused(EdgeError::HeadTooLarge) => {
                    prop_assert!(line <= small.line, "the line is judged first");
                    prop_assert!(bytes.len() > small.head || fields + 1 > small.headers);
                }
                Parsed::Partial => {
                    prop_assert!(line <= small.line && bytes.len() <= small.head);
                }
                other => prop_assert!(false, "{}", kind(&other)),
            }
        }
    }

    fn kind(p: &Parsed) -> &'static str {
        match p {
            Parsed::Partial => "partial",
            Parsed::Simple(_) => "simple",
            Parsed::Refused(_) => "refused",
            Parsed::HandOff => "hand-off",
        }
    }
}
