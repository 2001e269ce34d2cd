//! Reading the answer: its head (parsed into fields passed on, and the body's framing and
//! keep-alive decided from it) and its body ([`H1Body`], which gives the connection back to
//! its pool at the end).

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use gw_core::h1::{self as wire, field_name, ChunkedDecoder, Decoded};
use gw_core::BoxError;
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

use super::{Conn, H1Error, PoolSlot};
use crate::forwarded::{has_token, hop_by_hop_bit, names_other_fields, HOP_OTHER};

/// Largest response head accepted (status line and headers).
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a response head.
const MAX_HEADERS: usize = 128;

/// How the answer's body is framed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum RespFraming {
    Empty,
    Length(u64),
    Chunked,
    Eof,
    Upgrade,
}

/// A parsed answer head.
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    pub(super) headers: HeaderMap,
    pub(super) framing: RespFraming,
    pub(super) keep_alive: bool,
    /// No hop-by-hop header is left in `headers` (see [`parse_head`]).
    pub(super) hop_clean: bool,
}

/// Reads and parses one response head. On error, also whether any byte of it had arrived.
pub(super) async fn read_head(conn: &mut Conn, method: &Method) -> Result<Head, (H1Error, bool)> {
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
pub(super) fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, H1Error> {
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

/// Where reading an answer's body stands.
#[derive(Debug)]
pub(super) enum State {
    Length(u64),
    Chunked(ChunkedDecoder),
    Eof,
    Upgraded,
    Done,
}

/// The body of an upstream answer, read from its connection; at its end the connection goes
/// back to its pool (when the answer allows keep-alive).
pub(crate) struct H1Body {
    pub(super) conn: Option<Box<Conn>>,
    pub(super) state: State,
    pub(super) keep_alive: bool,
    pub(super) slot: Option<PoolSlot>,
    pub(super) hop_clean: bool,
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

    /// Ends the body: the connection goes back to its pool when the answer allows it.
    pub(super) fn finish(&mut self) {
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
