//! The UserStore conformance suite on every user store: memory, SQLite (a file per test),
//! PostgreSQL (a schema per test), and both SQL dialects on a column-mapped table; then the
//! column map's graceful degradation, and a users table exactly as crudauth (SQLAlchemy) makes
//! it on SQLite.
//!
//! PostgreSQL is at `postgres://postgres@127.0.0.1:5432/test` unless
//! `CRUDAUTH_TEST_POSTGRES_URL` says otherwise. Without it the PostgreSQL tests fail; they never
//! skip.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use crudauth_core::user::conformance::UserSubject;
use crudauth_core::user::{
    find_by_login, LoginField, MfaWrite, NewUser, PasswordHash, UserId, UserStore, UserStoreError,
    UserUpdate,
};
use crudauth_sqlx::{ColumnMap, SetupError, SqlxUsers};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Connection;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A hash exactly as crudauth 0.8.2 makes it (`get_password_hash("correct horse battery
/// staple")`: bcrypt, cost 12, over base64(SHA-256(password))).
const CRUDAUTH_HASH: &str = "$2b$12$6evHpmM5q5z1/P3xIOM6DuHHw671wgZeIJHZT/TW0zfEW33GDR/mG";

/// A name no other test (or earlier run) uses.
fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// An all-renamed map: every column crudauth reads or writes has another name here.
fn renamed(table: &str) -> ColumnMap {
    ColumnMap::new()
        .table(table)
        .column("id", "account_id")
        .column("email", "mail")
        .column("username", "handle")
        .column("hashed_password", "pw_hash")
        .column("is_active", "active")
        .column("is_superuser", "admin")
        .column("email_verified", "mail_ok")
        .column("token_version", "epoch")
        .column("created_at", "inserted_at")
        .column("totp_secret_encrypted", "otp_secret")
        .column("totp_confirmed_at", "otp_confirmed")
        .column("totp_last_step", "otp_step")
        .column("mfa_recovery_codes", "otp_codes")
        .column("oauth_provider", "idp_name")
        .column("github_id", "gh_subject")
        .without("google_id")
        .without("updated_at")
        .without("oauth_created_at")
        .without("oauth_updated_at")
}

