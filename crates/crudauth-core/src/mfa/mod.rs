//! Two-factor authentication as crudauth 0.8 does it: TOTP secrets sealed at rest with Fernet
//! (crudauth's own tokens read as they are), replay-proof codes, recovery codes, and the login
//! challenge.
//!
//! ```
//! use crudauth_core::mfa::fernet::FernetKey;
//! use crudauth_core::mfa::{Factors, Mfa, MfaConfig, Verdict};
//! use crudauth_core::mfa::totp::TotpSecret;
//! use crudauth_core::user::{MemoryUsers, MfaWrite, NewUser, UserStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mfa = Mfa::new(MfaConfig::new("Acme", [FernetKey::generate()]), b"the app's SECRET_KEY, 32 bytes+")?;
//! let users = MemoryUsers::new();
//! let ada = users.create(NewUser::new("ada@example.com", "ada", "$argon2id$…")).await?;
//!
//! // Setup seals a pending secret bound to the account's token_version…
//! let secret = TotpSecret::generate();
//! users.write_mfa(&ada.id, MfaWrite::Pending { secret: mfa.seal_pending(ada.token_version, &secret) }).await?;
//! let ada = users.find_by_id(&ada.id).await?.unwrap();
//! let now = 1_800_000_000;
//! // …which a code of the authenticator confirms; claiming its step makes it single-use.
//! let verdict = mfa.check(&ada, &secret.code_at(now), now, Factors::Pending);
//! assert_eq!(verdict, Verdict::Totp(now / 30));
//! assert!(mfa.claim(&users, &ada, &secret.code_at(now), &verdict).await?);
//! assert!(!mfa.claim(&users, &ada, &secret.code_at(now), &verdict).await?, "replayed");
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

pub mod challenge;
pub mod fernet;
pub mod recovery;
pub mod totp;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::secret::ct_eq;
use crate::user::{MfaWrite, User, UserId, UserStore, UserStoreError};
use fernet::{Fernet, FernetKey};
use totp::TotpSecret;

/// How a sign-in with a password is held back for a code.
///
/// ```
/// use crudauth_core::mfa::MfaRequirement;
///
/// // Superusers must enrol; everyone else may.
/// let rule = MfaRequirement::when(|user| async move { user.is_superuser });
/// # let _ = rule;
/// ```
#[derive(Clone, Default)]
pub enum MfaRequirement {
    /// Nobody must enrol; enrolled accounts are challenged (the default).
    #[default]
    Off,
    /// Every account must enrol: one without a second factor enrols at its next sign-in.
    On,
    /// The accounts the predicate picks must enrol.
    When(Predicate),
}

/// An async predicate over a user, for [`MfaRequirement::When`].
pub type Predicate = Arc<dyn Fn(User) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

impl MfaRequirement {
    /// A requirement decided per account by `predicate` (asked with the user, sign-in by
    /// sign-in; it may look things up).
    pub fn when<F, Fut>(predicate: F) -> Self
    where
        F: Fn(User) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        MfaRequirement::When(Arc::new(move |user| Box::pin(predicate(user))))
    }
}

impl fmt::Debug for MfaRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MfaRequirement::Off => "Off",
            MfaRequirement::On => "On",
            MfaRequirement::When(_) => "When(…)",
        })
    }
}

/// Two-factor settings (crudauth's `MfaConfig`). `Debug` never shows the keys.
#[derive(Clone)]
pub struct MfaConfig {
    /// The name authenticator apps show (the otpauth issuer). Required, not empty.
    pub issuer: String,
    /// Fernet keys (URL-safe base64 of 32 bytes): the first seals new secrets, any opens one,
    /// so a key is rotated by putting the new one first.
    pub encryption_keys: Vec<String>,
    /// Who must enrol (default: nobody).
    pub required: MfaRequirement,
    /// Whether OAuth sign-ins are challenged too (default false, as crudauth).
    pub oauth: bool,
    /// How long a login challenge lives (default 300 s).
    pub challenge_ttl: Duration,
    /// Wrong codes a challenge takes before it dies (default 5).
    pub max_code_attempts: u32,
    /// Recovery codes per set (default 10).
    pub recovery_code_count: usize,
}

