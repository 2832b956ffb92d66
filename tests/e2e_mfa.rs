//! Two-factor authentication over HTTP, on memory and on Redis: enrolment, the login challenge
//! through both transports, replay and exactly-once under real parallelism, the attempt cap
//! and the login lockout, required enrolment at sign-in, sudo by code, a challenge made on one
//! worker and finished on the other, hooks that never see a secret, and a Redis outage during
//! verification. Codes are computed here from the secret setup shows.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use crudauth_axum::CrudAuthBuilder;
use crudauth_core::clock::{Clock, ManualClock};
use crudauth_core::hooks::{AuthHooks, HookContext, HookResult};
use crudauth_core::limit::LockoutConfig;
use crudauth_core::mfa::fernet::FernetKey;
use crudauth_core::mfa::totp::TotpSecret;
use crudauth_core::mfa::{MfaConfig, MfaRequirement};
use crudauth_core::user::{MemoryUsers, User, UserStore, UserUpdate};
use crudauth_tests::app::{new_user, redis_url, spawn, unique_prefix, Backend, Options, TestApp};
use crudauth_tests::http::{Answer, Body, Browser};
use crudauth_tests::server::RedisServer;

const PW: &str = "correct horse battery";
const ISSUER: &str = "crudauth-rs tests";

fn mfa_config() -> MfaConfig {
    MfaConfig::new(ISSUER, [FernetKey::generate()])
}

/// An app with two-factor on (not required), its clock in the test's hands.
async fn mfa_app(backend: Backend, clock: &Arc<ManualClock>) -> TestApp {
    mfa_app_with(backend, clock, mfa_config(), LockoutConfig::default()).await
}

/// A login lockout that lets a test make many attempts, when it is not what is tested.
fn generous() -> LockoutConfig {
    LockoutConfig {
        max_attempts: 1000,
        ..LockoutConfig::default()
    }
}

async fn mfa_app_with(
    backend: Backend,
    clock: &Arc<ManualClock>,
    config: MfaConfig,
    lockout: LockoutConfig,
) -> TestApp {
    let mut options = Options::new(backend);
    let clock = clock.clone();
    options.customize =
        Box::new(move |b: CrudAuthBuilder| b.clock(clock).mfa(config).lockout(lockout));
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", PW).await;
    app
}

fn now(clock: &Arc<ManualClock>) -> u64 {
    clock.now_millis() / 1000
}

/// The code of `secret` at the clock's time.
fn code(secret: &TotpSecret, clock: &Arc<ManualClock>) -> String {
    secret.code_at(now(clock))
}

async fn post(b: &mut Browser, app: &TestApp, path: &str, body: Value) -> Answer {
    b.post_csrf(&app.url(path), Body::Json(body)).await
}

