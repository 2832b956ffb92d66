//! The Redis store: Redis 7+, Valkey 7.2+ or a Redis Cluster, over one auto-pipelined `fred`
//! client that the store and the rate limiter share.
//!
//! ```no_run
//! use std::time::Duration;
//! use bytes::Bytes;
//! use crudauth_core::lifespan::Tasks;
//! use crudauth_core::limit::{Budget, RateLimiter, RedisRateLimiter};
//! use crudauth_core::store::{RedisConfig, RedisConnection, RedisStore, Store};
//!
//! # async fn run() -> Result<(), crudauth_core::StoreError> {
//! let config = RedisConfig::from_url("redis://127.0.0.1:6379")?
//!     .namespace("myapp:")
//!     .command_timeout(Duration::from_millis(500));
//! let redis = RedisConnection::new(config)?;
//! let store = RedisStore::new(redis.clone());
//! let limiter = RedisRateLimiter::new(redis); // the same client, the same namespace
//!
//! let mut tasks = Tasks::new();
//! store.initialize(&mut tasks).await?; // connects, checks Redis >= 7, loads the scripts
//! limiter.initialize(&mut tasks).await?;
//!
//! store.set("t:verify:abc", Bytes::from_static(b"{}"), Duration::from_secs(60)).await?;
//! assert!(store.take("t:verify:abc").await?.is_some()); // GETDEL: single use
//! limiter.hit("q:register:203.0.113.7", Budget::new(5, Duration::from_secs(3600))).await?;
//!
//! limiter.shutdown().await;
//! store.shutdown().await; // the last user closes the shared connection
//! # Ok(()) }
//! ```
//!
//! Every key is written as the namespace prefix (default `crudauth:`) followed by the key the
//! caller gave. Every operation is one command or one Lua script on one key, so each works on a
//! Redis Cluster unchanged. Every command runs under the command timeout (default 1 s); while
//! the connection is down, operations fail at once with [`StoreError::Unreachable`], and the
//! client reconnects by itself with exponential backoff.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::bytes_utils::Str;
use fred::clients::{Client, WithOptions};
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::{
    ClientLike, EventInterface, KeysInterface, LuaInterface, SortedSetsInterface,
};
use fred::types::config::{Config, Options, ReconnectPolicy, ServerConfig, UnresponsiveConfig};
use fred::types::scripts::Script;
use fred::types::{
    Builder, ClusterHash, ConnectHandle, CustomCommand, Expiration, SetOptions, Value,
};
use tokio::sync::broadcast::error::TryRecvError;

use super::{BackendKind, IndexEntry, Store, Swap};
use crate::error::{redact_url, StoreError, StoreResult};
use crate::lifespan::Tasks;

/// How long a command may wait for its answer unless configured otherwise.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// How long connecting may take unless configured otherwise.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first and the longest pause between reconnection attempts.
const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(50);
/// Half a second at most, so a Redis that returns is in use again within a second (F1 of the
/// checklist); a refused connect to a server that is down costs next to nothing.
const DEFAULT_RECONNECT_MAX: Duration = Duration::from_millis(500);
/// Commands that may wait for the connection at once before callers are refused outright.
const DEFAULT_MAX_QUEUED: usize = 16_384;
/// How often `initialize()` looks at the connection while it waits for it.
const CONNECT_POLL: Duration = Duration::from_millis(50);
/// What a Redis URL looks like, for the errors about one that is not.
const URL_HINT: &str =
    "expected redis://[:password@]host[:port][/db] or redis-cluster://host:port?node=host:port";
/// Longest TTL sent to Redis (100 years), so `now + ttl` never overflows on the server.
const MAX_TTL_MS: i64 = 100 * 365 * 24 * 3_600 * 1_000;

/// `INCRBY` plus a first-touch expiry, atomically. A value that is not an integer is refused
/// (and left as it is) with a `WRONGKIND` error.
const INCR_LUA: &str = r"
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
const COMPARE_AND_SWAP_LUA: &str = r"
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
const INDEX_ADD_LUA: &str = r"
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

