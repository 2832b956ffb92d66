//! `/register`, `/me`, `/change-password`, `/set-password`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crudauth_core::email::EmailKind;
use crudauth_core::hooks::{HookContext, HookEvent, LoginFailure};
use crudauth_core::limit::{LockoutKeys, LockoutSubject};
use crudauth_core::password::{Password, Verification};
use crudauth_core::principal::Principal;
use crudauth_core::session::LoadedSession;
use crudauth_core::user::{
    canonical_email, LoginField, NewUser, User, UserId, UserStore, UserStoreError, UserUpdate,
};

use super::{detail, reply, Client};
use crate::body::{Fields, RawBody};
use crate::error::AuthError;
use crate::extract::CurrentUser;
use crate::layer::rate_limit::{report, Counted};
use crate::recovery::Job;
use crate::state::CrudAuth;

const SIGNUP_ACCEPTED: &str = "If the email is available, check your inbox to finish signing up.";
const MAX_USERNAME: usize = 64;

/// A 422 when `password` breaks the policy, checked once the body's fields are well formed and
/// the route's other checks passed (crudauth's order). `context` is the account's own words
/// (username, email), which a strength check counts as guessable.
pub(super) fn enforce_policy(
    auth: &CrudAuth,
    field: &str,
    password: &str,
    context: &[&str],
) -> Result<(), AuthError> {
    auth.inner
        .password_policy
        .check_for(password, context)
        .map_err(|violation| AuthError::validation(vec![violation.to_json_entry(field)]))
}

/// The account's own words, for the password policy: its username and email.
pub(super) fn own_words(user: &User) -> Vec<&str> {
    [user.username.as_deref(), user.email.as_deref()]
        .into_iter()
        .flatten()
        .collect()
}

pub(super) async fn register(
    State(auth): State<CrudAuth>,
    client: Client,
    body: RawBody,
) -> Result<Response, AuthError> {
    // In crudauth's stages, each answering alone: the fields' shapes (all of them at once),
    // then the password policy, then the user name's length.
    let mut f = Fields::json(&body)?;
    let email = f.email("email");
    let username = f.string("username");
    let password = f.string("password");
    f.finish()?;
    let email = check_new_account(&auth, &email, &username, &password)?;

    // Counted once the body is valid, before the duplicate checks (as crudauth): probing for
    // taken addresses uses up the budget too. Without a peer address, the registration is
    // counted per target email instead of in one bucket for the whole site.
    let identity = client
        .ip_key()
        .unwrap_or_else(|| auth.email_target_key(&email));
    let counted = match auth.builtin_limiter("register") {
        Some(limiter) => match limiter.count(&auth, &identity).await {
            Counted::Pass(decision) => decision,
            Counted::Refuse(refused) => return Ok(refused),
        },
        None => None,
    };
    let mut response = create_account(&auth, &client, email, username, &password)
        .await
        .into_response();
    if let Some(decision) = counted {
        report(response.headers_mut(), &decision);
    }
    Ok(response)
}

/// The checks of a well-formed registration, in crudauth's order (the password policy, then
/// the user name's length): the canonical email.
pub(crate) fn check_new_account(
    auth: &CrudAuth,
    email: &str,
    username: &str,
    password: &str,
) -> Result<String, AuthError> {
    enforce_policy(auth, "password", password, &[username, email])?;
    if username.chars().count() > MAX_USERNAME {
        return Err(AuthError::validation(vec![json!({
            "type": "string_too_long", "loc": ["body", "username"],
            "msg": format!("String should have at most {MAX_USERNAME} characters"),
            "ctx": {"max_length": MAX_USERNAME}})]));
    }
    Ok(canonical_email(email))
}

/// What storing a new account came to.
pub(crate) enum NewAccount {
    /// The account was created (the registration hook has fired).
    Created(Box<User>),
    /// A login field's value belongs to another account.
    Taken(LoginField),
}

