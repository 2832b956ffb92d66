//! The crudauth-rs demo app: every route of CONTRACT.md's demo table over `auth.router()`,
//! and `GET /openapi.json`, the OpenAPI 3.1 document of `auth.router()`'s routes.
//!
//! ```text
//! cargo run --example quickstart
//! CRUDAUTH_COOKIE_SECURE=false REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart
//! ```
//!
//! Environment: `CRUDAUTH_BIND` (127.0.0.1:3000), `SECRET_KEY` (a development key, with a
//! warning), `DATABASE_URL` (an SQLite file beside the binary), `REDIS_URL` (unset: in-memory
//! stores), `CRUDAUTH_COOKIE_SECURE` (true), `CRUDAUTH_OUTBOX` (unset: emails are logged),
//! `CRUDAUTH_ADMIN` (`username:email:password`, created at start-up if absent),
//! `CRUDAUTH_PUBLIC_URL` (`http://localhost:3000`: the base of email links),
//! `CRUDAUTH_SMTP_URL` (unset; `smtp://user:pass@host:port` sends email over SMTP instead of
//! the log or the outbox) with `CRUDAUTH_SMTP_FROM` (the sender address), `CRUDAUTH_MFA_KEY`
//! (comma-separated Fernet keys for TOTP secrets at rest, the first encrypting; unset: a
//! development key, with a warning), `CRUDAUTH_OIDC_ISSUER` with `CRUDAUTH_OIDC_CLIENT_ID` and
//! `CRUDAUTH_OIDC_CLIENT_SECRET` (an OpenID provider named `oidc`, discovered at start-up),
//! `CRUDAUTH_GITHUB_CLIENT_ID` / `_SECRET` and `CRUDAUTH_GOOGLE_CLIENT_ID` / `_SECRET` (GitHub
//! and Google sign-in); their callbacks are `{CRUDAUTH_PUBLIC_URL}/oauth/{name}/callback`.
//! `CRUDAUTH_LOCKOUT_MAX_ATTEMPTS` (5: the login lockout's attempts per address and per
//! identifier per window) exists for load tests such as `bench/isolation.py`, whose login storm
//! comes from one address: with the default, the sixth attempt in flight locks it out.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use crudauth_axum::extract::{
    BearerOnly, CurrentUser, MaybeUser, SessionOnly, Sudo, Superuser, Verified,
};
use crudauth_axum::{
    AuthError, BearerTransport, CookieConfig, CrudAuth, EmailConfig, RateLimit, SessionTransport,
};
use crudauth_core::email::{LogSender, OutboxFile, SmtpSender};
use crudauth_core::mfa::MfaConfig;
use crudauth_core::oauth::{GitHub, OpenIdProvider};
use crudauth_core::user::{NewUser, UserId, UserStore};
use crudauth_sqlx::{ColumnMap, SqlxUsers};

const DEV_SECRET: &str = "crudauth-quickstart-development-key-do-not-use-in-production";
const PUBLIC_URL: &str = "http://localhost:3000";
/// The Fernet key TOTP secrets are sealed with when `CRUDAUTH_MFA_KEY` is unset: development
/// only, like `DEV_SECRET`.
const DEV_MFA_KEY: &str = "Y3J1ZGF1dGgtcXVpY2tzdGFydC1kZXYtbWZhLWtleSE=";
/// The name authenticator apps show for the demo (the reference app's).
const MFA_ISSUER: &str = "crudauth-rs demo";

async fn hello() -> Json<Value> {
    Json(json!({"hello": "world"}))
}

/// `/dashboard`'s answer, serialised straight from the principal.
#[derive(Serialize)]
struct Dashboard<'a> {
    user_id: &'a UserId,
    username: Option<&'a str>,
    via: &'static str,
}

async fn dashboard(user: CurrentUser) -> Response {
    let u = &user.user;
    Json(Dashboard {
        user_id: &u.id,
        username: u.username.as_deref(),
        via: user.via,
    })
    .into_response()
}

async fn feed(user: MaybeUser) -> Json<Value> {
    Json(json!({"auth": user.0.is_some()}))
}

