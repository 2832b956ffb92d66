//! The escalating login lockout: crudauth 0.8's counters, made atomic.
//!
//! Every password sign-in is recorded *before* any password work, per client address and per
//! subject — the account the identifier names, or the canonical identifier (trimmed,
//! lower-cased) when it names none — as one atomic step of the [`RateLimiter`]:
//!
//! 1. if the address or the identifier is locked, refuse with the lock's remaining time (the
//!    attempt is not counted);
//! 2. count the attempt against the address and the identifier (each counter's window starts
//!    at its first attempt), and, under [`OnLoginSuccess::ClearAll`], against the pair;
//! 3. within `max_attempts` on both counters, allow;
//! 4. otherwise lock **both** the address and the identifier for
//!    `min(lockout_base × 2^rounds, lockout_max)` and count one more round on each; a round
//!    counter is kept `round_retention` past the end of the latest lock, so a slow, paced
//!    attack keeps climbing.
//!
//! A success deletes the identifier's counter, lock and rounds, and (under `ClearAll`) takes
//! back from the address only the attempts that this identifier made from it, so signing in to
//! your own account never launders a spray against others. A success never lifts an address
//! lock.
//!
//! ```
//! use std::time::Duration;
//! use crudauth_core::limit::{LockoutConfig, LockoutKeys, LockoutSubject, MemoryRateLimiter, RateLimiter};
//! use crudauth_core::secret::SecretKey;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let limiter = MemoryRateLimiter::new();
//! let key = SecretKey::new([7u8; 32]).unwrap();
//! let config = LockoutConfig { max_attempts: 2, ..LockoutConfig::default() };
//! let ada = |ip| LockoutKeys::new(&key, Some(ip), LockoutSubject::Identifier(" Ada@Example.com "));
//! let keys = ada("203.0.113.7");
//! assert!(limiter.login_attempt(&keys, &config).await?.allowed);
//! assert!(limiter.login_attempt(&keys, &config).await?.allowed);
//! let refused = limiter.login_attempt(&keys, &config).await?;
//! assert!(!refused.allowed);
//! assert_eq!(refused.retry_after_secs(), 60);
//! // Another spelling of the same identifier, from another address, is locked too.
//! let other = ada("198.51.100.1");
//! assert!(!limiter.login_attempt(&other, &config).await?.allowed);
//! # Ok::<(), crudauth_core::StoreError>(()) }).unwrap();
//! ```
//!
//! Differences from crudauth, all deliberate: the whole attempt is one atomic step (crudauth's
//! separate reads and increments let N parallel guesses all pass the lock check, and N parallel
//! trips escalate N rounds at once); times are kept in milliseconds, so a lock never ends early
//! (crudauth's memory backend floors its TTLs); rounds are kept `round_retention` past the
//! *end* of a lock (crudauth keeps them `max(lock, round_retention)` from its start, so with
//! the defaults a lock of `lockout_max` and its rounds end together and escalation starts over
//! at `lockout_base`, more than doubling what an attacker gets at the cap); a counter is never
//! decremented below zero nor
//! brought back once expired (crudauth could leave a negative counter, handing an address extra
//! attempts); the email and the user name of one account share one counter (crudauth counts
//! what was typed, so each spelling has its own five guesses); subjects are stored as an HMAC
//! under the application's secret, since people type passwords into the user name field; and
//! a request whose address is unknown is counted per subject alone, never in one bucket shared
//! by everyone.
//!
//! [`RateLimiter`]: super::RateLimiter

use std::time::Duration;

use super::secs_rounded_up;
use crate::clock::duration_ms;
use crate::secret::SecretKey;

/// What a successful sign-in clears besides the identifier's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnLoginSuccess {
    /// Also take back, from the address, the attempts this identifier made from it (crudauth's
    /// default): users behind one NAT do not lock each other out by mistyping.
    #[default]
    ClearAll,
    /// Leave every address counter as it is: for deployments where an address is reliably one
    /// client (behind a correctly configured proxy, without heavy carrier-grade NAT).
    ClearUserOnly,
}

