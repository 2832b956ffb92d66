//! Redis stopped mid-run, seen over HTTP: authentication paths fail closed with a 503 (never an
//! anonymous pass, never a panic), public routes keep working, and everything recovers when
//! Redis is back — without restarting the app.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crudauth_tests::app::{spawn, unique_prefix, Backend, Options, TestApp};
use crudauth_tests::http::{Body, Browser};
use crudauth_tests::server::RedisServer;

/// An app whose stores and limiter are on `redis` (under a prefix of `tag`), and ada signed in.
async fn signed_in_on(redis: &RedisServer, tag: &'static str) -> (TestApp, Browser) {
    let url = redis.url();
    let mut options = Options::new(Backend::Memory);
    options.customize = Box::new(move |b: crudauth_axum::CrudAuthBuilder| {
        b.redis_url(url).redis_prefix(unique_prefix(tag))
    });
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", "correct horse battery")
        .await;
    let b = app.signed_in("ada", "correct horse battery").await;
    (app, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_closed_and_recovers() {
    let mut redis = RedisServer::start(&[]);
    let (app, mut b) = signed_in_on(&redis, "outage").await;
    assert_eq!(b.get(&app.url("/dashboard")).await.status, 200);

    redis.kill();
    let started = Instant::now();
    for path in ["/dashboard", "/me", "/feed", "/sessions"] {
        let r = b.get(&app.url(path)).await;
        assert_eq!(
            (r.status, r.detail()),
            (503, "Authentication service unavailable"),
            "{path}"
        );
    }
    let r = b.post_csrf(&app.url("/account/settings"), Body::None).await;
    assert_eq!(r.status, 503);
    let r = Browser::new()
        .sign_in(&app.url("/login"), "ada", "correct horse battery", &[])
        .await;
    assert!(
        r.status == 503 || r.status == 429,
        "a login never succeeds without its store: {}",
        r.status
    );
    assert!(r.headers.get("set-cookie").is_none());
    assert_eq!(
        Browser::new().get(&app.url("/hello")).await.status,
        200,
        "public routes need no store"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failures come within the command timeout"
    );

    redis.restart();
    let mut fresh = Browser::new();
    fresh
        .sign_in_until_ok(
            &app.url("/login"),
            "ada",
            "correct horse battery",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        fresh.get(&app.url("/dashboard")).await.status,
        200,
        "the same app works again"
    );
    // The old session lived only in the Redis that was killed (it keeps nothing on disk).
    assert_eq!(b.get(&app.url("/dashboard")).await.status, 401);
}

/// A Redis that hangs (SIGSTOP: the socket stays open, nothing answers) must not hang the
/// requests waiting on it: each gets its 503 within the command timeout (1 s by default), the
/// first and every later one, also while the client tries to reconnect to the frozen server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_answers_503_within_the_command_timeout() {
    let redis = RedisServer::start(&[]);
    let (app, mut b) = signed_in_on(&redis, "frozen").await;

    redis.pause();
    // Long enough to cover the client dropping the silent connection (after 3 s) and its
    // attempts to reconnect to a server that accepts the socket and never answers.
    let frozen_for = Instant::now();
    while frozen_for.elapsed() < Duration::from_secs(8) {
        let started = Instant::now();
        let r = b.get(&app.url("/dashboard")).await;
        assert_eq!(
            (r.status, r.detail()),
            (503, "Authentication service unavailable"),
            "after {:?} frozen",
            frozen_for.elapsed()
        );
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "a 503 took {:?}, {:?} into the freeze",
            started.elapsed(),
            frozen_for.elapsed()
        );
    }
    redis.resume();
}

/// F1: once a killed Redis is back (it answers PING), the app uses it again within a second,
/// with the default reconnection settings, after an outage long enough for the backoff to
/// reach its longest pause; every answer meanwhile is a 503, never a pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_redis_is_used_again_within_a_second() {
    let mut redis = RedisServer::start(&[]);
    let (app, mut b) = signed_in_on(&redis, "recovery").await;
    redis.kill();
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(3) {
        let r = b.get(&app.url("/dashboard")).await;
        assert_eq!(r.status, 503, "no pass while Redis is down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redis.restart();
    let back = Instant::now();
    let status = loop {
        let status = b.get(&app.url("/dashboard")).await.status;
        if status != 503 || back.elapsed() > Duration::from_secs(5) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = back.elapsed();
    // The session lived in the Redis that was killed: the answer is now a 401 from the store.
    assert_eq!(status, 401);
    assert!(took < Duration::from_secs(1), "in use again after {took:?}");
}

/// The recovery routes and sudo with Redis stopped: the request routes fail closed at their
/// budget (503, nothing queued), the confirm routes and `/sudo` answer 503 and change nothing;
/// with Redis back, the token issued before the outage still works exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_and_sudo_fail_closed_while_redis_is_down() {
    let mut redis = RedisServer::start(&[]);
    let (app, mut b) = signed_in_on(&redis, "recovery-outage").await;
    let post = |path: &str, body: serde_json::Value| {
        let url = app.url(path);
        async move {
            Browser::new()
                .send("POST", &url, Body::Json(body), &[])
                .await
        }
    };
    assert_eq!(
        post(
            "/password/reset-request",
            serde_json::json!({"email": "ada@example.com"})
        )
        .await
        .status,
        200
    );
    let emails = app.emails().await;
    let link = emails.last().unwrap()["link"].as_str().unwrap().to_owned();
    let token = link.split_once("token=").unwrap().1.to_owned();
    let before = app.emails().await.len();

    redis.kill();
    for (path, body) in [
        (
            "/password/reset-request",
            serde_json::json!({"email": "ada@example.com"}),
        ),
        (
            "/email/verify-request",
            serde_json::json!({"email": "ada@example.com"}),
        ),
        (
            "/password/reset-confirm",
            serde_json::json!({"token": token, "new_password": "a brand new passphrase"}),
        ),
        ("/email/verify-confirm", serde_json::json!({"token": token})),
    ] {
        let r = post(path, body).await;
        assert_eq!(r.status, 503, "{path}: {:?}", r.json);
    }
    let r = b
        .post_csrf(
            &app.url("/sudo"),
            Body::Json(serde_json::json!({"password": "correct horse battery"})),
        )
        .await;
    assert_eq!(r.status, 503);
    assert!(r.headers.get("set-cookie").is_none());
    assert_eq!(
        app.emails().await.len(),
        before,
        "nothing was sent during the outage"
    );

    // Redis comes back empty (it keeps nothing on disk): the token died with it, and a new
    // request works end to end.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = post(
            "/password/reset-request",
            serde_json::json!({"email": "ada@example.com"}),
        )
        .await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after the outage: {}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let emails = app.emails().await;
    let link = emails.last().unwrap()["link"].as_str().unwrap().to_owned();
    let fresh = link.split_once("token=").unwrap().1.to_owned();
    assert_ne!(fresh, token);
    let r = post(
        "/password/reset-confirm",
        serde_json::json!({"token": token, "new_password": "a brand new passphrase"}),
    )
    .await;
    assert_eq!((r.status, r.detail()), (400, "Invalid or expired token"));
    let r = post(
        "/password/reset-confirm",
        serde_json::json!({"token": fresh, "new_password": "a brand new passphrase"}),
    )
    .await;
    assert_eq!(r.status, 200);
}