/// Where to connect and how to behave: the URL, the namespace, timeouts and reconnection.
///
/// ```
/// use std::time::Duration;
/// use crudauth_core::store::RedisConfig;
///
/// let config = RedisConfig::from_url("redis://:hunter2@cache.internal:6379/0")?
///     .namespace("shop:")
///     .command_timeout(Duration::from_millis(250))
///     .reconnect_backoff(Duration::from_millis(20), Duration::from_secs(5));
/// assert_eq!(config.url(), "redis://***@cache.internal:6379/0"); // never the password
///
/// let cluster = RedisConfig::cluster(["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"])?;
/// assert!(cluster.is_cluster());
/// # Ok::<(), crudauth_core::StoreError>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    fred: Config,
    display_url: String,
    namespace: String,
    command_timeout: Duration,
    connect_timeout: Duration,
    reconnect_min: Duration,
    reconnect_max: Duration,
    max_queued_commands: usize,
    tcp_nodelay: bool,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.display_url)
            .field("namespace", &self.namespace)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("max_queued_commands", &self.max_queued_commands)
            .field("tcp_nodelay", &self.tcp_nodelay)
            .finish()
    }
}

impl RedisConfig {
    /// Reads a Redis URL: `redis://[[user]:password@]host[:port][/db]`, `rediss://…` (with a TLS
    /// feature of `fred`), `valkey://…`, or `redis-cluster://host:port?node=host:port&…` for a
    /// Redis Cluster.
    pub fn from_url(url: &str) -> StoreResult<Self> {
        let display_url = redact_url(url);
        const SCHEMES: [&str; 6] = [
            "redis://",
            "rediss://",
            "valkey://",
            "valkeys://",
            "redis-cluster://",
            "redis-sentinel://",
        ];
        if !SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
            return Err(StoreError::Config(format!(
                "`{display_url}` is not a Redis URL; {URL_HINT}"
            )));
        }
        let fred = Config::from_url(url).map_err(|e| {
            StoreError::Config(format!(
                "`{display_url}` is not a usable Redis URL ({}); {URL_HINT}",
                e.details()
            ))
        })?;
        Ok(Self {
            fred,
            display_url,
            namespace: "crudauth:".to_owned(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reconnect_min: DEFAULT_RECONNECT_MIN,
            reconnect_max: DEFAULT_RECONNECT_MAX,
            max_queued_commands: DEFAULT_MAX_QUEUED,
            tcp_nodelay: false,
        })
    }

    /// A Redis Cluster reached through any of `nodes` (`host:port` each); the client discovers
    /// the rest. For a password, use [`RedisConfig::from_url`] with
    /// `redis-cluster://:password@host:port?node=host:port`.
    pub fn cluster<I, S>(nodes: I) -> StoreResult<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes: Vec<String> = nodes.into_iter().map(|n| n.as_ref().to_owned()).collect();
        let Some((first, rest)) = nodes.split_first() else {
            return Err(StoreError::Config(
                "a Redis Cluster needs at least one node address (host:port)".to_owned(),
            ));
        };
        let mut url = format!("redis-cluster://{first}");
        for (i, node) in rest.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str("node=");
            url.push_str(node);
        }
        let config = Self::from_url(&url)?;
        Ok(config)
    }

    /// The prefix put before every key (default `crudauth:`), so several apps can share one
    /// Redis database.
    pub fn namespace(mut self, prefix: impl Into<String>) -> Self {
        self.namespace = prefix.into();
        self
    }

    /// How long one command may wait for its answer before it fails with
    /// [`StoreError::Timeout`] (default 1 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How long `initialize()` may take to connect (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The pauses between reconnection attempts after the connection is lost: `first`,
    /// doubling up to `longest` (defaults 50 ms and 2 s). The client never gives up.
    pub fn reconnect_backoff(mut self, first: Duration, longest: Duration) -> Self {
        self.reconnect_min = first;
        self.reconnect_max = longest.max(first);
        self
    }

    /// How many commands may queue for the connection before further ones are refused at once
    /// (default 16 384); bounds memory while Redis is slow.
    pub fn max_queued_commands(mut self, commands: usize) -> Self {
        self.max_queued_commands = commands.max(1);
        self
    }

    /// Whether each command leaves on its own packet at once (`TCP_NODELAY`; default off, as
    /// fred leaves it).
    ///
    /// Off, the kernel holds a small write back while an earlier one is unanswered and sends
    /// them together when the answer arrives, so under load the commands of many requests
    /// share packets: fewer packets and wake-ups on both sides (on loopback, 3 µs less CPU per
    /// authenticated request and 15 % more throughput), at no cost when requests come one at a
    /// time. The price is that a command issued while another is in flight can wait up to one
    /// round trip to Redis. Every command crudauth sends is far smaller than one packet, except
    /// the first script call after Redis lost its script cache, which carries the script. Turn
    /// it on when Redis is far away and latency matters more than load.
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.tcp_nodelay = on;
        self
    }

    /// The URL with any password removed: safe to log.
    pub fn url(&self) -> &str {
        &self.display_url
    }

    /// Whether this points at a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.fred.server, ServerConfig::Clustered { .. })
    }
}

