//! Single-use tokens for the recovery flows (verify an address, reset a password, change the
//! address), bound to the account state they were issued for.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use crudauth_core::secret::SecretKey;
//! use crudauth_core::store::MemoryStore;
//! use crudauth_core::token::{Claim, OneTimeTokens, TokenPurpose};
//! use crudauth_core::user::{MemoryUsers, NewUser, UserStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let users = MemoryUsers::new();
//! let ada = users.create(NewUser::new("ada@example.com", "ada", "$argon2id$…")).await.unwrap();
//! let tokens = OneTimeTokens::new(Arc::new(MemoryStore::new()), SecretKey::new([9u8; 32]).unwrap());
//! let token = tokens
//!     .issue(TokenPurpose::Verify, &ada, None, None, Duration::from_secs(3600))
//!     .await?;
//! // Confirming: open it, check it against the account as it is now, then claim it.
//! let opened = tokens.open(TokenPurpose::Verify, token.expose()).await?.unwrap();
//! assert!(tokens.matches(&opened, &ada) && !opened.is_used());
//! assert_eq!(tokens.claim(&opened).await?, Claim::Claimed);
//! // A second redemption finds it used.
//! let again = tokens.open(TokenPurpose::Verify, token.expose()).await?.unwrap();
//! assert!(again.is_used());
//! # Ok::<(), crudauth_core::StoreError>(()) }).unwrap();
//! ```
//!
//! The store keeps a keyed digest of the token, never the token, under `t:{purpose}:…`, with
//! the user id, the flow's data and a fingerprint (an HMAC) of the account state the token is
//! bound to:
//!
//! | purpose | bound to | so it dies when |
//! |---|---|---|
//! | verify | the email address | the address changes |
//! | reset | the password hash and the address | the password changes (any reset completes) |
//! | change | the password hash, the address and `token_version` | any of them changes |
//!
//! Redemption is a read ([`OneTimeTokens::open`]), the caller's checks, then one atomic claim
//! ([`OneTimeTokens::claim`], a compare-and-swap): of any number of concurrent claims of one
//! token exactly one wins. The claim leaves the record in place marked used, until the token
//! would have expired, so a replay is told apart from a token that never existed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::email::EmailKind;
use crate::error::StoreResult;
use crate::secret::{ct_eq, OneTimeToken, SecretKey};
use crate::store::{encode, Store, Swap};
use crate::user::{canonical_email, User, UserId};

/// The longest token text looked up; anything longer is not one of ours.
const MAX_TOKEN_LEN: usize = 256;

/// What a token is for. A token of one purpose never redeems for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Confirms the account's address.
    Verify,
    /// Sets a new password.
    Reset,
    /// Moves the account to a new address.
    Change,
}

impl TokenPurpose {
    /// The purpose's name (`verify`, `reset`, `change`), which prefixes its store keys.
    pub fn name(self) -> &'static str {
        match self {
            TokenPurpose::Verify => "verify",
            TokenPurpose::Reset => "reset",
            TokenPurpose::Change => "change",
        }
    }

    /// The message that carries a token of this purpose.
    pub fn email_kind(self) -> EmailKind {
        match self {
            TokenPurpose::Verify => EmailKind::VerifyEmail,
            TokenPurpose::Reset => EmailKind::ResetPassword,
            TokenPurpose::Change => EmailKind::ChangeEmail,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            TokenPurpose::Verify => "t:verify:",
            TokenPurpose::Reset => "t:reset:",
            TokenPurpose::Change => "t:change:",
        }
    }

    /// The account state this purpose binds, as one string (fields separated by NUL, which
    /// none of them can hold).
    fn state_of(self, user: &User) -> String {
        let email = user
            .email
            .as_deref()
            .map(canonical_email)
            .unwrap_or_default();
        let hash = user
            .hashed_password
            .as_ref()
            .map(|h| h.0.as_str())
            .unwrap_or("");
        match self {
            TokenPurpose::Verify => email,
            TokenPurpose::Reset => format!("{hash}\0{email}"),
            TokenPurpose::Change => format!("{hash}\0{email}\0{}", user.token_version),
        }
    }
}

/// The stored record of a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    /// The account.
    u: UserId,
    /// HMAC of the account state it is bound to.
    s: String,
    /// The new address (change only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    /// Where the frontend goes once the flow completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
    /// Claimed already.
    #[serde(default)]
    used: bool,
}

/// A token read back from the store, not yet claimed.
#[derive(Debug, Clone)]
pub struct Opened {
    purpose: TokenPurpose,
    key: String,
    raw: Bytes,
    record: TokenRecord,
}

