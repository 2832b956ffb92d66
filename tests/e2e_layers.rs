//! The session and CSRF layers over HTTP, on memory and on Redis: the Session extractor's data
//! (round trips, two workers, rotation, concurrent writers, nothing resurrected, its bound),
//! flash messages signed in and out, sign-in and sign-out from the app's own handlers, and
//! CSRF on routes that never ask who is signed in: PUT, PATCH, DELETE and POST with the
//! header, a form field, a multipart field, none, a wrong one and another session's.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Form, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crudauth_axum::extract::{CsrfToken, Login, Session, SessionRejection};
use crudauth_axum::{actions, AuthError, CrudAuth, CrudAuthBuilder};
use crudauth_core::user::UserStore;
use crudauth_tests::app::{new_user, redis_url, spawn, unique_prefix, Backend, Options, TestApp};
use crudauth_tests::http::{form, Body, Browser};

const PW: &str = "correct horse battery";

#[derive(serde::Deserialize)]
struct Credentials {
    username: String,
    password: String,
    #[serde(default)]
    remember_me: bool,
}

async fn data(session: Session) -> Result<Json<Value>, SessionRejection> {
    let visits: Option<u32> = session.get("visits")?;
    Ok(Json(json!({
        "signed_in": session.is_signed_in(),
        "visits": visits,
    })))
}

async fn visit(session: Session) -> Result<Json<Value>, SessionRejection> {
    let visits = session.get::<u32>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", &visits)?;
    Ok(Json(json!({ "visits": visits })))
}

async fn big(session: Session) -> Result<Json<Value>, SessionRejection> {
    session.insert("blob", &"x".repeat(5000))?;
    Ok(Json(json!({"stored": true})))
}

async fn add_flash(session: Session) -> Result<Json<Value>, SessionRejection> {
    session.flash("info", "hello")?;
    Ok(Json(json!({"ok": true})))
}

async fn flashes(session: Session) -> Json<Value> {
    let messages: Vec<String> = session
        .take_flashes()
        .into_iter()
        .map(|f| f.message)
        .collect();
    Json(json!(messages))
}

async fn app_login(
    State(auth): State<CrudAuth>,
    session: Session,
    Form(c): Form<Credentials>,
) -> Result<Json<Value>, AuthError> {
    let user = auth
        .authenticate_password(&c.username, &c.password, "127.0.0.1")
        .await?;
    Ok(Json(match session.login(&user, c.remember_me).await? {
        Login::SignedIn => json!({"login": "signed_in"}),
        Login::MfaRequired { challenge } => json!({"login": "mfa", "challenge": challenge}),
    }))
}

/// The application's own sign-in through [`actions::sign_in`], as a forms page does it.
async fn app_sign_in(
    session: Session,
    Form(c): Form<Credentials>,
) -> Result<Json<Value>, AuthError> {
    let login = actions::sign_in(&session, &c.username, &c.password, c.remember_me).await?;
    Ok(Json(match login {
        Login::SignedIn => json!({"login": "signed_in"}),
        Login::MfaRequired { challenge } => json!({"login": "mfa", "challenge": challenge}),
    }))
}

async fn app_logout(session: Session) -> Result<Json<Value>, AuthError> {
    session.logout().await?;
    Ok(Json(json!({"ok": true})))
}

async fn app_rotate(session: Session) -> Result<Json<Value>, AuthError> {
    Ok(Json(json!({"rotated": session.rotate().await?})))
}

async fn token(token: CsrfToken) -> Json<Value> {
    Json(json!({"csrf_token": token.as_str()}))
}

/// The routes under test; `plain` counts every request that reached the handler (which never
/// asks who is signed in), and echoes the body it got.
fn routes(plain: Arc<AtomicUsize>) -> impl FnOnce(&CrudAuth) -> Router + Send {
    move |auth: &CrudAuth| {
        let echo = move |body: Bytes| {
            let plain = plain.clone();
            async move {
                plain.fetch_add(1, Ordering::SeqCst);
                Json(json!({"body": String::from_utf8_lossy(&body)}))
            }
        };
        Router::new()
            .route("/data", get(data))
            .route("/data/visit", post(visit))
            .route("/data/big", post(big))
            .route("/flash", post(add_flash))
            .route("/flashes", get(flashes))
            .route("/form-token", get(token))
            .route("/app/login", post(app_login))
            .route("/app/sign-in", post(app_sign_in))
            .route("/app/logout", post(app_logout))
            .route("/app/rotate", post(app_rotate))
            .route(
                "/plain",
                post(echo.clone())
                    .put(echo.clone())
                    .patch(echo.clone())
                    .delete(echo),
            )
            .with_state(auth.clone())
    }
}