impl fmt::Debug for MfaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaConfig")
            .field("issuer", &self.issuer)
            .field(
                "encryption_keys",
                &format_args!("[{} × ***]", self.encryption_keys.len()),
            )
            .field("required", &self.required)
            .field("oauth", &self.oauth)
            .field("challenge_ttl", &self.challenge_ttl)
            .field("max_code_attempts", &self.max_code_attempts)
            .field("recovery_code_count", &self.recovery_code_count)
            .finish()
    }
}

impl MfaConfig {
    /// Two-factor with `issuer` and these Fernet keys, crudauth's defaults for the rest.
    pub fn new<I, K>(issuer: impl Into<String>, encryption_keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        Self {
            issuer: issuer.into(),
            encryption_keys: encryption_keys.into_iter().map(Into::into).collect(),
            required: MfaRequirement::Off,
            oauth: false,
            challenge_ttl: Duration::from_secs(300),
            max_code_attempts: 5,
            recovery_code_count: 10,
        }
    }

    /// Who must enrol.
    pub fn required(mut self, required: MfaRequirement) -> Self {
        self.required = required;
        self
    }

    /// Whether OAuth sign-ins are challenged.
    pub fn oauth(mut self, on: bool) -> Self {
        self.oauth = on;
        self
    }

    /// How long a login challenge lives.
    pub fn challenge_ttl(mut self, ttl: Duration) -> Self {
        self.challenge_ttl = ttl;
        self
    }

    /// Wrong codes a challenge takes.
    pub fn max_code_attempts(mut self, n: u32) -> Self {
        self.max_code_attempts = n;
        self
    }

    /// Recovery codes per set.
    pub fn recovery_code_count(mut self, n: usize) -> Self {
        self.recovery_code_count = n;
        self
    }
}

/// Why a two-factor configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum MfaConfigError {
    /// No issuer.
    #[error("MfaConfig issuer is required")]
    NoIssuer,
    /// No key.
    #[error("MfaConfig encryption_key is required. {HINT}")]
    NoKey,
    /// A key is not a Fernet key.
    #[error("MfaConfig.encryption_key must be a Fernet key (32 url-safe base64-encoded bytes); key {index} of the list is not. {HINT}")]
    NotFernet {
        /// Which key.
        index: usize,
    },
    /// A key is the application's secret key.
    #[error("MfaConfig.encryption_key must differ from SECRET_KEY (key {index} of the list is the same): a leak of one must not expose the other. {HINT}")]
    SameAsSecretKey {
        /// Which key.
        index: usize,
    },
    /// A number is zero.
    #[error("MfaConfig {0} must be > 0")]
    Zero(&'static str),
}

const HINT: &str = "Generate one with: python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\" (or crudauth_core::mfa::fernet::FernetKey::generate())";

/// Which factors a code may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factors {
    /// A TOTP code of the enrolled secret (sudo).
    Totp,
    /// A TOTP code of the enrolled secret, or a recovery code (sign-in, disable, regenerate).
    TotpOrRecovery,
    /// A TOTP code of the pending secret (confirming enrolment).
    Pending,
}

/// What a code turned out to be, before it is claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The TOTP code of this step.
    Totp(u64),
    /// One of the account's recovery codes.
    RecoveryCode,
    /// Neither.
    Invalid,
}

impl Verdict {
    /// Whether the code is one of the account's.
    pub fn is_valid(&self) -> bool {
        !matches!(self, Verdict::Invalid)
    }
}

/// What setup shows once: the secret to type in and the URI to scan.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SetupView {
    /// The secret, 32 base32 characters.
    pub secret: String,
    /// `otpauth://totp/…` for a QR code.
    pub otpauth_uri: String,
}

/// How many accounts with an unreadable secret are remembered, to log each once.
const UNREADABLE_LOGGED: usize = 10_000;

/// The two-factor service: configuration checked, keys parsed.
pub struct Mfa {
    issuer: String,
    required: MfaRequirement,
    oauth: bool,
    challenge_ttl: Duration,
    max_code_attempts: u32,
    recovery_code_count: usize,
    cipher: Fernet,
    /// Accounts whose secret no key opens, already logged.
    unreadable: Mutex<HashSet<UserId>>,
}

impl fmt::Debug for Mfa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mfa")
            .field("issuer", &self.issuer)
            .field("required", &self.required)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