impl Opened {
    /// The account the token was issued for.
    pub fn user_id(&self) -> &UserId {
        &self.record.u
    }

    /// The new address (change tokens).
    pub fn new_email(&self) -> Option<&str> {
        self.record.e.as_deref()
    }

    /// The same-origin path given at the request, to hand back at confirmation.
    pub fn redirect_to(&self) -> Option<&str> {
        self.record.r.as_deref()
    }

    /// Whether the token was already redeemed.
    pub fn is_used(&self) -> bool {
        self.record.used
    }

    /// The stored value once claimed: the same record, marked used.
    fn claimed_value(&self) -> Bytes {
        encode(&TokenRecord {
            used: true,
            ..self.record.clone()
        })
    }
}

/// What [`OneTimeTokens::claim`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This caller redeemed the token.
    Claimed,
    /// Someone else redeemed it first.
    AlreadyClaimed,
    /// It expired meanwhile.
    Gone,
}

/// Issues and redeems single-use tokens in a [`Store`].
#[derive(Debug, Clone)]
pub struct OneTimeTokens {
    store: Arc<dyn Store>,
    key: SecretKey,
}

impl OneTimeTokens {
    /// Tokens in `store`, their store keys and state fingerprints keyed by `key` (derive it for
    /// [`crate::secret::purpose::ONE_TIME_TOKEN`]).
    pub fn new(store: Arc<dyn Store>, key: SecretKey) -> Self {
        Self { store, key }
    }

    fn store_key(&self, purpose: TokenPurpose, token: &str) -> String {
        self.key
            .digest_after(purpose.prefix(), purpose.name(), token)
    }

    fn fingerprint(&self, purpose: TokenPurpose, user: &User) -> String {
        self.key.digest(
            "token-state",
            &format!("{}\0{}", purpose.name(), purpose.state_of(user)),
        )
    }

    /// Mints a token of `purpose` for `user` as the account is now, living `ttl`. `new_email`
    /// is the change flow's new address; `redirect_to` a same-origin path to hand back.
    pub async fn issue(
        &self,
        purpose: TokenPurpose,
        user: &User,
        new_email: Option<String>,
        redirect_to: Option<String>,
        ttl: Duration,
    ) -> StoreResult<OneTimeToken> {
        let token = OneTimeToken::generate();
        let record = TokenRecord {
            u: user.id.clone(),
            s: self.fingerprint(purpose, user),
            e: new_email,
            r: redirect_to,
            used: false,
        };
        self.store
            .set(
                &self.store_key(purpose, token.expose()),
                encode(&record),
                ttl,
            )
            .await?;
        Ok(token)
    }

    /// Reads the token `text` of `purpose`: `None` when it is unknown, expired, of another
    /// purpose or malformed. Changes nothing.
    pub async fn open(&self, purpose: TokenPurpose, text: &str) -> StoreResult<Option<Opened>> {
        if text.is_empty() || text.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let key = self.store_key(purpose, text);
        let Some(raw) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let Ok(record) = serde_json::from_slice::<TokenRecord>(&raw) else {
            return Ok(None);
        };
        Ok(Some(Opened {
            purpose,
            key,
            raw,
            record,
        }))
    }

    /// Whether `user` is still in the state `opened` was issued for (compared in constant
    /// time). A token whose account moved on is "Invalid or expired token", used or not.
    pub fn matches(&self, opened: &Opened, user: &User) -> bool {
        user.id == opened.record.u
            && ct_eq(
                opened.record.s.as_bytes(),
                self.fingerprint(opened.purpose, user).as_bytes(),
            )
    }

    /// Redeems `opened` in one atomic step: marks it used if it is still exactly as read.
    pub async fn claim(&self, opened: &Opened) -> StoreResult<Claim> {
        if opened.record.used {
            return Ok(Claim::AlreadyClaimed);
        }
        Ok(
            match self
                .store
                .compare_and_swap(&opened.key, &opened.raw, opened.claimed_value(), None)
                .await?
            {
                Swap::Swapped => Claim::Claimed,
                Swap::Changed => Claim::AlreadyClaimed,
                Swap::Absent => Claim::Gone,
            },
        )
    }

