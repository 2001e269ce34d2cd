//! A request head, parsed from the connection's bytes straight into an `http::Request`
//! ([`parse`]): the head limits (414/431) judged on its bytes as they arrive, and what makes
//! a request the loop's own (no body, no upgrade, no `Expect`, HTTP/1.1) or hyper's.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use gw_core::h1 as wire;
use gw_core::Body;
use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, Method, Request, Uri, Version};

use gw_edge::EdgeError;

/// Most fields in a request head parsed here; a head with more goes to hyper when the
/// configured limit allows more (hyper's parser is given that limit), else it is refused.
pub(super) const MAX_HEADERS: usize = 100;

/// What a request head asks of the loop.
pub(super) struct Head {
    pub(super) request: Request<Body>,
    /// The client wants the connection kept.
    pub(super) keep_alive: bool,
    /// A `HEAD` request: the answer has no body.
    pub(super) head: bool,
}

// Returned once per request and taken apart at once: boxing `Simple` would cost an
// allocation per request.
#[allow(clippy::large_enum_variant)]
pub(super) enum Parsed {
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

/// Parses the request head at the start of `buf`, within `limits`.
pub(super) fn parse(buf: &mut BytesMut, limits: &HeadLimits) -> Parsed {
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
