//! The in-process change feed: announcements reach the listeners of this process only.

use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;

use super::{ChangeFeed, ChangeListener};
use crate::error::StoreResult;
use crate::lifespan::Tasks;
use crate::store::BackendKind;
use crate::user::UserId;

/// A [`ChangeFeed`] within one process: `publish` calls every subscribed listener at once.
///
/// Clones share their listeners, so several auth objects in one process (tests, or an app
/// serving two routers) can share one feed. Listeners are held weakly: one that is dropped
/// stops listening. Under several worker processes it tells no other process anything, so
/// `initialize()` names the user cache among the per-process state.
#[derive(Debug, Clone, Default)]
pub struct MemoryChangeFeed {
    listeners: Arc<Mutex<Vec<Weak<dyn ChangeListener>>>>,
}

impl MemoryChangeFeed {
    /// A feed with no listeners.
    pub fn new() -> Self {
        Self::default()
    }

    fn live(&self) -> Vec<Arc<dyn ChangeListener>> {
        let Ok(mut listeners) = self.listeners.lock() else {
            return Vec::new();
        };
        listeners.retain(|l| l.strong_count() > 0);
        listeners.iter().filter_map(Weak::upgrade).collect()
    }
}

#[async_trait]
impl ChangeFeed for MemoryChangeFeed {
    fn kind(&self) -> BackendKind {
        BackendKind::Memory
    }

    async fn subscribe(
        &self,
        listener: Arc<dyn ChangeListener>,
        _tasks: &mut Tasks,
    ) -> StoreResult<()> {
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.push(Arc::downgrade(&listener));
        }
        Ok(())
    }

    async fn publish(&self, id: &UserId) -> StoreResult<()> {
        for listener in self.live() {
            listener.user_changed(id);
        }
        Ok(())
    }

    async fn shutdown(&self) {}
}
