//! The bearer transport (`via: "bearer"`): `Authorization: Bearer <jwt>` on every request,
//! `POST /token` and `POST /refresh` to get one, refresh tokens that rotate on every use.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{routing::get, Json, Router};
//! use crudauth_axum::extract::{BearerOnly, CurrentUser};
//! use crudauth_axum::{BearerTransport, CrudAuth, SessionTransport};
//! use crudauth_core::user::MemoryUsers;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = CrudAuth::builder()
//!     .secret_key(std::env::var("SECRET_KEY")?)
//!     .users(MemoryUsers::new())
//!     // Tried in this order: a request with a session cookie is a session request.
//!     .session_transport(SessionTransport::default())
//!     .bearer_transport(
//!         BearerTransport::default()
//!             .access_ttl(Duration::from_secs(600))
//!             .grantable_scopes(["items:read", "items:write"])
//!             .default_scopes(["items:read"]),
//!     )
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/v1/items", get(|user: CurrentUser<BearerOnly>| async move {
//!         Json(user.user_id().clone())
//!     }))
//!     .merge(auth.router())
//!     .layer(auth.layer());
//! # Ok(()) }
//! ```

mod config;
mod remembered;
mod transport;

pub use config::BearerTransport;
pub(crate) use config::{BearerState, RefreshMode, REFRESH_COOKIE};
pub(crate) use transport::BearerAuth;
