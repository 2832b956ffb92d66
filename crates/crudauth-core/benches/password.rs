//! What a password costs: argon2id hash and verify at OWASP costs, crudauth's bcrypt (cost 12)
//! verify, and the unknown-user path, each through the `Passwords` service (so the
//! `spawn_blocking` hand-off and the semaphore are included).
//!
//! `cargo bench -p crudauth-core --bench password -- --warm-up-time 1 --measurement-time 5`

use criterion::{Criterion, SamplingMode};
use crudauth_core::password::{Password, Passwords};
use crudauth_core::user::PasswordHash;

/// "correct horse", hashed by Python's bcrypt with crudauth's recipe at its default cost 12.
const CRUDAUTH_BCRYPT_12: &str = "$2b$12$ssNLc7oeSVdlbTzwEaxLburcivvV6dMm9hHZVWMGj6H70AdB.6cb2";

fn passwords(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let service = Passwords::new();
    let typed = Password::new("correct horse battery staple");
    let wrong = Password::new("correct horse battery stapler");
    let stored = rt.block_on(service.hash(&typed)).expect("hash");
    let legacy = PasswordHash(CRUDAUTH_BCRYPT_12.to_owned());
    let legacy_typed = Password::new("correct horse");
    let legacy_wrong = Password::new("correct horsE");

    let mut group = c.benchmark_group("password");
    // Each iteration takes milliseconds: a fixed number of iterations per sample.
    group.sampling_mode(SamplingMode::Flat).sample_size(20);

    group.bench_function("argon2id_hash_owasp", |b| {
        b.to_async(&rt)
            .iter(|| async { service.hash(&typed).await.expect("hash") })
    });
    group.bench_function("argon2id_verify_owasp_match", |b| {
        b.to_async(&rt).iter(|| async {
            let verdict = service.verify(&typed, Some(&stored)).await.expect("verify");
            assert!(verdict.matched);
        })
    });
    group.bench_function("argon2id_verify_owasp_wrong", |b| {
        b.to_async(&rt).iter(|| async {
            let verdict = service.verify(&wrong, Some(&stored)).await.expect("verify");
            assert!(!verdict.matched);
        })
    });
    group.bench_function("unknown_user_dummy_verify", |b| {
        b.to_async(&rt).iter(|| async {
            let verdict = service.verify(&typed, None).await.expect("verify");
            assert!(!verdict.matched);
        })
    });
    group.finish();

    // bcrypt at cost 12 takes about 0.2 s: fewer samples, so a run stays near its target time.
    let mut group = c.benchmark_group("password");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("bcrypt12_legacy_verify_wrong", |b| {
        b.to_async(&rt).iter(|| async {
            let verdict = service
                .verify(&legacy_wrong, Some(&legacy))
                .await
                .expect("verify");
            assert!(!verdict.matched);
        })
    });
    // The first login of a migrated account: bcrypt verify, then an argon2id rehash.
    group.bench_function("bcrypt12_legacy_verify_match_and_rehash", |b| {
        b.to_async(&rt).iter(|| async {
            let verdict = service
                .verify(&legacy_typed, Some(&legacy))
                .await
                .expect("verify");
            assert!(verdict.rehash.is_some());
        })
    });
    group.finish();
}

// Written out rather than through criterion_group!, whose generated pub fn has no doc.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    passwords(&mut criterion);
    criterion.final_summary();
}
