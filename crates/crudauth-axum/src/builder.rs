//! `CrudAuth::builder()`: configuration validated at `build()` (fails closed), and the
//! lifespan: `initialize()` → [`LifespanGuard`] → `shutdown()`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use crudauth_core::changes::{ChangeFeed, ChangeListener, MemoryChangeFeed};
use crudauth_core::clock::Clock;
use crudauth_core::delivery::{DeliveryChannel, Fanout, Queue};
use crudauth_core::email::EmailSender;
use crudauth_core::hooks::{AuthHooks, HookContext, HookEvent};
use crudauth_core::lifespan::Tasks;
use crudauth_core::limit::{LockoutConfig, MemoryRateLimiter, RateLimiter};
use crudauth_core::mfa::challenge::Challenges;
use crudauth_core::mfa::{Mfa, MfaConfig};
use crudauth_core::password::{PasswordPolicy, Passwords};
use crudauth_core::secret::{purpose, SecretKey};
use crudauth_core::session::{SessionConfig, Sessions};
use crudauth_core::store::{BackendKind, MemoryStore, Store};
use crudauth_core::token::OneTimeTokens;
use crudauth_core::user::{CachedUsers, LoginField, User, UserId, UserStore};
use crudauth_core::StoreError;

use crate::bearer::{BearerAuth, BearerState, BearerTransport};
use crate::cookies::CookieConfig;
use crate::error::AuthError;
use crate::layer::rate_limit::{BuiltinLimits, RateLimit};
use crate::recovery::{Job, TokenLifetimes};
use crate::routes::{MfaState, SudoConfig};
#[cfg(feature = "oauth")]
use crate::routes::{OAuthResponseMode, OAuthState};
use crate::transport::{SessionAuth, Transport};
#[cfg(feature = "oauth")]
use crudauth_core::oauth::OAuthProvider;

/// Why a configuration was refused at `build()`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No secret key, or a weak one.
    #[error("secret key: {0}")]
    SecretKey(String),
    /// No user store.
    #[error("no user store: call .users(…) with your UserStore (e.g. crudauth_sqlx::SqlxUsers)")]
    NoUsers,
    /// No transport.
    #[error("no transport: add .session_transport(SessionTransport::default()) or .bearer_transport(BearerTransport::default())")]
    NoTransport,
    /// Two transports share a name.
    #[error("two transports are named `{0}`; names must be unique")]
    DuplicateTransport(&'static str),
    /// Something else is inconsistent.
    #[error("{0}")]
    Invalid(String),
}

/// The longest `Max-Age` a browser keeps a cookie for (RFC 6265bis caps it at 400 days).
const MAX_COOKIE_AGE: Duration = Duration::from_secs(400 * 24 * 3600);

/// Why `initialize()` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A store, the rate limiter or the change feed could not be reached or checked.
    #[error("crudauth could not start: {0}")]
    Store(#[from] StoreError),
    /// An OAuth provider could not resolve its endpoints or keys (discovery, JWKS).
    #[cfg(feature = "oauth")]
    #[error("crudauth could not start: OAuth provider `{provider}`: {error}")]
    OAuth {
        /// The provider's name.
        provider: String,
        /// What went wrong.
        error: crudauth_core::oauth::OAuthError,
    },
}

/// The cookie session transport: sessions in the store, CSRF on unsafe methods, and (unless
/// turned off) the device-management routes.
///
/// ```
/// use std::time::Duration;
/// use crudauth_axum::SessionTransport;
///
/// let sessions = SessionTransport::default()
///     .idle_timeout(Duration::from_secs(15 * 60))
///     .absolute_timeout(Duration::from_secs(12 * 3600))
///     .max_sessions_per_user(3);
/// ```
#[derive(Debug, Clone)]
pub struct SessionTransport {
    pub(crate) config: SessionConfig,
    pub(crate) csrf: bool,
    pub(crate) management_routes: bool,
    /// Origins, besides the request's own, that cookie-authenticated unsafe requests may come
    /// from (normalised: `https://app.example`).
    pub(crate) allowed_origins: Vec<String>,
    /// Entries given to [`SessionTransport::allowed_origins`] that are no origin; `build()`
    /// refuses them.
    pub(crate) invalid_origins: Vec<String>,
}

impl Default for SessionTransport {
    fn default() -> Self {
        Self {
            config: SessionConfig::default(),
            csrf: true,
            management_routes: true,
            allowed_origins: Vec::new(),
            invalid_origins: Vec::new(),
        }
    }
}

impl SessionTransport {
    /// Idle window of an ordinary session (default 30 minutes).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.config.idle_timeout = idle;
        self
    }

    /// Idle window of a remember-me session (default 30 days).
    pub fn remember_me(mut self, window: Duration) -> Self {
        self.config.remember_me = window;
        self
    }

    /// Ends sessions this long after sign-in, however active (default: none).
    pub fn absolute_timeout(mut self, limit: Duration) -> Self {
        self.config.absolute_timeout = Some(limit);
        self
    }

    /// Live sessions per user (default 5); a new one evicts the least recently active.
    pub fn max_sessions_per_user(mut self, n: usize) -> Self {
        self.config.max_sessions_per_user = n;
        self
    }

    /// The most application data ([`Session::insert`](crate::extract::Session::insert)) a
    /// session may hold, encoded as JSON (default 4 KiB, at most 1 MiB). The data lives in the
    /// session record, so every authenticated request reads it: keep it small, and keep large
    /// things in your database under a key kept here.
    pub fn max_data_bytes(mut self, bytes: usize) -> Self {
        self.config.max_data_bytes = bytes;
        self
    }

    /// Turns CSRF protection off (not recommended; only for same-site APIs behind other
    /// protection).
    pub fn without_csrf(mut self) -> Self {
        self.csrf = false;
        self
    }

    /// Origins other than the app's own that may send cookie-authenticated unsafe requests
    /// (a front end on another subdomain: `https://app.example.com`). By default only the
    /// request's own origin (its `Host`, over `https`, or `http` too with Secure cookies off)
    /// passes: an unsafe request whose `Origin` header names anything else is refused (403),
    /// even with a valid CSRF token. Behind a proxy that rewrites `Host`, list the public
    /// origin here. Each entry is `scheme://host[:port]`; anything else is refused at
    /// `build()`.
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for origin in origins {
            let origin = origin.into();
            match crate::transport::normalise_origin(&origin) {
                Some(normal) => self.allowed_origins.push(normal),
                None => self.invalid_origins.push(origin),
            }
        }
        self
    }

    /// Whether to mount `/sessions`, `DELETE /sessions/{id}`, `/logout-all` and
    /// `/csrf/refresh` (default on).
    pub fn management_routes(mut self, on: bool) -> Self {
        self.management_routes = on;
        self
    }
}

