//! Passwords: argon2id hashing off the async runtime, crudauth's legacy hashes, rehash on login,
//! and the policy for new passwords.
//!
//! ```
//! use crudauth_core::password::{Password, PasswordPolicy, Passwords};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // `Passwords::new()` hashes at OWASP costs; the test costs keep this example fast.
//! let passwords = Passwords::fast_for_tests();
//!
//! // Registration: check the policy, then hash.
//! let chosen = Password::new("correct horse");
//! PasswordPolicy::default().check(chosen.expose())?;
//! let stored = passwords.hash(&chosen).await?;
//!
//! // Login: verify; store `rehash` when there is one.
//! let verdict = passwords.verify(&Password::new("correct horse"), Some(&stored)).await?;
//! assert!(verdict.matched);
//! assert_eq!(verdict.rehash, None);
//!
//! // Unknown user: the same work, and no match.
//! assert!(!passwords.verify(&chosen, None).await?.matched);
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
//!
//! What is stored, and what is accepted:
//!
//! * New hashes are argon2id PHC strings of the NFKC form of the password.
//! * Verification tries the NFKC form, then the password as typed. It accepts argon2 hashes and
//!   crudauth's bcrypt over `base64(SHA-256(password))`. A match on anything but a current
//!   argon2id hash of the NFKC form returns a replacement hash for the caller to store.
//! * Passwords over [`MAX_PASSWORD_BYTES`] are refused before any work.
//! * Unknown users, unusable and malformed hashes cost the same argon2id work as a wrong
//!   password. Residual difference: an account still on a crudauth bcrypt hash (cost 12, about
//!   fifteen times slower than argon2id at OWASP costs: ~200 ms against 12-14 ms) answers
//!   more slowly until its first login rehashes it.

mod argon2id;
mod error;
mod legacy;
mod plaintext;
mod policy;
mod service;

pub use error::{PasswordConfigError, PasswordError};
pub use plaintext::Password;
pub use policy::{PasswordPolicy, PolicyViolation};
pub use service::{Passwords, PasswordsBuilder, Verification, MAX_PASSWORD_BYTES};
