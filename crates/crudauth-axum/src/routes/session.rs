//! `/login`, `/logout`, and the device-management routes: `/sessions`,
//! `DELETE /sessions/{handle}`, `/logout-all`, `/csrf/refresh`.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Map, Value};

use crudauth_core::hooks::{HookContext, HookEvent};
use crudauth_core::secret::SessionId;
use crudauth_core::session::{CreatedSession, LoadedSession, NewSession, SessionRecord, Sessions};
use crudauth_core::user::{User, UserStore, UserUpdate};

use super::mfa::Finish;
use super::{detail, reply, Client, SignedIn};
use crate::body::{Fields, RawBody};
use crate::cookies::{CSRF_COOKIE, SESSION_COOKIE};
use crate::error::AuthError;
use crate::extract::SessionCaller;
use crate::state::CrudAuth;
use crate::transport::{check_csrf, presented_session};

pub(crate) fn sessions(auth: &CrudAuth) -> Result<&Sessions, AuthError> {
    auth.sessions().ok_or_else(AuthError::not_authenticated)
}

/// The `Max-Age` of a session's cookies: a remember-me session's window, else none (they
/// end with the browser).
fn cookie_max_age(sessions: &Sessions, record: &SessionRecord) -> Option<u64> {
    record
        .remember_me
        .then(|| sessions.config().remember_me.as_secs())
}

/// A fresh CSRF token for the session `id`, and the cookie (readable by scripts) that carries
/// it.
fn mint_csrf(
    auth: &CrudAuth,
    sessions: &Sessions,
    id: &SessionId,
    record: &SessionRecord,
) -> (String, HeaderValue) {
    let token = sessions.csrf().token(id, record.csrf_nonce());
    let cookie = auth.inner.cookies.set(
        CSRF_COOKIE,
        token.expose(),
        false,
        cookie_max_age(sessions, record),
    );
    (token.expose().to_owned(), cookie)
}

/// The cookies that carry a new session: id (HttpOnly) and, with CSRF on, the CSRF token,
/// returned too (empty with CSRF off).
pub(crate) fn session_cookies(
    auth: &CrudAuth,
    sessions: &Sessions,
    created: &CreatedSession,
) -> (String, Vec<HeaderValue>) {
    let max_age = cookie_max_age(sessions, &created.record);
    let session = auth
        .inner
        .cookies
        .set(SESSION_COOKIE, created.id.expose(), true, max_age);
    if !auth.csrf_enabled() {
        return (String::new(), vec![session]);
    }
    let (csrf, cookie) = mint_csrf(auth, sessions, &created.id, &created.record);
    (csrf, vec![session, cookie])
}

pub(crate) fn clear_session_cookies(auth: &CrudAuth) -> Vec<HeaderValue> {
    let c = &auth.inner.cookies;
    vec![c.clear(SESSION_COOKIE, true), c.clear(CSRF_COOKIE, false)]
}

