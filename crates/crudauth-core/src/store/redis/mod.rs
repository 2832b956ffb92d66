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

mod config;
mod connection;
mod error;
mod scripts;
mod store;

pub use config::RedisConfig;
pub use connection::RedisConnection;
pub use store::RedisStore;
