//! Backend failures come in floods: while Redis or the database is down, every request fails
//! alike, and one ERROR line per request would bury the logs (thousands a second). Each kind of
//! failure is therefore logged at ERROR at most once per [`INTERVAL_MS`], saying how many like
//! it were folded in since; the others go to DEBUG.
//!
//! ```text
//! static LOG: FailureLog = FailureLog::new();
//! LOG.report("authentication backend failed; answering 503", &error);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use crudauth_core::clock::{Clock, SystemClock};

/// The shortest time between two ERROR lines of one kind.
pub(crate) const INTERVAL_MS: u64 = 10_000;

/// One kind of failure's log throttle (a `static` per call site).
#[derive(Debug)]
pub(crate) struct FailureLog {
    /// When the last ERROR line was written (ms since the epoch; 0: never).
    last_ms: AtomicU64,
    /// Failures logged at DEBUG since then.
    folded: AtomicU64,
}

impl FailureLog {
    /// A throttle that has logged nothing yet.
    pub(crate) const fn new() -> Self {
        Self {
            last_ms: AtomicU64::new(0),
            folded: AtomicU64::new(0),
        }
    }

    /// Logs one failure: `what` and the `error`, at ERROR or folded into DEBUG.
    pub(crate) fn report(&self, what: &str, error: &dyn std::fmt::Display) {
        match self.admit() {
            Some(folded) => tracing::error!(
                %error,
                folded,
                "{what} (further failures within 10 s are logged at debug)"
            ),
            None => tracing::debug!(%error, "{what}"),
        }
    }

    /// `Some(folded)` when this failure is to be logged at ERROR (with how many were folded in
    /// since the last such line), `None` when it belongs at DEBUG.
    fn admit(&self) -> Option<u64> {
        self.admit_at(SystemClock.now_millis())
    }

    fn admit_at(&self, now: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= INTERVAL_MS;
        // Of concurrent failures, exactly one wins the slot.
        if due
            && self
                .last_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.folded.swap(0, Ordering::Relaxed));
        }
        self.folded.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_error_line_per_interval_counting_the_rest() {
        let log = FailureLog::new();
        let t0 = 1_800_000_000_000;
        assert_eq!(log.admit_at(t0), Some(0));
        assert_eq!(log.admit_at(t0 + 1), None);
        assert_eq!(log.admit_at(t0 + INTERVAL_MS - 1), None);
        assert_eq!(log.admit_at(t0 + INTERVAL_MS), Some(2));
        assert_eq!(log.admit_at(t0 + INTERVAL_MS + 5), None);
    }

    #[test]
    fn concurrent_failures_write_one_line() {
        let log = std::sync::Arc::new(FailureLog::new());
        let admitted: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let log = log.clone();
                    s.spawn(move || (0..1000).filter(|_| log.admit_at(42).is_some()).count())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0) as u64)
                .sum()
        });
        assert_eq!(admitted, 1);
        assert_eq!(log.folded.load(Ordering::Relaxed), 7999);
    }
}
