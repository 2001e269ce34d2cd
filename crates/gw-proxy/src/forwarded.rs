//! Trusted proxies, the client address, and the headers sent upstream and back.

use std::net::IpAddr;

use gw_core::headers::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
use gw_core::{ClientAddr, ConnInfo};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, EXPECT, TE, TRANSFER_ENCODING, UPGRADE,
};
use ipnet::IpNet;
use smallvec::SmallVec;

/// Networks whose `X-Forwarded-*` headers are believed (SPEC §7).
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts these networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    /// Whether `ip` is inside a trusted network; an IPv4-mapped IPv6 address counts as its
    /// IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether no network is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Who the client is (SPEC §7), computed once per request by the listener.
///
/// When `conn.peer` is trusted, the client is the right-most `X-Forwarded-For` address that is
/// not itself trusted (the left-most when all are), and `https` follows a trusted
/// `X-Forwarded-Proto`; otherwise the peer address and `conn.tls`.
pub fn client_addr(conn: &ConnInfo, headers: &HeaderMap, trusted: &TrustedProxies) -> ClientAddr {
    let peer = canonical(conn.peer.ip());
    if !trusted.contains(peer) {
        return ClientAddr {
            ip: peer,
            https: conn.tls,
        };
    }
    let mut chosen: Option<IpAddr> = None;
    let mut leftmost: Option<IpAddr> = None;
    // Walk the addresses right to left across all header lines.
    'outer: for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(text) = value.to_str() else { continue };
        for part in text.rsplit(',') {
            let Some(ip) = parse_forwarded_ip(part.trim()) else {
                // Garbage from a trusted hop: stop believing anything further left.
                break 'outer;
            };
            leftmost = Some(ip);
            if !trusted.contains(ip) {
                chosen = Some(ip);
                break 'outer;
            }
        }
    }
    let ip = chosen.or(leftmost).unwrap_or(peer);
    let https = match headers.get(X_FORWARDED_PROTO) {
        Some(v) => {
            let v = v.as_bytes();
            let first = v.split(|&b| b == b',').next().unwrap_or(v);
            first.trim_ascii().eq_ignore_ascii_case(b"https")
        }
        None => conn.tls,
    };
    ClientAddr { ip, https }
}

/// An address in `X-Forwarded-For`: `1.2.3.4`, `1.2.3.4:5`, `::1`, `[::1]:5`.
fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
        .map(canonical)
}

static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Which hop-by-hop headers a map holds (one bit each), found in one pass over its names.
const HOP_CONNECTION: u8 = 1;
const HOP_TE: u8 = 1 << 1;
const HOP_UPGRADE: u8 = 1 << 2;
/// keep-alive, proxy-connection, proxy-authenticate, proxy-authorization, transfer-encoding.
pub(crate) const HOP_OTHER: u8 = 1 << 3;

/// `Expect` (request scan only).
pub(crate) const REQ_EXPECT: u8 = 1 << 4;
/// A name starting with `x-user-` (request scan only).
pub(crate) const REQ_X_USER: u8 = 1 << 5;

/// [`hop_by_hop_present`] plus [`REQ_EXPECT`] and [`REQ_X_USER`], in the same single pass: what
/// the proxy removes from a request.
pub(crate) fn request_headers_present(headers: &HeaderMap) -> u8 {
    let mut found = 0;
    for name in headers.keys() {
        found |= if name == EXPECT {
            REQ_EXPECT
        } else if name.as_str().starts_with("x-user-") {
            REQ_X_USER
        } else {
            hop_by_hop_bit(name)
        };
    }
    found
}

pub(crate) fn hop_by_hop_bit(name: &HeaderName) -> u8 {
    if name == CONNECTION {
        HOP_CONNECTION
    } else if name == TE {
        HOP_TE
    } else if name == UPGRADE {
        HOP_UPGRADE
    } else if name == TRANSFER_ENCODING
        || name == http::header::PROXY_AUTHENTICATE
        || name == http::header::PROXY_AUTHORIZATION
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
    {
        HOP_OTHER
    } else {
        0
    }
}

fn hop_by_hop_present(headers: &HeaderMap) -> u8 {
    headers
        .keys()
        .fold(0, |found, name| found | hop_by_hop_bit(name))
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), and every header the `Connection` header
/// names. `Trailer` is kept (it is end-to-end since RFC 7230 and hyper needs it to send h1
/// trailers). `TE: trailers` is kept when `keep_te_trailers` (gRPC needs it). When `upgrade`
/// (a WebSocket handshake), `Upgrade` is kept and `Connection` is set to `upgrade`.
///
/// One pass over the header names finds which of them are present; only those are removed
/// (most requests carry none, or only `Connection`).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool, upgrade: bool) {
    strip_found_hop_by_hop(
        headers,
        hop_by_hop_present(headers),
        keep_te_trailers,
        upgrade,
    );
}

