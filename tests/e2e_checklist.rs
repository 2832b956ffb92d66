//! The security checklist's properties (docs/src/security.md), each demonstrated over HTTP
//! against the real router, on memory and on Redis, where no feature test already does.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::*;
use serde_json::{json, Value};

use crudauth_axum::{BearerTransport, SessionTransport};
use crudauth_core::clock::ManualClock;
use crudauth_core::secret::{sha256_hex, SessionId};
use crudauth_core::user::UserStore;
use crudauth_tests::app::{redis_url, spawn, unique_prefix, Backend, Options, TestApp, Transports};
use crudauth_tests::http::{form, Body, Browser};

const PW: &str = "correct horse battery";

/// The store key of the session a `session_id` cookie names.
fn record_key(app: &TestApp, cookie: &str) -> String {
    let sessions = app.auth.sessions().unwrap();
    format!(
        "s:{}",
        sessions.handle_of(&SessionId::from_client(cookie.to_owned()))
    )
}

async fn record_exists(app: &TestApp, cookie: &str) -> bool {
    app.auth
        .store()
        .get(&record_key(app, cookie))
        .await
        .unwrap()
        .is_some()
}

/// S8: a live session id or access token counts only from its cookie or the `Authorization`
/// header, never from the query string, a form field or another header.
async fn credentials_only_from_their_own_places(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let ada = app.signed_in("ada", PW).await;
    let sid = ada.cookies["session_id"].clone();
    let token = Browser::new()
        .sign_in(&app.url("/token"), "ada", PW, &[])
        .await
        .json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut anon = Browser::new();
    for query in [
        format!("session_id={sid}"),
        format!("session={sid}"),
        format!("access_token={token}"),
        format!("token={token}"),
    ] {
        let r = anon.get(&app.url(&format!("/feed?{query}"))).await;
        assert_eq!(r.json, json!({"auth": false}), "?{query}");
        let r = anon.get(&app.url(&format!("/dashboard?{query}"))).await;
        assert_eq!(r.status, 401, "?{query}");
    }
    for (name, value) in [
        ("x-session", sid.as_str()),
        ("x-session-id", sid.as_str()),
        ("session_id", sid.as_str()),
        ("x-access-token", token.as_str()),
        ("authorization", sid.as_str()),
        ("authorization", token.as_str()),
    ] {
        let r = anon
            .get_with(&app.url("/dashboard"), &[(name, value)])
            .await;
        assert_eq!(r.status, 401, "{name}");
    }
    let r = anon
        .send(
            "POST",
            &app.url("/account/settings"),
            form(&[("session_id", &sid), ("access_token", &token)]),
            &[],
        )
        .await;
    assert_eq!(r.status, 401, "form fields carry no credential");
    // The controls: the same values in their own places do sign in.
    let mut cookie = Browser::new();
    cookie.cookies.insert("session_id".into(), sid);
    assert_eq!(cookie.get(&app.url("/dashboard")).await.status, 200);
    let auth = format!("Bearer {token}");
    let r = anon
        .get_with(&app.url("/dashboard"), &[("authorization", &auth)])
        .await;
    assert_eq!(r.status, 200);
}

/// S3: an id the server never issued is never accepted nor adopted, and leaves nothing in
/// the store.
async fn unissued_ids_are_never_adopted(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let planted = SessionId::generate().expose().to_owned();
    let mut b = Browser::new();
    b.cookies.insert("session_id".into(), planted.clone());
    for path in ["/me", "/dashboard", "/sessions"] {
        let r = b.get(&app.url(path)).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.cookie_value("session_id"), None, "{path} sets no cookie");
    }
    assert_eq!(b.get(&app.url("/feed")).await.json, json!({"auth": false}));
    assert!(!record_exists(&app, &planted).await);
    let r = b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert_eq!(r.status, 200);
    let issued = r.cookie_value("session_id").unwrap();
    assert_ne!(issued, planted);
    assert!(record_exists(&app, &issued).await);
    assert!(
        !record_exists(&app, &planted).await,
        "signing in adopts nothing"
    );
}

