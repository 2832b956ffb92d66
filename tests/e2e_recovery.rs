//! Account recovery over HTTP, on memory and on Redis: verify, reset and change-email, their
//! tokens' binding to the account state, single use under 50 parallel redemptions, uniform
//! answers, and a request on one worker confirmed on another.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{json, Value};

use crudauth_core::clock::ManualClock;
use crudauth_core::user::{LoginField, UserStore, UserUpdate};
use crudauth_tests::app::{spawn, two_workers, Backend, Options, TestApp};
use crudauth_tests::http::{Body, Browser};
use crudauth_tests::users::WatchedUsers;

const PW: &str = "correct horse battery";
const NEW_PW: &str = "a brand new passphrase";
const INVALID: &str = "Invalid or expired token";
const USED: &str = "Token already used";

/// The token of the last email of `kind` (from its link).
async fn last_token(app: &TestApp, kind: &str) -> String {
    let emails = app.emails().await;
    let email = emails
        .iter()
        .rev()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} email in {emails:?}"));
    let link = email["link"].as_str().unwrap();
    link.split_once("token=").unwrap().1.to_owned()
}

async fn post(app: &TestApp, path: &str, body: Value) -> crudauth_tests::http::Answer {
    Browser::new()
        .send("POST", &app.url(path), Body::Json(body), &[])
        .await
}

/// Marks the account at `email` unverified, in the table directly.
async fn unverify(app: &TestApp, email: &str) {
    let user = app
        .users
        .find_by_field(LoginField::Email, email)
        .await
        .unwrap()
        .unwrap();
    let changes = UserUpdate {
        email_verified: Some(false),
        ..Default::default()
    };
    app.users.update(&user.id, changes).await.unwrap();
}

async fn count_kind(app: &TestApp, kind: &str) -> usize {
    app.emails()
        .await
        .iter()
        .filter(|e| e["kind"] == kind)
        .count()
}

/// Options whose per-IP budget for `action` is 20 an hour instead of 3 or 5, for the many
/// cases of one test (the budgets themselves are tested in `budgets`).
fn generous_on(backend: Backend, action: &'static str) -> Options {
    let mut options = Options::new(backend);
    options.customize = Box::new(move |b: crudauth_axum::CrudAuthBuilder| {
        b.rate_limits([(
            action,
            crudauth_axum::RateLimit::new(20, std::time::Duration::from_secs(3600)),
        )])
    });
    options
}

