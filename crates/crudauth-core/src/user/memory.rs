//! An in-memory user table, for tests and examples. It has a `{provider}_id` column for every
//! provider name, and no length limits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::{
    canonical_email, LoginField, MfaColumns, MfaWrite, NewUser, ProviderLink, User, UserId,
    UserStore, UserStoreError, UserUpdate,
};

/// A [`UserStore`] in process memory with integer ids from 1.
#[derive(Debug, Clone, Default)]
pub struct MemoryUsers {
    inner: Arc<RwLock<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: i64,
    rows: BTreeMap<i64, User>,
    by_email: HashMap<String, i64>,
    by_username: HashMap<String, i64>,
    /// `(provider, subject)` → id: every provider column is unique.
    by_provider: HashMap<(String, String), i64>,
}

impl MemoryUsers {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn int_id(id: &UserId) -> Option<i64> {
    match id {
        UserId::Int(n) => Some(*n),
        UserId::Text(s) => s.parse().ok(),
    }
}

#[async_trait]
impl UserStore for MemoryUsers {
    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, UserStoreError> {
        Ok(int_id(id).and_then(|n| self.read().rows.get(&n).cloned()))
    }

    async fn find_by_field(
        &self,
        field: LoginField,
        value: &str,
    ) -> Result<Option<User>, UserStoreError> {
        let table = self.read();
        let id = match field {
            LoginField::Email => table.by_email.get(&canonical_email(value)),
            LoginField::Username => table.by_username.get(value),
        };
        Ok(id.and_then(|n| table.rows.get(n)).cloned())
    }

    async fn create(&self, new: NewUser) -> Result<User, UserStoreError> {
        let mut table = self.write();
        let email = new.email.as_deref().map(canonical_email);
        if email
            .as_ref()
            .is_some_and(|e| table.by_email.contains_key(e))
        {
            return Err(UserStoreError::Duplicate {
                field: LoginField::Email,
            });
        }
        if new
            .username
            .as_ref()
            .is_some_and(|u| table.by_username.contains_key(u))
        {
            return Err(UserStoreError::Duplicate {
                field: LoginField::Username,
            });
        }
        let provider = new
            .provider
            .map(|account| (account.provider, account.subject));
        if provider
            .as_ref()
            .is_some_and(|key| table.by_provider.contains_key(key))
        {
            return Err(UserStoreError::Conflict);
        }
        table.next_id += 1;
        let id = table.next_id;
        let user = User {
            id: UserId::Int(id),
            email: email.clone(),
            username: new.username.clone(),
            hashed_password: Some(new.hashed_password),
            is_active: true,
            is_superuser: new.is_superuser,
            email_verified: new.email_verified,
            token_version: 0,
            oauth_provider: provider.as_ref().map(|(p, _)| p.clone()),
            provider_ids: provider.iter().cloned().collect::<BTreeMap<_, _>>(),
            mfa: MfaColumns::default(),
        };
        if let Some(key) = provider {
            table.by_provider.insert(key, id);
        }
        if let Some(e) = email {
            table.by_email.insert(e, id);
        }
        if let Some(u) = new.username {
            table.by_username.insert(u, id);
        }
        table.rows.insert(id, user.clone());
        Ok(user)
    }

    async fn update(
        &self,
        id: &UserId,
        changes: UserUpdate,
    ) -> Result<Option<User>, UserStoreError> {
        let Some(n) = int_id(id) else { return Ok(None) };
        let mut table = self.write();
        let new_email = changes.email.as_deref().map(canonical_email);
        if let Some(e) = &new_email {
            if table.by_email.get(e).is_some_and(|owner| *owner != n) {
                return Err(UserStoreError::Duplicate {
                    field: LoginField::Email,
                });
            }
        }
        let Some(user) = table.rows.get_mut(&n) else {
            return Ok(None);
        };
        let old_email = user.email.clone();
        if let Some(h) = changes.hashed_password {
            user.hashed_password = Some(h);
        }
        if let Some(e) = &new_email {
            user.email = Some(e.clone());
        }
        if let Some(v) = changes.email_verified {
            user.email_verified = v;
        }
        if let Some(a) = changes.is_active {
            user.is_active = a;
        }
        if changes.bump_token_version {
            user.token_version += 1;
        }
        let updated = user.clone();
        if let Some(e) = new_email {
            if let Some(old) = old_email {
                table.by_email.remove(&old);
            }
            table.by_email.insert(e, n);
        }
        Ok(Some(updated))
    }