/// Email delivery for registration and the recovery flows.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub(crate) frontend_url: String,
    pub(crate) sender: Arc<dyn EmailSender>,
    pub(crate) lifetimes: TokenLifetimes,
}

impl EmailConfig {
    /// Links point at `frontend_url` (`{frontend_url}/verify-email?token=…`); `sender`
    /// delivers.
    pub fn new(frontend_url: impl Into<String>, sender: impl EmailSender) -> Self {
        Self {
            frontend_url: frontend_url.into().trim_end_matches('/').to_owned(),
            sender: Arc::new(sender),
            lifetimes: TokenLifetimes::default(),
        }
    }

    /// How long a verification link works (default 24 hours).
    pub fn verify_ttl(mut self, ttl: Duration) -> Self {
        self.lifetimes.verify = ttl;
        self
    }

    /// How long a password-reset link works (default 1 hour).
    pub fn reset_ttl(mut self, ttl: Duration) -> Self {
        self.lifetimes.reset = ttl;
        self
    }

    /// How long an email-change confirmation link works (default 24 hours).
    pub fn change_ttl(mut self, ttl: Duration) -> Self {
        self.lifetimes.change = ttl;
        self
    }
}

/// Builds a [`CrudAuth`]. See [`CrudAuth::builder`].
#[derive(Debug)]
pub struct CrudAuthBuilder {
    secret_key: Option<RawKey>,
    users: Option<Arc<dyn UserStore>>,
    store: Option<Arc<dyn Store>>,
    limiter: Option<Arc<dyn RateLimiter>>,
    session: Option<SessionTransport>,
    bearer: Option<BearerTransport>,
    /// The transports in the order they were configured: the order they are tried in.
    order: Vec<TransportSlot>,
    cookies: CookieConfig,
    login_fields: Vec<LoginField>,
    email: Option<EmailConfig>,
    channels: Vec<Arc<dyn DeliveryChannel>>,
    delivery_queue: usize,
    hooks: Option<Arc<dyn AuthHooks>>,
    sudo: SudoConfig,
    mfa: Option<MfaConfig>,
    passwords: Option<Passwords>,
    password_policy: PasswordPolicy,
    clock: Option<Arc<dyn Clock>>,
    trusted_proxy_hops: usize,
    warn_on_memory_backend: bool,
    user_cache_ttl: Duration,
    change_feed: Option<Arc<dyn ChangeFeed>>,
    without_revocation: bool,
    fresh_sign_in: Duration,
    pub(crate) lockout: LockoutConfig,
    pub(crate) rate_limit_overrides: Vec<(String, RateLimit)>,
    #[cfg(feature = "redis")]
    redis: Option<RedisSetting>,
    #[cfg(feature = "oauth")]
    oauth: OAuthSettings,
}

/// The OAuth part of a configuration, until `build()` checks it.
#[cfg(feature = "oauth")]
#[derive(Debug, Default)]
struct OAuthSettings {
    providers: Vec<(String, Arc<dyn OAuthProvider>)>,
    redirect_base_url: Option<String>,
    default_redirect: Option<String>,
    mode: OAuthResponseMode,
}

/// The `SECRET_KEY` bytes until `build()` checks them; redacted in `Debug`.
struct RawKey(Vec<u8>);

impl std::fmt::Debug for RawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// One configured transport, in resolution order.
#[derive(Debug)]
enum TransportSlot {
    Session,
    Bearer,
    Custom(Arc<dyn Transport>),
}

#[cfg(feature = "redis")]
enum RedisSetting {
    Url { url: String, prefix: Option<String> },
    Config(crudauth_core::store::RedisConfig),
}

/// The URL's password never shows (`redis://***@host`).
#[cfg(feature = "redis")]
impl std::fmt::Debug for RedisSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisSetting::Url { url, prefix } => f
                .debug_struct("Url")
                .field("url", &crudauth_core::error::redact_url(url))
                .field("prefix", prefix)
                .finish(),
            RedisSetting::Config(config) => f.debug_tuple("Config").field(config).finish(),
        }
    }
}

