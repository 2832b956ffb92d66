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
use axum::http::header::{HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Uri};

use crudauth_core::principal::Principal;
use crudauth_core::secret::SessionId;
use crudauth_core::session::{LoadedSession, Sessions};

use crate::bearer::BearerAuth;
use crate::cookies;
use crate::error::AuthError;
use crate::layer::Outcome;
use crate::state::CrudAuth;

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
/// An API-key transport, registered after the built-in ones. Each key belongs to one user, and
/// the key alone says which: nothing the client sends besides the key picks the account.
///
/// ```
/// use std::collections::HashMap;
///
/// use async_trait::async_trait;
/// use axum::http::request::Parts;
/// use axum::{body::Body, http::Request, routing::get, Json, Router};
/// use crudauth_axum::extract::CurrentUser;
/// use crudauth_axum::{AuthError, CrudAuth, Principal, SessionTransport, Transport};
/// use crudauth_core::secret::{random_token, sha256_hex};
/// use crudauth_core::user::{MemoryUsers, NewUser, UserId, UserStore};
/// use tower::ServiceExt;
///
/// /// `X-Api-Key: <key>`. The table maps the SHA-256 of each key to its owner and scopes (in
/// /// an app: a column with a unique index), so no key is kept and the lookup compares no
/// /// secret. Keys are 256 random bits, so a fast hash is enough.
/// #[derive(Debug, Default)]
/// struct ApiKeys {
///     by_hash: HashMap<String, (UserId, Vec<String>)>,
/// }
///
/// impl ApiKeys {
///     /// Mints a key for `owner`; shown to them once, never stored.
///     fn issue(&mut self, owner: &UserId, scopes: &[&str]) -> String {
///         let key = random_token(32);
///         let scopes = scopes.iter().map(|s| s.to_string()).collect();
///         self.by_hash.insert(sha256_hex(key.as_bytes()), (owner.clone(), scopes));
///         key
///     }
/// }
///
/// #[async_trait]
/// impl Transport for ApiKeys {
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
///         let key = value.to_str().map_err(|_| AuthError::invalid_token())?;
///         let Some((owner, scopes)) = self.by_hash.get(&sha256_hex(key.as_bytes())) else {
///             return Err(AuthError::invalid_token());
///         };
///         // A disabled or deleted owner: absent, like any credential whose user is gone.
///         let user = auth.load_active_user(owner).await?;
///         Ok(user.map(|u| Principal::new(u, "api_key", scopes.clone())))
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let users = MemoryUsers::new();
/// let ada = users.create(NewUser::new("ada@example.com", "ada", "!no-password")).await.unwrap();
/// let bob = users.create(NewUser::new("bob@example.com", "bob", "!no-password")).await.unwrap();
/// let mut keys = ApiKeys::default();
/// let adas_key = keys.issue(&ada.id, &["reports:read"]);
/// let bobs_key = keys.issue(&bob.id, &[]);
/// let auth = CrudAuth::builder()
///     .secret_key([7u8; 32])
///     .users(users)
///     .session_transport(SessionTransport::default())
///     .transport(keys)
///     .build()
///     .unwrap();
/// let app = Router::new()
///     .route("/whoami", get(|u: CurrentUser| async move {
///         Json((u.via, u.user.username.clone().unwrap_or_default()))
///     }))
///     .layer(auth.layer());
///
/// let call = |key: String| {
///     let request = Request::get("/whoami").header("x-api-key", key).body(Body::empty()).unwrap();
///     let app = app.clone();
///     async move {
///         let response = app.oneshot(request).await.unwrap();
///         let status = response.status().as_u16();
///         let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
///         (status, String::from_utf8(body.to_vec()).unwrap())
///     }
/// };
/// assert_eq!(call(adas_key.clone()).await, (200, r#"["api_key","ada"]"#.to_owned()));
/// assert_eq!(call(bobs_key).await, (200, r#"["api_key","bob"]"#.to_owned()));
/// // A guess is refused, and naming another account next to a valid key gets nothing.
/// assert_eq!(call(random_token(32)).await.0, 401);
/// assert_eq!(call(format!("{}:{adas_key}", bob.id)).await.0, 401);
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

/// Checks a cookie-authenticated unsafe request: the `X-CSRF-Token` header against the
/// session (crudauth's "Missing CSRF token" / "Invalid CSRF token"), then, in depth, where
/// the browser says the request comes from ([`check_origin`]). Every refusal is a 403 with
/// `X-CSRF-Error: true` and `Vary: Sec-Fetch-Site, Origin`, and nothing has run yet.
pub(crate) fn check_csrf(
    auth: &CrudAuth,
    sessions: &Sessions,
    session: &LoadedSession,
    headers: &HeaderMap,
    uri: &Uri,
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
    check_origin(auth, headers, uri)
}

