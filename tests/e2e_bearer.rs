//! End to end over HTTP against the real router: the bearer transport — `/token`, `/refresh`,
//! refresh rotation and reuse detection, revocation by `token_version`, logout, the JWT attack
//! corpus, scopes — and several transports resolving one principal, on memory and on Redis.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::Sha256;

use crudauth_core::secret::sha256_hex;

use crudauth_axum::extract::{CurrentUser, Require};
use crudauth_axum::{
    AuthError, BearerTransport, ConfigError, CrudAuth, Principal, SessionTransport, Transport,
};
use crudauth_core::clock::ManualClock;
use crudauth_core::principal::Gate;
use crudauth_core::user::{MemoryUsers, UserId, UserStore, UserUpdate};

use crudauth_tests::app::{
    derived_key, jwt_key, spawn, Backend, Options, TestApp, Transports, TEST_SECRET,
};
use crudauth_tests::http::{form, Answer, Body, Browser};

const PW: &str = "correct horse battery";
const NEW_PW: &str = "another horse battery";
const INVALID_REFRESH: &str = "Invalid or expired refresh token";

// ---------------------------------------------------------------------------------------------
// Helpers

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A part of a compact JWT (0 header, 1 payload), decoded without verification.
fn part(token: &str, i: usize) -> Value {
    let raw = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw).unwrap()).unwrap()
}

/// HS256 over `claims` with `key`, through jsonwebtoken.
fn sign(claims: &Value, key: &[u8]) -> String {
    sign_alg(Algorithm::HS256, claims, key)
}

/// `alg` over `claims` with `key`, through jsonwebtoken.
fn sign_alg(alg: Algorithm, claims: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
}

/// A compact JWT with any header, signed HMAC-SHA256 with `key` whatever the header says.
fn hand_signed(header: &Value, claims: &Value, key: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message.as_bytes());
    format!("{message}.{}", b64(&mac.finalize().into_bytes()))
}

/// Valid access-token claims for `user_id`, as crudauth-rs mints them.
fn access_claims(user_id: &UserId) -> Value {
    json!({"sub": user_id.to_string(), "ver": 0, "exp": now() + 600, "iat": now(),
           "token_type": "access", "scopes": [], "iss": "crudauth", "aud": "crudauth-api"})
}

/// `claims` with `changes` merged in (a `null` removes the key).
fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

async fn token_as(app: &TestApp, b: &mut Browser, username: &str, password: &str) -> Answer {
    b.sign_in(&app.url("/token"), username, password, &[]).await
}

/// `POST /token` for `username`; asserts 200 and answers the access token (the refresh
/// token is in `b`'s jar, or in the body in body mode).
async fn access_for(app: &TestApp, b: &mut Browser, username: &str) -> String {
    let r = token_as(app, b, username, PW).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json["access_token"].as_str().unwrap().to_owned()
}

async fn send_bearer(b: &mut Browser, method: &str, url: &str, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    b.send(method, url, Body::None, &[("authorization", &auth)])
        .await
}

async fn get_bearer(url: &str, token: &str) -> Answer {
    send_bearer(&mut Browser::new(), "GET", url, token).await
}

/// `POST /refresh` presenting `refresh` as the cookie.
async fn refresh_with(app: &TestApp, refresh: &str) -> Answer {
    let mut b = Browser::new();
    b.cookies.insert("refresh_token".into(), refresh.into());
    b.post(&app.url("/refresh")).await
}

fn options(backend: Backend, bearer: BearerTransport) -> Options {
    let mut o = Options::new(backend);
    o.customize = Box::new(move |b| b.bearer_transport(bearer));
    o
}

/// A route that any transport may authenticate, for unsafe-method (CSRF) checks.
fn notes_route() -> Router {
    Router::new().route(
        "/v1/notes",
        post(|u: CurrentUser| async move { Json(json!({"via": u.via})) }),
    )
}

/// Requires the `reports:read` scope.
struct ReportsRead;
impl Require for ReportsRead {
    fn check(p: &Principal) -> Result<(), AuthError> {
        Gate::Scopes(&["reports:read"])
            .check(p)
            .map_err(AuthError::forbidden)
    }
}

// ---------------------------------------------------------------------------------------------
// /token and /refresh

async fn token_contract(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let user = app.user("ada@example.com", "ada", PW).await;
    let mut b = Browser::new();
    let r = token_as(&app, &mut b, "ada", PW).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let keys: Vec<&String> = r.json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token", "token_type"]);
    assert_eq!(r.json["token_type"], "bearer");
    let access = r.json["access_token"].as_str().unwrap().to_owned();
    let header = part(&access, 0);
    let kid = header["kid"].as_str().unwrap().to_owned();
    assert!(
        kid.len() == 16 && kid.bytes().all(|b| b.is_ascii_hexdigit()),
        "{kid}"
    );
    assert_eq!(header, json!({"typ": "JWT", "alg": "HS256", "kid": kid}));
    let claims = part(&access, 1);
    assert_eq!(claims["sub"], json!(user.id.to_string()), "sub is a string");
    assert_eq!(
        (&claims["ver"], &claims["token_type"], &claims["scopes"]),
        (&json!(0), &json!("access"), &json!([]))
    );
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 900, "crudauth's access_ttl");

    // The refresh token rides in an HttpOnly cookie for the refresh lifetime, on the cookie
    // policy's path: exactly `/` (a line merely containing `Path=/` would pass `Path=/auth`).
    let cookie = r.parsed_cookie("refresh_token").unwrap();
    assert_eq!(
        cookie.policy(),
        (true, true, Some("Lax"), Some("/")),
        "{}",
        cookie.line
    );
    assert_eq!(cookie.attr("Max-Age"), Some("2592000"), "{}", cookie.line);
    let refresh = r.cookie_value("refresh_token").unwrap();
    let rc = part(&refresh, 1);
    assert_eq!(rc["token_type"], "refresh");
    assert_eq!(rc["sub"], json!(user.id.to_string()));
    assert_eq!(
        rc["exp"].as_u64().unwrap() - rc["iat"].as_u64().unwrap(),
        2_592_000
    );
    assert!(rc["fam"].is_string() && rc["jti"].is_string());

    let items = get_bearer(&app.url("/v1/items"), &access).await;
    assert_eq!(
        (items.status, &items.json),
        (200, &json!({"user_id": user.id}))
    );
    let me = get_bearer(&app.url("/me"), &access).await;
    assert_eq!(
        me.json,
        json!({"user_id": user.id, "username": "ada", "email": "ada@example.com",
               "is_superuser": false, "scopes": [], "via": "bearer"})
    );
    // The email signs in too; the OAuth2 client fields are accepted and ignored.
    let r = b
        .send(
            "POST",
            &app.url("/token"),
            form(&[
                ("username", " ADA@example.com "),
                ("password", PW),
                ("grant_type", "password"),
                ("client_id", "cli"),
                ("client_secret", "ignored"),
            ]),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);

    // Failures.
    for (username, password) in [("ada", "wrong password!"), ("nobody", PW)] {
        let r = token_as(&app, &mut Browser::new(), username, password).await;
        assert_eq!(
            (r.status, r.detail()),
            (401, "Incorrect username or password")
        );
        assert!(r.set_cookie("refresh_token").is_none());
    }
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/token"),
            form(&[("username", "ada")]),
            &[],
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json["detail"][0]["loc"], json!(["body", "password"]));
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/token"),
            form(&[
                ("username", "ada"),
                ("password", PW),
                ("grant_type", "client_credentials"),
            ]),
            &[],
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json["detail"][0]["loc"], json!(["body", "grant_type"]));
    // A cookie-setting sign-in from another site is refused.
    let r = Browser::new()
        .sign_in(
            &app.url("/token"),
            "ada",
            PW,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (403, "Cross-site login requests are not allowed.")
    );
    let r = get_bearer(&app.url("/v1/items"), "").await;
    assert_eq!((r.status, r.detail()), (401, "Not authenticated"));

    // A disabled account cannot sign in, and its tokens stop working at once.
    let off = UserUpdate {
        is_active: Some(false),
        ..Default::default()
    };
    app.auth.users().update(&user.id, off).await.unwrap();
    let r = token_as(&app, &mut Browser::new(), "ada", PW).await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Incorrect username or password")
    );
    let r = get_bearer(&app.url("/v1/items"), &access).await;
    assert_eq!((r.status, r.detail()), (401, "Not authenticated"));
    assert_eq!(refresh_with(&app, &refresh).await.detail(), INVALID_REFRESH);
}

