//! What the recovery request routes hand to the delivery queue, and the worker that handles
//! it: the per-address caps, the account lookup, the token and the fan-out all run here, off
//! the request path, so a request for an address with an account answers in the same time as
//! one for an address without (nothing but the queueing differs).
//!
//! ```text
//! POST /password/reset-request  → budget per IP → Job::Reset queued → 200 (uniform)
//! worker: per-address cap → user by email → token (bound to the hash) → email + channels
//! ```

use std::time::Duration;

use crudauth_core::delivery::DeliveryIntent;
use crudauth_core::email::EmailKind;
use crudauth_core::token::TokenPurpose;
use crudauth_core::user::{canonical_email, LoginField, User, UserId, UserStore};

use crate::error::AuthError;
use crate::state::CrudAuth;

/// How long each recovery token lives (crudauth's defaults: verify 24 h, reset 1 h, change
/// 24 h), set on [`EmailConfig`](crate::EmailConfig).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenLifetimes {
    pub(crate) verify: Duration,
    pub(crate) reset: Duration,
    pub(crate) change: Duration,
}

impl TokenLifetimes {
    /// How long a token of `purpose` lives.
    fn of(&self, purpose: TokenPurpose) -> Duration {
        match purpose {
            TokenPurpose::Verify => self.verify,
            TokenPurpose::Reset => self.reset,
            TokenPurpose::Change => self.change,
        }
    }
}

/// The request route (and so the budget, per IP and per address) that sends a token of
/// `purpose`.
fn request_action(purpose: TokenPurpose) -> &'static str {
    match purpose {
        TokenPurpose::Verify => "email_verify_request",
        TokenPurpose::Reset => "password_reset_request",
        TokenPurpose::Change => "email_change_request",
    }
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        const HOUR: u64 = 3600;
        Self {
            verify: Duration::from_secs(24 * HOUR),
            reset: Duration::from_secs(HOUR),
            change: Duration::from_secs(24 * HOUR),
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

    async fn try_job(&self, job: Job) -> Result<(), AuthError> {
        let users = self.users();
        match job {
            Job::Verify { email, redirect_to } => {
                let unverified = |user: &User| !user.email_verified;
                self.link_to_account(TokenPurpose::Verify, &email, redirect_to, unverified)
                    .await?;
            }
            Job::Reset { email, redirect_to } => {
                self.link_to_account(TokenPurpose::Reset, &email, redirect_to, |_| true)
                    .await?;
            }
            Job::Change {
                user_id,
                new_email,
                redirect_to,
            } => {
                let action = request_action(TokenPurpose::Change);
                if !self.within_email_budget(action, &new_email).await {
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
                    self.send_link(TokenPurpose::Change, &user, Some(new_email), redirect_to)
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

    /// A verify or reset link for the account at `email`, if there is one, it is active and
    /// `wanted` says so, within the per-address cap of the purpose's request route. A disabled
    /// account gets nothing, as an unknown address.
    async fn link_to_account(
        &self,
        purpose: TokenPurpose,
        email: &str,
        redirect_to: Option<String>,
        wanted: impl Fn(&User) -> bool,
    ) -> Result<(), AuthError> {
        if !self
            .within_email_budget(request_action(purpose), email)
            .await
        {
            return Ok(());
        }
        let user = self
            .users()
            .find_by_field(LoginField::Email, &canonical_email(email))
            .await?;
        match user.filter(|u| u.is_active && wanted(u)) {
            Some(user) => self.send_link(purpose, &user, None, redirect_to).await,
            None => Ok(()),
        }
    }

    /// Mints a token of `purpose` for `user` and delivers it: to the new address for a change,
    /// to the account's address otherwise.
    async fn send_link(
        &self,
        purpose: TokenPurpose,
        user: &User,
        new_email: Option<String>,
        redirect_to: Option<String>,
    ) -> Result<(), AuthError> {
        let ttl = self.inner.token_ttls.of(purpose);
        let Some(recipient) = new_email.clone().or_else(|| user.email.clone()) else {
            return Ok(());
        };
        let token = self
            .inner
            .tokens
            .issue(purpose, user, new_email, redirect_to, ttl)
            .await?;
        self.inner
            .fanout
            .deliver(&DeliveryIntent {
                kind: purpose.email_kind(),
                token: Some(token),
                user_id: Some(user.id.clone()),
                recipient,
                expires_in: ttl,
            })
            .await;
        Ok(())
    }
}
