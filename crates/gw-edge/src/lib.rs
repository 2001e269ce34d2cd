//! One canonical request at the edge: what the router matches, every layer checks and the
//! upstream receives is the same request, made once, before routing.
//!
//! [`canonicalize`] takes a request as a listener parsed it and either makes it canonical in
//! place or says why it is refused ([`EdgeError`], which knows its status and message):
//!
//! | check | refused with | option ([`EdgePolicy`]) |
//! |---|---|---|
//! | request line longer than the limit | 414 `Request URI too long` | `max_request_line_bytes` |
//! | head (line + fields) larger than the limit, or too many fields | 431 `Request header fields too large` | `max_header_bytes`, `max_headers` |
//! | `CONNECT` (the gateway is not a forward proxy) | 405 `Method not allowed` | — |
//! | HTTP/1.1 without `Host`, two `Host` fields, a `Host` that is not `host[:port]`, an absolute-form target or HTTP/2 `:authority` that differs from `Host` | 400 `Missing Host header` · `Multiple Host headers` · `Invalid Host header` · `Host header does not match the request target` | — |
//! | path: `..` above `/`, `\`, a bad `%` escape, `%2F`/`%5C`, `..;` | 400 `Invalid request path` | `escaped_slashes`, `merge_slashes` |
//! | header names with `_` | dropped, or 400 `Invalid header name` | `underscores_in_headers` |
//! | two `Content-Length` fields, `chunked` twice | 400 `Invalid request framing` | — |
//!
//! What it changes: the path is normalised ([`path::normalize`]: unreserved `%XX` decoded,
//! dot segments removed, `//` merged), an absolute-form HTTP/1 target becomes origin-form
//! (its authority is the `Host`), and header names with `_` are removed — always when they
//! read as a header the gateway owns (`X_User_ID` is `X-User-ID` to a CGI, WSGI, Rack or
//! PHP upstream), and by default all of them (as nginx's `underscores_in_headers off`).
//!
//! A request that passes costs one scan of its path and one pass over its fields, with no
//! allocation unless something changes.
//!
//! [`EdgeLayer`] puts the same checks in front of any tower service (the gateway calls
//! [`canonicalize`] itself, before its request-id and metrics layers, and turns a refusal
//! into the answer further in, so that refused requests are counted and logged).
//!
//! ```
//! use gw_edge::{canonicalize, EdgeError, EdgePolicy};
//! use http::Request;
//!
//! let policy = EdgePolicy::default();
//! let mut req = Request::get("/api/v1/users/../../admin/%7Ebob")
//!     .header("host", "api.example.com")
//!     .header("x_user_id", "1")
//!     .body(())
//!     .unwrap();
//! canonicalize(&mut req, &policy).unwrap();
//! assert_eq!(req.uri().path(), "/api/admin/~bob");
//! assert!(req.headers().get("x_user_id").is_none());
//!
//! let mut req = Request::get("/a/../../etc/passwd").header("host", "a").body(()).unwrap();
//! assert_eq!(canonicalize(&mut req, &policy).unwrap_err().status(), 400);
//! ```

pub mod host;
mod layer;
pub mod path;

use std::borrow::Cow;

use gw_core::messages;
use http::header::{HeaderName, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, StatusCode, Uri, Version};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

pub use layer::{rejection, Edge, EdgeLayer, ResponseFuture};

/// What to do with `%2F` (`/`) and `%5C` (`\`) in a path (Envoy's
/// `path_with_escaped_slashes_action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// 400 `Invalid request path` (the default): an upstream that decodes `%2F` before
    /// resolving `..` would otherwise see a path the router never judged.
    #[default]
    Reject,
    /// Keep them encoded: they are data inside a segment, not separators.
    Keep,
}