async fn refresh_contract(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let user = app.user("ada@example.com", "ada", PW).await;
    let mut b = Browser::new();
    let first_access = access_for(&app, &mut b, "ada").await;
    let r1 = b.cookies["refresh_token"].clone();

    let r = b.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let keys: Vec<&String> = r.json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token", "token_type"]);
    assert_eq!(r.json["token_type"], "bearer");
    // The rotated cookie keeps the attributes, on exactly the policy's path `/`.
    let cookie = r.parsed_cookie("refresh_token").unwrap();
    assert_eq!(
        cookie.policy(),
        (true, true, Some("Lax"), Some("/")),
        "{}",
        cookie.line
    );
    let max_age: u64 = cookie.attr("Max-Age").unwrap().parse().unwrap();
    assert!(
        (2_591_900..=2_592_000).contains(&max_age),
        "what is left of the family: {max_age}"
    );
    let r2 = r.cookie_value("refresh_token").unwrap();
    assert_ne!(r2, r1, "a refresh answers a new refresh token");
    assert_eq!(
        part(&r2, 1)["exp"],
        part(&r1, 1)["exp"],
        "rotation never extends the family"
    );
    assert_eq!(part(&r2, 1)["fam"], part(&r1, 1)["fam"]);
    let access = r.json["access_token"].as_str().unwrap();
    let items = get_bearer(&app.url("/v1/items"), access).await;
    assert_eq!(
        (items.status, &items.json),
        (200, &json!({"user_id": user.id}))
    );

    // Missing: no cookie; in cookie mode a body does not count.
    let mut none = Browser::new();
    let r = none.post(&app.url("/refresh")).await;
    assert_eq!((r.status, r.detail()), (401, "Refresh token missing"));
    let r = none
        .send(
            "POST",
            &app.url("/refresh"),
            Body::Json(json!({"refresh_token": r2})),
            &[],
        )
        .await;
    assert_eq!((r.status, r.detail()), (401, "Refresh token missing"));
    // Junk, and a token of the wrong type.
    for bad in ["junk", "a.b.c", first_access.as_str()] {
        let r = refresh_with(&app, bad).await;
        assert_eq!((r.status, r.detail()), (401, INVALID_REFRESH), "{bad}");
    }
    // A refresh token forged with another key.
    let forged = sign(&part(&r2, 1), &[7u8; 32]);
    let r = refresh_with(&app, &forged).await;
    assert_eq!((r.status, r.detail()), (401, INVALID_REFRESH));
    // None of that spent the live token.
    assert_eq!(refresh_with(&app, &r2).await.status, 200);
}

