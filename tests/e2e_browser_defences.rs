//! End to end over HTTP: the browser-facing defences in depth — `Cache-Control: no-store` on
//! every answer that carries a credential, CSRF backed by Fetch Metadata and `Origin`, cookie
//! tossing (duplicate session cookies, the `__Host-` prefix), and the session id's entropy —
//! on memory and on Redis.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;

use crudauth_axum::{BearerTransport, CookieConfig, CrudAuth, SessionTransport};
use crudauth_core::limit::LockoutConfig;
use crudauth_core::secret::{purpose, sha256_hex, SecretKey};
use crudauth_core::user::MemoryUsers;

use crudauth_tests::app::{
    derived_key, mutation_routes, spawn, Backend, Options, TestApp, Transports, TEST_SECRET,
};
use crudauth_tests::http::{Answer, Body, Browser};

const PW: &str = "correct horse battery";

fn assert_no_store(r: &Answer, what: &str) {
    assert_eq!(
        (r.header("cache-control"), r.header("pragma")),
        (Some("no-store"), Some("no-cache")),
        "{what}: {} {:?}",
        r.status,
        r.json
    );
}

/// RFC 6749 §5.1: no cache keeps an answer that carries a session, a CSRF token, an access or
/// a refresh token — nor the one that clears them.
async fn credential_answers_are_not_stored(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = Browser::new();
    let r = b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert_eq!(r.status, 200);
    assert_no_store(&r, "/login");
    let r = Browser::new()
        .sign_in(&app.url("/login"), "ada", "wrong password", &[])
        .await;
    assert_eq!(r.status, 401);
    assert_no_store(&r, "/login refused");
    let r = b.post(&app.url("/csrf/refresh")).await;
    assert_eq!(r.status, 200);
    assert_no_store(&r, "/csrf/refresh");
    let mut t = Browser::new();
    let r = t.sign_in(&app.url("/token"), "ada", PW, &[]).await;
    assert_eq!(r.status, 200);
    assert_no_store(&r, "/token");
    let r = t.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 200);
    assert_no_store(&r, "/refresh");
    let r = b.post_csrf(&app.url("/logout"), Body::None).await;
    assert_eq!(r.status, 200);
    assert_no_store(&r, "/logout");
    // Routes that carry no credential are left to the app's caching.
    let r = Browser::new().get(&app.url("/hello")).await;
    assert_eq!(r.header("cache-control"), None);

    // The bearer-only app's own /logout, too.
    let mut o = Options::new(backend);
    o.transports = Transports::BearerOnly;
    let app = spawn(o).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut t = Browser::new();
    t.sign_in(&app.url("/token"), "ada", PW, &[]).await;
    let r = t.post(&app.url("/logout")).await;
    assert_eq!(r.status, 200);
    assert_no_store(&r, "bearer /logout");
}

