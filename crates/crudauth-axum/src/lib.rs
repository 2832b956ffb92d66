//! # crudauth-axum
//!
//! Batteries-included authentication for axum: cookie sessions with CSRF, bearer tokens,
//! escalating login lockout, rate limits, device management — over your own user table, with
//! state shared between workers through Redis (or kept in memory for development).
//!
//! ```no_run
//! use axum::{routing::get, Json, Router};
//! use crudauth_axum::{extract::CurrentUser, CrudAuth, SessionTransport};
//! use crudauth_core::user::MemoryUsers;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = CrudAuth::builder()
//!     .secret_key(std::env::var("SECRET_KEY")?)
//!     .users(MemoryUsers::new())
//!     .session_transport(SessionTransport::default())
//!     .build()?;
//! let guard = auth.initialize().await?;
//! let app = Router::new()
//!     .route("/dashboard", get(|user: CurrentUser| async move { Json(user.user_id().clone()) }))
//!     .merge(auth.router())
//!     .layer(auth.layer());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! guard.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Where things are
//!
//! Each concern keeps its part of `impl CrudAuth` in its own module: `builder` (configuration
//! and its checks), `config` (the transports, email, the errors), `state` (the shared state and
//! its accessors), `lifespan` (`initialize`, shutdown), `transport` (reading a request's
//! credentials), `lockout`, `revocation`, `recovery` (emails and one-time tokens), and under
//! `routes` the HTTP surface with the work behind it (`account`, `session`, `bearer`, `mfa`,
//! `sudo`, `oauth`). The tower layers are in [`layer`], the extractors in [`extract`], and
//! the functions pages call in [`actions`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod actions;
mod bearer;
mod body;
mod builder;
pub mod client_ip;
mod config;
mod cookies;
mod email_address;
mod error;
pub mod extract;
mod failure_log;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod layer;
mod lifespan;
mod lockout;
#[cfg(feature = "openapi")]
pub mod openapi;
mod recovery;
mod revocation;
mod routes;
mod session;
mod state;
mod transport;

pub use bearer::BearerTransport;
pub use builder::CrudAuthBuilder;
pub use config::{ConfigError, EmailConfig, InitError, SessionTransport};
pub use cookies::CookieConfig;
pub use crudauth_core::limit::{LockoutConfig, OnLoginSuccess};
pub use crudauth_core::principal::Principal;
pub use error::AuthError;
pub use layer::{
    AuthLayer, AuthService, CsrfLayer, KeyBy, RateLimit, RateLimitLayer, SessionLayer,
};
pub use lifespan::LifespanGuard;
#[cfg(feature = "oauth")]
pub use routes::OAuthResponseMode;
pub use routes::{Elevated, Reauth, SudoConfig};
pub use state::CrudAuth;
pub use transport::Transport;
