//! Encoding the request: the head (request line, fields, the body's framing) and the body
//! after it (a run of frames gathered into one write, chunked when its length is unknown).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use gw_core::h1::{self as wire, ChunkSize};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method};
use http_body::Body as _;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Conn, H1Error};
use crate::forwarded::AddedFields;
use crate::upload::ReqBody;

/// Request body frames up to this size are copied into the write buffer (a run of them goes
/// out in one write); larger ones are written as they are.
const COPY_FRAME: usize = 16 * 1024;

/// How the request body is framed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum ReqFraming {
    Length,
    Chunked,
}

/// Writes the request line and fields into `out`, with the body's framing (a
/// `Content-Length`, or chunked when the length is unknown); returns that framing.
pub(super) fn encode_head(
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
pub(super) struct BodyWrite {
    pub(super) error: H1Error,
    pub(super) head: bool,
}

/// Writes the request body after its head (`head_waiting`: the head is still in the
/// connection's write buffer). Frames at hand are gathered in that buffer and go out in one
/// `write` (a chunked body's size lines and CRLFs with them); the buffer is written before
/// waiting for the next frame, so nothing is held back while the client's body is slow.
pub(super) async fn write_body(
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

/// Writes the body's frames (see [`write_body`]), `head` telling whether the head is still
/// waiting in `out`.
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