impl Default for CrudAuthBuilder {
    fn default() -> Self {
        Self {
            secret_key: None,
            users: None,
            store: None,
            limiter: None,
            session: None,
            bearer: None,
            order: Vec::new(),
            cookies: CookieConfig::default(),
            login_fields: vec![LoginField::Email, LoginField::Username],
            email: None,
            channels: Vec::new(),
            delivery_queue: 1024,
            hooks: None,
            sudo: SudoConfig::default(),
            mfa: None,
            passwords: None,
            password_policy: PasswordPolicy::default(),
            clock: None,
            trusted_proxy_hops: 0,
            warn_on_memory_backend: true,
            user_cache_ttl: Duration::from_secs(5),
            change_feed: None,
            without_revocation: false,
            fresh_sign_in: Duration::from_secs(600),
            lockout: LockoutConfig::default(),
            rate_limit_overrides: Vec::new(),
            #[cfg(feature = "redis")]
            redis: None,
            #[cfg(feature = "oauth")]
            oauth: OAuthSettings::default(),
        }
    }
}

impl CrudAuthBuilder {
    /// The signing and HMAC key (at least 32 bytes). Required.
    pub fn secret_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.secret_key = Some(RawKey(key.as_ref().to_vec()));
        self
    }

    /// The application's user table. Required.
    pub fn users(mut self, users: impl UserStore) -> Self {
        self.users = Some(Arc::new(users));
        self
    }

    /// Where sessions, one-time tokens and refresh families live (default: in memory).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Where lockout and throttle counters live (default: in memory).
    pub fn rate_limiter(mut self, limiter: impl RateLimiter) -> Self {
        self.limiter = Some(Arc::new(limiter));
        self
    }

    /// Moves every store and the rate limiter to Redis (or a Redis Cluster with a
    /// `redis-cluster://` URL), over one shared, pipelined connection. A `.store(…)` or
    /// `.rate_limiter(…)` given explicitly still wins for its part.
    #[cfg(feature = "redis")]
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        let prefix = match self.redis.take() {
            Some(RedisSetting::Url { prefix, .. }) => prefix,
            _ => None,
        };
        self.redis = Some(RedisSetting::Url {
            url: url.into(),
            prefix,
        });
        self
    }

    /// The key prefix under which crudauth keeps its Redis keys (default `crudauth:`), so
    /// several apps can share one Redis.
    #[cfg(feature = "redis")]
    pub fn redis_prefix(mut self, prefix: impl Into<String>) -> Self {
        if let Some(RedisSetting::Url { prefix: p, .. }) = &mut self.redis {
            *p = Some(prefix.into());
        }
        self
    }

    /// Like [`Self::redis_url`], with every connection setting (timeouts, reconnection, cluster
    /// nodes) given.
    #[cfg(feature = "redis")]
    pub fn redis(mut self, config: crudauth_core::store::RedisConfig) -> Self {
        self.redis = Some(RedisSetting::Config(config));
        self
    }

    /// Adds the cookie session transport. Transports are tried in the order they are added;
    /// the first whose credential is present decides. Calling this again replaces the
    /// configuration and keeps the place.
    pub fn session_transport(mut self, session: SessionTransport) -> Self {
        if self.session.replace(session).is_none() {
            self.order.push(TransportSlot::Session);
        }
        self
    }

    /// Adds the bearer transport (`/token`, `/refresh`, `Authorization: Bearer`), tried in the
    /// order added. Calling this again replaces the configuration and keeps the place.
    pub fn bearer_transport(mut self, bearer: BearerTransport) -> Self {
        if self.bearer.replace(bearer).is_none() {
            self.order.push(TransportSlot::Bearer);
        }
        self
    }

    /// Adds a custom transport, tried in the order added (see [`Transport`]).
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.order.push(TransportSlot::Custom(Arc::new(transport)));
        self
    }

    /// The cookie policy (Secure, SameSite, Path).
    pub fn cookies(mut self, cookies: CookieConfig) -> Self {
        self.cookies = cookies;
        self
    }

    /// Which fields a login identifier is matched against, in order (default: email, then
    /// username).
    pub fn login_fields(mut self, fields: impl IntoIterator<Item = LoginField>) -> Self {
        self.login_fields = fields.into_iter().collect();
        self
    }

    /// Adds a delivery channel (SMS, push, …): every recovery message goes to the email sender
    /// and to each channel, in order. With a channel and no email, the verify and reset
    /// routes mount, the change-email pair does not.
    pub fn channel(mut self, channel: impl DeliveryChannel) -> Self {
        self.channels.push(Arc::new(channel));
        self
    }

    /// How many messages may wait for delivery (default 1024); beyond that a message is
    /// dropped with a WARN, never blocking a request.
    pub fn delivery_queue(mut self, capacity: usize) -> Self {
        self.delivery_queue = capacity;
        self
    }

    /// Sudo mode's window, attempt cap and lock (crudauth's defaults: 300 s, 3 per 300 s,
    /// 900 s).
    pub fn sudo(mut self, sudo: SudoConfig) -> Self {
        self.sudo = sudo;
        self
    }

    /// Turns on two-factor authentication (TOTP, recovery codes, the login challenge and the
    /// `/mfa/*` routes; see [`crudauth_core::mfa`]). `build()` refuses it unless the user table
    /// has crudauth's four two-factor columns, and refuses keys that are not Fernet keys or
    /// that equal the secret key.
    pub fn mfa(mut self, config: MfaConfig) -> Self {
        self.mfa = Some(config);
        self
    }

    /// The application's lifecycle hooks (see [`crudauth_core::hooks`]).
    pub fn hooks(mut self, hooks: impl AuthHooks) -> Self {
        self.hooks = Some(Arc::new(hooks));
        self
    }

    /// Turns on email delivery (registration answers 202 and sends a verification email).
    pub fn email(mut self, email: EmailConfig) -> Self {
        self.email = Some(email);
        self
    }

    /// The password hasher (default: argon2id at OWASP costs).
    pub fn passwords(mut self, passwords: Passwords) -> Self {
        self.passwords = Some(passwords);
        self
    }

    /// What a new password must satisfy at `/register`, `/change-password` and
    /// `/set-password` (default: crudauth's, 8 characters to 1024 bytes). With the
    /// `password-strength` feature, `min_strength` also refuses common passwords and ones
    /// built from the account's username or email.
    pub fn password_policy(mut self, policy: PasswordPolicy) -> Self {
        self.password_policy = policy;
        self
    }

    /// The clock sessions, bearer tokens, the user cache and the default in-memory store and
    /// limiter measure time by (default: the system clock). Tests hand a
    /// [`ManualClock`](crudauth_core::clock::ManualClock) and move it instead of sleeping.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How many reverse proxies in front of the app append to `X-Forwarded-For` (default 0:
    /// the header is ignored).
    pub fn trusted_proxy_hops(mut self, hops: usize) -> Self {
        self.trusted_proxy_hops = hops;
        self
    }

    /// Whether `initialize()` warns that in-memory state is per-process (default on).
    pub fn warn_on_memory_backend(mut self, warn: bool) -> Self {
        self.warn_on_memory_backend = warn;
        self
    }

    /// How long a user row read for a request is reused by this process (default 5 s; zero
    /// turns the cache off). Changes made through crudauth refresh it at once on this worker
    /// and, over the change feed, on every other one; changes made behind its back take up to
    /// this long to be seen unless announced with [`CrudAuth::user_changed`]. Revoking a
    /// session is always immediate.
    pub fn user_cache_ttl(mut self, ttl: Duration) -> Self {
        self.user_cache_ttl = ttl;
        self
    }

    /// Where user changes are announced to the other workers, so each drops its cached copy
    /// of the row at once (see [`crudauth_core::changes`]). Default: Redis pub/sub when
    /// `.redis_url(…)` or `.redis(…)` is configured, else in-process only.
    pub fn change_feed(mut self, feed: impl ChangeFeed) -> Self {
        self.change_feed = Some(Arc::new(feed));
        self
    }

    /// Accepts a user table without a `token_version` column (see
    /// [`UserStore::supports_token_version`]), which `build()` otherwise refuses. What is
    /// lost: a password change, a reset, a logout-all or disabling the account no longer ends
    /// the user's bearer access tokens and refresh tokens, which live out their lifetimes.
    /// Sessions still end (their records are deleted).
    pub fn without_revocation_on_password_change(mut self) -> Self {
        self.without_revocation = true;
        self
    }

    /// Adds an OAuth or OpenID Connect provider under `name`, which names its routes
    /// (`/oauth/{name}/authorize`, `/oauth/{name}/callback`) and the user table's column the
    /// provider's account id is kept in (`{name}_id`). See [`crudauth_core::oauth`]:
    /// `OpenIdProvider::new(issuer, id, secret)` for any OpenID provider,
    /// `OpenIdProvider::google(…)`, `GitHub::new(…)`, or your own [`OAuthProvider`].
    /// `build()` refuses it without a session transport, a [`redirect_base_url`](Self::redirect_base_url),
    /// the `{name}_id` column, or `email` among the login fields.
    #[cfg(feature = "oauth")]
    pub fn oauth(mut self, name: impl Into<String>, provider: impl OAuthProvider) -> Self {
        self.oauth.providers.push((name.into(), Arc::new(provider)));
        self
    }

    /// The app's public base URL (`https://app.example.com`, with any mount prefix): the OAuth
    /// callbacks are `{base}/oauth/{name}/callback`, and a sign-in lands on it by default.
    #[cfg(feature = "oauth")]
    pub fn redirect_base_url(mut self, url: impl Into<String>) -> Self {
        self.oauth.redirect_base_url = Some(url.into());
        self
    }

    /// Where a redirect-mode OAuth sign-in lands when it has no `redirect_to`, and where a
    /// failed one lands with `?error=<code>`: a same-origin path (`/app/login`) or an absolute
    /// `http(s)` URL (default: the [`redirect_base_url`](Self::redirect_base_url)).
    #[cfg(feature = "oauth")]
    pub fn oauth_default_redirect(mut self, target: impl Into<String>) -> Self {
        self.oauth.default_redirect = Some(target.into());
        self
    }

    /// How the OAuth routes answer (default: redirects).
    #[cfg(feature = "oauth")]
    pub fn oauth_response_mode(mut self, mode: OAuthResponseMode) -> Self {
        self.oauth.mode = mode;
        self
    }

    /// Validates the configuration and builds the auth object. Fails closed: nothing is
    /// defaulted that would weaken security.
    pub fn build(self) -> Result<CrudAuth, ConfigError> {
        let raw = self
            .secret_key
            .ok_or_else(|| ConfigError::SecretKey("missing: call .secret_key(…)".into()))?;
        let key = SecretKey::new(&raw.0).map_err(|e| ConfigError::SecretKey(e.to_string()))?;
        let users = self.users.ok_or(ConfigError::NoUsers)?;
        let mfa = match self.mfa {
            Some(config) => {
                let missing = users.missing_mfa_fields();
                if !missing.is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "two-factor authentication needs the user table's columns {}: add \
                         them (see crudauth_sqlx::SqlxUsers::create_default_table for their \
                         types) or map them with the column map",
                        missing.join(", ")
                    )));
                }
                Some(Mfa::new(config, &raw.0).map_err(|e| ConfigError::Invalid(e.to_string()))?)
            }
            None => None,
        };
        if !users.supports_token_version() && !self.without_revocation {
            return Err(ConfigError::Invalid(
                "the user table has no token_version column, so a password change, reset, \
                 logout-all or disabled account could not end the user's bearer and refresh \
                 tokens: add the column (INTEGER NOT NULL DEFAULT 0), or accept that loss \
                 with .without_revocation_on_password_change()"
                    .into(),
            ));
        }
        if self.login_fields.is_empty() {
            return Err(ConfigError::Invalid(
                "login_fields is empty: list at least one field".into(),
            ));
        }
        self.lockout.validate().map_err(ConfigError::Invalid)?;
        if self.sudo.max_attempts == 0
            || self.sudo.window.is_zero()
            || self.sudo.attempt_window.is_zero()
            || self.sudo.lockout.is_zero()
        {
            return Err(ConfigError::Invalid(
                "sudo: max_attempts and every duration must be greater than zero".into(),
            ));
        }
        if let Some(session) = &self.session {
            // Browsers keep a cookie 400 days at most (RFC 6265bis): a longer window would
            // outlive its own cookie.
            if session.config.remember_me > MAX_COOKIE_AGE {
                return Err(ConfigError::Invalid(format!(
                    "remember_me must be at most {} s (400 days, the longest cookie browsers keep)",
                    MAX_COOKIE_AGE.as_secs()
                )));
            }
            if session.config.max_data_bytes > crudauth_core::session::MAX_DATA {
                return Err(ConfigError::Invalid(format!(
                    "max_data_bytes must be at most {} (1 MiB)",
                    crudauth_core::session::MAX_DATA
                )));
            }
        }
        if let Some(bad) = self.session.iter().flat_map(|s| &s.invalid_origins).next() {
            return Err(ConfigError::Invalid(format!(
                "allowed origin `{bad}` is not scheme://host[:port] (http or https, no path)"
            )));
        }
        self.cookies.check(self.bearer.as_ref())?;
        #[cfg(feature = "oauth")]
        let oauth_checked = check_oauth(
            self.oauth,
            users.as_ref(),
            self.session.is_some(),
            &self.login_fields,
            mfa.as_ref(),
        )?;
        let rate_limits = BuiltinLimits::new(self.rate_limit_overrides)?;
        if let Some(email) = &self.email {
            if email.frontend_url.is_empty() {
                tracing::warn!(
                    "crudauth: EmailConfig frontend_url is empty; email links will have no host"
                );
            }
        }
        #[cfg(feature = "redis")]
        let (store_default, limiter_default, feed_default) = match self.redis {
            Some(setting) => {
                let config = match setting {
                    RedisSetting::Config(config) => config,
                    RedisSetting::Url { url, prefix } => {
                        let config = crudauth_core::store::RedisConfig::from_url(&url)
                            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
                        match prefix {
                            Some(p) => config.namespace(p),
                            None => config,
                        }
                    }
                };
                let connection = crudauth_core::store::RedisConnection::new(config)
                    .map_err(|e| ConfigError::Invalid(e.to_string()))?;
                let store: Arc<dyn Store> =
                    Arc::new(crudauth_core::store::RedisStore::new(connection.clone()));
                let limiter: Arc<dyn RateLimiter> = Arc::new(
                    crudauth_core::limit::RedisRateLimiter::new(connection.clone()),
                );
                let feed: Arc<dyn ChangeFeed> =
                    Arc::new(crudauth_core::changes::RedisChangeFeed::new(connection));
                (Some(store), Some(limiter), Some(feed))
            }
            None => (None, None, None),
        };
        #[cfg(not(feature = "redis"))]
        let (store_default, limiter_default, feed_default): (
            Option<Arc<dyn Store>>,
            Option<Arc<dyn RateLimiter>>,
            Option<Arc<dyn ChangeFeed>>,
        ) = (None, None, None);
        let feed: Arc<dyn ChangeFeed> = self
            .change_feed
            .or(feed_default)
            .unwrap_or_else(|| Arc::new(MemoryChangeFeed::new()));
        let clock = self.clock.unwrap_or_else(crudauth_core::clock::system);
        let store: Arc<dyn Store> = self
            .store
            .or(store_default)
            .unwrap_or_else(|| Arc::new(MemoryStore::new().with_clock(clock.clone())));
        let limiter: Arc<dyn RateLimiter> = self
            .limiter
            .or(limiter_default)
            .unwrap_or_else(|| Arc::new(MemoryRateLimiter::with_clock(clock.clone())));
        // Each purpose signs or keys with its own key derived from SECRET_KEY (HKDF), never
        // with SECRET_KEY itself: no two purposes share a key.
        let sessions = self.session.as_ref().map(|s| {
            Sessions::new(
                store.clone(),
                key.derive(purpose::SESSION),
                s.config.clone(),
            )
            .with_csrf_key(key.derive(purpose::CSRF))
            .with_clock(clock.clone())
        });
        let bearer = match self.bearer {
            Some(config) => Some(BearerState::new(
                config,
                &key.derive(purpose::JWT),
                store.clone(),
                &self.cookies,
                clock.clone(),
            )?),
            None => None,
        };
        let transports: Vec<Arc<dyn Transport>> = self
            .order
            .into_iter()
            .map(|slot| -> Arc<dyn Transport> {
                match slot {
                    TransportSlot::Session => Arc::new(SessionAuth),
                    TransportSlot::Bearer => Arc::new(BearerAuth),
                    TransportSlot::Custom(t) => t,
                }
            })
            .collect();
        if transports.is_empty() {
            return Err(ConfigError::NoTransport);
        }
        // Unique names also let `authenticate_with` tell the built-in transports by name.
        for (i, t) in transports.iter().enumerate() {
            if transports[..i].iter().any(|o| o.name() == t.name()) {
                return Err(ConfigError::DuplicateTransport(t.name()));
            }
        }
        let passwords = match self.passwords {
            Some(p) => p,
            None => Passwords::new(),
        };
        // The key of every limiter key made from client-typed text (lockout subjects, custom
        // rate-limit identities, email targets).
        let limiter_key = key.derive(purpose::LIMITER);
        let flash_key = key.derive(purpose::FLASH);
        let one_time_key = key.derive(purpose::ONE_TIME_TOKEN);
        let fanout = Fanout::new(
            self.email
                .as_ref()
                .map(|e| (e.frontend_url.clone(), e.sender.clone())),
            self.channels,
        );
        let token_ttls = self.email.as_ref().map(|e| e.lifetimes).unwrap_or_default();
        let mfa = mfa.map(|service| MfaState {
            service,
            challenges: Challenges::new(store.clone(), one_time_key.clone()),
        });
        #[cfg(feature = "oauth")]
        let oauth = oauth_checked.map(|checked| OAuthState {
            providers: checked.providers.into_iter().collect(),
            flows: crudauth_core::oauth::flow::Flows::new(store.clone(), one_time_key.clone()),
            base_url: checked.base_url,
            default_redirect: checked.default_redirect,
            mode: checked.mode,
        });
        let tokens = OneTimeTokens::new(store.clone(), one_time_key);
        Ok(CrudAuth {
            inner: Arc::new(Inner {
                users: CachedUsers::new(users, self.user_cache_ttl)
                    .with_clock(clock.clone())
                    .announcing(feed),
                store,
                limiter,
                session: self.session,
                sessions,
                bearer,
                transports,
                cookies: self.cookies,
                login_fields: self.login_fields,
                email: self.email,
                passwords,
                password_policy: self.password_policy,
                tokens,
                fanout,
                queue: Queue::new(self.delivery_queue),
                token_ttls,
                hooks: self.hooks,
                sudo: self.sudo,
                mfa,
                clock,
                trusted_proxy_hops: self.trusted_proxy_hops,
                warn_on_memory_backend: self.warn_on_memory_backend,
                fresh_sign_in: self.fresh_sign_in,
                lockout: self.lockout,
                rate_limits,
                limiter_key,
                flash_key,
                #[cfg(feature = "oauth")]
                oauth,
            }),
        })
    }
}