/// What to do with header names that contain `_` (nginx's `underscores_in_headers`,
/// Envoy's `headers_with_underscores_action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Underscores {
    /// Remove them (the default, as nginx does).
    #[default]
    Drop,
    /// Forward them, except those that read as a header the gateway owns once `_` is
    /// taken as `-` (`X_User_ID`, `X_Forwarded_For`, `X_Request_ID`): those are always
    /// removed.
    Keep,
    /// Refuse the request: 400 `Invalid header name`.
    Reject,
}

/// The edge's rules. The defaults are nginx's where nginx has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgePolicy {
    /// Largest request line (`METHOD SP target SP HTTP/1.1`), in bytes; above it 414.
    pub max_request_line_bytes: usize,
    /// Largest request head (line and every field), in bytes; above it 431.
    pub max_header_bytes: usize,
    /// Most header fields in a request; above it 431.
    pub max_headers: usize,
    /// Merge `//` in paths.
    pub merge_slashes: bool,
    /// `%2F` and `%5C` in paths.
    pub escaped_slashes: EscapedSlashes,
    /// Header names with `_`.
    pub underscores_in_headers: Underscores,
}

impl Default for EdgePolicy {
    fn default() -> Self {
        EdgePolicy {
            max_request_line_bytes: 8 * 1024,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Reject,
            underscores_in_headers: Underscores::Drop,
        }
    }
}

impl EdgePolicy {
    /// The path options of this policy.
    pub fn path_options(&self) -> path::PathOptions {
        path::PathOptions {
            merge_slashes: self.merge_slashes,
            escaped_slashes: self.escaped_slashes,
        }
    }
}

/// Why a path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The target is not origin-form (`/...`).
    #[error("the path does not start with /")]
    NotOriginForm,
    /// `..` climbs above `/`.
    #[error("the path climbs above /")]
    AboveRoot,
    /// A `%` not followed by two hex digits.
    #[error("bad percent escape")]
    BadEscape,
    /// `%2F` or `%5C` while they are refused.
    #[error("encoded slash")]
    EncodedSlash,
    /// A raw `\`.
    #[error("backslash")]
    Backslash,
    /// `..;x` or `.;x`.
    #[error("dot segment with parameters")]
    DotSegmentParameter,
}

/// Why the edge refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EdgeError {
    /// The request line is longer than `max_request_line_bytes`.
    #[error("request line too long")]
    UriTooLong,
    /// The head is larger than `max_header_bytes` or has more than `max_headers` fields.
    #[error("request head too large")]
    HeadTooLarge,
    /// `CONNECT`.
    #[error("CONNECT is not supported")]
    Connect,
    /// An HTTP/1.1 request without `Host` (or an HTTP/2 one without `:authority` and `host`).
    #[error("missing Host")]
    MissingHost,
    /// More than one `Host` field.
    #[error("more than one Host")]
    MultipleHosts,
    /// A `Host` that is not `host[:port]`.
    #[error("invalid Host")]
    InvalidHost,
    /// The absolute-form target's or `:authority`'s host differs from `Host`.
    #[error("Host differs from the request target")]
    HostMismatch,
    /// A target that is neither origin-form nor an `http`/`https` absolute-form (nor `*`
    /// for `OPTIONS`).
    #[error("invalid request target")]
    InvalidTarget,
    /// The path was refused.
    #[error("invalid path: {0}")]
    Path(#[from] PathError),
    /// A header name with `_` while they are refused.
    #[error("header name with an underscore")]
    UnderscoreHeader,
    /// More than one `Content-Length` field, or `chunked` applied twice.
    #[error("ambiguous message framing")]
    Framing,
}

