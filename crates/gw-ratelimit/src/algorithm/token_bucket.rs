//! Token bucket: capacity `burst`, refilled at `requests_per_minute` per minute.
//!
//! Integer arithmetic without drift: the level is kept in 1/60 000 of a token, so a rate of
//! `r` per minute adds exactly `r` units per millisecond and one request costs 60 000 units.

use super::{div_ceil, Outcome, WINDOW_MS};

/// Units per token.
pub const SCALE: u64 = WINDOW_MS;

/// The bucket's level and when it was last brought up to date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    units: u64,
    updated_ms: u64,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens at `now_ms`.
    pub fn full(capacity: u64, now_ms: u64) -> Self {
        Self {
            units: capacity.saturating_mul(SCALE),
            updated_ms: now_ms,
        }
    }

    /// Tokens in the bucket as of the last update (whole tokens).
    pub fn tokens(&self) -> u64 {
        self.units / SCALE
    }

    fn refill(&mut self, rate_per_minute: u64, capacity: u64, now_ms: u64) {
        let cap = capacity.saturating_mul(SCALE);
        if now_ms > self.updated_ms {
            let add = (now_ms - self.updated_ms).saturating_mul(rate_per_minute);
            self.units = self.units.saturating_add(add).min(cap);
            self.updated_ms = now_ms;
        }
        // A clock that stepped back adds nothing; a lowered capacity caps the level.
        self.units = self.units.min(cap);
    }

    /// What a request at `now_ms` would get. Refills first (that changes no answer).
    pub fn peek(&mut self, rate_per_minute: u64, capacity: u64, now_ms: u64) -> Outcome {
        self.refill(rate_per_minute, capacity, now_ms);
        let cap = capacity.saturating_mul(SCALE);
        let rate = rate_per_minute.max(1);
        if self.units >= SCALE {
            let after = self.units - SCALE;
            Outcome {
                allowed: true,
                remaining: after / SCALE,
                reset_at_ms: now_ms + div_ceil(cap - after, rate),
                retry_at_ms: now_ms,
            }
        } else {
            Outcome {
                allowed: false,
                remaining: 0,
                reset_at_ms: now_ms + div_ceil(cap.saturating_sub(self.units), rate),
                retry_at_ms: if rate_per_minute == 0 || capacity == 0 {
                    now_ms + WINDOW_MS
                } else {
                    now_ms + div_ceil(SCALE - self.units, rate)
                },
            }
        }
    }

    /// Takes one token (call after an allowing [`peek`](Self::peek) at the same instant).
    pub fn take(&mut self) {
        self.units = self.units.saturating_sub(SCALE);
    }

    /// `peek` then `take` when allowed.
    pub fn check(&mut self, rate_per_minute: u64, capacity: u64, now_ms: u64) -> Outcome {
        let outcome = self.peek(rate_per_minute, capacity, now_ms);
        if outcome.allowed {
            self.take();
        }
        outcome
    }

    /// Whether the bucket is full at `now_ms`: forgetting it changes nothing.
    pub fn is_idle(&self, rate_per_minute: u64, capacity: u64, now_ms: u64) -> bool {
        let cap = capacity.saturating_mul(SCALE);
        let elapsed = now_ms.saturating_sub(self.updated_ms);
        self.units
            .saturating_add(elapsed.saturating_mul(rate_per_minute))
            >= cap
    }
}