/// One shared connection to Redis (or a Redis Cluster): a single auto-pipelined `fred` client,
/// cheap to clone. Build the store and the rate limiter over clones of it, so a process keeps
/// one client for both.
///
/// The connection is opened by the first `initialize()` of any of its users and closed by the
/// last `shutdown()`.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Shared>,
}

struct Shared {
    /// The client, for connecting, closing and checks.
    client: Client,
    /// The same client with per-command options: fail at once while disconnected.
    ops: WithOptions<Client>,
    display_url: String,
    namespace: String,
    command_timeout: Duration,
    connect_timeout: Duration,
    connected_once: AtomicBool,
    life: tokio::sync::Mutex<Lifecycle>,
}

#[derive(Default)]
struct Lifecycle {
    users: usize,
    task: Option<ConnectHandle>,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("url", &self.inner.display_url)
            .field("namespace", &self.inner.namespace)
            .field("cluster", &self.is_cluster())
            .field("command_timeout", &self.inner.command_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// Builds the client; nothing is sent until `initialize()`.
    pub fn new(config: RedisConfig) -> StoreResult<Self> {
        if config.command_timeout.is_zero() || config.connect_timeout.is_zero() {
            return Err(StoreError::Config(format!(
                "Redis at {}: the command and connect timeouts must be above zero",
                config.display_url
            )));
        }
        let mut fred = config.fred;
        // The first connection retries under the reconnect policy too; `initialize()` bounds
        // the wait with the connect timeout.
        fred.fail_fast = false;
        let mut builder = Builder::from_config(fred);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = config.connect_timeout;
                c.internal_command_timeout = config.connect_timeout;
                // Every data command is sent fail-fast (see `ops`), so none is ever replayed
                // after a reconnect (increments and scripts are not idempotent); the attempts
                // left are for following MOVED/ASK redirections on a cluster.
                c.max_command_attempts = 3;
                c.max_command_buffer_len = config.max_queued_commands;
                // A connection that stops answering (a half-open socket) is dropped and
                // rebuilt instead of timing out every command forever.
                c.unresponsive = UnresponsiveConfig {
                    max_timeout: Some((config.command_timeout * 3).max(Duration::from_secs(3))),
                    interval: Duration::from_secs(1),
                };
                c.tcp.nodelay = Some(config.tcp_nodelay);
            })
            .with_performance_config(|p| {
                p.default_command_timeout = config.command_timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(
                0,
                millis_u32(config.reconnect_min),
                millis_u32(config.reconnect_max),
                2,
            ));
        let client = builder.build().map_err(|e| {
            StoreError::Config(format!(
                "Redis at {}: cannot build the client: {}",
                config.display_url,
                e.details()
            ))
        })?;
        let ops = client.with_options(&Options {
            fail_fast: true,
            ..Options::default()
        });
        Ok(Self {
            inner: Arc::new(Shared {
                client,
                ops,
                display_url: config.display_url,
                namespace: config.namespace,
                command_timeout: config.command_timeout,
                connect_timeout: config.connect_timeout,
                connected_once: AtomicBool::new(false),
                life: tokio::sync::Mutex::new(Lifecycle::default()),
            }),
        })
    }

    /// Connects (for the first user), checks the server, and counts one more user. Fails when
    /// Redis cannot be reached within the connect timeout, or is older than 7.0.
    pub async fn initialize(&self) -> StoreResult<()> {
        let mut life = self.inner.life.lock().await;
        if life.users == 0 {
            life.task = Some(self.connect().await?);
        }
        life.users += 1;
        Ok(())
    }

