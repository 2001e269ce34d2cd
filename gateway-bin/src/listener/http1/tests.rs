//! The loop's head parser against httparse on the same bytes (property tests): the same
//! verdict, and for a request the loop takes, the same method, target and fields in the same
//! order; the head limits hold on partial heads.

use bytes::BytesMut;
use gw_edge::EdgeError;
use http::header::HeaderName;
use http::Method;
use proptest::prelude::*;

use super::head::{parse, HeadLimits, Parsed, MAX_HEADERS};

const LIMITS: HeadLimits = HeadLimits {
    line: 8192,
    head: 32 * 1024,
    headers: 100,
};

/// What httparse makes of `bytes`: `None` partial, `Some(Err)` malformed, else the head's
/// length, method, target and fields.
#[allow(clippy::type_complexity)]
fn reference(bytes: &[u8]) -> Option<Result<(usize, String, String, Vec<(String, Vec<u8>)>), ()>> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(bytes) {
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(Err(())),
        Ok(httparse::Status::Complete(len)) => Some(Ok((
            len,
            req.method.unwrap().to_string(),
            req.path.unwrap().to_string(),
            req.headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .collect(),
        ))),
    }
}

/// Whether the loop must leave a complete head to hyper (or refuse it).
fn not_simple(method: &str, fields: &[(String, Vec<u8>)], bytes: &[u8]) -> bool {
    let version_11 = bytes
        .windows(10)
        .any(|w| w == b" HTTP/1.1\r" || w == b" HTTP/1.1\n");
    !version_11
        || method == "CONNECT"
        || fields.iter().any(|(n, v)| {
            (n == "content-length" && v.as_slice() != b"0")
                || n == "transfer-encoding"
                || n == "expect"
                || n == "upgrade"
                || (n == "connection" && v.to_ascii_lowercase().windows(7).any(|w| w == b"upgrade"))
        })
}

fn head() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec![
        "GET", "HEAD", "POST", "DELETE", "OPTIONS", "CONNECT", "get", "PATCH", "G-T", "",
    ]);
    let target = prop::sample::select(vec![
        "/",
        "/a/b?c=d",
        "*",
        "http://h.test/x",
        "/%zz",
        "/a%20b",
        "/a\\b",
        "/é",
        "",
        "/a b",
        "//x",
        "/x#frag",
    ]);
    let version = prop::sample::select(vec![
        "HTTP/1.1",
        "HTTP/1.0",
        "HTTP/2.0",
        "HTTP/1.1 ",
        "http/1.1",
    ]);
    let name = prop::sample::select(vec![
        "Host",
        "host",
        "User-Agent",
        "Accept",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "Expect",
        "Upgrade",
        "X_Under",
        "x-custom",
        "Bad Name",
        "",
        "Cookie",
    ]);
    let value = prop::sample::select(vec![
        "a",
        "0",
        "5",
        "chunked",
        "close",
        "keep-alive, Upgrade",
        "100-continue",
        "",
        " padded ",
        "v\u{7f}",
        "tab\there",
        "é",
    ]);
    let eol = prop::sample::select(vec!["\r\n", "\n"]);
    (
        method,
        target,
        version,
        prop::collection::vec((name, value, eol.clone()), 0..6),
        eol,
        any::<bool>(),
    )
        .prop_map(|(m, t, v, fields, end, whole)| {
            let mut out = format!("{m} {t} {v}\r\n").into_bytes();
            for (n, val, e) in fields {
                out.extend_from_slice(format!("{n}: {val}{e}").as_bytes());
            }
            if whole {
                out.extend_from_slice(end.as_bytes());
            }
            out
        })
}

/// A head with a few bytes changed, inserted or removed.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        head(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..4),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, byte, kind) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_httparse(bytes in prop_oneof![head(), mutated()]) {
        let mut buf = BytesMut::from(&bytes[..]);
        let ours = parse(&mut buf, &LIMITS);
        match (reference(&bytes), ours) {
            (None, Parsed::Partial) => prop_assert_eq!(buf.len(), bytes.len()),
            (None, other) => prop_assert!(false, "httparse: partial; ours: {}", kind(&other)),
            (Some(Err(())), Parsed::HandOff) => prop_assert_eq!(buf.len(), bytes.len()),
            (Some(Err(())), other) => prop_assert!(false, "httparse: error; ours: {}", kind(&other)),
            (Some(Ok((len, method, target, fields))), Parsed::Simple(head)) => {
                prop_assert!(!not_simple(&method, &fields, &bytes), "took a request for hyper");
                prop_assert_eq!(buf.len(), bytes.len() - len, "the head is taken out");
                let req = head.request;
                prop_assert_eq!(req.method().as_str(), method.as_str());
                // The http types drop a fragment (it never goes upstream).
                let target = target.split('#').next().unwrap_or("");
                prop_assert_eq!(req.uri().to_string(), target);
                let got: Vec<(String, Vec<u8>)> = req
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                    .collect();
                // HeaderMap groups repeated names; compare as multisets per name.
                let mut want = fields.clone();
                want.sort();
                let mut got = got;
                got.sort();
                prop_assert_eq!(got, want);
            }
            (Some(Ok((_, method, _, fields))), Parsed::HandOff) => {
                prop_assert!(
                    not_simple(&method, &fields, &bytes)
                        || Method::from_bytes(method.as_bytes()).is_err()
                        || fields.iter().any(|(n, _)| HeaderName::from_bytes(n.as_bytes()).is_err()),
                    "handed off a simple request"
                );
                prop_assert_eq!(buf.len(), bytes.len(), "nothing taken out");
            }
            (Some(Ok(_)), Parsed::Refused(e)) => {
                // Only a target or field value the http types refuse.
                prop_assert_eq!(e, EdgeError::InvalidTarget);
            }
            (Some(Ok(_)), Parsed::Partial) => prop_assert!(false, "httparse: complete; ours: partial"),
        }
    }

    #[test]
    fn limits_hold_on_partial_heads(extra in 0usize..20_000, fields in 0usize..150) {
        let small = HeadLimits { line: 256, head: 1024, headers: 10 };
        let mut bytes = format!("GET /{} HTTP/1.1\r\nHost: h\r\n", "a".repeat(extra)).into_bytes();
        for i in 0..fields {
            bytes.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        let line = extra + 16;
        let mut buf = BytesMut::from(&bytes[..]);
        match parse(&mut buf, &small) {
            Parsed::Refused(EdgeError::UriTooLong) => prop_assert!(line > small.line),
            Parsed::Refused(EdgeError::HeadTooLarge) => {
                prop_assert!(line <= small.line, "the line is judged first");
                prop_assert!(bytes.len() > small.head || fields + 1 > small.headers);
            }
            Parsed::Partial => {
                prop_assert!(line <= small.line && bytes.len() <= small.head);
            }
            other => prop_assert!(false, "{}", kind(&other)),
        }
    }
}

fn kind(p: &Parsed) -> &'static str {
    match p {
        Parsed::Partial => "partial",
        Parsed::Simple(_) => "simple",
        Parsed::Refused(_) => "refused",
        Parsed::HandOff => "hand-off",
    }
}
