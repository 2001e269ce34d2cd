//! Paused-time helpers, for tests under `#[tokio::test(start_paused = true)]`: move the clock
//! and let the tasks that were waiting on it run, so a test says how much time passes instead
//! of sleeping through it.

use std::time::Duration;

/// Lets every task that is ready run before the test goes on (a few rounds of
/// `yield_now`, enough for a spawned task woken by the test to reach its next wait).
pub async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

/// Advances the paused clock by `by`, then [`settle`]s. Panics when time is not paused.
pub async fn advance(by: Duration) {
    tokio::time::advance(by).await;
    settle().await;
}
