//! The escalating login lockout on every password sign-in (see
//! [`crudauth_core::limit::lockout`] for the algorithm): configuration, and the check that
//! [`CrudAuth::authenticate_password`] runs before any password work.
//!
//! ```
//! use std::time::Duration;
//! use crudauth_axum::{CrudAuth, LockoutConfig, OnLoginSuccess, SessionTransport};
//! use crudauth_core::user::MemoryUsers;
//!
//! let auth = CrudAuth::builder()
//!     .secret_key([7u8; 32])
//!     .users(MemoryUsers::new())
//!     .session_transport(SessionTransport::default())
//!     .lockout(LockoutConfig {
//!         max_attempts: 10,
//!         lockout_max: Duration::from_secs(900),
//!         on_login_success: OnLoginSuccess::ClearUserOnly,
//!         ..LockoutConfig::default()
//!     })
//!     .build()?;
//! assert_eq!(auth.lockout_config().max_attempts, 10);
//! # Ok::<(), crudauth_axum::ConfigError>(())
//! ```

use crudauth_core::limit::{secs_rounded_up, LockoutConfig, LockoutKeys, LockoutSubject};

use crate::builder::CrudAuthBuilder;
use crate::client_ip::known_ip_key;
use crate::error::AuthError;
use crate::failure_log::FailureLog;
use crate::state::CrudAuth;

const LOCKED: &str = "Too many login attempts. Try again later.";

impl CrudAuthBuilder {
    /// The login lockout's numbers (default: crudauth's — 5 attempts per 60 s per address and
    /// per identifier, locks from 60 s doubling to 3600 s, rounds kept 3600 s, a success clears
    /// all). Checked at `build()`: every number must be positive.
    pub fn lockout(mut self, config: LockoutConfig) -> Self {
        self.lockout = config;
        self
    }
}

impl CrudAuth {
    /// The login lockout's configuration.
    pub fn lockout_config(&self) -> &LockoutConfig {
        &self.inner.lockout
    }

    /// Records a sign-in attempt on `subject` from `client_ip`, before any password work:
    /// the attempt's keys when it may go on, else 429 "Too many login attempts. Try again
    /// later." with `Retry-After`. When the limiter fails, the sign-in is refused the same way
    /// for `lockout_base` (fail closed, as crudauth). A `client_ip` that is not an address
    /// (`"unknown"`: the server has no peer addresses) counts the subject alone.
    pub(crate) async fn lockout_check(
        &self,
        subject: LockoutSubject<'_>,
        client_ip: &str,
    ) -> Result<LockoutKeys, AuthError> {
        let ip = known_ip_key(client_ip);
        let keys = LockoutKeys::new(&self.inner.limiter_key, ip.as_deref(), subject);
        let config = &self.inner.lockout;
        match self.inner.limiter.login_attempt(&keys, config).await {
            Ok(decision) if decision.allowed => Ok(keys),
            Ok(decision) => {
                tracing::info!(
                    ip = client_ip,
                    retry_after = decision.retry_after_secs(),
                    "sign-in refused: locked out"
                );
                Err(AuthError::too_many(LOCKED, decision.retry_after_secs()))
            }
            Err(error) => {
                static LOG: FailureLog = FailureLog::new();
                LOG.report(
                    "login lockout backend failed; refusing the sign-in (fail closed)",
                    &error,
                );
                Err(AuthError::too_many(
                    LOCKED,
                    secs_rounded_up(config.lockout_base),
                ))
            }
        }
    }

    /// Gives back the attempt just recorded under `keys`: its password was never checked (the
    /// hash pool was full, or hashing failed), so it must not count towards a lockout. A
    /// failure to give it back is logged; the attempt then counts, which errs towards locking.
    pub(crate) async fn lockout_forget(&self, keys: &LockoutKeys) {
        let config = &self.inner.lockout;
        if let Err(error) = self.inner.limiter.forget_attempt(keys, config).await {
            tracing::warn!(%error, "could not give back a sign-in attempt that was never checked");
        }
    }

    /// Records a successful sign-in; a failure only costs the user's fresh start, so it is
    /// logged and the sign-in goes on.
    pub(crate) async fn lockout_success(&self, keys: &LockoutKeys) {
        let config = &self.inner.lockout;
        if let Err(error) = self.inner.limiter.login_succeeded(keys, config).await {
            tracing::warn!(%error, "could not clear the login lockout after a sign-in");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crudauth_core::user::MemoryUsers;

    use crate::{CrudAuth, LockoutConfig, SessionTransport};

    #[test]
    fn build_refuses_a_lockout_with_a_zero() {
        let built = CrudAuth::builder()
            .secret_key([7u8; 32])
            .users(MemoryUsers::new())
            .session_transport(SessionTransport::default())
            .lockout(LockoutConfig {
                lockout_base: Duration::ZERO,
                ..LockoutConfig::default()
            })
            .build();
        let error = built.map(|_| ()).unwrap_err().to_string();
        assert!(error.contains("lockout_base must be positive"), "{error}");
    }
}
