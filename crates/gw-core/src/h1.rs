//! The HTTP/1.1 wire format as the gateway's own codecs write and read it: the server loop
//! for plain client connections (`gateway-bin`'s `listener/http1`) and the upstream client
//! (`gw-proxy`'s `h1`). One copy of each piece both need.
//!
//! Sans-I/O: bytes in, bytes out. The sockets, buffers' lifetimes and policy (what is
//! forwarded, what is refused) stay with the codecs.
//!
//! - Field names: [`field_name`], the common names matched on their bytes as peers write
//!   them; [`is_chunked`], whether a `Transfer-Encoding` ends in `chunked`;
//!   [`bodyless_status`], the statuses whose answers never have a body.
//! - Writing a head: [`push_request_line`], [`push_status_line`], [`push_field`],
//!   [`push_content_length`], [`CHUNKED`], [`CONNECTION_CLOSE`].
//! - Chunked bodies: [`ChunkSize`] (a size line), [`LAST_CHUNK`]; reading them,
//!   [`parse_chunk_size`] and [`ChunkedDecoder`].
//!
//! Everything here is on the path of every request: nothing allocates (but the `Bytes` a
//! decoder hands out, which share the read buffer), and the small functions are `#[inline]`
//! so that they inline across crates.
//!
//! ```
//! use gw_core::h1::{self, ChunkSize};
//! use http::StatusCode;
//!
//! let mut out = Vec::new();
//! h1::push_status_line(&mut out, StatusCode::OK);
//! h1::push_field(&mut out, b"content-type", b"text/plain");
//! out.extend_from_slice(h1::CHUNKED);
//! out.extend_from_slice(b"\r\n");
//! out.extend_from_slice(ChunkSize::new(5).as_bytes());
//! out.extend_from_slice(b"hello\r\n");
//! out.extend_from_slice(h1::LAST_CHUNK);
//! assert_eq!(
//!     out,
//!     b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n\
//!       5\r\nhello\r\n0\r\n\r\n"
//! );
//! ```

use bytes::{Bytes, BytesMut};
use http::header::{
    HeaderName, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CACHE_CONTROL, CONNECTION,
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, DATE, ETAG, HOST, LAST_MODIFIED,
    SERVER, TRANSFER_ENCODING, USER_AGENT, VARY,
};
use http::{Method, StatusCode};

// ---------------------------------------------------------------------------------------
// Field names.
// ---------------------------------------------------------------------------------------

/// A field name as it arrived, and whether it is one of the common names known here (of
/// which only `Connection` and `Transfer-Encoding` are hop-by-hop); `None` when it is not a
/// valid name. The result is always `HeaderName::from_bytes(raw)`.
///
/// The common request and answer fields, as clients and servers write them (Title-Case or
/// lower case), are matched on their bytes, by length first: `HeaderName::from_bytes` folds
/// every byte's case through a table before matching (~120 instructions per field). Any
/// other spelling, or name, goes through `from_bytes`.
#[inline]
pub fn field_name(raw: &[u8]) -> Option<(HeaderName, bool)> {
    let known = match raw.len() {
        4 => match raw {
            b"Host" | b"host" => HOST,
            b"Date" | b"date" => DATE,
            b"Vary" | b"vary" => VARY,
            b"ETag" | b"etag" => ETAG,
            _ => return other_name(raw),
        },
        6 => match raw {
            b"Accept" | b"accept" => ACCEPT,
            b"Cookie" | b"cookie" => COOKIE,
            b"Server" | b"server" => SERVER,
            _ => return other_name(raw),
        },
        10 => match raw {
            b"User-Agent" | b"user-agent" => USER_AGENT,
            b"Connection" | b"connection" => CONNECTION,
            _ => return other_name(raw),
        },
        12 => match raw {
            b"Content-Type" | b"content-type" => CONTENT_TYPE,
            _ => return other_name(raw),
        },
        13 => match raw {
            b"Authorization" | b"authorization" => AUTHORIZATION,
            b"Cache-Control" | b"cache-control" => CACHE_CONTROL,
            b"Last-Modified" | b"last-modified" => LAST_MODIFIED,
            _ => return other_name(raw),
        },
        14 => match raw {
            b"Content-Length" | b"content-length" => CONTENT_LENGTH,
            _ => return other_name(raw),
        },
        15 => match raw {
            b"Accept-Encoding" | b"accept-encoding" => ACCEPT_ENCODING,
            _ => return other_name(raw),
        },
        16 => match raw {
            b"Content-Encoding" | b"content-encoding" => CONTENT_ENCODING,
            _ => return other_name(raw),
        },
        17 => match raw {
            b"Transfer-Encoding" | b"transfer-encoding" => TRANSFER_ENCODING,
            _ => return other_name(raw),
        },
        _ => return other_name(raw),
    };
    Some((known, true))
}