/// Authentication for an axum app: one object wiring sessions with CSRF, transports, users,
/// passwords, stores and limits. Cheap to clone.
///
/// ```no_run
/// use axum::{routing::get, Json, Router};
/// use crudauth_axum::{CrudAuth, SessionTransport, extract::CurrentUser};
/// use crudauth_core::user::MemoryUsers;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = CrudAuth::builder()
///     .secret_key(std::env::var("SECRET_KEY")?)
///     .users(MemoryUsers::new())
///     .session_transport(SessionTransport::default())
///     .build()?;
/// let guard = auth.initialize().await?;
/// let app = Router::new()
///     .route("/dashboard", get(|user: CurrentUser| async move { Json(user.user_id().clone()) }))
///     .merge(auth.router())
///     .layer(auth.layer());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
/// guard.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CrudAuth {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) users: CachedUsers,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) limiter: Arc<dyn RateLimiter>,
    pub(crate) session: Option<SessionTransport>,
    pub(crate) sessions: Option<Sessions>,
    pub(crate) bearer: Option<BearerState>,
    pub(crate) transports: Vec<Arc<dyn Transport>>,
    pub(crate) cookies: CookieConfig,
    pub(crate) login_fields: Vec<LoginField>,
    pub(crate) email: Option<EmailConfig>,
    pub(crate) passwords: Passwords,
    pub(crate) password_policy: PasswordPolicy,
    /// The recovery flows' tokens.
    pub(crate) tokens: OneTimeTokens,
    /// Where recovery messages go.
    pub(crate) fanout: Fanout,
    /// Delivery work waiting for the worker.
    pub(crate) queue: Queue<Job>,
    /// How long each recovery token lives.
    pub(crate) token_ttls: TokenLifetimes,
    /// The application's lifecycle hooks.
    pub(crate) hooks: Option<Arc<dyn AuthHooks>>,
    /// Sudo mode's settings.
    pub(crate) sudo: SudoConfig,
    /// Two-factor authentication, when configured.
    pub(crate) mfa: Option<MfaState>,
    /// The clock every expiry is measured by (the system's unless `.clock(…)` was given).
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) trusted_proxy_hops: usize,
    pub(crate) warn_on_memory_backend: bool,
    pub(crate) fresh_sign_in: Duration,
    pub(crate) lockout: LockoutConfig,
    pub(crate) rate_limits: BuiltinLimits,
    /// HMAC key of the limiter keys made from client-typed text.
    pub(crate) limiter_key: SecretKey,
    /// HMAC key of the signed-out browser's flash cookie.
    pub(crate) flash_key: SecretKey,
    /// OAuth sign-in, when providers are configured.
    #[cfg(feature = "oauth")]
    pub(crate) oauth: Option<OAuthState>,
}

