//! The **UserStore** port: the application's own user table, seen through crudauth's logical
//! fields.
//!
//! ```
//! use crudauth_core::user::{find_by_login, LoginField, MemoryUsers, NewUser, UserStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let users = MemoryUsers::new();
//! users.create(NewUser::new("Ada@Example.com", "ada", "$argon2id$...")).await?;
//! // Email is matched trimmed and case-insensitively, then username exactly.
//! let found = find_by_login(&users, &[LoginField::Email, LoginField::Username], " ada@example.COM ").await?;
//! assert_eq!(found.unwrap().username.as_deref(), Some("ada"));
//! # Ok::<(), crudauth_core::user::UserStoreError>(()) }).unwrap();
//! ```

mod cache;
#[cfg(feature = "conformance")]
pub mod conformance;
mod memory;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use cache::CachedUsers;
pub use memory::MemoryUsers;

/// A user's primary key, in its native form: an integer or a string (UUIDs are strings).
///
/// It serialises as a JSON number or string, as crudauth answers it, and compares by value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserId {
    /// An integer key.
    Int(i64),
    /// A text key (UUID, ULID, …).
    Text(String),
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserId::Int(n) => write!(f, "{n}"),
            UserId::Text(s) => f.write_str(s),
        }
    }
}

impl From<i64> for UserId {
    fn from(n: i64) -> Self {
        UserId::Int(n)
    }
}

impl From<String> for UserId {
    fn from(s: String) -> Self {
        UserId::Text(s)
    }
}

/// A stored password hash (argon2id PHC string, or a crudauth bcrypt hash). Redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

impl PasswordHash {
    /// Whether this hash can never verify: empty, or crudauth's `!`-prefixed sentinel for
    /// accounts made without a password (OAuth).
    pub fn is_unusable(&self) -> bool {
        self.0.is_empty() || self.0.starts_with('!')
    }

    /// crudauth's unusable-password sentinel for accounts without a password (OAuth): `!` and
    /// 16 random bytes in URL-safe base64, 23 characters. It never verifies.
    pub fn unusable() -> PasswordHash {
        PasswordHash(format!("!{}", crate::secret::random_token(16)))
    }
}

/// A user row, through crudauth's logical fields (`AuthUserMixin`'s columns).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Primary key.
    pub id: UserId,
    /// Email address, stored canonical (trimmed, lower-case).
    pub email: Option<String>,
    /// User name, case-sensitive.
    pub username: Option<String>,
    /// Password hash; `None` or unusable for accounts without a password. Never serialised:
    /// a `User` turned into JSON (an app's own `/me`, a log line, a cache) carries no hash.
    #[serde(skip_serializing, default)]
    pub hashed_password: Option<PasswordHash>,
    /// A disabled account cannot sign in.
    pub is_active: bool,
    /// Superusers pass the superuser gate.
    pub is_superuser: bool,
    /// Whether the email address was verified.
    pub email_verified: bool,
    /// The user's credential epoch: bumped by a password change or reset, which ends sessions
    /// and bearer tokens minted before it.
    pub token_version: i64,
    /// The OAuth provider that created or last linked the account.
    pub oauth_provider: Option<String>,
    /// Provider subject ids by provider name (`google` → `google_id` column, …).
    pub provider_ids: BTreeMap<String, String>,
    /// The two-factor columns. Never serialised, redacted in `Debug`, and never shown to
    /// hooks.
    #[serde(skip)]
    pub mfa: MfaColumns,
}

/// A user's two-factor state: crudauth's four MFA columns.
///
/// `Debug` shows whether each is set, never the sealed secret or the code digests.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MfaColumns {
    /// `totp_secret_encrypted`: the Fernet token of the TOTP secret, or, while enrolment is
    /// pending, of `"{token_version}:{secret}"`.
    pub secret: Option<String>,
    /// Whether `totp_confirmed_at` is set: enrolment is finished.
    pub confirmed: bool,
    /// `totp_last_step`: the latest TOTP step accepted for this account.
    pub last_step: Option<i64>,
    /// `mfa_recovery_codes`: a JSON array of the SHA-256 hex digests of the unused recovery
    /// codes.
    pub recovery_codes: Option<String>,
}

