//! End to end over HTTP against the real router: registration, sign-in, sessions, CSRF,
//! device management, password change — on memory and on Redis.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;

use crudauth_core::limit::LockoutConfig;
use crudauth_core::password::Passwords;
use crudauth_core::user::UserStore;

use crudauth_tests::app::{mutation_routes, spawn, Backend, Options};
use crudauth_tests::http::{form, Body, Browser};

const PW: &str = "correct horse battery";

async fn register_contract(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let mut b = Browser::new();
    let body = json!({"email": "Ada@Example.com", "username": "ada", "password": PW, "is_superuser": true, "email_verified": true});
    let r = b
        .send("POST", &app.url("/register"), Body::Json(body), &[])
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(
        r.detail(),
        "If the email is available, check your inbox to finish signing up."
    );
    assert!(
        r.headers.get("set-cookie").is_none(),
        "registration never signs in"
    );
    let mails = app.emails().await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0]["kind"], "verify_email");
    assert_eq!(mails[0]["to"], "ada@example.com");
    assert!(mails[0]["link"]
        .as_str()
        .unwrap()
        .starts_with("http://localhost:3000/verify-email?token="));

    // A taken email answers exactly like a new one, and its owner is told.
    let again = json!({"email": "ada@example.com", "username": "ada2", "password": PW});
    let r = b
        .send("POST", &app.url("/register"), Body::Json(again), &[])
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (
            202,
            "If the email is available, check your inbox to finish signing up."
        )
    );
    assert_eq!(
        app.emails().await.last().unwrap()["kind"],
        "existing_account"
    );
    // User names are a public namespace.
    let taken = json!({"email": "other@example.com", "username": "ada", "password": PW});
    let r = b
        .send("POST", &app.url("/register"), Body::Json(taken), &[])
        .await;
    assert_eq!((r.status, r.detail()), (422, "Username already taken"));

    // Privileged fields were ignored.
    let mut ada = app.signed_in("ada", PW).await;
    let me = ada.get(&app.url("/me")).await;
    assert_eq!(me.json["is_superuser"], false);
    assert_eq!(
        ada.get(&app.url("/secret")).await.detail(),
        "Recovery factor not verified"
    );
}

