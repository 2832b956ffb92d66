//! `crudauth_axum::fuzzing::cookie_header`: see its doc for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crudauth_axum::fuzzing::cookie_header(data));
