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

use super::{Budget, LockoutConfig, LockoutKeys, LockoutSubject, OnLoginSuccess, RateLimiter};
use crate::secret::SecretKey;
use crate::store::conformance::{all_at_once, TimeTravel};

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
    let hits = (0..TASKS).map(|_| {
        let limiter = s.limiter.clone();
        async move { limiter.hit("q:burst", budget).await.unwrap() }
    });
    let mut remaining = BTreeSet::new();
    let mut refused = 0;
    for d in all_at_once(hits).await {
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

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// crudauth's defaults with `max_attempts` changed.
fn lockout(max_attempts: u32) -> LockoutConfig {
    LockoutConfig {
        max_attempts,
        ..LockoutConfig::default()
    }
}

/// The keys of an attempt on identifier `who` from `ip`, under a fixed test secret.
pub fn named(ip: &str, who: &str) -> LockoutKeys {
    LockoutKeys::new(&test_secret(), Some(ip), LockoutSubject::Identifier(who))
}

fn test_secret() -> SecretKey {
    SecretKey::new([5u8; 32]).unwrap_or_else(|_| unreachable!("32 bytes are enough"))
}

/// Without an address the attempt is counted against its subject alone: one subject locks,
/// other subjects (also without an address) go on; the same subject with an address is
/// locked too.
pub async fn lockout_without_an_address_counts_the_subject_only(s: &LimiterSubject) {
    let l = &s.limiter;
    let config = lockout(2);
    let blind =
        |who: &'static str| LockoutKeys::new(&test_secret(), None, LockoutSubject::Identifier(who));
    assert!(
        l.login_attempt(&blind("ann"), &config)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        l.login_attempt(&blind("ann"), &config)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !l.login_attempt(&blind("ann"), &config)
            .await
            .unwrap()
            .allowed
    );
    for _ in 0..2 {
        assert!(
            l.login_attempt(&blind("bob"), &config)
                .await
                .unwrap()
                .allowed
        );
    }
    assert!(
        !l.login_attempt(&named("192.0.2.77", "ann"), &config)
            .await
            .unwrap()
            .allowed
    );
    l.login_succeeded(&blind("bob"), &config).await.unwrap();
    l.forget_attempt(&blind("bob"), &config).await.unwrap();
    assert!(
        l.login_attempt(&blind("bob"), &config)
            .await
            .unwrap()
            .allowed
    );
}

/// Attempts count down per address and per identifier; one over the budget locks **both**
/// the address (for every identifier) and the identifier (from every address, whatever its
/// case); refused attempts are not counted.
pub async fn lockout_counts_then_locks_both_dimensions(s: &LimiterSubject) {
    let l = &s.limiter;
    let config = lockout(3);
    let ada = named("192.0.2.1", "ada");
    for expected in [2, 1, 0] {
        let d = l.login_attempt(&ada, &config).await.unwrap();
        assert!(d.allowed, "{d:?}");
        assert_eq!(d.remaining, expected);
    }
    let tripped = l.login_attempt(&ada, &config).await.unwrap();
    assert!(!tripped.allowed);
    assert_eq!((tripped.remaining, tripped.retry_after), (0, secs(60)));
    assert_eq!(tripped.retry_after_secs(), 60);

    let same_address = named("192.0.2.1", "bob");
    let d = l.login_attempt(&same_address, &config).await.unwrap();
    assert!(!d.allowed && d.retry_after <= secs(60) && d.retry_after > secs(55));
    let same_identifier = named("198.51.100.2", "  ADA ");
    let d = l.login_attempt(&same_identifier, &config).await.unwrap();
    assert!(!d.allowed && d.retry_after <= secs(60), "{d:?}");
    // The refused attempt above was not counted against 198.51.100.2.
    let fresh = named("198.51.100.2", "carol");
    let d = l.login_attempt(&fresh, &config).await.unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 2);
}

