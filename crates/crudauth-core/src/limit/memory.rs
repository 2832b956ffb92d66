//! The in-memory rate limiter: one process only.

use std::sync::atomic::{AtomicBool, Ordering};
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
use crate::shard::{make_room, Map, Shards};
use crate::store::BackendKind;

/// The in-memory [`RateLimiter`]: exact within one process, not shared between workers.
///
/// Route budgets and the login lockout's counters each live in a sharded map (64 shards). A
/// sign-in attempt touches the address's keys and the subject's keys: each side lives in the
/// shard its own key picks, and the attempt locks those (at most two) shards, lower index
/// first, so it is one atomic step while attempts on other addresses and accounts go on in
/// parallel — there is no global lock. Tests inject a
/// [`ManualClock`](crate::clock::ManualClock) with [`MemoryRateLimiter::with_clock`] to walk
/// through windows and locks without sleeping.
///
/// **Bounded.** Each map holds at most about [`DEFAULT_MAX_ENTRIES`] keys unless
/// [`MemoryRateLimiter::max_entries`] says otherwise, so a flood of distinct addresses or
/// identifiers cannot grow the process without limit. When a shard is full, its expired keys
/// go first, then the keys that would expire soonest (a sixty-fourth of the shard); the first
/// time that happens the limiter logs one WARN (an evicted counter starts over: size the bound
/// above the keys one window needs).
///
/// ```
/// use crudauth_core::limit::MemoryRateLimiter;
/// let limiter = MemoryRateLimiter::new().max_entries(200_000);
/// ```
#[derive(Debug, Clone)]
pub struct MemoryRateLimiter {
    inner: Arc<Inner>,
}

/// How many keys each in-memory map (the store, the limiter's budgets, the lockout) holds by
/// default: 1,000,000, about 100–200 MB at most.
pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

#[derive(Debug)]
struct Inner {
    /// key → theoretical arrival time (µs); the entry is dead once that time has passed.
    tats: Shards<Map<u64>>,
    /// The lockout's counters: key → count and expiry (ms).
    lockout: Shards<Map<Counter>>,
    clock: Arc<dyn Clock>,
    /// Keys per shard, in each map.
    per_shard: usize,
    max_entries: usize,
    /// Whether the one WARN about a full map was logged.
    warned_full: AtomicBool,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    value: i64,
    expires_at: u64,
}

const SHARDS: usize = 64;

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRateLimiter {
    /// A limiter on the system clock, bounded to [`DEFAULT_MAX_ENTRIES`] keys per map.
    pub fn new() -> Self {
        Self::with_clock(clock::system())
    }

    /// A limiter on `clock` (tests inject a manual clock).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::build(clock, DEFAULT_MAX_ENTRIES)
    }

    /// Holds at most about `entries` keys in each map (route budgets, lockout counters), spread
    /// over the shards (default [`DEFAULT_MAX_ENTRIES`]); past that the soonest-expiring keys
    /// of the shard are evicted. Set it before sharing the limiter: it starts empty.
    pub fn max_entries(self, entries: usize) -> Self {
        Self::build(self.inner.clock.clone(), entries)
    }

    fn build(clock: Arc<dyn Clock>, max_entries: usize) -> Self {
        let max_entries = max_entries.max(1);
        Self {
            inner: Arc::new(Inner {
                tats: Shards::new(SHARDS),
                lockout: Shards::new(SHARDS),
                clock,
                per_shard: max_entries.div_ceil(SHARDS),
                max_entries,
                warned_full: AtomicBool::new(false),
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
                    if make_room(&mut *shard, self.inner.per_shard, now, |tat| *tat) {
                        self.inner.warn_full();
                    }
                    shard.insert(key.into(), new_tat);
                }
            }
        }
        decision
    }

    /// Runs `step` on the lockout counters of `keys` as [`Counters`], at the clock's current
    /// time, with the shards of the attempt's address and subject locked (lower index first).
    fn with_counters<T>(
        &self,
        keys: &LockoutKeys,
        step: impl FnOnce(&mut LockedCounters<'_, '_>) -> T,
    ) -> T {
        let shards = &self.inner.lockout;
        let user_at = shards.index_of(&keys.user);
        let ip_at = keys.ip_keys().map(|_| shards.index_of(&keys.ip));
        let now = self.inner.clock.now_millis();
        match ip_at {
            Some(ip_at) if ip_at != user_at => {
                let (mut low, mut high) = (
                    shards.lock_at(ip_at.min(user_at)),
                    shards.lock_at(ip_at.max(user_at)),
                );
                let (user_map, ip_map) = if user_at < ip_at {
                    (&mut *low, &mut *high)
                } else {
                    (&mut *high, &mut *low)
                };
                step(&mut LockedCounters {
                    user_map,
                    ip_map: Some(ip_map),
                    keys,
                    now,
                    limiter: &self.inner,
                })
            }
            _ => {
                let mut map = shards.lock_at(user_at);
                step(&mut LockedCounters {
                    user_map: &mut map,
                    ip_map: None,
                    keys,
                    now,
                    limiter: &self.inner,
                })
            }
        }
    }
}