async fn register_without_email_delivery(backend: Backend) {
    let mut options = Options::new(backend);
    options.email = false;
    let app = spawn(options).await;
    let mut b = Browser::new();
    let r = b
        .send(
            "POST",
            &app.url("/register"),
            Body::Json(json!({"email": "a@example.com", "username": "a", "password": PW})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["email"], "a@example.com");
    assert_eq!(r.json["username"], "a");
    assert!(r.json["id"].is_number());
    let r = b
        .send(
            "POST",
            &app.url("/register"),
            Body::Json(json!({"email": "A@example.com", "username": "b", "password": PW})),
            &[],
        )
        .await;
    assert_eq!((r.status, r.detail()), (422, "Email already registered"));
}

async fn register_validation(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let mut b = Browser::new();
    let url = app.url("/register");
    let cases = [
        (json!({"username": "x", "password": PW}), "email", "missing"),
        (
            json!({"email": "not-an-email", "username": "x", "password": PW}),
            "email",
            "value_error",
        ),
        (
            json!({"email": "x@example.com", "username": "x", "password": "short"}),
            "password",
            "string_too_short",
        ),
        (
            json!({"email": "x@example.com", "username": 5, "password": PW}),
            "username",
            "string_type",
        ),
        (
            json!({"email": "x@example.com", "username": "x", "password": "p".repeat(1025)}),
            "password",
            "string_too_long",
        ),
    ];
    for (body, field, kind) in cases {
        let r = b.send("POST", &url, Body::Json(body.clone()), &[]).await;
        assert_eq!(r.status, 422, "{body}");
        let entries = r.json["detail"].as_array().unwrap();
        assert!(
            entries
                .iter()
                .any(|e| e["loc"][1] == field && e["type"] == kind),
            "{body}: {entries:?}"
        );
    }
    // crudauth's stages, each answering alone: the fields' shapes, then the password policy,
    // then the user name's length.
    let long_name = "u".repeat(65);
    let staged = [
        (
            json!({"email": "bad", "username": "x", "password": "short"}),
            ("email", "value_error"),
        ),
        (
            json!({"email": "s@example.com", "username": long_name, "password": "short"}),
            ("password", "string_too_short"),
        ),
        (
            json!({"email": "s@example.com", "username": long_name, "password": PW}),
            ("username", "string_too_long"),
        ),
    ];
    for (body, (field, kind)) in staged {
        let r = b.send("POST", &url, Body::Json(body.clone()), &[]).await;
        let entries = r.json["detail"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{body}: {entries:?}");
        assert_eq!(
            (&entries[0]["loc"][1], &entries[0]["type"]),
            (&json!(field), &json!(kind))
        );
    }
    for raw in [&b"{not json"[..], b"[1,2]", b"", b"null"] {
        let r = b
            .send(
                "POST",
                &url,
                Body::Raw(raw.to_vec(), "application/json"),
                &[],
            )
            .await;
        assert_eq!(r.status, 422, "{raw:?}");
    }
    // The email entry is pydantic's, reason included in ctx, the input never echoed.
    let body = json!({"email": "a..b@example.com", "username": "x", "password": PW});
    let r = b.send("POST", &url, Body::Json(body), &[]).await;
    let reason = "An email address cannot have two periods in a row.";
    assert_eq!(
        r.json["detail"],
        json!([{"type": "value_error", "loc": ["body", "email"],
                "msg": format!("value is not a valid email address: {reason}"),
                "ctx": {"reason": reason}}])
    );
    assert!(
        app.emails().await.is_empty(),
        "nothing is created by invalid input"
    );
}

async fn login_contract(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let user = app.user("ada@example.com", "ada", PW).await;
    let mut b = Browser::new();
    let r = b
        .sign_in(&app.url("/login"), " ADA@example.com ", PW, &[])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["id"], json!(user.id));
    assert_eq!(r.json["username"], "ada");
    let csrf = r.json["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(r.cookie_value("csrf_token").unwrap(), csrf);
    // The policy's attributes, each exactly (Path is `/`, not merely a prefix of `/…`), and no
    // Max-Age: a browser-session cookie.
    let session = r.parsed_cookie("session_id").unwrap();
    assert_eq!(
        session.policy(),
        (true, true, Some("Lax"), Some("/")),
        "{}",
        session.line
    );
    assert_eq!(session.attr("Max-Age"), None, "{}", session.line);
    let csrf_cookie = r.set_cookie("csrf_token").unwrap();
    assert!(!csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("Secure"));
    // 256-bit ids: the cookie is base64url of 32 bytes (their randomness and uniqueness over
    // 1000 sign-ins: e2e_browser_defences::session_ids_are_256_random_bits).
    let id = URL_SAFE_NO_PAD
        .decode(r.cookie_value("session_id").unwrap())
        .unwrap();
    assert_eq!(id.len(), 32, "256-bit ids");

    let me = b.get(&app.url("/me")).await;
    assert_eq!(me.status, 200);
    assert_eq!(
        me.json,
        json!({"user_id": user.id, "username": "ada", "email": "ada@example.com", "is_superuser": false, "scopes": [], "via": "session"})
    );
    assert_eq!(b.get(&app.url("/dashboard")).await.json["via"], "session");

    // remember-me: 30 days.
    let mut r2 = Browser::new();
    let r = r2
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
    assert!(r
        .set_cookie("session_id")
        .unwrap()
        .contains("Max-Age=2592000"));
    assert!(r
        .set_cookie("csrf_token")
        .unwrap()
        .contains("Max-Age=2592000"));

    // Failures all look alike.
    // (An empty user name is no attempt at all: 422 `missing`, see e2e_bodies.)
    for (u, p) in [("ada", "wrong password"), ("nobody", PW)] {
        let r = Browser::new().sign_in(&app.url("/login"), u, p, &[]).await;
        assert_eq!(
            (r.status, r.detail()),
            (401, "Incorrect username or password"),
            "{u}"
        );
        assert!(r.headers.get("set-cookie").is_none());
    }
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/login"),
            form(&[("username", "ada")]),
            &[],
        )
        .await;
    assert_eq!(r.status, 422);
    let r = Browser::new()
        .sign_in(
            &app.url("/login"),
            "ada",
            PW,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (403, "Cross-site login requests are not allowed.")
    );
    assert_eq!(
        Browser::new().get(&app.url("/me")).await.detail(),
        "Not authenticated"
    );
}

async fn disabled_accounts_cannot_sign_in(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let user = app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let off = crudauth_core::user::UserUpdate {
        is_active: Some(false),
        ..Default::default()
    };
    app.auth.users().update(&user.id, off).await.unwrap();
    assert_eq!(
        b.get(&app.url("/me")).await.status,
        401,
        "a disabled user's session no longer authenticates"
    );
    let r = Browser::new()
        .sign_in(&app.url("/login"), "ada", PW, &[])
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Incorrect username or password")
    );
}

