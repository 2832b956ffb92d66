//! The store and limiter conformance suites on a standalone Redis (`CRUDAUTH_TEST_REDIS_URL`,
//! default `redis://127.0.0.1:6379`), plus what only a Redis backend has to prove: the key
//! layout, the shared client, and the server's clock.
//!
//! These tests fail (never skip) when Redis is not reachable.

// Tests: a failed step panics with the value that failed.
#![allow(clippy::unwrap_used)]

mod store {
    crudauth_core::store_conformance!(crudauth_tests::redis::standalone_store());
}

mod limiter {
    crudauth_core::limiter_conformance!(crudauth_tests::redis::standalone_limiter());
}

mod redis_backend {
    use std::time::Duration;

    use bytes::Bytes;
    use crudauth_core::lifespan::Tasks;
    use crudauth_core::limit::{gcra, Budget, LockoutConfig, RateLimiter, RedisRateLimiter};
    use crudauth_core::store::{RedisConfig, RedisConnection, RedisStore, Store};
    use crudauth_core::StoreError;
    use crudauth_tests::redis::{
        delete_namespace, namespace_keys, redis_url, standalone_connection,
    };
    use crudauth_tests::server::{Monitor, RedisServer};
    use fred::interfaces::{ClientLike, KeysInterface};
    use fred::types::Value;

    const LONG: Duration = Duration::from_secs(600);

    /// Keys are the namespace followed by the caller's key, values are the exact bytes, and
    /// the TTL is the one asked for.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_live_under_the_namespace() {
        let redis = standalone_connection();
        let store = RedisStore::new(redis.clone());
        store.initialize(&mut Tasks::new()).await.unwrap();
        let ns = redis.namespace().to_owned();

        store
            .set("s:abc", Bytes::from_static(b"\x00record\xff"), LONG)
            .await
            .unwrap();
        let raw: Option<Bytes> = redis.client().get(format!("{ns}s:abc")).await.unwrap();
        assert_eq!(raw.as_deref(), Some(&b"\x00record\xff"[..]));
        let pttl: i64 = redis.client().pttl(format!("{ns}s:abc")).await.unwrap();
        assert!(pttl > 590_000 && pttl <= 600_000, "pttl {pttl}");
        let bare: Option<Bytes> = redis.client().get("s:abc").await.unwrap();
        assert_eq!(bare, None, "nothing is written outside the namespace");