async fn app_with(
    backend: Backend,
    customize: impl FnOnce(CrudAuthBuilder) -> CrudAuthBuilder + Send + 'static,
) -> (TestApp, Arc<AtomicUsize>) {
    let plain = Arc::new(AtomicUsize::new(0));
    let mut options = Options::new(backend);
    options.customize = Box::new(customize);
    options.routes = Some(Box::new(routes(plain.clone())));
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", PW).await;
    app.user("bob@example.com", "bob", PW).await;
    (app, plain)
}

async fn app(backend: Backend) -> (TestApp, Arc<AtomicUsize>) {
    app_with(backend, |b| b).await
}

async fn visits(b: &mut Browser, app: &TestApp) -> Value {
    b.get(&app.url("/data")).await.json["visits"].clone()
}

async fn data_round_trips(backend: Backend) {
    let (app, _) = app(backend).await;
    let mut ada = app.signed_in("ada", PW).await;
    assert_eq!(visits(&mut ada, &app).await, Value::Null);
    for n in 1..=3 {
        let r = ada.post_csrf(&app.url("/data/visit"), Body::None).await;
        assert_eq!((r.status, &r.json["visits"]), (200, &json!(n)));
    }
    assert_eq!(visits(&mut ada, &app).await, json!(3));

    // Another user's session has data of its own.
    let mut bob = app.signed_in("bob", PW).await;
    assert_eq!(visits(&mut bob, &app).await, Value::Null);

    // Rotation: a new id, the data kept, the old id dead.
    let old = ada.cookies.get("session_id").cloned().unwrap();
    let r = ada.post_csrf(&app.url("/app/rotate"), Body::None).await;
    assert_eq!(r.json["rotated"], true);
    let new = ada.cookies.get("session_id").cloned().unwrap();
    assert_ne!(old, new);
    assert_eq!(visits(&mut ada, &app).await, json!(3));
    let r = ada.post_csrf(&app.url("/data/visit"), Body::None).await;
    assert_eq!(
        r.json["visits"], 4,
        "the new CSRF token works: {:?}",
        r.json
    );
    let mut stale = Browser::new();
    stale.cookies.insert("session_id".into(), old);
    let r = stale.get(&app.url("/data")).await;
    assert_eq!(r.json["signed_in"], false);

    // The bound: refused with 413, nothing written.
    let r = ada.post_csrf(&app.url("/data/big"), Body::None).await;
    assert_eq!((r.status, r.detail()), (413, "Session data too large"));
    assert_eq!(visits(&mut ada, &app).await, json!(4));

    // Signed out, there is nothing to write to: 401, and no session appears.
    let mut anon = Browser::new();
    let r = anon.post(&app.url("/data/visit")).await;
    assert_eq!((r.status, r.detail()), (401, "Not authenticated"));
    assert!(r.set_cookie("session_id").is_none());
}