impl fmt::Debug for MfaColumns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaColumns")
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("confirmed", &self.confirmed)
            .field("last_step", &self.last_step)
            .field(
                "recovery_codes",
                &self.recovery_codes.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

/// The two-factor columns as crudauth names them, for messages.
pub const MFA_FIELDS: [&str; 4] = [
    "totp_secret_encrypted",
    "totp_confirmed_at",
    "totp_last_step",
    "mfa_recovery_codes",
];

/// A change to a user's two-factor columns, each one atomic (one conditional `UPDATE` on SQL).
#[derive(Clone, PartialEq, Eq)]
pub enum MfaWrite {
    /// Starts (or restarts) enrolment: `secret` is the sealed pending secret; confirmation,
    /// the last step and the recovery codes are cleared. Unconditional.
    Pending {
        /// The sealed pending secret.
        secret: String,
    },
    /// Finishes enrolment: only while it is unfinished and the pending secret is still
    /// `pending` (so of two racing confirmations one wins, and a restarted setup is not
    /// enabled by a code of the old one). Sets the confirmation time to now.
    Enable {
        /// The sealed pending secret the confirmation was checked against.
        pending: String,
        /// The sealed secret to keep.
        secret: String,
        /// The recovery codes' digests (JSON).
        recovery_codes: String,
    },
    /// Replaces the recovery codes only if they are still exactly `expected` and enrolment is
    /// finished: consuming one code is exactly-once under concurrency.
    ConsumeCode {
        /// The digests as read.
        expected: String,
        /// The digests without the used one.
        recovery_codes: String,
    },
    /// Replaces the recovery codes if enrolment is finished.
    Regenerate {
        /// The new digests (JSON).
        recovery_codes: String,
    },
    /// Clears all four columns. Unconditional.
    Disable,
}

impl fmt::Debug for MfaWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MfaWrite::Pending { .. } => "MfaWrite::Pending",
            MfaWrite::Enable { .. } => "MfaWrite::Enable",
            MfaWrite::ConsumeCode { .. } => "MfaWrite::ConsumeCode",
            MfaWrite::Regenerate { .. } => "MfaWrite::Regenerate",
            MfaWrite::Disable => "MfaWrite::Disable",
        })
    }
}

impl User {
    /// Whether the account has a password that can verify.
    pub fn has_usable_password(&self) -> bool {
        self.hashed_password
            .as_ref()
            .is_some_and(|h| !h.is_unusable())
    }

    /// Account 1, active and unverified, with `email`, the user name `ada` and the hash
    /// `hash`: the fixture of this crate's unit tests.
    #[cfg(test)]
    pub(crate) fn fixture(email: &str, hash: &str) -> User {
        User {
            id: UserId::Int(1),
            email: Some(email.into()),
            username: Some("ada".into()),
            hashed_password: Some(PasswordHash(hash.into())),
            is_active: true,
            is_superuser: false,
            email_verified: false,
            token_version: 0,
            oauth_provider: None,
            provider_ids: BTreeMap::new(),
            mfa: MfaColumns::default(),
        }
    }
}

/// What creating a user takes.
#[derive(Clone, Debug, PartialEq)]
pub struct NewUser {
    /// Email (canonicalised by the store).
    pub email: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// Password hash.
    pub hashed_password: PasswordHash,
    /// Superuser flag (only ever set by the application, never from a request body).
    pub is_superuser: bool,
    /// Verified flag (only ever set by crudauth itself).
    pub email_verified: bool,
    /// The provider account the user is created from (an OAuth sign-up): the store sets
    /// `{provider}_id` to the subject, `oauth_provider` to the provider, and the OAuth
    /// timestamps when the table has them.
    pub provider: Option<ProviderAccount>,
}

