//! What a route limit is: a budget, how callers are told apart, and what to do when the limiter
//! fails.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;
use crudauth_core::principal::Principal;

/// A budget for a route: `times` requests per `period` for each caller (crudauth's
/// `RateLimit(times, seconds)`); `times = 0` disables it (nothing counted, no headers).
///
/// Callers are told apart by client address unless [`RateLimit::key`] says otherwise. When the
/// limiter itself fails, the route answers 503 unless [`RateLimit::fail_open`] lets requests
/// through.
///
/// ```
/// use std::time::Duration;
/// use crudauth_axum::{KeyBy, RateLimit};
///
/// let per_address = RateLimit::new(5, Duration::from_secs(60));
/// let per_user = RateLimit::new(100, Duration::from_secs(3600)).key(KeyBy::User);
/// let best_effort = RateLimit::new(30, Duration::from_secs(60)).fail_open();
/// assert!(RateLimit::new(0, Duration::from_secs(60)).is_disabled());
/// ```
#[derive(Clone, Debug)]
pub struct RateLimit {
    pub(crate) times: u32,
    pub(crate) period: Duration,
    pub(crate) key: Option<KeyBy>,
    pub(crate) fail_open: bool,
}

impl RateLimit {
    /// `times` requests per `period` for each caller. The period must be positive: a limit
    /// with a zero period is refused at `build()` as a built-in override, and as a route
    /// limit it answers 503 (fail closed) and logs why.
    pub const fn new(times: u32, period: Duration) -> Self {
        Self {
            times,
            period,
            key: None,
            fail_open: false,
        }
    }

    /// How callers are told apart (default [`KeyBy::Ip`]; for a built-in action, the built-in
    /// key).
    pub fn key(mut self, key: KeyBy) -> Self {
        self.key = Some(key);
        self
    }

    /// When the limiter fails (Redis down), let requests through, showing the whole budget in
    /// the headers, instead of answering 503. For limits whose only purpose is to shed load.
    pub fn fail_open(mut self) -> Self {
        self.fail_open = true;
        self
    }

    /// Requests per period.
    pub fn times(&self) -> u32 {
        self.times
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Whether this limit is off (`times = 0`).
    pub fn is_disabled(&self) -> bool {
        self.times == 0
    }

    /// Whether the limiter failing lets requests through.
    pub fn is_fail_open(&self) -> bool {
        self.fail_open
    }

    /// Why this limit cannot be used, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        (!self.is_disabled() && self.period < Duration::from_millis(1)).then(|| {
            format!(
                "a rate limit of {} per {:?} has no period; give a positive period",
                self.times, self.period
            )
        })
    }
}

/// A caller identity computed from the request, for [`KeyBy::custom`]; `None` counts the
/// request against its client address instead, so leaving out whatever the closure looks at
/// never escapes the limit.
pub type KeyFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// What an asynchronous key closure ([`KeyBy::custom_async`]) returns.
pub type KeyFuture = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// A caller identity computed from the request's head and its signed-in user (if any),
/// asynchronously, for [`KeyBy::custom_async`]; `None` counts against the client address.
pub type AsyncKeyFn = dyn Fn(&Parts, Option<&Principal>) -> KeyFuture + Send + Sync;

/// How a route limit tells callers apart.
///
/// Whatever a custom closure returns is never stored as such: the counter key is
/// `q:{action}:c:` and an HMAC of it under the application's secret (64 hex digits, however
/// long the identity), so it cannot collide with the built-in keys (addresses, `user:…`), it
/// cannot grow the store's keys, and a store reader cannot read it back.
///
/// Key on something the caller cannot choose freely. A header a client sets (a tenant name, an
/// API key it makes up) hands each request a fresh budget; the signed-in user, or something
/// looked up from it, does not.
///
/// ```
/// use crudauth_axum::KeyBy;
///
/// // One budget per organisation of the signed-in user (looked up asynchronously); anonymous
/// // callers are counted by address.
/// # async fn organisation_of(user_id: &str) -> Option<String> { Some(format!("org-of-{user_id}")) }
/// let by_organisation = KeyBy::custom_async(|_parts, principal| {
///     let user_id = principal.map(|p| p.user_id().to_string());
///     async move { organisation_of(&user_id?).await }
/// });
///
/// // Synchronous: one budget per signed-in user's id as an earlier layer of the app put it in
/// // the request extensions (never a header the client writes).
/// #[derive(Clone)]
/// struct AccountId(String);
/// let by_account = KeyBy::custom(|parts| {
///     parts.extensions.get::<AccountId>().map(|a| a.0.clone())
/// });
/// ```
#[derive(Clone, Default)]
pub enum KeyBy {
    /// The client address (behind `trusted_proxy_hops` proxies; IPv6 grouped by /64).
    #[default]
    Ip,
    /// The signed-in user: the route then needs authentication, and an anonymous request is
    /// answered 401 "Not authenticated" before anything is counted. The principal is resolved
    /// once and reused by the handler's extractors.
    User,
    /// The signed-in user when there is one, else the client address.
    UserOrIp,
    /// A closure over the request's head.
    Custom(Arc<KeyFn>),
    /// An asynchronous closure over the request's head and its signed-in user.
    CustomAsync(Arc<AsyncKeyFn>),
}

impl KeyBy {
    /// Keys by whatever `key` returns (see [`KeyFn`]). It runs inside the layer, without
    /// waiting: the cheapest custom key.
    pub fn custom(key: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(key))
    }

    /// Keys by what the future `key` makes returns (see [`AsyncKeyFn`]): the request's
    /// principal is resolved first (once per request, reused by the handler; `None` when
    /// anonymous or when its credential fails), then `key` runs with it, and may await (a
    /// database lookup, say). The future must own what it uses (`'static`): copy what it
    /// needs out of the head and the principal before the `async move` block.
    pub fn custom_async<F, Fut>(key: F) -> Self
    where
        F: Fn(&Parts, Option<&Principal>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        Self::CustomAsync(Arc::new(move |parts, principal| {
            Box::pin(key(parts, principal)) as KeyFuture
        }))
    }
}

impl fmt::Debug for KeyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyBy::Ip => "Ip",
            KeyBy::User => "User",
            KeyBy::UserOrIp => "UserOrIp",
            KeyBy::Custom(_) => "Custom(..)",
            KeyBy::CustomAsync(_) => "CustomAsync(..)",
        })
    }
}
