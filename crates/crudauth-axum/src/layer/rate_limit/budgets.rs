//! crudauth 0.8's built-in budgets, their overrides, and how `CrudAuth` hands out limits.

use std::time::Duration;

use axum::routing::MethodRouter;

use super::config::{KeyBy, RateLimit};
use super::count::RouteLimiter;
use super::service::RateLimitLayer;
use crate::builder::CrudAuthBuilder;
use crate::config::ConfigError;
use crate::state::CrudAuth;

const HOUR: Duration = Duration::from_secs(3600);

/// The one table of built-in actions: crudauth 0.8's `DEFAULT_RATE_LIMITS`, with how each
/// tells callers apart. The email actions also cap, silently, what is sent to one address,
/// and `existing_account_notice` is only that cap (for the flows that bring them). The last
/// three are crudauth-rs's own, so every credential-bearing route has a budget: `/refresh` per
/// address (generous: a client refreshes about four times an hour, and many share an address),
/// `/set-password` and `DELETE /sessions/{id}` per user.
const BUILTIN: [(&str, u32, KeyBy); 13] = [
    ("register", 5, KeyBy::Ip),
    ("email_verify_request", 5, KeyBy::Ip),
    ("password_reset_request", 5, KeyBy::Ip),
    ("email_change_request", 3, KeyBy::Ip),
    ("existing_account_notice", 5, KeyBy::Ip),
    ("change_password", 5, KeyBy::User),
    ("logout_all", 10, KeyBy::User),
    ("csrf_refresh", 30, KeyBy::Ip),
    ("oauth_authorize", 30, KeyBy::Ip),
    ("mfa_manage", 10, KeyBy::User),
    ("refresh", 600, KeyBy::Ip),
    ("set_password", 5, KeyBy::User),
    ("revoke_session", 30, KeyBy::User),
];

/// The built-in actions' effective limits (defaults with the overrides applied).
#[derive(Debug)]
pub(crate) struct BuiltinLimits {
    entries: Vec<Builtin>,
}

#[derive(Debug)]
struct Builtin {
    action: &'static str,
    limit: RateLimit,
    limiter: RouteLimiter,
}

impl BuiltinLimits {
    /// The defaults with `overrides` applied (a later override of one action wins); an
    /// unknown action or an unusable limit is a configuration error.
    pub(crate) fn new(overrides: Vec<(String, RateLimit)>) -> Result<Self, ConfigError> {
        let mut limits: Vec<(&'static str, RateLimit, KeyBy)> = BUILTIN
            .into_iter()
            .map(|(action, times, key)| (action, RateLimit::new(times, HOUR), key))
            .collect();
        for (action, limit) in overrides {
            let Some(slot) = limits.iter_mut().find(|(name, ..)| *name == action) else {
                let known: Vec<&str> = BUILTIN.iter().map(|(name, ..)| *name).collect();
                return Err(ConfigError::Invalid(format!(
                    "rate_limits: `{action}` is not a built-in action (they are: {}); limit a \
                     route of your own with .route_layer(auth.rate_limit(\"{action}\", \
                     RateLimit::new(…)))",
                    known.join(", ")
                )));
            };
            if let Some(problem) = limit.problem() {
                return Err(ConfigError::Invalid(format!(
                    "rate_limits: `{action}`: {problem}"
                )));
            }
            slot.1 = limit;
        }
        let entries = limits
            .into_iter()
            .map(|(action, limit, key)| Builtin {
                action,
                limiter: RouteLimiter::new(action, &limit, key),
                limit,
            })
            .collect();
        Ok(Self { entries })
    }

    fn get(&self, action: &str) -> Option<&Builtin> {
        self.entries.iter().find(|b| b.action == action)
    }
}

impl CrudAuthBuilder {
    /// Overrides built-in budgets by action name (crudauth's `rate_limits={…}`):
    /// `register`, `email_verify_request`, `password_reset_request`, `email_change_request`,
    /// `existing_account_notice`, `change_password`, `logout_all`, `csrf_refresh`,
    /// `oauth_authorize`, `mfa_manage`, and crudauth-rs's `refresh` (600 an hour per address),
    /// `set_password` (5 per user) and `revoke_session` (30 per user). An unknown name is refused at `build()`; a budget of 0
    /// turns that limit off.
    ///
    /// ```
    /// use std::time::Duration;
    /// use crudauth_axum::{CrudAuth, RateLimit, SessionTransport};
    /// use crudauth_core::user::MemoryUsers;
    ///
    /// let auth = CrudAuth::builder()
    ///     .secret_key([7u8; 32])
    ///     .users(MemoryUsers::new())
    ///     .session_transport(SessionTransport::default())
    ///     .rate_limits([
    ///         ("register", RateLimit::new(20, Duration::from_secs(3600))),
    ///         ("csrf_refresh", RateLimit::new(0, Duration::from_secs(3600))), // off
    ///     ])
    ///     .build()?;
    /// assert_eq!(auth.builtin_rate_limit("register").unwrap().times(), 20);
    /// # Ok::<(), crudauth_axum::ConfigError>(())
    /// ```
    pub fn rate_limits<I, A>(mut self, overrides: I) -> Self
    where
        I: IntoIterator<Item = (A, RateLimit)>,
        A: Into<String>,
    {
        self.rate_limit_overrides
            .extend(overrides.into_iter().map(|(a, l)| (a.into(), l)));
        self
    }
}

impl CrudAuth {
    /// A layer limiting the routes it wraps to `limit`, counted under `action` (a name of your
    /// choosing; routes that share an action share one budget per caller). See
    /// [`crate::layer`] for the behaviour.
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum::{routing::post, Json, Router};
    /// use crudauth_axum::{CrudAuth, RateLimit, SessionTransport};
    /// use crudauth_core::user::MemoryUsers;
    ///
    /// # fn main() -> Result<(), crudauth_axum::ConfigError> {
    /// let auth = CrudAuth::builder()
    ///     .secret_key([7u8; 32])
    ///     .users(MemoryUsers::new())
    ///     .session_transport(SessionTransport::default())
    ///     .build()?;
    /// let app: Router = Router::new()
    ///     .route(
    ///         "/contact",
    ///         post(|| async { Json(serde_json::json!({"sent": true})) })
    ///             .route_layer(auth.rate_limit("contact", RateLimit::new(5, Duration::from_secs(60)))),
    ///     )
    ///     .layer(auth.layer());
    /// # Ok(()) }
    /// ```
    pub fn rate_limit(&self, action: &str, limit: RateLimit) -> RateLimitLayer {
        RateLimitLayer::new(self, action, limit)
    }

