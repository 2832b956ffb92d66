//! The [`Session`] extractor: the request's cookie session with the application's own data,
//! flash messages, and signing in and out from the application's handlers.
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use crudauth_axum::extract::Session;
//!
//! async fn add_to_cart(session: Session) -> Result<&'static str, crudauth_axum::extract::SessionRejection> {
//!     let mut cart: Vec<u32> = session.get("cart")?.unwrap_or_default();
//!     cart.push(7);
//!     session.insert("cart", &cart)?;                 // written once, after the handler
//!     session.flash("success", "Added to your cart.")?;
//!     Ok("added")
//! }
//!
//! async fn page(session: Session) -> String {
//!     let notes: Vec<String> = session.take_flashes().into_iter().map(|f| f.message).collect();
//!     notes.join("\n")
//! }
//!
//! let app: Router = Router::new()
//!     .route("/cart", post(add_to_cart))
//!     .route("/", get(page));
//! ```
//!
//! There are no anonymous sessions: the store holds a session only for a signed-in user, so a
//! visitor who never signs in costs no store write and cannot fill the store. Data is for
//! signed-in users ([`Session::insert`] on a signed-out request is
//! [`SessionRejection::NotSignedIn`]); flash messages work either way, in the session or, while
//! signed out, in a short signed cookie.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crudauth_core::principal::Principal;
use crudauth_core::session::{DataError, Flash, LoadedSession, SessionData};
use crudauth_core::user::User;

use crate::error::AuthError;
use crate::extract::resolve;
use crate::layer::RequestAuth;
use crate::routes::{self, Client};
use crate::state::CrudAuth;

/// The cookie that carries flash messages while nobody is signed in.
pub(crate) const FLASH_COOKIE: &str = "flash";
/// The most a flash cookie's messages may take, encoded as JSON.
const MAX_FLASH_COOKIE: usize = 1024;

/// What the request's handlers did to the session, applied once the response is ready: the
/// data to write back, and the cookies to set.
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// The session the request's data belongs to: the one it came with, or the one a
    /// handler signed in or rotated to. `None` once signed out.
    current: Option<LoadedSession>,
    /// Whether `current` has been settled by an extractor yet.
    resolved: bool,
    /// The data, decoded on first use.
    data: Option<SessionData>,
    /// Flash messages for a signed-out browser: `Some` when the cookie must be (re)written.
    cookie_flashes: Option<Vec<Flash>>,
    /// Set-Cookie headers from sign-in, sign-out and rotation.
    cookies: Vec<HeaderValue>,
}

/// Put in each request's extensions by the session layer; the [`Session`] extractor and the
/// layer share it.
pub(crate) type SharedWork = Arc<Mutex<Work>>;

/// What is left to do once the handler has answered.
pub(crate) struct Pending {
    /// The session and its changed data, to write back.
    pub(crate) write: Option<(LoadedSession, SessionData)>,
    /// The cookies to append.
    pub(crate) cookies: Vec<HeaderValue>,
}

impl Work {
    /// Takes what the response still needs: the data write when the data changed, and the
    /// cookies (the flash cookie among them).
    pub(crate) fn pending(&mut self, auth: &CrudAuth) -> Pending {
        let mut cookies = std::mem::take(&mut self.cookies);
        if let Some(flashes) = self.cookie_flashes.take() {
            cookies.push(flash_cookie(auth, &flashes));
        }
        let write = match (&self.current, self.data.take()) {
            (Some(session), Some(data)) if data.is_changed() => Some((session.clone(), data)),
            _ => None,
        };
        Pending { write, cookies }
    }
}

fn lock(work: &SharedWork) -> MutexGuard<'_, Work> {
    // A handler that panicked while holding the lock left nothing half-written that matters:
    // the data is only written after the handler returns.
    work.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a [`Session`] could not be extracted or used. Each answers crudauth's JSON