pub(super) async fn login(
    State(auth): State<CrudAuth>,
    client: Client,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, AuthError> {
    client.refuse_cross_site_login()?;
    let (mut f, identifier, password) = Fields::password_form(&body).await?;
    let remember_me = f.boolean("remember_me", false);
    f.finish()?;
    let sessions = sessions(&auth)?;
    let (user, attempt) = auth
        .authenticate_held(&identifier, &password, client.hook_context(None))
        .await?;
    let finish = Finish::Session { remember_me };
    if let Some(challenge) = auth.challenge_if_due(&user, &client, finish).await? {
        return Ok(reply(StatusCode::OK, Value::Object(challenge), vec![]));
    }
    auth.lockout_success(&attempt).await;
    let signed_in = sign_in(
        &auth,
        sessions,
        user,
        &client,
        &headers,
        remember_me,
        "password",
    )
    .await?;
    Ok(signed_in.reply())
}

/// Completes a sign-in through the session transport: a new session (the one the browser
/// presented, if any, ends), its cookies, and crudauth's `{id, username, csrf_token}`; the
/// login hook fires.
pub(crate) async fn sign_in(
    auth: &CrudAuth,
    sessions: &Sessions,
    user: User,
    client: &Client,
    headers: &HeaderMap,
    remember_me: bool,
    login_type: &str,
) -> Result<SignedIn, AuthError> {
    let new = NewSession {
        user_agent: client.user_agent().to_owned(),
        ip: client.ip.clone(),
        remember_me,
        login_type: Some(login_type.into()),
    };
    let created = sessions.create(&user.id, user.token_version, new).await?;
    // A sign-in replaces whatever session this browser presented (no fixation, no orphans):
    // once the new one exists, so a failure in between never leaves the browser with neither.
    // Two different session cookies (one planted): neither is trusted, neither revoked.
    if let Ok(Some(old)) = auth.inner.cookies.read_unique(headers, SESSION_COOKIE) {
        let old = sessions.handle_of(&SessionId::from_client(old));
        if old != created.handle {
            sessions.revoke(&old).await?;
        }
    }
    let (csrf, cookies) = session_cookies(auth, sessions, &created);
    let mut body = Map::new();
    body.insert("id".into(), json!(user.id));
    body.insert("username".into(), json!(user.username));
    body.insert("csrf_token".into(), csrf.into());
    let context = HookContext {
        transport: Some("session".into()),
        session_handle: Some(created.handle.clone()),
        ..client.hook_context(None)
    };
    auth.fire(HookEvent::LoggedIn(user), context).await;
    Ok(SignedIn {
        body,
        cookies,
        session: Some(created.into_loaded()),
    })
}

pub(super) async fn logout(
    State(auth): State<CrudAuth>,
    client: Client,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    let sessions = sessions(&auth)?;
    if let Some(session) = presented_session(&auth, sessions, &headers).await? {
        // A live session is only ended by a request that proves it came from our page.
        if auth.csrf_enabled() {
            check_csrf(&auth, sessions, &session, &headers, &uri)?;
        }
        end_session(&auth, sessions, &session, &client).await?;
    }
    // Every transport's cookies go, and the refresh token's family with its cookie.
    let mut set = clear_session_cookies(&auth);
    set.extend(super::bearer::end_refresh(&auth, &headers).await?);
    Ok(reply(StatusCode::OK, detail("Logged out"), set))
}

/// Ends a live session as a sign-out does: revoked, and the logout hook told when it was
/// still live.
pub(crate) async fn end_session(
    auth: &CrudAuth,
    sessions: &Sessions,
    session: &LoadedSession,
    client: &Client,
) -> Result<(), AuthError> {
    if sessions.revoke(session.handle()).await? {
        if let Some(user) = auth.users().find_by_id(&session.record.user_id).await? {
            let context = HookContext {
                transport: Some("session".into()),
                session_handle: Some(session.handle().to_owned()),
                ..client.hook_context(None)
            };
            auth.fire(HookEvent::LoggedOut(user), context).await;
        }
    }
    Ok(())
}

pub(super) async fn csrf_refresh(
    State(auth): State<CrudAuth>,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    if !auth.csrf_enabled() {
        return Err(AuthError::bad_request("CSRF is disabled."));
    }
    let sessions = sessions(&auth)?;
    let session = presented_session(&auth, sessions, &headers)
        .await?
        .ok_or_else(AuthError::not_authenticated)?;
    // A healthy token is returned as it is: a cross-site call can never rotate it away.
    if let Some(current) = auth.inner.cookies.read(&headers, CSRF_COOKIE) {
        if sessions
            .csrf()
            .verify(&session.id, session.record.csrf_nonce(), current)
        {
            return Ok(reply(
                StatusCode::OK,
                json!({"csrf_token": current}),
                vec![],
            ));
        }
    }
    let Some(record) = sessions.rotate_csrf(&session).await? else {
        return Ok(reply(StatusCode::OK, json!({"csrf_token": ""}), vec![]));
    };
    let (token, cookie) = mint_csrf(&auth, sessions, &session.id, &record);
    Ok(reply(
        StatusCode::OK,
        json!({"csrf_token": token}),
        vec![cookie],
    ))
}

/// A UTC timestamp in crudauth's shape: always six fractional digits, then `Z`
/// (`2026-11-28T13:48:09.127000Z`; the record keeps milliseconds).
fn iso(ms: u64) -> String {
    const SHAPE: &[time::format_description::FormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(SHAPE).unwrap_or_default()
}

pub(super) async fn list(
    State(auth): State<CrudAuth>,
    caller: SessionCaller,
) -> Result<Response, AuthError> {
    let sessions = sessions(&auth)?;
    let listed = sessions.list(caller.principal.user_id()).await?;
    let items: Vec<Value> = listed
        .into_iter()
        .map(|s| {
            json!({
                "id": s.handle,
                "device": s.record.device(),
                "ip": s.record.ip(),
                "created_at": iso(s.record.created_at),
                "last_activity": iso(s.record.last_activity),
                "current": s.handle == caller.session.handle(),
            })
        })
        .collect();
    Ok(reply(StatusCode::OK, Value::Array(items), vec![]))
}

pub(super) async fn revoke(
    State(auth): State<CrudAuth>,
    caller: SessionCaller,
    handle: Result<Path<String>, PathRejection>,
) -> Result<Response, AuthError> {
    let sessions = sessions(&auth)?;
    // A path that does not even decode (`%ff`) names no session, like any malformed handle.
    let handle = handle.map(|Path(h)| h).unwrap_or_default();
    let well_formed = handle.len() == 64 && handle.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed
        || !sessions
            .revoke_owned(&handle, caller.principal.user_id())
            .await?
    {
        return Err(AuthError::not_found("Session not found."));
    }
    let set = if handle == caller.session.handle() {
        clear_session_cookies(&auth)
    } else {
        vec![]
    };
    Ok(reply(StatusCode::OK, detail("Session revoked."), set))
}

pub(super) async fn logout_all(
    State(auth): State<CrudAuth>,
    caller: SessionCaller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AuthError> {
    let keep_current = match query.get("keep_current").map(|v| v.to_ascii_lowercase()) {
        None => false,
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => true,
        Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => false,
        Some(_) => {
            return Err(AuthError::validation(vec![
                json!({"type": "bool_parsing", "loc": ["query", "keep_current"],
                "msg": "Input should be a valid boolean, unable to interpret input"}),
            ]))
        }
    };
    // Bearer tokens end too (a deliberate difference from crudauth): the epoch is bumped, then
    // every session but the kept one ends and the kept one moves to the new epoch.
    let bump = UserUpdate {
        bump_token_version: true,
        ..Default::default()
    };
    let updated = auth
        .users()
        .update(caller.principal.user_id(), bump)
        .await?
        .ok_or_else(AuthError::not_authenticated)?;
    let keep = keep_current.then_some(&caller.session);
    let revoked = auth.end_other_credentials(&updated, keep).await?;
    let set = if keep_current {
        vec![]
    } else {
        clear_session_cookies(&auth)
    };
    Ok(reply(
        StatusCode::OK,
        json!({"detail": "Signed out of all sessions.", "revoked": revoked}),
        set,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_have_crudauths_shape() {
        assert_eq!(super::iso(1_795_873_689_127), "2026-11-28T13:48:09.127000Z");
        assert_eq!(super::iso(1_795_873_689_000), "2026-11-28T13:48:09.000000Z");
    }
}
