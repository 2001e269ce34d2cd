//! `Breaker`: one service's [`CircuitState`] behind a short lock, with a clock and the
//! `gateway_circuit_breaker_state{service}` gauge.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use metrics::Gauge;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::config::BreakerConfig;
use crate::state::{CircuitState, Permit, Rejected, Snapshot, State};

/// Name of the state gauge: 0 closed, 1 open, 2 half-open.
pub const STATE_GAUGE: &str = "gateway_circuit_breaker_state";

/// One service's circuit breaker, shared by every route of the service through an `Arc`.
///
/// The lock is held for a few instructions per request and never across an `.await`.
/// The gauge handle is built once, in [`Breaker::new`], from the `metrics` recorder in place
/// at that time (install the global recorder first).
pub struct Breaker {
    service: Arc<str>,
    clock: Clock,
    inner: Mutex<Inner>,
    gauge: Gauge,
}

struct Inner {
    machine: CircuitState,
    /// Bumped when the machine is replaced, so permits of the old one are ignored.
    epoch: u64,
    /// The state the gauge shows.
    reported: State,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("Breaker")
            .field("service", &self.service)
            .field("state", &inner.machine.state())
            .finish_non_exhaustive()
    }
}

impl Breaker {
    /// A closed breaker for `service`; sets its gauge to 0.
    pub fn new(service: &str, config: BreakerConfig) -> Arc<Self> {
        let gauge = metrics::gauge!(STATE_GAUGE, "service" => service.to_owned());
        gauge.set(State::Closed.as_gauge());
        Arc::new(Breaker {
            service: service.into(),
            clock: Clock::new(),
            inner: Mutex::new(Inner {
                machine: CircuitState::new(config),
                epoch: 0,
                reported: State::Closed,
            }),
            gauge,
        })
    }

    /// The service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The configuration in force.
    pub fn config(&self) -> BreakerConfig {
        self.inner.lock().machine.config().clone()
    }

    /// The current state (an open breaker whose `open_secs` are over turns half-open here).
    pub fn state(&self) -> State {
        let now = self.clock.now_ms();
        let mut inner = self.inner.lock();
        inner.machine.advance(now);
        self.report(&mut inner);
        inner.machine.state()
    }

    /// Same as [`state`](Self::state); the registry's `tick` calls it so the gauge turns
    /// half-open on time even without traffic.
    pub fn tick(&self) {
        self.state();
    }

    /// State and window counters now.
    pub fn snapshot(&self) -> Snapshot {
        let now = self.clock.now_ms();
        let mut inner = self.inner.lock();
        inner.machine.advance(now);
        self.report(&mut inner);
        inner.machine.snapshot(now)
    }

    /// The admin API's object: `{service, state, total_requests, failed_requests,
    /// success_requests, failure_rate, avg_response_time}` (counts over the window,
    /// `avg_response_time` in seconds).
    pub fn stats(&self) -> Value {
        let s = self.snapshot();
        json!({
            "service": &*self.service,
            "state": s.state.as_str(),
            "total_requests": s.window.total,
            "failed_requests": s.window.failures,
            "success_requests": s.window.successes(),
            "failure_rate": s.window.failure_rate(),
            "avg_response_time": s.window.avg_latency.as_secs_f64(),
        })
    }

    /// Closes the breaker and empties its window (admin `POST .../reset`).
    pub fn reset(&self) {
        let mut inner = self.inner.lock();
        inner.machine.reset();
        self.report(&mut inner);
        tracing::info!(service = %self.service, "circuit breaker reset");
    }

    /// Replaces the machine with a fresh, closed one when `config` differs from the one in
    /// force. Returns whether it did. Requests in flight under the old machine are ignored
    /// when they finish.
    pub fn reconfigure(&self, config: &BreakerConfig) -> bool {
        let mut inner = self.inner.lock();
        if inner.machine.config() == config {
            return false;
        }
        inner.machine = CircuitState::new(config.clone());
        inner.epoch += 1;
        self.report(&mut inner);
        true
    }

    /// Asks to send one request. The permit records its result with
    /// [`BreakerPermit::record`]; dropped unused, it frees its half-open slot.
    pub fn try_acquire(self: &Arc<Self>) -> Result<BreakerPermit, Rejected> {
        let now = self.clock.now_ms();
        let mut inner = self.inner.lock();
        let permit = inner.machine.try_acquire(now);
        if inner.reported != inner.machine.state() {
            self.report(&mut inner);
        }
        let epoch = inner.epoch;
        drop(inner);
        let permit = permit?;
        Ok(BreakerPermit {
            breaker: self.clone(),
            permit: Some(permit),
            epoch,
            start: now,
        })
    }

    fn finish(&self, permit: Permit, epoch: u64, start: u64, outcome: Outcome) {
        let now = self.clock.now_ms();
        let mut inner = self.inner.lock();
        if inner.epoch != epoch {
            return;
        }
        let waited = now.saturating_sub(start);
        let ok = match outcome {
            Outcome::Done(ok) => ok,
            Outcome::Release => return inner.machine.release(permit),
            Outcome::Abandoned => {
                let after = inner.machine.config().abandoned_failure_secs;
                if after == 0 || waited < after.saturating_mul(1000) {
                    return inner.machine.release(permit);
                }
                false
            }
        };
        inner
            .machine
            .on_result(permit, ok, Duration::from_millis(waited), now);
        if inner.reported != inner.machine.state() {
            self.report(&mut inner);
        }
    }

    /// Sets the gauge (and logs) when the state differs from the last one reported.
    fn report(&self, inner: &mut Inner) {
        let state = inner.machine.state();
        if state == inner.reported {
            return;
        }
        tracing::warn!(
            service = %self.service,
            from = inner.reported.as_str(),
            to = state.as_str(),
            "circuit breaker state changed"
        );
        inner.reported = state;
        self.gauge.set(state.as_gauge());
    }
}

/// How a permit ended.
enum Outcome {
    /// The request completed: success or failure.
    Done(bool),
    /// Not counted at all.
    Release,
    /// Dropped unrecorded: the request was given up (the client went away).
    Abandoned,
}

/// Leave from a [`Breaker`] to send one request. Report how it went with
/// [`record`](Self::record), or hand it back uncounted with [`release`](Self::release).
/// Dropping it unused means the request was abandoned (the client went away): it is a
/// failure when it had been waiting at least `abandoned_failure_secs` (the upstream was
/// slow enough for the client to give up), else it is not counted; either way its
/// half-open slot is free again.
#[must_use = "record the result, or release the permit"]
pub struct BreakerPermit {
    breaker: Arc<Breaker>,
    permit: Option<Permit>,
    epoch: u64,
    /// Clock reading when the permit was taken (latency = now - start).
    start: u64,
}

impl fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("service", &self.breaker.service)
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}

impl BreakerPermit {
    /// Whether this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.permit.is_some_and(|p| p.is_probe())
    }

    /// Reports the request's result; its latency is the time since the permit was taken.
    pub fn record(mut self, success: bool) {
        if let Some(p) = self.permit.take() {
            self.breaker
                .finish(p, self.epoch, self.start, Outcome::Done(success));
        }
    }

    /// Hands the permit back without counting the request (e.g. the gateway answered it
    /// without contacting any upstream).
    pub fn release(mut self) {
        if let Some(p) = self.permit.take() {
            self.breaker
                .finish(p, self.epoch, self.start, Outcome::Release);
        }
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            self.breaker
                .finish(p, self.epoch, self.start, Outcome::Abandoned);
        }
    }
}
