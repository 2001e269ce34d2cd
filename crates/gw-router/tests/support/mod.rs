//! Helpers shared by the test files: spec builders and a stand-in upstream.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;

use gw_router::{Body, PathMatcher, RouteService, RouteSpec};
use http::{Method, Request, Response};

/// An upstream that answers 200 with `"{name} {uri}"` as its body.
pub fn echo(name: &'static str) -> RouteService {
    RouteService::new(tower::service_fn(move |req: Request<Body>| async move {
        Ok::<_, Infallible>(Response::new(Body::from(format!("{name} {}", req.uri()))))
    }))
}

pub fn prefix(id: &str, path: &str) -> RouteSpec {
    RouteSpec::new(
        id,
        format!("{id}_svc"),
        PathMatcher::Prefix {
            path: path.into(),
            strip_prefix: false,
        },
    )
}

pub fn strip(id: &str, path: &str) -> RouteSpec {
    RouteSpec::new(
        id,
        format!("{id}_svc"),
        PathMatcher::Prefix {
            path: path.into(),
            strip_prefix: true,
        },
    )
}

pub fn pattern(id: &str, regex: &str) -> RouteSpec {
    RouteSpec::new(id, format!("{id}_svc"), PathMatcher::Pattern(regex.into()))
}

pub fn with_methods(mut spec: RouteSpec, methods: &[Method]) -> RouteSpec {
    spec.methods = methods.to_vec();
    spec
}

pub fn with_host(mut spec: RouteSpec, host: &str) -> RouteSpec {
    spec.host = Some(host.into());
    spec
}

pub fn with_priority(mut spec: RouteSpec, priority: i32) -> RouteSpec {
    spec.priority = priority;
    spec
}
