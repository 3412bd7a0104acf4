//! Login rate limits (OWASP ASVS 2.2.1): per client address and per account, on top of the
//! account lockout. Per node, in memory (governor's GCRA); with N nodes an attacker gets N times
//! the rate, which the per-account lockout (in the database, shared) still caps.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// Login attempts per client address per minute.
pub const PER_IP_PER_MINUTE: u32 = 30;
/// Login attempts per account per minute.
pub const PER_ACCOUNT_PER_MINUTE: u32 = 20;

/// The login limiters.
pub struct LoginLimits {
    by_ip: Keyed<IpAddr>,
    by_account: Keyed<String>,
}

impl std::fmt::Debug for LoginLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimits").finish_non_exhaustive()
    }
}

impl Default for LoginLimits {
    fn default() -> Self {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        LoginLimits {
            by_ip: RateLimiter::keyed(per_minute(PER_IP_PER_MINUTE)),
            by_account: RateLimiter::keyed(per_minute(PER_ACCOUNT_PER_MINUTE)),
        }
    }
}

impl LoginLimits {
    /// Whether a login attempt from `ip` for `account` may go ahead; on `Err` the seconds to wait.
    pub fn check(&self, ip: Option<IpAddr>, account: &str) -> Result<(), u64> {
        let wait = |e: governor::NotUntil<governor::clock::QuantaInstant>| {
            e.wait_time_from(governor::clock::Clock::now(&DefaultClock::default()))
                .as_secs()
                .max(1)
        };
        if let Some(ip) = ip {
            self.by_ip.check_key(&ip).map_err(wait)?;
        }
        self.by_account
            .check_key(&account.trim().to_lowercase())
            .map_err(wait)?;
        // Forget idle keys now and then, so the maps do not grow without bound.
        if self.by_account.len() > 100_000 {
            self.by_account.retain_recent();
            self.by_ip.retain_recent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_gets_twenty_attempts_a_minute_whatever_the_address() {
        let limits = LoginLimits::default();
        for i in 0..PER_ACCOUNT_PER_MINUTE {
            let ip: IpAddr = format!("10.0.0.{i}").parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
            assert!(limits.check(Some(ip), "a@shop.example").is_ok());
        }
        assert!(
            limits
                .check(Some(IpAddr::from([10, 9, 9, 9])), "A@shop.example ")
                .is_err()
        );
        assert!(
            limits
                .check(Some(IpAddr::from([10, 9, 9, 9])), "b@shop.example")
                .is_ok()
        );
    }
}
