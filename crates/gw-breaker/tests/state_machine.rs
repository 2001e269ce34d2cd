//! The pure state machine, with an explicit clock (milliseconds).

use std::time::Duration;

use gw_breaker::state::{CircuitState, Permit, Rejected, State};
use gw_breaker::BreakerConfig;

const MS: Duration = Duration::from_millis(10);

fn config() -> BreakerConfig {
    BreakerConfig {
        failure_rate: 0.5,
        min_requests: 10,
        window_secs: 10,
        open_secs: 5,
        half_open_max_requests: 2,
        success_threshold: 3,
        ..BreakerConfig::default()
    }
}

/// Sends one request at `now` with the given result; panics when refused.
fn send(m: &mut CircuitState, success: bool, now: u64) -> State {
    let p = m.try_acquire(now).expect("request refused");
    m.on_result(p, success, MS, now)
}

/// A breaker that has just opened at `now`.
fn opened(now: u64) -> CircuitState {
    let mut m = CircuitState::new(config());
    for _ in 0..10 {
        send(&mut m, false, now);
    }
    assert_eq!(m.state(), State::Open);
    m
}

#[test]
fn trips_exactly_at_min_requests() {
    let mut m = CircuitState::new(config());
    for i in 0..9 {
        assert_eq!(send(&mut m, false, i), State::Closed, "request {i}");
    }
    // 9 failures out of 9: rate 1.0, but below min_requests.
    assert_eq!(m.snapshot(9).window.failures, 9);
    assert_eq!(send(&mut m, false, 9), State::Open);
    assert!(matches!(m.try_acquire(10), Err(Rejected::Open { .. })));
}

#[test]
fn trips_exactly_at_failure_rate() {
    let mut m = CircuitState::new(config());
    // 6 successes then 4 failures: 4/10 < 0.5 stays closed.
    for _ in 0..6 {
        send(&mut m, true, 0);
    }
    for _ in 0..4 {
        assert_eq!(send(&mut m, false, 0), State::Closed);
    }
    // 5/11 < 0.5 still closed.
    assert_eq!(send(&mut m, false, 0), State::Closed);
    // 6/12 = 0.5 reaches the rate.
    assert_eq!(send(&mut m, false, 0), State::Open);
}

#[test]
fn a_success_that_completes_min_requests_can_trip() {
    let mut m = CircuitState::new(config());
    for _ in 0..9 {
        send(&mut m, false, 0);
    }
    // 9 of 10 failed once the tenth (a success) is in: the share reaches the rate.
    assert_eq!(send(&mut m, true, 0), State::Open);
}

#[test]
fn old_failures_roll_out_of_the_window() {
    let mut m = CircuitState::new(config());
    for _ in 0..9 {
        send(&mut m, false, 0);
    }
    // Window 10 s in buckets of 1 s: at 9.999 s the failures still count...
    assert_eq!(m.snapshot(9_999).window.total, 9);
    // ...at 10 s they have rolled out, so one more failure does not trip.
    assert_eq!(m.snapshot(10_000).window.total, 0);
    assert_eq!(send(&mut m, false, 10_000), State::Closed);
    assert_eq!(m.snapshot(10_000).window.failures, 1);
    // A bucket reused after a full turn of the ring starts from zero.
    for _ in 0..8 {
        send(&mut m, false, 20_500);
    }
    assert_eq!(m.snapshot(20_500).window.total, 8);
    assert_eq!(m.state(), State::Closed);
}

#[test]
fn window_stats_for_the_admin_api() {
    let mut m = CircuitState::new(config());
    let p = m.try_acquire(0).unwrap();
    m.on_result(p, true, Duration::from_millis(100), 0);
    let p = m.try_acquire(0).unwrap();
    m.on_result(p, false, Duration::from_millis(300), 0);
    let s = m.snapshot(0);
    assert_eq!(s.state, State::Closed);
    assert_eq!(
        (s.window.total, s.window.failures, s.window.successes()),
        (2, 1, 1)
    );
    assert_eq!(s.window.failure_rate(), 0.5);
    assert_eq!(s.window.avg_latency, Duration::from_millis(200));
}

#[test]
fn open_turns_half_open_after_open_secs() {
    let mut m = opened(1_000);
    assert_eq!(
        m.try_acquire(5_999),
        Err(Rejected::Open {
            remaining: Duration::from_millis(1)
        })
    );
    assert_eq!(m.advance(5_999), State::Open);
    assert_eq!(m.advance(6_000), State::HalfOpen);
    assert!(m.try_acquire(6_000).unwrap().is_probe());
}

