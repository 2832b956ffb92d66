//! The password policy checked when a password is chosen (register, set, change, reset), with
//! crudauth's 422 entry shape.

use serde_json::{json, Value};
use unicode_normalization::UnicodeNormalization;

use super::MAX_PASSWORD_BYTES;

/// What a new password must satisfy: crudauth 0.8's `PasswordPolicy` length rule plus an upper
/// bound.
///
/// * `min_length` counts **characters** (Unicode code points) of the NFKC form, as crudauth
///   does: `"ﬁﬁﬁﬁ"` is four characters typed but eight after NFKC, so it passes a minimum of 8.
///   It should be at least 1.
/// * `max_bytes` counts **UTF-8 bytes** of the password as typed, the same measure the
///   [`Passwords`](super::Passwords) service refuses before hashing, so a password this policy
///   accepts can always be hashed. For ASCII a byte is a character. Keep it at or below
///   [`MAX_PASSWORD_BYTES`]. The 422 message says bytes ("at most N bytes"), so 400 euro signs
///   (1200 bytes) are not told they exceed a limit of characters.
///
/// ```
/// use crudauth_core::password::PasswordPolicy;
///
/// let policy = PasswordPolicy::default();
/// assert!(policy.check("correct horse").is_ok());
/// let violation = policy.check("short").unwrap_err();
/// assert_eq!(violation.to_string(), "String should have at least 8 characters");
/// ```
///
/// With the `password-strength` feature, `min_strength` also refuses guessable passwords: the
/// zxcvbn estimate (0 to 4) of the password, knowing the account's own words (its username and
/// email), must reach it. Any password among the 30,000 most common ones, or built from the
/// account's name, scores at most 1, so `Some(2)` works as a blocklist of those. It is off by
/// default, as in crudauth, whose policy checks length only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (code points of the NFKC form). Default 8.
    pub min_length: usize,
    /// Most UTF-8 bytes of the password as typed. Default 1024 ([`MAX_PASSWORD_BYTES`]).
    pub max_bytes: usize,
    /// The lowest zxcvbn score (0–4) accepted; `None` (the default) skips the estimate.
    #[cfg(feature = "password-strength")]
    pub min_strength: Option<u8>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            max_bytes: MAX_PASSWORD_BYTES,
            #[cfg(feature = "password-strength")]
            min_strength: None,
        }
    }
}

impl PasswordPolicy {
    /// Checks a new password. The length in bytes is checked first, on the input as typed, so an
    /// oversized input is refused before it is normalised.
    pub fn check(&self, password: &str) -> Result<(), PolicyViolation> {
        if password.len() > self.max_bytes {
            return Err(PolicyViolation::TooLong {
                max_length: self.max_bytes,
            });
        }
        // Counting stops at the minimum: only "is it long enough" matters.
        let characters = password.nfkc().take(self.min_length).count();
        if characters < self.min_length {
            return Err(PolicyViolation::TooShort {
                min_length: self.min_length,
            });
        }
        Ok(())
    }

    /// [`Self::check`], then (with the `password-strength` feature and `min_strength` set) the
    /// strength estimate, with `context` (the account's username, email, the app's name) as
    /// words an attacker would try first.
    ///
    /// ```
    /// use crudauth_core::password::PasswordPolicy;
    ///
    /// let policy = PasswordPolicy::default();
    /// assert!(policy.check_for("ada-lovelace", &["ada-lovelace"]).is_ok());
    /// ```
    pub fn check_for(&self, password: &str, context: &[&str]) -> Result<(), PolicyViolation> {
        self.check(password)?;
        #[cfg(feature = "password-strength")]
        if let Some(min_strength) = self.min_strength {
            let words: Vec<String> = context
                .iter()
                .flat_map(|w| w.split(|c: char| !c.is_alphanumeric()))
                .filter(|w| w.chars().count() >= 3)
                .map(str::to_lowercase)
                .collect();
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            let score = u8::from(zxcvbn::zxcvbn(password, &words).score());
            if score < min_strength {
                return Err(PolicyViolation::TooGuessable { min_strength });
            }
        }
        #[cfg(not(feature = "password-strength"))]
        let _ = context;
        Ok(())
    }
}

/// Why a password was refused by a [`PasswordPolicy`]. Its `Display` is crudauth's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// Fewer characters than the policy's `min_length`.
    #[error("String should have at least {min_length} characters")]
    TooShort {
        /// The policy's minimum.
        min_length: usize,
    },
    /// More bytes than the policy's `max_bytes`.
    #[error("String should have at most {max_length} bytes")]
    TooLong {
        /// The policy's maximum (in bytes; see [`PasswordPolicy`]).
        max_length: usize,
    },
    /// Long enough, but easy to guess: a common password or the account's own words.
    #[error("Password is too easy to guess: avoid common passwords and your own name or email")]
    TooGuessable {
        /// The policy's `min_strength`.
        min_strength: u8,
    },
}