impl Inner {
    /// The one WARN when a map is full and live keys start to be evicted.
    fn warn_full(&self) {
        if !self.warned_full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max_entries = self.max_entries,
                "crudauth: the in-memory rate limiter is full; the counters that expire soonest \
                 are evicted to make room (they start over). Raise MemoryRateLimiter::max_entries \
                 or use Redis."
            );
        }
    }
}

/// One attempt's lockout counters under their locks, at one instant: the subject's shard and,
/// when it is another one, the address's.
struct LockedCounters<'a, 'k> {
    user_map: &'a mut Map<Counter>,
    ip_map: Option<&'a mut Map<Counter>>,
    keys: &'k LockoutKeys,
    now: u64,
    limiter: &'a Inner,
}

impl LockedCounters<'_, '_> {
    /// The map that holds `key`: the address's keys live in the address's shard.
    fn map(&mut self, key: &str) -> &mut Map<Counter> {
        let on_ip_side = self
            .keys
            .ip_keys()
            .is_some_and(|ip_keys| ip_keys.contains(&key));
        match &mut self.ip_map {
            Some(ip_map) if on_ip_side => ip_map,
            _ => &mut *self.user_map,
        }
    }

    /// The live counter at `key` (an expired one is removed).
    fn live(&mut self, key: &str) -> Option<&mut Counter> {
        let now = self.now;
        let map = self.map(key);
        if map.get(key).is_some_and(|c| c.expires_at <= now) {
            map.remove(key);
        }
        map.get_mut(key)
    }

    /// Writes a counter, making room first when the key is new and the shard full.
    fn insert(&mut self, key: &str, counter: Counter) {
        let (now, limit) = (self.now, self.limiter.per_shard);
        let map = self.map(key);
        let evicted = !map.contains_key(key) && make_room(map, limit, now, |c| c.expires_at);
        map.insert(key.into(), counter);
        if evicted {
            self.limiter.warn_full();
        }
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
                self.insert(
                    key,
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

impl Counters for LockedCounters<'_, '_> {
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
        self.insert(key, Counter { value, expires_at });
    }

    fn replace(&mut self, key: &str, value: i64) {
        if let Some(counter) = self.live(key) {
            counter.value = value;
        }
    }

    fn delete(&mut self, key: &str) -> bool {
        self.live(key).is_some() && self.map(key).remove(key).is_some()
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
        Ok(self.with_counters(keys, |c| lockout::attempt(c, keys, millis)))
    }

    async fn login_succeeded(&self, keys: &LockoutKeys, config: &LockoutConfig) -> StoreResult<()> {
        let millis = config.millis();
        self.with_counters(keys, |c| lockout::succeeded(c, keys, millis));
        Ok(())
    }

    async fn forget_attempt(&self, keys: &LockoutKeys, config: &LockoutConfig) -> StoreResult<()> {
        let millis = config.millis();
        self.with_counters(keys, |c| lockout::forget(c, keys, millis));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::Barrier;

    use super::*;
    use crate::clock::ManualClock;
    use crate::limit::LockoutSubject;
    use crate::secret::SecretKey;

    fn key() -> SecretKey {
        SecretKey::new([3u8; 32]).unwrap()
    }

    fn keys(ip: &str, who: &str) -> LockoutKeys {
        LockoutKeys::new(&key(), Some(ip), LockoutSubject::Identifier(who))
    }

    fn attempt(l: &MemoryRateLimiter, k: &LockoutKeys, config: &LockoutConfig) -> LockoutDecision {
        l.with_counters(k, |c| lockout::attempt(c, k, config.millis()))
    }

    /// An attempt whose address and subject land in shards other than `busy` (under one
    /// global lock there is none, and the test fails here).
    fn elsewhere(l: &MemoryRateLimiter, busy: usize) -> LockoutKeys {
        (0..10_000)
            .map(|i| {
                keys(
                    &format!("10.9.{}.{}", i / 256, i % 256),
                    &format!("other{i}"),
                )
            })
            .find(|k| {
                let s = &l.inner.lockout;
                s.index_of(&k.ip) != busy && s.index_of(&k.user) != busy
            })
            .unwrap()
    }

    #[test]
    fn an_attempt_never_waits_for_another_accounts_shard() {
        let l = MemoryRateLimiter::new();
        let config = LockoutConfig::default();
        let held = keys("192.0.2.1", "ada");
        let busy = l.inner.lockout.index_of(&held.user);
        let other = elsewhere(&l, busy);
        // Hold ada's shard, as a long step would, and sign in elsewhere from another thread:
        // under one global lock this would wait for ever.
        let guard = l.inner.lockout.lock_at(busy);
        let (done, finished) = mpsc::channel();
        let worker = {
            let (l, config) = (l.clone(), config.clone());
            std::thread::spawn(move || {
                done.send(attempt(&l, &other, &config).allowed).unwrap();
            })
        };
        let allowed = finished.recv_timeout(Duration::from_secs(30));
        drop(guard);
        worker.join().unwrap();
        assert_eq!(allowed, Ok(true), "the other attempt went ahead");
    }

    #[test]
    fn parallel_threads_get_exactly_the_budget() {
        const THREADS: usize = 16;
        const PER_THREAD: usize = 50;
        let l = MemoryRateLimiter::new();
        let config = LockoutConfig {
            max_attempts: 37,
            attempt_window: Duration::from_secs(3600),
            ..LockoutConfig::default()
        };
        // One subject from many addresses, and one address for many subjects: each side's
        // budget must hold exactly, whatever shards the other side lands in.
        let cases: [Box<dyn Fn(usize, usize) -> LockoutKeys + Send + Sync>; 2] = [
            Box::new(|t, i| keys(&format!("10.{t}.{}.1", i), "victim")),
            Box::new(|t, i| keys("10.200.0.1", &format!("user-{t}-{i}"))),
        ];
        for make in cases {
            let make = Arc::new(make);
            let barrier = Arc::new(Barrier::new(THREADS));
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (l, config, barrier, make) =
                        (l.clone(), config.clone(), barrier.clone(), make.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        (0..PER_THREAD)
                            .filter(|i| attempt(&l, &make(t, *i), &config).allowed)
                            .count()
                    })
                })
                .collect();
            let allowed: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
            assert_eq!(allowed, 37);
        }
    }

