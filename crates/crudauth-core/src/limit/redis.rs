//! The Redis rate limiter: GCRA in one Lua script, timed by the Redis server's clock.
//!
//! ```no_run
//! use std::time::Duration;
//! use crudauth_core::lifespan::Tasks;
//! use crudauth_core::limit::{Budget, RateLimiter, RedisRateLimiter};
//! use crudauth_core::store::{RedisConfig, RedisConnection};
//!
//! # async fn run() -> Result<(), crudauth_core::StoreError> {
//! let redis = RedisConnection::new(RedisConfig::from_url("redis://127.0.0.1:6379")?)?;
//! let limiter = RedisRateLimiter::new(redis);
//! limiter.initialize(&mut Tasks::new()).await?;
//! let decision = limiter.hit("q:login:203.0.113.7", Budget::new(5, Duration::from_secs(60))).await?;
//! if !decision.allowed {
//!     println!("retry in {} s", decision.retry_after_secs());
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use fred::interfaces::KeysInterface;
use fred::types::scripts::Script;
use fred::types::Value;

use super::lockout::LockoutMillis;
use super::{
    gcra, unlimited, Budget, Decision, LockoutConfig, LockoutDecision, LockoutKeys, RateLimiter,
};
use crate::error::StoreResult;
use crate::lifespan::Tasks;
use crate::store::{BackendKind, RedisConnection};

/// One GCRA step. ARGV: the interval and the period (interval × limit), in µs. Reads the
/// stored theoretical arrival time (0 when absent) and the server's time, stores the new
/// arrival time (expiring then) only when the hit is allowed — the same test as [`gcra`] — and
/// returns `{tat, now}` so the caller computes the decision with [`gcra`] itself.
const GCRA_LUA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local stored = redis.call('GET', KEYS[1])
local tat = 0
if stored then
  tat = tonumber(stored)
  if not tat then
    return redis.error_reply('WRONGKIND the stored arrival time is not a number')
  end
end
local new_tat = math.max(tat, now) + tonumber(ARGV[1])
if new_tat - now <= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PXAT', string.format('%.0f', math.ceil(new_tat / 1000)))
end
return {tat, now}
";

/// One login attempt: `lockout::attempt`, step for step. KEYS: the address counter, the
/// identifier counter, the pair counter, the two locks, the two round counters (all tagged
/// `{login}`, so one slot). ARGV: max attempts, window, base, max, retention (ms), clear-all
/// (1/0), address known (1/0; without it the address keys are never touched). Returns
/// `{allowed, remaining, retry_after_ms}`. Every expiry is relative, so the Redis server's
/// clock is the only clock.
const ATTEMPT_LUA: &str = r"
local max_attempts = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local retention = tonumber(ARGV[5])
local has_ip = ARGV[7] == '1'
local function ttl(key)
  local left = redis.call('PTTL', key)
  if left < 0 then return 0 end
  return left
end
local function count(key)
  return tonumber(redis.call('GET', key) or '0') or 0
end
local function incr(key, ms)
  local n = redis.call('INCRBY', key, 1)
  redis.call('PEXPIRE', key, ms, 'NX')
  return n
end
local ip_lock = 0
if has_ip then ip_lock = ttl(KEYS[4]) end
local active = math.max(ip_lock, ttl(KEYS[5]))
if active > 0 then
  return {0, 0, active}
end
local ip_count = 0
if has_ip then ip_count = incr(KEYS[1], window) end
local user_count = incr(KEYS[2], window)
if has_ip and ARGV[6] == '1' then
  local left = ttl(KEYS[1])
  if left > 0 then
    incr(KEYS[3], left)
  end
end
local attempts = math.max(ip_count, user_count)
if attempts <= max_attempts then
  return {1, max_attempts - attempts, 0}
end
local ip_rounds = 0
if has_ip then ip_rounds = count(KEYS[6]) end
local rounds = math.max(ip_rounds, count(KEYS[7]), 0)
local lock = cap
if rounds < 63 then
  lock = math.min(base * (2 ^ rounds), cap)
end
local lock_ms = string.format('%.0f', lock)
local round_ms = string.format('%.0f', lock + retention)
if has_ip then
  redis.call('SET', KEYS[4], '1', 'PX', lock_ms)
  redis.call('INCRBY', KEYS[6], 1)
  redis.call('PEXPIRE', KEYS[6], round_ms)
end
redis.call('SET', KEYS[5], '1', 'PX', lock_ms)
redis.call('INCRBY', KEYS[7], 1)
redis.call('PEXPIRE', KEYS[7], round_ms)
return {0, 0, lock}
";

/// A successful sign-in: `lockout::succeeded`, step for step. KEYS as for [`ATTEMPT_LUA`];
/// ARGV: clear-all (1/0), address known (1/0).
const SUCCESS_LUA: &str = r"
redis.call('DEL', KEYS[2], KEYS[5], KEYS[7])
if ARGV[1] == '1' and ARGV[2] == '1' then
  local own = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
  if own > 0 and redis.call('DEL', KEYS[3]) == 1 then
    local current = redis.call('GET', KEYS[1])
    if current then
      local left = math.max((tonumber(current) or 0) - own, 0)
      redis.call('SET', KEYS[1], string.format('%.0f', left), 'KEEPTTL')
    end
  end
end
return 1
";

/// One attempt given back: `lockout::forget`, step for step. KEYS as for [`ATTEMPT_LUA`];
/// ARGV: clear-all (1/0), address known (1/0).
const FORGET_LUA: &str = r"
local keys = {KEYS[2]}
if ARGV[2] == '1' then
  keys[2] = KEYS[1]
  if ARGV[1] == '1' then
    keys[3] = KEYS[3]
  end
