//! The store and limiter conformance suites on a real three-primary Redis Cluster that this
//! test binary starts itself (on free ports, in temporary directories), shares between all its
//! tests, and that dies with the binary.

// Tests: a failed step panics with the value that failed.
#![allow(clippy::unwrap_used)]

mod store {
    crudauth_core::store_conformance!(crudauth_tests::redis::cluster_store());
}

mod limiter {
    crudauth_core::limiter_conformance!(crudauth_tests::redis::cluster_limiter());
}

mod cluster {
    use std::collections::HashSet;
    use std::time::Duration;

    use bytes::Bytes;
    use crudauth_core::lifespan::Tasks;
    use crudauth_core::limit::{LockoutConfig, LockoutKeys, RateLimiter, RedisRateLimiter};
    use crudauth_core::store::{RedisStore, Store};
    use crudauth_tests::redis::cluster_connection;
    use fred::interfaces::{ClientLike, ClusterInterface};
    use fred::types::Value;

    /// Keys of one namespace spread over all three primaries, and every operation still works
    /// on each of them (one key per command or script, so no cross-slot error can happen).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_spread_over_every_primary() {
        let redis = cluster_connection();
        assert!(redis.is_cluster());
        let store = RedisStore::new(redis.clone());
        store.initialize(&mut Tasks::new()).await.unwrap();
        let ns = redis.namespace().to_owned();

        let mut owners = HashSet::new();
        for i in 0..30 {
            let key = format!("s:{i}");
            store
                .set(&key, Bytes::from(key.clone()), Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(
                store
                    .incr(&format!("c:{i}"), 2, Duration::from_secs(60))
                    .await
                    .unwrap(),
                2
            );
            store
                .index_add(
                    &format!("u:{i}"),
                    "m",
                    1.0,
                    Some(1),
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
            let slot = fred::util::redis_keyslot(format!("{ns}{key}").as_bytes());
            let owner = redis
                .client()
                .cached_cluster_state()
                .and_then(|state| state.get_server(slot).cloned())
                .unwrap();
            owners.insert(owner);
        }
        assert_eq!(owners.len(), 3, "keys landed on {owners:?}");
        for i in 0..30 {
            let key = format!("s:{i}");
            assert_eq!(
                store.take(&key).await.unwrap(),
                Some(Bytes::from(key.clone()))
            );
        }
        let _: Value = redis.client().ping(None).await.unwrap();
        store.shutdown().await;
    }

    /// Every key of a login attempt lands in one slot (the `{login}` tag), whatever the
    /// address and identifier, so the one script that checks and records them is legal on a
    /// cluster; and it works there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lockout_keys_share_one_slot() {
        let redis = cluster_connection();
        let ns = redis.namespace().to_owned();
        let limiter = RedisRateLimiter::new(redis.clone());
        limiter.initialize(&mut Tasks::new()).await.unwrap();
        let config = LockoutConfig::default();
        let mut slots = HashSet::new();
        for (ip, who) in [
            ("192.0.2.1", "ada"),
            ("2001:db8::/64", "bob@example.com"),
            ("unknown", "{x}"),
        ] {
            let secret = crudauth_core::secret::SecretKey::new([5u8; 32]).unwrap();
            let ip = (ip != "unknown").then_some(ip);
            let keys = LockoutKeys::new(
                &secret,
                ip,
                crudauth_core::limit::LockoutSubject::Identifier(who),
            );
            let d = limiter.login_attempt(&keys, &config).await.unwrap();
            assert!(d.allowed && d.remaining == 4);
            limiter.login_succeeded(&keys, &config).await.unwrap();
            limiter.forget_attempt(&keys, &config).await.unwrap();
            for key in keys
                .ip_counter()
                .into_iter()
                .chain([keys.identifier_counter()])
            {
                slots.insert(fred::util::redis_keyslot(format!("{ns}{key}").as_bytes()));
            }
        }
        assert_eq!(slots.len(), 1, "{slots:?}");
        limiter.shutdown().await;
    }
}
