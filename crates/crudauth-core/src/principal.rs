//! The `Principal` every transport resolves to, and the gates checked on it.
//!
//! ```
//! use crudauth_core::principal::{Gate, Principal};
//! use crudauth_core::user::{User, UserId};
//!
//! let user = User {
//!     id: UserId::Int(1), email: Some("ada@example.com".into()), username: Some("ada".into()),
//!     hashed_password: None, is_active: true, is_superuser: false, email_verified: true,
//!     token_version: 0, oauth_provider: None, provider_ids: Default::default(),
//!     mfa: Default::default(),
//! };
//! let p = Principal::new(user, "bearer", vec!["items:read".into()]);
//! assert!(Gate::Scopes(&["items:read"]).check(&p).is_ok());
//! assert_eq!(Gate::Superuser.check(&p).unwrap_err(), "Insufficient privileges");
//! ```

use std::sync::Arc;

use crate::session::LoadedSession;
use crate::user::{User, UserId};

/// An authenticated caller: the user row, the transport that authenticated it, its scopes.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user, as loaded for this request (shared with the per-process row cache).
    pub user: Arc<User>,
    /// The transport that authenticated the request (`session`, `bearer`, or a custom name).
    pub via: &'static str,
    /// Granted scopes (empty for sessions).
    pub scopes: Vec<String>,
    /// The session, when the session transport authenticated the request.
    pub session: Option<LoadedSession>,
}

impl Principal {
    /// A principal for `user` authenticated by transport `via`.
    pub fn new(user: impl Into<Arc<User>>, via: &'static str, scopes: Vec<String>) -> Self {
        Self {
            user: user.into(),
            via,
            scopes,
            session: None,
        }
    }

    /// The user's id.
    pub fn user_id(&self) -> &UserId {
        &self.user.id
    }

    /// Whether every scope in `required` was granted.
    pub fn has_scopes(&self, required: &[&str]) -> bool {
        required.iter().all(|r| self.scopes.iter().any(|s| s == r))
    }
}

/// A check on a principal, in crudauth's order and with its messages (all answered 403).
#[derive(Debug, Clone, Copy)]
pub enum Gate<'a> {
    /// The user must be a superuser: "Insufficient privileges".
    Superuser,
    /// The recovery factor (email) must be verified: "Recovery factor not verified".
    Verified,
    /// Every scope must be granted: "Insufficient scope".
    Scopes(&'a [&'a str]),
}

impl Gate<'_> {
    /// `Ok` when the principal passes, else the 403 message.
    pub fn check(&self, principal: &Principal) -> Result<(), &'static str> {
        match self {
            Gate::Superuser if !principal.user.is_superuser => Err("Insufficient privileges"),
            Gate::Verified if !principal.user.email_verified => Err("Recovery factor not verified"),
            Gate::Scopes(required) if !principal.has_scopes(required) => Err("Insufficient scope"),
            _ => Ok(()),
        }
    }
}