async fn body_mode(backend: Backend) {
    let app = spawn(options(
        backend,
        BearerTransport::default().refresh_in_body(),
    ))
    .await;
    let user = app.user("ada@example.com", "ada", PW).await;
    let mut b = Browser::new();
    // No cookie is set, so a cross-site call cannot plant one: allowed.
    let r = b
        .sign_in(
            &app.url("/token"),
            "ada",
            PW,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let keys: Vec<&String> = r.json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token", "token_type", "refresh_token"]);
    assert!(r.headers.get("set-cookie").is_none());
    let r1 = r.json["refresh_token"].as_str().unwrap().to_owned();

    let r = b
        .send(
            "POST",
            &app.url("/refresh"),
            Body::Json(json!({"refresh_token": r1})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let keys: Vec<&String> = r.json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token", "token_type", "refresh_token"]);
    assert!(r.headers.get("set-cookie").is_none());
    let r2 = r.json["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r2, r1);
    let access = r.json["access_token"].as_str().unwrap();
    assert_eq!(
        get_bearer(&app.url("/v1/items"), access).await.json,
        json!({"user_id": user.id})
    );

    // An unparsable body, or a body without a usable token, is a missing token.
    let bodies = [
        Body::None,
        Body::Raw(b"{nope".to_vec(), "application/json"),
        Body::Json(json!({})),
        Body::Json(json!({"refresh_token": 5})),
        Body::Json(json!({"refresh_token": ""})),
        Body::Json(json!([r2])),
        form(&[("refresh_token", &r2)]),
    ];
    for body in bodies {
        let r = Browser::new()
            .send("POST", &app.url("/refresh"), body, &[])
            .await;
        assert_eq!((r.status, r.detail()), (401, "Refresh token missing"));
    }
    // The cookie comes first in both modes: a junk cookie fails even beside a good body…
    let mut junk = Browser::new();
    junk.cookies.insert("refresh_token".into(), "junk".into());
    let r = junk
        .send(
            "POST",
            &app.url("/refresh"),
            Body::Json(json!({"refresh_token": r2})),
            &[],
        )
        .await;
    assert_eq!((r.status, r.detail()), (401, INVALID_REFRESH));
    // …and did not spend it.
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/refresh"),
            Body::Json(json!({"refresh_token": r2})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
}

async fn refresh_cookie_path(backend: Backend) {
    let app = spawn(options(
        backend,
        BearerTransport::default().refresh_cookie_path("/auth"),
    ))
    .await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = Browser::new();
    let r = token_as(&app, &mut b, "ada", PW).await;
    let cookie = r.parsed_cookie("refresh_token").unwrap();
    assert_eq!(cookie.attr("Path"), Some("/auth"), "{}", cookie.line);
    let r = b.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let cookie = r.parsed_cookie("refresh_token").unwrap();
    assert_eq!(cookie.attr("Path"), Some("/auth"), "{}", cookie.line);
    let r = b.post_csrf(&app.url("/logout"), Body::None).await;
    let cleared = r.parsed_cookie("refresh_token").unwrap();
    assert_eq!(
        (cleared.attr("Path"), cleared.attr("Max-Age")),
        (Some("/auth"), Some("0")),
        "{}",
        cleared.line
    );
    // The session cookies keep the policy's path, exactly `/` (not the refresh cookie's
    // `/auth`, which a `contains("Path=/")` check could not tell apart).
    for name in ["session_id", "csrf_token"] {
        let cleared = r.parsed_cookie(name).unwrap();
        assert_eq!(cleared.attr("Path"), Some("/"), "{}", cleared.line);
    }
}

// ---------------------------------------------------------------------------------------------
// Rotation, reuse detection, concurrency

async fn rotation_and_reuse_revokes_the_family(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = Browser::new();
    access_for(&app, &mut b, "ada").await;
    let r1 = b.cookies["refresh_token"].clone();
    let mut chain = vec![r1.clone()];
    let mut last_access = String::new();
    for _ in 0..3 {
        let r = b.post(&app.url("/refresh")).await;
        assert_eq!(r.status, 200);
        last_access = r.json["access_token"].as_str().unwrap().to_owned();
        chain.push(b.cookies["refresh_token"].clone());
    }
    let newest = chain.last().unwrap().clone();
    // Another sign-in: a family of its own.
    let mut other = Browser::new();
    access_for(&app, &mut other, "ada").await;

    // A rotated-out token (the first) comes back: refused, and the family is revoked…
    let r = refresh_with(&app, &r1).await;
    assert_eq!((r.status, r.detail()), (401, INVALID_REFRESH));
    // …so the newest token of the family is dead too, and so is every other.
    for t in &chain {
        assert_eq!(refresh_with(&app, t).await.status, 401);
    }
    assert_eq!(refresh_with(&app, &newest).await.detail(), INVALID_REFRESH);
    // Access tokens already issued live out their (short) lifetime.
    assert_eq!(
        get_bearer(&app.url("/v1/items"), &last_access).await.status,
        200
    );
    // The other sign-in is untouched.
    let r = other.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 200);

    // A middle token reused revokes just the same.
    let mut c = Browser::new();
    access_for(&app, &mut c, "ada").await;
    let s1 = c.cookies["refresh_token"].clone();
    c.post(&app.url("/refresh")).await;
    let s2 = c.cookies["refresh_token"].clone();
    c.post(&app.url("/refresh")).await;
    assert_ne!(s1, s2);
    assert_eq!(refresh_with(&app, &s2).await.status, 401);
    let r = c.post(&app.url("/refresh")).await;
    assert_eq!((r.status, r.detail()), (401, INVALID_REFRESH));
}

async fn reuse_grace(backend: Backend) {
    let clock = ManualClock::starting_now();
    let grace = BearerTransport::default().reuse_grace(Duration::from_secs(1));
    let mut o = Options::new(backend);
    let time = clock.clone();
    o.customize = Box::new(move |b| b.bearer_transport(grace).clock(time));
    let app = spawn(o).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = Browser::new();
    access_for(&app, &mut b, "ada").await;
    let r1 = b.cookies["refresh_token"].clone();
    b.post(&app.url("/refresh")).await;
    // Within the grace, while its successor is unused: refused, family kept.
    let r = refresh_with(&app, &r1).await;
    assert_eq!((r.status, r.detail()), (401, INVALID_REFRESH));
    let r = b.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 200, "the successor still works");
    // Its successor is spent now: no longer a benign race, so the family goes.
    assert_eq!(refresh_with(&app, &r1).await.status, 401);
    let r = b.post(&app.url("/refresh")).await;
    assert_eq!((r.status, r.detail()), (401, INVALID_REFRESH));

    // After the grace, reuse revokes even while the successor is unused.
    let mut c = Browser::new();
    access_for(&app, &mut c, "ada").await;
    let s1 = c.cookies["refresh_token"].clone();
    c.post(&app.url("/refresh")).await;
    clock.advance(Duration::from_millis(1001));
    assert_eq!(refresh_with(&app, &s1).await.status, 401);
    let r = c.post(&app.url("/refresh")).await;
    assert_eq!((r.status, r.detail()), (401, INVALID_REFRESH));
}

/// Two refreshes with one token at the same instant, several rounds: exactly one succeeds.
/// Without a grace the loser's presentation is reuse and revokes the family, so the winner's
/// new refresh token is dead too (its access token still works); with a grace, the loser is
/// refused and the winner's new token lives on.
async fn concurrent_refresh_has_one_winner(backend: Backend) {
    for grace in [None, Some(Duration::from_secs(2))] {
        let mut bearer = BearerTransport::default();
        if let Some(g) = grace {
            bearer = bearer.reuse_grace(g);
        }
        let app = spawn(options(backend, bearer)).await;
        app.user("ada@example.com", "ada", PW).await;
        for round in 0..5 {
            let mut b = Browser::new();
            access_for(&app, &mut b, "ada").await;
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let mut tasks = Vec::new();
            for _ in 0..2 {
                let (mut b, barrier, url) = (b.clone(), barrier.clone(), app.url("/refresh"));
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    let r = b.post(&url).await;
                    (r, b)
                }));
            }
            let mut answers = Vec::new();
            for t in tasks {
                answers.push(t.await.unwrap());
            }
            answers.sort_by_key(|(r, _)| r.status);
            let statuses: Vec<u16> = answers.iter().map(|(r, _)| r.status).collect();
            assert_eq!(statuses, [200, 401], "round {round}, grace {grace:?}");
            assert_eq!(answers[1].0.detail(), INVALID_REFRESH);
            let (won, mut winner) = answers.remove(0);
            let access = won.json["access_token"].as_str().unwrap();
            assert_eq!(get_bearer(&app.url("/v1/items"), access).await.status, 200);
            let next = winner.post(&app.url("/refresh")).await;
            let expected = if grace.is_some() { 200 } else { 401 };
            assert_eq!(next.status, expected, "round {round}, grace {grace:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Revocation: token_version, logout

async fn password_change_and_logout_all_kill_tokens(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = Browser::new();
    let access = access_for(&app, &mut b, "ada").await;
    let r1 = b.cookies["refresh_token"].clone();
    let mut spare = Browser::new();
    let spare_access = access_for(&app, &mut spare, "ada").await;

    // Changed through a bearer token: no CSRF applies.
    let auth = format!("Bearer {access}");
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/change-password"),
            Body::Json(json!({"current_password": PW, "new_password": NEW_PW})),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!((r.status, r.detail()), (200, "Password changed."));
    for a in [&access, &spare_access] {
        let r = get_bearer(&app.url("/v1/items"), a).await;
        assert_eq!((r.status, r.detail()), (401, "Not authenticated"));
    }
    let r = refresh_with(&app, &r1).await;
    assert_eq!((r.status, r.detail()), (401, INVALID_REFRESH));
    let r = spare.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        token_as(&app, &mut Browser::new(), "ada", PW).await.status,
        401
    );
    let mut t = Browser::new();
    let r = token_as(&app, &mut t, "ada", NEW_PW).await;
    assert_eq!(r.status, 200);
    let access = r.json["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get_bearer(&app.url("/v1/items"), &access).await.status, 200);

    // Logout-all (from a session) ends bearer tokens too.
    let mut s = app.signed_in("ada", NEW_PW).await;
    let r = s.post_csrf(&app.url("/logout-all"), Body::None).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(get_bearer(&app.url("/v1/items"), &access).await.status, 401);
    let r = t.post(&app.url("/refresh")).await;
    assert_eq!((r.status, r.detail()), (401, INVALID_REFRESH));
}

/// A token's principal is remembered between requests, but never outlives the user row it was
/// built from: a change through crudauth ends it at once, one behind its back (straight in the
/// table) within `user_cache_ttl`.
async fn remembered_principals_follow_the_user_row(backend: Backend) {
    let clock = ManualClock::starting_now();
    let mut o = Options::new(backend);
    let time = clock.clone();
    o.customize = Box::new(move |b| b.user_cache_ttl(Duration::from_secs(1)).clock(time));
    let app = spawn(o).await;
    let user = app.user("ada@example.com", "ada", PW).await;
    let access = access_for(&app, &mut Browser::new(), "ada").await;
    for _ in 0..3 {
        assert_eq!(get_bearer(&app.url("/v1/items"), &access).await.status, 200);
    }
    // Verified behind crudauth's back: seen once the cached row expires.
    let promote = UserUpdate {
        email_verified: Some(true),
        ..Default::default()
    };
    app.users.update(&user.id, promote).await.unwrap();
    let r = get_bearer(&app.url("/secret"), &access).await;
    assert_eq!(r.status, 403, "still the cached row");
    clock.advance(Duration::from_millis(999));
    let r = get_bearer(&app.url("/secret"), &access).await;
    assert_eq!(r.status, 403, "still within the row's time to live");
    clock.advance(Duration::from_millis(2));
    let r = get_bearer(&app.url("/secret"), &access).await;
    assert_eq!(r.status, 200, "the verified flag was re-read: {:?}", r.json);
    // Disabled behind crudauth's back: absent within the row's time to live.
    let off = UserUpdate {
        is_active: Some(false),
        ..Default::default()
    };
    app.users.update(&user.id, off).await.unwrap();
    clock.advance(Duration::from_millis(1001));
    let r = get_bearer(&app.url("/v1/items"), &access).await;
    assert_eq!((r.status, r.detail()), (401, "Not authenticated"));
    // Enabled again through crudauth: back at once.
    let on = UserUpdate {
        is_active: Some(true),
        ..Default::default()
    };
    app.auth.users().update(&user.id, on).await.unwrap();
    assert_eq!(get_bearer(&app.url("/v1/items"), &access).await.status, 200);
    // A new epoch through crudauth: the remembered principal ends at once.
    let bump = UserUpdate {
        bump_token_version: true,
        ..Default::default()
    };
    app.auth.users().update(&user.id, bump).await.unwrap();
    let r = get_bearer(&app.url("/v1/items"), &access).await;
    assert_eq!((r.status, r.detail()), (401, "Not authenticated"));
}

async fn logout_revokes_the_refresh_family(backend: Backend) {
    // Session and bearer: the session's /logout ends the refresh family too.
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    access_for(&app, &mut b, "ada").await;
    let r1 = b.cookies["refresh_token"].clone();
    // Without the CSRF token a live session's logout is refused, and nothing is revoked.
    let r = b.post(&app.url("/logout")).await;
    assert_eq!((r.status, r.detail()), (403, "Missing CSRF token"));
    let r = b.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 200);
    let r2 = b.cookies["refresh_token"].clone();
    let r = b.post_csrf(&app.url("/logout"), Body::None).await;
    assert_eq!((r.status, r.detail()), (200, "Logged out"));
    for name in ["session_id", "csrf_token", "refresh_token"] {
        let line = r.set_cookie(name).unwrap();
        assert!(line.contains("Max-Age=0"), "{line}");
    }
    assert!(r.set_cookie("refresh_token").unwrap().contains("HttpOnly"));
    for t in [&r1, &r2] {
        assert_eq!(refresh_with(&app, t).await.detail(), INVALID_REFRESH);
    }
    // With no cookies at all, /logout still clears every transport's cookies.
    let r = Browser::new().post(&app.url("/logout")).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookie("refresh_token").unwrap().contains("Max-Age=0"));

    // Bearer only, refresh in a cookie: a /logout of its own.
    let mut o = Options::new(backend);
    o.transports = Transports::BearerOnly;
    let app = spawn(o).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = Browser::new();
    access_for(&app, &mut b, "ada").await;
    let r1 = b.cookies["refresh_token"].clone();
    let r = b.post(&app.url("/logout")).await;
    assert_eq!((r.status, &r.json), (200, &json!({"detail": "Logged out"})));
    let line = r.set_cookie("refresh_token").unwrap();
    assert!(
        line.contains("Max-Age=0") && line.contains("HttpOnly"),
        "{line}"
    );
    assert!(r.set_cookie("session_id").is_none());
    assert_eq!(refresh_with(&app, &r1).await.detail(), INVALID_REFRESH);
    let r = Browser::new()
        .sign_in(&app.url("/login"), "ada", PW, &[])
        .await;
    assert_eq!(r.status, 404, "no session transport, no /login");

    // Bearer only, refresh in the body: no cookie, so no /logout.
    let mut o = options(backend, BearerTransport::default().refresh_in_body());
    o.transports = Transports::BearerOnly;
    let app = spawn(o).await;
    let r = Browser::new().post(&app.url("/logout")).await;
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------------------------------------
// The JWT attack corpus

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// 401 "Invalid token" everywhere, even where sign-in is optional.
    Invalid,
    /// No credential: anonymous where optional, 401 "Not authenticated" where required.
    Absent,
    /// Authenticates.
    Valid,
}

async fn jwt_attack_corpus(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let user = app.user("ada@example.com", "ada", PW).await;
    let other = app.user("bob@example.com", "bob", PW).await;
    let jwt_key = jwt_key();
    let key = &jwt_key[..];
    let mut b = Browser::new();
    let real = access_for(&app, &mut b, "ada").await;
    let real_refresh = b.cookies["refresh_token"].clone();
    // Minted tokens carry the configured issuer and audience (the defaults here).
    for token in [&real, &real_refresh] {
        let claims = part(token, 1);
        assert_eq!(
            (&claims["iss"], &claims["aud"]),
            (&json!("crudauth"), &json!("crudauth-api"))
        );
    }
    let good = access_claims(&user.id);
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let [h, p, s]: [&str; 3] = real.split('.').collect::<Vec<_>>().try_into().unwrap();

    let tampered_scopes = format!(
        "{h}.{}.{s}",
        b64(with(part(&real, 1), json!({"scopes": ["admin"]}))
            .to_string()
            .as_bytes())
    );
    let tampered_sub = format!(
        "{h}.{}.{s}",
        b64(with(part(&real, 1), json!({"sub": other.id.to_string()}))
            .to_string()
            .as_bytes())
    );
    let mut sig: Vec<char> = s.chars().collect();
    sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
    let tampered_signature = format!("{h}.{p}.{}", sig.into_iter().collect::<String>());
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
            b64(good.to_string().as_bytes())
        )
    };
    let jwk = json!({"kty": "oct", "k": b64(key)});
    // `good` with `changes`, signed HS256 with `key`.
    let forged = |changes: Value| sign(&with(good.clone(), changes), key);
    // `good`, HMAC-signed with `key` under the HS256 header with `changes`.
    let headed = |changes: Value| hand_signed(&with(hs256.clone(), changes), &good, key);

    let corpus: Vec<(&str, String, Expect)> = vec![
        ("control", sign(&good, key), Expect::Valid),
        ("real token", real.clone(), Expect::Valid),
        ("alg none", unsigned("none"), Expect::Invalid),
        ("alg None", unsigned("None"), Expect::Invalid),
        ("alg NONE", unsigned("NONE"), Expect::Invalid),
        (
            "alg none, signature kept",
            hand_signed(&json!({"alg": "none"}), &good, key),
            Expect::Invalid,
        ),
        (
            "real token, signature stripped",
            format!("{h}.{p}."),
            Expect::Invalid,
        ),
        (
            "real token, no signature part",
            format!("{h}.{p}"),
            Expect::Invalid,
        ),
        ("HS256, wrong key", sign(&good, &[7u8; 32]), Expect::Invalid),
        (
            "HS256, the raw SECRET_KEY (not the derived JWT key)",
            sign(&good, &TEST_SECRET),
            Expect::Invalid,
        ),
        (
            "HS256, the session-id key",
            sign(&good, &derived_key(crudauth_core::secret::purpose::SESSION)),
            Expect::Invalid,
        ),
        (
            "HS256, the CSRF key",
            sign(&good, &derived_key(crudauth_core::secret::purpose::CSRF)),
            Expect::Invalid,
        ),
        ("wrong iss", forged(json!({"iss": "evil"})), Expect::Invalid),
        ("no iss", forged(json!({"iss": null})), Expect::Invalid),
        (
            "wrong aud",
            forged(json!({"aud": "another-api"})),
            Expect::Invalid,
        ),
        ("no aud", forged(json!({"aud": null})), Expect::Invalid),
        (
            "aud as a list naming ours",
            forged(json!({"aud": ["crudauth-api"]})),
            Expect::Invalid,
        ),
        ("HS256, empty key", sign(&good, b""), Expect::Invalid),
        (
            "HS512, right key (not allowed)",
            sign_alg(Algorithm::HS512, &good, key),
            Expect::Invalid,
        ),
        (
            "HS384, right key (not allowed)",
            sign_alg(Algorithm::HS384, &good, key),
            Expect::Invalid,
        ),
        (
            "RS256 header, HMAC with the secret (key confusion)",
            hand_signed(&json!({"alg": "RS256", "typ": "JWT"}), &good, key),
            Expect::Invalid,
        ),
        (
            "ES256 header, HMAC with the secret",
            hand_signed(&json!({"alg": "ES256", "typ": "JWT"}), &good, key),
            Expect::Invalid,
        ),
        (
            "EdDSA header, HMAC with the secret",
            hand_signed(&json!({"alg": "EdDSA"}), &good, key),
            Expect::Invalid,
        ),
        (
            "unknown alg",
            hand_signed(&json!({"alg": "HS257"}), &good, key),
            Expect::Invalid,
        ),
        ("kid header", headed(json!({"kid": "k1"})), Expect::Invalid),
        (
            "jku header",
            headed(json!({"jku": "https://evil.example/jwks"})),
            Expect::Invalid,
        ),
        (
            "x5u header",
            headed(json!({"x5u": "https://evil.example/cert"})),
            Expect::Invalid,
        ),
        (
            "embedded jwk header",
            headed(json!({"jwk": jwk})),
            Expect::Invalid,
        ),
        (
            "expired a minute ago",
            forged(json!({"exp": now() - 60})),
            Expect::Absent,
        ),
        (
            "expired at the epoch",
            forged(json!({"exp": 1})),
            Expect::Absent,
        ),
        (
            "expired, wrong key",
            sign(&with(good.clone(), json!({"exp": now() - 60})), &[7u8; 32]),
            Expect::Invalid,
        ),
        (
            "nbf in the future",
            forged(json!({"nbf": now() + 3600})),
            Expect::Invalid,
        ),
        (
            "nbf in the past",
            forged(json!({"nbf": now() - 10})),
            Expect::Valid,
        ),
        (
            "refresh token as access",
            real_refresh.clone(),
            Expect::Invalid,
        ),
        (
            "token_type refresh",
            forged(json!({"token_type": "refresh"})),
            Expect::Invalid,
        ),
        (
            "token_type id",
            forged(json!({"token_type": "id"})),
            Expect::Invalid,
        ),
        (
            "no token_type",
            forged(json!({"token_type": null})),
            Expect::Invalid,
        ),
        ("no sub", forged(json!({"sub": null})), Expect::Invalid),
        ("empty sub", forged(json!({"sub": ""})), Expect::Invalid),
        ("numeric sub", forged(json!({"sub": 1})), Expect::Invalid),
        ("no exp", forged(json!({"exp": null})), Expect::Invalid),
        (
            "exp as a string",
            forged(json!({"exp": "9999999999"})),
            Expect::Invalid,
        ),
        (
            "scopes not a list",
            forged(json!({"scopes": "admin"})),
            Expect::Invalid,
        ),
        (
            "tampered scopes, signature kept",
            tampered_scopes,
            Expect::Invalid,
        ),
        (
            "tampered sub, signature kept",
            tampered_sub,
            Expect::Invalid,
        ),
        ("tampered signature", tampered_signature, Expect::Invalid),
        ("junk", "garbage".into(), Expect::Invalid),
        ("three junk parts", "a.b.c".into(), Expect::Invalid),
        ("four parts", format!("{real}.x"), Expect::Invalid),
        ("dots", "..".into(), Expect::Invalid),
        ("not base64", "!!!.@@@.###".into(), Expect::Invalid),
        ("header only", h.to_owned(), Expect::Invalid),
        ("long junk", "A".repeat(4000), Expect::Invalid),
        (
            "a second scheme word",
            format!("Bearer {real}"),
            Expect::Invalid,
        ),
        (
            "unknown user",
            forged(json!({"sub": "999999"})),
            Expect::Absent,
        ),
        (
            "stale token_version",
            forged(json!({"ver": 7})),
            Expect::Absent,
        ),
    ];
    for (name, token, expect) in &corpus {
        let required = get_bearer(&app.url("/v1/items"), token).await;
        let optional = get_bearer(&app.url("/feed"), token).await;
        match expect {
            Expect::Invalid => {
                assert_eq!(
                    (required.status, required.detail()),
                    (401, "Invalid token"),
                    "{name}"
                );
                assert_eq!(
                    (optional.status, optional.detail()),
                    (401, "Invalid token"),
                    "{name}: a forged credential is never anonymous"
                );
            }
            Expect::Absent => {
                assert_eq!(
                    (required.status, required.detail()),
                    (401, "Not authenticated"),
                    "{name}"
                );
                assert_eq!(
                    (optional.status, &optional.json),
                    (200, &json!({"auth": false})),
                    "{name}"
                );
            }
            Expect::Valid => {
                assert_eq!(required.status, 200, "{name}: {:?}", required.json);
                assert_eq!(optional.json, json!({"auth": true}), "{name}");
            }
        }
    }
    // Headers that carry no bearer credential at all.
    for value in [
        "Bearer ".to_owned(),
        "Bearer".to_owned(),
        format!("Basic {}", b64(b"ada:pw")),
        format!("Token {real}"),
    ] {
        let mut nobody = Browser::new();
        let r = nobody
            .get_with(&app.url("/feed"), &[("authorization", &value)])
            .await;
        assert_eq!(
            (r.status, &r.json),
            (200, &json!({"auth": false})),
            "{value}"
        );
        let r = nobody
            .get_with(&app.url("/v1/items"), &[("authorization", &value)])
            .await;
        assert_eq!(
            (r.status, r.detail()),
            (401, "Not authenticated"),
            "{value}"
        );
    }
    // The scheme is case-insensitive.
    let lower = format!("bearer {real}");
    let r = Browser::new()
        .get_with(&app.url("/v1/items"), &[("authorization", &lower)])
        .await;
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Scopes

async fn scopes_are_clamped_and_gated(backend: Backend) {
    let mut o = options(
        backend,
        BearerTransport::default()
            .grantable_scopes(["reports:read", "reports:write"])
            .default_scopes(["reports:read"]),
    );
    o.routes = Some(Box::new(|_: &crudauth_axum::CrudAuth| {
        Router::new().route(
            "/v1/reports",
            get(|_: CurrentUser<ReportsRead>| async { Json(json!({"ok": true})) }),
        )
    }));
    let app = spawn(o).await;
    app.user("ada@example.com", "ada", PW).await;
    let scoped = |scope: &'static str| {
        let url = app.url("/token");
        async move {
            let mut b = Browser::new();
            let r = b
                .send(
                    "POST",
                    &url,
                    form(&[("username", "ada"), ("password", PW), ("scope", scope)]),
                    &[],
                )
                .await;
            assert_eq!(r.status, 200);
            (r.json["access_token"].as_str().unwrap().to_owned(), b)
        }
    };
    let (default, _) = scoped("").await;
    assert_eq!(part(&default, 1)["scopes"], json!(["reports:read"]));
    let (write, mut wb) = scoped("admin  reports:write").await;
    assert_eq!(
        part(&write, 1)["scopes"],
        json!(["reports:write"]),
        "self-granted scopes are dropped"
    );
    let (none, _) = scoped("admin").await;
    assert_eq!(part(&none, 1)["scopes"], json!([]));

    assert_eq!(
        get_bearer(&app.url("/v1/reports"), &default).await.status,
        200
    );
    let r = get_bearer(&app.url("/v1/reports"), &write).await;
    assert_eq!((r.status, r.detail()), (403, "Insufficient scope"));
    assert_eq!(
        get_bearer(&app.url("/me"), &write).await.json["scopes"],
        json!(["reports:write"])
    );
    // Sessions never carry scopes.
    let mut s = app.signed_in("ada", PW).await;
    let r = s.get(&app.url("/v1/reports")).await;
    assert_eq!((r.status, r.detail()), (403, "Insufficient scope"));
    // A refresh keeps the granted scopes (clamped again to the ceiling).
    let r = wb.post(&app.url("/refresh")).await;
    let refreshed = r.json["access_token"].as_str().unwrap();
    assert_eq!(part(refreshed, 1)["scopes"], json!(["reports:write"]));
}