async fn session_fixation_and_logout(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    // A client-chosen id is never adopted.
    let mut b = Browser::new();
    b.cookies
        .insert("session_id".into(), "attacker-chosen".into());
    let r = b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert_ne!(r.cookie_value("session_id").unwrap(), "attacker-chosen");
    // A second login in the same browser replaces the first session.
    let first = b.cookies["session_id"].clone();
    b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    let second = b.cookies["session_id"].clone();
    assert_ne!(first, second);
    let mut stale = Browser::new();
    stale.cookies.insert("session_id".into(), first);
    assert_eq!(
        stale.get(&app.url("/me")).await.status,
        401,
        "the replaced session is dead"
    );

    // Logout needs CSRF while the session lives, then kills it server-side.
    let mut copy = Browser::new();
    copy.cookies.insert("session_id".into(), second.clone());
    let r = b.post(&app.url("/logout")).await;
    assert_eq!((r.status, r.detail()), (403, "Missing CSRF token"));
    assert_eq!(r.header("x-csrf-error"), Some("true"));
    let r = b
        .send(
            "POST",
            &app.url("/logout"),
            Body::None,
            &[("x-csrf-token", "nope")],
        )
        .await;
    assert_eq!((r.status, r.detail()), (403, "Invalid CSRF token"));
    let r = b.post_csrf(&app.url("/logout"), Body::None).await;
    assert_eq!((r.status, r.detail()), (200, "Logged out"));
    assert!(r.set_cookie("session_id").unwrap().contains("Max-Age=0"));
    assert!(r.set_cookie("csrf_token").unwrap().contains("Max-Age=0"));
    assert_eq!(
        copy.get(&app.url("/me")).await.status,
        401,
        "a copied cookie is dead after logout"
    );
    // Logging out without a live session just clears cookies.
    let r = copy.post(&app.url("/logout")).await;
    assert_eq!(r.status, 200);
}

