//! The **AuthHooks** port: crudauth 0.8's fourteen lifecycle events, as async methods that do
//! nothing unless overridden.
//!
//! ```
//! use async_trait::async_trait;
//! use crudauth_core::hooks::{AuthHooks, HookContext, HookResult};
//! use crudauth_core::user::User;
//!
//! #[derive(Debug)]
//! struct Audit;
//!
//! #[async_trait]
//! impl AuthHooks for Audit {
//!     async fn on_after_login(&self, user: &User, context: &HookContext) -> HookResult {
//!         tracing::info!(user_id = %user.id, ip = %context.ip, "signed in");
//!         Ok(())
//!     }
//! }
//! ```
//!
//! Hooks are best-effort: they run after the change they report is committed, and one that
//! fails or panics is logged (`crudauth::hooks`) and never fails or undoes the request. The
//! `User` they get never carries the password hash.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::user::User;

/// What a hook may fail with; the error is logged, nothing else.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// What a hook returns.
pub type HookResult = Result<(), HookError>;

/// Who caused the event.
#[derive(Debug, Clone, Default)]
pub struct HookContext {
    /// The client address (see crudauth-axum's client address rules), `"unknown"` without one.
    pub ip: String,
    /// The `User-Agent` header, empty when absent.
    pub user_agent: String,
    /// The transport of the request's principal (`session`, `bearer`, …), when signed in.
    pub transport: Option<String>,
    /// The public handle of the request's session, when it has one.
    pub session_handle: Option<String>,
}

/// Why a password sign-in was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown identifier or wrong password.
    InvalidCredentials,
    /// Right password, disabled account.
    Inactive,
}

/// The lifecycle events. Every method defaults to doing nothing.
#[allow(unused_variables)]
#[async_trait]
pub trait AuthHooks: Send + Sync + Debug + 'static {
    /// An account was created (`/register`, or an OAuth sign-in that made one).
    async fn on_after_register(&self, user: &User, context: &HookContext) -> HookResult {
        Ok(())
    }
    /// An OAuth sign-in reached an active account (`created`: it was made just now).
    async fn on_oauth_login(
        &self,
        user: &User,
        provider: &str,
        created: bool,
        context: &HookContext,
    ) -> HookResult {
        Ok(())
    }
    /// An OAuth sign-in claimed an account whose own email was never verified: its password,
    /// two-factor enrolment and every session and token are gone, and the provider's account
    /// is linked to it.
    async fn on_oauth_account_claimed(
        &self,
        user: &User,
        provider: &str,
        context: &HookContext,
    ) -> HookResult {
        Ok(())
    }
    /// A password sign-in was refused (`user` when the identifier names an account).
    async fn on_login_failed(
        &self,
        identifier: &str,
        user: Option<&User>,
        reason: LoginFailure,
        context: &HookContext,
    ) -> HookResult {
        Ok(())
    }
    /// A password sign-in was refused by the lockout.
    async fn on_lockout(
        &self,
        identifier: &str,
        retry_after: u64,
        context: &HookContext,
    ) -> HookResult {
        Ok(())
    }
    /// A sign-in completed (session or bearer).
    async fn on_after_login(&self, user: &User, context: &HookContext) -> HookResult {
        Ok(())
    }
    /// `/logout` ended a live session.
    async fn on_after_logout(&self, user: &User, context: &HookContext) -> HookResult {
        Ok(())
    }
    /// The account's address was verified.
    async fn on_after_recovery_verified(&self, user: &User, context: &HookContext) -> HookResult {
        Ok(())
    }
    /// A password reset completed.
    async fn on_after_password_reset(&self, user: &User, context: &HookContext) -> HookResult {
        Ok(())
    }
    /// `/change-password` completed.
    async fn on_after_password_changed(&self, user: &User, context: &HookContext) -> HookResult {
        Ok(())
    }
    /// The account moved to a new address.
    async fn on_after_email_changed(&self, user: &User, context: &HookContext) -> HookResult {
        Ok(())
    }
    /// The session was elevated to sudo mode.
    async fn on_after_sudo(&self, user: &User, context: &HookContext) -> HookResult {
        Ok(())
    }
    /// Two-factor authentication was turned on.
    async fn on_after_mfa_enabled(&self, user: &User, context: &HookContext) -> HookResult {
        Ok(())
    }
    /// Two-factor authentication was turned off.
    async fn on_after_mfa_disabled(&self, user: &User, context: &HookContext) -> HookResult {
        Ok(())
    }
    /// A recovery code was consumed.
    async fn on_after_recovery_code_used(&self, user: &User, context: &HookContext) -> HookResult {
        Ok(())
    }
}

