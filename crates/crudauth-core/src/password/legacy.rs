//! crudauth's own hashes: bcrypt over `base64(SHA-256(UTF-8(password)))`, verified so that
//! accounts made by crudauth can sign in (and are then rehashed to argon2id).

use base64::Engine as _;
use sha2::{Digest, Sha256};

// crudauth writes cost 12; a higher cost is accepted up to this bound, past which a stored hash
// is treated as malformed (cost 31 would take days to check).
const MAX_BCRYPT_COST: u32 = 16;

/// crudauth's pre-hash: standard base64, with padding, of the SHA-256 of the UTF-8 bytes.
/// Always 44 ASCII bytes, so bcrypt's 72-byte truncation never applies.
pub(crate) fn crudauth_prehash(password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(password.as_bytes()))
}

/// A stored crudauth bcrypt hash: `$2b$` (also `$2a$`, `$2y$`), a two-digit cost in bounds, and
/// 53 characters of salt and hash.
pub(crate) struct StoredBcrypt<'a>(&'a str);

impl<'a> StoredBcrypt<'a> {
    pub(crate) fn parse(stored: &'a str) -> Option<Self> {
        let rest = stored
            .strip_prefix("$2b$")
            .or_else(|| stored.strip_prefix("$2a$"))
            .or_else(|| stored.strip_prefix("$2y$"))?;
        let (cost, salt_and_hash) = rest.split_at_checked(2)?;
        let cost: u32 = cost.parse().ok()?;
        let well_formed = (4..=MAX_BCRYPT_COST).contains(&cost)
            && salt_and_hash.len() == 54
            && salt_and_hash.starts_with('$');
        well_formed.then_some(Self(stored))
    }

    /// Whether `password` (through crudauth's pre-hash) produces this hash. Any decoding error
    /// is a non-match.
    pub(crate) fn verify(&self, password: &str) -> bool {
        bcrypt::verify(crudauth_prehash(password), self.0).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prehash_is_padded_standard_base64_of_sha256() {
        // Pinned by Python: base64.b64encode(hashlib.sha256(b"correct horse").digest())
        assert_eq!(
            crudauth_prehash("correct horse"),
            "QQTTb42iwlQ0n4WDZ5Pr4CngyVcGOjTJHC6SAxh7VjE="
        );
        assert_eq!(crudauth_prehash("").len(), 44);
    }

    #[test]
    fn only_bcrypt_shapes_within_bounds_parse() {
        let good = "$2b$12$ssNLc7oeSVdlbTzwEaxLburcivvV6dMm9hHZVWMGj6H70AdB.6cb2";
        assert!(StoredBcrypt::parse(good).is_some());
        assert!(StoredBcrypt::parse(&good.replace("$2b$", "$2a$")).is_some());
        assert!(StoredBcrypt::parse(&good.replace("$2b$", "$2y$")).is_some());
        assert!(StoredBcrypt::parse(&good.replace("$2b$", "$2x$")).is_none());
        assert!(StoredBcrypt::parse(&good.replace("$12$", "$31$")).is_none());
        assert!(StoredBcrypt::parse(&good.replace("$12$", "$03$")).is_none());
        assert!(StoredBcrypt::parse(&good[..59]).is_none());
        assert!(StoredBcrypt::parse("$2b$").is_none());
        assert!(StoredBcrypt::parse("$2b$1é").is_none());
    }
}
