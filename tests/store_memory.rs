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
