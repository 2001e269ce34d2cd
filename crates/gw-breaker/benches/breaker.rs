//! Hot path of the breaker in the closed state: `try_acquire` + `on_result`.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use gw_breaker::state::CircuitState;
use gw_breaker::{Breaker, BreakerConfig};

fn closed(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed");

    // The pure machine: what a request costs without lock and clock.
    let mut machine = CircuitState::new(BreakerConfig::default());
    let mut now = 0u64;
    g.bench_function("state_acquire_and_record", |b| {
        b.iter(|| {
            now += 1;
            let p = machine.try_acquire(black_box(now)).unwrap();
            black_box(machine.on_result(p, true, Duration::from_micros(250), now));
        })
    });

    // The Breaker: lock, clock read and gauge check included, as the layer pays it.
    let breaker = Breaker::new("bench", BreakerConfig::default());
    g.bench_function("breaker_acquire_and_record", |b| {
        b.iter(|| {
            let p = breaker.try_acquire().unwrap();
            p.record(black_box(true));
        })
    });
    g.finish();
}

criterion_group!(benches, closed);
criterion_main!(benches);