impl CrudAuth {
    /// Runs the application's hook for `event`, if it has hooks: best-effort, after the change
    /// is committed; a failing or panicking hook is logged and changes nothing.
    pub(crate) async fn fire(&self, event: HookEvent, context: HookContext) {
        if let Some(hooks) = &self.inner.hooks {
            crudauth_core::hooks::fire(hooks, event, context).await;
        }
    }

    /// Starts a configuration.
    pub fn builder() -> CrudAuthBuilder {
        CrudAuthBuilder::default()
    }

    /// The session service, when the session transport is configured.
    pub fn sessions(&self) -> Option<&Sessions> {
        self.inner.sessions.as_ref()
    }

    /// The bearer transport as built, when it is configured.
    pub(crate) fn bearer(&self) -> Option<&BearerState> {
        self.inner.bearer.as_ref()
    }

    /// The user table (behind the per-process row cache).
    pub fn users(&self) -> &CachedUsers {
        &self.inner.users
    }

    /// The password hasher.
    pub fn passwords(&self) -> &Passwords {
        &self.inner.passwords
    }

    /// The shared store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The rate limiter.
    pub fn rate_limiter(&self) -> &Arc<dyn RateLimiter> {
        &self.inner.limiter
    }

    /// The transports, in resolution order.
    pub fn transports(&self) -> &[Arc<dyn Transport>] {
        &self.inner.transports
    }