/// S4, S5: a sign-in gives a new id and deletes the presented session's record; logout
/// deletes the record, clears the cookies and the old cookie is dead.
async fn login_replaces_and_logout_deletes_the_record(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let ada = app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let first = b.cookies["session_id"].clone();
    assert!(record_exists(&app, &first).await);
    b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    let second = b.cookies["session_id"].clone();
    assert_ne!(first, second);
    assert!(!record_exists(&app, &first).await, "the old record is gone");
    assert!(record_exists(&app, &second).await);
    let listed = app.auth.sessions().unwrap().list(&ada.id).await.unwrap();
    assert_eq!(listed.len(), 1, "the index lists only the live session");

    let r = b.post_csrf(&app.url("/logout"), Body::None).await;
    assert_eq!(r.status, 200);
    for name in ["session_id", "csrf_token"] {
        let c = r.parsed_cookie(name).unwrap();
        assert_eq!(c.attr("Max-Age"), Some("0"), "{name}");
    }
    assert!(!record_exists(&app, &second).await, "logout deletes it");
    let mut replay = Browser::new();
    replay.cookies.insert("session_id".into(), second);
    assert_eq!(replay.get(&app.url("/me")).await.status, 401);
    assert!(app
        .auth
        .sessions()
        .unwrap()
        .list(&ada.id)
        .await
        .unwrap()
        .is_empty());
}

/// S13: a record that does not decode is no session (401, not 500) and is deleted.
async fn a_corrupt_record_is_no_session_and_is_deleted(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    for garbage in [
        &b"not a record"[..],
        b"",
        b"\xff\xfe\x00garbage",
        br#"{"user_id":"1"}"#,
    ] {
        let mut b = app.signed_in("ada", PW).await;
        let sid = b.cookies["session_id"].clone();
        let key = record_key(&app, &sid);
        app.auth
            .store()
            .set(
                &key,
                Bytes::copy_from_slice(garbage),
                Duration::from_secs(600),
            )
            .await
            .unwrap();
        let r = b.get(&app.url("/me")).await;
        assert_eq!(r.status, 401, "{garbage:?}");
        assert_eq!(r.detail(), "Not authenticated");
        assert!(
            app.auth.store().get(&key).await.unwrap().is_none(),
            "{garbage:?}: the corrupt record is deleted"
        );
        let r = b.post_csrf(&app.url("/account/settings"), Body::None).await;
        assert!(r.status == 401 || r.status == 403, "{garbage:?}: {r:?}");
    }
}

/// C2: the CSRF token is bound to its session: a new sign-in in the same browser kills the
/// token of the session it replaced.
async fn a_csrf_token_dies_with_its_session(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let old = b.csrf();
    let r = b.post_csrf(&app.url("/account/settings"), Body::None).await;
    assert_eq!(r.status, 200, "the token works while its session lives");
    b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert_ne!(b.csrf(), old);
    let url = app.url("/account/settings");
    let r = b
        .send("POST", &url, Body::None, &[("x-csrf-token", &old)])
        .await;
    assert_eq!((r.status, r.detail()), (403, "Invalid CSRF token"));
    assert_eq!(b.post_csrf(&url, Body::None).await.status, 200);
}

