//! Revocation reaches every worker at once: two servers (two `CrudAuth` objects, as two worker
//! processes would be) over one user table and one Redis, under one key prefix of their own.
//! Worker B has the user's row in its cache (60 s, so the cache's time to live never explains
//! a refusal); a change made on worker A must make B refuse the old credential within 100 ms.
//! And a worker whose subscription drops and comes back forgets every cached row, since
//! announcements made meanwhile were missed.
//!
//! These tests fail (never skip) when Redis is not reachable.

// Tests: a failed step panics with the value that failed.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::json;

use crudauth_core::user::{MemoryUsers, User, UserStore, UserUpdate};
use crudauth_tests::app::{new_user, spawn, unique_prefix, Backend, Options, TestApp};
use crudauth_tests::http::{Body, Browser};
use crudauth_tests::server::RedisServer;

const PW: &str = "correct horse battery";
/// How soon worker B must refuse a credential after the change on worker A answered.
const WITHIN: Duration = Duration::from_millis(100);
const CACHE_TTL: Duration = Duration::from_secs(60);

/// A worker on `redis_url` under `prefix`, over the shared `users`, caching rows for 60 s.
async fn worker(redis_url: String, prefix: String, users: MemoryUsers) -> TestApp {
    let mut options = Options::new(Backend::Redis);
    options.email = false;
    options.customize = Box::new(move |b| {
        b.redis_url(redis_url)
            .redis_prefix(prefix)
            .users(users)
            .user_cache_ttl(CACHE_TTL)
    });
    spawn(options).await
}

/// Two workers on the test Redis, one prefix, one table, and a user in it.
async fn two_workers() -> (TestApp, TestApp, MemoryUsers, User) {
    let prefix = unique_prefix("workers");
    let users = MemoryUsers::new();
    let url = crudauth_tests::redis::redis_url();
    let a = worker(url.clone(), prefix.clone(), users.clone()).await;
    let b = worker(url, prefix, users.clone()).await;
    let ada = users
        .create(new_user("ada@example.com", "ada", PW).await)
        .await
        .unwrap();
    (a, b, users, ada)
}

/// An access token from `POST /token` on `app`.
async fn access_token(app: &TestApp) -> String {
    let r = Browser::new()
        .sign_in(&app.url("/token"), "ada", PW, &[])
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json["access_token"].as_str().unwrap().to_owned()
}

async fn with_token(app: &TestApp, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    Browser::new()
        .get_with(&app.url("/dashboard"), &[("authorization", &bearer)])
        .await
        .status
}

/// `token` works on `app` (twice: the second from the remembered principal).
async fn accepted(app: &TestApp, token: &str) {
    assert_eq!(with_token(app, token).await, 200);
    assert_eq!(with_token(app, token).await, 200);
}

