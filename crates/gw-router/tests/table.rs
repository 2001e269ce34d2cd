//! `RouteTable::find`: matching, precedence, upstream paths, 405 and validation.

mod support;

use gw_router::{RouteError, RouteMatch, RouteSpec, RouteTable};
use http::Method;
use support::*;

fn table(specs: Vec<RouteSpec>) -> RouteTable {
    RouteTable::new(specs.into_iter().map(|spec| (spec, echo("x"))).collect()).expect("valid table")
}

/// `(route id, upstream path)` of a GET without host, or the outcome's name.
fn get(table: &RouteTable, path: &str) -> (String, String) {
    find(table, Method::GET, None, path)
}

fn find(table: &RouteTable, method: Method, host: Option<&str>, path: &str) -> (String, String) {
    match table.find(&method, host, path) {
        RouteMatch::Found {
            route,
            upstream_path,
        } => (route.spec().id.clone(), upstream_path.into_owned()),
        RouteMatch::MethodNotAllowed { allow } => ("405".into(), allow.to_str().unwrap().into()),
        RouteMatch::NotFound => ("404".into(), String::new()),
    }
}

fn found(id: &str, upstream: &str) -> (String, String) {
    (id.into(), upstream.into())
}

fn not_found() -> (String, String) {
    ("404".into(), String::new())
}

#[test]
fn prefix_matches_on_segment_boundary() {
    let t = table(vec![prefix("api", "/api")]);
    assert_eq!(get(&t, "/api"), found("api", "/api"));
    assert_eq!(get(&t, "/api/"), found("api", "/api/"));
    assert_eq!(get(&t, "/api/x/y"), found("api", "/api/x/y"));
    assert_eq!(get(&t, "/apix"), not_found());
    assert_eq!(get(&t, "/ap"), not_found());
    assert_eq!(get(&t, "/"), not_found());
    assert_eq!(get(&t, "/other/api"), not_found());
}

#[test]
fn prefix_with_trailing_slash_needs_more_path() {
    let t = table(vec![prefix("api", "/api/")]);
    assert_eq!(get(&t, "/api/"), found("api", "/api/"));
    assert_eq!(get(&t, "/api/x"), found("api", "/api/x"));
    assert_eq!(get(&t, "/api"), not_found());
    assert_eq!(get(&t, "/apix"), not_found());
}

#[test]
fn root_prefix_matches_everything() {
    let t = table(vec![prefix("root", "/")]);
    for path in ["/", "/a", "/a/b/c", "//x"] {
        assert_eq!(get(&t, path), found("root", path));
    }
}

#[test]
fn multi_segment_prefix() {
    let t = table(vec![prefix("v1", "/api/v1/users")]);
    assert_eq!(get(&t, "/api/v1/users/7"), found("v1", "/api/v1/users/7"));
    assert_eq!(get(&t, "/api/v1/users"), found("v1", "/api/v1/users"));
    assert_eq!(get(&t, "/api/v1/usersx"), not_found());
    assert_eq!(get(&t, "/api/v1"), not_found());
    assert_eq!(get(&t, "/api/v2/users"), not_found());
}

#[test]
fn longest_prefix_wins_whatever_the_order() {
    let t = table(vec![
        prefix("root", "/"),
        prefix("api", "/api"),
        prefix("users", "/api/v1/users"),
        prefix("v1", "/api/v1"),
    ]);
    assert_eq!(get(&t, "/api/v1/users/1").0, "users");
    assert_eq!(get(&t, "/api/v1/orders").0, "v1");
    assert_eq!(get(&t, "/api/v2").0, "api");
    assert_eq!(get(&t, "/apix").0, "root");
    assert_eq!(get(&t, "/").0, "root");
}

#[test]
fn trailing_slash_prefix_is_longer() {
    let t = table(vec![prefix("bare", "/api"), prefix("slash", "/api/")]);
    assert_eq!(get(&t, "/api/x").0, "slash");
    assert_eq!(get(&t, "/api").0, "bare");
}