#[test]
fn try_acquire_turns_an_expired_open_breaker_half_open() {
    let mut m = opened(0);
    let p = m.try_acquire(5_000).unwrap();
    assert!(p.is_probe());
    assert_eq!(m.state(), State::HalfOpen);
}

#[test]
fn half_open_caps_probes_in_flight() {
    let mut m = opened(0);
    let a = m.try_acquire(5_000).unwrap();
    let b = m.try_acquire(5_000).unwrap();
    assert_eq!(m.try_acquire(5_000), Err(Rejected::HalfOpenFull));
    assert_eq!(m.try_acquire(5_001), Err(Rejected::HalfOpenFull));
    // A finished probe frees its slot.
    assert_eq!(m.on_result(a, true, MS, 5_002), State::HalfOpen);
    let c = m.try_acquire(5_003).unwrap();
    assert_eq!(m.try_acquire(5_003), Err(Rejected::HalfOpenFull));
    // So does an abandoned one, without counting as a success or failure.
    m.release(b);
    let d = m.try_acquire(5_004).unwrap();
    assert_eq!(m.on_result(c, true, MS, 5_005), State::HalfOpen);
    assert_eq!(m.on_result(d, true, MS, 5_006), State::Closed);
}

#[test]
fn success_threshold_closes_with_a_fresh_window() {
    let mut m = opened(0);
    for i in 0..2 {
        let p = m.try_acquire(5_000).unwrap();
        assert_eq!(
            m.on_result(p, true, MS, 5_000),
            State::HalfOpen,
            "probe {i}"
        );
    }
    let p = m.try_acquire(5_000).unwrap();
    assert_eq!(m.on_result(p, true, MS, 5_000), State::Closed);
    // The ten failures that opened it are gone: nine new failures do not trip.
    assert_eq!(m.snapshot(5_000).window.total, 0);
    for _ in 0..9 {
        assert_eq!(send(&mut m, false, 5_001), State::Closed);
    }
    assert_eq!(send(&mut m, false, 5_001), State::Open);
}

#[test]
fn one_failed_probe_reopens_for_open_secs() {
    let mut m = opened(0);
    let a = m.try_acquire(5_000).unwrap();
    let b = m.try_acquire(5_000).unwrap();
    assert_eq!(m.on_result(a, true, MS, 5_000), State::HalfOpen);
    assert_eq!(m.on_result(b, false, MS, 5_100), State::Open);
    assert!(matches!(m.try_acquire(10_099), Err(Rejected::Open { .. })));
    assert!(m.try_acquire(10_100).is_ok());
    assert_eq!(m.state(), State::HalfOpen);
}

#[test]
fn results_of_an_older_state_are_ignored() {
    let mut m = CircuitState::new(config());
    // A slow request sent while closed...
    let slow: Permit = m.try_acquire(0).unwrap();
    for _ in 0..10 {
        send(&mut m, false, 0);
    }
    let probe = m.try_acquire(5_000).unwrap();
    // ...failing while the breaker is half-open does not re-open it,
    assert_eq!(m.on_result(slow, false, MS, 5_000), State::HalfOpen);
    // and its release does not free a probe slot.
    m.release(slow);
    let _second = m.try_acquire(5_000).unwrap();
    assert_eq!(m.try_acquire(5_000), Err(Rejected::HalfOpenFull));
    assert_eq!(m.on_result(probe, true, MS, 5_000), State::HalfOpen);
}

#[test]
fn reset_closes_and_empties_the_window() {
    let mut m = opened(0);
    m.reset();
    assert_eq!(m.state(), State::Closed);
    assert_eq!(m.snapshot(0).window.total, 0);
    assert!(m.try_acquire(1).is_ok());
    for _ in 0..9 {
        assert_eq!(send(&mut m, false, 1), State::Closed);
    }
}

#[test]
fn gauge_values_and_names() {
    assert_eq!(State::Closed.as_gauge(), 0.0);
    assert_eq!(State::Open.as_gauge(), 1.0);
    assert_eq!(State::HalfOpen.as_gauge(), 2.0);
    assert_eq!(State::HalfOpen.as_str(), "half_open");
    assert_eq!(State::Closed.to_string(), "closed");
}