/// Locks double per round up to `lockout_max`; the first failure after a lock, inside the
/// attempt window, trips again at once; the round counter outlives each lock, so a paced
/// attack keeps climbing.
pub async fn lockout_escalates_and_caps(s: &LimiterSubject) {
    let l = &s.limiter;
    let config = LockoutConfig {
        max_attempts: 1,
        attempt_window: secs(30),
        lockout_base: ms(200),
        lockout_max: ms(700),
        round_retention: secs(60),
        on_login_success: OnLoginSuccess::ClearAll,
    };
    let keys = named("192.0.2.9", "target");
    assert!(l.login_attempt(&keys, &config).await.unwrap().allowed);
    for lock in [200, 400, 700, 700] {
        let d = l.login_attempt(&keys, &config).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, ms(lock), "expected a {lock} ms lock");
        let during = l.login_attempt(&keys, &config).await.unwrap();
        assert!(!during.allowed && during.retry_after <= ms(lock));
        s.time.pass(ms(lock + 60)).await;
    }
}

/// Rounds are forgotten `round_retention` after the latest lock ends (not before):
/// escalation starts over.
pub async fn lockout_rounds_expire_after_retention(s: &LimiterSubject) {
    let l = &s.limiter;
    let config = LockoutConfig {
        max_attempts: 1,
        attempt_window: ms(150),
        lockout_base: ms(200),
        lockout_max: secs(10),
        round_retention: ms(300),
        on_login_success: OnLoginSuccess::ClearAll,
    };
    let keys = named("192.0.2.10", "slow");
    assert!(l.login_attempt(&keys, &config).await.unwrap().allowed);
    assert_eq!(
        l.login_attempt(&keys, &config).await.unwrap().retry_after,
        ms(200)
    );
    // The lock (200 ms) and the window are over, the rounds (kept 300 ms more) are not.
    s.time.pass(ms(350)).await;
    assert!(l.login_attempt(&keys, &config).await.unwrap().allowed);
    let kept = l.login_attempt(&keys, &config).await.unwrap();
    assert_eq!(kept.retry_after, ms(400), "escalation kept");
    s.time.pass(ms(400 + 300 + 100)).await;
    assert!(l.login_attempt(&keys, &config).await.unwrap().allowed);
    let again = l.login_attempt(&keys, &config).await.unwrap();
    assert_eq!(again.retry_after, ms(200), "escalation started over");
}

/// 64 concurrent attempts on one identifier from 64 addresses (and on 64 identifiers from one
/// address) allow exactly `max_attempts`, and the concurrent trips lock once: the next lock is
/// the second round's, not the 60th.
pub async fn concurrent_attempts_allow_exactly_the_budget(s: &LimiterSubject) {
    let config = LockoutConfig {
        lockout_base: ms(300),
        lockout_max: secs(60),
        ..lockout(5)
    };
    let spray = |keys: Vec<LockoutKeys>| {
        all_at_once(keys.into_iter().map(|keys| {
            let (limiter, config) = (s.limiter.clone(), config.clone());
            async move { limiter.login_attempt(&keys, &config).await.unwrap() }
        }))
    };
    let one_identifier = (0..TASKS)
        .map(|i| named(&format!("10.1.0.{i}"), "victim@example.com"))
        .collect();
    let one_address = (0..TASKS)
        .map(|i| named("10.2.0.1", &format!("user{i}")))
        .collect();
    for decisions in [spray(one_identifier).await, spray(one_address).await] {
        let allowed: BTreeSet<u32> = decisions
            .iter()
            .filter(|d| d.allowed)
            .map(|d| d.remaining)
            .collect();
        assert_eq!(allowed, (0..5).collect::<BTreeSet<u32>>());
        assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 5);
        assert!(decisions
            .iter()
            .filter(|d| !d.allowed)
            .all(|d| d.retry_after <= ms(300)));
    }
    s.time.pass(ms(350)).await;
    let next = s
        .limiter
        .login_attempt(&named("10.1.0.99", "victim@example.com"), &config)
        .await
        .unwrap();
    assert_eq!(
        next.retry_after,
        ms(600),
        "one round per trip, not per attempt"
    );
}