    fn missing_mfa_fields(&self) -> Vec<&'static str> {
        Vec::new()
    }

    async fn claim_totp_step(&self, id: &UserId, step: i64) -> Result<bool, UserStoreError> {
        let Some(n) = int_id(id) else {
            return Ok(false);
        };
        let mut table = self.write();
        let Some(user) = table.rows.get_mut(&n) else {
            return Ok(false);
        };
        if user.mfa.last_step.is_some_and(|last| last >= step) {
            return Ok(false);
        }
        user.mfa.last_step = Some(step);
        Ok(true)
    }

    async fn write_mfa(&self, id: &UserId, write: MfaWrite) -> Result<bool, UserStoreError> {
        let Some(n) = int_id(id) else {
            return Ok(false);
        };
        let mut table = self.write();
        let Some(user) = table.rows.get_mut(&n) else {
            return Ok(false);
        };
        let mfa = &mut user.mfa;
        match write {
            MfaWrite::Pending { secret } => {
                *mfa = MfaColumns {
                    secret: Some(secret),
                    ..MfaColumns::default()
                };
            }
            MfaWrite::Enable {
                pending,
                secret,
                recovery_codes,
            } => {
                if mfa.confirmed || mfa.secret.as_deref() != Some(pending.as_str()) {
                    return Ok(false);
                }
                mfa.secret = Some(secret);
                mfa.confirmed = true;
                mfa.recovery_codes = Some(recovery_codes);
            }
            MfaWrite::ConsumeCode {
                expected,
                recovery_codes,
            } => {
                if !mfa.confirmed || mfa.recovery_codes.as_deref() != Some(expected.as_str()) {
                    return Ok(false);
                }
                mfa.recovery_codes = Some(recovery_codes);
            }
            MfaWrite::Regenerate { recovery_codes } => {
                if !mfa.confirmed {
                    return Ok(false);
                }
                mfa.recovery_codes = Some(recovery_codes);
            }
            MfaWrite::Disable => *mfa = MfaColumns::default(),
        }
        Ok(true)
    }

    fn supports_provider(&self, _provider: &str) -> bool {
        true
    }

    async fn find_by_provider(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<User>, UserStoreError> {
        let table = self.read();
        let id = table
            .by_provider
            .get(&(provider.to_owned(), subject.to_owned()));
        Ok(id.and_then(|n| table.rows.get(n)).cloned())
    }

    async fn link_provider(
        &self,
        id: &UserId,
        link: &ProviderLink,
    ) -> Result<bool, UserStoreError> {
        let Some(n) = int_id(id) else {
            return Ok(false);
        };
        let mut table = self.write();
        let key = (link.account.provider.clone(), link.account.subject.clone());
        if table.by_provider.get(&key).is_some_and(|owner| *owner != n) {
            return Err(UserStoreError::Conflict);
        }
        let Some(user) = table.rows.get_mut(&n) else {
            return Ok(false);
        };
        if user.provider_ids.contains_key(&key.0) || (link.claim.is_some() && user.email_verified) {
            return Ok(false);
        }
        user.provider_ids.insert(key.0.clone(), key.1.clone());
        user.oauth_provider = Some(key.0.clone());
        if let Some(unusable) = &link.claim {
            user.hashed_password = Some(unusable.clone());
            user.email_verified = true;
            user.mfa = MfaColumns::default();
            user.token_version += 1;
        }
        table.by_provider.insert(key, n);
        Ok(true)
    }
}
