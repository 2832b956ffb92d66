//! Synchronizer CSRF tokens, bound to their session and derived, never stored.
//!
//! The session record keeps only a random nonce. The client's token is
//! `HMAC(secret key, "csrf" ‖ session id ‖ nonce)`: the server can recompute it from the
//! session cookie, so checking a token costs no store round trip, and someone who can read
//! the store (but not the key) cannot forge one. Rotation replaces the nonce.
//!
//! ```
//! use crudauth_core::csrf::Csrf;
//! use crudauth_core::secret::{SecretKey, SessionId};
//!
//! let csrf = Csrf::new(SecretKey::new([7u8; 32]).unwrap());
//! let session = SessionId::generate();
//! let nonce = Csrf::new_nonce();
//! let token = csrf.token(&session, &nonce);
//! assert!(csrf.verify(&session, &nonce, token.expose()));
//! assert!(!csrf.verify(&SessionId::generate(), &nonce, token.expose()));
//! ```

use crate::secret::{ct_eq, random_token, CsrfToken, SecretKey, SessionId};

/// Mints and checks CSRF tokens.
#[derive(Debug, Clone)]
pub struct Csrf {
    key: SecretKey,
}

impl Csrf {
    /// A CSRF service keyed by the application's secret.
    pub fn new(key: SecretKey) -> Self {
        Self { key }
    }

    /// A fresh nonce for a session record (a new token for the same session).
    pub fn new_nonce() -> String {
        random_token(16)
    }

    /// The token a client holds for `session` with `nonce`.
    pub fn token(&self, session: &SessionId, nonce: &str) -> CsrfToken {
        let material = format!("{}\0{}", session.expose(), nonce);
        CsrfToken::from_client(self.key.digest("csrf", &material))
    }

    /// Whether `presented` is the token of `session` with `nonce`, compared in constant time.
    pub fn verify(&self, session: &SessionId, nonce: &str, presented: &str) -> bool {
        ct_eq(
            self.token(session, nonce).expose().as_bytes(),
            presented.as_bytes(),
        )
    }
}
