//! A user table for tests that watch what the library asks of it, or make it fail.
//!
//! ```no_run
//! # async fn example() {
//! use std::sync::atomic::Ordering;
//! use crudauth_tests::users::WatchedUsers;
//!
//! let users = WatchedUsers::default();
//! users.seed("ada@example.com", "ada", "correct horse battery").await;
//! users.fail_updates(true); // every update is now a database outage
//! assert_eq!(users.login_lookups.load(Ordering::SeqCst), 0);
//! # }
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crudauth_core::user::{
    LoginField, MemoryUsers, NewUser, User, UserId, UserStore, UserStoreError, UserUpdate,
};

use crate::app::new_user;

/// [`MemoryUsers`] that counts its lookups and, when told, fails its updates as a database
/// that went away would. Clones share the table, the counters and the switch.
#[derive(Debug, Clone, Default)]
pub struct WatchedUsers {
    /// The table itself.
    pub inner: MemoryUsers,
    /// Lookups by a login field (one per evaluated sign-in).
    pub login_lookups: Arc<AtomicUsize>,
    /// Lookups by id.
    pub id_lookups: Arc<AtomicUsize>,
    updates_down: Arc<AtomicBool>,
}

impl WatchedUsers {
    /// Creates a user with `password` (hashed as the test apps check it).
    pub async fn seed(&self, email: &str, username: &str, password: &str) -> User {
        self.inner
            .create(new_user(email, username, password).await)
            .await
            .unwrap()
    }

    /// While `down`, every update fails with [`UserStoreError::Unavailable`].
    pub fn fail_updates(&self, down: bool) {
        self.updates_down.store(down, Ordering::SeqCst);
    }
}

#[async_trait]
impl UserStore for WatchedUsers {
    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, UserStoreError> {
        self.id_lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.find_by_id(id).await
    }

    async fn find_by_field(
        &self,
        field: LoginField,
        value: &str,
    ) -> Result<Option<User>, UserStoreError> {
        self.login_lookups.fetch_add(1, Ordering::SeqCst);
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
        if self.updates_down.load(Ordering::SeqCst) {
            return Err(UserStoreError::Unavailable("the database is down".into()));
        }
        self.inner.update(id, changes).await
    }
}
