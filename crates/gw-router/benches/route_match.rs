//! `RouteTable::find` at 10, 1 000 and 10 000 routes, and building a 10 000-route table.
//!
//! The mix: 90 % prefix routes `/api/v1/svc{i}` (every other one with `strip_prefix`, every
//! fifth with methods), 10 % pattern routes `^/api/v2/res{i}/items/([0-9]+)$`. Lookups: a
//! prefix hit deep in the table, a pattern hit (no prefix route matches, so the `RegexSet`
//! runs, then the winner's captures), and a miss.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gw_router::{Body, PathMatcher, RouteMatch, RouteService, RouteSpec, RouteTable};
use http::{Method, Request, Response};

fn service() -> RouteService {
    RouteService::new(tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }))
}

fn specs(n: usize) -> Vec<(RouteSpec, RouteService)> {
    let svc = service();
    (0..n)
        .map(|i| {
            let matcher = if i % 10 == 9 {
                PathMatcher::Pattern(format!("^/api/v2/res{i}/items/([0-9]+)$"))
            } else {
                PathMatcher::Prefix {
                    path: format!("/api/v1/svc{i}"),
                    strip_prefix: i % 2 == 0,
                }
            };
            let mut spec = RouteSpec::new(format!("route{i}"), format!("svc{i}"), matcher);
            if i % 5 == 0 {
                spec.methods = vec![Method::GET, Method::POST];
            }
            (spec, svc.clone())
        })
        .collect()
}

fn find(c: &mut Criterion) {
    let mut group = c.benchmark_group("find");
    for n in [10usize, 1_000, 10_000] {
        let table = RouteTable::new(specs(n)).unwrap();
        let prefix_hit = format!("/api/v1/svc{}/users/42/orders", n / 2);
        let pattern_hit = format!("/api/v2/res{}/items/12345", n - 1);
        let miss = "/api/v3/nothing/here".to_owned();
        for (name, path) in [
            ("prefix_hit", &prefix_hit),
            ("pattern_hit", &pattern_hit),
            ("miss", &miss),
        ] {
            // Every lookup is what the bench says it is.
            let expect_found = name != "miss";
            let found = matches!(
                table.find(&Method::GET, Some("gw.example.com"), path),
                RouteMatch::Found { .. }
            );
            assert_eq!(found, expect_found, "{name} at {n}");
            group.bench_with_input(BenchmarkId::new(name, n), path, |b, path| {
                b.iter(|| {
                    let m = table.find(
                        black_box(&Method::GET),
                        black_box(Some("gw.example.com:8080")),
                        black_box(path),
                    );
                    black_box(matches!(m, RouteMatch::Found { .. }))
                })
            });
        }
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    for n in [1_000usize, 10_000] {
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched(
                || specs(n),
                |specs| RouteTable::new(specs).unwrap(),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, find, build);
criterion_main!(benches);