/// C4: with a valid CSRF token, `Sec-Fetch-Site: cross-site` or a foreign `Origin` is still
/// refused (403, `Vary: Sec-Fetch-Site, Origin`, nothing done); same-origin, same-site, `none`
/// and no headers at all pass with the token; without the token nothing passes.
async fn fetch_metadata_and_origin_back_the_token(backend: Backend) {
    let done = Arc::new(AtomicUsize::new(0));
    let mut o = Options::new(backend);
    o.routes = Some(mutation_routes(done.clone()));
    let app = spawn(o).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut ada = app.signed_in("ada", PW).await;
    let token = ada.csrf();
    let url = app.url("/mutate");
    // Cookies are Secure, so the browser reached us over https: that is our own origin.
    let own = app.base.replace("http://", "https://");
    let refused_cross = (403, "Cross-site requests are not allowed.");
    let refused_origin = (403, "Request origin not allowed.");
    let missing = (403, "Missing CSRF token");
    let passes = (200, "");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, bool, (u16, &'a str));
    let cases: Vec<Case> = vec![
        (
            "cross-site",
            vec![("sec-fetch-site", "cross-site")],
            true,
            refused_cross,
        ),
        (
            "cross-site, any case",
            vec![("sec-fetch-site", "Cross-Site")],
            true,
            refused_cross,
        ),
        (
            "cross-site with our Origin",
            vec![("sec-fetch-site", "cross-site"), ("origin", &own)],
            true,
            refused_cross,
        ),
        (
            "foreign Origin",
            vec![("origin", "https://evil.example")],
            true,
            refused_origin,
        ),
        (
            "foreign Origin, same-origin claimed",
            vec![
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "same-origin"),
            ],
            true,
            refused_origin,
        ),
        (
            "Origin null",
            vec![("origin", "null")],
            true,
            refused_origin,
        ),
        (
            "our host over http",
            vec![("origin", &app.base)],
            true,
            refused_origin,
        ),
        (
            "Origin with a path",
            vec![("origin", "https://evil.example/x")],
            true,
            refused_origin,
        ),
        ("same-origin Origin", vec![("origin", &own)], true, passes),
        (
            "same-origin, both headers",
            vec![("origin", &own), ("sec-fetch-site", "same-origin")],
            true,
            passes,
        ),
        (
            "same-site",
            vec![("sec-fetch-site", "same-site")],
            true,
            passes,
        ),
        (
            "none (typed by the user)",
            vec![("sec-fetch-site", "none")],
            true,
            passes,
        ),
        ("no headers: the token decides", vec![], true, passes),
        ("no headers, no token", vec![], false, missing),
        (
            "same-origin, no token",
            vec![("origin", &own)],
            false,
            missing,
        ),
        (
            "cross-site, no token",
            vec![("sec-fetch-site", "cross-site")],
            false,
            missing,
        ),
    ];
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        for (name, headers, with_token, (status, detail)) in &cases {
            let before = done.load(Ordering::SeqCst);
            let mut extra = headers.clone();
            if *with_token {
                extra.push(("x-csrf-token", &token));
            }
            let r = ada.send(method, &url, Body::None, &extra).await;
            assert_eq!(r.status, *status, "{method} {name}: {:?}", r.json);
            let after = done.load(Ordering::SeqCst);
            if *status == 200 {
                assert_eq!(after, before + 1, "{method} {name}: it ran");
            } else {
                assert_eq!(r.detail(), *detail, "{method} {name}");
                assert_eq!(after, before, "{method} {name}: refused, nothing ran");
                assert_eq!(r.header("x-csrf-error"), Some("true"), "{method} {name}");
                assert_eq!(
                    r.header("vary"),
                    Some("Sec-Fetch-Site, Origin"),
                    "{method} {name}"
                );
            }
        }
    }
    // A built-in route: a cross-site logout with the token does not end the session.
    let r = ada
        .send(
            "POST",
            &app.url("/logout"),
            Body::None,
            &[("x-csrf-token", &token), ("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!((r.status, r.detail()), refused_cross);
    assert_eq!(
        ada.get(&app.url("/me")).await.status,
        200,
        "still signed in"
    );
    // Safe methods are not refused for their headers.
    let r = ada
        .get_with(
            &app.url("/me"),
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
}

/// Allowed origins: a front end on another origin, listed, passes; others stay refused.
async fn configured_origins_are_allowed(backend: Backend) {
    let done = Arc::new(AtomicUsize::new(0));
    let mut o = Options::new(backend);
    o.routes = Some(mutation_routes(done.clone()));
    o.customize = Box::new(|b| {
        b.session_transport(
            SessionTransport::default().allowed_origins(["https://App.Example:443/"]),
        )
    });
    let app = spawn(o).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut ada = app.signed_in("ada", PW).await;
    let token = ada.csrf();
    for (origin, status) in [
        ("https://app.example", 200),
        ("https://other.example", 403),
        ("http://app.example", 403),
    ] {
        let r = ada
            .send(
                "PATCH",
                &app.url("/mutate"),
                Body::None,
                &[("x-csrf-token", &token), ("origin", origin)],
            )
            .await;
        assert_eq!(r.status, status, "{origin}");
    }
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[test]
fn malformed_allowed_origins_are_refused_at_build() {
    for bad in ["app.example", "https://app.example/path", "null", "ftp://x"] {
        let built = CrudAuth::builder()
            .secret_key([1u8; 32])
            .users(MemoryUsers::new())
            .session_transport(SessionTransport::default().allowed_origins([bad]))
            .build();
        let err = built.err().unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(err.to_string().contains("allowed origin"), "{bad}: {err}");
    }
}

/// Cookie tossing: two `session_id` cookies with different values are one invalid
/// credential (401), in either order, even when both name live sessions; neither is used.
async fn duplicate_session_cookies_are_ambiguous(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    app.user("eve@example.com", "eve", PW).await;
    let ada = app.signed_in("ada", PW).await;
    let eve = app.signed_in("eve", PW).await;
    let (a, e) = (&ada.cookies["session_id"], &eve.cookies["session_id"]);
    let junk = "x".repeat(43);
    for (name, cookie) in [
        ("victim's first", format!("session_id={a}; session_id={e}")),
        ("planted first", format!("session_id={e}; session_id={a}")),
        (
            "planted is junk",
            format!("session_id={junk}; session_id={a}"),
        ),
        (
            "victim's, then junk",
            format!("session_id={a}; session_id={junk}"),
        ),
    ] {
        let mut b = Browser::new();
        let r = b.get_with(&app.url("/me"), &[("cookie", &cookie)]).await;
        assert_eq!((r.status, r.detail()), (401, "Invalid token"), "{name}");
        let r = b.get_with(&app.url("/feed"), &[("cookie", &cookie)]).await;
        assert_eq!(
            r.status, 401,
            "{name}: optional sign-in is not anonymous either"
        );
    }
    // Across two Cookie headers, too.
    let r = Browser::new()
        .get_with(
            &app.url("/me"),
            &[
                ("cookie", &format!("session_id={e}")),
                ("cookie", &format!("session_id={a}")),
            ],
        )
        .await;
    assert_eq!(r.status, 401);
    // An ambiguous logout ends neither session.
    let both = format!("session_id={e}; session_id={a}");
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/logout"),
            Body::None,
            &[("cookie", &both), ("x-csrf-token", &ada.csrf())],
        )
        .await;
    assert_eq!(r.status, 401);
    // The same value twice is one cookie, and both sessions are alive and well.
    let twice = format!("session_id={a}; session_id={a}");
    let r = Browser::new()
        .get_with(&app.url("/me"), &[("cookie", &twice)])
        .await;
    assert_eq!((r.status, &r.json["username"]), (200, &json!("ada")));
    let r = Browser::new()
        .get_with(&app.url("/me"), &[("cookie", &format!("session_id={e}"))])
        .await;
    assert_eq!((r.status, &r.json["username"]), (200, &json!("eve")));
}

/// `__Host-` names on every cookie, with the attributes browsers require of them; the
/// unprefixed names no longer count.
async fn host_prefixed_cookies(backend: Backend) {
    let done = Arc::new(AtomicUsize::new(0));
    let mut o = Options::new(backend);
    o.routes = Some(mutation_routes(done.clone()));
    o.customize = Box::new(|b| b.cookies(CookieConfig::default().host_prefix(true)));
    let app = spawn(o).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = Browser::new();
    let r = b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookie("session_id").is_none() && r.set_cookie("csrf_token").is_none());
    for name in ["__Host-session_id", "__Host-csrf_token"] {
        let c = r
            .parsed_cookie(name)
            .unwrap_or_else(|| panic!("no {name}: {:?}", r.headers));
        assert!(c.flag("Secure"), "{}", c.line);
        assert_eq!(c.attr("Path"), Some("/"), "{}", c.line);
        assert_eq!(c.attr("Domain"), None, "{}", c.line);
    }
    assert_eq!(b.get(&app.url("/me")).await.status, 200);
    let token = b.cookies["__Host-csrf_token"].clone();
    assert_eq!(r.json["csrf_token"], json!(token));
    let r = b
        .send(
            "DELETE",
            &app.url("/mutate"),
            Body::None,
            &[("x-csrf-token", &token)],
        )
        .await;
    assert_eq!(r.status, 200);
    // The same session id under the unprefixed name (what a sibling could plant) is nobody.
    let id = b.cookies["__Host-session_id"].clone();
    let r = Browser::new()
        .get_with(&app.url("/me"), &[("cookie", &format!("session_id={id}"))])
        .await;
    assert_eq!(r.status, 401);
    // The refresh cookie too.
    let mut t = Browser::new();
    let r = t.sign_in(&app.url("/token"), "ada", PW, &[]).await;
    let c = r.parsed_cookie("__Host-refresh_token").unwrap();
    assert_eq!(
        (c.flag("Secure"), c.attr("Path"), c.attr("Domain")),
        (true, Some("/"), None)
    );
    assert_eq!(t.post(&app.url("/refresh")).await.status, 200);
    // Logout clears the prefixed names.
    let token = b.cookies["__Host-csrf_token"].clone();
    let r = b
        .send(
            "POST",
            &app.url("/logout"),
            Body::None,
            &[("x-csrf-token", &token)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r
        .set_cookie("__Host-session_id")
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(b.get(&app.url("/me")).await.status, 401);
}

#[test]
fn the_host_prefix_refuses_what_browsers_would_reject() {
    let build = |cookies: CookieConfig, bearer: BearerTransport| {
        CrudAuth::builder()
            .secret_key([1u8; 32])
            .users(MemoryUsers::new())
            .session_transport(SessionTransport::default())
            .bearer_transport(bearer)
            .cookies(cookies)
            .build()
    };
    let prefixed = || CookieConfig::default().host_prefix(true);
    assert!(build(prefixed(), BearerTransport::default()).is_ok());
    for (why, cookies, bearer) in [
        (
            "Secure off",
            prefixed().secure(false),
            BearerTransport::default(),
        ),
        (
            "a path",
            prefixed().path("/app"),
            BearerTransport::default(),
        ),
        (
            "a domain",
            prefixed().domain("example.com"),
            BearerTransport::default(),
        ),
        (
            "a refresh cookie path",
            prefixed(),
            BearerTransport::default().refresh_cookie_path("/auth"),
        ),
    ] {
        let err = build(cookies, bearer)
            .err()
            .unwrap_or_else(|| panic!("{why} accepted"));
        assert!(err.to_string().contains("__Host-"), "{why}: {err}");
    }
    // Without the prefix these stay allowed.
    let plain = CookieConfig::default().secure(false).path("/app");
    assert!(build(
        plain,
        BearerTransport::default().refresh_cookie_path("/auth")
    )
    .is_ok());
}

/// S1: every session id is 32 bytes from the generator, base64url, and 1000 of them from
/// 1000 sign-ins are all distinct.
async fn session_ids_are_256_random_bits(backend: Backend) {
    let mut o = Options::new(backend);
    o.customize = Box::new(|b| {
        b.lockout(LockoutConfig {
            max_attempts: 100_000,
            ..LockoutConfig::default()
        })
    });
    let app = Arc::new(spawn(o).await);
    app.user("ada@example.com", "ada", PW).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let app: Arc<TestApp> = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..125 {
                let r = Browser::new()
                    .sign_in(&app.url("/login"), "ada", PW, &[])
                    .await;
                assert_eq!(r.status, 200, "{:?}", r.json);
                ids.push(r.cookie_value("session_id").unwrap());
            }
            ids
        }));
    }
    let mut all = HashSet::new();
    let mut ones = 0u32;
    for t in tasks {
        for id in t.await.unwrap() {
            let bytes = URL_SAFE_NO_PAD
                .decode(&id)
                .unwrap_or_else(|e| panic!("{id} is not base64url: {e}"));
            assert_eq!(bytes.len(), 32, "{id}");
            ones += bytes.iter().map(|b| b.count_ones()).sum::<u32>();
            assert!(all.insert(bytes), "a repeated session id: {id}");
        }
    }
    assert_eq!(all.len(), 1000);
    // 256 000 random bits are about half ones (a stuck or sequential generator is not):
    // 128 000 ± 1 400 holds with overwhelming probability (more than 5 standard deviations).
    assert!(
        (126_600..=129_400).contains(&ones),
        "{ones} one-bits of 256 000"
    );
}

