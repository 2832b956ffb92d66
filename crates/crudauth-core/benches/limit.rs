//! What a rate-limit decision costs: `hit()` on the memory limiter from one thread and from two,
//! on Redis from 64 concurrent tasks (one command per hit, auto-pipelined), and a login-lockout
//! attempt on each.
//!
//! `cargo bench -p crudauth-core --bench limit -- --warm-up-time 1 --measurement-time 5`
//!
//! Redis: `CRUDAUTH_BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`), under a namespace of
//! its own whose keys expire by themselves; the Redis cases are skipped when it is not reachable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use crudauth_core::limit::{Budget, LockoutConfig, LockoutKeys, MemoryRateLimiter, RateLimiter};

/// Enough budget that every hit is admitted (the common path): a burst of a billion.
const BUDGET: Budget = Budget::new(1_000_000_000, Duration::from_secs(3600));
const KEYS: usize = 1024;

fn keys(tag: &str) -> Vec<String> {
    (0..KEYS)
        .map(|i| format!("q:bench:{tag}:10.0.{}.{}", i / 256, i % 256))
        .collect()
}

/// `iters` hits spread over `threads` OS threads, each with a runtime of its own; the wall time.
fn hits_on_threads(limiter: &MemoryRateLimiter, threads: usize, iters: u64) -> Duration {
    let per_thread = iters.div_ceil(threads as u64);
    let start = Arc::new(std::sync::Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (limiter, start, keys) = (limiter.clone(), start.clone(), keys(&t.to_string()));
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a tokio runtime");
                start.wait();
                rt.block_on(async {
                    for i in 0..per_thread as usize {
                        let d = limiter.hit(&keys[i % KEYS], BUDGET).await.expect("hit");
                        assert!(d.allowed);
                    }
                });
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for h in handles {
        h.join().expect("bench thread");
    }
    began.elapsed()
}

fn memory(c: &mut Criterion) {
    let mut group = c.benchmark_group("limit_memory");
    group.throughput(Throughput::Elements(1));
    let limiter = MemoryRateLimiter::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let one = keys("one");
    let mut i = 0usize;
    group.bench_function("hit_1_thread", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % KEYS;
            let key = &one[i];
            let limiter = &limiter;
            async move { limiter.hit(key, BUDGET).await.expect("hit") }
        })
    });
    group.bench_function("hit_2_threads", |b| {
        b.iter_custom(|iters| hits_on_threads(&limiter, 2, iters))
    });
    let config = LockoutConfig {
        max_attempts: u32::MAX,
        ..LockoutConfig::default()
    };
    let attempts: Vec<LockoutKeys> = (0..KEYS)
        .map(|i| {
            named(
                &format!("10.1.{}.{}", i / 256, i % 256),
                &format!("user{i}"),
            )
        })
        .collect();
    let mut j = 0usize;
    group.bench_function("login_attempt_1_thread", |b| {
        b.to_async(&rt).iter(|| {
            j = (j + 1) % KEYS;
            let (keys, limiter, config) = (&attempts[j], &limiter, &config);
            async move { limiter.login_attempt(keys, config).await.expect("attempt") }
        })
    });
    group.finish();
}

#[cfg(feature = "redis")]
fn redis(c: &mut Criterion) {
    use crudauth_core::lifespan::Tasks;
    use crudauth_core::limit::RedisRateLimiter;
    use crudauth_core::store::{RedisConfig, RedisConnection};

    const TASKS: u64 = 64;
    let url = std::env::var("CRUDAUTH_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let namespace = format!("crudauth-bench:{}:", std::process::id());
    let limiter = match rt.block_on(async {
        let config = RedisConfig::from_url(&url)?.namespace(namespace);
        let limiter = RedisRateLimiter::new(RedisConnection::new(config)?);
        limiter.initialize(&mut Tasks::new()).await?;
        Ok::<_, crudauth_core::StoreError>(limiter)
    }) {
        Ok(limiter) => Arc::new(limiter),
        Err(error) => {
            eprintln!("skipping the Redis benchmarks: {error}");
            return;
        }
    };
    let mut group = c.benchmark_group("limit_redis");
    group.throughput(Throughput::Elements(1));
    let hit_keys = Arc::new(keys("redis"));
    group.bench_function("hit_64_tasks", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (limiter, keys) = (limiter.clone(), hit_keys.clone());
            async move {
                let per_task = iters.div_ceil(TASKS) as usize;
                let began = Instant::now();
                let tasks: Vec<_> = (0..TASKS as usize)
                    .map(|t| {
                        let (limiter, keys) = (limiter.clone(), keys.clone());
                        tokio::spawn(async move {
                            for i in 0..per_task {
                                let key = &keys[(t * per_task + i) % KEYS];
                                limiter.hit(key, BUDGET).await.expect("hit");
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("bench task");
                }
                began.elapsed()
            }
        })
    });
    let config = Arc::new(LockoutConfig {
        max_attempts: u32::MAX,
        attempt_window: Duration::from_secs(5),
        ..LockoutConfig::default()
    });
    let attempts: Arc<Vec<LockoutKeys>> = Arc::new(
        (0..KEYS)
            .map(|i| {
                named(
                    &format!("10.2.{}.{}", i / 256, i % 256),
                    &format!("user{i}"),
                )
            })
            .collect(),
    );
    group.bench_function("login_attempt_64_tasks", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (limiter, attempts, config) = (limiter.clone(), attempts.clone(), config.clone());
            async move {
                let per_task = iters.div_ceil(TASKS) as usize;
                let began = Instant::now();
                let tasks: Vec<_> = (0..TASKS as usize)
                    .map(|t| {
                        let (limiter, attempts, config) =
                            (limiter.clone(), attempts.clone(), config.clone());
                        tokio::spawn(async move {
                            for i in 0..per_task {
                                let keys = &attempts[(t * per_task + i) % KEYS];
                                limiter.login_attempt(keys, &config).await.expect("attempt");
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("bench task");
                }
                began.elapsed()
            }
        })
    });
    group.finish();
    rt.block_on(limiter.shutdown());
}

#[cfg(not(feature = "redis"))]
fn redis(_: &mut Criterion) {}

// Written out rather than through criterion_group!, whose generated pub fn has no doc.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    memory(&mut criterion);
    redis(&mut criterion);
    criterion.final_summary();
}

/// The keys of an attempt on identifier `who` from `ip`.
fn named(ip: &str, who: &str) -> LockoutKeys {
    let key = crudauth_core::secret::SecretKey::new([5u8; 32]).expect("32 bytes");
    LockoutKeys::new(
        &key,
        Some(ip),
        crudauth_core::limit::LockoutSubject::Identifier(who),
    )
}
