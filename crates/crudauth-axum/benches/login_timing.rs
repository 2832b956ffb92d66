//! Timing parity of a failed password sign-in: what `authenticate_password` costs for an
//! identifier that names no account, for a known account with a wrong password, and for an
//! account still on a crudauth bcrypt hash (cost 12) with a wrong password, all at the
//! default argon2id costs (OWASP: m = 19456 KiB, t = 2, p = 1).
//!
//! The first two medians should agree within noise: an unknown identifier costs the same
//! user-table queries (every login field is looked up) and one verification against a dummy
//! hash made by the configured hasher at its configured costs. The third shows the residual
//! difference crudauth's legacy hashes keep until their first sign-in rehashes them.
//!
//! `cargo bench -p crudauth-axum --bench login_timing` (figures); `-- --test` runs each once.

use std::time::Duration;

use criterion::Criterion;
use crudauth_axum::{CrudAuth, LockoutConfig, SessionTransport};
use crudauth_core::password::{Password, Passwords};
use crudauth_core::user::{MemoryUsers, NewUser, UserStore};

/// "correct horse" hashed by Python's `bcrypt` with crudauth's recipe at its cost 12.
const CRUDAUTH_BCRYPT_12: &str = "$2b$12$ssNLc7oeSVdlbTzwEaxLburcivvV6dMm9hHZVWMGj6H70AdB.6cb2";

fn login_timing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let users = MemoryUsers::new();
    let passwords = Passwords::new();
    let auth = rt.block_on(async {
        let argon2 = passwords
            .hash(&Password::new("correct horse"))
            .await
            .expect("a hash");
        users
            .create(NewUser::new("known@example.com", "known", argon2.0))
            .await
            .expect("the known user");
        users
            .create(NewUser::new(
                "legacy@example.com",
                "legacy",
                CRUDAUTH_BCRYPT_12.to_owned(),
            ))
            .await
            .expect("the legacy user");
        let auth = CrudAuth::builder()
            .secret_key([7u8; 32])
            .users(users.clone())
            .passwords(passwords.clone())
            .session_transport(SessionTransport::default())
            // Never locked: every iteration does the full password work.
            .lockout(LockoutConfig {
                max_attempts: u32::MAX,
                ..LockoutConfig::default()
            })
            .warn_on_memory_backend(false)
            .build()
            .expect("a configuration");
        // Makes the dummy hash, as serving does.
        std::mem::forget(auth.initialize().await.expect("initialized"));
        auth
    });

    let mut group = c.benchmark_group("login_timing");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    for (name, identifier) in [
        ("unknown_identifier", "nobody@example.com"),
        ("known_wrong_password", "known@example.com"),
        ("legacy_bcrypt_wrong_password", "legacy@example.com"),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let auth = &auth;
                async move {
                    let refused = auth
                        .authenticate_password(identifier, "wrong horse", "203.0.113.9")
                        .await;
                    assert!(refused.is_err(), "{name} must fail");
                }
            })
        });
    }
    group.finish();
}

// Written out rather than through criterion_group!, whose generated pub fn has no doc.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    login_timing(&mut criterion);
    criterion.final_summary();
}
