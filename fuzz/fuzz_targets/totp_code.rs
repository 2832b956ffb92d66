//! The TOTP code normaliser: a code kept is six ASCII digits, and normalising it again keeps it.
#![no_main]

use crudauth_core::mfa::totp;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(code) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(kept) = totp::normalise(code) {
        assert!(
            kept.len() == 6 && kept.bytes().all(|b| b.is_ascii_digit()),
            "{kept:?}"
        );
        assert_eq!(totp::normalise(&kept).as_deref(), Some(kept.as_str()));
    }
});