/// Hashes the password, looks for duplicates and creates the user, firing the registration
/// hook.
pub(crate) async fn insert_account(
    auth: &CrudAuth,
    client: &Client,
    email: &str,
    username: String,
    password: &str,
) -> Result<NewAccount, AuthError> {
    // Hash before looking for duplicates, so a taken address costs the same time as a new one.
    let hashed = auth.hash_password(password).await?;
    let users = auth.users();
    for field in &auth.inner.login_fields {
        let value = match field {
            LoginField::Email => email,
            LoginField::Username => &username,
        };
        if users.find_by_field(*field, value).await?.is_some() {
            return Ok(NewAccount::Taken(*field));
        }
    }
    let user = match users
        .create(NewUser::new(email.to_owned(), username, hashed.0))
        .await
    {
        Ok(user) => user,
        Err(UserStoreError::Duplicate { field }) => return Ok(NewAccount::Taken(field)),
        Err(UserStoreError::Conflict) => {
            return Err(AuthError::unprocessable("Account already exists"))
        }
        Err(e) => return Err(e.into()),
    };
    auth.fire(
        HookEvent::Registered(user.clone()),
        client.hook_context(None),
    )
    .await;
    Ok(NewAccount::Created(Box::new(user)))
}

/// Registration once the body is valid and counted.
async fn create_account(
    auth: &CrudAuth,
    client: &Client,
    email: String,
    username: String,
    password: &str,
) -> Result<Response, AuthError> {
    let user = match insert_account(auth, client, &email, username, password).await? {
        NewAccount::Created(user) => *user,
        NewAccount::Taken(field) => return existing_account(auth, field, &email).await,
    };
    if auth.inner.email.is_some() {
        auth.enqueue(Job::Verify {
            email: email.clone(),
            redirect_to: None,
        });
        return Ok(reply(StatusCode::ACCEPTED, detail(SIGNUP_ACCEPTED), vec![]));
    }
    Ok(reply(
        StatusCode::OK,
        json!({"id": user.id, "email": user.email, "username": user.username}),
        vec![],
    ))
}

/// The answer to a registration whose login field is taken: with email delivery, a taken
/// address looks exactly like a new one (and its owner gets a notice); user names are a
/// public namespace, as on every sign-up form.
async fn existing_account(
    auth: &CrudAuth,
    field: LoginField,
    email: &str,
) -> Result<Response, AuthError> {
    match field {
        LoginField::Email if auth.inner.email.is_some() => {
            auth.enqueue(Job::Notice {
                kind: EmailKind::ExistingAccount,
                to: email.to_owned(),
                budget: Some("existing_account_notice"),
            });
            Ok(reply(StatusCode::ACCEPTED, detail(SIGNUP_ACCEPTED), vec![]))
        }
        LoginField::Email => Err(AuthError::unprocessable("Email already registered")),
        LoginField::Username => Err(AuthError::unprocessable("Username already taken")),
    }
}

pub(super) async fn me(user: CurrentUser) -> Response {
    let u = &user.user;
    reply(
        StatusCode::OK,
        json!({"user_id": u.id, "username": u.username, "email": u.email, "is_superuser": u.is_superuser,
               "scopes": user.scopes, "via": user.via}),
        vec![],
    )
}

pub(super) async fn change_password(
    State(auth): State<CrudAuth>,
    client: Client,
    principal: CurrentUser,
    body: RawBody,
) -> Result<Response, AuthError> {
    let mut f = Fields::json(&body)?;
    let current = f.string("current_password");
    let new = f.string("new_password");
    f.finish()?;
    let updated = replace_password(&auth, &principal.user, &current, &new).await?;
    let set = auth
        .renew_session(&updated, principal.session.as_ref(), true)
        .await?;
    password_changed(&auth, &client, Some(&principal), updated).await;
    Ok(reply(StatusCode::OK, detail("Password changed."), set))
}

/// Checks `current` against the user's password and the policy against `new`, then stores
/// `new`, bumping the credential epoch: the updated user.
pub(crate) async fn replace_password(
    auth: &CrudAuth,
    user: &User,
    current: &str,
    new: &str,
) -> Result<User, AuthError> {
    if !user.has_usable_password() {
        return Err(AuthError::bad_request(
            "Account has no password; use /set-password to create one.",
        ));
    }
    let verdict = auth
        .verify_password(current, user.hashed_password.as_ref())
        .await?;
    if !verdict {
        return Err(AuthError::new(
            StatusCode::UNAUTHORIZED,
            "Current password is incorrect.",
        ));
    }
    enforce_policy(auth, "new_password", new, &own_words(user))?;
    store_password(auth, &user.id, new, true).await
}

