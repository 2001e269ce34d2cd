//! Property tests of the HTTP/1.1 client's answer-head and chunk-size parsers (through
//! `gw_proxy::h1_probe`): a differential against `httparse::Response` on random, mutated and
//! arbitrary bytes — the same verdict, status, version and fields, with the client's own
//! rules (fields it uses and leaves out, `Content-Length` checks, framing per RFC 9112 §6.3,
//! keep-alive) modelled — and chunk-size lines that never panic and never overflow.
//!
//! Each property runs a bounded number of cases (`PROPTEST_CASES` raises it for a longer
//! local run); `fuzz/fuzz_targets/h1_response_head.rs` checks the same for long campaigns.

use std::collections::BTreeMap;

use gw_proxy::h1_probe::{parse_chunk_size, parse_response_head, ParsedHead};
use http::{HeaderName, HeaderValue};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// `cases` unless `PROPTEST_CASES` says otherwise; nothing is written to disk on failure
/// (the failing input is in the panic message).
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The client's field limit (`MAX_HEADERS` in `h1.rs`).
const MAX_HEADERS: usize = 128;

// ---------------------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------------------

/// What httparse says of the bytes, with the fields copied out.
enum Verdict {
    Error,
    Partial,
    Complete {
        len: usize,
        code: u16,
        http10: bool,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

fn httparse_verdict(bytes: &[u8]) -> Verdict {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(bytes) {
        Err(_) => Verdict::Error,
        Ok(httparse::Status::Partial) => Verdict::Partial,
        Ok(httparse::Status::Complete(len)) => Verdict::Complete {
            len,
            code: res.code.expect("complete"),
            http10: res.version == Some(0),
            fields: res
                .headers
                .iter()
                .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
                .collect(),
        },
    }
}

fn tokens(value: &[u8]) -> impl Iterator<Item = String> + '_ {
    value
        .split(|&b| b == b',')
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
}

/// `Content-Length`: digits (surrounding whitespace allowed) that fit a `u64`.
fn content_length(value: &[u8]) -> Option<u64> {
    let digits = std::str::from_utf8(value.trim_ascii()).ok()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "te",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
];

/// What the client should make of a complete head: the fields it passes on (by name, in
/// order), the framing (RFC 9112 §6.3), keep-alive (RFC 9112 §9.3, §9.6) — or every reason
/// it may refuse the head for.
struct Expected {
    fields: BTreeMap<String, Vec<Vec<u8>>>,
    framing: String,
    keep_alive: bool,
    hop_clean: bool,
    /// Both `Transfer-Encoding` and `Content-Length`.
    te_and_cl: bool,
    /// A `Connection: close` followed by a later `Connection` field with `keep-alive`.
    close_then_keep_alive: bool,
}

fn expected(
    code: u16,
    http10: bool,
    fields: &[(Vec<u8>, Vec<u8>)],
    head_request: bool,
) -> Result<Expected, Vec<&'static str>> {
    let mut errors = Vec::new();
    if !(100..=999).contains(&code) {
        errors.push("invalid status code");
    }
    let switching = code == 101;
    let mut kept: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut length: Option<u64> = None;
    let mut te_final: Option<String> = None;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut close_then_keep_alive = false;
    let mut upgrade = false;
    for (name, value) in fields {
        let Ok(name) = HeaderName::from_bytes(name) else {
            errors.push("invalid header name");
            continue;
        };
        let drop = match name.as_str() {
            "content-length" => {
                match content_length(value) {
                    None => errors.push("invalid content-length"),
                    Some(n) if length.is_some_and(|l| l != n) => {
                        errors.push("conflicting content-length")
                    }
                    Some(n) => length = Some(n),
                }
                false
            }
            "transfer-encoding" => {
                // The final coding of the last field (the fields form one list).
                te_final = tokens(value).last();
                true
            }
            "connection" => {
                let t: Vec<String> = tokens(value).collect();
                let has = |x: &str| t.iter().any(|y| y == x);
                if has("close") {
                    close = true;
                } else if has("keep-alive") {
                    close_then_keep_alive |= close;
                    keep_alive_token = true;
                }
                upgrade |= has("upgrade");
                let names_other = t
                    .iter()
                    .any(|x| !["", "close", "keep-alive", "upgrade"].contains(&x.as_str()));
                !switching && !names_other
            }
            "keep-alive" | "proxy-connection" | "proxy-authenticate" | "proxy-authorization" => {
                !switching
            }
            _ => false,
        };
        if drop {
            continue;
        }
        if HeaderValue::from_bytes(value).is_err() {
            errors.push("invalid header value");
        }
        kept.entry(name.as_str().to_owned())
            .or_default()
            .push(value.clone());
    }
    if switching && !upgrade {
        errors.push("101 without Connection: upgrade");
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let framing = if switching {
        "Upgrade".to_owned()
    } else if head_request || code < 200 || code == 204 || code == 304 {
        "Empty".to_owned()
    } else if let Some(last) = &te_final {
        if last == "chunked" {
            "Chunked".to_owned()
        } else {
            // A transfer coding other than chunked last: read until the upstream closes.
            "Eof".to_owned()
        }
    } else if let Some(n) = length {
        format!("Length({n})")
    } else {
        "Eof".to_owned()
    };
    let hop_clean = !kept.keys().any(|k| HOP_BY_HOP.contains(&k.as_str()));
    let te_and_cl = te_final.is_some() && length.is_some();
    if te_and_cl {
        // An intermediary removes `Content-Length` before forwarding such a message.
        kept.remove("content-length");
    }
    Ok(Expected {
        fields: kept,
        framing,
        // `close` in any field closes; HTTP/1.0 closes unless `keep-alive` was asked.
        keep_alive: !close && (!http10 || keep_alive_token),
        hop_clean,
        te_and_cl,
        close_then_keep_alive,
    })
}

fn fields_of(head: &ParsedHead) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (name, value) in head.response.headers() {
        out.entry(name.as_str().to_owned())
            .or_default()
            .push(value.as_bytes().to_vec());
    }
    out
}

