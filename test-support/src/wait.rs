//! Bounded polls: wait for a condition instead of sleeping and hoping it held.
//!
//! [`eventually`] says whether an async condition came true in time and leaves the verdict to
//! the test; [`wait_until`] and [`wait_for`] panic with what was awaited when it did not;
//! [`wait_until_blocking`] does the same on a plain thread. Every poll runs on
//! `tokio::time`, so under paused time (`#[tokio::test(start_paused = true)]`) the limit is
//! virtual time and the wait costs nothing.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often the polls look again.
pub const POLL: Duration = Duration::from_millis(10);

/// Polls the async condition `f` every [`POLL`] until it returns true or `limit` passes;
/// returns whether it did.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `cond` every [`POLL`] until it holds and returns how long that took; panics naming
/// `what` when it still does not hold after `limit`.
pub async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_until`] for an async condition.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    if !eventually(limit, f).await {
        panic!("timed out after {limit:?} waiting for: {what}");
    }
    start.elapsed()
}

/// Polls `cond` on this thread every 50 ms until it holds or `limit` passes; returns whether it
/// did. For tests without a runtime (a child process, a blocking client).
pub fn wait_until_blocking(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn eventually_says_whether_the_condition_came_true_in_time() {
        let polls = AtomicUsize::new(0);
        let became = eventually(Duration::from_secs(1), || async {
            polls.fetch_add(1, Ordering::SeqCst) >= 3
        })
        .await;
        assert!(became);
        assert_eq!(polls.load(Ordering::SeqCst), 4);
        let start = Instant::now();
        assert!(!eventually(Duration::from_secs(1), || async { false }).await);
        assert!(start.elapsed() >= Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "waiting for: the answer")]
    async fn wait_until_names_what_it_waited_for() {
        wait_until(Duration::from_millis(100), "the answer", || false).await;
    }

    #[test]
    fn wait_until_blocking_returns_at_once_when_the_condition_holds() {
        assert!(wait_until_blocking(Duration::ZERO, || true));
        assert!(!wait_until_blocking(Duration::ZERO, || false));
    }
}
