//! The application data kept at the end of a session record (`SessionData::decode`): never a
//! panic, whatever bytes a store holds, at the default bound and at a tiny one.
#![no_main]

use crudauth_core::session::SessionData;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for limit in [4096, 16] {
        let _ = SessionData::decode(data, limit);
    }
});
