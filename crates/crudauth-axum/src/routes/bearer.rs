//! `/token`, `/refresh`, and the bearer-only `/logout`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use crudauth_core::hooks::{HookContext, HookEvent};
use crudauth_core::jwt::IssuedTokens;
use crudauth_core::user::User;

use super::mfa::Finish;
use super::{detail, reply, Client, SignedIn};
use crate::bearer::{BearerState, RefreshMode, REFRESH_COOKIE};
use crate::body::{Fields, RawBody};
use crate::error::AuthError;
use crate::state::CrudAuth;

pub(super) fn bearer(auth: &CrudAuth) -> Result<&BearerState, AuthError> {
    auth.bearer().ok_or_else(AuthError::not_authenticated)
}

/// `{access_token, token_type}` and the refresh token where the mode puts it: a cookie, or a
/// last `refresh_token` key.
fn answer(bearer: &BearerState, issued: &IssuedTokens) -> SignedIn {
    let refresh = issued.refresh_token.expose();
    let mut body = Map::new();
    body.insert("access_token".into(), issued.access_token.expose().into());
    body.insert("token_type".into(), "bearer".into());
    let cookies = match bearer.refresh {
        RefreshMode::Cookie => vec![bearer.cookie.set(
            REFRESH_COOKIE,
            refresh,
            true,
            Some(issued.refresh_expires_in.as_secs()),
        )],
        RefreshMode::Body => {
            body.insert("refresh_token".into(), refresh.into());
            Vec::new()
        }
    };
    SignedIn {
        body,
        cookies,
        session: None,
    }
}

pub(super) async fn token(
    State(auth): State<CrudAuth>,
    client: Client,
    body: RawBody,
) -> Result<Response, AuthError> {
    let bearer = bearer(&auth)?;
    // A cookie-setting sign-in from another site is login CSRF.
    if bearer.refresh == RefreshMode::Cookie {
        client.refuse_cross_site_login()?;
    }
    // The OAuth2 password form; `client_id` and `client_secret` are accepted and ignored.
    let (mut f, identifier, password) = Fields::password_form(&body).await?;
    let scope = f.optional_string("scope").unwrap_or_default();
    f.finish()?;
    let (user, attempt) = auth
        .authenticate_held(&identifier, &password, client.hook_context(None))
        .await?;
    let scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    let finish = Finish::Bearer {
        scopes: scopes.clone(),
    };
    if let Some(challenge) = auth.challenge_if_due(&user, &client, finish).await? {
        return Ok(reply(StatusCode::OK, Value::Object(challenge), vec![]));
    }
    auth.lockout_success(&attempt).await;
    Ok(sign_in(&auth, bearer, user, &scopes, &client)
        .await?
        .reply())
}

/// Completes a sign-in through the bearer transport: a token pair for `scopes`, delivered as
/// the refresh mode says; the login hook fires.
pub(super) async fn sign_in(
    auth: &CrudAuth,
    bearer: &BearerState,
    user: User,
    scopes: &[String],
    client: &Client,
) -> Result<SignedIn, AuthError> {
    let issued = bearer.tokens.issue(&user, scopes).await?;
    let context = HookContext {
        transport: Some("bearer".into()),
        ..client.hook_context(None)
    };
    auth.fire(HookEvent::LoggedIn(user), context).await;
    Ok(answer(bearer, &issued))
}

/// The `refresh_token` of a JSON body; anything unparsable counts as missing.
fn from_body(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let token = value.get("refresh_token")?.as_str()?;
    (!token.is_empty()).then(|| token.to_owned())
}

pub(super) async fn refresh(
    State(auth): State<CrudAuth>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, AuthError> {
    let bearer = bearer(&auth)?;
    // The cookie first, in both modes; the body only in body mode.
    let token = match bearer.cookie.read(&headers, REFRESH_COOKIE) {
        Some(cookie) => Some(cookie.to_owned()),
        None if bearer.refresh == RefreshMode::Body => from_body(&body.bytes),
        None => None,
    };
    let Some(token) = token else {
        return Err(AuthError::new(
            StatusCode::UNAUTHORIZED,
            "Refresh token missing",
        ));
    };
    // The epoch check reads the user row itself, not the per-process cache: a password
    // changed on another worker ends refreshes at once.
    let issued = bearer
        .tokens
        .refresh(&token, auth.users().uncached())
        .await?;
    Ok(answer(bearer, &issued).reply())
}

/// Ends the refresh token a request carries in its cookie (its family is revoked) and, when
/// the refresh token lives in a cookie, clears that cookie. For every `/logout`.
pub(crate) async fn end_refresh(
    auth: &CrudAuth,
    headers: &HeaderMap,
) -> Result<Vec<HeaderValue>, AuthError> {
    let Some(bearer) = auth.bearer() else {
        return Ok(Vec::new());
    };
    let cookie = bearer.cookie.read(headers, REFRESH_COOKIE);
    if let Some(token) = cookie {
        bearer.tokens.revoke(token).await?;
    }
    if bearer.refresh == RefreshMode::Cookie || cookie.is_some() {
        Ok(vec![bearer.cookie.clear(REFRESH_COOKIE, true)])
    } else {
        Ok(Vec::new())
    }
}

pub(super) async fn logout(
    State(auth): State<CrudAuth>,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    let set = end_refresh(&auth, &headers).await?;
    Ok(reply(StatusCode::OK, detail("Logged out"), set))
}