end
for _, key in ipairs(keys) do
  local n = tonumber(redis.call('GET', key) or '0') or 0
  if n > 0 then
    redis.call('DECRBY', key, 1)
  end
end
return 1
";

/// The Redis [`RateLimiter`]: exact across every worker and host that share the Redis, with
/// the Redis server's clock as the only clock. Keys live under the connection's namespace.
///
/// A route-limit hit is one script on one key; a login attempt is one script on the seven
/// lockout keys of that attempt, which share the `{login}` hash tag (see
/// [`LockoutKeys`]), so both are exact on a Redis Cluster too.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    redis: RedisConnection,
    scripts: Arc<LimiterScripts>,
}

#[derive(Debug)]
struct LimiterScripts {
    gcra: Script,
    attempt: Script,
    success: Script,
    forget: Script,
}

impl RedisRateLimiter {
    /// A limiter over `redis` (shared with the store, if you like).
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            redis,
            scripts: Arc::new(LimiterScripts {
                gcra: Script::from_lua(GCRA_LUA),
                attempt: Script::from_lua(ATTEMPT_LUA),
                success: Script::from_lua(SUCCESS_LUA),
                forget: Script::from_lua(FORGET_LUA),
            }),
        }
    }

    /// The connection this limiter uses.
    pub fn connection(&self) -> &RedisConnection {
        &self.redis
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    fn kind(&self) -> BackendKind {
        BackendKind::Redis
    }

    async fn initialize(&self, _tasks: &mut Tasks) -> StoreResult<()> {
        let s = &self.scripts;
        let scripts = [&s.gcra, &s.attempt, &s.success, &s.forget];
        self.redis.initialize_with_scripts(&scripts).await
    }

    async fn shutdown(&self) {
        self.redis.shutdown().await;
    }

    async fn hit(&self, key: &str, budget: Budget) -> StoreResult<Decision> {
        if budget.is_disabled() {
            return Ok(unlimited(budget));
        }
        let interval = budget.interval_us();
        let period = interval.saturating_mul(u64::from(budget.limit));
        let args = [int(interval), int(period)];
        let reply = self
            .redis
            .eval("hit", &self.scripts.gcra, key, &args)
            .await?;
        let (tat, now) = tat_and_now(&reply).ok_or_else(|| {
            self.redis.unexpected(
                "hit",
                format!("unexpected reply {:?} from the GCRA script", reply.kind()),
            )
        })?;
        Ok(gcra(tat, now, budget).0)
    }

    async fn reset(&self, key: &str) -> StoreResult<()> {
        let r = &self.redis;
        r.run("DEL", key, r.ops().del::<i64, _>(r.key(key)))
            .await
            .map(|_| ())
    }

    async fn login_attempt(
        &self,
        keys: &LockoutKeys,
        config: &LockoutConfig,
    ) -> StoreResult<LockoutDecision> {
        let m = config.millis();
        let args = [
            Value::Integer(m.max_attempts),
            int(m.window),
            int(m.base),
            int(m.max),
            int(m.retention),
            clear_all(m),
            has_ip(keys),
        ];
        let reply = self
            .redis
            .eval_keys("login_attempt", &self.scripts.attempt, &keys.all(), &args)
            .await?;
        lockout_decision(&reply).ok_or_else(|| {
            self.redis.unexpected(
                "login_attempt",
                format!(
                    "unexpected reply {:?} from the lockout script",
                    reply.kind()
                ),
            )
        })
    }

    async fn login_succeeded(&self, keys: &LockoutKeys, config: &LockoutConfig) -> StoreResult<()> {
        let args = [clear_all(config.millis()), has_ip(keys)];
        self.redis
            .eval_keys("login_succeeded", &self.scripts.success, &keys.all(), &args)
            .await
            .map(|_| ())
    }

    async fn forget_attempt(&self, keys: &LockoutKeys, config: &LockoutConfig) -> StoreResult<()> {
        let args = [clear_all(config.millis()), has_ip(keys)];
        self.redis
            .eval_keys("forget_attempt", &self.scripts.forget, &keys.all(), &args)
            .await
            .map(|_| ())
    }
}

fn has_ip(keys: &LockoutKeys) -> Value {
    Value::from_static_str(if keys.has_ip { "1" } else { "0" })
}

fn clear_all(m: LockoutMillis) -> Value {
    Value::from_static_str(if m.clear_all { "1" } else { "0" })
}

/// The attempt script's `{allowed, remaining, retry_after_ms}`.
fn lockout_decision(reply: &Value) -> Option<LockoutDecision> {
    let [allowed, remaining, retry] = array_of(reply)?;
    Some(if allowed.as_i64()? == 1 {
        LockoutDecision::allow(remaining.as_i64()?)
    } else {
        LockoutDecision::refuse(retry.as_u64()?)
    })
}

fn int(ms: u64) -> Value {
    Value::Integer(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// The script's `{tat, now}`.
fn tat_and_now(reply: &Value) -> Option<(u64, u64)> {
    let [tat, now] = array_of(reply)?;
    Some((tat.as_u64()?, now.as_u64()?))
}

/// The values of an array reply of exactly `N` values.
fn array_of<const N: usize>(reply: &Value) -> Option<&[Value; N]> {
    let Value::Array(items) = reply else {
        return None;
    };
    items.as_slice().try_into().ok()
}