/// P2 over HTTP: a 100-character password is kept whole, and composed and decomposed forms of
/// one password are the same password.
async fn long_and_unicode_passwords(backend: Backend) {
    let mut options = Options::new(backend);
    options.email = false;
    let app = spawn(options).await;
    let long: String = (0..100)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let composed = "caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e";
    let decomposed = "cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e";
    for (name, password) in [("long", long.as_str()), ("uni", composed)] {
        let r = Browser::new()
            .send(
                "POST",
                &app.url("/register"),
                Body::Json(json!({"email": format!("{name}@example.com"), "username": name, "password": password})),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let mut changed = long.clone();
    changed.pop();
    changed.push('!');
    let sign_in = |user: &'static str, pw: String| {
        let url = app.url("/login");
        async move { Browser::new().sign_in(&url, user, &pw, &[]).await.status }
    };
    assert_eq!(sign_in("long", changed).await, 401, "no truncation");
    assert_eq!(sign_in("long", long[..72].to_owned()).await, 401);
    assert_eq!(sign_in("long", long.clone()).await, 200);
    assert_eq!(sign_in("uni", decomposed.to_owned()).await, 200);
    assert_eq!(sign_in("uni", composed.to_owned()).await, 200);
}

/// L1: an unknown account, a wrong password and a disabled account get the same status, body
/// and set of headers.
async fn failed_sign_ins_look_alike(backend: Backend) {
    // One app per route: three failures each stay under the per-address lockout.
    for path in ["/login", "/token"] {
        let app = spawn(Options::new(backend)).await;
        app.user("ada@example.com", "ada", PW).await;
        let eve = app.user("eve@example.com", "eve", PW).await;
        let off = crudauth_core::user::UserUpdate {
            is_active: Some(false),
            ..Default::default()
        };
        app.auth.users().update(&eve.id, off).await.unwrap();
        let mut answers = Vec::new();
        for (who, pw) in [("nobody", PW), ("ada", "wrong password!"), ("eve", PW)] {
            let r = Browser::new().sign_in(&app.url(path), who, pw, &[]).await;
            let mut names: Vec<String> = r
                .headers
                .keys()
                .map(|k| k.as_str().to_owned())
                .filter(|k| k != "date")
                .collect();
            names.sort();
            let length = r.header("content-length").map(str::to_owned);
            answers.push((r.status, r.json.clone(), names, length));
        }
        assert_eq!(answers[0].0, 401, "{path}");
        assert_eq!(answers[0], answers[1], "{path}: unknown vs wrong password");
        assert_eq!(answers[0], answers[2], "{path}: unknown vs disabled");
    }
}

/// L7: `/token` is counted by the same lockout as `/login`: failures on either lock both, and
/// every 429 carries `Retry-After`.
async fn token_and_login_share_the_lockout(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    for i in 0..5 {
        let path = if i % 2 == 0 { "/token" } else { "/login" };
        let r = Browser::new()
            .sign_in(&app.url(path), "ada", "wrong password!", &[])
            .await;
        assert_eq!(r.status, 401, "attempt {i} at {path}");
    }
    for path in ["/token", "/login"] {
        let r = Browser::new().sign_in(&app.url(path), "ada", PW, &[]).await;
        assert_eq!(
            (r.status, r.detail()),
            (429, "Too many login attempts. Try again later."),
            "{path}"
        );
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{path}: {retry}");
    }
}

/// S2: every cookie crudauth sets (session, CSRF, refresh; remember-me too) has no `Domain`,
/// `Path=/`, SameSite, fits in 4096 bytes and lives at most 400 days.
async fn every_cookie_keeps_the_policy(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut lines = Vec::new();
    let mut b = Browser::new();
    let r = b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    lines.extend(r.headers.get_all("set-cookie").iter().cloned());
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/login"),
            form(&[
                ("username", "ada"),
                ("password", PW),
                ("remember_me", "true"),
            ]),
            &[],
        )
        .await;
    lines.extend(r.headers.get_all("set-cookie").iter().cloned());
    let mut t = Browser::new();
    let r = t.sign_in(&app.url("/token"), "ada", PW, &[]).await;
    lines.extend(r.headers.get_all("set-cookie").iter().cloned());
    let r = t.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 200);
    lines.extend(r.headers.get_all("set-cookie").iter().cloned());
    let r = b.post_csrf(&app.url("/logout"), Body::None).await;
    lines.extend(r.headers.get_all("set-cookie").iter().cloned());
    assert!(lines.len() >= 8, "{lines:?}");
    for line in &lines {
        let line = line.to_str().unwrap();
        let c = crudauth_tests::http::SetCookie::parse(line);
        assert_eq!(c.attr("Domain"), None, "{line}");
        assert!(c.attr("SameSite").is_some(), "{line}");
        assert!(c.flag("Secure"), "{line}");
        assert!(
            c.name.len() + c.value.len() <= 4096,
            "{line}: name and value fit in 4096 bytes"
        );
        if let Some(age) = c.attr("Max-Age") {
            let age: u64 = age.parse().unwrap();
            assert!(age <= 400 * 86_400, "{line}");
        }
        if c.name != "refresh_token" {
            assert_eq!(c.attr("Path"), Some("/"), "{line}");
        }
    }
}