async fn ok(_: CurrentUser<Superuser>) -> Json<Value> {
    Json(json!({"ok": true}))
}

async fn verified_ok(_: CurrentUser<Verified>) -> Json<Value> {
    Json(json!({"ok": true}))
}

async fn settings(_: CurrentUser<SessionOnly>) -> Json<Value> {
    Json(json!({"ok": true}))
}

async fn sensitive(_: CurrentUser<Sudo>) -> Json<Value> {
    Json(json!({"ok": true}))
}

async fn contact() -> Json<Value> {
    Json(json!({"sent": true}))
}

async fn items(user: CurrentUser<BearerOnly>) -> Json<Value> {
    Json(json!({"user_id": user.user.id}))
}

/// An unknown path, answered as crudauth (FastAPI) does, so a frontend sees JSON everywhere.
async fn not_found() -> AuthError {
    AuthError::new(StatusCode::NOT_FOUND, "Not Found")
}

/// A known path with a method it does not take (axum adds the `Allow` header).
async fn method_not_allowed() -> AuthError {
    AuthError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
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
        dir.join("crudauth-quickstart.db").display()
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let bind: SocketAddr = env("CRUDAUTH_BIND")
        .unwrap_or_else(|| "127.0.0.1:3000".into())
        .parse()?;
    let secret = env("SECRET_KEY").unwrap_or_else(|| {
        tracing::warn!(
            "SECRET_KEY is not set: using a development key. Never do this in production."
        );
        DEV_SECRET.to_owned()
    });
    let secure = env("CRUDAUTH_COOKIE_SECURE")
        .is_none_or(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | "no"));
    // `__Host-` cookie names (Secure, Path=/, no Domain): no sibling subdomain can toss one.
    let host_prefix = env("CRUDAUTH_COOKIE_HOST_PREFIX")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"));
    let database_url = env("DATABASE_URL").unwrap_or_else(default_database_url);

    // crudauth's users table, with a column for each provider's account id: oidc_id beside
    // the default google_id and github_id.
    let users = SqlxUsers::connect(&database_url)
        .await?
        .with_columns(ColumnMap::new().provider("oidc"))?;
    users.create_default_table().await?;

    // Email links (and OAuth callbacks) start with the public URL.
    let public_url = env("CRUDAUTH_PUBLIC_URL").unwrap_or_else(|| PUBLIC_URL.to_owned());
    let email = match (env("CRUDAUTH_SMTP_URL"), env("CRUDAUTH_OUTBOX")) {
        (Some(url), _) => {
            let from = env("CRUDAUTH_SMTP_FROM")
                .unwrap_or_else(|| "crudauth quickstart <no-reply@localhost>".into());
            EmailConfig::new(&public_url, SmtpSender::from_url(&url, &from)?)
        }
        (None, Some(path)) => EmailConfig::new(&public_url, OutboxFile::new(path)),
        (None, None) => EmailConfig::new(&public_url, LogSender::new()),
    };
    // Two-factor is on (never required): the first key seals new secrets, any key opens one.
    let mfa_keys: Vec<String> = match env("CRUDAUTH_MFA_KEY") {
        Some(keys) => keys.split(',').map(|k| k.trim().to_owned()).collect(),
        None => {
            tracing::warn!(
                "CRUDAUTH_MFA_KEY is not set: TOTP secrets are sealed with a development key. \
                 Never do this in production."
            );
            vec![DEV_MFA_KEY.to_owned()]
        }
    };
    let mut builder = CrudAuth::builder()
        .secret_key(secret)
        .mfa(MfaConfig::new(MFA_ISSUER, mfa_keys))
        .users(users)
        // Tried in this order: session first, then bearer (refresh token in a cookie).
        .session_transport(SessionTransport::default())
        .bearer_transport(BearerTransport::default())
        .cookies(
            CookieConfig::default()
                .secure(secure)
                .host_prefix(host_prefix),
        )
        .email(email);
    if let Some(n) = env("CRUDAUTH_LOCKOUT_MAX_ATTEMPTS") {
        builder = builder.lockout(crudauth_axum::LockoutConfig {
            max_attempts: n.parse()?,
            ..Default::default()
        });
    }
    if let Some(url) = env("REDIS_URL") {
        builder = builder.redis_url(url);
    }
    builder = oauth_providers(builder, &public_url)?;
    let auth = builder.build()?;
    if let Some(admin) = env("CRUDAUTH_ADMIN") {
        ensure_admin(&auth, &admin).await?;
    }
    let guard = auth.initialize().await?;
    let openapi = auth.openapi();

    let app = Router::new()
        .route("/hello", get(hello))
        .route("/dashboard", get(dashboard))
        .route("/feed", get(feed))
        .route("/admin", get(ok))
        .route("/secret", get(verified_ok))
        .route("/account/settings", post(settings))
        .route("/account/sensitive", post(sensitive))
        .route(
            "/contact",
            post(contact).route_layer(
                auth.rate_limit("contact", RateLimit::new(5, Duration::from_secs(60))),
            ),
        )
        .route("/v1/items", get(items))
        // The OpenAPI 3.1 document of auth.router()'s routes, as this configuration mounts them.
        .route("/openapi.json", get(move || async move { Json(openapi) }))
        .merge(auth.router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(auth.layer());

    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("crudauth quickstart listening on http://{bind}");
    println!(
        "try: curl -s -X POST http://{bind}/register -H 'content-type: application/json' \
         -d '{{\"email\":\"ada@example.com\",\"username\":\"ada\",\"password\":\"correct horse\"}}'"
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    guard.shutdown().await;
    Ok(())
}

/// Mounts the OAuth providers the environment configures: `oidc` from `CRUDAUTH_OIDC_ISSUER`
/// (with `_CLIENT_ID`, `_CLIENT_SECRET`; no secret makes a public client), `github` and
/// `google` from their `_CLIENT_ID` and `_SECRET`. Sign-ins land on the public URL.
fn oauth_providers(
    mut builder: crudauth_axum::CrudAuthBuilder,
    public_url: &str,
) -> Result<crudauth_axum::CrudAuthBuilder, Box<dyn std::error::Error>> {
    let pair = |prefix: &str| {
        env(&format!("{prefix}_CLIENT_ID")).map(|id| {
            let secret = env(&format!("{prefix}_CLIENT_SECRET"))
                .or_else(|| env(&format!("{prefix}_SECRET")))
                .unwrap_or_default();
            (id, secret)
        })
    };
    if let Some(issuer) = env("CRUDAUTH_OIDC_ISSUER") {
        let (id, secret) = pair("CRUDAUTH_OIDC")
            .ok_or("CRUDAUTH_OIDC_ISSUER is set but CRUDAUTH_OIDC_CLIENT_ID is not")?;
        builder = builder.oauth("oidc", OpenIdProvider::new(&issuer, id, secret)?);
    }
    if let Some((id, secret)) = pair("CRUDAUTH_GITHUB") {
        builder = builder.oauth("github", GitHub::new(id, secret)?);
    }
    if let Some((id, secret)) = pair("CRUDAUTH_GOOGLE") {
        builder = builder.oauth("google", OpenIdProvider::google(id, secret)?);
    }
    Ok(builder.redirect_base_url(public_url))
}

/// Creates the `CRUDAUTH_ADMIN` superuser (`username:email:password`) unless it exists, hashed
/// by the app's configured hasher.
async fn ensure_admin(auth: &CrudAuth, spec: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut parts = spec.splitn(3, ':');
    let (Some(username), Some(email), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("CRUDAUTH_ADMIN must be username:email:password".into());
    };
    let users = auth.users();
    if users
        .find_by_field(crudauth_core::user::LoginField::Username, username)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let hash = auth
        .passwords()
        .hash(&crudauth_core::password::Password::new(password))
        .await?;
    let mut admin = NewUser::new(email, username, hash.0);
    admin.is_superuser = true;
    admin.email_verified = true;
    users.create(admin).await?;
    tracing::info!(username, "created the CRUDAUTH_ADMIN superuser");
    Ok(())
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
