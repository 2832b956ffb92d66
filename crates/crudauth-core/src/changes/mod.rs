//! The **ChangeFeed** port: tells every worker at once that a user's row changed, so each one
//! drops what it derived from that row (the per-process user cache, remembered bearer
//! principals) instead of serving it for the rest of its time to live.
//!
//! Announcing costs one message per *change* (a password changed or reset, a logout-all, an
//! account disabled, rights or login details edited); serving a request costs nothing extra:
//! each worker listens on one long-lived subscription, owned by the lifespan.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use crudauth_core::changes::{ChangeFeed, ChangeListener, MemoryChangeFeed};
//! use crudauth_core::lifespan::Tasks;
//! use crudauth_core::user::UserId;
//!
//! #[derive(Default)]
//! struct Seen(Mutex<Vec<UserId>>);
//! impl ChangeListener for Seen {
//!     fn user_changed(&self, id: &UserId) { self.0.lock().unwrap().push(id.clone()); }
//!     fn all_changed(&self) {}
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let feed = MemoryChangeFeed::new();
//! let seen = Arc::new(Seen::default());
//! feed.subscribe(seen.clone(), &mut Tasks::new()).await?;
//! feed.publish(&UserId::Int(7)).await?;
//! assert_eq!(*seen.0.lock().unwrap(), [UserId::Int(7)]);
//! # Ok::<(), crudauth_core::StoreError>(()) }).unwrap();
//! ```

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

pub use memory::MemoryChangeFeed;
#[cfg(feature = "redis")]
pub use redis::RedisChangeFeed;

use crate::error::StoreResult;
use crate::lifespan::Tasks;
use crate::store::BackendKind;
use crate::user::UserId;

/// What a worker does when told that users changed: forget what it derived from their rows.
pub trait ChangeListener: Send + Sync + 'static {
    /// `id`'s row changed: forget anything derived from it.
    fn user_changed(&self, id: &UserId);

    /// Announcements may have been missed (the feed lost its connection, or fell behind):
    /// forget everything derived from any row.
    fn all_changed(&self);
}

/// Announces user changes to every worker, and delivers every worker's announcements (its own
/// included) to this worker's listener.
#[async_trait]
pub trait ChangeFeed: Send + Sync + Debug + 'static {
    /// What kind of backend carries the announcements: [`BackendKind::Memory`] reaches only
    /// this process.
    fn kind(&self) -> BackendKind;

    /// Starts delivering announcements to `listener`, registering any background task with
    /// `tasks`. Returns once listening: an announcement published after it returns is
    /// delivered. Called once by the lifespan, before serving. After losing its connection, a
    /// networked feed calls [`ChangeListener::all_changed`] once it listens again.
    async fn subscribe(
        &self,
        listener: Arc<dyn ChangeListener>,
        tasks: &mut Tasks,
    ) -> StoreResult<()>;

    /// Tells every worker that `id` changed.
    async fn publish(&self, id: &UserId) -> StoreResult<()>;

    /// Stops listening and closes connections. Called once by the lifespan at shutdown.
    async fn shutdown(&self);
}

/// The announcement's payload: the id as JSON, so `7` and `"7"` stay apart.
pub(crate) fn encode_id(id: &UserId) -> String {
    serde_json::to_string(id).unwrap_or_default()
}

/// The id in an announcement; `None` for anything else.
pub(crate) fn decode_id(payload: &[u8]) -> Option<UserId> {
    serde_json::from_slice(payload).ok()
}
