//! Shared support for crudauth-rs's end-to-end and conformance tests.
#![allow(missing_docs, clippy::unwrap_used)]

pub mod app;
pub mod http;
