//! Transports: where a request's credential comes from. Tried in the configured order; the
//! first credential present wins.
//!
//! A transport answers one of three things: a principal; *absent* (no credential of its kind,
//! or one that expired — the next transport is tried); or an error (a credential that is
//! present but forged, a CSRF failure, a backend outage), which ends resolution.
//!
//! A custom transport is one implementation of [`Transport`]:
//!
//! ```
//! use async_trait::async_trait;
//! use axum::http::request::Parts;
//! use crudauth_axum::{AuthError, CrudAuth, Principal, Transport};
//! use crudauth_core::user::UserId;
//!
//! /// `X-Api-Key: <user id>:<key>` — for illustration only.
//! #[derive(Debug)]
//! struct ApiKey;
//!
//! #[async_trait]
//! impl Transport for ApiKey {
//!     fn name(&self) -> &'static str { "api_key" }
//!     async fn authenticate(&self, parts: &Parts, auth: &CrudAuth) -> Result<Option<Principal>, AuthError> {
//!         let Some(value) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) else {
//!             return Ok(None); // absent: try the next transport
//!         };
//!         let (id, key) = value.split_once(':').ok_or_else(AuthError::invalid_token)?;
//!         if key != "let-me-in" { return Err(AuthError::invalid_token()); }
//!         let user = auth.load_active_user(&UserId::Text(id.to_owned())).await?;
//!         Ok(user.map(|u| Principal::new(u, "api_key", vec![])))
//!     }
//! }
//! ```

use std::fmt::Debug;

use async_trait::async_trait;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};

use crudauth_core::principal::Principal;
use crudauth_core::secret::SessionId;
use crudauth_core::session::{LoadedSession, Sessions};

use crate::builder::CrudAuth;
use crate::cookies;
use crate::error::AuthError;

/// A source of credentials.
#[async_trait]
pub trait Transport: Send + Sync + Debug + 'static {
    /// The transport's name, as `via` reports it.
    fn name(&self) -> &'static str;

    /// Resolves the request's credential of this kind: `Ok(None)` when absent.
    async fn authenticate(
        &self,
        parts: &Parts,
        auth: &CrudAuth,
    ) -> Result<Option<Principal>, AuthError>;
}

/// Whether a method changes state (and so needs CSRF protection under cookie auth).
pub(crate) fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Checks the `X-CSRF-Token` header against the session (403 with `X-CSRF-Error: true`).
pub(crate) fn check_csrf(
    sessions: &Sessions,
    session: &LoadedSession,
    headers: &HeaderMap,
) -> Result<(), AuthError> {
    let presented = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if presented.is_empty() {
        return Err(AuthError::csrf("Missing CSRF token"));
    }
    if !sessions
        .csrf()
        .verify(&session.id, &session.record.csrf_nonce, presented)
    {
        return Err(AuthError::csrf("Invalid CSRF token"));
    }
    Ok(())
}

/// The cookie session transport (`via: "session"`), with CSRF on unsafe methods.
#[derive(Debug)]
pub(crate) struct SessionAuth;

#[async_trait]
impl Transport for SessionAuth {
    fn name(&self) -> &'static str {
        "session"
    }

    async fn authenticate(
        &self,
        parts: &Parts,
        auth: &CrudAuth,
    ) -> Result<Option<Principal>, AuthError> {
        let Some(sessions) = auth.sessions() else {
            return Ok(None);
        };
        let Some(cookie) = cookies::read(&parts.headers, cookies::SESSION_COOKIE) else {
            return Ok(None);
        };
        let id = SessionId::from_client(cookie);
        let Some(session) = sessions.load(&id).await? else {
            return Ok(None);
        };
        if auth.csrf_enabled() && is_unsafe(&parts.method) {
            check_csrf(sessions, &session, &parts.headers)?;
        }
        let Some(user) = auth.load_active_user(&session.record.user_id).await? else {
            return Ok(None);
        };
        if user.token_version != session.record.token_version {
            // A password change or reset ended this session's epoch.
            sessions.revoke(&session.handle).await?;
            return Ok(None);
        }
        let mut principal = Principal::new(user, "session", Vec::new());
        principal.session = Some(session);
        Ok(Some(principal))
    }
}
