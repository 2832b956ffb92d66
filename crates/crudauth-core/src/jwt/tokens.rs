//! The bearer-token service: issue a pair, verify access tokens, rotate refresh tokens with
//! reuse detection, revoke a family.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::codec::{
    AccessToken, Claims, JwtCodec, RefreshToken, SignError, TokenRejected, TokenType,
};
use super::config::{TokenConfig, TokenConfigError};
use crate::clock::{self, duration_ms, Clock};
use crate::error::StoreError;
use crate::secret::{ct_eq, random_token, sha256_hex, SecretKey};
use crate::store::{decode_or_discard, encode, Store, Swap};
use crate::user::{User, UserId, UserStore, UserStoreError};

/// A sign-in's refresh family, kept at `r:{family}` until the family's absolute expiry. Its
/// absence means the family is revoked (or over). It names the family's one live refresh token
/// and the one it replaced, so a rotation is a single compare-and-swap of this record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FamilyRecord {
    user_id: UserId,
    token_version: i64,
    /// Absolute expiry, seconds since the epoch (every token of the family expires then).
    expires_at: u64,
    created_at: u64,
    /// SHA-256 of the live refresh token's `jti`: the only one a refresh accepts.
    live: String,
    /// SHA-256 of the `jti` the live token replaced, and when (ms): for the reuse grace.
    #[serde(default)]
    previous: Option<String>,
    #[serde(default)]
    rotated_at: u64,
}

/// A fresh token pair.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token (single use; the next `/refresh` replaces it).
    pub refresh_token: RefreshToken,
    /// How long the refresh token (and its family) has left: the refresh cookie's `Max-Age`.
    pub refresh_expires_in: Duration,
    /// The scopes granted.
    pub scopes: Vec<String>,
}