    /// The effective limit of a built-in action (its default, or your override), for routes
    /// of your own that should share it: `auth.rate_limit("password_reset_request", limit)`.
    /// `None` for a name that is not built in.
    pub fn builtin_rate_limit(&self, action: &str) -> Option<&RateLimit> {
        self.inner.rate_limits.get(action).map(|b| &b.limit)
    }

    /// The built-in action's counter, for routes that count inside themselves; `None` when it
    /// is off.
    pub(crate) fn builtin_limiter(&self, action: &str) -> Option<&RouteLimiter> {
        self.inner
            .rate_limits
            .get(action)
            .map(|b| &b.limiter)
            .filter(|l| !l.is_disabled())
    }

    /// The built-in action's layer; `None` when it is off (the route then costs nothing).
    fn builtin_layer(&self, action: &str) -> Option<RateLimitLayer> {
        self.builtin_limiter(action)
            .map(|limiter| RateLimitLayer::from_limiter(self, limiter.clone()))
    }
}

/// `route` under the built-in limit of `action` (unchanged when that limit is off).
pub(crate) fn limited<S>(route: MethodRouter<S>, auth: &CrudAuth, action: &str) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    match auth.builtin_layer(action) {
        Some(layer) => route.route_layer(layer),
        None => route,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_crudauths_ten_actions_and_ours() {
        let limits = BuiltinLimits::new(Vec::new()).unwrap();
        let expected = [
            ("register", 5),
            ("email_verify_request", 5),
            ("password_reset_request", 5),
            ("email_change_request", 3),
            ("existing_account_notice", 5),
            ("change_password", 5),
            ("logout_all", 10),
            ("csrf_refresh", 30),
            ("oauth_authorize", 30),
            ("mfa_manage", 10),
            ("refresh", 600),
            ("set_password", 5),
            ("revoke_session", 30),
        ];
        for (action, times) in expected {
            let b = limits.get(action).unwrap();
            assert_eq!(
                (b.limit.times(), b.limit.period()),
                (times, HOUR),
                "{action}"
            );
        }
        assert!(matches!(
            limits.get("change_password").unwrap().limiter.key(),
            KeyBy::User
        ));
    }

    #[test]
    fn overrides_apply_and_unknown_actions_are_refused() {
        let limits = BuiltinLimits::new(vec![
            ("register".into(), RateLimit::new(1, HOUR)),
            ("register".into(), RateLimit::new(2, HOUR)),
        ])
        .unwrap();
        assert_eq!(limits.get("register").unwrap().limit.times(), 2);
        let error = BuiltinLimits::new(vec![("login".into(), RateLimit::new(1, HOUR))])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`login` is not a built-in action"),
            "{error}"
        );
        assert!(error.contains("auth.rate_limit(\"login\""), "{error}");
        let error =
            BuiltinLimits::new(vec![("register".into(), RateLimit::new(1, Duration::ZERO))])
                .unwrap_err()
                .to_string();
        assert!(error.contains("no period"), "{error}");
        assert!(
            BuiltinLimits::new(vec![("register".into(), RateLimit::new(0, Duration::ZERO))])
                .is_ok()
        );
    }
}
