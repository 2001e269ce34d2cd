//! Shared vocabulary of the gateway crates, and nothing else.
//!
//! Every feature crate (`gw-router`, `gw-proxy`, `gw-monitor`, …) depends on this crate and on
//! libraries only. They cooperate through the typed request and response extensions defined
//! here — a layer puts a value in, another layer further down reads it — never by depending
//! on each other.
//!
//! - [`RequestId`]: the request's id (request extension, set by `gw-monitor`'s `RequestIdLayer`).
//! - [`ConnInfo`]: the accepted connection (request extension, set by the listener).
//! - [`ClientAddr`]: who the client is once trusted proxies are taken into account.
//! - [`Identity`]: who the caller is once authenticated.
//! - [`RouteTag`], [`UpstreamInfo`], [`FailedAttempts`], [`NotForwarded`]: response
//!   extensions for logging, metrics and the circuit breaker.
//! - [`error_response`]: the one JSON error answer `{"error": "...", "request_id": "..."}`;
//!   [`HttpError`], what each crate's error enum implements to become one; [`messages`], the
//!   text of every such answer; [`ConfigProblem`], the one shape of a configuration mistake.
//! - [`h1`]: the HTTP/1.1 wire format both of the gateway's own codecs use (field names,
//!   heads, chunked bodies).
//! - [`strict`]: deserialization that takes a struct only from a table/object, never a list.
//!
//! ```
//! use gw_core::{error_response, RequestId};
//! use http::{HeaderValue, StatusCode};
//!
//! let id = RequestId::new(HeaderValue::from_static("abc-123"));
//! let res = error_response(StatusCode::NOT_FOUND, "Route not found", Some(&id));
//! assert_eq!(res.status(), 404);
//! assert_eq!(res.headers()["content-type"], "application/json");
//! ```

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;

mod error;
pub mod h1;
pub mod strict;

pub use error::{
    error_into_response, error_response, error_response_for, messages, ConfigProblem, HttpError,
};

/// The body type every gateway service speaks (a boxed, streaming body).
pub use axum_core::body::Body;

/// The boxed error type used at crate boundaries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The gateway's version, sent upstream as `X-Gateway-Version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The value of the `X-Gateway` header on every answer.
pub const GATEWAY_NAME: &str = "rust-api-gateway";

/// Header names the gateway reads or writes.
pub mod headers {
    use http::header::HeaderName;

    /// `X-Request-ID`, to the upstream and to the client.
    pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    /// `X-Gateway`, on every answer to the client.
    pub const X_GATEWAY: HeaderName = HeaderName::from_static("x-gateway");
    /// `X-Gateway-Version`, to the upstream.
    pub const X_GATEWAY_VERSION: HeaderName = HeaderName::from_static("x-gateway-version");
    /// `X-Forwarded-For`.
    pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    /// `X-Forwarded-Proto`.
    pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    /// `X-Forwarded-Host`.
    pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
    /// `X-User-ID`, to the upstream after authentication.
    pub const X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
    /// `X-User-Role`, to the upstream after authentication.
    pub const X_USER_ROLE: HeaderName = HeaderName::from_static("x-user-role");

    /// Whether a comma-separated header value (`Connection`, `TE`, ...) holds `token`,
    /// compared without regard to case.
    pub fn has_token(value: impl AsRef<[u8]>, token: &[u8]) -> bool {
        value
            .as_ref()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    }

    /// A `Content-Length` value: decimal digits, surrounding spaces and tabs allowed; `None`
    /// when it is anything else or does not fit a `u64`. Bytes, not text: no UTF-8 check.
    pub fn parse_content_length(value: &[u8]) -> Option<u64> {
        let digits = value.trim_ascii();
        if digits.is_empty() {
            return None;
        }
        let mut n: u64 = 0;
        for &b in digits {
            if !b.is_ascii_digit() {
                return None;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        }
        Some(n)
    }
}

/// The id of one request: the client's `X-Request-ID` when it is valid, else a generated one.
///
/// Cheap to clone (a [`HeaderValue`] backed by shared bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Wraps a header value that is already known to be a valid id.
    pub fn new(value: HeaderValue) -> Self {
        Self(value)
    }

    /// Whether a client-sent id may be kept: 1–128 characters of `[A-Za-z0-9._:-]`.
    pub fn is_valid(value: &[u8]) -> bool {
        !value.is_empty()
            && value.len() <= 128
            && value
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    }

    /// The id as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ever built from checked ASCII.
        self.0.to_str().unwrap_or("")
    }
}