/// Enrols ada's signed-in browser: the secret and the recovery codes.
async fn enrol(
    app: &TestApp,
    b: &mut Browser,
    clock: &Arc<ManualClock>,
) -> (TotpSecret, Vec<String>) {
    let r = post(b, app, "/mfa/totp/setup", json!({"password": PW})).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let secret = TotpSecret::parse(r.json["secret"].as_str().unwrap()).unwrap();
    let r = post(
        b,
        app,
        "/mfa/totp/confirm",
        json!({"code": code(&secret, clock)}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let codes = r.json["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

/// Signs in with the password at `path` (`/login`, `/token`): the challenge, checked to set
/// nothing.
async fn challenged(app: &TestApp, b: &mut Browser, path: &str) -> String {
    let r = b.sign_in(&app.url(path), "ada", PW, &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["mfa_required"], true, "{:?}", r.json);
    assert_eq!(r.json["expires_in"], 300);
    assert!(
        r.headers.get("set-cookie").is_none(),
        "partial authentication sets nothing"
    );
    assert!(r.json.get("access_token").is_none() && r.json.get("csrf_token").is_none());
    r.json["challenge"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, b: &mut Browser, challenge: &str, code: &str) -> Answer {
    let body = Body::Json(json!({"challenge": challenge, "code": code}));
    b.send("POST", &app.url("/mfa/verify"), body, &[]).await
}

async fn enrolment_and_sign_in(backend: Backend) {
    let clock = ManualClock::starting_now();
    let app = mfa_app(backend, &clock).await;
    let mut b = app.signed_in("ada", PW).await;
    let status = b.get(&app.url("/mfa")).await;
    assert_eq!(
        status.json,
        json!({"enabled": false, "required": false, "recovery_codes_remaining": 0})
    );

    // Setup: the password, CSRF; the secret and crudauth's URI.
    let r = post(
        &mut b,
        &app,
        "/mfa/totp/setup",
        json!({"password": "wrong"}),
    )
    .await;
    assert_eq!((r.status, r.detail()), (401, "Incorrect password"));
    let r = b
        .send(
            "POST",
            &app.url("/mfa/totp/setup"),
            Body::Json(json!({"password": PW})),
            &[],
        )
        .await;
    assert_eq!(r.status, 403, "CSRF applies");
    let r = post(&mut b, &app, "/mfa/totp/confirm", json!({"code": "123456"})).await;
    assert_eq!(
        (r.status, r.detail()),
        (400, "No authenticator setup is pending.")
    );
    let r = post(&mut b, &app, "/mfa/totp/setup", json!({"password": PW})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let secret_text = r.json["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret_text.len(), 32);
    assert_eq!(
        r.json["otpauth_uri"],
        format!(
            "otpauth://totp/crudauth-rs%20tests%3Aada%40example.com?secret={secret_text}\
             &issuer=crudauth-rs%20tests&algorithm=SHA1&digits=6&period=30"
        )
    );
    let secret = TotpSecret::parse(&secret_text).unwrap();
    let r = post(&mut b, &app, "/mfa/totp/confirm", json!({"code": "000000"})).await;
    assert_eq!((r.status, r.detail()), (401, "Invalid code"));
    let confirm_code = code(&secret, &clock);
    let r = post(
        &mut b,
        &app,
        "/mfa/totp/confirm",
        json!({"code": confirm_code}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let codes: Vec<String> = serde_json::from_value(r.json["recovery_codes"].clone()).unwrap();
    assert_eq!(codes.len(), 10);
    for c in &codes {
        assert_eq!(c.len(), 19, "{c}");
        assert!(c.split('-').all(|g| g.len() == 4
            && g.bytes()
                .all(|x| b"abcdefghjkmnpqrstuvwxyz23456789".contains(&x))));
    }
    let r = post(
        &mut b,
        &app,
        "/mfa/totp/confirm",
        json!({"code": confirm_code}),
    )
    .await;
    assert_eq!(
        (r.status, r.detail()),
        (400, "Two-factor authentication is already enabled.")
    );
    let r = post(&mut b, &app, "/mfa/totp/setup", json!({"password": PW})).await;
    assert_eq!(
        (r.status, r.detail()),
        (400, "Two-factor authentication is already enabled.")
    );
    // crudauth's order: the password is checked before whether two-factor is on.
    let r = post(
        &mut b,
        &app,
        "/mfa/totp/setup",
        json!({"password": "wrong"}),
    )
    .await;
    assert_eq!((r.status, r.detail()), (401, "Incorrect password"));
    let status = b.get(&app.url("/mfa")).await;
    assert_eq!(
        status.json,
        json!({"enabled": true, "required": false, "recovery_codes_remaining": 10})
    );
    // Enabling it does not sign out the session that did it.
    assert_eq!(b.get(&app.url("/dashboard")).await.status, 200);

    // Session sign-in: the challenge grants nothing, anywhere.
    let mut laptop = Browser::new();
    let challenge = challenged(&app, &mut laptop, "/login").await;
    assert_eq!(laptop.get(&app.url("/dashboard")).await.status, 401);
    let bearer = format!("Bearer {challenge}");
    let r = laptop
        .get_with(&app.url("/dashboard"), &[("authorization", &bearer)])
        .await;
    assert_eq!(r.status, 401, "the challenge is no credential");
    // The code that confirmed enrolment has had its step.
    let r = verify(&app, &mut laptop, &challenge, &confirm_code).await;
    assert_eq!((r.status, r.detail()), (401, "Invalid code"));
    let r = verify(&app, &mut laptop, &challenge, &code(&secret, &clock)).await;
    assert_eq!(r.status, 401, "nor any code of that step");
    clock.advance(Duration::from_secs(30));
    let next = code(&secret, &clock);
    let r = verify(&app, &mut laptop, &challenge, &next).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["username"], "ada");
    assert_eq!(r.json["csrf_token"], laptop.csrf());
    assert!(r.set_cookie("session_id").is_some());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(
        laptop.get(&app.url("/dashboard")).await.json["via"],
        "session"
    );
    let r = verify(&app, &mut Browser::new(), &challenge, &next).await;
    assert_eq!(
        (r.status, r.detail()),
        (400, "Invalid or expired MFA challenge")
    );

    // Bearer sign-in, finished with a recovery code typed in upper case.
    let mut api = Browser::new();
    let challenge = challenged(&app, &mut api, "/token").await;
    let r = verify(&app, &mut api, &challenge, &codes[0].to_uppercase()).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let access = r.json["access_token"].as_str().unwrap().to_owned();
    assert_eq!(r.json["token_type"], "bearer");
    assert!(r.set_cookie("refresh_token").is_some());
    let auth = format!("Bearer {access}");
    let r = Browser::new()
        .get_with(&app.url("/dashboard"), &[("authorization", &auth)])
        .await;
    assert_eq!(r.json["via"], "bearer");
    let status = b.get(&app.url("/mfa")).await;
    assert_eq!(status.json["recovery_codes_remaining"], 9);
    // A used recovery code never works again.
    let challenge = challenged(&app, &mut Browser::new(), "/token").await;
    let r = verify(&app, &mut Browser::new(), &challenge, &codes[0]).await;
    assert_eq!((r.status, r.detail()), (401, "Invalid code"));

    // Cross-site completion of a cookie-setting sign-in is login CSRF.
    let challenge = challenged(&app, &mut Browser::new(), "/login").await;
    clock.advance(Duration::from_secs(30));
    let body = Body::Json(json!({"challenge": challenge, "code": code(&secret, &clock)}));
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/mfa/verify"),
            body,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (403, "Cross-site login requests are not allowed.")
    );
    // Unknown challenges, and bodies of the wrong shape.
    let r = verify(&app, &mut Browser::new(), "nope", "123456").await;
    assert_eq!(
        (r.status, r.detail()),
        (400, "Invalid or expired MFA challenge")
    );
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/mfa/verify"),
            Body::Json(json!({"challenge": 1})),
            &[],
        )
        .await;
    assert_eq!(r.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_and_sign_in_on_memory() {
    enrolment_and_sign_in(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_and_sign_in_on_redis() {
    enrolment_and_sign_in(Backend::Redis).await;
}

/// Five wrong codes end a challenge (even the right code is then refused); and every code
/// counts against the login lockout like a password, as crudauth: with its default of five,
/// the password step and four wrong codes use the budget, and the next code is a 429 that ends
/// the challenge.
async fn attempts_are_capped(backend: Backend) {
    let clock = ManualClock::starting_now();
    let app = mfa_app_with(backend, &clock, mfa_config(), generous()).await;
    let mut b = app.signed_in("ada", PW).await;
    let (secret, _) = enrol(&app, &mut b, &clock).await;
    clock.advance(Duration::from_secs(30));
    let challenge = challenged(&app, &mut Browser::new(), "/login").await;
    for i in 0..5 {
        let r = verify(&app, &mut Browser::new(), &challenge, "000000").await;
        assert_eq!((r.status, r.detail()), (401, "Invalid code"), "attempt {i}");
    }
    let r = verify(
        &app,
        &mut Browser::new(),
        &challenge,
        &code(&secret, &clock),
    )
    .await;
    assert_eq!(
        (r.status, r.detail()),
        (400, "Invalid or expired MFA challenge")
    );

    let app = mfa_app(backend, &clock).await;
    let mut b = app.signed_in("ada", PW).await;
    let (secret, _) = enrol(&app, &mut b, &clock).await;
    clock.advance(Duration::from_secs(30));
    let challenge = challenged(&app, &mut Browser::new(), "/login").await;
    for i in 0..4 {
        let r = verify(&app, &mut Browser::new(), &challenge, "000000").await;
        assert_eq!((r.status, r.detail()), (401, "Invalid code"), "attempt {i}");
    }
    let r = verify(
        &app,
        &mut Browser::new(),
        &challenge,
        &code(&secret, &clock),
    )
    .await;
    assert_eq!(r.status, 429, "{:?}", r.json);
    assert!(r.header("retry-after").is_some());
    let r = Browser::new()
        .sign_in(&app.url("/login"), "ada", PW, &[])
        .await;
    assert_eq!(r.status, 429, "the account is locked for passwords too");
    clock.advance(Duration::from_secs(61));
    let r = verify(
        &app,
        &mut Browser::new(),
        &challenge,
        &code(&secret, &clock),
    )
    .await;
    assert_eq!(r.status, 400, "the refused challenge was ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_capped_on_memory() {
    attempts_are_capped(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_capped_on_redis() {
    attempts_are_capped(Backend::Redis).await;
}

/// Sends `n` verifications at once; how many answered 200.
async fn parallel_verifies(app: &TestApp, pairs: Vec<(String, String)>) -> usize {
    let tasks: Vec<_> = pairs
        .into_iter()
        .map(|(challenge, code)| {
            let url = app.url("/mfa/verify");
            tokio::spawn(async move {
                let body = Body::Json(json!({"challenge": challenge, "code": code}));
                Browser::new().send("POST", &url, body, &[]).await.status
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(matches!(status, 200 | 400 | 401), "{status}");
        ok += usize::from(status == 200);
    }
    ok
}

/// A code is accepted exactly once, whatever races: 20 verifications of one challenge with one
/// code; 20 challenges with one code (one step); 20 challenges with one recovery code.
async fn exactly_once(backend: Backend) {
    let clock = ManualClock::starting_now();
    let mut config = mfa_config();
    config.max_code_attempts = 50;
    let app = mfa_app_with(backend, &clock, config, generous()).await;
    let mut b = app.signed_in("ada", PW).await;
    let (secret, codes) = enrol(&app, &mut b, &clock).await;

    clock.advance(Duration::from_secs(30));
    let challenge = challenged(&app, &mut Browser::new(), "/login").await;
    let c = code(&secret, &clock);
    let same = (0..20).map(|_| (challenge.clone(), c.clone())).collect();
    assert_eq!(
        parallel_verifies(&app, same).await,
        1,
        "one challenge, one code"
    );

    clock.advance(Duration::from_secs(30));
    let c = code(&secret, &clock);
    let mut pairs = Vec::new();
    for _ in 0..4 {
        pairs.push((
            challenged(&app, &mut Browser::new(), "/login").await,
            c.clone(),
        ));
    }
    let many: Vec<_> = (0..20).map(|i| pairs[i % 4].clone()).collect();
    assert_eq!(
        parallel_verifies(&app, many).await,
        1,
        "one step, many challenges"
    );

    let mut pairs = Vec::new();
    for _ in 0..4 {
        pairs.push((
            challenged(&app, &mut Browser::new(), "/token").await,
            codes[5].clone(),
        ));
    }
    let many: Vec<_> = (0..20).map(|i| pairs[i % 4].clone()).collect();
    assert_eq!(
        parallel_verifies(&app, many).await,
        1,
        "one recovery code, many challenges"
    );
    let status = b.get(&app.url("/mfa")).await;
    assert_eq!(status.json["recovery_codes_remaining"], 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_on_memory() {
    exactly_once(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_on_redis() {
    exactly_once(Backend::Redis).await;
}

/// Regenerating kills the old codes; disabling needs a code and ends the challenge at sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_and_disable() {
    let clock = ManualClock::starting_now();
    let app = mfa_app(Backend::Memory, &clock).await;
    let mut b = app.signed_in("ada", PW).await;
    let (secret, old) = enrol(&app, &mut b, &clock).await;
    let r = post(
        &mut b,
        &app,
        "/mfa/recovery-codes/regenerate",
        json!({"code": "bad"}),
    )
    .await;
    assert_eq!((r.status, r.detail()), (401, "Invalid code"));
    let r = post(
        &mut b,
        &app,
        "/mfa/recovery-codes/regenerate",
        json!({"code": old[0]}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let fresh: Vec<String> = serde_json::from_value(r.json["recovery_codes"].clone()).unwrap();
    assert_eq!(fresh.len(), 10);
    let r = post(&mut b, &app, "/mfa/totp/disable", json!({"code": old[1]})).await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Invalid code"),
        "the old set died"
    );
    let r = post(
        &mut b,
        &app,
        "/mfa/totp/disable",
        json!({"code": code(&secret, &clock)}),
    )
    .await;
    assert_eq!(r.status, 401, "the confirming step is spent");
    clock.advance(Duration::from_secs(30));
    let r = post(
        &mut b,
        &app,
        "/mfa/totp/disable",
        json!({"code": code(&secret, &clock)}),
    )
    .await;
    assert_eq!(
        r.json,
        json!({"detail": "Two-factor authentication disabled."})
    );
    let status = b.get(&app.url("/mfa")).await;
    assert_eq!(status.json["enabled"], false);
    let r = Browser::new()
        .sign_in(&app.url("/login"), "ada", PW, &[])
        .await;
    assert!(r.json.get("mfa_required").is_none() && r.set_cookie("session_id").is_some());
    let r = post(&mut b, &app, "/mfa/totp/disable", json!({"code": fresh[0]})).await;
    assert_eq!(r.status, 401, "nothing to disable");
    // The budget: ten management calls an hour, failures included.
    for _ in 0..7 {
        post(
            &mut b,
            &app,
            "/mfa/recovery-codes/regenerate",
            json!({"code": "x"}),
        )
        .await;
    }
    let r = post(
        &mut b,
        &app,
        "/mfa/recovery-codes/regenerate",
        json!({"code": "x"}),
    )
    .await;
    assert_eq!(r.status, 429, "{:?}", r.json);
}

/// A password change voids a challenge made before it, and so does disabling the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_dies_with_the_token_version() {
    let clock = ManualClock::starting_now();
    let app = mfa_app(Backend::Memory, &clock).await;
    let mut b = app.signed_in("ada", PW).await;
    let (secret, _) = enrol(&app, &mut b, &clock).await;
    let challenge = challenged(&app, &mut Browser::new(), "/login").await;
    let ada = app
        .users
        .find_by_field(crudauth_core::user::LoginField::Username, "ada")
        .await;
    let id = ada.unwrap().unwrap().id;
    let bump = UserUpdate {
        bump_token_version: true,
        ..UserUpdate::default()
    };
    app.users.update(&id, bump).await.unwrap();
    clock.advance(Duration::from_secs(30));
    let r = verify(
        &app,
        &mut Browser::new(),
        &challenge,
        &code(&secret, &clock),
    )
    .await;
    assert_eq!(
        (r.status, r.detail()),
        (400, "Invalid or expired MFA challenge")
    );
    // A new epoch (a reset, say) does not lift the second factor: the next sign-in is
    // challenged again. And a challenge expires.
    let challenge = challenged(&app, &mut Browser::new(), "/login").await;
    clock.advance(Duration::from_secs(301));
    let r = verify(
        &app,
        &mut Browser::new(),
        &challenge,
        &code(&secret, &clock),
    )
    .await;
    assert_eq!(r.status, 400);
}

/// With two-factor required, an account without it enrols at sign-in: the challenge carries
/// the pending secret (the same one until the password changes), and its first code finishes
/// both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_accounts_enrol_at_sign_in() {
    let clock = ManualClock::starting_now();
    let config = mfa_config().required(MfaRequirement::On);
    let app = mfa_app_with(Backend::Memory, &clock, config, LockoutConfig::default()).await;
    let r = Browser::new()
        .sign_in(&app.url("/login"), "ada", PW, &[])
        .await;
    assert_eq!(r.json["mfa_required"], true, "{:?}", r.json);
    let setup = r.json["setup"].clone();
    let secret = TotpSecret::parse(setup["secret"].as_str().unwrap()).unwrap();
    assert!(setup["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    let r = Browser::new()
        .sign_in(&app.url("/login"), "ada", PW, &[])
        .await;
    assert_eq!(
        r.json["setup"], setup,
        "the pending secret is kept across retries"
    );
    let challenge = r.json["challenge"].as_str().unwrap().to_owned();
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/mfa/challenge"),
            Body::Json(json!({"challenge": challenge})),
            &[],
        )
        .await;
    assert_eq!(r.json, json!({"setup": setup}));
    let mut b = Browser::new();
    let r = verify(&app, &mut b, &challenge, &code(&secret, &clock)).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["recovery_codes"].as_array().unwrap().len(), 10);
    assert_eq!(r.json["username"], "ada");
    let status = b.get(&app.url("/mfa")).await;
    assert_eq!(
        status.json,
        json!({"enabled": true, "required": true, "recovery_codes_remaining": 10})
    );
    clock.advance(Duration::from_secs(30));
    let r = post(
        &mut b,
        &app,
        "/mfa/totp/disable",
        json!({"code": code(&secret, &clock)}),
    )
    .await;
    assert_eq!(
        (r.status, r.detail()),
        (
            403,
            "Two-factor authentication is required for this account."
        )
    );
    // An enrolled account's challenge has no setup.
    let r = Browser::new()
        .sign_in(&app.url("/login"), "ada", PW, &[])
        .await;
    assert!(r.json.get("setup").is_none());
    let challenge = r.json["challenge"].as_str().unwrap().to_owned();
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/mfa/challenge"),
            Body::Json(json!({"challenge": challenge})),
            &[],
        )
        .await;
    assert_eq!(r.json, json!({"setup": null}));
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/mfa/challenge"),
            Body::Json(json!({"challenge": "x"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 400);
}

/// `POST /sudo {code}` takes a TOTP code of the account (claiming its step), never a recovery
/// code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_by_code() {
    let clock = ManualClock::starting_now();
    let app = mfa_app(Backend::Memory, &clock).await;
    let mut b = app.signed_in("ada", PW).await;
    let (secret, codes) = enrol(&app, &mut b, &clock).await;
    let r = post(&mut b, &app, "/sudo", json!({"code": codes[0]})).await;
    assert_eq!((r.status, r.detail()), (401, "Invalid code"));
    clock.advance(Duration::from_secs(30));
    let c = code(&secret, &clock);
    let r = post(&mut b, &app, "/sudo", json!({"code": c})).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let r = b
        .post_csrf(&app.url("/account/sensitive"), Body::None)
        .await;
    assert_eq!(r.status, 200);
    let r = post(&mut b, &app, "/sudo", json!({"code": c})).await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Invalid code"),
        "the step was claimed"
    );
}

#[derive(Debug, Default)]
struct Seen(Mutex<Vec<(String, User)>>);

#[async_trait]
impl AuthHooks for Seen {
    async fn on_after_mfa_enabled(&self, user: &User, _: &HookContext) -> HookResult {
        self.0
            .lock()
            .unwrap()
            .push(("enabled".into(), user.clone()));
        Ok(())
    }
    async fn on_after_mfa_disabled(&self, user: &User, _: &HookContext) -> HookResult {
        self.0
            .lock()
            .unwrap()
            .push(("disabled".into(), user.clone()));
        Ok(())
    }
    async fn on_after_recovery_code_used(&self, user: &User, _: &HookContext) -> HookResult {
        self.0
            .lock()
            .unwrap()
            .push(("recovery".into(), user.clone()));
        Ok(())
    }
}

/// The three hooks fire, and none of them sees the secret or the codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_fire_and_see_no_secret() {
    let clock = ManualClock::starting_now();
    let seen = Arc::new(Seen::default());
    let mut options = Options::new(Backend::Memory);
    let (c, hooks) = (clock.clone(), seen.clone());
    options.customize =
        Box::new(move |b: CrudAuthBuilder| b.clock(c).mfa(mfa_config()).hooks(ArcHooks(hooks)));
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let (_, codes) = enrol(&app, &mut b, &clock).await;
    let challenge = challenged(&app, &mut Browser::new(), "/login").await;
    assert_eq!(
        verify(&app, &mut Browser::new(), &challenge, &codes[2])
            .await
            .status,
        200
    );
    let r = post(&mut b, &app, "/mfa/totp/disable", json!({"code": codes[3]})).await;
    assert_eq!(r.status, 200);
    let seen = seen.0.lock().unwrap();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["enabled", "recovery", "recovery", "disabled"]);
    for (name, user) in seen.iter() {
        assert_eq!(
            user.mfa,
            Default::default(),
            "{name} saw two-factor columns"
        );
        assert!(user.hashed_password.is_none());
        assert_eq!(user.username.as_deref(), Some("ada"));
    }
}

/// `AuthHooks` for a shared `Seen`.
#[derive(Debug)]
struct ArcHooks(Arc<Seen>);

#[async_trait]
impl AuthHooks for ArcHooks {
    async fn on_after_mfa_enabled(&self, user: &User, c: &HookContext) -> HookResult {
        self.0.on_after_mfa_enabled(user, c).await
    }
    async fn on_after_mfa_disabled(&self, user: &User, c: &HookContext) -> HookResult {
        self.0.on_after_mfa_disabled(user, c).await
    }
    async fn on_after_recovery_code_used(&self, user: &User, c: &HookContext) -> HookResult {
        self.0.on_after_recovery_code_used(user, c).await
    }
}

/// Two workers over one Redis and one user table: a challenge made on one is finished on the
/// other, and a code claimed on one is spent on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_made_on_one_worker_finishes_on_the_other() {
    let clock = ManualClock::starting_now();
    let prefix = unique_prefix("mfa-workers");
    let users = MemoryUsers::new();
    let key = FernetKey::generate();
    let worker = |users: MemoryUsers| {
        let mut options = Options::new(Backend::Memory);
        let (prefix, clock, key) = (prefix.clone(), clock.clone(), key.clone());
        options.customize = Box::new(move |b: CrudAuthBuilder| {
            b.users(users)
                .redis_url(redis_url())
                .redis_prefix(prefix)
                .clock(clock)
                .mfa(MfaConfig::new(ISSUER, [key]))
        });
        options
    };
    let a = spawn(worker(users.clone())).await;
    let b = spawn(worker(users.clone())).await;
    users
        .create(new_user("ada@example.com", "ada", PW).await)
        .await
        .unwrap();
    let mut browser = a.signed_in("ada", PW).await;
    let (secret, _) = enrol(&a, &mut browser, &clock).await;
    clock.advance(Duration::from_secs(30));
    let challenge = challenged(&a, &mut Browser::new(), "/login").await;
    let mut phone = Browser::new();
    let r = verify(&b, &mut phone, &challenge, &code(&secret, &clock)).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(
        phone.get(&a.url("/dashboard")).await.status,
        200,
        "the session is shared"
    );
    let challenge = challenged(&b, &mut Browser::new(), "/login").await;
    let r = verify(&a, &mut Browser::new(), &challenge, &code(&secret, &clock)).await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Invalid code"),
        "the step is spent everywhere"
    );
}

/// Redis stopped while a challenge waits: verification fails closed (503, nothing set), then
/// works again once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_during_verify_fails_closed() {
    let mut redis = RedisServer::start(&[]);
    let clock = ManualClock::starting_now();
    let mut options = Options::new(Backend::Memory);
    let (url, c) = (redis.url(), clock.clone());
    options.customize = Box::new(move |b: CrudAuthBuilder| {
        b.redis_url(url)
            .redis_prefix(unique_prefix("mfa-outage"))
            .clock(c)
            .mfa(mfa_config())
    });
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let (secret, _) = enrol(&app, &mut b, &clock).await;
    clock.advance(Duration::from_secs(30));
    let challenge = challenged(&app, &mut Browser::new(), "/login").await;
    redis.kill();
    let mut phone = Browser::new();
    let r = verify(&app, &mut phone, &challenge, &code(&secret, &clock)).await;
    assert!(matches!(r.status, 503 | 429), "{:?}", r.json);
    assert!(r.headers.get("set-cookie").is_none());
    let r = phone.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert!(matches!(r.status, 503 | 429), "{:?}", r.json);
    redis.restart();
    // The challenge lived only in the Redis that was killed; a new sign-in works.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let challenge = loop {
        let r = Browser::new()
            .sign_in(&app.url("/login"), "ada", PW, &[])
            .await;
        if r.status == 200 {
            break r.json["challenge"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", r.json);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let r = verify(&app, &mut phone, &challenge, &code(&secret, &clock)).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
}

/// `build()` refuses two-factor over a table without its columns, and keys that are the secret
/// key or no Fernet key, saying how to make one.
#[test]
fn build_refuses_what_cannot_work() {
    #[derive(Debug, Clone, Default)]
    struct NoMfaColumns(MemoryUsers);
    #[async_trait]
    impl UserStore for NoMfaColumns {
        async fn find_by_id(
            &self,
            id: &crudauth_core::user::UserId,
        ) -> Result<Option<User>, crudauth_core::user::UserStoreError> {
            self.0.find_by_id(id).await
        }
        async fn find_by_field(
            &self,
            f: crudauth_core::user::LoginField,
            v: &str,
        ) -> Result<Option<User>, crudauth_core::user::UserStoreError> {
            self.0.find_by_field(f, v).await
        }
        async fn create(
            &self,
            u: crudauth_core::user::NewUser,
        ) -> Result<User, crudauth_core::user::UserStoreError> {
            self.0.create(u).await
        }
        async fn update(
            &self,
            id: &crudauth_core::user::UserId,
            c: UserUpdate,
        ) -> Result<Option<User>, crudauth_core::user::UserStoreError> {
            self.0.update(id, c).await
        }
    }
    let build = |users: Box<dyn Fn(CrudAuthBuilder) -> CrudAuthBuilder>, config: MfaConfig| {
        let builder = crudauth_axum::CrudAuth::builder()
            .secret_key(crudauth_tests::app::TEST_SECRET)
            .session_transport(crudauth_axum::SessionTransport::default());
        users(builder)
            .mfa(config)
            .build()
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = build(Box::new(|b| b.users(NoMfaColumns::default())), mfa_config());
    assert!(
        e.contains("totp_secret_encrypted") && e.contains("mfa_recovery_codes"),
        "{e}"
    );
    let same = String::from_utf8(crudauth_tests::app::TEST_SECRET.to_vec()).unwrap();
    let e = build(
        Box::new(|b| b.users(MemoryUsers::new())),
        MfaConfig::new(ISSUER, [same]),
    );
    assert!(e.contains("must differ from SECRET_KEY"), "{e}");
    let e = build(
        Box::new(|b| b.users(MemoryUsers::new())),
        MfaConfig::new(ISSUER, ["short"]),
    );
    assert!(e.contains("Fernet") && e.contains("generate"), "{e}");
}

/// Finishing the challenge is a privilege change: the session the browser presented ends, a
/// new one is issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_renews_the_presented_session() {
    let clock = ManualClock::starting_now();
    let app = mfa_app(Backend::Memory, &clock).await;
    let mut b = app.signed_in("ada", PW).await;
    let (secret, _) = enrol(&app, &mut b, &clock).await;
    let old = b.cookies.get("session_id").cloned().unwrap();
    let challenge = challenged(&app, &mut b, "/login").await;
    assert_eq!(
        b.cookies.get("session_id"),
        Some(&old),
        "the challenge changes nothing"
    );
    clock.advance(Duration::from_secs(30));
    let r = verify(&app, &mut b, &challenge, &code(&secret, &clock)).await;
    assert_eq!(r.status, 200);
    let new = b.cookies.get("session_id").cloned().unwrap();
    assert_ne!(new, old);
    assert_eq!(b.get(&app.url("/dashboard")).await.status, 200);
    let mut stale = Browser::new();
    stale.cookies.insert("session_id".into(), old);
    assert_eq!(
        stale.get(&app.url("/dashboard")).await.status,
        401,
        "the old id is dead"
    );
}
