//! The state of one sign-in between the authorization redirect and the callback: single-use,
//! stored under a keyed digest of its `state`, taken atomically.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use crudauth_core::oauth::flow::{Flow, Flows};
//! use crudauth_core::secret::SecretKey;
//! use crudauth_core::store::MemoryStore;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let flows = Flows::new(Arc::new(MemoryStore::new()), SecretKey::new([5u8; 32]).unwrap());
//! let flow = Flow::start("oidc", Some("/dashboard".into()), 1_700_000_000);
//! let state = flows.begin(&flow, Duration::from_secs(1800)).await?;
//! // The callback takes it, once.
//! assert_eq!(flows.take(state.expose()).await?.map(|f| f.provider), Some("oidc".to_owned()));
//! assert!(flows.take(state.expose()).await?.is_none());
//! # Ok::<(), crudauth_core::StoreError>(()) }).unwrap();
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::{random_token, OneTimeToken, SecretKey};
use crate::store::{encode, Store};
use crate::StoreResult;

/// Where flows live in the store.
const PREFIX: &str = "t:oauth:";
/// The longest `state` looked up (a minted one is 43 characters).
const MAX_STATE_LEN: usize = 128;

/// One sign-in in progress.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// The provider it was started with; a callback of another provider cannot finish it.
    pub provider: String,
    /// The PKCE verifier (64 random bytes, 86 characters).
    pub pkce_verifier: String,
    /// The OpenID nonce (32 random bytes).
    pub nonce: String,
    /// Where to send the browser afterwards (already checked to be a same-origin path).
    pub redirect_to: Option<String>,
    /// When it started, seconds since the epoch.
    pub started_at: u64,
}

impl Flow {
    /// A flow with a fresh PKCE verifier and nonce.
    pub fn start(provider: &str, redirect_to: Option<String>, now_secs: u64) -> Flow {
        Flow {
            provider: provider.to_owned(),
            pkce_verifier: random_token(64),
            nonce: random_token(32),
            redirect_to,
            started_at: now_secs,
        }
    }
}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flow")
            .field("provider", &self.provider)
            .field("pkce_verifier", &"***")
            .field("nonce", &"***")
            .field("redirect_to", &self.redirect_to)
            .field("started_at", &self.started_at)
            .finish()
    }
}

/// The flows in progress, in the shared store.
#[derive(Debug, Clone)]
pub struct Flows {
    store: Arc<dyn Store>,
    key: SecretKey,
}

impl Flows {
    /// Flows in `store`, their keys digested with `key`.
    pub fn new(store: Arc<dyn Store>, key: SecretKey) -> Self {
        Self { store, key }
    }

    fn store_key(&self, state: &str) -> String {
        self.key.digest_after(PREFIX, "oauth-state", state)
    }

    /// Stores `flow` for `ttl` under a fresh `state` (256 random bits), which is returned; the
    /// store keeps only its keyed digest. One store operation.
    pub async fn begin(&self, flow: &Flow, ttl: Duration) -> StoreResult<OneTimeToken> {
        let state = OneTimeToken::generate();
        self.store
            .set(&self.store_key(state.expose()), encode(flow), ttl)
            .await?;
        Ok(state)
    }

    /// Takes the flow `state` names, atomically: of any number of concurrent callbacks with
    /// it, one gets it. `None` when unknown, expired, taken, or malformed. One store
    /// operation.
    pub async fn take(&self, state: &str) -> StoreResult<Option<Flow>> {
        if state.is_empty() || state.len() > MAX_STATE_LEN {
            return Ok(None);
        }
        let Some(raw) = self.store.take(&self.store_key(state)).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&raw).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn flows() -> Flows {
        Flows::new(
            Arc::new(MemoryStore::new()),
            SecretKey::new([9u8; 32]).unwrap(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_flow_is_taken_once_under_concurrency() {
        let flows = flows();
        let flow = Flow::start("oidc", None, 1);
        let state = flows.begin(&flow, Duration::from_secs(60)).await.unwrap();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (flows, state) = (flows.clone(), state.expose().to_owned());
                tokio::spawn(async move { flows.take(&state).await.unwrap() })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            if let Some(taken) = task.await.unwrap() {
                assert_eq!(taken, flow);
                won += 1;
            }
        }
        assert_eq!(won, 1);
    }

    #[tokio::test]
    async fn unknown_and_oversized_states_find_nothing() {
        let flows = flows();
        assert!(flows.take("").await.unwrap().is_none());
        assert!(flows.take("nope").await.unwrap().is_none());
        assert!(flows.take(&"a".repeat(4096)).await.unwrap().is_none());
    }

    #[test]
    fn secrets_are_fresh_long_and_hidden() {
        let (a, b) = (Flow::start("x", None, 0), Flow::start("x", None, 0));
        assert_ne!(a.pkce_verifier, b.pkce_verifier);
        assert_ne!(a.nonce, b.nonce);
        // RFC 7636: a verifier of 43 to 128 characters.
        assert_eq!(a.pkce_verifier.len(), 86);
        assert!(a.nonce.len() >= 43);
        let shown = format!("{a:?}");
        assert!(!shown.contains(&a.pkce_verifier) && !shown.contains(&a.nonce));
    }
}
