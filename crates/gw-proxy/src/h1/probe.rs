//! The answer-head and chunk-size parsers of [`super`] with public types, for the property
//! tests and fuzz targets (not part of the crate's API).

use bytes::BytesMut;
use http::{Method, Response};

use super::{parse_head, H1Error};

/// An answer head as the HTTP/1.1 client parsed it.
#[derive(Debug)]
pub struct ParsedHead {
    /// Bytes the head took at the start of the input.
    pub len: usize,
    /// Status, version and the fields passed on (those that concern only the upstream
    /// connection are left out).
    pub response: Response<()>,
    /// How the body is framed: `Empty`, `Length(n)`, `Chunked`, `Eof` or `Upgrade`.
    pub framing: String,
    /// The connection can take another request after the body.
    pub keep_alive: bool,
    /// No hop-by-hop field is left in the fields.
    pub hop_clean: bool,
}

/// Parses the answer head at the start of `bytes` (to a `HEAD` request when
/// `head_request`): `Ok(None)` when more bytes are needed, `Err` with the reason when the
/// client refuses it.
pub fn parse_response_head(
    bytes: &[u8],
    head_request: bool,
) -> Result<Option<ParsedHead>, &'static str> {
    let mut buf = BytesMut::from(bytes);
    let method = if head_request {
        Method::HEAD
    } else {
        Method::GET
    };
    let head = match parse_head(&mut buf, &method) {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(None),
        Err(H1Error::Parse(why)) => return Err(why),
        Err(_) => return Err("not a parse error"),
    };
    let mut response = Response::new(());
    *response.status_mut() = head.status;
    *response.version_mut() = head.version;
    *response.headers_mut() = head.headers;
    Ok(Some(ParsedHead {
        len: bytes.len() - buf.len(),
        response,
        framing: format!("{:?}", head.framing),
        keep_alive: head.keep_alive,
        hop_clean: head.hop_clean,
    }))
}

/// The size a chunk-size line (without its CRLF) announces; `None` when it is invalid.
pub fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    gw_core::h1::parse_chunk_size(line)
}
