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
//!
//! Here: the connection ([`Conn`]), the exchange's types and [`send`]; `request`: encoding
//! the request's head and body; `response`: parsing the answer's head and reading its body
//! ([`H1Body`]); `probe`: the parsers and the client for property tests, fuzzing and the
//! benchmark.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gw_core::h1::ChunkedDecoder;
use gw_core::BoxError;
use http::header::UPGRADE;
use http::{HeaderMap, Method, Response, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::forwarded::AddedFields;
use crate::pool::HostPool;
use crate::timer::{within, Elapsed};
use crate::upload::{deadline, later, ReqBody};

use self::request::{encode_head, write_body, BodyWrite, ReqFraming};
pub(crate) use self::response::H1Body;
use self::response::{read_head, Head, RespFraming, State};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Request bodies up to this size go out in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;

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
    // `inline`: the head is the whole request. An empty body (a GET) has nothing more to
    // write: no body future, no timer poll, no clock read for it.
    let mut inline = false;
    match &body {
        ReqBody::Full(Some(bytes)) if bytes.len() <= INLINE_BODY => {
            out.extend_from_slice(bytes);
            inline = true;
        }
        ReqBody::Full(None) => inline = framing == ReqFraming::Length,
        _ => {}
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

mod request;
mod response;

// For the property tests and fuzz targets.
#[doc(hidden)]
pub mod probe;

#[cfg(test)]
mod tests;
