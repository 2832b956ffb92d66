//! Two-factor authentication: the login challenge (`/mfa/verify`, `/mfa/challenge`) and the
//! management routes (`GET /mfa`, `/mfa/totp/setup`, `/mfa/totp/confirm`,
//! `/mfa/totp/disable`, `/mfa/recovery-codes/regenerate`), in crudauth 0.8's words.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use crudauth_core::email::EmailKind;
use crudauth_core::hooks::HookEvent;
use crudauth_core::limit::LockoutSubject;
use crudauth_core::mfa::challenge::{Challenge, Challenges, Settled};
use crudauth_core::mfa::totp::TotpSecret;
use crudauth_core::mfa::{recovery, Factors, Mfa, SetupView, Verdict};
use crudauth_core::principal::Principal;
use crudauth_core::user::{MfaWrite, User, UserStore};

use super::{detail, reply, Client, SignedIn};
use crate::bearer::RefreshMode;
use crate::body::{Fields, RawBody};
use crate::error::AuthError;
use crate::extract::CurrentUser;
use crate::recovery::Job;
use crate::state::CrudAuth;

const INVALID_CHALLENGE: &str = "Invalid or expired MFA challenge";
const INVALID_CODE: &str = "Invalid code";
const ALREADY_ENABLED: &str = "Two-factor authentication is already enabled.";

/// Two-factor authentication as built: the service and the challenge store.
#[derive(Debug)]
pub(crate) struct MfaState {
    pub(crate) service: Mfa,
    pub(crate) challenges: Challenges,
}

/// How a challenged sign-in finishes once the code is right.
pub(crate) enum Finish {
    /// Through the session transport.
    Session {
        /// A remember-me session.
        remember_me: bool,
    },
    /// Through the bearer transport.
    Bearer {
        /// The scopes asked for.
        scopes: Vec<String>,
    },
    /// An OAuth sign-in, through the session transport.
    OAuth {
        /// The provider's name.
        provider: String,
        /// Where the browser goes once signed in.
        redirect_to: String,
    },
}

/// Tells the account's owner, when email is on and the account has an address.
fn notify(auth: &CrudAuth, user: &User, kind: EmailKind) {
    if let (Some(_), Some(to)) = (&auth.inner.email, &user.email) {
        auth.enqueue(Job::Notice {
            kind,
            to: to.clone(),
            budget: None,
        });
    }
}

fn invalid_code() -> AuthError {
    AuthError::new(StatusCode::UNAUTHORIZED, INVALID_CODE)
}

impl CrudAuth {
    fn mfa_state(&self) -> Result<&MfaState, AuthError> {
        self.inner
            .mfa
            .as_ref()
            .ok_or_else(AuthError::not_authenticated)
    }

    fn now_secs(&self) -> u64 {
        self.inner.clock.now_millis() / 1000
    }

    /// After a right password (or an OAuth sign-in): when the account owes a second factor,
    /// the challenge answer's body (`{mfa_required, challenge, expires_in[, setup]}`, answered
    /// with no cookie and no token); `None` when the sign-in may complete now. An account that
    /// must enrol and has not gets a pending secret (the one it has, while its
    /// `token_version` holds) in `setup`.
    pub(crate) async fn challenge_if_due(
        &self,
        user: &User,
        client: &Client,
        finish: Finish,
    ) -> Result<Option<Map<String, Value>>, AuthError> {
        let Some(mfa) = &self.inner.mfa else {
            return Ok(None);
        };
        let service = &mfa.service;
        let enrolled = service.is_enrolled(user);
        if !enrolled && !service.is_required(user).await {
            return Ok(None);
        }
        let transport = match &finish {
            Finish::Session { .. } | Finish::OAuth { .. } => "session",
            Finish::Bearer { .. } => "bearer",
        };
        let mut challenge =
            Challenge::new(user.id.clone(), user.token_version, transport, &client.ip);
        match finish {
            Finish::Session { remember_me } => challenge.remember_me = remember_me,
            Finish::Bearer { scopes } => challenge.scopes = scopes,
            Finish::OAuth {
                provider,
                redirect_to,
            } => {
                challenge.login_type = "oauth".into();
                challenge.provider = Some(provider);
                challenge.redirect_to = Some(redirect_to);
            }
        }
        let mut body = Map::new();
        body.insert("mfa_required".into(), true.into());
        let setup = if enrolled {
            None
        } else {
            challenge.setup = true;
            Some(self.pending_setup(service, user).await?)
        };
        let ttl = service.challenge_ttl();
        let token = mfa.challenges.issue(&challenge, ttl).await?;
        body.insert("challenge".into(), token.expose().into());
        body.insert("expires_in".into(), ttl.as_secs().into());
        if let Some(setup) = setup {
            body.insert("setup".into(), json!(setup));
        }
        Ok(Some(body))
    }

