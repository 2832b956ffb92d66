//! Sudo mode and the lifecycle hooks over HTTP, on memory and on Redis: `POST /sudo`, the
//! gate, the session rotation, the attempt cap under 40 parallel guesses, and every hook of
//! the flows built so far, with a failing and a panicking hook changing nothing.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use crudauth_core::clock::ManualClock;
use crudauth_core::hooks::{AuthHooks, HookContext, HookResult, LoginFailure};
use crudauth_core::user::User;
use crudauth_tests::app::{spawn, Backend, Options, TestApp};
use crudauth_tests::http::{Body, Browser};

const PW: &str = "correct horse battery";
const REAUTH: &str = "Re-authentication required.";

async fn sudo(
    b: &mut Browser,
    app: &TestApp,
    body: serde_json::Value,
) -> crudauth_tests::http::Answer {
    b.post_csrf(&app.url("/sudo"), Body::Json(body)).await
}

async fn sensitive(b: &mut Browser, app: &TestApp) -> u16 {
    b.post_csrf(&app.url("/account/sensitive"), Body::None)
        .await
        .status
}

async fn sudo_flow(backend: Backend) {
    let clock = ManualClock::starting_now();
    let mut options = Options::new(backend);
    let c = clock.clone();
    options.customize = Box::new(move |b: crudauth_axum::CrudAuthBuilder| b.clock(c));
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut laptop = app.signed_in("ada", PW).await;
    let mut phone = app.signed_in("ada", PW).await;
    let r = laptop
        .post_csrf(&app.url("/account/sensitive"), Body::None)
        .await;
    assert_eq!((r.status, r.detail()), (403, REAUTH));

    // The body: exactly one of password and code; CSRF required.
    for body in [json!({}), json!({"password": PW, "code": "123456"})] {
        assert_eq!(sudo(&mut laptop, &app, body).await.status, 422);
    }
    let r = laptop
        .send(
            "POST",
            &app.url("/sudo"),
            Body::Json(json!({"password": PW})),
            &[],
        )
        .await;
    assert_eq!(r.status, 403, "CSRF applies");
    let r = sudo(&mut laptop, &app, json!({"password": "wrong"})).await;
    assert_eq!((r.status, r.detail()), (401, "Incorrect password"));
    let r = sudo(&mut laptop, &app, json!({"code": "123456"})).await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Invalid code"),
        "no second factor enrolled"
    );

    let old_id = laptop.cookies.get("session_id").cloned().unwrap();
    let old_csrf = laptop.csrf();
    let r = sudo(&mut laptop, &app, json!({"password": PW})).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["detail"], "Re-authenticated.");
    assert_eq!(r.json["expires_in"], 300);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let new_id = r.cookie_value("session_id").unwrap();
    assert_ne!(new_id, old_id, "the session moved to a new id");
    assert_eq!(r.json["csrf_token"].as_str().unwrap(), laptop.csrf());
    assert_ne!(laptop.csrf(), old_csrf);
    assert_eq!(sensitive(&mut laptop, &app).await, 200);
    // The old id is dead; the other device is not elevated (sudo belongs to one session).
    let mut stale = Browser::new();
    stale.cookies.insert("session_id".into(), old_id);
    assert_eq!(stale.get(&app.url("/me")).await.status, 401);
    assert_eq!(sensitive(&mut phone, &app).await, 403);
    // /set-password accepts sudo as a fresh sign-in (the account has a password: 400, not 403).
    clock.advance(Duration::from_secs(240));
    assert_eq!(sensitive(&mut laptop, &app).await, 200);
    // The window ends.
    clock.advance(Duration::from_secs(61));
    assert_eq!(sensitive(&mut laptop, &app).await, 403);

    // A new sign-in and a logout never carry an elevation.
    assert_eq!(
        sudo(&mut laptop, &app, json!({"password": PW}))
            .await
            .status,
        200
    );
    assert_eq!(sensitive(&mut laptop, &app).await, 200);
    let mut again = app.signed_in("ada", PW).await;
    assert_eq!(sensitive(&mut again, &app).await, 403);
    assert_eq!(
        laptop
            .post_csrf(&app.url("/logout"), Body::None)
            .await
            .status,
        200
    );
    assert_eq!(
        laptop
            .sign_in(&app.url("/login"), "ada", PW, &[])
            .await
            .status,
        200
    );
    assert_eq!(sensitive(&mut laptop, &app).await, 403);

    // Bearer principals cannot enter sudo mode.
    let mut api = Browser::new();
    let token = api.sign_in(&app.url("/token"), "ada", PW, &[]).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/sudo"),
            Body::Json(json!({"password": PW})),
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (403, "Sudo requires a session-backed login.")
    );
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/account/sensitive"),
            Body::None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!((r.status, r.detail()), (403, REAUTH));
}

