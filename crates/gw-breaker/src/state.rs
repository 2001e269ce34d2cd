//! The pure circuit-breaker state machine: no clock, no locks, no I/O.
//!
//! Time is passed in as milliseconds since any fixed origin (`now`), so the machine is
//! tested with an explicit clock. [`Breaker`](crate::Breaker) wraps it in a lock and a clock.
//!
//! ```text
//!            failure share >= failure_rate
//!            with >= min_requests in window
//!   Closed ───────────────────────────────▶ Open
//!     ▲                                      │ open_secs elapsed (on the next try_acquire)
//!     │ success_threshold successes          ▼
//!     └──────────────────────────────── HalfOpen ── one failure ──▶ Open
//!       (fresh window)                 at most half_open_max_requests probes in flight
//! ```
//!
//! Every transition (and [`CircuitState::reset`]) starts a new *generation*. A [`Permit`]
//! remembers the generation it was taken in; a result reported with a permit of an older
//! generation is ignored, so a slow request sent while the breaker was closed cannot close
//! or re-open a half-open breaker.

use std::time::Duration;

use crate::config::BreakerConfig;

/// Number of buckets in the rolling window.
pub const BUCKETS: usize = 10;

/// The state as the admin API and the metric name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Requests pass; results are counted.
    Closed,
    /// Requests are answered 503 without reaching the service.
    Open,
    /// A few probes pass; the rest are answered 503.
    HalfOpen,
}

impl State {
    /// `"closed"`, `"open"` or `"half_open"`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    /// The value of `gateway_circuit_breaker_state`: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::Open => 1.0,
            State::HalfOpen => 2.0,
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Leave to send one request; hand it back with [`CircuitState::on_result`] or
/// [`CircuitState::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a permit must be handed back with on_result or release"]
pub struct Permit {
    generation: u64,
    probe: bool,
}

impl Permit {
    /// Whether this is a half-open probe (it holds one of the `half_open_max_requests` slots).
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// Why a request may not pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The breaker is open; probes start in `remaining`.
    Open {
        /// Time until the breaker turns half-open.
        remaining: Duration,
    },
    /// The breaker is half-open and every probe slot is taken.
    HalfOpenFull,
}

/// Counters over the window, as the admin API shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowStats {
    /// Results in the window.
    pub total: u64,
    /// Failed results in the window.
    pub failures: u64,
    /// Mean latency of the results in the window (zero when there are none).
    pub avg_latency: Duration,
}

impl WindowStats {
    /// Successful results in the window.
    pub fn successes(&self) -> u64 {
        self.total - self.failures
    }

    /// `failures / total`, 0 when the window is empty.
    pub fn failure_rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.failures as f64 / self.total as f64
        }
    }
}

/// What [`CircuitState::snapshot`] reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    /// The current state.
    pub state: State,
    /// Counters over the window.
    pub window: WindowStats,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Which bucket period (`now / bucket_ms`) these counts belong to.
    epoch: u64,
    total: u32,
    failures: u32,
    latency_us: u64,
}

/// The rolling window: a ring of [`BUCKETS`] buckets of `window / BUCKETS` each, so a
/// result costs O(1) and memory is fixed. A result counts for between 9/10 and 10/10 of
/// the window, depending on where in its bucket it fell.
#[derive(Clone, Debug)]
struct Window {
    bucket_ms: u64,
    buckets: [Bucket; BUCKETS],
}

impl Window {
    fn new(window_ms: u64) -> Self {
        Window {
            bucket_ms: (window_ms / BUCKETS as u64).max(1),
            buckets: [Bucket::default(); BUCKETS],
        }
    }

    fn clear(&mut self) {
        self.buckets = [Bucket::default(); BUCKETS];
    }

