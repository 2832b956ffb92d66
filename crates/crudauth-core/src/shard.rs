//! A sharded map: the one concurrent map behind every in-memory backend.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// `N` independently locked maps; a key always lands in the same one.
#[derive(Debug)]
pub(crate) struct Shards<V> {
    shards: Box<[Mutex<HashMap<String, V>>]>,
}

impl<V> Shards<V> {
    /// `count` shards, rounded up to a power of two.
    pub(crate) fn new(count: usize) -> Self {
        let count = count.max(1).next_power_of_two();
        Self {
            shards: (0..count).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// The shard that holds `key`, locked.
    ///
    /// The shard is picked with FNV-1a: cheap, and an attacker who aims many keys at one shard
    /// only loses parallelism, since each map hashes with a random key of its own.
    pub(crate) fn lock(&self, key: &str) -> MutexGuard<'_, HashMap<String, V>> {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.as_bytes() {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        let index = (hash as usize) & (self.shards.len() - 1);
        lock(&self.shards[index])
    }

    /// Keeps only the entries for which `keep` is true, one shard at a time; returns how many
    /// were removed.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&V) -> bool) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut map = lock(shard);
            let before = map.len();
            map.retain(|_, v| keep(v));
            removed += before - map.len();
        }
        removed
    }

    /// How many shards there are.
    pub(crate) fn count(&self) -> usize {
        self.shards.len()
    }
}

/// Locks a mutex; a poisoned lock (a panic elsewhere while held) is recovered, since every
/// update leaves the map consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
