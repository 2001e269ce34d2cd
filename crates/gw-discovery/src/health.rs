//! The health state of one instance: consecutive results against thresholds (pure, no clock
//! of its own: the time of a check is passed in).

use serde::Serialize;

/// Whether an instance gets traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Gets traffic. Every instance starts here: it is healthy until a check says otherwise.
    #[default]
    Healthy,
    /// Gets no traffic until enough checks succeed.
    Unhealthy,
}

impl Status {
    /// `"healthy"` or `"unhealthy"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// Consecutive check results of one instance and the status they lead to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthState {
    /// The current status.
    pub status: Status,
    /// When the last check finished, epoch seconds; `None` before the first.
    pub last_check: Option<u64>,
    /// Successes in a row (0 after a failure).
    pub successes: u32,
    /// Failures in a row (0 after a success).
    pub failures: u32,
}

impl HealthState {
    /// Counts one check result made at `now` (epoch seconds); returns the new status when it
    /// changed.
    ///
    /// A healthy instance turns unhealthy after `unhealthy_threshold` failures in a row; an
    /// unhealthy one turns healthy after `healthy_threshold` successes in a row. Thresholds
    /// of 0 count as 1.
    pub fn record(
        &mut self,
        success: bool,
        now: u64,
        healthy_threshold: u32,
        unhealthy_threshold: u32,
    ) -> Option<Status> {
        self.last_check = Some(now);
        if success {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if self.status == Status::Unhealthy && self.successes >= healthy_threshold.max(1) {
                self.status = Status::Healthy;
                return Some(Status::Healthy);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.status == Status::Healthy && self.failures >= unhealthy_threshold.max(1) {
                self.status = Status::Unhealthy;
                return Some(Status::Unhealthy);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_healthy_and_unchecked() {
        let s = HealthState::default();
        assert_eq!(s.status, Status::Healthy);
        assert_eq!(s.last_check, None);
    }

    #[test]
    fn thresholds_count_consecutive_results() {
        let mut s = HealthState::default();
        assert_eq!(s.record(false, 10, 2, 3), None);
        assert_eq!(s.record(false, 11, 2, 3), None);
        // A success in between resets the failure run.
        assert_eq!(s.record(true, 12, 2, 3), None);
        assert_eq!(s.record(false, 13, 2, 3), None);
        assert_eq!(s.record(false, 14, 2, 3), None);
        assert_eq!(s.record(false, 15, 2, 3), Some(Status::Unhealthy));
        assert_eq!(s.last_check, Some(15));
        assert_eq!(s.record(false, 16, 2, 3), None, "already unhealthy");
        assert_eq!(s.record(true, 17, 2, 3), None);
        assert_eq!(s.record(false, 18, 2, 3), None);
        assert_eq!(s.record(true, 19, 2, 3), None);
        assert_eq!(s.record(true, 20, 2, 3), Some(Status::Healthy));
        assert_eq!(s.status, Status::Healthy);
        assert_eq!(s.record(true, 21, 2, 3), None);
    }

    #[test]
    fn threshold_one_flips_at_once_and_zero_counts_as_one() {
        let mut s = HealthState::default();
        assert_eq!(s.record(false, 1, 1, 1), Some(Status::Unhealthy));
        assert_eq!(s.record(true, 2, 0, 0), Some(Status::Healthy));
        assert_eq!(s.record(false, 3, 0, 0), Some(Status::Unhealthy));
        assert_eq!(Status::Unhealthy.as_str(), "unhealthy");
    }
}