/// S11: three devices; the list shows each with only its public fields (no cookie value,
/// nonce or version); revoking the second from the first ends it at its next request and
/// takes it out of the store's per-user index.
async fn a_revoked_device_is_gone_everywhere(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let ada = app.user("ada@example.com", "ada", PW).await;
    let mut one = app.signed_in("ada", PW).await;
    let mut two = app.signed_in("ada", PW).await;
    let mut three = app.signed_in("ada", PW).await;
    let cookies: Vec<String> = [&one, &two, &three]
        .iter()
        .map(|b| b.cookies["session_id"].clone())
        .collect();
    let list = one.get(&app.url("/sessions")).await.json;
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 3);
    let text = list.to_string();
    for item in items {
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "created_at",
                "current",
                "device",
                "id",
                "ip",
                "last_activity"
            ]
        );
    }
    for (cookie, b) in cookies.iter().zip([&one, &two, &three]) {
        assert!(!text.contains(cookie.as_str()), "no cookie value is listed");
        assert!(!text.contains(&b.csrf()), "no CSRF token is listed");
    }
    let sessions = app.auth.sessions().unwrap();
    let handle_two = sessions.handle_of(&SessionId::from_client(cookies[1].clone()));
    let index = format!("u:{}", ada.id);
    let indexed = |app: &TestApp| {
        let index = index.clone();
        let store = app.auth.store().clone();
        async move {
            store
                .index_members(&index)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.member)
                .collect::<Vec<_>>()
        }
    };
    assert!(indexed(&app).await.contains(&handle_two));
    let r = one
        .delete_csrf(&app.url(&format!("/sessions/{handle_two}")))
        .await;
    assert_eq!((r.status, r.detail()), (200, "Session revoked."));
    assert_eq!(two.get(&app.url("/me")).await.status, 401);
    assert!(!indexed(&app).await.contains(&handle_two), "unindexed");
    assert!(!record_exists(&app, &cookies[1]).await);
    assert_eq!(one.get(&app.url("/me")).await.status, 200);
    assert_eq!(three.get(&app.url("/me")).await.status, 200);
    assert_eq!(
        one.get(&app.url("/sessions"))
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

macro_rules! all_cases {
    ($backend:expr) => {
        crudauth_tests::per_backend!($backend; credentials_only_from_their_own_places,
            unissued_ids_are_never_adopted, login_replaces_and_logout_deletes_the_record,
            a_corrupt_record_is_no_session_and_is_deleted, a_csrf_token_dies_with_its_session,
            long_and_unicode_passwords, failed_sign_ins_look_alike,
            token_and_login_share_the_lockout, every_cookie_keeps_the_policy,
            a_revoked_device_is_gone_everywhere, every_credential_route_has_a_budget);
    };
}

mod memory {
    all_cases!(crudauth_tests::app::Backend::Memory);
}

mod redis {
    all_cases!(crudauth_tests::app::Backend::Redis);
}

/// Every key under `prefix` on the test Redis with its value, read with the command its type
/// needs (strings, sorted sets, hashes), and its type.
async fn redis_snapshot(prefix: &str) -> BTreeMap<String, String> {
    let client = Client::new(Config::from_url(&redis_url()).unwrap(), None, None, None);
    client.init().await.unwrap();
    let keys: Vec<String> = {
        let mut keys = Vec::new();
        let mut cursor = "0".to_owned();
        loop {
            let (next, batch): (String, Vec<String>) = client
                .custom(
                    fred::cmd!("SCAN"),
                    vec![
                        cursor.clone(),
                        "MATCH".into(),
                        format!("{prefix}*"),
                        "COUNT".into(),
                        "1000".into(),
                    ],
                )
                .await
                .unwrap();
            keys.extend(batch);
            if next == "0" {
                break;
            }
            cursor = next;
        }
        keys
    };
    let mut out = BTreeMap::new();
    for key in keys {
        let kind: String = client
            .custom(fred::cmd!("TYPE"), vec![key.clone()])
            .await
            .unwrap();
        let value: Value = match kind.as_str() {
            "string" => {
                let v: Option<Vec<u8>> = client.get(&key).await.unwrap();
                json!(v.map(|v| String::from_utf8_lossy(&v).into_owned()))
            }
            "zset" => {
                let v: Vec<(String, f64)> = client
                    .zrange(&key, 0, -1, None, false, None, true)
                    .await
                    .unwrap();
                json!(v)
            }
            "hash" => {
                let v: std::collections::HashMap<String, String> = client
                    .custom(fred::cmd!("HGETALL"), vec![key.clone()])
                    .await
                    .unwrap();
                json!(v.into_iter().collect::<BTreeMap<_, _>>())
            }
            other => json!(other),
        };
        out.insert(key, format!("{kind}: {value}"));
    }
    client.quit().await.unwrap();
    out
}

/// C5: no state changes through GET, HEAD or OPTIONS on any route, logout included, for a
/// signed-in browser that sends its CSRF token and a bearer token too: the whole store reads
/// the same before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_methods_change_nothing_in_the_store() {
    let prefix = unique_prefix("safe-methods");
    let mut options = Options::new(Backend::Redis);
    let p = prefix.clone();
    options.customize = Box::new(move |b| b.redis_prefix(p));
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let token = b.sign_in(&app.url("/token"), "ada", PW, &[]).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let handle = b.get(&app.url("/sessions")).await.json[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = redis_snapshot(&prefix).await;
    assert!(
        before.keys().any(|k| k.contains(":s:")) && before.len() >= 3,
        "the snapshot sees the session: {before:?}"
    );
    let routes = [
        "/register",
        "/login",
        "/logout",
        "/me",
        "/change-password",
        "/set-password",
        "/csrf/refresh",
        "/sessions",
        &format!("/sessions/{handle}"),
        "/logout-all",
        "/logout-all?keep_current=false",
        "/token",
        "/refresh",
        "/hello",
        "/dashboard",
        "/feed",
        "/admin",
        "/secret",
        "/account/settings",
        "/v1/items",
        "/contact",
    ];
    let csrf = b.csrf();
    let bearer = format!("Bearer {token}");
    for method in ["GET", "HEAD", "OPTIONS"] {
        for route in routes {
            for extra in [
                vec![("x-csrf-token", csrf.as_str())],
                vec![("authorization", bearer.as_str())],
            ] {
                let r = b.send(method, &app.url(route), Body::None, &extra).await;
                assert!(r.status < 500, "{method} {route}: {r:?}");
            }
        }
    }
    assert_eq!(
        b.get(&app.url("/dashboard")).await.status,
        200,
        "still signed in"
    );
    let after = redis_snapshot(&prefix).await;
    assert_eq!(before, after);
}

/// T1: a verification token is 256 random bits and the store holds only its keyed hash
/// (HMAC under the one-time-token key derived from SECRET_KEY): the token itself is in no key
/// and no value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_tokens_are_stored_only_as_their_hash() {
    let prefix = unique_prefix("t1");
    let mut options = Options::new(Backend::Redis);
    let p = prefix.clone();
    options.customize = Box::new(move |b| b.redis_prefix(p));
    let app = spawn(options).await;
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/register"),
            Body::Json(json!({"email": "ada@example.com", "username": "ada", "password": PW})),
            &[],
        )
        .await;
    assert_eq!(r.status, 202);
    let emails = app.emails().await;
    let link = emails[0]["link"].as_str().unwrap();
    let token = link.split("token=").nth(1).unwrap();
    let raw = base64_decode(token);
    assert_eq!(raw.len(), 32, "256 bits");
    let hashed = crudauth_core::secret::SecretKey::new(crudauth_tests::app::TEST_SECRET)
        .unwrap()
        .derive(crudauth_core::secret::purpose::ONE_TIME_TOKEN)
        .digest_after("t:verify:", "verify", token);
    let unkeyed = sha256_hex(token.as_bytes());
    assert!(app.auth.store().get(&hashed).await.unwrap().is_some());
    let snapshot = redis_snapshot(&prefix).await;
    assert!(
        snapshot.keys().any(|k| k.ends_with(&hashed)),
        "{snapshot:?}"
    );
    for (key, value) in &snapshot {
        assert!(!key.contains(token), "{key}");
        assert!(!key.contains(&unkeyed), "{key}: keyed, not a bare SHA-256");
        assert!(!value.contains(token), "{key}: {value}");
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

/// An app on memory stores whose every timestamp reads `clock`.
async fn app_on_clock(clock: Arc<ManualClock>, sessions: SessionTransport) -> TestApp {
    let mut options = Options::new(Backend::Memory);
    options.transports = Transports::SessionOnly;
    options.customize = Box::new(move |b| b.clock(clock).session_transport(sessions));
    spawn(options).await
}

/// S6, S7 and F3 over HTTP, with the injected clock standing at `start`: the idle timeout is
/// the server's (a cookie resent after idle + 1 s is dead), activity slides it, the absolute
/// timeout ends even a busy session, and signing in again starts both timers afresh.
async fn timeouts_hold_from(start_millis: u64) {
    let clock = Arc::new(ManualClock::new(start_millis));
    let sessions = SessionTransport::default()
        .idle_timeout(Duration::from_secs(600))
        .absolute_timeout(Duration::from_secs(3600));
    let app = app_on_clock(clock.clone(), sessions).await;
    app.user("ada@example.com", "ada", PW).await;
    let me = app.url("/me");

    // Idle: alive at idle − 1 s, dead at idle + 1 s, whatever the cookie says.
    let mut idle = app.signed_in("ada", PW).await;
    clock.advance(Duration::from_secs(599));
    assert_eq!(idle.get(&me).await.status, 200, "within the idle window");
    clock.advance(Duration::from_secs(601));
    assert_eq!(
        idle.get(&me).await.status,
        401,
        "idle + 1 s after the last use"
    );

    // Absolute: a request every 5 minutes keeps it alive until the hour is up, not after.
    let mut busy = app.signed_in("ada", PW).await;
    for step in 1..=11 {
        clock.advance(Duration::from_secs(300));
        assert_eq!(busy.get(&me).await.status, 200, "{} min", step * 5);
    }
    clock.advance(Duration::from_secs(301));
    assert_eq!(busy.get(&me).await.status, 401, "absolute + 1 s");

    // Signing in again starts a fresh session with both timers reset.
    let r = busy.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert_eq!(r.status, 200);
    clock.advance(Duration::from_secs(599));
    assert_eq!(busy.get(&me).await.status, 200, "a new idle window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_absolute_timeouts_are_the_servers() {
    timeouts_hold_from(1_700_000_000_000).await;
}

/// F3: the same timeouts past 2038 (32-bit seconds overflow) and in the year 2500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_hold_past_2038_and_in_2500() {
    timeouts_hold_from((1u64 << 31) * 1000 + 12_345).await;
    timeouts_hold_from(16_725_225_600_000).await;
}

/// F3: the login lockout counts on the injected clock past 2038 too: five failures lock,
/// and the lock ends when its `Retry-After` has passed on that clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lockout_counts_on_the_clock_past_2038() {
    let clock = Arc::new(ManualClock::new((1u64 << 31) * 1000 + 999));
    let app = app_on_clock(clock.clone(), SessionTransport::default()).await;
    app.user("ada@example.com", "ada", PW).await;
    let login = app.url("/login");
    for _ in 0..5 {
        let r = Browser::new()
            .sign_in(&login, "ada", "wrong password!", &[])
            .await;
        assert_eq!(r.status, 401);
    }
    let r = Browser::new().sign_in(&login, "ada", PW, &[]).await;
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(retry, 60);
    clock.advance(Duration::from_secs(retry - 1));
    assert_eq!(
        Browser::new().sign_in(&login, "ada", PW, &[]).await.status,
        429
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        Browser::new().sign_in(&login, "ada", PW, &[]).await.status,
        200
    );
}

