#![allow(missing_docs, clippy::unwrap_used)]
//! The session hot path: what an authenticated request costs before the HTTP stack.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use crudauth_core::secret::{SecretKey, SessionId};
use crudauth_core::session::{NewSession, SessionConfig, SessionRecord, Sessions};
use crudauth_core::store::MemoryStore;
use crudauth_core::user::{CachedUsers, MemoryUsers, NewUser, UserId, UserStore};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sessions = Sessions::new(
        Arc::new(MemoryStore::new()),
        SecretKey::new([1u8; 32]).unwrap(),
        SessionConfig::default(),
    );
    let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
    let created = rt
        .block_on(sessions.create(
            &UserId::Int(1),
            0,
            NewSession {
                ip: "127.0.0.1".into(),
                user_agent: ua.into(),
                ..Default::default()
            },
        ))
        .unwrap();
    let id: SessionId = created.id.clone();
    c.bench_function("session_load_memory", |b| {
        b.to_async(&rt)
            .iter(|| async { sessions.load(id.clone()).await.unwrap() })
    });
    c.bench_function("session_handle_hmac", |b| {
        b.iter(|| sessions.handle_of(&id))
    });
    let bytes = created.record.to_bytes();
    c.bench_function("session_record_decode", |b| {
        b.iter(|| SessionRecord::from_bytes(&bytes).unwrap())
    });
    let users = MemoryUsers::new();
    rt.block_on(users.create(NewUser::new(
        "a@example.com",
        "a",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
    )))
    .unwrap();
    let cached = CachedUsers::new(Arc::new(users), Duration::from_secs(5));
    c.bench_function("user_cache_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { cached.find_shared(&UserId::Int(1)).await.unwrap() })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
