//! The login challenge: what a sign-in with two-factor due leaves in the store until the code
//! comes. Single-use, stored under a keyed digest of its token, with an attempt counter moved
//! only by compare-and-swap, bound to the account's `token_version`.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use crudauth_core::mfa::challenge::{Challenge, Challenges, Settled};
//! use crudauth_core::secret::SecretKey;
//! use crudauth_core::store::MemoryStore;
//! use crudauth_core::user::UserId;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let challenges = Challenges::new(Arc::new(MemoryStore::new()), SecretKey::new([5u8; 32]).unwrap());
//! let record = Challenge::new(UserId::Int(1), 0, "session", "203.0.113.9");
//! let token = challenges.issue(&record, Duration::from_secs(300)).await?;
//! let opened = challenges.open(token.expose()).await?.expect("live");
//! // A wrong code counts one attempt; a right one finishes the challenge, once.
//! assert_eq!(challenges.settle(&opened, false, 5).await?, Settled::Counted(1));
//! let opened = challenges.open(token.expose()).await?.expect("still live");
//! assert_eq!(challenges.settle(&opened, true, 5).await?, Settled::Finished);
//! assert!(challenges.open(token.expose()).await?.is_none(), "single use");
//! # Ok::<(), crudauth_core::StoreError>(()) }).unwrap();
//! ```
//!
//! A verification costs two store operations: the read ([`Challenges::open`]) and one
//! compare-and-swap ([`Challenges::settle`]) that either counts the attempt or marks the
//! challenge used. Concurrent verifications of one challenge serialise on that swap: of any
//! number of right codes exactly one finishes it, and no more than the attempt cap of wrong
//! ones is ever answered.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::StoreResult;
use crate::secret::{OneTimeToken, SecretKey};
use crate::store::{encode, Store, Swap};
use crate::user::UserId;

/// The longest challenge text looked up.
const MAX_TOKEN_LEN: usize = 256;
const PREFIX: &str = "t:mfa:";

/// What a challenge carries from the password step to its completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Challenge {
    /// The account.
    pub user_id: UserId,
    /// The account's `token_version` at the password step: a password change voids it.
    pub token_version: i64,
    /// The transport that finishes the sign-in (`session`, `bearer`).
    pub transport: String,
    /// The caller's address at the password step, counted by the login lockout.
    pub ip: String,
    /// Whether the account must enrol first (two-factor required, none set up): the code must
    /// then come from the pending secret.
    #[serde(default)]
    pub setup: bool,
    /// Session transport: a remember-me session.
    #[serde(default)]
    pub remember_me: bool,
    /// Bearer transport: the scopes asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// How the sign-in began (`password`, `oauth`).
    #[serde(default = "password")]
    pub login_type: String,
    /// The OAuth provider, for OAuth sign-ins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Where to send the browser once it is finished (OAuth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_to: Option<String>,
    /// Wrong codes so far.
    #[serde(default)]
    pub attempts: u32,
    /// Finished already.
    #[serde(default)]
    pub used: bool,
}

fn password() -> String {
    "password".to_owned()
}

impl Challenge {
    /// A challenge for a password sign-in of `user_id` through `transport`, from `ip`.
    pub fn new(
        user_id: UserId,
        token_version: i64,
        transport: impl Into<String>,
        ip: impl Into<String>,
    ) -> Self {
        Self {
            user_id,
            token_version,
            transport: transport.into(),
            ip: ip.into(),
            setup: false,
            remember_me: false,
            scopes: Vec::new(),
            login_type: password(),
            provider: None,
            redirect_to: None,
            attempts: 0,
            used: false,
        }
    }
}

/// A challenge read back from the store.
#[derive(Debug, Clone)]
pub struct Opened {
    key: String,
    raw: Bytes,
    /// What it carries.
    pub challenge: Challenge,
}

/// What [`Challenges::settle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// A wrong code was counted; the attempts so far.
    Counted(u32),
    /// The challenge is finished: this caller completes the sign-in.
    Finished,
    /// The challenge is used, expired, or out of attempts: nothing was written.
    Spent,
}

/// Issues and settles login challenges in a [`Store`].
#[derive(Debug, Clone)]
pub struct Challenges {
    store: Arc<dyn Store>,
    key: SecretKey,
}

impl Challenges {
    /// Challenges in `store`, their keys digested with `key`.
    pub fn new(store: Arc<dyn Store>, key: SecretKey) -> Self {
        Self { store, key }
    }

    fn store_key(&self, token: &str) -> String {
        self.key.digest_after(PREFIX, "mfa-challenge", token)
    }

    /// Stores `challenge` for `ttl` under a fresh token, which is returned (the store keeps
    /// only its keyed digest).
    pub async fn issue(&self, challenge: &Challenge, ttl: Duration) -> StoreResult<OneTimeToken> {
        let token = OneTimeToken::generate();
        self.store
            .set(&self.store_key(token.expose()), encode(challenge), ttl)
            .await?;
        Ok(token)
    }

    /// The live challenge `text` names: `None` when unknown, expired, used, or malformed.
    /// Changes nothing.
    pub async fn open(&self, text: &str) -> StoreResult<Option<Opened>> {
        if text.is_empty() || text.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let key = self.store_key(text);
        let Some(raw) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let Ok(challenge) = serde_json::from_slice::<Challenge>(&raw) else {
            return Ok(None);
        };
        if challenge.used {
            return Ok(None);
        }
        Ok(Some(Opened {
            key,
            raw,
            challenge,
        }))
    }

