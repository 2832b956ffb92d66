//! Bearer token parsing and verification (`BearerTokens::verify_access` / `verify_refresh`).
//! Input starting with byte 0 is a token as sent; otherwise it edits a token this key signed
//! (byte 1: where, the rest: what is written there), so the fuzzer reaches the claim checks
//! behind the signature. Never a panic; an edited token is accepted only unchanged.
#![no_main]

use std::sync::{Arc, OnceLock};

use crudauth_core::jwt::{BearerTokens, TokenConfig};
use crudauth_core::secret::SecretKey;
use crudauth_core::store::MemoryStore;
use crudauth_core::user::{MemoryUsers, NewUser, UserStore};

struct Fixture {
    tokens: BearerTokens,
    signed: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = SecretKey::new([42u8; 32]).expect("a 32-byte key");
        let tokens = BearerTokens::new(&key, Arc::new(MemoryStore::new()), TokenConfig::default())
            .expect("the default token configuration");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let user = runtime
            .block_on(MemoryUsers::new().create(NewUser::new(
                "ada@example.com",
                "ada",
                "$argon2id$x",
            )))
            .expect("a user");
        let signed = tokens
            .access_token(&user, vec!["read".into()])
            .expect("a signed token")
            .expose()
            .to_owned();
        assert!(
            tokens.verify_access(&signed).is_ok(),
            "the fixture token verifies"
        );
        Fixture { tokens, signed }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let token = match data.split_first() {
        None => return,
        Some((0, raw)) => match std::str::from_utf8(raw) {
            Ok(raw) => raw.to_owned(),
            Err(_) => return,
        },
        Some((_, edit)) => {
            let Some((at, with)) = edit.split_first() else {
                return;
            };
            let mut bytes = f.signed.as_bytes().to_vec();
            let at = usize::from(*at) % bytes.len();
            let end = (at + with.len()).min(bytes.len());
            bytes.splice(at..end, with.iter().copied());
            match String::from_utf8(bytes) {
                Ok(token) => token,
                Err(_) => return,
            }
        }
    };
    if f.tokens.verify_access(&token).is_ok() && data.first() != Some(&0) {
        assert_eq!(token, f.signed, "an edited token verified");
    }
    let _ = f.tokens.verify_refresh(&token);
});
