//! `crudauth_axum::fuzzing::form_body`: see its doc for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crudauth_axum::fuzzing::form_body(data));