    pub(crate) fn csrf_enabled(&self) -> bool {
        self.inner.session.as_ref().is_some_and(|s| s.csrf)
    }

    /// Loads a user by id for authentication: `None` when missing or disabled; a database
    /// failure is a 503. The row is shared with the per-process user cache, so a cache hit
    /// copies nothing.
    pub async fn load_active_user(&self, id: &UserId) -> Result<Option<Arc<User>>, AuthError> {
        Ok(self
            .inner
            .users
            .find_shared(id)
            .await?
            .filter(|u| u.is_active))
    }

    /// The layer every route using crudauth's extractors must sit under: it makes this object
    /// available to them, with a per-request cache so the principal is resolved once, and
    /// composes what the configuration asks for: the [session layer](Self::session_layer)
    /// with the session transport, the [CSRF layer](Self::csrf_layer) with CSRF on. Apply it
    /// the ordinary way, `.layer(auth.layer())`. It reads nothing from the request and touches
    /// no store on its own: a public route costs no store operation.
    pub fn layer(&self) -> crate::layer::AuthLayer {
        crate::layer::AuthLayer::new(self.clone())
    }

    /// The session layer alone, for a sub-router: the
    /// [`Session`](crate::extract::Session) extractor with the application's data, written
    /// back once after the handler, and sign-in and sign-out from handlers.
    pub fn session_layer(&self) -> crate::layer::SessionLayer {
        crate::layer::SessionLayer::new(self.clone())
    }