/// Under `ClearAll`, a success clears the identifier and takes back from the address exactly
/// the attempts this identifier made from it (the successful one included), nothing more.
pub async fn success_takes_back_only_its_own_pressure(s: &LimiterSubject) {
    let l = &s.limiter;
    let config = lockout(5);
    let (bob, ada) = (named("192.0.2.20", "bob"), named("192.0.2.20", "ada"));
    for keys in [&bob, &bob, &ada, &ada, &ada] {
        assert!(l.login_attempt(keys, &config).await.unwrap().allowed);
    }
    l.login_succeeded(&ada, &config).await.unwrap();
    let elsewhere = l
        .login_attempt(&named("198.51.100.20", "ADA"), &config)
        .await
        .unwrap();
    assert_eq!(elsewhere.remaining, 4, "the identifier starts over");
    // The address keeps bob's two attempts: 2 + carol's = 3 of 5.
    let carol = l
        .login_attempt(&named("192.0.2.20", "carol"), &config)
        .await
        .unwrap();
    assert_eq!(carol.remaining, 2);
    // A second success takes nothing more back.
    l.login_succeeded(&ada, &config).await.unwrap();
    let dave = l
        .login_attempt(&named("192.0.2.20", "dave"), &config)
        .await
        .unwrap();
    assert_eq!(dave.remaining, 1);
}

/// Under `ClearUserOnly`, a success clears the identifier and leaves the address pressure.
pub async fn clear_user_only_keeps_address_pressure(s: &LimiterSubject) {
    let l = &s.limiter;
    let config = LockoutConfig {
        on_login_success: OnLoginSuccess::ClearUserOnly,
        ..lockout(5)
    };
    let (bob, ada) = (named("192.0.2.30", "bob"), named("192.0.2.30", "ada"));
    for keys in [&bob, &bob, &ada, &ada, &ada] {
        assert!(l.login_attempt(keys, &config).await.unwrap().allowed);
    }
    l.login_succeeded(&ada, &config).await.unwrap();
    let elsewhere = l
        .login_attempt(&named("198.51.100.30", "ada"), &config)
        .await
        .unwrap();
    assert_eq!(elsewhere.remaining, 4);
    let carol = l
        .login_attempt(&named("192.0.2.30", "carol"), &config)
        .await
        .unwrap();
    assert!(!carol.allowed, "the address has used its five: {carol:?}");
}

/// A success lifts the identifier's lock, never the address's.
pub async fn success_never_lifts_an_address_lock(s: &LimiterSubject) {
    let l = &s.limiter;
    let config = lockout(1);
    let bob = named("192.0.2.40", "bob");
    assert!(l.login_attempt(&bob, &config).await.unwrap().allowed);
    assert!(!l.login_attempt(&bob, &config).await.unwrap().allowed);
    l.login_succeeded(&bob, &config).await.unwrap();
    let bob_elsewhere = named("198.51.100.40", "bob");
    assert!(
        l.login_attempt(&bob_elsewhere, &config)
            .await
            .unwrap()
            .allowed
    );
    let same_address = named("192.0.2.40", "ada");
    assert!(
        !l.login_attempt(&same_address, &config)
            .await
            .unwrap()
            .allowed
    );
}

/// `forget_attempt` gives back exactly the attempt just made, and never drives a counter below
/// zero.
pub async fn forget_attempt_gives_the_attempt_back(s: &LimiterSubject) {
    let l = &s.limiter;
    let config = lockout(2);
    let ada = named("192.0.2.50", "ada");
    assert_eq!(l.login_attempt(&ada, &config).await.unwrap().remaining, 1);
    l.forget_attempt(&ada, &config).await.unwrap();
    assert_eq!(l.login_attempt(&ada, &config).await.unwrap().remaining, 1);
    assert_eq!(l.login_attempt(&ada, &config).await.unwrap().remaining, 0);
    let zed = named("192.0.2.51", "zed");
    l.forget_attempt(&zed, &config).await.unwrap();
    l.forget_attempt(&zed, &config).await.unwrap();
    assert_eq!(
        l.login_attempt(&zed, &config).await.unwrap().remaining,
        1,
        "no credit from forgetting nothing"
    );
}

/// Expands to one `#[tokio::test]` per limiter case for a backend.
#[macro_export]
macro_rules! limiter_conformance {
    ($make:expr) => {
        $crate::limiter_conformance!(@cases $make;
            concurrent_hits_admit_exactly_the_budget, remaining_and_retry_after,
            budgets_recover_over_time, keys_reset_and_disabled,
            lockout_counts_then_locks_both_dimensions, lockout_escalates_and_caps,
            lockout_rounds_expire_after_retention, concurrent_attempts_allow_exactly_the_budget,
            success_takes_back_only_its_own_pressure, clear_user_only_keeps_address_pressure,
            success_never_lifts_an_address_lock, forget_attempt_gives_the_attempt_back,
            lockout_without_an_address_counts_the_subject_only);
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
