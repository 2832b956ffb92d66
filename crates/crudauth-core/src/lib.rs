//! # crudauth-core
//!
//! The framework-agnostic heart of crudauth-rs: the **Store** and **RateLimiter** ports with
//! their memory and Redis backends, and (built on them) sessions, CSRF, single-use tokens,
//! passwords and users. It knows nothing of HTTP frameworks; `crudauth-axum` is the axum face.
//!
//! ```
//! use std::time::Duration;
//! use crudauth_core::limit::{Budget, MemoryRateLimiter, RateLimiter};
//! use crudauth_core::store::{MemoryStore, Store};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let visits = store.incr("c:visits", 1, Duration::from_secs(60)).await?;
//! assert_eq!(visits, 1);
//!
//! let limiter = MemoryRateLimiter::new();
//! let decision = limiter.hit("q:register:203.0.113.7", Budget::new(5, Duration::from_secs(3600))).await?;
//! assert_eq!(decision.remaining, 4);
//! # Ok::<(), crudauth_core::StoreError>(()) }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod changes;
pub mod clock;
pub mod csrf;
pub mod delivery;
pub mod device;
pub mod email;
pub mod error;
pub mod hooks;
pub mod jwt;
pub mod lifespan;
pub mod limit;
pub mod mfa;
#[cfg(feature = "oauth")]
pub mod oauth;
pub mod password;
pub mod principal;
pub mod secret;
pub mod session;
mod shard;
pub mod store;
pub mod token;
pub mod user;

pub use error::{StoreError, StoreResult};
