//! Per-route rate limits: a tower layer over the shared [`RateLimiter`], in memory or on Redis.
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::{get, post}, Json, Router};
//! use crudauth_axum::{CrudAuth, KeyBy, RateLimit, SessionTransport};
//! use crudauth_core::user::MemoryUsers;
//!
//! # fn main() -> Result<(), crudauth_axum::ConfigError> {
//! let auth = CrudAuth::builder()
//!     .secret_key([7u8; 32])
//!     .users(MemoryUsers::new())
//!     .session_transport(SessionTransport::default())
//!     .build()?;
//! let minute = Duration::from_secs(60);
//! let app: Router = Router::new()
//!     // 5 per minute per client address.
//!     .route("/contact", post(|| async { Json(serde_json::json!({"sent": true})) })
//!         .route_layer(auth.rate_limit("contact", RateLimit::new(5, minute))))
//!     // 100 per hour per signed-in user (anonymous callers get 401 first).
//!     .route("/export", get(|| async { "csv" })
//!         .route_layer(auth.rate_limit("export", RateLimit::new(100, 60 * minute).key(KeyBy::User))))
//!     .merge(auth.router())
//!     .layer(auth.layer());
//! # Ok(()) }
//! ```
//!
//! What a limited route answers:
//!
//! - every response it lets through carries `X-RateLimit-Limit` (the budget) and
//!   `X-RateLimit-Remaining` (requests left now), handler errors included;
//! - over budget: **429** `{"detail": "Too many requests. Try again later."}` with `Retry-After`
//!   (whole seconds, rounded up), `X-RateLimit-Limit` and `X-RateLimit-Remaining: 0`; the
//!   handler does not run;
//! - with [`KeyBy::User`] and no signed-in user: **401** `{"detail": "Not authenticated"}`
//!   before anything is counted, without the headers;
//! - when the limiter fails (Redis down): **503** `{"detail": "Authentication service
//!   unavailable"}` (fail closed), or, for a limit made with [`RateLimit::fail_open`], the
//!   request goes through and the headers show the whole budget;
//! - a budget of 0 is off: nothing is counted, no headers.
//!
//! Budgets are GCRA (see [`crudauth_core::limit`]): a burst of `times`, then one request
//! every `period / times`; refused requests use up nothing. Counters are keyed
//! `q:{action}:{caller}` under the store's namespace, so routes sharing an action share one
//! budget per caller. A counted route costs one limiter round trip; a route without a limit
//! costs nothing.
//!
//! [`RateLimiter`]: crudauth_core::limit::RateLimiter

mod budgets;
mod config;
mod count;
mod service;

pub(crate) use budgets::{limited, BuiltinLimits};
pub use config::{AsyncKeyFn, KeyBy, KeyFn, KeyFuture, RateLimit};
pub(crate) use count::{report, Counted};
pub use service::{RateLimitLayer, RateLimitService, ResponseFuture};
