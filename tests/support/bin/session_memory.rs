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
//! of its own on `CRUDAUTH_TEST_REDIS_URL` (deleted afterwards), and how much the server's
//! `used_memory` grew, which counts its key and expiry tables too.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use crudauth_core::secret::SecretKey;
use crudauth_core::session::{NewSession, SessionConfig, Sessions};
use crudauth_core::store::{MemoryStore, RedisStore, Store};
use crudauth_core::user::UserId;
use crudauth_tests::redis::{
    delete_namespace, namespace_keys, redis_cli_pipe, redis_url, standalone_connection,
};

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

fn client(n: u64) -> NewSession {
    NewSession {
        ip: format!("203.0.{}.{}", (n >> 8) & 255, n & 255),
        user_agent: USER_AGENT.to_owned(),
        remember_me: false,
        login_type: Some("password".to_owned()),
    }
}

/// Signs in users `1..=users`, once each, from `tasks` tasks at a time (one for the memory
/// store, whose figure is the process's own; several for Redis, where each sign-in waits on
/// the network).
async fn sign_in_all(sessions: &Sessions, users: u64, tasks: u64) {
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let sessions = sessions.clone();
        running.spawn(async move {
            for n in (task..users).step_by(tasks as usize) {
                sessions
                    .create(&UserId::Int(n as i64 + 1), 0, client(n))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = running.join_next().await {
        done.unwrap();
    }
    println!(
        "{users} sessions created in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The server's `used_memory` (`INFO memory`): everything it holds, its key and expiry tables
/// included, which `MEMORY USAGE` leaves out.
fn used_memory() -> u64 {
    redis_cli_pipe(&redis_url(), "INFO memory\n")
        .iter()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
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
            sign_in_all(&sessions, users, 1).await;
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
            let before = used_memory();
            sign_in_all(&sessions, users, 32).await;
            let grown = used_memory().saturating_sub(before);
            let keys = namespace_keys(&redis_url(), &namespace);
            let commands: String = keys
                .iter()
                .map(|k| format!("TYPE {k}\nMEMORY USAGE {k} SAMPLES 0\n"))
                .collect();
            let answers = redis_cli_pipe(&redis_url(), &commands);
            assert_eq!(
                answers.len(),
                2 * keys.len(),
                "one TYPE and one MEMORY USAGE a key"
            );
            let (mut records, mut record_bytes, mut indexes, mut index_bytes, mut others) =
                (0u64, 0u64, 0u64, 0u64, 0u64);
            for answer in answers.chunks(2) {
                let bytes: u64 = answer[1].parse().unwrap_or(0);
                match answer[0].as_str() {
                    "string" => {
                        records += 1;
                        record_bytes += bytes;
                    }
                    "zset" | "set" | "hash" => {
                        indexes += 1;
                        index_bytes += bytes;
                    }
                    _ => others += bytes,
                }
            }
            delete_namespace(&redis_url(), &namespace);
            println!(
                "redis: {records} records, {} bytes each (MEMORY USAGE); {indexes} per-user \
                 indexes, {} bytes per session; other keys {others} bytes; {} bytes per session \
                 in all",
                record_bytes / records.max(1),
                index_bytes / users.max(1),
                (record_bytes + index_bytes + others) / users.max(1)
            );
            println!(
                "redis: used_memory grew {:.1} MB, {} bytes per session (the server's key and \
                 expiry tables included)",
                grown as f64 / 1e6,
                grown / users.max(1)
            );
        }
        other => panic!("unknown backend {other:?}: memory or redis"),
    }
}
