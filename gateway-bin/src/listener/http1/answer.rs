//! Writing an answer to the client: the status line and fields, then the body framed by
//! `Content-Length` or chunked, a body frame at hand going out in the same `write` as the
//! head ([`write_response`]); the `Date` value cached per second.

use std::io;

use bytes::Bytes;
use futures_util::FutureExt;
use gw_core::h1::{self as wire, ChunkSize};
use gw_core::Body;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::Response;
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::ConnError;
use crate::listener::deadline::Counted;

/// Body frames up to this size are copied behind the head (one `write`); larger ones are
/// written as they are.
const COPY_FRAME: usize = 16 * 1024;

/// How an answer's body is framed on the wire.
enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length`: this many bytes are still to come.
    Length(u64),
    Chunked,
}

/// Writes `res` to the client. Returns whether the connection can take another request.
pub(super) async fn write_response(
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