/// The login lockout's numbers (crudauth's `LockoutConfig`, same defaults).
///
/// ```
/// use std::time::Duration;
/// use crudauth_core::limit::{LockoutConfig, OnLoginSuccess};
///
/// let strict = LockoutConfig {
///     max_attempts: 3,
///     lockout_max: Duration::from_secs(900),
///     on_login_success: OnLoginSuccess::ClearUserOnly,
///     ..LockoutConfig::default()
/// };
/// assert!(strict.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutConfig {
    /// Attempts allowed per address and per identifier within one window (default 5).
    pub max_attempts: u32,
    /// How long attempts are counted, from the first one (default 60 s).
    pub attempt_window: Duration,
    /// The first lock's length; each further round doubles it (default 60 s).
    pub lockout_base: Duration,
    /// The longest lock (default 3600 s).
    pub lockout_max: Duration,
    /// How long the round counter is kept after the latest lock ends (default 3600 s).
    pub round_retention: Duration,
    /// What a successful sign-in clears (default [`OnLoginSuccess::ClearAll`]).
    pub on_login_success: OnLoginSuccess,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            attempt_window: Duration::from_secs(60),
            lockout_base: Duration::from_secs(60),
            lockout_max: Duration::from_secs(3600),
            round_retention: Duration::from_secs(3600),
            on_login_success: OnLoginSuccess::ClearAll,
        }
    }
}

impl LockoutConfig {
    /// Checks that every number is positive (durations of at least 1 ms).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("lockout max_attempts must be at least 1".to_owned());
        }
        let d = Self::default();
        let durations = [
            ("attempt_window", self.attempt_window, d.attempt_window),
            ("lockout_base", self.lockout_base, d.lockout_base),
            ("lockout_max", self.lockout_max, d.lockout_max),
            ("round_retention", self.round_retention, d.round_retention),
        ];
        for (name, value, default) in durations {
            if value < Duration::from_millis(1) {
                return Err(format!(
                    "lockout {name} must be positive (got {value:?}); crudauth's default is {default:?}"
                ));
            }
        }
        Ok(())
    }

    /// The numbers in milliseconds, as the backends use them.
    pub(crate) fn millis(&self) -> LockoutMillis {
        LockoutMillis {
            max_attempts: i64::from(self.max_attempts),
            window: duration_ms(self.attempt_window).max(1),
            base: duration_ms(self.lockout_base).max(1),
            max: duration_ms(self.lockout_max).max(1),
            retention: duration_ms(self.round_retention).max(1),
            clear_all: self.on_login_success == OnLoginSuccess::ClearAll,
        }
    }
}

/// [`LockoutConfig`] in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockoutMillis {
    pub(crate) max_attempts: i64,
    pub(crate) window: u64,
    pub(crate) base: u64,
    pub(crate) max: u64,
    pub(crate) retention: u64,
    pub(crate) clear_all: bool,
}

impl LockoutMillis {
    /// `min(base × 2^rounds, max)`, without overflow.
    pub(crate) fn lock_for(&self, rounds: i64) -> u64 {
        let rounds = u32::try_from(rounds.max(0)).unwrap_or(u32::MAX);
        let doubled = 2u64
            .checked_pow(rounds)
            .and_then(|factor| self.base.checked_mul(factor))
            .unwrap_or(u64::MAX);
        doubled.min(self.max)
    }
}

/// The canonical form of a login identifier for the lockout: trimmed and lower-cased, the
/// same mapping account lookup applies to emails, so every spelling that reaches one account
/// shares one counter.
///
/// ```
/// use crudauth_core::limit::canonical_identifier;
/// assert_eq!(canonical_identifier("  Ada@Example.COM "), "ada@example.com");
/// assert_eq!(canonical_identifier("Alice"), "alice");
/// ```
pub fn canonical_identifier(identifier: &str) -> String {
    identifier.trim().to_lowercase()
}

