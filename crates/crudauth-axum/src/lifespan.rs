//! The lifespan: `initialize()` connects and starts the background work, the
//! [`LifespanGuard`] it returns owns it, and `shutdown()` ends it.
//!
//! ```no_run
//! # async fn run(auth: crudauth_axum::CrudAuth) -> Result<(), crudauth_axum::InitError> {
//! let guard = auth.initialize().await?;
//! // … serve …
//! guard.shutdown().await;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use crudauth_core::changes::ChangeListener;
use crudauth_core::lifespan::Tasks;
use crudauth_core::store::BackendKind;

use crate::config::InitError;
use crate::state::CrudAuth;

impl CrudAuth {
    /// Connects and checks every backend, loads scripts, starts the sweepers, and warns once
    /// when state is in process memory. Call before serving.
    pub async fn initialize(&self) -> Result<LifespanGuard, InitError> {
        let mut tasks = Tasks::new();
        if let Err(error) = self.inner.passwords.prepare().await {
            tracing::warn!(%error, "crudauth: could not prepare the dummy password hash; the first unknown-user sign-in will make it");
        }
        self.inner.store.initialize(&mut tasks).await?;
        #[cfg(feature = "oauth")]
        if let Some(oauth) = &self.inner.oauth {
            for (name, provider) in &oauth.providers {
                if let Err(error) = provider.initialize().await {
                    tasks.shutdown(Duration::from_secs(1)).await;
                    self.inner.store.shutdown().await;
                    return Err(InitError::OAuth {
                        provider: name.clone(),
                        error,
                    });
                }
            }
        }
        self.inner.limiter.initialize(&mut tasks).await?;
        let worker = self.clone();
        self.inner
            .queue
            .start(&mut tasks, move |job| {
                let auth = worker.clone();
                async move { auth.handle_job(job).await }
            })
            .await;
        let listener: Arc<dyn ChangeListener> = Arc::new(crate::revocation::Evictor::new(self));
        let feed = self.inner.users.feed().cloned();
        if let Some(feed) = &feed {
            if let Err(error) = feed.subscribe(listener.clone(), &mut tasks).await {
                // Nothing is left running: the stores let go of their connections again.
                tasks.shutdown(Duration::from_secs(1)).await;
                self.inner.limiter.shutdown().await;
                self.inner.store.shutdown().await;
                return Err(error.into());
            }
        }
        let mut per_process = Vec::new();
        if self.inner.store.kind() == BackendKind::Memory {
            per_process.push("sessions/CSRF, one-time tokens");
        }
        if self.inner.limiter.kind() == BackendKind::Memory {
            per_process.push("lockout and throttle counters");
        }
        let feed_is_local = feed
            .as_ref()
            .is_none_or(|f| f.kind() == BackendKind::Memory);
        if feed_is_local && !self.inner.users.ttl().is_zero() {
            per_process.push(
                "the user cache (a password change, logout-all or disabled account on one \
                 worker reaches the others' caches only after user_cache_ttl)",
            );
        }
        if !per_process.is_empty() && self.inner.warn_on_memory_backend {
            tracing::warn!(
                "crudauth: in-memory backend for {}. In-memory state is per-process: it is NOT shared \
                 between processes or hosts, so under several workers these guarantees weaken. Use Redis \
                 in production, or .warn_on_memory_backend(false) to silence this.",
                per_process.join("; ")
            );
        }
        Ok(LifespanGuard {
            tasks: Some(tasks),
            auth: self.clone(),
            _listener: Listener(listener),
        })
    }
}

/// Owns crudauth's background tasks and connections. `shutdown()` stops the tasks and closes
/// connections within 5 s; dropping the guard stops the tasks too.
#[derive(Debug)]
pub struct LifespanGuard {
    tasks: Option<Tasks>,
    auth: CrudAuth,
    /// What the change feed tells; an in-process feed holds it weakly.
    _listener: Listener,
}

/// The change feed's listener, kept alive by the guard.
struct Listener(#[allow(dead_code)] Arc<dyn ChangeListener>);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

impl LifespanGuard {
    /// How many background tasks are running.
    pub fn background_tasks(&self) -> usize {
        self.tasks.as_ref().map_or(0, Tasks::len)
    }

    /// Stops background tasks and closes connections, within 5 s in all.
    pub async fn shutdown(mut self) {
        let grace = Duration::from_secs(5);
        let deadline = tokio::time::Instant::now() + grace;
        if let Some(tasks) = self.tasks.take() {
            tasks.shutdown(grace / 2).await;
        }
        let inner = &self.auth.inner;
        let close = async {
            if let Some(feed) = inner.users.feed() {
                feed.shutdown().await;
            }
            inner.store.shutdown().await;
            inner.limiter.shutdown().await;
        };
        if tokio::time::timeout_at(deadline, close).await.is_err() {
            tracing::warn!("crudauth: closing connections took longer than 5 s; gave up waiting");
        }
    }
}