/// S2, J3: lifetimes longer than the checklist allows are refused at `build()`.
#[test]
fn build_refuses_lifetimes_past_their_bounds() {
    let build = |session: SessionTransport, bearer: BearerTransport| {
        crudauth_axum::CrudAuth::builder()
            .secret_key(crudauth_tests::app::TEST_SECRET)
            .users(crudauth_core::user::MemoryUsers::new())
            .session_transport(session)
            .bearer_transport(bearer)
            .build()
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let day = 86_400;
    assert_eq!(
        build(
            SessionTransport::default().remember_me(Duration::from_secs(400 * day)),
            BearerTransport::default()
                .access_ttl(Duration::from_secs(900))
                .refresh_ttl(Duration::from_secs(400 * day))
        ),
        Ok(())
    );
    let long_remember = build(
        SessionTransport::default().remember_me(Duration::from_secs(400 * day + 1)),
        BearerTransport::default(),
    );
    assert!(long_remember
        .unwrap_err()
        .contains("remember_me must be at most"));
    let long_access = build(
        SessionTransport::default(),
        BearerTransport::default().access_ttl(Duration::from_secs(901)),
    );
    assert!(long_access
        .unwrap_err()
        .contains("access_ttl must be at most 900 s"));
    let long_refresh = build(
        SessionTransport::default(),
        BearerTransport::default().refresh_ttl(Duration::from_secs(400 * day + 1)),
    );
    assert!(long_refresh
        .unwrap_err()
        .contains("refresh_ttl must be at most"));
}

/// P3: with a strength minimum, common passwords and ones built from the account's own name
/// are refused with a reason (a 422 entry, nothing created); a strong one registers, and a
/// password change is held to the same rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessable_passwords_are_refused_when_asked() {
    let mut options = Options::new(Backend::Memory);
    options.email = false;
    options.customize = Box::new(|b| {
        b.password_policy(crudauth_core::password::PasswordPolicy {
            min_strength: Some(2),
            ..Default::default()
        })
    });
    let app = spawn(options).await;
    let register = |email: &str, username: &str, password: &str| {
        let url = app.url("/register");
        let body = json!({"email": email, "username": username, "password": password});
        async move {
            Browser::new()
                .send("POST", &url, Body::Json(body), &[])
                .await
        }
    };
    for (username, password) in [("ada", "password1234"), ("zqxkwvjfyp", "zqxkwvjfyp")] {
        let r = register("ada@example.com", username, password).await;
        assert_eq!(r.status, 422, "{password}");
        assert_eq!(r.json["detail"][0]["type"], "password_too_guessable");
        assert_eq!(r.json["detail"][0]["loc"], json!(["body", "password"]));
        assert!(!r.json.to_string().contains(password), "never echoed");
    }
    assert!(
        Browser::new()
            .sign_in(&app.url("/login"), "ada", "password1234", &[])
            .await
            .status
            == 401,
        "nothing was created"
    );
    let r = register("ada@example.com", "ada", PW).await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut b = app.signed_in("ada", PW).await;
    let r = b
        .post_csrf(
            &app.url("/change-password"),
            Body::Json(json!({"current_password": PW, "new_password": "iloveyou123"})),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json["detail"][0]["type"], "password_too_guessable");
}

