//! The rate-limiter conformance suite, run against every backend.
//!
//! ```no_run
//! use std::sync::Arc;
//! use crudauth_core::clock::ManualClock;
//! use crudauth_core::limit::{conformance::LimiterSubject, MemoryRateLimiter};
//!
//! async fn memory_limiter() -> LimiterSubject {
//!     let clock = ManualClock::starting_now();
//!     LimiterSubject { limiter: Arc::new(MemoryRateLimiter::with_clock(clock.clone())), time: clock }
//! }
//!
//! crudauth_core::limiter_conformance!(memory_limiter());
//! # fn main() {}
//! ```

// A test suite: a failed step must panic, with the value that failed.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{Budget, RateLimiter};
use crate::store::conformance::TimeTravel;

/// A limiter under test, with its notion of time; isolated by its own key prefix.
pub struct LimiterSubject {
    /// The limiter, already initialized.
    pub limiter: Arc<dyn RateLimiter>,
    /// How to let time pass for it.
    pub time: Arc<dyn TimeTravel>,
}

const TASKS: usize = 64;

/// A budget of 10 under 64 concurrent hits admits exactly 10, and each admitted hit sees a
/// different `remaining`, from 9 down to 0.
pub async fn concurrent_hits_admit_exactly_the_budget(s: &LimiterSubject) {
    let budget = Budget::new(10, Duration::from_secs(60));
    let start = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let limiter = s.limiter.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            limiter.hit("q:burst", budget).await.unwrap()
        }));
    }
    let mut remaining = BTreeSet::new();
    let mut refused = 0;
    for t in tasks {
        let d = t.await.unwrap();
        assert_eq!(d.limit, 10);
        if d.allowed {
            assert!(
                remaining.insert(d.remaining),
                "remaining {} seen twice",
                d.remaining
            );
        } else {
            refused += 1;
            assert_eq!(d.remaining, 0);
            assert!(d.retry_after > Duration::ZERO);
        }
    }
    assert_eq!(remaining, (0..10).collect::<BTreeSet<u32>>());
    assert_eq!(refused, TASKS - 10);
}

/// `remaining` counts down and `retry_after` says when the next request fits.
pub async fn remaining_and_retry_after(s: &LimiterSubject) {
    let budget = Budget::new(2, Duration::from_secs(60));
    let first = s.limiter.hit("q:ra", budget).await.unwrap();
    assert!(first.allowed && first.remaining == 1);
    let second = s.limiter.hit("q:ra", budget).await.unwrap();
    assert!(second.allowed && second.remaining == 0);
    let third = s.limiter.hit("q:ra", budget).await.unwrap();
    assert!(!third.allowed);
    let secs = third.retry_after.as_secs_f64();
    assert!((29.0..=30.0).contains(&secs), "retry_after {secs}");
    assert_eq!(third.retry_after_secs(), 30);
}

/// Once the period has passed, the whole budget is back; refused hits did not consume any.
pub async fn budgets_recover_over_time(s: &LimiterSubject) {
    let budget = Budget::new(2, Duration::from_millis(400));
    assert!(s.limiter.hit("q:win", budget).await.unwrap().allowed);
    assert!(s.limiter.hit("q:win", budget).await.unwrap().allowed);
    for _ in 0..5 {
        assert!(!s.limiter.hit("q:win", budget).await.unwrap().allowed);
    }
    s.time.pass(Duration::from_millis(500)).await;
    let again = s.limiter.hit("q:win", budget).await.unwrap();
    assert!(again.allowed);
    assert_eq!(again.remaining, 1);
}

/// Keys are independent; `reset` makes a budget whole; a limit of 0 disables.
pub async fn keys_reset_and_disabled(s: &LimiterSubject) {
    let budget = Budget::new(1, Duration::from_secs(60));
    assert!(s.limiter.hit("q:a", budget).await.unwrap().allowed);
    assert!(!s.limiter.hit("q:a", budget).await.unwrap().allowed);
    assert!(s.limiter.hit("q:b", budget).await.unwrap().allowed);
    s.limiter.reset("q:a").await.unwrap();
    assert!(s.limiter.hit("q:a", budget).await.unwrap().allowed);
    let off = Budget::new(0, Duration::from_secs(60));
    for _ in 0..20 {
        assert!(s.limiter.hit("q:off", off).await.unwrap().allowed);
    }
}

/// Expands to one `#[tokio::test]` per limiter case for a backend.
#[macro_export]
macro_rules! limiter_conformance {
    ($make:expr) => {
        $crate::limiter_conformance!(@cases $make;
            concurrent_hits_admit_exactly_the_budget, remaining_and_retry_after,
            budgets_recover_over_time, keys_reset_and_disabled);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let subject = $make.await;
                $crate::limit::conformance::$case(&subject).await;
            }
        )*
    };
}