impl Mfa {
    /// Checks `config` (a non-empty issuer, Fernet keys none of which is `secret_key`, positive
    /// numbers) and parses the keys.
    pub fn new(config: MfaConfig, secret_key: &[u8]) -> Result<Self, MfaConfigError> {
        if config.issuer.trim().is_empty() {
            return Err(MfaConfigError::NoIssuer);
        }
        if config.challenge_ttl.is_zero() {
            return Err(MfaConfigError::Zero("challenge_ttl"));
        }
        if config.max_code_attempts == 0 {
            return Err(MfaConfigError::Zero("max_code_attempts"));
        }
        if config.recovery_code_count == 0 {
            return Err(MfaConfigError::Zero("recovery_code_count"));
        }
        let mut keys = Vec::new();
        for (index, text) in config.encryption_keys.iter().enumerate() {
            if ct_eq(text.trim().as_bytes(), secret_key) {
                return Err(MfaConfigError::SameAsSecretKey { index });
            }
            let key = FernetKey::parse(text).map_err(|_| MfaConfigError::NotFernet { index })?;
            keys.push(key);
        }
        let cipher = Fernet::new(keys).ok_or(MfaConfigError::NoKey)?;
        Ok(Self {
            issuer: config.issuer,
            required: config.required,
            oauth: config.oauth,
            challenge_ttl: config.challenge_ttl,
            max_code_attempts: config.max_code_attempts,
            recovery_code_count: config.recovery_code_count,
            cipher,
            unreadable: Mutex::new(HashSet::new()),
        })
    }

    /// The issuer authenticators show.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether OAuth sign-ins are challenged.
    pub fn challenges_oauth(&self) -> bool {
        self.oauth
    }

    /// Whether some accounts must enrol (the requirement is not [`MfaRequirement::Off`]).
    pub fn requires_any(&self) -> bool {
        !matches!(self.required, MfaRequirement::Off)
    }

    /// How long a login challenge lives.
    pub fn challenge_ttl(&self) -> Duration {
        self.challenge_ttl
    }

    /// Wrong codes a challenge takes.
    pub fn max_code_attempts(&self) -> u32 {
        self.max_code_attempts
    }

    /// Recovery codes per set.
    pub fn recovery_code_count(&self) -> usize {
        self.recovery_code_count
    }

    /// Whether the account finished enrolment (confirmed, with a secret).
    pub fn is_enrolled(&self, user: &User) -> bool {
        user.mfa.confirmed && user.mfa.secret.is_some()
    }

    /// Whether the account must use two-factor authentication.
    pub async fn is_required(&self, user: &User) -> bool {
        match &self.required {
            MfaRequirement::Off => false,
            MfaRequirement::On => true,
            MfaRequirement::When(predicate) => predicate(user.clone()).await,
        }
    }

    /// Whether a sign-in of this account waits for a code: it is enrolled, or it must be.
    pub async fn is_due(&self, user: &User) -> bool {
        self.is_enrolled(user) || self.is_required(user).await
    }

    /// The sealed form of an enrolled secret.
    pub fn seal(&self, secret: &TotpSecret) -> String {
        self.cipher.encrypt(secret.base32().as_bytes())
    }

    /// The sealed form of a pending secret, bound to `token_version`: crudauth's
    /// `"{token_version}:{secret}"`.
    pub fn seal_pending(&self, token_version: i64, secret: &TotpSecret) -> String {
        self.cipher
            .encrypt(format!("{token_version}:{}", secret.base32()).as_bytes())
    }

    fn open(&self, user: &User) -> Option<String> {
        let sealed = user.mfa.secret.as_deref()?;
        let opened = self
            .cipher
            .decrypt(sealed)
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if opened.is_none() {
            let mut logged = self.unreadable.lock().unwrap_or_else(|p| p.into_inner());
            if logged.len() >= UNREADABLE_LOGGED {
                logged.clear();
            }
            if logged.insert(user.id.clone()) {
                tracing::error!(
                    user_id = %user.id,
                    "crudauth: the TOTP secret for user_id={} can't be decrypted with MfaConfig.encryption_key",
                    user.id
                );
            }
        }
        opened
    }

    /// The enrolled secret: `None` when the account is not enrolled or no key opens it (then
    /// logged once, at ERROR, and every code of the account fails).
    pub fn enrolled_secret(&self, user: &User) -> Option<TotpSecret> {
        if !self.is_enrolled(user) {
            return None;
        }
        TotpSecret::parse(&self.open(user)?)
    }

