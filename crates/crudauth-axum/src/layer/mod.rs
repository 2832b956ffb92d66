//! Tower layers: [`AuthLayer`] (`auth.layer()`: crudauth for its extractors, composed with
//! the [`SessionLayer`] and [`CsrfLayer`] the configuration asks for, each also usable alone)
//! and [`RateLimitLayer`] (per-route rate limits; see [`rate_limit`]).
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::post, Router};
//! use crudauth_axum::{CrudAuth, RateLimit, SessionTransport};
//! use crudauth_core::user::MemoryUsers;
//!
//! # fn main() -> Result<(), crudauth_axum::ConfigError> {
//! let auth = CrudAuth::builder()
//!     .secret_key([7u8; 32])
//!     .users(MemoryUsers::new())
//!     .session_transport(SessionTransport::default())
//!     .build()?;
//! let layer = auth.rate_limit("contact", RateLimit::new(5, Duration::from_secs(60)));
//! let app: Router = Router::new()
//!     .route("/contact", post(|| async { "sent" }).route_layer(layer))
//!     .layer(auth.layer());
//! # Ok(()) }
//! ```

mod auth;
pub mod csrf;
pub mod rate_limit;

pub use auth::{AuthFuture, AuthLayer, AuthService, CsrfLayer, SessionLayer};
pub(crate) use auth::{Outcome, RequestAuth};
pub use rate_limit::{KeyBy, RateLimit, RateLimitLayer, RateLimitService};