#[test]
fn equal_prefixes_keep_insertion_order() {
    let t = table(vec![prefix("first", "/a"), prefix("second", "/a")]);
    assert_eq!(get(&t, "/a/b").0, "first");
}

#[test]
fn priority_beats_everything() {
    let t = table(vec![
        prefix("long", "/api/v1/users"),
        with_priority(pattern("pat", "^/api/"), 10),
        with_priority(prefix("short", "/api"), 5),
    ]);
    assert_eq!(get(&t, "/api/v1/users/1").0, "pat");
    assert_eq!(get(&t, "/api").0, "short");

    let t = table(vec![
        with_priority(prefix("low", "/api/v1"), -1),
        prefix("root", "/"),
    ]);
    assert_eq!(get(&t, "/api/v1").0, "root");
}

#[test]
fn prefix_before_pattern_at_equal_priority() {
    let t = table(vec![
        pattern("pat", "^/api/v1/users/[0-9]+$"),
        prefix("root", "/"),
    ]);
    assert_eq!(get(&t, "/api/v1/users/1").0, "root");
    let t = table(vec![
        pattern("pat", "^/api/v1/users/[0-9]+$"),
        prefix("other", "/other"),
    ]);
    assert_eq!(get(&t, "/api/v1/users/1").0, "pat");
}

#[test]
fn patterns_in_insertion_order() {
    let t = table(vec![
        pattern("general", "^/api/"),
        pattern("specific", "^/api/v1/users$"),
    ]);
    assert_eq!(get(&t, "/api/v1/users").0, "general");
    let t = table(vec![
        pattern("specific", "^/api/v1/users$"),
        pattern("general", "^/api/"),
    ]);
    assert_eq!(get(&t, "/api/v1/users").0, "specific");
    assert_eq!(get(&t, "/api/v1/orders").0, "general");
}

#[test]
fn pattern_is_a_regex_search_on_the_path() {
    let t = table(vec![pattern("p", "users")]);
    assert_eq!(get(&t, "/api/users/1"), found("p", "/api/users/1"));
    assert_eq!(get(&t, "/api/orders"), not_found());
}

#[test]
fn pattern_upstream_is_capture_group_one() {
    let t = table(vec![pattern("users", "^/api/v1/users(/.*)?$")]);
    assert_eq!(get(&t, "/api/v1/users/42"), found("users", "/42"));
    assert_eq!(get(&t, "/api/v1/users/a/b"), found("users", "/a/b"));
    // Group 1 did not take part.
    assert_eq!(get(&t, "/api/v1/users"), found("users", "/"));

    let t = table(vec![pattern("empty", "^/x(.*)$")]);
    // Group 1 is empty.
    assert_eq!(get(&t, "/x"), found("empty", "/"));
    // Group 1 without a leading '/' gets one.
    assert_eq!(get(&t, "/xyz"), found("empty", "/yz"));

    let t = table(vec![pattern("whole", "^/api/(?:v1|v2)/items")]);
    assert_eq!(
        get(&t, "/api/v2/items/3"),
        found("whole", "/api/v2/items/3")
    );
}

#[test]
fn strip_prefix() {
    let t = table(vec![strip("api", "/api"), strip("files", "/files/")]);
    assert_eq!(get(&t, "/api/users/1"), found("api", "/users/1"));
    assert_eq!(get(&t, "/api"), found("api", "/"));
    assert_eq!(get(&t, "/api/"), found("api", "/"));
    assert_eq!(get(&t, "/files/a.txt"), found("files", "/a.txt"));
    assert_eq!(get(&t, "/files/"), found("files", "/"));

    let t = table(vec![strip("root", "/")]);
    assert_eq!(get(&t, "/a/b"), found("root", "/a/b"));
    assert_eq!(get(&t, "/"), found("root", "/"));
}