/// An account at an OAuth or OpenID Connect provider: the provider's name as configured
/// (`google`, `oidc`, …; its column is `{provider}_id`) and the account's stable id there
/// (`sub`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderAccount {
    /// The provider's name.
    pub provider: String,
    /// The account's id at the provider.
    pub subject: String,
}

/// Attaching a provider account to an existing user (see [`UserStore::link_provider`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderLink {
    /// The provider account.
    pub account: ProviderAccount,
    /// `Some(unusable hash)` when the link also *claims* the account, whose own email was
    /// never verified: the password becomes this unusable hash, the email verified, the
    /// two-factor columns are cleared and `token_version` moves, so whoever registered the
    /// address first loses the account to its provider-verified owner.
    pub claim: Option<PasswordHash>,
}

impl NewUser {
    /// An ordinary user with an email, a user name and a password hash.
    pub fn new(
        email: impl Into<String>,
        username: impl Into<String>,
        hashed_password: impl Into<String>,
    ) -> Self {
        Self {
            email: Some(email.into()),
            username: Some(username.into()),
            hashed_password: PasswordHash(hashed_password.into()),
            is_superuser: false,
            email_verified: false,
            provider: None,
        }
    }
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserUpdate {
    /// A new password hash.
    pub hashed_password: Option<PasswordHash>,
    /// A new email (canonicalised by the store).
    pub email: Option<String>,
    /// A new verified flag.
    pub email_verified: Option<bool>,
    /// A new active flag.
    pub is_active: Option<bool>,
    /// Adds one to `token_version` atomically (in the same statement as the other changes).
    pub bump_token_version: bool,
}

/// The logical fields a login identifier can be matched against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoginField {
    /// `email`: matched trimmed and case-insensitively.
    Email,
    /// `username`: matched exactly.
    Username,
}

impl LoginField {
    /// The logical field name (`email`, `username`).
    pub fn name(self) -> &'static str {
        match self {
            LoginField::Email => "email",
            LoginField::Username => "username",
        }
    }
}

/// What a user store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum UserStoreError {
    /// A unique login field is already taken.
    #[error("{} already taken", .field.name())]
    Duplicate {
        /// The field that collided.
        field: LoginField,
    },
    /// Some other uniqueness constraint refused the row.
    #[error("account already exists")]
    Conflict,
    /// The database failed or could not be reached.
    #[error("user store unavailable: {0}")]
    Unavailable(String),
}

