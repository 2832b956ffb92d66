//! What a bearer request costs before the user row: HS256 verification of an access token with
//! its claims checked (signature, algorithm allow-list, `exp`/`nbf`, token type, key hints);
//! rejecting a forgery; and minting a token. (What a whole request costs, with the principal a
//! token resolved to remembered, is `cargo bench -p crudauth-axum --bench request`.)
//!
//! `cargo bench -p crudauth-core --bench jwt -- --warm-up-time 1 --measurement-time 5`
//!
//! Target (`../shared/reference/security-and-performance.md` in the project's development
//! setup, B5): verify + claims ≤ 2 µs.

use std::hint::black_box;
use std::sync::Arc;

use criterion::Criterion;
use crudauth_core::jwt::{BearerTokens, TokenConfig};
use crudauth_core::secret::SecretKey;
use crudauth_core::store::MemoryStore;
use crudauth_core::user::{User, UserId};

fn user() -> User {
    User {
        id: UserId::Int(1234),
        email: Some("ada@example.com".into()),
        username: Some("ada".into()),
        hashed_password: None,
        is_active: true,
        is_superuser: false,
        email_verified: true,
        token_version: 3,
        oauth_provider: None,
        provider_ids: Default::default(),
        mfa: Default::default(),
    }
}

fn jwt(c: &mut Criterion) {
    let key = SecretKey::new([7u8; 32]).expect("a 32-byte key");
    let tokens = BearerTokens::new(&key, Arc::new(MemoryStore::new()), TokenConfig::default())
        .expect("the default configuration");
    let user = user();
    let scopes = vec!["items:read".to_owned(), "reports:read".to_owned()];
    let token = tokens
        .access_token(&user, scopes.clone())
        .expect("sign an access token");

    let mut group = c.benchmark_group("jwt");
    group.bench_function("hs256_verify_access_with_claims", |b| {
        b.iter(|| {
            tokens
                .verify_access(black_box(token.expose()))
                .expect("valid")
        })
    });
    group.bench_function("hs256_reject_forged_signature", |b| {
        let mut forged = token.expose().to_owned();
        forged.pop();
        forged.push('A');
        b.iter(|| tokens.verify_access(black_box(&forged)).is_err())
    });
    group.bench_function("hs256_sign_access", |b| {
        b.iter(|| {
            tokens
                .access_token(black_box(&user), scopes.clone())
                .expect("sign")
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    jwt(&mut criterion);
    criterion.final_summary();
}