/// Creating `new_user` fails (`expect_err(why)`) as a duplicate of `field`.
async fn assert_duplicate(users: &SqlxUsers, new_user: NewUser, field: LoginField, why: &str) {
    let err = users.create(new_user).await.expect_err(why);
    assert!(
        matches!(err, UserStoreError::Duplicate { field: f } if f == field),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// SQLite: a file per test.

/// A database file that is removed (with its journal) when dropped, pass or fail.
struct TempFile(PathBuf);

impl TempFile {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("{}.db", unique_name("crudauth_users"))))
    }

    fn url(&self) -> String {
        format!("sqlite:{}?mode=rwc", self.0.display())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = self.0.as_os_str().to_owned();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

struct SqliteFile {
    users: SqlxUsers,
    _file: TempFile,
}

impl SqliteFile {
    /// A fresh file through `SqlxUsers::connect`, with crudauth's default table.
    async fn default_table() -> Self {
        let file = TempFile::new();
        let users = SqlxUsers::connect(&file.url())
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", file.url()));
        users
            .create_default_table()
            .await
            .expect("creating the default table");
        Self { users, _file: file }
    }

    /// A fresh file holding the all-renamed `accounts` table.
    async fn renamed_table() -> Self {
        let file = TempFile::new();
        let users = SqlxUsers::connect(&file.url())
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", file.url()))
            .with_columns(renamed("accounts"))
            .expect("a valid column map");
        users
            .create_default_table()
            .await
            .expect("creating the mapped table");
        Self { users, _file: file }
    }

    /// A fresh file and a pool on it, for tables written by hand.
    async fn pool() -> (SqlitePool, TempFile) {
        let file = TempFile::new();
        let options = SqliteConnectOptions::new()
            .filename(&file.0)
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", file.0.display()));
        (pool, file)
    }
}

#[async_trait]
impl UserSubject for SqliteFile {
    fn store(&self) -> &dyn UserStore {
        &self.users
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: a schema per test, dropped afterwards.

fn postgres_url() -> String {
    std::env::var("CRUDAUTH_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// The URL without its password, for messages.
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if url[scheme + 3..at].contains(':') => {
            let user_end = scheme + 3 + url[scheme + 3..at].find(':').unwrap_or(0);
            format!("{}:***{}", &url[..user_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

async fn postgres_pool() -> PgPool {
    let url = postgres_url();
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await;
    match pool {
        Ok(pool) => pool,
        Err(e) => {
            // A pool only says it timed out; one connection says why.
            let reason = match PgConnection::connect(&url).await {
                Err(direct) => direct.to_string(),
                Ok(_) => e.to_string(),
            };
            panic!(
                "cannot connect to PostgreSQL at {}: {reason}\nThese tests need a PostgreSQL \
                 server: start one, or set CRUDAUTH_TEST_POSTGRES_URL to one where the user may \
                 create schemas.",
                shown(&url)
            )
        }
    }
}

struct PgSchema {
    users: SqlxUsers,
    pool: PgPool,
    schema: String,
}

impl PgSchema {
    /// A fresh schema of its own; `map` gives the column map for the schema's name.
    async fn new(map: impl FnOnce(&str) -> ColumnMap) -> Self {
        let pool = postgres_pool().await;
        let schema = unique_name("crudauth_t");
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("creating schema {schema}: {e}"));
        let users = SqlxUsers::postgres(pool.clone())
            .with_columns(map(&schema))
            .expect("a valid column map");
        Self {
            users,
            pool,
            schema,
        }
    }

    /// crudauth's default table, in a schema of its own.
    async fn default_table() -> Self {
        let subject = Self::new(|schema| ColumnMap::new().table(format!("{schema}.users"))).await;
        subject
            .users
            .create_default_table()
            .await
            .expect("creating the default table");
        subject
    }

    /// The all-renamed `accounts` table, in a schema of its own.
    async fn renamed_table() -> Self {
        let subject = Self::new(|schema| renamed(&format!("{schema}.accounts"))).await;
        subject
            .users
            .create_default_table()
            .await
            .expect("creating the mapped table");
        subject
    }
}

#[async_trait]
impl UserSubject for PgSchema {
    fn store(&self) -> &dyn UserStore {
        &self.users
    }

    async fn cleanup(&self) {
        let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
        if let Err(e) = sqlx::query(&drop).execute(&self.pool).await {
            eprintln!("could not drop schema {}: {e}", self.schema);
        }
        self.pool.close().await;
    }
}

/// Runs `case` on a task of its own, then drops the schema, then reports the case's failure:
/// a failing test leaves no schema behind.
async fn in_schema<F, Fut>(subject: PgSchema, case: F)
where
    F: FnOnce(Arc<PgSchema>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let subject = Arc::new(subject);
    let outcome = tokio::spawn(case(Arc::clone(&subject))).await;
    subject.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ---------------------------------------------------------------------------------------------
// The suite, on every store.

mod memory {
    crudauth_core::user_store_conformance!(async { crudauth_core::user::MemoryUsers::new() });
}

mod sqlite {
    crudauth_core::user_store_conformance!(super::SqliteFile::default_table());
}

mod sqlite_renamed {
    crudauth_core::user_store_conformance!(super::SqliteFile::renamed_table());
}

mod postgres {
    crudauth_core::user_store_conformance!(super::PgSchema::default_table());
}

mod postgres_renamed {
    crudauth_core::user_store_conformance!(super::PgSchema::renamed_table());
}

// ---------------------------------------------------------------------------------------------
// A mapped table that lacks optional columns.

/// crudauth's graceful degradation on an `accounts` table with `pw_hash` and no
/// `is_superuser` (nor OAuth or timestamp columns), plus a column of the application's own.
async fn mapped_accounts_degrade_gracefully(users: &SqlxUsers, raw: &RawAccounts) {
    let mut new = NewUser::new("Ada@Example.com", "ada", CRUDAUTH_HASH);
    new.is_superuser = true;
    new.email_verified = true;
    let ada = users.create(new).await.expect("creating ada");
    assert_eq!(ada.email.as_deref(), Some("ada@example.com"));
    assert!(
        !ada.is_superuser,
        "no is_superuser column: never a superuser"
    );
    assert!(ada.email_verified);
    assert!(ada.is_active);
    assert!(ada.provider_ids.is_empty());
    let UserId::Int(id) = ada.id else {
        panic!("an integer key was expected, got {:?}", ada.id)
    };
    assert_eq!(
        raw.pw_hash(id).await,
        CRUDAUTH_HASH,
        "the hash lives in pw_hash"
    );

    let found = find_by_login(
        users,
        &[LoginField::Email, LoginField::Username],
        " ADA@example.com",
    )
    .await
    .expect("logging in");
    assert_eq!(found, Some(ada.clone()));

    assert_duplicate(
        users,
        NewUser::new("ada@example.com", "ada2", CRUDAUTH_HASH),
        LoginField::Email,
        "a taken email",
    )
    .await;
    assert_duplicate(
        users,
        NewUser::new("bob@example.com", "ada", CRUDAUTH_HASH),
        LoginField::Username,
        "a taken user name",
    )
    .await;

    let reset = UserUpdate {
        hashed_password: Some(PasswordHash("$argon2id$v=19$new".to_owned())),
        is_active: Some(false),
        bump_token_version: true,
        ..UserUpdate::default()
    };
    let after = users
        .update(&ada.id, reset)
        .await
        .expect("updating ada")
        .expect("ada exists");
    assert_eq!(after.token_version, 1);
    assert!(!after.is_active);
    assert_eq!(raw.pw_hash(id).await, "$argon2id$v=19$new");
}

/// The `accounts` table, read without the store.
enum RawAccounts {
    Sqlite(SqlitePool),
    Postgres(PgPool, String),
}

impl RawAccounts {
    async fn pw_hash(&self, id: i64) -> String {
        let read = match self {
            RawAccounts::Sqlite(pool) => {
                sqlx::query_scalar("SELECT pw_hash FROM accounts WHERE id = ?")
                    .bind(id)
                    .fetch_one(pool)
                    .await
            }
            RawAccounts::Postgres(pool, schema) => {
                sqlx::query_scalar(&format!(
                    "SELECT pw_hash FROM \"{schema}\".accounts WHERE id = $1"
                ))
                .bind(id)
                .fetch_one(pool)
                .await
            }
        };
        read.expect("reading pw_hash")
    }
}

fn accounts_map() -> ColumnMap {
    ColumnMap::new()
        .without_mfa()
        .table("accounts")
        .column("hashed_password", "pw_hash")
        .without("is_superuser")
        .without("oauth_provider")
        .without("google_id")
        .without("github_id")
        .without("oauth_created_at")
        .without("oauth_updated_at")
        .without("created_at")
        .without("updated_at")
}

#[tokio::test]
async fn sqlite_mapped_table_without_superuser() {
    let (pool, _file) = SqliteFile::pool().await;
    sqlx::query(
        "CREATE TABLE accounts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            email TEXT NOT NULL UNIQUE,
            username TEXT NOT NULL UNIQUE,
            pw_hash TEXT NOT NULL,
            is_active BOOLEAN NOT NULL DEFAULT 1,
            email_verified BOOLEAN NOT NULL DEFAULT 0,
            token_version INTEGER NOT NULL DEFAULT 0,
            display_name TEXT
        )",
    )
    .execute(&pool)
    .await
    .expect("creating accounts");
    let users = SqlxUsers::sqlite(pool.clone())
        .with_columns(accounts_map())
        .expect("a valid column map");
    mapped_accounts_degrade_gracefully(&users, &RawAccounts::Sqlite(pool.clone())).await;
    pool.close().await;
}

#[tokio::test]
async fn postgres_mapped_table_without_superuser() {
    let subject = PgSchema::new(|_| ColumnMap::new()).await;
    in_schema(subject, |subject| async move {
        let schema = &subject.schema;
        sqlx::query(&format!(
            "CREATE TABLE \"{schema}\".accounts (
                id BIGSERIAL PRIMARY KEY,
                email VARCHAR(320) NOT NULL UNIQUE,
                username VARCHAR(64) NOT NULL UNIQUE,
                pw_hash VARCHAR(255) NOT NULL,
                is_active BOOLEAN NOT NULL DEFAULT true,
                email_verified BOOLEAN NOT NULL DEFAULT false,
                token_version INTEGER NOT NULL DEFAULT 0,
                display_name TEXT
            )"
        ))
        .execute(&subject.pool)
        .await
        .expect("creating accounts");
        let users = SqlxUsers::postgres(subject.pool.clone())
            .with_columns(accounts_map().table(format!("{schema}.accounts")))
            .expect("a valid column map");
        let raw = RawAccounts::Postgres(subject.pool.clone(), schema.clone());
        mapped_accounts_degrade_gracefully(&users, &raw).await;
    })
    .await;
}

/// A table with nothing but the four required columns: everyone is active, nobody a superuser
/// or verified, and the token version stays 0 (a bump is a no-op).
#[tokio::test]
async fn sqlite_minimal_table_degrades_to_crudauth_defaults() {
    let (pool, _file) = SqliteFile::pool().await;
    sqlx::query(
        "CREATE TABLE members (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            email TEXT NOT NULL UNIQUE,
            username TEXT NOT NULL UNIQUE,
            hashed_password TEXT NOT NULL
        )",
    )
    .execute(&pool)
    .await
    .expect("creating members");
    let mut map = ColumnMap::new().table("members").without_mfa();
    for absent in [
        "is_active",
        "is_superuser",
        "email_verified",
        "token_version",
        "oauth_provider",
        "google_id",
        "github_id",
        "oauth_created_at",
        "oauth_updated_at",
        "created_at",
        "updated_at",
    ] {
        map = map.without(absent);
    }
    let users = SqlxUsers::sqlite(pool.clone())
        .with_columns(map)
        .expect("a valid column map");
    let ada = users
        .create(NewUser::new("ada@example.com", "ada", CRUDAUTH_HASH))
        .await
        .expect("creating ada");
    assert!(ada.is_active && !ada.is_superuser && !ada.email_verified);
    let changes = UserUpdate {
        is_active: Some(false),
        email_verified: Some(true),
        bump_token_version: true,
        ..UserUpdate::default()
    };
    let after = users
        .update(&ada.id, changes)
        .await
        .expect("updating ada")
        .expect("ada exists");
    assert_eq!(
        after.token_version, 0,
        "no token_version column: bumps are no-ops"
    );
    assert!(after.is_active, "no is_active column: always active");
    assert!(
        !after.email_verified,
        "no email_verified column: never verified"
    );
    pool.close().await;
}

// ---------------------------------------------------------------------------------------------
// A database made by crudauth (Python, SQLAlchemy) on SQLite.

/// The DDL SQLAlchemy emits for `class User(Base, AuthUserMixin)` on SQLite, as crudauth 0.8.2
/// makes it: no database defaults (they live in Python), booleans stored as 0/1, datetimes as
/// `YYYY-MM-DD HH:MM:SS.ffffff` text, unique indexes named `ix_users_<column>`.
const SQLALCHEMY_SQLITE_DDL: [&str; 5] = [
    "CREATE TABLE users (
	id INTEGER NOT NULL, 
	email VARCHAR(320) NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	hashed_password VARCHAR(255) NOT NULL, 
	is_active BOOLEAN NOT NULL, 
	is_superuser BOOLEAN NOT NULL, 
	email_verified BOOLEAN NOT NULL, 
	token_version INTEGER NOT NULL, 
	oauth_provider VARCHAR(32), 
	google_id VARCHAR(64), 
	github_id VARCHAR(64), 
	oauth_created_at DATETIME, 
	oauth_updated_at DATETIME, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME, 
	PRIMARY KEY (id)
)",
    "CREATE UNIQUE INDEX ix_users_email ON users (email)",
    "CREATE UNIQUE INDEX ix_users_github_id ON users (github_id)",
    "CREATE UNIQUE INDEX ix_users_google_id ON users (google_id)",
    "CREATE UNIQUE INDEX ix_users_username ON users (username)",
];

/// `YYYY-MM-DD HH:MM:SS.ffffff`, the only shape SQLAlchemy reads back from SQLite.
fn is_sqlalchemy_datetime(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    b.len() == 26
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b' '
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..26)
}

#[tokio::test]
async fn sqlite_database_made_by_crudauth_is_used_as_it_is() {
    let (pool, _file) = SqliteFile::pool().await;
    for statement in SQLALCHEMY_SQLITE_DDL {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .expect("creating the table as SQLAlchemy does");
    }
    // Two rows as crudauth writes them: a registered user, and an OAuth-made superuser.
    sqlx::query(
        "INSERT INTO users (id, email, username, hashed_password, is_active, is_superuser,
            email_verified, token_version, oauth_provider, google_id, github_id,
            oauth_created_at, oauth_updated_at, created_at, updated_at)
         VALUES
            (1, 'ada@example.com', 'ada', ?, 1, 0, 1, 3, NULL, NULL, NULL, NULL, NULL,
             '2026-01-15 09:30:12.345678', '2026-02-01 10:00:00.000001'),
            (7, 'gh@example.com', 'octo', '!Yx3kQ2pL9mN8bV7cX6zA1s', 0, 1, 1, 0, 'github', NULL,
             '583231', '2026-03-03 03:03:03.030303', NULL, '2026-03-03 03:03:03.030303', NULL)",
    )
    .bind(CRUDAUTH_HASH)
    .execute(&pool)
    .await
    .expect("inserting crudauth's rows");

    // Nothing to create: the existing table is left as it is. It was made without
    // `mfa=True`, which the column map says.
    let users = SqlxUsers::sqlite(pool.clone())
        .with_columns(ColumnMap::new().without_mfa())
        .expect("a valid column map");
    assert_eq!(users.missing_mfa_fields().len(), 4);
    users
        .create_default_table()
        .await
        .expect("create_default_table on an existing table");

    let ada = find_by_login(
        &users,
        &[LoginField::Email, LoginField::Username],
        "Ada@Example.com",
    )
    .await
    .expect("finding ada")
    .expect("ada exists");
    assert_eq!(ada.id, UserId::Int(1));
    assert_eq!(ada.username.as_deref(), Some("ada"));
    assert_eq!(
        ada.hashed_password,
        Some(PasswordHash(CRUDAUTH_HASH.to_owned())),
        "the bcrypt hash is read byte for byte"
    );
    assert!(ada.has_usable_password());
    assert!(ada.is_active && !ada.is_superuser && ada.email_verified);
    assert_eq!(ada.token_version, 3);
    assert!(ada.provider_ids.is_empty());

    let octo = users
        .find_by_id(&UserId::Text("7".to_owned()))
        .await
        .expect("finding octo")
        .expect("octo exists");
    assert!(!octo.is_active && octo.is_superuser && octo.email_verified);
    assert!(
        !octo.has_usable_password(),
        "crudauth's ! sentinel never verifies"
    );
    assert_eq!(octo.oauth_provider.as_deref(), Some("github"));
    assert_eq!(
        octo.provider_ids.get("github").map(String::as_str),
        Some("583231")
    );
    assert_eq!(octo.provider_ids.get("google"), None);

    // Writing keeps crudauth's shapes: 0/1 booleans, SQLAlchemy datetime text.
    let bump = UserUpdate {
        bump_token_version: true,
        is_active: Some(false),
        ..UserUpdate::default()
    };
    let ada = users
        .update(&ada.id, bump)
        .await
        .expect("bumping ada")
        .expect("ada exists");
    assert_eq!(ada.token_version, 4);
    let (stored_active, active_type, updated_at, updated_type): (i64, String, String, String) =
        sqlx::query_as(
            "SELECT is_active, typeof(is_active), updated_at, typeof(updated_at)
             FROM users WHERE id = 1",
        )
        .fetch_one(&pool)
        .await
        .expect("reading ada's row");
    assert_eq!((stored_active, active_type.as_str()), (0, "integer"));
    assert_eq!(updated_type, "text");
    assert!(
        is_sqlalchemy_datetime(&updated_at),
        "updated_at {updated_at:?} is not SQLAlchemy's format"
    );

    // A user made here reads back in crudauth: every column crudauth fills in Python is filled.
    let bob = users
        .create(NewUser::new("bob@example.com", "bob", CRUDAUTH_HASH))
        .await
        .expect("creating bob in crudauth's table");
    assert_eq!(bob.id, UserId::Int(8), "the next key after crudauth's rows");
    let (flags, created_at, updated_at): (String, String, Option<String>) = sqlx::query_as(
        "SELECT typeof(is_active) || typeof(is_superuser) || typeof(email_verified)
                || typeof(token_version) || ':' || is_active || is_superuser || email_verified
                || token_version,
            created_at, updated_at
         FROM users WHERE id = 8",
    )
    .fetch_one(&pool)
    .await
    .expect("reading bob's row");
    assert_eq!(flags, "integerintegerintegerinteger:1000");
    assert!(
        is_sqlalchemy_datetime(&created_at),
        "created_at {created_at:?} is not SQLAlchemy's format"
    );
    assert_eq!(updated_at, None);

    // crudauth's unique indexes name the field.
    assert_duplicate(
        &users,
        NewUser::new("ADA@example.com", "someone", CRUDAUTH_HASH),
        LoginField::Email,
        "a taken email",
    )
    .await;
    assert_duplicate(
        &users,
        NewUser::new("new@example.com", "octo", CRUDAUTH_HASH),
        LoginField::Username,
        "a taken user name",
    )
    .await;
    pool.close().await;
}

/// The DDL SQLAlchemy emits for crudauth's model on PostgreSQL: a `SERIAL` (32-bit) key, 32-bit
/// `token_version`, and no database defaults at all.
fn sqlalchemy_postgres_ddl(schema: &str) -> [String; 5] {
    let index = |column: &str| {
        format!("CREATE UNIQUE INDEX ix_users_{column} ON \"{schema}\".users ({column})")
    };
    [
        format!(
            "CREATE TABLE \"{schema}\".users (
	id SERIAL NOT NULL, 
	email VARCHAR(320) NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	hashed_password VARCHAR(255) NOT NULL, 
	is_active BOOLEAN NOT NULL, 
	is_superuser BOOLEAN NOT NULL, 
	email_verified BOOLEAN NOT NULL, 
	token_version INTEGER NOT NULL, 
	oauth_provider VARCHAR(32), 
	google_id VARCHAR(64), 
	github_id VARCHAR(64), 
	oauth_created_at TIMESTAMP WITH TIME ZONE, 
	oauth_updated_at TIMESTAMP WITH TIME ZONE, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE, 
	totp_secret_encrypted VARCHAR(255), 
	totp_confirmed_at TIMESTAMP WITH TIME ZONE, 
	totp_last_step INTEGER, 
	mfa_recovery_codes TEXT, 
	PRIMARY KEY (id)
)"
        ),
        index("email"),
        index("github_id"),
        index("google_id"),
        index("username"),
    ]
}

async fn postgres_table_made_by_crudauth(subject: &PgSchema) {
    let schema = &subject.schema;
    for statement in sqlalchemy_postgres_ddl(schema) {
        sqlx::query(&statement)
            .execute(&subject.pool)
            .await
            .expect("creating the table as SQLAlchemy does");
    }
    sqlx::query(&format!(
        "INSERT INTO \"{schema}\".users (email, username, hashed_password, is_active,
            is_superuser, email_verified, token_version, google_id, oauth_provider, created_at)
         VALUES ('ada@example.com', 'ada', $1, true, false, true, 3, '1029384756', 'google',
            '2026-01-15 09:30:12.345678+00')"
    ))
    .bind(CRUDAUTH_HASH)
    .execute(&subject.pool)
    .await
    .expect("inserting crudauth's row");

    let users = &subject.users;
    users
        .create_default_table()
        .await
        .expect("create_default_table on an existing table");
    let ada = users
        .find_by_id(&UserId::Text("1".to_owned()))
        .await
        .expect("finding ada by a token's string id")
        .expect("ada exists");
    assert_eq!(ada.email.as_deref(), Some("ada@example.com"));
    assert_eq!(
        ada.hashed_password,
        Some(PasswordHash(CRUDAUTH_HASH.to_owned()))
    );
    assert!(ada.is_active && !ada.is_superuser && ada.email_verified);
    // The two-factor columns of `make_auth_identity(mfa=True)`, NULL as crudauth leaves them.
    assert_eq!(ada.mfa, Default::default());
    users
        .write_mfa(&ada.id, MfaWrite::Pending { secret: "p".into() })
        .await
        .expect("the two-factor columns work");
    let enable = MfaWrite::Enable {
        pending: "p".into(),
        secret: "s".into(),
        recovery_codes: "[]".into(),
    };
    assert!(users
        .write_mfa(&ada.id, enable)
        .await
        .expect("the two-factor columns work"));
    assert!(users
        .claim_totp_step(&ada.id, 60_000_000)
        .await
        .expect("the two-factor columns work"));
    let back = users
        .find_by_id(&ada.id)
        .await
        .expect("the two-factor columns work")
        .expect("the two-factor columns work");
    assert!(back.mfa.confirmed && back.mfa.last_step == Some(60_000_000));
    users
        .write_mfa(&ada.id, MfaWrite::Disable)
        .await
        .expect("the two-factor columns work");
    assert_eq!(ada.token_version, 3);
    assert_eq!(ada.oauth_provider.as_deref(), Some("google"));
    assert_eq!(
        ada.provider_ids.get("google").map(String::as_str),
        Some("1029384756")
    );

    let bump = UserUpdate {
        bump_token_version: true,
        ..UserUpdate::default()
    };
    let ada = users
        .update(&ada.id, bump)
        .await
        .expect("bumping ada")
        .expect("ada exists");
    assert_eq!(ada.token_version, 4);

    // No database defaults: every column crudauth owns must be written by the store.
    let bob = users
        .create(NewUser::new("Bob@Example.com", "bob", CRUDAUTH_HASH))
        .await
        .expect("creating bob in crudauth's table");
    assert_eq!(bob.id, UserId::Int(2));
    let (created, updated): (bool, bool) = sqlx::query_as(&format!(
        "SELECT created_at IS NOT NULL, updated_at IS NOT NULL FROM \"{schema}\".users
         WHERE id = 1"
    ))
    .fetch_one(&subject.pool)
    .await
    .expect("reading ada's timestamps");
    assert!(created && updated, "updated_at is set by the update");

    assert_duplicate(
        users,
        NewUser::new("bob@example.com", "bobby", CRUDAUTH_HASH),
        LoginField::Email,
        "a taken email",
    )
    .await;
}

