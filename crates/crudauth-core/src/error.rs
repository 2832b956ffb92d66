//! The error every store and rate-limiter backend returns.

use std::time::Duration;

/// What went wrong talking to a store or rate-limiter backend.
///
/// Messages say what failed, where, and what to do next. URLs are shown with any password
/// removed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached at all.
    #[error(
        "cannot reach Redis at {url}: {reason} (is redis-server running? is REDIS_URL right?)"
    )]
    Unreachable {
        /// The backend's address, password removed.
        url: String,
        /// What the client reported.
        reason: String,
    },
    /// The backend did not answer in time.
    #[error("Redis at {url} did not answer {operation} within {timeout:?} (is it overloaded or unreachable?)")]
    Timeout {
        /// The backend's address, password removed.
        url: String,
        /// The operation that timed out.
        operation: &'static str,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The backend answered with an error.
    #[error("Redis at {url} refused {operation}: {reason}")]
    Backend {
        /// The backend's address, password removed.
        url: String,
        /// The operation that failed.
        operation: &'static str,
        /// What the server said.
        reason: String,
    },
    /// The in-memory store reached its configured capacity.
    #[error("the in-memory store is full ({capacity} live entries); raise MemoryStore::capacity or move to Redis")]
    CapacityExceeded {
        /// The configured bound.
        capacity: usize,
    },
    /// A key holds a value of another kind than the operation needs (a counter that is not a
    /// number, an index that is not an index).
    #[error("the value at `{key}` is not usable for {operation}; it was left as it is")]
    WrongKind {
        /// The key, without the namespace prefix.
        key: String,
        /// The operation that was refused.
        operation: &'static str,
    },
    /// The backend is misconfigured.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// A conditional write kept losing to other writers of the same key and gave up.
    #[error("the value at `{key}` kept changing under {operation}; nothing was written")]
    Contended {
        /// The key, without the namespace prefix.
        key: String,
        /// The operation that gave up.
        operation: &'static str,
    },
}

/// The result of a store or rate-limiter operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Removes the password (and user name) from a URL for display.
///
/// ```
/// assert_eq!(crudauth_core::error::redact_url("redis://:hunter2@cache:6379/0"), "redis://***@cache:6379/0");
/// assert_eq!(crudauth_core::error::redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}
