//! Trusted proxies, the client address, and the headers sent upstream and back.

use std::net::IpAddr;

pub(crate) use gw_core::headers::has_token;
use gw_core::headers::{
    X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_GATEWAY_VERSION, X_REQUEST_ID,
    X_USER_ID, X_USER_ROLE,
};
use gw_core::{ClientAddr, ConnInfo, Identity, RequestId};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TE,
    TRANSFER_ENCODING, UPGRADE,
};
use http::uri::Authority;
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

static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Which hop-by-hop headers a map holds (one bit each), found in one pass over its names.
pub(crate) const HOP_CONNECTION: u16 = 1;
const HOP_TE: u16 = 1 << 1;
const HOP_UPGRADE: u16 = 1 << 2;
/// keep-alive, proxy-connection, proxy-authenticate, proxy-authorization, transfer-encoding.
pub(crate) const HOP_OTHER: u16 = 1 << 3;

/// `Expect` (request scan only).
pub(crate) const REQ_EXPECT: u16 = 1 << 4;
/// A name starting with `x-user-` (request scan only).
pub(crate) const REQ_X_USER: u16 = 1 << 5;
/// `X-Request-ID`, one value, the gateway's own id already (request scan only).
pub(crate) const REQ_ID_SAME: u16 = 1 << 6;
/// `X-Request-ID` (request scan only).
pub(crate) const REQ_X_REQUEST_ID: u16 = 1 << 7;
/// `X-Gateway-Version` (request scan only).
pub(crate) const REQ_X_GATEWAY_VERSION: u16 = 1 << 8;
/// `X-Forwarded-For` (request scan only).
pub(crate) const REQ_XFF: u16 = 1 << 9;
/// `X-Forwarded-Proto` (request scan only).
pub(crate) const REQ_XFP: u16 = 1 << 10;
/// `X-Forwarded-Host` (request scan only).
pub(crate) const REQ_XFH: u16 = 1 << 11;

/// What the proxy needs to know of a request's fields, found in one pass over them instead of
/// one hash lookup per question.
#[derive(Debug, Default)]
pub(crate) struct RequestScan {
    /// [`hop_by_hop_bit`]s and the `REQ_*` bits.
    pub(crate) present: u16,
    /// The first `Host` value.
    pub(crate) host: Option<HeaderValue>,
    /// The first `Content-Length` value, when it is a number.
    pub(crate) content_length: Option<u64>,
    /// The first `Upgrade` value is `websocket`.
    pub(crate) websocket: bool,
}

/// Scans a request's fields; `request_id` is the gateway's id for it, if any.
pub(crate) fn scan_request(headers: &HeaderMap, request_id: Option<&[u8]>) -> RequestScan {
    let mut scan = RequestScan::default();
    let mut length_seen = false;
    let mut upgrade_seen = false;
    for (name, value) in headers {
        let bit = if name == HOST {
            if scan.host.is_none() {
                scan.host = Some(value.clone());
            }
            0
        } else if name == CONTENT_LENGTH {
            if !length_seen {
                length_seen = true;
                scan.content_length = gw_core::headers::parse_content_length(value.as_bytes());
            }
            0
        } else if name == EXPECT {
            REQ_EXPECT
        } else if name == UPGRADE {
            if !upgrade_seen {
                upgrade_seen = true;
                scan.websocket = value.as_bytes().eq_ignore_ascii_case(b"websocket");
            }
            HOP_UPGRADE
        } else {
            match name.as_str() {
                "x-request-id" => {
                    let first = scan.present & REQ_X_REQUEST_ID == 0;
                    if first && request_id == Some(value.as_bytes()) {
                        scan.present |= REQ_ID_SAME;
                    } else {
                        scan.present &= !REQ_ID_SAME;
                    }
                    REQ_X_REQUEST_ID
                }
                "x-gateway-version" => REQ_X_GATEWAY_VERSION,
                "x-forwarded-for" => REQ_XFF,
                "x-forwarded-proto" => REQ_XFP,
                "x-forwarded-host" => REQ_XFH,
                s if s.starts_with("x-user-") => REQ_X_USER,
                _ => hop_by_hop_bit(name),
            }
        };
        scan.present |= bit;
    }
    scan
}

/// A field the proxy sets on a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    UserId,
    UserRole,
    RequestId,
    GatewayVersion,
    ForwardedFor,
    ForwardedProto,
    ForwardedHost,
}

const FIELDS: usize = 7;

/// Each [`Field`]'s line start, in [`Field`] order.
const LINE_STARTS: [&[u8]; FIELDS] = [
    b"x-user-id: ",
    b"x-user-role: ",
    b"x-request-id: ",
    b"x-gateway-version: ",
    b"x-forwarded-for: ",
    b"x-forwarded-proto: ",
    b"x-forwarded-host: ",
];

impl Field {
    fn name(self) -> HeaderName {
        match self {
            Field::UserId => X_USER_ID,
            Field::UserRole => X_USER_ROLE,
            Field::RequestId => X_REQUEST_ID,
            Field::GatewayVersion => X_GATEWAY_VERSION,
            Field::ForwardedFor => X_FORWARDED_FOR,
            Field::ForwardedProto => X_FORWARDED_PROTO,
            Field::ForwardedHost => X_FORWARDED_HOST,
        }
    }

    /// Its bit in [`RequestScan::present`] (`X-User-*` fields the client sent are removed
    /// as a group before any is set).
    fn bit(self) -> u16 {
        match self {
            Field::UserId | Field::UserRole => 0,
            Field::RequestId => REQ_X_REQUEST_ID,
            Field::GatewayVersion => REQ_X_GATEWAY_VERSION,
            Field::ForwardedFor => REQ_XFF,
            Field::ForwardedProto => REQ_XFP,
            Field::ForwardedHost => REQ_XFH,
        }
    }
}

