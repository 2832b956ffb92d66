//! argon2id hashes in PHC form: make one, check one, tell whether one is current.

use argon2::password_hash::{PasswordHash as Phc, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;

/// The OWASP password-storage setting: m = 19 MiB (19456 KiB), t = 2, p = 1.
pub(crate) const OWASP: Params = Params::DEFAULT;

/// Tiny costs for tests: m = 64 KiB, t = 1, p = 1 (checked at compile time).
pub(crate) const FAST_FOR_TESTS: Params = match Params::new(64, 1, 1, None) {
    Ok(params) => params,
    Err(_) => panic!("64 KiB, t = 1, p = 1 are valid argon2 parameters"),
};

// A stored hash asking for more than this is refused rather than verified: a corrupted or planted
// row must not make one login allocate gigabytes or run for minutes.
const MAX_STORED_M_KIB: u32 = 256 * 1024;
const MAX_STORED_T: u32 = 16;
const MAX_STORED_P: u32 = 16;

/// Hashes new passwords with argon2id at the configured costs.
#[derive(Clone, Debug)]
pub(crate) struct Argon2idHasher {
    params: Params,
}

impl Argon2idHasher {
    pub(crate) fn new(params: Params) -> Self {
        Self { params }
    }

    pub(crate) fn params(&self) -> &Params {
        &self.params
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) with a fresh 128-bit salt.
    pub(crate) fn hash(&self, password: &str) -> Result<String, argon2::password_hash::Error> {
        let salt = SaltString::generate(&mut OsRng);
        let context = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        Ok(context
            .hash_password(password.as_bytes(), &salt)?
            .to_string())
    }
}

/// A stored argon2 hash that parsed and whose costs are within bounds.
pub(crate) struct StoredArgon2<'a> {
    phc: Phc<'a>,
    algorithm: Algorithm,
    params: Params,
}

impl<'a> StoredArgon2<'a> {
    /// `None` unless `stored` is a well-formed argon2 (id, i or d) PHC string with a salt, an
    /// output and costs a login can afford.
    pub(crate) fn parse(stored: &'a str) -> Option<Self> {
        let phc = Phc::new(stored).ok()?;
        let algorithm = Algorithm::try_from(phc.algorithm).ok()?;
        let params = Params::try_from(&phc).ok()?;
        let affordable = params.m_cost() <= MAX_STORED_M_KIB
            && params.t_cost() <= MAX_STORED_T
            && params.p_cost() <= MAX_STORED_P;
        (affordable && phc.salt.is_some() && phc.hash.is_some()).then_some(Self {
            phc,
            algorithm,
            params,
        })
    }

    /// Whether `password` produces this hash (constant-time comparison of the outputs).
    pub(crate) fn verify(&self, password: &str) -> bool {
        // The algorithm, version and costs come from the stored hash itself.
        Argon2::default()
            .verify_password(password.as_bytes(), &self.phc)
            .is_ok()
    }

    /// Whether this hash was made as `hasher` makes hashes today: argon2id, version 0x13, and
    /// the same m, t and p. Anything else (weaker or stronger) is rehashed at the next login, so
    /// the configured costs are the policy.
    pub(crate) fn is_current(&self, hasher: &Argon2idHasher) -> bool {
        let now = hasher.params();
        self.algorithm == Algorithm::Argon2id
            && self.phc.version == Some(Version::V0x13.into())
            && self.params.m_cost() == now.m_cost()
            && self.params.t_cost() == now.t_cost()
            && self.params.p_cost() == now.p_cost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owasp_params_are_the_documented_ones() {
        assert_eq!(
            (OWASP.m_cost(), OWASP.t_cost(), OWASP.p_cost()),
            (19456, 2, 1)
        );
    }

    #[test]
    fn hash_is_a_phc_string_that_verifies_and_is_current() {
        let hasher = Argon2idHasher::new(FAST_FOR_TESTS);
        let hash = hasher.hash("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        let stored = StoredArgon2::parse(&hash).unwrap();
        assert!(stored.verify("correct horse"));
        assert!(!stored.verify("correct horsf"));
        assert!(stored.is_current(&hasher));
        let stronger = Argon2idHasher::new(Params::new(128, 1, 1, None).unwrap());
        assert!(!stored.is_current(&stronger));
    }

    #[test]
    fn argon2i_and_oversized_costs_are_recognised_as_such() {
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, FAST_FOR_TESTS)
            .hash_password(b"pw", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        let stored = StoredArgon2::parse(&argon2i).unwrap();
        assert!(stored.verify("pw"));
        assert!(!stored.is_current(&Argon2idHasher::new(FAST_FOR_TESTS)));

        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                    AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(StoredArgon2::parse(huge).is_none());
        // The same string with an affordable m parses, so it is the cost that was refused.
        assert!(StoredArgon2::parse(&huge.replace("m=4194304", "m=64")).is_some());
        assert!(StoredArgon2::parse("$argon2id$v=19$m=64,t=1,p=1").is_none());
        assert!(StoredArgon2::parse("$argon2id$garbage").is_none());
    }
}