impl EdgeError {
    /// The status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            EdgeError::UriTooLong => StatusCode::URI_TOO_LONG,
            EdgeError::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            EdgeError::Connect => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The message of the answer.
    pub fn message(&self) -> &'static str {
        match self {
            EdgeError::UriTooLong => messages::URI_TOO_LONG,
            EdgeError::HeadTooLarge => messages::HEADERS_TOO_LARGE,
            EdgeError::Connect => messages::METHOD_NOT_ALLOWED,
            EdgeError::MissingHost => messages::MISSING_HOST,
            EdgeError::MultipleHosts => messages::MULTIPLE_HOSTS,
            EdgeError::InvalidHost => messages::INVALID_HOST,
            EdgeError::HostMismatch => messages::HOST_MISMATCH,
            EdgeError::InvalidTarget => messages::INVALID_TARGET,
            EdgeError::Path(_) => messages::INVALID_PATH,
            EdgeError::UnderscoreHeader => messages::INVALID_HEADER_NAME,
            EdgeError::Framing => messages::INVALID_FRAMING,
        }
    }
}

impl gw_core::HttpError for EdgeError {
    fn status(&self) -> StatusCode {
        EdgeError::status(self)
    }

    fn message(&self) -> &str {
        EdgeError::message(self)
    }
}

/// A request the edge refused (request extension): a listener that must build a request to
/// get an answer through its layers (the request id, metrics, the access log) marks it with
/// this, and the service at the end of those layers answers with the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected(pub EdgeError);

/// The methods allowed in the `Allow` header of a refused `CONNECT`.
pub const ALLOW_WITHOUT_CONNECT: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Makes `req` canonical in place, or says why it is refused (see the crate docs). On an
/// error the request may have lost header names with `_`; nothing else is changed.
pub fn canonicalize<B>(req: &mut Request<B>, policy: &EdgePolicy) -> Result<(), EdgeError> {
    let uri = req.uri();
    let authority = uri.authority();
    // One pass over the fields: sizes, the Host (judged here, so it is not looked up
    // again), framing fields, underscores.
    let mut field_bytes = 0usize;
    let mut host = HostSeen::default();
    let mut lengths = 0usize;
    let mut encodings = 0usize;
    let mut underscore = false;
    for (name, value) in req.headers() {
        let n = name.as_str().as_bytes();
        field_bytes += n.len() + value.len() + 4;
        if name == HOST {
            host.count += 1;
            host.valid = host::is_valid(value.as_bytes());
            host.matches =
                authority.is_none_or(|a| host::same(value.as_bytes(), a.as_str().as_bytes()));
        } else if name == CONTENT_LENGTH {
            lengths += 1;
        } else if name == TRANSFER_ENCODING {
            encodings += 1;
        } else if !underscore {
            // A short loop: `contains` calls memchr, which costs more for a field name.
            #[allow(clippy::manual_contains)]
            let found = n.iter().any(|&b| b == b'_');
            underscore = found;
        }
    }
    let target_len = match (uri.scheme(), authority) {
        (Some(s), Some(a)) => s.as_str().len() + 3 + a.as_str().len() + path_len(uri),
        (None, Some(a)) if uri.path_and_query().is_none() => a.as_str().len(),
        _ => path_len(uri),
    };
    // `METHOD SP target SP HTTP/1.1 CRLF`
    let line = req.method().as_str().len() + target_len + 12;
    if line > policy.max_request_line_bytes {
        return Err(EdgeError::UriTooLong);
    }
    if line + field_bytes + 2 > policy.max_header_bytes || req.headers().len() > policy.max_headers
    {
        return Err(EdgeError::HeadTooLarge);
    }
    if req.method() == Method::CONNECT {
        return Err(EdgeError::Connect);
    }
    // Framing: one Content-Length field, and `chunked` at most once (RFC 9112 §6.1, §6.3).
    // The listener's parser already refused conflicting or malformed values.
    if lengths > 1 || (encodings > 1 && chunked_twice(req.headers())) {
        return Err(EdgeError::Framing);
    }
    check_host(req, host)?;
    canonical_path(req, policy)?;
    if underscore {
        underscores(req, policy.underscores_in_headers)?;
    }
    Ok(())
}

/// What the pass over the fields saw of `Host`.
#[derive(Clone, Copy, Default)]
struct HostSeen {
    count: usize,
    /// The (last) value is `host[:port]`.
    valid: bool,
    /// The (last) value names the target's authority, or there is none.
    matches: bool,
}

