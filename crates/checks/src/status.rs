//! From what one probe saw to what the health report says: [`Observation`] is one run's raw
//! outcome; [`StatusTracker`] applies flap damping to a stream of them.
//!
//! Damping rules (the tracker's only state is the reported status and two counters):
//! - before the first result the status is `unknown`, and the first result is taken as it is
//!   (there is no earlier state to protect from a blip);
//! - a healthy or degraded check becomes unhealthy only after `failures_before_unhealthy`
//!   consecutive failures; until then it keeps its status and the message says a failure is
//!   pending;
//! - an unhealthy check becomes healthy (or degraded) again only after
//!   `successes_before_healthy` consecutive successes;
//! - healthy and degraded are both "up" and switch at once.

use std::time::Duration;

use hubmon_model::{HealthStatus, Timestamp};
use serde_json::{Map, Value};

/// What one run saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Healthy, degraded or unhealthy (never unknown).
    pub status: HealthStatus,
    pub latency: Option<Duration>,
    /// One line for people: what was seen, or what failed.
    pub message: String,
    /// Kind-specific facts (server version, memory used, status code, …).
    pub details: Map<String, Value>,
    /// Days until the TLS certificate expires (HTTPS checks).
    pub cert_expiry_days: Option<f64>,
}

impl Observation {
    pub fn healthy(message: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Healthy,
            latency: None,
            message: message.into(),
            details: Map::new(),
            cert_expiry_days: None,
        }
    }

    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self { status: HealthStatus::Unhealthy, ..Self::healthy(message) }
    }

    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    pub fn detail(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.details.insert(name.to_string(), value.into());
        self
    }

    /// Makes a healthy observation degraded, keeping the first reason given.
    pub fn degrade(&mut self, reason: String) {
        if self.status == HealthStatus::Healthy {
            self.status = HealthStatus::Degraded;
            self.message = reason;
        }
    }
}

/// The damping thresholds of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damping {
    pub failures_before_unhealthy: u32,
    pub successes_before_healthy: u32,
}

/// A change of the reported status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: HealthStatus,
    pub to: HealthStatus,
    pub at: Timestamp,
}

/// The reported status of one check and the counters damping needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusTracker {
    reported: HealthStatus,
    since: Option<Timestamp>,
    failures: u32,
    successes: u32,
}

impl Default for StatusTracker {
    fn default() -> Self {
        Self { reported: HealthStatus::Unknown, since: None, failures: 0, successes: 0 }
    }
}

impl StatusTracker {
    pub fn reported(&self) -> HealthStatus {
        self.reported
    }

    /// When the reported status last changed.
    pub fn since(&self) -> Option<Timestamp> {
        self.since
    }

    /// Consecutive failures so far (0 after a success).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Takes one run's status at `at`; returns the change of the reported status, if any.
    pub fn observe(&mut self, observed: HealthStatus, damping: Damping, at: Timestamp) -> Option<Transition> {
        let next = match observed {
            HealthStatus::Unhealthy => {
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
                let confirmed = self.failures >= damping.failures_before_unhealthy;
                if self.reported == HealthStatus::Unknown || confirmed {
                    HealthStatus::Unhealthy
                } else {
                    self.reported
                }
            }
            HealthStatus::Healthy | HealthStatus::Degraded => {
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
                if self.reported == HealthStatus::Unhealthy && self.successes < damping.successes_before_healthy {
                    HealthStatus::Unhealthy
                } else {
                    observed
                }
            }
            HealthStatus::Unknown => self.reported,
        };
        self.set(next, at)
    }

    /// Forgets the check's state (it stopped being run); the reported status becomes unknown.
    pub fn reset(&mut self, at: Timestamp) -> Option<Transition> {
        self.failures = 0;
        self.successes = 0;
        self.set(HealthStatus::Unknown, at)
    }

    fn set(&mut self, next: HealthStatus, at: Timestamp) -> Option<Transition> {
        if next == self.reported {
            return None;
        }
        let transition = Transition { from: self.reported, to: next, at };
        self.reported = next;
        self.since = Some(at);
        Some(transition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::*;

    const DAMPING: Damping = Damping { failures_before_unhealthy: 3, successes_before_healthy: 2 };

    /// Feeds statuses one a second from t=0; returns the reported status after each.
    fn run(tracker: &mut StatusTracker, observed: &[HealthStatus]) -> Vec<HealthStatus> {
        observed
            .iter()
            .enumerate()
            .map(|(i, status)| {
                tracker.observe(*status, DAMPING, Timestamp(i as i64 * 1000));
                tracker.reported()
            })
            .collect()
    }

    #[test]
    fn the_first_result_is_taken_as_it_is() {
        assert_eq!(run(&mut StatusTracker::default(), &[Unhealthy]), [Unhealthy]);
        assert_eq!(run(&mut StatusTracker::default(), &[Degraded]), [Degraded]);
    }

    #[test]
    fn a_healthy_check_needs_consecutive_failures_to_become_unhealthy() {
        let mut tracker = StatusTracker::default();
        let reported = run(&mut tracker, &[Healthy, Unhealthy, Unhealthy, Healthy, Unhealthy, Unhealthy, Unhealthy]);
        assert_eq!(reported, [Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Unhealthy]);
        assert_eq!(tracker.since(), Some(Timestamp(6000)));
        assert_eq!(tracker.failures(), 3);
    }

    #[test]
    fn an_unhealthy_check_needs_consecutive_successes_to_recover() {
        let mut tracker = StatusTracker::default();
        let reported = run(&mut tracker, &[Unhealthy, Healthy, Unhealthy, Healthy, Degraded]);
        assert_eq!(reported, [Unhealthy, Unhealthy, Unhealthy, Unhealthy, Degraded]);
    }

    #[test]
    fn healthy_and_degraded_switch_at_once_and_transitions_are_reported_once() {
        let mut tracker = StatusTracker::default();
        let first = tracker.observe(Healthy, DAMPING, Timestamp(0));
        assert_eq!(first, Some(Transition { from: Unknown, to: Healthy, at: Timestamp(0) }));
        assert_eq!(tracker.observe(Healthy, DAMPING, Timestamp(1)), None);
        let degraded = tracker.observe(Degraded, DAMPING, Timestamp(2));
        assert_eq!(degraded, Some(Transition { from: Healthy, to: Degraded, at: Timestamp(2) }));
        assert_eq!(tracker.reset(Timestamp(3)).map(|t| t.to), Some(Unknown));
        assert_eq!(tracker.reset(Timestamp(4)), None);
    }

    #[test]
    fn damping_of_one_reacts_to_every_result() {
        let once = Damping { failures_before_unhealthy: 1, successes_before_healthy: 1 };
        let mut tracker = StatusTracker::default();
        for (i, (observed, expected)) in
            [(Healthy, Healthy), (Unhealthy, Unhealthy), (Healthy, Healthy)].into_iter().enumerate()
        {
            tracker.observe(observed, once, Timestamp(i as i64));
            assert_eq!(tracker.reported(), expected);
        }
    }
}