    /// The CSRF layer alone, for a sub-router: every unsafe request of a live cookie session
    /// needs the token (header or `csrf_token` form field), whatever its handler extracts.
    pub fn csrf_layer(&self) -> crate::layer::CsrfLayer {
        crate::layer::CsrfLayer::new(self.clone())
    }

    /// The HTTP surface: `/register`, `/login`, `/logout`, `/me`, `/change-password`,
    /// `/set-password`; with the session transport's management routes, `/sessions`,
    /// `DELETE /sessions/{id}`, `/logout-all`, `/csrf/refresh`; with the bearer transport,
    /// `/token` and `/refresh` (and `/logout` when there is no session transport and the
    /// refresh token is a cookie).
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        crate::routes::router(self)
    }

    /// Connects and checks every backend, loads scripts, starts the sweepers, and warns once
    /// when state is in process memory. Call before serving.
    pub async fn initialize(&self) -> Result<LifespanGuard, InitError> {
        let mut tasks = Tasks::new();
        if let Err(error) = self.inner.passwords.prepare().await {
            tracing::warn!(%error, "crudauth: could not prepare the dummy password hash; the first unknown-user sign-in will make it");
        }
        self.inner.store.initialize(&mut tasks).await?;
        #[cfg(feature = "oauth")]
        if let Some(oauth) = &self.inner.oauth {
            for (name, provider) in &oauth.providers {
                if let Err(error) = provider.initialize().await {
                    tasks.shutdown(Duration::from_secs(1)).await;
                    self.inner.store.shutdown().await;
                    return Err(InitError::OAuth {
                        provider: name.clone(),
                        error,
                    });
                }
            }
        }
        self.inner.limiter.initialize(&mut tasks).await?;
        let worker = self.clone();
        self.inner
            .queue
            .start(&mut tasks, move |job| {
                let auth = worker.clone();
                async move { auth.handle_job(job).await }
            })
            .await;
        let listener: Arc<dyn ChangeListener> = Arc::new(crate::revocation::Evictor::new(self));
        let feed = self.inner.users.feed().cloned();
        if let Some(feed) = &feed {
            if let Err(error) = feed.subscribe(listener.clone(), &mut tasks).await {
                // Nothing is left running: the stores let go of their connections again.
                tasks.shutdown(Duration::from_secs(1)).await;
                self.inner.limiter.shutdown().await;
                self.inner.store.shutdown().await;
                return Err(error.into());
            }
        }
        let mut per_process = Vec::new();
        if self.inner.store.kind() == BackendKind::Memory {
            per_process.push("sessions/CSRF, one-time tokens");
        }
        if self.inner.limiter.kind() == BackendKind::Memory {
            per_process.push("lockout and throttle counters");
        }
        let feed_is_local = feed
            .as_ref()
            .is_none_or(|f| f.kind() == BackendKind::Memory);
        if feed_is_local && !self.inner.users.ttl().is_zero() {
            per_process.push(
                "the user cache (a password change, logout-all or disabled account on one \
                 worker reaches the others' caches only after user_cache_ttl)",
            );
        }
        if !per_process.is_empty() && self.inner.warn_on_memory_backend {
            tracing::warn!(
                "crudauth: in-memory backend for {}. In-memory state is per-process: it is NOT shared \
                 between processes or hosts, so under several workers these guarantees weaken. Use Redis \
                 in production, or .warn_on_memory_backend(false) to silence this.",
                per_process.join("; ")
            );
        }
        Ok(LifespanGuard {
            tasks: Some(tasks),
            auth: self.clone(),
            _listener: Listener(listener),
        })
    }
}