/// J3: an access token lives 15 minutes by the server's clock, and a refresh family has an
/// absolute end: refreshing every day never carries it past `refresh_ttl` from the sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_lifetimes_are_absolute() {
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let mut options = Options::new(Backend::Memory);
    options.transports = Transports::BearerOnly;
    let c = clock.clone();
    options.customize = Box::new(move |b| {
        b.clock(c).bearer_transport(
            BearerTransport::default().refresh_ttl(Duration::from_secs(10 * 86_400)),
        )
    });
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = Browser::new();
    let r = b.sign_in(&app.url("/token"), "ada", PW, &[]).await;
    assert_eq!(r.status, 200);
    let access = format!("Bearer {}", r.json["access_token"].as_str().unwrap());
    let dashboard = app.url("/dashboard");
    clock.advance(Duration::from_secs(899));
    assert_eq!(
        b.get_with(&dashboard, &[("authorization", &access)])
            .await
            .status,
        200
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        b.get_with(&dashboard, &[("authorization", &access)])
            .await
            .status,
        401,
        "15 minutes and a second after it was issued"
    );
    for day in 1..10 {
        clock.advance(Duration::from_secs(86_400 - 100));
        let r = b.post(&app.url("/refresh")).await;
        assert_eq!(r.status, 200, "day {day}");
    }
    // Nine refreshes later the family's end is where the sign-in put it.
    clock.advance(Duration::from_secs(86_400));
    let r = b.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 401, "past the family's absolute end: {r:?}");
}

