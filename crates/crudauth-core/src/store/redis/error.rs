//! How `fred` errors and unexpected replies become [`StoreError`]s that say what failed, where,
//! and what to do.

use std::sync::atomic::Ordering;

use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::ClientLike;

use super::connection::RedisConnection;
use crate::error::StoreError;

impl RedisConnection {
    /// A reply that is not what the command or script returns, and why.
    pub(crate) fn unexpected(&self, operation: &'static str, reason: String) -> StoreError {
        StoreError::Backend {
            url: self.inner.display_url.clone(),
            operation,
            reason,
        }
    }

    /// Maps a `fred` error to ours: what failed, where, and what to do.
    pub(crate) fn error(
        &self,
        operation: &'static str,
        key: &str,
        error: &FredError,
    ) -> StoreError {
        let details = error.details();
        if details.starts_with("WRONGTYPE") || details.starts_with("WRONGKIND") {
            return StoreError::WrongKind {
                key: key.to_owned(),
                operation,
            };
        }
        let url = self.inner.display_url.clone();
        match error.kind() {
            ErrorKind::Timeout => StoreError::Timeout {
                url,
                operation,
                timeout: self.inner.command_timeout,
            },
            ErrorKind::Canceled if !self.inner.connected_once.load(Ordering::Relaxed) => {
                StoreError::Unreachable {
                    url,
                    reason: "not connected yet (call initialize() before using the store)"
                        .to_owned(),
                }
            }
            ErrorKind::Canceled => StoreError::Unreachable {
                url,
                reason: "the connection is down; the client keeps reconnecting".to_owned(),
            },
            ErrorKind::Backpressure => StoreError::Unreachable {
                url,
                reason: "too many commands are waiting for the connection".to_owned(),
            },
            ErrorKind::IO | ErrorKind::Routing => StoreError::Unreachable {
                url,
                reason: describe(error),
            },
            // Between losing the connection and noticing it, fred reports "Failed to route
            // command" and the like: the cause is the connection, not the command.
            _ if !self.inner.client.is_connected() || details.contains("route command") => {
                StoreError::Unreachable {
                    url,
                    reason: "the connection is down; the client keeps reconnecting".to_owned(),
                }
            }
            _ => StoreError::Backend {
                url,
                operation,
                reason: details.to_owned(),
            },
        }
    }
}

/// A client error in words: "connection refused", not "Io(Os { code: 111 })".
pub(super) fn describe(error: &FredError) -> String {
    let details = error.details();
    // An I/O error's details are its Debug form: `Os { code: 111, kind: …, message: "…" }`.
    let details = match details.split_once("message: \"") {
        Some((_, rest)) => rest.split('"').next().unwrap_or(rest),
        None => details.split(" (os error").next().unwrap_or(details),
    };
    let mut chars = details.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", error.kind()).to_lowercase(),
    }
}
