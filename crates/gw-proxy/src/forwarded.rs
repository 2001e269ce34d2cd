//! Trusted proxies, the client address, and the rules for the fields sent upstream (built
//! on [`fields`](crate::fields), which holds the field-level work).

use std::net::IpAddr;

pub(crate) use gw_core::headers::has_token;
use gw_core::headers::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
use gw_core::{ClientAddr, ConnInfo, Identity, RequestId};
use http::header::{HeaderMap, HeaderValue, CONNECTION, EXPECT, HOST};
use http::uri::Authority;
use ipnet::IpNet;
use smallvec::SmallVec;

use crate::fields::{
    strip_found_hop_by_hop, write_v4, Added, Field, FieldValue, RequestScan, HOP_CONNECTION,
    REQ_EXPECT, REQ_ID_SAME, REQ_X_USER,
};
// What the HTTP/1.1 exchange takes from here.
pub(crate) use crate::fields::{hop_by_hop_bit, names_other_fields, AddedFields, HOP_OTHER};

/// Networks whose `X-Forwarded-*` headers are believed (docs/configuration.md, `server.trusted_proxies`).
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

/// Who the client is (docs/configuration.md, `server.trusted_proxies`), computed once per request by the listener.
///
/// When `conn.peer` is trusted, the client is the right-most `X-Forwarded-For` address that is
/// not itself trusted (the left-most when all are), and `https` follows `X-Forwarded-Proto`
/// walked the same way: each trusted proxy appends the scheme it received, so the value that
/// describes the client's own connection is the one appended by the hop that appended the
/// chosen address. With `k` trusted addresses to the right of the chosen one, that is the
/// `k`-th value from the right (the last value when the peer talks to the client directly); when
/// there are fewer values (proxies that overwrite instead of appending) the left-most one, which
/// a trusted hop wrote. Values further left come from the client and are never believed.
/// Otherwise (untrusted peer) the peer address and `conn.tls`.
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
    // How many addresses lie right of the chosen one (= trusted hops beyond the peer).
    let mut hops = 0usize;
    let mut seen = 0usize;
    // Walk the addresses right to left across all header lines.
    'outer: for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(text) = value.to_str() else { continue };
        for part in text.rsplit(',') {
            let Some(ip) = parse_forwarded_ip(part.trim()) else {
                // Garbage from a trusted hop: stop believing anything further left.
                break 'outer;
            };
            leftmost = Some(ip);
            hops = seen;
            seen += 1;
            if !trusted.contains(ip) {
                chosen = Some(ip);
                break 'outer;
            }
        }
    }
    let ip = chosen.or(leftmost).unwrap_or(peer);
    let https = forwarded_https(headers, hops).unwrap_or(conn.tls);
    ClientAddr { ip, https }
}

/// The `hops`-th `X-Forwarded-Proto` value from the right (across header lines), or the
/// left-most when there are fewer: whether it says `https`. `None` without the header.
fn forwarded_https(headers: &HeaderMap, hops: usize) -> Option<bool> {
    let mut found: Option<&[u8]> = None;
    let mut n = 0usize;
    'outer: for value in headers.get_all(X_FORWARDED_PROTO).iter().rev() {
        for part in value.as_bytes().rsplit(|&b| b == b',') {
            found = Some(part);
            if n == hops {
                break 'outer;
            }
            n += 1;
        }
    }
    found.map(|v| v.trim_ascii().eq_ignore_ascii_case(b"https"))
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

/// What the gateway knows of a request, for the fields of its upstream request.
pub(crate) struct Origin<'a> {
    /// The listener's connection: the peer's address, and whether it is TLS.
    pub(crate) conn: Option<&'a ConnInfo>,
    /// The client as the listener determined it (used without `conn`).
    pub(crate) client: Option<ClientAddr>,
    /// Who the caller is, once authenticated.
    pub(crate) identity: Option<&'a Identity>,
    /// The gateway's id for the request.
    pub(crate) request_id: Option<&'a RequestId>,
    /// The URI's authority: the host of a request without `Host` (HTTP/2 clients).
    pub(crate) authority: Option<&'a Authority>,
}

/// How the upstream request goes out.
pub(crate) struct Outbound<'a> {
    /// Peers whose `X-Forwarded-*` values are kept.
    pub(crate) trusted: &'a TrustedProxies,
    /// The `X-Gateway-Version` value.
    pub(crate) version: &'a HeaderValue,
    /// What the gateway sets goes into [`AddedFields`], written after the request's own
    /// fields when the HTTP/1.1 head is encoded (no request header rules, which may name
    /// those fields); else into the map.
    pub(crate) direct: bool,
    /// The upstream speaks HTTP/2: no `Host` (`:authority` is the instance's address).
    pub(crate) h2: bool,
    /// The request is a WebSocket handshake to pass on (`Connection: upgrade` is kept).
    pub(crate) upgrade: bool,
}