    /// The pending secret of an unfinished enrolment, if it was sealed at the account's
    /// current `token_version` (a password change or reset since voids it).
    pub fn pending_secret(&self, user: &User) -> Option<TotpSecret> {
        if user.mfa.confirmed {
            return None;
        }
        let opened = self.open(user)?;
        let (version, secret) = opened.split_once(':')?;
        if version != user.token_version.to_string() {
            return None;
        }
        TotpSecret::parse(secret)
    }

    /// What setup shows for `secret`: the secret and crudauth's otpauth URI, labelled with
    /// the account's email, else its user name, else its id.
    pub fn setup_view(&self, user: &User, secret: &TotpSecret) -> SetupView {
        let account = user
            .email
            .clone()
            .or_else(|| user.username.clone())
            .unwrap_or_else(|| user.id.to_string());
        SetupView {
            secret: secret.base32().to_owned(),
            otpauth_uri: totp::otpauth_uri(&self.issuer, &account, secret),
        }
    }

    /// What `code` is for `user` at `unix_seconds`, among `factors`; pure, changes nothing.
    /// Input that is six digits once spaces are gone is a TOTP code, anything else a recovery
    /// code.
    pub fn check(&self, user: &User, code: &str, unix_seconds: u64, factors: Factors) -> Verdict {
        if totp::normalise(code).is_some() {
            let secret = match factors {
                Factors::Pending => self.pending_secret(user),
                Factors::Totp | Factors::TotpOrRecovery => self.enrolled_secret(user),
            };
            return secret
                .and_then(|s| s.verify(code, unix_seconds))
                .map_or(Verdict::Invalid, Verdict::Totp);
        }
        let recovery = factors == Factors::TotpOrRecovery
            && self.is_enrolled(user)
            && user
                .mfa
                .recovery_codes
                .as_deref()
                .and_then(|stored| recovery::redeem(stored, code))
                .is_some();
        if recovery {
            Verdict::RecoveryCode
        } else {
            Verdict::Invalid
        }
    }

    /// Claims what `verdict` found, once: the TOTP step (one conditional update), or the
    /// recovery code (compare-and-set of the code list, retried from a fresh read up to three
    /// times when another code was used meanwhile). `false` when it was claimed already — a
    /// replayed code, an earlier step, a code used concurrently.
    pub async fn claim(
        &self,
        users: &dyn UserStore,
        user: &User,
        code: &str,
        verdict: &Verdict,
    ) -> Result<bool, UserStoreError> {
        match verdict {
            Verdict::Invalid => Ok(false),
            Verdict::Totp(step) => {
                let step = i64::try_from(*step).unwrap_or(i64::MAX);
                users.claim_totp_step(&user.id, step).await
            }
            Verdict::RecoveryCode => {
                let mut current = user.mfa.recovery_codes.clone();
                for _ in 0..3 {
                    let Some(stored) = current else {
                        return Ok(false);
                    };
                    let Some(left) = recovery::redeem(&stored, code) else {
                        return Ok(false);
                    };
                    let write = MfaWrite::ConsumeCode {
                        expected: stored,
                        recovery_codes: left,
                    };
                    if users.write_mfa(&user.id, write).await? {
                        return Ok(true);
                    }
                    current = users
                        .find_by_id(&user.id)
                        .await?
                        .and_then(|u| u.mfa.recovery_codes);
                }
                Ok(false)
            }
        }
    }

