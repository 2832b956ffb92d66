//! The bearer transport (`via: "bearer"`): `Authorization: Bearer <jwt>` on every request,
//! `POST /token` and `POST /refresh` to get one, refresh tokens that rotate on every use.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{routing::get, Json, Router};
//! use crudauth_axum::extract::{BearerOnly, CurrentUser};
//! use crudauth_axum::{BearerTransport, CrudAuth, SessionTransport};
//! use crudauth_core::user::MemoryUsers;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = CrudAuth::builder()
//!     .secret_key(std::env::var("SECRET_KEY")?)
//!     .users(MemoryUsers::new())
//!     // Tried in this order: a request with a session cookie is a session request.
//!     .session_transport(SessionTransport::default())
//!     .bearer_transport(
//!         BearerTransport::default()
//!             .access_ttl(Duration::from_secs(600))
//!             .grantable_scopes(["items:read", "items:write"])
//!             .default_scopes(["items:read"]),
//!     )
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/v1/items", get(|user: CurrentUser<BearerOnly>| async move {
//!         Json(user.user_id().clone())
//!     }))
//!     .merge(auth.router())
//!     .layer(auth.layer());
//! # Ok(()) }
//! ```

use std::time::Duration;

use async_trait::async_trait;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crudauth_core::jwt::{BearerTokens, TokenConfig, TokenRejected};
use crudauth_core::principal::Principal;
use crudauth_core::secret::SecretKey;
use crudauth_core::store::Store;

use crate::builder::{ConfigError, CrudAuth};
use crate::cookies::CookieConfig;
use crate::error::AuthError;
use crate::transport::Transport;

/// The refresh-token cookie (HttpOnly).
pub(crate) const REFRESH_COOKIE: &str = "refresh_token";

/// Where the refresh token travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshMode {
    /// An HttpOnly `refresh_token` cookie (crudauth's default): scripts never see it.
    Cookie,
    /// The JSON body of `/token` and `/refresh` (apps on other origins, native clients).
    Body,
}

/// The bearer transport's configuration: access and refresh lifetimes, scopes, and where the
/// refresh token travels.
///
/// | setting | default |
/// |---|---|
/// | access-token lifetime | 900 s |
/// | refresh lifetime (absolute, from sign-in) | 30 days |
/// | refresh token | HttpOnly `refresh_token` cookie, `Path=/` |
/// | default / grantable scopes | none / the default scopes |
/// | reuse grace | 0 s: any reuse of a rotated-out refresh token revokes its family |
/// | leeway on `exp`/`nbf` | 0 s |
///
/// ```
/// use std::time::Duration;
/// use crudauth_axum::BearerTransport;
///
/// let bearer = BearerTransport::default()
///     .refresh_in_body()
///     .access_ttl(Duration::from_secs(300))
///     .refresh_ttl(Duration::from_secs(7 * 24 * 3600))
///     .grantable_scopes(["reports:read", "reports:write"])
///     .default_scopes(["reports:read"]);
/// ```
#[derive(Debug, Clone)]
pub struct BearerTransport {
    pub(crate) tokens: TokenConfig,
    pub(crate) refresh: RefreshMode,
    pub(crate) refresh_cookie_path: Option<String>,
}

impl Default for BearerTransport {
    fn default() -> Self {
        Self {
            tokens: TokenConfig::default(),
            refresh: RefreshMode::Cookie,
            refresh_cookie_path: None,
        }
    }
}

impl BearerTransport {
    /// Answers the refresh token in the JSON body of `/token` and `/refresh`
    /// (`"refresh_token"`), and accepts it there, instead of in an HttpOnly cookie.
    pub fn refresh_in_body(mut self) -> Self {
        self.refresh = RefreshMode::Body;
        self
    }

    /// Delivers the refresh token in the HttpOnly `refresh_token` cookie (the default).
    pub fn refresh_in_cookie(mut self) -> Self {
        self.refresh = RefreshMode::Cookie;
        self
    }

    /// Access-token lifetime (default 900 s).
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.tokens.access_ttl = ttl;
        self
    }

    /// How long a sign-in can be refreshed (default 30 days). Absolute: rotation never
    /// extends it.
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.tokens.refresh_ttl = ttl;
        self
    }

    /// The refresh cookie's `Path` (default: the cookie policy's, `/`). Set it to where
    /// `/refresh` is mounted so the cookie goes nowhere else (then `/logout` under another path
    /// cannot see it, and only clears it).
    pub fn refresh_cookie_path(mut self, path: impl Into<String>) -> Self {
        self.refresh_cookie_path = Some(path.into());
        self
    }

    /// The scopes a sign-in may be granted (default: the default scopes). Requested scopes
    /// outside it are dropped, at `/token` and again at every `/refresh`.
    pub fn grantable_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tokens.grantable_scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// The scopes granted when `/token` asks for none (default none). Must be grantable.
    pub fn default_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tokens.default_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A rotated-out refresh token presented again within `grace` of its rotation, while its
    /// successor is still unused, is refused (401) **without** revoking the family — two
    /// browser tabs refreshing at once. Default zero: every reuse revokes. At most 10 s.
    pub fn reuse_grace(mut self, grace: Duration) -> Self {
        self.tokens.reuse_grace = grace;
        self
    }

    /// Clock-skew allowance on `exp` and `nbf` between servers (default 0, at most 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.tokens.leeway = leeway;
        self
    }
}

