//! Property tests of `RouteTable::find` against a model written from the crate's documented
//! rules (segment-boundary prefixes, regex patterns, hosts, methods, precedence, 405, upstream
//! paths), on random tables and random paths, including arbitrary strings.
//!
//! Each property runs a bounded number of cases (`PROPTEST_CASES` raises it for a longer
//! local run); `fuzz/fuzz_targets/route_match.rs` checks the same for long campaigns.

mod model;
mod support;

use std::sync::LazyLock;

use gw_router::{PathMatcher, RouteMatch, RouteSpec, RouteTable};
use http::Method;
use model::check_find;
use proptest::prelude::*;
use support::echo;
use test_support::proptest_config;

const PREFIXES: &[&str] = &[
    "/", "/api", "/api/", "/api/v1", "/apix", "/a", "/a/b", "/a/b/", "//", "/api//", "/%41",
    "/a.b", "/é",
];

const PATTERNS: &[&str] = &[
    "^/api(/.*)?$",
    "^/a",
    "b",
    "^/x/([^/]*)$",
    "(.*)",
    "^/api/v[0-9]+/(.*)$",
    "()",
    "^/(a)?b",
    "x*",
    "^/api/(?P<rest>v1.*)$",
];

const SEGMENTS: &[&str] = &[
    "api", "apix", "a", "b", "v1", "v2", "x", "", "%41", "a.b", "é", "ab",
];

const METHODS: &[Method] = &[Method::GET, Method::POST, Method::DELETE];

fn spec() -> impl Strategy<Value = RouteSpec> {
    let matcher = prop_oneof![
        3 => (
            prop_oneof![
                3 => prop::sample::select(PREFIXES).prop_map(str::to_owned),
                1 => "/[a-z/]{0,6}",
            ],
            any::<bool>()
        )
            .prop_map(|(path, strip_prefix)| PathMatcher::Prefix { path, strip_prefix }),
        2 => prop::sample::select(PATTERNS).prop_map(|p| PathMatcher::Pattern(p.to_owned())),
    ];
    (
        matcher,
        prop::sample::subsequence(METHODS, 0..=2),
        prop::option::weighted(
            0.3,
            prop::sample::select(&["a.example", "*.example", "A.Example."][..]),
        ),
        -1i32..=1,
    )
        .prop_map(|(matcher, methods, host, priority)| RouteSpec {
            methods,
            host: host.map(str::to_owned),
            priority,
            ..RouteSpec::new("", "svc", matcher)
        })
}

fn specs() -> impl Strategy<Value = Vec<RouteSpec>> {
    prop::collection::vec(spec(), 1..8).prop_map(|mut specs| {
        for (i, s) in specs.iter_mut().enumerate() {
            s.id = format!("r{i}");
        }
        specs
    })
}

fn request_path() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(prop::sample::select(SEGMENTS), 0..5)
            .prop_map(|s| format!("/{}", s.join("/"))),
        2 => "/[a-z/]{0,10}",
        1 => any::<String>(),
    ]
}

fn request_host() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(
        &[
            "a.example",
            "b.a.example:8080",
            "A.EXAMPLE.",
            "example",
            "x.example",
            "[::1]:80",
            "a.example:",
        ][..],
    ))
}

fn table(specs: &[RouteSpec]) -> RouteTable {
    RouteTable::new(specs.iter().map(|s| (s.clone(), echo("x"))).collect()).expect("valid specs")
}

// ---------------------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(proptest_config(500))]

    /// `find` is the model, on random tables, methods, hosts and paths; an upstream path
    /// that came from a prefix route or a capture group starts with `/`.
    #[test]
    fn find_agrees_with_model(
        specs in specs(),
        method in prop::sample::select(&[Method::GET, Method::POST, Method::PUT][..]),
        host in request_host(),
        paths in prop::collection::vec(request_path(), 1..8),
    ) {
        let t = table(&specs);
        for path in &paths {
            if let Err(why) = check_find(&t, &specs, &method, host, path) {
                prop_assert!(false, "{}", why);
            }
        }
    }
}

/// A table with every prefix and pattern of the generators, built once.
static EVERY_ROUTE: LazyLock<RouteTable> = LazyLock::new(|| {
    let specs: Vec<RouteSpec> = PREFIXES
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let matcher = PathMatcher::Prefix {
                path: (*p).to_owned(),
                strip_prefix: i % 2 == 0,
            };
            RouteSpec::new(format!("p{i}"), "svc", matcher)
        })
        .chain(PATTERNS.iter().enumerate().map(|(i, p)| {
            RouteSpec::new(
                format!("r{i}"),
                "svc",
                PathMatcher::Pattern((*p).to_owned()),
            )
        }))
        .collect();
    table(&specs)
});

proptest! {
    #![proptest_config(proptest_config(2000))]

    /// A prefix `/p` matches `/p` and `/p/…`, never `/px…`; with `strip_prefix` the rest
    /// starts with `/`.
    #[test]
    fn prefix_matches_on_segment_boundaries(
        prefix in prop::collection::vec("[a-c]{1,3}", 1..4).prop_map(|s| format!("/{}", s.join("/"))),
        slash in any::<bool>(),
        rest in "[a-c/]{0,6}",
    ) {
        let prefix = if slash { format!("{prefix}/") } else { prefix };
        let spec = RouteSpec::new(
            "p",
            "svc",
            PathMatcher::Prefix { path: prefix.clone(), strip_prefix: true },
        );
        let t = table(&[spec]);
        let path = format!("{prefix}{rest}");
        let boundary = prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/');
        let base = prefix.strip_suffix('/').unwrap_or(&prefix);
        match t.find(&Method::GET, None, &path) {
            RouteMatch::Found { upstream_path, .. } => {
                prop_assert!(boundary, "{:?} matched {:?}", prefix, path);
                prop_assert!(upstream_path.starts_with('/'), "{:?}", upstream_path);
                let expected = if path.len() == base.len() { "/" } else { &path[base.len()..] };
                prop_assert_eq!(&*upstream_path, expected);
            }
            RouteMatch::NotFound => prop_assert!(!boundary, "{:?} missed {:?}", prefix, path),
            RouteMatch::MethodNotAllowed { .. } => prop_assert!(false, "no method rule"),
        }
    }

    /// Any string as a path: no panic, and only routes that can match it.
    #[test]
    fn find_never_panics(path in any::<String>(), bytes in prop::collection::vec(any::<u8>(), 0..24)) {
        let t = &*EVERY_ROUTE;
        let lossy = String::from_utf8_lossy(&bytes);
        for p in [path.as_str(), &lossy, &format!("/{path}")] {
            if let RouteMatch::Found { upstream_path, .. } = t.find(&Method::GET, Some(p), p) {
                prop_assert!(!upstream_path.is_empty() || p.is_empty());
            }
        }
    }
}