async fn verify_flow(backend: Backend) {
    let app = spawn(generous_on(backend, "email_verify_request")).await;
    let r = post(
        &app,
        "/register",
        json!({"email": "ada@example.com", "username": "ada", "password": PW}),
    )
    .await;
    assert_eq!(r.status, 202);
    let token = last_token(&app, "verify_email").await;

    // The request route answers the same for an unknown address, an unverified and (below) a
    // verified one.
    for address in ["nobody@example.com", "ada@example.com"] {
        let r = post(
            &app,
            "/email/verify-request",
            json!({"email": address, "redirect_to": "/welcome"}),
        )
        .await;
        assert_eq!(
            (r.status, r.json.clone()),
            (
                200,
                json!({"detail": "If an account exists, a verification email has been sent."})
            )
        );
    }
    assert_eq!(
        count_kind(&app, "verify_email").await,
        2,
        "none for the unknown address"
    );
    let with_redirect = last_token(&app, "verify_email").await;

    // Bad tokens change nothing.
    for bad in ["", "garbage", &"x".repeat(300)] {
        let r = post(&app, "/email/verify-confirm", json!({"token": bad})).await;
        assert_eq!((r.status, r.detail()), (400, INVALID), "{bad}");
    }
    let r = post(&app, "/email/verify-confirm", json!({})).await;
    assert_eq!(r.status, 422, "a missing token is a validation error");
    // A verify token is no reset token.
    let r = post(
        &app,
        "/password/reset-confirm",
        json!({"token": token, "new_password": NEW_PW}),
    )
    .await;
    assert_eq!((r.status, r.detail()), (400, INVALID));

    let r = post(
        &app,
        "/email/verify-confirm",
        json!({"token": with_redirect}),
    )
    .await;
    assert_eq!(
        (r.status, r.json.clone()),
        (
            200,
            json!({"detail": "Verified successfully.", "redirect_to": "/welcome"})
        )
    );
    let r = post(
        &app,
        "/email/verify-confirm",
        json!({"token": with_redirect}),
    )
    .await;
    assert_eq!(
        (r.status, r.detail()),
        (400, USED),
        "a replayed verify token"
    );
    // The first token is still bound to the same address: it redeems (no hook, no change).
    let r = post(&app, "/email/verify-confirm", json!({"token": token})).await;
    assert_eq!(
        (r.status, r.json.clone()),
        (200, json!({"detail": "Verified successfully."}))
    );
    let mut ada = app.signed_in("ada", PW).await;
    assert_eq!(ada.get(&app.url("/secret")).await.status, 200);

    // Verified: a request sends nothing, and answers the same.
    let before = app.emails().await.len();
    let r = post(
        &app,
        "/email/verify-request",
        json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(app.emails().await.len(), before);
    // An unsafe redirect_to is dropped, not followed.
    unverify(&app, "ada@example.com").await;
    // (Every unsafe shape is a unit test of `same_origin_path`.)
    for unsafe_path in ["//evil.example", "https://evil.example"] {
        post(
            &app,
            "/email/verify-request",
            json!({"email": "ada@example.com", "redirect_to": unsafe_path}),
        )
        .await;
        let t = last_token(&app, "verify_email").await;
        let r = post(&app, "/email/verify-confirm", json!({"token": t})).await;
        assert_eq!(r.status, 200);
        assert!(
            r.json.get("redirect_to").is_none(),
            "{unsafe_path}: {:?}",
            r.json
        );
        unverify(&app, "ada@example.com").await;
    }
    // Bad addresses are a 422, long ones included.
    let long = format!("{}@example.com", "a".repeat(300));
    for bad in ["not-an-address", long.as_str()] {
        let r = post(&app, "/email/verify-request", json!({"email": bad})).await;
        assert_eq!(r.status, 422, "{bad}");
    }
}

async fn reset_flow(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let ada = app.user("ada@example.com", "ada", PW).await;
    let mut laptop = app.signed_in("ada", PW).await;
    let mut phone = app.signed_in("ada", PW).await;
    let mut api = Browser::new();
    let r = api.sign_in(&app.url("/token"), "ada", PW, &[]).await;
    let bearer = format!("Bearer {}", r.json["access_token"].as_str().unwrap());

    // Locked out by failed sign-ins: recovery still works (L4).
    let mut attacker = Browser::new();
    let mut locked = false;
    for _ in 0..8 {
        let r = attacker
            .sign_in(&app.url("/login"), "ada", "wrong password", &[])
            .await;
        locked |= r.status == 429;
    }
    assert!(locked, "the account is locked");

    for address in ["ada@example.com", "nobody@example.com"] {
        let r = post(&app, "/password/reset-request", json!({"email": address})).await;
        assert_eq!(
            (r.status, r.json.clone()),
            (
                200,
                json!({"detail": "If an account exists, a password reset email has been sent."})
            )
        );
    }
    let first = last_token(&app, "reset_password").await;
    post(
        &app,
        "/password/reset-request",
        json!({"email": "ada@example.com", "redirect_to": "/signed-out"}),
    )
    .await;
    let second = last_token(&app, "reset_password").await;
    assert_eq!(
        count_kind(&app, "reset_password").await,
        2,
        "none for the unknown address"
    );
    // A change-email token outstanding at the reset dies with it.
    let r = laptop
        .post_csrf(
            &app.url("/email/change-request"),
            Body::Json(json!({"new_email": "ada@new.example", "password": PW})),
        )
        .await;
    assert_eq!(r.status, 200);
    let change = last_token(&app, "change_email").await;

    // The token before the policy: a weak password with a bad token is 400; with a good token
    // 422, and the token still works.
    let r = post(
        &app,
        "/password/reset-confirm",
        json!({"token": "nope", "new_password": "short"}),
    )
    .await;
    assert_eq!((r.status, r.detail()), (400, INVALID));
    let r = post(
        &app,
        "/password/reset-confirm",
        json!({"token": second, "new_password": "short"}),
    )
    .await;
    assert_eq!(r.status, 422, "{:?}", r.json);
    let r = post(
        &app,
        "/password/reset-confirm",
        json!({"token": second, "new_password": NEW_PW}),
    )
    .await;
    assert_eq!(
        (r.status, r.json.clone()),
        (
            200,
            json!({"detail": "Password reset successfully.", "redirect_to": "/signed-out"})
        )
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(
        r.headers.get("set-cookie").is_none(),
        "a reset does not sign in"
    );

    // Every session and bearer token ended; the replay and the other tokens are dead.
    assert_eq!(laptop.get(&app.url("/me")).await.status, 401);
    assert_eq!(phone.get(&app.url("/me")).await.status, 401);
    let r = Browser::new()
        .get_with(&app.url("/me"), &[("authorization", &bearer)])
        .await;
    assert_eq!(r.status, 401);
    for (path, token) in [
        ("/password/reset-confirm", &second),
        ("/password/reset-confirm", &first),
    ] {
        let r = post(&app, path, json!({"token": token, "new_password": NEW_PW})).await;
        assert_eq!((r.status, r.detail()), (400, INVALID));
    }
    let r = post(&app, "/email/change-confirm", json!({"token": change})).await;
    assert_eq!((r.status, r.detail()), (400, INVALID));
    assert_eq!(
        count_kind(&app, "password_changed").await,
        1,
        "the owner is told"
    );
    let user = app.users.find_by_id(&ada.id).await.unwrap().unwrap();
    assert_eq!(user.token_version, ada.token_version + 1);
    assert_eq!(user.email.as_deref(), Some("ada@example.com"));
}

async fn change_email_flow(backend: Backend) {
    let app = spawn(generous_on(backend, "email_change_request")).await;
    let ada = app.user("ada@example.com", "ada", PW).await;
    app.user("bob@example.com", "bob", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let url = app.url("/email/change-request");
    let r = b
        .send(
            "POST",
            &url,
            Body::Json(json!({"new_email": "ada@new.example", "password": PW})),
            &[],
        )
        .await;
    assert_eq!(r.status, 403, "CSRF applies");
    let r = b
        .post_csrf(
            &url,
            Body::Json(json!({"new_email": "ada@new.example", "password": "wrong"})),
        )
        .await;
    assert_eq!((r.status, r.detail()), (400, "Incorrect password"));
    let r = b
        .post_csrf(
            &url,
            Body::Json(json!({"new_email": " ADA@example.com ", "password": PW})),
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (400, "New email matches current email")
    );
    let r = Browser::new()
        .send(
            "POST",
            &url,
            Body::Json(json!({"new_email": "x@example.com", "password": PW})),
            &[],
        )
        .await;
    assert_eq!(r.status, 401);
    // A taken address answers the same and sends nothing.
    let r = b
        .post_csrf(
            &url,
            Body::Json(json!({"new_email": "bob@example.com", "password": PW})),
        )
        .await;
    assert_eq!(
        (r.status, r.json.clone()),
        (
            200,
            json!({"detail": "If the address is available, a confirmation email has been sent."})
        )
    );
    assert_eq!(count_kind(&app, "change_email").await, 0);
    let r = b
        .post_csrf(
            &url,
            Body::Json(
                json!({"new_email": "Ada@New.example", "password": PW, "redirect_to": "/profile"}),
            ),
        )
        .await;
    assert_eq!(r.status, 200);
    let emails = app.emails().await;
    let sent = emails.iter().find(|e| e["kind"] == "change_email").unwrap();
    assert_eq!(sent["to"], "ada@new.example", "to the new address");
    let token = last_token(&app, "change_email").await;

    // Taken between request and confirm: 422, and the token is not spent.
    let carol = app.user("ada@new.example", "carol", PW).await;
    for _ in 0..2 {
        let r = post(&app, "/email/change-confirm", json!({"token": token})).await;
        assert_eq!((r.status, r.detail()), (422, "Email already in use"));
    }
    app.users
        .update(
            &carol.id,
            UserUpdate {
                email: Some("carol@example.com".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let r = post(&app, "/email/change-confirm", json!({"token": token})).await;
    assert_eq!(
        (r.status, r.json.clone()),
        (
            200,
            json!({"detail": "Email changed successfully.", "redirect_to": "/profile"})
        )
    );
    let user = app.users.find_by_id(&ada.id).await.unwrap().unwrap();
    assert_eq!(user.email.as_deref(), Some("ada@new.example"));
    assert!(
        user.email_verified,
        "a link clicked at the new address proves it"
    );
    let emails = app.emails().await;
    let notice = emails
        .iter()
        .find(|e| e["kind"] == "email_changed")
        .unwrap();
    assert_eq!(notice["to"], "ada@example.com", "the old address is told");
    assert_eq!(notice["link"], Value::Null);
    let r = post(&app, "/email/change-confirm", json!({"token": token})).await;
    assert_eq!(
        (r.status, r.detail()),
        (400, INVALID),
        "a replayed change token"
    );
    // The session survives and sees the new address.
    assert_eq!(
        b.get(&app.url("/me")).await.json["email"],
        "ada@new.example"
    );
}

/// 50 parallel redemptions of one token: exactly one 200 (T2), for verify and for reset.
async fn exactly_once(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let ada = app.user("ada@example.com", "ada", PW).await;
    for (request, kind, confirm, body) in [
        (
            "/email/verify-request",
            "verify_email",
            "/email/verify-confirm",
            json!({}),
        ),
        (
            "/password/reset-request",
            "reset_password",
            "/password/reset-confirm",
            json!({"new_password": NEW_PW}),
        ),
    ] {
        post(&app, request, json!({"email": "ada@example.com"})).await;
        let token = last_token(&app, kind).await;
        let mut body = body;
        body["token"] = json!(token);
        let url = app.url(confirm);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (url, body) = (url.clone(), body.clone());
                tokio::spawn(async move {
                    Browser::new()
                        .send("POST", &url, Body::Json(body), &[])
                        .await
                })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            let r = task.await.unwrap();
            match r.status {
                200 => ok += 1,
                400 => assert!([USED, INVALID].contains(&r.detail()), "{:?}", r.json),
                other => panic!("{confirm}: {other} {:?}", r.json),
            }
        }
        assert_eq!(ok, 1, "{confirm}");
    }
    let user = app.users.find_by_id(&ada.id).await.unwrap().unwrap();
    assert_eq!(
        user.token_version,
        ada.token_version + 1,
        "the password changed once"
    );
    let mut b = Browser::new();
    assert_eq!(
        b.sign_in(&app.url("/login"), "ada", NEW_PW, &[])
            .await
            .status,
        200
    );
}

/// The per-IP budgets: the sixth reset request in an hour is a 429 (counted before the body
/// is read, as crudauth); the per-address cap silently stops sending.
async fn budgets(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let body = if i == 0 {
            json!({"email": "bad"})
        } else {
            json!({"email": "ada@example.com"})
        };
        let r = post(&app, "/password/reset-request", body).await;
        statuses.push(r.status);
        if r.status == 429 {
            assert!(r.header("retry-after").is_some());
        }
    }
    assert_eq!(statuses, [422, 200, 200, 200, 200, 429]);
    assert_eq!(count_kind(&app, "reset_password").await, 4);

    // Three refused change requests (CSRF, wrong password, same address) use up the budget of
    // three: the fourth is a 429 (counted before authentication, as crudauth).
    let mut ada = app.signed_in("ada", PW).await;
    let url = app.url("/email/change-request");
    let r = ada
        .send(
            "POST",
            &url,
            Body::Json(json!({"new_email": "a@new.example", "password": PW})),
            &[],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = ada
        .post_csrf(
            &url,
            Body::Json(json!({"new_email": "a@new.example", "password": "wrong"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = ada
        .post_csrf(
            &url,
            Body::Json(json!({"new_email": "ada@example.com", "password": PW})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = ada
        .post_csrf(
            &url,
            Body::Json(json!({"new_email": "a@new.example", "password": PW})),
        )
        .await;
    assert_eq!(r.status, 429);

    // The per-address cap: behind a trusted proxy, eight callers ask for one address; all
    // get the same 200, and only five links go out.
    let mut options = Options::new(backend);
    options.customize = Box::new(|b: crudauth_axum::CrudAuthBuilder| b.trusted_proxy_hops(1));
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", PW).await;
    for i in 0..8 {
        let forwarded = format!("198.51.100.{i}");
        let r = Browser::new()
            .send(
                "POST",
                &app.url("/email/verify-request"),
                Body::Json(json!({"email": "ADA@example.com"})),
                &[("x-forwarded-for", &forwarded)],
            )
            .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(count_kind(&app, "verify_email").await, 5);
}

/// `/change-password` tells the account's owner (P5), as a reset does.
#[tokio::test]
async fn a_password_change_notifies_the_owner() {
    let app = spawn(Options::new(Backend::Memory)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut ada = app.signed_in("ada", PW).await;
    let r = ada
        .post_csrf(
            &app.url("/change-password"),
            Body::Json(json!({"current_password": PW, "new_password": NEW_PW})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let emails = app.emails().await;
    let notices: Vec<_> = emails
        .iter()
        .filter(|e| e["kind"] == "password_changed")
        .collect();
    assert_eq!(notices.len(), 1, "{emails:?}");
    assert_eq!(notices[0]["to"], "ada@example.com");
    assert_eq!(notices[0]["link"], Value::Null, "a notice carries no link");
}

/// A disabled account is an unknown one to recovery: its requests send nothing (and answer
/// the same), and a link issued before it was disabled is "Invalid or expired token" and is
/// not spent, so it works again once the account is enabled.
#[tokio::test]
async fn disabled_accounts_get_nothing_and_redeem_nothing() {
    let app = spawn(Options::new(Backend::Memory)).await;
    let ada = app.user("ada@example.com", "ada", PW).await;
    post(
        &app,
        "/password/reset-request",
        json!({"email": "ada@example.com"}),
    )
    .await;
    let token = last_token(&app, "reset_password").await;
    let set_active = |active: bool| {
        let (app, id) = (&app, ada.id.clone());
        async move {
            let changes = UserUpdate {
                is_active: Some(active),
                ..Default::default()
            };
            app.users.update(&id, changes).await.unwrap();
            app.auth.user_changed(&id).await.unwrap();
        }
    };
    set_active(false).await;
    let before = app.emails().await.len();
    for path in ["/password/reset-request", "/email/verify-request"] {
        let r = post(&app, path, json!({"email": "ada@example.com"})).await;
        assert_eq!(r.status, 200, "{path}");
    }
    assert_eq!(app.emails().await.len(), before, "nothing sent");
    let confirm = json!({"token": token, "new_password": NEW_PW});
    let r = post(&app, "/password/reset-confirm", confirm.clone()).await;
    assert_eq!((r.status, r.detail()), (400, INVALID));
    set_active(true).await;
    let r = post(&app, "/password/reset-confirm", confirm).await;
    assert_eq!(r.status, 200, "not spent while refused: {:?}", r.json);
}

/// Tokens expire with crudauth's lifetimes (T3), by the builder's clock: a reset link is dead
/// one second past the hour and works one second before it; a verification link is dead one
/// second past a day. (Memory store: a Redis TTL runs on Redis's own clock.)
#[tokio::test]
async fn tokens_expire_at_their_lifetimes() {
    let clock = ManualClock::starting_now();
    let mut options = Options::new(Backend::Memory);
    let manual = clock.clone();
    options.customize = Box::new(move |b: crudauth_axum::CrudAuthBuilder| b.clock(manual));
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", PW).await;
    let ada = json!({"email": "ada@example.com"});
    post(&app, "/email/verify-request", ada.clone()).await;
    let verify = last_token(&app, "verify_email").await;
    post(&app, "/password/reset-request", ada.clone()).await;
    let stale = last_token(&app, "reset_password").await;
    clock.advance(Duration::from_secs(3601));
    let confirm = |token: &str| json!({"token": token, "new_password": NEW_PW});
    let r = post(&app, "/password/reset-confirm", confirm(&stale)).await;
    assert_eq!(
        (r.status, r.detail()),
        (400, INVALID),
        "a reset link lives an hour"
    );
    post(&app, "/password/reset-request", ada).await;
    let fresh = last_token(&app, "reset_password").await;
    clock.advance(Duration::from_secs(3599));
    let r = post(&app, "/password/reset-confirm", confirm(&fresh)).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    clock.advance(Duration::from_secs(24 * 3600 - 3601 - 3599 + 1));
    let r = post(&app, "/email/verify-confirm", json!({"token": verify})).await;
    assert_eq!(
        (r.status, r.detail()),
        (400, INVALID),
        "a verify link lives a day"
    );
}

/// Links are built from the configured public URL, never from the request's `Host` (T6).
#[tokio::test]
async fn links_ignore_the_host_header() {
    let app = spawn(Options::new(Backend::Memory)).await;
    app.user("ada@example.com", "ada", PW).await;
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/password/reset-request"),
            Body::Json(json!({"email": "ada@example.com"})),
            &[
                ("host", "evil.example"),
                ("x-forwarded-host", "evil.example"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    let emails = app.emails().await;
    let link = emails[0]["link"].as_str().unwrap();
    assert!(
        link.starts_with("http://localhost:3000/reset-password?token="),
        "{link}"
    );
}

/// A confirm whose account update fails answers 503 and gives its token back: nothing
/// changed, so the same link works once the table is back.
#[tokio::test]
async fn a_failed_update_gives_the_token_back() {
    let users = WatchedUsers::default();
    let mut options = Options::new(Backend::Memory);
    let table = users.clone();
    options.customize = Box::new(move |b: crudauth_axum::CrudAuthBuilder| b.users(table));
    let app = spawn(options).await;
    users.seed("ada@example.com", "ada", PW).await;
    post(
        &app,
        "/password/reset-request",
        json!({"email": "ada@example.com"}),
    )
    .await;
    let token = last_token(&app, "reset_password").await;
    let confirm = json!({"token": token, "new_password": NEW_PW});
    users.fail_updates(true);
    let r = post(&app, "/password/reset-confirm", confirm.clone()).await;
    assert_eq!(r.status, 503, "{:?}", r.json);
    users.fail_updates(false);
    let mut old = Browser::new();
    assert_eq!(
        old.sign_in(&app.url("/login"), "ada", PW, &[]).await.status,
        200,
        "the password did not change"
    );
    let r = post(&app, "/password/reset-confirm", confirm).await;
    assert_eq!(r.status, 200, "the token was given back: {:?}", r.json);
    let mut new = Browser::new();
    assert_eq!(
        new.sign_in(&app.url("/login"), "ada", NEW_PW, &[])
            .await
            .status,
        200
    );
}

mod memory {
    use crudauth_tests::app::Backend;
    crudauth_tests::per_backend!(Backend::Memory; verify_flow, reset_flow, change_email_flow, exactly_once, budgets);
}

mod redis {
    use crudauth_tests::app::Backend;
    crudauth_tests::per_backend!(Backend::Redis; verify_flow, reset_flow, change_email_flow, exactly_once, budgets);
}

/// A reset requested on one worker is confirmed on the other (they share one Redis and one
/// user table); 50 parallel redemptions split across both still give one success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_recovery_tokens() {
    let (a, b) = two_workers(PW).await;
    let mut on_b = Browser::new();
    assert_eq!(
        on_b.sign_in(&b.url("/login"), "ada", PW, &[]).await.status,
        200
    );

    post(
        &a,
        "/password/reset-request",
        json!({"email": "ada@example.com"}),
    )
    .await;
    let token = last_token(&a, "reset_password").await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let url = if i % 2 == 0 {
                a.url("/password/reset-confirm")
            } else {
                b.url("/password/reset-confirm")
            };
            let body = json!({"token": token, "new_password": NEW_PW});
            tokio::spawn(async move {
                Browser::new()
                    .send("POST", &url, Body::Json(body), &[])
                    .await
                    .status
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status == 200 || status == 400, "{status}");
        ok += usize::from(status == 200);
    }
    assert_eq!(ok, 1);
    assert_eq!(
        on_b.get(&b.url("/me")).await.status,
        401,
        "the session on the other worker ended"
    );
    let mut again = Browser::new();
    assert_eq!(
        again
            .sign_in(&b.url("/login"), "ada", NEW_PW, &[])
            .await
            .status,
        200
    );
}
