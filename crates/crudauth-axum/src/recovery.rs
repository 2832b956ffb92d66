//! What the recovery request routes hand to the delivery queue, and the worker that handles
//! it: the per-address caps, the account lookup, the token and the fan-out all run here, off
//! the request path, so a request for an address with an account answers in the same time as
//! one for an address without (nothing but the queueing differs).
//!
//! ```text
//! POST /password/reset-request  → budget per IP → Job::Reset queued → 200 (uniform)
//! worker: per-address cap → user by email → token (bound to the hash) → email + channels
//! ```

use crudauth_core::delivery::DeliveryIntent;
use crudauth_core::email::EmailKind;
use crudauth_core::token::TokenPurpose;
use crudauth_core::user::{canonical_email, LoginField, User, UserId, UserStore};

use crate::builder::CrudAuth;

/// How long each recovery token lives (crudauth's defaults: verify 24 h, reset 1 h, change
/// 24 h), set on [`EmailConfig`](crate::EmailConfig).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenLifetimes {
    pub(crate) verify: std::time::Duration,
    pub(crate) reset: std::time::Duration,
    pub(crate) change: std::time::Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        const HOUR: u64 = 3600;
        Self {
            verify: std::time::Duration::from_secs(24 * HOUR),
            reset: std::time::Duration::from_secs(HOUR),
            change: std::time::Duration::from_secs(24 * HOUR),
        }
    }
}

/// One piece of delivery work.
#[derive(Debug)]
pub(crate) enum Job {
    /// A verification link for the account with this address, unless it is verified already.
    Verify {
        email: String,
        redirect_to: Option<String>,
    },
    /// A reset link for the account with this address.
    Reset {
        email: String,
        redirect_to: Option<String>,
    },
    /// A confirmation link to the new address, unless it belongs to an account already.
    Change {
        user_id: UserId,
        new_email: String,
        redirect_to: Option<String>,
    },
    /// A notice without a token; `budget` is the per-address cap it counts against.
    Notice {
        kind: EmailKind,
        to: String,
        budget: Option<&'static str>,
    },
}

impl CrudAuth {
    /// Queues delivery work; with no destination configured there is nothing to do.
    pub(crate) fn enqueue(&self, job: Job) {
        if !self.inner.fanout.is_empty() {
            self.inner.queue.push(job);
        }
    }

    /// Waits until every queued message has been handed to its destinations. The request
    /// routes answer before delivery happens; a test (or an orderly hand-over) calls this to
    /// see what was sent.
    pub async fn deliveries_settled(&self) {
        self.inner.queue.settled().await;
    }

    /// Handles one job in the worker; every failure is logged and goes no further.
    pub(crate) async fn handle_job(&self, job: Job) {
        if let Err(error) = self.try_job(job).await {
            tracing::warn!(%error, "crudauth: recovery message not sent");
        }
    }

    async fn try_job(&self, job: Job) -> Result<(), crate::error::AuthError> {
        let users = self.users();
        let ttl = &self.inner.token_ttls;
        match job {
            Job::Verify {
                email: to,
                redirect_to,
            } => {
                if !self.within_email_budget("email_verify_request", &to).await {
                    return Ok(());
                }
                let user = users
                    .find_by_field(LoginField::Email, &canonical_email(&to))
                    .await?;
                if let Some(user) = user.filter(|u| !u.email_verified) {
                    self.send_link(TokenPurpose::Verify, &user, None, redirect_to, ttl.verify)
                        .await?;
                }
            }
            Job::Reset {
                email: to,
                redirect_to,
            } => {
                if !self
                    .within_email_budget("password_reset_request", &to)
                    .await
                {
                    return Ok(());
                }
                let user = users
                    .find_by_field(LoginField::Email, &canonical_email(&to))
                    .await?;
                if let Some(user) = user {
                    self.send_link(TokenPurpose::Reset, &user, None, redirect_to, ttl.reset)
                        .await?;
                }
            }
            Job::Change {
                user_id,
                new_email,
                redirect_to,
            } => {
                if !self
                    .within_email_budget("email_change_request", &new_email)
                    .await
                {
                    return Ok(());
                }
                if users
                    .find_by_field(LoginField::Email, &new_email)
                    .await?
                    .is_some()
                {
                    return Ok(()); // taken: silently nothing, as for a new address
                }
                if let Some(user) = users.find_by_id(&user_id).await? {
                    self.send_link(
                        TokenPurpose::Change,
                        &user,
                        Some(new_email),
                        redirect_to,
                        ttl.change,
                    )
                    .await?;
                }
            }
            Job::Notice { kind, to, budget } => {
                if let Some(action) = budget {
                    if !self.within_email_budget(action, &to).await {
                        return Ok(());
                    }
                }
                self.inner
                    .fanout
                    .deliver(&DeliveryIntent::notice(kind, to))
                    .await;
            }
        }
        Ok(())
    }

    /// Mints a token of `purpose` for `user` and delivers it: to the new address for a change,
    /// to the account's address otherwise.
    async fn send_link(
        &self,
        purpose: TokenPurpose,
        user: &User,
        new_email: Option<String>,
        redirect_to: Option<String>,
        ttl: std::time::Duration,
    ) -> Result<(), crate::error::AuthError> {
        let Some(recipient) = new_email.clone().or_else(|| user.email.clone()) else {
            return Ok(());
        };
        let token = self
            .inner
            .tokens
            .issue(purpose, user, new_email, redirect_to, ttl)
            .await?;
        let kind = match purpose {
            TokenPurpose::Verify => EmailKind::VerifyEmail,
            TokenPurpose::Reset => EmailKind::ResetPassword,
            TokenPurpose::Change => EmailKind::ChangeEmail,
        };
        self.inner
            .fanout
            .deliver(&DeliveryIntent {
                kind,
                token: Some(token),
                user_id: Some(user.id.clone()),
                recipient,
                expires_in: ttl,
            })
            .await;
        Ok(())
    }
}
