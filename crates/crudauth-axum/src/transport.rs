//! Transports: where a request's credential comes from. The built-in ones are the session
//! (cookie + CSRF) and the bearer token; a custom one is one implementation of [`Transport`].
//! They are tried in the order the builder was given them; the first credential present wins.
//!
//! ```
//! use crudauth_axum::{BearerTransport, CrudAuth, SessionTransport};
//! use crudauth_core::user::MemoryUsers;
//!
//! let auth = CrudAuth::builder()
//!     .secret_key([7u8; 32])
//!     .users(MemoryUsers::new())
//!     .bearer_transport(BearerTransport::default())
//!     .session_transport(SessionTransport::default())
//!     .build()
//!     .unwrap();
//! let order: Vec<&str> = auth.transports().iter().map(|t| t.name()).collect();
//! assert_eq!(order, ["bearer", "session"]);
//! ```

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};

use crudauth_core::principal::Principal;
use crudauth_core::secret::SessionId;
use crudauth_core::session::{LoadedSession, Sessions};

use crate::bearer::BearerAuth;
use crate::builder::CrudAuth;
use crate::cookies;
use crate::error::AuthError;
use crate::layer::Outcome;

/// A source of credentials: the session cookie, the bearer token, or one of your own.
///
/// `authenticate` answers one of three things:
///
/// - `Ok(Some(principal))`: the request is this user's; resolution stops;
/// - `Ok(None)`: *absent* — no credential of this kind, or one that simply ran out (expired,
///   superseded, its user gone or disabled); the next transport is tried;
/// - `Err(…)`: a credential that is present but invalid (forged, tampered, malformed: answer
///   [`AuthError::invalid_token`]), a CSRF failure, or a backend outage. Resolution ends, even
///   on routes where sign-in is optional: a forged credential is an attack signal, never
///   anonymous.
///
/// The outcome is resolved once per request and cached, whichever extractors ask. Scope,
/// superuser and verified gates apply to a custom transport's principals like any other;
/// `CurrentUser<R>` narrows a route to one transport by its [`Transport::name`].
///
/// An API-key transport, registered after the built-in ones:
///
/// ```
/// use async_trait::async_trait;
/// use axum::http::request::Parts;
/// use axum::{body::Body, http::Request, routing::get, Json, Router};
/// use crudauth_axum::extract::CurrentUser;
/// use crudauth_axum::{AuthError, BearerTransport, CrudAuth, Principal, SessionTransport, Transport};
/// use crudauth_core::secret::{ct_eq, sha256_hex};
/// use crudauth_core::user::{MemoryUsers, NewUser, UserId, UserStore};
/// use tower::ServiceExt;
///
/// /// `X-Api-Key: <user id>:<key>`. Only the key's SHA-256 is kept.
/// #[derive(Debug)]
/// struct ApiKey {
///     sha256: String,
/// }
///
/// #[async_trait]
/// impl Transport for ApiKey {
///     fn name(&self) -> &'static str {
///         "api_key"
///     }
///
///     async fn authenticate(
///         &self,
///         parts: &Parts,
///         auth: &CrudAuth,
///     ) -> Result<Option<Principal>, AuthError> {
///         let Some(value) = parts.headers.get("x-api-key") else {
///             return Ok(None); // absent: the next transport is tried
///         };
///         // Present from here on: anything wrong is a 401, never anonymous.
///         let value = value.to_str().map_err(|_| AuthError::invalid_token())?;
///         let (id, key) = value.split_once(':').ok_or_else(AuthError::invalid_token)?;
///         if !ct_eq(sha256_hex(key.as_bytes()).as_bytes(), self.sha256.as_bytes()) {
///             return Err(AuthError::invalid_token());
///         }
///         let user = auth.load_active_user(&UserId::Text(id.to_owned())).await?;
///         Ok(user.map(|u| Principal::new(u, "api_key", vec!["reports:read".into()])))
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let users = MemoryUsers::new();
/// let ada = users.create(NewUser::new("ada@example.com", "ada", "!no-password")).await.unwrap();
/// let auth = CrudAuth::builder()
///     .secret_key([7u8; 32])
///     .users(users)
///     .session_transport(SessionTransport::default())
///     .bearer_transport(BearerTransport::default())
///     .transport(ApiKey { sha256: sha256_hex(b"let-me-in") })
///     .build()
///     .unwrap();
/// let app = Router::new()
///     .route("/whoami", get(|u: CurrentUser| async move { Json(u.via) }))
///     .merge(auth.router())
///     .layer(auth.layer());
///
/// let call = |key: &str| {
///     let request = Request::get("/whoami").header("x-api-key", key).body(Body::empty()).unwrap();
///     app.clone().oneshot(request)
/// };
/// assert_eq!(call(&format!("{}:let-me-in", ada.id)).await.unwrap().status(), 200);
/// assert_eq!(call(&format!("{}:guess", ada.id)).await.unwrap().status(), 401);
/// # });
/// ```
#[async_trait]
pub trait Transport: Send + Sync + Debug + 'static {
    /// The transport's name, as `via` reports it (`session`, `bearer`, or yours). Names are
    /// unique per app.
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
        .verify(&session.id, session.record.csrf_nonce(), presented)
    {
        return Err(AuthError::csrf("Invalid CSRF token"));
    }
    Ok(())
}