/// `{"detail": …}`.
#[derive(Debug, thiserror::Error)]
pub enum SessionRejection {
    /// The route is not under `auth.layer()` or `auth.session_layer()` (500; a setup
    /// mistake, logged).
    #[error("sessions are not configured for this route")]
    MissingLayer,
    /// Data needs a signed-in session (401 "Not authenticated").
    #[error("not signed in")]
    NotSignedIn,
    /// The data operation was refused: too large (413), a reserved key or a value that does
    /// not fit the type (500).
    #[error(transparent)]
    Data(#[from] DataError),
    /// Resolving the session failed: a forged cookie (401), a CSRF failure (403), a store
    /// outage (503).
    #[error("{0}")]
    Auth(#[from] AuthError),
}

impl SessionRejection {
    /// The error this answers with.
    pub fn into_auth_error(self) -> AuthError {
        match self {
            Self::MissingLayer => {
                tracing::error!(
                    "Session extractor used on a route without `.layer(auth.layer())` or \
                     `auth.session_layer()`"
                );
                AuthError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sessions are not configured for this route",
                )
            }
            Self::NotSignedIn => AuthError::not_authenticated(),
            Self::Data(DataError::TooLarge { .. }) => {
                AuthError::new(StatusCode::PAYLOAD_TOO_LARGE, "Session data too large")
            }
            Self::Data(e) => {
                tracing::error!(error = %e, "session data refused");
                AuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "Session data refused")
            }
            Self::Auth(e) => e,
        }
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        self.into_auth_error().into_response()
    }
}

/// How [`Session::login`] went.
#[derive(Debug, Clone, PartialEq)]
pub enum Login {
    /// Signed in: a new session, its cookies set on the response.
    SignedIn,
    /// The account owes a second factor first: nothing is signed in yet. Show a code form and
    /// finish with [`Session::complete_mfa`] (or `POST /mfa/verify`) with this challenge.
    MfaRequired {
        /// The challenge token.
        challenge: String,
    },
}

/// The request's cookie session: who is signed in, the application's data, flash messages,
/// and sign-in, sign-out and rotation for applications that sign users in their own way.
///
/// Needs `auth.layer()` (or `auth.session_layer()`) around the route. Extracting it reads the
/// session (one store operation, shared with every other extractor of the request); reading
/// data costs nothing more, and changed data is written once, after the handler, only if the
/// session is still live.
#[derive(Debug, Clone)]
pub struct Session {
    auth: CrudAuth,
    work: SharedWork,
    principal: Option<Arc<Principal>>,
    client: ClientInfo,
}

/// The caller's details a sign-in records, kept from the request's parts.
#[derive(Debug, Clone)]
struct ClientInfo {
    caller: Client,
    /// The request's `Cookie` headers: the session a sign-in replaces, the flash cookie.
    cookies: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let (auth, work) = parts
            .extensions
            .get::<RequestAuth>()
            .and_then(|r| Some((r.auth.clone(), r.work.clone()?)))
            .ok_or(SessionRejection::MissingLayer)?;
        let resolved = lock(&work).resolved;
        let principal = if auth.sessions().is_some() && !resolved {
            resolve(parts, Some("session")).await?
        } else if resolved {
            None
        } else {
            return Err(SessionRejection::MissingLayer);
        };
        let principal = principal.filter(|p| p.session.is_some());
        {
            let mut w = lock(&work);
            if !w.resolved {
                w.resolved = true;
                w.current = principal.as_ref().and_then(|p| p.session.clone());
            }
        }
        let mut cookies = HeaderMap::new();
        for value in parts.headers.get_all(axum::http::header::COOKIE) {
            cookies.append(axum::http::header::COOKIE, value.clone());
        }
        let client = ClientInfo {
            caller: Client::of(parts, &auth),
            cookies,
        };
        Ok(Session {
            auth,
            work,
            principal,
            client,
        })
    }
}

impl Session {
    /// The signed-in principal, as the request came in; `None` when signed out.
    pub fn user(&self) -> Option<&Principal> {
        self.principal.as_deref()
    }

    /// Whether the request holds a live session now (after any sign-in or sign-out this
    /// request made).
    pub fn is_signed_in(&self) -> bool {
        lock(&self.work).current.is_some()
    }

    /// The public handle of the current session (what the device list shows).
    pub fn handle(&self) -> Option<String> {
        lock(&self.work)
            .current
            .as_ref()
            .map(|s| s.handle().to_owned())
    }

    /// Runs `f` on the decoded data of the live session.
    fn with_data<R>(&self, f: impl FnOnce(&mut SessionData) -> R) -> Result<R, SessionRejection> {
        let mut w = lock(&self.work);
        let Some(current) = &w.current else {
            return Err(SessionRejection::NotSignedIn);
        };
        if w.data.is_none() {
            let sessions = self.auth.sessions().ok_or(SessionRejection::NotSignedIn)?;
            w.data = Some(current.data(sessions));
        }
        match w.data.as_mut() {
            Some(data) => Ok(f(data)),
            None => Err(SessionRejection::NotSignedIn),
        }
    }

