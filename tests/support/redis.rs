//! Conformance subjects on real Redis: the shared standalone server and the test cluster.
//!
//! Each subject gets a namespace of its own (`crudauth-test:{random}:`), so tests run in
//! parallel on one server without seeing each other's keys, and never flush anything.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crudauth_core::lifespan::Tasks;
use crudauth_core::limit::conformance::LimiterSubject;
use crudauth_core::limit::{RateLimiter, RedisRateLimiter};
use crudauth_core::store::conformance::{Subject, TimeTravel};
use crudauth_core::store::{RedisConfig, RedisConnection, RedisStore, Store};
use rand::RngCore;

use crate::server::shared_cluster;

/// The Redis the tests use: `CRUDAUTH_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("CRUDAUTH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh namespace: `crudauth-test:{32 hex digits}:`.
pub fn unique_namespace() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("crudauth-test:{hex}:")
}

/// A connection to the test Redis under a fresh namespace, not yet initialized.
pub fn standalone_connection() -> RedisConnection {
    let url = redis_url();
    let config = RedisConfig::from_url(&url)
        .unwrap_or_else(|e| panic!("CRUDAUTH_TEST_REDIS_URL is not usable: {e}"))
        .namespace(unique_namespace());
    RedisConnection::new(config).unwrap_or_else(|e| panic!("{e}"))
}

/// A connection to the shared test cluster under a fresh namespace, not yet initialized.
pub fn cluster_connection() -> RedisConnection {
    let config = RedisConfig::cluster(shared_cluster().addresses())
        .unwrap_or_else(|e| panic!("{e}"))
        .namespace(unique_namespace());
    RedisConnection::new(config).unwrap_or_else(|e| panic!("{e}"))
}

/// The store conformance subject on the standalone Redis.
pub async fn standalone_store() -> Subject {
    store_subject(standalone_connection(), true).await
}

/// The limiter conformance subject on the standalone Redis.
pub async fn standalone_limiter() -> LimiterSubject {
    limiter_subject(standalone_connection(), true).await
}

/// The store conformance subject on the test cluster.
pub async fn cluster_store() -> Subject {
    store_subject(cluster_connection(), false).await
}

/// The limiter conformance subject on the test cluster.
pub async fn cluster_limiter() -> LimiterSubject {
    limiter_subject(cluster_connection(), false).await
}

async fn store_subject(redis: RedisConnection, clean_up: bool) -> Subject {
    let time = Arc::new(RealTimeThenCleanUp::new(&redis, clean_up));
    let store = RedisStore::new(redis);
    store
        .initialize(&mut Tasks::new())
        .await
        .unwrap_or_else(|e| panic!("{}", unavailable(&e)));
    Subject {
        store: Arc::new(store),
        time,
    }
}

async fn limiter_subject(redis: RedisConnection, clean_up: bool) -> LimiterSubject {
    let time = Arc::new(RealTimeThenCleanUp::new(&redis, clean_up));
    let limiter = RedisRateLimiter::new(redis);
    limiter
        .initialize(&mut Tasks::new())
        .await
        .unwrap_or_else(|e| panic!("{}", unavailable(&e)));
    LimiterSubject {
        limiter: Arc::new(limiter),
        time,
    }
}

/// Tests that need Redis fail, never skip, when it is missing.
fn unavailable(error: &dyn std::fmt::Display) -> String {
    format!(
        "these tests need a real Redis 7+ and it is not usable: {error}\n\
         start one (`redis-server`) or point CRUDAUTH_TEST_REDIS_URL at one"
    )
}

/// Time passes for real (Redis keeps its own clock); when the subject is dropped at the end of
/// a test, every key of its namespace is deleted.
struct RealTimeThenCleanUp {
    url: String,
    namespace: String,
    clean_up: bool,
}

impl RealTimeThenCleanUp {
    fn new(redis: &RedisConnection, clean_up: bool) -> Self {
        Self {
            url: redis_url(),
            namespace: redis.namespace().to_owned(),
            clean_up,
        }
    }
}

#[async_trait]
impl TimeTravel for RealTimeThenCleanUp {
    async fn pass(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
}

impl Drop for RealTimeThenCleanUp {
    fn drop(&mut self) {
        if self.clean_up {
            delete_namespace(&self.url, &self.namespace);
        }
    }
}

/// Every key under `namespace`, listed with `redis-cli --scan` (none when redis-cli cannot
/// run).
pub fn namespace_keys(url: &str, namespace: &str) -> Vec<String> {
    let Ok(scan) = Command::new("redis-cli")
        .args(["-u", url, "--no-auth-warning", "--scan", "--pattern"])
        .arg(format!("{namespace}*"))
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&scan.stdout)
        .lines()
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The answers to `commands` (one a line), sent down one `redis-cli` on `url` through its
/// standard input: one process for any number of commands. Best effort: none when redis-cli
/// cannot run.
pub fn redis_cli_pipe(url: &str, commands: &str) -> Vec<String> {
    let Ok(mut child) = Command::new("redis-cli")
        .args(["-u", url, "--no-auth-warning"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return Vec::new();
    };
    // Written from a thread of its own, so a long answer cannot block a long question.
    let writer = child.stdin.take().map(|mut stdin| {
        let commands = commands.to_owned();
        std::thread::spawn(move || {
            let _ = stdin.write_all(commands.as_bytes());
        })
    });
    let out = child.wait_with_output();
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    out.map(|out| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// Deletes every key under `namespace` (best effort: they all expire anyway).
pub fn delete_namespace(url: &str, namespace: &str) {
    let deletes: String = namespace_keys(url, namespace)
        .chunks(500)
        .map(|chunk| format!("DEL {}\n", chunk.join(" ")))
        .collect();
    redis_cli_pipe(url, &deletes);
}
