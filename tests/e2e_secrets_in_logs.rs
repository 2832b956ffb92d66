//! F2 and J5: every secret the app hands out or is handed (passwords, session ids, CSRF
//! tokens, access and refresh tokens, one-time tokens) is absent from every log line, at every
//! level, and from every error body, through a whole run of the contract; and a reused refresh
//! token is logged, naming the user, without the token.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};

use crudauth_tests::app::{spawn, Backend, Options};
use crudauth_tests::http::{form, Answer, Body, Browser};

/// The secrets seen so far, and the error bodies answered.
#[derive(Default)]
struct Seen {
    secrets: Vec<String>,
    error_bodies: Vec<String>,
}

impl Seen {
    fn secret(&mut self, value: impl Into<String>) {
        let value = value.into();
        assert!(value.len() >= 8, "too short to grep for: {value}");
        self.secrets.push(value);
    }

    /// Keeps every credential an answer carries (cookies and token fields), and its body when
    /// it is an error.
    fn answer(&mut self, r: &Answer) -> Value {
        for line in r.headers.get_all("set-cookie") {
            let pair = line.to_str().unwrap().split(';').next().unwrap();
            let (_, value) = pair.split_once('=').unwrap();
            if value.len() >= 8 {
                self.secret(value);
            }
        }
        for field in ["access_token", "refresh_token", "csrf_token"] {
            if let Some(v) = r.json[field].as_str() {
                self.secret(v);
            }
        }
        if r.status >= 400 {
            self.error_bodies.push(r.json.to_string());
        }
        r.json.clone()
    }
}

async fn secrets_never_reach_logs_or_error_bodies(backend: Backend) {
    let (captured, _guard) = crudauth_tests::logs::capture(tracing::Level::TRACE);

    let app = spawn(Options::new(backend)).await;
    let mut seen = Seen::default();
    let password = "first secret password";
    let new_password = "second secret password";
    let typed_in_username = "password typed as a username";
    for p in [password, new_password, typed_in_username] {
        seen.secret(p);
    }
    let mut b = Browser::new();
    let r = b
        .send(
            "POST",
            &app.url("/register"),
            Body::Json(
                json!({"email": "ada@example.com", "username": "ada", "password": password}),
            ),
            &[],
        )
        .await;
    assert_eq!(r.status, 202);
    let link = app.emails().await[0]["link"].as_str().unwrap().to_owned();
    seen.secret(link.split("token=").nth(1).unwrap());

    // Sign-ins that fail, one with the password typed into the username field.
    for (who, pw) in [(typed_in_username, password), ("ada", typed_in_username)] {
        let r = Browser::new()
            .sign_in(&app.url("/login"), who, pw, &[])
            .await;
        assert_eq!(r.status, 401);
        seen.answer(&r);
    }
    let r = b.sign_in(&app.url("/login"), "ada", password, &[]).await;
    assert_eq!(r.status, 200);
    seen.answer(&r);
    let r = b
        .send(
            "POST",
            &app.url("/account/settings"),
            Body::None,
            &[("x-csrf-token", "a-wrong-csrf-token-value")],
        )
        .await;
    assert_eq!(r.status, 403);
    seen.answer(&r);

    // Bearer tokens, a rotation, and a reuse that revokes the family.
    let mut t = Browser::new();
    let r = t.sign_in(&app.url("/token"), "ada", password, &[]).await;
    assert_eq!(r.status, 200);
    seen.answer(&r);
    let first_refresh = t.cookies["refresh_token"].clone();
    let r = t.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 200);
    seen.answer(&r);
    let mut thief = Browser::new();
    thief.cookies.insert("refresh_token".into(), first_refresh);
    let r = thief.post(&app.url("/refresh")).await;
    assert_eq!(r.status, 401);
    seen.answer(&r);

    // A password change, a forged token, a logout.
    let r = b
        .post_csrf(
            &app.url("/change-password"),
            Body::Json(json!({"current_password": password, "new_password": new_password})),
        )
        .await;
    assert_eq!(r.status, 200);
    seen.answer(&r);
    let r = b
        .post_csrf(
            &app.url("/change-password"),
            Body::Json(
                json!({"current_password": typed_in_username, "new_password": new_password}),
            ),
        )
        .await;
    assert_eq!(r.status, 401);
    seen.answer(&r);
    let forged = format!(
        "Bearer {}x",
        seen.secrets.iter().find(|s| s.starts_with("eyJ")).unwrap()
    );
    let r = Browser::new()
        .get_with(&app.url("/dashboard"), &[("authorization", &forged)])
        .await;
    assert_eq!(r.status, 401);
    seen.answer(&r);
    let r = b.post_csrf(&app.url("/logout"), Body::None).await;
    seen.answer(&r);
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/login"),
            form(&[("username", "ada")]),
            &[],
        )
        .await;
    seen.answer(&r);

    drop(app);
    let logs = captured.text();
    assert!(
        logs.contains("the refresh family is revoked"),
        "J5: the reuse is logged: {logs}"
    );
    assert!(seen.secrets.len() >= 10, "{:?}", seen.secrets);
    assert!(seen.error_bodies.len() >= 6);
    for secret in &seen.secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret is logged: {secret}\n{logs}"
        );
        for body in &seen.error_bodies {
            assert!(!body.contains(secret.as_str()), "{secret} in {body}");
        }
    }
}

// One thread, so the server's tasks log to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn memory() {
    secrets_never_reach_logs_or_error_bodies(Backend::Memory).await;
}

#[tokio::test(flavor = "current_thread")]
async fn redis() {
    secrets_never_reach_logs_or_error_bodies(Backend::Redis).await;
}
