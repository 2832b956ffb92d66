//! The Lua scripts and how they are loaded and run: `EVALSHA`, falling back to `EVAL` when a
//! restarted server has lost its script cache.

use bytes::Bytes;
use fred::bytes_utils::Str;
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::{ClientLike, LuaInterface};
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand, Value};

use super::connection::RedisConnection;
use crate::error::{StoreError, StoreResult};

/// `INCRBY` plus a first-touch expiry, atomically. A value that is not an integer is refused
/// (and left as it is) with a `WRONGKIND` error.
pub(super) const INCR_LUA: &str = r"
local n = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(n) == 'table' and n.err then
  return redis.error_reply('WRONGKIND ' .. n.err)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX')
return n
";

/// Replaces the value only if it is exactly ARGV[1]: 2 swapped, 1 changed, 0 absent. ARGV[3]
/// is the new TTL in ms, or -1 to keep the remaining one. A value that is not a string is
/// refused (and left as it is) with a `WRONGKIND` error.
pub(super) const COMPARE_AND_SWAP_LUA: &str = r"
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' and current.err then
  return redis.error_reply('WRONGKIND ' .. current.err)
end
if not current then
  return 0
end
if current ~= ARGV[1] then
  return 1
end
local ttl = tonumber(ARGV[3])
if ttl < 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
end
return 2
";

/// Adds or re-scores a member, evicts the lowest scores beyond `keep` (ARGV[3], -1 = no cap)
/// and returns them, then extends the index's expiry if (and only if) that makes it longer.
pub(super) const INDEX_ADD_LUA: &str = r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local evicted = {}
local keep = tonumber(ARGV[3])
if keep >= 0 then
  local excess = redis.call('ZCARD', KEYS[1]) - keep
  if excess > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[1], excess)
    for i = 1, #popped, 2 do
      evicted[#evicted + 1] = popped[i]
    end
  end
end
local ttl = tonumber(ARGV[4])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return evicted
";

impl RedisConnection {
    /// [`RedisConnection::initialize`] for a backend that needs `scripts`: connects (or joins
    /// the connection), then loads them on every primary; on failure the backend's use of the
    /// connection is released again, so nothing is left running.
    pub(crate) async fn initialize_with_scripts(&self, scripts: &[&Script]) -> StoreResult<()> {
        self.initialize().await?;
        if let Err(error) = self.load_scripts(scripts).await {
            self.shutdown().await;
            return Err(error);
        }
        Ok(())
    }

    /// Loads scripts on every primary, so the first call needs no fallback.
    async fn load_scripts(&self, scripts: &[&Script]) -> StoreResult<()> {
        for script in scripts {
            let Some(lua) = script.lua() else { continue };
            self.run(
                "SCRIPT LOAD",
                "",
                self.inner
                    .client
                    .script_load_cluster::<Value, _>(lua.clone()),
            )
            .await?;
        }
        Ok(())
    }

    /// Runs a script on one key: `EVALSHA`, and on `NOSCRIPT` (a restarted or failed-over
    /// server has an empty script cache) `EVAL`, which also caches it again.
    pub(crate) async fn eval(
        &self,
        operation: &'static str,
        script: &Script,
        key: &str,
        args: &[Value],
    ) -> StoreResult<Value> {
        self.eval_keys(operation, script, &[key], args).await
    }

    /// Runs a script on several keys, as [`Self::eval`] does on one. On a cluster the keys must
    /// share a slot (a `{hash tag}`); the script is routed by the first key.
    pub(crate) async fn eval_keys(
        &self,
        operation: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[Value],
    ) -> StoreResult<Value> {
        let label = keys.first().copied().unwrap_or("");
        let full_keys: Vec<Bytes> = keys.iter().map(|k| self.key(k)).collect();
        // fred routes a custom command by a fixed slot only (not by an argument offset), and
        // would otherwise hash the script's SHA.
        let route = match full_keys.first() {
            Some(first) => self.route(first),
            None => ClusterHash::Random,
        };
        let evalsha = CustomCommand::new_static("EVALSHA", route.clone(), false);
        let call = script_call(script.sha1().clone(), &full_keys, args);
        match self
            .run(
                operation,
                label,
                self.ops().custom::<Value, Value>(evalsha, call),
            )
            .await
        {
            Err(StoreError::Backend { reason, .. }) if reason.starts_with("NOSCRIPT") => {
                let Some(lua) = script.lua() else {
                    return Err(self.error(
                        operation,
                        label,
                        &FredError::new(ErrorKind::Unknown, "script source missing"),
                    ));
                };
                let eval = CustomCommand::new_static("EVAL", route, false);
                let call = script_call(lua.clone(), &full_keys, args);
                self.run(
                    operation,
                    label,
                    self.ops().custom::<Value, Value>(eval, call),
                )
                .await
            }
            other => other,
        }
    }

    /// How a custom command on `key` is routed: by the key's slot on a cluster.
    fn route(&self, key: &[u8]) -> ClusterHash {
        if self.is_cluster() {
            ClusterHash::Custom(fred::util::redis_keyslot(key))
        } else {
            ClusterHash::FirstKey
        }
    }
}

/// `[sha or source, number of keys, keys…, args…]`.
pub(super) fn script_call(script: Str, keys: &[Bytes], args: &[Value]) -> Vec<Value> {
    let mut call = Vec::with_capacity(2 + keys.len() + args.len());
    call.push(Value::String(script));
    call.push(Value::Integer(
        i64::try_from(keys.len()).unwrap_or(i64::MAX),
    ));
    call.extend(keys.iter().cloned().map(Value::Bytes));
    call.extend(args.iter().cloned());
    call
}
