//! Immediate revocation on every worker: what this worker forgets when the change feed says a
//! user changed, and [`CrudAuth::user_changed`] for changes made behind crudauth's back.

use crudauth_core::changes::ChangeListener;
use crudauth_core::user::UserId;
use crudauth_core::StoreError;

use crate::state::CrudAuth;

/// This worker's caches, as the change feed's listener: a changed user's cached row goes, and
/// with it every bearer principal remembered from that row (they are only used while the row
/// they were built from is the one cached, see `bearer::remembered`); "everything changed"
/// empties both.
pub(crate) struct Evictor {
    auth: CrudAuth,
}

impl Evictor {
    pub(crate) fn new(auth: &CrudAuth) -> Self {
        Self { auth: auth.clone() }
    }
}

impl ChangeListener for Evictor {
    fn user_changed(&self, id: &UserId) {
        self.auth.users().forget(id);
    }

    fn all_changed(&self) {
        self.auth.users().forget_all();
        if let Some(bearer) = self.auth.bearer() {
            bearer.remembered.clear();
        }
    }
}

impl CrudAuth {
    /// Tells every worker (this one at once, the others over the change feed) that the user
    /// `id` changed, so none keeps serving its cached copy of the row. Changes made through
    /// crudauth (`auth.users().update(…)`, the password, logout-all and recovery routes) are
    /// announced by themselves; call this after editing the table directly — a superuser flag
    /// or scopes changed, an email edited, an MFA factor or OAuth identity added or removed,
    /// an account disabled in SQL (bump `token_version` in the same statement, so its
    /// credentials do not come back when it is enabled again).
    ///
    /// Fails only when the announcement could not be sent (this worker has forgotten the row
    /// regardless); the other workers then see the change after at most `user_cache_ttl`.
    pub async fn user_changed(&self, id: &UserId) -> Result<(), StoreError> {
        let users = self.users();
        users.forget(id);
        match users.feed() {
            Some(feed) => feed.publish(id).await,
            None => Ok(()),
        }
    }
}