/// Parallel writers on one session each get their answer; one of them wins whole; and
/// writers racing a sign-out never bring the session back.
async fn concurrent_writers(backend: Backend) {
    let (app, _) = app(backend).await;
    let ada = app.signed_in("ada", PW).await;
    let mut handles = Vec::new();
    for _ in 0..12 {
        let (mut b, url) = (ada.clone(), app.url("/data/visit"));
        handles.push(tokio::spawn(async move {
            b.post_csrf(&url, Body::None).await.status
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 200);
    }
    let mut reader = ada.clone();
    let n = visits(&mut reader, &app).await.as_u64().unwrap();
    assert!((1..=12).contains(&n), "{n}");

    let mut racers = Vec::new();
    for _ in 0..12 {
        let (mut b, url) = (ada.clone(), app.url("/data/visit"));
        racers.push(tokio::spawn(async move {
            b.post_csrf(&url, Body::None).await.status
        }));
    }
    let mut out = ada.clone();
    let r = out.post_csrf(&app.url("/app/logout"), Body::None).await;
    assert_eq!(r.status, 200);
    for r in racers {
        let status = r.await.unwrap();
        assert!(matches!(status, 200 | 401 | 403), "{status}");
    }
    let mut dead = ada.clone();
    let r = dead.get(&app.url("/data")).await;
    assert_eq!(
        r.json["signed_in"], false,
        "nothing resurrected the session"
    );
    let r = dead.get(&app.url("/me")).await;
    assert_eq!(r.status, 401);
}

async fn sign_in_and_out_from_handlers(backend: Backend) {
    let (app, _) = app(backend).await;
    let mut ada = Browser::new();
    let r = ada
        .send(
            "POST",
            &app.url("/app/login"),
            form(&[("username", "ada"), ("password", "wrong")]),
            &[],
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(r.set_cookie("session_id").is_none());
    // A signed-in browser signs in again: a new session, the one it had ends.
    let mut first = app.signed_in("ada", PW).await;
    ada = first.clone();
    let r = ada
        .send(
            "POST",
            &app.url("/app/login"),
            form(&[
                ("username", "ada"),
                ("password", PW),
                ("remember_me", "true"),
            ]),
            &[("x-csrf-token", &first.csrf())],
        )
        .await;
    assert_eq!((r.status, &r.json["login"]), (200, &json!("signed_in")));
    let cookie = r.parsed_cookie("session_id").unwrap();
    assert!(cookie.flag("httponly"));
    assert!(cookie.attr("max-age").is_some(), "remember-me lasts");
    assert!(r.set_cookie("csrf_token").is_some());
    assert_eq!(ada.get(&app.url("/me")).await.status, 200);
    assert_eq!(first.get(&app.url("/me")).await.status, 401, "replaced");
    let r = ada.post_csrf(&app.url("/data/visit"), Body::None).await;
    assert_eq!(r.status, 200, "the new session's token works");

    // A cross-site sign-in is refused, as on /login.
    let mut other = Browser::new();
    let r = other
        .send(
            "POST",
            &app.url("/app/login"),
            form(&[("username", "ada"), ("password", PW)]),
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(r.status, 403);

    // Sign-out: cookies cleared, the session dead for a copied cookie.
    let copied = ada.clone();
    let r = ada.post_csrf(&app.url("/app/logout"), Body::None).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookie("session_id").unwrap().contains("Max-Age=0"));
    assert_eq!(copied.clone().get(&app.url("/me")).await.status, 401);
    // And a sign-out without the token is refused by the CSRF layer, session intact.
    let mut bob = app.signed_in("bob", PW).await;
    let r = bob.post(&app.url("/app/logout")).await;
    assert_eq!((r.status, r.detail()), (403, "Missing CSRF token"));
    assert_eq!(bob.get(&app.url("/me")).await.status, 200);
}

/// `actions::sign_in` is `/login`'s work for a page: the lockout refuses even the right
/// password once the budget of wrong ones is spent, with `Retry-After`, and a completed
/// sign-in clears the pressure (three wrong, right, three wrong, right: never locked).
async fn sign_in_action_has_the_lockout(backend: Backend) {
    let (app, _) = app(backend).await;
    let attempt = |name: &'static str, password: &'static str| {
        let url = app.url("/app/sign-in");
        async move {
            Browser::new()
                .send(
                    "POST",
                    &url,
                    form(&[("username", name), ("password", password)]),
                    &[],
                )
                .await
        }
    };
    for round in 0..2 {
        for _ in 0..3 {
            assert_eq!(attempt("bob", "wrong").await.status, 401, "round {round}");
        }
        let r = attempt("bob", PW).await;
        assert_eq!(
            (r.status, &r.json["login"]),
            (200, &json!("signed_in")),
            "round {round}"
        );
        assert!(r.set_cookie("session_id").is_some());
    }

    let mut refused = None;
    for n in 1..=6 {
        let r = attempt("ada", "wrong").await;
        if r.status == 429 {
            refused = Some((n, r));
            break;
        }
        assert_eq!(
            (r.status, r.detail()),
            (401, "Incorrect username or password")
        );
    }
    let (n, r) = refused.expect("six wrong passwords and never locked out");
    assert_eq!(n, 6, "locked after the budget of five, not before");
    assert!(r.header("retry-after").is_some(), "no Retry-After");
    let r = attempt("ada", PW).await;
    assert_eq!(r.status, 429, "the right password during the lockout");
    assert!(r.set_cookie("session_id").is_none());
    // The email names the same account: one budget.
    let r = attempt("ada@example.com", PW).await;
    assert_eq!(r.status, 429);
}

async fn flash_messages(backend: Backend) {
    let (app, _) = app(backend).await;
    // Signed out: a signed cookie carries them, read once.
    let mut anon = Browser::new();
    let r = anon.post(&app.url("/flash")).await;
    assert_eq!(r.status, 200);
    let cookie = r.parsed_cookie("flash").unwrap();
    assert!(cookie.flag("httponly"));
    assert_eq!(anon.get(&app.url("/flashes")).await.json, json!(["hello"]));
    assert_eq!(anon.get(&app.url("/flashes")).await.json, json!([]));
    // A forged or altered cookie shows nothing.
    let mut forged = Browser::new();
    forged.post(&app.url("/flash")).await;
    let value = forged.cookies.get("flash").cloned().unwrap();
    let (payload, signature) = value.rsplit_once('.').unwrap();
    let other = base64_of(r#"[{"level":"info","message":"pwned"}]"#);
    forged
        .cookies
        .insert("flash".into(), format!("{other}.{signature}"));
    assert_eq!(forged.get(&app.url("/flashes")).await.json, json!([]));
    forged
        .cookies
        .insert("flash".into(), format!("{payload}.{}", "0".repeat(64)));
    assert_eq!(forged.get(&app.url("/flashes")).await.json, json!([]));

    // Signed in: kept in the session (no cookie), read once.
    let mut ada = app.signed_in("ada", PW).await;
    let r = ada.post_csrf(&app.url("/flash"), Body::None).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookie("flash").is_none());
    assert_eq!(ada.get(&app.url("/flashes")).await.json, json!(["hello"]));
    assert_eq!(ada.get(&app.url("/flashes")).await.json, json!([]));
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn multipart(fields: &[(&str, &str)]) -> (Vec<u8>, &'static str) {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str("--XyZ--\r\n");
    (body.into_bytes(), "multipart/form-data; boundary=XyZ")
}

async fn csrf_on_routes_that_never_ask(backend: Backend) {
    let (app, plain) = app(backend).await;
    let mut ada = app.signed_in("ada", PW).await;
    let bob = app.signed_in("bob", PW).await;
    let url = app.url("/plain");
    let token = ada.csrf();
    // The token a template gets is the session's.
    let r = ada.get(&app.url("/form-token")).await;
    assert_eq!(r.json["csrf_token"], token.as_str());
    assert_eq!(
        Browser::new().get(&app.url("/form-token")).await.json["csrf_token"],
        ""
    );
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let before = plain.load(Ordering::SeqCst);
        // The header.
        let r = ada
            .send(method, &url, Body::None, &[("x-csrf-token", &token)])
            .await;
        assert_eq!(r.status, 200, "{method} header");
        // A urlencoded field: the handler still gets the whole body.
        let r = ada
            .send(
                method,
                &url,
                form(&[("csrf_token", &token), ("note", "hi there")]),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{method} form");
        assert_eq!(
            r.json["body"],
            format!("csrf_token={token}&note=hi+there"),
            "{method}: the body is handed on intact"
        );
        // A multipart field.
        let (bytes, kind) = multipart(&[("note", "hi"), ("csrf_token", &token)]);
        let r = ada
            .send(method, &url, Body::Raw(bytes.clone(), kind), &[])
            .await;
        assert_eq!(r.status, 200, "{method} multipart");
        assert_eq!(r.json["body"], String::from_utf8(bytes).unwrap());
        assert_eq!(plain.load(Ordering::SeqCst), before + 3, "{method}");

        // Refused, and the handler never ran.
        let r = ada.send(method, &url, form(&[("note", "x")]), &[]).await;
        assert_eq!(
            (r.status, r.detail()),
            (403, "Missing CSRF token"),
            "{method}"
        );
        assert_eq!(r.header("x-csrf-error"), Some("true"));
        let r = ada
            .send(
                method,
                &url,
                Body::None,
                &[("x-csrf-token", &"0".repeat(64))],
            )
            .await;
        assert_eq!(
            (r.status, r.detail()),
            (403, "Invalid CSRF token"),
            "{method}"
        );
        let r = ada
            .send(method, &url, form(&[("csrf_token", &bob.csrf())]), &[])
            .await;
        assert_eq!(
            (r.status, r.detail()),
            (403, "Invalid CSRF token"),
            "{method}: another session's token"
        );
        let (bytes, kind) = multipart(&[("csrf_token", "nope")]);
        let r = ada.send(method, &url, Body::Raw(bytes, kind), &[]).await;
        assert_eq!(r.status, 403, "{method} multipart wrong");
        // The right token from another site is still refused (Fetch Metadata, Origin).
        let r = ada
            .send(
                method,
                &url,
                form(&[("csrf_token", &token)]),
                &[("origin", "https://evil.example")],
            )
            .await;
        assert_eq!(r.status, 403, "{method} cross-origin");
        assert_eq!(
            plain.load(Ordering::SeqCst),
            before + 3,
            "{method}: none ran"
        );
    }
    // No session cookie, or a dead one: nothing to protect, the public route answers.
    let before = plain.load(Ordering::SeqCst);
    let r = Browser::new().send("POST", &url, Body::None, &[]).await;
    assert_eq!(r.status, 200);
    let mut stale = Browser::new();
    stale.cookies.insert("session_id".into(), "gone".into());
    assert_eq!(stale.send("POST", &url, Body::None, &[]).await.status, 200);
    assert_eq!(plain.load(Ordering::SeqCst), before + 2);
    // Safe methods are never checked.
    assert_eq!(ada.get(&app.url("/data")).await.status, 200);
}

async fn two_workers_share_session_data() {
    let prefix = unique_prefix("layers");
    let users = crudauth_core::user::MemoryUsers::new();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let plain = Arc::new(AtomicUsize::new(0));
        let mut options = Options::new(Backend::Memory);
        let (users, prefix) = (users.clone(), prefix.clone());
        options.customize = Box::new(move |b: CrudAuthBuilder| {
            b.users(users).redis_url(redis_url()).redis_prefix(prefix)
        });
        options.routes = Some(Box::new(routes(plain)));
        workers.push(spawn(options).await);
    }
    users
        .create(new_user("ada@example.com", "ada", PW).await)
        .await
        .unwrap();
    let (a, b) = (&workers[0], &workers[1]);
    let mut ada = a.signed_in("ada", PW).await;
    let r = ada.post_csrf(&a.url("/data/visit"), Body::None).await;
    assert_eq!(r.json["visits"], 1);
    assert_eq!(
        visits(&mut ada, b).await,
        json!(1),
        "read on the other worker"
    );
    let r = ada.post_csrf(&b.url("/data/visit"), Body::None).await;
    assert_eq!(r.json["visits"], 2, "written on the other worker");
    assert_eq!(visits(&mut ada, a).await, json!(2));
    let r = ada.post_csrf(&b.url("/flash"), Body::None).await;
    assert_eq!(r.status, 200);
    assert_eq!(ada.get(&a.url("/flashes")).await.json, json!(["hello"]));
    assert_eq!(ada.get(&b.url("/flashes")).await.json, json!([]));
}

/// The session and CSRF layers applied alone, to an app that never mounts `auth.router()` and
/// signs users in from its own handler; a public route under them costs no store operation,
/// and a signed-in request reads the session once however many extractors ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layers_work_without_the_router() {
    use crudauth_core::store::{FaultyStore, MemoryStore};
    use crudauth_core::user::MemoryUsers;

    let users = MemoryUsers::new();
    users
        .create(new_user("ada@example.com", "ada", PW).await)
        .await
        .unwrap();
    let store = FaultyStore::new(Arc::new(MemoryStore::new()));
    let ops = store.clone();
    let auth = CrudAuth::builder()
        .secret_key([9u8; 32])
        .users(users)
        .passwords(crudauth_core::password::Passwords::fast_for_tests())
        .store(store)
        .session_transport(crudauth_axum::SessionTransport::default())
        .warn_on_memory_backend(false)
        .build()
        .unwrap();
    let guard = auth.initialize().await.unwrap();
    let plain = Arc::new(AtomicUsize::new(0));
    let app = routes(plain.clone())(&auth)
        .route("/public", get(|| async { "hello" }))
        .route(
            "/twice",
            get(|a: Session, b: Session| async move {
                Json(json!([a.is_signed_in(), b.is_signed_in()]))
            }),
        )
        .layer(auth.csrf_layer())
        .layer(auth.session_layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let url = |path: &str| format!("{base}{path}");

    let mut b = Browser::new();
    let before = ops.calls();
    assert_eq!(b.get(&url("/public")).await.status, 200);
    assert_eq!(ops.calls(), before, "a public route touches no store");

    let r = b
        .send(
            "POST",
            &url("/app/login"),
            form(&[("username", "ada"), ("password", PW)]),
            &[],
        )
        .await;
    assert_eq!((r.status, &r.json["login"]), (200, &json!("signed_in")));
    assert!(r.set_cookie("session_id").is_some());

    let before = ops.calls();
    assert_eq!(b.get(&url("/twice")).await.json, json!([true, true]));
    assert_eq!(
        ops.calls() - before,
        1,
        "one session read for two extractors"
    );
    let before = ops.calls();
    assert_eq!(b.get(&url("/public")).await.status, 200);
    assert_eq!(
        ops.calls(),
        before,
        "signed in, a public route still reads nothing"
    );

    let r = b.post_csrf(&url("/data/visit"), Body::None).await;
    assert_eq!((r.status, &r.json["visits"]), (200, &json!(1)));
    assert_eq!(b.get(&url("/data")).await.json["visits"], 1);

    // CSRF from the layer alone: without the token the plain handler never runs.
    let r = b.post(&url("/plain")).await;
    assert_eq!((r.status, r.detail()), (403, "Missing CSRF token"));
    assert_eq!(plain.load(Ordering::SeqCst), 0);
    let r = b.post_csrf(&url("/plain"), Body::None).await;
    assert_eq!(r.status, 200);
    assert_eq!(plain.load(Ordering::SeqCst), 1);

    let r = b.post_csrf(&url("/app/logout"), Body::None).await;
    assert_eq!(r.status, 200);
    assert_eq!(b.get(&url("/data")).await.json["signed_in"], false);
    guard.shutdown().await;
}

/// The bound is the configuration's: a smaller one refuses what the default takes, and one
/// past what a record can carry is refused at `build()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_bound_is_configurable() {
    let (app, _) = app_with(Backend::Memory, |b| {
        b.session_transport(crudauth_axum::SessionTransport::default().max_data_bytes(16))
    })
    .await;
    let mut ada = app.signed_in("ada", PW).await;
    let r = ada.post_csrf(&app.url("/data/visit"), Body::None).await;
    assert_eq!(
        (r.status, &r.json["visits"]),
        (200, &json!(1)),
        "12 bytes fit"
    );
    let r = ada.post_csrf(&app.url("/flash"), Body::None).await;
    assert_eq!((r.status, r.detail()), (413, "Session data too large"));
    assert_eq!(visits(&mut ada, &app).await, json!(1), "nothing changed");

    let refused = CrudAuth::builder()
        .secret_key([7u8; 32])
        .users(crudauth_core::user::MemoryUsers::new())
        .session_transport(crudauth_axum::SessionTransport::default().max_data_bytes(2 << 20))
        .build();
    assert!(
        matches!(refused, Err(crudauth_axum::ConfigError::Invalid(m)) if m.contains("max_data_bytes"))
    );
}

macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Memory).await; })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Redis).await; })*
        }
    };
}

on_each_backend!(
    data_round_trips,
    concurrent_writers,
    sign_in_and_out_from_handlers,
    sign_in_action_has_the_lockout,
    flash_messages,
    csrf_on_routes_that_never_ask,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_session_data_through_redis() {
    two_workers_share_session_data().await;
}
