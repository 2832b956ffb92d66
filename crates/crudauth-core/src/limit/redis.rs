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

use super::{gcra, unlimited, Budget, Decision, RateLimiter};
use crate::error::{StoreError, StoreResult};
use crate::lifespan::Tasks;
use crate::store::{BackendKind, RedisConnection};

/// One GCRA step. ARGV: the interval and the period (interval × limit), in ms. Reads the
/// stored theoretical arrival time (0 when absent) and the server's time, stores the new
/// arrival time (expiring then) only when the hit is allowed — the same test as [`gcra`] — and
/// returns `{tat, now}` so the caller computes the decision with [`gcra`] itself.
const GCRA_LUA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
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
  local at = string.format('%.0f', new_tat)
  redis.call('SET', KEYS[1], at, 'PXAT', at)
end
return {tat, now}
";

/// The Redis [`RateLimiter`]: exact across every worker and host that share the Redis, with
/// the Redis server's clock as the only clock. Keys live under the connection's namespace.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    redis: RedisConnection,
    script: Arc<Script>,
}

impl RedisRateLimiter {
    /// A limiter over `redis` (shared with the store, if you like).
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            redis,
            script: Arc::new(Script::from_lua(GCRA_LUA)),
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
        self.redis.initialize().await?;
        if let Err(error) = self.redis.load_scripts(&[&self.script]).await {
            self.redis.shutdown().await;
            return Err(error);
        }
        Ok(())
    }

    async fn shutdown(&self) {
        self.redis.shutdown().await;
    }

    async fn hit(&self, key: &str, budget: Budget) -> StoreResult<Decision> {
        if budget.is_disabled() {
            return Ok(unlimited(budget));
        }
        let interval = budget.interval_ms();
        let period = interval.saturating_mul(u64::from(budget.limit));
        let args = [int(interval), int(period)];
        let reply = self.redis.eval("hit", &self.script, key, &args).await?;
        let (tat, now) = tat_and_now(&reply).ok_or_else(|| StoreError::Backend {
            url: self.redis.url().to_owned(),
            operation: "hit",
            reason: format!("unexpected reply {:?} from the GCRA script", reply.kind()),
        })?;
        Ok(gcra(tat, now, budget).0)
    }

    async fn reset(&self, key: &str) -> StoreResult<()> {
        let r = &self.redis;
        r.run("DEL", key, r.ops().del::<i64, _>(r.key(key)))
            .await
            .map(|_| ())
    }
}

fn int(ms: u64) -> Value {
    Value::Integer(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// The script's `{tat, now}`.
fn tat_and_now(reply: &Value) -> Option<(u64, u64)> {
    let Value::Array(items) = reply else {
        return None;
    };
    match items.as_slice() {
        [tat, now] => Some((tat.as_u64()?, now.as_u64()?)),
        _ => None,
    }
}
