//! The session record decoder (`SessionRecord::from_bytes`), fed what a store could hold: a
//! record that decodes encodes back to bytes that decode to the same record.
#![no_main]

use crudauth_core::session::SessionRecord;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(record) = SessionRecord::from_bytes(data) {
        let again =
            SessionRecord::from_bytes(&record.to_bytes()).expect("re-encoded record decodes");
        assert!(again == record, "a record changed in a round trip");
    }
});
