//! The recovery-code normaliser: no spaces or dashes are left, and a normalised code is its own
//! normal form (so its digest is stable).
#![no_main]

use crudauth_core::mfa::recovery;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(code) = std::str::from_utf8(data) else {
        return;
    };
    let once = recovery::normalise(code);
    assert!(!once.contains([' ', '-']), "{once:?}");
    assert_eq!(
        recovery::normalise(&once),
        once,
        "not idempotent for {code:?}"
    );
});
