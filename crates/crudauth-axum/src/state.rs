//! [`CrudAuth`]: the built object, its shared state and its accessors.
//!
//! ```
//! use crudauth_axum::{CrudAuth, SessionTransport};
//! use crudauth_core::user::MemoryUsers;
//!
//! let auth = CrudAuth::builder()
//!     .secret_key([7u8; 32])
//!     .users(MemoryUsers::new())
//!     .session_transport(SessionTransport::default())
//!     .build()
//!     .expect("a valid configuration");
//! assert!(auth.sessions().is_some());
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use crudauth_core::clock::Clock;
use crudauth_core::delivery::{Fanout, Queue};
use crudauth_core::hooks::{AuthHooks, HookContext, HookEvent};
use crudauth_core::limit::{LockoutConfig, RateLimiter};
use crudauth_core::password::{PasswordPolicy, Passwords};
use crudauth_core::secret::SecretKey;
use crudauth_core::session::Sessions;
use crudauth_core::store::Store;
use crudauth_core::token::OneTimeTokens;
use crudauth_core::user::{CachedUsers, LoginField, User, UserId};

use crate::bearer::BearerState;
use crate::cookies::CookieConfig;
use crate::error::AuthError;
use crate::layer::rate_limit::BuiltinLimits;
use crate::recovery::{Job, TokenLifetimes};
#[cfg(feature = "oauth")]
use crate::routes::OAuthState;
use crate::routes::{MfaState, SudoConfig};
use crate::transport::Transport;

use crate::builder::CrudAuthBuilder;
use crate::config::{EmailConfig, SessionTransport};

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
