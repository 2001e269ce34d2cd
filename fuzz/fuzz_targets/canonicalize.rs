//! `gw_edge::canonicalize` on requests built from the input: no panic; after `Ok` the path
//! is what `normalize` makes of it (and a normal path), the query is kept, the `Host` is
//! valid, and header names with `_` follow the policy (the same checks as
//! `crates/gw-edge/tests/prop.rs`).
//!
//! Input: one byte of policy (bit 0 `merge_slashes`, bit 1 `EscapedSlashes::Keep`, bits 2-3
//! the underscore rule), then lines: the method and target (`GET /a?b`), then `name: value`
//! fields. Parts `http` refuses end the input.

#![no_main]

use gw_edge::path::normalize;
use gw_edge::{canonicalize, is_owned_twin, EdgeError, EdgePolicy, EscapedSlashes, Underscores};
use http::{Method, Request};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/gw-edge/tests/reference/mod.rs"]
mod reference;

fuzz_target!(|data: &[u8]| {
    let [flags, rest @ ..] = data else {
        return;
    };
    let policy = EdgePolicy {
        merge_slashes: flags & 1 != 0,
        escaped_slashes: if flags & 2 != 0 {
            EscapedSlashes::Keep
        } else {
            EscapedSlashes::Reject
        },
        underscores_in_headers: match (flags >> 2) & 3 {
            0 => Underscores::Drop,
            1 => Underscores::Keep,
            _ => Underscores::Reject,
        },
        ..EdgePolicy::default()
    };
    let mut lines = rest.split(|&b| b == b'\n');
    let Some(first) = lines.next() else { return };
    let (method, target) = match first.iter().position(|&b| b == b' ') {
        Some(sp) => (&first[..sp], &first[sp + 1..]),
        None => (&b"GET"[..], first),
    };
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    let mut builder = Request::builder().method(method).uri(target);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        builder = builder.header(&line[..colon], line[colon + 1..].trim_ascii());
    }
    let Ok(mut req) = builder.body(()) else {
        return;
    };
    let before = req.clone();
    let result = canonicalize(&mut req, &policy);
    let underscore = before.headers().keys().any(|n| n.as_str().contains('_'));
    if let Err(EdgeError::UnderscoreHeader) = result {
        assert!(underscore && policy.underscores_in_headers == Underscores::Reject);
    }
    if result.is_err() {
        return;
    }
    // Accepted targets are origin-form, `http`/`https` absolute-form, or `*` (OPTIONS).
    let uri = before.uri();
    match uri.scheme_str() {
        Some(s) => assert!(s == "http" || s == "https", "{uri}"),
        None => assert!(
            uri.path().starts_with('/')
                || (uri.path() == "*" && before.method() == Method::OPTIONS),
            "{uri}"
        ),
    }
    // The path: what `normalize` says, unless the target was `*` (OPTIONS).
    let path = before.uri().path();
    if path != "*" {
        let normal = normalize(path, &policy.path_options())
            .unwrap_or_else(|e| panic!("accepted {path:?} that normalize refuses: {e:?}"));
        assert_eq!(req.uri().path(), &*normal, "{:?}", before.uri());
        if let Err(why) = reference::check_normal(req.uri().path(), &policy.path_options()) {
            panic!("{:?} -> {:?}: {why}", before.uri(), req.uri());
        }
    }
    assert_eq!(req.uri().query(), before.uri().query());
    if let Some(host) = req.headers().get(http::header::HOST) {
        assert!(gw_edge::host::is_valid(host.as_bytes()), "{host:?}");
    }
    for name in req.headers().keys() {
        let n = name.as_str();
        match policy.underscores_in_headers {
            Underscores::Drop | Underscores::Reject => assert!(!n.contains('_'), "{n} kept"),
            Underscores::Keep => assert!(!(n.contains('_') && is_owned_twin(n)), "{n} kept"),
        }
    }
    // Names without `_` keep every value.
    for name in before
        .headers()
        .keys()
        .filter(|n| !n.as_str().contains('_'))
    {
        if name == http::header::HOST {
            continue;
        }
        let was: Vec<_> = before.headers().get_all(name).iter().collect();
        let is: Vec<_> = req.headers().get_all(name).iter().collect();
        assert_eq!(was, is, "{name}");
    }
});
