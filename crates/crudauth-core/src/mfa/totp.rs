//! TOTP (RFC 6238) as crudauth uses it: HMAC-SHA1, 6 digits, 30-second steps, one step of
//! drift either way; codes computed by `totp-rs`, compared here.
//!
//! ```
//! use crudauth_core::mfa::totp::{otpauth_uri, TotpSecret};
//!
//! let secret = TotpSecret::generate();
//! assert_eq!(secret.base32().len(), 32);
//! let now = 1_800_000_000;
//! let code = secret.code_at(now);
//! // The code of this step, or of the one before or after it, is accepted, naming its step.
//! assert_eq!(secret.verify(&code, now), Some(now / 30));
//! assert_eq!(secret.verify(&code, now + 30), Some(now / 30));
//! assert_eq!(secret.verify(&code, now + 90), None);
//! let uri = otpauth_uri("Acme", "ada@example.com", &secret);
//! assert!(uri.starts_with("otpauth://totp/Acme%3Aada%40example.com?secret="));
//! ```

use std::fmt;

use rand::RngCore;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;

/// A TOTP secret: 20 random bytes, shown to the user once as 32 base32 characters. No
/// `Display`; `Debug` is redacted.
#[derive(Clone)]
pub struct TotpSecret {
    base32: String,
    totp: TOTP,
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(***)")
    }
}

impl PartialEq for TotpSecret {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.base32.as_bytes().ct_eq(other.base32.as_bytes()))
    }
}

impl TotpSecret {
    /// A fresh secret of 160 random bits (RFC 4226's recommendation, crudauth's size).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 20];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let base32 = match Secret::Raw(bytes.to_vec()).to_encoded() {
            Secret::Encoded(text) => text,
            Secret::Raw(_) => String::new(),
        };
        Self::from_parts(base32, bytes.to_vec())
    }

    /// A secret from its base32 text (as crudauth stores it inside the sealed column);
    /// `None` when it is not base32 or shorter than 80 bits.
    pub fn parse(base32: &str) -> Option<Self> {
        let text = base32.trim().to_ascii_uppercase();
        let bytes = Secret::Encoded(text.clone()).to_bytes().ok()?;
        (bytes.len() >= 10).then(|| Self::from_parts(text, bytes))
    }

    fn from_parts(base32: String, bytes: Vec<u8>) -> Self {
        let totp = TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 1, STEP_SECONDS, bytes);
        Self { base32, totp }
    }

    /// The secret as the user types it into an authenticator (and as it is sealed). Never log
    /// it.
    pub fn base32(&self) -> &str {
        &self.base32
    }

    /// The code for the step that `unix_seconds` falls in.
    pub fn code_at(&self, unix_seconds: u64) -> String {
        self.totp.generate(unix_seconds)
    }

    /// The step `code` belongs to, if it is the code of the step `unix_seconds` falls in or of
    /// the step before or after it. Every candidate is computed and compared in constant time
    /// (no early exit), and when several match the latest wins. The code is normalised as
    /// crudauth does (spaces removed) and must then be exactly six ASCII digits.
    pub fn verify(&self, code: &str, unix_seconds: u64) -> Option<u64> {
        let code = normalise(code)?;
        let current = unix_seconds / STEP_SECONDS;
        let candidates = (current.saturating_sub(1)..=current.saturating_add(1))
            .map(|step| (step, self.totp.generate(step * STEP_SECONDS)));
        latest_match(&code, candidates)
    }
}

/// The latest step whose candidate code equals `code`, every candidate compared in constant
/// time (no early exit); candidates come in ascending step order.
fn latest_match(code: &str, candidates: impl Iterator<Item = (u64, String)>) -> Option<u64> {
    let mut matched = None;
    for (step, candidate) in candidates {
        if bool::from(candidate.as_bytes().ct_eq(code.as_bytes())) {
            matched = Some(step);
        }
    }
    matched
}

/// A typed code without its spaces, if it is then six ASCII digits (crudauth's rule: only
/// spaces are dropped).
pub fn normalise(code: &str) -> Option<String> {
    let code: String = code.chars().filter(|c| *c != ' ').collect();
    (code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// crudauth's provisioning URI: `otpauth://totp/{issuer:account}?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`,
/// the label and the issuer percent-encoded as Python's `urllib.parse.quote` does with no safe
/// characters (`:` and `@` encoded too; letters, digits and `_.-~` left).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &TotpSecret) -> String {
    format!(
        "otpauth://totp/{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        quote(&format!("{issuer}:{account}")),
        secret.base32(),
        quote(issuer),
    )
}

/// Percent-encodes every byte but `A–Z a–z 0–9 _ . - ~`.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 secret, "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_parts(
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".into(),
            b"12345678901234567890".to_vec(),
        )
    }

    #[test]
    fn codes_match_rfc_6238_appendix_b() {
        // The RFC's 8-digit values, of which a 6-digit code is the last six.
        for (time, code) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(rfc_secret().code_at(time), code[2..], "at {time}");
        }
        let parsed = TotpSecret::parse("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(parsed, rfc_secret());
        assert_eq!(parsed.code_at(59), "287082");
    }

    #[test]
    fn one_step_of_drift_either_way_and_no_more() {
        let s = rfc_secret();
        let t = 1_800_000_015;
        let step = t / 30;
        let code = s.code_at(t);
        assert_eq!(s.verify(&code, t), Some(step));
        assert_eq!(s.verify(&code, t - 30), Some(step), "the next step");
        assert_eq!(s.verify(&code, t + 30), Some(step), "the previous step");
        assert_eq!(s.verify(&code, t + 60), None);
        assert_eq!(s.verify(&code, t - 60), None);
        assert_eq!(s.verify(" 28 7082 ", 59), Some(1), "spaces are ignored");
        for bad in [
            "",
            "28708",
            "2870822",
            "28708a",
            "２８７０８２",
            "-28708",
            "287\t082",
        ] {
            assert_eq!(s.verify(bad, 59), None, "{bad:?}");
        }
        // At the epoch there is no earlier step; nothing underflows.
        assert_eq!(s.verify(&s.code_at(0), 0), Some(0));
    }

    #[test]
    fn the_latest_matching_step_wins() {
        fn candidates(codes: [&str; 3]) -> impl Iterator<Item = (u64, String)> + '_ {
            codes
                .into_iter()
                .enumerate()
                .map(|(i, c)| (10 + i as u64, c.to_owned()))
        }
        assert_eq!(
            latest_match("111111", candidates(["111111", "222222", "111111"])),
            Some(12)
        );
        assert_eq!(
            latest_match("111111", candidates(["111111", "111111", "333333"])),
            Some(11)
        );
        assert_eq!(
            latest_match("222222", candidates(["111111", "222222", "333333"])),
            Some(11)
        );
        assert_eq!(
            latest_match("444444", candidates(["111111", "222222", "333333"])),
            None
        );
    }

    #[test]
    fn secrets_are_160_bits_of_base32_and_redacted() {
        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_eq!(a.base32().len(), 32);
        assert!(a
            .base32()
            .bytes()
            .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)));
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "TotpSecret(***)");
        assert_eq!(TotpSecret::parse(&a.base32().to_lowercase()), Some(a));
        assert!(TotpSecret::parse("not base32!").is_none());
        assert!(TotpSecret::parse("GEZA").is_none(), "too short");
    }

    #[test]
    fn the_uri_is_crudauths() {
        let uri = otpauth_uri("My App", "ada@example.com", &rfc_secret());
        assert_eq!(
            uri,
            "otpauth://totp/My%20App%3Aada%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=My%20App&algorithm=SHA1&digits=6&period=30"
        );
    }
}