impl CrudAuth {
    /// Runs the `i`-th configured transport. The built-in ones are called directly, without
    /// the boxed future a `dyn Transport` call costs. Telling them by name relies on `build()`
    /// refusing duplicate names: while the session (bearer) transport is configured, no custom
    /// transport can be named `session` (`bearer`); while it is not, one so named is custom.
    pub(crate) async fn authenticate_with(&self, i: usize, parts: &Parts) -> Outcome {
        let Some(transport) = self.transports().get(i) else {
            return Ok(None);
        };
        match transport.name() {
            "session" if self.inner.session.is_some() => {
                Ok(SessionAuth::resolve(parts, self).await?.map(Arc::new))
            }
            "bearer" if self.inner.bearer.is_some() => BearerAuth::resolve(parts, self).await,
            _ => Ok(transport.authenticate(parts, self).await?.map(Arc::new)),
        }
    }
}

/// The cookie session transport (`via: "session"`), with CSRF on unsafe methods.
#[derive(Debug)]
pub(crate) struct SessionAuth;

impl SessionAuth {
    async fn resolve(parts: &Parts, auth: &CrudAuth) -> Result<Option<Principal>, AuthError> {
        let Some(sessions) = auth.sessions() else {
            return Ok(None);
        };
        let Some(session) = presented_session(sessions, &parts.headers).await? else {
            return Ok(None);
        };
        if auth.csrf_enabled() && is_unsafe(&parts.method) {
            check_csrf(sessions, &session, &parts.headers)?;
        }
        let record = &session.record;
        let Some((user, _)) = auth
            .users()
            .find_for_version(&record.user_id, record.token_version)
            .await?
            .filter(|(user, _)| user.is_active)
        else {
            // A disabled (or deleted) account's session ends, it is not suspended: enabling
            // the account again does not bring it back.
            sessions.end(&session).await?;
            return Ok(None);
        };
        if user.token_version != record.token_version {
            // A password change or reset ended this session's epoch.
            sessions.end(&session).await?;
            return Ok(None);
        }
        let mut principal = Principal::new(user, "session", Vec::new());
        principal.session = Some(session);
        Ok(Some(principal))
    }
}

/// The live session whose id the request's session cookie carries: `None` without the
/// cookie, or when that session is gone (expired, revoked, never existed).
pub(crate) async fn presented_session(
    sessions: &Sessions,
    headers: &HeaderMap,
) -> crudauth_core::StoreResult<Option<LoadedSession>> {
    match cookies::read(headers, cookies::SESSION_COOKIE) {
        Some(cookie) => sessions.load(SessionId::from_client(cookie)).await,
        None => Ok(None),
    }
}

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
        Self::resolve(parts, auth).await
    }
}