impl PolicyViolation {
    /// The entry's `type`: `string_too_short` or `string_too_long`.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyViolation::TooShort { .. } => "string_too_short",
            PolicyViolation::TooLong { .. } => "string_too_long",
            PolicyViolation::TooGuessable { .. } => "password_too_guessable",
        }
    }

    /// The entry's `ctx`: `{"min_length": N}` or `{"max_length": N}`.
    pub fn ctx(&self) -> Value {
        match self {
            PolicyViolation::TooShort { min_length } => json!({ "min_length": min_length }),
            PolicyViolation::TooLong { max_length } => json!({ "max_length": max_length }),
            PolicyViolation::TooGuessable { min_strength } => {
                json!({ "min_strength": min_strength })
            }
        }
    }

    /// One entry of crudauth's 422 `detail` list: `{"type", "loc": ["body", field], "msg", "ctx"}`
    /// (no `input` key, so the password is never echoed back).
    ///
    /// ```
    /// use crudauth_core::password::PasswordPolicy;
    /// use serde_json::json;
    ///
    /// let violation = PasswordPolicy::default().check("short").unwrap_err();
    /// assert_eq!(
    ///     violation.to_json_entry("new_password"),
    ///     json!({
    ///         "type": "string_too_short",
    ///         "loc": ["body", "new_password"],
    ///         "msg": "String should have at least 8 characters",
    ///         "ctx": {"min_length": 8}
    ///     })
    /// );
    /// ```
    pub fn to_json_entry(&self, field: &str) -> Value {
        json!({
            "type": self.kind(),
            "loc": ["body", field],
            "msg": self.to_string(),
            "ctx": self.ctx(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "password-strength")]
    #[test]
    fn guessable_passwords_are_refused_with_a_reason() {
        let policy = PasswordPolicy {
            min_strength: Some(2),
            ..PasswordPolicy::default()
        };
        for common in ["password1234", "iloveyou", "qwertyuiop", "1q2w3e4r5t"] {
            let violation = policy.check_for(common, &[]).unwrap_err();
            assert_eq!(
                violation,
                PolicyViolation::TooGuessable { min_strength: 2 },
                "{common}"
            );
            assert_eq!(violation.kind(), "password_too_guessable");
            assert_eq!(violation.ctx(), json!({"min_strength": 2}));
        }
        // The account's own words count as guessable, the same password for another is fine.
        let own = ["zqxkwvjfyp@example.com", "ghopper"];
        assert!(policy.check_for("zqxkwvjfyp", &own).is_err());
        assert!(policy.check_for("zqxkwvjfyp", &[]).is_ok());
        assert!(policy
            .check_for("correct horse battery staple", &own)
            .is_ok());
        // Length is still checked first, and no minimum means no estimate.
        assert!(matches!(
            policy.check_for("short", &[]),
            Err(PolicyViolation::TooShort { .. })
        ));
        assert!(PasswordPolicy::default()
            .check_for("password1234", &[])
            .is_ok());
    }

    #[test]
    fn too_short_carries_crudauths_entry() {
        let violation = PasswordPolicy::default().check("1234567").unwrap_err();
        assert_eq!(violation, PolicyViolation::TooShort { min_length: 8 });
        assert_eq!(
            violation.to_json_entry("password"),
            json!({
                "type": "string_too_short",
                "loc": ["body", "password"],
                "msg": "String should have at least 8 characters",
                "ctx": {"min_length": 8}
            })
        );
    }

    #[test]
    fn too_long_carries_crudauths_entry_and_counts_bytes() {
        let policy = PasswordPolicy::default();
        assert!(policy.check(&"a".repeat(1024)).is_ok());
        let violation = policy.check(&"a".repeat(1025)).unwrap_err();
        assert_eq!(
            violation.to_json_entry("password"),
            json!({
                "type": "string_too_long",
                "loc": ["body", "password"],
                "msg": "String should have at most 1024 bytes",
                "ctx": {"max_length": 1024}
            })
        );
        // 342 three-byte characters are 1026 bytes: refused although only 342 characters.
        assert_eq!(
            policy.check(&"€".repeat(342)),
            Err(PolicyViolation::TooLong { max_length: 1024 })
        );
    }

    #[test]
    fn length_is_counted_in_characters_of_the_nfkc_form() {
        let policy = PasswordPolicy::default();
        // Eight two-byte characters: 16 bytes but 8 characters, so it passes.
        assert!(policy.check("éééééééé").is_ok());
        // Seven characters (21 bytes) is still too short.
        assert!(policy.check("€€€€€€€").is_err());
        // Four ligatures typed, "fifififi" after NFKC: eight characters (crudauth 0.8.2).
        assert!(policy.check("ﬁﬁﬁﬁ").is_ok());
        // A decomposed "é" (e + combining acute) composes to one character under NFKC.
        assert!(policy.check("e\u{301}e\u{301}e\u{301}e\u{301}").is_err());
    }

    #[test]
    fn custom_bounds_are_reported_in_the_entry() {
        let policy = PasswordPolicy {
            min_length: 15,
            max_bytes: 64,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            policy.check("fourteen chars").unwrap_err().ctx(),
            json!({"min_length": 15})
        );
        assert_eq!(
            policy.check(&"x".repeat(65)).unwrap_err().ctx(),
            json!({"max_length": 64})
        );
    }
}