/// J7: rotating `SECRET_KEY` with an overlap. Tokens carry their key's id (`kid`); the new
/// deployment accepts tokens of the previous key until the overlap's end and not a second
/// later (while they are still unexpired), refreshes a previous-key family onto the new key,
/// and refuses a `kid` it does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_key_overlaps_until_its_deadline() {
    use std::time::{SystemTime, UNIX_EPOCH};
    let start = 1_800_000_000_000u64;
    let clock = Arc::new(ManualClock::new(start));
    let store = crudauth_core::store::MemoryStore::new().with_clock(clock.clone());
    let users = crudauth_core::user::MemoryUsers::new();
    let old_key = [42u8; 32];
    let new_key = [43u8; 32];
    let until = UNIX_EPOCH + Duration::from_millis(start) + Duration::from_secs(300);
    let deployment = |key: [u8; 32], previous: Option<SystemTime>| {
        let (clock, store, users) = (clock.clone(), store.clone(), users.clone());
        let mut options = Options::new(Backend::Memory);
        options.transports = Transports::BearerOnly;
        options.customize = Box::new(move |b| {
            let mut bearer = BearerTransport::default();
            if let Some(until) = previous {
                bearer = bearer.previous_secret_key(old_key, until);
            }
            b.secret_key(key)
                .clock(clock)
                .store(store)
                .users(users)
                .bearer_transport(bearer)
        });
        spawn(options)
    };
    let before = deployment(old_key, None).await;
    users
        .create(crudauth_tests::app::new_user("ada@example.com", "ada", PW).await)
        .await
        .unwrap();
    let mut b = Browser::new();
    let r = b.sign_in(&before.url("/token"), "ada", PW, &[]).await;
    assert_eq!(r.status, 200);
    let old_access = r.json["access_token"].as_str().unwrap().to_owned();
    let after = deployment(new_key, Some(until)).await;
    let kid = |token: &str| {
        let header = token.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(&base64_decode(header)).unwrap();
        header["kid"].as_str().unwrap().to_owned()
    };
    let dashboard = |app: &TestApp, token: &str| {
        let url = app.url("/dashboard");
        let auth = format!("Bearer {token}");
        async move {
            Browser::new()
                .get_with(&url, &[("authorization", &auth)])
                .await
                .status
        }
    };
    assert_eq!(
        dashboard(&after, &old_access).await,
        200,
        "within the overlap"
    );

    // A previous-key family refreshes onto the new key.
    let r = b.post(&after.url("/refresh")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let new_access = r.json["access_token"].as_str().unwrap().to_owned();
    assert_ne!(kid(&new_access), kid(&old_access));
    assert_eq!(dashboard(&after, &new_access).await, 200);
    assert_eq!(
        dashboard(&before, &new_access).await,
        401,
        "the old deployment does not know the new key"
    );

    // A kid we never issued, or an old-key token claiming the new kid, is refused.
    let forged_kid = {
        let mut parts: Vec<String> = old_access.split('.').map(str::to_owned).collect();
        let header = json!({"typ": "JWT", "alg": "HS256", "kid": kid(&new_access)}).to_string();
        use base64::Engine as _;
        parts[0] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header);
        parts.join(".")
    };
    assert_eq!(dashboard(&after, &forged_kid).await, 401);

    // One second past the overlap the old key's token is refused by the new deployment,
    // though it has ten minutes left and the old deployment still takes it.
    clock.advance(Duration::from_secs(301));
    assert_eq!(
        dashboard(&after, &old_access).await,
        401,
        "past the overlap"
    );
    assert_eq!(
        dashboard(&before, &old_access).await,
        200,
        "still unexpired"
    );
    assert_eq!(dashboard(&after, &new_access).await, 200);
}