/// Whom a sign-in attempt is counted against: the account the identifier names, or, when it
/// names none, the identifier's canonical text (see [`canonical_identifier`]).
///
/// Resolving the identifier to the account first means the email and the user name of one
/// account share one counter (counting them apart would double an attacker's guesses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockoutSubject<'a> {
    /// An account, by its user id.
    Account(&'a str),
    /// An identifier that names no account, as typed (canonicalized when keyed).
    Identifier(&'a str),
}

/// The keys of one sign-in attempt: an address (already grouped, see the axum crate's
/// `client_ip::ip_key`), or none when the server cannot tell the client's address, and a
/// [`LockoutSubject`].
///
/// The subject is never stored as text, nor as an unkeyed hash: people type passwords into the
/// user name field, and an unkeyed SHA-256 of a short secret is reversed by brute force. Its
/// key part is HMAC-SHA256 under the limiter's key (purpose `lockout`), so a reader of the
/// store learns nothing without the secret. Without an address the attempt is counted per
/// subject alone: never one bucket shared by every caller.
///
/// Every key carries the hash tag `{login}`, so on a Redis Cluster they all live in one slot
/// and one script can read and write them together: the address and the identifier are
/// different entities, and an exact, atomic check of both needs them side by side. The cost is
/// that all lockout state sits on one shard; sign-ins are bounded by password hashing long
/// before one Redis shard is (route limits, one key each, spread over the whole cluster).
///
/// ```
/// use crudauth_core::limit::{LockoutKeys, LockoutSubject};
/// use crudauth_core::secret::SecretKey;
///
/// let key = SecretKey::new([7u8; 32]).unwrap();
/// let keys = LockoutKeys::new(&key, Some("203.0.113.7"), LockoutSubject::Identifier("Ada@Example.com"));
/// assert_eq!(keys.ip_counter(), Some("l:{login}:ip:203.0.113.7"));
/// assert!(!keys.identifier_counter().contains("ada"));
/// let again = LockoutKeys::new(&key, Some("203.0.113.7"), LockoutSubject::Identifier(" ada@example.com"));
/// assert_eq!(keys, again);
/// // No address: the identifier alone is counted.
/// let blind = LockoutKeys::new(&key, None, LockoutSubject::Account("42"));
/// assert_eq!(blind.ip_counter(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutKeys {
    /// Whether the address is known; without it the address keys are placeholders that are
    /// never read nor written.
    pub(crate) has_ip: bool,
    /// Attempts from the address.
    pub(crate) ip: String,
    /// Attempts on the subject.
    pub(crate) user: String,
    /// Attempts on the subject from the address.
    pub(crate) pair: String,
    pub(crate) lock_ip: String,
    pub(crate) lock_user: String,
    pub(crate) rounds_ip: String,
    pub(crate) rounds_user: String,
}

/// The HMAC purpose of lockout subjects.
const SUBJECT_PURPOSE: &str = "lockout";

impl LockoutKeys {
    /// The keys for an attempt on `subject` from `ip_key` (`None`: the address is unknown).
    pub fn new(key: &SecretKey, ip_key: Option<&str>, subject: LockoutSubject<'_>) -> Self {
        let user = match subject {
            LockoutSubject::Account(id) => key.digest(SUBJECT_PURPOSE, &format!("account:{id}")),
            LockoutSubject::Identifier(text) => key.digest(
                SUBJECT_PURPOSE,
                &format!("identifier:{}", canonical_identifier(text)),
            ),
        };
        // Without an address, the address keys name one slot-mate placeholder the scripts
        // never touch (a cluster script's keys must still share the `{login}` slot).
        let ip = ip_key.unwrap_or("");
        let has_ip = ip_key.is_some();
        let or_none = |k: String| {
            if has_ip {
                k
            } else {
                "l:{login}:none".to_owned()
            }
        };
        Self {
            has_ip,
            ip: or_none(format!("l:{{login}}:ip:{ip}")),
            pair: or_none(format!("l:{{login}}:pair:{ip}:{user}")),
            lock_ip: or_none(format!("l:{{login}}:lock:ip:{ip}")),
            rounds_ip: or_none(format!("l:{{login}}:rounds:ip:{ip}")),
            user: format!("l:{{login}}:user:{user}"),
            lock_user: format!("l:{{login}}:lock:user:{user}"),
            rounds_user: format!("l:{{login}}:rounds:user:{user}"),
        }
    }

    /// The key counting attempts from the address (for inspection in tests and tools); `None`
    /// when the address is unknown.
    pub fn ip_counter(&self) -> Option<&str> {
        self.has_ip.then_some(self.ip.as_str())
    }

    /// The key counting attempts on the subject.
    pub fn identifier_counter(&self) -> &str {
        &self.user
    }

