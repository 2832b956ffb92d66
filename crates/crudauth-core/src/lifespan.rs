//! Background tasks owned by the lifespan guard.
//!
//! ```
//! use std::time::Duration;
//! use crudauth_core::lifespan::Tasks;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mut tasks = Tasks::new();
//! tasks.every("example sweeper", Duration::from_secs(60), || async {});
//! tasks.shutdown(Duration::from_secs(5)).await; // stops every task
//! # });
//! ```

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A set of background tasks that stop together: on [`Tasks::shutdown`], or when dropped.
#[derive(Debug)]
pub struct Tasks {
    stop: watch::Sender<bool>,
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}

impl Tasks {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            handles: Vec::new(),
        }
    }

    /// Runs `work` every `period` until the set stops. Must be called inside a Tokio runtime.
    pub fn every<F, Fut>(&mut self, name: &'static str, period: Duration, mut work: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut stop = self.stop.subscribe();
        let handle = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate
            loop {
                tokio::select! {
                    _ = ticks.tick() => work().await,
                    _ = stop.changed() => break,
                }
            }
        });
        self.handles.push((name, handle));
    }

    /// Runs `work` until it ends or the set stops, whichever comes first. Must be called
    /// inside a Tokio runtime.
    pub fn spawn<Fut>(&mut self, name: &'static str, work: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut stop = self.stop.subscribe();
        let handle = tokio::spawn(async move {
            tokio::select! {
                _ = work => {}
                _ = stop.changed() => {}
            }
        });
        self.handles.push((name, handle));
    }

    /// Runs `work`, which is handed the set's [`StopSignal`] and ends on its own once it has
    /// seen it (a queue drains what it holds, say). [`Tasks::shutdown`] still aborts it at the
    /// end of its grace. Must be called inside a Tokio runtime.
    pub fn spawn_with_stop<F, Fut>(&mut self, name: &'static str, work: F)
    where
        F: FnOnce(StopSignal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = StopSignal(self.stop.subscribe());
        self.handles.push((name, tokio::spawn(work(stop))));
    }

    /// How many tasks are registered.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether no task is registered.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Asks every task to stop and waits for them, at most `grace`; stragglers are aborted.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for (name, handle) in self.handles.drain(..) {
            let abort = handle.abort_handle();
            if tokio::time::timeout_at(deadline, handle).await.is_err() {
                tracing::warn!(task = name, "background task did not stop in time; aborted");
                abort.abort();
            }
        }
    }
}

/// Tells a task of [`Tasks::spawn_with_stop`] that the set is stopping.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Resolves once the set is asked to stop (or is dropped).
    pub async fn stopped(&mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for (_, handle) in &self.handles {
            handle.abort();
        }
    }
}
