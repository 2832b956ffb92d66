//! # crudauth-sqlx
//!
//! crudauth-rs's [`UserStore`](crudauth_core::user::UserStore) over sqlx: SQLite (the embedded
//! default) and PostgreSQL, on crudauth's own `users` table or on an existing table through a
//! [`ColumnMap`].
//!
//! ```
//! use crudauth_core::user::{NewUser, UserStore};
//! use crudauth_sqlx::{ColumnMap, SqlxUsers};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // crudauth's default table, created if missing (a crudauth-made database is used as it is).
//! let users = SqlxUsers::connect("sqlite::memory:").await?;
//! users.create_default_table().await?;
//! let ada = users.create(NewUser::new("Ada@Example.com", "ada", "$argon2id$v=19$...")).await?;
//! assert_eq!(ada.email.as_deref(), Some("ada@example.com"));
//!
//! // An existing table with other names, and no superuser column.
//! let accounts = SqlxUsers::connect("sqlite::memory:").await?.with_columns(
//!     ColumnMap::new()
//!         .table("accounts")
//!         .column("hashed_password", "pw_hash")
//!         .without("is_superuser"),
//! )?;
//! # let _ = accounts;
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
//!
//! Emails are stored and matched canonical (trimmed, lower-case), user names exactly. Ids from
//! tokens and sessions are coerced to the integer key (`"12"` finds user 12, `"abc"` finds
//! nobody). A taken email or user name is [`UserStoreError::Duplicate`] naming the field; a
//! database that cannot be reached is [`UserStoreError::Unavailable`] with a message that says
//! which and why.
//!
//! [`UserStoreError::Duplicate`]: crudauth_core::user::UserStoreError::Duplicate
//! [`UserStoreError::Unavailable`]: crudauth_core::user::UserStoreError::Unavailable
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod change;
mod columns;
mod error;
mod sql;
mod store;

pub use columns::ColumnMap;
pub use error::SetupError;
pub use sql::Dialect;
pub use store::SqlxUsers;