/// C1: every unsafe method on a cookie-authenticated route needs this session's token;
/// missing, wrong, another session's, or in the query string: 403 and nothing runs.
async fn csrf_matrix(backend: Backend) {
    let done = Arc::new(AtomicUsize::new(0));
    let mut o = Options::new(backend);
    o.routes = Some(mutation_routes(done.clone()));
    let app = spawn(o).await;
    app.user("ada@example.com", "ada", PW).await;
    app.user("bob@example.com", "bob", PW).await;
    let mut ada = app.signed_in("ada", PW).await;
    let bob = app.signed_in("bob", PW).await;
    let url = app.url("/mutate");
    let (own, others) = (ada.csrf(), bob.csrf());
    let query_url = format!("{url}?csrf_token={own}&x-csrf-token={own}");
    // (case, URL, token header, answer)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, (u16, &'a str));
    let cases: [Case; 5] = [
        ("no token", &url, None, (403, "Missing CSRF token")),
        (
            "wrong token",
            &url,
            Some("0123abcd"),
            (403, "Invalid CSRF token"),
        ),
        (
            "another session's token",
            &url,
            Some(&others),
            (403, "Invalid CSRF token"),
        ),
        (
            "token in the query string",
            &query_url,
            None,
            (403, "Missing CSRF token"),
        ),
        ("valid token", &url, Some(&own), (200, "")),
    ];
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        for (name, target, token, (status, detail)) in cases {
            let before = done.load(Ordering::SeqCst);
            let extra: Vec<(&str, &str)> = token.map(|t| ("x-csrf-token", t)).into_iter().collect();
            let r = ada.send(method, target, Body::None, &extra).await;
            assert_eq!(r.status, status, "{method}, {name}: {:?}", r.json);
            if status == 200 {
                assert_eq!(r.json, json!({"ok": true}));
                assert_eq!(done.load(Ordering::SeqCst), before + 1, "{method}, {name}");
            } else {
                assert_eq!(
                    (r.detail(), r.header("x-csrf-error")),
                    (detail, Some("true")),
                    "{method}, {name}"
                );
                assert_eq!(
                    done.load(Ordering::SeqCst),
                    before,
                    "{method}, {name}: no effect"
                );
            }
        }
    }
    assert_eq!(
        done.load(Ordering::SeqCst),
        4,
        "exactly the four valid requests ran"
    );
    // The built-in session route too.
    let r = ada.post(&app.url("/account/settings")).await;
    assert_eq!((r.status, r.detail()), (403, "Missing CSRF token"));
    // Safe methods and public routes need no token, even with a cookie riding along.
    assert_eq!(ada.get(&app.url("/dashboard")).await.status, 200);
    assert_eq!(
        ada.sign_in(&app.url("/login"), "bob", PW, &[]).await.status,
        200
    );
}