#[test]
fn upstream_paths_borrow_the_request_path() {
    let t = table(vec![strip("api", "/api"), pattern("p", "^/p(/.*)$")]);
    for path in ["/api/x", "/p/y"] {
        match t.find(&Method::GET, None, path) {
            RouteMatch::Found { upstream_path, .. } => {
                assert!(matches!(upstream_path, std::borrow::Cow::Borrowed(_)))
            }
            _ => panic!("no route for {path}"),
        }
    }
}

#[test]
fn methods_and_405_allow_union() {
    let t = table(vec![
        with_methods(prefix("read", "/api"), &[Method::GET, Method::HEAD]),
        with_methods(prefix("write", "/api/v1"), &[Method::POST, Method::GET]),
        with_methods(
            pattern("del", "^/api/v1/"),
            &[Method::DELETE, Method::PATCH],
        ),
        with_methods(prefix("other", "/other"), &[Method::PUT]),
    ]);
    assert_eq!(find(&t, Method::GET, None, "/api/v1/x").0, "write");
    assert_eq!(find(&t, Method::HEAD, None, "/api/v1/x").0, "read");
    assert_eq!(find(&t, Method::DELETE, None, "/api/v1/x").0, "del");
    assert_eq!(
        find(&t, Method::PUT, None, "/api/v1/x"),
        ("405".into(), "GET, HEAD, POST, DELETE, PATCH".into())
    );
    assert_eq!(
        find(&t, Method::POST, None, "/api"),
        ("405".into(), "GET, HEAD".into())
    );
    assert_eq!(find(&t, Method::PUT, None, "/nothing"), not_found());
}

#[test]
fn empty_methods_accept_every_method() {
    let t = table(vec![prefix("any", "/")]);
    for m in [
        Method::GET,
        Method::DELETE,
        Method::from_bytes(b"PURGE").unwrap(),
    ] {
        assert_eq!(find(&t, m, None, "/x").0, "any");
    }
}

#[test]
fn method_mismatch_falls_through_to_lower_precedence() {
    let t = table(vec![
        with_methods(prefix("posts", "/api/v1"), &[Method::POST]),
        prefix("fallback", "/api"),
    ]);
    assert_eq!(find(&t, Method::GET, None, "/api/v1/x").0, "fallback");
}

#[test]
fn hosts() {
    let t = table(vec![
        with_host(prefix("exact", "/"), "API.example.com"),
        with_host(prefix("wild", "/"), "*.example.com"),
        with_host(prefix("v6", "/"), "[::1]"),
    ]);
    let id = |host| find(&t, Method::GET, host, "/x").0;
    assert_eq!(id(Some("api.example.com")), "exact");
    assert_eq!(id(Some("Api.Example.Com:8443")), "exact");
    assert_eq!(id(Some("api.example.com.")), "exact");
    assert_eq!(id(Some("web.example.com")), "wild");
    assert_eq!(id(Some("a.b.example.com:80")), "wild");
    assert_eq!(id(Some("[::1]:8080")), "v6");
    assert_eq!(id(Some("example.com")), "404");
    assert_eq!(id(Some("evil-example.com")), "404");
    assert_eq!(id(None), "404");
}

#[test]
fn host_routes_and_any_host_routes_share_a_path() {
    let t = table(vec![
        with_host(pattern("tenant", "^/api"), "tenant.example.com"),
        prefix("public", "/api"),
    ]);
    // Precedence is priority, then kind: the prefix route wins when both match.
    assert_eq!(
        find(&t, Method::GET, Some("tenant.example.com"), "/api").0,
        "public"
    );
    let t = table(vec![
        with_host(prefix("tenant", "/api"), "tenant.example.com"),
        prefix("public", "/api"),
    ]);
    assert_eq!(
        find(&t, Method::GET, Some("tenant.example.com"), "/api").0,
        "tenant"
    );
    assert_eq!(
        find(&t, Method::GET, Some("other.example.com"), "/api").0,
        "public"
    );
}