    /// The account's pending secret while its `token_version` holds, else a fresh one, sealed
    /// and stored as pending: what setup shows.
    async fn pending_setup(
        &self,
        service: &Mfa,
        user: &User,
    ) -> Result<crudauth_core::mfa::SetupView, AuthError> {
        let secret = match service.pending_secret(user) {
            Some(secret) => secret,
            None => {
                let secret = TotpSecret::generate();
                let write = MfaWrite::Pending {
                    secret: service.seal_pending(user.token_version, &secret),
                };
                if !self.users().write_mfa(&user.id, write).await? {
                    return Err(AuthError::not_authenticated());
                }
                secret
            }
        };
        Ok(service.setup_view(user, &secret))
    }

    /// Checks `code` for `user` among `factors` and claims it, once; 401 "Invalid code"
    /// otherwise.
    async fn redeem_code(
        &self,
        service: &Mfa,
        user: &User,
        code: &str,
        factors: Factors,
        client: &Client,
        principal: Option<&Principal>,
    ) -> Result<(), AuthError> {
        let verdict = service.check(user, code, self.now_secs(), factors);
        if !self
            .claim_code(service, user, code, &verdict, client, principal)
            .await?
        {
            return Err(invalid_code());
        }
        Ok(())
    }

    /// Claims what `verdict` found, once (see [`Mfa::claim`]); hooks hear of a used recovery
    /// code.
    async fn claim_code(
        &self,
        service: &Mfa,
        user: &User,
        code: &str,
        verdict: &Verdict,
        client: &Client,
        principal: Option<&Principal>,
    ) -> Result<bool, AuthError> {
        if !service.claim(self.users(), user, code, verdict).await? {
            return Ok(false);
        }
        if *verdict == Verdict::RecoveryCode {
            notify(self, user, EmailKind::RecoveryCodeUsed);
            self.fire(
                HookEvent::RecoveryCodeUsed(user.clone()),
                client.hook_context(principal),
            )
            .await;
        }
        Ok(true)
    }

    /// Checks and claims a TOTP code of the account's enrolled secret (sudo by code): `false`
    /// when two-factor authentication is off, the account has none, or the code is wrong or
    /// used.
    pub(crate) async fn redeem_totp(&self, user: &User, code: &str) -> Result<bool, AuthError> {
        let Some(mfa) = &self.inner.mfa else {
            return Ok(false);
        };
        let Some(user) = self.users().uncached().find_by_id(&user.id).await? else {
            return Ok(false);
        };
        let verdict = mfa
            .service
            .check(&user, code, self.now_secs(), Factors::Totp);
        Ok(mfa
            .service
            .claim(self.users(), &user, code, &verdict)
            .await?)
    }

    /// The principal's row as the table holds it now (two-factor state is never taken from a
    /// cached copy).
    async fn fresh_user(&self, principal: &Principal) -> Result<User, AuthError> {
        self.users()
            .uncached()
            .find_by_id(principal.user_id())
            .await?
            .ok_or_else(AuthError::not_authenticated)
    }
}

/// A body of one required string field.
fn one_field(body: &RawBody, name: &str) -> Result<String, AuthError> {
    let mut f = Fields::json(body)?;
    let value = f.string(name);
    f.finish()?;
    Ok(value)
}

