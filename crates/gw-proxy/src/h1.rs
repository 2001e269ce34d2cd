//! HTTP/1.1 to upstreams, driven inside the request's own task.
//!
//! hyper's client connection runs in a task of its own: every request crosses two channels
//! (request in, response out) and wakes two tasks, and the connection task parses and encodes
//! on its own poll. A proxy does not need that: the request's future writes the head (and a
//! small body) in one `write`, reads the answer's head into the connection's buffer, and the
//! response body reads the rest from the same socket, then puts the connection back into its
//! instance's pool. No task, no channel, no extra wake-up per request.
//!
//! What it handles: `Content-Length`, chunked and close-delimited bodies both ways (a request
//! body of unknown length is sent chunked), interim `1xx` answers (skipped), answers without a
//! body (HEAD, 204, 304), keep-alive per RFC 9112 §9.3, `101 Switching Protocols` to a
//! request that asked for an upgrade (the socket is handed to the caller; to any other
//! request it is an error, and the connection is closed), trailers of chunked answers (read and dropped).
//!
//! The wire format (field names, the request line and fields, chunk size lines, the chunked
//! decoder) is [`gw_core::h1`]'s, which the gateway's server loop uses too.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gw_core::h1::{self as wire, field_name, ChunkSize, ChunkedDecoder, Decoded};
use gw_core::BoxError;
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, Method, Response, StatusCode, Version};
use http_body::{Body as _, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::body::{deadline, later, ReqBody};
use crate::forwarded::{has_token, hop_by_hop_bit, names_other_fields, AddedFields, HOP_OTHER};
use crate::pool::HostPool;
use crate::timer::{within, Elapsed};

/// Largest response head accepted (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a response head.
const MAX_HEADERS: usize = 128;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Request bodies up to this size go out in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;
/// Request body frames up to this size are copied into the write buffer (a run of them goes
/// out in one write); larger ones are written as they are.
const COPY_FRAME: usize = 16 * 1024;

/// One keep-alive connection to an instance: the socket and what was read past the last
/// message (nothing, for a well-behaved upstream).
pub(crate) struct Conn {
    io: TcpStream,
    buf: BytesMut,
    wbuf: Vec<u8>,
    /// The head-wait timer of the last request, kept registered for the next one.
    timer: Option<Pin<Box<Sleep>>>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.io.peer_addr().ok())
            .finish()
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum H1Error {
    /// Reading or writing the socket failed.
    #[error("upstream connection: {0}")]
    Io(#[from] io::Error),
    /// The upstream closed the connection before a complete answer.
    #[error("upstream closed the connection before the response was complete")]
    Closed,
    /// The answer is not valid HTTP/1.x.
    #[error("invalid response from upstream: {0}")]
    Parse(&'static str),
    /// The request body failed (the client's body could not be read, or it went over the
    /// limit).
    #[error("request body: {0}")]
    Body(#[source] BoxError),
    /// Sending the request took longer than `send`, or the answer's head longer than `read`.
    #[error("upstream timed out")]
    TimedOut,
}

impl H1Error {
    /// Whether it failed before any byte of an answer arrived on a reused connection, which
    /// then was closed by the upstream while idle: sending again on a new one is safe for a
    /// request whose body can be sent again.
    fn stale(&self) -> bool {
        match self {
            H1Error::Closed => true,
            H1Error::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

impl Conn {
    pub(crate) fn new(io: TcpStream) -> Box<Conn> {
        Box::new(Conn {
            io,
            buf: BytesMut::new(),
            wbuf: Vec::new(),
            timer: None,
        })
    }

    /// The timer the previous request left, to be reset for this one.
    pub(crate) fn take_timer(&mut self) -> Option<Pin<Box<Sleep>>> {
        self.timer.take()
    }

    /// Whether an idle connection can take a request: the upstream has neither closed it
    /// nor sent anything unasked. Costs no system call unless the socket became readable.
    pub(crate) fn usable(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// The socket and the bytes read past the `101` answer (the start of the new protocol).
    pub(crate) fn into_upgraded(self) -> (TcpStream, Bytes) {
        let Conn { io, buf, .. } = self;
        (io, buf.freeze())
    }

    /// Reads more bytes into the buffer: `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

/// Where a response goes back to when its body was read to the end.
pub(crate) struct PoolSlot {
    pub(crate) pool: Arc<HostPool<Conn>>,
    pub(crate) max_idle: usize,
    pub(crate) idle_timeout: Duration,
}

/// The head of an HTTP/1.1 request to send, borrowed: a retry sends it again. The body goes
/// beside it.
#[derive(Clone, Copy)]
pub(crate) struct H1Head<'a> {
    pub(crate) method: &'a Method,
    /// The request target, origin-form.
    pub(crate) target: &'a str,
    pub(crate) headers: &'a HeaderMap,
    /// Fields written after `headers`.
    pub(crate) added: &'a AddedFields,
}

/// When the phases of one exchange end: the upload `send` after `ready` (the connection's
/// readiness), the wait for the answer's head `read` after the request was sent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Phases {
    pub(crate) ready: tokio::time::Instant,
    pub(crate) send: Duration,
    pub(crate) read: Duration,
}

/// `fut` within `due` on `timer`; expiry is [`H1Error::TimedOut`].
async fn timed<T, F: Future<Output = T>>(
    timer: Pin<&mut Sleep>,
    due: tokio::time::Instant,
    fut: F,
) -> Result<T, (H1Error, Option<ReqBody>)> {
    within(timer, due, fut)
        .await
        .map_err(|Elapsed| (H1Error::TimedOut, None))
}

/// Sends `head` and `body` on `conn` and reads the answer's head, each within its phase's
/// timeout on `timer` (which must not be set later than `ready + min(send, read)`). On
/// failure, the error and whether the request may be sent again on another connection
/// (nothing was answered and the body, which is handed back, can be replayed).
pub(crate) async fn send(
    mut conn: Box<Conn>,
    head: H1Head<'_>,
    mut body: ReqBody,
    reused: bool,
    slot: PoolSlot,
    mut timer: Pin<&mut Sleep>,
    phases: Phases,
) -> Result<Response<H1Body>, (H1Error, Option<ReqBody>)> {
    let H1Head {
        method,
        target,
        headers,
        added,
    } = head;
    let replayable = matches!(body, ReqBody::Full(_));
    let send_due = later(phases.ready, phases.send);

    // The head, and a small known body, in one write.
    let mut out = std::mem::take(&mut conn.wbuf);
    out.clear();
    let framing = encode_head(&mut out, method, target, headers, added, &body);
    let mut inline = false;
    if let ReqBody::Full(Some(bytes)) = &body {
        if bytes.len() <= INLINE_BODY {
            out.extend_from_slice(bytes);
            inline = true;
        }
    }
    // A streamed body's first frames are usually at hand already: its head waits for them
    // in the buffer and goes out in the same write (see `write_body`).
    let streamed = matches!(body, ReqBody::Stream { .. });
    let mut sent = phases.ready;
    if !streamed {
        // It nearly always goes into the socket at once: the request was then sent when the
        // connection was ready, with no timer to poll and no clock to read.
        let written = match conn.io.try_write(&out) {
            Ok(n) if n == out.len() => Ok(()),
            Ok(n) => Err(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(0),
            Err(e) => {
                conn.wbuf = out;
                return Err(write_failed(e, reused && replayable, body));
            }
        };
        if let Err(n) = written {
            let rest = timed(timer.as_mut(), send_due, conn.io.write_all(&out[n..])).await;
            let rest = match rest {
                Ok(r) => r,
                Err(e) => {
                    conn.wbuf = out;
                    return Err(e);
                }
            };
            if let Err(e) = rest {
                conn.wbuf = out;
                return Err(write_failed(e, reused && replayable, body));
            }
            sent = tokio::time::Instant::now();
        }
    }
    conn.wbuf = out;
    let mut early = None;
    if !inline {
        let written = timed(
            timer.as_mut(),
            send_due,
            write_body(&mut conn, &mut body, framing, streamed),
        )
        .await?;
        match written {
            Ok(()) => sent = tokio::time::Instant::now(),
            // The head did not go out (it was waiting for the body's first frames): as when
            // any other head fails; a streamed body cannot be sent again.
            Err(BodyWrite {
                error: H1Error::Io(e),
                head: true,
            }) => return Err(write_failed(e, false, body)),
            // An upstream may answer before it has read the whole body (413, 401) and close
            // the connection: an answer that is already in the socket is passed on.
            Err(BodyWrite {
                error: e @ H1Error::Io(_),
                ..
            }) => {
                let head = timed(
                    timer.as_mut(),
                    deadline(phases.read),
                    read_head(&mut conn, method),
                )
                .await?;
                match head {
                    Ok(mut head) if !head.status.is_informational() => {
                        head.keep_alive = false;
                        early = Some(head);
                    }
                    _ => return Err((e, None)),
                }
            }
            Err(BodyWrite { error, .. }) => return Err((error, None)),
        }
    }

    // The answer's head, `read` after the request went out; interim 1xx answers are
    // skipped, each starting a new wait.
    let mut read_due = later(sent, phases.read);
    let head = loop {
        if let Some(head) = early.take() {
            break head;
        }
        match timed(timer.as_mut(), read_due, read_head(&mut conn, method)).await? {
            Ok(head) if head.status.is_informational() && head.status != 101 => {
                read_due = deadline(phases.read);
                continue;
            }
            // A 101 to a request that asked for no upgrade: what follows on the connection
            // is not HTTP the gateway could read. 502, and the connection is dropped (closed,
            // never pooled).
            Ok(head)
                if head.status == StatusCode::SWITCHING_PROTOCOLS
                    && !headers.contains_key(UPGRADE) =>
            {
                return Err((H1Error::Parse("101 to a request without Upgrade"), None));
            }
            Ok(head) => break head,
            Err((e, answered)) => {
                let retry = reused
                    && !answered
                    && replayable
                    && e.stale()
                    && crate::retry::idempotent(method);
                return Err((e, retry.then_some(body)));
            }
        }
    };
    let Head {
        status,
        version,
        headers,
        framing,
        keep_alive,
        hop_clean,
    } = head;
    let state = match framing {
        RespFraming::Upgrade => State::Upgraded,
        RespFraming::Empty => State::Done,
        RespFraming::Length(0) => State::Done,
        RespFraming::Length(n) => State::Length(n),
        RespFraming::Chunked => State::Chunked(ChunkedDecoder::new()),
        RespFraming::Eof => State::Eof,
    };
    let mut body = H1Body {
        conn: Some(conn),
        state,
        keep_alive: keep_alive && framing != RespFraming::Eof,
        slot: Some(slot),
        hop_clean,
    };
    if matches!(body.state, State::Done) {
        body.finish();
    }
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.version_mut() = version;
    *res.headers_mut() = headers;
    Ok(res)
}

/// A failed write of the request's head: the request may go again on another connection
/// when the upstream had closed this one while it was idle.
#[cold]
fn write_failed(e: io::Error, replayable: bool, body: ReqBody) -> (H1Error, Option<ReqBody>) {
    let e = H1Error::Io(e);
    let again = (replayable && e.stale()).then_some(body);
    (e, again)
}

/// How the request body is framed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ReqFraming {
    Length,
    Chunked,
}

fn encode_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    added: &AddedFields,
    body: &ReqBody,
) -> ReqFraming {
    wire::push_request_line(out, method, target);
    let mut has_length = false;
    for (name, value) in headers {
        if name == CONTENT_LENGTH {
            has_length = true;
        } else if name == TRANSFER_ENCODING {
            // Hop-by-hop: the framing below is ours.
            continue;
        }
        wire::push_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    added.encode(out);
    let framing = if has_length {
        ReqFraming::Length
    } else if let Some(n) = body.size_hint().exact() {
        let bodyless = matches!(
            *method,
            Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::CONNECT
        );
        if n > 0 || !bodyless {
            wire::push_content_length(out, n);
        }
        ReqFraming::Length
    } else {
        out.extend_from_slice(wire::CHUNKED);
        ReqFraming::Chunked
    };
    out.extend_from_slice(b"\r\n");
    framing
}

/// Why writing a request body failed, and whether its head, which was waiting in the buffer
/// for the first frames, was not written.
struct BodyWrite {
    error: H1Error,
    head: bool,
}

/// Writes the request body after its head (`head_waiting`: the head is still in the
/// connection's write buffer). Frames at hand are gathered in that buffer and go out in one
/// `write` (a chunked body's size lines and CRLFs with them); the buffer is written before
/// waiting for the next frame, so nothing is held back while the client's body is slow.
async fn write_body(
    conn: &mut Conn,
    body: &mut ReqBody,
    framing: ReqFraming,
    head_waiting: bool,
) -> Result<(), BodyWrite> {
    let mut out = std::mem::take(&mut conn.wbuf);
    if !head_waiting {
        out.clear();
    }
    let mut head = head_waiting;
    let written = write_frames(&mut conn.io, &mut out, body, framing, &mut head).await;
    out.clear();
    conn.wbuf = out;
    written.map_err(|error| BodyWrite { error, head })
}

async fn write_frames(
    io: &mut TcpStream,
    out: &mut Vec<u8>,
    body: &mut ReqBody,
    framing: ReqFraming,
    head: &mut bool,
) -> Result<(), H1Error> {
    let chunked = framing == ReqFraming::Chunked;
    let mut body = Pin::new(body);
    loop {
        let frame = match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                flush(io, out, head).await?;
                poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        let frame = match frame {
            None => break,
            Some(Err(e)) => {
                // What was read of the body before (and the head) goes out, as when each
                // frame was written on its own.
                let _ = flush(io, out, head).await;
                return Err(H1Error::Body(e));
            }
            Some(Ok(frame)) => frame,
        };
        let Ok(mut data) = frame.into_data() else {
            // Trailers of the request are not forwarded over HTTP/1.1.
            continue;
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            out.extend_from_slice(ChunkSize::new(data.len()).as_bytes());
        }
        if data.len() <= COPY_FRAME {
            out.extend_from_slice(&data);
        } else {
            flush(io, out, head).await?;
            io.write_all_buf(&mut data).await?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= COPY_FRAME {
            flush(io, out, head).await?;
        }
    }
    if chunked {
        out.extend_from_slice(wire::LAST_CHUNK);
    }
    flush(io, out, head).await?;
    Ok(())
}

/// Writes what `out` holds, and empties it; `head` turns false once it is written.
async fn flush(io: &mut TcpStream, out: &mut Vec<u8>, head: &mut bool) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
        *head = false;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RespFraming {
    Empty,
    Length(u64),
    Chunked,
    Eof,
    Upgrade,
}

struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    framing: RespFraming,
    keep_alive: bool,
    /// No hop-by-hop header is left in `headers` (see [`parse_head`]).
    hop_clean: bool,
}

/// Reads and parses one response head. On error, also whether any byte of it had arrived.
async fn read_head(conn: &mut Conn, method: &Method) -> Result<Head, (H1Error, bool)> {
    loop {
        if !conn.buf.is_empty() {
            match parse_head(&mut conn.buf, method) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) if conn.buf.len() > MAX_HEAD => {
                    return Err((H1Error::Parse("response head too large"), true))
                }
                Ok(None) => {}
                Err(e) => return Err((e, true)),
            }
        }
        let answered = !conn.buf.is_empty();
        match poll_fn(|cx| conn.poll_fill(cx)).await {
            Ok(0) => return Err((H1Error::Closed, answered)),
            Ok(_) => {}
            Err(e) => return Err((H1Error::Io(e), answered)),
        }
    }
}

/// Parses a complete head at the start of `buf` (taking it out), `None` when more is needed.
fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, H1Error> {
    // Uninitialised slots: filling 128 empty ones (4 KiB) per answer costs more than
    // parsing a short head.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(H1Error::Parse("too many headers")),
        Err(_) => return Err(H1Error::Parse("malformed status line or header")),
    };
    let code = res.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| H1Error::Parse("invalid status code"))?;
    let version = if res.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let count = res.headers.len();
    // Field values are slices of the head: no copy, one reference count.
    let ranges: smallvec::SmallVec<[(usize, usize, usize, usize); 16]> = {
        let base = buf.as_ptr() as usize;
        res.headers
            .iter()
            .map(|h| {
                let n = h.name.as_ptr() as usize - base;
                let v = h.value.as_ptr() as usize - base;
                (n, h.name.len(), v, h.value.len())
            })
            .collect()
    };
    let head = buf.split_to(len).freeze();
    // Room for what the gateway adds on the way back (request id, X-Gateway, route and
    // rate-limit headers), so the map is not grown and rehashed per request.
    let mut headers = HeaderMap::with_capacity(count + 8);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut encoded = false;
    let (mut saw_close, mut saw_keep_alive) = (false, false);
    let mut upgrade = false;
    // Hop-by-hop fields that only concern this connection are used here and not kept:
    // `Transfer-Encoding` (the framing is decoded here), `Keep-Alive`, `Proxy-*`, and a
    // `Connection` naming no other field. Whatever else is hop-by-hop stays for
    // `strip_hop_by_hop`; a 101 keeps its `Connection` for the client.
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut hop_clean = true;
    for &(n, nl, v, vl) in &ranges {
        let (name, common) =
            field_name(&head[n..n + nl]).ok_or(H1Error::Parse("invalid header name"))?;
        // The fields used here and not passed on are read as bytes: no value is built.
        let raw = &head[v..v + vl];
        if name == CONTENT_LENGTH {
            let n = gw_core::headers::parse_content_length(raw)
                .ok_or(H1Error::Parse("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(H1Error::Parse("conflicting content-length"));
            }
            length = Some(n);
        } else if name == TRANSFER_ENCODING {
            // Chunked only when it is the final coding.
            chunked = wire::is_chunked(raw);
            // Any Transfer-Encoding field means the body is encoded: one that names no
            // coding (empty, or an empty last element) is not valid, and is read as an
            // unknown coding (until the upstream closes), never as absent.
            encoded = true;
            continue;
        } else if name == CONNECTION {
            // `close` in any Connection field wins (RFC 9112 §9.6).
            saw_close |= has_token(raw, b"close");
            saw_keep_alive |= has_token(raw, b"keep-alive");
            upgrade |= has_token(raw, b"upgrade");
            if !switching && !names_other_fields(raw) {
                continue;
            }
            hop_clean = false;
        } else if !common {
            match hop_by_hop_bit(&name) {
                0 => {}
                HOP_OTHER if !switching => continue,
                _ => hop_clean = false,
            }
        }
        let value = HeaderValue::from_maybe_shared(head.slice(v..v + vl))
            .map_err(|_| H1Error::Parse("invalid header value"))?;
        headers.append(name, value);
    }
    let framing = if status == StatusCode::SWITCHING_PROTOCOLS {
        if !upgrade {
            return Err(H1Error::Parse("101 without Connection: upgrade"));
        }
        RespFraming::Upgrade
    } else if *method == Method::HEAD || wire::bodyless_status(status) {
        RespFraming::Empty
    } else if chunked {
        RespFraming::Chunked
    } else if encoded {
        // A coding other than a final `chunked`: the body ends when the connection does,
        // whatever a Content-Length says (RFC 9112 §6.3).
        RespFraming::Eof
    } else if let Some(n) = length {
        RespFraming::Length(n)
    } else {
        RespFraming::Eof
    };
    if encoded && length.is_some() {
        // Transfer-Encoding overrides Content-Length, which an intermediary must remove
        // (RFC 9112 §6.3): the client's framing is made anew from the decoded body.
        headers.remove(CONTENT_LENGTH);
    }
    let close = saw_close || (version == Version::HTTP_10 && !saw_keep_alive);
    Ok(Some(Head {
        status,
        version,
        headers,
        framing,
        keep_alive: !close,
        hop_clean,
    }))
}

#[derive(Debug)]
enum State {
    Length(u64),
    Chunked(ChunkedDecoder),
    Eof,
    Upgraded,
    Done,
}

/// The body of an upstream answer, read from its connection; at its end the connection goes
/// back to its pool (when the answer allows keep-alive).
pub(crate) struct H1Body {
    conn: Option<Box<Conn>>,
    state: State,
    keep_alive: bool,
    slot: Option<PoolSlot>,
    hop_clean: bool,
}

impl fmt::Debug for H1Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H1Body")
            .field("state", &self.state)
            .finish()
    }
}

impl H1Body {
    /// Leaves the head-wait timer with the connection for its next request. An answer
    /// without a body has already given its connection back; the timer is dropped then.
    pub(crate) fn keep_timer(&mut self, timer: Pin<Box<Sleep>>) {
        if let Some(conn) = &mut self.conn {
            conn.timer = Some(timer);
        }
    }

    /// The answer's head holds no hop-by-hop field: `strip_hop_by_hop` has nothing to do.
    pub(crate) fn hop_clean(&self) -> bool {
        self.hop_clean
    }

    /// The connection of a `101` answer.
    pub(crate) fn upgraded(&mut self) -> Option<Box<Conn>> {
        match self.state {
            State::Upgraded => {
                self.state = State::Done;
                self.conn.take()
            }
            _ => None,
        }
    }

    fn finish(&mut self) {
        self.state = State::Done;
        let conn = self.conn.take();
        if let (Some(conn), Some(slot), true) = (conn, self.slot.take(), self.keep_alive) {
            if conn.buf.is_empty() {
                slot.pool.put(conn, slot.max_idle, slot.idle_timeout);
            }
        }
    }

    fn fail(&mut self, e: H1Error) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = State::Done;
        self.conn = None;
        Poll::Ready(Some(Err(Box::new(e))))
    }

    /// Fills the buffer when empty; `Ok(false)` at end of stream.
    fn poll_more(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, H1Error>> {
        let conn = self.conn.as_mut().expect("connection while reading");
        if !conn.buf.is_empty() {
            return Poll::Ready(Ok(true));
        }
        match ready!(conn.poll_fill(cx)) {
            Ok(0) => Poll::Ready(Ok(false)),
            Ok(_) => Poll::Ready(Ok(true)),
            Err(e) => Poll::Ready(Err(H1Error::Io(e))),
        }
    }
}

impl http_body::Body for H1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this.state {
                State::Done | State::Upgraded => return Poll::Ready(None),
                State::Length(remaining) => {
                    match ready!(this.poll_more(cx)) {
                        Ok(true) => {}
                        Ok(false) => return this.fail(H1Error::Closed),
                        Err(e) => return this.fail(e),
                    }
                    let buf = &mut this.conn.as_mut().expect("connection").buf;
                    let n = (buf.len() as u64).min(remaining) as usize;
                    let data = buf.split_to(n).freeze();
                    let left = remaining - n as u64;
                    if left == 0 {
                        this.finish();
                    } else {
                        this.state = State::Length(left);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Eof => match ready!(this.poll_more(cx)) {
                    Ok(true) => {
                        let buf = &mut this.conn.as_mut().expect("connection").buf;
                        let data = buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(false) => {
                        this.state = State::Done;
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    Err(e) => return this.fail(e),
                },
                State::Chunked(mut decoder) => {
                    let buf = &mut this.conn.as_mut().expect("connection").buf;
                    match decoder.decode(buf, MAX_HEAD) {
                        Ok(Decoded::Data(data)) => {
                            this.state = State::Chunked(decoder);
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        Ok(Decoded::End) => {
                            this.finish();
                            return Poll::Ready(None);
                        }
                        Ok(Decoded::More) => this.state = State::Chunked(decoder),
                        Err(why) => return this.fail(H1Error::Parse(why)),
                    }
                    // Need more bytes.
                    let conn = this.conn.as_mut().expect("connection");
                    match ready!(conn.poll_fill(cx)) {
                        Ok(0) => return this.fail(H1Error::Closed),
                        Ok(_) => {}
                        Err(e) => return this.fail(H1Error::Io(e)),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Upgraded)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done | State::Upgraded => SizeHint::with_exact(0),
            State::Length(left) => SizeHint::with_exact(left),
            State::Chunked(_) | State::Eof => SizeHint::default(),
        }
    }
}

// For the property tests and fuzz targets.
#[doc(hidden)]
pub mod probe;

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderName;
    use http::Request;

    #[test]
    fn field_names_match_from_bytes() {
        for raw in [
            "Date",
            "date",
            "Server",
            "Content-Type",
            "content-length",
            "Connection",
            "Transfer-Encoding",
            "Cache-Control",
            "content-encoding",
            "ETag",
            "Last-Modified",
            "vary",
            "DATE",
            "X-Custom",
            "x-custom",
            "Set-Cookie",
        ] {
            let (name, common) = field_name(raw.as_bytes()).unwrap();
            assert_eq!(
                name,
                HeaderName::from_bytes(raw.as_bytes()).unwrap(),
                "{raw}"
            );
            if common && name != CONNECTION && name != TRANSFER_ENCODING {
                assert_eq!(hop_by_hop_bit(&name), 0, "{raw}");
            }
        }
        assert_eq!(field_name(b"bad name"), None);
        assert_eq!(field_name(b""), None);
    }

    #[test]
    fn hex_sizes() {
        let hex = |n| ChunkSize::new(n).as_bytes().to_vec();
        assert_eq!(&hex(0x1a2b)[..], b"1a2b\r\n");
        assert_eq!(&hex(0)[..], b"0\r\n");
    }

    #[test]
    fn chunk_sizes() {
        use gw_core::h1::parse_chunk_size as chunk_size;
        assert_eq!(chunk_size(b"ff"), Some(255));
        assert_eq!(chunk_size(b"10;ext=1"), Some(16));
        assert_eq!(chunk_size(b""), None);
        assert_eq!(chunk_size(b"zz"), None);
    }

    #[test]
    fn parses_heads() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello"[..],
        );
        let head = parse_head(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, RespFraming::Length(5));
        assert!(head.keep_alive);
        assert_eq!(head.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(&buf[..], b"hello");

        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"[..]);
        assert!(parse_head(&mut buf, &Method::GET).unwrap().is_none());

        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n"[..],
        );
        let head = parse_head(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.framing, RespFraming::Chunked);
        assert!(!head.keep_alive);

        let mut buf = BytesMut::from(&b"HTTP/1.0 200 OK\r\n\r\n"[..]);
        let head = parse_head(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.framing, RespFraming::Eof);
        assert!(!head.keep_alive);

        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"[..]);
        let head = parse_head(&mut buf, &Method::HEAD).unwrap().unwrap();
        assert_eq!(head.framing, RespFraming::Empty);

        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
        );
        assert!(parse_head(&mut buf, &Method::GET).is_err());
        let mut buf = BytesMut::from(&b"HTTP/1.1 2x0 OK\r\n\r\n"[..]);
        assert!(parse_head(&mut buf, &Method::GET).is_err());
    }

    #[test]
    fn encodes_heads() {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/a?b=1")
            .header("host", "example")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        let f = encode_head(
            &mut out,
            &parts.method,
            "/a?b=1",
            &parts.headers,
            &AddedFields::default(),
            &ReqBody::full(Bytes::from_static(b"abc")),
        );
        assert_eq!(f, ReqFraming::Length);
        assert_eq!(
            out,
            b"POST /a?b=1 HTTP/1.1\r\nhost: example\r\ncontent-length: 3\r\n\r\n"
        );

        let req = Request::builder().uri("/").body(()).unwrap();
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        encode_head(
            &mut out,
            &parts.method,
            "/",
            &parts.headers,
            &AddedFields::default(),
            &ReqBody::full(Bytes::new()),
        );
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
    }
}
