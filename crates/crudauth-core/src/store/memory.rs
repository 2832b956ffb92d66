//! The in-memory store: one process only, sharded, expiring on read, swept in the background.

use std::collections::hash_map::Entry as MapEntry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{BackendKind, IndexEntry, Store, Swap};
use crate::clock::{self, duration_ms, Clock};
use crate::error::{StoreError, StoreResult};
use crate::lifespan::Tasks;
use crate::shard::{make_room, Map, Shards};

/// The in-memory [`Store`]: for development, tests and single-process apps.
///
/// State is per process: under several workers nothing is shared, so `initialize()` warns.
/// Entries expire on read; a sweeper task (owned by the lifespan) removes the ones nobody reads.
///
/// **Bounded.** The store holds at most about
/// [`DEFAULT_MAX_ENTRIES`](crate::limit::DEFAULT_MAX_ENTRIES) (1,000,000) entries unless
/// [`MemoryStore::max_entries`] says otherwise, spread over its 64 shards. Writing a new key
/// into a full shard first drops that shard's expired entries and then, if it is still full,
/// evicts the entries that would expire soonest (idle sessions are the likeliest), a
/// sixty-fourth of the shard at once; the first time that happens the store logs one WARN. A
/// session is two entries: its record and the user's session index.
/// ```
/// use std::time::Duration;
/// use crudauth_core::store::MemoryStore;
///
/// let store = MemoryStore::new().max_entries(100_000).sweep_every(Duration::from_secs(30));
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: Shards<Entry>,
    clock: Arc<dyn Clock>,
    capacity: usize,
    sweep_every: Duration,
    /// Whether the one WARN about a full store was logged.
    warned_full: AtomicBool,
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires_at: u64,
}

/// Held as boxed slices rather than `Bytes` or a map: at a million sessions every word of an
/// entry counts (24 bytes a value instead of 56, one allocation a value; a read copies the
/// record out, some tens of nanoseconds).
enum Value {
    Bytes(Box<[u8]>),
    Counter(i64),
    /// See [`packed`].
    Index(Box<[u8]>),
}

