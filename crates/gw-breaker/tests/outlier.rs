//! Outlier ejection: the pure bookkeeping with an explicit clock, and the detector's callback.

use std::sync::Arc;

use gw_breaker::outlier::Ejections;
use gw_breaker::{OutlierConfig, OutlierDetector};
use parking_lot::Mutex;

fn config() -> OutlierConfig {
    OutlierConfig {
        enabled: true,
        consecutive_failures: 3,
        base_ejection_secs: 10,
        max_ejection_secs: 25,
        max_ejection_percent: 50,
        panic_threshold_percent: 50,
    }
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `n` failures of `id` at `now`; returns whether the last one changed the set.
fn fail(e: &mut Ejections, id: &str, n: u32, now: u64) -> bool {
    (0..n).fold(false, |_, _| e.record(id, false, now))
}

#[test]
fn consecutive_failures_eject() {
    let mut e = Ejections::new(config());
    e.set_instances(&ids(&["a", "b", "c", "d"]));
    assert!(!fail(&mut e, "a", 2, 0));
    assert!(e.ejected().is_empty());
    assert!(fail(&mut e, "a", 1, 0));
    assert_eq!(e.ejected(), ["a"]);
    assert_eq!(e.ejected_until("a"), Some(10_000));
}

#[test]
fn a_success_resets_the_count() {
    let mut e = Ejections::new(config());
    e.set_instances(&ids(&["a", "b", "c", "d"]));
    fail(&mut e, "a", 2, 0);
    assert!(!e.record("a", true, 0));
    assert!(!fail(&mut e, "a", 2, 0));
    assert!(e.ejected().is_empty());
    assert!(fail(&mut e, "a", 1, 0));
}

#[test]
fn tick_ends_ejections_when_their_time_is_up() {
    let mut e = Ejections::new(config());
    e.set_instances(&ids(&["a", "b", "c", "d"]));
    fail(&mut e, "a", 3, 1_000);
    assert!(!e.tick(10_999));
    assert_eq!(e.ejected(), ["a"]);
    assert!(e.tick(11_000));
    assert!(e.ejected().is_empty());
    assert_eq!(e.ejected_until("a"), None);
    // Back in with a clean count.
    assert!(!fail(&mut e, "a", 2, 11_000));
}

#[test]
fn ejection_time_grows_and_caps() {
    let mut e = Ejections::new(config());
    e.set_instances(&ids(&["a", "b", "c", "d"]));
    let mut now = 0;
    let mut lengths = Vec::new();
    for _ in 0..4 {
        assert!(fail(&mut e, "a", 3, now));
        let until = e.ejected_until("a").unwrap();
        lengths.push(until - now);
        now = until;
        assert!(e.tick(now));
    }
    // base 10 s × 1, × 2, then capped at 25 s.
    assert_eq!(lengths, [10_000, 20_000, 25_000, 25_000]);
}

#[test]
fn the_multiplier_decays_while_an_instance_stays_in() {
    let mut e = Ejections::new(config());
    e.set_instances(&ids(&["a", "b", "c", "d"]));
    fail(&mut e, "a", 3, 0);
    e.tick(10_000);
    fail(&mut e, "a", 3, 10_000);
    assert_eq!(e.ejected_until("a"), Some(30_000));
    e.tick(30_000);
    // Two base periods in good standing bring the multiplier from 2 back to 0.
    e.tick(40_000);
    e.tick(50_000);
    fail(&mut e, "a", 3, 50_000);
    assert_eq!(e.ejected_until("a"), Some(60_000));
}

#[test]
fn never_more_than_max_ejection_percent() {
    for (n, max_out) in [(1usize, 0usize), (2, 1), (3, 1), (4, 2), (5, 2)] {
        let all: Vec<String> = (0..n).map(|i| format!("i{i}")).collect();
        let mut e = Ejections::new(config());
        e.set_instances(&all);
        for id in &all {
            fail(&mut e, id, 3, 0);
        }
        assert_eq!(e.ejected().len(), max_out, "{n} instances");
    }
}

#[test]
fn a_held_back_instance_is_ejected_on_its_next_failure_once_there_is_room() {
    let mut e = Ejections::new(config());
    e.set_instances(&ids(&["a", "b"]));
    fail(&mut e, "a", 3, 0);
    assert!(!fail(&mut e, "b", 5, 0));
    assert_eq!(e.ejected(), ["a"]);
    assert!(e.tick(10_000));
    assert!(e.record("b", false, 10_000));
    assert_eq!(e.ejected(), ["b"]);
}

#[test]
fn without_set_instances_the_base_is_the_instances_seen() {
    let mut e = Ejections::new(config());
    // Only one instance seen so far: never ejected.
    assert!(!fail(&mut e, "a", 3, 0));
    e.record("b", false, 0);
    assert!(fail(&mut e, "a", 1, 0));
    assert_eq!(e.ejected(), ["a"]);
}

#[test]
fn removed_instances_leave_the_ejected_set() {
    let mut e = Ejections::new(config());
    e.set_instances(&ids(&["a", "b", "c"]));
    fail(&mut e, "a", 3, 0);
    assert!(e.set_instances(&ids(&["b", "c"])));
    assert!(e.ejected().is_empty());
    assert!(!e.set_instances(&ids(&["b", "c"])));
}

#[test]
fn disabled_never_ejects_and_disabling_lets_everyone_back() {
    let mut e = Ejections::new(OutlierConfig {
        enabled: false,
        ..config()
    });
    e.set_instances(&ids(&["a", "b", "c"]));
    assert!(!fail(&mut e, "a", 10, 0));
    assert!(!e.set_config(config()));
    assert!(fail(&mut e, "a", 3, 0));
    assert!(e.set_config(OutlierConfig {
        enabled: false,
        ..config()
    }));
    assert!(e.ejected().is_empty());
}

#[test]
fn detector_reports_every_change_of_the_set() {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let d = OutlierDetector::new(
        "svc",
        config(),
        Arc::new(move |s: &str, ids: &[String]| sink.lock().push((s.to_owned(), ids.to_vec()))),
    );
    d.set_instances(&ids(&["a", "b", "c", "d"]));
    for _ in 0..3 {
        d.record("b", false);
    }
    for _ in 0..2 {
        d.record("a", false);
    }
    d.record("a", true);
    d.record("a", false);
    assert_eq!(d.ejected(), ["b"]);
    for _ in 0..3 {
        d.record("c", false);
    }
    // Recorded while ejected: no change.
    d.record("b", false);
    d.reset();
    assert_eq!(
        *seen.lock(),
        [
            ("svc".to_owned(), ids(&["b"])),
            ("svc".to_owned(), ids(&["b", "c"])),
            ("svc".to_owned(), ids(&[])),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn detector_tick_ends_ejections_on_the_clock() {
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let sink = seen.clone();
    let d = OutlierDetector::new(
        "svc",
        config(),
        Arc::new(move |_: &str, ids: &[String]| sink.lock().push(ids.to_vec())),
    );
    d.set_instances(&ids(&["a", "b"]));
    for _ in 0..3 {
        d.record("a", false);
    }
    tokio::time::advance(std::time::Duration::from_secs(9)).await;
    d.tick();
    assert_eq!(d.ejected(), ["a"]);
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    d.tick();
    assert!(d.ejected().is_empty());
    assert_eq!(*seen.lock(), [ids(&["a"]), ids(&[])]);
}

/// What the eject callback was called with: (service, ejected ids), in order.
type Seen = Arc<Mutex<Vec<(String, Vec<String>)>>>;

#[test]
fn once_announced_the_healthy_instances_are_the_base_of_the_quota() {
    let mut e = Ejections::new(config());
    e.set_instances(&ids(&["a", "b", "c", "d"]));
    // c and d were taken out by the health checks: they use up none of the quota, and 50 %
    // of the two healthy instances is one.
    e.set_healthy(&ids(&["a", "b"]));
    assert!(fail(&mut e, "a", 3, 0));
    assert!(!fail(&mut e, "b", 3, 0));
    assert_eq!(e.ejected(), ["a"]);
}