// ---------------------------------------------------------------------------------------------
// Several transports, one principal

async fn transport_precedence_matrix(backend: Backend) {
    for order in [Transports::SessionThenBearer, Transports::BearerThenSession] {
        let mut o = Options::new(backend);
        o.transports = order;
        o.routes = Some(Box::new(|_: &crudauth_axum::CrudAuth| notes_route()));
        let app = spawn(o).await;
        let user = app.user("ada@example.com", "ada", PW).await;
        let first = match order {
            Transports::SessionThenBearer => "session",
            _ => "bearer",
        };
        let session = app.signed_in("ada", PW).await;
        let access = access_for(&app, &mut Browser::new(), "ada").await;
        let expired = sign(
            &with(access_claims(&user.id), json!({"exp": now() - 60})),
            &jwt_key(),
        );
        let mut dead = Browser::new();
        dead.cookies.insert("session_id".into(), "x".repeat(43));
        let none = Browser::new();

        // (cookie jar, Authorization token, expected status, expected via or detail)
        let cases: Vec<(&str, &Browser, Option<&str>, u16, &str)> = vec![
            ("both valid", &session, Some(&access), 200, first),
            ("cookie only", &session, None, 200, "session"),
            ("bearer only", &none, Some(&access), 200, "bearer"),
            (
                "cookie + forged bearer",
                &session,
                Some("garbage"),
                if first == "session" { 200 } else { 401 },
                if first == "session" {
                    "session"
                } else {
                    "Invalid token"
                },
            ),
            (
                "cookie + expired bearer",
                &session,
                Some(&expired),
                200,
                "session",
            ),
            ("dead cookie + bearer", &dead, Some(&access), 200, "bearer"),
            (
                "dead cookie + forged bearer",
                &dead,
                Some("garbage"),
                401,
                "Invalid token",
            ),
            (
                "expired bearer alone",
                &none,
                Some(&expired),
                401,
                "Not authenticated",
            ),
            ("nothing", &none, None, 401, "Not authenticated"),
        ];
        for (name, jar, token, status, expected) in cases {
            let mut b = jar.clone();
            let auth = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("authorization", a.as_str())).collect();
            let r = b.get_with(&app.url("/dashboard"), &headers).await;
            let got = if r.status == 200 {
                r.json["via"].as_str().unwrap_or("").to_owned()
            } else {
                r.detail().to_owned()
            };
            assert_eq!(
                (r.status, got.as_str()),
                (status, expected),
                "{order:?}: {name}"
            );
            let me = b.get_with(&app.url("/me"), &headers).await;
            assert_eq!(me.status, status, "{order:?}: {name} (/me)");
            if status == 200 {
                assert_eq!(me.json["via"], expected, "{order:?}: {name} (/me)");
            }
        }

        // Narrowed routes consult one transport only, whatever the order.
        let mut s = session.clone();
        let r = s.get(&app.url("/v1/items")).await;
        assert_eq!(
            (r.status, r.detail()),
            (401, "Not authenticated"),
            "{order:?}"
        );
        let r = send_bearer(&mut session.clone(), "GET", &app.url("/v1/items"), &access).await;
        assert_eq!(r.status, 200, "{order:?}");
        let r = send_bearer(
            &mut Browser::new(),
            "POST",
            &app.url("/account/settings"),
            &access,
        )
        .await;
        assert_eq!(
            (r.status, r.detail()),
            (401, "Not authenticated"),
            "{order:?}"
        );
        // A session-only route never looks at the bearer header, even a forged one.
        let token = s.csrf();
        let r = s
            .send(
                "POST",
                &app.url("/account/settings"),
                Body::None,
                &[
                    ("x-csrf-token", &token),
                    ("authorization", "Bearer garbage"),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{order:?}");

        // CSRF protects what the session cookie authenticates, and nothing else.
        let r = send_bearer(&mut session.clone(), "POST", &app.url("/v1/notes"), &access).await;
        if first == "session" {
            assert_eq!(
                (r.status, r.detail()),
                (403, "Missing CSRF token"),
                "{order:?}"
            );
            assert_eq!(r.header("x-csrf-error"), Some("true"));
        } else {
            assert_eq!(
                (r.status, &r.json),
                (200, &json!({"via": "bearer"})),
                "{order:?}"
            );
        }
        let r = send_bearer(&mut dead.clone(), "POST", &app.url("/v1/notes"), &access).await;
        assert_eq!(
            (r.status, &r.json),
            (200, &json!({"via": "bearer"})),
            "{order:?}"
        );
        let r = send_bearer(&mut Browser::new(), "POST", &app.url("/v1/notes"), &access).await;
        assert_eq!(
            (r.status, &r.json),
            (200, &json!({"via": "bearer"})),
            "{order:?}"
        );
        let r = s.post_csrf(&app.url("/v1/notes"), Body::None).await;
        assert_eq!(
            (r.status, &r.json),
            (200, &json!({"via": "session"})),
            "{order:?}"
        );
        let r = s.post(&app.url("/v1/notes")).await;
        assert_eq!(
            (r.status, r.detail()),
            (403, "Missing CSRF token"),
            "{order:?}"
        );
    }
}

/// `X-Api-Key: <key>` — the API-key transport of the guide: each key's SHA-256 maps to its
/// owner and scopes (filled once the test's users exist).
#[derive(Debug, Default, Clone)]
struct ApiKey {
    by_hash: Arc<std::sync::RwLock<KeyTable>>,
}

/// SHA-256 of a key → its owner and scopes.
type KeyTable = HashMap<String, (UserId, Vec<String>)>;

impl ApiKey {
    fn issue(&self, owner: &UserId, scopes: &[&str]) -> String {
        let key = crudauth_core::secret::random_token(32);
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.by_hash
            .write()
            .unwrap()
            .insert(sha256_hex(key.as_bytes()), (owner.clone(), scopes));
        key
    }
}

#[async_trait]
impl Transport for ApiKey {
    fn name(&self) -> &'static str {
        "apikey"
    }

    async fn authenticate(
        &self,
        parts: &Parts,
        auth: &CrudAuth,
    ) -> Result<Option<Principal>, AuthError> {
        let Some(value) = parts.headers.get("x-api-key") else {
            return Ok(None);
        };
        let key = value.to_str().map_err(|_| AuthError::invalid_token())?;
        let found = self
            .by_hash
            .read()
            .unwrap()
            .get(&sha256_hex(key.as_bytes()))
            .cloned();
        let Some((owner, scopes)) = found else {
            return Err(AuthError::invalid_token());
        };
        let user = auth.load_active_user(&owner).await?;
        Ok(user.map(|u| Principal::new(u, "apikey", scopes)))
    }
}

