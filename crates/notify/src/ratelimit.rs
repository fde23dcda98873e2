//! Per-channel send rates, as a sliding one-minute window per channel in this process.
//!
//! A message over the limit is not dropped: the dispatcher hands its row back to the outbox,
//! due when the window has room. With several replicas each keeps its own window, so the
//! combined rate can reach replicas × limit; vendors' limits leave headroom for one or two.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct RateLimiter {
    sent: Mutex<HashMap<i64, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// Takes a slot for `channel` at `now`, or says how long until one frees. `per_minute` 0
    /// means unlimited.
    pub fn try_acquire(&self, channel: i64, per_minute: u32, now: Instant) -> Result<(), Duration> {
        if per_minute == 0 {
            return Ok(());
        }
        let mut sent = self.sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let window = sent.entry(channel).or_default();
        while window.front().is_some_and(|&at| now.duration_since(at) >= WINDOW) {
            window.pop_front();
        }
        if window.len() < per_minute as usize {
            window.push_back(now);
            return Ok(());
        }
        let oldest = window.front().copied().unwrap_or(now);
        Err(WINDOW.saturating_sub(now.duration_since(oldest)).max(Duration::from_millis(10)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_a_minute_then_wait_for_the_oldest() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for i in 0..20 {
            assert!(limiter.try_acquire(1, 20, start + Duration::from_secs(i)).is_ok());
        }
        let wait = limiter.try_acquire(1, 20, start + Duration::from_secs(30)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(30));
        assert!(limiter.try_acquire(2, 20, start).is_ok(), "channels are limited apart");
        assert!(limiter.try_acquire(1, 20, start + Duration::from_secs(60)).is_ok());
        assert!(limiter.try_acquire(1, 0, start).is_ok());
    }
}
