//! A per-process cache of user rows, so an authenticated request does not query SQL.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{LoginField, NewUser, User, UserId, UserStore, UserStoreError, UserUpdate};
use crate::clock::{self, Clock};
use crate::limit::duration_ms;
use crate::shard::Shards;

/// Wraps a [`UserStore`] and remembers rows read by id for a short time.
///
/// Updates made through this wrapper refresh the cached row at once. Changes made to the table
/// behind crudauth's back (or by another worker) are seen after at most `ttl` — so disabling a
/// user directly in SQL takes up to `ttl` to bite. Revocation through sessions is immediate
/// regardless: a revoked session's record is gone from the shared store. `ttl` zero disables
/// the cache.
#[derive(Debug, Clone)]
pub struct CachedUsers {
    inner: Arc<dyn UserStore>,
    rows: Arc<Shards<(Arc<User>, u64)>>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl CachedUsers {
    /// Caches rows of `inner` for `ttl`.
    pub fn new(inner: Arc<dyn UserStore>, ttl: Duration) -> Self {
        Self {
            inner,
            rows: Arc::new(Shards::new(16)),
            ttl,
            clock: clock::system(),
        }
    }

    /// The wrapped store, bypassing the cache: for checks that must see the latest row (a
    /// refresh compares `token_version`).
    pub fn uncached(&self) -> &dyn UserStore {
        self.inner.as_ref()
    }

    /// Forgets a cached row.
    pub fn forget(&self, id: &UserId) {
        let key = cache_key(id);
        self.rows.lock(&key).remove(&key);
    }

    fn remember(&self, user: Arc<User>) {
        if self.ttl.is_zero() {
            return;
        }
        let key = cache_key(&user.id);
        let expires = self.clock.now_millis() + duration_ms(self.ttl);
        self.rows.lock(&key).insert(key.clone(), (user, expires));
    }

    /// The user with this id, shared: a cache hit costs no copy of the row.
    pub async fn find_shared(&self, id: &UserId) -> Result<Option<Arc<User>>, UserStoreError> {
        if !self.ttl.is_zero() {
            let key = cache_key(id);
            let now = self.clock.now_millis();
            if let Some((user, expires)) = self.rows.lock(&key).get(&key) {
                if *expires > now {
                    return Ok(Some(user.clone()));
                }
            }
        }
        let found = self.inner.find_by_id(id).await?.map(Arc::new);
        match &found {
            Some(user) => self.remember(user.clone()),
            None => self.forget(id),
        }
        Ok(found)
    }
}

#[async_trait]
impl UserStore for CachedUsers {
    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, UserStoreError> {
        Ok(self.find_shared(id).await?.map(|user| User::clone(&user)))
    }

    async fn find_by_field(
        &self,
        field: LoginField,
        value: &str,
    ) -> Result<Option<User>, UserStoreError> {
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
        self.forget(id);
        let updated = self.inner.update(id, changes).await?;
        if let Some(user) = &updated {
            self.remember(Arc::new(user.clone()));
        }
        Ok(updated)
    }
}

/// The cache's key for an id (integer formatting without the `fmt` machinery).
fn cache_key(id: &UserId) -> String {
    match id {
        UserId::Int(n) => n.to_string(),
        UserId::Text(s) => s.clone(),
    }
}
