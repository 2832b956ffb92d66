//! The plaintext password as its own type, so it cannot be printed by accident.

use std::fmt;

use serde::Deserialize;

/// A password as typed by the user. It has no `Display` and a redacted `Debug`, so it never ends
/// up in a log line or an error message; it can be read from a request body but never written
/// to a response.
///
/// ```
/// use crudauth_core::password::Password;
///
/// let password = Password::new("correct horse battery staple");
/// assert_eq!(format!("{password:?}"), "Password(***)");
/// assert_eq!(password.expose().len(), 28);
/// ```
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a password received from a client.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password as typed, for hashing and policy checks. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Password {
    fn from(password: String) -> Self {
        Self(password)
    }
}

impl From<&str> for Password {
    fn from(password: &str) -> Self {
        Self(password.to_owned())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_serde_reads_a_plain_string() {
        let password: Password = serde_json::from_str("\"hunter2hunter2\"").unwrap();
        assert_eq!(password.expose(), "hunter2hunter2");
        assert!(!format!("{password:?}").contains("hunter2"));
    }
}
