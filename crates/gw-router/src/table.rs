//! [`RouteTable`]: an immutable, pre-compiled snapshot of the routes, and [`RouteTable::find`].
//!
//! Build time does the work so that a lookup is cheap:
//! - prefix routes hang off a trie over path segments; a lookup walks the request path's
//!   segments once and collects the routes whose prefix it passes, whatever their number;
//! - every pattern is compiled into one [`RegexSet`], matched in a single pass, and only when
//!   no prefix route already wins on precedence; the winner's own [`Regex`] runs only when
//!   its capture group 1 is needed;
//! - precedence is flattened into one integer rank per route, so the winner is a minimum.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::fmt;

use gw_core::RouteTag;
use http::{HeaderValue, Method};
use regex::{Regex, RegexSet, RegexSetBuilder};
use smallvec::SmallVec;

use crate::spec::{strip_port, HostMatcher};
use crate::{PathMatcher, RouteError, RouteService, RouteSpec};

/// Compiled size limit of the pattern set: generous, so that thousands of patterns fit.
const SET_SIZE_LIMIT: usize = 512 << 20;

/// One route of a [`RouteTable`]: its spec, the service that answers, and the tag put on
/// the response.
pub struct Route {
    spec: RouteSpec,
    service: RouteService,
    tag: RouteTag,
    host: Option<HostMatcher>,
    kind: Kind,
    /// Position in precedence order: lower wins.
    rank: u32,
}

enum Kind {
    Prefix {
        /// Length of the prefix without its trailing `/`: where `strip_prefix` cuts.
        cut: usize,
        /// The prefix ends in `/`: the path must go on with `/` after `cut`.
        needs_more: bool,
        strip: bool,
    },
    Pattern {
        regex: Regex,
        captures: bool,
    },
}

impl Route {
    /// The route as configured.
    pub fn spec(&self) -> &RouteSpec {
        &self.spec
    }

    /// The service that answers the route's requests.
    pub fn service(&self) -> &RouteService {
        &self.service
    }

    /// The tag the [`Router`](crate::Router) puts into the response extensions.
    pub fn tag(&self) -> &RouteTag {
        &self.tag
    }

    /// `host` as the request has it: a port is ignored, and taken off only for routes that
    /// name a host (most name none).
    fn host_matches(&self, host: Option<&str>) -> bool {
        match (&self.host, host) {
            (None, _) => true,
            (Some(want), Some(host)) => want.matches(strip_port(host)),
            (Some(_), None) => false,
        }
    }

    fn method_matches(&self, method: &Method) -> bool {
        self.spec.methods.is_empty() || self.spec.methods.contains(method)
    }

    /// The path sent upstream for a request `path` this route matched.
    fn upstream_path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        match &self.kind {
            Kind::Prefix { strip: false, .. }
            | Kind::Pattern {
                captures: false, ..
            } => Cow::Borrowed(path),
            Kind::Prefix { cut, .. } => match &path[*cut..] {
                "" => Cow::Borrowed("/"),
                // The prefix matched on a segment boundary: the rest starts with '/'.
                rest => Cow::Borrowed(rest),
            },
            Kind::Pattern { regex, .. } => {
                let group = regex
                    .captures(path)
                    .and_then(|caps| caps.get(1))
                    .map_or("", |m| m.as_str());
                if group.is_empty() {
                    Cow::Borrowed("/")
                } else if group.starts_with('/') {
                    Cow::Borrowed(group)
                } else {
                    // A request target needs a leading '/'.
                    Cow::Owned(format!("/{group}"))
                }
            }
        }
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("spec", &self.spec)
            .field("rank", &self.rank)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`RouteTable::find`].
#[derive(Debug)]
pub enum RouteMatch<'a> {
    /// A route matched host, path and method.
    Found {
        /// The winning route.
        route: &'a Route,
        /// The path to send upstream (without the query, which the caller keeps).
        upstream_path: Cow<'a, str>,
    },
    /// Routes matched host and path, none the method: answer 405 with this `Allow` value,
    /// the union of their methods (`GET, POST`).
    MethodNotAllowed {
        /// Value of the `Allow` header.
        allow: HeaderValue,
    },
    /// No route matched host and path: answer 404.
    NotFound,
}

/// The state of one lookup.
struct Candidates<'t, 'r> {
    table: &'t RouteTable,
    host: Option<&'r str>,
    method: &'r Method,
    /// Routes whose host and path matched.
    matched: SmallVec<[u32; 8]>,
    /// The best-ranked of those whose method matched too.
    best: Option<&'t Route>,
}