/// [`strip_hop_by_hop`] with the presence bits already known (from [`request_headers_present`]).
pub(crate) fn strip_found_hop_by_hop(
    headers: &mut HeaderMap,
    found: u8,
    keep_te_trailers: bool,
    upgrade: bool,
) {
    if found & HOP_CONNECTION != 0 {
        let mut named: SmallVec<[HeaderName; 4]> = SmallVec::new();
        for value in headers.get_all(CONNECTION) {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                if !names_field(token) {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(token) {
                    named.push(name);
                }
            }
        }
        for name in &named {
            if upgrade && name == UPGRADE {
                continue;
            }
            headers.remove(name);
        }
        headers.remove(CONNECTION);
    }
    if found & HOP_OTHER != 0 {
        headers.remove(&KEEP_ALIVE);
        headers.remove(&PROXY_CONNECTION);
        headers.remove(http::header::PROXY_AUTHENTICATE);
        headers.remove(http::header::PROXY_AUTHORIZATION);
        headers.remove(TRANSFER_ENCODING);
    }
    if found & HOP_TE != 0 {
        if let Some(te) = headers.remove(TE) {
            if keep_te_trailers && has_token(&te, b"trailers") {
                headers.insert(TE, HeaderValue::from_static("trailers"));
            }
        }
    }
    if upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else if found & HOP_UPGRADE != 0 {
        headers.remove(UPGRADE);
    }
}

/// Whether a `Connection` value names a field to remove, a token other than `close`,
/// `keep-alive` and `upgrade` (the ones [`strip_found_hop_by_hop`] skips).
pub(crate) fn names_other_fields(connection: &HeaderValue) -> bool {
    connection
        .as_bytes()
        .split(|&b| b == b',')
        .any(|t| names_field(t.trim_ascii()))
}

/// Whether a trimmed `Connection` token names a field (is not `close`, `keep-alive`,
/// `upgrade` or empty).
fn names_field(token: &[u8]) -> bool {
    !(token.is_empty()
        || token.eq_ignore_ascii_case(b"close")
        || token.eq_ignore_ascii_case(b"keep-alive")
        || token.eq_ignore_ascii_case(b"upgrade"))
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
pub(crate) fn has_token(value: &HeaderValue, token: &[u8]) -> bool {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Sets `X-Forwarded-For`, `-Proto` and `-Host` for the upstream request (SPEC §7).
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    peer: Option<IpAddr>,
    tls: bool,
    peer_trusted: bool,
    original_host: Option<HeaderValue>,
) {
    match peer {
        Some(peer) => {
            let peer = canonical(peer);
            let value = if peer_trusted && headers.contains_key(X_FORWARDED_FOR) {
                let mut s = String::with_capacity(64);
                for (i, v) in headers.get_all(X_FORWARDED_FOR).iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    s.push_str(v.to_str().unwrap_or(""));
                }
                s.push_str(", ");
                push_ip(&mut s, peer);
                HeaderValue::try_from(s).ok()
            } else {
                ip_header_value(peer)
            };
            match value {
                Some(v) => {
                    headers.insert(X_FORWARDED_FOR, v);
                }
                None => {
                    headers.remove(X_FORWARDED_FOR);
                }
            }
        }
        None => {
            if !peer_trusted {
                headers.remove(X_FORWARDED_FOR);
            }
        }
    }
    if !(peer_trusted && headers.contains_key(X_FORWARDED_PROTO)) {
        let proto = if tls { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !(peer_trusted && headers.contains_key(X_FORWARDED_HOST)) {
        match original_host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST, h);
            }
            None => {
                headers.remove(X_FORWARDED_HOST);
            }
        }
    }
}

/// `ip` as a header value: IPv4 (the common case) written on the stack, one exact allocation.
fn ip_header_value(ip: IpAddr) -> Option<HeaderValue> {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            HeaderValue::from_bytes(&buf[..n]).ok()
        }
        IpAddr::V6(_) => HeaderValue::try_from(ip.to_string()).ok(),
    }
}

/// Appends `ip` as text; IPv4 (the common case) without going through `fmt`.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.reserve(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn conn(peer: &str) -> ConnInfo {
        ConnInfo {
            peer: peer.parse::<SocketAddr>().unwrap(),
            local: "127.0.0.1:80".parse().unwrap(),
            tls: false,
        }
    }

    fn trusted() -> TrustedProxies {
        TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()])
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.1.1.1"));
        let c = client_addr(&conn("8.8.8.8:1"), &h, &trusted());
        assert_eq!(c.ip, "8.8.8.8".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn trusted_peer_rightmost_untrusted() {
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.1.1.1"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        let c = client_addr(&conn("[::ffff:10.0.0.1]:1"), &h, &trusted());
        assert_eq!(c.ip, "2.2.2.2".parse::<IpAddr>().unwrap());
        assert!(c.https);
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_static("10.9.9.9, 10.1.1.1"),
        );
        let c = client_addr(&conn("10.0.0.1:1"), &h, &trusted());
        assert_eq!(c.ip, "10.9.9.9".parse::<IpAddr>().unwrap());
        assert!(!c.https);
    }

    #[test]
    fn ip_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.0.255",
            "100.99.9.109",
            "255.255.255.255",
            "::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut s = String::new();
            push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
            assert_eq!(ip_header_value(ip).unwrap(), ip.to_string().as_str());
        }
    }

    #[test]
    fn hop_by_hop_untouched_map_and_upgrade() {
        let mut h = HeaderMap::new();
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, true, false);
        assert_eq!(h.len(), 1);
        let mut h = HeaderMap::new();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        strip_hop_by_hop(&mut h, false, true);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h[CONNECTION], "upgrade");
        assert_eq!(h[UPGRADE], "websocket");
    }

    #[test]
    fn hop_by_hop_removed() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TE, HeaderValue::from_static("trailers, deflate"));
        h.insert(UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, true, false);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h[TE], "trailers");
        assert!(h.contains_key("x-keep"));
    }
}
