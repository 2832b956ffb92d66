//! Sessions under concurrency and across workers, on memory and on Redis: no resurrection, a
//! crudauth-made password hash signs in and is upgraded, two servers on one Redis share state.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use crudauth_core::secret::SecretKey;
use crudauth_core::session::{NewSession, SessionConfig, Sessions};
use crudauth_core::store::{MemoryStore, RedisConfig, RedisConnection, RedisStore, Store};
use crudauth_core::user::{NewUser, UserId, UserStore};
use crudauth_tests::app::{redis_url, spawn, two_workers, unique_prefix, Backend, Options};
use crudauth_tests::http::{Body, Browser};
use serde_json::json;

/// "correct horse", hashed by Python's bcrypt with crudauth's recipe
/// (bcrypt over base64(SHA-256(password)), cost 12).
const CRUDAUTH_HASH: &str = "$2b$12$ssNLc7oeSVdlbTzwEaxLburcivvV6dMm9hHZVWMGj6H70AdB.6cb2";

async fn redis_store() -> Arc<dyn Store> {
    let config = RedisConfig::from_url(&redis_url())
        .unwrap()
        .namespace(unique_prefix("sessions"));
    let store = RedisStore::new(RedisConnection::new(config).unwrap());
    store
        .initialize(&mut crudauth_core::lifespan::Tasks::new())
        .await
        .unwrap();
    Arc::new(store)
}

