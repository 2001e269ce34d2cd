//! What the edge costs a request: the common case (nothing to change) and a path to rewrite.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gw_edge::{canonicalize, EdgePolicy};
use http::Request;

fn request(target: &str) -> Request<()> {
    Request::get(target)
        .header("host", "127.0.0.1:18100")
        .header("user-agent", "wrk")
        .header("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")
        .header("accept", "*/*")
        .body(())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let policy = EdgePolicy::default();
    let plain = request("/api/v1/users/123?x=1");
    c.bench_function("canonicalize/unchanged", |b| {
        b.iter_batched_ref(
            || plain.clone(),
            |r| canonicalize(black_box(r), &policy),
            criterion::BatchSize::SmallInput,
        )
    });
    let dotted = request("/api/v1/users/../%7Ebob/./x");
    c.bench_function("canonicalize/rewritten", |b| {
        b.iter_batched_ref(
            || dotted.clone(),
            |r| canonicalize(black_box(r), &policy),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
