//! `/email/verify-request`, `/email/verify-confirm`, `/password/reset-request`,
//! `/password/reset-confirm`, `/email/change-request`, `/email/change-confirm`.
//!
//! The request routes queue their work and answer at once, the same whatever the address
//! (see [`crate::recovery`]); the confirm routes read the token, check it against the account
//! as it is now, and claim it in one atomic step before changing anything.

use std::future::Future;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crudauth_core::email::EmailKind;
use crudauth_core::hooks::HookEvent;
use crudauth_core::token::{Claim, Opened, TokenPurpose};
use crudauth_core::user::{
    canonical_email, LoginField, User, UserStore, UserStoreError, UserUpdate,
};

use super::{detail, reply, Client};
use crate::body::{Fields, RawBody};
use crate::error::AuthError;
use crate::extract::CurrentUser;
use crate::recovery::Job;
use crate::state::CrudAuth;

const VERIFY_SENT: &str = "If an account exists, a verification email has been sent.";
const RESET_SENT: &str = "If an account exists, a password reset email has been sent.";
const CHANGE_SENT: &str = "If the address is available, a confirmation email has been sent.";
const INVALID: &str = "Invalid or expired token";
const USED: &str = "Token already used";

/// `redirect_to` when it is a path on this site (`/x`, not `//host`, `/\host`, a scheme or
/// control characters); anything else is dropped, so a link can never send a user elsewhere.
pub(crate) fn same_origin_path(value: Option<String>) -> Option<String> {
    let path = value?;
    let safe = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 2048
        && !path.chars().any(|c| c.is_control() || c == '\\');
    safe.then_some(path)
}

/// The address and `redirect_to` of a request route's body.
fn address_body(body: &RawBody) -> Result<(String, Option<String>), AuthError> {
    let mut f = Fields::json(body)?;
    let email = f.email("email");
    let redirect_to = f.optional_string("redirect_to");
    f.finish()?;
    Ok((canonical_email(&email), same_origin_path(redirect_to)))
}

pub(super) async fn verify_request(
    State(auth): State<CrudAuth>,
    body: RawBody,
) -> Result<Response, AuthError> {
    let (email, redirect_to) = address_body(&body)?;
    auth.enqueue(Job::Verify { email, redirect_to });
    Ok(reply(StatusCode::OK, detail(VERIFY_SENT), vec![]))
}

pub(super) async fn reset_request(
    State(auth): State<CrudAuth>,
    body: RawBody,
) -> Result<Response, AuthError> {
    let (email, redirect_to) = address_body(&body)?;
    auth.enqueue(Job::Reset { email, redirect_to });
    Ok(reply(StatusCode::OK, detail(RESET_SENT), vec![]))
}

/// A confirm route's token, read and checked against its account: the account as it is now,
/// or 400 "Invalid or expired token" (unknown, expired, other purpose, account gone, disabled
/// or moved on) / "Token already used". Nothing is claimed yet.
async fn open_token(
    auth: &CrudAuth,
    purpose: TokenPurpose,
    text: &str,
) -> Result<(Opened, User), AuthError> {
    let tokens = &auth.inner.tokens;
    let opened = tokens
        .open(purpose, text)
        .await?
        .ok_or_else(|| AuthError::bad_request(INVALID))?;
    let user = auth
        .users()
        .find_by_id(opened.user_id())
        .await?
        .filter(|user| user.is_active && tokens.matches(&opened, user))
        .ok_or_else(|| AuthError::bad_request(INVALID))?;
    if opened.is_used() {
        return Err(AuthError::bad_request(USED));
    }
    Ok((opened, user))
}

/// Claims a checked token (of concurrent redemptions, only one gets past this), then does
/// `work`; when the work fails, nothing changed, and the token is given back to be redeemed
/// again.
async fn redeem<T>(
    auth: &CrudAuth,
    opened: &Opened,
    work: impl Future<Output = Result<T, AuthError>>,
) -> Result<T, AuthError> {
    match auth.inner.tokens.claim(opened).await? {
        Claim::Claimed => {}
        Claim::AlreadyClaimed => return Err(AuthError::bad_request(USED)),
        Claim::Gone => return Err(AuthError::bad_request(INVALID)),
    }
    match work.await {
        Ok(done) => Ok(done),
        Err(failure) => {
            auth.inner.tokens.release(opened).await?;
            Err(failure)
        }
    }
}

/// `{"detail": message}`, with the token's `redirect_to` when it carried one.
fn done(message: &str, opened: &Opened) -> Value {
    let mut body = detail(message);
    if let Some(path) = opened.redirect_to() {
        body["redirect_to"] = json!(path);
    }
    body
}

fn token_field(body: &RawBody, extra: Option<&str>) -> Result<(String, String), AuthError> {
    let mut f = Fields::json(body)?;
    let token = f.string("token");
    let other = extra.map(|name| f.string(name)).unwrap_or_default();
    f.finish()?;
    Ok((token, other))
}

pub(super) async fn verify_confirm(
    State(auth): State<CrudAuth>,
    client: Client,
    body: RawBody,
) -> Result<Response, AuthError> {
    let (token, _) = token_field(&body, None)?;
    let (opened, user) = open_token(&auth, TokenPurpose::Verify, &token).await?;
    let verified = redeem(&auth, &opened, async {
        if user.email_verified {
            return Ok(None);
        }
        let changes = UserUpdate {
            email_verified: Some(true),
            ..Default::default()
        };
        Ok(auth.users().update(&user.id, changes).await?)
    })
    .await?;
    if let Some(updated) = verified {
        auth.fire(
            HookEvent::RecoveryVerified(updated),
            client.hook_context(None),
        )
        .await;
    }
    Ok(reply(
        StatusCode::OK,
        done("Verified successfully.", &opened),
        vec![],
    ))
}

