//! How a refusal becomes an answer: the [`HttpError`] trait, the one JSON error body, the
//! [`messages`] every answer uses, and [`ConfigProblem`], the one shape of a configuration
//! mistake.

use std::fmt;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};

use crate::{Body, RequestId};

/// An error that knows the HTTP answer it becomes.
///
/// Each crate's error enum implements this; [`error_response`] turns it into the answer.
pub trait HttpError: std::error::Error {
    /// The status code of the answer.
    fn status(&self) -> StatusCode;
    /// The message of the answer, one of [`messages`] (`"Bad gateway"`, …).
    fn message(&self) -> &str;
}

/// The JSON answer `{"error": message, "request_id": id}` with `Content-Type: application/json`.
pub fn error_response(
    status: StatusCode,
    message: &str,
    request_id: Option<&RequestId>,
) -> Response<Body> {
    let mut body = Vec::with_capacity(48 + message.len());
    body.extend_from_slice(b"{\"error\":");
    // serde_json escapes the message; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut body, message);
    if let Some(id) = request_id {
        body.extend_from_slice(b",\"request_id\":");
        let _ = serde_json::to_writer(&mut body, id.as_str());
    }
    body.push(b'}');
    let mut res = Response::new(Body::from(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// [`error_response`] with the request id taken from the request's extensions.
pub fn error_response_for<B>(
    req: &Request<B>,
    status: StatusCode,
    message: &str,
) -> Response<Body> {
    error_response(status, message, req.extensions().get::<RequestId>())
}

/// [`error_response`] for an [`HttpError`].
pub fn error_into_response<E: HttpError + ?Sized>(
    err: &E,
    request_id: Option<&RequestId>,
) -> Response<Body> {
    error_response(err.status(), err.message(), request_id)
}

/// The message of every answer the gateway makes itself, in one place.
///
/// docs/http-answers.md lists them with their status codes; tests compare against these
/// constants' text, so a message changes in one place or not at all.
pub mod messages {
    /// 404: no route matches host and path.
    pub const ROUTE_NOT_FOUND: &str = "Route not found";
    /// 405: a route matches the path but not the method (with `Allow`).
    pub const METHOD_NOT_ALLOWED: &str = "Method not allowed";
    /// 401: no `Authorization` header on a JWT route.
    pub const MISSING_AUTHORIZATION: &str = "Missing authorization header";
    /// 401: `Authorization` is not `Bearer <token>`.
    pub const INVALID_AUTHORIZATION_FORMAT: &str = "Invalid authorization header format";
    /// 401: the token does not verify.
    pub const INVALID_TOKEN: &str = "Invalid token";
    /// 401: the token's `exp` has passed.
    pub const TOKEN_EXPIRED: &str = "Token expired";
    /// 401: the token's `iss` is not the configured issuer.
    pub const INVALID_ISSUER: &str = "Invalid issuer";
    /// 401: the token is on the revocation list.
    pub const TOKEN_REVOKED: &str = "Token has been revoked";
    /// 401: the token's user has no record.
    pub const USER_NOT_FOUND: &str = "User not found";
    /// 401: the user's record is not active.
    pub const USER_NOT_ACTIVE: &str = "User account is not active";
    /// 401: no `X-API-Key` on an API-key route.
    pub const MISSING_API_KEY: &str = "Missing API key";
    /// 401: the API key has no record.
    pub const INVALID_API_KEY: &str = "Invalid API key";
    /// 401: the API key's record is not active.
    pub const API_KEY_NOT_ACTIVE: &str = "API key is not active";
    /// 401: the API key's expiry has passed.
    pub const API_KEY_EXPIRED: &str = "API key has expired";
    /// 403: role, permission, ownership or admin allow list refused the caller.
    pub const ACCESS_DENIED: &str = "Access denied";
    /// 403: plain HTTP on a `require_https` route.
    pub const HTTPS_REQUIRED: &str = "HTTPS required";
    /// 413: a body above the configured limit.
    pub const BODY_TOO_LARGE: &str = "Request body too large";
    /// 429: a rate limit refused the request (with `Retry-After`).
    pub const RATE_LIMIT_EXCEEDED: &str = "Rate limit exceeded";
    /// 503: the breaker is open, or a store the answer needs did not answer.
    pub const SERVICE_UNAVAILABLE: &str = "Service temporarily unavailable";
    /// 503: the service has no instance to send to.
    pub const NO_HEALTHY_UPSTREAM: &str = "No healthy upstream";
    /// 502: refused or reset connection, malformed upstream answer.
    pub const BAD_GATEWAY: &str = "Bad gateway";
    /// 504: connect, send or read timeout.
    pub const GATEWAY_TIMEOUT: &str = "Gateway timeout";
    /// 400: a request the edge or the proxy cannot judge (broken body, bad framing elsewhere).
    pub const BAD_REQUEST: &str = "Bad request";
    /// 400: a request target that is neither origin-form nor an `http`/`https`
    /// absolute-form (nor `*` for `OPTIONS`).
    pub const INVALID_TARGET: &str = "Invalid request target";
    /// 400: the path has `..` above the root, a raw `\`, or an encoded slash when refused.
    pub const INVALID_PATH: &str = "Invalid request path";
    /// 400: HTTP/1.1 without `Host`.
    pub const MISSING_HOST: &str = "Missing Host header";
    /// 400: two `Host` fields.
    pub const MULTIPLE_HOSTS: &str = "Multiple Host headers";
    /// 400: `Host` is not `host[:port]`.
    pub const INVALID_HOST: &str = "Invalid Host header";
    /// 400: absolute-form target or `:authority` disagrees with `Host`.
    pub const HOST_MISMATCH: &str = "Host header does not match the request target";
    /// 400: a header name with `_` when `underscores_in_headers = "reject"`.
    pub const INVALID_HEADER_NAME: &str = "Invalid header name";
    /// 400: two `Content-Length`, `chunked` twice, and the like.
    pub const INVALID_FRAMING: &str = "Invalid request framing";
    /// 414: the request line is above `server.max_request_line_bytes`.
    pub const URI_TOO_LONG: &str = "Request URI too long";
    /// 431: the head is above `server.max_header_bytes` or `server.max_headers`.
    pub const HEADERS_TOO_LARGE: &str = "Request header fields too large";
    /// 401 on the admin listener: missing or wrong bearer token.
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// 404 on the admin listener: no such endpoint.
    pub const ENDPOINT_NOT_FOUND: &str = "Endpoint not found";
}

/// One configuration mistake: where (`routes[2].service`, `interval_secs`) and why.
///
/// Every crate's `validate()` returns these, with paths relative to the value it checked;
/// the caller puts its own prefix in front with [`ConfigProblem::under`], so `--check-config`
/// and the admin API name the exact key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted path of the key (empty for the value as a whole).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigProblem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same problem seen from a value one level up: `prefix.path` (or `prefix` alone
    /// when the path is empty; no dot before an index such as `[2]`).
    pub fn under(mut self, prefix: &str) -> Self {
        if prefix.is_empty() {
            return self;
        }
        self.path = if self.path.is_empty() {
            prefix.to_owned()
        } else if self.path.starts_with('[') {
            format!("{prefix}{}", self.path)
        } else {
            format!("{prefix}.{}", self.path)
        };
        self
    }

    /// Every problem of `problems` on one line, `; ` between them (`id: must not be empty;
    /// port: must be between 1 and 65535`): the text of a log line or of an admin answer.
    pub fn join(problems: &[ConfigProblem]) -> String {
        let mut text = String::new();
        for (i, p) in problems.iter().enumerate() {
            if i > 0 {
                text.push_str("; ");
            }
            text.push_str(&p.to_string());
        }
        text
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigProblem {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_take_a_prefix() {
        let p = ConfigProblem::new("interval_secs", "must be at least 1");
        assert_eq!(
            p.clone().under("services.api.health_check").to_string(),
            "services.api.health_check.interval_secs: must be at least 1"
        );
        assert_eq!(
            ConfigProblem::new("[1]", "x").under("routes").path,
            "routes[1]"
        );
        assert_eq!(ConfigProblem::new("", "x").under("server").path, "server");
        assert_eq!(p.clone().under(""), p);
        assert_eq!(
            ConfigProblem::join(&[p, ConfigProblem::new("", "empty")]),
            "interval_secs: must be at least 1; empty"
        );
        assert_eq!(ConfigProblem::join(&[]), "");
    }
}
