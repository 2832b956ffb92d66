//! [`RedisStore`]: the [`Store`] over a [`RedisConnection`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::bytes_utils::Str;
use fred::interfaces::{ClientLike, KeysInterface, SortedSetsInterface};
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand, Expiration, SetOptions, Value};

use super::{
    connection::RedisConnection,
    scripts::{COMPARE_AND_SWAP_LUA, INCR_LUA, INDEX_ADD_LUA},
};
use crate::error::{StoreError, StoreResult};
use crate::lifespan::Tasks;
use crate::store::{BackendKind, IndexEntry, Store, Swap};

/// Longest TTL sent to Redis (100 years), so `now + ttl` never overflows on the server.
pub(super) const MAX_TTL_MS: i64 = 100 * 365 * 24 * 3_600 * 1_000;

/// A TTL in whole milliseconds for Redis: at least 1, at most [`MAX_TTL_MS`].
pub(crate) fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis())
        .unwrap_or(MAX_TTL_MS)
        .clamp(1, MAX_TTL_MS)
}

/// The Redis [`Store`]: shared by every worker and host that uses the same Redis.
///
/// One command or one script per operation, each on one key: reads slide their TTL with
/// `GETEX`, single-use consumes are `GETDEL`, updates are `SET … XX` (never resurrecting),
/// counters and the capped per-user index are Lua scripts.
///
/// ```no_run
/// use std::time::Duration;
/// use bytes::Bytes;
/// use crudauth_core::lifespan::Tasks;
/// use crudauth_core::limit::{Budget, RateLimiter, RedisRateLimiter};
/// use crudauth_core::store::{RedisConfig, RedisConnection, RedisStore, Store};
///
/// # async fn run() -> Result<(), crudauth_core::StoreError> {
/// let config = RedisConfig::from_url("redis://127.0.0.1:6379")?
///     .namespace("myapp:")
///     .command_timeout(Duration::from_millis(500));
/// let redis = RedisConnection::new(config)?;
/// let store = RedisStore::new(redis.clone());
/// let limiter = RedisRateLimiter::new(redis); // the same client, the same namespace
///
/// let mut tasks = Tasks::new();
/// store.initialize(&mut tasks).await?; // connects, checks Redis >= 7, loads the scripts
/// limiter.initialize(&mut tasks).await?;
///
/// store.set("t:verify:abc", Bytes::from_static(b"{}"), Duration::from_secs(60)).await?;
/// assert!(store.take("t:verify:abc").await?.is_some()); // GETDEL: single use
/// limiter.hit("q:register:203.0.113.7", Budget::new(5, Duration::from_secs(3600))).await?;
///
/// limiter.shutdown().await;
/// store.shutdown().await; // the last user closes the shared connection
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisStore {
    pub(super) redis: RedisConnection,
    pub(super) scripts: Arc<StoreScripts>,
}

#[derive(Debug)]
pub(super) struct StoreScripts {
    pub(super) incr: Script,
    pub(super) index_add: Script,
    pub(super) compare_and_swap: Script,
}