async fn custom_transport(backend: Backend) {
    let keys = ApiKey::default();
    let mut o = Options::new(backend);
    let transport = keys.clone();
    o.customize = Box::new(move |b| b.transport(transport));
    o.routes = Some(Box::new(|_: &crudauth_axum::CrudAuth| {
        Router::new().route(
            "/v1/reports",
            get(|u: CurrentUser<ReportsRead>| async move { Json(json!({"via": u.via})) }),
        )
    }));
    let app = spawn(o).await;
    let ada = app.user("ada@example.com", "ada", PW).await;
    let bob = app.user("bob@example.com", "bob", PW).await;
    let reader = keys.issue(&ada.id, &["reports:read"]);
    let other = keys.issue(&ada.id, &["other"]);
    let bobs = keys.issue(&bob.id, &[]);
    let mut b = Browser::new();
    let r = b
        .get_with(&app.url("/dashboard"), &[("x-api-key", &reader)])
        .await;
    assert_eq!(
        (r.status, &r.json["via"], &r.json["username"]),
        (200, &json!("apikey"), &json!("ada"))
    );
    // The key alone picks the account: bob's key is bob, whatever else the request says.
    let r = b
        .get_with(&app.url("/dashboard"), &[("x-api-key", &bobs)])
        .await;
    assert_eq!((r.status, &r.json["username"]), (200, &json!("bob")));
    let r = b
        .get_with(
            &app.url("/dashboard"),
            &[("x-api-key", &format!("{}:{reader}", bob.id))],
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Invalid token"),
        "no account by id"
    );
    let r = b
        .get_with(&app.url("/v1/reports"), &[("x-api-key", &reader)])
        .await;
    assert_eq!((r.status, &r.json), (200, &json!({"via": "apikey"})));
    let r = b
        .get_with(&app.url("/v1/reports"), &[("x-api-key", &other)])
        .await;
    assert_eq!((r.status, r.detail()), (403, "Insufficient scope"));
    let r = b
        .get_with(&app.url("/feed"), &[("x-api-key", "nope")])
        .await;
    assert_eq!((r.status, r.detail()), (401, "Invalid token"));
    let r = b.get(&app.url("/dashboard")).await;
    assert_eq!((r.status, r.detail()), (401, "Not authenticated"));
    // Configured after the bearer transport: a bearer credential wins.
    let access = access_for(&app, &mut Browser::new(), "ada").await;
    let auth = format!("Bearer {access}");
    let r = b
        .get_with(
            &app.url("/dashboard"),
            &[("x-api-key", &reader), ("authorization", &auth)],
        )
        .await;
    assert_eq!(r.json["via"], "bearer");
}

