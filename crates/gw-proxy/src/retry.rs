//! Retries as a policy around attempts: whether a request may be sent more than once, and
//! after each attempt whether another one follows (see the crate's docs, "Retries").
//!
//! A request is retried only when its route has a [`RetryPolicy`] of `times > 0`, its method
//! is idempotent, it is no WebSocket handshake, and its body was buffered (nothing of it
//! streamed, so it can be sent again); only after a failure another instance may not have
//! (refused or reset connection, connect timeout, an answer 502, 503 or 504, which is
//! dropped: nothing reached the client yet); at most `times` times; and only while the
//! service's retry budget allows. Each retry goes to an instance not tried yet while there
//! is one ([`Tried`]).

use std::time::Duration;

use http::{Method, StatusCode};
use tower::retry::budget::Budget;

use crate::balancer::Tried;
use crate::RetryPolicy;

/// Bodies up to this size are buffered so that a retry can send them again.
pub(crate) const MAX_REPLAY_BYTES: u64 = 64 * 1024;

/// Methods that may be sent again (RFC 9110 §9.2.2).
pub(crate) fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// The route's policy when it applies to this request: retries configured, an idempotent
/// method, no upgrade (a handshake's connection is handed over, it cannot be sent twice).
#[inline]
pub(crate) fn eligible<'a>(
    policy: Option<&'a RetryPolicy>,
    method: &Method,
    upgrade: bool,
) -> Option<&'a RetryPolicy> {
    policy.filter(|r| r.times > 0 && !upgrade && idempotent(method))
}

/// How an attempt ended, as far as retrying goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The instance answered with this status (nothing of it was passed on yet).
    Answered(StatusCode),
    /// It failed in a way another instance may not: refused or reset connection, connect
    /// timeout, a malformed answer.
    Failed,
    /// It failed in a way another attempt would not mend (the client's body, the body limit,
    /// a send or read timeout).
    Final,
}

impl Ending {
    /// Whether another attempt may end better.
    #[inline]
    fn retryable(self) -> bool {
        match self {
            Ending::Answered(status) => matches!(
                status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            Ending::Failed => true,
            Ending::Final => false,
        }
    }
}

/// The retry state of one request: its attempts so far, the most it may make, the instances
/// it tried, and the service's budget it draws retries from.
#[derive(Debug)]
pub(crate) struct Retries<'a, B> {
    budget: &'a B,
    delay: Duration,
    max: u32,
    attempts: u32,
    tried: Tried,
}

impl<'a, B: Budget> Retries<'a, B> {
    /// The state before the first attempt. `policy` is what [`eligible`] left of the route's;
    /// `replayable`: the body can be sent again. A request that may be retried deposits into
    /// the budget (its 20 % share of retries).
    #[inline]
    pub(crate) fn new(policy: Option<&RetryPolicy>, replayable: bool, budget: &'a B) -> Self {
        let (max, delay) = match (replayable, policy) {
            (true, Some(r)) => (r.times.saturating_add(1), r.delay),
            _ => (1, Duration::ZERO),
        };
        if max > 1 {
            budget.deposit();
        }
        Retries {
            budget,
            delay,
            max,
            attempts: 0,
            tried: Tried::default(),
        }
    }

    /// The instances tried so far, for the balancer to avoid.
    #[inline]
    pub(crate) fn tried(&self) -> &Tried {
        &self.tried
    }

    /// Counts an attempt about to be made; its number, from 1.
    #[inline]
    pub(crate) fn start(&mut self) -> u32 {
        self.attempts += 1;
        self.attempts
    }

    /// Notes the instance the current attempt goes to.
    #[inline]
    pub(crate) fn sent_to(&mut self, instance: usize) {
        self.tried.insert(instance);
    }

    /// Whether the current attempt is the last one allowed.
    #[inline]
    pub(crate) fn last(&self) -> bool {
        self.attempts >= self.max
    }

    /// After an attempt that ended so: whether another one follows (else this attempt's
    /// result is the answer). A retry is withdrawn from the budget.
    #[inline]
    pub(crate) fn retry(&mut self, ending: Ending) -> bool {
        ending.retryable() && !self.last() && self.budget.withdraw()
    }