impl Candidates<'_, '_> {
    #[inline]
    fn consider(&mut self, index: u32) {
        let route = &self.table.routes[index as usize];
        if !route.host_matches(self.host) {
            return;
        }
        self.matched.push(index);
        if route.method_matches(self.method) && self.best.is_none_or(|b| route.rank < b.rank) {
            self.best = Some(route);
        }
    }
}

/// One node of the segment trie.
#[derive(Default)]
struct Node {
    children: HashMap<Box<str>, u32>,
    /// Prefix routes whose prefix ends at this node.
    routes: SmallVec<[u32; 2]>,
}

/// The compiled pattern routes.
struct Patterns {
    set: RegexSet,
    /// Set index → route index.
    routes: Box<[u32]>,
    /// Best (lowest) rank among pattern routes: a prefix winner ranked better skips the set.
    best_rank: u32,
}

/// An immutable snapshot of the routes, compiled for lookup.
///
/// Build a new table to change the routes, and publish it through the
/// [`ArcSwap`](arc_swap::ArcSwap) a [`Router`](crate::Router) reads.
pub struct RouteTable {
    routes: Vec<Route>,
    by_id: HashMap<Box<str>, u32>,
    /// Node 0 is the root (the empty prefix).
    trie: Vec<Node>,
    patterns: Option<Patterns>,
}

impl RouteTable {
    /// A table without routes: every lookup is [`RouteMatch::NotFound`].
    pub fn empty() -> Self {
        Self {
            routes: Vec::new(),
            by_id: HashMap::new(),
            trie: vec![Node::default()],
            patterns: None,
        }
    }

    /// Validates and compiles the routes.
    ///
    /// The order of `routes` is the insertion order: it decides between pattern routes (and
    /// between otherwise equal prefix routes) of equal priority. Fails on the first invalid
    /// spec (see [`RouteSpec::validate`]) or a duplicate id.
    pub fn new(routes: Vec<(RouteSpec, RouteService)>) -> Result<Self, RouteError> {
        let mut table = Self::empty();
        table.routes.reserve_exact(routes.len());
        let mut pattern_routes = Vec::new();

        for (spec, service) in routes {
            let regex = spec.compile()?;
            let index = u32::try_from(table.routes.len()).expect("fewer than 2^32 routes");
            if table.by_id.insert(spec.id.as_str().into(), index).is_some() {
                return Err(RouteError::DuplicateId(spec.id));
            }
            let kind = match (&spec.matcher, regex) {
                (PathMatcher::Pattern(_), Some(regex)) => {
                    pattern_routes.push(index);
                    Kind::Pattern {
                        captures: regex.captures_len() > 1,
                        regex,
                    }
                }
                (PathMatcher::Prefix { path, strip_prefix }, _) => {
                    let (base, needs_more) = match path.strip_suffix('/') {
                        Some(base) => (base, true),
                        None => (path.as_str(), false),
                    };
                    table.insert_prefix(base, index);
                    Kind::Prefix {
                        cut: base.len(),
                        needs_more,
                        strip: *strip_prefix,
                    }
                }
                (PathMatcher::Pattern(_), None) => unreachable!("compile() returns the regex"),
            };
            let tag = RouteTag {
                route: spec.id.as_str().into(),
                service: spec.service.as_str().into(),
            };
            let host = spec.host.as_deref().map(HostMatcher::parse).transpose()?;
            table.routes.push(Route {
                spec,
                service,
                tag,
                host,
                kind,
                rank: 0,
            });
        }

        // Precedence: priority (high first), prefix before pattern, longer prefix first,
        // insertion order.
        let mut order: Vec<u32> = (0..table.routes.len() as u32).collect();
        order.sort_by_key(|&i| {
            let route = &table.routes[i as usize];
            let (kind, len) = match &route.spec.matcher {
                PathMatcher::Prefix { path, .. } => (0u8, path.len()),
                PathMatcher::Pattern(_) => (1u8, 0),
            };
            (Reverse(route.spec.priority), kind, Reverse(len), i)
        });
        for (rank, &i) in order.iter().enumerate() {
            table.routes[i as usize].rank = rank as u32;
        }

        if !pattern_routes.is_empty() {
            let patterns = pattern_routes
                .iter()
                .map(|&i| match &table.routes[i as usize].kind {
                    Kind::Pattern { regex, .. } => regex.as_str(),
                    Kind::Prefix { .. } => unreachable!("pattern_routes holds pattern routes"),
                });
            let set = RegexSetBuilder::new(patterns)
                .size_limit(SET_SIZE_LIMIT)
                .build()
                .map_err(RouteError::PatternSet)?;
            let best_rank = pattern_routes
                .iter()
                .map(|&i| table.routes[i as usize].rank)
                .min()
                .unwrap_or(u32::MAX);
            table.patterns = Some(Patterns {
                set,
                routes: pattern_routes.into(),
                best_rank,
            });
        }
        table.trie.shrink_to_fit();
        Ok(table)
    }