// ---------------------------------------------------------------------------------------------
// Configuration (no backend involved)

#[test]
fn transports_are_tried_in_builder_order() {
    let base = || {
        CrudAuth::builder()
            .secret_key(TEST_SECRET)
            .users(MemoryUsers::new())
            .warn_on_memory_backend(false)
    };
    let auth = base()
        .bearer_transport(BearerTransport::default())
        .session_transport(SessionTransport::default())
        .transport(ApiKey::default())
        // Reconfiguring keeps the place.
        .bearer_transport(BearerTransport::default().refresh_in_body())
        .build()
        .unwrap();
    let names: Vec<&str> = auth.transports().iter().map(|t| t.name()).collect();
    assert_eq!(names, ["bearer", "session", "apikey"]);
    assert!(auth.bearer_tokens().is_some());

    let auth = base()
        .session_transport(SessionTransport::default())
        .bearer_transport(BearerTransport::default())
        .build()
        .unwrap();
    let names: Vec<&str> = auth.transports().iter().map(|t| t.name()).collect();
    assert_eq!(names, ["session", "bearer"]);

    assert!(matches!(base().build(), Err(ConfigError::NoTransport)));
}

#[test]
fn bearer_configuration_is_validated_at_build() {
    let build = |bearer: BearerTransport| {
        CrudAuth::builder()
            .secret_key(TEST_SECRET)
            .users(MemoryUsers::new())
            .bearer_transport(bearer)
            .build()
    };
    let err = build(
        BearerTransport::default()
            .default_scopes(["admin"])
            .grantable_scopes(["reports:read"]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("subset"), "{err}");
    assert!(build(BearerTransport::default().refresh_cookie_path("refresh")).is_err());
    assert!(build(BearerTransport::default().leeway(Duration::from_secs(61))).is_err());
    assert!(build(BearerTransport::default().reuse_grace(Duration::from_secs(60))).is_err());
    assert!(build(BearerTransport::default().access_ttl(Duration::ZERO)).is_err());
    assert!(build(
        BearerTransport::default()
            .grantable_scopes(["a", "b"])
            .default_scopes(["a"])
    )
    .is_ok());
}

macro_rules! all_cases {
    ($backend:expr) => {
        crudauth_tests::per_backend!($backend; token_contract, refresh_contract, body_mode, refresh_cookie_path,
            rotation_and_reuse_revokes_the_family, reuse_grace, concurrent_refresh_has_one_winner,
            password_change_and_logout_all_kill_tokens, remembered_principals_follow_the_user_row,
            logout_revokes_the_refresh_family,
            jwt_attack_corpus, scopes_are_clamped_and_gated, transport_precedence_matrix,
            custom_transport);
    };
}

mod memory {
    all_cases!(crudauth_tests::app::Backend::Memory);
}

mod redis {
    all_cases!(crudauth_tests::app::Backend::Redis);
}