/// The accepted connection a request came in on (request extension, set by the listener).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The peer's address as seen on the socket.
    pub peer: SocketAddr,
    /// The local address the connection was accepted on.
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// The client as the gateway believes it to be, after `trusted_proxies` (request extension).
///
/// `ip` is the peer address, or — when the peer is a trusted proxy — the address that proxy
/// reported in `X-Forwarded-For`. `https` likewise follows a trusted `X-Forwarded-Proto`.
///
/// The gateway's listener inserts it only when it says more than the request's [`ConnInfo`]
/// (one extension less per request in the common case); read it with [`ClientAddr::of`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client's address.
    pub ip: IpAddr,
    /// Whether the client reached the gateway (or the trusted proxy in front) over HTTPS.
    pub https: bool,
}

impl ClientAddr {
    /// The connection's own view: its peer address and whether it is TLS.
    pub fn of_conn(conn: &ConnInfo) -> Self {
        ClientAddr {
            ip: conn.peer.ip(),
            https: conn.tls,
        }
    }

    /// The client of a request: its `ClientAddr` extension, else the peer of its
    /// [`ConnInfo`]; `None` when it has neither.
    pub fn of(ext: &http::Extensions) -> Option<Self> {
        ext.get::<ClientAddr>()
            .copied()
            .or_else(|| ext.get::<ConnInfo>().map(ClientAddr::of_conn))
    }
}

/// Who the caller is, once authenticated (request extension, set by `gw-auth`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// The user id (`sub` of a JWT, `user_id` of an API key).
    pub user_id: String,
    /// The user name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The role, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Granted permissions.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// Which route and service answered (response extension, set by the router).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTag {
    /// The route's id.
    pub route: Arc<str>,
    /// The route's service.
    pub service: Arc<str>,
}

/// What the upstream exchange looked like (response extension, set by the proxy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamInfo {
    /// `host:port` of the instance that answered (the last one tried).
    pub addr: Arc<str>,
    /// The instance's id.
    pub instance: Arc<str>,
    /// Time to open the connection; `None` when a pooled connection was reused.
    pub connect: Option<Duration>,
    /// Time from sending the request to the response headers (of the last attempt).
    pub header: Duration,
    /// How many attempts were made (1 + retries).
    pub attempts: u32,
}

/// The instances whose attempts failed before the last one, in order (response extension,
/// set by the proxy only when a retry followed a failed attempt: the common path allocates
/// nothing for it). The last attempt is in [`UpstreamInfo`]. Outlier detection counts each of
/// these as a failure of its instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailedAttempts(pub Vec<Arc<str>>);

/// Marks an error answer the gateway made without contacting any upstream (response
/// extension; e.g. `No healthy upstream`). The circuit breaker does not count it: it says
/// nothing about the upstream's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotForwarded;

/// `Box::pin(make())`, with the future written straight into its allocation.
///
/// `Box::pin(async move { .. })` builds the future on the stack and then copies all of it
/// into the box: every await's state, often several KiB for a request's future. With the
/// allocation made first, the compiler writes the future into it as the call's result.
pub fn pin_boxed<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONTENT_TYPE;
    use http::StatusCode;

    #[test]
    fn content_lengths() {
        use headers::parse_content_length as p;
        assert_eq!(p(b"0"), Some(0));
        assert_eq!(p(b" 123\t"), Some(123));
        assert_eq!(p(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(p(b"18446744073709551616"), None);
        for bad in [&b""[..], b" ", b"-1", b"+1", b"1 2", b"0x10", b"1.0"] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn request_id_validation() {
        assert!(RequestId::is_valid(b"abc-DEF_1.2:3"));
        assert!(!RequestId::is_valid(b""));
        assert!(!RequestId::is_valid(b"has space"));
        assert!(!RequestId::is_valid(b"semi;colon"));
        assert!(RequestId::is_valid(&[b'a'; 128]));
        assert!(!RequestId::is_valid(&[b'a'; 129]));
    }

    #[test]
    fn error_body_is_spec_json() {
        let id = RequestId::new(HeaderValue::from_static("r-1"));
        let res = error_response(StatusCode::BAD_GATEWAY, "Bad \"gateway\"", Some(&id));
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        let res2 = error_response(StatusCode::NOT_FOUND, "Route not found", None);
        assert_eq!(res2.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn client_addr_falls_back_to_the_connection() {
        let conn = ConnInfo {
            peer: "10.1.2.3:4000".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            tls: true,
        };
        let mut ext = http::Extensions::new();
        assert_eq!(ClientAddr::of(&ext), None);
        ext.insert(conn);
        assert_eq!(
            ClientAddr::of(&ext),
            Some(ClientAddr {
                ip: "10.1.2.3".parse().unwrap(),
                https: true
            })
        );
        let forwarded = ClientAddr {
            ip: "203.0.113.9".parse().unwrap(),
            https: false,
        };
        ext.insert(forwarded);
        assert_eq!(ClientAddr::of(&ext), Some(forwarded), "a stored one wins");
    }
}
