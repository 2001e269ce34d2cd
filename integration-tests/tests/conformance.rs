//! A conformance corpus for request smuggling and request confusion on the HTTP/1.1 listener.
//!
//! Every case is the raw bytes a client sends, replayed against one gateway in front of a
//! [`RecordingUpstream`] (which reads what the gateway forwards strictly), and judged on both
//! sides: what the client got back and what reached the upstream. For each request in its
//! bytes a case expects one of
//!
//! - a refusal: one 4xx answer (of the statuses listed, any 4xx when none are) and nothing
//!   at the upstream;
//! - a single forward: exactly one request at the upstream, framed by exactly one
//!   `Content-Length` or by `Transfer-Encoding: chunked` alone (or nothing, for an empty
//!   body), with the expected target and body, and one answer to the client;
//! - either of the two, where RFC 9112 leaves the choice to the server;
//! - for a malformed request body: a refusal, where the upstream may have seen the start of
//!   the request (bodies are streamed, as Envoy does; nginx buffers them) but never a whole
//!   one — its connection is closed in the middle of the body.
//!
//! The cases run at once, each from its own loopback address (`127.0.7.N`), so the upstream's
//! requests are told apart by the `X-Forwarded-For` the gateway sets. One run reports every
//! case that fails, with what the client got and what the upstream recorded.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use integration_tests::raw::{
    raw_exchange_with, Exchange, RawAnswer, Recorded, RecordingUpstream, Violation,
};
use integration_tests::TestGateway;

/// The `Host` the cases send.
const HOST: &str = "gw.test";

/// How long a case's connection is read when the gateway keeps it open.
const READ_FOR: Duration = Duration::from_secs(3);

/// A further check of a forwarded request.
type Check = fn(&Recorded) -> Result<(), String>;

/// A request expected to be forwarded once.
struct Fwd {
    /// The request target the upstream must see.
    target: String,
    /// The body the upstream must get.
    body: Vec<u8>,
    /// A further check of the forwarded request.
    check: Option<Check>,
}

/// What must become of one request of a case.
enum Expect {
    /// One 4xx answer (one of these statuses; any 4xx when empty), nothing forwarded.
    Reject(&'static [u16]),
    /// Forwarded once, answered once.
    Forward(Fwd),
    /// Either of the two; a 200 answer (the upstream's) means it was forwarded.
    Either(&'static [u16], Fwd),
    /// One 4xx answer; the upstream may have seen the start of the request (bodies are
    /// streamed) but never a whole one: its connection was closed mid-body.
    RejectAborted(&'static [u16]),
}

/// One entry of the corpus.
struct Case {
    name: &'static str,
    wire: Vec<u8>,
    expect: Vec<Expect>,
}

fn case(name: &'static str, wire: impl Into<Vec<u8>>, expect: Vec<Expect>) -> Case {
    Case {
        name,
        wire: wire.into(),
        expect,
    }
}

fn fwd(target: &str, body: &str) -> Fwd {
    Fwd {
        target: target.to_string(),
        body: body.as_bytes().to_vec(),
        check: None,
    }
}

fn forward(target: &str, body: &str) -> Expect {
    Expect::Forward(fwd(target, body))
}

fn forward_checked(target: &str, check: Check) -> Expect {
    Expect::Forward(Fwd {
        check: Some(check),
        ..fwd(target, "")
    })
}

fn reject(statuses: &'static [u16]) -> Expect {
    Expect::Reject(statuses)
}

fn reject_aborted(statuses: &'static [u16]) -> Expect {
    Expect::RejectAborted(statuses)
}

fn either(statuses: &'static [u16], f: Fwd) -> Expect {
    Expect::Either(statuses, f)
}

/// A chunked POST of `hello` with `te_lines` (whole header lines, CRLF-terminated) as its
/// `Transfer-Encoding`.
fn te_post(version: &str, te_lines: &str) -> String {
    format!("POST /te HTTP/{version}\r\nHost: {HOST}\r\n{te_lines}\r\n5\r\nhello\r\n0\r\n\r\n")
}

/// A POST of `hello` with these `Content-Length` lines.
fn cl_post(cl_lines: &str) -> String {
    format!("POST /cl HTTP/1.1\r\nHost: {HOST}\r\n{cl_lines}\r\nhello")
}

/// A POST whose chunked body is `chunks` as written.
fn chunked_post(chunks: &str) -> String {
    format!("POST /chunks HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}")
}

/// A GET of `target` with `Host: gw.test`.
fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n")
}

/// A GET of `/` with these extra header lines.
fn get_with(lines: &str) -> String {
    format!("GET /h HTTP/1.1\r\nHost: {HOST}\r\n{lines}\r\n")
}

fn no_underscore_names(r: &Recorded) -> Result<(), String> {
    let bad: Vec<&str> = r
        .headers
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.contains('_'))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "header names with `_` reached the upstream: {bad:?}"
        ))
    }
}

