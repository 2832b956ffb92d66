//! Sudo mode: `POST /sudo` and [`CrudAuth::elevate`], re-authentication that elevates one
//! session for a short window, with attempts capped per user.
//!
//! The attempt is counted before the password is checked, atomically, so parallel guesses
//! share the cap: of any number of concurrent wrong guesses at most `max_attempts` are
//! verified, and the one that reaches the cap locks sudo for the account (`lockout`), during
//! which even the right password is refused with 429.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use crudauth_core::hooks::{HookContext, HookEvent};
use crudauth_core::principal::Principal;

use super::{reply, Client};
use crate::body::{Fields, RawBody};
use crate::error::AuthError;
use crate::extract::CurrentUser;
use crate::state::CrudAuth;

/// Sudo mode's settings (crudauth's `SudoConfig`: a 300 s window, 3 attempts per 300 s, a
/// 900 s lock).
#[derive(Debug, Clone, Copy)]
pub struct SudoConfig {
    /// How long an elevation lasts.
    pub window: Duration,
    /// Failed attempts allowed within `attempt_window`; the last of them locks.
    pub max_attempts: u32,
    /// The window failed attempts are counted in, from the first.
    pub attempt_window: Duration,
    /// How long sudo stays locked once the attempts are used up.
    pub lockout: Duration,
}

impl Default for SudoConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            max_attempts: 3,
            attempt_window: Duration::from_secs(300),
            lockout: Duration::from_secs(900),
        }
    }
}

/// What re-authenticates a session for sudo.
#[derive(Debug, Clone, Copy)]
pub enum Reauth<'a> {
    /// The account's password.
    Password(&'a str),
    /// A TOTP code (for accounts with two-factor authentication).
    Code(&'a str),
}

/// A session elevated by [`CrudAuth::elevate`]: it moved to a new id, and these are the
/// cookies (and CSRF token) that carry it.
#[derive(Debug)]
pub struct Elevated {
    /// Seconds the elevation lasts.
    pub expires_in: u64,
    /// The new session's CSRF token (empty with CSRF off).
    pub csrf_token: String,
    /// The `Set-Cookie` values for the new session id and CSRF token.
    pub cookies: Vec<HeaderValue>,
}

const TOO_MANY: &str = "Too many attempts. Try again later.";

fn locked(retry_after: u64) -> AuthError {
    AuthError::new(StatusCode::TOO_MANY_REQUESTS, TOO_MANY).with_header(RETRY_AFTER, retry_after)
}

impl CrudAuth {
    /// Re-authenticates `principal`'s session with `proof` and elevates it for the sudo
    /// window: 403 "Sudo requires a session-backed login." for other principals, 401
    /// "Incorrect password" / "Invalid code", 429 while locked. The session moves to a new id
    /// (the old one dies); set the returned cookies on the answer.
    pub async fn elevate(
        &self,
        principal: &Principal,
        proof: Reauth<'_>,
    ) -> Result<Elevated, AuthError> {
        let context = HookContext {
            ip: principal
                .session
                .as_ref()
                .map(|s| s.record.ip().to_owned())
                .unwrap_or_default(),
            ..HookContext::default()
        };
        self.elevate_for(principal, proof, context).await
    }

    async fn elevate_for(
        &self,
        principal: &Principal,
        proof: Reauth<'_>,
        context: HookContext,
    ) -> Result<Elevated, AuthError> {
        let (Some(sessions), Some(session)) = (self.sessions(), principal.session.as_ref()) else {
            return Err(AuthError::forbidden(
                "Sudo requires a session-backed login.",
            ));
        };
        let config = self.inner.sudo;
        let store = self.store();
        let user = &principal.user;
        let lock_key = format!("sudo:lock:{}", user.id);
        let fail_key = format!("sudo:fail:{}", user.id);
        if let Some(left) = store.ttl(&lock_key).await? {
            return Err(locked(left.as_secs().max(1)));
        }
        let attempt = store.incr(&fail_key, 1, config.attempt_window).await?;
        let max = i64::from(config.max_attempts);
        // The lock's expiry is set by its first writer only; the failure counter is left to
        // expire on its own, so a guess racing the lock still counts past the cap (deleting it
        // here would hand that guess a fresh attempt).
        let lock = || async {
            store.incr(&lock_key, 1, config.lockout).await?;
            if session.record.sudo_until.is_some() {
                let mut record = session.record.clone();
                record.sudo_until = None;
                sessions.update(session.handle(), &record).await?;
            }
            tracing::warn!(user_id = %user.id, "sudo locked after too many failed attempts");
            Ok::<_, AuthError>(locked(config.lockout.as_secs()))
        };
        if attempt > max {
            return Err(lock().await?);
        }
        let failure = match proof {
            Reauth::Password(password) => {
                let ok = self
                    .verify_password(password, user.hashed_password.as_ref())
                    .await?;
                (!ok).then_some("Incorrect password")
            }
            // A TOTP code of the enrolled secret, claiming its step (never a recovery code);
            // without two-factor authentication no code can be right.
            Reauth::Code(code) => {
                let ok = self.redeem_totp(user, code).await?;
                (!ok).then_some("Invalid code")
            }
        };
        if let Some(message) = failure {
            if attempt >= max {
                return Err(lock().await?);
            }
            return Err(AuthError::new(StatusCode::UNAUTHORIZED, message));
        }
        store.delete(&fail_key).await?;
        let until = self.inner.clock.now_millis() + config.window.as_millis() as u64;
        let renewed = sessions
            .rotate_stamped(session, user.token_version, Some(until))
            .await?
            .ok_or_else(|| AuthError::forbidden("Session no longer exists."))?;
        let (csrf_token, cookies) = super::session::session_cookies(self, sessions, &renewed);
        self.fire(HookEvent::Sudo(user.as_ref().clone()), context)
            .await;
        Ok(Elevated {
            expires_in: config.window.as_secs(),
            csrf_token,
            cookies,
        })
    }
}

pub(super) async fn sudo(
    State(auth): State<CrudAuth>,
    client: Client,
    principal: CurrentUser,
    body: RawBody,
) -> Result<Response, AuthError> {
    let mut f = Fields::json(&body)?;
    let password = f.optional_string("password");
    let code = f.optional_string("code");
    f.finish()?;
    let proof = match (&password, &code) {
        (Some(p), None) => Reauth::Password(p),
        (None, Some(c)) => Reauth::Code(c),
        _ => {
            return Err(AuthError::validation(vec![json!({
                "type": "value_error", "loc": ["body"],
                "msg": "Value error, give exactly one of password or code",
                "ctx": {"error": "give exactly one of password or code"}})]))
        }
    };
    let elevated = auth
        .elevate_for(&principal, proof, client.hook_context(Some(&principal)))
        .await?;
    Ok(reply(
        StatusCode::OK,
        json!({"detail": "Re-authenticated.", "expires_in": elevated.expires_in,
               "csrf_token": elevated.csrf_token}),
        elevated.cookies,
    ))
}
