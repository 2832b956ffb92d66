//! The **RateLimiter** port: budgets, decisions, and their backends.
//!
//! The algorithm is GCRA (the generic cell rate algorithm, a virtual-scheduling leaky bucket):
//! a budget of `limit` per `period` admits a burst of `limit`, then one request every
//! `period / limit`. We chose it over crudauth's clock-aligned fixed window because a fixed
//! window admits up to twice the budget around a window boundary, which is exactly the burst an
//! auth throttle exists to stop; over a sliding-window counter because that one is approximate
//! and needs two keys. GCRA keeps one number per key (the "theoretical arrival time"), so a hit
//! is one atomic step (one script on Redis, timed by the Redis server's own clock so workers
//! with skewed clocks agree), `remaining` and `retry_after` are exact, and refused requests do
//! not consume budget.
//!
//! The escalating login lockout is not GCRA: it keeps crudauth's exact counters (first-touch
//! windows, locks, escalation rounds, the address-and-identifier pair) and runs each sign-in
//! attempt as one atomic step of the same port; see [`lockout`].
//!
//! ```
//! use std::time::Duration;
//! use crudauth_core::limit::{Budget, MemoryRateLimiter, RateLimiter};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let limiter = MemoryRateLimiter::new();
//! let budget = Budget::new(2, Duration::from_secs(60));
//! assert!(limiter.hit("q:contact:127.0.0.1", budget).await?.allowed);
//! assert!(limiter.hit("q:contact:127.0.0.1", budget).await?.allowed);
//! let refused = limiter.hit("q:contact:127.0.0.1", budget).await?;
//! assert!(!refused.allowed);
//! assert_eq!(refused.retry_after_secs(), 30); // the Retry-After header
//! # Ok::<(), crudauth_core::StoreError>(()) }).unwrap();
//! ```

pub mod lockout;
mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "conformance")]
pub mod conformance;

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

pub use lockout::{
    canonical_identifier, LockoutConfig, LockoutDecision, LockoutKeys, LockoutSubject,
    OnLoginSuccess,
};
pub use memory::{MemoryRateLimiter, DEFAULT_MAX_ENTRIES};
#[cfg(feature = "redis")]
pub use redis::RedisRateLimiter;

use crate::error::StoreResult;
use crate::lifespan::Tasks;
use crate::store::BackendKind;

/// How many requests a key may make per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests per period; 0 disables the limit.
    pub limit: u32,
    /// The period.
    pub period: Duration,
}

impl Budget {
    /// `limit` requests per `period`.
    pub const fn new(limit: u32, period: Duration) -> Self {
        Self { limit, period }
    }

    /// Whether this budget limits nothing (a limit of 0).
    pub const fn is_disabled(&self) -> bool {
        self.limit == 0
    }

    /// The spacing between requests once the burst is spent, in µs (at least 1).
    fn interval_us(&self) -> u64 {
        let period = u64::try_from(self.period.as_micros()).unwrap_or(u64::MAX);
        (period / u64::from(self.limit.max(1))).max(1)
    }
}

/// The answer to one hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The budget's limit (for `X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests left right now (for `X-RateLimit-Remaining`).
    pub remaining: u32,
    /// When refused: how long until one request is admitted again (for `Retry-After`).
    pub retry_after: Duration,
}

impl Decision {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        secs_rounded_up(self.retry_after)
    }
}

