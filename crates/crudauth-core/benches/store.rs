//! Store throughput: the one read every authenticated request makes (`get_and_touch`).
//!
//! - memory: `MemoryStore::get_and_touch` on one thread, then on two (must scale);
//! - redis: `RedisStore::get_and_touch` (GETEX) from 64 concurrent tasks against raw `fred`
//!   GETs from the same client setup and concurrency, plus one sequential task (≈ 1/RTT) to
//!   show what pipelining buys. Needs Redis at `CRUDAUTH_BENCH_REDIS_URL` (default
//!   `redis://127.0.0.1:6379`); it writes under its own namespace and deletes it afterwards.
//!
//! ```text
//! cargo bench -p crudauth-core --bench store
//! ```
//!
//! Besides criterion's report, summaries print ops/s side by side, measured interleaved.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crudauth_core::store::{MemoryStore, Store};

const KEYS: usize = 1024;
const TTL: Duration = Duration::from_secs(1800);
/// A session record of a typical size.
const RECORD: &[u8] = &[b'x'; 256];

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("s:{i:064x}")).collect()
}

/// Polls a future that never waits (every memory-store call) to completion.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

fn memory_store() -> (Arc<dyn Store>, Arc<Vec<String>>) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let keys = Arc::new(keys());
    for key in keys.iter() {
        ready(store.set(key, Bytes::from_static(RECORD), TTL)).expect("memory set");
    }
    (store, keys)
}

