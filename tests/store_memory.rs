//! The store and limiter conformance suites on the in-memory backends, with a manual clock.

use std::sync::Arc;

use crudauth_core::clock::ManualClock;
use crudauth_core::limit::conformance::LimiterSubject;
use crudauth_core::limit::MemoryRateLimiter;
use crudauth_core::store::conformance::Subject;
use crudauth_core::store::MemoryStore;

async fn memory_store() -> Subject {
    let clock = ManualClock::starting_now();
    Subject {
        store: Arc::new(MemoryStore::new().with_clock(clock.clone())),
        time: clock,
    }
}

async fn memory_limiter() -> LimiterSubject {
    let clock = ManualClock::starting_now();
    LimiterSubject {
        limiter: Arc::new(MemoryRateLimiter::with_clock(clock.clone())),
        time: clock,
    }
}

mod store {
    crudauth_core::store_conformance!(super::memory_store());
}

mod limiter {
    crudauth_core::limiter_conformance!(super::memory_limiter());
}

/// The memory store is bounded: past `max_entries`, a new key evicts the soonest-expiring
/// entries, so a flood of short-lived keys neither grows the process nor pushes out a
/// long-lived entry (a session) while shorter ones remain.
#[allow(clippy::unwrap_used)]
#[tokio::test]
async fn the_memory_store_is_bounded_and_evicts_the_nearest_expiry() {
    use std::time::Duration;

    use bytes::Bytes;
    use crudauth_core::store::Store;

    // Logs of this (current-thread) test only.
    let logs = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || Sink(sink.clone()))
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let store = MemoryStore::new()
        .with_clock(ManualClock::starting_now())
        .max_entries(512); // 8 per shard
    let long = Duration::from_secs(3600);
    store
        .set("s:keep", Bytes::from_static(b"session"), long)
        .await
        .unwrap();
    for i in 0..5000u64 {
        // Each flood key lives a little longer than the one before, all shorter than the
        // session.
        let ttl = Duration::from_secs(60 + i / 10);
        store
            .set(&format!("t:flood:{i}"), Bytes::from_static(b"x"), ttl)
            .await
            .unwrap();
    }
    assert!(
        store.get("s:keep").await.unwrap().is_some(),
        "the session survives"
    );
    let mut live = 0;
    for i in 0..5000u64 {
        if store.get(&format!("t:flood:{i}")).await.unwrap().is_some() {
            live += 1;
        }
    }
    assert!(live < 512, "{live} flood keys live");
    assert!(live > 0);
    // The survivors are the latest (longest-lived) ones, not the first written.
    assert!(store.get("t:flood:0").await.unwrap().is_none());
    assert!(store.get("t:flood:4999").await.unwrap().is_some());
    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert_eq!(
        logged.matches("the in-memory store is full").count(),
        1,
        "one WARN, the first time: {logged}"
    );
}

/// A log writer into a shared buffer.
struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