/// One event, with what its hook receives.
#[derive(Debug, Clone)]
pub enum HookEvent {
    /// [`AuthHooks::on_after_register`].
    Registered(User),
    /// [`AuthHooks::on_oauth_login`].
    OAuthLogin {
        /// The account.
        user: User,
        /// The provider's name.
        provider: String,
        /// Made just now.
        created: bool,
    },
    /// [`AuthHooks::on_oauth_account_claimed`].
    OAuthAccountClaimed {
        /// The account, as claimed.
        user: User,
        /// The provider's name.
        provider: String,
    },
    /// [`AuthHooks::on_login_failed`].
    LoginFailed {
        /// What was typed.
        identifier: String,
        /// The account it names, if any.
        user: Option<User>,
        /// Why.
        reason: LoginFailure,
    },
    /// [`AuthHooks::on_lockout`].
    Lockout {
        /// What was typed.
        identifier: String,
        /// Seconds until the next attempt may be made.
        retry_after: u64,
    },
    /// [`AuthHooks::on_after_login`].
    LoggedIn(User),
    /// [`AuthHooks::on_after_logout`].
    LoggedOut(User),
    /// [`AuthHooks::on_after_recovery_verified`].
    RecoveryVerified(User),
    /// [`AuthHooks::on_after_password_reset`].
    PasswordReset(User),
    /// [`AuthHooks::on_after_password_changed`].
    PasswordChanged(User),
    /// [`AuthHooks::on_after_email_changed`].
    EmailChanged(User),
    /// [`AuthHooks::on_after_sudo`].
    Sudo(User),
    /// [`AuthHooks::on_after_mfa_enabled`].
    MfaEnabled(User),
    /// [`AuthHooks::on_after_mfa_disabled`].
    MfaDisabled(User),
    /// [`AuthHooks::on_after_recovery_code_used`].
    RecoveryCodeUsed(User),
}