pub(super) async fn verify(
    State(auth): State<CrudAuth>,
    client: Client,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, AuthError> {
    let mut f = Fields::json(&body)?;
    let token = f.string("challenge");
    let code = f.string("code");
    f.finish()?;
    Ok(finish_challenge(&auth, &client, &headers, &token, &code)
        .await?
        .reply())
}

/// Settles a sign-in challenge with `code`: the attempt limits, the lockout, the code claimed
/// once, enrolment finished when the challenge was a setup; then the sign-in completes through
/// the challenge's transport.
pub(crate) async fn finish_challenge(
    auth: &CrudAuth,
    client: &Client,
    headers: &HeaderMap,
    token: &str,
    code: &str,
) -> Result<SignedIn, AuthError> {
    let mfa = auth.mfa_state()?;
    let service = &mfa.service;
    let invalid = || AuthError::bad_request(INVALID_CHALLENGE);
    let Some(opened) = mfa.challenges.open(token).await? else {
        return Err(invalid());
    };
    let challenge = &opened.challenge;
    let sets_cookies = match challenge.transport.as_str() {
        "bearer" => auth
            .bearer()
            .is_some_and(|b| b.refresh == RefreshMode::Cookie),
        _ => true,
    };
    if sets_cookies {
        client.refuse_cross_site_login()?;
    }
    let max = service.max_code_attempts();
    if challenge.attempts >= max {
        mfa.challenges.discard(&opened).await?;
        return Err(invalid());
    }
    // Every code counts against the login lockout, the right one included (its success then
    // clears it), exactly as a password does.
    let account = challenge.user_id.to_string();
    let attempt = match auth
        .lockout_check(LockoutSubject::Account(&account), &challenge.ip)
        .await
    {
        Ok(attempt) => attempt,
        Err(refused) => {
            mfa.challenges.discard(&opened).await?;
            return Err(refused);
        }
    };
    let user = auth
        .users()
        .uncached()
        .find_by_id(&challenge.user_id)
        .await?
        .filter(|u| u.is_active && u.token_version == challenge.token_version);
    let Some(user) = user else {
        mfa.challenges.discard(&opened).await?;
        return Err(invalid());
    };
    let factors = if challenge.setup {
        Factors::Pending
    } else {
        Factors::TotpOrRecovery
    };
    let verdict = service.check(&user, code, auth.now_secs(), factors);
    // One swap settles the attempt: it counts a wrong code, or finishes the challenge for
    // exactly one of any number of right ones.
    match mfa
        .challenges
        .settle(&opened, verdict.is_valid(), max)
        .await?
    {
        Settled::Finished => {}
        Settled::Spent => return Err(invalid()),
        Settled::Counted(n) => {
            if n >= max {
                mfa.challenges.discard(&opened).await?;
            }
            return Err(invalid_code());
        }
    }
    // Then the code itself is claimed, once; a replayed one gives the challenge back, counted.
    if !auth
        .claim_code(service, &user, code, &verdict, client, None)
        .await?
    {
        mfa.challenges.reopen(&opened).await?;
        return Err(invalid_code());
    }
    let mut extra = Map::new();
    if challenge.setup {
        let codes = enable(auth, service, &user, client, None).await?;
        extra.insert("recovery_codes".into(), json!(codes));
    }
    auth.lockout_success(&attempt).await;
    let mut signed_in = match challenge.transport.as_str() {
        "bearer" => {
            let bearer = super::bearer::bearer(auth)?;
            super::bearer::sign_in(auth, bearer, user, &challenge.scopes, client).await?
        }
        _ => {
            let sessions = super::session::sessions(auth)?;
            let remember_me = challenge.remember_me;
            let login_type = match &challenge.provider {
                Some(provider) => super::oauth::login_type(provider),
                None => challenge.login_type.clone(),
            };
            super::session::sign_in(
                auth,
                sessions,
                user,
                client,
                headers,
                remember_me,
                &login_type,
            )
            .await?
        }
    };
    signed_in.body.extend(extra);
    if let Some(to) = &challenge.redirect_to {
        signed_in
            .body
            .insert("redirect_to".into(), to.clone().into());
    }
    Ok(signed_in)
}

/// Finishes enrolment from the pending secret (whose code was just claimed): the account's
/// one set of recovery codes, or 400 when a concurrent confirmation won.
async fn enable(
    auth: &CrudAuth,
    service: &Mfa,
    user: &User,
    client: &Client,
    principal: Option<&Principal>,
) -> Result<Vec<String>, AuthError> {
    let (Some(pending), Some(secret)) = (user.mfa.secret.clone(), service.pending_secret(user))
    else {
        return Err(AuthError::bad_request("No authenticator setup is pending."));
    };
    let (codes, stored) = service.new_recovery_codes();
    let write = MfaWrite::Enable {
        pending,
        secret: service.seal(&secret),
        recovery_codes: stored,
    };
    if !auth.users().write_mfa(&user.id, write).await? {
        return Err(AuthError::bad_request(ALREADY_ENABLED));
    }
    notify(auth, user, EmailKind::MfaEnabled);
    auth.fire(
        HookEvent::MfaEnabled(user.clone()),
        client.hook_context(principal),
    )
    .await;
    Ok(codes)
}

pub(super) async fn challenge(
    State(auth): State<CrudAuth>,
    body: RawBody,
) -> Result<Response, AuthError> {
    let mfa = auth.mfa_state()?;
    let token = one_field(&body, "challenge")?;
    let Some(opened) = mfa.challenges.open(&token).await? else {
        return Err(AuthError::bad_request(INVALID_CHALLENGE));
    };
    let setup = if opened.challenge.setup {
        let user = auth
            .users()
            .uncached()
            .find_by_id(&opened.challenge.user_id)
            .await?
            .filter(|u| u.token_version == opened.challenge.token_version)
            .ok_or_else(|| AuthError::bad_request(INVALID_CHALLENGE))?;
        let pending = mfa.service.pending_secret(&user);
        pending.map(|secret| mfa.service.setup_view(&user, &secret))
    } else {
        None
    };
    Ok(reply(StatusCode::OK, json!({ "setup": setup }), vec![]))
}

pub(super) async fn status(
    State(auth): State<CrudAuth>,
    principal: CurrentUser,
) -> Result<Response, AuthError> {
    let mfa = auth.mfa_state()?;
    let user = auth.fresh_user(&principal).await?;
    let enabled = mfa.service.is_enrolled(&user);
    let body = json!({
        "enabled": enabled,
        "required": mfa.service.is_required(&user).await,
        "recovery_codes_remaining": if enabled {
            recovery::remaining(user.mfa.recovery_codes.as_deref())
        } else {
            0
        },
    });
    Ok(reply(StatusCode::OK, body, vec![]))
}

pub(super) async fn setup(
    State(auth): State<CrudAuth>,
    principal: CurrentUser,
    body: RawBody,
) -> Result<Response, AuthError> {
    let mut f = Fields::json(&body)?;
    let password = f.optional_string("password");
    f.finish()?;
    let view = begin_setup(&auth, &principal, password.as_deref()).await?;
    Ok(reply(StatusCode::OK, json!(view), vec![]))
}

/// `/mfa/totp/setup`'s work once its body is read: the password proof (or a fresh sign-in
/// for an account without one), then a new pending secret stored: what to show the user.
pub(crate) async fn begin_setup(
    auth: &CrudAuth,
    principal: &Principal,
    password: Option<&str>,
) -> Result<SetupView, AuthError> {
    let mfa = auth.mfa_state()?;
    let user = auth.fresh_user(principal).await?;
    // crudauth's order: the proof first, then whether two-factor is on already.
    if user.has_usable_password() {
        let password = password.unwrap_or_default();
        if !auth
            .verify_password(password, user.hashed_password.as_ref())
            .await?
        {
            return Err(AuthError::new(
                StatusCode::UNAUTHORIZED,
                "Incorrect password",
            ));
        }
    } else if !auth.is_fresh(principal) {
        return Err(AuthError::forbidden(
            "Sign in again to continue: this needs a recent sign-in.",
        ));
    }
    if mfa.service.is_enrolled(&user) {
        return Err(AuthError::bad_request(ALREADY_ENABLED));
    }
    let secret = TotpSecret::generate();
    let write = MfaWrite::Pending {
        secret: mfa.service.seal_pending(user.token_version, &secret),
    };
    if !auth.users().write_mfa(&user.id, write).await? {
        return Err(AuthError::not_authenticated());
    }
    Ok(mfa.service.setup_view(&user, &secret))
}

pub(super) async fn confirm(
    State(auth): State<CrudAuth>,
    client: Client,
    principal: CurrentUser,
    body: RawBody,
) -> Result<Response, AuthError> {
    auth.mfa_state()?;
    let code = one_field(&body, "code")?;
    let codes = confirm_setup(&auth, &client, &principal, &code).await?;
    Ok(reply(
        StatusCode::OK,
        json!({ "recovery_codes": codes }),
        vec![],
    ))
}

/// `/mfa/totp/confirm`'s work: the pending secret's code checked, two-factor enabled, the
/// recovery codes (shown once).
pub(crate) async fn confirm_setup(
    auth: &CrudAuth,
    client: &Client,
    principal: &Principal,
    code: &str,
) -> Result<Vec<String>, AuthError> {
    let mfa = auth.mfa_state()?;
    let user = auth.fresh_user(principal).await?;
    if mfa.service.is_enrolled(&user) {
        return Err(AuthError::bad_request(ALREADY_ENABLED));
    }
    if mfa.service.pending_secret(&user).is_none() {
        return Err(AuthError::bad_request("No authenticator setup is pending."));
    }
    let service = &mfa.service;
    auth.redeem_code(
        service,
        &user,
        code,
        Factors::Pending,
        client,
        Some(principal),
    )
    .await?;
    enable(auth, service, &user, client, Some(principal)).await
}

pub(super) async fn disable(
    State(auth): State<CrudAuth>,
    client: Client,
    principal: CurrentUser,
    body: RawBody,
) -> Result<Response, AuthError> {
    auth.mfa_state()?;
    let code = one_field(&body, "code")?;
    turn_off(&auth, &client, &principal, &code).await?;
    Ok(reply(
        StatusCode::OK,
        detail("Two-factor authentication disabled."),
        vec![],
    ))
}

/// `/mfa/totp/disable`'s work: refused when the account must use two-factor, else a TOTP or
/// recovery code checked, the factor removed, the notice and the hook.
pub(crate) async fn turn_off(
    auth: &CrudAuth,
    client: &Client,
    principal: &Principal,
    code: &str,
) -> Result<(), AuthError> {
    let mfa = auth.mfa_state()?;
    let user = auth.fresh_user(principal).await?;
    let service = &mfa.service;
    if service.is_required(&user).await {
        return Err(AuthError::forbidden(
            "Two-factor authentication is required for this account.",
        ));
    }
    auth.redeem_code(
        service,
        &user,
        code,
        Factors::TotpOrRecovery,
        client,
        Some(principal),
    )
    .await?;
    auth.users().write_mfa(&user.id, MfaWrite::Disable).await?;
    notify(auth, &user, EmailKind::MfaDisabled);
    auth.fire(
        HookEvent::MfaDisabled(user),
        client.hook_context(Some(principal)),
    )
    .await;
    Ok(())
}

pub(super) async fn regenerate(
    State(auth): State<CrudAuth>,
    client: Client,
    principal: CurrentUser,
    body: RawBody,
) -> Result<Response, AuthError> {
    let mfa = auth.mfa_state()?;
    let code = one_field(&body, "code")?;
    let user = auth.fresh_user(&principal).await?;
    let service = &mfa.service;
    auth.redeem_code(
        service,
        &user,
        &code,
        Factors::TotpOrRecovery,
        &client,
        Some(&principal),
    )
    .await?;
    let (codes, stored) = service.new_recovery_codes();
    let write = MfaWrite::Regenerate {
        recovery_codes: stored,
    };
    if !auth.users().write_mfa(&user.id, write).await? {
        return Err(AuthError::bad_request(
            "Two-factor authentication isn't enabled.",
        ));
    }
    Ok(reply(
        StatusCode::OK,
        json!({ "recovery_codes": codes }),
        vec![],
    ))
}
