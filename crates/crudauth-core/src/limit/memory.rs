//! The in-memory rate limiter: one process only.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{gcra, unlimited, Budget, Decision, RateLimiter};
use crate::clock::{self, Clock};
use crate::error::StoreResult;
use crate::lifespan::Tasks;
use crate::shard::Shards;
use crate::store::BackendKind;

/// The in-memory [`RateLimiter`]: exact within one process, not shared between workers.
#[derive(Debug, Clone)]
pub struct MemoryRateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// key → theoretical arrival time (ms); the entry is dead once that time has passed.
    tats: Shards<u64>,
    clock: Arc<dyn Clock>,
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
                clock,
            }),
        }
    }

    /// Removes every key whose budget is whole again; returns how many.
    pub fn sweep(&self) -> usize {
        let now = self.inner.clock.now_millis();
        self.inner.tats.retain(|tat| *tat > now)
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
        if budget.is_disabled() {
            return Ok(unlimited(budget));
        }
        let now = self.inner.clock.now_millis();
        let mut shard = self.inner.tats.lock(key);
        let tat = shard.get(key).copied().unwrap_or(0);
        let (decision, new_tat) = gcra(tat, now, budget);
        if let Some(new_tat) = new_tat {
            shard.insert(key.to_owned(), new_tat);
        }
        Ok(decision)
    }

    async fn reset(&self, key: &str) -> StoreResult<()> {
        self.inner.tats.lock(key).remove(key);
        Ok(())
    }
}
