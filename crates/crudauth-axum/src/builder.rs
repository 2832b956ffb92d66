//! `CrudAuth::builder()`: configuration validated at `build()`, which fails closed.
//!
//! ```
//! use crudauth_axum::{CrudAuth, SessionTransport};
//! use crudauth_core::user::MemoryUsers;
//!
//! let auth = CrudAuth::builder()
//!     .secret_key([7u8; 32])
//!     .users(MemoryUsers::new())
//!     .session_transport(SessionTransport::default())
//!     .build();
//! assert!(auth.is_ok());
//! ```

use std::sync::Arc;
use std::time::Duration;

use crudauth_core::changes::{ChangeFeed, MemoryChangeFeed};
use crudauth_core::clock::Clock;
use crudauth_core::delivery::{DeliveryChannel, Fanout, Queue};
use crudauth_core::hooks::AuthHooks;
use crudauth_core::limit::{LockoutConfig, MemoryRateLimiter, RateLimiter};
use crudauth_core::mfa::challenge::Challenges;
use crudauth_core::mfa::{Mfa, MfaConfig};
use crudauth_core::password::{PasswordPolicy, Passwords};
use crudauth_core::secret::{purpose, SecretKey};
use crudauth_core::session::Sessions;
use crudauth_core::store::{MemoryStore, Store};
use crudauth_core::token::OneTimeTokens;
use crudauth_core::user::{CachedUsers, LoginField, UserStore};

use crate::bearer::{BearerAuth, BearerState, BearerTransport};
use crate::cookies::CookieConfig;
use crate::layer::rate_limit::{BuiltinLimits, RateLimit};
use crate::routes::{MfaState, SudoConfig};
#[cfg(feature = "oauth")]
use crate::routes::{OAuthResponseMode, OAuthState};
use crate::transport::{SessionAuth, Transport};
#[cfg(feature = "oauth")]
use crudauth_core::oauth::OAuthProvider;

use crate::config::{ConfigError, EmailConfig, SessionTransport, MAX_COOKIE_AGE};
use crate::state::{CrudAuth, Inner};

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
