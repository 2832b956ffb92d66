//! The Redis store: Redis 7+, Valkey 7.2+ or a Redis Cluster, over one auto-pipelined `fred`
//! client that the store and the rate limiter share.
//!
//! The example is on [`RedisStore`].
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
