//! Recovery codes as crudauth makes them: ten by default, each four groups of four symbols
//! from a 31-symbol alphabet with no look-alikes (about 79 bits), shown once and stored as the
//! SHA-256 digests of their normalised form, in a JSON array.
//!
//! ```
//! use crudauth_core::mfa::recovery::{digests_json, generate, redeem};
//!
//! let codes = generate(10);
//! let stored = digests_json(&codes);
//! // Any case, spaces or no dashes: the same code.
//! let typed = codes[3].to_uppercase().replace('-', " ");
//! let left = redeem(&stored, &typed).expect("a code of the set");
//! assert!(redeem(&left, &typed).is_none(), "each code works once");
//! ```

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The symbols of a code: no `i`, `l`, `o`, `0` or `1`.
pub const ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";
const GROUPS: usize = 4;
const GROUP_LEN: usize = 4;

/// `n` fresh codes, `xxxx-xxxx-xxxx-xxxx`, from the operating system's generator.
pub fn generate(n: usize) -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| {
            let groups: Vec<String> = (0..GROUPS)
                .map(|_| {
                    (0..GROUP_LEN)
                        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                        .collect()
                })
                .collect();
            groups.join("-")
        })
        .collect()
}

/// A typed code as it is hashed: lower case, without spaces or dashes (crudauth's rule).
pub fn normalise(code: &str) -> String {
    code.chars()
        .flat_map(char::to_lowercase)
        .filter(|c| *c != ' ' && *c != '-')
        .collect()
}

/// The stored digest of a code: lower-case hex SHA-256 of its normalised form.
pub fn digest(code: &str) -> String {
    crate::secret::sha256_hex(normalise(code).as_bytes())
}

/// The JSON array of the digests of `codes`, as the `mfa_recovery_codes` column holds it.
pub fn digests_json(codes: &[String]) -> String {
    let digests: Vec<String> = codes.iter().map(|c| digest(c)).collect();
    serde_json::to_string(&digests).unwrap_or_else(|_| "[]".to_owned())
}

/// How many unused codes a stored column holds (0 for none or for a column that is not a JSON
/// array).
pub fn remaining(stored: Option<&str>) -> usize {
    stored.map_or(0, |s| parse(s).len())
}

fn parse(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_default()
}

/// If `code` is one of the stored set: the set without it (to be written back by
/// compare-and-set). The typed code's digest is compared with every stored digest in constant
/// time, with no early exit.
pub fn redeem(stored: &str, code: &str) -> Option<String> {
    let typed = Sha256::digest(normalise(code).as_bytes());
    let typed = crate::secret::hex(&typed);
    let digests = parse(stored);
    let mut found = None;
    for (i, d) in digests.iter().enumerate() {
        if bool::from(d.as_bytes().ct_eq(typed.as_bytes())) && found.is_none() {
            found = Some(i);
        }
    }
    let i = found?;
    let mut left = digests;
    left.remove(i);
    serde_json::to_string(&left).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_crudauths_shape() {
        let codes = generate(10);
        assert_eq!(codes.len(), 10);
        for code in &codes {
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 4, "{code}");
            assert!(groups.iter().all(|g| g.len() == 4), "{code}");
            assert!(code
                .bytes()
                .filter(|b| *b != b'-')
                .all(|b| ALPHABET.contains(&b)));
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        // 16 symbols of 31: more than 64 bits (NIST's floor for saved recovery codes).
        assert!(16.0 * (31f64).log2() > 79.0);
    }

    #[test]
    fn codes_are_stored_as_digests_and_work_once() {
        let codes = generate(3);
        let stored = digests_json(&codes);
        for code in &codes {
            assert!(
                !stored.contains(code.as_str()),
                "no code is stored as it is"
            );
            assert!(!stored.contains(&normalise(code)));
        }
        assert_eq!(remaining(Some(&stored)), 3);
        let left = redeem(&stored, &format!("  {}  ", codes[1].to_uppercase())).unwrap();
        assert_eq!(remaining(Some(&left)), 2);
        assert!(redeem(&left, &codes[1]).is_none(), "used");
        let left = redeem(&left, &codes[0].replace('-', "")).unwrap();
        let left = redeem(&left, &codes[2]).unwrap();
        assert_eq!(left, "[]");
        assert!(redeem(&stored, "aaaa-aaaa-aaaa-aaaa").is_none());
        assert!(redeem("not json", &codes[0]).is_none());
        assert_eq!(remaining(None), 0);
        assert_eq!(
            digest("ABCD-efgh jkmn-PQRS"),
            crate::secret::sha256_hex(b"abcdefghjkmnpqrs")
        );
    }
}
