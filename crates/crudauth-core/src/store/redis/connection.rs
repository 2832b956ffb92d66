//! [`RedisConnection`]: one shared, auto-pipelined client, its lifecycle (the first
//! `initialize()` connects, the last `shutdown()` closes) and how commands run on it.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::clients::{Client, WithOptions};
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::{ClientLike, EventInterface};
use fred::types::config::{Options, ReconnectPolicy, UnresponsiveConfig};
use fred::types::{Builder, ClusterHash, ConnectHandle, CustomCommand, Value};
use tokio::sync::broadcast::error::TryRecvError;

use super::{
    config::{millis_u32, RedisConfig, CONNECT_POLL},
    error::describe,
};
use crate::error::{StoreError, StoreResult};

/// One shared connection to Redis (or a Redis Cluster): a single auto-pipelined `fred` client,
/// cheap to clone. Build the store and the rate limiter over clones of it, so a process keeps
/// one client for both.
///
/// The connection is opened by the first `initialize()` of any of its users and closed by the
/// last `shutdown()`.
#[derive(Clone)]
pub struct RedisConnection {
    pub(super) inner: Arc<Shared>,
}

pub(super) struct Shared {
    /// The client, for connecting, closing and checks.
    pub(super) client: Client,
    /// The same client with per-command options: fail at once while disconnected.
    pub(super) ops: WithOptions<Client>,
    pub(super) display_url: String,
    pub(super) namespace: String,
    pub(super) command_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) connected_once: AtomicBool,
    pub(super) life: tokio::sync::Mutex<Lifecycle>,
}

#[derive(Default)]
pub(super) struct Lifecycle {
    pub(super) users: usize,
    pub(super) task: Option<ConnectHandle>,
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
}
