//! The pure algorithms with an explicit clock.

use gw_ratelimit::algorithm::{token_bucket::SCALE, SlidingWindow, TokenBucket, WINDOW_MS};

const T0: u64 = 1_700_000_000_000;

#[test]
fn sliding_window_allows_exactly_the_limit() {
    let mut w = SlidingWindow::new();
    for i in 0..5 {
        let o = w.check(5, T0 + i);
        assert!(o.allowed, "request {i}");
        assert_eq!(o.remaining, 4 - i);
    }
    let o = w.check(5, T0 + 10);
    assert!(!o.allowed);
    assert_eq!(o.remaining, 0);
    // The first request (at T0) leaves the window at T0 + 60 000.
    assert_eq!(o.retry_at_ms, T0 + WINDOW_MS);
    assert_eq!(o.reset_at_ms, T0 + WINDOW_MS);
    assert_eq!(w.len(), 5, "a denied request is not recorded");
}

#[test]
fn sliding_window_exact_edges_in_ms() {
    let mut w = SlidingWindow::new();
    assert!(w.check(2, T0).allowed);
    assert!(w.check(2, T0 + 30_000).allowed);
    // One millisecond before the first request leaves: still full.
    assert!(!w.check(2, T0 + WINDOW_MS - 1).allowed);
    // Exactly 60 s after it: it no longer counts.
    let o = w.check(2, T0 + WINDOW_MS);
    assert!(o.allowed);
    assert_eq!(o.remaining, 0);
    // Now the window holds T0+30 000 and T0+60 000.
    let o = w.check(2, T0 + WINDOW_MS + 1);
    assert!(!o.allowed);
    assert_eq!(o.retry_at_ms, T0 + 30_000 + WINDOW_MS);
    assert!(w.check(2, T0 + 30_000 + WINDOW_MS).allowed);
}

#[test]
fn sliding_window_never_more_than_limit_in_any_minute() {
    // A request every 7 ms for 3 minutes, limit 100: check every 60 s interval.
    let mut w = SlidingWindow::new();
    let mut passed = Vec::new();
    let mut t = T0;
    while t < T0 + 3 * WINDOW_MS {
        if w.check(100, t).allowed {
            passed.push(t);
        }
        t += 7;
    }
    for (i, &start) in passed.iter().enumerate() {
        let in_window = passed[i..]
            .iter()
            .take_while(|&&x| x < start + WINDOW_MS)
            .count();
        assert!(
            in_window <= 100,
            "{in_window} requests within 60 s of {start}"
        );
    }
    // And the limiter is not too strict: ~100 per minute pass.
    assert!(
        passed.len() >= 300,
        "only {} passed in 3 minutes",
        passed.len()
    );
}

#[test]
fn sliding_window_idle_after_window() {
    let mut w = SlidingWindow::new();
    assert!(w.is_idle(T0));
    w.check(3, T0);
    assert!(!w.is_idle(T0 + WINDOW_MS - 1));
    assert!(w.is_idle(T0 + WINDOW_MS));
}

#[test]
fn sliding_window_clock_step_back_keeps_counting() {
    let mut w = SlidingWindow::new();
    assert!(w.check(2, T0 + 1000).allowed);
    assert!(w.check(2, T0).allowed); // clock stepped back 1 s
    assert!(!w.check(2, T0 + 500).allowed);
    // Both entries count until T0 + 1000 + 60 s.
    assert!(!w.check(2, T0 + WINDOW_MS + 999).allowed);
    assert!(w.check(2, T0 + WINDOW_MS + 1000).allowed);
}

#[test]
fn token_bucket_burst_then_refill() {
    // 60 per minute = one token per second, capacity 3.
    let mut b = TokenBucket::full(3, T0);
    for i in 0..3 {
        let o = b.check(60, 3, T0);
        assert!(o.allowed, "burst request {i}");
        assert_eq!(o.remaining, 2 - i);
    }
    let o = b.check(60, 3, T0);
    assert!(!o.allowed);
    assert_eq!(o.retry_at_ms, T0 + 1000);
    assert_eq!(o.reset_at_ms, T0 + 3000);
    // 999 ms later: not yet a whole token.
    assert!(!b.check(60, 3, T0 + 999).allowed);
    // 1000 ms: exactly one.
    let o = b.check(60, 3, T0 + 1000);
    assert!(o.allowed);
    assert_eq!(o.remaining, 0);
    assert!(!b.check(60, 3, T0 + 1000).allowed);
}

#[test]
fn token_bucket_ms_resolution_and_cap() {
    // 6000 per minute = one token per 10 ms.
    let mut b = TokenBucket::full(2, T0);
    assert!(b.check(6000, 2, T0).allowed);
    assert!(b.check(6000, 2, T0).allowed);
    assert!(!b.check(6000, 2, T0 + 9).allowed);
    assert!(b.check(6000, 2, T0 + 10).allowed);
    // A long pause refills to the capacity, not beyond.
    let o = b.peek(6000, 2, T0 + 3_600_000);
    assert_eq!(o.remaining, 1);
    assert_eq!(b.tokens(), 2);
    assert!(b.is_idle(6000, 2, T0 + 3_600_000));
}

#[test]
fn token_bucket_sustained_rate() {
    // 120 per minute, burst 10, a request every 100 ms for a minute: 10 + 120 pass.
    let mut b = TokenBucket::full(10, T0);
    let mut passed = 0;
    let mut t = T0;
    while t < T0 + WINDOW_MS {
        if b.check(120, 10, t).allowed {
            passed += 1;
        }
        t += 100;
    }
    assert!((129..=130).contains(&passed), "passed {passed}");
}

#[test]
fn token_bucket_idle_when_full() {
    let mut b = TokenBucket::full(5, T0);
    assert!(b.is_idle(60, 5, T0));
    b.check(60, 5, T0);
    assert!(!b.is_idle(60, 5, T0 + 999));
    assert!(b.is_idle(60, 5, T0 + 1000));
    assert_eq!(SCALE, WINDOW_MS);
}