    /// The keys of the address's side (its counter, the pair, its lock and rounds), when
    /// known: the memory limiter keeps them in the address's shard.
    pub(crate) fn ip_keys(&self) -> Option<[&str; 4]> {
        self.has_ip
            .then(|| [&*self.ip, &*self.pair, &*self.lock_ip, &*self.rounds_ip])
    }

    /// Every key, in the order the Redis scripts take them.
    pub(crate) fn all(&self) -> [&str; 7] {
        [
            &self.ip,
            &self.user,
            &self.pair,
            &self.lock_ip,
            &self.lock_user,
            &self.rounds_ip,
            &self.rounds_user,
        ]
    }
}

/// The answer to one sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutDecision {
    /// Whether the password may be checked.
    pub allowed: bool,
    /// Attempts left in this window (0 when refused).
    pub remaining: u32,
    /// When refused: how long the lock lasts (for `Retry-After`).
    pub retry_after: Duration,
}

impl LockoutDecision {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        secs_rounded_up(self.retry_after)
    }

    pub(crate) fn allow(remaining: i64) -> Self {
        Self {
            allowed: true,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            retry_after: Duration::ZERO,
        }
    }

    pub(crate) fn refuse(ms: u64) -> Self {
        Self {
            allowed: false,
            remaining: 0,
            retry_after: Duration::from_millis(ms),
        }
    }
}

/// Counters with expiry, as the lockout needs them; the memory backend implements them over
/// its map under one lock, and the Redis scripts run the same steps with Redis commands.
pub(crate) trait Counters {
    /// Milliseconds left to live; 0 when absent.
    fn ttl(&mut self, key: &str) -> u64;
    /// The count; 0 when absent.
    fn get(&mut self, key: &str) -> i64;
    /// Adds `by`; a new key expires in `ttl` ms (first touch), an existing one keeps its
    /// expiry.
    fn incr(&mut self, key: &str, by: i64, ttl: u64) -> i64;
    /// Adds `by` and (re)sets the expiry to `ttl` ms.
    fn incr_and_rearm(&mut self, key: &str, by: i64, ttl: u64) -> i64;
    /// Sets a value expiring in `ttl` ms.
    fn set(&mut self, key: &str, value: i64, ttl: u64);
    /// Replaces the value of an existing key, keeping its expiry; absent keys stay absent.
    fn replace(&mut self, key: &str, value: i64);
    /// Deletes; whether the key existed.
    fn delete(&mut self, key: &str) -> bool;
}

/// One attempt (see the [module docs](self)); mirrored by `ATTEMPT_LUA`.
pub(crate) fn attempt(c: &mut impl Counters, k: &LockoutKeys, m: LockoutMillis) -> LockoutDecision {
    let ip = k.has_ip;
    let ip_lock = if ip { c.ttl(&k.lock_ip) } else { 0 };
    let active = ip_lock.max(c.ttl(&k.lock_user));
    if active > 0 {
        return LockoutDecision::refuse(active);
    }
    let ip_count = if ip { c.incr(&k.ip, 1, m.window) } else { 0 };
    let user_count = c.incr(&k.user, 1, m.window);
    if ip && m.clear_all {
        let left = c.ttl(&k.ip);
        if left > 0 {
            c.incr(&k.pair, 1, left);
        }
    }
    let attempts = ip_count.max(user_count);
    if attempts <= m.max_attempts {
        return LockoutDecision::allow(m.max_attempts - attempts);
    }
    let ip_rounds = if ip { c.get(&k.rounds_ip) } else { 0 };
    let rounds = ip_rounds.max(c.get(&k.rounds_user));
    let lock = m.lock_for(rounds);
    let round_ttl = lock.saturating_add(m.retention);
    if ip {
        c.set(&k.lock_ip, 1, lock);
        c.incr_and_rearm(&k.rounds_ip, 1, round_ttl);
    }
    c.set(&k.lock_user, 1, lock);
    c.incr_and_rearm(&k.rounds_user, 1, round_ttl);
    LockoutDecision::refuse(lock)
}

