//! An OpenID provider's discovery document, parsed and checked as at start-up, with and
//! without a client secret: never a panic, and a document naming another issuer is refused.
#![no_main]

use crudauth_core::oauth::check_discovery_document;

const ISSUER: &str = "https://issuer.example";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let accepted = check_discovery_document(ISSUER, true, data).is_ok();
    let _ = check_discovery_document(ISSUER, false, data);
    if accepted {
        assert!(check_discovery_document("https://other.example", true, data).is_err());
    }
});