/// After a password change: the notice email and the hook.
pub(crate) async fn password_changed(
    auth: &CrudAuth,
    client: &Client,
    principal: Option<&Principal>,
    updated: User,
) {
    if let Some(to) = &updated.email {
        auth.enqueue(Job::Notice {
            kind: EmailKind::PasswordChanged,
            to: to.clone(),
            budget: None,
        });
    }
    auth.fire(
        HookEvent::PasswordChanged(updated),
        client.hook_context(principal),
    )
    .await;
}

pub(super) async fn set_password(
    State(auth): State<CrudAuth>,
    principal: CurrentUser,
    body: RawBody,
) -> Result<Response, AuthError> {
    // crudauth's order: the body's shape, then "already has a password", then freshness, and
    // only then the policy.
    let mut f = Fields::json(&body)?;
    let new = f.string("new_password");
    f.finish()?;
    if principal.user.has_usable_password() {
        return Err(AuthError::bad_request(
            "Account already has a password; use the password reset flow to change it.",
        ));
    }
    if !auth.is_fresh(&principal) {
        return Err(AuthError::forbidden(
            "Sign in again to continue: this needs a recent sign-in.",
        ));
    }
    enforce_policy(&auth, "new_password", &new, &own_words(&principal.user))?;
    let updated = store_password(&auth, &principal.user.id, &new, false).await?;
    let set = auth
        .renew_session(&updated, principal.session.as_ref(), false)
        .await?;
    Ok(reply(StatusCode::OK, detail("Password set."), set))
}

/// Hashes `new` and stores it as the user's password, bumping the credential epoch when
/// asked: the updated user, or 401 when the user is gone.
async fn store_password(
    auth: &CrudAuth,
    id: &UserId,
    new: &str,
    bump_token_version: bool,
) -> Result<User, AuthError> {
    let hashed = auth.hash_password(new).await?;
    let changes = UserUpdate {
        hashed_password: Some(hashed),
        bump_token_version,
        ..Default::default()
    };
    auth.users()
        .update(id, changes)
        .await?
        .ok_or_else(AuthError::not_authenticated)
}

impl CrudAuth {
    /// Hashes a new password (argon2id, off the async runtime).
    pub async fn hash_password(
        &self,
        password: &str,
    ) -> Result<crudauth_core::user::PasswordHash, AuthError> {
        self.inner
            .passwords
            .hash(&Password::new(password))
            .await
            .map_err(password_failure)
    }

    /// Verifies `password` against `stored` (or a dummy hash when there is none, for equal
    /// timing). A password over 1 KiB simply does not match; it is never hashed.
    pub async fn verify_password(
        &self,
        password: &str,
        stored: Option<&crudauth_core::user::PasswordHash>,
    ) -> Result<bool, AuthError> {
        let verdict = self.check_password(password, stored).await?;
        Ok(verdict.is_some_and(|v| v.matched))
    }

