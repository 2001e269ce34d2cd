//! Sliding window log: at most `limit` requests in any 60 s, exactly.
//!
//! A request at `t` occupies the window until `t + 60 000 ms`; at that instant it no longer
//! counts. So in any half-open interval `[a, a + 60 s)` at most `limit` requests pass.

use std::collections::VecDeque;

use super::{Outcome, WINDOW_MS};

/// The times of the requests of the last minute (at most `limit` of them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlidingWindow {
    hits: VecDeque<u64>,
}

impl SlidingWindow {
    /// An empty window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops the requests that left the window at `now_ms`.
    fn expire(&mut self, now_ms: u64) {
        while let Some(&first) = self.hits.front() {
            if first + WINDOW_MS <= now_ms {
                self.hits.pop_front();
            } else {
                break;
            }
        }
    }

    /// What a request at `now_ms` would get under a quota of `limit` per minute.
    ///
    /// Forgets expired requests (that changes no answer), so it takes `&mut self`.
    pub fn peek(&mut self, limit: u64, now_ms: u64) -> Outcome {
        self.expire(now_ms);
        let count = self.hits.len() as u64;
        let oldest = self.hits.front().copied();
        if count < limit {
            Outcome {
                allowed: true,
                remaining: limit - count - 1,
                reset_at_ms: oldest.unwrap_or(now_ms) + WINDOW_MS,
                retry_at_ms: now_ms,
            }
        } else {
            // The request that must leave before one more fits: index count - limit.
            let idx = (count - limit) as usize;
            let blocking = self.hits.get(idx).copied().unwrap_or(now_ms);
            Outcome {
                allowed: false,
                remaining: 0,
                reset_at_ms: oldest.unwrap_or(now_ms) + WINDOW_MS,
                retry_at_ms: blocking + WINDOW_MS,
            }
        }
    }

    /// Records a request at `now_ms` (call after an allowing [`peek`](Self::peek)).
    ///
    /// A clock that stepped back records at the newest known time instead, so the log stays
    /// ordered (the request then counts slightly longer, never shorter).
    pub fn take(&mut self, now_ms: u64) {
        let at = self.hits.back().map_or(now_ms, |&last| last.max(now_ms));
        self.hits.push_back(at);
    }

    /// `peek` then `take` when allowed.
    pub fn check(&mut self, limit: u64, now_ms: u64) -> Outcome {
        let outcome = self.peek(limit, now_ms);
        if outcome.allowed {
            self.take(now_ms);
        }
        outcome
    }

    /// Requests currently in the window (as of the last call; call `peek` to expire first).
    pub fn len(&self) -> usize {
        self.hits.len()
    }

    /// Whether no request is recorded.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// Whether the window holds no request at `now_ms`: forgetting it changes nothing.
    pub fn is_idle(&self, now_ms: u64) -> bool {
        self.hits
            .back()
            .is_none_or(|&last| last + WINDOW_MS <= now_ms)
    }
}
