//! The in-memory store: one process only, sharded, expiring on read, swept in the background.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hashbrown::hash_table::Entry as TableEntry;
use hashbrown::HashTable;

use super::{BackendKind, IndexEntry, Store, Swap};
use crate::clock::{self, duration_ms, Clock};
use crate::error::{StoreError, StoreResult};
use crate::lifespan::Tasks;
use crate::shard::{make_room, ShardMap, Shards};

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
    shards: Shards<Table>,
    clock: Arc<dyn Clock>,
    capacity: usize,
    sweep_every: Duration,
    /// Whether the one WARN about a full store was logged.
    warned_full: AtomicBool,
}

/// One shard of the store: entries that carry their own keys, hashed with a random key of the
/// shard's own (so an attacker cannot aim keys at one bucket).
///
/// A `HashMap<Box<str>, _>` would cost a slot of key, value and expiry (48 bytes) and two
/// allocations an entry; here a slot is the entry's one pointer (16 bytes). At a million
/// sessions (two entries each, in tables about half full after their last doubling) that
/// measured 150 bytes a session less (`session-memory`: 622 → 472).
#[derive(Default)]
struct Table {
    entries: HashTable<Entry>,
    hasher: RandomState,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({} entries)", self.entries.len())
    }
}

impl Table {
    /// `key`'s hash, and the test that picks its entry out of those sharing the hash.
    fn probe<'k>(&self, key: &'k [u8]) -> (u64, impl Fn(&Entry) -> bool + 'k) {
        (self.hasher.hash_one(key), move |e: &Entry| e.key() == key)
    }

    fn find(&mut self, key: &str) -> Option<&mut Entry> {
        let (hash, is_key) = self.probe(key.as_bytes());
        self.entries.find_mut(hash, is_key)
    }

    fn contains(&self, key: &str) -> bool {
        let (hash, is_key) = self.probe(key.as_bytes());
        self.entries.find(hash, is_key).is_some()
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let (hash, is_key) = self.probe(key.as_bytes());
        let found = self.entries.find_entry(hash, is_key);
        found.ok().map(|e| e.remove().0)
    }

    /// Puts `entry` in, replacing the one with the same key.
    fn insert(&mut self, entry: Entry) -> &mut Entry {
        match self.slot(entry.key()) {
            TableEntry::Occupied(mut occupied) => {
                *occupied.get_mut() = entry;
                occupied.into_mut()
            }
            TableEntry::Vacant(vacant) => vacant.insert(entry).into_mut(),
        }
    }

    /// The entry at `key`, or `make()` put in its place.
    fn find_or_insert(&mut self, key: &str, make: impl FnOnce() -> Entry) -> &mut Entry {
        match self.slot(key.as_bytes()) {
            TableEntry::Occupied(occupied) => occupied.into_mut(),
            TableEntry::Vacant(vacant) => vacant.insert(make()).into_mut(),
        }
    }

    fn slot(&mut self, key: &[u8]) -> TableEntry<'_, Entry> {
        let (hash, is_key) = self.probe(key);
        let Self { entries, hasher } = self;
        entries.entry(hash, is_key, |e| hasher.hash_one(e.key()))
    }
}

impl ShardMap for Table {
    type Value = Entry;
    fn len(&self) -> usize {
        self.entries.len()
    }
    fn values(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
    fn retain_values(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.entries.retain(|e| keep(e));
    }
}

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Bytes,
    /// An `i64`, little-endian.
    Counter,
    /// See [`packed`].
    Index,
}

/// An entry in one allocation: expiry (ms, `u64`), kind (`u8`), key length (`u32`), key,
/// value. A read copies the value out (some tens of nanoseconds for a session record).
struct Entry(Box<[u8]>);

const KEY_AT: usize = 13;

impl Entry {
    fn new(key: &str, kind: Kind, expires_at: u64, value: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(KEY_AT + key.len() + value.len());
        bytes.extend_from_slice(&expires_at.to_le_bytes());
        bytes.push(kind as u8);
        // A key longer than u32::MAX bytes cannot be held in memory alongside anything else.
        bytes.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
        bytes.extend_from_slice(key.as_bytes());
        bytes.extend_from_slice(value);
        Self(bytes.into_boxed_slice())
    }

    fn expires_at(&self) -> u64 {
        let mut at = [0u8; 8];
        at.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(at)
    }

    fn set_expires_at(&mut self, at: u64) {
        self.0[..8].copy_from_slice(&at.to_le_bytes());
    }

    fn kind(&self) -> Kind {
        match self.0[8] {
            0 => Kind::Bytes,
            1 => Kind::Counter,
            _ => Kind::Index,
        }
    }

