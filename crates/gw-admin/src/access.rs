//! Access control for the admin listener: a CIDR allow list, then an optional bearer token.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use gw_core::{ConnInfo, RequestId};
use http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use http::StatusCode;
use ipnet::IpNet;

/// Who may use the admin API.
///
/// Checked before any handler runs, for every path (known or not):
/// 1. the peer address ([`ConnInfo::peer`], IPv4-mapped IPv6 taken as IPv4) must be inside one
///    of `allow`, else 403 `Access denied`. An empty list allows nobody; a request without
///    [`ConnInfo`] is treated as outside the list.
/// 2. when `token` is set, `Authorization: Bearer <token>` must match (compared in constant
///    time for a given length), else 401 `Unauthorized` with `WWW-Authenticate: Bearer`.
///    An empty token matches nothing (fail closed).
#[derive(Clone, Default)]
pub struct AccessControl {
    /// The networks the peer must be in.
    pub allow: Vec<IpNet>,
    /// The bearer token, when one is required.
    pub token: Option<String>,
}

// Hand-written so that the token never reaches a log through `{:?}`.
impl fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessControl")
            .field("allow", &self.allow)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
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
        if !self.authorizes(req.headers().get(AUTHORIZATION)) {
            return Err(Refusal::Unauthorized);
        }
        Ok(())
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
                    gw_core::error_response(StatusCode::FORBIDDEN, "Access denied", rid)
                }
                Refusal::Unauthorized => {
                    let mut res =
                        gw_core::error_response(StatusCode::UNAUTHORIZED, "Unauthorized", rid);
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
        }
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