/// L7, route by route: every route that takes or renews a credential has a budget of its own
/// (here set to 1 an hour); the call past it is 429 with `Retry-After` and the rate-limit
/// headers, and runs nothing.
async fn every_credential_route_has_a_budget(backend: Backend) {
    use crudauth_axum::RateLimit;
    let hour = Duration::from_secs(3600);
    let mut options = Options::new(backend);
    options.email = false;
    options.customize = Box::new(move |b| {
        b.rate_limits(
            [
                "register",
                "change_password",
                "set_password",
                "logout_all",
                "csrf_refresh",
                "refresh",
                "revoke_session",
            ]
            .map(|action| (action, RateLimit::new(1, hour))),
        )
    });
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let mut t = Browser::new();
    t.sign_in(&app.url("/token"), "ada", PW, &[]).await;
    let r = t.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 200, "the first refresh");
    let r = t.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.header("retry-after").is_some());
    let change = json!({"current_password": "not it at all", "new_password": "another long one"});
    let register = json!({"email": "x@example.com", "username": "x", "password": "whatever long"});
    let set = json!({"new_password": "a long new one"});
    // (method, path, JSON body, whether it needs the CSRF token)
    let cases = [
        ("POST", "/register", Some(register), false),
        ("POST", "/change-password", Some(change), true),
        ("POST", "/set-password", Some(set), true),
        ("POST", "/csrf/refresh", None, true),
        ("DELETE", "/sessions/0000", None, true),
        ("POST", "/logout-all?keep_current=true", None, true),
    ];
    let body = |v: &Option<Value>| v.clone().map_or(Body::None, Body::Json);
    for (method, path, json, csrf) in &cases {
        let token = b.csrf();
        let extra: Vec<(&str, &str)> = if *csrf {
            vec![("x-csrf-token", &token)]
        } else {
            vec![]
        };
        let first = b.send(method, &app.url(path), body(json), &extra).await;
        assert_ne!(
            first.status, 429,
            "{method} {path}: the first call is within budget"
        );
        let token = b.csrf();
        let extra: Vec<(&str, &str)> = if *csrf {
            vec![("x-csrf-token", &token)]
        } else {
            vec![]
        };
        let second = b.send(method, &app.url(path), body(json), &extra).await;
        assert_eq!(second.status, 429, "{method} {path}: {second:?}");
        assert!(second.header("retry-after").is_some(), "{method} {path}");
        assert_eq!(
            second.header("x-ratelimit-limit"),
            Some("1"),
            "{method} {path}"
        );
        assert_eq!(second.header("x-ratelimit-remaining"), Some("0"));
    }
    assert_eq!(
        b.get(&app.url("/me")).await.status,
        200,
        "the refused logout-all ended nothing"
    );
}