impl RedisStore {
    /// A store over `redis` (shared with the rate limiter, if you like).
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            redis,
            scripts: Arc::new(StoreScripts {
                incr: Script::from_lua(INCR_LUA),
                index_add: Script::from_lua(INDEX_ADD_LUA),
                compare_and_swap: Script::from_lua(COMPARE_AND_SWAP_LUA),
            }),
        }
    }

    /// The connection this store uses.
    pub fn connection(&self) -> &RedisConnection {
        &self.redis
    }

    /// `SET` with `expiry`, under `condition` (`NX`, `XX`) if any; `true` when it wrote.
    async fn set_with(
        &self,
        operation: &'static str,
        key: &str,
        value: Bytes,
        expiry: Expiration,
        condition: Option<SetOptions>,
    ) -> StoreResult<bool> {
        let r = &self.redis;
        let reply = r
            .run(
                operation,
                key,
                r.ops()
                    .set::<Value, _, _>(r.key(key), value, Some(expiry), condition, false),
            )
            .await?;
        Ok(!reply.is_null())
    }
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Redis
    }

    async fn initialize(&self, _tasks: &mut Tasks) -> StoreResult<()> {
        let scripts = [
            &self.scripts.incr,
            &self.scripts.index_add,
            &self.scripts.compare_and_swap,
        ];
        self.redis.initialize_with_scripts(&scripts).await
    }

    async fn shutdown(&self) {
        self.redis.shutdown().await;
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>> {
        let r = &self.redis;
        r.run("GET", key, r.ops().get::<Option<Bytes>, _>(r.key(key)))
            .await
    }

    async fn get_and_touch(&self, key: &str, ttl: Duration) -> StoreResult<Option<Bytes>> {
        let r = &self.redis;
        let getex = CustomCommand::new_static("GETEX", ClusterHash::FirstKey, false);
        let args = vec![
            Value::Bytes(r.key(key)),
            Value::from_static_str("PX"),
            Value::Integer(ttl_ms(ttl)),
        ];
        r.run(
            "GETEX",
            key,
            r.ops().custom::<Option<Bytes>, Value>(getex, args),
        )
        .await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<()> {
        let expiry = Expiration::PX(ttl_ms(ttl));
        self.set_with("SET", key, value, expiry, None)
            .await
            .map(|_| ())
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<bool> {
        let expiry = Expiration::PX(ttl_ms(ttl));
        self.set_with("SET NX", key, value, expiry, Some(SetOptions::NX))
            .await
    }

    async fn set_if_present(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> StoreResult<bool> {
        let expiry = match ttl {
            Some(ttl) => Expiration::PX(ttl_ms(ttl)),
            None => Expiration::KEEPTTL,
        };
        self.set_with("SET XX", key, value, expiry, Some(SetOptions::XX))
            .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Duration>,
    ) -> StoreResult<Swap> {
        let ttl = ttl.map_or(-1, ttl_ms);
        let args = [
            Value::Bytes(Bytes::copy_from_slice(expected)),
            Value::Bytes(new),
            Value::Integer(ttl),
        ];
        let reply = self
            .redis
            .eval(
                "compare_and_swap",
                &self.scripts.compare_and_swap,
                key,
                &args,
            )
            .await?;
        match reply.as_i64() {
            Some(2) => Ok(Swap::Swapped),
            Some(1) => Ok(Swap::Changed),
            Some(0) => Ok(Swap::Absent),
            _ => Err(self
                .redis
                .unexpected("compare_and_swap", unexpected_reply(&reply))),
        }
    }

    async fn delete(&self, key: &str) -> StoreResult<bool> {
        let r = &self.redis;
        let removed = r.run("DEL", key, r.ops().del::<i64, _>(r.key(key))).await?;
        Ok(removed > 0)
    }

    async fn take(&self, key: &str) -> StoreResult<Option<Bytes>> {
        let r = &self.redis;
        r.run(
            "GETDEL",
            key,
            r.ops().getdel::<Option<Bytes>, _>(r.key(key)),
        )
        .await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> StoreResult<bool> {
        let r = &self.redis;
        let set = r
            .run(
                "PEXPIRE",
                key,
                r.ops().pexpire::<i64, _>(r.key(key), ttl_ms(ttl), None),
            )
            .await?;
        Ok(set == 1)
    }

    /// The remaining time to live; a key that Redis holds without any expiry (written by
    /// something else) reports `Duration::MAX`.
    async fn ttl(&self, key: &str) -> StoreResult<Option<Duration>> {
        let r = &self.redis;
        let ms = r
            .run("PTTL", key, r.ops().pttl::<i64, _>(r.key(key)))
            .await?;
        Ok(match ms {
            -2 => None,
            ms if ms < 0 => Some(Duration::MAX),
            ms => Some(Duration::from_millis(ms.unsigned_abs())),
        })
    }

    async fn incr(&self, key: &str, by: i64, window: Duration) -> StoreResult<i64> {
        let args = [Value::Integer(by), Value::Integer(ttl_ms(window))];
        let reply = self
            .redis
            .eval("incr", &self.scripts.incr, key, &args)
            .await?;
        reply
            .as_i64()
            .ok_or_else(|| self.redis.unexpected("incr", unexpected_reply(&reply)))
    }

    async fn index_add(
        &self,
        index: &str,
        member: &str,
        score: f64,
        keep: Option<usize>,
        ttl: Duration,
    ) -> StoreResult<Vec<String>> {
        if score.is_nan() {
            return Err(StoreError::Config(format!(
                "index_add on `{index}`: a score must be a number, not NaN"
            )));
        }
        let keep = keep.map_or(-1, |k| i64::try_from(k).unwrap_or(i64::MAX));
        let args = [
            Value::String(Str::from(member)),
            Value::Double(score),
            Value::Integer(keep),
            Value::Integer(ttl_ms(ttl)),
        ];
        let reply = self
            .redis
            .eval("index_add", &self.scripts.index_add, index, &args)
            .await?;
        match reply {
            Value::Array(items) => items
                .into_iter()
                .map(|item| {
                    item.as_string()
                        .ok_or_else(|| self.redis.unexpected("index_add", unexpected_reply(&item)))
                })
                .collect(),
            Value::Null => Ok(Vec::new()),
            other => Err(self.redis.unexpected("index_add", unexpected_reply(&other))),
        }
    }

    async fn index_members(&self, index: &str) -> StoreResult<Vec<IndexEntry>> {
        let r = &self.redis;
        let reply = r
            .run(
                "ZRANGE",
                index,
                r.ops()
                    .zrange::<Value, _, _, _>(r.key(index), 0, -1, None, false, None, true),
            )
            .await?;
        members_with_scores(reply).ok_or_else(|| {
            r.unexpected(
                "ZRANGE",
                "the reply was not a list of members and scores".to_owned(),
            )
        })
    }

    async fn index_remove(&self, index: &str, members: &[String]) -> StoreResult<usize> {
        if members.is_empty() {
            return Ok(0);
        }
        let r = &self.redis;
        let members: Vec<Value> = members
            .iter()
            .map(|m| Value::String(Str::from(m.as_str())))
            .collect();
        let removed = r
            .run(
                "ZREM",
                index,
                r.ops().zrem::<i64, _, _>(r.key(index), members),
            )
            .await?;
        Ok(usize::try_from(removed).unwrap_or(0))
    }
}

/// `ZRANGE … WITHSCORES` as entries: a flat list (RESP2) or a list of pairs (RESP3).
pub(super) fn members_with_scores(reply: Value) -> Option<Vec<IndexEntry>> {
    let items = match reply {
        Value::Array(items) => items,
        Value::Null => return Some(Vec::new()),
        _ => return None,
    };
    let pairs = items.iter().all(|i| matches!(i, Value::Array(_)));
    let mut entries = Vec::with_capacity(if pairs { items.len() } else { items.len() / 2 });
    let mut entry = |member: Value, score: Value| -> Option<()> {
        let score = match score {
            Value::Double(s) => s,
            Value::Integer(s) => s as f64,
            other => other.as_str()?.parse().ok()?,
        };
        entries.push(IndexEntry {
            member: member.as_string()?,
            score,
        });
        Some(())
    };
    if pairs && !items.is_empty() {
        for item in items {
            let Value::Array(mut pair) = item else {
                return None;
            };
            let score = pair.pop()?;
            let member = pair.pop()?;
            entry(member, score)?;
        }
    } else {
        let mut items = items.into_iter();
        while let Some(member) = items.next() {
            entry(member, items.next()?)?;
        }
    }
    Some(entries)
}

/// The reason given with [`RedisConnection::unexpected`] for a reply of the wrong kind.
pub(super) fn unexpected_reply(reply: &Value) -> String {
    format!("unexpected reply {:?}", reply.kind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RedisConfig;

    /// fred's command futures are about 5 KiB; kept inline, every store call would allocate and
    /// copy one or two of them per request. A structural guard, not a timing.
    #[test]
    fn store_futures_stay_small() {
        let config = RedisConfig::from_url("redis://127.0.0.1:6379").unwrap();
        let store = RedisStore::new(RedisConnection::new(config).unwrap());
        let ttl = Duration::from_secs(1);
        let read = store.get_and_touch("s:x", ttl);
        assert!(std::mem::size_of_val(&*read) < 512);
        let write = store.set_if_present("s:x", Bytes::new(), Some(ttl));
        assert!(std::mem::size_of_val(&*write) < 512);
        // The other writes share set_with(), and its boxed command, with set_if_present.
        let set = store.set("s:x", Bytes::new(), ttl);
        assert!(std::mem::size_of_val(&*set) < 512);
        let claim = store.set_if_absent("s:x", Bytes::new(), ttl);
        assert!(std::mem::size_of_val(&*claim) < 512);
    }
}
