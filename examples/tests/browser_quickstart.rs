//! The JSON quickstart in a real browser (headless Chromium over WebDriver): a single-page
//! app's `fetch()` calls with the CSRF cookie echoed in `X-CSRF-Token`, a cross-site form post
//! from another origin that must not act, and a session cookie copied out of the browser that
//! dies when the browser signs out. One browser for the whole file; a screenshot of each page
//! under `target/browser-screenshots/<scenario>/`.
#![allow(clippy::unwrap_used)]

mod browser;

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use browser::{Chrome, Example};

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_in_chromium() {
    let mut app = Example::start("quickstart", &[]);
    let Some(mut chrome) = Chrome::start("quickstart_spa_fetch").await else {
        return;
    };
    spa_fetch_with_csrf(&mut chrome, &app).await;
    chrome.set_test("quickstart_cross_site_form");
    cross_site_form_post_refused(&mut chrome, &app).await;
    chrome.set_test("quickstart_copied_cookie");
    copied_cookie_dead_after_sign_out(&mut chrome, &app).await;
    chrome.finish().await;
    app.assert_healthy();
}

fn no_headers() -> Value {
    json!({})
}

/// Register, sign in and call the API from a page of the quickstart's origin with `fetch()`,
/// as a single-page app does: the unsafe request carries the CSRF cookie's value in
/// `X-CSRF-Token` and succeeds; the same request without it is refused.
async fn spa_fetch_with_csrf(chrome: &mut Chrome, app: &Example) {
    chrome.visit(&app.url("/hello"), "hello").await;
    assert!(chrome.text("body").await.contains("world"));

    let body = json!({"email": "ada@example.com", "username": "ada", "password": PASSWORD});
    let r = chrome
        .fetch("POST", "/register", no_headers(), Some(body), None)
        .await;
    assert_eq!(r["status"], 202, "{r}");

    // Signed out: no CSRF cookie, and /me refuses.
    assert_eq!(chrome.script_cookie("csrf_token").await, None);
    let r = chrome.fetch("GET", "/me", no_headers(), None, None).await;
    assert_eq!(r["status"], 401, "{r}");

    let form = json!({"username": "ada", "password": PASSWORD});
    let login = chrome
        .fetch("POST", "/login", no_headers(), None, Some(form))
        .await;
    assert_eq!(login["status"], 200, "{login}");
    assert_eq!(login["json"]["username"], "ada", "{login}");

    // The CSRF cookie is readable by the page's scripts and is the token /login answered; the
    // session cookie is HttpOnly, out of the scripts' reach.
    let token = chrome
        .script_cookie("csrf_token")
        .await
        .expect("a csrf_token cookie the page can read");
    assert_eq!(login["json"]["csrf_token"], json!(token));
    assert_eq!(chrome.script_cookie("session_id").await, None);
    let session = chrome.cookie("session_id").await.expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));

    let r = chrome.fetch("GET", "/me", no_headers(), None, None).await;
    assert_eq!(
        (&r["status"], &r["json"]["username"]),
        (&json!(200), &json!("ada")),
        "{r}"
    );

    // The unsafe request with the header succeeds; without it, 403.
    let r = chrome
        .fetch(
            "POST",
            "/account/settings",
            json!({"X-CSRF-Token": token}),
            None,
            None,
        )
        .await;
    assert_eq!(
        (&r["status"], &r["json"]),
        (&json!(200), &json!({"ok": true})),
        "{r}"
    );
    let r = chrome
        .fetch("POST", "/account/settings", no_headers(), None, None)
        .await;
    assert_eq!(
        (&r["status"], &r["json"]["detail"], &r["csrf_error"]),
        (&json!(403), &json!("Missing CSRF token"), &json!("true")),
        "{r}"
    );
    // A wrong token is no better.
    let r = chrome
        .fetch(
            "POST",
            "/account/settings",
            json!({"X-CSRF-Token": "forged"}),
            None,
            None,
        )
        .await;
    assert_eq!(
        (&r["status"], &r["json"]["detail"]),
        (&json!(403), &json!("Invalid CSRF token")),
        "{r}"
    );

    chrome.visit(&app.url("/dashboard"), "dashboard").await;
    assert!(chrome.text("body").await.contains("\"username\":\"ada\""));
}