/// The client's differences from RFC 9112 that the ignored tests below pin down, allowed
/// here so that the differential finds any other:
/// - with `Transfer-Encoding` (any final coding) and `Content-Length`, the client frames by
///   `Content-Length` when the final coding is not chunked (the RFC: read until close), and
///   passes `Content-Length` on when it is (the RFC: an intermediary removes it);
/// - a `Connection: keep-alive` field after a `Connection: close` one keeps the connection.
fn known_difference(got: &ParsedHead, want: &Expected) -> bool {
    let fields = &want.fields;
    let mut got_fields = fields_of(got);
    if want.te_and_cl {
        got_fields.remove("content-length");
    }
    let framing_ok = got.framing == want.framing
        || (want.te_and_cl && want.framing == "Eof" && got.framing.starts_with("Length("));
    let keep_alive_ok =
        got.keep_alive == want.keep_alive || (want.close_then_keep_alive && got.keep_alive);
    got_fields == *fields && framing_ok && keep_alive_ok
}

/// The differential on one input; `Err` says what differs.
fn check_head(bytes: &[u8], head_request: bool) -> Result<(), String> {
    let got = parse_response_head(bytes, head_request);
    match (httparse_verdict(bytes), &got) {
        (Verdict::Error, Err(_)) | (Verdict::Partial, Ok(None)) => Ok(()),
        (
            Verdict::Complete {
                len,
                code,
                http10,
                fields,
            },
            _,
        ) => match (expected(code, http10, &fields, head_request), got) {
            (Err(reasons), Err(why)) if reasons.contains(&why) => Ok(()),
            (Ok(want), Ok(Some(head))) => {
                let same = head.len == len
                    && head.response.status().as_u16() == code
                    && (head.response.version() == http::Version::HTTP_10) == http10
                    && head.hop_clean == want.hop_clean;
                let rules = (fields_of(&head) == want.fields
                    && head.framing == want.framing
                    && head.keep_alive == want.keep_alive)
                    || known_difference(&head, &want);
                if same && rules {
                    Ok(())
                } else {
                    Err(format!(
                        "got {head:?}; want len {len}, {code}, fields {:?}, {}, keep-alive {}, hop_clean {}",
                        want.fields, want.framing, want.keep_alive, want.hop_clean
                    ))
                }
            }
            (want, got) => Err(format!("got {got:?}, want {:?}", want.map(|w| w.framing))),
        },
        (Verdict::Error, got) => Err(format!("httparse refused it, the client: {got:?}")),
        (Verdict::Partial, got) => Err(format!("httparse wants more, the client: {got:?}")),
    }
}

