//! The test harness of crudauth-rs: real backends for the end-to-end and conformance tests.
//!
//! ```no_run
//! // A store conformance subject on the test Redis, in a namespace of its own:
//! # async fn example() {
//! let subject = crudauth_tests::redis::standalone_store().await;
//! # }
//! // A redis-server of the test's own, to kill and restart:
//! let mut server = crudauth_tests::server::RedisServer::start(&[]);
//! server.kill();
//! server.restart();
//! ```
#![allow(missing_docs, clippy::unwrap_used)]

pub mod app;
pub mod http;
pub mod logs;
pub mod mock_idp;
pub mod redis;
pub mod server;
pub mod users;

/// One `#[tokio::test]` per case, for one backend: each case is an `async fn(Backend)` in the
/// parent module. Call it inside `mod memory { … }` / `mod redis { … }`.
#[macro_export]
macro_rules! per_backend {
    ($backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case($backend).await;
            }
        )*
    };
}

/// The user guide (`docs/src/`), one item per page, so that `cargo test` compiles and runs every
/// Rust block in it as a doctest and an example that drifts from the API fails the build.
#[cfg(doctest)]
pub mod guide {
    macro_rules! pages {
        ($($page:ident => $file:literal),* $(,)?) => {
            $(
                #[doc = include_str!(concat!("../../docs/src/", $file))]
                pub struct $page;
            )*
        };
    }

    pages! {
        GettingStarted => "getting-started.md",
        Sessions => "sessions.md",
        Layers => "layers.md",
        Forms => "forms.md",
        Bearer => "bearer.md",
        Users => "users.md",
        Storage => "storage.md",
        Passwords => "passwords.md",
        RateLimiting => "rate-limiting.md",
        Recovery => "recovery.md",
        Delivery => "delivery.md",
        Sudo => "sudo.md",
        Hooks => "hooks.md",
        TwoFactor => "two-factor.md",
        OAuth => "oauth.md",
        Performance => "performance.md",
        Security => "security.md",
        Migrating => "migrating.md",
        OpenApi => "openapi.md",
    }
}