async fn csrf_refresh(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let token = b.csrf();
    let r = b.post(&app.url("/csrf/refresh")).await;
    assert_eq!(
        (r.status, r.json["csrf_token"].as_str().unwrap()),
        (200, token.as_str())
    );
    assert!(
        r.set_cookie("csrf_token").is_none(),
        "a healthy token is not rotated"
    );
    // Lost cookie: a new token, set as a cookie; the old one stops working.
    b.cookies.remove("csrf_token");
    let r = b.post(&app.url("/csrf/refresh")).await;
    let fresh = r.json["csrf_token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, token);
    assert_eq!(r.cookie_value("csrf_token").unwrap(), fresh);
    let r = b
        .send(
            "POST",
            &app.url("/account/settings"),
            Body::None,
            &[("x-csrf-token", &token)],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        b.post_csrf(&app.url("/account/settings"), Body::None)
            .await
            .status,
        200
    );
    let r = Browser::new().post(&app.url("/csrf/refresh")).await;
    assert_eq!((r.status, r.detail()), (401, "Not authenticated"));
}

async fn device_management(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    app.user("bob@example.com", "bob", PW).await;
    let mut phone = Browser::new();
    phone.headers.push(("user-agent".into(), "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1".into()));
    phone.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    let mut laptop = app.signed_in("ada", PW).await;
    let mut bob = app.signed_in("bob", PW).await;

    let list = laptop.get(&app.url("/sessions")).await;
    assert_eq!(list.status, 200);
    let items = list.json.as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    for s in &items {
        assert_eq!(s["id"].as_str().unwrap().len(), 64);
        assert_ne!(
            s["id"].as_str().unwrap(),
            laptop.cookies["session_id"],
            "the handle is never the cookie"
        );
        assert!(s["created_at"].as_str().unwrap().contains('T'));
        assert!(s["ip"].as_str().unwrap().starts_with("127.0.0.1"));
    }
    let created: Vec<&str> = items
        .iter()
        .map(|s| s["created_at"].as_str().unwrap())
        .collect();
    assert!(
        created[0] <= created[1],
        "oldest first, as crudauth: {created:?}"
    );
    let phone_entry = items.iter().find(|s| s["current"] == false).unwrap();
    assert_eq!(phone_entry["device"]["os"], "iOS");
    let phone_handle = phone_entry["id"].as_str().unwrap().to_owned();

    // Another user's handle and unknown handles are both "not found".
    let r = bob
        .delete_csrf(&app.url(&format!("/sessions/{phone_handle}")))
        .await;
    assert_eq!((r.status, r.detail()), (404, "Session not found."));
    let r = laptop
        .delete_csrf(&app.url(&format!("/sessions/{}", "0".repeat(64))))
        .await;
    assert_eq!(r.status, 404);
    let r = laptop.delete_csrf(&app.url("/sessions/not-a-handle")).await;
    assert_eq!(r.status, 404);
    // Not even UTF-8 once decoded: the same JSON 404, not a plain-text rejection.
    let r = laptop.delete_csrf(&app.url("/sessions/%ff")).await;
    assert_eq!((r.status, r.detail()), (404, "Session not found."));
    assert_eq!(phone.get(&app.url("/me")).await.status, 200);
    let r = laptop
        .send(
            "DELETE",
            &app.url(&format!("/sessions/{phone_handle}")),
            Body::None,
            &[],
        )
        .await;
    assert_eq!(r.status, 403, "CSRF applies");
    let r = laptop
        .delete_csrf(&app.url(&format!("/sessions/{phone_handle}")))
        .await;
    assert_eq!((r.status, r.detail()), (200, "Session revoked."));
    assert_eq!(phone.get(&app.url("/me")).await.status, 401);
    assert_eq!(
        laptop
            .get(&app.url("/sessions"))
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Revoking the current session clears its cookies.
    let own = laptop.get(&app.url("/sessions")).await.json[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = laptop
        .delete_csrf(&app.url(&format!("/sessions/{own}")))
        .await;
    assert!(r.set_cookie("session_id").unwrap().contains("Max-Age=0"));
    assert_eq!(laptop.get(&app.url("/me")).await.status, 401);
}

async fn logout_all(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let user = app.user("ada@example.com", "ada", PW).await;
    let mut a = app.signed_in("ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let mut c = app.signed_in("ada", PW).await;
    let r = a
        .post_csrf(&app.url("/logout-all?keep_current=true"), Body::None)
        .await;
    assert_eq!(
        r.json,
        json!({"detail": "Signed out of all sessions.", "revoked": 2})
    );
    assert!(r.set_cookie("session_id").is_none());
    assert_eq!(a.get(&app.url("/me")).await.status, 200);
    assert_eq!(b.get(&app.url("/me")).await.status, 401);
    assert_eq!(c.get(&app.url("/me")).await.status, 401);
    let mut d = app.signed_in("ada", PW).await;
    let r = a.post_csrf(&app.url("/logout-all"), Body::None).await;
    assert_eq!(r.json["revoked"], 2, "the caller's own session counts");
    assert!(r.set_cookie("session_id").unwrap().contains("Max-Age=0"));
    assert_eq!(d.get(&app.url("/me")).await.status, 401);
    let r = Browser::new().post(&app.url("/logout-all")).await;
    assert_eq!(r.status, 401);

    // An invalid boolean for keep_current is refused and changes nothing. The request comes
    // from a signed-in browser with a valid CSRF token, so the query's validation is what
    // answers (from `a`, signed out just above and sent without a token, it could only be 401).
    let mut e = app.signed_in("ada", PW).await;
    let mut f = app.signed_in("ada", PW).await;
    let before = app.users.find_by_id(&user.id).await.unwrap().unwrap();
    let r = e
        .post_csrf(&app.url("/logout-all?keep_current=maybe"), Body::None)
        .await;
    assert_eq!(r.status, 422, "{:?}", r.json);
    assert_eq!(
        (&r.json["detail"][0]["type"], &r.json["detail"][0]["loc"]),
        (&json!("bool_parsing"), &json!(["query", "keep_current"]))
    );
    assert!(
        r.headers.get("set-cookie").is_none(),
        "no cookie is cleared"
    );
    assert_eq!(
        e.get(&app.url("/me")).await.status,
        200,
        "the caller's session lives"
    );
    assert_eq!(
        f.get(&app.url("/me")).await.status,
        200,
        "the other session lives"
    );
    let listed = e.get(&app.url("/sessions")).await;
    assert_eq!(
        (listed.status, listed.json.as_array().map(Vec::len)),
        (200, Some(2)),
        "{:?}",
        listed.json
    );
    let after = app.users.find_by_id(&user.id).await.unwrap().unwrap();
    assert_eq!(
        after.token_version, before.token_version,
        "the credential epoch was not bumped"
    );
}

async fn change_and_set_password(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut here = app.signed_in("ada", PW).await;
    let mut elsewhere = app.signed_in("ada", PW).await;
    let url = app.url("/change-password");
    let r = here
        .post_csrf(
            &url,
            Body::Json(json!({"current_password": "wrong one!", "new_password": "new password 1"})),
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Current password is incorrect.")
    );
    // crudauth's order: the current password is checked before the new one's policy.
    let r = here
        .post_csrf(
            &url,
            Body::Json(json!({"current_password": "wrong one!", "new_password": "short"})),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = here
        .post_csrf(
            &url,
            Body::Json(json!({"current_password": PW, "new_password": "short"})),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json["detail"][0]["type"], "string_too_short");
    let r = here
        .send(
            "POST",
            &url,
            Body::Json(json!({"current_password": PW, "new_password": "new password 1"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 403, "CSRF applies");
    let r = here
        .post_csrf(
            &url,
            Body::Json(json!({"current_password": PW, "new_password": "new password 1"})),
        )
        .await;
    assert_eq!((r.status, r.detail()), (200, "Password changed."));
    assert_eq!(
        here.get(&app.url("/me")).await.status,
        200,
        "the calling session survives"
    );
    assert_eq!(
        elsewhere.get(&app.url("/me")).await.status,
        401,
        "every other session ends"
    );
    let old = Browser::new()
        .sign_in(&app.url("/login"), "ada", PW, &[])
        .await;
    assert_eq!(old.status, 401);
    let new = Browser::new()
        .sign_in(&app.url("/login"), "ada", "new password 1", &[])
        .await;
    assert_eq!(new.status, 200);
    // "Already has a password" comes before the policy, however weak the new one.
    for weak_or_not in ["another one 2", "x"] {
        let r = here
            .post_csrf(
                &app.url("/set-password"),
                Body::Json(json!({ "new_password": weak_or_not })),
            )
            .await;
        assert_eq!(
            (r.status, r.detail()),
            (
                400,
                "Account already has a password; use the password reset flow to change it."
            )
        );
    }
}

async fn gates(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    app.admin("root@example.com", "root", PW).await;
    let mut ada = app.signed_in("ada", PW).await;
    let mut root = app.signed_in("root", PW).await;
    let r = ada.get(&app.url("/admin")).await;
    assert_eq!((r.status, r.detail()), (403, "Insufficient privileges"));
    assert_eq!(root.get(&app.url("/admin")).await.json, json!({"ok": true}));
    assert_eq!(root.get(&app.url("/secret")).await.status, 200);
    assert_eq!(Browser::new().get(&app.url("/admin")).await.status, 401);
    assert_eq!(
        Browser::new().get(&app.url("/feed")).await.json,
        json!({"auth": false})
    );
    assert_eq!(ada.get(&app.url("/feed")).await.json, json!({"auth": true}));
    assert_eq!(
        Browser::new().get(&app.url("/hello")).await.json,
        json!({"hello": "world"})
    );
}

async fn concurrent_logins_respect_the_cap(backend: Backend) {
    // The login lockout (5 attempts per address and identifier per window by default) would
    // answer 429 to most of 20 simultaneous sign-ins from one address, leaving only a handful
    // of racing session creations; let all 20 through so the cap is what is tested. The
    // hashing pool likewise: on one slot it lets 16 wait and refuses the rest with a 503.
    let mut o = Options::new(backend);
    o.customize = Box::new(|b| {
        let passwords = Passwords::builder()
            .argon2_params(64, 1, 1)
            .max_waiting(32)
            .build()
            .expect("valid test costs");
        b.passwords(passwords).lockout(LockoutConfig {
            max_attempts: 100,
            ..LockoutConfig::default()
        })
    });
    let app = spawn(o).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = app.url("/login");
        tasks.push(tokio::spawn(async move {
            let mut b = Browser::new();
            let r = b.sign_in(&url, "ada", PW, &[]).await;
            assert_eq!(r.status, 200, "{:?}", r.json);
            b
        }));
    }
    let mut browsers = Vec::new();
    for t in tasks {
        browsers.push(t.await.unwrap());
    }
    // Exactly 5 live sessions, not merely 1..=5. `SessionStore::create` (crudauth-core,
    // session/mod.rs) writes each record first, then adds its handle to the user's index and
    // trims the index to `max_sessions_per_user` (5 by default) in one step, and deletes the
    // evicted handles' records before /login answers. All 20 sign-ins have answered 200, so
    // the index holds exactly the 5 highest-scored handles and exactly their records are
    // live: more would break the cap, fewer would mean a login ended sessions it should not.
    let mut live = Vec::new();
    for (i, b) in browsers.iter_mut().enumerate() {
        let status = b.get(&app.url("/me")).await.status;
        assert!(status == 200 || status == 401, "browser {i}: {status}");
        if status == 200 {
            live.push(i);
        }
    }
    assert_eq!(live.len(), 5, "live sessions: browsers {live:?}");
    // A survivor's own list agrees, and this check always runs.
    let listed = browsers[live[0]].get(&app.url("/sessions")).await;
    assert_eq!(listed.status, 200, "{:?}", listed.json);
    assert_eq!(
        listed.json.as_array().unwrap().len(),
        5,
        "{:?}",
        listed.json
    );
}

async fn hostile_input_never_5xx(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let long = "x".repeat(8000);
    let absent = (401, "Not authenticated");
    let ambiguous = (401, "Invalid token");
    // (Cookie header, /me and POST /account/settings answer, POST /logout status)
    let junk_cookies = [
        ("session_id=", absent, 200),
        ("session_id=%%%%", absent, 200),
        ("session_id=r.", absent, 200),
        ("session_id=\u{fc}abc", absent, 200),
        (&format!("session_id={long}")[..], absent, 200),
        ("session_id=a; session_id=b; csrf_token=c", ambiguous, 401),
    ];
    for (c, (status, detail), logout) in junk_cookies {
        let mut b = Browser::new();
        let r = b.get_with(&app.url("/me"), &[("cookie", c)]).await;
        assert_eq!((r.status, r.detail()), (status, detail), "/me {c}");
        assert!(r.headers.get("set-cookie").is_none(), "/me {c}");
        let r = b
            .send(
                "POST",
                &app.url("/account/settings"),
                Body::None,
                &[("cookie", c)],
            )
            .await;
        assert_eq!((r.status, r.detail()), (status, detail), "settings {c}");
        let r = b
            .send("POST", &app.url("/logout"), Body::None, &[("cookie", c)])
            .await;
        assert_eq!(r.status, logout, "logout {c}: {:?}", r.json);
        if logout == 200 {
            assert_eq!(r.detail(), "Logged out", "{c}");
            assert!(
                r.set_cookie("session_id").unwrap().contains("Max-Age=0"),
                "{c}"
            );
        } else {
            assert_eq!(r.detail(), "Invalid token", "{c}");
        }
    }
    let mut b = Browser::new();
    // An oversized body is refused with 413; the server may close the connection before the
    // client has finished uploading, which the client sees as a transport error. Either way
    // nothing is created and the server keeps answering.
    let huge = vec![b'a'; 1 << 20];
    for (path, kind) in [
        ("/register", "application/json"),
        ("/login", "application/x-www-form-urlencoded"),
    ] {
        match b
            .try_send("POST", &app.url(path), Body::Raw(huge.clone(), kind), &[])
            .await
        {
            Ok(r) => assert_eq!(
                (r.status, r.detail()),
                (413, "Request body too large"),
                "{path}"
            ),
            Err(e) => assert!(!e.is_timeout() && !e.is_decode(), "{path}: {e}"),
        }
        assert_eq!(
            Browser::new().get(&app.url("/hello")).await.status,
            200,
            "{path}"
        );
    }
    // The server may answer 413 and close while the client is still writing the rest, which
    // the client then reports as a send error: ask again until the answer is read.
    let mut answer = None;
    for _ in 0..5 {
        let sent = Browser::new()
            .try_send(
                "POST",
                &app.url("/register"),
                Body::Raw(vec![b' '; 70 * 1024], "application/json"),
                &[],
            )
            .await;
        if let Ok(r) = sent {
            answer = Some(r);
            break;
        }
    }
    let r = answer.expect("an answer within five tries");
    assert_eq!(r.status, 413, "just over the 64 KiB limit");
    assert!(
        app.emails().await.is_empty(),
        "no registration went through"
    );
    let forms: [(&[u8], &str); 3] = [
        (b"%zz=%%&&==", "username"),
        (b"username&password", "username"),
        (b"\xff\xfe\x00", "username"),
    ];
    for (raw, field) in forms {
        let r = b
            .send(
                "POST",
                &app.url("/login"),
                Body::Raw(raw.to_vec(), "application/x-www-form-urlencoded"),
                &[],
            )
            .await;
        assert_eq!(r.status, 422, "{raw:?}: {:?}", r.json);
        assert_eq!(
            r.json["detail"][0]["loc"],
            json!(["body", field]),
            "{raw:?}: {:?}",
            r.json
        );
        assert!(r.headers.get("set-cookie").is_none(), "{raw:?}");
    }
    let r = b
        .sign_in(&app.url("/login"), "ada", &"p".repeat(5000), &[])
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Incorrect username or password"),
        "an oversized password is refused, never hashed"
    );
    let r = b
        .send(
            "POST",
            &app.url("/login"),
            form(&[
                ("username", "ada"),
                ("password", PW),
                ("remember_me", "perhaps"),
            ]),
            &[],
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json["detail"][0]["loc"], json!(["body", "remember_me"]));
    assert!(
        r.headers.get("set-cookie").is_none(),
        "no session for bad input"
    );
}

macro_rules! all_cases {
    ($backend:expr) => {
        crudauth_tests::per_backend!($backend; register_contract, register_without_email_delivery, register_validation, login_contract,
            disabled_accounts_cannot_sign_in, session_fixation_and_logout, csrf_matrix, csrf_refresh,
            device_management, logout_all, change_and_set_password, gates, concurrent_logins_respect_the_cap,
            hostile_input_never_5xx);
    };
}

mod memory {
    all_cases!(crudauth_tests::app::Backend::Memory);
}

mod redis {
    all_cases!(crudauth_tests::app::Backend::Redis);
}