    /// `password` checked against `stored` (or a dummy hash) by the configured hasher; `None`
    /// for a password over 1 KiB, which is refused before any hashing.
    async fn check_password(
        &self,
        password: &str,
        stored: Option<&crudauth_core::user::PasswordHash>,
    ) -> Result<Option<Verification>, AuthError> {
        match self
            .inner
            .passwords
            .verify(&Password::new(password), stored)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(crudauth_core::password::PasswordError::TooLong { .. }) => Ok(None),
            Err(e) => Err(password_failure(e)),
        }
    }

    /// crudauth's hardened password sign-in, shared by every route that takes a password: the
    /// user the identifier names, if the password is right and the account active; a legacy or
    /// outdated hash is replaced on the way. Unknown users cost the same time as wrong
    /// passwords. Every failure is 401 "Incorrect username or password". `client_ip` is the
    /// caller's address (see [`crate::client_ip`]).
    ///
    /// The identifier is first resolved to its account (the same queries whether or not it
    /// names one), then the attempt goes through the escalating login lockout (see
    /// [`CrudAuthBuilder::lockout`](crate::CrudAuthBuilder::lockout)) before any hashing,
    /// counted against the account (so its email and user name share one budget) or, when
    /// the identifier names none, against its canonical text: a locked address or account is
    /// answered 429 "Too many login attempts. Try again later." with `Retry-After`, as is every
    /// attempt while the limiter is down (fail closed). A disabled account counts as a
    /// failure; a success clears the account's pressure.
    pub async fn authenticate_password(
        &self,
        identifier: &str,
        password: &str,
        client_ip: &str,
    ) -> Result<User, AuthError> {
        let context = HookContext {
            ip: client_ip.to_owned(),
            ..HookContext::default()
        };
        self.authenticate(identifier, password, context).await
    }

    /// [`CrudAuth::authenticate_password`] for a route, whose caller is known in full: the
    /// failure and lockout hooks get its context.
    pub(crate) async fn authenticate(
        &self,
        identifier: &str,
        password: &str,
        context: HookContext,
    ) -> Result<User, AuthError> {
        let (user, attempt) = self
            .authenticate_held(identifier, password, context)
            .await?;
        self.lockout_success(&attempt).await;
        Ok(user)
    }

    /// Turns a sign-in away while the hash pool is full, before anything else: the answer
    /// would be the same 503 after the user lookup and the lockout count, and it is the same
    /// for every identifier (it tells nothing about accounts and counts towards no lockout).
    ///
    /// The refusal waits [`BUSY_WAIT`] first and lets the attempt through if room was made
    /// meanwhile. A client that sends again as soon as it is answered (a storm of a few
    /// hundred connections) is then held to a few refusals per second per connection instead
    /// of thousands, which would otherwise take the cores from every other request
    /// (bench/isolation.py). Waiting costs a timer, nothing else.
    async fn wait_for_hashing_room(&self) -> Result<(), AuthError> {
        let passwords = &self.inner.passwords;
        if passwords.check_capacity().is_ok() {
            return Ok(());
        }
        tokio::time::sleep(BUSY_WAIT).await;
        passwords.check_capacity().map_err(password_failure)
    }

    /// [`CrudAuth::authenticate`] that leaves the lockout's pressure in place: the account and
    /// the attempt's keys, to clear once the sign-in really completes (after a second factor).
    pub(crate) async fn authenticate_held(
        &self,
        identifier: &str,
        password: &str,
        context: HookContext,
    ) -> Result<(User, LockoutKeys), AuthError> {
        let client_ip = context.ip.as_str();
        self.wait_for_hashing_room().await?;
        // The identifier is resolved first, so the email and the user name of one account share
        // one counter; the lookup costs the same queries whether or not it names an account,
        // and the lockout still comes before any password work.
        let users = self.users();
        let user =
            crudauth_core::user::find_by_login(users, &self.inner.login_fields, identifier).await?;
        let account_id = user.as_ref().map(|u| u.id.to_string());
        let subject = match &account_id {
            Some(id) => LockoutSubject::Account(id),
            None => LockoutSubject::Identifier(identifier),
        };
        let attempt = match self.lockout_check(subject, client_ip).await {
            Ok(attempt) => attempt,
            Err(refused) => {
                let event = HookEvent::Lockout {
                    identifier: identifier.to_owned(),
                    retry_after: refused.retry_after().unwrap_or(0),
                };
                self.fire(event, context).await;
                return Err(refused);
            }
        };
        let stored = user.as_ref().and_then(|u| u.hashed_password.as_ref());
        let matched = match self.check_password(password, stored).await {
            Ok(verdict) => verdict.filter(|v| v.matched),
            Err(refused) => {
                // A 503 (the hash pool is full) is not a guess: without this, five of them in
                // a storm would lock the account's owner out.
                self.lockout_forget(&attempt).await;
                return Err(refused);
            }
        };
        let (verdict, user) = match (matched, user) {
            (Some(verdict), Some(user)) if user.is_active => (verdict, user),
            (Some(_), Some(user)) => {
                tracing::warn!(user_id = %user.id, "sign-in refused: account is disabled");
                self.login_failed(identifier, Some(user), LoginFailure::Inactive, context)
                    .await;
                return Err(AuthError::bad_credentials());
            }
            (_, user) => {
                self.login_failed(identifier, user, LoginFailure::InvalidCredentials, context)
                    .await;
                return Err(AuthError::bad_credentials());
            }
        };
        if let Some(rehash) = verdict.rehash {
            let changes = UserUpdate {
                hashed_password: Some(rehash),
                ..Default::default()
            };
            if let Err(e) = users.update(&user.id, changes).await {
                tracing::warn!(error = %e, "could not store the upgraded password hash; will retry at next sign-in");
            }
        }
        Ok((user, attempt))
    }

    async fn login_failed(
        &self,
        identifier: &str,
        user: Option<User>,
        reason: LoginFailure,
        context: HookContext,
    ) {
        let event = HookEvent::LoginFailed {
            identifier: identifier.to_owned(),
            user,
            reason,
        };
        self.fire(event, context).await;
    }

    /// After a change of credential epoch (`updated` carries the new token_version): ends
    /// every session of the user but `keep`, and moves `keep` to the new epoch. Bearer tokens
    /// of the old epoch are already dead. Returns how many sessions were ended.
    pub(crate) async fn end_other_credentials(
        &self,
        updated: &User,
        keep: Option<&LoadedSession>,
    ) -> Result<usize, AuthError> {
        let Some(sessions) = self.sessions() else {
            return Ok(0);
        };
        let revoked = sessions
            .revoke_all(&updated.id, keep.map(LoadedSession::handle))
            .await?;
        if let Some(current) = keep {
            let mut record = current.record.clone();
            record.token_version = updated.token_version;
            sessions.update(current.handle(), &record).await?;
        }
        Ok(revoked)
    }

    /// After a password was changed (`end_others`: the epoch moved, so every other session of
    /// the user ends) or set: the request's own session, if it came with one, moves to a new
    /// id at `updated`'s epoch, with a new CSRF token — the cookies that carry them. The old id
    /// is dead. A session that ended meanwhile is not renewed (its cookies are cleared).
    pub(crate) async fn renew_session(
        &self,
        updated: &User,
        current: Option<&LoadedSession>,
        end_others: bool,
    ) -> Result<Vec<axum::http::HeaderValue>, AuthError> {
        let Some(sessions) = self.sessions() else {
            return Ok(Vec::new());
        };
        if end_others {
            sessions
                .revoke_all(&updated.id, current.map(LoadedSession::handle))
                .await?;
        }
        let Some(current) = current else {
            return Ok(Vec::new());
        };
        Ok(
            match sessions.rotate(current, updated.token_version).await? {
                Some(renewed) => super::session::session_cookies(self, sessions, &renewed).1,
                None => super::session::clear_session_cookies(self),
            },
        )
    }

    /// Whether the principal signed in recently enough for sensitive changes (a session made
    /// within the freshness window, or in sudo mode). Bearer principals are never fresh.
    pub(crate) fn is_fresh(&self, principal: &Principal) -> bool {
        let Some(session) = &principal.session else {
            return false;
        };
        let now = self.inner.clock.now_millis();
        let window = self.inner.fresh_sign_in.as_millis() as u64;
        now.saturating_sub(session.record.created_at) <= window
            || session.record.sudo_until.is_some_and(|t| t > now)
    }

    /// The counting identity of an email address, for the per-target budgets: `to:` and an
    /// HMAC of its canonical form under the limiter key (the store never holds the address).
    pub(crate) fn email_target_key(&self, email: &str) -> String {
        self.inner
            .limiter_key
            .digest_after("to:", "email-target", &canonical_email(email))
    }

    /// Whether one more email of built-in action `action` may go to `to` (counted now): the
    /// silent per-target cap. Over budget, or when the limiter fails, the email is skipped and
    /// the caller answers as if it was sent, so the cap is neither an oracle nor a lever; a
    /// budget of 0 turns the cap off.
    pub(crate) async fn within_email_budget(&self, action: &str, to: &str) -> bool {
        let Some(limiter) = self.builtin_limiter(action) else {
            return true;
        };
        match limiter.count(self, &self.email_target_key(to)).await {
            Counted::Pass(_) => true,
            Counted::Refuse(_) => {
                tracing::info!(
                    action,
                    "email skipped: over the per-address budget (or the limiter failed)"
                );
                false
            }
        }
    }
}

/// How long a sign-in that finds the hash pool full waits before its 503 (see
/// [`CrudAuth::wait_for_hashing_room`]).
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

fn password_failure(e: crudauth_core::password::PasswordError) -> AuthError {
    match e {
        crudauth_core::password::PasswordError::Busy { .. } => AuthError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Authentication service busy; try again shortly",
        )
        .with_header(axum::http::header::RETRY_AFTER, 1),
        other => AuthError::unavailable(&other),
    }
}
