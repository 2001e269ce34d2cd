//! Access control for the admin listener: a CIDR allow list, the `Host` and `Origin` the
//! request names, an optional bearer token, and JSON bodies only.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use gw_core::messages::{ACCESS_DENIED, UNAUTHORIZED};
use gw_core::{ConnInfo, RequestId};
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use http::header::{TRANSFER_ENCODING, WWW_AUTHENTICATE};
use http::StatusCode;
use ipnet::IpNet;

use crate::messages::{HOST_NOT_ALLOWED, ORIGIN_NOT_ALLOWED, UNSUPPORTED_MEDIA_TYPE};

/// Who may use the admin API.
///
/// Checked before any handler runs, for every path (known or not):
/// 1. the peer address ([`ConnInfo::peer`], IPv4-mapped IPv6 taken as IPv4) must be inside one
///    of `allow`, else 403 `Access denied`. An empty list allows nobody; a request without
///    [`ConnInfo`] is treated as outside the list.
/// 2. when `token` is set, `Authorization: Bearer <token>` must match (compared in constant
///    time for a given length), else 401 `Unauthorized` with `WWW-Authenticate: Bearer`.
///    An empty token matches nothing (fail closed).
/// 3. with `hosts` set, the request's `Host` (or, without one, its URI authority) must be one
///    of them (ASCII case-insensitive, `host:port` as the client sends it), else 403
///    `Host not allowed`: a page whose DNS name was rebound to the admin address names its own
///    host. An `Origin` header, when present, must be `http://` or `https://` followed by one
///    of them, else 403 `Origin not allowed` (a cross-site request from a browser).
/// 4. a request with a body (`Content-Length` above 0 or `Transfer-Encoding`) must say
///    `Content-Type: application/json` (parameters such as `; charset=utf-8` allowed), else
///    415 `Unsupported media type`: a browser sends `text/plain` or a form cross-site without
///    asking first.
///
/// Steps 1 to 3 come before the token, so a refused request learns nothing about it.
#[derive(Clone, Default)]
pub struct AccessControl {
    /// The networks the peer must be in.
    pub allow: Vec<IpNet>,
    /// The bearer token, when one is required.
    pub token: Option<String>,
    /// The names (`host:port`) a request may give in `Host` and `Origin`; `None` checks
    /// neither (only for a router served behind something that does). The gateway always
    /// sets it (`admin.allowed_hosts`).
    pub hosts: Option<Vec<String>>,
}

// Hand-written so that the token never reaches a log through `{:?}`.
impl fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessControl")
            .field("allow", &self.allow)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("hosts", &self.hosts)
            .finish()
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Outside `allow` (403).
    Forbidden,
    /// Missing or wrong token (401).
    Unauthorized,
    /// `Host` not among the admin listener's names (403).
    Host,
    /// `Origin` of another site (403).
    Origin,
    /// A body that is not JSON (415).
    MediaType,
}

impl AccessControl {
    /// Whether `ip` is inside `allow` (an IPv4-mapped IPv6 address counts as its IPv4 form).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow.iter().any(|net| net.contains(&ip))
    }

    /// Whether an `Authorization` header value satisfies the token (always true without one).
    pub fn authorizes(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(token) = self.token.as_deref() else {
            return true;
        };
        if token.is_empty() {
            return false;
        }
        let Some(presented) = authorization.and_then(|v| bearer_credentials(v.as_bytes())) else {
            return false;
        };
        constant_time_eq(presented, token.as_bytes())
    }

    /// The decision for one request.
    pub(crate) fn check(&self, req: &Request) -> Result<(), Refusal> {
        let peer = req.extensions().get::<ConnInfo>().map(|c| c.peer.ip());
        if !peer.is_some_and(|ip| self.allows(ip)) {
            return Err(Refusal::Forbidden);
        }
        if let Some(hosts) = &self.hosts {
            let headers = req.headers();
            let host = match headers.get(HOST) {
                Some(h) => h.to_str().ok(),
                None => req.uri().authority().map(|a| a.as_str()),
            };
            if !host.is_some_and(|h| names(hosts, h)) {
                return Err(Refusal::Host);
            }
            if let Some(origin) = headers.get(ORIGIN) {
                let site = origin.to_str().ok().and_then(|o| {
                    o.strip_prefix("http://")
                        .or_else(|| o.strip_prefix("https://"))
                });
                if !site.is_some_and(|s| names(hosts, s)) {
                    return Err(Refusal::Origin);
                }
            }
        }
        if !self.authorizes(req.headers().get(AUTHORIZATION)) {
            return Err(Refusal::Unauthorized);
        }
        if has_body(req.headers()) && !is_json(req.headers().get(CONTENT_TYPE)) {
            return Err(Refusal::MediaType);
        }
        Ok(())
    }
}

/// Whether `name` is one of `hosts` (ASCII case-insensitive).
fn names(hosts: &[String], name: &str) -> bool {
    hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Whether the request announces a body.
fn has_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes().iter().any(|&b| b != b'0'))
}

