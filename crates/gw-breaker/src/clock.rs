//! The one clock of the crate: milliseconds since the owner was created.
//!
//! Built on `tokio::time::Instant`, which is `std::time::Instant` in production and follows
//! `tokio::time::pause()` / `advance()` in tests.

use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Milliseconds since the origin (saturating).
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