/// Values may be session records (with their CSRF nonce) or token records: `Debug` says what
/// kind and how big, never what.
impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Value::Counter(n) => write!(f, "Counter({n})"),
            Value::Index(members) => write!(f, "Index({} members)", packed::read(members).count()),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store with 64 shards, bounded to about 1,000,000 entries, swept every 60 s.
    pub fn new() -> Self {
        Self::build(
            clock::system(),
            crate::limit::DEFAULT_MAX_ENTRIES,
            Duration::from_secs(60),
        )
    }

    /// Uses `clock` for every expiry (tests inject a manual clock).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self::build(clock, self.inner.capacity, self.inner.sweep_every)
    }

    /// Holds at most about `entries` entries (spread over the shards; default 1,000,000):
    /// past that, a new key evicts its shard's soonest-expiring entries.
    pub fn max_entries(self, entries: usize) -> Self {
        Self::build(self.inner.clock.clone(), entries, self.inner.sweep_every)
    }

    /// The former name of [`Self::max_entries`].
    pub fn capacity(self, entries: usize) -> Self {
        self.max_entries(entries)
    }

    /// How often the sweeper removes expired entries.
    pub fn sweep_every(self, period: Duration) -> Self {
        Self::build(self.inner.clock.clone(), self.inner.capacity, period)
    }

    fn build(clock: Arc<dyn Clock>, capacity: usize, sweep_every: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: Shards::new(64),
                clock,
                capacity: capacity.max(1),
                sweep_every,
                warned_full: AtomicBool::new(false),
            }),
        }
    }

    /// How many entries the store holds, counting expired ones the sweeper has not removed yet.
    pub fn len(&self) -> usize {
        (0..self.inner.shards.count())
            .map(|i| self.inner.shards.lock_at(i).len())
            .sum()
    }

    /// Whether the store holds no entry at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every expired entry now; returns how many.
    pub fn sweep(&self) -> usize {
        let now = self.inner.clock.now_millis();
        self.inner.shards.retain(|entry| entry.expires_at > now)
    }

    /// Runs `f` on the live entry at `key`, its shard locked, with the time now; `None` when
    /// absent. One hash lookup on the hot path (reads); an expired entry is removed.
    fn with_live<R>(&self, key: &str, f: impl FnOnce(&mut Entry, u64) -> R) -> Option<R> {
        let now = self.inner.clock.now_millis();
        let mut map = self.inner.shards.lock(key);
        match map.get_mut(key) {
            Some(entry) if entry.expires_at > now => Some(f(entry, now)),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Runs `f` on the slot of `key`, its shard locked; an expired entry is removed first.
    fn slot<R>(&self, key: &str, f: impl FnOnce(&mut Slot<'_>) -> R) -> R {
        let now = self.inner.clock.now_millis();
        let mut map = self.inner.shards.lock(key);
        if map.get(key).is_some_and(|e| e.expires_at <= now) {
            map.remove(key);
        }
        let per_shard = self.inner.capacity.div_ceil(self.inner.shards.count());
        f(&mut Slot {
            map: &mut map,
            key,
            now,
            per_shard,
            store: &self.inner,
        })
    }
}

/// One key's place in a locked shard.
struct Slot<'a> {
    map: &'a mut Map<Entry>,
    key: &'a str,
    now: u64,
    per_shard: usize,
    store: &'a Inner,
}

impl Slot<'_> {
    fn live(&mut self) -> Option<&mut Entry> {
        self.map.get_mut(self.key)
    }

    /// Removes the entry, handing back its key too so it can be put back without allocating.
    fn remove(&mut self) -> Option<(Box<str>, Entry)> {
        self.map.remove_entry(self.key)
    }

    /// Puts back an entry taken by [`Self::remove`].
    fn restore(&mut self, (key, entry): (Box<str>, Entry)) {
        self.map.insert(key, entry);
    }

    /// Writes an entry; a new key in a full shard first makes room (see [`MemoryStore`]).
    fn put(&mut self, value: Value, ttl: Duration) -> StoreResult<&mut Entry> {
        if !self.map.contains_key(self.key)
            && make_room(self.map, self.per_shard, self.now, |e| e.expires_at)
            && !self.store.warned_full.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                max_entries = self.store.capacity,
                "crudauth: the in-memory store is full; the entries that expire soonest are \
                 evicted to make room (an evicted session signs its user out). Raise \
                 MemoryStore::max_entries or use Redis."
            );
        }
        let entry = Entry {
            value,
            expires_at: deadline(self.now, ttl),
        };
        Ok(match self.map.entry(self.key.into()) {
            MapEntry::Occupied(mut e) => {
                e.insert(entry);
                e.into_mut()
            }
            MapEntry::Vacant(e) => e.insert(entry),
        })
    }

    /// The live entry, or a new one holding `empty`.
    fn get_or_put(
        &mut self,
        empty: impl FnOnce() -> Value,
        ttl: Duration,
    ) -> StoreResult<&mut Entry> {
        if self.map.contains_key(self.key) {
            return self
                .map
                .get_mut(self.key)
                .ok_or_else(|| wrong_kind(self.key, "read"));
        }
        self.put(empty(), ttl)
    }
}

/// [`Store::compare_and_swap`] under the key's shard lock: the comparison and the write are one
/// step.
fn memory_compare_and_swap(
    store: &MemoryStore,
    key: &str,
    expected: &[u8],
    new: Bytes,
    ttl: Option<Duration>,
) -> StoreResult<Swap> {
    store
        .with_live(key, |entry, now| match &entry.value {
            Value::Bytes(current) if current.as_ref() == expected => {
                entry.value = Value::Bytes(boxed(new));
                if let Some(ttl) = ttl {
                    entry.expires_at = deadline(now, ttl);
                }
                Ok(Swap::Swapped)
            }
            Value::Bytes(_) => Ok(Swap::Changed),
            _ => Err(wrong_kind(key, "compare_and_swap")),
        })
        .unwrap_or(Ok(Swap::Absent))
}

