//! An injectable clock, so every expiry is testable without sleeping.
//!
//! ```
//! use std::time::Duration;
//! use crudauth_core::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new(1_700_000_000_000);
//! let before = clock.now_millis();
//! clock.advance(Duration::from_secs(30));
//! assert_eq!(clock.now_millis() - before, 30_000);
//! ```

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    /// Whole seconds since the Unix epoch (JWT times, for one).
    fn now_secs(&self) -> u64 {
        self.now_millis() / 1000
    }

    /// Microseconds since the Unix epoch (rate limits need finer than a millisecond).
    fn now_micros(&self) -> u64 {
        self.now_millis().saturating_mul(1000)
    }

    /// The current instant as a UTC date-time.
    fn now_utc(&self) -> time::OffsetDateTime {
        let nanos = i128::from(self.now_millis()) * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    /// The time since the Unix epoch; zero for a system clock set before it.
    fn since_epoch() -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        Self::since_epoch().as_millis() as u64
    }

    fn now_micros(&self) -> u64 {
        Self::since_epoch().as_micros() as u64
    }
}

/// A clock that only moves when told to: for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `millis` since the epoch.
    pub fn new(millis: u64) -> Self {
        Self {
            millis: AtomicU64::new(millis),
        }
    }

    /// A shared clock standing at the current system time.
    pub fn starting_now() -> Arc<Self> {
        Arc::new(Self::new(SystemClock.now_millis()))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }
}

/// A duration in whole milliseconds, saturating at `u64::MAX` (the unit of every stored expiry).
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The clock used when none is configured.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}
