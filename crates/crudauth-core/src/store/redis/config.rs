//! [`RedisConfig`]: where to connect and how to behave.

use std::fmt;
use std::time::Duration;

use fred::types::config::{Config, ServerConfig};

use crate::error::{redact_url, StoreError, StoreResult};

/// How long a command may wait for its answer unless configured otherwise.
pub(super) const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// How long connecting may take unless configured otherwise.
pub(super) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first and the longest pause between reconnection attempts.
pub(super) const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(50);
/// Half a second at most, so a Redis that returns is in use again within a second (F1 of the
/// checklist); a refused connect to a server that is down costs next to nothing.
pub(super) const DEFAULT_RECONNECT_MAX: Duration = Duration::from_millis(500);
/// Commands that may wait for the connection at once before callers are refused outright.
pub(super) const DEFAULT_MAX_QUEUED: usize = 16_384;
/// How often `initialize()` looks at the connection while it waits for it.
pub(super) const CONNECT_POLL: Duration = Duration::from_millis(50);
/// What a Redis URL looks like, for the errors about one that is not.
/// What a Redis URL looks like, for the errors about one that is not.
pub(super) const URL_HINT: &str =
    "expected redis://[:password@]host[:port][/db] or redis-cluster://host:port?node=host:port";
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
    pub(super) fred: Config,
    pub(super) display_url: String,
    pub(super) namespace: String,
    pub(super) command_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) reconnect_min: Duration,
    pub(super) reconnect_max: Duration,
    pub(super) max_queued_commands: usize,
    pub(super) tcp_nodelay: bool,
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

pub(super) fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
