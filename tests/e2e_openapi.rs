//! `auth.openapi()` against the router it describes, over HTTP, in three configurations (the
//! quickstart's: session and bearer, email, two-factor, GitHub sign-in; bearer alone with the
//! refresh token in the body; a session without management routes or email): every route of
//! CONTRACT.md is probed with every method, and a route is in the document exactly when the
//! router serves it, each answer's status among those the document lists for it. Answers in
//! depth (bodies, headers, generated inputs) are schemathesis' part: tests/schemathesis.py.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};

use crudauth_axum::{BearerTransport, SessionTransport};
use crudauth_core::mfa::fernet::FernetKey;
use crudauth_core::mfa::MfaConfig;
use crudauth_core::oauth::GitHub;
use crudauth_tests::app::{spawn, Backend, Options, TestApp, Transports};
use crudauth_tests::http::{Body, Browser};

const PW: &str = "correct horse battery";

/// Every path of CONTRACT.md's route table, parameters filled in.
const PATHS: &[&str] = &[
    "/register",
    "/login",
    "/logout",
    "/me",
    "/change-password",
    "/set-password",
    "/csrf/refresh",
    "/sessions",
    "/sessions/some-handle",
    "/logout-all",
    "/token",
    "/refresh",
    "/email/verify-request",
    "/email/verify-confirm",
    "/password/reset-request",
    "/password/reset-confirm",
    "/email/change-request",
    "/email/change-confirm",
    "/oauth/github/authorize",
    "/oauth/github/callback",
    "/mfa",
    "/mfa/totp/setup",
    "/mfa/totp/confirm",
    "/mfa/verify",
    "/mfa/challenge",
    "/mfa/totp/disable",
    "/mfa/recovery-codes/regenerate",
    "/sudo",
];

const METHODS: &[&str] = &["GET", "POST", "DELETE", "PUT"];

/// The document's operation for a concrete `path`, matching `{param}` segments.
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> Option<&'a Value> {
    let paths = doc["paths"].as_object().unwrap();
    let template = paths.keys().find(|t| {
        let (a, b): (Vec<_>, Vec<_>) = (t.split('/').collect(), path.split('/').collect());
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}')))
    })?;
    paths[template].get(method.to_ascii_lowercase())
}

/// Probes every path with every method as `browser` and checks the document agrees with the
/// router on each; the documented (method, path) pairs, in probe order.
async fn probe(app: &TestApp, doc: &Value, browser: &mut Browser) -> Vec<String> {
    let mut served = Vec::new();
    for path in PATHS {
        for method in METHODS {
            let body = if *method == "GET" {
                Body::None
            } else {
                Body::Json(json!({}))
            };
            let csrf = browser.csrf();
            let r = browser
                .send(method, &app.url(path), body, &[("x-csrf-token", &csrf)])
                .await;
            // axum's own 404 (no route) has no body; crudauth's (`/sessions/{id}`) has a detail.
            let mounted = r.status != 405 && !(r.status == 404 && r.json.is_null());
            let op = operation(doc, method, path);
            assert_eq!(
                mounted,
                op.is_some(),
                "{method} {path}: served = {mounted} ({}), documented = {}",
                r.status,
                op.is_some()
            );
            if let Some(op) = op {
                let status = r.status.to_string();
                assert!(
                    op["responses"].get(&status).is_some(),
                    "{method} {path} answered {status}, which its operation does not list: {}",
                    r.json
                );
                served.push(format!("{method} {path}"));
            }
        }
    }
    served
}

/// A new account's registration answers `status`, the one success the document lists for it
/// (202 with email delivery, 200 without).
async fn registration_answers_as_documented(app: &TestApp, doc: &Value, status: &str) {
    let body = json!({"email": "bob@example.com", "username": "bob", "password": PW});
    let r = Browser::new()
        .send("POST", &app.url("/register"), Body::Json(body), &[])
        .await;
    assert_eq!(r.status.to_string(), status);
    let responses = &operation(doc, "POST", "/register").unwrap()["responses"];
    let other = if status == "200" { "202" } else { "200" };
    assert!(responses.get(status).is_some() && responses.get(other).is_none());
}

async fn document(app: &TestApp) -> Value {
    let doc = serde_json::to_value(app.auth.openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    doc
}

#[tokio::test]
async fn the_quickstarts_configuration_is_documented_route_for_route() {
    let mut o = Options::new(Backend::Memory);
    o.customize = Box::new(|b| {
        b.mfa(MfaConfig::new("tests", [FernetKey::generate()]))
            .oauth("github", GitHub::new("id", "secret").unwrap())
            .redirect_base_url("http://localhost:3000")
    });
    let app = spawn(o).await;
    let doc = document(&app).await;
    app.user("ada@example.com", "ada", PW).await;

    // Anonymous, then signed in with a session (and its CSRF header on every request).
    let anonymous = probe(&app, &doc, &mut Browser::no_redirects()).await;
    assert_eq!(anonymous.len(), 28, "{anonymous:?}");
    // Its cookies in a browser that does not follow the OAuth redirect to the provider.
    let mut browser = Browser::no_redirects();
    browser.cookies = app.signed_in("ada", PW).await.cookies;
    assert_eq!(probe(&app, &doc, &mut browser).await, anonymous);

    // A registration with email delivery is a 202, and the document says so.
    registration_answers_as_documented(&app, &doc, "202").await;
    // The security schemes the routes name exist, and the CSRF header is asked for on an
    // unsafe session request.
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for name in ["session", "csrf", "bearer", "refresh"] {
        assert!(schemes.contains_key(name), "{name}");
    }
    let change = operation(&doc, "POST", "/change-password").unwrap();
    assert_eq!(
        change["security"],
        json!([{"session": [], "csrf": []}, {"bearer": []}])
    );
}

#[tokio::test]
async fn bearer_alone_with_the_refresh_token_in_the_body() {
    let mut o = Options::new(Backend::Memory);
    o.email = false;
    o.transports = Transports::BearerOnly;
    o.customize = Box::new(|b| b.bearer_transport(BearerTransport::default().refresh_in_body()));
    let app = spawn(o).await;
    let doc = document(&app).await;
    let served = probe(&app, &doc, &mut Browser::new()).await;
    assert_eq!(
        served,
        [
            "POST /register",
            "GET /me",
            "POST /change-password",
            "POST /set-password",
            "POST /token",
            "POST /refresh",
        ]
    );
    // Without email delivery a registration is a 200 with the account.
    registration_answers_as_documented(&app, &doc, "200").await;
    let refresh = operation(&doc, "POST", "/refresh").unwrap();
    assert!(refresh["requestBody"]["content"]
        .get("application/json")
        .is_some());
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes.keys().collect::<Vec<_>>(), ["bearer"]);
}

#[tokio::test]
async fn a_session_without_management_routes_or_email() {
    let mut o = Options::new(Backend::Memory);
    o.email = false;
    o.transports = Transports::SessionOnly;
    o.customize =
        Box::new(|b| b.session_transport(SessionTransport::default().management_routes(false)));
    let app = spawn(o).await;
    let doc = document(&app).await;
    app.user("ada@example.com", "ada", PW).await;
    let served = probe(&app, &doc, &mut app.signed_in("ada", PW).await).await;
    assert_eq!(
        served,
        [
            "POST /register",
            "POST /login",
            "POST /logout",
            "GET /me",
            "POST /change-password",
            "POST /set-password",
            "POST /sudo",
        ]
    );
}
