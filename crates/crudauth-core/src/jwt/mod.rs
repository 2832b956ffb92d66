//! Bearer tokens: HS256 access tokens in crudauth's wire format, and refresh tokens that rotate
//! on every use, with reuse detection and family revocation.
//!
//! ```
//! use std::sync::Arc;
//! use crudauth_core::jwt::{BearerTokens, RefreshError, TokenConfig};
//! use crudauth_core::secret::SecretKey;
//! use crudauth_core::store::MemoryStore;
//! use crudauth_core::user::{MemoryUsers, NewUser, UserStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let users = MemoryUsers::new();
//! let ada = users.create(NewUser::new("ada@example.com", "ada", "$argon2id$...")).await.unwrap();
//! let key = SecretKey::new([7u8; 32]).unwrap();
//! let tokens = BearerTokens::new(&key, Arc::new(MemoryStore::new()), TokenConfig::default()).unwrap();
//!
//! let first = tokens.issue(&ada, &[]).await.unwrap();
//! let claims = tokens.verify_access(first.access_token.expose()).unwrap();
//! assert_eq!(claims.sub, ada.id.to_string());
//!
//! // A refresh answers a new pair and spends the old refresh token…
//! let second = tokens.refresh(first.refresh_token.expose(), &users).await.unwrap();
//! // …so presenting the old one again is reuse: refused, and the whole family revoked.
//! let reuse = tokens.refresh(first.refresh_token.expose(), &users).await;
//! assert!(matches!(reuse, Err(RefreshError::Reused)));
//! let newest = tokens.refresh(second.refresh_token.expose(), &users).await;
//! assert!(matches!(newest, Err(RefreshError::Invalid)));
//! # });
//! ```

mod codec;
mod config;
mod tokens;

pub use codec::{AccessToken, Claims, RefreshToken, SignError, TokenRejected, TokenType};
pub use config::{
    TokenConfig, TokenConfigError, DEFAULT_AUDIENCE, DEFAULT_ISSUER, MAX_REUSE_GRACE,
};
pub use tokens::{BearerTokens, IssuedTokens, RefreshError, TokenError};