/// A page on another origin (`127.0.0.1:<port>`, another site than `localhost`) auto-submits a
/// form POST to the quickstart's `/logout-all` while ada is signed in: the request arrives and
/// is refused, and ada's session is still there afterwards.
async fn cross_site_form_post_refused(chrome: &mut Chrome, app: &Example) {
    chrome.visit(&app.url("/hello"), "signed-in").await;
    let before = chrome
        .fetch("GET", "/sessions", no_headers(), None, None)
        .await;
    assert_eq!(before["status"], 200, "{before}");
    assert_eq!(before["json"].as_array().unwrap().len(), 1, "{before}");

    let target = app.url("/logout-all?keep_current=false");
    let page = format!(
        "<!doctype html><title>Free prize</title><h1>Claim your prize</h1>\
         <form id=\"attack\" method=\"POST\" action=\"{target}\">\
         <input type=\"hidden\" name=\"prize\" value=\"1\"><button>Claim</button></form>\
         <script>document.getElementById('attack').submit();</script>"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil = format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let server = tokio::spawn(async move {
        let router = Router::new().route("/", get(move || async move { Html(page) }));
        axum::serve(listener, router).await
    });

    chrome.client().goto(&evil).await.unwrap();
    chrome.wait_path("/logout-all").await;
    chrome.shot("cross-site-answer").await;
    let answer = chrome.text("body").await;
    // The request got there, and was refused: SameSite=Lax kept the session cookie off it
    // (and Fetch Metadata would have refused it anyway).
    assert!(
        answer.contains("Not authenticated") || answer.contains("Cross-site"),
        "the cross-site post was not refused: {answer}"
    );
    assert!(!answer.contains("Signed out"), "{answer}");
    server.abort();

    // Back on the quickstart: still signed in, the same single session.
    chrome.visit(&app.url("/hello"), "still-signed-in").await;
    let me = chrome.fetch("GET", "/me", no_headers(), None, None).await;
    assert_eq!(
        (&me["status"], &me["json"]["username"]),
        (&json!(200), &json!("ada")),
        "{me}"
    );
    let after = chrome
        .fetch("GET", "/sessions", no_headers(), None, None)
        .await;
    assert_eq!(after["json"], before["json"], "the sessions changed");
}

/// The session cookie copied out of the browser works from another client until the browser
/// signs out; then it is dead there too.
async fn copied_cookie_dead_after_sign_out(chrome: &mut Chrome, app: &Example) {
    chrome.visit(&app.url("/hello"), "before-sign-out").await;
    let copied = chrome.cookie("session_id").await.expect("a session cookie");
    let cookie = format!("session_id={}", copied.value());
    let client = reqwest::Client::new();
    let me = |cookie: String| {
        let request = client.get(app.direct_url("/me")).header("cookie", cookie);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = me(cookie.clone()).await;
    assert_eq!((status, &body["username"]), (200, &json!("ada")), "{body}");

    let token = chrome
        .script_cookie("csrf_token")
        .await
        .expect("a CSRF cookie");
    let r = chrome
        .fetch(
            "POST",
            "/logout",
            json!({"X-CSRF-Token": token}),
            None,
            None,
        )
        .await;
    assert_eq!(
        (&r["status"], &r["json"]),
        (&json!(200), &json!({"detail": "Logged out"})),
        "{r}"
    );
    assert!(
        chrome.cookie("session_id").await.is_none(),
        "the browser kept its session cookie"
    );
    assert_eq!(chrome.script_cookie("csrf_token").await, None);
    chrome.visit(&app.url("/me"), "signed-out").await;
    assert!(chrome.text("body").await.contains("Not authenticated"));

    let (status, body) = me(cookie).await;
    assert_eq!(
        (status, &body["detail"]),
        (401, &json!("Not authenticated")),
        "{body}"
    );
}