/// `ops` reads spread over `threads` OS threads; the wall time from a common start.
fn memory_run(
    store: &Arc<dyn Store>,
    keys: &Arc<Vec<String>>,
    threads: usize,
    ops: u64,
) -> Duration {
    if threads == 1 {
        let start = Instant::now();
        for i in 0..ops as usize {
            black_box(ready(store.get_and_touch(&keys[i % KEYS], TTL)).expect("read"));
        }
        return start.elapsed();
    }
    let barrier = Arc::new(Barrier::new(threads + 1));
    let per_thread = ops / threads as u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, keys, barrier) = (store.clone(), keys.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                // Each thread starts elsewhere in the key space, as different sessions would.
                let offset = t * KEYS / threads;
                for i in 0..per_thread as usize {
                    let key = &keys[(offset + i) % KEYS];
                    black_box(ready(store.get_and_touch(key, TTL)).expect("read"));
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for handle in handles {
        handle.join().expect("bench thread");
    }
    start.elapsed()
}

fn memory(c: &mut Criterion) {
    let (store, keys) = memory_store();
    let mut group = c.benchmark_group("memory/get_and_touch");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(4));
    for threads in [1, 2] {
        group.bench_function(format!("{threads} thread(s)"), |b| {
            b.iter_custom(|iters| memory_run(&store, &keys, threads, iters))
        });
    }
    group.finish();
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use crudauth_core::lifespan::Tasks;
    use crudauth_core::store::{RedisConfig, RedisConnection, RedisStore};
    use fred::interfaces::KeysInterface;
    use fred::types::Key;

    pub const TASKS: u64 = 64;

    pub struct Bench {
        pub runtime: tokio::runtime::Runtime,
        pub store: Arc<RedisStore>,
        pub connection: RedisConnection,
        pub keys: Arc<Vec<String>>,
        /// The same keys with the namespace, ready for raw fred calls.
        pub full_keys: Arc<Vec<Key>>,
    }

    pub fn setup() -> Option<Bench> {
        let url = std::env::var("CRUDAUTH_BENCH_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let namespace = format!("crudauth-bench:{}:", std::process::id());
        let connection = RedisConnection::new(
            RedisConfig::from_url(&url)
                .ok()?
                .namespace(namespace.clone()),
        )
        .ok()?;
        let store = Arc::new(RedisStore::new(connection.clone()));
        if let Err(error) = runtime.block_on(store.initialize(&mut Tasks::new())) {
            eprintln!("\n!! skipping the Redis benchmarks: {error}\n");
            return None;
        }
        let keys = Arc::new(keys());
        runtime.block_on(async {
            for key in keys.iter() {
                store
                    .set(key, Bytes::from_static(RECORD), TTL)
                    .await
                    .expect("redis set");
            }
        });
        let full_keys = Arc::new(
            keys.iter()
                .map(|k| Key::from(format!("{namespace}{k}")))
                .collect(),
        );
        Some(Bench {
            runtime,
            store,
            connection,
            keys,
            full_keys,
        })
    }

    /// `ops` RedisStore reads from `tasks` concurrent tasks; the wall time.
    pub fn store_reads(bench: &Bench, tasks: u64, ops: u64) -> Duration {
        bench.runtime.block_on(async {
            let per_task = ops.div_ceil(tasks) as usize;
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks as usize)
                .map(|t| {
                    let (store, keys) = (bench.store.clone(), bench.keys.clone());
                    tokio::spawn(async move {
                        let offset = t * KEYS / tasks as usize;
                        for i in 0..per_task {
                            let key = &keys[(offset + i) % KEYS];
                            black_box(store.get_and_touch(key, TTL).await.expect("GETEX"));
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("bench task");
            }
            start.elapsed()
        })
    }

    /// `ops` raw fred GETs on the same client from `tasks` concurrent tasks; the wall time.
    pub fn raw_reads(bench: &Bench, tasks: u64, ops: u64) -> Duration {
        bench.runtime.block_on(async {
            let per_task = ops.div_ceil(tasks) as usize;
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks as usize)
                .map(|t| {
                    let client = bench.connection.client().clone();
                    let keys = bench.full_keys.clone();
                    tokio::spawn(async move {
                        let offset = t * KEYS / tasks as usize;
                        for i in 0..per_task {
                            let key = keys[(offset + i) % KEYS].clone();
                            let value: Option<Bytes> = client.get(key).await.expect("GET");
                            black_box(value);
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("bench task");
            }
            start.elapsed()
        })
    }

    pub fn teardown(bench: Bench) {
        bench.runtime.block_on(async {
            for key in bench.keys.iter() {
                let _ = bench.store.delete(key).await;
            }
            bench.store.shutdown().await;
        });
    }
}

#[cfg(feature = "redis")]
fn redis(c: &mut Criterion) {
    let Some(bench) = redis::setup() else { return };
    let mut group = c.benchmark_group("redis/read");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(20);
    group.bench_function("RedisStore get_and_touch, 64 tasks", |b| {
        b.iter_custom(|iters| redis::store_reads(&bench, redis::TASKS, iters))
    });
    group.bench_function("raw fred GET, 64 tasks", |b| {
        b.iter_custom(|iters| redis::raw_reads(&bench, redis::TASKS, iters))
    });
    group.bench_function("raw fred GET, 1 task (1 per RTT)", |b| {
        b.iter_custom(|iters| redis::raw_reads(&bench, 1, iters))
    });
    group.finish();
    redis_summary(&bench);
    redis::teardown(bench);
}

fn rate(elapsed: Duration, ops: u64) -> f64 {
    ops as f64 / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The Redis figures side by side, measured interleaved so machine noise hits both alike.
#[cfg(feature = "redis")]
fn redis_summary(bench: &redis::Bench) {
    const ROUNDS: usize = 5;
    const OPS: u64 = 200_000;
    let (mut store, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        store.push(rate(redis::store_reads(bench, redis::TASKS, OPS), OPS));
        raw.push(rate(redis::raw_reads(bench, redis::TASKS, OPS), OPS));
    }
    let sequential = rate(redis::raw_reads(bench, 1, 20_000), 20_000);
    let (store, raw) = (median(store), median(raw));
    eprintln!("\n== Redis summary (median of {ROUNDS} interleaved rounds of {OPS} reads) ==");
    eprintln!("RedisStore get_and_touch (GETEX), 64 tasks : {store:>12.0} ops/s");
    eprintln!("raw fred GET, same client, 64 tasks        : {raw:>12.0} ops/s");
    eprintln!(
        "ratio store / raw                          : {:>12.2} (target >= 0.90)",
        store / raw
    );
    eprintln!(
        "raw fred GET, 1 task (1 per round trip)    : {sequential:>12.0} ops/s (64 tasks do {:.1}x: pipelined)",
        raw / sequential
    );
}

/// Nanoseconds this thread has spent on a CPU (Linux), to tell contention from a busy machine.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Reads per second of on-CPU time, over `threads` threads: equal for one and two threads when
/// they do not slow each other down, whatever else the machine is running.
fn memory_per_cpu_second(
    store: &Arc<dyn Store>,
    keys: &Arc<Vec<String>>,
    threads: usize,
    ops: u64,
) -> Option<f64> {
    let per_thread = ops / threads as u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, keys) = (store.clone(), keys.clone());
            std::thread::spawn(move || {
                let offset = t * KEYS / threads;
                let before = thread_cpu_ns()?;
                for i in 0..per_thread as usize {
                    let key = &keys[(offset + i) % KEYS];
                    black_box(ready(store.get_and_touch(key, TTL)).expect("read"));
                }
                Some(thread_cpu_ns()? - before)
            })
        })
        .collect();
    let mut cpu_ns = 0;
    for handle in handles {
        cpu_ns += handle.join().expect("bench thread")?;
    }
    Some(ops as f64 / (cpu_ns as f64 / 1e9))
}

/// The memory figures, median of interleaved rounds.
fn memory_summary(_: &mut Criterion) {
    const ROUNDS: usize = 5;
    const OPS: u64 = 5_000_000;
    let (store, keys) = memory_store();
    let (mut one, mut two) = (Vec::new(), Vec::new());
    let (mut one_cpu, mut two_cpu) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        one.push(rate(memory_run(&store, &keys, 1, OPS), OPS));
        two.push(rate(memory_run(&store, &keys, 2, 2 * OPS), 2 * OPS));
        one_cpu.extend(memory_per_cpu_second(&store, &keys, 1, OPS));
        two_cpu.extend(memory_per_cpu_second(&store, &keys, 2, 2 * OPS));
    }
    let (one, two) = (median(one), median(two));
    eprintln!("\n== Memory summary (median of {ROUNDS} interleaved rounds) ==");
    eprintln!(
        "MemoryStore get_and_touch, 1 thread        : {one:>12.0} ops/s (target >= 5 000 000)"
    );
    eprintln!(
        "MemoryStore get_and_touch, 2 threads       : {two:>12.0} ops/s ({:.2}x one thread)",
        two / one
    );
    if !one_cpu.is_empty() && !two_cpu.is_empty() {
        let (one_cpu, two_cpu) = (median(one_cpu), median(two_cpu));
        eprintln!(
            "per on-CPU second, 1 thread / 2 threads    : {one_cpu:>12.0} / {two_cpu:.0} ({:.2}: 1.00 = no contention)",
            two_cpu / one_cpu
        );
    }
}

#[cfg(feature = "redis")]
criterion_group!(benches, memory, memory_summary, redis);
#[cfg(not(feature = "redis"))]
criterion_group!(benches, memory, memory_summary);
criterion_main!(benches);