/// The upstream request's fields, from the client's (see the crate's docs, "What is sent
/// upstream"), all but the route's request header rules: hop-by-hop fields and client-sent
/// `X-User-*` removed, `X-User-ID`/`-Role` from the identity, `X-Request-ID`,
/// `X-Gateway-Version`, `Host` and `X-Forwarded-*` set, `Expect` removed. What the gateway
/// sets goes into `fields` when `to.direct`, else into `headers`. `scan` is the request's
/// [`scan_request`].
#[inline]
pub(crate) fn rewrite_request(
    headers: &mut HeaderMap,
    fields: &mut AddedFields,
    scan: RequestScan,
    from: &Origin<'_>,
    to: &Outbound<'_>,
) {
    let present = scan.present;
    let mut added = if to.direct {
        Added::Fields { fields, present }
    } else {
        // Room for what is added below (request id, version, X-Forwarded-*), so the
        // map grows at most once instead of once per insert.
        headers.reserve(6);
        Added::Map
    };
    let had_host = scan.host.is_some();
    let original_host = scan.host.or_else(|| {
        from.authority
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    strip_found_hop_by_hop(headers, present, true, to.upgrade);
    if present & REQ_X_USER != 0 {
        remove_x_user(headers);
    }
    if let Some(id) = from.identity {
        if let Ok(v) = HeaderValue::from_str(&id.user_id) {
            added.set(headers, Field::UserId, FieldValue::Header(v));
        }
        if let Some(role) = id
            .role
            .as_deref()
            .and_then(|r| HeaderValue::from_str(r).ok())
        {
            added.set(headers, Field::UserRole, FieldValue::Header(role));
        }
    }
    if let Some(id) = from.request_id {
        if present & REQ_ID_SAME == 0 || !to.direct {
            let id = FieldValue::Header(id.header_value().clone());
            added.set(headers, Field::RequestId, id);
        }
    }
    let version = FieldValue::Header(to.version.clone());
    added.set(headers, Field::GatewayVersion, version);
    let (conn, client) = (from.conn, from.client);
    let peer = conn.map(|c| c.peer.ip()).or(client.map(|c| c.ip));
    let peer_trusted = conn.is_some_and(|c| to.trusted.contains(c.peer.ip()));
    let tls = conn.map_or_else(|| client.is_some_and(|c| c.https), |c| c.tls);
    // Host goes through unchanged; one taken out because `Connection` named it, or
    // missing (HTTP/2 clients send `:authority`), is set from the original.
    if let Some(h) = &original_host {
        if (!had_host || present & HOP_CONNECTION != 0) && !headers.contains_key(HOST) {
            headers.insert(HOST, h.clone());
        }
    }
    set_forwarded(
        headers,
        &mut added,
        peer,
        tls,
        peer_trusted,
        original_host.as_ref(),
    );
    // The listener answers `Expect: 100-continue` itself when the body is first read.
    if present & REQ_EXPECT != 0 {
        headers.remove(EXPECT);
    }
    if to.h2 {
        // HTTP/2 carries the authority in `:authority` (the instance's address, which the
        // pool is keyed on); a differing Host is not allowed (RFC 9113 §8.3.1). The
        // original host travels in X-Forwarded-Host.
        headers.remove(HOST);
    }
}

/// Removes every header whose name starts with `x-user-`.
fn remove_x_user(headers: &mut HeaderMap) {
    let mut found: SmallVec<[http::HeaderName; 2]> = SmallVec::new();
    for name in headers.keys() {
        if name.as_str().starts_with("x-user-") {
            found.push(name.clone());
        }
    }
    for name in found {
        headers.remove(name);
    }
}

/// Whether a request whose first `Upgrade` value is `websocket` is a WebSocket handshake.
pub(crate) fn is_websocket(req: &http::request::Parts) -> bool {
    req.version == http::Version::HTTP_11
        && req
            .headers
            .get_all(CONNECTION)
            .iter()
            .any(|v| has_token(v, b"upgrade"))
}

/// Sets `X-Forwarded-For`, `-Proto` and `-Host` for the upstream request (docs/http-answers.md, "Headers to the upstream").
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    added: &mut Added<'_>,
    peer: Option<IpAddr>,
    tls: bool,
    peer_trusted: bool,
    original_host: Option<&HeaderValue>,
) {
    match peer {
        Some(peer) => {
            let peer = canonical(peer);
            if peer_trusted && headers.contains_key(X_FORWARDED_FOR) {
                let mut s = String::with_capacity(64);
                for (i, v) in headers.get_all(X_FORWARDED_FOR).iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    s.push_str(v.to_str().unwrap_or(""));
                }
                s.push_str(", ");
                push_ip(&mut s, peer);
                match HeaderValue::try_from(s) {
                    Ok(v) => added.set(headers, Field::ForwardedFor, FieldValue::Header(v)),
                    Err(_) => added.remove(headers, Field::ForwardedFor),
                }
            } else {
                added.set(headers, Field::ForwardedFor, FieldValue::Ip(peer));
            }
        }
        None => {
            if !peer_trusted {
                added.remove(headers, Field::ForwardedFor);
            }
        }
    }
    if !(peer_trusted && headers.contains_key(X_FORWARDED_PROTO)) {
        let proto = if tls { "https" } else { "http" };
        added.set(headers, Field::ForwardedProto, FieldValue::Static(proto));
    }
    if !(peer_trusted && headers.contains_key(X_FORWARDED_HOST)) {
        match original_host {
            Some(h) => added.set(headers, Field::ForwardedHost, FieldValue::Header(h.clone())),
            None => added.remove(headers, Field::ForwardedHost),
        }
    }
}

