//! How a provider account becomes a local account, by crudauth 0.8's rules:
//!
//! 1. an account already linked to this provider account signs in (unless disabled);
//! 2. without an email the sign-in is refused (`email_missing`), and so it is with an email the
//!    provider has not verified (`email_unverified`), which never links nor creates anything;
//! 3. an account with that email is linked (unless disabled, or linked to another account of
//!    this provider: `provider_already_linked`); if its own email was never verified, the link
//!    *claims* it (password unusable, two-factor removed, `token_version` moved; the caller ends
//!    its sessions), so an address squatted by a pre-registration goes back to its owner;
//! 4. otherwise a new verified account is created, with a user name made from the profile,
//!    sanitised and made unique (`email_too_long` when the address does not fit the column).
//!
//! ```
//! use crudauth_core::oauth::accounts::{resolve, Refusal, ResolveError};
//! use crudauth_core::oauth::UserInfo;
//! use crudauth_core::user::MemoryUsers;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let users = MemoryUsers::new();
//! let info = UserInfo {
//!     subject: "g-1".into(),
//!     email: Some("Ada@Example.com".into()),
//!     email_verified: true,
//!     given_name: Some("Ada".into()),
//!     ..UserInfo::default()
//! };
//! let first = resolve(&users, "google", &info).await.unwrap();
//! assert!(first.created);
//! assert_eq!(first.user.username.as_deref(), Some("ada"));
//! let again = resolve(&users, "google", &info).await.unwrap();
//! assert_eq!((again.created, again.user.id), (false, first.user.id));
//!
//! let unverified = UserInfo { subject: "g-2".into(), email_verified: false, ..info };
//! assert!(matches!(
//!     resolve(&users, "google", &unverified).await,
//!     Err(ResolveError::Refused(Refusal::EmailUnverified))
//! ));
//! # });
//! ```

use crate::secret::random_token;
use crate::user::{
    canonical_email, LoginField, NewUser, PasswordHash, ProviderAccount, ProviderLink, User,
    UserStore, UserStoreError,
};

use super::UserInfo;

/// The longest generated user name when the table does not say (crudauth's 32).
const DEFAULT_USERNAME_MAX: usize = 32;
/// Numbered suffixes tried before a random one.
const NUMBERED_SUFFIXES: usize = 99;
/// How often the resolution starts over after losing a race to a concurrent sign-in.
const ATTEMPTS: usize = 3;

/// Why a provider account cannot sign in; [`Refusal::code`] is crudauth's callback error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The provider gave no email address.
    EmailMissing,
    /// The provider has not verified the address.
    EmailUnverified,
    /// The address is longer than the table's `email` column.
    EmailTooLong,
    /// The local account is linked to another account of this provider.
    ProviderAlreadyLinked,
    /// The local account is disabled.
    AccountInactive,
}

impl Refusal {
    /// crudauth's error code (`?error=<code>` on the callback's redirect).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::EmailMissing => "email_missing",
            Refusal::EmailUnverified => "email_unverified",
            Refusal::EmailTooLong => "email_too_long",
            Refusal::ProviderAlreadyLinked => "provider_already_linked",
            Refusal::AccountInactive => "account_inactive",
        }
    }
}

/// Why [`resolve`] did not give an account.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The rules refuse the sign-in.
    #[error("refused: {}", .0.code())]
    Refused(Refusal),
    /// The user table failed.
    #[error(transparent)]
    Store(#[from] UserStoreError),
}

/// The local account a provider account signs in as.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The account, as it is now.
    pub user: User,
    /// Whether it was created by this sign-in.
    pub created: bool,
    /// Whether this sign-in claimed it (its sessions must end).
    pub claimed: bool,
}

fn refuse<T>(refusal: Refusal) -> Result<T, ResolveError> {
    Err(ResolveError::Refused(refusal))
}

fn active(user: User) -> Result<User, ResolveError> {
    if user.is_active {
        Ok(user)
    } else {
        refuse(Refusal::AccountInactive)
    }
}