/// Each purpose keys with its own key derived from SECRET_KEY: the session's store key and
/// handle use the session key, the verification token's store key the one-time-token key, and
/// neither is the HMAC under the raw SECRET_KEY (nor an unkeyed hash).
async fn store_keys_use_per_purpose_keys(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let id = b.cookies["session_id"].clone();
    let listed = b.get(&app.url("/sessions")).await;
    let handle = listed.json[0]["id"].as_str().unwrap().to_owned();
    let raw = SecretKey::new(TEST_SECRET).unwrap();
    let session_key = SecretKey::new(derived_key(purpose::SESSION)).unwrap();
    assert_eq!(handle, session_key.digest("session", &id));
    assert_ne!(handle, raw.digest("session", &id));
    let store = app.auth.store();
    assert!(store.get(&format!("s:{handle}")).await.unwrap().is_some());

    let r = Browser::new()
        .send(
            "POST",
            &app.url("/register"),
            Body::Json(json!({"email": "bob@example.com", "username": "bob", "password": PW})),
            &[],
        )
        .await;
    assert_eq!(r.status, 202);
    let link = app.emails().await.last().unwrap()["link"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = link.split("token=").nth(1).unwrap();
    let one_time = SecretKey::new(derived_key(purpose::ONE_TIME_TOKEN)).unwrap();
    let keyed = one_time.digest_after("t:verify:", "verify", token);
    assert!(store.get(&keyed).await.unwrap().is_some(), "{keyed}");
    for other in [
        raw.digest_after("t:verify:", "verify", token),
        format!("t:verify:{}", sha256_hex(token.as_bytes())),
    ] {
        assert!(store.get(&other).await.unwrap().is_none(), "{other}");
    }
}

macro_rules! all_cases {
    ($backend:expr) => {
        crudauth_tests::per_backend!($backend; credential_answers_are_not_stored,
            fetch_metadata_and_origin_back_the_token, configured_origins_are_allowed,
            duplicate_session_cookies_are_ambiguous, host_prefixed_cookies,
            session_ids_are_256_random_bits, store_keys_use_per_purpose_keys);
    };
}

mod memory {
    all_cases!(crudauth_tests::app::Backend::Memory);
}

mod redis {
    all_cases!(crudauth_tests::app::Backend::Redis);
}
