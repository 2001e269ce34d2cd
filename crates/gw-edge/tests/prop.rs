//! Property tests of the edge's entry points: the path normaliser (its invariants, and
//! agreement with a reference written from RFC 3986 §5.2.4), `canonicalize`'s rules for
//! header names with `_` and for paths, and `host::is_valid` against a hand-written RFC 3986
//! `host [ ":" port ]` check.
//!
//! Each property runs a bounded number of cases (`PROPTEST_CASES` raises it for a longer
//! local run); the `fuzz/` crate at the repository root checks the same properties for
//! campaigns of hours.

mod reference;

use gw_edge::path::{normalize, PathOptions};
use gw_edge::{
    canonicalize, is_owned_twin, EdgeError, EdgePolicy, EscapedSlashes, PathError, Underscores,
};
use http::Request;
use proptest::prelude::*;
use reference::*;
use test_support::proptest_config;

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

proptest! {
    #![proptest_config(proptest_config(2000))]

    /// Encoding an unreserved character changes nothing: `normalize` decodes it again.
    #[test]
    fn normalize_ignores_encoded_unreserved(p in path(), at in any::<usize>(), opts in options()) {
        if let Err(why) = check_encoded_unreserved(&p, at, &opts) {
            prop_assert!(false, "{}", why);
        }
    }

    /// Agreement with the reference, the output invariants, and idempotence.
    #[test]
    fn normalize_agrees_with_rfc3986_reference(p in path(), opts in options()) {
        if let Err(why) = check_path(&p, &opts) {
            prop_assert!(false, "{}", why);
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
    #![proptest_config(proptest_config(1000))]

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
    #![proptest_config(proptest_config(2000))]

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
    #![proptest_config(proptest_config(2000))]

    #[test]
    fn host_ipv6_agrees_with_reference(v in ipv6_literal()) {
        prop_assert_eq!(gw_edge::host::is_valid(v.as_bytes()), reference_host(v.as_bytes()), "{:?}", v);
    }
}

/// Without `merge_slashes`, RFC 3986 §5.2.4 keeps every empty segment: `//.` is `//`,
/// `/a//.` is `/a//`, `/a///..` is `/a//`. `normalize` drops the last `/` of those when it
/// rebuilds the path (`out.ends_with('/')` stands for "the last segment is empty"), and so
/// also gives `/%61//` → `/a/` while `/a//` stays `/a//`, and is not idempotent:
/// `/%20///` → `/%20//` → `/%20/` (found by `cargo fuzz run path_normalize`). Harmless for routing (the router
/// and the upstream see the same path), but neither the RFC nor idempotent with respect to
/// encoding.
#[test]
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
    // Not idempotent: every pass drops one more `/`.
    let once = normalize("/%20///", &opts).unwrap().into_owned();
    assert_eq!(normalize(&once, &opts).unwrap(), once);
}

/// The crate documents that a target which is neither origin-form, nor an `http`/`https`
/// absolute-form, nor `*` for `OPTIONS` is refused (`InvalidTarget`); authority-form is
/// for `CONNECT` only (RFC 9112 §3.2.3). `canonicalize` takes an authority-form target of
/// any other method (`GET example.com:80`) as if it were absolute-form, and rewrites it to
/// `GET /` (found by `cargo fuzz run canonicalize`).
#[test]
fn authority_form_target_is_refused() {
    for target in ["a", "example.com:80", ".exam1"] {
        let mut req = Request::get(target)
            .header("host", target)
            .body(())
            .unwrap();
        assert_eq!(
            canonicalize(&mut req, &EdgePolicy::default()),
            Err(EdgeError::InvalidTarget),
            "{target} became {}",
            req.uri()
        );
    }
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