/// Why a refresh was refused. The first three all answer 401 "Invalid or expired refresh
/// token"; they differ in what happened to the family.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Forged, malformed, expired, of a revoked or ended family, of an older `token_version`,
    /// or for a missing or disabled user.
    #[error("invalid or expired refresh token")]
    Invalid,
    /// Rotated out moments ago and presented again within the reuse grace while its successor
    /// is still unused (racing tabs, a retried request): refused, the family kept.
    #[error("refresh token already rotated (within the reuse grace)")]
    Superseded,
    /// Rotated out and presented again: the whole family has just been revoked.
    #[error("refresh token reused: its family was revoked")]
    Reused,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The user table failed.
    #[error(transparent)]
    Users(#[from] UserStoreError),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Why issuing or revoking failed: a backend, never the caller's input.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Bearer tokens over a [`Store`]: HS256 access tokens verified without I/O, and refresh
/// tokens that rotate on every use, with reuse detection (RFC 9700 §4.14).
///
/// **Rotation.** A sign-in opens a *family* (`r:{family}` in the store, living until the
/// family's absolute expiry) whose record names its live refresh token by the SHA-256 of the
/// token's single-use id `jti`. A refresh verifies the token (signature, type, expiry), reads
/// the family (absent: revoked), checks that the token is the live one and that the user is
/// still active at the same `token_version`, and then rotates in **one atomic store
/// operation**: a compare-and-swap of the family record that names the successor as live. Of
/// any number of concurrent presentations exactly one swap wins; and since nothing is written
/// before that swap, a failure anywhere before it leaves the family exactly as it was, so the
/// client's honest retry succeeds instead of looking like reuse.
///
/// **Reuse.** A token of the family that is not its live one (a rotated-out token, or the loser
/// of a concurrent swap) is reuse: the family is deleted, so every token of it — the newest
/// included — is dead, and the event is logged. With a
/// [`TokenConfig::reuse_grace`], a re-presentation within that time of the rotation, while the
/// successor is still unused, is refused without revoking (racing browser tabs). With the
/// default grace of zero, two concurrent refreshes with one token give one success and one 401,
/// and the loser's reuse revokes the family: the winner's new refresh token is dead too, while
/// its access token lives out its lifetime.
///
/// **Epochs.** Every token carries the user's `token_version`; a password change, reset or
/// logout-all bumps it, so every access token (absent) and refresh token (401) of the user ends.
#[derive(Debug, Clone)]
pub struct BearerTokens {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    codec: JwtCodec,
    store: Arc<dyn Store>,
    config: TokenConfig,
    clock: Arc<dyn Clock>,
}

fn family_key(family: &str) -> String {
    format!("r:{family}")
}

/// Revokes a family over a misused refresh token, and says why in the log.
async fn revoke_family(
    store: &dyn Store,
    fkey: &str,
    record: &FamilyRecord,
    why: &'static str,
) -> Result<(), StoreError> {
    store.delete(fkey).await?;
    tracing::warn!(user_id = %record.user_id, "{why}: the refresh family is revoked");
    Ok(())
}

impl BearerTokens {
    /// A token service signing with `key`, keeping families in `store`. Refuses an
    /// inconsistent `config` (see [`TokenConfig::check`]).
    pub fn new(
        key: &SecretKey,
        store: Arc<dyn Store>,
        config: TokenConfig,
    ) -> Result<Self, TokenConfigError> {
        config.check()?;
        Ok(Self {
            inner: Arc::new(Inner {
                codec: JwtCodec::new(key, config.leeway, &config.issuer, &config.audience),
                store,
                config,
                clock: clock::system(),
            }),
        })
    }

    /// Uses `clock` for every time it mints or checks (`iat`, `exp`, the reuse grace); tests
    /// move it instead of sleeping.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                codec: inner.codec.clone(),
                store: inner.store.clone(),
                config: inner.config.clone(),
                clock,
            }),
        }
    }

    /// Also accepts tokens signed with `previous`, a retired signing key (the JWT key of the
    /// `SECRET_KEY` before a rotation), until `until` (seconds since the Unix epoch, by this
    /// service's clock). Tokens name their key (`kid`), so each is checked against its own.
    pub fn with_previous_key(self, previous: &SecretKey, until: u64) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                codec: inner.codec.clone().with_previous(previous, until),
                store: inner.store.clone(),
                config: inner.config.clone(),
                clock: inner.clock.clone(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TokenConfig {
        &self.inner.config
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now_millis()
    }

    /// Verifies an access token, fully, every time, with no I/O: signature (HS256 only),
    /// `iss` and `aud` (exact), `exp` and `nbf` (by this service's clock), `sub`, the type, no
    /// key hints in the header. The caller still loads
    /// the user and compares `token_version` (a mismatch means the token was superseded).
    pub fn verify_access(&self, token: &str) -> Result<Claims, TokenRejected> {
        let now = self.inner.clock.now_secs();
        self.inner.codec.verify(token, TokenType::Access, now)
    }

    /// Verifies a refresh token's signature and claims as [`Self::verify_access`] does (not
    /// whether it is still live).
    pub fn verify_refresh(&self, token: &str) -> Result<Claims, TokenRejected> {
        let now = self.inner.clock.now_secs();
        self.inner.codec.verify(token, TokenType::Refresh, now)
    }

    /// Mints an access token for `user` with exactly `scopes` (no clamping, no family).
    pub fn access_token(&self, user: &User, scopes: Vec<String>) -> Result<AccessToken, SignError> {
        let claims = self.access_claims(user, scopes, self.inner.clock.now_secs());
        self.inner.codec.sign(&claims).map(AccessToken)
    }

    /// The claims of an access token for `user`, issued at `now_s` (seconds).
    fn access_claims(&self, user: &User, scopes: Vec<String>, now_s: u64) -> Claims {
        Claims {
            sub: user.id.to_string(),
            ver: user.token_version,
            exp: now_s + self.inner.config.access_ttl.as_secs(),
            iat: Some(now_s),
            token_type: TokenType::Access,
            scopes,
            fam: None,
            jti: None,
            iss: Some(self.inner.config.issuer.clone()),
            aud: Some(self.inner.config.audience.clone()),
            nbf: None,
        }
    }

    /// Signs in `user` for bearer use: grants scopes (the default when `requested` is empty,
    /// clamped to the grantable ones), opens a refresh family, and mints the pair.
    pub async fn issue(
        &self,
        user: &User,
        requested: &[String],
    ) -> Result<IssuedTokens, TokenError> {
        let scopes = self.inner.config.grant(requested);
        let now = self.now_ms();
        let ttl = self.inner.config.refresh_ttl;
        let family = random_token(16);
        let jti = random_token(16);
        let record = FamilyRecord {
            user_id: user.id.clone(),
            token_version: user.token_version,
            expires_at: now / 1000 + ttl.as_secs(),
            created_at: now,
            live: sha256_hex(jti.as_bytes()),
            previous: None,
            rotated_at: 0,
        };
        self.inner
            .store
            .set(&family_key(&family), encode(&record), ttl)
            .await?;
        Ok(self.pair(user, scopes, &family, &jti, record.expires_at, now / 1000)?)
    }

    /// Mints the pair at one instant `now_s` (seconds): the refresh token carries the access
    /// token's claims, retyped, with the family's expiry, the family and the single-use id.
    fn pair(
        &self,
        user: &User,
        scopes: Vec<String>,
        family: &str,
        jti: &str,
        expires_at: u64,
        now_s: u64,
    ) -> Result<IssuedTokens, SignError> {
        let mut claims = self.access_claims(user, scopes, now_s);
        let access_token = AccessToken(self.inner.codec.sign(&claims)?);
        claims.token_type = TokenType::Refresh;
        claims.exp = expires_at;
        claims.fam = Some(family.to_owned());
        claims.jti = Some(jti.to_owned());
        let refresh_token = RefreshToken(self.inner.codec.sign(&claims)?);
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            // Whole seconds, so a sign-in's cookie says exactly `refresh_ttl` (crudauth's Max-Age).
            refresh_expires_in: Duration::from_secs(expires_at.saturating_sub(now_s)),
            scopes: claims.scopes,
        })
    }

    /// Exchanges a refresh token for a new pair, spending it (see the type's docs). Scopes are
    /// the token's, clamped to the current ceiling.
    pub async fn refresh(
        &self,
        token: &str,
        users: &dyn UserStore,
    ) -> Result<IssuedTokens, RefreshError> {
        let claims = self
            .verify_refresh(token)
            .map_err(|_| RefreshError::Invalid)?;
        let (Some(family), Some(jti)) = (claims.fam.as_deref(), claims.jti.as_deref()) else {
            return Err(RefreshError::Invalid);
        };
        let store = self.inner.store.as_ref();
        let fkey = family_key(family);
        let Some(raw) = store.get(&fkey).await? else {
            return Err(RefreshError::Invalid);
        };
        let Some(record) =
            decode_or_discard::<FamilyRecord>(store, &fkey, Some(raw.clone())).await?
        else {
            return Err(RefreshError::Invalid);
        };
        let now = self.now_ms();
        let left = (record.expires_at * 1000).saturating_sub(now);
        if left == 0 || record.user_id.to_string() != claims.sub {
            return Err(RefreshError::Invalid);
        }
        let presented = sha256_hex(jti.as_bytes());
        if !ct_eq(record.live.as_bytes(), presented.as_bytes()) {
            return Err(self
                .spent_again(store, &fkey, &record, &presented, now)
                .await?);
        }
        let user = users.find_by_id(&record.user_id).await?.filter(|u| {
            u.is_active && u.token_version == claims.ver && u.token_version == record.token_version
        });
        let Some(user) = user else {
            // A disabled user or a new epoch ends the family for good.
            store.delete(&fkey).await?;
            return Err(RefreshError::Invalid);
        };
        // The one write: the successor becomes live, if and only if nobody rotated (or
        // revoked) the family since it was read.
        let next = random_token(16);
        let rotated = FamilyRecord {
            live: sha256_hex(next.as_bytes()),
            previous: Some(presented.clone()),
            rotated_at: now,
            ..record
        };
        match store
            .compare_and_swap(&fkey, &raw, encode(&rotated), None)
            .await?
        {
            Swap::Swapped => {}
            Swap::Absent => return Err(RefreshError::Invalid),
            Swap::Changed => {
                // A concurrent presentation of the same token won: judge this one by the
                // family as it is now.
                let raw = store.get(&fkey).await?;
                let Some(now_record) = decode_or_discard::<FamilyRecord>(store, &fkey, raw).await?
                else {
                    return Err(RefreshError::Invalid);
                };
                return Err(self
                    .spent_again(store, &fkey, &now_record, &presented, now)
                    .await?);
            }
        }
        let scopes = self.inner.config.clamp(&claims.scopes);
        Ok(self.pair(&user, scopes, family, &next, rotated.expires_at, now / 1000)?)
    }

    /// A token of the family that is not its live one: the live token's immediate predecessor
    /// presented again within the grace (the successor is still unused, or it would not be the
    /// predecessor) is a benign race; anything else is reuse, which revokes the family.
    async fn spent_again(
        &self,
        store: &dyn Store,
        fkey: &str,
        record: &FamilyRecord,
        presented: &str,
        now: u64,
    ) -> Result<RefreshError, StoreError> {
        let grace = duration_ms(self.inner.config.reuse_grace);
        let predecessor = record
            .previous
            .as_deref()
            .is_some_and(|p| ct_eq(p.as_bytes(), presented.as_bytes()));
        if grace > 0 && predecessor && now.saturating_sub(record.rotated_at) <= grace {
            return Ok(RefreshError::Superseded);
        }
        let why = if predecessor || record.previous.is_some() {
            "refresh token reuse detected"
        } else {
            "refresh token was not the family's live one"
        };
        revoke_family(store, fkey, record, why).await?;
        Ok(RefreshError::Reused)
    }

    /// Revokes the family of a refresh token (bearer logout). `false` when the token is not
    /// one of ours, or its family already ended. An expired token has nothing left to revoke.
    pub async fn revoke(&self, refresh_token: &str) -> Result<bool, StoreError> {
        let Ok(claims) = self.verify_refresh(refresh_token) else {
            return Ok(false);
        };
        match claims.fam.as_deref() {
            Some(family) => self.inner.store.delete(&family_key(family)).await,
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::user::{MemoryUsers, NewUser, UserUpdate};

    struct Fixture {
        store: Arc<dyn Store>,
        users: MemoryUsers,
        user: User,
        key: SecretKey,
    }

    async fn fixture() -> Fixture {
        let users = MemoryUsers::new();
        let user = users
            .create(NewUser::new("ada@example.com", "ada", "$argon2id$x"))
            .await
            .unwrap();
        Fixture {
            store: Arc::new(MemoryStore::new()),
            users,
            user,
            key: SecretKey::new([9u8; 32]).unwrap(),
        }
    }

    fn service(f: &Fixture, config: TokenConfig) -> BearerTokens {
        BearerTokens::new(&f.key, f.store.clone(), config).unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn a_refresh_rotates_and_spends_the_old_token() {
        let f = fixture().await;
        let t = service(&f, TokenConfig::default());
        let first = t.issue(&f.user, &[]).await.unwrap();
        assert_eq!(first.refresh_expires_in.as_secs(), 30 * 24 * 3600);
        let second = t
            .refresh(first.refresh_token.expose(), &f.users)
            .await
            .unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        let old = t.verify_refresh(first.refresh_token.expose()).unwrap();
        let new = t.verify_refresh(second.refresh_token.expose()).unwrap();
        assert_eq!(old.fam, new.fam, "same family");
        assert_eq!(old.exp, new.exp, "rotation never extends the family");
        assert_ne!(old.jti, new.jti);
        let third = t.refresh(second.refresh_token.expose(), &f.users).await;
        assert!(third.is_ok());
    }

    #[tokio::test]
    async fn reuse_revokes_the_whole_family() {
        let f = fixture().await;
        let t = service(&f, TokenConfig::default());
        let first = t.issue(&f.user, &[]).await.unwrap();
        let second = t
            .refresh(first.refresh_token.expose(), &f.users)
            .await
            .unwrap();
        let reuse = t.refresh(first.refresh_token.expose(), &f.users).await;
        assert!(matches!(reuse, Err(RefreshError::Reused)), "{reuse:?}");
        let newest = t.refresh(second.refresh_token.expose(), &f.users).await;
        assert!(matches!(newest, Err(RefreshError::Invalid)), "{newest:?}");
        // Other sign-ins (families) of the same user are untouched.
        let other = t.issue(&f.user, &[]).await.unwrap();
        assert!(t
            .refresh(other.refresh_token.expose(), &f.users)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn within_the_grace_a_racing_predecessor_is_refused_without_revoking() {
        let f = fixture().await;
        let config = TokenConfig {
            reuse_grace: Duration::from_secs(5),
            ..Default::default()
        };
        let t = service(&f, config);
        let first = t.issue(&f.user, &[]).await.unwrap();
        let second = t
            .refresh(first.refresh_token.expose(), &f.users)
            .await
            .unwrap();
        let again = t.refresh(first.refresh_token.expose(), &f.users).await;
        assert!(matches!(again, Err(RefreshError::Superseded)), "{again:?}");
        let third = t
            .refresh(second.refresh_token.expose(), &f.users)
            .await
            .unwrap();
        // Its successor is spent now: the first token is no longer the immediate predecessor.
        let late = t.refresh(first.refresh_token.expose(), &f.users).await;
        assert!(matches!(late, Err(RefreshError::Reused)), "{late:?}");
        let newest = t.refresh(third.refresh_token.expose(), &f.users).await;
        assert!(matches!(newest, Err(RefreshError::Invalid)), "{newest:?}");
    }

    /// `n` concurrent refreshes with one token: the winners, and the losers' errors.
    async fn race(
        t: &BearerTokens,
        f: &Fixture,
        n: usize,
    ) -> (Vec<IssuedTokens>, Vec<RefreshError>) {
        let first = t.issue(&f.user, &[]).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(n));
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (t, users, token, barrier) = (
                t.clone(),
                f.users.clone(),
                first.refresh_token.clone(),
                barrier.clone(),
            );
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                t.refresh(token.expose(), &users).await
            }));
        }
        let mut won = Vec::new();
        let mut refused = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(pair) => won.push(pair),
                Err(e) => refused.push(e),
            }
        }
        (won, refused)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_refreshes_have_one_winner() {
        let f = fixture().await;
        let strict = service(&f, TokenConfig::default());
        for _ in 0..20 {
            let (won, refused) = race(&strict, &f, 16).await;
            assert_eq!(won.len(), 1);
            // Losers either detected the reuse or found the family already revoked.
            assert!(refused
                .iter()
                .all(|e| matches!(e, RefreshError::Reused | RefreshError::Invalid)));
            assert!(refused.iter().any(|e| matches!(e, RefreshError::Reused)));
            // Strict: the losers' reuse revoked the family, the winner's refresh token too.
            let next = strict
                .refresh(won[0].refresh_token.expose(), &f.users)
                .await;
            assert!(matches!(next, Err(RefreshError::Invalid)), "{next:?}");
        }
        let graceful = service(
            &f,
            TokenConfig {
                reuse_grace: Duration::from_secs(5),
                ..Default::default()
            },
        );
        for _ in 0..20 {
            let (won, refused) = race(&graceful, &f, 16).await;
            assert_eq!(won.len(), 1);
            assert!(refused
                .iter()
                .all(|e| matches!(e, RefreshError::Superseded)));
            assert!(graceful
                .refresh(won[0].refresh_token.expose(), &f.users)
                .await
                .is_ok());
        }
    }

    #[tokio::test]
    async fn a_new_epoch_or_a_disabled_user_ends_the_family() {
        let f = fixture().await;
        let t = service(&f, TokenConfig::default());
        let pair = t.issue(&f.user, &[]).await.unwrap();
        let bump = UserUpdate {
            bump_token_version: true,
            ..Default::default()
        };
        f.users.update(&f.user.id, bump).await.unwrap();
        let r = t.refresh(pair.refresh_token.expose(), &f.users).await;
        assert!(matches!(r, Err(RefreshError::Invalid)), "{r:?}");

        let user = f.users.find_by_id(&f.user.id).await.unwrap().unwrap();
        let pair = t.issue(&user, &[]).await.unwrap();
        let off = UserUpdate {
            is_active: Some(false),
            ..Default::default()
        };
        f.users.update(&f.user.id, off).await.unwrap();
        let r = t.refresh(pair.refresh_token.expose(), &f.users).await;
        assert!(matches!(r, Err(RefreshError::Invalid)), "{r:?}");
    }

    /// A refresh whose store fails at any one of its calls leaves the family exactly as it
    /// was, so the client's retry of the same token succeeds: there is no half-done rotation
    /// for the retry to mistake for reuse.
    #[tokio::test]
    async fn a_failure_at_any_step_leaves_the_family_for_the_retry() {
        let f = fixture().await;
        let faulty = Arc::new(crate::store::FaultyStore::new(f.store.clone()));
        let t = BearerTokens::new(&f.key, faulty.clone(), TokenConfig::default()).unwrap();
        let mut failed_at = Vec::new();
        for step in 1.. {
            let pair = t.issue(&f.user, &[]).await.unwrap();
            let family = t.verify_refresh(pair.refresh_token.expose()).unwrap().fam;
            let key = family_key(family.as_deref().unwrap());
            let before = f.store.get(&key).await.unwrap();
            faulty.fail_nth_call(step);
            let first = t.refresh(pair.refresh_token.expose(), &f.users).await;
            faulty.heal();
            match first {
                Ok(_) => break, // fewer calls than `step`: every step was covered
                Err(RefreshError::Store(_)) => failed_at.push(step),
                Err(other) => panic!("step {step}: {other:?}"),
            }
            assert_eq!(
                f.store.get(&key).await.unwrap(),
                before,
                "step {step}: a failed refresh changed the family"
            );
            let retry = t.refresh(pair.refresh_token.expose(), &f.users).await;
            assert!(
                retry.is_ok(),
                "step {step}: the retry was refused: {retry:?}"
            );
        }
        assert!(failed_at.len() >= 2, "{failed_at:?}");
    }

    #[tokio::test]
    async fn revoking_ends_the_family() {
        let f = fixture().await;
        let t = service(&f, TokenConfig::default());
        let pair = t.issue(&f.user, &[]).await.unwrap();
        assert!(t.revoke(pair.refresh_token.expose()).await.unwrap());
        assert!(!t.revoke(pair.refresh_token.expose()).await.unwrap());
        assert!(!t.revoke("junk").await.unwrap());
        let r = t.refresh(pair.refresh_token.expose(), &f.users).await;
        assert!(matches!(r, Err(RefreshError::Invalid)), "{r:?}");
    }

    #[tokio::test]
    async fn scopes_are_granted_then_reclamped_at_refresh() {
        let f = fixture().await;
        let wide = service(
            &f,
            TokenConfig {
                default_scopes: strings(&["a"]),
                grantable_scopes: Some(strings(&["a", "b"])),
                ..Default::default()
            },
        );
        let pair = wide
            .issue(&f.user, &strings(&["b", "admin", "a"]))
            .await
            .unwrap();
        assert_eq!(pair.scopes, ["b", "a"]);
        let claims = wide.verify_access(pair.access_token.expose()).unwrap();
        assert_eq!(claims.scopes, ["b", "a"]);
        // The ceiling is tightened (a restart with a narrower configuration).
        let narrow = service(
            &f,
            TokenConfig {
                default_scopes: strings(&["a"]),
                ..Default::default()
            },
        );
        let next = narrow
            .refresh(pair.refresh_token.expose(), &f.users)
            .await
            .unwrap();
        assert_eq!(next.scopes, ["a"]);
        let claims = narrow.verify_access(next.access_token.expose()).unwrap();
        assert_eq!(claims.scopes, ["a"]);
    }

    #[tokio::test]
    async fn a_corrupt_family_record_is_a_revoked_family() {
        let f = fixture().await;
        let t = service(&f, TokenConfig::default());
        let pair = t.issue(&f.user, &[]).await.unwrap();
        let claims = t.verify_refresh(pair.refresh_token.expose()).unwrap();
        let key = family_key(claims.fam.as_deref().unwrap());
        f.store
            .set(
                &key,
                bytes::Bytes::from_static(b"{nope"),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        let r = t.refresh(pair.refresh_token.expose(), &f.users).await;
        assert!(matches!(r, Err(RefreshError::Invalid)), "{r:?}");
        assert!(f.store.get(&key).await.unwrap().is_none(), "discarded");
    }

    #[tokio::test]
    async fn an_access_token_is_not_a_refresh_token() {
        let f = fixture().await;
        let t = service(&f, TokenConfig::default());
        let pair = t.issue(&f.user, &[]).await.unwrap();
        let r = t.refresh(pair.access_token.expose(), &f.users).await;
        assert!(matches!(r, Err(RefreshError::Invalid)), "{r:?}");
        assert_eq!(
            t.verify_access(pair.refresh_token.expose()),
            Err(TokenRejected::Invalid)
        );
    }
}
