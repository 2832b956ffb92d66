//! Extractors: [`CurrentUser`] (with gates), [`MaybeUser`], [`Session`] (with the
//! application's data), [`CsrfToken`] (for forms). Each resolves the
//! request's principal once (cached in the request's extensions, per transport, whichever
//! extractors ask) and answers its own rejection.
//!
//! ```
//! use axum::{routing::get, Json, Router};
//! use crudauth_axum::extract::{CurrentUser, MaybeUser, SessionOnly, Superuser};
//!
//! let app: Router = Router::new()
//!     .route("/dashboard", get(|user: CurrentUser| async move { Json(user.user_id().clone()) }))
//!     .route("/admin", get(|_: CurrentUser<Superuser>| async { "ok" }))
//!     .route("/feed", get(|user: MaybeUser| async move { format!("{}", user.0.is_some()) }))
//!     .route("/settings", axum::routing::post(|_: CurrentUser<SessionOnly>| async { "saved" }));
//! ```

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crudauth_core::principal::{Gate, Principal};
use crudauth_core::session::LoadedSession;

use crate::error::AuthError;
use crate::layer::{Outcome, RequestAuth};

fn request_auth(parts: &Parts) -> Result<&RequestAuth, AuthError> {
    parts.extensions.get::<RequestAuth>().ok_or_else(|| {
        tracing::error!("crudauth extractor used on a route without `.layer(auth.layer())`");
        AuthError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "Authentication is not configured for this route",
        )
    })
}

/// Resolves the request's principal over the installed configuration's transports (only
/// `only`, when given), in order; each transport runs at most once per request, its outcome
/// kept in the request's [`RequestAuth`].
pub(crate) async fn resolve(parts: &mut Parts, only: Option<&'static str>) -> Outcome {
    let count = request_auth(parts)?.auth.transports().len();
    for i in 0..count {
        let installed = request_auth(parts)?;
        if only.is_some_and(|name| name != installed.auth.transports()[i].name()) {
            continue;
        }
        match resolve_at(parts, i).await {
            Ok(None) => continue,
            other => return other,
        }
    }
    Ok(None)
}

/// The outcome of the `i`-th transport for this request: cached, or resolved now and cached.
pub(crate) async fn resolve_at(parts: &mut Parts, i: usize) -> Outcome {
    // Borrowed afresh: the outcome is written back into the same extension.
    let installed = request_auth(parts)?;
    if let Some(cached) = installed.outcomes.get(i).and_then(Option::as_ref) {
        return cached.clone();
    }
    let auth = installed.auth.clone();
    let fresh = auth.authenticate_with(i, parts).await;
    if let Some(slot) = parts
        .extensions
        .get_mut::<RequestAuth>()
        .and_then(|r| r.outcomes.get_mut(i))
    {
        *slot = Some(fresh.clone());
    }
    fresh
}

/// What a [`CurrentUser`] requires beyond being signed in: a transport, and checks.
///
/// Implement it for your own marker type to add a custom check (answer `Err` with any
/// [`AuthError`], e.g. 403 "Access denied"). Tuples combine requirements: the first transport
/// named wins, every check must pass.
pub trait Require: Send + Sync + 'static {
    /// Only this transport may authenticate the request (`None`: any).
    const TRANSPORT: Option<&'static str> = None;

    /// Checks the principal.
    fn check(_principal: &Principal) -> Result<(), AuthError> {
        Ok(())
    }

    /// Checks the principal at `now` (ms since the epoch, by the builder's clock), for checks
    /// that depend on time; defaults to [`Require::check`].
    fn check_at(principal: &Principal, _now_millis: u64) -> Result<(), AuthError> {
        Self::check(principal)
    }
}

/// Any signed-in user, any transport.
#[derive(Debug)]
pub struct Any;
impl Require for Any {}

/// A superuser (403 "Insufficient privileges").
#[derive(Debug)]
pub struct Superuser;
impl Require for Superuser {
    fn check(p: &Principal) -> Result<(), AuthError> {
        Gate::Superuser.check(p).map_err(AuthError::forbidden)
    }
}