pub(super) async fn reset_confirm(
    State(auth): State<CrudAuth>,
    client: Client,
    body: RawBody,
) -> Result<Response, AuthError> {
    let (token, new_password) = token_field(&body, Some("new_password"))?;
    // The token first: a bad token is 400 whatever the password; a weak password with a good
    // token is 422 and leaves the token usable.
    let (opened, user) = open_token(&auth, TokenPurpose::Reset, &token).await?;
    super::account::enforce_policy(
        &auth,
        "new_password",
        &new_password,
        &super::account::own_words(&user),
    )?;
    // Claimed before the (slow) hashing, so of parallel redemptions only the winner hashes.
    let updated = redeem(&auth, &opened, async {
        let changes = UserUpdate {
            hashed_password: Some(auth.hash_password(&new_password).await?),
            bump_token_version: true,
            ..Default::default()
        };
        auth.users()
            .update(&user.id, changes)
            .await?
            .ok_or_else(|| AuthError::bad_request(INVALID))
    })
    .await?;
    // Every session and bearer token of the account ends (the epoch moved).
    if let Some(sessions) = auth.sessions() {
        sessions.revoke_all(&updated.id, None).await?;
    }
    if let Some(to) = &updated.email {
        auth.enqueue(Job::Notice {
            kind: EmailKind::PasswordChanged,
            to: to.clone(),
            budget: None,
        });
    }
    auth.fire(HookEvent::PasswordReset(updated), client.hook_context(None))
        .await;
    Ok(reply(
        StatusCode::OK,
        done("Password reset successfully.", &opened),
        vec![],
    ))
}

pub(super) async fn change_request(
    State(auth): State<CrudAuth>,
    principal: CurrentUser,
    body: RawBody,
) -> Result<Response, AuthError> {
    let mut f = Fields::json(&body)?;
    let new_email = f.email("new_email");
    let password = f.string("password");
    let redirect_to = f.optional_string("redirect_to");
    f.finish()?;
    let user = &principal.user;
    if !auth
        .verify_password(&password, user.hashed_password.as_ref())
        .await?
    {
        return Err(AuthError::bad_request("Incorrect password"));
    }
    let new_email = canonical_email(&new_email);
    if user.email.as_deref().map(canonical_email).as_deref() == Some(new_email.as_str()) {
        return Err(AuthError::bad_request("New email matches current email"));
    }
    auth.enqueue(Job::Change {
        user_id: user.id.clone(),
        new_email,
        redirect_to: same_origin_path(redirect_to),
    });
    Ok(reply(StatusCode::OK, detail(CHANGE_SENT), vec![]))
}

pub(super) async fn change_confirm(
    State(auth): State<CrudAuth>,
    client: Client,
    body: RawBody,
) -> Result<Response, AuthError> {
    let (token, _) = token_field(&body, None)?;
    let (opened, user) = open_token(&auth, TokenPurpose::Change, &token).await?;
    let Some(new_email) = opened.new_email().map(str::to_owned) else {
        return Err(AuthError::bad_request("Invalid token"));
    };
    let taken = || AuthError::unprocessable("Email already in use");
    // Taken since the request: 422, and the token stays usable.
    if auth
        .users()
        .find_by_field(LoginField::Email, &new_email)
        .await?
        .is_some()
    {
        return Err(taken());
    }
    let updated = redeem(&auth, &opened, async {
        let changes = UserUpdate {
            email: Some(new_email),
            email_verified: Some(true),
            ..Default::default()
        };
        match auth.users().update(&user.id, changes).await {
            Ok(updated) => updated.ok_or_else(|| AuthError::bad_request(INVALID)),
            // Someone took the address between the check and the update.
            Err(UserStoreError::Duplicate { .. } | UserStoreError::Conflict) => Err(taken()),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    if let Some(old) = &user.email {
        auth.enqueue(Job::Notice {
            kind: EmailKind::EmailChanged,
            to: old.clone(),
            budget: None,
        });
    }
    auth.fire(HookEvent::EmailChanged(updated), client.hook_context(None))
        .await;
    Ok(reply(
        StatusCode::OK,
        done("Email changed successfully.", &opened),
        vec![],
    ))
}

#[cfg(test)]
mod tests {
    use super::same_origin_path;

    #[test]
    fn only_paths_on_this_site_travel() {
        for safe in ["/", "/welcome", "/a/b?c=d#e", "/caf%C3%A9"] {
            assert_eq!(same_origin_path(Some(safe.into())).as_deref(), Some(safe));
        }
        for unsafe_value in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "welcome",
            "",
            "/a\nb",
            "/a\\b",
            "/\t/evil.example",
        ] {
            assert_eq!(
                same_origin_path(Some(unsafe_value.into())),
                None,
                "{unsafe_value:?}"
            );
        }
        assert_eq!(
            same_origin_path(Some(format!("/{}", "a".repeat(3000)))),
            None
        );
        assert_eq!(same_origin_path(None), None);
    }
}