/// The OAuth settings `build()` accepted.
#[cfg(feature = "oauth")]
struct CheckedOAuth {
    providers: Vec<(String, Arc<dyn OAuthProvider>)>,
    base_url: String,
    default_redirect: String,
    mode: OAuthResponseMode,
}

/// Whether `target` is a same-origin path or an absolute `http(s)` URL with a host.
#[cfg(feature = "oauth")]
fn is_redirect_target(target: &str) -> bool {
    if crate::routes::same_origin_path(Some(target.to_owned())).as_deref() == Some(target) {
        return true;
    }
    url::Url::parse(target)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// Checks the OAuth settings: every provider named `[a-z][a-z0-9_]*` once, with its
/// `{name}_id` column, a session transport, `email` among the login fields, a base URL and
/// a default target that are what they must be; warns when two-factor is required but OAuth
/// sign-ins skip it. `None` without providers.
#[cfg(feature = "oauth")]
fn check_oauth(
    settings: OAuthSettings,
    users: &dyn UserStore,
    has_session: bool,
    login_fields: &[LoginField],
    mfa: Option<&Mfa>,
) -> Result<Option<CheckedOAuth>, ConfigError> {
    if settings.providers.is_empty() {
        return Ok(None);
    }
    let invalid = |m: String| Err(ConfigError::Invalid(m));
    for (i, (name, _)) in settings.providers.iter().enumerate() {
        let well_formed = name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            return invalid(format!(
                "OAuth provider name `{name}`: use [a-z][a-z0-9_]*, at most 32 characters"
            ));
        }
        if settings.providers[..i]
            .iter()
            .any(|(other, _)| other == name)
        {
            return invalid(format!("two OAuth providers are named `{name}`"));
        }
        if !users.supports_provider(name) {
            return invalid(format!(
                "OAuth provider `{name}` needs a `{name}_id` column on the user table to link                  accounts on: add it (VARCHAR(255), unique) and declare it in the column map                  (crudauth_sqlx::ColumnMap::provider(\"{name}\"))"
            ));
        }
    }
    if !has_session {
        return invalid(
            "OAuth signs users in with a session: add .session_transport(SessionTransport::default())"
                .into(),
        );
    }
    if !login_fields.contains(&LoginField::Email) {
        return invalid("OAuth requires `email` among the login fields".into());
    }
    let Some(base) = settings.redirect_base_url else {
        return invalid(
            "OAuth needs .redirect_base_url(\"https://your.app\"): the callback URLs are built on it"
                .into(),
        );
    };
    let base = base.trim_end_matches('/').to_owned();
    let base_ok = url::Url::parse(&base).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && u.query().is_none()
            && u.fragment().is_none()
    });
    if !base_ok {
        return invalid(format!(
            "redirect_base_url `{base}` must be an absolute http(s) URL without query or fragment"
        ));
    }
    let default_redirect = settings.default_redirect.unwrap_or_else(|| base.clone());
    if !is_redirect_target(&default_redirect) {
        return invalid(format!(
            "oauth_default_redirect `{default_redirect}` must be a same-origin path such as              `/app/login` or an absolute http(s) URL"
        ));
    }
    if let Some(mfa) = mfa {
        if mfa.requires_any() && !mfa.challenges_oauth() {
            tracing::warn!(
                "crudauth: two-factor authentication is required, but OAuth sign-ins are not \
                 challenged (MfaConfig.oauth is false): an account that must enrol can sign in \
                 through a provider without a code. Set MfaConfig::oauth(true) to challenge them."
            );
        }
    }
    Ok(Some(CheckedOAuth {
        providers: settings.providers,
        base_url: base,
        default_redirect,
        mode: settings.mode,
    }))
}

/// Owns crudauth's background tasks and connections. `shutdown()` stops the tasks and closes
/// connections within 5 s; dropping the guard stops the tasks too.
#[derive(Debug)]
pub struct LifespanGuard {
    tasks: Option<Tasks>,
    auth: CrudAuth,
    /// What the change feed tells; an in-process feed holds it weakly.
    _listener: Listener,
}

/// The change feed's listener, kept alive by the guard.
struct Listener(#[allow(dead_code)] Arc<dyn ChangeListener>);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

impl LifespanGuard {
    /// How many background tasks are running.
    pub fn background_tasks(&self) -> usize {
        self.tasks.as_ref().map_or(0, Tasks::len)
    }

    /// Stops background tasks and closes connections, within 5 s in all.
    pub async fn shutdown(mut self) {
        let grace = Duration::from_secs(5);
        let deadline = tokio::time::Instant::now() + grace;
        if let Some(tasks) = self.tasks.take() {
            tasks.shutdown(grace / 2).await;
        }
        let inner = &self.auth.inner;
        let close = async {
            if let Some(feed) = inner.users.feed() {
                feed.shutdown().await;
            }
            inner.store.shutdown().await;
            inner.limiter.shutdown().await;
        };
        if tokio::time::timeout_at(deadline, close).await.is_err() {
            tracing::warn!("crudauth: closing connections took longer than 5 s; gave up waiting");
        }
    }
}

#[cfg(test)]
impl CrudAuth {
    /// A session-transport app over an empty in-memory user table, for unit tests.
    #[allow(clippy::unwrap_used)]
    pub(crate) fn for_tests() -> CrudAuth {
        CrudAuth::builder()
            .secret_key([7u8; 32])
            .users(crudauth_core::user::MemoryUsers::new())
            .session_transport(crate::SessionTransport::default())
            .warn_on_memory_backend(false)
            .build()
            .unwrap()
    }
}
