//! The **Store** port: the shared state of every worker (sessions, one-time tokens, refresh
//! families, per-user indexes, counters), and its backends.
//!
//! Every operation is atomic on its own, on every backend; the conformance suite
//! (feature `conformance`) proves it against each one.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use crudauth_core::store::{MemoryStore, Store};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! store.set("t:verify:abc", Bytes::from_static(b"{}"), Duration::from_secs(60)).await?;
//! // Single use: exactly one caller takes it.
//! assert!(store.take("t:verify:abc").await?.is_some());
//! assert!(store.take("t:verify:abc").await?.is_none());
//! # Ok::<(), crudauth_core::StoreError>(()) }).unwrap();
//! ```

mod codec;
#[cfg(any(test, feature = "conformance"))]
mod faulty;
mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "conformance")]
pub mod conformance;

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use codec::{decode_or_discard, decode_with_or_discard, encode};
#[cfg(any(test, feature = "conformance"))]
pub use faulty::FaultyStore;
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisConfig, RedisConnection, RedisStore};

use crate::error::StoreResult;
use crate::lifespan::Tasks;

/// Which kind of backend holds the state: decides the per-process warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Process memory: not shared between workers or hosts.
    Memory,
    /// Redis, Valkey or a Redis Cluster: shared.
    Redis,
    /// Something else, shared or not; never warned about.
    Custom,
}

/// One member of a per-owner index, with its score (for sessions: last activity, in ms).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The member.
    pub member: String,
    /// Its score; members are listed in ascending score.
    pub score: f64,
}

/// What [`Store::compare_and_swap`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// The key held exactly the expected bytes; it now holds the new ones.
    Swapped,
    /// The key holds other bytes (someone wrote in between): nothing was written.
    Changed,
    /// The key is absent (deleted, expired): nothing was written, nothing resurrected.
    Absent,
}

/// Shared state with expiry. Keys are given without the namespace prefix; the backend adds it.
///
/// Implementations must keep each operation atomic (one command or one script on a networked
/// backend, never check-then-set) and must treat expired entries as absent on every read.
#[async_trait]
pub trait Store: Send + Sync + Debug + 'static {
    /// What kind of backend this is.
    fn kind(&self) -> BackendKind;

    /// Connects and checks the backend, loads what it needs, and registers its background
    /// tasks (sweepers) with `tasks`. Called once by the lifespan before serving.
    async fn initialize(&self, tasks: &mut Tasks) -> StoreResult<()>;

    /// Closes connections. Called once by the lifespan at shutdown.
    async fn shutdown(&self);

    /// Reads a value.
    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>>;

    /// Reads a value and, when present, resets its time to live — one operation.
    async fn get_and_touch(&self, key: &str, ttl: Duration) -> StoreResult<Option<Bytes>>;

    /// Writes a value, replacing any other.
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<()>;

    /// Writes a value only if the key is absent. `true` when this caller wrote it.
    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<bool>;

    /// Replaces a value only if the key is present: never brings back a deleted key. `ttl`
    /// `None` keeps the remaining time to live. `true` when it wrote.
    async fn set_if_present(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> StoreResult<bool>;

    /// Replaces the value at `key` with `new` only if it still holds exactly `expected` — one
    /// atomic step (a script on Redis), so of any number of concurrent swaps from the same
    /// value exactly one wins, and a write made in between is never overwritten. `ttl` `None`
    /// keeps the remaining time to live. Never brings back an absent key.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Duration>,
    ) -> StoreResult<Swap>;

    /// Deletes a key. `true` when something was deleted.
    async fn delete(&self, key: &str) -> StoreResult<bool>;

    /// Reads and deletes a value in one step: of any number of concurrent callers, exactly one
    /// gets it.
    async fn take(&self, key: &str) -> StoreResult<Option<Bytes>>;

    /// Resets the time to live of a present key. `true` when the key was present.
    async fn expire(&self, key: &str, ttl: Duration) -> StoreResult<bool>;

    /// The remaining time to live of a key, `None` when it is absent.
    async fn ttl(&self, key: &str) -> StoreResult<Option<Duration>>;

    /// Adds `by` to a counter and returns the new value. A counter that does not exist starts
    /// at zero and gets `window` as its time to live; later increments keep that expiry.
    async fn incr(&self, key: &str, by: i64, window: Duration) -> StoreResult<i64>;

    /// Adds (or re-scores) `member` in the index at `index`, then, when `keep` is given and the
    /// index holds more members than that, removes the lowest-scored ones and returns them —
    /// all in one step. The index lives at least `ttl` from now (its expiry only grows).
    async fn index_add(
        &self,
        index: &str,
        member: &str,
        score: f64,
        keep: Option<usize>,
        ttl: Duration,
    ) -> StoreResult<Vec<String>>;

    /// The members of an index, lowest score first.
    async fn index_members(&self, index: &str) -> StoreResult<Vec<IndexEntry>>;

    /// Removes members from an index; returns how many were there.
    async fn index_remove(&self, index: &str, members: &[String]) -> StoreResult<usize>;
}