/// A successful sign-in; mirrored by `SUCCESS_LUA`.
pub(crate) fn succeeded(c: &mut impl Counters, k: &LockoutKeys, m: LockoutMillis) {
    c.delete(&k.user);
    c.delete(&k.lock_user);
    c.delete(&k.rounds_user);
    if k.has_ip && m.clear_all {
        let own = c.get(&k.pair);
        if own > 0 && c.delete(&k.pair) {
            let left = (c.get(&k.ip) - own).max(0);
            c.replace(&k.ip, left);
        }
    }
}

/// Gives one attempt back (a right password whose sign-in still needs a second factor);
/// mirrored by `FORGET_LUA`.
pub(crate) fn forget(c: &mut impl Counters, k: &LockoutKeys, m: LockoutMillis) {
    let pair = (k.has_ip && m.clear_all).then_some(&k.pair);
    let ip = k.has_ip.then_some(&k.ip);
    for key in [&k.user].into_iter().chain(ip).chain(pair) {
        let n = c.get(key);
        if n > 0 {
            c.replace(key, n - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_double_and_cap() {
        let m = LockoutConfig::default().millis();
        let locks: Vec<u64> = (0..9).map(|r| m.lock_for(r) / 1000).collect();
        assert_eq!(locks, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(m.lock_for(10_000), 3_600_000);
        assert_eq!(m.lock_for(-3), 60_000);
    }

    fn key() -> SecretKey {
        SecretKey::new([9u8; 32]).unwrap()
    }

    fn named(ip: &str, who: &str) -> LockoutKeys {
        LockoutKeys::new(&key(), Some(ip), LockoutSubject::Identifier(who))
    }

    #[test]
    fn identifiers_are_canonical_and_keyed() {
        let a = named("1.2.3.4", "V@X.com");
        let b = named("1.2.3.4", "  v@x.COM\t");
        assert_eq!(a, b);
        assert!(!a.user.contains("v@x"), "{}", a.user);
        assert_ne!(a.user, named("1.2.3.4", "w@x.com").user);
        for key in a.all() {
            assert!(key.starts_with("l:{login}:"), "{key}");
        }
        // Keyed: neither the text nor its plain SHA-256 (whole or cut) appears, and another
        // secret gives other keys.
        let plain = crate::secret::sha256_hex(b"v@x.com");
        for k in a.all() {
            assert!(!k.contains(&plain[..32]), "{k}");
        }
        let other = LockoutKeys::new(
            &SecretKey::new([8u8; 32]).unwrap(),
            Some("1.2.3.4"),
            LockoutSubject::Identifier("v@x.com"),
        );
        assert_ne!(a.user, other.user);
    }

    #[test]
    fn accounts_and_identifiers_never_share_a_key() {
        let k = key();
        let account = LockoutKeys::new(&k, Some("1.2.3.4"), LockoutSubject::Account("ada"));
        let text = LockoutKeys::new(&k, Some("1.2.3.4"), LockoutSubject::Identifier("ada"));
        assert_ne!(account.user, text.user);
        let blind = LockoutKeys::new(&k, None, LockoutSubject::Account("ada"));
        assert_eq!(blind.user, account.user);
        assert_eq!(blind.ip_counter(), None);
        assert!(blind.ip_keys().is_none());
        for key in blind.all() {
            assert!(key.starts_with("l:{login}:"), "{key}");
        }
    }

    #[test]
    fn validation_refuses_zeroes() {
        assert!(LockoutConfig::default().validate().is_ok());
        let zero = LockoutConfig {
            max_attempts: 0,
            ..Default::default()
        };
        assert!(zero.validate().is_err());
        let no_window = LockoutConfig {
            attempt_window: Duration::ZERO,
            ..Default::default()
        };
        assert!(no_window.validate().unwrap_err().contains("attempt_window"));
    }

    #[test]
    fn validation_names_each_fields_default() {
        let no_base = LockoutConfig {
            lockout_base: Duration::from_micros(999),
            ..Default::default()
        };
        assert_eq!(
            no_base.validate().unwrap_err(),
            "lockout lockout_base must be positive (got 999µs); crudauth's default is 60s"
        );
        let no_retention = LockoutConfig {
            round_retention: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(
            no_retention.validate().unwrap_err(),
            "lockout round_retention must be positive (got 0ns); crudauth's default is 3600s"
        );
    }
}