    /// Settles one verification of `opened`: finishes the challenge when the code was `right`,
    /// else counts a wrong attempt. A swap that finds the challenge changed re-reads it and
    /// tries again, so concurrent verifications are each counted; a challenge that meanwhile
    /// finished, or has `max_attempts` wrong codes counted, is [`Settled::Spent`]. The time to
    /// live is kept.
    pub async fn settle(
        &self,
        opened: &Opened,
        right: bool,
        max_attempts: u32,
    ) -> StoreResult<Settled> {
        let mut current = opened.clone();
        loop {
            if current.challenge.attempts >= max_attempts {
                return Ok(Settled::Spent);
            }
            let mut next = current.challenge.clone();
            if right {
                next.used = true;
            } else {
                next.attempts += 1;
            }
            match self
                .store
                .compare_and_swap(&current.key, &current.raw, encode(&next), None)
                .await?
            {
                Swap::Swapped if right => return Ok(Settled::Finished),
                Swap::Swapped => return Ok(Settled::Counted(next.attempts)),
                Swap::Absent => return Ok(Settled::Spent),
                Swap::Changed => {}
            }
            let Some(raw) = self.store.get(&current.key).await? else {
                return Ok(Settled::Spent);
            };
            let Ok(challenge) = serde_json::from_slice::<Challenge>(&raw) else {
                return Ok(Settled::Spent);
            };
            if challenge.used {
                return Ok(Settled::Spent);
            }
            current = Opened {
                key: current.key,
                raw,
                challenge,
            };
        }
    }

    /// Gives a finished challenge back its use, one more attempt counted: the code was right
    /// but its step or recovery code could not be claimed (a replay). Best effort.
    pub async fn reopen(&self, opened: &Opened) -> StoreResult<()> {
        let finished = Challenge {
            used: true,
            ..opened.challenge.clone()
        };
        let counted = Challenge {
            attempts: opened.challenge.attempts + 1,
            ..opened.challenge.clone()
        };
        self.store
            .compare_and_swap(&opened.key, &encode(&finished), encode(&counted), None)
            .await?;
        Ok(())
    }

    /// Deletes the challenge.
    pub async fn discard(&self, opened: &Opened) -> StoreResult<()> {
        self.store.delete(&opened.key).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn challenges() -> Challenges {
        Challenges::new(
            Arc::new(MemoryStore::new()),
            SecretKey::new([5u8; 32]).unwrap(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_many_right_codes_at_once_exactly_one_finishes() {
        let c = challenges();
        let record = Challenge::new(UserId::Int(1), 0, "session", "203.0.113.9");
        let token = c.issue(&record, Duration::from_secs(300)).await.unwrap();
        let opened = c.open(token.expose()).await.unwrap().unwrap();
        let racers: Vec<_> = (0..20)
            .map(|_| {
                let (c, o) = (c.clone(), opened.clone());
                tokio::spawn(async move { c.settle(&o, true, 5).await.unwrap() })
            })
            .collect();
        let mut finished = 0;
        for r in racers {
            if r.await.unwrap() == Settled::Finished {
                finished += 1;
            }
        }
        assert_eq!(finished, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_wrong_codes_are_each_counted() {
        let c = challenges();
        let record = Challenge::new(UserId::Int(1), 0, "session", "203.0.113.9");
        let token = c.issue(&record, Duration::from_secs(300)).await.unwrap();
        let opened = c.open(token.expose()).await.unwrap().unwrap();
        let racers: Vec<_> = (0..20)
            .map(|_| {
                let (c, o) = (c.clone(), opened.clone());
                tokio::spawn(async move { c.settle(&o, false, 5).await.unwrap() })
            })
            .collect();
        let mut counts = Vec::new();
        let mut spent = 0;
        for r in racers {
            match r.await.unwrap() {
                Settled::Counted(n) => counts.push(n),
                Settled::Spent => spent += 1,
                Settled::Finished => panic!("a wrong code finished the challenge"),
            }
        }
        counts.sort_unstable();
        assert_eq!(
            counts,
            [1, 2, 3, 4, 5],
            "each answered attempt has its own count"
        );
        assert_eq!(spent, 15, "the rest find the challenge out of attempts");
        let after = c.open(token.expose()).await.unwrap().unwrap();
        assert_eq!(after.challenge.attempts, 5);
        assert_eq!(
            c.settle(&after, true, 5).await.unwrap(),
            Settled::Spent,
            "even a right code"
        );
    }

    #[tokio::test]
    async fn a_reopened_challenge_counts_the_failed_claim() {
        let c = challenges();
        let record = Challenge::new(UserId::Int(1), 0, "bearer", "203.0.113.9");
        let token = c.issue(&record, Duration::from_secs(300)).await.unwrap();
        let opened = c.open(token.expose()).await.unwrap().unwrap();
        assert_eq!(c.settle(&opened, true, 5).await.unwrap(), Settled::Finished);
        c.reopen(&opened).await.unwrap();
        let again = c.open(token.expose()).await.unwrap().unwrap();
        assert_eq!(again.challenge.attempts, 1);
        assert!(c.open("").await.unwrap().is_none());
        assert!(c.open(&"x".repeat(300)).await.unwrap().is_none());
        assert!(c.open("unknown").await.unwrap().is_none());
    }
}