    /// Counts one user less; the last one closes the connection.
    pub async fn shutdown(&self) {
        let mut life = self.inner.life.lock().await;
        if life.users == 0 {
            return;
        }
        life.users -= 1;
        if life.users > 0 {
            return;
        }
        let inner = &self.inner;
        if let Err(error) = tokio::time::timeout(inner.command_timeout, inner.client.quit()).await {
            tracing::debug!(url = %inner.display_url, %error, "Redis QUIT did not finish");
        }
        if let Some(task) = life.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(inner.command_timeout, task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// The underlying `fred` client, for commands of your own. Keys you write there do not get
    /// the namespace prefix.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The URL, password removed.
    pub fn url(&self) -> &str {
        &self.inner.display_url
    }

    /// How long connecting may take.
    pub(crate) fn connect_timeout(&self) -> std::time::Duration {
        self.inner.connect_timeout
    }

    /// The prefix put before every key.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Whether this is a Redis Cluster connection.
    pub fn is_cluster(&self) -> bool {
        // The client keeps the configuration it was built from.
        self.inner.client.is_clustered()
    }

    /// Starts the connection task and waits, at most the connect timeout, until it is
    /// connected; meanwhile the task retries with the reconnect policy, so a Redis that comes
    /// up a moment after the app is still found.
    ///
    /// On failure the task is stopped and awaited before returning: fred 10.1 leaves a stale
    /// command counter behind when a failed `init()` is retried on the same client, after which
    /// plain commands are never flushed; a task that is fully gone avoids that path.
    async fn connect(&self) -> StoreResult<ConnectHandle> {
        let inner = &self.inner;
        let mut errors = inner.client.error_rx();
        let task = inner.client.connect();
        let deadline = tokio::time::Instant::now() + inner.connect_timeout;
        let mut failure: Option<FredError> = None;
        while !inner.client.is_connected() {
            let now = tokio::time::Instant::now();
            if now >= deadline || task.is_finished() {
                break;
            }
            let wait = (deadline - now).min(CONNECT_POLL);
            if let Ok(Err(error)) =
                tokio::time::timeout(wait, inner.client.wait_for_connect()).await
            {
                failure = Some(error);
                break;
            }
        }
        if !inner.client.is_connected() {
            task.abort();
            if let Ok(Err(error)) = task.await {
                failure = Some(error);
            }
            // Otherwise the last failed attempt says why ("connection refused", …).
            let mut last_attempt = None;
            loop {
                match errors.try_recv() {
                    Ok((error, _)) if !error.is_canceled() => last_attempt = Some(error),
                    Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
            let failure = failure.or(last_attempt);
            return Err(self.connect_error(failure));
        }
        drop(errors);
        inner.connected_once.store(true, Ordering::Relaxed);
        if let Err(error) = self.check_server().await {
            let _ = tokio::time::timeout(inner.command_timeout, inner.client.quit()).await;
            task.abort();
            let _ = task.await;
            return Err(error);
        }
        Ok(task)
    }

    fn connect_error(&self, failure: Option<FredError>) -> StoreError {
        let url = self.inner.display_url.clone();
        match failure {
            Some(error) if matches!(error.kind(), ErrorKind::Config | ErrorKind::Url) => {
                StoreError::Config(format!(
                    "Redis at {url} cannot be used as configured: {}",
                    error.details()
                ))
            }
            Some(error) => StoreError::Unreachable {
                url,
                reason: describe(&error),
            },
            None => StoreError::Unreachable {
                url,
                reason: format!("no connection within {:?}", self.inner.connect_timeout),
            },
        }
    }

    /// PING, then `EXPIRE … NX`, which only Redis 7 (Valkey 7.2) and newer accept.
    async fn check_server(&self) -> StoreResult<()> {
        let inner = &self.inner;
        self.run("PING", "", inner.client.ping::<Value>(None))
            .await?;
        let probe = self.key("redis-version-check");
        let probe_cmd = CustomCommand::new_static("EXPIRE", ClusterHash::FirstKey, false);
        let args = vec![
            Value::Bytes(probe),
            Value::Integer(1),
            Value::from_static_str("NX"),
        ];
        match self
            .run(
                "EXPIRE NX",
                "",
                inner.client.custom::<Value, Value>(probe_cmd, args),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::Backend { reason, .. }) => Err(StoreError::Config(format!(
                "Redis at {} is older than 7.0: crudauth needs Redis 7.0+ or Valkey 7.2+ \
                 (EXPIRE NX/GT, GETEX, GETDEL); the server refused EXPIRE NX ({reason}). \
                 Upgrade the Redis server.",
                inner.display_url
            ))),
            Err(other) => Err(other),
        }
    }

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

    /// The namespaced key.
    pub(crate) fn key(&self, key: &str) -> Bytes {
        let namespace = self.inner.namespace.as_bytes();
        let mut full = Vec::with_capacity(namespace.len() + key.len());
        full.extend_from_slice(namespace);
        full.extend_from_slice(key.as_bytes());
        Bytes::from(full)
    }

    /// The client every operation goes through.
    pub(crate) fn ops(&self) -> &WithOptions<Client> {
        &self.inner.ops
    }

    /// Runs one command under the timeout and maps its error.
    ///
    /// fred's command futures are large (about 5 KiB); boxed here, the futures of the store's
    /// methods stay small instead of carrying (and copying) one or two of them inline.
    pub(crate) fn run<'a, T: 'a>(
        &'a self,
        operation: &'static str,
        key: &'a str,
        command: impl Future<Output = Result<T, FredError>> + Send + 'a,
    ) -> impl Future<Output = StoreResult<T>> + Send + 'a {
        let command = Box::pin(command);
        // fred's per-command timeout (`default_command_timeout`) bounds every command.
        async move {
            command
                .await
                .map_err(|error| self.error(operation, key, &error))
        }
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

    /// A reply that is not what the command or script returns, and why.
    pub(crate) fn unexpected(&self, operation: &'static str, reason: String) -> StoreError {
        StoreError::Backend {
            url: self.inner.display_url.clone(),
            operation,
            reason,
        }
    }

    /// Maps a `fred` error to ours: what failed, where, and what to do.
    pub(crate) fn error(
        &self,
        operation: &'static str,
        key: &str,
        error: &FredError,
    ) -> StoreError {
        let details = error.details();
        if details.starts_with("WRONGTYPE") || details.starts_with("WRONGKIND") {
            return StoreError::WrongKind {
                key: key.to_owned(),
                operation,
            };
        }
        let url = self.inner.display_url.clone();
        match error.kind() {
            ErrorKind::Timeout => StoreError::Timeout {
                url,
                operation,
                timeout: self.inner.command_timeout,
            },
            ErrorKind::Canceled if !self.inner.connected_once.load(Ordering::Relaxed) => {
                StoreError::Unreachable {
                    url,
                    reason: "not connected yet (call initialize() before using the store)"
                        .to_owned(),
                }
            }
            ErrorKind::Canceled => StoreError::Unreachable {
                url,
                reason: "the connection is down; the client keeps reconnecting".to_owned(),
            },
            ErrorKind::Backpressure => StoreError::Unreachable {
                url,
                reason: "too many commands are waiting for the connection".to_owned(),
            },
            ErrorKind::IO | ErrorKind::Routing => StoreError::Unreachable {
                url,
                reason: describe(error),
            },
            // Between losing the connection and noticing it, fred reports "Failed to route
            // command" and the like: the cause is the connection, not the command.
            _ if !self.inner.client.is_connected() || details.contains("route command") => {
                StoreError::Unreachable {
                    url,
                    reason: "the connection is down; the client keeps reconnecting".to_owned(),
                }
            }
            _ => StoreError::Backend {
                url,
                operation,
                reason: details.to_owned(),
            },
        }
    }
}

/// `[sha or source, number of keys, keys…, args…]`.
fn script_call(script: Str, keys: &[Bytes], args: &[Value]) -> Vec<Value> {
    let mut call = Vec::with_capacity(2 + keys.len() + args.len());
    call.push(Value::String(script));
    call.push(Value::Integer(
        i64::try_from(keys.len()).unwrap_or(i64::MAX),
    ));
    call.extend(keys.iter().cloned().map(Value::Bytes));
    call.extend(args.iter().cloned());
    call
}

/// A client error in words: "connection refused", not "Io(Os { code: 111 })".
fn describe(error: &FredError) -> String {
    let details = error.details();
    // An I/O error's details are its Debug form: `Os { code: 111, kind: …, message: "…" }`.
    let details = match details.split_once("message: \"") {
        Some((_, rest)) => rest.split('"').next().unwrap_or(rest),
        None => details.split(" (os error").next().unwrap_or(details),
    };
    let mut chars = details.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", error.kind()).to_lowercase(),
    }
}

fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

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
/// counters and the capped per-user index are Lua scripts. See the [module docs](self) for an
/// example.
#[derive(Debug, Clone)]
pub struct RedisStore {
    redis: RedisConnection,
    scripts: Arc<StoreScripts>,
}

#[derive(Debug)]
struct StoreScripts {
    incr: Script,
    index_add: Script,
    compare_and_swap: Script,
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
fn members_with_scores(reply: Value) -> Option<Vec<IndexEntry>> {
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
fn unexpected_reply(reply: &Value) -> String {
    format!("unexpected reply {:?}", reply.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

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
