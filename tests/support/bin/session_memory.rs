//! What live sessions cost in memory: `N` users each signed in once (a browser's address and
//! user agent, a password login), through `Sessions::create` as `/login` does.
//!
//! ```text
//! cargo run --release -p crudauth-tests --bin session-memory -- memory 1000000
//! cargo run --release -p crudauth-tests --bin session-memory -- redis 100000
//! ```
//!
//! `memory` reports the process's resident memory before and after (Linux `/proc`), `redis`
//! the `MEMORY USAGE` of every key written, record and per-user index apart, under a namespace
//! of its own on `CRUDAUTH_TEST_REDIS_URL` (deleted afterwards).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use crudauth_core::secret::SecretKey;
use crudauth_core::session::{NewSession, SessionConfig, Sessions};
use crudauth_core::store::{MemoryStore, RedisStore, Store};
use crudauth_core::user::UserId;
use crudauth_tests::redis::{delete_namespace, namespace_keys, redis_url, standalone_connection};

const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                          (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn sign_in_all(sessions: &Sessions, users: u64) {
    let started = Instant::now();
    for n in 0..users {
        let client = NewSession {
            ip: format!("203.0.{}.{}", (n >> 8) & 255, n & 255),
            user_agent: USER_AGENT.to_owned(),
            remember_me: false,
            login_type: Some("password".to_owned()),
        };
        sessions
            .create(&UserId::Int(n as i64 + 1), 0, client)
            .await
            .unwrap();
    }
    println!(
        "{users} sessions created in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-u", &redis_url(), "--no-auth-warning"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = args.get(1).map_or("memory", String::as_str);
    let users: u64 = args
        .get(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let key = SecretKey::new([5u8; 32]).unwrap();
    match backend {
        "memory" => {
            let before = resident_bytes();
            // Two entries a session (the record and the user's index), and room for the
            // shards that fill before the mean: what is measured is live sessions, not
            // evictions.
            let memory = MemoryStore::new().max_entries(2 * users as usize * 11 / 10 + 1024);
            let store: Arc<dyn Store> = Arc::new(memory.clone());
            let sessions = Sessions::new(store, key, SessionConfig::default());
            sign_in_all(&sessions, users).await;
            let after = resident_bytes();
            println!("memory store: {} entries held", memory.len());
            let grown = after.saturating_sub(before);
            println!(
                "memory store: resident {:.1} MB before, {:.1} MB after: {:.1} MB for {users} \
                 sessions, {} bytes each",
                before as f64 / 1e6,
                after as f64 / 1e6,
                grown as f64 / 1e6,
                grown / users.max(1)
            );
        }
        "redis" => {
            let redis = standalone_connection();
            let namespace = redis.namespace().to_owned();
            let store = RedisStore::new(redis);
            store
                .initialize(&mut crudauth_core::lifespan::Tasks::new())
                .await
                .unwrap();
            let store: Arc<dyn Store> = Arc::new(store);
            let sessions = Sessions::new(store, key, SessionConfig::default());
            sign_in_all(&sessions, users).await;
            let (mut records, mut record_bytes, mut index_bytes, mut others) =
                (0u64, 0u64, 0u64, 0u64);
            for k in namespace_keys(&redis_url(), &namespace) {
                let bytes: u64 = redis_cli(&["MEMORY", "USAGE", &k, "SAMPLES", "0"])
                    .parse()
                    .unwrap_or(0);
                let kind = redis_cli(&["TYPE", &k]);
                match kind.as_str() {
                    "string" => {
                        records += 1;
                        record_bytes += bytes;
                    }
                    "zset" | "set" | "hash" => index_bytes += bytes,
                    _ => others += bytes,
                }
            }
            delete_namespace(&redis_url(), &namespace);
            println!(
                "redis: {records} records, {} bytes each (MEMORY USAGE); per-user indexes {} bytes \
                 per session; other keys {others} bytes; {} bytes per session in all",
                record_bytes / records.max(1),
                index_bytes / users.max(1),
                (record_bytes + index_bytes + others) / users.max(1)
            );
        }
        other => panic!("unknown backend {other:?}: memory or redis"),
    }
}