    /// A fresh set of recovery codes: the codes to show once, and the digests to store.
    pub fn new_recovery_codes(&self) -> (Vec<String>, String) {
        let codes = recovery::generate(self.recovery_code_count);
        let stored = recovery::digests_json(&codes);
        (codes, stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::{MemoryUsers, NewUser};

    const SECRET_KEY: &[u8] = b"an application secret key of 32+ bytes";

    fn mfa() -> Mfa {
        Mfa::new(MfaConfig::new("Acme", [FernetKey::generate()]), SECRET_KEY).unwrap()
    }

    async fn enrolled(
        mfa: &Mfa,
        users: &MemoryUsers,
        name: &str,
    ) -> (User, TotpSecret, Vec<String>) {
        let ada = users
            .create(NewUser::new(format!("{name}@example.com"), name, "h"))
            .await
            .unwrap();
        let secret = TotpSecret::generate();
        let pending = mfa.seal_pending(ada.token_version, &secret);
        let (codes, stored) = mfa.new_recovery_codes();
        users
            .write_mfa(
                &ada.id,
                MfaWrite::Pending {
                    secret: pending.clone(),
                },
            )
            .await
            .unwrap();
        let write = MfaWrite::Enable {
            pending,
            secret: mfa.seal(&secret),
            recovery_codes: stored,
        };
        assert!(users.write_mfa(&ada.id, write).await.unwrap());
        let ada = users.find_by_id(&ada.id).await.unwrap().unwrap();
        (ada, secret, codes)
    }

    #[test]
    fn build_refuses_bad_configurations() {
        let key = FernetKey::generate();
        let refused = |config: MfaConfig| Mfa::new(config, SECRET_KEY).unwrap_err().to_string();
        assert!(refused(MfaConfig::new("", [key.clone()])).contains("issuer is required"));
        assert!(refused(MfaConfig::new("Acme", Vec::<String>::new()))
            .contains("encryption_key is required"));
        let e = refused(MfaConfig::new("Acme", [key.clone(), "not-a-key".into()]));
        assert!(
            e.contains("key 1 ") && e.contains("Fernet.generate_key()"),
            "{e}"
        );
        let same = String::from_utf8(SECRET_KEY.to_vec()).unwrap();
        assert!(refused(MfaConfig::new("Acme", [same])).contains("must differ from SECRET_KEY"));
        assert!(
            refused(MfaConfig::new("Acme", [key.clone()]).max_code_attempts(0))
                .contains("max_code_attempts")
        );
        let config = MfaConfig::new("Acme", [key.clone()]);
        assert!(!format!("{config:?}").contains(&key), "keys are redacted");
        assert!(!format!("{:?}", Mfa::new(config, SECRET_KEY).unwrap()).contains(&key));
    }

    #[tokio::test]
    async fn codes_of_each_factor_are_checked_and_claimed_once() {
        let (mfa, users) = (mfa(), MemoryUsers::new());
        let (ada, secret, codes) = enrolled(&mfa, &users, "ada").await;
        let now = 1_800_000_000;
        let code = secret.code_at(now);
        assert_eq!(
            mfa.check(&ada, &code, now, Factors::Totp),
            Verdict::Totp(now / 30)
        );
        assert_eq!(
            mfa.check(&ada, &code, now, Factors::Pending),
            Verdict::Invalid,
            "not pending"
        );
        assert_eq!(
            mfa.check(&ada, &codes[0], now, Factors::Totp),
            Verdict::Invalid,
            "TOTP only"
        );
        let verdict = mfa.check(&ada, &codes[0].to_uppercase(), now, Factors::TotpOrRecovery);
        assert_eq!(verdict, Verdict::RecoveryCode);
        assert!(mfa.claim(&users, &ada, &codes[0], &verdict).await.unwrap());
        assert!(
            !mfa.claim(&users, &ada, &codes[0], &verdict).await.unwrap(),
            "used"
        );
        // A second code still works from the stale row: the claim rereads the list.
        let verdict = mfa.check(&ada, &codes[1], now, Factors::TotpOrRecovery);
        assert!(mfa.claim(&users, &ada, &codes[1], &verdict).await.unwrap());
        let after = users.find_by_id(&ada.id).await.unwrap().unwrap();
        assert_eq!(recovery::remaining(after.mfa.recovery_codes.as_deref()), 8);
        let totp = mfa.check(&ada, &code, now, Factors::TotpOrRecovery);
        assert!(mfa.claim(&users, &ada, &code, &totp).await.unwrap());
        assert!(
            !mfa.claim(&users, &ada, &code, &totp).await.unwrap(),
            "replayed step"
        );
        let earlier = mfa.check(&ada, &secret.code_at(now - 30), now, Factors::Totp);
        assert!(earlier.is_valid());
        assert!(
            !mfa.claim(&users, &ada, "", &earlier).await.unwrap(),
            "an earlier step"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_recovery_code_is_consumed_once_under_concurrency() {
        let (mfa, users) = (Arc::new(mfa()), MemoryUsers::new());
        let (ada, _, codes) = enrolled(&mfa, &users, "ada").await;
        let racers: Vec<_> = (0..20)
            .map(|_| {
                let (mfa, users, ada, code) =
                    (mfa.clone(), users.clone(), ada.clone(), codes[4].clone());
                tokio::spawn(async move {
                    let verdict = mfa.check(&ada, &code, 0, Factors::TotpOrRecovery);
                    mfa.claim(&users, &ada, &code, &verdict).await.unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for r in racers {
            won += usize::from(r.await.unwrap());
        }
        assert_eq!(won, 1);
    }

    #[tokio::test]
    async fn pending_secrets_die_with_the_token_version_and_unreadable_ones_fail_closed() {
        let (mfa, users) = (mfa(), MemoryUsers::new());
        let ada = users
            .create(NewUser::new("ada@example.com", "ada", "h"))
            .await
            .unwrap();
        let secret = TotpSecret::generate();
        let sealed = mfa.seal_pending(ada.token_version, &secret);
        users
            .write_mfa(&ada.id, MfaWrite::Pending { secret: sealed })
            .await
            .unwrap();
        let mut ada = users.find_by_id(&ada.id).await.unwrap().unwrap();
        assert_eq!(mfa.pending_secret(&ada), Some(secret.clone()));
        ada.token_version += 1;
        assert_eq!(mfa.pending_secret(&ada), None, "a password change voids it");
        // Sealed under a key this service does not have: no code of the account passes.
        let other = Mfa::new(MfaConfig::new("Acme", [FernetKey::generate()]), SECRET_KEY).unwrap();
        let (ada, secret, _) = enrolled(&other, &users, "bob").await;
        let now = 1_800_000_000;
        assert_eq!(mfa.enrolled_secret(&ada), None);
        assert_eq!(
            mfa.check(&ada, &secret.code_at(now), now, Factors::Totp),
            Verdict::Invalid
        );
        assert_eq!(
            mfa.unreadable.lock().unwrap().len(),
            1,
            "logged once for the account"
        );
        let view = mfa.setup_view(&ada, &secret);
        assert!(view.otpauth_uri.contains("Acme%3Abob%40example.com"));
    }

    /// An account whose columns Python crudauth 0.8.2 wrote (the fixture's generator is
    /// beside it): its secret opens with either key list, its codes are crudauth's, and its
    /// recovery code digest is crudauth's.
    #[tokio::test]
    async fn crudauths_own_columns_read_as_they_are() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/crudauth_mfa.json")).unwrap();
        let text = |k: &str| fixture[k].as_str().unwrap().to_owned();
        let keys: Vec<String> = fixture["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        let mfa = Mfa::new(MfaConfig::new("Acme", keys.clone()), SECRET_KEY).unwrap();
        let code_hash = fixture["recovery"]["hash"].as_str().unwrap();
        let mut user = User::fixture("ada@example.com", "h");
        user.mfa = crate::user::MfaColumns {
            secret: Some(text("confirmed")),
            confirmed: true,
            last_step: None,
            recovery_codes: Some(format!("[\"{code_hash}\"]")),
        };
        let secret = mfa.enrolled_secret(&user).expect("crudauth's token opens");
        assert_eq!(secret.base32(), text("secret"));
        for case in fixture["codes"].as_array().unwrap() {
            let (time, code) = (
                case["time"].as_u64().unwrap(),
                case["code"].as_str().unwrap(),
            );
            assert_eq!(secret.code_at(time), code, "crudauth's code at {time}");
            assert_eq!(
                mfa.check(&user, code, time, Factors::Totp),
                Verdict::Totp(time / 30)
            );
        }
        let recovery_code = fixture["recovery"]["code"].as_str().unwrap();
        assert_eq!(recovery::digest(recovery_code), code_hash);
        assert_eq!(
            mfa.check(
                &user,
                &recovery_code.to_uppercase(),
                0,
                Factors::TotpOrRecovery
            ),
            Verdict::RecoveryCode
        );
        // The pending form, "3:<secret>", is bound to token_version 3.
        user.mfa.secret = Some(text("pending"));
        user.mfa.confirmed = false;
        user.token_version = 3;
        assert_eq!(
            mfa.pending_secret(&user).map(|s| s.base32().to_owned()),
            Some(text("secret"))
        );
        user.token_version = 4;
        assert_eq!(mfa.pending_secret(&user), None);
        // Under the second key, with the key list in either order.
        let rotated = Mfa::new(
            MfaConfig::new("Acme", [keys[1].clone(), keys[0].clone()]),
            SECRET_KEY,
        )
        .unwrap();
        user.mfa.secret = Some(text("rotated"));
        user.mfa.confirmed = true;
        assert_eq!(
            rotated
                .enrolled_secret(&user)
                .map(|s| s.base32().to_owned()),
            Some(text("secret"))
        );
        assert_eq!(
            mfa.enrolled_secret(&user).map(|s| s.base32().to_owned()),
            Some(text("secret"))
        );
    }
}
