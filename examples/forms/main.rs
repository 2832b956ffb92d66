//! A server-rendered crudauth-rs app without JavaScript: registration, sign-in (with
//! remember-me and two-factor), the dashboard, devices, password change, sudo, two-factor
//! enrolment with a QR code, an OpenID Connect button, flash messages and sign-out.
//!
//! ```text
//! CRUDAUTH_COOKIE_SECURE=false cargo run -p crudauth-examples --example forms
//! ```
//!
//! Then open <http://127.0.0.1:3001>. The environment is the quickstart's: `CRUDAUTH_BIND`
//! (127.0.0.1:3001 here), `SECRET_KEY`, `DATABASE_URL` (an SQLite file beside the binary),
//! `REDIS_URL`, `CRUDAUTH_COOKIE_SECURE`, `CRUDAUTH_PUBLIC_URL`, `CRUDAUTH_MFA_KEY`,
//! `CRUDAUTH_OIDC_ISSUER` with `CRUDAUTH_OIDC_CLIENT_ID` and `CRUDAUTH_OIDC_CLIENT_SECRET`.
//!
//! Every page is rendered by minijinja from `templates/`; every form carries the session's
//! CSRF token in a hidden `csrf_token` field, which `auth.layer()` checks; every POST answers
//! 303 to the next page with a flash message (post/redirect/get), or renders its page again
//! with the error and a 4xx status.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::{context, Environment, Value};
use serde::Deserialize;

use crudauth_axum::extract::{CsrfRejection, CsrfToken, CurrentUser, Login, Session, Sudo};
use crudauth_axum::{actions, AuthError, CookieConfig, CrudAuth, Reauth, SessionTransport};
use crudauth_core::mfa::MfaConfig;
use crudauth_core::oauth::OpenIdProvider;
use crudauth_sqlx::{ColumnMap, SqlxUsers};

const DEV_SECRET: &str = "crudauth-forms-development-key-do-not-use-in-production";
const PUBLIC_URL: &str = "http://localhost:3001";
/// The Fernet key TOTP secrets are sealed with when `CRUDAUTH_MFA_KEY` is unset: development
/// only, like `DEV_SECRET`.
const DEV_MFA_KEY: &str = "Y3J1ZGF1dGgtcXVpY2tzdGFydC1kZXYtbWZhLWtleSE=";
const MFA_ISSUER: &str = "crudauth-rs forms";
/// Where crudauth's own JSON routes are mounted: the pages use `/login`, `/register`, ….
const API: &str = "/api";
/// The cookie that carries a pending two-factor challenge from `/login` to
/// `/login/two-factor` (nobody is signed in yet, so there is no session to keep it in).
const CHALLENGE_COOKIE: &str = "forms_mfa_challenge";

/// What every handler shares.
struct App {
    auth: CrudAuth,
    templates: Environment<'static>,
    /// The authorize URL of the OIDC provider, when one is configured.
    oidc: Option<String>,
    secure: bool,
}

type Shared = State<Arc<App>>;

/// A page to render: its template, status and variables.
struct Page {
    template: &'static str,
    status: StatusCode,
    vars: Value,
    error: Option<String>,
}

impl Page {
    fn new(template: &'static str, vars: Value) -> Self {
        Page {
            template,
            status: StatusCode::OK,
            vars,
            error: None,
        }
    }

    /// The page again with `error` in `#error`, with the error's status.
    fn failed(mut self, error: &AuthError) -> Self {
        self.status = error.status();
        self.error = Some(message(error));
        self
    }
}

