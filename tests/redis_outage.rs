//! Redis going away and coming back, on a `redis-server` this test starts itself: operations
//! fail fast with a clear error naming the URL (never its password), never hang, never panic;
//! the same store object works again once Redis is back, without being rebuilt.

// Tests: a failed step panics with the value that failed.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crudauth_core::lifespan::Tasks;
use crudauth_core::limit::{Budget, RateLimiter, RedisRateLimiter};
use crudauth_core::store::{RedisConfig, RedisConnection, RedisStore, Store};
use crudauth_core::{StoreError, StoreResult};
use crudauth_tests::redis::unique_namespace;
use crudauth_tests::server::{free_ports, RedisServer};

const PASSWORD: &str = "outage-test-secret";
const LONG: Duration = Duration::from_secs(600);
/// How far past the command timeout a failure may arrive (scheduling on a busy machine).
const MARGIN: Duration = Duration::from_millis(500);

fn connect(url: &str, command_timeout: Duration) -> (RedisStore, RedisRateLimiter) {
    let config = RedisConfig::from_url(url)
        .unwrap()
        .namespace(unique_namespace())
        .command_timeout(command_timeout)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(500));
    let redis = RedisConnection::new(config).unwrap();
    (RedisStore::new(redis.clone()), RedisRateLimiter::new(redis))
}

/// One of every kind of operation: plain commands, GETEX, GETDEL and all three scripts.
async fn exercise(store: &RedisStore, limiter: &RedisRateLimiter) -> StoreResult<()> {
    store
        .set("s:1", Bytes::from_static(b"session"), LONG)
        .await?;
    assert_eq!(
        store.get_and_touch("s:1", LONG).await?.as_deref(),
        Some(&b"session"[..])
    );
    store.incr("c:1", 1, LONG).await?;
    store.index_add("u:1", "s:1", 1.0, Some(10), LONG).await?;
    store.set("t:1", Bytes::from_static(b"token"), LONG).await?;
    assert!(store.take("t:1").await?.is_some());
    limiter
        .hit("q:1", Budget::new(100, Duration::from_secs(60)))
        .await?;
    Ok(())
}

/// Runs `op`, which must fail within `limit`, and returns its error.
async fn fails_within<T: std::fmt::Debug>(
    what: &str,
    limit: Duration,
    op: impl Future<Output = StoreResult<T>>,
) -> StoreError {
    let started = Instant::now();
    let result = op.await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < limit,
        "{what} took {elapsed:?} to fail (limit {limit:?})"
    );
    match result {
        Ok(value) => panic!("{what} succeeded during the outage: {value:?}"),
        Err(error) => error,
    }
}