#[tokio::test]
async fn postgres_database_made_by_crudauth_is_used_as_it_is() {
    let subject = PgSchema::new(|schema| ColumnMap::new().table(format!("{schema}.users"))).await;
    in_schema(subject, |subject| async move {
        postgres_table_made_by_crudauth(&subject).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Set-up and failure.

#[tokio::test]
async fn unreachable_databases_are_clear_errors() {
    let err = SqlxUsers::connect("postgres://crudauth:hunter2@127.0.0.1:1/none")
        .await
        .expect_err("nothing listens on port 1");
    let message = err.to_string();
    assert!(matches!(err, SetupError::Connect { .. }), "{err:?}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(
        message.contains("refused"),
        "the driver's reason: {message}"
    );
    assert!(
        message.contains("is PostgreSQL running"),
        "a hint: {message}"
    );
    assert!(
        !message.contains("hunter2"),
        "the password leaked: {message}"
    );

    let missing = std::env::temp_dir()
        .join(unique_name("no_such_dir"))
        .join("users.db");
    let err = SqlxUsers::connect(&format!("sqlite:{}?mode=rwc", missing.display()))
        .await
        .expect_err("the directory does not exist");
    assert!(matches!(err, SetupError::Connect { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("unable to open database file"),
        "{message}"
    );
    assert!(message.contains("?mode=rwc"), "a hint: {message}");

    let err = SqlxUsers::connect("mysql://root@127.0.0.1/app")
        .await
        .expect_err("MySQL is not supported");
    assert!(matches!(err, SetupError::InvalidUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn a_closed_pool_is_unavailable_not_a_panic() {
    let (pool, _file) = SqliteFile::pool().await;
    let users = SqlxUsers::sqlite(pool.clone());
    users
        .create_default_table()
        .await
        .expect("creating the default table");
    pool.close().await;
    let err = users
        .create(NewUser::new("ada@example.com", "ada", CRUDAUTH_HASH))
        .await
        .expect_err("the pool is closed");
    let UserStoreError::Unavailable(message) = err else {
        panic!("expected Unavailable, got {err:?}")
    };
    assert!(
        message.contains("cannot reach the sqlite user database"),
        "{message}"
    );
    let err = users
        .find_by_id(&UserId::Int(1))
        .await
        .expect_err("the pool is closed");
    assert!(matches!(err, UserStoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_missing_table_says_how_to_make_it() {
    let (pool, _file) = SqliteFile::pool().await;
    let users = SqlxUsers::sqlite(pool.clone());
    let err = users
        .find_by_field(LoginField::Username, "ada")
        .await
        .expect_err("there is no users table");
    let UserStoreError::Unavailable(message) = err else {
        panic!("expected Unavailable, got {err:?}")
    };
    assert!(message.contains("no such table"), "{message}");
    assert!(message.contains("create_default_table"), "{message}");
    pool.close().await;
}

/// The four columns `make_auth_identity(mfa=True)` adds, as SQLAlchemy types them on SQLite.
const SQLALCHEMY_MFA_COLUMNS: [&str; 4] = [
    "ALTER TABLE users ADD COLUMN totp_secret_encrypted VARCHAR(255)",
    "ALTER TABLE users ADD COLUMN totp_confirmed_at DATETIME",
    "ALTER TABLE users ADD COLUMN totp_last_step INTEGER",
    "ALTER TABLE users ADD COLUMN mfa_recovery_codes TEXT",
];

/// A crudauth table with two-factor columns written by crudauth: read back into `User.mfa`,
/// and the step claim and the conditional writes work on it.
#[tokio::test]
async fn sqlite_two_factor_columns_made_by_crudauth_are_used_as_they_are() {
    let (pool, _file) = SqliteFile::pool().await;
    for statement in SQLALCHEMY_SQLITE_DDL.iter().chain(&SQLALCHEMY_MFA_COLUMNS) {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .expect("creating the table");
    }
    sqlx::query(
        "INSERT INTO users (id, email, username, hashed_password, is_active, is_superuser,
            email_verified, token_version, created_at, totp_secret_encrypted, totp_confirmed_at,
            totp_last_step, mfa_recovery_codes)
         VALUES (1, 'ada@example.com', 'ada', ?, 1, 0, 1, 0, '2026-01-15 09:30:12.345678',
            'gAAAAABsealed', '2026-01-02 03:04:05.000000', 56666666, '[\"d1\", \"d2\"]')",
    )
    .bind(CRUDAUTH_HASH)
    .execute(&pool)
    .await
    .expect("inserting crudauth's row");
    let users = SqlxUsers::sqlite(pool.clone());
    assert!(users.missing_mfa_fields().is_empty());
    let ada = users
        .find_by_id(&UserId::Int(1))
        .await
        .expect("the two-factor columns work")
        .expect("the two-factor columns work");
    assert_eq!(ada.mfa.secret.as_deref(), Some("gAAAAABsealed"));
    assert!(ada.mfa.confirmed);
    assert_eq!(ada.mfa.last_step, Some(56666666));
    assert_eq!(ada.mfa.recovery_codes.as_deref(), Some("[\"d1\", \"d2\"]"));
    assert!(!users
        .claim_totp_step(&ada.id, 56666666)
        .await
        .expect("the two-factor columns work"));
    assert!(users
        .claim_totp_step(&ada.id, 56666667)
        .await
        .expect("the two-factor columns work"));
    let consume = MfaWrite::ConsumeCode {
        expected: "[\"d1\", \"d2\"]".into(),
        recovery_codes: "[\"d2\"]".into(),
    };
    assert!(users
        .write_mfa(&ada.id, consume)
        .await
        .expect("the two-factor columns work"));
    assert!(users
        .write_mfa(&ada.id, MfaWrite::Disable)
        .await
        .expect("the two-factor columns work"));
    let (confirmed, step): (Option<String>, Option<i64>) =
        sqlx::query_as("SELECT totp_confirmed_at, totp_last_step FROM users WHERE id = 1")
            .fetch_one(&pool)
            .await
            .expect("the two-factor columns work");
    assert_eq!((confirmed, step), (None, None));
    // Enabling writes the confirmation time as SQLAlchemy's text.
    users
        .write_mfa(&ada.id, MfaWrite::Pending { secret: "p".into() })
        .await
        .expect("the two-factor columns work");
    let enable = MfaWrite::Enable {
        pending: "p".into(),
        secret: "s".into(),
        recovery_codes: "[]".into(),
    };
    assert!(users
        .write_mfa(&ada.id, enable)
        .await
        .expect("the two-factor columns work"));
    let (confirmed,): (String,) =
        sqlx::query_as("SELECT totp_confirmed_at FROM users WHERE id = 1")
            .fetch_one(&pool)
            .await
            .expect("the two-factor columns work");
    assert!(is_sqlalchemy_datetime(&confirmed), "{confirmed}");
    pool.close().await;
}

/// A map without one of the columns: two-factor is unavailable, naming it.
#[tokio::test]
async fn a_missing_two_factor_column_is_named() {
    let users = SqlxUsers::connect("sqlite::memory:")
        .await
        .expect("the two-factor columns work")
        .with_columns(ColumnMap::new().without("totp_last_step"))
        .expect("the two-factor columns work");
    users
        .create_default_table()
        .await
        .expect("the two-factor columns work");
    assert_eq!(users.missing_mfa_fields(), ["totp_last_step"]);
    let ada = users
        .create(NewUser::new("ada@example.com", "ada", CRUDAUTH_HASH))
        .await
        .expect("the two-factor columns work");
    let error = users
        .claim_totp_step(&ada.id, 1)
        .await
        .expect_err("no column")
        .to_string();
    assert!(error.contains("totp_last_step"), "{error}");
}

/// A provider the application names itself (`oidc`, as the quickstart mounts it): the default
/// table made from the map gets an `oidc_id` column with a unique index, accounts are created
/// and found by it, a provider the table has no column for is named in the error, and a name
/// that cannot be a column is refused at once.
#[tokio::test]
async fn sqlite_a_declared_provider_gets_its_column() {
    let file = TempFile::new();
    let users = SqlxUsers::connect(&file.url())
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", file.url()))
        .with_columns(
            ColumnMap::new()
                .provider("oidc")
                .column("oidc_id", "idp_subject"),
        )
        .expect("a valid column map");
    users
        .create_default_table()
        .await
        .expect("creating the table");
    assert!(users.supports_provider("oidc"));
    assert!(
        users.supports_provider("github"),
        "crudauth's own columns stay"
    );
    assert!(!users.supports_provider("keycloak"));

    let raw = SqlitePool::connect(&file.url())
        .await
        .expect("a raw connection");
    let indexes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT il.name, il.\"unique\" FROM pragma_index_list('users') il \
         JOIN pragma_index_info(il.name) ii WHERE ii.name = 'idp_subject'",
    )
    .fetch_all(&raw)
    .await
    .expect("reading the indexes");
    assert_eq!(
        indexes.len(),
        1,
        "one index on the mapped column: {indexes:?}"
    );
    assert_eq!(indexes[0].1, 1, "and it is unique");

    let mut new = NewUser::new("sso@example.com", "sso", "!sentinel");
    new.email_verified = true;
    new.provider = Some(crudauth_core::user::ProviderAccount {
        provider: "oidc".into(),
        subject: "kc-7".into(),
    });
    let created = users.create(new).await.expect("creating from the provider");
    let stored: (Option<String>, Option<String>) =
        sqlx::query_as("SELECT idp_subject, oauth_provider FROM users WHERE id = ?")
            .bind(
                created
                    .id
                    .to_string()
                    .parse::<i64>()
                    .expect("an integer id"),
            )
            .fetch_one(&raw)
            .await
            .expect("reading the row");
    assert_eq!(stored, (Some("kc-7".into()), Some("oidc".into())));
    let found = users
        .find_by_provider("oidc", "kc-7")
        .await
        .expect("finding")
        .map(|u| u.id);
    assert_eq!(found, Some(created.id.clone()));
    assert!(users
        .find_by_provider("github", "kc-7")
        .await
        .expect("finding")
        .is_none());
    let err = users
        .find_by_provider("keycloak", "kc-7")
        .await
        .expect_err("no column for keycloak");
    assert!(
        matches!(&err, UserStoreError::Unavailable(m) if m.contains("keycloak_id") && m.contains("ColumnMap::provider")),
        "{err:?}"
    );

    for bad in ["OIDC", "oidc-prod", "1idp", "", &"x".repeat(33)] {
        assert!(
            SqlxUsers::connect("sqlite::memory:")
                .await
                .expect("memory")
                .with_columns(ColumnMap::new().provider(bad))
                .is_err(),
            "provider name {bad:?} refused"
        );
    }
}
