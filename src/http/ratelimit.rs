//! Rate limiting of every route: one GCRA bucket (a token bucket without a
//! refill timer) per caller, i.e. per token, and per IP address for
//! requests without a valid token. Webhooks get their own buckets per IP so
//! a burst from Cal.com cannot starve anyone else. The state is in memory
//! and bounded: buckets that are full again are forgotten when room is
//! needed. Time comes in as an argument, so tests step it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Callers tracked at once; beyond it, callers with full buckets are dropped.
const KEYS_MAX: usize = 100_000;

/// How many requests a caller may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Sustained rate.
    pub per_min: u32,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            per_min: 600,
            burst: 100,
        }
    }
}

/// Whose bucket a request counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// An authenticated token, by name.
    Token(String),
    /// No (valid) token.
    Address(IpAddr),
    /// Cal.com webhook deliveries from this address.
    Webhook(IpAddr),
}

/// Refused: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

pub struct RateLimiter {
    quota: Quota,
    /// Time one request "costs".
    emission: Duration,
    /// How far ahead of now a bucket's theoretical arrival time may run.
    tolerance: Duration,
    /// Theoretical arrival time of each caller's next request.
    tat: Mutex<HashMap<Caller, Instant>>,
}

impl RateLimiter {
    pub fn new(quota: Quota) -> RateLimiter {
        let per_min = quota.per_min.max(1);
        let emission = Duration::from_secs(60) / per_min;
        RateLimiter {
            quota,
            emission,
            tolerance: emission * quota.burst.max(1).saturating_sub(1),
            tat: Mutex::new(HashMap::new()),
        }
    }

    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Counts one request of `caller` at `now`, or says when to retry.
    pub fn check(&self, caller: Caller, now: Instant) -> Result<(), Limited> {
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        if tat.len() >= KEYS_MAX && !tat.contains_key(&caller) {
            // A bucket whose arrival time has passed is full: forgetting it
            // changes nothing.
            tat.retain(|_, t| *t > now);
            if tat.len() >= KEYS_MAX {
                return Err(Limited {
                    retry_after: self.emission,
                });
            }
        }
        let next = tat.get(&caller).map_or(now, |t| (*t).max(now));
        let ahead = next - now;
        if ahead > self.tolerance {
            return Err(Limited {
                retry_after: ahead - self.tolerance,
            });
        }
        tat.insert(caller, next + self.emission);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Caller {
        Caller::Address(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_retry_after_is_exact() {
        let limiter = RateLimiter::new(Quota {
            per_min: 60,
            burst: 3,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(ip(1), t0), Ok(()));
        }
        let refused = limiter.check(ip(1), t0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert_eq!(limiter.check(ip(2), t0), Ok(()), "buckets are per caller");
        assert_eq!(limiter.check(ip(1), t0 + Duration::from_secs(1)), Ok(()));
        assert!(limiter.check(ip(1), t0 + Duration::from_secs(1)).is_err());
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(
                limiter.check(ip(1), later),
                Ok(()),
                "full again after a quiet spell"
            );
        }
    }

    #[test]
    fn tokens_addresses_and_webhooks_have_separate_buckets() {
        let limiter = RateLimiter::new(Quota {
            per_min: 1,
            burst: 1,
        });
        let t0 = Instant::now();
        let addr = IpAddr::from([10, 0, 0, 1]);
        assert!(limiter.check(Caller::Address(addr), t0).is_ok());
        assert!(limiter.check(Caller::Webhook(addr), t0).is_ok());
        assert!(limiter.check(Caller::Token("web".into()), t0).is_ok());
        assert!(limiter.check(Caller::Address(addr), t0).is_err());
    }
}