    fn value_at(&self) -> usize {
        let mut len = [0u8; 4];
        len.copy_from_slice(&self.0[9..KEY_AT]);
        KEY_AT + u32::from_le_bytes(len) as usize
    }

    fn key(&self) -> &[u8] {
        &self.0[KEY_AT..self.value_at()]
    }

    /// The value if the entry is of kind `kind`.
    fn value(&self, kind: Kind) -> Option<&[u8]> {
        (self.kind() == kind).then(|| &self.0[self.value_at()..])
    }

    /// The counter, if the entry is one.
    fn counter(&self) -> Option<i64> {
        let mut n = [0u8; 8];
        n.copy_from_slice(self.value(Kind::Counter)?.get(..8)?);
        Some(i64::from_le_bytes(n))
    }

    /// Gives the entry a new kind and value, keeping its key and expiry.
    fn replace(&mut self, kind: Kind, value: &[u8]) {
        let at = self.value_at();
        if self.kind() == kind && self.0.len() - at == value.len() {
            self.0[at..].copy_from_slice(value);
            return;
        }
        let mut bytes = Vec::with_capacity(at + value.len());
        bytes.extend_from_slice(&self.0[..at]);
        bytes[8] = kind as u8;
        bytes.extend_from_slice(value);
        self.0 = bytes.into_boxed_slice();
    }
}

/// Values may be session records (with their CSRF nonce) or token records: `Debug` says what
/// kind and how big, never what, nor the key (a session's key is its cookie's HMAC).
impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.0.len() - self.value_at();
        match self.kind() {
            Kind::Bytes => write!(f, "Bytes({value} bytes)"),
            Kind::Counter => write!(f, "Counter({:?})", self.counter()),
            Kind::Index => write!(
                f,
                "Index({} members)",
                self.value(Kind::Index)
                    .map_or(0, |m| packed::read(m).count())
            ),
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
        self.inner.shards.retain(|entry| entry.expires_at() > now)
    }

    /// Runs `f` on the live entry at `key`, its shard locked, with the time now; `None` when
    /// absent. One hash lookup on the hot path (reads); an expired entry is removed.
    fn with_live<R>(&self, key: &str, f: impl FnOnce(&mut Entry, u64) -> R) -> Option<R> {
        let now = self.inner.clock.now_millis();
        let mut table = self.inner.shards.lock(key);
        match table.find(key) {
            Some(entry) if entry.expires_at() > now => Some(f(entry, now)),
            Some(_) => {
                table.remove(key);
                None
            }
            None => None,
        }
    }

    /// Runs `f` on the slot of `key`, its shard locked; an expired entry is removed first.
    fn slot<R>(&self, key: &str, f: impl FnOnce(&mut Slot<'_>) -> R) -> R {
        let now = self.inner.clock.now_millis();
        let mut map = self.inner.shards.lock(key);
        if map.find(key).is_some_and(|e| e.expires_at() <= now) {
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
    map: &'a mut Table,
    key: &'a str,
    now: u64,
    per_shard: usize,
    store: &'a Inner,
}

impl Slot<'_> {
    fn live(&mut self) -> Option<&mut Entry> {
        self.map.find(self.key)
    }

    fn remove(&mut self) -> Option<Entry> {
        self.map.remove(self.key)
    }

    /// Puts back an entry taken by [`Self::remove`].
    fn restore(&mut self, entry: Entry) {
        self.map.insert(entry);
    }

    /// Before a write: a new key in a full shard first makes room (see [`MemoryStore`]).
    fn make_room(&mut self) {
        if !self.map.contains(self.key)
            && make_room(self.map, self.per_shard, self.now, Entry::expires_at)
            && !self.store.warned_full.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                max_entries = self.store.capacity,
                "crudauth: the in-memory store is full; the entries that expire soonest are \
                 evicted to make room (an evicted session signs its user out). Raise \
                 MemoryStore::max_entries or use Redis."
            );
        }
    }

    /// Writes an entry.
    fn put(&mut self, kind: Kind, value: &[u8], ttl: Duration) -> &mut Entry {
        self.make_room();
        let entry = Entry::new(self.key, kind, deadline(self.now, ttl), value);
        self.map.insert(entry)
    }

    /// The live entry, or a new one of `kind` holding `empty`.
    fn get_or_put(&mut self, kind: Kind, empty: &[u8], ttl: Duration) -> &mut Entry {
        self.make_room();
        let (key, expires_at) = (self.key, deadline(self.now, ttl));
        self.map
            .find_or_insert(key, || Entry::new(key, kind, expires_at, empty))
    }
}