    #[test]
    fn without_an_address_only_the_subject_counts() {
        let l = MemoryRateLimiter::new();
        let config = LockoutConfig {
            max_attempts: 2,
            ..LockoutConfig::default()
        };
        let blind = |who| LockoutKeys::new(&key(), None, LockoutSubject::Identifier(who));
        assert!(attempt(&l, &blind("ann"), &config).allowed);
        assert!(attempt(&l, &blind("ann"), &config).allowed);
        assert!(!attempt(&l, &blind("ann"), &config).allowed);
        // Nobody else shares ann's bucket.
        for _ in 0..2 {
            assert!(attempt(&l, &blind("bob"), &config).allowed);
        }
    }

    #[tokio::test]
    async fn the_maps_are_bounded_and_evict_the_nearest_expiry() {
        let l = MemoryRateLimiter::with_clock(Arc::new(ManualClock::new(1_000_000)))
            .max_entries(SHARDS);
        assert_eq!(l.inner.per_shard, 1);
        // One long budget first, then many short ones: the map never holds more than the
        // bound, and the long one survives a flood of keys that expire sooner.
        let long = Budget::new(1, Duration::from_secs(3600));
        let short = Budget::new(1, Duration::from_secs(1));
        assert!(l.hit("q:long", long).await.unwrap().allowed);
        let long_shard = l.inner.tats.index_of("q:long");
        let mut flooded = 0;
        for i in 0..5000 {
            let k = format!("q:short:{i}");
            if l.inner.tats.index_of(&k) == long_shard {
                continue;
            }
            assert!(l.hit(&k, short).await.unwrap().allowed);
            flooded += 1;
        }
        assert!(flooded > 4000);
        let held: usize = (0..SHARDS).map(|i| l.inner.tats.lock_at(i).len()).sum();
        assert!(held <= SHARDS, "{held} keys held");
        assert!(l.inner.warned_full.load(Ordering::Relaxed), "warned");
        assert!(
            !l.hit("q:long", long).await.unwrap().allowed,
            "still counted"
        );
        // The lockout's counters are bounded the same way.
        let lockout_held = {
            let config = LockoutConfig::default();
            for i in 0..3000 {
                attempt(
                    &l,
                    &keys(&format!("10.0.{}.{}", i / 256, i % 256), &format!("u{i}")),
                    &config,
                );
            }
            (0..SHARDS)
                .map(|i| l.inner.lockout.lock_at(i).len())
                .sum::<usize>()
        };
        assert!(lockout_held <= SHARDS, "{lockout_held} lockout keys held");
    }
}
