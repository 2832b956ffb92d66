//! A per-process memory of access tokens already verified, so a client that sends the same
//! token on every request pays for the HMAC and the claims parsing once.
//!
//! Only tokens that passed full verification are remembered, keyed by their exact text: a hit
//! is the very token verified before, so a forged or tampered token can never hit. An entry is
//! used only until the token's own `exp` (plus the configured leeway). What a token grants
//! beyond its claims (the user, active, of the same `token_version`) is checked on every
//! request regardless.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use super::codec::Claims;

const SHARDS: usize = 16;
/// Entries per shard; a full shard drops its expired entries, then everything.
const PER_SHARD: usize = 1024;

/// Hashes a token by its last 8 bytes: the end of its signature, a MAC that only verified
/// tokens (the only ones stored) carry, so nobody can aim many entries at one bucket. Keys are
/// still compared in full.
#[derive(Default)]
struct SignatureHasher(u64);

impl Hasher for SignatureHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut tail = [0u8; 8];
        let n = bytes.len().min(8);
        tail[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
        self.0 = u64::from_le_bytes(tail);
    }

    // `str`'s terminator; the text itself was already taken.
    fn write_u8(&mut self, _: u8) {}

    fn finish(&self) -> u64 {
        // Spread the base64 characters over every bit (the table uses the top ones too).
        let mixed = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        mixed ^ (mixed >> 29)
    }
}

type Table = HashMap<Box<str>, Arc<Claims>, BuildHasherDefault<SignatureHasher>>;

/// Verified access tokens by their exact text, sharded, bounded.
pub(crate) struct VerifiedTokens {
    shards: Box<[Mutex<Table>]>,
}

impl std::fmt::Debug for VerifiedTokens {
    // The keys are live bearer tokens: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifiedTokens(***)")
    }
}

impl VerifiedTokens {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Table::default())).collect(),
        }
    }

    fn shard(&self, token: &str) -> &Mutex<Table> {
        let mut h = SignatureHasher::default();
        h.write(token.as_bytes());
        &self.shards[(h.finish() >> 60) as usize % SHARDS]
    }

    /// The claims of `token` if it was verified before and `still_valid` holds for them (an
    /// entry that no longer holds is dropped).
    pub(crate) fn get(
        &self,
        token: &str,
        still_valid: impl Fn(&Claims) -> bool,
    ) -> Option<Arc<Claims>> {
        let mut map = self.shard(token).lock().ok()?;
        let claims = map.get(token)?.clone();
        if still_valid(&claims) {
            Some(claims)
        } else {
            map.remove(token);
            None
        }
    }

    /// Remembers a verified token; `still_valid` decides what a full shard may keep.
    pub(crate) fn insert(
        &self,
        token: &str,
        claims: Arc<Claims>,
        still_valid: impl Fn(&Claims) -> bool,
    ) {
        let Ok(mut map) = self.shard(token).lock() else {
            return;
        };
        if map.len() >= PER_SHARD {
            map.retain(|_, c| still_valid(c));
            if map.len() >= PER_SHARD {
                map.clear();
            }
        }
        map.insert(token.into(), claims);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::TokenType;

    fn claims(exp: u64) -> Arc<Claims> {
        Arc::new(Claims {
            sub: "1".into(),
            ver: 0,
            exp,
            iat: None,
            token_type: TokenType::Access,
            scopes: vec![],
            fam: None,
            jti: None,
        })
    }

    #[test]
    fn hits_only_the_exact_token_while_valid() {
        let v = VerifiedTokens::new();
        v.insert("a.b.signature-one", claims(10), |_| true);
        assert!(v.get("a.b.signature-one", |c| c.exp >= 10).is_some());
        assert!(
            v.get("a.c.signature-one", |_| true).is_none(),
            "same signature, other payload"
        );
        assert!(v.get("a.b.signature-one", |c| c.exp > 10).is_none());
        assert!(
            v.get("a.b.signature-one", |_| true).is_none(),
            "dropped once invalid"
        );
    }

    #[test]
    fn never_prints_a_token() {
        let v = VerifiedTokens::new();
        v.insert("h.p.a-live-token-signature", claims(10), |_| true);
        assert!(!format!("{v:?}").contains("live-token"));
    }

    #[test]
    fn stays_bounded() {
        let v = VerifiedTokens::new();
        for i in 0..(SHARDS * PER_SHARD * 3) {
            v.insert(&format!("h.p.sig{i:08}"), claims(10), |_| true);
        }
        assert!(v.len() <= SHARDS * PER_SHARD);
    }
}