/// Resolves the account of `info` at `provider` (its column is `{provider}_id`): see the
/// module's rules. Nothing is written for a refusal. Writes are conditional, so a concurrent
/// sign-in of the same account, or a concurrent change to the row, makes this look again
/// rather than overwrite.
pub async fn resolve(
    users: &dyn UserStore,
    provider: &str,
    info: &UserInfo,
) -> Result<Resolved, ResolveError> {
    for _ in 0..ATTEMPTS {
        if let Some(resolved) = attempt(users, provider, info).await? {
            return Ok(resolved);
        }
    }
    Err(ResolveError::Store(UserStoreError::Conflict))
}

/// One pass of the rules; `None` when a write lost a race and the pass must start over.
async fn attempt(
    users: &dyn UserStore,
    provider: &str,
    info: &UserInfo,
) -> Result<Option<Resolved>, ResolveError> {
    if let Some(user) = users.find_by_provider(provider, &info.subject).await? {
        return Ok(Some(Resolved {
            user: active(user)?,
            created: false,
            claimed: false,
        }));
    }
    let Some(email) = info
        .email
        .as_deref()
        .map(canonical_email)
        .filter(|e| !e.is_empty())
    else {
        return refuse(Refusal::EmailMissing);
    };
    if !info.email_verified {
        return refuse(Refusal::EmailUnverified);
    }
    let account = ProviderAccount {
        provider: provider.to_owned(),
        subject: info.subject.clone(),
    };
    if let Some(existing) = users.find_by_field(LoginField::Email, &email).await? {
        let existing = active(existing)?;
        if existing.provider_ids.contains_key(provider) {
            return refuse(Refusal::ProviderAlreadyLinked);
        }
        let claim = !existing.email_verified;
        let link = ProviderLink {
            account,
            claim: claim.then(PasswordHash::unusable),
        };
        return match users.link_provider(&existing.id, &link).await {
            Ok(true) => Ok(users.find_by_id(&existing.id).await?.map(|user| Resolved {
                user,
                created: false,
                claimed: claim,
            })),
            // The row changed since it was read, or the provider account was linked to
            // another one meanwhile: look again.
            Ok(false) | Err(UserStoreError::Conflict) => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    if users
        .max_length(LoginField::Email)
        .is_some_and(|max| email.chars().count() > max)
    {
        return refuse(Refusal::EmailTooLong);
    }
    let max = users
        .max_length(LoginField::Username)
        .unwrap_or(DEFAULT_USERNAME_MAX);
    let candidate = info
        .username
        .as_deref()
        .or(info.given_name.as_deref())
        .or(info.name.as_deref())
        .or(email.split('@').next())
        .filter(|c| !c.is_empty())
        .unwrap_or("user");
    let base = sanitise_username(candidate, max);
    let mut username = unique_username(users, &base, max).await?;
    for retry in [false, true] {
        let new = NewUser {
            email: Some(email.clone()),
            username: Some(username.clone()),
            hashed_password: PasswordHash::unusable(),
            is_superuser: false,
            email_verified: true,
            provider: Some(account.clone()),
        };
        match users.create(new).await {
            Ok(user) => {
                return Ok(Some(Resolved {
                    user,
                    created: true,
                    claimed: false,
                }))
            }
            // Someone took the name in between: once more with a random suffix.
            Err(UserStoreError::Duplicate {
                field: LoginField::Username,
            }) if !retry => username = with_suffix(&base, &random_token(6)[..8], max),
            // The address or the provider account was taken meanwhile: look again.
            Err(UserStoreError::Duplicate { .. } | UserStoreError::Conflict) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// A user name from `raw`, as crudauth makes one: lower case, every run of characters outside
/// `a-z0-9` one `_`, no `_` at either end, `user_` before anything shorter than two
/// characters, at most `max` characters.
///
/// ```
/// use crudauth_core::oauth::accounts::sanitise_username;
///
/// assert_eq!(sanitise_username("Ada Lovelace", 32), "ada_lovelace");
/// assert_eq!(sanitise_username("é", 32), "user");
/// assert_eq!(sanitise_username("x", 32), "user_x");
/// ```
pub fn sanitise_username(raw: &str, max: usize) -> String {
    let mut value = String::with_capacity(raw.len());
    for c in raw.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            value.push(c);
        } else if !value.ends_with('_') {
            value.push('_');
        }
    }
    let mut value = value.trim_matches('_').to_owned();
    if value.len() < 2 {
        value = format!("user_{value}").trim_matches('_').to_owned();
    }
    value.truncate(max);
    value.trim_end_matches('_').to_owned()
}

/// `base` with `_suffix`, `base` cut so the whole fits `max`.
fn with_suffix(base: &str, suffix: &str, max: usize) -> String {
    let room = max.saturating_sub(suffix.len() + 1);
    if room == 0 {
        return suffix.chars().take(max).collect();
    }
    let stem: String = base.chars().take(room).collect();
    format!("{}_{suffix}", stem.trim_end_matches('_'))
}

/// `base` if free, else `base_1` … `base_99`, else `base_` and 8 random characters. Best
/// effort: the insert's uniqueness is the real check.
async fn unique_username(
    users: &dyn UserStore,
    base: &str,
    max: usize,
) -> Result<String, UserStoreError> {
    let taken = |name: String| async move {
        users
            .find_by_field(LoginField::Username, &name)
            .await
            .map(|found| (found.is_some(), name))
    };
    let (used, name) = taken(base.to_owned()).await?;
    if !used {
        return Ok(name);
    }
    for n in 1..=NUMBERED_SUFFIXES {
        let (used, name) = taken(with_suffix(base, &n.to_string(), max)).await?;
        if !used {
            return Ok(name);
        }
    }
    Ok(with_suffix(base, &random_token(6)[..8], max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::{MemoryUsers, MfaWrite, UserUpdate};

    fn info(subject: &str, email: &str, verified: bool) -> UserInfo {
        UserInfo {
            subject: subject.into(),
            email: Some(email.into()),
            email_verified: verified,
            ..UserInfo::default()
        }
    }

    async fn refusal(users: &MemoryUsers, provider: &str, info: &UserInfo) -> Option<Refusal> {
        match resolve(users, provider, info).await {
            Err(ResolveError::Refused(r)) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn user_names_are_sanitised_as_crudauth_does() {
        assert_eq!(sanitise_username("  John.Doe+x@", 32), "john_doe_x");
        assert_eq!(sanitise_username("__a__", 32), "user_a");
        assert_eq!(sanitise_username("", 32), "user");
        assert_eq!(sanitise_username(&"ab".repeat(40), 32).len(), 32);
        assert_eq!(sanitise_username("abcdefgh_ijk", 9), "abcdefgh");
        assert_eq!(with_suffix("abcdefgh", "12", 8), "abcde_12");
        assert_eq!(with_suffix("abc", "123456789", 8), "12345678");
    }

    #[tokio::test]
    async fn taken_names_get_numbered_suffixes() {
        let users = MemoryUsers::new();
        for (i, expected) in ["ada", "ada_1", "ada_2"].into_iter().enumerate() {
            let mut who = info(&format!("s{i}"), &format!("ada{i}@x.io"), true);
            who.username = Some("Ada".into());
            let made = resolve(&users, "github", &who).await.unwrap();
            assert_eq!(made.user.username.as_deref(), Some(expected));
            assert!(made.user.email_verified && !made.user.has_usable_password());
        }
    }

    #[tokio::test]
    async fn refusals_write_nothing() {
        let users = MemoryUsers::new();
        let mut none = info("s1", "", true);
        none.email = None;
        assert_eq!(
            refusal(&users, "github", &none).await,
            Some(Refusal::EmailMissing)
        );
        let unverified = info("s1", "a@x.io", false);
        assert_eq!(
            refusal(&users, "github", &unverified).await,
            Some(Refusal::EmailUnverified)
        );
        assert!(users
            .find_by_field(LoginField::Email, "a@x.io")
            .await
            .unwrap()
            .is_none());
        let ada = users
            .create(NewUser::new("ada@x.io", "ada", "$argon2id$x"))
            .await
            .unwrap();
        users
            .update(
                &ada.id,
                UserUpdate {
                    is_active: Some(false),
                    ..UserUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            refusal(&users, "github", &info("s2", "ada@x.io", true)).await,
            Some(Refusal::AccountInactive)
        );
        let after = users.find_by_id(&ada.id).await.unwrap().unwrap();
        assert!(
            after.provider_ids.is_empty(),
            "a disabled account is not linked"
        );
    }

    #[tokio::test]
    async fn a_verified_address_links_and_an_unverified_account_is_claimed() {
        let users = MemoryUsers::new();
        let ada = users
            .create(NewUser::new("ada@x.io", "ada", "$argon2id$x"))
            .await
            .unwrap();
        users
            .write_mfa(&ada.id, MfaWrite::Pending { secret: "p".into() })
            .await
            .unwrap();
        let claimed = resolve(&users, "github", &info("gh-1", "ADA@x.io", true))
            .await
            .unwrap();
        assert!(claimed.claimed && !claimed.created);
        assert_eq!(claimed.user.id, ada.id);
        assert!(!claimed.user.has_usable_password() && claimed.user.email_verified);
        assert_eq!(claimed.user.token_version, ada.token_version + 1);
        assert_eq!(claimed.user.mfa.secret, None);
        // Verified now: a second provider links without claiming.
        let linked = resolve(&users, "google", &info("g-1", "ada@x.io", true))
            .await
            .unwrap();
        assert!(!linked.claimed);
        assert_eq!(linked.user.token_version, claimed.user.token_version);
        // Another GitHub account with the same address is refused.
        assert_eq!(
            refusal(&users, "github", &info("gh-2", "ada@x.io", true)).await,
            Some(Refusal::ProviderAlreadyLinked)
        );
    }

    /// A table whose email column holds 10 characters.
    #[derive(Debug, Default)]
    struct Narrow(MemoryUsers);

    #[async_trait::async_trait]
    impl UserStore for Narrow {
        async fn find_by_id(
            &self,
            id: &crate::user::UserId,
        ) -> Result<Option<User>, UserStoreError> {
            self.0.find_by_id(id).await
        }
        async fn find_by_field(
            &self,
            f: LoginField,
            v: &str,
        ) -> Result<Option<User>, UserStoreError> {
            self.0.find_by_field(f, v).await
        }
        async fn create(&self, user: NewUser) -> Result<User, UserStoreError> {
            self.0.create(user).await
        }
        async fn update(
            &self,
            id: &crate::user::UserId,
            changes: UserUpdate,
        ) -> Result<Option<User>, UserStoreError> {
            self.0.update(id, changes).await
        }
        fn max_length(&self, field: LoginField) -> Option<usize> {
            Some(match field {
                LoginField::Email => 10,
                LoginField::Username => 4,
            })
        }
        async fn find_by_provider(&self, p: &str, s: &str) -> Result<Option<User>, UserStoreError> {
            self.0.find_by_provider(p, s).await
        }
    }

    #[tokio::test]
    async fn addresses_longer_than_the_column_are_refused() {
        let users = Narrow::default();
        let long = info("s", "abcdefgh@x.io", true);
        assert!(matches!(
            resolve(&users, "oidc", &long).await,
            Err(ResolveError::Refused(Refusal::EmailTooLong))
        ));
        let short = info("s", "abcdef@x.io".trim_start_matches('a'), true);
        let made = resolve(&users, "oidc", &short).await.unwrap();
        assert_eq!(made.user.username.as_deref(), Some("bcde"));
    }
}