/// Asks `probe` again and again until it answers 401; fails if that takes longer than
/// `within` from `since`.
async fn refused_within<F, Fut>(what: &str, since: Instant, within: Duration, probe: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    loop {
        let status = probe().await;
        if status == 401 {
            return;
        }
        assert_eq!(status, 200, "{what}: unexpected answer");
        let waited = since.elapsed();
        assert!(
            waited < within,
            "{what}: still accepted {waited:?} after the change"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_on_one_worker_ends_tokens_on_the_other() {
    let (a, b, _, _) = two_workers().await;
    let token = access_token(&a).await;
    accepted(&b, &token).await;
    let r = Browser::new()
        .send(
            "POST",
            &a.url("/change-password"),
            Body::Json(json!({"current_password": PW, "new_password": "a new password 9"})),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let changed = Instant::now();
    refused_within("password change", changed, WITHIN, || {
        with_token(&b, &token)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_all_on_one_worker_ends_tokens_on_the_other() {
    let (a, b, _, _) = two_workers().await;
    let token = access_token(&a).await;
    accepted(&b, &token).await;
    let mut browser = a.signed_in("ada", PW).await;
    let r = browser.post_csrf(&a.url("/logout-all"), Body::None).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let changed = Instant::now();
    refused_within("logout-all", changed, WITHIN, || with_token(&b, &token)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_on_one_worker_ends_tokens_and_sessions_on_the_other() {
    let (a, b, _, ada) = two_workers().await;
    let token = access_token(&a).await;
    accepted(&b, &token).await;
    // A session made on A, in use on B (sessions are shared through Redis).
    let browser = a.signed_in("ada", PW).await;
    let cookie = browser.cookies["session_id"].clone();
    let on_b = || {
        let (cookie, url) = (cookie.clone(), b.url("/dashboard"));
        async move {
            let mut other = Browser::new();
            other.cookies.insert("session_id".into(), cookie);
            other.get(&url).await.status
        }
    };
    assert_eq!(on_b().await, 200);
    let off = UserUpdate {
        is_active: Some(false),
        ..Default::default()
    };
    a.auth.users().update(&ada.id, off).await.unwrap();
    let changed = Instant::now();
    refused_within("disable (token)", changed, WITHIN, || {
        with_token(&b, &token)
    })
    .await;
    refused_within("disable (session)", changed, WITHIN, on_b).await;
}

/// An application that edits the table itself announces it with `user_changed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_changed_reaches_the_other_worker() {
    let (a, b, users, ada) = two_workers().await;
    let token = access_token(&a).await;
    accepted(&b, &token).await;
    let bump = UserUpdate {
        bump_token_version: true,
        ..Default::default()
    };
    users.update(&ada.id, bump).await.unwrap(); // behind crudauth's back
    assert_eq!(with_token(&b, &token).await, 200, "B still has the old row");
    a.auth.user_changed(&ada.id).await.unwrap();
    let changed = Instant::now();
    refused_within("user_changed", changed, WITHIN, || with_token(&b, &token)).await;
}

/// Announcements sent while a worker's subscription is down are missed; once it is back the
/// worker forgets every cached row, so a change it never heard of still bites.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnected_subscription_flushes_the_caches() {
    let server = RedisServer::start(&[]);
    let users = MemoryUsers::new();
    let app = worker(server.url(), unique_prefix("reconnect"), users.clone()).await;
    let ada = users
        .create(new_user("ada@example.com", "ada", PW).await)
        .await
        .unwrap();
    let token = access_token(&app).await;
    accepted(&app, &token).await;
    // A change this worker never hears of (made behind crudauth's back, not announced).
    let bump = UserUpdate {
        bump_token_version: true,
        ..Default::default()
    };
    users.update(&ada.id, bump).await.unwrap();
    assert_eq!(
        with_token(&app, &token).await,
        200,
        "the cached row answers"
    );
    // The subscribed connection drops (the server ends it); the client reconnects by itself.
    let killed = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &server.port().to_string(),
            "CLIENT",
            "KILL",
            "TYPE",
            "pubsub",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&killed.stdout).trim(),
        "1",
        "one subscriber connection"
    );
    let since = Instant::now();
    // Reconnecting takes the backoff (50 ms, doubling); far below the cache's 60 s.
    refused_within("reconnect", since, Duration::from_secs(5), || {
        with_token(&app, &token)
    })
    .await;
}

/// The same on a Redis Cluster: a `PUBLISH` reaches subscribers on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_reaches_the_other_worker_on_a_cluster() {
    let nodes = crudauth_tests::server::shared_cluster().addresses();
    let mut url = format!("redis-cluster://{}", nodes[0]);
    for (i, node) in nodes[1..].iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str("node=");
        url.push_str(node);
    }
    let prefix = unique_prefix("cluster-workers");
    let users = MemoryUsers::new();
    let a = worker(url.clone(), prefix.clone(), users.clone()).await;
    let b = worker(url, prefix, users.clone()).await;
    users
        .create(new_user("ada@example.com", "ada", PW).await)
        .await
        .unwrap();
    let token = access_token(&a).await;
    accepted(&b, &token).await;
    let r = Browser::new()
        .send(
            "POST",
            &a.url("/change-password"),
            Body::Json(json!({"current_password": PW, "new_password": "a new password 9"})),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let changed = Instant::now();
    refused_within("password change (cluster)", changed, WITHIN, || {
        with_token(&b, &token)
    })
    .await;
}