fn chunked_twice(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        .count()
        > 1
}

/// Gives an HTTP/1.0 request that came without `Host` (and with an origin-form target) the
/// listener's own address as its host, as RFC 9112 §3.3 says a server reconstructs the
/// target URI: the upstream then gets a valid HTTP/1.1 request.
pub fn default_host<B>(req: &mut Request<B>, local: std::net::SocketAddr) {
    if req.version() < Version::HTTP_11 && !req.headers().contains_key(HOST) {
        if let Ok(value) = http::HeaderValue::from_str(&local.to_string()) {
            req.headers_mut().insert(HOST, value);
        }
    }
}

fn path_len(uri: &Uri) -> usize {
    uri.path_and_query().map_or(1, |pq| pq.as_str().len())
}

/// `Host`: one, valid, in agreement with the target's authority; an absolute-form HTTP/1
/// target becomes origin-form.
fn check_host<B>(req: &mut Request<B>, host: HostSeen) -> Result<(), EdgeError> {
    if host.count > 1 {
        return Err(EdgeError::MultipleHosts);
    }
    let has_host = host.count == 1;
    if has_host && !host.valid {
        return Err(EdgeError::InvalidHost);
    }
    let uri = req.uri();
    let authority = uri.authority();
    if let Some(a) = authority {
        // Authority-form (`GET example.com:80`) belongs to CONNECT alone (refused above).
        if uri
            .scheme()
            .is_none_or(|s| *s != Scheme::HTTP && *s != Scheme::HTTPS)
        {
            return Err(EdgeError::InvalidTarget);
        }
        if !host::is_valid(a.as_str().as_bytes()) {
            return Err(EdgeError::InvalidHost);
        }
        if has_host && !host.matches {
            return Err(EdgeError::HostMismatch);
        }
    }
    match req.version() {
        Version::HTTP_2 | Version::HTTP_3 => {
            if authority.is_none() && !has_host {
                return Err(EdgeError::MissingHost);
            }
        }
        version => {
            if !has_host && version == Version::HTTP_11 {
                return Err(EdgeError::MissingHost);
            }
            if let Some(a) = authority {
                // Absolute-form: the authority is the Host (HTTP/1.0 may have sent none),
                // and the target goes on as origin-form.
                if !has_host {
                    let value = http::HeaderValue::from_str(a.as_str())
                        .map_err(|_| EdgeError::InvalidHost)?;
                    req.headers_mut().insert(HOST, value);
                }
                let pq = req
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/"));
                *req.uri_mut() = Uri::from(pq);
            }
        }
    }
    Ok(())
}

fn canonical_path<B>(req: &mut Request<B>, policy: &EdgePolicy) -> Result<(), EdgeError> {
    let uri = req.uri();
    let path = uri.path();
    if path == "*" && uri.query().is_none() {
        return if req.method() == Method::OPTIONS {
            Ok(())
        } else {
            Err(EdgeError::InvalidTarget)
        };
    }
    let normal = match path::normalize(path, &policy.path_options()) {
        Ok(Cow::Borrowed(_)) => return Ok(()),
        Ok(Cow::Owned(p)) => p,
        Err(PathError::NotOriginForm) => return Err(EdgeError::InvalidTarget),
        Err(e) => return Err(EdgeError::Path(e)),
    };
    let mut target = normal;
    if let Some(q) = uri.query() {
        target.push('?');
        target.push_str(q);
    }
    // The normalised path holds only what the parsed one held (or fewer escapes).
    let pq = PathAndQuery::try_from(target).map_err(|_| EdgeError::InvalidTarget)?;
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.path_and_query = Some(pq);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| EdgeError::InvalidTarget)?;
    Ok(())
}