/// `d` in whole seconds, rounded up, at least 1: a `Retry-After` value.
pub fn secs_rounded_up(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

/// A shared, atomic rate limiter.
#[async_trait]
pub trait RateLimiter: Send + Sync + Debug + 'static {
    /// What kind of backend this is.
    fn kind(&self) -> BackendKind;

    /// Connects, checks, loads scripts, and registers background tasks.
    async fn initialize(&self, tasks: &mut Tasks) -> StoreResult<()>;

    /// Closes connections.
    async fn shutdown(&self);

    /// Counts one request against `key` under `budget`, atomically: of N concurrent hits on a
    /// fresh key, exactly `budget.limit` are allowed. A disabled budget always allows.
    async fn hit(&self, key: &str, budget: Budget) -> StoreResult<Decision>;

    /// Forgets everything about `key` (its budget is whole again).
    async fn reset(&self, key: &str) -> StoreResult<()>;

    /// [`Self::hit`] without a future, for backends that decide in-process without waiting
    /// (the memory limiter): callers on a hot path try this first. `None` (the default, for
    /// networked backends) means: use [`Self::hit`].
    fn hit_in_process(&self, key: &str, budget: Budget) -> Option<StoreResult<Decision>> {
        let _ = (key, budget);
        None
    }

    /// Records one sign-in attempt under the escalating login lockout and decides whether its
    /// password may be checked, atomically (see [`lockout`] for the steps): of N
    /// concurrent attempts on one identifier, at most `max_attempts` are allowed, and N
    /// concurrent trips lock once, not N times. Call it before any password work.
    async fn login_attempt(
        &self,
        keys: &LockoutKeys,
        config: &LockoutConfig,
    ) -> StoreResult<LockoutDecision>;

    /// Records a successful sign-in: clears the identifier's counter, lock and rounds and,
    /// under [`OnLoginSuccess::ClearAll`], takes back the address pressure this identifier
    /// added. Never lifts an address lock.
    async fn login_succeeded(&self, keys: &LockoutKeys, config: &LockoutConfig) -> StoreResult<()>;

    /// Gives back the attempt just recorded (a right password whose sign-in still needs a
    /// second factor): it neither clears the counters nor uses up budget.
    async fn forget_attempt(&self, keys: &LockoutKeys, config: &LockoutConfig) -> StoreResult<()>;
}

/// One GCRA step: given the stored theoretical arrival time (`tat`, µs; absent = 0) and the
/// time now, the decision and, when allowed, the new `tat` to store (to expire at that time).
///
/// The Redis backend runs the same arithmetic in a script; both are proved equal by the
/// conformance suite.
pub fn gcra(tat: u64, now: u64, budget: Budget) -> (Decision, Option<u64>) {
    let interval = budget.interval_us();
    let period = interval * u64::from(budget.limit);
    let new_tat = tat.max(now) + interval;
    if new_tat - now > period {
        let wait = new_tat - now - period;
        let decision = Decision {
            allowed: false,
            limit: budget.limit,
            remaining: 0,
            retry_after: Duration::from_micros(wait),
        };
        return (decision, None);
    }
    let remaining = ((period - (new_tat - now)) / interval) as u32;
    let decision = Decision {
        allowed: true,
        limit: budget.limit,
        remaining,
        retry_after: Duration::ZERO,
    };
    (decision, Some(new_tat))
}

/// The decision for a disabled budget.
fn unlimited(budget: Budget) -> Decision {
    Decision {
        allowed: true,
        limit: budget.limit,
        remaining: 0,
        retry_after: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_spacing() {
        let budget = Budget::new(3, Duration::from_secs(3));
        let mut tat = 0;
        let now = 1_000_000_000;
        for expected in [2, 1, 0] {
            let (d, next) = gcra(tat, now, budget);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected);
            tat = next.unwrap();
        }
        let (d, next) = gcra(tat, now, budget);
        assert!(!d.allowed);
        assert_eq!(next, None);
        assert_eq!(d.retry_after, Duration::from_secs(1));
        // One interval later exactly one more is admitted.
        let (d, _) = gcra(tat, now + 1_000_000, budget);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn a_full_period_restores_the_budget() {
        let budget = Budget::new(5, Duration::from_secs(60));
        let mut tat = 0;
        for _ in 0..5 {
            tat = gcra(tat, 0, budget).1.unwrap();
        }
        let (d, _) = gcra(tat, 60_000_000, budget);
        assert_eq!(d.remaining, 4);
    }

    #[test]
    fn budgets_faster_than_one_per_millisecond_are_exact() {
        let budget = Budget::new(10_000, Duration::from_secs(1));
        let mut tat = 0;
        let mut now = 5_000_000;
        for _ in 0..10_000 {
            tat = gcra(tat, now, budget).1.unwrap();
        }
        assert!(!gcra(tat, now, budget).0.allowed);
        // A steady 10 000/s (one every 100 µs) keeps being admitted.
        for _ in 0..1000 {
            now += 100;
            tat = gcra(tat, now, budget)
                .1
                .expect("admitted at the budgeted rate");
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        let d = Decision {
            allowed: false,
            limit: 1,
            remaining: 0,
            retry_after: Duration::from_millis(1001),
        };
        assert_eq!(d.retry_after_secs(), 2);
    }
}