/// The third failure locks for 900 s; while locked even the right password is a 429; the
/// lock ends by the clock.
async fn sudo_lock(backend: Backend) {
    let clock = ManualClock::starting_now();
    let mut options = Options::new(backend);
    let c = clock.clone();
    options.customize = Box::new(move |b: crudauth_axum::CrudAuthBuilder| b.clock(c));
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    for _ in 0..2 {
        assert_eq!(
            sudo(&mut b, &app, json!({"password": "wrong"}))
                .await
                .status,
            401
        );
    }
    let r = sudo(&mut b, &app, json!({"password": "wrong"})).await;
    assert_eq!(
        (r.status, r.detail()),
        (429, "Too many attempts. Try again later.")
    );
    assert_eq!(r.header("retry-after"), Some("900"));
    let r = sudo(&mut b, &app, json!({"password": PW})).await;
    assert_eq!(r.status, 429, "locked: the right password too");
    assert!(r.header("retry-after").is_some());
    if backend == Backend::Memory {
        // The memory store expires by the builder's clock (Redis by its own).
        clock.advance(Duration::from_secs(901));
        assert_eq!(
            sudo(&mut b, &app, json!({"password": PW})).await.status,
            200
        );
    }
}

/// 40 parallel wrong guesses share the cap: two are told "Incorrect password", the rest are
/// locked out, and the right password is then refused.
async fn sudo_cap_under_parallel_guesses(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let b = app.signed_in("ada", PW).await;
    let url = app.url("/sudo");
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (mut b, url, barrier) = (b.clone(), url.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                b.post_csrf(&url, Body::Json(json!({"password": "wrong"})))
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    assert_eq!((count(401), count(429)), (2, 38), "{statuses:?}");
    let mut b = b;
    assert_eq!(
        sudo(&mut b, &app, json!({"password": PW})).await.status,
        429
    );
}

mod memory {
    use crudauth_tests::app::Backend;
    crudauth_tests::per_backend!(Backend::Memory; sudo_flow, sudo_lock, sudo_cap_under_parallel_guesses);
}

mod redis {
    use crudauth_tests::app::Backend;
    crudauth_tests::per_backend!(Backend::Redis; sudo_flow, sudo_lock, sudo_cap_under_parallel_guesses);
}

/// Records every hook call (name, user id or identifier, whether a password hash was
/// visible), fails one hook and panics in another.
#[derive(Debug, Default, Clone)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn note(&self, what: String, user: Option<&User>) -> HookResult {
        assert!(
            user.is_none_or(|u| u.hashed_password.is_none()),
            "a hook saw a hash"
        );
        self.0.lock().unwrap().push(what);
        Ok(())
    }
    fn seen(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait]
impl AuthHooks for Recorder {
    async fn on_after_register(&self, u: &User, c: &HookContext) -> HookResult {
        assert_eq!(c.ip, "127.0.0.1");
        self.note(
            format!("register {}", u.username.as_deref().unwrap_or("")),
            Some(u),
        )
    }
    async fn on_login_failed(
        &self,
        id: &str,
        u: Option<&User>,
        r: LoginFailure,
        _: &HookContext,
    ) -> HookResult {
        self.note(format!("login_failed {id} {r:?} {}", u.is_some()), u)
    }
    async fn on_lockout(&self, id: &str, retry_after: u64, _: &HookContext) -> HookResult {
        assert!(retry_after > 0);
        self.note(format!("lockout {id}"), None)
    }
    async fn on_after_login(&self, u: &User, c: &HookContext) -> HookResult {
        assert_eq!(c.user_agent, "hooks-test");
        self.note(
            format!("login {}", c.transport.as_deref().unwrap_or("")),
            Some(u),
        )
    }
    async fn on_after_logout(&self, u: &User, c: &HookContext) -> HookResult {
        assert!(c.session_handle.is_some());
        self.note("logout".into(), Some(u))?;
        Err("the audit log is down".into())
    }
    async fn on_after_recovery_verified(&self, u: &User, _: &HookContext) -> HookResult {
        self.note("verified".into(), Some(u))
    }
    async fn on_after_password_reset(&self, u: &User, _: &HookContext) -> HookResult {
        self.note("reset".into(), Some(u))
    }
    async fn on_after_password_changed(&self, u: &User, c: &HookContext) -> HookResult {
        assert_eq!(c.transport.as_deref(), Some("session"));
        self.note("changed".into(), Some(u))
    }
    async fn on_after_email_changed(&self, u: &User, _: &HookContext) -> HookResult {
        self.note(
            format!("email {}", u.email.as_deref().unwrap_or("")),
            Some(u),
        )
    }
    async fn on_after_sudo(&self, u: &User, _: &HookContext) -> HookResult {
        self.note("sudo".into(), Some(u))?;
        panic!("a hook that panics")
    }
}

