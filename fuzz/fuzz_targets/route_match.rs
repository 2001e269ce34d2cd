//! `RouteTable::find` against the model of the documented rules (the same checks as
//! `crates/gw-router/tests/prop.rs`).
//!
//! Input: two bytes choosing up to 16 routes from a fixed list (tables are built once per
//! choice and kept), one byte for the method and host, then the path (UTF-8, lossily).

#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::rc::Rc;

use gw_router::{Body, PathMatcher, RouteService, RouteSpec, RouteTable};
use http::{Method, Response};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/gw-router/tests/model/mod.rs"]
mod model;

/// The routes a table is chosen from: `(prefix or pattern, strip_prefix / is a pattern,
/// methods, host, priority)`.
const ROUTES: &[(&str, bool, &[Method], Option<&str>, i32)] = &[
    ("/", false, &[], None, 0),
    ("/api", true, &[], None, 0),
    ("/api/", false, &[Method::GET], None, 0),
    ("/api/v1", true, &[Method::POST], None, 1),
    ("/a/b", true, &[], Some("a.example"), 0),
    ("//", true, &[], None, 0),
    ("/api//", false, &[], Some("*.example"), 0),
    ("/é", true, &[Method::DELETE], None, -1),
    ("^/api(/.*)?$", true, &[], None, 0),
    ("^/x/([^/]*)$", true, &[Method::GET], None, 0),
    ("(.*)", true, &[], None, -1),
    ("^/(a)?b", true, &[], Some("A.Example."), 0),
    ("x*", true, &[Method::POST], None, 1),
    ("^/api/v[0-9]+/(.*)$", true, &[], None, 0),
    ("()", true, &[], None, 0),
    ("b", true, &[], None, 2),
];
const PATTERNS_FROM: usize = 8;

const HOSTS: &[Option<&str>] = &[
    None,
    Some("a.example"),
    Some("b.a.example:8080"),
    Some("A.EXAMPLE."),
    Some("example"),
    Some("[::1]:80"),
    Some("a.example:"),
    Some(""),
];

fn specs(mask: u16) -> Vec<RouteSpec> {
    ROUTES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(i, &(text, flag, methods, host, priority))| {
            let matcher = if i >= PATTERNS_FROM {
                PathMatcher::Pattern(text.to_owned())
            } else {
                PathMatcher::Prefix {
                    path: text.to_owned(),
                    strip_prefix: flag,
                }
            };
            RouteSpec {
                methods: methods.to_vec(),
                host: host.map(str::to_owned),
                priority,
                ..RouteSpec::new(format!("r{i}"), "svc", matcher)
            }
        })
        .collect()
}

fn service() -> RouteService {
    RouteService::new(tower::service_fn(|_req: http::Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }))
}

thread_local! {
    static TABLES: RefCell<HashMap<u16, Rc<(Vec<RouteSpec>, RouteTable)>>> =
        RefCell::new(HashMap::new());
}

fuzz_target!(|data: &[u8]| {
    let [lo, hi, pick, path @ ..] = data else {
        return;
    };
    let mask = u16::from_le_bytes([*lo, *hi]);
    let entry = TABLES.with_borrow_mut(|tables| {
        tables
            .entry(mask)
            .or_insert_with(|| {
                let specs = specs(mask);
                let table = RouteTable::new(specs.iter().map(|s| (s.clone(), service())).collect())
                    .expect("the fixed routes are valid");
                Rc::new((specs, table))
            })
            .clone()
    });
    let (specs, table) = &*entry;
    let method =
        [Method::GET, Method::POST, Method::PUT, Method::DELETE][usize::from(pick & 3)].clone();
    let host = HOSTS[usize::from(pick >> 2) % HOSTS.len()];
    let path = String::from_utf8_lossy(path);
    if let Err(why) = model::check_find(table, specs, &method, host, &path) {
        panic!("routes {mask:#06x}: {why}");
    }
});