    fn record(&mut self, success: bool, latency: Duration, now: u64) {
        let epoch = now / self.bucket_ms;
        let b = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if b.epoch != epoch || b.total == 0 {
            *b = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        b.total = b.total.saturating_add(1);
        if !success {
            b.failures = b.failures.saturating_add(1);
        }
        b.latency_us = b
            .latency_us
            .saturating_add(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    fn stats(&self, now: u64) -> WindowStats {
        let epoch = now / self.bucket_ms;
        let (mut total, mut failures, mut latency_us) = (0u64, 0u64, 0u64);
        for b in &self.buckets {
            // Live: this period or one of the BUCKETS - 1 before it. (A bucket "from the
            // future", after a reset of the origin, is treated as live too.)
            if b.total > 0 && epoch.saturating_sub(b.epoch) < BUCKETS as u64 {
                total += u64::from(b.total);
                failures += u64::from(b.failures);
                latency_us = latency_us.saturating_add(b.latency_us);
            }
        }
        WindowStats {
            total,
            failures,
            avg_latency: Duration::from_micros(latency_us.checked_div(total).unwrap_or(0)),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Closed,
    Open { until: u64 },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// One service's breaker: configuration, phase and rolling window.
#[derive(Clone, Debug)]
pub struct CircuitState {
    config: BreakerConfig,
    phase: Phase,
    generation: u64,
    window: Window,
}

impl CircuitState {
    /// A closed breaker with an empty window.
    pub fn new(config: BreakerConfig) -> Self {
        let window = Window::new(config.window_secs.saturating_mul(1000));
        CircuitState {
            config,
            phase: Phase::Closed,
            generation: 0,
            window,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The state as of the last call; an open breaker whose time is up still reads
    /// [`State::Open`] until [`advance`](Self::advance) or [`try_acquire`](Self::try_acquire).
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Closed => State::Closed,
            Phase::Open { .. } => State::Open,
            Phase::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// Turns an open breaker whose `open_secs` are over half-open. Returns the new state.
    pub fn advance(&mut self, now: u64) -> State {
        if let Phase::Open { until } = self.phase {
            if now >= until {
                self.enter(Phase::HalfOpen {
                    in_flight: 0,
                    successes: 0,
                });
            }
        }
        self.state()
    }

    /// Asks to send one request at `now`.
    pub fn try_acquire(&mut self, now: u64) -> Result<Permit, Rejected> {
        match self.phase {
            Phase::Closed => Ok(self.permit(false)),
            Phase::Open { until } if now < until => Err(Rejected::Open {
                remaining: Duration::from_millis(until - now),
            }),
            Phase::Open { .. } => {
                self.enter(Phase::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                });
                Ok(self.permit(true))
            }
            Phase::HalfOpen {
                ref mut in_flight, ..
            } => {
                if *in_flight < self.config.half_open_max_requests {
                    *in_flight += 1;
                    Ok(self.permit(true))
                } else {
                    Err(Rejected::HalfOpenFull)
                }
            }
        }
    }

    /// Reports the result of a permitted request that completed at `now`. Returns the state
    /// afterwards.
    pub fn on_result(
        &mut self,
        permit: Permit,
        success: bool,
        latency: Duration,
        now: u64,
    ) -> State {
        if permit.generation != self.generation {
            return self.state();
        }
        self.window.record(success, latency, now);
        match self.phase {
            Phase::Closed => {
                let s = self.window.stats(now);
                if s.total >= u64::from(self.config.min_requests)
                    && s.failure_rate() >= self.config.failure_rate
                {
                    self.trip(now);
                }
            }
            Phase::HalfOpen {
                ref mut in_flight,
                ref mut successes,
            } => {
                *in_flight = in_flight.saturating_sub(1);
                if !success {
                    self.trip(now);
                } else {
                    *successes += 1;
                    if *successes >= self.config.success_threshold {
                        self.window.clear();
                        self.enter(Phase::Closed);
                    }
                }
            }
            // No permit is ever handed out in the generation of an open phase.
            Phase::Open { .. } => {}
        }
        self.state()
    }

    /// Hands back a permit whose request was abandoned (its future dropped) without a result:
    /// frees its half-open slot, records nothing.
    pub fn release(&mut self, permit: Permit) {
        if permit.generation != self.generation || !permit.probe {
            return;
        }
        if let Phase::HalfOpen {
            ref mut in_flight, ..
        } = self.phase
        {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    /// Closes the breaker and empties the window (admin `POST .../reset`).
    pub fn reset(&mut self) {
        self.window.clear();
        self.enter(Phase::Closed);
    }

    /// State and window counters at `now` (does not move an open breaker to half-open).
    pub fn snapshot(&self, now: u64) -> Snapshot {
        Snapshot {
            state: self.state(),
            window: self.window.stats(now),
        }
    }

    fn permit(&self, probe: bool) -> Permit {
        Permit {
            generation: self.generation,
            probe,
        }
    }

    fn trip(&mut self, now: u64) {
        let until = now.saturating_add(self.config.open_secs.saturating_mul(1000));
        self.enter(Phase::Open { until });
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.generation = self.generation.wrapping_add(1);
    }
}