/// The application's user table.
#[async_trait]
pub trait UserStore: Send + Sync + fmt::Debug + 'static {
    /// The user with this primary key. An id of the wrong shape (text for an integer key) is
    /// simply not found.
    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, UserStoreError>;

    /// The user whose `field` equals `value` (`value` already canonical for email).
    async fn find_by_field(
        &self,
        field: LoginField,
        value: &str,
    ) -> Result<Option<User>, UserStoreError>;

    /// Creates a user; a taken email or username is [`UserStoreError::Duplicate`] naming it.
    async fn create(&self, user: NewUser) -> Result<User, UserStoreError>;

    /// Applies `changes` and returns the updated user, `None` when no such user exists. A taken
    /// email is [`UserStoreError::Duplicate`].
    async fn update(
        &self,
        id: &UserId,
        changes: UserUpdate,
    ) -> Result<Option<User>, UserStoreError>;

    /// Whether the table keeps a `token_version` that `bump_token_version` really moves.
    /// Without it nothing issued before a password change, reset or logout-all can be told
    /// apart from what is issued after, so bearer and refresh tokens cannot be revoked;
    /// crudauth-axum's `build()` refuses such a store unless the application opts out
    /// explicitly. Default `true`.
    fn supports_token_version(&self) -> bool {
        true
    }

    /// Which of crudauth's four two-factor columns ([`MFA_FIELDS`]) the table lacks; two-factor
    /// authentication needs all of them, and crudauth-axum's `build()` refuses to turn it on
    /// while any is missing, naming them. Default: all four (a store that implements
    /// [`UserStore::claim_totp_step`] and [`UserStore::write_mfa`] returns none).
    fn missing_mfa_fields(&self) -> Vec<&'static str> {
        MFA_FIELDS.to_vec()
    }

    /// Claims TOTP step `step` for the user: sets `totp_last_step` to `step` only if it is
    /// unset or lower — one conditional `UPDATE`, so of any number of concurrent claims of a
    /// step exactly one wins, and no equal or earlier step is ever accepted again. `true` when
    /// this call claimed it; `false` also when the user does not exist.
    async fn claim_totp_step(&self, id: &UserId, step: i64) -> Result<bool, UserStoreError> {
        let _ = (id, step);
        Err(UserStoreError::Unavailable(
            "this user store keeps no two-factor columns".to_owned(),
        ))
    }

    /// Applies `write` to the user's two-factor columns, atomically and only under the
    /// condition the write names. `true` when it wrote; `false` when the condition did not hold
    /// or the user does not exist.
    async fn write_mfa(&self, id: &UserId, write: MfaWrite) -> Result<bool, UserStoreError> {
        let _ = (id, write);
        Err(UserStoreError::Unavailable(
            "this user store keeps no two-factor columns".to_owned(),
        ))
    }

    /// Whether the table has the `{provider}_id` column an OAuth provider of that name links
    /// accounts on; crudauth-axum's `build()` refuses a provider without one. Default `false`.
    fn supports_provider(&self, provider: &str) -> bool {
        let _ = provider;
        false
    }

    /// The longest value the table's `field` column holds, in characters, when it is known: a
    /// longer provider email is refused (`email_too_long`) and generated user names are cut
    /// to it. Default: unknown.
    fn max_length(&self, field: LoginField) -> Option<usize> {
        let _ = field;
        None
    }

    /// A number that moves whenever any writer may have changed the table (this process,
    /// another worker, an operator's SQL), read without a query; `None` when the store cannot
    /// tell. The user cache ([`CachedUsers`]) reads it on every lookup and forgets every row it
    /// holds when it has moved, so edits made behind crudauth's back hold from the next request
    /// instead of after the cache's time to live. It is called on every authenticated request:
    /// it must cost no more than a read of a few bytes the operating system already holds.
    /// Default: `None`.
    fn change_counter(&self) -> Option<u64> {
        None
    }

    /// The user whose `{provider}_id` is `subject`.
    async fn find_by_provider(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<User>, UserStoreError> {
        let _ = (provider, subject);
        Err(UserStoreError::Unavailable(
            "this user store keeps no provider columns".to_owned(),
        ))
    }

    /// Links `link.account` to the user `id` in one conditional `UPDATE`: sets
    /// `{provider}_id`, `oauth_provider` and `oauth_updated_at`, only while the user has no
    /// `{provider}_id` yet and, for a claim, while its email is still unverified; a claim
    /// also writes the unusable password hash it carries, marks the email verified, clears the four
    /// two-factor columns and adds one to `token_version`. `true` when it wrote; `false` when
    /// the condition did not hold or the user does not exist. A subject linked to another
    /// user already is [`UserStoreError::Conflict`].
    async fn link_provider(
        &self,
        id: &UserId,
        link: &ProviderLink,
    ) -> Result<bool, UserStoreError> {
        let _ = (id, link);
        Err(UserStoreError::Unavailable(
            "this user store keeps no provider columns".to_owned(),
        ))
    }
}