// ---------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------

fn field() -> impl Strategy<Value = (String, Vec<u8>)> {
    let framing = prop_oneof![
        (
            prop::sample::select(&["Content-Length", "content-length", "CONTENT-LENGTH"][..]),
            prop::sample::select(
                &[
                    "0",
                    "5",
                    " 7 ",
                    "5, 5",
                    "-1",
                    "+5",
                    "18446744073709551616",
                    "abc",
                    ""
                ][..]
            ),
        ),
        (
            prop::sample::select(&["Transfer-Encoding", "transfer-encoding"][..]),
            prop::sample::select(
                &[
                    "chunked",
                    "gzip, chunked",
                    "chunked, gzip",
                    "gzip",
                    "Chunked ",
                    "identity",
                    ""
                ][..]
            ),
        ),
        (
            prop::sample::select(&["Connection", "connection"][..]),
            prop::sample::select(
                &[
                    "close",
                    "keep-alive",
                    "upgrade",
                    "X-A",
                    "close, x-a",
                    "Upgrade",
                    "keep-alive, te",
                    ""
                ][..]
            ),
        ),
    ];
    let other = (
        prop::sample::select(
            &[
                "Keep-Alive",
                "Proxy-Connection",
                "Proxy-Authenticate",
                "Proxy-Authorization",
                "TE",
                "Upgrade",
                "X-A",
                "x-a",
                "Set-Cookie",
                "Date",
                "Server",
                "Vary",
                "ETag",
                "Trailer",
                "x_y",
                "X-Custom",
            ][..],
        ),
        prop::sample::select(&["1", "a b", "", "\tv", "timeout=5", "trailers", "websocket"][..]),
    );
    prop_oneof![
        framing.prop_map(|(n, v)| (n.to_owned(), v.as_bytes().to_vec())),
        other.prop_map(|(n, v)| (n.to_owned(), v.as_bytes().to_vec())),
        ("[!-~]{1,8}", prop::collection::vec(any::<u8>(), 0..6)),
    ]
}

/// A head a server could send (or nearly), and some body bytes after it.
fn head() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(&["HTTP/1.1", "HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "http/1.1"][..]),
        prop::sample::select(
            &[
                "200", "101", "100", "204", "304", "404", "099", "000", "999", "600", "20", "2000",
            ][..],
        ),
        prop::sample::select(&[" OK", "", " ", " Not Found", " x\ty"][..]),
        prop::collection::vec(field(), 0..7),
        any::<bool>(),
        prop::sample::select(&["", "hello", "0\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"][..]),
    )
        .prop_map(|(version, code, reason, fields, bare_lf, body)| {
            let eol: &[u8] = if bare_lf { b"\n" } else { b"\r\n" };
            let mut out = format!("{version} {code}{reason}").into_bytes();
            out.extend_from_slice(eol);
            for (name, value) in fields {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(&value);
                out.extend_from_slice(eol);
            }
            out.extend_from_slice(eol);
            out.extend_from_slice(body.as_bytes());
            out
        })
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutated_head() -> impl Strategy<Value = Vec<u8>> {
    let mutation = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<usize>(),
            prop::sample::select(&b"\r\n :\t,\0\x7f\x80"[..])
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ];
    (head(), prop::collection::vec(mutation, 1..4)).prop_map(|(mut bytes, mutations)| {
        for m in mutations {
            let n = bytes.len().max(1);
            match m {
                Mutation::Flip(i, b) if !bytes.is_empty() => bytes[i % n] ^= b,
                Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
                Mutation::Remove(i) if !bytes.is_empty() => {
                    bytes.remove(i % n);
                }
                Mutation::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
                _ => {}
            }
        }
        bytes
    })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn heads_agree_with_httparse(bytes in head(), head_request in any::<bool>()) {
        if let Err(why) = check_head(&bytes, head_request) {
            prop_assert!(false, "{:?}: {}", String::from_utf8_lossy(&bytes), why);
        }
    }

    #[test]
    fn mutated_heads_agree_with_httparse(bytes in mutated_head(), head_request in any::<bool>()) {
        if let Err(why) = check_head(&bytes, head_request) {
            prop_assert!(false, "{:?}: {}", String::from_utf8_lossy(&bytes), why);
        }
    }

    #[test]
    fn arbitrary_bytes_agree_with_httparse(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            prop::collection::vec(any::<u8>(), 0..48).prop_map(|mut b| {
                let mut v = b"HTTP/1.1 200 OK\r\n".to_vec();
                v.append(&mut b);
                v
            }),
        ],
    ) {
        if let Err(why) = check_head(&bytes, false) {
            prop_assert!(false, "{:?}: {}", String::from_utf8_lossy(&bytes), why);
        }
    }
}