    /// The wait before a retry.
    #[inline]
    pub(crate) fn delay(&self) -> Duration {
        self.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A budget with `left` retries, counting deposits.
    #[derive(Default)]
    struct Counted {
        left: Cell<u32>,
        deposits: Cell<u32>,
    }

    impl Budget for Counted {
        fn deposit(&self) {
            self.deposits.set(self.deposits.get() + 1);
        }
        fn withdraw(&self) -> bool {
            let left = self.left.get();
            self.left.set(left.saturating_sub(1));
            left > 0
        }
    }

    fn budget(left: u32) -> Counted {
        Counted {
            left: Cell::new(left),
            deposits: Cell::new(0),
        }
    }

    fn policy(times: u32) -> RetryPolicy {
        RetryPolicy {
            times,
            delay: Duration::from_millis(100),
        }
    }

    const BAD: Ending = Ending::Answered(StatusCode::BAD_GATEWAY);

    #[test]
    fn only_idempotent_methods_without_upgrade() {
        let p = policy(2);
        for m in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
        ] {
            assert!(eligible(Some(&p), &m, false).is_some(), "{m}");
            assert!(eligible(Some(&p), &m, true).is_none(), "{m} upgrade");
        }
        for m in [Method::POST, Method::PATCH, Method::CONNECT, Method::TRACE] {
            assert!(eligible(Some(&p), &m, false).is_none(), "{m}");
        }
        assert!(eligible(Some(&policy(0)), &Method::GET, false).is_none());
        assert!(eligible(None, &Method::GET, false).is_none());
    }

    #[test]
    fn retries_follow_failures_another_instance_may_not_have() {
        for (ending, again) in [
            (Ending::Failed, true),
            (BAD, true),
            (Ending::Answered(StatusCode::SERVICE_UNAVAILABLE), true),
            (Ending::Answered(StatusCode::GATEWAY_TIMEOUT), true),
            (Ending::Answered(StatusCode::OK), false),
            (Ending::Answered(StatusCode::INTERNAL_SERVER_ERROR), false),
            (Ending::Answered(StatusCode::NOT_FOUND), false),
            (Ending::Final, false),
        ] {
            let b = budget(10);
            let p = policy(3);
            let mut r = Retries::new(Some(&p), true, &b);
            r.start();
            assert_eq!(r.retry(ending), again, "{ending:?}");
            assert_eq!(r.delay(), Duration::from_millis(100));
        }
    }

    #[test]
    fn at_most_times_retries() {
        let b = budget(10);
        let p = policy(2);
        let mut r = Retries::new(Some(&p), true, &b);
        assert_eq!(r.start(), 1);
        assert!(!r.last());
        assert!(r.retry(Ending::Failed));
        assert_eq!(r.start(), 2);
        assert!(r.retry(BAD));
        assert_eq!(r.start(), 3);
        assert!(r.last());
        assert!(!r.retry(Ending::Failed));
        assert_eq!(b.left.get(), 8, "the last attempt draws nothing");
    }

    #[test]
    fn a_body_that_cannot_be_sent_again_is_never_retried() {
        // Streamed: part of it may be gone already.
        let b = budget(10);
        let p = policy(3);
        let mut r = Retries::new(Some(&p), false, &b);
        r.start();
        assert!(r.last());
        assert!(!r.retry(Ending::Failed));
        assert_eq!(b.deposits.get(), 0);
        assert_eq!(b.left.get(), 10);
        // No policy at all.
        let mut r = Retries::new(None, true, &b);
        r.start();
        assert!(!r.retry(BAD));
        assert_eq!(b.deposits.get(), 0);
    }

    #[test]
    fn the_budget_bounds_retries() {
        let b = budget(1);
        let p = policy(5);
        let mut r = Retries::new(Some(&p), true, &b);
        assert_eq!(b.deposits.get(), 1, "a request that may retry deposits");
        r.start();
        assert!(r.retry(Ending::Failed));
        r.start();
        assert!(!r.retry(Ending::Failed), "budget spent");
        // A success or a final failure draws nothing.
        let b = budget(1);
        let mut r = Retries::new(Some(&p), true, &b);
        r.start();
        assert!(!r.retry(Ending::Answered(StatusCode::OK)));
        assert!(!r.retry(Ending::Final));
        assert_eq!(b.left.get(), 1);
    }

    #[test]
    fn the_real_budget_allows_its_share() {
        let b = tower::retry::budget::TpsBudget::new(Duration::from_secs(10), 0, 0.5);
        let p = policy(1);
        // Two requests that may retry: 50 % of them, one retry.
        let mut first = Retries::new(Some(&p), true, &b);
        let mut second = Retries::new(Some(&p), true, &b);
        first.start();
        second.start();
        assert!(first.retry(Ending::Failed));
        assert!(!second.retry(Ending::Failed));
    }

    #[test]
    fn each_attempt_notes_its_instance() {
        let b = budget(10);
        let p = policy(2);
        let mut r = Retries::new(Some(&p), true, &b);
        r.start();
        r.sent_to(1);
        assert!(r.tried().contains(1) && !r.tried().contains(0));
        r.start();
        r.sent_to(0);
        assert!(r.tried().contains(0) && r.tried().contains(1));
    }
}
