//! The lifespan: `build()` fails closed, `initialize()` warns once about per-process state
//! (unless silenced), `shutdown()` stops everything within 5 s.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crudauth_axum::{CrudAuth, SessionTransport};
use crudauth_core::user::MemoryUsers;
use crudauth_tests::logs::capture;

fn builder() -> crudauth_axum::CrudAuthBuilder {
    CrudAuth::builder()
        .secret_key([9u8; 32])
        .users(MemoryUsers::new())
        .session_transport(SessionTransport::default())
}

#[tokio::test(flavor = "current_thread")]
async fn memory_backends_warn_once_and_name_the_per_process_state() {
    let (logs, _guard) = capture(tracing::Level::WARN);
    let auth = builder().build().unwrap();
    let guard = auth.initialize().await.unwrap();
    let text = logs.text();
    assert_eq!(text.matches("in-memory backend").count(), 1, "{text}");
    for needle in [
        "sessions/CSRF",
        "one-time tokens",
        "lockout and throttle counters",
        "NOT shared between processes or hosts",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
    guard.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_warning_can_be_silenced() {
    let (logs, _guard) = capture(tracing::Level::WARN);
    let auth = builder().warn_on_memory_backend(false).build().unwrap();
    let guard = auth.initialize().await.unwrap();
    assert!(
        !logs.text().contains("in-memory backend"),
        "{}",
        logs.text()
    );
    guard.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn redis_backends_do_not_warn_and_a_memory_part_is_named() {
    let (logs, _guard) = capture(tracing::Level::WARN);
    let url = crudauth_tests::app::redis_url();
    let auth = builder()
        .redis_url(&url)
        .redis_prefix(crudauth_tests::app::unique_prefix("lifespan"))
        .build()
        .unwrap();
    let guard = auth.initialize().await.unwrap();
    assert!(
        !logs.text().contains("in-memory backend"),
        "{}",
        logs.text()
    );
    guard.shutdown().await;

    let (logs, _guard2) = capture(tracing::Level::WARN);
    let auth = builder()
        .redis_url(&url)
        .rate_limiter(crudauth_core::limit::MemoryRateLimiter::new())
        .build()
        .unwrap();
    let guard = auth.initialize().await.unwrap();
    let text = logs.text();
    assert!(
        text.contains("lockout and throttle counters") && !text.contains("sessions/CSRF"),
        "{text}"
    );
    guard.shutdown().await;
}

#[tokio::test]
async fn build_fails_closed() {
    let no_key = CrudAuth::builder()
        .users(MemoryUsers::new())
        .session_transport(SessionTransport::default())
        .build();
    assert!(no_key.unwrap_err().to_string().contains("secret key"));
    let short = CrudAuth::builder()
        .secret_key("short")
        .users(MemoryUsers::new())
        .session_transport(SessionTransport::default())
        .build();
    assert!(short.unwrap_err().to_string().contains("at least 32 bytes"));
    let no_users = CrudAuth::builder()
        .secret_key([1u8; 32])
        .session_transport(SessionTransport::default())
        .build();
    assert!(no_users.unwrap_err().to_string().contains("no user store"));
    let no_transport = CrudAuth::builder()
        .secret_key([1u8; 32])
        .users(MemoryUsers::new())
        .build();
    assert!(no_transport
        .unwrap_err()
        .to_string()
        .contains("no transport"));
    let bad_url = builder().redis_url("http://not-redis").build();
    assert!(bad_url.is_err());
}

#[tokio::test]
async fn initialize_names_an_unreachable_redis() {
    let auth = builder().redis_url("redis://127.0.0.1:1").build().unwrap();
    let err = auth.initialize().await.unwrap_err().to_string();
    assert!(
        err.contains("redis://127.0.0.1:1") && err.contains("is redis-server running?"),
        "{err}"
    );
}

#[tokio::test]
async fn shutdown_stops_background_tasks_within_five_seconds() {
    let auth = builder().warn_on_memory_backend(false).build().unwrap();
    let guard = auth.initialize().await.unwrap();
    assert!(guard.background_tasks() >= 2, "the memory sweepers run");
    let started = Instant::now();
    guard.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The user cache is per-process state too, unless a shared change feed tells every worker of
/// a change: the warning names it with memory backends, and with Redis state but an in-process
/// feed; with Redis (the feed included) it is not named.
#[tokio::test(flavor = "current_thread")]
async fn the_warning_names_the_per_process_user_cache() {
    let (logs, _guard) = capture(tracing::Level::WARN);
    let guard = builder().build().unwrap().initialize().await.unwrap();
    assert!(logs.text().contains("the user cache"), "{}", logs.text());
    guard.shutdown().await;

    let url = crudauth_tests::app::redis_url();
    let (logs, _guard2) = capture(tracing::Level::WARN);
    let auth = builder()
        .redis_url(&url)
        .redis_prefix(crudauth_tests::app::unique_prefix("lifespan"))
        .change_feed(crudauth_core::changes::MemoryChangeFeed::new())
        .build()
        .unwrap();
    let guard = auth.initialize().await.unwrap();
    let text = logs.text();
    assert_eq!(text.matches("in-memory backend").count(), 1, "{text}");
    assert!(text.contains("the user cache"), "{text}");
    assert!(!text.contains("sessions/CSRF"), "{text}");
    guard.shutdown().await;

    let (logs, _guard3) = capture(tracing::Level::WARN);
    let auth = builder()
        .redis_url(&url)
        .redis_prefix(crudauth_tests::app::unique_prefix("lifespan"))
        .build()
        .unwrap();
    let guard = auth.initialize().await.unwrap();
    assert!(!logs.text().contains("the user cache"), "{}", logs.text());
    guard.shutdown().await;
}
