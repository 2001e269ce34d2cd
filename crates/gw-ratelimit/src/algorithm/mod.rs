//! The two limit algorithms as pure state machines: no clock, no I/O, no tokio.
//!
//! Both take `now_ms` (milliseconds since the Unix epoch) explicitly. A check has two steps
//! so that several limits can be evaluated together and consumed only when all allow:
//! [`peek`](SlidingWindow::peek) tells what a request would get, [`take`](SlidingWindow::take)
//! consumes. The Redis script in [`crate::store::RedisStore`] implements the same arithmetic.

pub mod sliding_window;
pub mod token_bucket;

pub use sliding_window::SlidingWindow;
pub use token_bucket::TokenBucket;

/// The window of both algorithms: one minute, in milliseconds.
pub const WINDOW_MS: u64 = 60_000;

/// What a request would get from one limit at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the request may pass.
    pub allowed: bool,
    /// Requests left after this one (when allowed), else 0.
    pub remaining: u64,
    /// When the limit is back to a fuller state (ms epoch): the oldest request leaves the
    /// window / the bucket is full again.
    pub reset_at_ms: u64,
    /// When a request would be allowed again (ms epoch); `now` when allowed.
    pub retry_at_ms: u64,
}

pub(crate) fn div_ceil(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}