        store.shutdown().await;
        delete_namespace(&redis_url(), &ns);
    }

    /// The store and the limiter share one client; the connection closes with its last user.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_and_limiter_share_one_connection() {
        let redis = standalone_connection();
        let ns = redis.namespace().to_owned();
        let store = RedisStore::new(redis.clone());
        let limiter = RedisRateLimiter::new(redis.clone());
        let mut tasks = Tasks::new();
        store.initialize(&mut tasks).await.unwrap();
        limiter.initialize(&mut tasks).await.unwrap();
        let id: i64 = redis
            .client()
            .custom(fred::cmd!("CLIENT"), vec!["ID"])
            .await
            .unwrap();

        let budget = Budget::new(3, Duration::from_secs(60));
        assert_eq!(limiter.hit("q:shared", budget).await.unwrap().remaining, 2);
        store.shutdown().await;
        // The limiter still works: the connection stayed open for it.
        assert_eq!(limiter.hit("q:shared", budget).await.unwrap().remaining, 1);
        let same: i64 = redis
            .client()
            .custom(fred::cmd!("CLIENT"), vec!["ID"])
            .await
            .unwrap();
        assert_eq!(id, same, "one connection, not one per user");
        limiter.shutdown().await;
        assert!(!redis.client().is_connected());
        // Once closed, operations fail cleanly instead of hanging.
        let error = limiter.hit("q:shared", budget).await.unwrap_err();
        assert!(matches!(error, StoreError::Unreachable { .. }), "{error}");
        delete_namespace(&redis_url(), &ns);
    }

    /// The limiter's decision is exactly `gcra()` over the stored arrival time and the Redis
    /// server's own clock (not this process's).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_limiter_uses_the_servers_clock_and_the_reference_arithmetic() {
        let redis = standalone_connection();
        let ns = redis.namespace().to_owned();
        let limiter = RedisRateLimiter::new(redis.clone());
        limiter.initialize(&mut Tasks::new()).await.unwrap();
        let budget = Budget::new(4, Duration::from_millis(10_000));

        let mut tat = 0;
        for _ in 0..6 {
            let before = server_micros(&redis).await;
            let decision = limiter.hit("q:ref", budget).await.unwrap();
            let after = server_micros(&redis).await;
            // Whatever instant the script saw lies between the two server readings; the
            // decision must be gcra() at one of them.
            let matches = (before..=after).any(|now| gcra(tat, now, budget).0 == decision);
            assert!(
                matches,
                "{decision:?} is not gcra(tat={tat}, now in {before}..={after})"
            );
            let stored: Option<String> = redis.client().get(format!("{ns}q:ref")).await.unwrap();
            if decision.allowed {
                tat = stored.unwrap().parse().unwrap();
                let pttl: i64 = redis.client().pttl(format!("{ns}q:ref")).await.unwrap();
                assert!(
                    pttl > 0 && pttl as u64 <= tat.div_ceil(1000) - before / 1000,
                    "expires at the arrival time"
                );
            }
        }
        limiter.reset("q:ref").await.unwrap();
        let gone: Option<String> = redis.client().get(format!("{ns}q:ref")).await.unwrap();
        assert_eq!(gone, None);
        limiter.shutdown().await;
    }

    /// A key of the wrong Redis type is a clean `WrongKind`, never a panic or a 500-worthy
    /// backend error, and it is left as it is.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn values_of_the_wrong_type_are_wrong_kind() {
        let redis = standalone_connection();
        let ns = redis.namespace().to_owned();
        let store = RedisStore::new(redis.clone());
        store.initialize(&mut Tasks::new()).await.unwrap();

        store.index_add("u:1", "a", 1.0, None, LONG).await.unwrap();
        for error in [
            store.get("u:1").await.unwrap_err(),
            store.get_and_touch("u:1", LONG).await.unwrap_err(),
            store.take("u:1").await.unwrap_err(),
            store.incr("u:1", 1, LONG).await.unwrap_err(),
        ] {
            assert!(
                matches!(error, StoreError::WrongKind { ref key, .. } if key == "u:1"),
                "{error}"
            );
        }
        store
            .set("s:1", Bytes::from_static(b"x"), LONG)
            .await
            .unwrap();
        let error = store
            .index_add("s:1", "a", 1.0, None, LONG)
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::WrongKind { .. }), "{error}");
        assert!(matches!(
            store.index_members("s:1").await.unwrap_err(),
            StoreError::WrongKind { .. }
        ));
        assert_eq!(store.get("s:1").await.unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(store.index_members("u:1").await.unwrap().len(), 1);

        store.shutdown().await;
        delete_namespace(&redis_url(), &ns);
    }

    /// Scripts survive `SCRIPT FLUSH` (what a restarted or failed-over server looks like):
    /// `NOSCRIPT` falls back to `EVAL` and the next call finds the script again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scripts_are_reloaded_after_the_script_cache_is_emptied() {
        let redis = standalone_connection();
        let ns = redis.namespace().to_owned();
        let store = RedisStore::new(redis.clone());
        let limiter = RedisRateLimiter::new(redis.clone());
        let mut tasks = Tasks::new();
        store.initialize(&mut tasks).await.unwrap();
        limiter.initialize(&mut tasks).await.unwrap();

        assert_eq!(store.incr("c:n", 1, LONG).await.unwrap(), 1);
        let _: Value = redis
            .client()
            .custom(fred::cmd!("SCRIPT"), vec!["FLUSH"])
            .await
            .unwrap();
        assert_eq!(store.incr("c:n", 1, LONG).await.unwrap(), 2);
        assert!(store
            .index_add("u:x", "a", 1.0, Some(1), LONG)
            .await
            .unwrap()
            .is_empty());
        let budget = Budget::new(2, Duration::from_secs(60));
        assert!(limiter.hit("q:flush", budget).await.unwrap().allowed);
        assert_eq!(store.incr("c:n", 1, LONG).await.unwrap(), 3);

        limiter.shutdown().await;
        store.shutdown().await;
        delete_namespace(&redis_url(), &ns);
    }

    /// A route-limit hit is one command on the wire, and so is each step of the login lockout
    /// (attempt, success, forget): watched with MONITOR on a redis-server of this test's own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_limiter_operation_is_one_command() {
        let server = RedisServer::start(&[]);
        let redis = RedisConnection::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        let limiter = RedisRateLimiter::new(redis);
        limiter.initialize(&mut Tasks::new()).await.unwrap();
        let monitor = Monitor::start(server.port());

        let budget = Budget::new(100, Duration::from_secs(60));
        for _ in 0..10 {
            assert!(limiter.hit("q:one", budget).await.unwrap().allowed);
        }
        let config = LockoutConfig::default();
        let keys = crudauth_core::limit::conformance::named("192.0.2.1", "ada");
        for _ in 0..7 {
            limiter.login_attempt(&keys, &config).await.unwrap();
        }
        limiter.login_succeeded(&keys, &config).await.unwrap();
        limiter.forget_attempt(&keys, &config).await.unwrap();

        let commands = monitor.stop();
        assert_eq!(commands.len(), 19, "{commands:#?}");
        assert!(
            commands.iter().all(|c| c.starts_with("\"EVALSHA\"")),
            "{commands:#?}"
        );
        limiter.shutdown().await;
    }

    /// The lockout's keys and expiries: crudauth's layout under the namespace and the `{login}`
    /// tag, the pair expiring with the address counter, locks for the lock's length, rounds a
    /// retention past the lock's end, and no identifier stored as typed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lockout_keys_and_their_expiries() {
        let redis = standalone_connection();
        let ns = redis.namespace().to_owned();
        let limiter = RedisRateLimiter::new(redis.clone());
        limiter.initialize(&mut Tasks::new()).await.unwrap();
        let config = LockoutConfig::default();
        let keys = crudauth_core::limit::conformance::named("192.0.2.1", "Ada@Example.com");
        for _ in 0..6 {
            limiter.login_attempt(&keys, &config).await.unwrap();
        }
        let pttl = |key: String| {
            let client = redis.client().clone();
            async move { client.pttl::<i64, _>(key).await.unwrap() }
        };
        let user = keys
            .identifier_counter()
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned();
        let ip = keys.ip_counter().unwrap();
        assert_eq!(ip, "l:{login}:ip:192.0.2.1");
        let window = pttl(format!("{ns}{ip}")).await;
        assert!(window > 55_000 && window <= 60_000, "{window}");
        let pair = pttl(format!("{ns}l:{{login}}:pair:192.0.2.1:{user}")).await;
        assert!(
            (window - pair).abs() < 1_000,
            "pair {pair} vs address {window}"
        );
        for lock in ["lock:ip:192.0.2.1".to_owned(), format!("lock:user:{user}")] {
            let left = pttl(format!("{ns}l:{{login}}:{lock}")).await;
            assert!(left > 58_000 && left <= 60_000, "{lock}: {left}");
        }
        for rounds in [
            "rounds:ip:192.0.2.1".to_owned(),
            format!("rounds:user:{user}"),
        ] {
            let key = format!("{ns}l:{{login}}:{rounds}");
            let left = pttl(key.clone()).await;
            assert!(left > 3_655_000 && left <= 3_660_000, "{rounds}: {left}");
            let count: i64 = redis.client().get(key).await.unwrap();
            assert_eq!(count, 1);
        }
        let counted: i64 = redis.client().get(format!("{ns}{ip}")).await.unwrap();
        assert_eq!(counted, 6);
        let keys = namespace_keys(&redis_url(), &ns);
        let listed = keys.join("\n").to_lowercase();
        assert_eq!(keys.len(), 7, "{listed}");
        assert!(
            !listed.contains("ada"),
            "identifiers are stored keyed: {listed}"
        );
        let plain = crudauth_core::secret::sha256_hex(b"ada@example.com");
        assert!(
            !listed.contains(&plain[..32]),
            "not as a plain SHA-256: {listed}"
        );
        limiter.shutdown().await;
        delete_namespace(&redis_url(), &ns);
    }

    async fn server_micros(redis: &crudauth_core::store::RedisConnection) -> u64 {
        let time: Vec<String> = redis
            .client()
            .custom(fred::cmd!("TIME"), Vec::<String>::new())
            .await
            .unwrap();
        let secs: u64 = time[0].parse().unwrap();
        let micros: u64 = time[1].parse().unwrap();
        secs * 1_000_000 + micros
    }
}
