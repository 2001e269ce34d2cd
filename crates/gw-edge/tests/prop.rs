//! Property tests of the edge's entry points: the path normaliser (its invariants, and
//! agreement with a reference written from RFC 3986 §5.2.4), `canonicalize`'s rules for
//! header names with `_` and for paths, and `host::is_valid` against a hand-written RFC 3986
//! `host [ ":" port ]` check.
//!
//! Each property runs a bounded number of cases (`PROPTEST_CASES` raises it for a longer
//! local run); the `fuzz/` crate at the repository root checks the same properties for
//! campaigns of hours.

use std::borrow::Cow;

use gw_edge::path::{normalize, PathOptions};
use gw_edge::{
    canonicalize, is_owned_twin, EdgeError, EdgePolicy, EscapedSlashes, PathError, Underscores,
};
use http::Request;
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

// ---------------------------------------------------------------------------------------
// The reference: RFC 3986 §5.2.4 as written, after a plain decoding step, with the
// documented differences of `normalize` made explicit.
// ---------------------------------------------------------------------------------------

fn unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Step 1 on the whole path: `%XX` of an unreserved character decoded, other escapes
/// upper-cased; a raw `\`, a bad escape and (when refused) `%2F`/`%5C` are noted in
/// `errors`, and the text goes on unchanged at that point so that the later steps still
/// see every segment.
fn reference_decode(path: &str, slashes: EscapedSlashes, errors: &mut Vec<PathError>) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                errors.push(PathError::Backslash);
                out.push(b'\\');
                i += 1;
            }
            b'%' => {
                let digits = (
                    b.get(i + 1).copied().and_then(hex_value),
                    b.get(i + 2).copied().and_then(hex_value),
                );
                let (Some(hi), Some(lo)) = digits else {
                    errors.push(PathError::BadEscape);
                    out.push(b'%');
                    i += 1;
                    continue;
                };
                let v = hi * 16 + lo;
                if unreserved(v) {
                    out.push(v);
                } else {
                    if (v == b'/' || v == b'\\') && slashes == EscapedSlashes::Reject {
                        errors.push(PathError::EncodedSlash);
                    }
                    out.extend(format!("%{v:02X}").bytes());
                }
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("only ASCII was added")
}