    /// Gives a claimed token back, when what it was claimed for could not be done (the new
    /// address was taken by someone else meanwhile): it redeems again until it expires.
    pub async fn release(&self, opened: &Opened) -> StoreResult<()> {
        self.store
            .compare_and_swap(
                &opened.key,
                &opened.claimed_value(),
                opened.raw.clone(),
                None,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::user::PasswordHash;

    fn ada() -> User {
        User::fixture("ada@example.com", "$argon2id$one")
    }

    fn tokens() -> (OneTimeTokens, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        let key = SecretKey::new([3u8; 32]).unwrap();
        (OneTimeTokens::new(store.clone(), key), store)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn each_purpose_binds_its_own_state() {
        let (tokens, _) = tokens();
        let user = ada();
        let mut new_hash = user.clone();
        new_hash.hashed_password = Some(PasswordHash("$argon2id$two".into()));
        let mut new_email = user.clone();
        new_email.email = Some("ada@new.example".into());
        let mut new_version = user.clone();
        new_version.token_version = 1;
        let mut verified = user.clone();
        verified.email_verified = true;
        // (purpose, [(changed account, still valid)])
        let cases = [
            (TokenPurpose::Verify, [true, false, true, true]),
            (TokenPurpose::Reset, [false, false, true, true]),
            (TokenPurpose::Change, [false, false, false, true]),
        ];
        for (purpose, expected) in cases {
            let t = tokens
                .issue(purpose, &user, None, None, HOUR)
                .await
                .unwrap();
            let opened = tokens.open(purpose, t.expose()).await.unwrap().unwrap();
            assert!(tokens.matches(&opened, &user), "{purpose:?} fresh");
            for (changed, valid) in [&new_hash, &new_email, &new_version, &verified]
                .into_iter()
                .zip(expected)
            {
                assert_eq!(tokens.matches(&opened, changed), valid, "{purpose:?}");
            }
            let mut other = user.clone();
            other.id = UserId::Int(2);
            assert!(!tokens.matches(&opened, &other), "another account");
        }
    }

    #[tokio::test]
    async fn a_token_is_stored_only_as_a_digest_and_redeems_only_for_its_purpose() {
        let (tokens, store) = tokens();
        let t = tokens
            .issue(
                TokenPurpose::Reset,
                &ada(),
                None,
                Some("/done".into()),
                HOUR,
            )
            .await
            .unwrap();
        assert!(store
            .get(&format!("t:reset:{}", t.expose()))
            .await
            .unwrap()
            .is_none());
        for other in [TokenPurpose::Verify, TokenPurpose::Change] {
            assert!(tokens.open(other, t.expose()).await.unwrap().is_none());
        }
        let opened = tokens
            .open(TokenPurpose::Reset, t.expose())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(opened.redirect_to(), Some("/done"));
        assert!(tokens
            .open(TokenPurpose::Reset, "nope")
            .await
            .unwrap()
            .is_none());
        assert!(tokens
            .open(TokenPurpose::Reset, "")
            .await
            .unwrap()
            .is_none());
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(tokens
            .open(TokenPurpose::Reset, &long)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_fifty_parallel_claims_exactly_one_wins() {
        let (tokens, _) = tokens();
        let t = tokens
            .issue(TokenPurpose::Verify, &ada(), None, None, HOUR)
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(50));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (tokens, text, barrier) = (tokens.clone(), t.expose().to_owned(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let opened = tokens
                    .open(TokenPurpose::Verify, &text)
                    .await
                    .unwrap()
                    .unwrap();
                barrier.wait().await;
                tokens.claim(&opened).await.unwrap()
            }));
        }
        let mut claimed = 0;
        for task in tasks {
            match task.await.unwrap() {
                Claim::Claimed => claimed += 1,
                Claim::AlreadyClaimed => {}
                Claim::Gone => panic!("the token did not expire"),
            }
        }
        assert_eq!(claimed, 1);
        let again = tokens
            .open(TokenPurpose::Verify, t.expose())
            .await
            .unwrap()
            .unwrap();
        assert!(again.is_used());
        assert_eq!(tokens.claim(&again).await.unwrap(), Claim::AlreadyClaimed);
    }

    #[tokio::test]
    async fn a_released_token_redeems_again() {
        let (tokens, _) = tokens();
        let t = tokens
            .issue(
                TokenPurpose::Change,
                &ada(),
                Some("new@example.com".into()),
                None,
                HOUR,
            )
            .await
            .unwrap();
        let opened = tokens
            .open(TokenPurpose::Change, t.expose())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(opened.new_email(), Some("new@example.com"));
        assert_eq!(tokens.claim(&opened).await.unwrap(), Claim::Claimed);
        tokens.release(&opened).await.unwrap();
        let again = tokens
            .open(TokenPurpose::Change, t.expose())
            .await
            .unwrap()
            .unwrap();
        assert!(!again.is_used());
        assert_eq!(tokens.claim(&again).await.unwrap(), Claim::Claimed);
    }
}
