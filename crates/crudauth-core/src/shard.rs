//! A sharded map: the one concurrent map behind every in-memory backend.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// `N` independently locked maps; a key always lands in the same one.
#[derive(Debug)]
pub(crate) struct Shards<V> {
    shards: Box<[Padded<Shard<V>>]>,
}

/// One locked map.
type Shard<V> = Mutex<HashMap<String, V>>;

/// One shard per 128 bytes (two cache lines, for CPUs that prefetch pairs): without it, several
/// shards' locks share a cache line and threads working on different shards still fight over it.
#[derive(Debug)]
#[repr(align(128))]
struct Padded<T>(T);

impl<V> Shards<V> {
    /// `count` shards, rounded up to a power of two.
    pub(crate) fn new(count: usize) -> Self {
        let count = count.max(1).next_power_of_two();
        Self {
            shards: (0..count)
                .map(|_| Padded(Mutex::new(HashMap::new())))
                .collect(),
        }
    }

    /// The shard that holds `key`, locked.
    ///
    /// The shard is picked with FNV-1a over 8-byte words: cheap, and an attacker who aims many
    /// keys at one shard only loses parallelism, since each map hashes with a random key of its
    /// own.
    pub(crate) fn lock(&self, key: &str) -> MutexGuard<'_, HashMap<String, V>> {
        let index = (shard_hash(key.as_bytes()) as usize) & (self.shards.len() - 1);
        lock(&self.shards[index].0)
    }

    /// Keeps only the entries for which `keep` is true, one shard at a time; returns how many
    /// were removed.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&V) -> bool) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut map = lock(&shard.0);
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

/// FNV-1a, a word at a time (keys are mostly 64-hex-digit HMACs: 8 steps instead of 64), with
/// the high bits folded down since the shard index takes the low ones.
fn shard_hash(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        hash = (hash ^ u64::from_le_bytes(w)).wrapping_mul(PRIME);
    }
    for byte in words.remainder() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(PRIME);
    }
    hash ^ (hash >> 32)
}

/// Locks a mutex; a poisoned lock (a panic elsewhere while held) is recovered, since every
/// update leaves the map consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_the_shards() {
        let shards: Shards<()> = Shards::new(64);
        let mut used = std::collections::HashSet::new();
        for i in 0..4096 {
            let key = format!("s:{i:064x}");
            used.insert((shard_hash(key.as_bytes()) as usize) & (shards.count() - 1));
        }
        assert_eq!(used.len(), 64, "every shard gets keys");
    }

    #[test]
    fn a_key_always_lands_in_the_same_shard() {
        let shards: Shards<u32> = Shards::new(8);
        shards.lock("t:verify:abc").insert("t:verify:abc".into(), 1);
        assert_eq!(shards.lock("t:verify:abc").get("t:verify:abc"), Some(&1));
    }
}