/// Removes (or refuses) header names with `_`.
fn underscores<B>(req: &mut Request<B>, policy: Underscores) -> Result<(), EdgeError> {
    let mut found: SmallVec<[HeaderName; 4]> = SmallVec::new();
    for name in req.headers().keys() {
        let n = name.as_str();
        if n.as_bytes().contains(&b'_') {
            if policy == Underscores::Reject {
                return Err(EdgeError::UnderscoreHeader);
            }
            if policy == Underscores::Drop || is_owned_twin(n) {
                found.push(name.clone());
            }
        }
    }
    for name in found {
        req.headers_mut().remove(name);
    }
    Ok(())
}

/// Whether `name` (lower case, with `_`) reads as a header the gateway sets or strips once
/// `_` is taken as `-`.
pub fn is_owned_twin(name: &str) -> bool {
    let same = |owned: &str| {
        name.len() == owned.len()
            && name
                .bytes()
                .zip(owned.bytes())
                .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
    };
    let prefix = |owned: &str| name.len() > owned.len() && same_prefix(name, owned);
    prefix("x-user-")
        || prefix("x-forwarded-")
        || same("x-request-id")
        || same("x-gateway-version")
        || same("x-real-ip")
        || same("forwarded")
}

fn same_prefix(name: &str, owned: &str) -> bool {
    name.bytes()
        .zip(owned.bytes())
        .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri(target);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn check(mut r: Request<()>) -> Result<Request<()>, EdgeError> {
        canonicalize(&mut r, &EdgePolicy::default()).map(|()| r)
    }

    #[test]
    fn host_rules() {
        assert_eq!(check(req("/", &[])).unwrap_err(), EdgeError::MissingHost);
        let two = req("/", &[("host", "a"), ("host", "a")]);
        assert_eq!(check(two).unwrap_err(), EdgeError::MultipleHosts);
        let bad = req("/", &[("host", "a b")]);
        assert_eq!(check(bad).unwrap_err(), EdgeError::InvalidHost);
        let abs = check(req(
            "http://Api.Example:80/x?q=1",
            &[("host", "api.example:80")],
        ))
        .unwrap();
        assert_eq!(abs.uri(), "/x?q=1");
        let differ = req("http://a/x", &[("host", "b")]);
        assert_eq!(check(differ).unwrap_err(), EdgeError::HostMismatch);
        let ftp = req("ftp://a/x", &[("host", "a")]);
        assert_eq!(check(ftp).unwrap_err(), EdgeError::InvalidTarget);
        let mut old = req("/", &[]);
        *old.version_mut() = Version::HTTP_10;
        assert!(check(old).is_ok(), "HTTP/1.0 may come without Host");
        let mut old_abs = req("http://a:81/x", &[]);
        *old_abs.version_mut() = Version::HTTP_10;
        let old_abs = check(old_abs).unwrap();
        assert_eq!(old_abs.headers()[HOST], "a:81");
        assert_eq!(old_abs.uri(), "/x");
    }

    #[test]
    fn http2_authority_and_host_agree() {
        let mut r = req("https://a.example/x", &[]);
        *r.version_mut() = Version::HTTP_2;
        let r = check(r).unwrap();
        assert_eq!(r.uri(), "https://a.example/x", "HTTP/2 keeps its authority");
        let mut r = req("https://a.example/x", &[("host", "b.example")]);
        *r.version_mut() = Version::HTTP_2;
        assert_eq!(check(r).unwrap_err(), EdgeError::HostMismatch);
        let mut r = req("/x", &[]);
        *r.version_mut() = Version::HTTP_2;
        assert_eq!(check(r).unwrap_err(), EdgeError::MissingHost);
    }

    #[test]
    fn paths_and_queries() {
        let r = check(req("/a/./b/../c?x=/../y", &[("host", "h")])).unwrap();
        assert_eq!(r.uri(), "/a/c?x=/../y");
        let r = req("/a/../../b", &[("host", "h")]);
        assert_eq!(check(r).unwrap_err(), EdgeError::Path(PathError::AboveRoot));
        let mut r = req("*", &[("host", "h")]);
        *r.method_mut() = Method::OPTIONS;
        assert!(check(r).is_ok());
        let r = req("*", &[("host", "h")]);
        assert_eq!(check(r).unwrap_err(), EdgeError::InvalidTarget);
    }

    #[test]
    fn underscore_names() {
        let h = [
            ("host", "h"),
            ("x_user_id", "3"),
            ("x-user-id", "42"),
            ("my_header", "v"),
        ];
        let r = check(req("/", &h)).unwrap();
        assert!(r.headers().get("x_user_id").is_none());
        assert!(r.headers().get("my_header").is_none());
        assert_eq!(r.headers()["x-user-id"], "42");

        let keep = EdgePolicy {
            underscores_in_headers: Underscores::Keep,
            ..EdgePolicy::default()
        };
        let mut r = req("/", &h);
        canonicalize(&mut r, &keep).unwrap();
        assert!(
            r.headers().get("x_user_id").is_none(),
            "an owned twin always goes"
        );
        assert_eq!(r.headers()["my_header"], "v");

        let reject = EdgePolicy {
            underscores_in_headers: Underscores::Reject,
            ..EdgePolicy::default()
        };
        let mut r = req("/", &h);
        assert_eq!(
            canonicalize(&mut r, &reject).unwrap_err(),
            EdgeError::UnderscoreHeader
        );
    }

    #[test]
    fn owned_twins() {
        for n in [
            "x_user_id",
            "x_user-role",
            "x-user_anything",
            "x_forwarded_for",
            "x_request_id",
            "x_real_ip",
        ] {
            assert!(is_owned_twin(n), "{n}");
        }
        for n in ["x_userid", "my_header", "x_request_ids", "x_user_"] {
            assert!(!is_owned_twin(n), "{n}");
        }
    }

    #[test]
    fn limits() {
        let small = EdgePolicy {
            max_request_line_bytes: 64,
            max_header_bytes: 200,
            max_headers: 3,
            ..EdgePolicy::default()
        };
        let long = format!("/{}", "a".repeat(60));
        let mut r = req(&long, &[("host", "h")]);
        assert_eq!(canonicalize(&mut r, &small), Err(EdgeError::UriTooLong));
        let big = "v".repeat(200);
        let mut r = req("/", &[("host", "h"), ("x", &big)]);
        assert_eq!(canonicalize(&mut r, &small), Err(EdgeError::HeadTooLarge));
        let mut r = req("/", &[("host", "h"), ("a", "1"), ("b", "2"), ("c", "3")]);
        assert_eq!(canonicalize(&mut r, &small), Err(EdgeError::HeadTooLarge));
        let mut r = req("/", &[("host", "h"), ("a", "1"), ("b", "2")]);
        assert_eq!(canonicalize(&mut r, &small), Ok(()));
    }

    #[test]
    fn framing_must_be_unambiguous() {
        let two = req(
            "/",
            &[
                ("host", "h"),
                ("content-length", "0"),
                ("content-length", "0"),
            ],
        );
        assert_eq!(check(two).unwrap_err(), EdgeError::Framing);
        let twice = req(
            "/",
            &[
                ("host", "h"),
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
        );
        assert_eq!(check(twice).unwrap_err(), EdgeError::Framing);
        let list = req(
            "/",
            &[
                ("host", "h"),
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked"),
            ],
        );
        assert!(check(list).is_ok());
    }

    #[test]
    fn http10_without_host_gets_the_listeners_address() {
        let mut r = req("/", &[]);
        *r.version_mut() = Version::HTTP_10;
        default_host(&mut r, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(r.headers()[HOST], "127.0.0.1:8080");
        let mut r = req("/", &[("host", "a")]);
        *r.version_mut() = Version::HTTP_10;
        default_host(&mut r, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(r.headers()[HOST], "a");
    }

    #[test]
    fn connect_is_refused() {
        let mut r = req("example.com:443", &[("host", "example.com:443")]);
        *r.method_mut() = Method::CONNECT;
        assert_eq!(check(r).unwrap_err(), EdgeError::Connect);
    }
}
