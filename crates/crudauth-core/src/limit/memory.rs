//! The in-memory rate limiter: one process only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::lockout::{self, Counters};
use super::{
    gcra, unlimited, Budget, Decision, LockoutConfig, LockoutDecision, LockoutKeys, RateLimiter,
};
use crate::clock::{self, Clock};
use crate::error::StoreResult;
use crate::lifespan::Tasks;
use crate::shard::Shards;
use crate::store::BackendKind;

/// The in-memory [`RateLimiter`]: exact within one process, not shared between workers.
///
/// Route budgets live in a sharded map; the login lockout's counters live under one lock of
/// their own, so each attempt (several keys) is one atomic step. Tests inject a
/// [`ManualClock`](crate::clock::ManualClock) with [`MemoryRateLimiter::with_clock`] to walk
/// through windows and locks without sleeping.
#[derive(Debug, Clone)]
pub struct MemoryRateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// key → theoretical arrival time (µs); the entry is dead once that time has passed.
    tats: Shards<u64>,
    /// The lockout's counters: key → count and expiry (ms), all in one shard so an attempt
    /// (several keys) is one step under one lock.
    lockout: Shards<Counter>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    value: i64,
    expires_at: u64,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRateLimiter {
    /// A limiter on the system clock.
    pub fn new() -> Self {
        Self::with_clock(clock::system())
    }

    /// A limiter on `clock` (tests inject a manual clock).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                tats: Shards::new(64),
                lockout: Shards::new(1),
                clock,
            }),
        }
    }

    /// Removes every key whose budget is whole again and every expired lockout counter;
    /// returns how many.
    pub fn sweep(&self) -> usize {
        let now_us = self.inner.clock.now_micros();
        let now_ms = now_us / 1000;
        self.inner.lockout.retain(|c| c.expires_at > now_ms)
            + self.inner.tats.retain(|tat| *tat > now_us)
    }

    /// One GCRA step on `key`, under its shard's lock.
    fn decide(&self, key: &str, budget: Budget) -> Decision {
        if budget.is_disabled() {
            return unlimited(budget);
        }
        let now = self.inner.clock.now_micros();
        let mut shard = self.inner.tats.lock(key);
        let stored = shard.get_mut(key);
        let (decision, new_tat) = gcra(stored.as_deref().copied().unwrap_or(0), now, budget);
        if let Some(new_tat) = new_tat {
            match stored {
                Some(tat) => *tat = new_tat,
                None => {
                    shard.insert(key.to_owned(), new_tat);
                }
            }
        }
        decision
    }

    /// Runs `step` on the lockout counters, locked, as [`Counters`] at the clock's current time.
    fn with_counters<T>(&self, step: impl FnOnce(&mut LockedCounters<'_>) -> T) -> T {
        let mut map = self.inner.lockout.lock("");
        let mut counters = LockedCounters {
            map: &mut map,
            now: self.inner.clock.now_millis(),
        };
        step(&mut counters)
    }
}

/// The lockout counters under their lock, at one instant.
struct LockedCounters<'a> {
    map: &'a mut HashMap<String, Counter>,
    now: u64,
}

impl LockedCounters<'_> {
    /// The live counter at `key` (an expired one is removed).
    fn live(&mut self, key: &str) -> Option<&mut Counter> {
        let now = self.now;
        if self.map.get(key).is_some_and(|c| c.expires_at <= now) {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    fn add(&mut self, key: &str, by: i64, ttl: u64, rearm: bool) -> i64 {
        let expires_at = self.now.saturating_add(ttl);
        match self.live(key) {
            Some(counter) => {
                counter.value = counter.value.saturating_add(by);
                if rearm {
                    counter.expires_at = expires_at;
                }
                counter.value
            }
            None => {
                self.map.insert(
                    key.to_owned(),
                    Counter {
                        value: by,
                        expires_at,
                    },
                );
                by
            }
        }
    }
}

impl Counters for LockedCounters<'_> {
    fn ttl(&mut self, key: &str) -> u64 {
        let now = self.now;
        self.live(key).map_or(0, |c| c.expires_at - now)
    }

    fn get(&mut self, key: &str) -> i64 {
        self.live(key).map_or(0, |c| c.value)
    }

    fn incr(&mut self, key: &str, by: i64, ttl: u64) -> i64 {
        self.add(key, by, ttl, false)
    }

    fn incr_and_rearm(&mut self, key: &str, by: i64, ttl: u64) -> i64 {
        self.add(key, by, ttl, true)
    }

    fn set(&mut self, key: &str, value: i64, ttl: u64) {
        let expires_at = self.now.saturating_add(ttl);
        self.map
            .insert(key.to_owned(), Counter { value, expires_at });
    }

    fn replace(&mut self, key: &str, value: i64) {
        if let Some(counter) = self.live(key) {
            counter.value = value;
        }
    }

    fn delete(&mut self, key: &str) -> bool {
        self.live(key).is_some() && self.map.remove(key).is_some()
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    fn kind(&self) -> BackendKind {
        BackendKind::Memory
    }

    async fn initialize(&self, tasks: &mut Tasks) -> StoreResult<()> {
        let limiter = self.clone();
        tasks.every(
            "memory rate-limiter sweeper",
            Duration::from_secs(60),
            move || {
                limiter.sweep();
                std::future::ready(())
            },
        );
        Ok(())
    }

    async fn shutdown(&self) {}

    async fn hit(&self, key: &str, budget: Budget) -> StoreResult<Decision> {
        Ok(self.decide(key, budget))
    }

    fn hit_in_process(&self, key: &str, budget: Budget) -> Option<StoreResult<Decision>> {
        Some(Ok(self.decide(key, budget)))
    }

    async fn reset(&self, key: &str) -> StoreResult<()> {
        self.inner.tats.lock(key).remove(key);
        Ok(())
    }

    async fn login_attempt(
        &self,
        keys: &LockoutKeys,
        config: &LockoutConfig,
    ) -> StoreResult<LockoutDecision> {
        let millis = config.millis();
        Ok(self.with_counters(|c| lockout::attempt(c, keys, millis)))
    }

    async fn login_succeeded(&self, keys: &LockoutKeys, config: &LockoutConfig) -> StoreResult<()> {
        let millis = config.millis();
        self.with_counters(|c| lockout::succeeded(c, keys, millis));
        Ok(())
    }

    async fn forget_attempt(&self, keys: &LockoutKeys, config: &LockoutConfig) -> StoreResult<()> {
        let millis = config.millis();
        self.with_counters(|c| lockout::forget(c, keys, millis));
        Ok(())
    }
}
