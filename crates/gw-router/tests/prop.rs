//! Property tests of `RouteTable::find` against a model written from the crate's documented
//! rules (segment-boundary prefixes, regex patterns, hosts, methods, precedence, 405, upstream
//! paths), on random tables and random paths, including arbitrary strings.
//!
//! Each property runs a bounded number of cases (`PROPTEST_CASES` raises it for a longer
//! local run); `fuzz/fuzz_targets/route_match.rs` checks the same for long campaigns.

mod support;

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::LazyLock;

use gw_router::{PathMatcher, RouteMatch, RouteSpec, RouteTable};
use http::Method;
use proptest::prelude::*;
use proptest::test_runner::Config;
use regex::Regex;
use support::echo;

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

/// The generators' patterns, compiled once.
fn compiled(pattern: &str) -> &'static Regex {
    static ALL: LazyLock<HashMap<&'static str, Regex>> = LazyLock::new(|| {
        PATTERNS
            .iter()
            .map(|p| (*p, Regex::new(p).expect("valid pattern")))
            .collect()
    });
    &ALL[pattern]
}

/// A route's host rule, as documented: exact (case-insensitive, trailing `.` ignored) or
/// `*.suffix` (a proper sub-domain); the request's port is ignored.
fn model_host(want: Option<&str>, host: Option<&str>) -> bool {
    let Some(want) = want else { return true };
    let Some(host) = host else { return false };
    let host = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.split(':').next().unwrap_or("")
    };
    let norm = |h: &str| h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase();
    let (want, host) = (norm(want), norm(host));
    match want.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => host == want,
    }
}

/// `/api` matches `/api` and `/api/…`; `/api/` matches `/api/…`; `/` matches every path.
fn model_prefix(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix)
    } else {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|r| r.starts_with('/'))
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Found {
        id: String,
        upstream: String,
    },
    /// 405 and its `Allow` methods (as a sorted list: the order is checked separately).
    MethodNotAllowed(Vec<String>),
    NotFound,
}

fn model(specs: &[RouteSpec], method: &Method, host: Option<&str>, path: &str) -> Outcome {
    let matched: Vec<usize> = (0..specs.len())
        .filter(|&i| {
            let s = &specs[i];
            model_host(s.host.as_deref(), host)
                && match &s.matcher {
                    PathMatcher::Prefix { path: p, .. } => model_prefix(p, path),
                    PathMatcher::Pattern(re) => compiled(re).is_match(path),
                }
        })
        .collect();
    let precedence = |&i: &usize| {
        let s = &specs[i];
        let (kind, len) = match &s.matcher {
            PathMatcher::Prefix { path, .. } => (0u8, path.len()),
            PathMatcher::Pattern(_) => (1, 0),
        };
        (Reverse(s.priority), kind, Reverse(len), i)
    };
    let winner = matched
        .iter()
        .filter(|&&i| specs[i].methods.is_empty() || specs[i].methods.contains(method))
        .min_by_key(|i| precedence(i));
    let Some(&w) = winner else {
        if matched.is_empty() {
            return Outcome::NotFound;
        }
        let mut allow: Vec<String> = matched
            .iter()
            .flat_map(|&i| specs[i].methods.iter().map(|m| m.to_string()))
            .collect();
        allow.sort();
        allow.dedup();
        return Outcome::MethodNotAllowed(allow);
    };
    let upstream = match &specs[w].matcher {
        PathMatcher::Prefix {
            strip_prefix: false,
            ..
        } => path.to_owned(),
        PathMatcher::Prefix { path: p, .. } => {
            let base = p.strip_suffix('/').unwrap_or(p);
            match &path[base.len()..] {
                "" => "/".to_owned(),
                rest => rest.to_owned(),
            }
        }
        PathMatcher::Pattern(re) => {
            let re = compiled(re);
            if re.captures_len() > 1 {
                let group = re
                    .captures(path)
                    .and_then(|c| c.get(1))
                    .map_or("", |m| m.as_str());
                if group.is_empty() {
                    "/".to_owned()
                } else if group.starts_with('/') {
                    group.to_owned()
                } else {
                    format!("/{group}")
                }
            } else {
                path.to_owned()
            }
        }
    };
    Outcome::Found {
        id: specs[w].id.clone(),
        upstream,
    }
}

fn outcome(m: RouteMatch<'_>) -> Outcome {
    match m {
        RouteMatch::Found {
            route,
            upstream_path,
        } => Outcome::Found {
            id: route.spec().id.clone(),
            upstream: upstream_path.into_owned(),
        },
        RouteMatch::MethodNotAllowed { allow } => {
            let mut v: Vec<String> = allow
                .to_str()
                .expect("methods are ASCII")
                .split(", ")
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
            v.sort();
            Outcome::MethodNotAllowed(v)
        }
        RouteMatch::NotFound => Outcome::NotFound,
    }
}

proptest! {
    #![proptest_config(config(500))]

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
            let got = outcome(t.find(&method, host, path));
            let want = model(&specs, &method, host, path);
            prop_assert_eq!(&got, &want, "{} {:?} {:?}", method, host, path);
            if let Outcome::Found { id, upstream } = &got {
                let spec = t.get(id).unwrap().spec();
                let rewritten = match &spec.matcher {
                    PathMatcher::Prefix { strip_prefix, .. } => *strip_prefix,
                    PathMatcher::Pattern(re) => compiled(re).captures_len() > 1,
                };
                if rewritten || path.starts_with('/') {
                    prop_assert!(upstream.starts_with('/'), "{:?} -> {:?} by {:?}", path, upstream, spec);
                }
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
    #![proptest_config(config(2000))]

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