/// Renders `page` with what every page shows: the flash messages (taken, so shown once),
/// who is signed in and the CSRF token.
fn render(app: &App, session: &Session, csrf: Option<&CsrfToken>, page: Page) -> Response {
    let flashes: Vec<Value> = session
        .take_flashes()
        .into_iter()
        .map(|f| context! { level => f.level, message => f.message })
        .collect();
    let username = session
        .user()
        .filter(|_| session.is_signed_in())
        .and_then(|p| p.user.username.clone());
    let base = context! {
        flashes,
        username,
        csrf_token => csrf.map(CsrfToken::as_str).unwrap_or_default(),
        error => page.error,
        oidc => app.oidc.clone(),
    };
    let html = app
        .templates
        .get_template(page.template)
        .and_then(|t| t.render(context! { ..page.vars, ..base }));
    match html {
        Ok(html) => (page.status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, template = page.template, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// The text of an error for `#error`: its detail, or the messages of a validation error.
fn message(error: &AuthError) -> String {
    match error.detail() {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|i| i.get("msg").and_then(serde_json::Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// 303 to `to`.
fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Adds a flash message; a message that does not fit is dropped (and logged).
fn flash(session: &Session, level: &str, text: &str) {
    if let Err(e) = session.flash(level, text) {
        tracing::warn!(error = %message(&e.into_auth_error()), "flash message dropped");
    }
}

/// What the pages show of the signed-in user; `None` (with a flash for the sign-in page the
/// caller redirects to) when signed out.
fn require_user(session: &Session) -> Option<CurrentUserView> {
    match session.user().filter(|_| session.is_signed_in()) {
        Some(p) => Some(CurrentUserView {
            email: p.user.email.clone().unwrap_or_default(),
        }),
        None => {
            flash(session, "info", "Sign in to continue.");
            None
        }
    }
}

/// What the dashboard shows of the user.
struct CurrentUserView {
    email: String,
}

/// Whether the form's `csrf_token` is the session's. The CSRF layer checks every unsafe
/// request itself, except the paths crudauth's own routes use (`/logout`, `/sudo`, …), which
/// crudauth checks in its handlers: pages served on those paths check here.
fn csrf_ok(csrf: Option<&CsrfToken>, sent: &str) -> bool {
    csrf.is_some_and(|t| !t.as_str().is_empty() && t.as_str().as_bytes() == sent.as_bytes())
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "CSRF token missing or incorrect.").into_response()
}

async fn home(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
) -> Response {
    if session.is_signed_in() {
        return see_other("/dashboard");
    }
    render(
        &app,
        &session,
        csrf.ok().as_ref(),
        Page::new("home.html", context! { title => "Welcome" }),
    )
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn register_page(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
) -> Response {
    render(
        &app,
        &session,
        csrf.ok().as_ref(),
        Page::new("register.html", context! { title => "Register" }),
    )
}

async fn register(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
    Form(form): Form<RegisterForm>,
) -> Response {
    match actions::register(
        &session,
        form.email.trim(),
        form.username.trim(),
        &form.password,
    )
    .await
    {
        Ok(_) => {
            flash(&session, "success", "Welcome! Your account is ready.");
            see_other("/dashboard")
        }
        Err(e) => {
            let vars = context! { title => "Register", form_username => form.username, form_email => form.email };
            render(
                &app,
                &session,
                csrf.ok().as_ref(),
                Page::new("register.html", vars).failed(&e),
            )
        }
    }
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    remember_me: Option<String>,
}

async fn login_page(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
) -> Response {
    render(
        &app,
        &session,
        csrf.ok().as_ref(),
        Page::new("login.html", context! { title => "Sign in" }),
    )
}

async fn login(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
    Form(form): Form<LoginForm>,
) -> Response {
    let vars = context! { title => "Sign in", form_username => form.username.clone() };
    // The lockout, the same timing for unknown users and the failed-login hook: /login's work.
    let remember_me = form.remember_me.is_some();
    match actions::sign_in(&session, form.username.trim(), &form.password, remember_me).await {
        Ok(Login::SignedIn) => {
            flash(&session, "success", "Signed in.");
            see_other("/dashboard")
        }
        Ok(Login::MfaRequired { challenge }) => {
            let mut response = see_other("/login/two-factor");
            if let Ok(v) = HeaderValue::from_str(&challenge_cookie(&challenge, app.secure, 300)) {
                response.headers_mut().append(SET_COOKIE, v);
            }
            response
        }
        Err(e) => render(
            &app,
            &session,
            csrf.ok().as_ref(),
            Page::new("login.html", vars).failed(&e),
        ),
    }
}

fn challenge_cookie(value: &str, secure: bool, max_age: u64) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{CHALLENGE_COOKIE}={value}; Path=/login; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

async fn two_factor_login_page(
    State(app): Shared,
    session: Session,
    headers: HeaderMap,
) -> Response {
    if read_cookie(&headers, CHALLENGE_COOKIE).is_none() {
        flash(&session, "info", "Sign in first.");
        return see_other("/login");
    }
    render(
        &app,
        &session,
        None,
        Page::new("two_factor_login.html", context! { title => "Two-factor" }),
    )
}

async fn two_factor_login(
    State(app): Shared,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let Some(challenge) = read_cookie(&headers, CHALLENGE_COOKIE) else {
        flash(&session, "info", "Sign in first.");
        return see_other("/login");
    };
    match session.complete_mfa(&challenge, form.code.trim()).await {
        Ok(()) => {
            flash(&session, "success", "Signed in.");
            let mut response = see_other("/dashboard");
            if let Ok(v) = HeaderValue::from_str(&challenge_cookie("", app.secure, 0)) {
                response.headers_mut().append(SET_COOKIE, v);
            }
            response
        }
        Err(e) => render(
            &app,
            &session,
            None,
            Page::new("two_factor_login.html", context! { title => "Two-factor" }).failed(&e),
        ),
    }
}

async fn dashboard(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
) -> Response {
    let Some(me) = require_user(&session) else {
        return see_other("/login");
    };
    render(
        &app,
        &session,
        csrf.ok().as_ref(),
        Page::new(
            "dashboard.html",
            context! { title => "Dashboard", email => me.email },
        ),
    )
}

async fn devices(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
) -> Response {
    if require_user(&session).is_none() {
        return see_other("/login");
    }
    let (Some(sessions), Some(principal)) = (app.auth.sessions(), session.user()) else {
        return see_other("/login");
    };
    let current = session.handle();
    let listed = match sessions.list(principal.user_id()).await {
        Ok(listed) => listed,
        Err(e) => return AuthError::from(e).into_response(),
    };
    let rows: Vec<Value> = listed
        .into_iter()
        .map(|s| {
            let device = s.record.device();
            context! {
                id => s.handle.clone(),
                current => Some(&s.handle) == current.as_ref(),
                device => format!("{} on {}", device.browser, device.os),
                ip => s.record.ip().to_owned(),
                created => s.record.created_at / 1000,
            }
        })
        .collect();
    render(
        &app,
        &session,
        csrf.ok().as_ref(),
        Page::new(
            "devices.html",
            context! { title => "Devices", devices => rows },
        ),
    )
}

async fn revoke_device(State(app): Shared, session: Session, Path(id): Path<String>) -> Response {
    if require_user(&session).is_none() {
        return see_other("/login");
    }
    let (Some(sessions), Some(principal)) = (app.auth.sessions(), session.user()) else {
        return see_other("/login");
    };
    if session.handle().as_deref() == Some(id.as_str()) {
        flash(&session, "error", "Use Sign out for this device.");
        return see_other("/devices");
    }
    match sessions.revoke_owned(&id, principal.user_id()).await {
        Ok(true) => flash(&session, "success", "Device signed out."),
        Ok(false) => flash(&session, "error", "No such device."),
        Err(e) => return AuthError::from(e).into_response(),
    }
    see_other("/devices")
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

async fn password_page(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
) -> Response {
    if require_user(&session).is_none() {
        return see_other("/login");
    }
    render(
        &app,
        &session,
        csrf.ok().as_ref(),
        Page::new("password.html", context! { title => "Change password" }),
    )
}

async fn change_password(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
    Form(form): Form<PasswordForm>,
) -> Response {
    if require_user(&session).is_none() {
        return see_other("/login");
    }
    match actions::change_password(&session, &form.current_password, &form.new_password).await {
        Ok(_) => {
            flash(
                &session,
                "success",
                "Password changed. Your other devices were signed out.",
            );
            see_other("/dashboard")
        }
        Err(e) => render(
            &app,
            &session,
            csrf.ok().as_ref(),
            Page::new("password.html", context! { title => "Change password" }).failed(&e),
        ),
    }
}

#[derive(Deserialize)]
struct SudoQuery {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
struct SudoForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// `next` when it is a path on this site, else the dashboard.
fn local_path(next: &str) -> String {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if local {
        next.to_owned()
    } else {
        "/dashboard".to_owned()
    }
}

async fn sudo_page(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
    Query(q): Query<SudoQuery>,
) -> Response {
    if require_user(&session).is_none() {
        return see_other("/login");
    }
    let vars = context! { title => "Confirm your password", next => local_path(&q.next) };
    render(
        &app,
        &session,
        csrf.ok().as_ref(),
        Page::new("sudo.html", vars),
    )
}

async fn sudo(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
    Form(form): Form<SudoForm>,
) -> Response {
    let csrf = csrf.ok();
    if !csrf_ok(csrf.as_ref(), &form.csrf_token) {
        return forbidden();
    }
    let Some(principal) = session.user() else {
        return see_other("/login");
    };
    let next = local_path(&form.next);
    match app
        .auth
        .elevate(principal, Reauth::Password(&form.password))
        .await
    {
        Ok(elevated) => {
            // The session moved to a new id: its cookies go on this answer.
            let mut response = see_other(&next);
            for cookie in elevated.cookies {
                response.headers_mut().append(SET_COOKIE, cookie);
            }
            response
        }
        Err(e) => {
            let vars = context! { title => "Confirm your password", next };
            render(
                &app,
                &session,
                csrf.as_ref(),
                Page::new("sudo.html", vars).failed(&e),
            )
        }
    }
}

/// The two-factor page: status, or the enrolment step a POST asked for.
async fn two_factor_view(
    app: &App,
    session: &Session,
    csrf: Option<&CsrfToken>,
    extra: Value,
    error: Option<&AuthError>,
) -> Response {
    let Some(principal) = session.user() else {
        return see_other("/login");
    };
    let enabled = match app
        .auth
        .users()
        .uncached()
        .find_by_id(principal.user_id())
        .await
    {
        Ok(Some(user)) => user.mfa.confirmed,
        Ok(None) => false,
        Err(e) => return AuthError::from(e).into_response(),
    };
    let vars = context! { title => "Two-factor authentication", enabled, ..extra };
    let page = Page::new("two_factor.html", vars);
    let page = match error {
        Some(e) => page.failed(e),
        None => page,
    };
    render(app, session, csrf, page)
}

async fn two_factor_page(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
) -> Response {
    if require_user(&session).is_none() {
        return see_other("/login");
    }
    two_factor_view(&app, &session, csrf.ok().as_ref(), context! {}, None).await
}

#[derive(Deserialize)]
struct SetupForm {
    #[serde(default)]
    password: String,
}

/// The `otpauth://` URI as an inline SVG QR code, `svg#mfa-qr`.
fn qr_svg(uri: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(uri.as_bytes()) else {
        return String::new();
    };
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    let start = svg.find("<svg").unwrap_or(0);
    svg[start..].replacen("<svg", "<svg id=\"mfa-qr\"", 1)
}

async fn two_factor_setup(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
    Form(form): Form<SetupForm>,
) -> Response {
    if require_user(&session).is_none() {
        return see_other("/login");
    }
    let csrf = csrf.ok();
    match actions::setup_two_factor(&session, &form.password).await {
        Ok(view) => {
            let setup = context! { qr => qr_svg(&view.otpauth_uri), secret => view.secret };
            two_factor_view(&app, &session, csrf.as_ref(), context! { setup }, None).await
        }
        Err(e) => two_factor_view(&app, &session, csrf.as_ref(), context! {}, Some(&e)).await,
    }
}

async fn two_factor_confirm(
    State(app): Shared,
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
    Form(form): Form<CodeForm>,
) -> Response {
    if require_user(&session).is_none() {
        return see_other("/login");
    }
    let csrf = csrf.ok();
    match actions::confirm_two_factor(&session, form.code.trim()).await {
        Ok(codes) => {
            two_factor_view(
                &app,
                &session,
                csrf.as_ref(),
                context! { recovery_codes => codes },
                None,
            )
            .await
        }
        Err(e) => two_factor_view(&app, &session, csrf.as_ref(), context! {}, Some(&e)).await,
    }
}

async fn two_factor_disable(
    State(app): Shared,
    session: Session,
    sudo: Result<CurrentUser<Sudo>, AuthError>,
    csrf: Result<CsrfToken, CsrfRejection>,
    Form(form): Form<CodeForm>,
) -> Response {
    if require_user(&session).is_none() {
        return see_other("/login");
    }
    if sudo.is_err() {
        flash(&session, "info", "Confirm your password first.");
        return see_other("/sudo?next=/two-factor");
    }
    match actions::disable_two_factor(&session, form.code.trim()).await {
        Ok(()) => {
            flash(&session, "success", "Two-factor authentication is off.");
            see_other("/two-factor")
        }
        Err(e) => two_factor_view(&app, &session, csrf.ok().as_ref(), context! {}, Some(&e)).await,
    }
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf_token: String,
}

async fn logout(
    session: Session,
    csrf: Result<CsrfToken, CsrfRejection>,
    Form(form): Form<TokenForm>,
) -> Response {
    if session.is_signed_in() && !csrf_ok(csrf.ok().as_ref(), &form.csrf_token) {
        return forbidden();
    }
    if let Err(e) = session.logout().await {
        return e.into_response();
    }
    flash(&session, "success", "Signed out.");
    see_other("/")
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn default_database_url() -> String {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .unwrap_or_default();
    format!(
        "sqlite://{}?mode=rwc",
        dir.join("crudauth-forms.db").display()
    )
}

fn templates() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("home.html", include_str!("templates/home.html")),
        ("register.html", include_str!("templates/register.html")),
        ("login.html", include_str!("templates/login.html")),
        (
            "two_factor_login.html",
            include_str!("templates/two_factor_login.html"),
        ),
        ("dashboard.html", include_str!("templates/dashboard.html")),
        ("devices.html", include_str!("templates/devices.html")),
        ("password.html", include_str!("templates/password.html")),
        ("sudo.html", include_str!("templates/sudo.html")),
        ("two_factor.html", include_str!("templates/two_factor.html")),
    ] {
        env.add_template(name, source)?;
    }
    Ok(env)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let bind: SocketAddr = env("CRUDAUTH_BIND")
        .unwrap_or_else(|| "127.0.0.1:3001".into())
        .parse()?;
    let secret = env("SECRET_KEY").unwrap_or_else(|| {
        tracing::warn!(
            "SECRET_KEY is not set: using a development key. Never do this in production."
        );
        DEV_SECRET.to_owned()
    });
    let secure = env("CRUDAUTH_COOKIE_SECURE")
        .is_none_or(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | "no"));
    let database_url = env("DATABASE_URL").unwrap_or_else(default_database_url);
    let users = SqlxUsers::connect(&database_url)
        .await?
        .with_columns(ColumnMap::new().provider("oidc"))?;
    users.create_default_table().await?;
    let public_url = env("CRUDAUTH_PUBLIC_URL").unwrap_or_else(|| PUBLIC_URL.to_owned());
    let mfa_keys: Vec<String> = match env("CRUDAUTH_MFA_KEY") {
        Some(keys) => keys.split(',').map(|k| k.trim().to_owned()).collect(),
        None => {
            tracing::warn!(
                "CRUDAUTH_MFA_KEY is not set: TOTP secrets are sealed with a development key."
            );
            vec![DEV_MFA_KEY.to_owned()]
        }
    };
    let mut builder = CrudAuth::builder()
        .secret_key(secret)
        .mfa(MfaConfig::new(MFA_ISSUER, mfa_keys))
        .users(users)
        .session_transport(SessionTransport::default())
        .cookies(CookieConfig::default().secure(secure));
    if let Some(url) = env("REDIS_URL") {
        builder = builder.redis_url(url);
    }
    let oidc = env("CRUDAUTH_OIDC_ISSUER")
        .map(|_| format!("{API}/oauth/oidc/authorize?redirect_to=/dashboard"));
    builder = oauth_providers(builder, &format!("{public_url}{API}"))?;
    let auth = builder.build()?;
    let guard = auth.initialize().await?;

    let app = Arc::new(App {
        auth: auth.clone(),
        templates: templates()?,
        oidc,
        secure,
    });
    let router = Router::new()
        .route("/", get(home))
        .route("/register", get(register_page).post(register))
        .route("/login", get(login_page).post(login))
        .route(
            "/login/two-factor",
            get(two_factor_login_page).post(two_factor_login),
        )
        .route("/dashboard", get(dashboard))
        .route("/devices", get(devices))
        .route("/devices/{id}/revoke", post(revoke_device))
        .route("/password", get(password_page).post(change_password))
        .route("/sudo", get(sudo_page).post(sudo))
        .route("/two-factor", get(two_factor_page))
        .route("/two-factor/setup", post(two_factor_setup))
        .route("/two-factor/confirm", post(two_factor_confirm))
        .route("/two-factor/disable", post(two_factor_disable))
        .route("/logout", post(logout))
        // crudauth's JSON routes (OAuth sign-in among them) beside the pages: their paths
        // (`/login`, `/register`, …) are the pages' own, so they live under /api.
        .nest(API, auth.router())
        .with_state(app)
        .layer(auth.layer());

    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("crudauth forms listening on http://{bind}");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    guard.shutdown().await;
    Ok(())
}

/// Mounts the OpenID provider `oidc` from `CRUDAUTH_OIDC_ISSUER` (with `_CLIENT_ID` and
/// `_CLIENT_SECRET`; no secret makes a public client). Its callback is
/// `{base}/oauth/oidc/callback`.
fn oauth_providers(
    mut builder: crudauth_axum::CrudAuthBuilder,
    base: &str,
) -> Result<crudauth_axum::CrudAuthBuilder, Box<dyn std::error::Error>> {
    if let Some(issuer) = env("CRUDAUTH_OIDC_ISSUER") {
        let id = env("CRUDAUTH_OIDC_CLIENT_ID")
            .ok_or("CRUDAUTH_OIDC_ISSUER is set but CRUDAUTH_OIDC_CLIENT_ID is not")?;
        let secret = env("CRUDAUTH_OIDC_CLIENT_SECRET").unwrap_or_default();
        builder = builder.oauth("oidc", OpenIdProvider::new(&issuer, id, secret)?);
    }
    Ok(builder.redirect_base_url(base))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}