/// More fields than the client takes: refused, as httparse refuses them.
#[test]
fn too_many_fields_are_refused() {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        head.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    assert_eq!(
        parse_response_head(&head, false).unwrap_err(),
        "too many headers"
    );
    check_head(&head, false).unwrap();
}

// ---------------------------------------------------------------------------------------
// Chunk-size lines.
// ---------------------------------------------------------------------------------------

/// RFC 9112 §7.1 `chunk-size [ chunk-ext ]` as the client reads it: hex digits before any
/// `;`, surrounding whitespace allowed; at most 15 digits (so no sum can overflow).
fn reference_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

fn chunk_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (
            "[ \t]{0,2}",
            "[0-9a-fA-F]{1,20}",
            "[ \t]{0,2}",
            prop::option::of(";[a-z=\" ]{0,8}"),
        )
            .prop_map(|(a, d, b, ext)| format!("{a}{d}{b}{}", ext.unwrap_or_default()).into_bytes()),
        1 => "[0-9a-fxX+\\-; \t]{0,20}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..24),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn chunk_sizes_agree_with_reference(line in chunk_line()) {
        let got = parse_chunk_size(&line);
        prop_assert_eq!(got, reference_chunk_size(&line), "{:?}", String::from_utf8_lossy(&line));
        // Overflow is an error, never a wrapped size.
        let digits = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
        let significant = digits.iter().skip_while(|&&b| b == b'0').count();
        if digits.iter().all(u8::is_ascii_hexdigit) && significant > 16 {
            prop_assert_eq!(got, None);
        }
    }
}

#[test]
fn chunk_size_overflow_is_an_error() {
    assert_eq!(
        parse_chunk_size(b"fffffffffffffff"),
        Some(0x0fff_ffff_ffff_ffff)
    );
    assert_eq!(parse_chunk_size(b"ffffffffffffffff"), None);
    assert_eq!(parse_chunk_size(b"10000000000000000"), None);
    assert_eq!(parse_chunk_size(b"1ffffffffffffffffffff"), None);
}

// ---------------------------------------------------------------------------------------
// Known differences from RFC 9112 (ignored until fixed; the differential allows them).
// ---------------------------------------------------------------------------------------

/// RFC 9112 §6.3 (4): a response whose final transfer coding is not chunked is read until
/// the connection closes, whatever its `Content-Length`. The client frames it by
/// `Content-Length` and keeps the connection: the rest of the body would be read as the
/// next request's answer.
#[test]
#[ignore = "known difference from RFC 9112 §6.3"]
fn te_not_chunked_with_content_length_reads_to_close() {
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n";
    let parsed = parse_response_head(head, false).unwrap().unwrap();
    assert_eq!(parsed.framing, "Eof");
}

/// RFC 9112 §6.3 (3): an intermediary that forwards a message with both
/// `Transfer-Encoding` and `Content-Length` removes `Content-Length` first. The client
/// decodes the chunks but passes `Content-Length` on, so the answer to the client announces
/// a length that has nothing to do with its body.
#[test]
#[ignore = "known difference from RFC 9112 §6.3"]
fn te_chunked_with_content_length_drops_content_length() {
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
    let parsed = parse_response_head(head, false).unwrap().unwrap();
    assert_eq!(parsed.framing, "Chunked");
    assert!(parsed.response.headers().get("content-length").is_none());
}

/// RFC 9112 §9.6: a `close` option means the connection closes after this answer; a
/// later `Connection: keep-alive` field does not undo it.
#[test]
#[ignore = "known difference from RFC 9112 §9.6"]
fn close_in_any_connection_field_closes() {
    let head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
    let parsed = parse_response_head(head, false).unwrap().unwrap();
    assert!(!parsed.keep_alive);
}
