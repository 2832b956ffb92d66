//! What hashing and verifying passwords can fail with, and what a bad configuration is refused for.

/// Why a password could not be hashed or verified. A wrong password is not an error: it is a
/// [`Verification`](super::Verification) that did not match.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The password is longer than [`MAX_PASSWORD_BYTES`](super::MAX_PASSWORD_BYTES); it was
    /// refused before any hashing. Answer it like a wrong password (login) or a 422 (a new
    /// password).
    #[error(
        "password is {len} bytes long; at most {max} bytes are accepted (refused before hashing)"
    )]
    TooLong {
        /// The password's length in UTF-8 bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Every hashing slot is busy and the waiting line is full, so the request was turned away at
    /// once instead of queueing without bound. Answer 503 (or 429) with a short `Retry-After`.
    #[error(
        "all {max_concurrency} password-hashing slots are busy and {max_waiting} requests are \
         already waiting; try again in a moment"
    )]
    Busy {
        /// Hashes allowed to run at once (the `max_concurrency` setting).
        max_concurrency: usize,
        /// Requests allowed to wait for a slot (the `max_waiting` setting).
        max_waiting: usize,
    },
    /// The blocking task that hashes failed (it panicked or the runtime is shutting down), or the
    /// hashing library refused its input. A bug or a shutdown, never the user's doing.
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// Why [`PasswordsBuilder::build`](super::PasswordsBuilder::build) refused a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordConfigError {
    /// argon2 refused the costs.
    #[error(
        "invalid argon2 parameters m={m_kib} KiB, t={t_cost}, p={p_cost}: {reason} \
         (m must be at least 8 KiB per lane, t and p at least 1; OWASP: m=19456, t=2, p=1)"
    )]
    Argon2Params {
        /// Memory in KiB.
        m_kib: u32,
        /// Iterations.
        t_cost: u32,
        /// Lanes.
        p_cost: u32,
        /// What argon2 said.
        reason: String,
    },
    /// `max_concurrency(0)` would never run a hash.
    #[error("max_concurrency must be at least 1 (it is how many hashes may run at once)")]
    ZeroConcurrency,
}