/// Whether a `Content-Type` is `application/json`, with or without parameters.
fn is_json(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

impl AccessControl {
    /// The default `hosts` of an admin listener bound to `addr`: `addr` itself,
    /// `localhost:PORT`, `127.0.0.1:PORT` and `[::1]:PORT`.
    pub fn default_hosts(addr: std::net::SocketAddr) -> Vec<String> {
        let port = addr.port();
        let mut hosts = vec![addr.to_string()];
        for name in [
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ] {
            if !hosts.contains(&name) {
                hosts.push(name);
            }
        }
        hosts
    }
}

/// The credentials of `Bearer <credentials>` (scheme case-insensitive, RFC 9110 §11.1).
fn bearer_credentials(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || rest.first() != Some(&b' ') {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    Some(&rest[start..])
}

/// Equality whose time depends on the length only, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The middleware: refuse before any handler runs, so a refused request changes nothing.
pub(crate) async fn enforce(
    State(access): State<Arc<AccessControl>>,
    req: Request,
    next: Next,
) -> Response {
    match access.check(&req) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            let rid = req.extensions().get::<RequestId>();
            match refusal {
                Refusal::Forbidden => {
                    gw_core::error_response(StatusCode::FORBIDDEN, ACCESS_DENIED, rid)
                }
                Refusal::Host => {
                    gw_core::error_response(StatusCode::FORBIDDEN, HOST_NOT_ALLOWED, rid)
                }
                Refusal::Origin => {
                    gw_core::error_response(StatusCode::FORBIDDEN, ORIGIN_NOT_ALLOWED, rid)
                }
                Refusal::MediaType => gw_core::error_response(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    UNSUPPORTED_MEDIA_TYPE,
                    rid,
                ),
                Refusal::Unauthorized => {
                    let mut res =
                        gw_core::error_response(StatusCode::UNAUTHORIZED, UNAUTHORIZED, rid);
                    res.headers_mut()
                        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    res
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(token: Option<&str>) -> AccessControl {
        AccessControl {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            token: token.map(str::to_owned),
            hosts: None,
        }
    }

    fn req(headers: &[(&str, &str)]) -> Request {
        let mut b = http::Request::builder().method("POST").uri("/admin/routes");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut r = b.body(axum::body::Body::empty()).unwrap();
        r.extensions_mut().insert(ConnInfo {
            peer: "127.0.0.1:5000".parse().unwrap(),
            local: "127.0.0.1:9901".parse().unwrap(),
            tls: false,
        });
        r
    }

    #[test]
    fn host_origin_and_media_type() {
        let a = AccessControl {
            hosts: Some(AccessControl::default_hosts(
                "127.0.0.1:9901".parse().unwrap(),
            )),
            ..access(None)
        };
        assert_eq!(
            a.hosts.as_deref().unwrap(),
            ["127.0.0.1:9901", "localhost:9901", "[::1]:9901"]
        );
        let json = ("content-type", "application/json; charset=utf-8");
        let body = ("content-length", "2");
        assert_eq!(
            a.check(&req(&[("host", "127.0.0.1:9901"), json, body])),
            Ok(())
        );
        assert_eq!(a.check(&req(&[("host", "LOCALHOST:9901")])), Ok(()));
        assert_eq!(a.check(&req(&[])), Err(Refusal::Host));
        assert_eq!(
            a.check(&req(&[("host", "evil.example")])),
            Err(Refusal::Host)
        );
        assert_eq!(
            a.check(&req(&[("host", "localhost:9902")])),
            Err(Refusal::Host)
        );
        let ok_host = ("host", "localhost:9901");
        for origin in [
            "http://evil.example",
            "null",
            "http://localhost:9902",
            "localhost:9901",
        ] {
            assert_eq!(
                a.check(&req(&[ok_host, ("origin", origin)])),
                Err(Refusal::Origin),
                "{origin}"
            );
        }
        assert_eq!(
            a.check(&req(&[ok_host, ("origin", "http://localhost:9901")])),
            Ok(())
        );
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
        ] {
            assert_eq!(
                a.check(&req(&[ok_host, body, ("content-type", ct)])),
                Err(Refusal::MediaType),
                "{ct}"
            );
        }
        assert_eq!(a.check(&req(&[ok_host, body])), Err(Refusal::MediaType));
        assert_eq!(
            a.check(&req(&[ok_host, ("transfer-encoding", "chunked")])),
            Err(Refusal::MediaType)
        );
        assert_eq!(a.check(&req(&[ok_host, ("content-length", "0")])), Ok(()));
        assert_eq!(
            a.check(&req(&[ok_host, body, ("content-type", "Application/JSON")])),
            Ok(())
        );
    }

    #[test]
    fn allow_list_and_mapped_addresses() {
        let a = access(None);
        assert!(a.allows("127.0.0.1".parse().unwrap()));
        assert!(a.allows("::1".parse().unwrap()));
        assert!(a.allows("::ffff:127.0.0.9".parse().unwrap()));
        assert!(!a.allows("10.0.0.1".parse().unwrap()));
        assert!(!a.allows("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!AccessControl::default().allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bearer_parsing() {
        let a = access(Some("s3cret"));
        let ok = |v: &'static str| a.authorizes(Some(&HeaderValue::from_static(v)));
        assert!(ok("Bearer s3cret"));
        assert!(ok("bearer s3cret"));
        assert!(ok("BEARER   s3cret"));
        assert!(!ok("Bearer s3cre"));
        assert!(!ok("Bearer s3cret2"));
        assert!(!ok("Basic s3cret"));
        assert!(!ok("Bearers3cret"));
        assert!(!ok("Bearer"));
        assert!(!ok("Bearer "));
        assert!(!a.authorizes(None));
        assert!(access(None).authorizes(None));
        assert!(!access(Some("")).authorizes(Some(&HeaderValue::from_static("Bearer "))));
    }

    #[test]
    fn debug_hides_the_token() {
        let text = format!("{:?}", access(Some("s3cret")));
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("127.0.0.0/8"), "{text}");
    }
}