/// Appends `ip` as text; IPv4 (the common case) without going through `fmt`.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let n = write_v4(v4, &mut buf);
            // Digits and dots.
            out.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
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
    use crate::fields::{ip_header_value, scan_request};
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
    fn forwarded_proto_is_believed_from_the_nearest_trusted_hop() {
        let https = |xff: &[&'static str], xfp: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in xff {
                h.append(X_FORWARDED_FOR, HeaderValue::from_static(v));
            }
            for v in xfp {
                h.append(X_FORWARDED_PROTO, HeaderValue::from_static(v));
            }
            client_addr(&conn("10.0.0.1:1"), &h, &trusted()).https
        };
        // The client claims https; the trusted proxy appends what it saw: http.
        assert!(!https(&["1.1.1.1"], &["https, http"]));
        assert!(!https(&["1.1.1.1"], &["https", "http"]));
        assert!(https(&["1.1.1.1"], &["http, https"]));
        // One value only: written by the trusted proxy.
        assert!(https(&["1.1.1.1"], &["https"]));
        assert!(!https(&[], &["http"]));
        // Two trusted hops (10.2.2.2 appended 1.1.1.1, our peer appended 10.2.2.2): the
        // client's scheme is the second value from the right; the client's own is ignored.
        assert!(https(&["1.1.1.1, 10.2.2.2"], &["http, https, http"]));
        assert!(!https(&["1.1.1.1, 10.2.2.2"], &["https, http, https"]));
        // Fewer values than hops (a proxy that overwrites): the left-most, a trusted hop's.
        assert!(https(&["1.1.1.1, 10.2.2.2"], &["https"]));
        // A spoofed XFF entry left of the client changes nothing.
        assert!(!https(&["6.6.6.6, 1.1.1.1"], &["https, http"]));
        // Without X-Forwarded-Proto: the connection's own scheme.
        assert!(!https(&["1.1.1.1"], &[]));
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
    fn added_lines_replace_the_requests_fields() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.insert(X_FORWARDED_HOST, HeaderValue::from_static("evil"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        let scan = scan_request(&h, None);
        let mut fields = AddedFields::default();
        let mut added = Added::Fields {
            fields: &mut fields,
            present: scan.present,
        };
        let host = HeaderValue::from_static("shop.example");
        set_forwarded(
            &mut h,
            &mut added,
            Some("10.2.3.40".parse().unwrap()),
            true,
            false,
            Some(&host),
        );
        assert_eq!(h.len(), 1, "client values removed: {h:?}");
        let mut lines = Vec::new();
        fields.encode(&mut lines);
        assert_eq!(
            std::str::from_utf8(&lines).unwrap(),
            "x-forwarded-for: 10.2.3.40\r\nx-forwarded-proto: https\r\n\
             x-forwarded-host: shop.example\r\n"
        );

        // The same through the map.
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        set_forwarded(
            &mut h,
            &mut Added::Map,
            Some("::ffff:10.2.3.40".parse().unwrap()),
            false,
            false,
            None,
        );
        assert_eq!(h[X_FORWARDED_FOR], "10.2.3.40");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        assert!(!h.contains_key(X_FORWARDED_HOST));
    }
}
