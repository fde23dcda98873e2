//! Login rate limiting: a budget per client address and per username, so neither one
//! machine nor many machines guessing one account get far.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::Error;

pub struct LoginLimiter {
    by_address: DefaultKeyedRateLimiter<String>,
    by_username: DefaultKeyedRateLimiter<String>,
}

impl LoginLimiter {
    pub fn new(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN));
        Self { by_address: RateLimiter::keyed(quota), by_username: RateLimiter::keyed(quota) }
    }

    /// Spends one attempt from both budgets, or says how long to wait.
    pub fn check(&self, address: &str, username: &str) -> Result<(), Error> {
        let now = DefaultClock::default().now();
        for (limiter, key) in [(&self.by_address, address), (&self.by_username, username)] {
            if let Err(not_until) = limiter.check_key(&key.to_string()) {
                let retry_after = not_until.wait_time_from(now).max(Duration::from_secs(1));
                return Err(Error::RateLimited { retry_after });
            }
        }
        // Forget idle keys so a flood of random usernames cannot grow memory without bound.
        if self.by_username.len() > 10_000 {
            self.by_username.retain_recent();
            self.by_address.retain_recent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_per_address_and_per_username() {
        let limiter = LoginLimiter::new(3);
        for _ in 0..3 {
            assert!(limiter.check("10.0.0.1", "alice").is_ok());
        }
        assert!(matches!(limiter.check("10.0.0.1", "bob"), Err(Error::RateLimited { .. })), "address spent");
        assert!(matches!(limiter.check("10.0.0.2", "alice"), Err(Error::RateLimited { .. })), "username spent");
        assert!(limiter.check("10.0.0.2", "bob").is_ok());
    }
}