/// A user whose email is verified (403 "Recovery factor not verified").
#[derive(Debug)]
pub struct Verified;
impl Require for Verified {
    fn check(p: &Principal) -> Result<(), AuthError> {
        Gate::Verified.check(p).map_err(AuthError::forbidden)
    }
}

/// A session in sudo mode: re-authenticated (`POST /sudo`, or
/// [`CrudAuth::elevate`](crate::CrudAuth::elevate)) within the sudo window, in this very
/// session. Anything else, bearer principals included, is 403 "Re-authentication required.".
#[derive(Debug)]
pub struct Sudo;
impl Require for Sudo {
    fn check_at(p: &Principal, now: u64) -> Result<(), AuthError> {
        let elevated = p
            .session
            .as_ref()
            .and_then(|s| s.record.sudo_until)
            .is_some_and(|until| until > now);
        if elevated {
            Ok(())
        } else {
            Err(AuthError::forbidden("Re-authentication required."))
        }
    }
}

/// Authenticated by the session cookie only (so CSRF applies to unsafe methods).
#[derive(Debug)]
pub struct SessionOnly;
impl Require for SessionOnly {
    const TRANSPORT: Option<&'static str> = Some("session");
}

/// Authenticated by a bearer token only.
#[derive(Debug)]
pub struct BearerOnly;
impl Require for BearerOnly {
    const TRANSPORT: Option<&'static str> = Some("bearer");
}

macro_rules! require_tuple {
    ($($t:ident),+) => {
        impl<$($t: Require),+> Require for ($($t,)+) {
            const TRANSPORT: Option<&'static str> = {
                let all = [$($t::TRANSPORT),+];
                let mut i = 0;
                let mut found = None;
                while i < all.len() {
                    if found.is_none() { found = all[i]; }
                    i += 1;
                }
                found
            };
            fn check(p: &Principal) -> Result<(), AuthError> {
                $($t::check(p)?;)+
                Ok(())
            }
            fn check_at(p: &Principal, now: u64) -> Result<(), AuthError> {
                $($t::check_at(p, now)?;)+
                Ok(())
            }
        }
    };
}
require_tuple!(A, B);
require_tuple!(A, B, C);

/// The signed-in principal; 401 "Not authenticated" when there is none, 403 when a
/// [`Require`] check fails.
pub struct CurrentUser<R: Require = Any>(pub Arc<Principal>, PhantomData<R>);

impl<R: Require> Deref for CurrentUser<R> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<R: Require> std::fmt::Debug for CurrentUser<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CurrentUser").field(&self.0).finish()
    }
}

impl<S: Send + Sync, R: Require> FromRequestParts<S> for CurrentUser<R> {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = resolve(parts, R::TRANSPORT)
            .await?
            .ok_or_else(AuthError::not_authenticated)?;
        let now = request_auth(parts)?.auth.inner.clock.now_millis();
        R::check_at(&principal, now)?;
        Ok(CurrentUser(principal, PhantomData))
    }
}

/// The principal when there is one. A credential that is present but invalid is still an
/// error (401, or 403 for CSRF), and a backend outage is a 503 — never an anonymous pass.
#[derive(Debug)]
pub struct MaybeUser(pub Option<Arc<Principal>>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeUser(resolve(parts, None).await?))
    }
}

/// The request's cookie session and its principal, for crudauth's own routes (401 when the
/// request is not session-authenticated).
#[derive(Debug)]
pub(crate) struct SessionCaller {
    /// The signed-in principal.
    pub(crate) principal: Arc<Principal>,
    /// The live session.
    pub(crate) session: LoadedSession,
}

impl<S: Send + Sync> FromRequestParts<S> for SessionCaller {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match resolve(parts, Some("session")).await? {
            Some(principal) => match principal.session.clone() {
                Some(session) => Ok(SessionCaller { principal, session }),
                None => Err(AuthError::not_authenticated()),
            },
            None => Err(AuthError::not_authenticated()),
        }
    }
}

pub use crate::layer::csrf::{CsrfRejection, CsrfToken};
pub use crate::session::{Login, Session, SessionRejection};
