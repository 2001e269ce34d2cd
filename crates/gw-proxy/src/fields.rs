//! The request's and the answer's fields as the proxy reads and writes them: one scan of a
//! request's fields, the fields the gateway adds (written after the request's own when an
//! HTTP/1.1 head is encoded, or put into the map), and the hop-by-hop fields.

use std::net::IpAddr;

use gw_core::headers::has_token;
use gw_core::headers::{
    X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_GATEWAY_VERSION, X_REQUEST_ID,
    X_USER_ID, X_USER_ROLE,
};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TE,
    TRANSFER_ENCODING, UPGRADE,
};
use smallvec::SmallVec;

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

/// Writes IPv4 `ip` as text into `buf`, without going through `fmt`; returns its length.
pub(crate) fn write_v4(ip: std::net::Ipv4Addr, buf: &mut [u8; 15]) -> usize {
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
pub(crate) fn ip_header_value(ip: IpAddr) -> Option<HeaderValue> {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let n = write_v4(v4, &mut buf);
            HeaderValue::from_bytes(&buf[..n]).ok()
        }
        IpAddr::V6(_) => HeaderValue::try_from(ip.to_string()).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