/// Fetch Metadata and `Origin`, behind the token: `Sec-Fetch-Site: cross-site` is refused, and
/// so is an `Origin` that is present and neither the request's own nor an allowed one
/// ([`crate::SessionTransport::allowed_origins`]). Requests without these headers (older
/// browsers, scripts) still need the token, which [`check_csrf`] has checked.
pub(crate) fn check_origin(
    auth: &CrudAuth,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(), AuthError> {
    let cross_site = headers
        .get_all("sec-fetch-site")
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site {
        return Err(AuthError::csrf("Cross-site requests are not allowed."));
    }
    let mut origins = headers.get_all(ORIGIN).iter();
    let Some(origin) = origins.next() else {
        return Ok(());
    };
    // One origin, well-formed, and ours; `Origin: null` (sandboxed or privacy-redirected
    // documents) is no origin of ours either.
    let own = origins.next().is_none()
        && origin
            .to_str()
            .ok()
            .and_then(normalise_origin)
            .is_some_and(|origin| is_own_origin(auth, &origin, headers, uri));
    if !own {
        return Err(AuthError::csrf("Request origin not allowed."));
    }
    Ok(())
}

/// Whether `origin` (normalised) is the request's own — its `Host` (or HTTP/2 authority) over
/// `https`, or over `http` too when cookies are not Secure (a Secure cookie only ever rides an
/// `https` request) — or one the session transport allows.
fn is_own_origin(auth: &CrudAuth, origin: &str, headers: &HeaderMap, uri: &Uri) -> bool {
    let allowed = auth
        .inner
        .session
        .as_ref()
        .is_some_and(|s| s.allowed_origins.iter().any(|a| a == origin));
    if allowed {
        return true;
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let Some(host) = host else {
        return false;
    };
    let schemes: &[&str] = if auth.inner.cookies.secure {
        &["https"]
    } else {
        &["https", "http"]
    };
    schemes.iter().any(|scheme| {
        normalise_origin(&format!("{scheme}://{host}")).is_some_and(|own| own == origin)
    })
}

/// An origin in the form browsers send it: `scheme://host[:port]`, lower-case, the scheme's
/// default port dropped, no trailing slash. `None` for anything else (another scheme, a path,
/// credentials, `null`).
pub(crate) fn normalise_origin(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ', '\\']) {
        return None;
    }
    let authority = rest.to_ascii_lowercase();
    let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host.to_owned(),
        _ => authority,
    };
    Some(format!("{scheme}://{authority}"))
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
        let Some(session) = presented_session(auth, sessions, &parts.headers).await? else {
            return Ok(None);
        };
        if auth.csrf_enabled() && is_unsafe(&parts.method) {
            check_csrf(auth, sessions, &session, &parts.headers, &parts.uri)?;
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
/// cookie, or when that session is gone (expired, revoked, never existed). Two session cookies
/// with different values (one planted by a sibling subdomain, say) are a 401 "Invalid token",
/// and neither is used, whatever their order.
pub(crate) async fn presented_session(
    auth: &CrudAuth,
    sessions: &Sessions,
    headers: &HeaderMap,
) -> Result<Option<LoadedSession>, AuthError> {
    let cookie = auth
        .inner
        .cookies
        .read_unique(headers, cookies::SESSION_COOKIE)
        .map_err(|_| AuthError::invalid_token())?;
    match cookie {
        Some(cookie) => Ok(sessions.load(SessionId::from_client(cookie)).await?),
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

#[cfg(test)]
mod tests {
    use super::normalise_origin;

    #[test]
    fn origins_are_compared_in_their_serialised_form() {
        for (given, normal) in [
            ("https://App.Example", Some("https://app.example")),
            ("https://app.example/", Some("https://app.example")),
            ("https://app.example:443", Some("https://app.example")),
            ("http://app.example:80", Some("http://app.example")),
            ("https://app.example:8443", Some("https://app.example:8443")),
            ("http://[::1]:3000", Some("http://[::1]:3000")),
            ("null", None),
            ("ftp://app.example", None),
            ("https://app.example/path", None),
            ("https://user@app.example", None),
            ("https://", None),
        ] {
            assert_eq!(normalise_origin(given).as_deref(), normal, "{given}");
        }
    }
}