async fn recovers_within(what: &str, limit: Duration, store: &RedisStore) {
    let deadline = Instant::now() + limit;
    loop {
        match store.get("s:probe").await {
            Ok(_) => return,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("{what}: still failing {limit:?} later: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_fails_fast_and_the_same_store_recovers_when_it_returns() {
    let mut server = RedisServer::start(&["--requirepass", PASSWORD]);
    let port = server.port();
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}");
    let shown = format!("redis://***@127.0.0.1:{port}");
    let timeout = Duration::from_secs(1);
    let (store, limiter) = connect(&url, timeout);
    let mut tasks = Tasks::new();
    store.initialize(&mut tasks).await.unwrap();
    limiter.initialize(&mut tasks).await.unwrap();
    exercise(&store, &limiter).await.unwrap();

    server.kill();
    let budget = Budget::new(5, Duration::from_secs(60));
    let limit = timeout + MARGIN;
    let errors = [
        fails_within("get", limit, store.get("s:1")).await,
        fails_within("get_and_touch", limit, store.get_and_touch("s:1", LONG)).await,
        fails_within(
            "set",
            limit,
            store.set("s:2", Bytes::from_static(b"v"), LONG),
        )
        .await,
        fails_within(
            "set_if_present",
            limit,
            store.set_if_present("s:1", Bytes::new(), None),
        )
        .await,
        fails_within("take", limit, store.take("t:1")).await,
        fails_within("incr", limit, store.incr("c:1", 1, LONG)).await,
        fails_within(
            "index_add",
            limit,
            store.index_add("u:1", "x", 2.0, Some(2), LONG),
        )
        .await,
        fails_within("index_members", limit, store.index_members("u:1")).await,
        fails_within("hit", limit, limiter.hit("q:1", budget)).await,
    ];
    for error in errors {
        let message = error.to_string();
        assert!(
            matches!(
                error,
                StoreError::Unreachable { .. } | StoreError::Timeout { .. }
            ),
            "{message}"
        );
        assert!(
            message.contains(&shown),
            "the message names the URL: {message}"
        );
        assert!(
            !message.contains(PASSWORD),
            "the message leaks the password: {message}"
        );
    }
    // Many callers at once during the outage: every one fails, none hangs.
    let started = Instant::now();
    let mut callers = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        callers.push(tokio::spawn(
            async move { store.get(&format!("s:{i}")).await },
        ));
    }
    for caller in callers {
        assert!(caller.await.unwrap().is_err());
    }
    assert!(started.elapsed() < limit, "{:?}", started.elapsed());

    server.restart();
    recovers_within("after the restart", Duration::from_secs(5), &store).await;
    // The same objects, nothing rebuilt: every operation works again, scripts included (the
    // restarted server's script cache is empty, and it lost all data).
    assert_eq!(store.get("s:1").await.unwrap(), None);
    exercise(&store, &limiter).await.unwrap();

    limiter.shutdown().await;
    store.shutdown().await;
    tasks.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_times_out_within_the_command_timeout() {
    let server = RedisServer::start(&[]);
    let timeout = Duration::from_millis(300);
    let (store, limiter) = connect(&server.url(), timeout);
    let mut tasks = Tasks::new();
    store.initialize(&mut tasks).await.unwrap();
    limiter.initialize(&mut tasks).await.unwrap();
    exercise(&store, &limiter).await.unwrap();

    server.pause();
    let limit = timeout + MARGIN;
    let errors = [
        fails_within("get_and_touch", limit, store.get_and_touch("s:1", LONG)).await,
        fails_within("incr", limit, store.incr("c:1", 1, LONG)).await,
        fails_within(
            "hit",
            limit,
            limiter.hit("q:1", Budget::new(5, Duration::from_secs(60))),
        )
        .await,
    ];
    for error in errors {
        assert!(matches!(error, StoreError::Timeout { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains(&server.url()), "{message}");
        assert!(message.contains("did not answer"), "{message}");
    }

    server.resume();
    recovers_within("after SIGCONT", Duration::from_secs(5), &store).await;
    exercise(&store, &limiter).await.unwrap();
    limiter.shutdown().await;
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_against_a_closed_port_says_where_and_what_to_do() {
    let port = free_ports(1)[0];
    let url = format!("redis://127.0.0.1:{port}");
    let config = RedisConfig::from_url(&url)
        .unwrap()
        .namespace(unique_namespace())
        .connect_timeout(Duration::from_secs(2))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200));
    let store = RedisStore::new(RedisConnection::new(config).unwrap());

    let started = Instant::now();
    let error = store.initialize(&mut Tasks::new()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2) + MARGIN,
        "{:?}",
        started.elapsed()
    );
    let message = error.to_string();
    assert!(matches!(error, StoreError::Unreachable { .. }), "{message}");
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("is redis-server running?"), "{message}");
    assert!(message.contains("connection refused"), "{message}");

    // Nothing was left half-open: once a server is there, initialize simply works, and every
    // kind of command is sent promptly.
    let server = RedisServer::start_on(port, &[]);
    store.initialize(&mut Tasks::new()).await.unwrap();
    for _ in 0..20 {
        store
            .set("s:1", Bytes::from_static(b"v"), LONG)
            .await
            .unwrap();
        assert!(store.get("s:1").await.unwrap().is_some());
        assert!(store.take("s:1").await.unwrap().is_some());
    }
    store.shutdown().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_used_before_initialize_fails_clearly() {
    let server = RedisServer::start(&[]);
    let (store, _limiter) = connect(&server.url(), Duration::from_secs(1));
    let error = fails_within("get", Duration::from_secs(1), store.get("s:1")).await;
    let message = error.to_string();
    assert!(message.contains("call initialize()"), "{message}");
    assert!(message.contains(&server.url()), "{message}");
}

#[test]
fn a_bad_url_is_a_configuration_error_without_the_password() {
    let error = RedisConfig::from_url("redis://:pw-secret@/nohost").unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StoreError::Config(_)), "{message}");
    assert!(!message.contains("pw-secret"), "{message}");
    assert!(message.contains("redis://"), "{message}");
}