/// Any other name, through `HeaderName::from_bytes` (kept out of line: it is the slow path).
#[inline(never)]
fn other_name(raw: &[u8]) -> Option<(HeaderName, bool)> {
    HeaderName::from_bytes(raw).ok().map(|n| (n, false))
}

/// Whether a `Transfer-Encoding` value has `chunked` as its final coding (the only case in
/// which chunked framing applies, RFC 9112 §6.3), compared without regard to case.
#[inline]
pub fn is_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Whether an answer with this status never has a body: `1xx`, `204`, `304`.
#[inline]
pub fn bodyless_status(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

// ---------------------------------------------------------------------------------------
// Writing a head.
// ---------------------------------------------------------------------------------------

/// `transfer-encoding: chunked`, a whole field line.
pub const CHUNKED: &[u8] = b"transfer-encoding: chunked\r\n";

/// `connection: close`, a whole field line.
pub const CONNECTION_CLOSE: &[u8] = b"connection: close\r\n";

/// `{method} {target} HTTP/1.1` and its CRLF.
#[inline]
pub fn push_request_line(out: &mut Vec<u8>, method: &Method, target: &str) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// `HTTP/1.1 {code} {reason}` and its CRLF (an unknown code has an empty reason).
#[inline]
pub fn push_status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One field line, `{name}: {value}` and its CRLF.
#[inline]
pub fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `content-length: {n}`, a whole field line.
#[inline]
pub fn push_content_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

// ---------------------------------------------------------------------------------------
// Chunked bodies.
// ---------------------------------------------------------------------------------------

/// The last chunk of a chunked body, with no trailer fields, and the empty line that ends it.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The size line in front of a chunk: `{n:x}` and its CRLF, built on the stack.
#[derive(Clone, Copy, Debug)]
pub struct ChunkSize {
    bytes: [u8; 18],
    start: usize,
}

impl ChunkSize {
    /// The size line of a chunk of `n` bytes (lower-case hexadecimal, no leading zeros).
    #[inline]
    pub fn new(mut n: usize) -> ChunkSize {
        // 16 hexadecimal digits hold a 64-bit size.
        let mut bytes = [0u8; 18];
        bytes[16] = b'\r';
        bytes[17] = b'\n';
        let mut start = 16;
        loop {
            start -= 1;
            bytes[start] = b"0123456789abcdef"[n & 0xf];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        ChunkSize { bytes, start }
    }

    /// The line's bytes, CRLF included.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// The hexadecimal size at the start of a chunk-size line without its CRLF (extensions after
/// `;` ignored, spaces and tabs around the digits allowed); `None` when it is not a size, or
/// has more than 15 digits (no overflow).
#[inline]
pub fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n = 0u64;
    for &d in digits {
        let v = (d as char).to_digit(16)? as u64;
        n = (n << 4) | v;
    }
    Some(n)
}

/// What [`ChunkedDecoder::decode`] found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Chunk data (never empty), taken out of the buffer without a copy.
    Data(Bytes),
    /// The body ended: the last chunk and its trailer section were taken out (the trailer
    /// fields are dropped). Whatever follows in the buffer is the next message.
    End,
    /// The buffer holds no more data nor a whole line: read more bytes into it and ask
    /// again.
    More,
}

/// Decodes a chunked body from a read buffer, taking each chunk's data out as it comes (so
/// a large chunk is passed on in the pieces the socket delivers) and the framing lines as
/// they complete. Small and `Copy`: it is the state between two reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkedDecoder(Chunk);

/// Where a chunked decoder is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Chunk {
    /// Expecting a size line.
    #[default]
    Size,
    /// Inside a chunk's data, this much left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one.
    Trailers,
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    #[inline]
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder(Chunk::Size)
    }

    /// Takes what it can from the start of `buf`: data, the end of the body, or nothing
    /// yet. A framing line still without its CRLF when `buf` holds more than `max_line`
    /// bytes is an error, as is a size line that is not one or chunk data not followed by
    /// CRLF; the error says which.
    pub fn decode(&mut self, buf: &mut BytesMut, max_line: usize) -> Result<Decoded, &'static str> {
        loop {
            match self.0 {
                Chunk::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.0 = if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                state => {
                    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                        if buf.len() > max_line {
                            return Err("chunk line too long");
                        }
                        return Ok(Decoded::More);
                    };
                    let line = buf.split_to(end + 2);
                    let line = &line[..end];
                    match state {
                        Chunk::Size => match parse_chunk_size(line) {
                            Some(0) => self.0 = Chunk::Trailers,
                            Some(n) => self.0 = Chunk::Data(n),
                            None => return Err("invalid chunk size"),
                        },
                        Chunk::DataEnd if line.is_empty() => self.0 = Chunk::Size,
                        Chunk::DataEnd => return Err("missing CRLF after chunk"),
                        _ if line.is_empty() => return Ok(Decoded::End),
                        // A trailer field: dropped.
                        _ => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_what_from_bytes_makes() {
        for raw in [
            "Host",
            "host",
            "HOST",
            "User-Agent",
            "Accept",
            "Authorization",
            "Accept-Encoding",
            "Cookie",
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
            "X-Custom",
            "x-custom",
            "Set-Cookie",
            "Hosx",
        ] {
            let (name, common) = field_name(raw.as_bytes()).unwrap();
            assert_eq!(
                name,
                HeaderName::from_bytes(raw.as_bytes()).unwrap(),
                "{raw}"
            );
            // Only Title-Case and lower case are in the table.
            assert_eq!(
                common,
                !matches!(
                    raw,
                    "HOST" | "X-Custom" | "x-custom" | "Set-Cookie" | "Hosx"
                ),
                "{raw}"
            );
        }
        assert_eq!(field_name(b"bad name"), None);
        assert_eq!(field_name(b""), None);
        assert_eq!(field_name(b"Content-Length:"), None);
    }

    #[test]
    fn transfer_codings() {
        assert!(is_chunked(b"chunked"));
        assert!(is_chunked(b"gzip, Chunked "));
        assert!(!is_chunked(b"chunked, gzip"));
        assert!(!is_chunked(b""));
        assert!(!is_chunked(b"gzip,"));
    }

    #[test]
    fn bodyless_statuses() {
        for code in [100, 101, 103, 204, 304] {
            assert!(
                bodyless_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
        for code in [200, 201, 206, 301, 404, 500] {
            assert!(
                !bodyless_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
    }

    #[test]
    fn heads() {
        let mut out = Vec::new();
        push_request_line(&mut out, &Method::POST, "/a?b=1");
        push_field(&mut out, b"host", b"example");
        push_content_length(&mut out, 3);
        out.extend_from_slice(CONNECTION_CLOSE);
        assert_eq!(
            out,
            b"POST /a?b=1 HTTP/1.1\r\nhost: example\r\ncontent-length: 3\r\nconnection: close\r\n"
        );
        out.clear();
        push_status_line(&mut out, StatusCode::NOT_FOUND);
        push_status_line(&mut out, StatusCode::from_u16(599).unwrap());
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\nHTTP/1.1 599 \r\n");
    }

    #[test]
    fn chunk_size_lines() {
        assert_eq!(ChunkSize::new(0x1a2b).as_bytes(), b"1a2b\r\n");
        assert_eq!(ChunkSize::new(0).as_bytes(), b"0\r\n");
        assert_eq!(
            ChunkSize::new(usize::MAX).as_bytes(),
            format!("{:x}\r\n", usize::MAX).as_bytes()
        );
        for n in [1usize, 15, 16, 255, 4096, 1 << 40] {
            assert_eq!(
                ChunkSize::new(n).as_bytes(),
                format!("{n:x}\r\n").as_bytes()
            );
            let line = ChunkSize::new(n);
            let line = line.as_bytes();
            assert_eq!(parse_chunk_size(&line[..line.len() - 2]), Some(n as u64));
        }
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"ff"), Some(255));
        assert_eq!(parse_chunk_size(b"10;ext=1"), Some(16));
        assert_eq!(parse_chunk_size(b" A \t"), Some(10));
        assert_eq!(
            parse_chunk_size(b"fffffffffffffff"),
            Some(0xfff_ffff_ffff_ffff)
        );
        assert_eq!(parse_chunk_size(b"1000000000000000"), None);
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"zz"), None);
        assert_eq!(parse_chunk_size(b"-1"), None);
    }

    /// Decodes `input` fed in pieces of `step` bytes: the data, and what followed the body.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut rest = input;
        loop {
            match dec.decode(&mut buf, 64)? {
                Decoded::Data(d) => {
                    assert!(!d.is_empty());
                    data.extend_from_slice(&d);
                }
                Decoded::End => return Ok((data, buf.to_vec())),
                Decoded::More => {
                    if rest.is_empty() {
                        return Err("incomplete");
                    }
                    let n = step.min(rest.len());
                    buf.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                }
            }
        }
    }

    #[test]
    fn decodes_chunked_bodies_in_any_pieces() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (data, rest) = decode_in_steps(body, step).unwrap();
            assert_eq!(data, b"hello, world", "step {step}");
            // Only what arrived with the end is left; the next message starts there.
            assert!(b"NEXT".starts_with(&rest), "step {step}");
        }
        assert_eq!(
            decode_in_steps(b"0\r\n\r\n", 1).unwrap(),
            (Vec::new(), Vec::new())
        );
        assert_eq!(decode_in_steps(b"zz\r\n", 10), Err("invalid chunk size"));
        assert_eq!(
            decode_in_steps(b"2\r\nabX\r\n", 10),
            Err("missing CRLF after chunk")
        );
        let long = [b'1'; 100];
        assert_eq!(decode_in_steps(&long, 100), Err("chunk line too long"));
        assert_eq!(decode_in_steps(b"5\r\nhel", 2), Err("incomplete"));
    }
}