/// RFC 3986 §5.2.4 `remove_dot_segments`, rule by rule. The one difference: a `..` that
/// finds the output buffer empty (it would climb above `/`) is noted as an error instead of
/// being dropped.
fn remove_dot_segments(path: &str, errors: &mut Vec<PathError>) -> String {
    // "removing the last segment and its preceding "/" (if any) from the output buffer"
    fn pop(output: &mut String, errors: &mut Vec<PathError>) {
        if output.is_empty() {
            errors.push(PathError::AboveRoot);
        }
        let cut = output.rfind('/').unwrap_or(0);
        output.truncate(cut);
    }

    let mut input: &str = path;
    let mut output = String::new();
    // 2. While the input buffer is not empty, loop as follows:
    while !input.is_empty() {
        if let Some(rest) = input
            .strip_prefix("../")
            .or_else(|| input.strip_prefix("./"))
        {
            // A. a prefix of "../" or "./": remove that prefix.
            input = rest;
        } else if input.starts_with("/./") {
            // B. a prefix of "/./": replace it with "/".
            input = &input[2..];
        } else if input == "/." {
            // B. "/." as a complete segment: replace it with "/".
            input = "/";
        } else if input.starts_with("/../") {
            // C. a prefix of "/../": replace it with "/" and remove the last segment of the
            //    output buffer.
            input = &input[3..];
            pop(&mut output, errors);
        } else if input == "/.." {
            // C. "/.." as a complete segment: the same.
            pop(&mut output, errors);
            input = "/";
        } else if input == "." || input == ".." {
            // D. only "." or "..": remove it.
            input = "";
        } else {
            // E. move the first path segment (with its leading "/", if any, up to but not
            //    including the next "/") to the end of the output buffer.
            let from = usize::from(input.starts_with('/'));
            let end = input[from..].find('/').map_or(input.len(), |n| from + n);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

/// What `normalize` should give: the normalised path, or every error that applies (the
/// implementation reports the first it meets, which must be one of them).
fn reference(path: &str, opts: &PathOptions) -> Result<String, Vec<PathError>> {
    if !path.starts_with('/') {
        return Err(vec![PathError::NotOriginForm]);
    }
    let mut errors = Vec::new();
    let decoded = reference_decode(path, opts.escaped_slashes, &mut errors);
    // `..;x` and `.;x` (what comes before a `;` is a dot segment) are refused.
    for seg in decoded.split('/') {
        let base = seg.split(';').next().unwrap_or("");
        if (base == "." || base == "..") && seg.len() != base.len() {
            errors.push(PathError::DotSegmentParameter);
        }
    }
    // merge_slashes: runs of `/` become one before dot segments are removed.
    let merged = if opts.merge_slashes {
        let mut m = String::with_capacity(decoded.len());
        for c in decoded.chars() {
            if !(c == '/' && m.ends_with('/')) {
                m.push(c);
            }
        }
        m
    } else {
        decoded
    };
    let mut out = remove_dot_segments(&merged, &mut errors);
    if out.is_empty() {
        out.push('/');
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------

/// The interesting alphabet of path segments.
const SEGMENT_TOKENS: &[&str] = &[
    "",
    ".",
    "..",
    "a",
    "b",
    "%2e",
    "%2E",
    "%2e%2e",
    ".%2e",
    "%41",
    "%2f",
    "%5C",
    "..;x",
    "a;b",
    "~",
    "%7e",
    "%zz",
    "\\",
    ";",
    "%2",
    "%25",
    "%3b",
    "%e2%82%ac",
    "%C3%A9",
    "é",
    "...",
    ".a",
];

fn segment() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(SEGMENT_TOKENS), 1..=2).prop_map(|t| t.concat())
}

/// Paths made of the interesting segments, and some random printable ones.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(segment(), 0..8).prop_map(|s| format!("/{}", s.join("/"))),
        2 => "/[ -~]{0,24}",
        1 => "[./%a-f0-9\\\\]{0,12}",
        1 => any::<String>(),
    ]
}

fn options() -> impl Strategy<Value = PathOptions> {
    (any::<bool>(), any::<bool>()).prop_map(|(merge_slashes, keep)| PathOptions {
        merge_slashes,
        escaped_slashes: if keep {
            EscapedSlashes::Keep
        } else {
            EscapedSlashes::Reject
        },
    })
}

// ---------------------------------------------------------------------------------------
// Output invariants (shared with the fuzz target in spirit: keep them in step).
// ---------------------------------------------------------------------------------------

/// Everything a normalised path must satisfy; `Err` says which rule it breaks.
fn check_normal(out: &str, opts: &PathOptions) -> Result<(), String> {
    if !out.starts_with('/') {
        return Err("does not start with /".into());
    }
    if out.contains('\\') {
        return Err("holds a backslash".into());
    }
    if opts.merge_slashes && out.contains("//") {
        return Err("holds // while merging".into());
    }
    if out[1..].split('/').any(|s| s == "." || s == "..") {
        return Err("holds a dot segment".into());
    }
    let b = out.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(&hi), Some(&lo)) = (b.get(i + 1), b.get(i + 2)) else {
                return Err(format!("truncated escape at {i}"));
            };
            let upper = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
            if !upper(hi) || !upper(lo) {
                return Err(format!("escape at {i} is not upper-case hex"));
            }
            let v = hex_value(hi).unwrap() * 16 + hex_value(lo).unwrap();
            if unreserved(v) {
                return Err(format!("escape of unreserved {:?} at {i}", v as char));
            }
            if (v == b'/' || v == b'\\') && opts.escaped_slashes == EscapedSlashes::Reject {
                return Err(format!("escaped slash at {i} while refused"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// `got` is `want`, or differs from it only as `rfc_trailing_slashes_without_merge`
/// (ignored until it is fixed) shows: without `merge_slashes`, a path that ends in an empty
/// segment kept after another loses one `/` when it is rebuilt (`/a//.` gives `/a/`, the
/// RFC's answer is `/a//`). Modelled so that the properties find any other difference.
fn same_but_known(got: &str, want: &str, opts: &PathOptions) -> bool {
    got == want || (!opts.merge_slashes && want.ends_with("//") && got == &want[..want.len() - 1])
}

/// One unreserved character of `p` outside any escape (the `at`-th, wrapping)
/// percent-encoded.
fn encode_one_unreserved(p: &str, at: usize) -> Option<String> {
    let b = p.as_bytes();
    let spots: Vec<usize> = (0..b.len())
        .filter(|&i| unreserved(b[i]) && !b[i.saturating_sub(2)..i].contains(&b'%'))
        .collect();
    let i = *spots.get(at % spots.len().max(1))?;
    Some(format!(
        "{}%{:02x}{}",
        &p[..i],
        p.as_bytes()[i],
        &p[i + 1..]
    ))
}

proptest! {
    #![proptest_config(config(2000))]

    /// Encoding an unreserved character changes nothing: `normalize` decodes it again.
    #[test]
    fn normalize_ignores_encoded_unreserved(p in path(), at in any::<usize>(), opts in options()) {
        let Some(q) = encode_one_unreserved(&p, at) else { return Ok(()) };
        match (normalize(&p, &opts), normalize(&q, &opts)) {
            (Ok(a), Ok(b)) => prop_assert!(
                same_but_known(&a, &b, &opts) || same_but_known(&b, &a, &opts),
                "{:?} -> {:?}, {:?} -> {:?}", p, a, q, b
            ),
            (Err(a), Err(b)) => prop_assert_eq!(a, b, "{:?} / {:?}", p, q),
            (a, b) => prop_assert!(false, "{:?} -> {:?}, {:?} -> {:?}", p, a, q, b),
        }
    }

    /// Agreement with the reference, and the output invariants, and idempotence.
    #[test]
    fn normalize_agrees_with_rfc3986_reference(p in path(), opts in options()) {
        let got = normalize(&p, &opts);
        let want = reference(&p, &opts);
        match (&got, &want) {
            (Ok(out), Ok(expected)) => {
                prop_assert!(same_but_known(out, expected, &opts), "{:?} {:?}: got {:?}, reference {:?}", p, opts, out, expected);
                prop_assert_eq!(
                    matches!(out, Cow::Borrowed(_)),
                    **out == *p,
                    "borrowed exactly when unchanged: {:?}", p
                );
            }
            (Err(e), Err(possible)) => {
                prop_assert!(possible.contains(e), "{:?}: got {:?}, reference {:?}", p, e, possible);
            }
            _ => prop_assert!(false, "{:?} {:?}: got {:?}, reference {:?}", p, opts, got, want),
        }
        if let Ok(out) = got {
            if let Err(why) = check_normal(&out, &opts) {
                prop_assert!(false, "{:?} -> {:?}: {}", p, out, why);
            }
            let again = normalize(&out, &opts);
            prop_assert!(
                matches!(again, Ok(Cow::Borrowed(_))),
                "not idempotent: {:?} -> {:?} -> {:?}", p, out, again
            );
        }
    }

    /// Through `canonicalize`: the request's path becomes what `normalize` says, its query
    /// is kept, and a path refusal is the same refusal.
    #[test]
    fn canonicalize_path_is_normalize(
        p in prop::collection::vec(segment(), 0..6).prop_map(|s| format!("/{}", s.join("/"))),
        query in prop::option::of("[a-z=/.%]{0,6}"),
        opts in options(),
    ) {
        let target = match &query {
            Some(q) => format!("{p}?{q}"),
            None => p.clone(),
        };
        let Ok(mut req) = Request::get(target.as_str()).header("host", "h").body(()) else {
            // Not a request target `http` can carry (a raw `\` or non-ASCII byte).
            return Ok(());
        };
        let policy = EdgePolicy {
            merge_slashes: opts.merge_slashes,
            escaped_slashes: opts.escaped_slashes,
            ..EdgePolicy::default()
        };
        let path = req.uri().path().to_owned();
        let query_before = req.uri().query().map(str::to_owned);
        let got = canonicalize(&mut req, &policy);
        match normalize(&path, &opts) {
            Ok(out) => {
                prop_assert_eq!(got, Ok(()), "{:?}", target);
                prop_assert_eq!(req.uri().path(), &*out);
                prop_assert_eq!(req.uri().query().map(str::to_owned), query_before);
            }
            Err(e) => prop_assert_eq!(got, Err(EdgeError::Path(e)), "{:?}", target),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Header names with `_`.
// ---------------------------------------------------------------------------------------

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "x_user_id",
                "x-user-id",
                "X_User_Role",
                "x_user-role",
                "x-user_anything",
                "x_forwarded_for",
                "X_Forwarded_Host",
                "x_request_id",
                "x_real_ip",
                "x_gateway_version",
                "forwarded",
                "my_header",
                "x_userid",
                "x_request_ids",
                "x_user_",
                "x-forwarded_",
                "content-type",
                "accept",
                "_",
                "__",
                "a_b_c",
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-zA-Z_-]{1,14}",
    ]
}

fn underscores() -> impl Strategy<Value = Underscores> {
    prop::sample::select(&[Underscores::Drop, Underscores::Keep, Underscores::Reject][..])
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn canonicalize_header_names(
        headers in prop::collection::vec((header_name(), "[a-z0-9]{0,4}"), 0..12),
        rule in underscores(),
    ) {
        let mut b = Request::get("/").header("host", "h");
        for (n, v) in &headers {
            b = b.header(n.as_str(), v.as_str());
        }
        let mut req = b.body(()).expect("names and values are valid");
        let before = req.headers().clone();
        let policy = EdgePolicy { underscores_in_headers: rule, ..EdgePolicy::default() };
        let got = canonicalize(&mut req, &policy);
        let any_underscore = before.keys().any(|n| n.as_str().contains('_'));
        let after = req.headers();
        match rule {
            Underscores::Reject => {
                prop_assert_eq!(got.is_err(), any_underscore);
                if let Err(e) = got {
                    prop_assert_eq!(e, EdgeError::UnderscoreHeader);
                }
            }
            Underscores::Drop => {
                prop_assert_eq!(got, Ok(()));
                prop_assert!(after.keys().all(|n| !n.as_str().contains('_')), "{:?}", after);
            }
            Underscores::Keep => {
                prop_assert_eq!(got, Ok(()));
                for n in after.keys() {
                    prop_assert!(
                        !(n.as_str().contains('_') && is_owned_twin(n.as_str())),
                        "owned twin {} kept", n
                    );
                }
                // Every other name with `_` stays, with all its values.
                for n in before.keys().filter(|n| !is_owned_twin(n.as_str())) {
                    let was: Vec<_> = before.get_all(n).iter().collect();
                    let is: Vec<_> = after.get_all(n).iter().collect();
                    prop_assert_eq!(was, is, "{}", n);
                }
            }
        }
        if got.is_ok() {
            // Names without `_` are never touched.
            for n in before.keys().filter(|n| !n.as_str().contains('_')) {
                let was: Vec<_> = before.get_all(n).iter().collect();
                let is: Vec<_> = after.get_all(n).iter().collect();
                prop_assert_eq!(was, is, "{}", n);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Host syntax.
// ---------------------------------------------------------------------------------------

/// `dec-octet`: `0`-`255` without leading zeros.
fn dec_octet(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 3
        && s.bytes().all(|c| c.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.parse::<u16>().is_ok_and(|n| n <= 255)
}

fn ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4 && parts.iter().all(|p| dec_octet(p))
}

fn h16(s: &str) -> bool {
    (1..=4).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// RFC 3986 `IPv6address`, by counting 16-bit pieces: eight without `::`, at most seven
/// around one `::`; an IPv4 address counts two and may only come last.
fn ipv6(s: &str) -> bool {
    let pieces = |part: &str, last: bool| -> Option<usize> {
        if part.is_empty() {
            return Some(0);
        }
        let groups: Vec<&str> = part.split(':').collect();
        let mut n = 0;
        for (i, g) in groups.iter().enumerate() {
            if last && i == groups.len() - 1 && ipv4(g) {
                n += 2;
            } else if h16(g) {
                n += 1;
            } else {
                return None;
            }
        }
        Some(n)
    };
    match s.split_once("::") {
        None => pieces(s, true) == Some(8),
        Some((left, right)) => {
            if right.contains("::") {
                return false;
            }
            match (pieces(left, false), pieces(right, true)) {
                (Some(l), Some(r)) => l + r <= 7,
                _ => false,
            }
        }
    }
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`, non-empty.
fn reg_name(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'%' {
            if !(s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        if !(unreserved(c) || b"!$&'()*+,;=".contains(&c)) {
            return false;
        }
        i += 1;
    }
    !s.is_empty()
}

/// `uri-host [ ":" port ]` as `is_valid` documents it: the host is a non-empty reg-name or
/// a bracketed IPv6 address (no IPvFuture), the port 1-5 digits up to 65535.
fn reference_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        match v.iter().position(|&c| c == b']') {
            Some(end) => match &v[end + 1..] {
                [] => (&v[..=end], None),
                [b':', port @ ..] => (&v[..=end], Some(port)),
                _ => return false,
            },
            None => return false,
        }
    } else {
        match v.iter().position(|&c| c == b':') {
            Some(at) => (&v[..at], Some(&v[at + 1..])),
            None => (v, None),
        }
    };
    let host_ok = match host {
        [b'[', inner @ .., b']'] => std::str::from_utf8(inner).is_ok_and(ipv6),
        _ => reg_name(host),
    };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(p).unwrap().parse::<u32>().unwrap() <= 65535
    });
    host_ok && port_ok
}

const HOST_TOKENS: &[&str] = &[
    "a", "Z", "0", "1", "9", "255", "256", "01", ".", "-", "_", "~", ":", "::", "[", "]", "@", "%",
    "%41", "%zz", ",", " ", "/", "*", "!", "f", "ffff", "1.2.3.4", "65535", "65536", "99999", "\t",
    "é", "v1.x", "\u{0}",
];

fn host_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(HOST_TOKENS), 0..8)
            .prop_map(|t| t.concat().into_bytes()),
        2 => prop::collection::vec(prop::sample::select(HOST_TOKENS), 0..10)
            .prop_map(|t| format!("[{}]", t.concat()).into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn host_is_valid_agrees_with_reference(v in host_value()) {
        prop_assert_eq!(
            gw_edge::host::is_valid(&v),
            reference_host(&v),
            "{:?}", String::from_utf8_lossy(&v)
        );
    }
}

/// Bracketed IPv6 literals built piece by piece, so that most of them are valid: the
/// reference's grammar and the standard library's parser (used by `is_valid`) must agree.
fn ipv6_literal() -> impl Strategy<Value = String> {
    let piece = prop_oneof!["[0-9a-fA-F]{1,4}", "[0-9a-f]{5}", Just(String::new())];
    (
        prop::collection::vec(piece, 0..9),
        prop::option::of(0usize..9),
        prop::option::of("(25[0-5]|1[0-9]{2}|[1-9]?[0-9]|0[0-9])(\\.[0-9]{1,3}){3}"),
        prop::option::of("[0-9]{1,6}"),
    )
        .prop_map(|(pieces, gap, v4, port)| {
            let mut s = String::from("[");
            for (i, p) in pieces.iter().enumerate() {
                if gap == Some(i) {
                    s.push_str("::");
                } else if i > 0 {
                    s.push(':');
                }
                s.push_str(p);
            }
            if gap == Some(pieces.len()) {
                s.push_str("::");
            }
            if let Some(v4) = v4 {
                if !s.ends_with(':') && s.len() > 1 {
                    s.push(':');
                }
                s.push_str(&v4);
            }
            s.push(']');
            if let Some(p) = port {
                s.push(':');
                s.push_str(&p);
            }
            s
        })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn host_ipv6_agrees_with_reference(v in ipv6_literal()) {
        prop_assert_eq!(gw_edge::host::is_valid(v.as_bytes()), reference_host(v.as_bytes()), "{:?}", v);
    }
}

/// Without `merge_slashes`, RFC 3986 §5.2.4 keeps every empty segment: `//.` is `//`,
/// `/a//.` is `/a//`, `/a///..` is `/a//`. `normalize` drops the last `/` of those when it
/// rebuilds the path (`out.ends_with('/')` stands for "the last segment is empty"), and so
/// also gives `/%61//` → `/a/` while `/a//` stays `/a//`. Harmless for routing (the router
/// and the upstream see the same path), but neither the RFC nor idempotent with respect to
/// encoding.
#[test]
#[ignore = "known difference from RFC 3986 without merge_slashes"]
fn rfc_trailing_slashes_without_merge() {
    let opts = PathOptions {
        merge_slashes: false,
        escaped_slashes: EscapedSlashes::Reject,
    };
    assert_eq!(normalize("//.", &opts).unwrap(), "//");
    assert_eq!(normalize("/a//.", &opts).unwrap(), "/a//");
    assert_eq!(normalize("/a///..", &opts).unwrap(), "/a//");
    assert_eq!(normalize("/.//", &opts).unwrap(), "//");
    assert_eq!(normalize("/a//", &opts).unwrap(), "/a//");
    assert_eq!(normalize("/%61//", &opts).unwrap(), "/a//");
}

/// The reference itself, on the RFC's own examples.
#[test]
fn references_hold_on_known_cases() {
    // RFC 3986 §5.2.4's examples.
    let mut e = Vec::new();
    assert_eq!(remove_dot_segments("/a/b/c/./../../g", &mut e), "/a/g");
    assert_eq!(remove_dot_segments("mid/content=5/../6", &mut e), "mid/6");
    assert!(e.is_empty());
    let opts = PathOptions::default();
    assert_eq!(reference("/a/%2e%2E/b", &opts), Ok("/b".into()));
    assert_eq!(reference("//a//b/", &opts), Ok("/a/b/".into()));
    assert_eq!(reference("/a/..", &opts), Ok("/".into()));
    assert_eq!(reference("/..", &opts), Err(vec![PathError::AboveRoot]));
    assert!(
        ipv6("::1") && ipv6("2001:db8::1") && ipv6("::ffff:1.2.3.4") && ipv6("1:2:3:4:5:6:7:8")
    );
    assert!(!ipv6("1:2:3:4:5:6:7:8:9") && !ipv6(":::") && !ipv6("1::2::3") && !ipv6("::01.2.3.4"));
    assert!(reference_host(b"a:80") && !reference_host(b"a:") && !reference_host(b"[v1.x]"));
}