    fn insert_prefix(&mut self, base: &str, route: u32) {
        let mut node = 0usize;
        if !base.is_empty() {
            // `base` starts with '/': its segments follow.
            for segment in base[1..].split('/') {
                let next = self.trie.len() as u32;
                let child = *self.trie[node]
                    .children
                    .entry(segment.into())
                    .or_insert(next);
                if child == next {
                    self.trie.push(Node::default());
                }
                node = child as usize;
            }
        }
        self.trie[node].routes.push(route);
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes in insertion order.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The route with this id.
    pub fn get(&self, id: &str) -> Option<&Route> {
        self.by_id.get(id).map(|&i| &self.routes[i as usize])
    }

    /// Finds the route for a request.
    ///
    /// `host` is the request's host (a port is ignored), `path` its path without the query.
    /// Among the routes whose host and path match, the first in precedence whose methods
    /// also match wins; when some match host and path but none the method, the answer is
    /// [`RouteMatch::MethodNotAllowed`].
    pub fn find<'a>(
        &'a self,
        method: &Method,
        host: Option<&str>,
        path: &'a str,
    ) -> RouteMatch<'a> {
        let mut found = Candidates {
            table: self,
            host,
            method,
            matched: SmallVec::new(),
            best: None,
        };
        self.walk(path, &mut |index| found.consider(index));
        if let Some(patterns) = &self.patterns {
            if found.best.is_none_or(|b| b.rank > patterns.best_rank) {
                for i in patterns.set.matches(path).iter() {
                    found.consider(patterns.routes[i]);
                }
            }
        }

        match found.best {
            Some(route) => RouteMatch::Found {
                route,
                upstream_path: route.upstream_path(path),
            },
            None if found.matched.is_empty() => RouteMatch::NotFound,
            None => RouteMatch::MethodNotAllowed {
                allow: self.allow(&found.matched),
            },
        }
    }

    /// Walks `path` down the trie and calls `found` with each prefix route it passes.
    fn walk(&self, path: &str, found: &mut impl FnMut(u32)) {
        let bytes = path.as_bytes();
        let mut node = &self.trie[0];
        // `path[..pos]` is the prefix consumed so far; `path[pos..]` is empty or starts with '/'.
        let mut pos = 0;
        if !path.starts_with('/') {
            return;
        }
        loop {
            let more = pos < bytes.len();
            for &index in &node.routes {
                match self.routes[index as usize].kind {
                    Kind::Prefix {
                        needs_more: true, ..
                    } if !more => {}
                    _ => found(index),
                }
            }
            if !more || node.children.is_empty() {
                return;
            }
            let start = pos + 1;
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(bytes.len(), |n| start + n);
            match node.children.get(&path[start..end]) {
                Some(&child) => {
                    node = &self.trie[child as usize];
                    pos = end;
                }
                None => return,
            }
        }
    }

    /// The `Allow` value: the union of the matched routes' methods, in canonical order.
    fn allow(&self, matched: &[u32]) -> HeaderValue {
        let mut methods: Vec<&Method> = matched
            .iter()
            .flat_map(|&i| &self.routes[i as usize].spec.methods)
            .collect();
        methods.sort_by(|a, b| (method_order(a), a.as_str()).cmp(&(method_order(b), b.as_str())));
        methods.dedup();
        let mut value = String::with_capacity(methods.len() * 8);
        for (n, method) in methods.iter().enumerate() {
            if n > 0 {
                value.push_str(", ");
            }
            value.push_str(method.as_str());
        }
        // Methods are tokens: always a valid header value.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// Canonical order of the `Allow` header: RFC 9110's methods, then PATCH, then the rest
/// alphabetically.
fn method_order(method: &Method) -> u8 {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::CONNECT => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::PATCH => 8,
        _ => 9,
    }
}

impl Default for RouteTable {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteTable")
            .field("routes", &self.routes.len())
            .field("prefix_nodes", &self.trie.len())
            .field(
                "patterns",
                &self.patterns.as_ref().map_or(0, |p| p.routes.len()),
            )
            .finish()
    }
}