fn no_injected_field(r: &Recorded) -> Result<(), String> {
    match r.headers.iter().find(|(n, _)| n.contains("x-injected")) {
        None => Ok(()),
        Some((n, v)) => Err(format!(
            "the whitespace-preceded line reached the upstream as {n:?}: {:?}",
            String::from_utf8_lossy(v)
        )),
    }
}

/// The cases, one line each where it fits: a table, left as written.
#[rustfmt::skip]
fn corpus() -> Vec<Case> {
    let smuggled = format!("GET /smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    // CL.TE: by its length the body is everything; by chunked it ends before the smuggled
    // request.
    let cl_te_body = format!("0\r\n\r\n{smuggled}");
    // TE.CL: by chunked the body is the smuggled request; by its length only the size line.
    let te_cl_size = format!("{:x}\r\n", smuggled.len());
    let te_cl_body = format!("{te_cl_size}{smuggled}\r\n0\r\n\r\n");
    let headers_of = |n: usize, value_len: usize| -> String {
        (0..n)
            .map(|i| format!("X-Filler-{i}: {}\r\n", "v".repeat(value_len)))
            .collect()
    };
    let long_path = |n: usize| format!("/{}", "a".repeat(n - 1));

    vec![
        // What a plain client sends: the judge and the helpers work.
        case("baseline: GET", get("/plain?q=1"), vec![forward("/plain?q=1", "")]),
        case("baseline: POST with Content-Length", cl_post("Content-Length: 5\r\n"), vec![forward("/cl", "hello")]),
        case("baseline: chunked POST", te_post("1.1", "Transfer-Encoding: chunked\r\n"), vec![forward("/te", "hello")]),
        // CL.TE and TE.CL: Transfer-Encoding wins (RFC 9112 §6.3), the connection is closed
        // after the answer, and the smuggled request never reaches the upstream.
        case(
            "CL.TE: Content-Length then Transfer-Encoding, a request behind the last chunk",
            format!("POST /clte HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{cl_te_body}", cl_te_body.len()),
            vec![either(&[400], fwd("/clte", ""))],
        ),
        case(
            "TE.CL: Transfer-Encoding then a Content-Length covering the size line only",
            format!("POST /tecl HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n{te_cl_body}", te_cl_size.len()),
            vec![either(&[400], fwd("/tecl", &smuggled))],
        ),
        case(
            "CL.TE with an unknown coding: Content-Length + Transfer-Encoding: xchunked",
            format!("POST /te HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 3\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            vec![reject(&[400, 501])],
        ),
        // TE.TE: obfuscated Transfer-Encoding.
        case("TE: chunked, identity (chunked not last)", te_post("1.1", "Transfer-Encoding: chunked, identity\r\n"), vec![reject(&[400, 501])]),
        case("TE: identity, chunked (unknown coding before chunked)", te_post("1.1", "Transfer-Encoding: identity, chunked\r\n"), vec![either(&[400, 501], fwd("/te", "hello"))]),
        case("TE: xchunked", te_post("1.1", "Transfer-Encoding: xchunked\r\n"), vec![reject(&[400, 501])]),
        case("TE: quoted \"chunked\"", te_post("1.1", "Transfer-Encoding: \"chunked\"\r\n"), vec![reject(&[400, 501])]),
        case("TE: space before the colon", te_post("1.1", "Transfer-Encoding : chunked\r\n"), vec![reject(&[400])]),
        case("TE: tab as the whitespace after the colon", te_post("1.1", "Transfer-Encoding:\tchunked\r\n"), vec![forward("/te", "hello")]),
        case("TE: two lines, chunked and chunked (chunked applied twice)", te_post("1.1", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), vec![reject(&[400, 501])]),
        case("TE: two lines, chunked then x", te_post("1.1", "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n"), vec![reject(&[400, 501])]),
        case("TE: CHUNKED (coding names are case-insensitive)", te_post("1.1", "Transfer-Encoding: CHUNKED\r\n"), vec![forward("/te", "hello")]),
        case("TE: chunked on HTTP/1.0", te_post("1.0", "Transfer-Encoding: chunked\r\n"), vec![reject(&[400])]),
        case("TE: value on an obs-fold line", te_post("1.1", "Transfer-Encoding:\r\n chunked\r\n"), vec![reject(&[400])]),
        // Field syntax (RFC 9112 §2.2, §5).
        case("obs-fold: a header line continued on the next", get_with("X-Folded: a\r\n b\r\n"), vec![reject(&[400])]),
        case("bare CR inside a header value", get_with("X-A: a\rb\r\n"), vec![reject(&[400])]),
        case("bare CR inside the request target", format!("GET /a\rb HTTP/1.1\r\nHost: {HOST}\r\n\r\n"), vec![reject(&[400])]),
        case("bare LF as the only line ending", format!("GET /lf HTTP/1.1\nHost: {HOST}\n\n"), vec![either(&[400], fwd("/lf", ""))]),
        case("bare LF ending one header line", format!("GET /lf HTTP/1.1\r\nHost: {HOST}\nX-A: b\r\n\r\n"), vec![either(&[400], fwd("/lf", ""))]),
        case("NUL in a header value", get_with("X-A: a\0b\r\n"), vec![reject(&[400])]),
        case("NUL in the request target", format!("GET /a\0b HTTP/1.1\r\nHost: {HOST}\r\n\r\n"), vec![reject(&[400])]),
        case("a header line without a colon", get_with("X-No-Colon\r\n"), vec![reject(&[400])]),
        case("an empty header name", get_with(": v\r\n"), vec![reject(&[400])]),
        case(
            "whitespace before the first header line",
            format!("GET /ws HTTP/1.1\r\n X-Injected: 1\r\nHost: {HOST}\r\n\r\n"),
            vec![either(&[400], Fwd { check: Some(no_injected_field), ..fwd("/ws", "") })],
        ),
        // Content-Length (RFC 9110 §8.6, RFC 9112 §6.3).
        case("CL: two different values", cl_post("Content-Length: 5\r\nContent-Length: 6\r\n"), vec![reject(&[400])]),
        case("CL: two equal values", cl_post("Content-Length: 5\r\nContent-Length: 5\r\n"), vec![either(&[400], fwd("/cl", "hello"))]),
        case("CL: a list of equal values `5, 5`", cl_post("Content-Length: 5, 5\r\n"), vec![either(&[400], fwd("/cl", "hello"))]),
        case("CL: +5", cl_post("Content-Length: +5\r\n"), vec![reject(&[400])]),
        case("CL: 0x5", cl_post("Content-Length: 0x5\r\n"), vec![reject(&[400])]),
        case("CL: `5, 6`", cl_post("Content-Length: 5, 6\r\n"), vec![reject(&[400])]),
        case("CL: -5", cl_post("Content-Length: -5\r\n"), vec![reject(&[400])]),
        case("CL: larger than a u64", cl_post("Content-Length: 99999999999999999999\r\n"), vec![reject(&[400, 413])]),
        case(
            "CL: larger than max_body_bytes, body not sent",
            format!("POST /big HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 20000000\r\n\r\n"),
            vec![reject(&[413])],
        ),
        case("CL: a GET with a body", format!("GET /get HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n\r\nhello"), vec![forward("/get", "hello")]),
        case(
            "CL: a GET with two `Content-Length: 0` lines",
            format!("GET /cl0 HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"),
            vec![either(&[400], fwd("/cl0", ""))],
        ),
        case("Connection names Content-Length", cl_post("Connection: content-length\r\nContent-Length: 5\r\n"), vec![forward("/cl", "hello")]),
        case(
            "Connection names Transfer-Encoding",
            te_post("1.1", "Connection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n"),
            vec![forward("/te", "hello")],
        ),
        // Chunked bodies (RFC 9112 §7.1).
        case("chunk extensions", chunked_post("5;name=value\r\nhello\r\n0\r\n\r\n"), vec![forward("/chunks", "hello")]),
        case("chunk size larger than a u64", chunked_post("ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), vec![reject_aborted(&[400, 413])]),
        case("chunk size not hex: zz", chunked_post("zz\r\nhello\r\n0\r\n\r\n"), vec![reject_aborted(&[400])]),
        case("chunk size written 0x5", chunked_post("0x5\r\nhello\r\n0\r\n\r\n"), vec![reject_aborted(&[400])]),
        case("chunk size line ended by a bare LF", chunked_post("5\nhello\r\n0\r\n\r\n"), vec![reject_aborted(&[400])]),
        case("chunk data not followed by CRLF", chunked_post("5\r\nhelloXX0\r\n\r\n"), vec![reject_aborted(&[400])]),
        case("chunked body with trailers", chunked_post("5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"), vec![forward("/chunks", "hello")]),
        // Request target forms and Host (RFC 9112 §3.2).
        case(
            "absolute-form, Host the same",
            format!("GET http://{HOST}/x HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
            vec![forward("/x", "")],
        ),
        case(
            "absolute-form, Host different",
            format!("GET http://other.test/x HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
            vec![reject(&[400])],
        ),
        case("absolute-form, no Host", format!("GET http://{HOST}/x HTTP/1.1\r\n\r\n"), vec![reject(&[400])]),
        case(
            "absolute-form with userinfo",
            format!("GET http://user@{HOST}/x HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
            vec![reject(&[400])],
        ),
        case("CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", vec![reject(&[])]),
        case("asterisk-form OPTIONS *", format!("OPTIONS * HTTP/1.1\r\nHost: {HOST}\r\n\r\n"), vec![either(&[], fwd("*", ""))]),
        case("Host: none on HTTP/1.1", "GET /nohost HTTP/1.1\r\n\r\n", vec![reject(&[400])]),
        case("Host: two equal lines", format!("GET /h HTTP/1.1\r\nHost: {HOST}\r\nHost: {HOST}\r\n\r\n"), vec![reject(&[400])]),
        case("Host: two different lines", format!("GET /h HTTP/1.1\r\nHost: {HOST}\r\nHost: other.test\r\n\r\n"), vec![reject(&[400])]),
        case("Host: a b", "GET /h HTTP/1.1\r\nHost: a b\r\n\r\n", vec![reject(&[400])]),
        case("Host: a:99999", "GET /h HTTP/1.1\r\nHost: a:99999\r\n\r\n", vec![reject(&[400])]),
        case("Host: with userinfo", format!("GET /h HTTP/1.1\r\nHost: user@{HOST}\r\n\r\n"), vec![reject(&[400])]),
        case("Host: none on HTTP/1.0", "GET /old HTTP/1.0\r\n\r\n", vec![forward("/old", "")]),
        case("version HTTP/2.0 in an HTTP/1 request line", format!("GET /v HTTP/2.0\r\nHost: {HOST}\r\n\r\n"), vec![reject(&[400, 505])]),
        // The path (RFC 3986 §5.2.4 dot segments; encoded dots and slashes).
        case("path: /a/../../etc/passwd climbs above the root", get("/a/../../etc/passwd"), vec![reject(&[400])]),
        case("path: /a/./b/../c", get("/a/./b/../c"), vec![forward("/a/c", "")]),
        case("path: /%2e%2e/x climbs above the root", get("/%2e%2e/x"), vec![reject(&[400])]),
        case("path: /a/%2E%2E/b", get("/a/%2E%2E/b"), vec![forward("/b", "")]),
        case("path: /a/%2e/b", get("/a/%2e/b"), vec![forward("/a/b", "")]),
        case("path: backslashes /a\\..\\b", get("/a\\..\\b"), vec![reject(&[400])]),
        case("path: encoded slash /a%2Fb", get("/a%2Fb"), vec![reject(&[400])]),
        case("path: //a//b", get("//a//b"), vec![forward("/a/b", "")]),
        case("path: dot segments, query kept as sent", get("/a/./b?x=/../y"), vec![forward("/a/b?x=/../y", "")]),
        case("path: a fragment in the target", get("/frag#x"), vec![either(&[400], fwd("/frag", ""))]),
        // Header names with `_` (twins of `-` names behind CGI-style servers).
        case("underscore: X_User_ID", get_with("X_User_ID: 3\r\n"), vec![forward_checked("/h", no_underscore_names)]),
        case("underscore: X_Forwarded_For", get_with("X_Forwarded_For: 1.2.3.4\r\n"), vec![forward_checked("/h", no_underscore_names)]),
        // Head limits: request line 8 KiB, head 32 KiB, 100 fields.
        case("limit: request line over 8 KiB", get(&long_path(9000)), vec![reject(&[414])]),
        case("limit: request line just under 8 KiB", get(&long_path(8000)), vec![forward(&long_path(8000), "")]),
        case("limit: head over 32 KiB in 1 KiB fields", get_with(&headers_of(40, 1024)), vec![reject(&[431])]),
        case("limit: head of 29 KiB", get_with(&headers_of(28, 1024)), vec![forward("/h", "")]),
        case("limit: 101 fields", get_with(&headers_of(100, 1)), vec![reject(&[431])]),
        case("limit: 100 fields", get_with(&headers_of(99, 1)), vec![forward("/h", "")]),
        // Pipelining.
        case("pipelined: two GETs", format!("{}{}", get("/p1"), get("/p2")), vec![forward("/p1", ""), forward("/p2", "")]),
        case(
            "pipelined: a POST with a body, then a GET",
            format!("POST /p1 HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n\r\nhello{}", get("/p2")),
            vec![forward("/p1", "hello"), forward("/p2", "")],
        ),
        case(
            "pipelined: a GET, then an obs-folded one",
            format!("{}GET /p2 HTTP/1.1\r\nHost: {HOST}\r\nX-Folded: a\r\n b\r\n\r\n", get("/p1")),
            vec![forward("/p1", ""), reject(&[400])],
        ),
        case(
            "pipelined: a GET, then NUL in a target",
            format!("{}GET /p\0 HTTP/1.1\r\nHost: {HOST}\r\n\r\n", get("/p1")),
            vec![forward("/p1", ""), reject(&[400])],
        ),
    ]
}

/// The loopback address case `i` connects from.
fn case_ip(i: usize) -> IpAddr {
    assert!(i < 254, "too many cases for one /24");
    IpAddr::V4(Ipv4Addr::new(127, 0, 7, i as u8 + 1))
}

fn shown(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
    if bytes.len() > 120 {
        format!("{s:?}… ({} bytes)", bytes.len())
    } else {
        format!("{s:?}")
    }
}

fn describe(r: &Recorded) -> String {
    let framing: Vec<String> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length" || n == "transfer-encoding")
        .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v)))
        .collect();
    let target = if r.target.len() > 80 {
        format!("{}… ({} bytes)", &r.target[..80], r.target.len())
    } else {
        r.target.clone()
    };
    let host: Vec<String> = r
        .header_all("host")
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    format!(
        "{} {target} host {host:?} {framing:?} body {}",
        r.method,
        shown(&r.body)
    )
}

/// Exactly one framing header, or none for an empty body.
fn one_framing(r: &Recorded) -> Result<(), String> {
    let cl = r.header_all("content-length").len();
    let te = r.header_all("transfer-encoding");
    let ok = match (cl, te.as_slice()) {
        (0, []) => r.body.is_empty(),
        (1, []) => true,
        (0, [one]) => one.eq_ignore_ascii_case(b"chunked"),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("framing not unambiguous: {}", describe(r)))
    }
}

/// Checks one case; `Err` says what went wrong.
fn judge(
    case: &Case,
    answer: &RawAnswer,
    records: &[Recorded],
    violations: &[&Violation],
) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut answers = answer.responses.iter();
    let mut forwarded = records.iter();
    for (i, expect) in case.expect.iter().enumerate() {
        let Some(a) = answers.next() else {
            problems.push(format!("request {}: no answer", i + 1));
            break;
        };
        let (statuses, fwd) = match expect {
            Expect::Reject(s) | Expect::RejectAborted(s) => (Some(*s), None),
            Expect::Forward(f) => (None, Some(f)),
            Expect::Either(_, f) if a.status == 200 => (None, Some(f)),
            Expect::Either(s, _) => (Some(*s), None),
        };
        if let Some(statuses) = statuses {
            let fits = (400..500).contains(&a.status)
                && (statuses.is_empty() || statuses.contains(&a.status));
            if !fits {
                let wanted = if statuses.is_empty() {
                    "a 4xx".to_string()
                } else {
                    format!("{statuses:?}")
                };
                problems.push(format!(
                    "request {}: expected refusal {wanted}, got {}",
                    i + 1,
                    a.status
                ));
            }
        }
        if let Some(f) = fwd {
            if a.status != 200 || a.body != b"ok" {
                problems.push(format!(
                    "request {}: expected the upstream's 200 ok, got {} {}",
                    i + 1,
                    a.status,
                    shown(&a.body)
                ));
            }
            match forwarded.next() {
                None => problems.push(format!("request {}: not forwarded", i + 1)),
                Some(r) => {
                    if let Err(e) = one_framing(r) {
                        problems.push(format!("request {}: {e}", i + 1));
                    }
                    if r.target != f.target {
                        problems.push(format!(
                            "request {}: upstream target {:?}, expected {:?}",
                            i + 1,
                            r.target,
                            f.target
                        ));
                    }
                    if r.body != f.body {
                        problems.push(format!(
                            "request {}: upstream body {}, expected {}",
                            i + 1,
                            shown(&r.body),
                            shown(&f.body)
                        ));
                    }
                    if let Some(Err(e)) = f.check.map(|c| c(r)) {
                        problems.push(format!("request {}: {e}", i + 1));
                    }
                }
            }
        }
    }
    let extra: Vec<u16> = answers.map(|a| a.status).collect();
    if !extra.is_empty() {
        problems.push(format!("extra answers to the client: {extra:?}"));
    }
    if !answer.rest.is_empty() {
        problems.push(format!(
            "bytes after the answers: {}{}",
            shown(&answer.rest),
            answer
                .malformed
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ));
    }
    let extra: Vec<String> = forwarded.map(describe).collect();
    if !extra.is_empty() {
        problems.push(format!("extra requests at the upstream: {extra:?}"));
    }
    let aborted = case
        .expect
        .iter()
        .any(|e| matches!(e, Expect::RejectAborted(_)));
    for v in violations {
        if aborted && v.reason.starts_with("connection closed in the middle of") {
            continue;
        }
        problems.push(format!(
            "upstream saw a protocol violation: {} in {}",
            v.reason,
            shown(&v.raw)
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let got: Vec<String> = records.iter().map(describe).collect();
        Err(format!(
            "{}\n      client got: {}\n      upstream recorded: {got:?}",
            problems.join("; "),
            answer.summary()
        ))
    }
}

async fn recording_gateway() -> (RecordingUpstream, TestGateway) {
    let up = RecordingUpstream::start().await;
    // No breaker: the 502s some cases cause must not turn later cases into 503s.
    let gw = TestGateway::builder()
        .raw("[circuit_breaker]\nenabled = false\n")
        .service_addrs("rec", &[up.addr])
        .route("id = \"all\"\npath = \"/\"\nservice = \"rec\"")
        // Targets that do not start with `/` (authority-form, asterisk-form) match this one:
        // a refusal of them must not depend on no route matching.
        .route("id = \"any-target\"\npattern = \".*\"\nservice = \"rec\"")
        .start()
        .await;
    (up, gw)
}

/// The whole corpus against one gateway; fails with the list of every case that failed.
#[tokio::test]
async fn corpus_of_smuggling_and_confusion_cases() {
    let (up, gw) = recording_gateway().await;
    let addr = gw.gateway.proxy_addr();
    let cases = corpus();
    let answers = futures_util::future::join_all(cases.iter().enumerate().map(|(i, c)| {
        let how = Exchange {
            deadline: READ_FOR,
            local_ip: Some(case_ip(i)),
            ..Exchange::default()
        };
        async move { raw_exchange_with(addr, &c.wire, &how).await }
    }))
    .await;

    let records = up.requests();
    let violations = up.violations();
    let from = |i: usize| format!("x-forwarded-for: {}\r\n", case_ip(i));
    let mut failures = Vec::new();
    for (i, (c, answer)) in cases.iter().zip(&answers).enumerate() {
        let xff = case_ip(i).to_string();
        let mine: Vec<Recorded> = records
            .iter()
            .filter(|r| r.header("x-forwarded-for") == Some(xff.as_bytes()))
            .cloned()
            .collect();
        let needle = from(i);
        let theirs: Vec<&Violation> = violations
            .iter()
            .filter(|v| {
                String::from_utf8_lossy(&v.raw)
                    .to_ascii_lowercase()
                    .contains(&needle)
            })
            .collect();
        match judge(c, answer, &mine, &theirs) {
            Ok(()) => println!(
                "PASS {}: client got {}; upstream recorded {:?}",
                c.name,
                answer.summary(),
                mine.iter().map(describe).collect::<Vec<_>>()
            ),
            Err(e) => {
                println!("FAIL {}: {e}", c.name);
                failures.push(format!("{}: {e}", c.name));
            }
        }
    }
    // Anything at the upstream that no case sent.
    let known: Vec<String> = (0..cases.len()).map(|i| case_ip(i).to_string()).collect();
    for r in &records {
        let xff = r
            .header("x-forwarded-for")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        if !xff.as_ref().is_some_and(|x| known.contains(x)) {
            failures.push(format!("unattributed upstream request: {}", describe(r)));
        }
    }
    for v in &violations {
        let raw = String::from_utf8_lossy(&v.raw).to_ascii_lowercase();
        if !(0..cases.len()).any(|i| raw.contains(&from(i))) {
            failures.push(format!(
                "unattributed upstream violation: {} in {}",
                v.reason,
                shown(&v.raw)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}

/// A request written one byte at a time is read as one request (the listener's own loop
/// waits for the whole head, then hands a body to hyper with what it has read).
#[tokio::test]
async fn a_request_written_byte_by_byte_is_forwarded_once() {
    let (up, gw) = recording_gateway().await;
    let wire = format!(
        "POST /slow HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    );
    let how = Exchange {
        split_at: (1..wire.len()).collect(),
        ..Exchange::default()
    };
    let answer = raw_exchange_with(gw.gateway.proxy_addr(), wire.as_bytes(), &how).await;
    assert_eq!(answer.statuses(), [200], "{}", answer.summary());
    assert!(answer.closed, "Connection: close is honoured");
    let got = up.requests();
    assert_eq!(
        got.len(),
        1,
        "{:?}",
        got.iter().map(describe).collect::<Vec<_>>()
    );
    assert_eq!(got[0].target, "/slow");
    assert_eq!(got[0].body, b"hello");
    one_framing(&got[0]).unwrap();
    assert!(up.violations().is_empty(), "{:?}", up.violations());
}

/// CL.TE on a connection the gateway already served a request on: the smuggled request is
/// neither answered nor forwarded.
#[tokio::test]
async fn cl_te_after_a_first_request_smuggles_nothing() {
    let (up, gw) = recording_gateway().await;
    let smuggled = format!("GET /smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let body = format!("0\r\n\r\n{smuggled}");
    let wire = format!(
        "GET /first HTTP/1.1\r\nHost: {HOST}\r\n\r\n\
         POST /clte HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        body.len()
    );
    let how = Exchange {
        deadline: READ_FOR,
        ..Exchange::default()
    };
    let answer = raw_exchange_with(gw.gateway.proxy_addr(), wire.as_bytes(), &how).await;
    let targets: Vec<String> = up.requests().iter().map(|r| r.target.clone()).collect();
    assert!(
        !targets.iter().any(|t| t == "/smuggled"),
        "smuggled: {targets:?}"
    );
    assert_eq!(targets.first().map(String::as_str), Some("/first"));
    assert!(
        answer.statuses().len() == 2 && answer.closed,
        "one answer per request, then the connection is closed: {}",
        answer.summary()
    );
}