/// An email address as stored and compared: trimmed, lower-case.
pub fn canonical_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Finds the user a login identifier names: the first of `order`'s fields that matches.
///
/// Every field in `order` is looked up, whatever the earlier ones found, so the number of
/// queries (and their time) is the same for an identifier that names an account by its first
/// field, by a later one, or not at all: the lookup tells an observer nothing. (A field the
/// identifier cannot be, an empty one, is skipped whatever the table holds.)
pub async fn find_by_login(
    users: &dyn UserStore,
    order: &[LoginField],
    identifier: &str,
) -> Result<Option<User>, UserStoreError> {
    let mut found = None;
    for field in order {
        let value = match field {
            LoginField::Email => canonical_email(identifier),
            LoginField::Username => identifier.to_owned(),
        };
        if value.is_empty() {
            continue;
        }
        let user = users.find_by_field(*field, &value).await?;
        if found.is_none() {
            found = user;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A user table that counts the login lookups asked of it, and reports a change counter
    /// the test moves by hand (for the user cache's tests: an edit behind its back).
    #[derive(Debug, Clone, Default)]
    pub(super) struct Counting {
        inner: MemoryUsers,
        lookups: Arc<AtomicUsize>,
        pub(super) changes: Arc<AtomicU64>,
    }

    #[async_trait]
    impl UserStore for Counting {
        async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, UserStoreError> {
            self.inner.find_by_id(id).await
        }

        async fn find_by_field(
            &self,
            field: LoginField,
            value: &str,
        ) -> Result<Option<User>, UserStoreError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            self.inner.find_by_field(field, value).await
        }

        async fn create(&self, user: NewUser) -> Result<User, UserStoreError> {
            self.inner.create(user).await
        }

        async fn update(
            &self,
            id: &UserId,
            changes: UserUpdate,
        ) -> Result<Option<User>, UserStoreError> {
            self.inner.update(id, changes).await
        }

        fn change_counter(&self) -> Option<u64> {
            Some(self.changes.load(Ordering::SeqCst))
        }
    }

    #[tokio::test]
    async fn a_login_lookup_costs_the_same_queries_whether_or_not_it_matches() {
        let users = Counting::default();
        users
            .create(NewUser::new(
                "kim@example.com",
                "kim",
                "$argon2id$x".to_owned(),
            ))
            .await
            .unwrap();
        let order = [LoginField::Email, LoginField::Username];
        for (identifier, found) in [
            ("kim@example.com", true),
            ("KIM@example.com", true),
            ("kim", true),
            ("nobody", false),
            ("nobody@example.com", false),
        ] {
            let before = users.lookups.load(Ordering::SeqCst);
            let user = find_by_login(&users, &order, identifier).await.unwrap();
            assert_eq!(user.is_some(), found, "{identifier}");
            assert_eq!(
                users.lookups.load(Ordering::SeqCst) - before,
                2,
                "{identifier}: every field is asked"
            );
        }
        // The first field in order wins when both match.
        users
            .create(NewUser::new(
                "x@example.com",
                "kim@example.com",
                "h".to_owned(),
            ))
            .await
            .unwrap();
        let user = find_by_login(&users, &order, "kim@example.com")
            .await
            .unwrap();
        assert_eq!(user.unwrap().username.as_deref(), Some("kim"));
    }

    #[test]
    fn a_user_never_serialises_its_password_hash() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
        let user = User {
            id: UserId::Int(7),
            email: Some("ada@example.com".into()),
            username: Some("ada".into()),
            hashed_password: Some(PasswordHash(hash.into())),
            is_active: true,
            is_superuser: false,
            email_verified: true,
            token_version: 3,
            oauth_provider: None,
            provider_ids: BTreeMap::new(),
            mfa: MfaColumns {
                secret: Some("gAAAAAsealed".into()),
                confirmed: true,
                last_step: Some(1),
                recovery_codes: Some("[\"digest\"]".into()),
            },
        };
        let json = serde_json::to_value(&user).unwrap();
        assert!(json.get("hashed_password").is_none(), "{json}");
        assert_eq!(json["username"], "ada", "the rest is serialised");
        let text = serde_json::to_string(&user).unwrap();
        assert!(!text.contains("argon2id"), "{text}");
        assert!(!format!("{user:?}").contains("argon2id"), "nor in Debug");
        for hidden in ["totp", "mfa", "gAAAA", "digest"] {
            assert!(!text.contains(hidden), "{text}");
        }
        assert!(
            !format!("{user:?}").contains("gAAAA"),
            "the sealed secret is redacted"
        );
        assert!(
            !format!("{user:?}").contains("digest"),
            "the code digests are redacted"
        );
        // Reading a row that has no hash (what serialising gives back) works.
        let back: User = serde_json::from_value(json).unwrap();
        assert_eq!(back.hashed_password, None);
    }
}
