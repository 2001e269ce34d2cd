//! The model of `RouteTable::find`, written from the crate's documented rules, shared by
//! the property tests (`tests/prop.rs`) and the fuzz target
//! (`fuzz/fuzz_targets/route_match.rs`): one copy, so that a campaign checks exactly what CI
//! checks.

#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::HashMap;

use gw_router::{PathMatcher, RouteMatch, RouteSpec, RouteTable};
use http::Method;
use regex::Regex;

/// `pattern` compiled (once per thread and pattern).
pub fn compiled(pattern: &str) -> Regex {
    thread_local! {
        static CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
    }
    CACHE.with_borrow_mut(|cache| {
        cache
            .entry(pattern.to_owned())
            .or_insert_with(|| Regex::new(pattern).expect("a pattern the table accepted"))
            .clone()
    })
}

/// A route's host rule, as documented: exact (case-insensitive, trailing `.` ignored) or
/// `*.suffix` (a proper sub-domain); the request's port is ignored.
pub fn model_host(want: Option<&str>, host: Option<&str>) -> bool {
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
pub fn model_prefix(prefix: &str, path: &str) -> bool {
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
pub enum Outcome {
    Found {
        id: String,
        upstream: String,
    },
    /// 405 and its `Allow` methods (as a sorted list: the order is checked separately).
    MethodNotAllowed(Vec<String>),
    NotFound,
}

pub fn model(specs: &[RouteSpec], method: &Method, host: Option<&str>, path: &str) -> Outcome {
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

pub fn outcome(m: RouteMatch<'_>) -> Outcome {
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

/// `find` on `table` (built from `specs`) is the [`model`], and an upstream path rewritten
/// by a prefix route or a capture group starts with `/`; `Err` says what differs.
pub fn check_find(
    table: &RouteTable,
    specs: &[RouteSpec],
    method: &Method,
    host: Option<&str>,
    path: &str,
) -> Result<(), String> {
    let got = outcome(table.find(method, host, path));
    let want = model(specs, method, host, path);
    if got != want {
        return Err(format!(
            "{method} {host:?} {path:?}: got {got:?}, model {want:?}"
        ));
    }
    if let Outcome::Found { id, upstream } = &got {
        let spec = table.get(id).expect("found routes are in the table").spec();
        let rewritten = match &spec.matcher {
            PathMatcher::Prefix { strip_prefix, .. } => *strip_prefix,
            PathMatcher::Pattern(re) => compiled(re).captures_len() > 1,
        };
        if (rewritten || path.starts_with('/')) && !upstream.starts_with('/') {
            return Err(format!("{path:?} -> {upstream:?} by {spec:?}"));
        }
    }
    Ok(())
}