/// [`Store::compare_and_swap`] under the key's shard lock: the comparison and the write are one
/// step.
fn memory_compare_and_swap(
    store: &MemoryStore,
    key: &str,
    expected: &[u8],
    new: &[u8],
    ttl: Option<Duration>,
) -> StoreResult<Swap> {
    store
        .with_live(key, |entry, now| match entry.value(Kind::Bytes) {
            Some(current) if current == expected => {
                entry.replace(Kind::Bytes, new);
                if let Some(ttl) = ttl {
                    entry.set_expires_at(deadline(now, ttl));
                }
                Ok(Swap::Swapped)
            }
            Some(_) => Ok(Swap::Changed),
            None => Err(wrong_kind(key, "compare_and_swap")),
        })
        .unwrap_or(Ok(Swap::Absent))
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
        self.with_live(key, |entry, _| {
            entry
                .value(Kind::Bytes)
                .map(Bytes::copy_from_slice)
                .ok_or_else(|| wrong_kind(key, "get"))
        })
        .transpose()
    }

    async fn get_and_touch(&self, key: &str, ttl: Duration) -> StoreResult<Option<Bytes>> {
        self.with_live(key, |entry, now| {
            let value = entry
                .value(Kind::Bytes)
                .map(Bytes::copy_from_slice)
                .ok_or_else(|| wrong_kind(key, "get_and_touch"))?;
            entry.set_expires_at(deadline(now, ttl));
            Ok(value)
        })
        .transpose()
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<()> {
        self.slot(key, |slot| {
            slot.put(Kind::Bytes, &value, ttl);
        });
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<bool> {
        Ok(self.slot(key, |slot| match slot.live() {
            Some(_) => false,
            None => {
                slot.put(Kind::Bytes, &value, ttl);
                true
            }
        }))
    }

    async fn set_if_present(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> StoreResult<bool> {
        Ok(self
            .with_live(key, |entry, now| {
                entry.replace(Kind::Bytes, &value);
                if let Some(ttl) = ttl {
                    entry.set_expires_at(deadline(now, ttl));
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
        memory_compare_and_swap(self, key, expected, &new, ttl)
    }

    async fn take(&self, key: &str) -> StoreResult<Option<Bytes>> {
        self.slot(key, |slot| {
            let Some(entry) = slot.remove() else {
                return Ok(None);
            };
            match entry.value(Kind::Bytes).map(Bytes::copy_from_slice) {
                Some(value) => Ok(Some(value)),
                None => {
                    // Not a value: left as it was, under the same lock.
                    slot.restore(entry);
                    Err(wrong_kind(key, "take"))
                }
            }
        })
    }

    async fn expire(&self, key: &str, ttl: Duration) -> StoreResult<bool> {
        Ok(self
            .with_live(key, |entry, now| entry.set_expires_at(deadline(now, ttl)))
            .is_some())
    }

    async fn ttl(&self, key: &str) -> StoreResult<Option<Duration>> {
        Ok(self.with_live(key, |entry, now| {
            Duration::from_millis(entry.expires_at() - now)
        }))
    }

    async fn incr(&self, key: &str, by: i64, window: Duration) -> StoreResult<i64> {
        self.slot(key, |slot| {
            let entry = slot.get_or_put(Kind::Counter, &0i64.to_le_bytes(), window);
            let n = entry
                .counter()
                .ok_or_else(|| wrong_kind(key, "incr"))?
                .saturating_add(by);
            entry.replace(Kind::Counter, &n.to_le_bytes());
            Ok(n)
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
            let entry = slot.get_or_put(Kind::Index, &[], ttl);
            entry.set_expires_at(entry.expires_at().max(at_least));
            let index_bytes = entry
                .value(Kind::Index)
                .ok_or_else(|| wrong_kind(index, "index_add"))?;
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
            entry.replace(Kind::Index, &rewritten);
            Ok(evicted)
        })
    }

    async fn index_members(&self, index: &str) -> StoreResult<Vec<IndexEntry>> {
        self.with_live(index, |entry, _| {
            let index_bytes = entry
                .value(Kind::Index)
                .ok_or_else(|| wrong_kind(index, "index_members"))?;
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
        })
        .transpose()
        .map(Option::unwrap_or_default)
    }

    async fn index_remove(&self, index: &str, members: &[String]) -> StoreResult<usize> {
        self.with_live(index, |entry, _| {
            let index_bytes = entry
                .value(Kind::Index)
                .ok_or_else(|| wrong_kind(index, "index_remove"))?;
            let (gone, kept): (Vec<_>, Vec<_>) =
                packed::read(index_bytes).partition(|(m, _)| members.iter().any(|gone| gone == m));
            let removed = gone.len();
            if removed > 0 {
                let rewritten = packed::write(&kept);
                entry.replace(Kind::Index, &rewritten);
            }
            Ok(removed)
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
    pub(super) fn write(members: &[(&str, f64)]) -> Vec<u8> {
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
        out
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