/// The bearer transport as built: its configuration, the token service and the refresh
/// cookie's policy.
#[derive(Debug)]
pub(crate) struct BearerState {
    pub(crate) config: BearerTransport,
    pub(crate) tokens: BearerTokens,
    pub(crate) cookie: CookieConfig,
}

impl BearerState {
    pub(crate) fn new(
        config: BearerTransport,
        key: &SecretKey,
        store: std::sync::Arc<dyn Store>,
        cookies: &CookieConfig,
    ) -> Result<Self, ConfigError> {
        let mut cookie = cookies.clone();
        if let Some(path) = &config.refresh_cookie_path {
            if !path.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "refresh_cookie_path `{path}` must start with `/`"
                )));
            }
            cookie = cookie.path(path.clone());
        }
        let tokens = BearerTokens::new(key, store, config.tokens.clone())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(Self {
            config,
            tokens,
            cookie,
        })
    }
}

/// What the `Authorization` header holds.
enum Credential<'a> {
    /// No header, another scheme, or an empty token: no credential of ours.
    Absent,
    /// `Bearer` with bytes no JWT can contain.
    Malformed,
    /// A token to verify.
    Token(&'a str),
}

/// `Authorization: Bearer <token>`, the scheme matched case-insensitively.
fn credential(headers: &HeaderMap) -> Credential<'_> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Credential::Absent;
    };
    let bytes = value.as_bytes();
    let (scheme, rest) = match bytes.iter().position(|b| *b == b' ') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Credential::Absent;
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Credential::Absent;
    }
    match std::str::from_utf8(token) {
        Ok(token) => Credential::Token(token),
        Err(_) => Credential::Malformed,
    }
}

/// The bearer transport as resolved on each request: verify the access token (no I/O), then
/// the user row from the per-process cache. Expired, or a user missing, disabled or of a newer
/// `token_version`: absent. Forged, tampered, malformed, or of the wrong type: 401
/// "Invalid token", even where sign-in is optional.
#[derive(Debug)]
pub(crate) struct BearerAuth;

#[async_trait]
impl Transport for BearerAuth {
    fn name(&self) -> &'static str {
        "bearer"
    }

    async fn authenticate(
        &self,
        parts: &Parts,
        auth: &CrudAuth,
    ) -> Result<Option<Principal>, AuthError> {
        let Some(bearer) = auth.inner.bearer.as_ref() else {
            return Ok(None);
        };
        let token = match credential(&parts.headers) {
            Credential::Absent => return Ok(None),
            Credential::Malformed => return Err(AuthError::invalid_token()),
            Credential::Token(token) => token,
        };
        let claims = match bearer.tokens.verify_access(token) {
            Ok(claims) => claims,
            Err(TokenRejected::Expired) => return Ok(None),
            Err(TokenRejected::Invalid) => return Err(AuthError::invalid_token()),
        };
        let Some(user) = auth.load_active_user(&claims.user_id()).await? else {
            return Ok(None);
        };
        if user.token_version != claims.ver {
            // Superseded by a password change, reset or logout-all, not forged.
            return Ok(None);
        }
        Ok(Some(Principal::new(user, "bearer", claims.scopes.clone())))
    }
}

impl CrudAuth {
    /// The bearer-token service, when the bearer transport is configured: issue a pair for a
    /// user you authenticated yourself, verify, refresh, revoke.
    pub fn bearer_tokens(&self) -> Option<&BearerTokens> {
        self.inner.bearer.as_ref().map(|b| &b.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn parse(value: &'static [u8]) -> Option<Result<String, ()>> {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        match credential(&h) {
            Credential::Absent => None,
            Credential::Malformed => Some(Err(())),
            Credential::Token(t) => Some(Ok(t.to_owned())),
        }
    }

    #[test]
    fn reads_the_bearer_scheme_only() {
        assert_eq!(parse(b"Bearer abc"), Some(Ok("abc".into())));
        assert_eq!(parse(b"bEaReR  abc "), Some(Ok("abc".into())));
        assert_eq!(parse(b"Basic YWRhOnB3"), None);
        assert_eq!(parse(b"Bearer"), None);
        assert_eq!(parse(b"Bearer    "), None);
        assert_eq!(parse(b"Bearerabc"), None);
        assert_eq!(parse(b"Bearer \xff\xfe"), Some(Err(())));
        assert!(matches!(credential(&HeaderMap::new()), Credential::Absent));
    }

    #[test]
    fn a_relative_cookie_path_is_refused() {
        let key = SecretKey::new([1u8; 32]).unwrap();
        let store: std::sync::Arc<dyn Store> =
            std::sync::Arc::new(crudauth_core::store::MemoryStore::new());
        let config = BearerTransport::default().refresh_cookie_path("refresh");
        assert!(BearerState::new(config, &key, store.clone(), &CookieConfig::default()).is_err());
        let config = BearerTransport::default()
            .default_scopes(["admin"])
            .grantable_scopes(["reports:read"]);
        let err = BearerState::new(config, &key, store, &CookieConfig::default()).unwrap_err();
        assert!(err.to_string().contains("subset"), "{err}");
    }
}
