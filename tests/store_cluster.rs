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
}
