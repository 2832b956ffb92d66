//! The Redis change feed: announcements on one pub/sub channel under the namespace, heard by
//! every worker on the same Redis (or Redis Cluster).

use std::sync::Arc;

use async_trait::async_trait;
use fred::clients::Client;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::ConnectHandle;
use tokio::sync::broadcast::error::RecvError;

use super::{decode_id, encode_id, ChangeFeed, ChangeListener};
use crate::error::{StoreError, StoreResult};
use crate::lifespan::Tasks;
use crate::store::{BackendKind, RedisConnection};
use crate::user::UserId;

/// The channel's name after the namespace prefix.
const CHANNEL: &str = "user-changed";

/// A [`ChangeFeed`] over Redis pub/sub, on the channel `{namespace}user-changed`.
///
/// Announcements go out over the shared connection (`PUBLISH`, one command per change). Each
/// worker listens on a connection of its own (a subscribed connection can do nothing else),
/// opened by `subscribe()` with the same settings; after that connection is lost and comes
/// back, the feed subscribes again and then tells the listener that everything changed, since
/// announcements made meanwhile were missed. While it is down, cached rows live out their
/// time to live as they would without a feed.
///
/// ```no_run
/// use crudauth_core::changes::RedisChangeFeed;
/// use crudauth_core::store::{RedisConfig, RedisConnection};
///
/// # fn run() -> Result<(), crudauth_core::StoreError> {
/// let redis = RedisConnection::new(RedisConfig::from_url("redis://127.0.0.1:6379")?)?;
/// let feed = RedisChangeFeed::new(redis); // share it with the store and the limiter
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisChangeFeed {
    redis: RedisConnection,
    channel: String,
    listening: Arc<tokio::sync::Mutex<Option<Listening>>>,
}

/// The subscribed connection and its connection task.
struct Listening {
    client: Client,
    task: ConnectHandle,
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listening")
    }
}

impl RedisChangeFeed {
    /// A feed over `redis` (the connection the store uses: same server, same namespace).
    pub fn new(redis: RedisConnection) -> Self {
        let channel = format!("{}{CHANNEL}", redis.namespace());
        Self {
            redis,
            channel,
            listening: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// The channel announcements travel on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    fn unreachable(&self, error: &fred::error::Error) -> StoreError {
        self.redis.error("SUBSCRIBE", "", error)
    }
}

#[async_trait]
impl ChangeFeed for RedisChangeFeed {
    fn kind(&self) -> BackendKind {
        BackendKind::Redis
    }

    async fn subscribe(
        &self,
        listener: Arc<dyn ChangeListener>,
        tasks: &mut Tasks,
    ) -> StoreResult<()> {
        // The shared connection, for publishing (the store's initialize() usually opened it).
        self.redis.initialize().await?;
        let client = self.redis.client().clone_new();
        let task = client.connect();
        let connected =
            tokio::time::timeout(self.redis.connect_timeout(), client.wait_for_connect()).await;
        let failure = match connected {
            Ok(Ok(())) => client
                .subscribe(self.channel.clone())
                .await
                .err()
                .map(|e| self.unreachable(&e)),
            Ok(Err(error)) => Some(self.unreachable(&error)),
            Err(_) => Some(StoreError::Unreachable {
                url: self.redis.url().to_owned(),
                reason: format!(
                    "no connection for the user-change subscription within {:?}",
                    self.redis.connect_timeout()
                ),
            }),
        };
        if let Some(error) = failure {
            task.abort();
            self.redis.shutdown().await;
            return Err(error);
        }
        let mut messages = client.message_rx();
        // Made after the first connection, so only later ones (reconnections) are seen.
        let mut reconnects = client.reconnect_rx();
        let (subscriber, channel) = (client.clone(), self.channel.clone());
        tasks.spawn("user change feed", async move {
            loop {
                tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) => {
                            if let Some(id) = message.value.as_bytes().and_then(decode_id) {
                                listener.user_changed(&id);
                            }
                        }
                        Err(RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "user change feed fell behind; caches flushed");
                            listener.all_changed();
                        }
                        Err(RecvError::Closed) => break,
                    },
                    reconnected = reconnects.recv() => match reconnected {
                        Ok(_) | Err(RecvError::Lagged(_)) => {
                            // Listen again first, then forget: a row cached after the flush
                            // is covered by the subscription.
                            if let Err(error) = subscriber.subscribe(channel.clone()).await {
                                tracing::warn!(%error, "user change feed could not subscribe again");
                            }
                            listener.all_changed();
                            tracing::info!("user change feed reconnected; caches flushed");
                        }
                        Err(RecvError::Closed) => break,
                    },
                }
            }
        });
        *self.listening.lock().await = Some(Listening { client, task });
        Ok(())
    }

    async fn publish(&self, id: &UserId) -> StoreResult<()> {
        let r = &self.redis;
        r.run(
            "PUBLISH",
            &self.channel,
            r.ops()
                .publish::<i64, _, _>(self.channel.clone(), encode_id(id)),
        )
        .await
        .map(|_| ())
    }

    async fn shutdown(&self) {
        let Some(listening) = self.listening.lock().await.take() else {
            return;
        };
        let timeout = self.redis.connect_timeout();
        let _ = tokio::time::timeout(timeout, listening.client.quit()).await;
        listening.task.abort();
        self.redis.shutdown().await;
    }
}
