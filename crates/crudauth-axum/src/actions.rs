//! Account actions for applications that render their own pages: the work of `/login`,
//! `/register`, `/change-password` and two-factor enrolment, called from a handler with the
//! request's [`Session`].
//!
//! ```no_run
//! use axum::response::{IntoResponse, Redirect, Response};
//! use crudauth_axum::actions;
//! use crudauth_axum::extract::Session;
//!
//! async fn register(session: Session) -> Response {
//!     match actions::register(&session, "ada@example.com", "ada", "correct horse battery").await {
//!         Ok(_user) => Redirect::to("/dashboard").into_response(),
//!         Err(e) => e.into_response(),
//!     }
//! }
//! ```

use axum::http::StatusCode;
use crudauth_core::mfa::SetupView;
use crudauth_core::principal::Principal;
use crudauth_core::user::{LoginField, User};

use crate::error::AuthError;
use crate::extract::{Login, Session};
use crate::recovery::Job;
use crate::routes;

/// Signs in with a user name or email and a password, as `/login` does: the escalating
/// lockout before any hashing (429 with `Retry-After` while locked, and while the limiter's
/// store is down), the same time for an unknown user as for a wrong password, 401 "Incorrect
/// username or password" for either and for a disabled account, the failed-login and lockout
/// hooks, and a cross-site request refused (403). The lockout's pressure clears only when the
/// sign-in completes: at once, or after the second factor when [`Login::MfaRequired`] is the
/// answer (finish with [`Session::complete_mfa`]).
///
/// A page that checked the password itself and called [`Session::login`] would skip all of
/// that: use this.
pub async fn sign_in(
    session: &Session,
    identifier: &str,
    password: &str,
    remember_me: bool,
) -> Result<Login, AuthError> {
    let auth = session.auth();
    let caller = session.caller();
    caller.refuse_cross_site_login()?;
    let (user, attempt) = auth
        .authenticate_held(identifier, password, caller.hook_context(None))
        .await?;
    let login = session.login(&user, remember_me).await?;
    if matches!(login, Login::SignedIn) {
        auth.lockout_success(&attempt).await;
    }
    Ok(login)
}

/// Registers a user with `/register`'s checks (the password policy, the user name's length, a
/// taken email or user name) and its registration hook, then signs the new user in on
/// `session` (when email delivery is configured, a verification email is sent as well).
/// Unlike `/register`, a taken email is reported (422), since the page the user is on says
/// so anyway; the owner of the address is not emailed.
pub async fn register(
    session: &Session,
    email: &str,
    username: &str,
    password: &str,
) -> Result<User, AuthError> {
    let auth = session.auth();
    if !email.contains('@') {
        return Err(AuthError::unprocessable("Enter a valid email address."));
    }
    let email = routes::check_new_account(auth, email, username, password)?;
    let user = match routes::insert_account(
        auth,
        session.caller(),
        &email,
        username.to_owned(),
        password,
    )
    .await?
    {
        routes::NewAccount::Created(user) => *user,
        routes::NewAccount::Taken(LoginField::Email) => {
            return Err(AuthError::unprocessable("Email already registered"))
        }
        routes::NewAccount::Taken(LoginField::Username) => {
            return Err(AuthError::unprocessable("Username already taken"))
        }
    };
    if auth.inner.email.is_some() {
        auth.enqueue(Job::Verify {
            email,
            redirect_to: None,
        });
    }
    session.login(&user, false).await?;
    Ok(user)
}

/// Changes the signed-in user's password as `/change-password` does: the current password
/// checked (401 when wrong), the policy applied to the new one (422), every other session of
/// the user ended, this one moved to a new id and CSRF token, the notice email and the hook.
pub async fn change_password(
    session: &Session,
    current: &str,
    new: &str,
) -> Result<User, AuthError> {
    let auth = session.auth();
    let principal = signed_in(session)?;
    let updated = routes::replace_password(auth, &principal.user, current, new).await?;
    if let Some(sessions) = auth.sessions() {
        let keep = session.handle();
        sessions.revoke_all(&updated.id, keep.as_deref()).await?;
    }
    session.rotate_to(updated.token_version).await?;
    routes::password_changed(auth, session.caller(), Some(principal), updated.clone()).await;
    Ok(updated)
}

/// Starts two-factor enrolment for the signed-in user, as `/mfa/totp/setup` does: `password`
/// is checked (401 when wrong) and a new pending secret stored; the answer holds the secret
/// and the `otpauth://` URI to show (as text and as a QR code). 400 when already enabled.
pub async fn setup_two_factor(session: &Session, password: &str) -> Result<SetupView, AuthError> {
    let principal = signed_in(session)?;
    routes::begin_setup(session.auth(), principal, Some(password)).await
}

/// Finishes enrolment with a code from the authenticator app, as `/mfa/totp/confirm` does:
/// the recovery codes, to show once. 400 when the code is wrong or no setup is pending.
pub async fn confirm_two_factor(session: &Session, code: &str) -> Result<Vec<String>, AuthError> {
    let principal = signed_in(session)?;
    routes::confirm_setup(session.auth(), session.caller(), principal, code).await
}

/// Turns two-factor off with a TOTP or recovery code, as `/mfa/totp/disable` does (403 when
/// the account must use it). Pages usually ask for sudo first
/// ([`CrudAuth::elevate`](crate::CrudAuth::elevate)).
pub async fn disable_two_factor(session: &Session, code: &str) -> Result<(), AuthError> {
    let principal = signed_in(session)?;
    routes::turn_off(session.auth(), session.caller(), principal, code).await
}

/// The signed-in principal, or 401.
fn signed_in(session: &Session) -> Result<&Principal, AuthError> {
    session
        .user()
        .ok_or_else(|| AuthError::new(StatusCode::UNAUTHORIZED, "Not authenticated"))
}
