//! A [`Store`] that fails on demand, for tests that prove what a failure half-way leaves
//! behind (feature `conformance`).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use crudauth_core::store::{FaultyStore, MemoryStore, Store};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = FaultyStore::new(Arc::new(MemoryStore::new()));
//! store.fail_nth_call(2); // the second call from now fails, once
//! store.set("a", Bytes::from_static(b"1"), Duration::from_secs(60)).await.unwrap();
//! assert!(store.get("a").await.is_err());
//! assert!(store.get("a").await.unwrap().is_some());
//! # });
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{BackendKind, IndexEntry, Store, Swap};
use crate::error::{StoreError, StoreResult};
use crate::lifespan::Tasks;

/// Wraps a store and makes chosen calls fail as an unreachable backend would, before they
/// reach the wrapped store (so a failed call changed nothing).
/// Clones share the switches.
#[derive(Debug, Clone)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    calls: Arc<AtomicUsize>,
    /// The call number (as counted by `calls`) that fails; 0: none.
    fail_at: Arc<AtomicUsize>,
    /// Operations that fail every time until [`Self::heal`].
    failing: Arc<Mutex<Vec<&'static str>>>,
}

impl FaultyStore {
    /// A store that behaves as `inner` until told to fail.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            calls: Arc::new(AtomicUsize::new(0)),
            fail_at: Arc::new(AtomicUsize::new(0)),
            failing: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Makes the `n`-th call from now (1 = the next one) fail, once.
    pub fn fail_nth_call(&self, n: usize) {
        let now = self.calls.load(Ordering::SeqCst);
        self.fail_at.store(now + n.max(1), Ordering::SeqCst);
    }

    /// Makes every call of `operation` (the [`Store`] method's name, e.g. `"set"`) fail until
    /// [`Self::heal`].
    pub fn fail_operation(&self, operation: &'static str) {
        if let Ok(mut failing) = self.failing.lock() {
            failing.push(operation);
        }
    }

    /// Stops every injected failure.
    pub fn heal(&self) {
        self.fail_at.store(0, Ordering::SeqCst);
        if let Ok(mut failing) = self.failing.lock() {
            failing.clear();
        }
    }

    /// How many calls were made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn gate(&self, operation: &'static str) -> StoreResult<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let nth = self
            .fail_at
            .compare_exchange(n, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        let listed = self
            .failing
            .lock()
            .map(|f| f.contains(&operation))
            .unwrap_or(false);
        if nth || listed {
            return Err(StoreError::Unreachable {
                url: "faulty://test".to_owned(),
                reason: format!("injected failure of {operation}"),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Store for FaultyStore {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }

    async fn initialize(&self, tasks: &mut Tasks) -> StoreResult<()> {
        self.inner.initialize(tasks).await
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await;
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>> {
        self.gate("get")?;
        self.inner.get(key).await
    }

    async fn get_and_touch(&self, key: &str, ttl: Duration) -> StoreResult<Option<Bytes>> {
        self.gate("get_and_touch")?;
        self.inner.get_and_touch(key, ttl).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<()> {
        self.gate("set")?;
        self.inner.set(key, value, ttl).await
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<bool> {
        self.gate("set_if_absent")?;
        self.inner.set_if_absent(key, value, ttl).await
    }

    async fn set_if_present(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> StoreResult<bool> {
        self.gate("set_if_present")?;
        self.inner.set_if_present(key, value, ttl).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Duration>,
    ) -> StoreResult<Swap> {
        self.gate("compare_and_swap")?;
        self.inner.compare_and_swap(key, expected, new, ttl).await
    }

    async fn delete(&self, key: &str) -> StoreResult<bool> {
        self.gate("delete")?;
        self.inner.delete(key).await
    }

    async fn take(&self, key: &str) -> StoreResult<Option<Bytes>> {
        self.gate("take")?;
        self.inner.take(key).await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> StoreResult<bool> {
        self.gate("expire")?;
        self.inner.expire(key, ttl).await
    }

    async fn ttl(&self, key: &str) -> StoreResult<Option<Duration>> {
        self.gate("ttl")?;
        self.inner.ttl(key).await
    }

    async fn incr(&self, key: &str, by: i64, window: Duration) -> StoreResult<i64> {
        self.gate("incr")?;
        self.inner.incr(key, by, window).await
    }

    async fn index_add(
        &self,
        index: &str,
        member: &str,
        score: f64,
        keep: Option<usize>,
        ttl: Duration,
    ) -> StoreResult<Vec<String>> {
        self.gate("index_add")?;
        self.inner.index_add(index, member, score, keep, ttl).await
    }

    async fn index_members(&self, index: &str) -> StoreResult<Vec<IndexEntry>> {
        self.gate("index_members")?;
        self.inner.index_members(index).await
    }

    async fn index_remove(&self, index: &str, members: &[String]) -> StoreResult<usize> {
        self.gate("index_remove")?;
        self.inner.index_remove(index, members).await
    }
}