/// `value` as a boxed slice: no copy when the bytes are uniquely owned and exactly sized.
fn boxed(value: Bytes) -> Box<[u8]> {
    Vec::from(value).into_boxed_slice()
}

/// When an entry written at `now` with `ttl` expires: at least a millisecond later.
fn deadline(now: u64, ttl: Duration) -> u64 {
    now.saturating_add(duration_ms(ttl)).max(now + 1)
}

fn wrong_kind(key: &str, operation: &'static str) -> StoreError {
    StoreError::WrongKind {
        key: key.to_owned(),
        operation,
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Memory
    }

    async fn initialize(&self, tasks: &mut Tasks) -> StoreResult<()> {
        let store = self.clone();
        tasks.every("memory store sweeper", self.inner.sweep_every, move || {
            let removed = store.sweep();
            tracing::trace!(removed, "memory store swept");
            std::future::ready(())
        });
        Ok(())
    }

    async fn shutdown(&self) {}

    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>> {
        self.with_live(key, |entry, _| match &entry.value {
            Value::Bytes(b) => Ok(Bytes::copy_from_slice(b)),
            _ => Err(wrong_kind(key, "get")),
        })
        .transpose()
    }

    async fn get_and_touch(&self, key: &str, ttl: Duration) -> StoreResult<Option<Bytes>> {
        self.with_live(key, |entry, now| match &entry.value {
            Value::Bytes(b) => {
                entry.expires_at = deadline(now, ttl);
                Ok(Bytes::copy_from_slice(b))
            }
            _ => Err(wrong_kind(key, "get_and_touch")),
        })
        .transpose()
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<()> {
        self.slot(key, |slot| {
            slot.put(Value::Bytes(boxed(value)), ttl).map(|_| ())
        })
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<bool> {
        self.slot(key, |slot| match slot.live() {
            Some(_) => Ok(false),
            None => slot.put(Value::Bytes(boxed(value)), ttl).map(|_| true),
        })
    }

    async fn set_if_present(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> StoreResult<bool> {
        Ok(self
            .with_live(key, |entry, now| {
                entry.value = Value::Bytes(boxed(value));
                if let Some(ttl) = ttl {
                    entry.expires_at = deadline(now, ttl);
                }
            })
            .is_some())
    }

    async fn delete(&self, key: &str) -> StoreResult<bool> {
        Ok(self.slot(key, |slot| slot.remove().is_some()))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Duration>,
    ) -> StoreResult<Swap> {
        memory_compare_and_swap(self, key, expected, new, ttl)
    }

    async fn take(&self, key: &str) -> StoreResult<Option<Bytes>> {
        self.slot(key, |slot| match slot.remove() {
            Some((
                _,
                Entry {
                    value: Value::Bytes(b),
                    ..
                },
            )) => Ok(Some(Bytes::from(b))),
            Some(other) => {
                // Not a value: left as it was, under the same lock.
                slot.restore(other);
                Err(wrong_kind(key, "take"))
            }
            None => Ok(None),
        })
    }

    async fn expire(&self, key: &str, ttl: Duration) -> StoreResult<bool> {
        Ok(self
            .with_live(key, |entry, now| entry.expires_at = deadline(now, ttl))
            .is_some())
    }

    async fn ttl(&self, key: &str) -> StoreResult<Option<Duration>> {
        Ok(self.with_live(key, |entry, now| {
            Duration::from_millis(entry.expires_at - now)
        }))
    }

    async fn incr(&self, key: &str, by: i64, window: Duration) -> StoreResult<i64> {
        self.slot(key, |slot| {
            match &mut slot.get_or_put(|| Value::Counter(0), window)?.value {
                Value::Counter(n) => {
                    *n = n.saturating_add(by);
                    Ok(*n)
                }
                _ => Err(wrong_kind(key, "incr")),
            }
        })
    }

    async fn index_add(
        &self,
        index: &str,
        member: &str,
        score: f64,
        keep: Option<usize>,
        ttl: Duration,
    ) -> StoreResult<Vec<String>> {
        self.slot(index, |slot| {
            let at_least = deadline(slot.now, ttl);
            let entry = slot.get_or_put(|| Value::Index(Box::default()), ttl)?;
            entry.expires_at = entry.expires_at.max(at_least);
            let Value::Index(index_bytes) = &mut entry.value else {
                return Err(wrong_kind(index, "index_add"));
            };
            let mut members: Vec<(&str, f64)> = packed::read(index_bytes)
                .filter(|(m, _)| *m != member)
                .collect();
            members.push((member, score));
            let excess = keep.map_or(0, |keep| members.len().saturating_sub(keep));
            let mut evicted = Vec::new();
            if excess > 0 {
                members.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
                evicted = members.drain(..excess).map(|(m, _)| m.to_owned()).collect();
            }
            let rewritten = packed::write(&members);
            *index_bytes = rewritten;
            Ok(evicted)
        })
    }

    async fn index_members(&self, index: &str) -> StoreResult<Vec<IndexEntry>> {
        self.with_live(index, |entry, _| match &entry.value {
            Value::Index(index_bytes) => {
                let mut list: Vec<IndexEntry> = packed::read(index_bytes)
                    .map(|(m, s)| IndexEntry {
                        member: m.to_owned(),
                        score: s,
                    })
                    .collect();
                list.sort_by(|a, b| {
                    a.score
                        .total_cmp(&b.score)
                        .then_with(|| a.member.cmp(&b.member))
                });
                Ok(list)
            }
            _ => Err(wrong_kind(index, "index_members")),
        })
        .transpose()
        .map(Option::unwrap_or_default)
    }

    async fn index_remove(&self, index: &str, members: &[String]) -> StoreResult<usize> {
        self.with_live(index, |entry, _| match &mut entry.value {
            Value::Index(index_bytes) => {
                let (gone, kept): (Vec<_>, Vec<_>) = packed::read(index_bytes)
                    .partition(|(m, _)| members.iter().any(|gone| gone == m));
                let removed = gone.len();
                if removed > 0 {
                    let rewritten = packed::write(&kept);
                    *index_bytes = rewritten;
                }
                Ok(removed)
            }
            _ => Err(wrong_kind(index, "index_remove")),
        })
        .transpose()
        .map(Option::unwrap_or_default)
    }
}

/// A member index packed into one allocation: for each member its score (`f64`), its length
/// (`u32`), both little-endian, then its UTF-8 bytes. A user's index holds a handful of
/// sessions, so rewriting it whole on a change costs less than a map's per-member allocations
/// cost in memory.
mod packed {
    /// The members of `bytes`, in the order written.
    pub(super) fn read(bytes: &[u8]) -> impl Iterator<Item = (&str, f64)> {
        let mut rest = bytes;
        std::iter::from_fn(move || {
            let (score, tail) = rest.split_first_chunk::<8>()?;
            let (len, tail) = tail.split_first_chunk::<4>()?;
            let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
            let member = std::str::from_utf8(tail.get(..len)?).ok()?;
            rest = &tail[len..];
            Some((member, f64::from_le_bytes(*score)))
        })
    }

    /// `members` packed. A member longer than `u32::MAX` bytes cannot reach a store.
    pub(super) fn write(members: &[(&str, f64)]) -> Box<[u8]> {
        let size = members.iter().map(|(m, _)| 12 + m.len()).sum();
        let mut out = Vec::with_capacity(size);
        for (member, score) in members {
            out.extend_from_slice(&score.to_le_bytes());
            out.extend_from_slice(
                &u32::try_from(member.len())
                    .unwrap_or(u32::MAX)
                    .to_le_bytes(),
            );
            out.extend_from_slice(member.as_bytes());
        }
        out.into_boxed_slice()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn round_trips_in_order() {
            let members = [("a", 1.5), ("", -0.0), ("sé", f64::MAX)];
            let bytes = super::write(&members);
            assert_eq!(bytes.len(), 3 * 12 + 1 + 3);
            let read: Vec<(&str, f64)> = super::read(&bytes).collect();
            assert_eq!(read, members);
            assert_eq!(
                super::read(&bytes[..bytes.len() - 1]).count(),
                2,
                "a cut member is not read"
            );
        }
    }
}