/// Requests in flight keep writing activity (every read writes, here) while the session is
/// revoked; once the revoke has returned, nothing brings the record back.
async fn revoked_sessions_stay_dead(store: Arc<dyn Store>) {
    let config = SessionConfig {
        activity_write_interval: Duration::ZERO,
        ..Default::default()
    };
    let sessions = Sessions::new(store.clone(), SecretKey::new([5u8; 32]).unwrap(), config);
    for round in 0..5 {
        let created = sessions
            .create(&UserId::Int(round), 0, NewSession::default())
            .await
            .unwrap();
        // Every reader has loaded (and written) once before the revoke starts, and goes on
        // loading while it runs.
        let started = Arc::new(tokio::sync::Barrier::new(33));
        let mut readers = Vec::new();
        for _ in 0..32 {
            let (s, id, started) = (sessions.clone(), created.id.clone(), started.clone());
            readers.push(tokio::spawn(async move {
                for i in 0..20 {
                    let _ = s.load(id.clone()).await.unwrap();
                    if i == 0 {
                        started.wait().await;
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        started.wait().await;
        assert!(sessions.revoke(&created.handle).await.unwrap());
        for r in readers {
            r.await.unwrap();
        }
        assert!(
            sessions.load(created.id.clone()).await.unwrap().is_none(),
            "round {round}"
        );
        assert_eq!(
            store.get(&format!("s:{}", created.handle)).await.unwrap(),
            None,
            "round {round}"
        );
        assert!(sessions.list(&UserId::Int(round)).await.unwrap().is_empty());
    }
}

/// Session data: concurrent writers of one session each write once; every write lands on the
/// record as it is (none overwrites the CSRF rotation made in between), the last one's data is
/// what stays, and once the session is revoked no write brings it back.
async fn session_data_writes_never_resurrect(store: Arc<dyn Store>) {
    let sessions = Sessions::new(
        store.clone(),
        SecretKey::new([6u8; 32]).unwrap(),
        SessionConfig::default(),
    );
    let created = sessions
        .create(&UserId::Int(1), 0, NewSession::default())
        .await
        .unwrap();
    // 16 requests load the session, then all write their own data at once.
    let start = Arc::new(tokio::sync::Barrier::new(16));
    let mut writers = Vec::new();
    for i in 0..16u32 {
        let (s, id, start) = (sessions.clone(), created.id.clone(), start.clone());
        writers.push(tokio::spawn(async move {
            let loaded = s.load(id).await.unwrap().unwrap();
            let mut data = loaded.data(&s);
            data.insert("writer", &i).unwrap();
            data.insert(&format!("only-{i}"), &true).unwrap();
            start.wait().await;
            assert!(s.write_data(&loaded, &data).await.unwrap(), "writer {i}");
        }));
    }
    // Meanwhile the CSRF nonce rotates: no data write may undo it.
    let loaded = sessions.load(created.id.clone()).await.unwrap().unwrap();
    let rotated = sessions.rotate_csrf(&loaded).await.unwrap().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let now = sessions.load(created.id.clone()).await.unwrap().unwrap();
    assert_eq!(
        now.record.csrf_nonce(),
        rotated.csrf_nonce(),
        "the rotation stands"
    );
    let data = now.data(&sessions);
    let last: u32 = data.get("writer").unwrap().unwrap();
    assert_eq!(
        data.get::<bool>(&format!("only-{last}")).unwrap(),
        Some(true),
        "the data is one writer's whole, not a mix"
    );
    let keys = (0..16).filter(|i| data.get::<bool>(&format!("only-{i}")).unwrap().is_some());
    assert_eq!(keys.count(), 1);

    // Revoked while writers hold a loaded copy: none of them writes it back.
    let holders: Vec<_> = (0..8)
        .map(|_| {
            let s = sessions.clone();
            let id = created.id.clone();
            async move { s.load(id).await.unwrap().unwrap() }
        })
        .collect();
    let mut held = Vec::new();
    for h in holders {
        held.push(h.await);
    }
    assert!(sessions.revoke(&created.handle).await.unwrap());
    let mut late = Vec::new();
    for loaded in held {
        let s = sessions.clone();
        late.push(tokio::spawn(async move {
            let mut data = loaded.data(&s);
            data.insert("late", &1).unwrap();
            s.write_data(&loaded, &data).await.unwrap()
        }));
    }
    for l in late {
        assert!(!l.await.unwrap(), "a write to a revoked session is refused");
    }
    assert_eq!(
        store.get(&format!("s:{}", created.handle)).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_data_writes_never_resurrect_in_memory() {
    session_data_writes_never_resurrect(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_data_writes_never_resurrect_on_redis() {
    session_data_writes_never_resurrect(redis_store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_sessions_stay_dead_in_memory() {
    revoked_sessions_stay_dead(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_sessions_stay_dead_on_redis() {
    revoked_sessions_stay_dead(redis_store().await).await;
}

async fn crudauth_hash_signs_in_and_is_upgraded(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let user = app
        .users
        .create(NewUser::new("py@example.com", "py", CRUDAUTH_HASH))
        .await
        .unwrap();
    let mut b = Browser::new();
    let r = b
        .sign_in(&app.url("/login"), "py", "wrong horse", &[])
        .await;
    assert_eq!(r.status, 401);
    let r = b
        .sign_in(&app.url("/login"), "py", "correct horse", &[])
        .await;
    assert_eq!(r.status, 200);
    let stored = app
        .users
        .find_by_id(&user.id)
        .await
        .unwrap()
        .unwrap()
        .hashed_password
        .unwrap();
    assert!(stored.0.starts_with("$argon2id$"), "rehashed on sign-in");
    let r = Browser::new()
        .sign_in(&app.url("/login"), "py", "correct horse", &[])
        .await;
    assert_eq!(r.status, 200, "the upgraded hash verifies");
}

#[tokio::test]
async fn crudauth_hash_signs_in_and_is_upgraded_memory() {
    crudauth_hash_signs_in_and_is_upgraded(Backend::Memory).await;
}

#[tokio::test]
async fn crudauth_hash_signs_in_and_is_upgraded_redis() {
    crudauth_hash_signs_in_and_is_upgraded(Backend::Redis).await;
}

/// Two servers (two workers) over one Redis and one user table: a session made on one is
/// honoured on the other, and a logout on either ends it everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_sessions_through_redis() {
    let (a, b) = two_workers("correct horse battery").await;
    let mut browser = Browser::new();
    let r = browser
        .sign_in(&a.url("/login"), "ada", "correct horse battery", &[])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        browser.get(&b.url("/me")).await.status,
        200,
        "worker B honours worker A's session"
    );
    assert_eq!(
        browser
            .post_csrf(&b.url("/account/settings"), Body::None)
            .await
            .status,
        200,
        "and its CSRF token"
    );
    assert_eq!(
        browser
            .get(&b.url("/sessions"))
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let mut copy = browser.clone();
    let r = browser.post_csrf(&b.url("/logout"), Body::None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        copy.get(&a.url("/me")).await.status,
        401,
        "logged out on worker A too"
    );
}

/// A password change on worker A bumps `token_version` while worker B still caches the old
/// row: B must not judge the credentials minted after the change (the changer's own session,
/// a new access token) by that stale row, and must still end the other sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_on_one_worker_is_judged_by_the_fresh_row_on_the_other() {
    let (a, b) = two_workers("correct horse battery").await;
    let mut mine = Browser::new();
    let mut other = Browser::new();
    for browser in [&mut mine, &mut other] {
        let r = browser
            .sign_in(&a.url("/login"), "ada", "correct horse battery", &[])
            .await;
        assert_eq!(r.status, 200);
        // Worker B now caches ada's row at the old version.
        assert_eq!(browser.get(&b.url("/dashboard")).await.status, 200);
    }
    let url = a.url("/change-password");
    let r = change_password(
        &mut mine,
        &url,
        "correct horse battery",
        "a brand new secret",
    )
    .await;
    assert_eq!(r, 200);
    assert_eq!(
        mine.get(&b.url("/dashboard")).await.status,
        200,
        "the changer's session lives on worker B"
    );
    assert_eq!(
        other.get(&b.url("/dashboard")).await.status,
        401,
        "the other session ended"
    );

    // B now caches the row as of the first change; change it again on A.
    let r = change_password(&mut mine, &url, "a brand new secret", "and another secret").await;
    assert_eq!(r, 200);
    let token = Browser::new()
        .sign_in(&a.url("/token"), "ada", "and another secret", &[])
        .await;
    assert_eq!(token.status, 200);
    let bearer = format!("Bearer {}", token.json["access_token"].as_str().unwrap());
    let r = Browser::new()
        .get_with(&b.url("/v1/items"), &[("authorization", &bearer)])
        .await;
    assert_eq!(r.status, 200, "a token minted after the change works on B");
    assert_eq!(mine.get(&b.url("/dashboard")).await.status, 200);
    assert_eq!(mine.get(&a.url("/dashboard")).await.status, 200);
}

async fn change_password(browser: &mut Browser, url: &str, current: &str, new: &str) -> u16 {
    let body = json!({"current_password": current, "new_password": new});
    browser.post_csrf(url, Body::Json(body)).await.status
}