/// A value [`Added::set`] writes.
#[derive(Debug)]
pub(crate) enum FieldValue {
    Header(HeaderValue),
    Static(&'static str),
    Ip(IpAddr),
}

/// The fields the proxy sets on an HTTP/1.1 request, written after the request's own when
/// its head is encoded. Inserting each into the request's map instead hashes its name, may
/// grow the map, and allocates the client address's value.
#[derive(Debug, Default)]
pub(crate) struct AddedFields([Option<FieldValue>; FIELDS]);

impl AddedFields {
    /// Appends the fields as HTTP/1.1 lines (`name: value\r\n`).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for (value, start) in self.0.iter().zip(LINE_STARTS) {
            let Some(value) = value else { continue };
            out.extend_from_slice(start);
            match value {
                FieldValue::Header(v) => out.extend_from_slice(v.as_bytes()),
                FieldValue::Static(s) => out.extend_from_slice(s.as_bytes()),
                FieldValue::Ip(IpAddr::V4(ip)) => {
                    let mut buf = [0u8; 15];
                    let n = write_v4(*ip, &mut buf);
                    out.extend_from_slice(&buf[..n]);
                }
                FieldValue::Ip(ip) => out.extend_from_slice(ip.to_string().as_bytes()),
            }
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Where the fields the proxy sets on a request go.
pub(crate) enum Added<'a> {
    /// Into the request's map (HTTP/2 upstreams; routes with request header rules, which
    /// may name them).
    Map,
    /// Into [`AddedFields`]; a field of the same name that the request held (its bit in
    /// `present`, from [`scan_request`]) is removed from the map.
    Fields {
        fields: &'a mut AddedFields,
        present: u16,
    },
}

impl Added<'_> {
    /// Sets `field` to `value`, replacing what the request held.
    pub(crate) fn set(&mut self, headers: &mut HeaderMap, field: Field, value: FieldValue) {
        match self {
            Added::Map => {
                let value = match value {
                    FieldValue::Header(v) => Some(v),
                    FieldValue::Static(s) => Some(HeaderValue::from_static(s)),
                    FieldValue::Ip(ip) => ip_header_value(ip),
                };
                match value {
                    Some(v) => {
                        headers.insert(field.name(), v);
                    }
                    None => {
                        headers.remove(field.name());
                    }
                }
            }
            Added::Fields { fields, present } => {
                if *present & field.bit() != 0 {
                    headers.remove(field.name());
                }
                fields.0[field as usize] = Some(value);
            }
        }
    }

    /// Removes `field` from the request.
    pub(crate) fn remove(&mut self, headers: &mut HeaderMap, field: Field) {
        let held = match self {
            Added::Map => true,
            Added::Fields { present, .. } => *present & field.bit() != 0,
        };
        if held {
            headers.remove(field.name());
        }
    }
}

pub(crate) fn hop_by_hop_bit(name: &HeaderName) -> u16 {
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

fn hop_by_hop_present(headers: &HeaderMap) -> u16 {
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

/// [`strip_hop_by_hop`] with the presence bits already known (from [`scan_request`]).
pub(crate) fn strip_found_hop_by_hop(
    headers: &mut HeaderMap,
    found: u16,
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
pub(crate) fn names_other_fields(connection: impl AsRef<[u8]>) -> bool {
    connection
        .as_ref()
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

/// Sets `X-Forwarded-For`, `-Proto` and `-Host` for the upstream request (SPEC §7).
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

/// Writes IPv4 `ip` as text into `buf`, without going through `fmt`; returns its length.
fn write_v4(ip: std::net::Ipv4Addr, buf: &mut [u8; 15]) -> usize {
    let mut n = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
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
    n
}

/// `ip` as a header value: IPv4 (the common case) written on the stack, one exact allocation.
fn ip_header_value(ip: IpAddr) -> Option<HeaderValue> {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let n = write_v4(v4, &mut buf);
            HeaderValue::from_bytes(&buf[..n]).ok()
        }
        IpAddr::V6(_) => HeaderValue::try_from(ip.to_string()).ok(),
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

    #[test]
    fn scan_finds_fields_in_one_pass() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("shop.example"));
        h.append(CONTENT_LENGTH, HeaderValue::from_static(" 12 "));
        h.append(CONTENT_LENGTH, HeaderValue::from_static("99"));
        h.insert(UPGRADE, HeaderValue::from_static("WebSocket"));
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(EXPECT, HeaderValue::from_static("100-continue"));
        h.insert("x-user-id", HeaderValue::from_static("u"));
        h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.insert("x-forwarded-host", HeaderValue::from_static("h"));
        h.insert("x-request-id", HeaderValue::from_static("id-1"));
        let scan = scan_request(&h, Some(b"id-1"));
        assert_eq!(scan.host.as_ref().unwrap(), "shop.example");
        assert_eq!(scan.content_length, Some(12), "the first value counts");
        assert!(scan.websocket);
        let want = HOP_CONNECTION
            | HOP_UPGRADE
            | REQ_EXPECT
            | REQ_X_USER
            | REQ_XFF
            | REQ_XFH
            | REQ_X_REQUEST_ID
            | REQ_ID_SAME;
        assert_eq!(scan.present, want);

        // Another id, or the same one twice, is not "the gateway's id already".
        assert_eq!(scan_request(&h, Some(b"id-2")).present & REQ_ID_SAME, 0);
        h.append("x-request-id", HeaderValue::from_static("id-1"));
        assert_eq!(scan_request(&h, Some(b"id-1")).present & REQ_ID_SAME, 0);
        assert_eq!(scan_request(&HeaderMap::new(), None).present, 0);
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