#[test]
fn host_mismatch_is_not_405() {
    let t = table(vec![with_methods(
        with_host(prefix("a", "/"), "a.example.com"),
        &[Method::GET],
    )]);
    assert_eq!(find(&t, Method::POST, Some("b.example.com"), "/").0, "404");
    assert_eq!(find(&t, Method::POST, Some("a.example.com"), "/").0, "405");
}

#[test]
fn accessors() {
    let t = table(vec![
        prefix("b", "/b"),
        pattern("a", "^/a"),
        prefix("c", "/c"),
    ]);
    assert_eq!(t.len(), 3);
    assert!(!t.is_empty());
    let ids: Vec<_> = t.routes().map(|r| r.spec().id.as_str()).collect();
    assert_eq!(ids, ["b", "a", "c"]);
    let a = t.get("a").unwrap();
    assert_eq!(&*a.tag().route, "a");
    assert_eq!(&*a.tag().service, "a_svc");
    assert!(t.get("zz").is_none());
    assert!(format!("{t:?}").contains("RouteTable"));

    let empty = RouteTable::empty();
    assert!(empty.is_empty());
    assert!(matches!(
        empty.find(&Method::GET, None, "/"),
        RouteMatch::NotFound
    ));
}

#[test]
fn invalid_regex_is_an_error() {
    let spec = pattern("bad", "^/api/(unclosed");
    let err = spec.validate().unwrap_err();
    assert!(matches!(err, RouteError::InvalidPattern(_)));
    assert!(
        err.to_string()
            .starts_with("invalid pattern: regex parse error"),
        "{err}"
    );
    let err = RouteTable::new(vec![(spec, echo("x"))]).unwrap_err();
    assert!(matches!(err, RouteError::InvalidPattern(_)));
}

#[test]
fn duplicate_id_is_an_error() {
    let err = RouteTable::new(vec![
        (prefix("same", "/a"), echo("x")),
        (pattern("same", "^/b"), echo("x")),
    ])
    .unwrap_err();
    assert!(matches!(&err, RouteError::DuplicateId(id) if id == "same"));
    assert_eq!(err.to_string(), r#"duplicate route id "same""#);
}

#[test]
fn other_validation_errors() {
    let err = prefix("p", "api").validate().unwrap_err();
    assert!(matches!(err, RouteError::InvalidPrefix(_)), "{err}");
    assert!(matches!(
        prefix("", "/").validate(),
        Err(RouteError::EmptyId)
    ));
    let mut spec = prefix("p", "/");
    spec.service.clear();
    assert!(matches!(spec.validate(), Err(RouteError::EmptyService)));
    let err = with_host(prefix("p", "/"), "a.com:80")
        .validate()
        .unwrap_err();
    assert!(matches!(err, RouteError::InvalidHost { .. }), "{err}");
    assert!(prefix("p", "/").validate().is_ok());
    assert!(pattern("p", "^/x(/.*)?$").validate().is_ok());
}

#[test]
fn many_routes() {
    let mut specs = Vec::new();
    for i in 0..2000 {
        specs.push(strip(&format!("svc{i}"), &format!("/api/v1/svc{i}")));
        if i % 10 == 0 {
            specs.push(pattern(
                &format!("res{i}"),
                &format!("^/api/v2/res{i}/items/([0-9]+)$"),
            ));
        }
    }
    let t = table(specs);
    assert_eq!(
        get(&t, "/api/v1/svc1234/users/9"),
        found("svc1234", "/users/9")
    );
    assert_eq!(get(&t, "/api/v2/res1230/items/77"), found("res1230", "/77"));
    assert_eq!(get(&t, "/api/v2/res1231/items/77"), not_found());
    assert_eq!(get(&t, "/api/v1/svc20000"), not_found());
}
