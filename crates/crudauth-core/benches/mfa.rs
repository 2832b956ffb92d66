#![allow(missing_docs, clippy::unwrap_used)]
//! Two-factor checks in process: one TOTP verification (three candidate steps, each compared),
//! the whole check of a sign-in code (opening the Fernet-sealed secret first), and one
//! recovery-code check against a set of ten.
//!
//! `cargo bench -p crudauth-core --bench mfa -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use crudauth_core::mfa::fernet::FernetKey;
use crudauth_core::mfa::totp::TotpSecret;
use crudauth_core::mfa::{recovery, Factors, Mfa, MfaConfig, Verdict};
use crudauth_core::user::{MfaColumns, User, UserId};

fn bench(c: &mut Criterion) {
    let secret = TotpSecret::generate();
    let now = 1_800_000_000;
    // The code of the next step: every candidate is computed and compared whatever matches.
    let code = secret.code_at(now + 30);
    c.bench_function("totp_verify_three_steps", |b| {
        b.iter(|| black_box(secret.verify(black_box(&code), now)))
    });

    let mfa = Mfa::new(
        MfaConfig::new("bench", [FernetKey::generate()]),
        b"a secret key of thirty-two bytes or more",
    )
    .unwrap();
    let (codes, stored) = mfa.new_recovery_codes();
    let user = User {
        id: UserId::Int(1),
        email: Some("ada@example.com".into()),
        username: Some("ada".into()),
        hashed_password: None,
        is_active: true,
        is_superuser: false,
        email_verified: true,
        token_version: 0,
        oauth_provider: None,
        provider_ids: Default::default(),
        mfa: MfaColumns {
            secret: Some(mfa.seal(&secret)),
            confirmed: true,
            last_step: None,
            recovery_codes: Some(stored.clone()),
        },
    };
    assert_eq!(
        mfa.check(&user, &code, now, Factors::TotpOrRecovery),
        Verdict::Totp(now / 30 + 1)
    );
    c.bench_function("mfa_check_totp_with_sealed_secret", |b| {
        b.iter(|| black_box(mfa.check(&user, black_box(&code), now, Factors::TotpOrRecovery)))
    });
    // The last code of the set: every digest is compared anyway.
    let last = codes[9].to_uppercase();
    c.bench_function("recovery_code_check_of_ten", |b| {
        b.iter(|| black_box(recovery::redeem(black_box(&stored), black_box(&last))))
    });
    c.bench_function("mfa_check_recovery_code", |b| {
        b.iter(|| black_box(mfa.check(&user, black_box(&last), now, Factors::TotpOrRecovery)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
