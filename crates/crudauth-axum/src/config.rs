//! The settings `CrudAuth::builder()` takes besides the builder itself: the session transport,
//! email delivery, and the errors of `build()` and `initialize()`.
//!
//! ```
//! use std::time::Duration;
//! use crudauth_axum::SessionTransport;
//!
//! let sessions = SessionTransport::default().idle_timeout(Duration::from_secs(15 * 60));
//! ```

use std::sync::Arc;
use std::time::Duration;

use crudauth_core::email::EmailSender;
use crudauth_core::session::SessionConfig;
use crudauth_core::StoreError;

use crate::recovery::TokenLifetimes;

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
pub(crate) const MAX_COOKIE_AGE: Duration = Duration::from_secs(400 * 24 * 3600);

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