    /// The value under `key`, as `T`; `Ok(None)` when there is none or nobody is signed in.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionRejection> {
        match self.with_data(|d| d.get(key)) {
            Ok(value) => Ok(value?),
            Err(SessionRejection::NotSignedIn) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Puts `value` under `key`. Refused, with nothing changed, when nobody is signed in, when
    /// the data would outgrow its bound
    /// ([`SessionConfig::max_data_bytes`](crudauth_core::session::SessionConfig), 4 KiB by
    /// default), or for the reserved key `_flash`.
    pub fn insert<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), SessionRejection> {
        Ok(self.with_data(|d| d.insert(key, value))??)
    }

    /// Removes the value under `key`, returning it.
    pub fn remove(&self, key: &str) -> Option<Value> {
        self.with_data(|d| d.remove(key)).ok().flatten()
    }

    /// Adds a message for the next page: in the session when signed in, else in a signed
    /// cookie (at most 1 KiB of messages).
    pub fn flash(
        &self,
        level: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<(), SessionRejection> {
        let (level, message) = (level.into(), message.into());
        match self.with_data(|d| d.flash(level.clone(), message.clone())) {
            Ok(result) => Ok(result?),
            Err(SessionRejection::NotSignedIn) => {
                let mut w = lock(&self.work);
                let mut flashes = match w.cookie_flashes.take() {
                    Some(f) => f,
                    None => read_flash_cookie(&self.auth, &self.client.cookies),
                };
                flashes.push(Flash::new(level, message));
                let size = serde_json::to_vec(&flashes).map_or(usize::MAX, |v| v.len());
                if size > MAX_FLASH_COOKIE {
                    flashes.pop();
                    w.cookie_flashes = Some(flashes);
                    return Err(DataError::TooLarge {
                        size,
                        limit: MAX_FLASH_COOKIE,
                    }
                    .into());
                }
                w.cookie_flashes = Some(flashes);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the pending flash messages (the session's and the signed-out cookie's), oldest
    /// first: they are shown once.
    pub fn take_flashes(&self) -> Vec<Flash> {
        let mut out = {
            let mut w = lock(&self.work);
            let cookie = match w.cookie_flashes.take() {
                Some(f) => f,
                None => read_flash_cookie(&self.auth, &self.client.cookies),
            };
            if !cookie.is_empty() || self.client.has_cookie(&self.auth, FLASH_COOKIE) {
                // Empty: the cookie is cleared.
                w.cookie_flashes = Some(Vec::new());
            }
            cookie
        };
        if let Ok(mut flashes) = self.with_data(SessionData::take_flashes) {
            out.append(&mut flashes);
        }
        out
    }

    /// Signs `user` in, as `/login` does after a right password: a new session (the one the
    /// browser presented ends, the user's cap holds), its cookies and CSRF token on the
    /// response, the login hook; or, when the account owes a second factor,
    /// [`Login::MfaRequired`] and nothing signed in. A cross-site request is refused (403), as
    /// on `/login`. Checking the user's credentials is the caller's job.
    pub async fn login(&self, user: &User, remember_me: bool) -> Result<Login, AuthError> {
        let client = &self.client.caller;
        client.refuse_cross_site_login()?;
        if !user.is_active {
            return Err(AuthError::bad_request("Inactive user"));
        }
        let finish = routes::Finish::Session { remember_me };
        if let Some(challenge) = self.auth.challenge_if_due(user, client, finish).await? {
            let token = challenge
                .get("challenge")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Ok(Login::MfaRequired { challenge: token });
        }
        let sessions = routes::sessions(&self.auth)?;
        let signed_in = routes::sign_in_session(
            &self.auth,
            sessions,
            user.clone(),
            client,
            &self.client.cookies,
            remember_me,
            "password",
        )
        .await?;
        self.now_current(signed_in);
        Ok(Login::SignedIn)
    }

    /// Finishes a sign-in that [`Session::login`] answered with [`Login::MfaRequired`]: the
    /// challenge and the code the user typed (a TOTP code or a recovery code), with the
    /// attempt limits and lockout of `POST /mfa/verify`. Wrong codes are 400.
    pub async fn complete_mfa(&self, challenge: &str, code: &str) -> Result<(), AuthError> {
        let client = &self.client.caller;
        let finished =
            routes::finish_challenge(&self.auth, client, &self.client.cookies, challenge, code)
                .await?;
        self.now_current(finished);
        Ok(())
    }

    /// Makes a session just created by a sign-in the request's current one.
    fn now_current(&self, signed_in: routes::SignedIn) {
        let mut w = lock(&self.work);
        w.cookies.extend(signed_in.cookies);
        w.current = signed_in.session;
        w.data = None;
        w.resolved = true;
    }

    /// Signs out: the current session ends (the logout hook fires) and its cookies are
    /// cleared. Data not yet written is dropped.
    pub async fn logout(&self) -> Result<(), AuthError> {
        let current = lock(&self.work).current.take();
        if let Some(session) = current {
            let sessions = routes::sessions(&self.auth)?;
            routes::end_session(&self.auth, sessions, &session, &self.client.caller).await?;
        }
        let mut w = lock(&self.work);
        w.data = None;
        w.resolved = true;
        w.cookies.extend(routes::clear_session_cookies(&self.auth));
        Ok(())
    }

    /// Moves the session to a new id (and CSRF token), keeping its data: for a privilege
    /// change the application makes itself. `false` when nobody is signed in or the session
    /// ended meanwhile.
    pub async fn rotate(&self) -> Result<bool, AuthError> {
        let version = match &lock(&self.work).current {
            Some(session) => session.record.token_version,
            None => return Ok(false),
        };
        self.rotate_to(version).await
    }

    /// The caller's details (address, user agent) as the routes see them.
    pub(crate) fn caller(&self) -> &routes::Client {
        &self.client.caller
    }

    /// The app this session belongs to.
    pub(crate) fn auth(&self) -> &CrudAuth {
        &self.auth
    }

    /// [`Session::rotate`] onto the credential epoch `version` (after a password change).
    pub(crate) async fn rotate_to(&self, version: i64) -> Result<bool, AuthError> {
        let current = lock(&self.work).current.clone();
        let Some(session) = current else {
            return Ok(false);
        };
        let sessions = routes::sessions(&self.auth)?;
        let Some(created) = sessions.rotate(&session, version).await? else {
            lock(&self.work).current = None;
            return Ok(false);
        };
        let (_, cookies) = routes::session_cookies(&self.auth, sessions, &created);
        let mut w = lock(&self.work);
        // Data changed before the rotation was carried in the old record only if written; it
        // is kept here and written onto the new one.
        w.current = Some(created.into_loaded());
        w.cookies.extend(cookies);
        Ok(true)
    }
}

impl ClientInfo {
    fn has_cookie(&self, auth: &CrudAuth, name: &str) -> bool {
        auth.inner.cookies.read(&self.cookies, name).is_some()
    }
}

/// The flash messages of a signed-out browser's cookie: `base64url(json).signature`, the
/// signature an HMAC under the app's key, so a page cannot be made to show a forged message.
fn read_flash_cookie(auth: &CrudAuth, headers: &HeaderMap) -> Vec<Flash> {
    let Some(value) = auth.inner.cookies.read(headers, FLASH_COOKIE) else {
        return Vec::new();
    };
    let Some((payload, signature)) = value.rsplit_once('.') else {
        return Vec::new();
    };
    let expected = auth.inner.flash_key.digest("flash-cookie", payload);
    if !crudauth_core::secret::ct_eq(expected.as_bytes(), signature.as_bytes()) {
        return Vec::new();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .unwrap_or_default()
}

/// The Set-Cookie that stores `flashes` for a signed-out browser (HttpOnly, ends with the
/// browser), or clears the cookie when there are none.
fn flash_cookie(auth: &CrudAuth, flashes: &[Flash]) -> HeaderValue {
    if flashes.is_empty() {
        return auth.inner.cookies.clear(FLASH_COOKIE, true);
    }
    let json = serde_json::to_vec(flashes).unwrap_or_default();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let signature = auth.inner.flash_key.digest("flash-cookie", &payload);
    auth.inner
        .cookies
        .set(FLASH_COOKIE, &format!("{payload}.{signature}"), true, None)
}