impl HookEvent {
    /// The hook's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            HookEvent::Registered(_) => "on_after_register",
            HookEvent::OAuthLogin { .. } => "on_oauth_login",
            HookEvent::OAuthAccountClaimed { .. } => "on_oauth_account_claimed",
            HookEvent::LoginFailed { .. } => "on_login_failed",
            HookEvent::Lockout { .. } => "on_lockout",
            HookEvent::LoggedIn(_) => "on_after_login",
            HookEvent::LoggedOut(_) => "on_after_logout",
            HookEvent::RecoveryVerified(_) => "on_after_recovery_verified",
            HookEvent::PasswordReset(_) => "on_after_password_reset",
            HookEvent::PasswordChanged(_) => "on_after_password_changed",
            HookEvent::EmailChanged(_) => "on_after_email_changed",
            HookEvent::Sudo(_) => "on_after_sudo",
            HookEvent::MfaEnabled(_) => "on_after_mfa_enabled",
            HookEvent::MfaDisabled(_) => "on_after_mfa_disabled",
            HookEvent::RecoveryCodeUsed(_) => "on_after_recovery_code_used",
        }
    }

    /// Removes what a hook must never see (the password hash).
    fn stripped(mut self) -> Self {
        let user = match &mut self {
            HookEvent::OAuthLogin { user, .. } | HookEvent::OAuthAccountClaimed { user, .. } => {
                Some(user)
            }
            HookEvent::LoginFailed { user, .. } => user.as_mut(),
            HookEvent::Lockout { .. } => None,
            HookEvent::Registered(u)
            | HookEvent::LoggedIn(u)
            | HookEvent::LoggedOut(u)
            | HookEvent::RecoveryVerified(u)
            | HookEvent::PasswordReset(u)
            | HookEvent::PasswordChanged(u)
            | HookEvent::EmailChanged(u)
            | HookEvent::Sudo(u)
            | HookEvent::MfaEnabled(u)
            | HookEvent::MfaDisabled(u)
            | HookEvent::RecoveryCodeUsed(u) => Some(u),
        };
        if let Some(user) = user {
            user.hashed_password = None;
            user.mfa = crate::user::MfaColumns::default();
        }
        self
    }

    async fn call(&self, hooks: &dyn AuthHooks, c: &HookContext) -> HookResult {
        match self {
            HookEvent::Registered(u) => hooks.on_after_register(u, c).await,
            HookEvent::OAuthLogin {
                user,
                provider,
                created,
            } => hooks.on_oauth_login(user, provider, *created, c).await,
            HookEvent::OAuthAccountClaimed { user, provider } => {
                hooks.on_oauth_account_claimed(user, provider, c).await
            }
            HookEvent::LoginFailed {
                identifier,
                user,
                reason,
            } => {
                hooks
                    .on_login_failed(identifier, user.as_ref(), *reason, c)
                    .await
            }
            HookEvent::Lockout {
                identifier,
                retry_after,
            } => hooks.on_lockout(identifier, *retry_after, c).await,
            HookEvent::LoggedIn(u) => hooks.on_after_login(u, c).await,
            HookEvent::LoggedOut(u) => hooks.on_after_logout(u, c).await,
            HookEvent::RecoveryVerified(u) => hooks.on_after_recovery_verified(u, c).await,
            HookEvent::PasswordReset(u) => hooks.on_after_password_reset(u, c).await,
            HookEvent::PasswordChanged(u) => hooks.on_after_password_changed(u, c).await,
            HookEvent::EmailChanged(u) => hooks.on_after_email_changed(u, c).await,
            HookEvent::Sudo(u) => hooks.on_after_sudo(u, c).await,
            HookEvent::MfaEnabled(u) => hooks.on_after_mfa_enabled(u, c).await,
            HookEvent::MfaDisabled(u) => hooks.on_after_mfa_disabled(u, c).await,
            HookEvent::RecoveryCodeUsed(u) => hooks.on_after_recovery_code_used(u, c).await,
        }
    }
}

/// Runs the hook of `event` in a task of its own and waits for it: an error or a panic is
/// logged and goes no further.
pub async fn fire(hooks: &Arc<dyn AuthHooks>, event: HookEvent, context: HookContext) {
    let event = event.stripped();
    let name = event.name();
    let hooks = hooks.clone();
    let task = tokio::spawn(async move { event.call(hooks.as_ref(), &context).await });
    match task.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::error!(target: "crudauth::hooks", hook = name, %error, "crudauth: hook failed");
        }
        Err(_) => {
            tracing::error!(target: "crudauth::hooks", hook = name, "crudauth: hook panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::PasswordHash;

    #[derive(Debug, Default)]
    struct Seen(std::sync::Mutex<Vec<Option<PasswordHash>>>);

    #[async_trait]
    impl AuthHooks for Seen {
        async fn on_after_login(&self, user: &User, _: &HookContext) -> HookResult {
            self.0.lock().unwrap().push(user.hashed_password.clone());
            Ok(())
        }
        async fn on_after_logout(&self, _: &User, _: &HookContext) -> HookResult {
            Err("the audit log is down".into())
        }
        async fn on_after_sudo(&self, _: &User, _: &HookContext) -> HookResult {
            panic!("a hook that panics")
        }
    }

    fn user() -> User {
        User::fixture("a@example.com", "$argon2id$secret")
    }

    #[tokio::test]
    async fn hooks_never_see_the_hash_and_failures_go_no_further() {
        let seen = Arc::new(Seen::default());
        let hooks: Arc<dyn AuthHooks> = seen.clone();
        fire(&hooks, HookEvent::LoggedIn(user()), HookContext::default()).await;
        fire(&hooks, HookEvent::LoggedOut(user()), HookContext::default()).await;
        fire(&hooks, HookEvent::Sudo(user()), HookContext::default()).await;
        // Defaults do nothing.
        fire(
            &hooks,
            HookEvent::PasswordReset(user()),
            HookContext::default(),
        )
        .await;
        assert_eq!(*seen.0.lock().unwrap(), vec![None]);
    }
}
