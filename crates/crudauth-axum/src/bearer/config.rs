//! The bearer transport's configuration, and its state as built.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crudauth_core::clock::Clock;
use crudauth_core::jwt::{BearerTokens, TokenConfig};
use crudauth_core::secret::{purpose, SecretKey};
use crudauth_core::store::Store;

use super::remembered::RememberedPrincipals;
use crate::config::ConfigError;
use crate::cookies::CookieConfig;

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
/// | `iss` / `aud` (carried and required) | `crudauth` / `crudauth-api` |
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
    pub(crate) previous_secrets: Vec<PreviousSecret>,
}

/// A retired `SECRET_KEY` whose bearer tokens still verify until a deadline.
#[derive(Clone)]
pub(crate) struct PreviousSecret {
    key: Vec<u8>,
    until: SystemTime,
}

impl fmt::Debug for PreviousSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreviousSecret")
            .field("key", &"***")
            .field("until", &self.until)
            .finish()
    }
}

impl Default for BearerTransport {
    fn default() -> Self {
        Self {
            tokens: TokenConfig::default(),
            refresh: RefreshMode::Cookie,
            refresh_cookie_path: None,
            previous_secrets: Vec::new(),
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

    /// The `iss` claim tokens carry and must carry (default `crudauth`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.tokens.issuer = issuer.into();
        self
    }

    /// The `aud` claim tokens carry and must name (default `crudauth-api`). Apps that share a
    /// `SECRET_KEY` but must not accept each other's tokens each set their own.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.tokens.audience = audience.into();
        self
    }

    /// Rotating `SECRET_KEY`: bearer tokens signed under `previous` (the key before the
    /// rotation) keep verifying until `until`, so signed-in clients are not all thrown out at
    /// once; new tokens are signed with the current key only. Tokens name their signing key
    /// (`kid`), so each is checked against its own. Give `until` at least the refresh lifetime
    /// after the rotation to let every family refresh onto the new key. (Sessions and one-time
    /// tokens are keyed by the current key alone: rotating ends them.)
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use crudauth_axum::BearerTransport;
    ///
    /// let a_week = SystemTime::now() + Duration::from_secs(7 * 24 * 3600);
    /// let bearer = BearerTransport::default()
    ///     .previous_secret_key("the key we used until today, 32 bytes at least", a_week);
    /// ```
    pub fn previous_secret_key(mut self, previous: impl AsRef<[u8]>, until: SystemTime) -> Self {
        self.previous_secrets.push(PreviousSecret {
            key: previous.as_ref().to_vec(),
            until,
        });
        self
    }

    /// Clock-skew allowance on `exp` and `nbf` between servers (default 0, at most 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.tokens.leeway = leeway;
        self
    }
}

/// The bearer transport as built: where the refresh token travels, the token service (which
/// keeps the token configuration) and the refresh cookie's policy.
#[derive(Debug)]
pub(crate) struct BearerState {
    pub(crate) refresh: RefreshMode,
    pub(crate) tokens: BearerTokens,
    pub(crate) cookie: CookieConfig,
    pub(crate) remembered: RememberedPrincipals,
}

impl BearerState {
    pub(crate) fn new(
        config: BearerTransport,
        key: &SecretKey,
        store: Arc<dyn Store>,
        cookies: &CookieConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        let BearerTransport {
            tokens,
            refresh,
            refresh_cookie_path,
            previous_secrets,
        } = config;
        let mut cookie = cookies.clone();
        if let Some(path) = refresh_cookie_path {
            if !path.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "refresh_cookie_path `{path}` must start with `/`"
                )));
            }
            cookie = cookie.path(path);
        }
        let mut tokens = BearerTokens::new(key, store, tokens)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?
            .with_clock(clock);
        for previous in previous_secrets {
            let old = SecretKey::new(&previous.key)
                .map_err(|e| ConfigError::SecretKey(format!("previous secret key: {e}")))?;
            let until = previous
                .until
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            tokens = tokens.with_previous_key(&old.derive(purpose::JWT), until);
        }
        Ok(Self {
            refresh,
            tokens,
            cookie,
            remembered: RememberedPrincipals::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> Arc<dyn Clock> {
        crudauth_core::clock::system()
    }

    #[test]
    fn a_relative_cookie_path_is_refused() {
        let key = SecretKey::new([1u8; 32]).unwrap();
        let store: Arc<dyn Store> = Arc::new(crudauth_core::store::MemoryStore::new());
        let config = BearerTransport::default().refresh_cookie_path("refresh");
        assert!(BearerState::new(
            config,
            &key,
            store.clone(),
            &CookieConfig::default(),
            clock()
        )
        .is_err());
        let config = BearerTransport::default()
            .default_scopes(["admin"])
            .grantable_scopes(["reports:read"]);
        let err =
            BearerState::new(config, &key, store, &CookieConfig::default(), clock()).unwrap_err();
        assert!(err.to_string().contains("subset"), "{err}");
    }
}