async fn token_of(app: &TestApp, kind: &str) -> String {
    let emails = app.emails().await;
    let link = emails.iter().rev().find(|e| e["kind"] == kind).unwrap()["link"]
        .as_str()
        .unwrap()
        .to_owned();
    link.split_once("token=").unwrap().1.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hook_fires_once_and_none_can_fail_a_request() {
    let hooks = Recorder::default();
    let mut options = Options::new(Backend::Memory);
    let h = hooks.clone();
    options.customize = Box::new(move |b: crudauth_axum::CrudAuthBuilder| b.hooks(h));
    let app = spawn(options).await;
    let mut b = Browser::new();
    b.headers.push(("user-agent".into(), "hooks-test".into()));
    let json_post = |path: &str, body| (app.url(path), Body::Json(body));

    let (url, body) = json_post(
        "/register",
        json!({"email": "ada@example.com", "username": "ada", "password": PW}),
    );
    assert_eq!(b.send("POST", &url, body, &[]).await.status, 202);
    let (url, body) = json_post(
        "/email/verify-confirm",
        json!({"token": token_of(&app, "verify_email").await}),
    );
    assert_eq!(b.send("POST", &url, body, &[]).await.status, 200);
    assert_eq!(
        b.sign_in(&app.url("/login"), "ada", "wrong", &[])
            .await
            .status,
        401
    );
    assert_eq!(
        b.sign_in(&app.url("/login"), "nobody", "wrong", &[])
            .await
            .status,
        401
    );
    assert_eq!(
        b.sign_in(&app.url("/login"), "ada", PW, &[]).await.status,
        200
    );
    assert_eq!(
        b.sign_in(&app.url("/token"), "ada", PW, &[]).await.status,
        200
    );
    let r = b
        .post_csrf(&app.url("/sudo"), Body::Json(json!({"password": PW})))
        .await;
    assert_eq!(r.status, 200, "a panicking hook changes nothing");
    let r = b
        .post_csrf(
            &app.url("/change-password"),
            Body::Json(json!({"current_password": PW, "new_password": "another long passphrase"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = b
        .post_csrf(
            &app.url("/email/change-request"),
            Body::Json(
                json!({"new_email": "ada@new.example", "password": "another long passphrase"}),
            ),
        )
        .await;
    assert_eq!(r.status, 200);
    let (url, body) = json_post(
        "/email/change-confirm",
        json!({"token": token_of(&app, "change_email").await}),
    );
    assert_eq!(b.send("POST", &url, body, &[]).await.status, 200);
    assert_eq!(
        b.post_csrf(&app.url("/logout"), Body::None).await.status,
        200,
        "a failing hook changes nothing"
    );
    let (url, body) = json_post(
        "/password/reset-request",
        json!({"email": "ada@new.example"}),
    );
    assert_eq!(b.send("POST", &url, body, &[]).await.status, 200);
    let (url, body) = json_post(
        "/password/reset-confirm",
        json!({"token": token_of(&app, "reset_password").await, "new_password": PW}),
    );
    assert_eq!(b.send("POST", &url, body, &[]).await.status, 200);
    // Five failures lock "ada": the sixth attempt is refused by the lockout.
    for _ in 0..5 {
        b.sign_in(&app.url("/login"), "ada", "wrong", &[]).await;
    }
    assert_eq!(
        b.sign_in(&app.url("/login"), "ada", PW, &[]).await.status,
        429
    );

    let seen = hooks.seen();
    let expected_start = [
        "register ada",
        "verified",
        "login_failed ada InvalidCredentials true",
        "login_failed nobody InvalidCredentials false",
        "login session",
        "login bearer",
        "sudo",
        "changed",
        "email ada@new.example",
        "logout",
        "reset",
    ];
    assert_eq!(seen[..expected_start.len()], expected_start, "{seen:?}");
    assert_eq!(
        seen.last().map(String::as_str),
        Some("lockout ada"),
        "{seen:?}"
    );
}
