//! [`SqlxUsers`]: the [`UserStore`] over an SQLite or PostgreSQL pool.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crudauth_core::user::{
    canonical_email, LoginField, MfaColumns, MfaWrite, NewUser, PasswordHash, ProviderLink, User,
    UserId, UserStore, UserStoreError, UserUpdate,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions};
use sqlx::{ColumnIndex, Connection, Database, Decode, Encode, Row, Type};

use crate::change::ChangeCounter;
use crate::columns::{ColumnMap, Columns, Field};
use crate::error::{redact_url, ErrorContext, SetupError};
use crate::sql::{Arg, Dialect, ProviderStatements, Queries, Statement};

/// How long [`SqlxUsers::connect`] waits for a connection before it gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`UserStore`] over sqlx: SQLite (the embedded default) or PostgreSQL, on crudauth's own
/// `users` table or on an existing table described by a [`ColumnMap`].
///
/// ```
/// use crudauth_core::user::{find_by_login, LoginField, NewUser, UserStore, UserUpdate};
/// use crudauth_sqlx::SqlxUsers;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let users = SqlxUsers::connect("sqlite::memory:").await?;
/// users.create_default_table().await?;
///
/// let ada = users.create(NewUser::new(" Ada@Example.com", "ada", "$argon2id$v=19$...")).await?;
/// assert_eq!(ada.email.as_deref(), Some("ada@example.com"));
///
/// let bump = UserUpdate { bump_token_version: true, ..UserUpdate::default() };
/// let ada = users.update(&ada.id, bump).await?.expect("ada exists");
/// assert_eq!(ada.token_version, 1);
///
/// let found = find_by_login(&users, &[LoginField::Email, LoginField::Username], "ADA@example.com").await?;
/// assert_eq!(found.map(|u| u.id), Some(ada.id));
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
///
/// Cloning is cheap: clones share the pool and the SQL written at construction.
#[derive(Clone)]
pub struct SqlxUsers {
    pool: DbPool,
    shared: Arc<Shared>,
    /// An SQLite file's change counter ([`UserStore::change_counter`]); `None` on PostgreSQL,
    /// in memory and in WAL mode.
    change: Option<Arc<ChangeCounter>>,
}

/// The two pools a store can run on; no `Any` driver, so each keeps its own types.
#[derive(Clone)]
enum DbPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl DbPool {
    fn dialect(&self) -> Dialect {
        match self {
            DbPool::Sqlite(_) => Dialect::Sqlite,
            DbPool::Postgres(_) => Dialect::Postgres,
        }
    }
}

/// Everything settled at construction: the column map and the SQL built from it.
#[derive(Debug)]
struct Shared {
    columns: Columns,
    queries: Queries,
    errors: ErrorContext,
}

impl Shared {
    fn new(dialect: Dialect, columns: Columns) -> Self {
        let queries = Queries::build(dialect, &columns);
        let errors = ErrorContext {
            dialect: dialect.name(),
            table: columns.table.display(),
            email: columns.get(Field::Email).map(str::to_owned),
            username: columns.get(Field::Username).map(str::to_owned),
            providers: columns
                .providers()
                .iter()
                .map(|p| p.column.clone())
                .collect(),
        };
        Self {
            columns,
            queries,
            errors,
        }
    }
}

impl fmt::Debug for SqlxUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlxUsers")
            .field("dialect", &self.dialect())
            .field("table", &self.shared.columns.table.display())
            .finish_non_exhaustive()
    }
}

/// Runs `$body` with `$pool` bound to whichever pool the store has; each arm type-checks
/// against its own driver.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            DbPool::Sqlite($pool) => $body,
            DbPool::Postgres($pool) => $body,
        }
    };
}

impl SqlxUsers {
    /// Connects to `url` and uses crudauth's default `users` table.
    ///
    /// `sqlite:path/to/users.db?mode=rwc` opens (and with `mode=rwc` creates) an SQLite file;
    /// `sqlite::memory:` is a private in-memory database; `postgres://…` or `postgresql://…`
    /// connects to PostgreSQL. One connection is opened (within five seconds) to prove the
    /// database answers, so a wrong URL or a stopped server fails here, saying why.
    pub async fn connect(url: &str) -> Result<Self, SetupError> {
        let shown = redact_url(url);
        let invalid = |reason: String| SetupError::InvalidUrl {
            url: shown.clone(),
            reason,
        };
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            let options =
                SqliteConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
            if lower.contains(":memory:") || lower.contains("mode=memory") {
                // An in-memory database lives as long as its connections, and shared-cache
                // tables lock rather than wait: one connection, kept for good.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|e| SetupError::Connect {
                        url: shown.clone(),
                        reason: e.to_string(),
                    })?;
                return Ok(Self::sqlite(pool));
            }
            probe::<SqliteConnection>(
                &options,
                &shown,
                " (does the directory exist? add ?mode=rwc to create the file)",
            )
            .await?;
            let pool = SqlitePoolOptions::new()
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_lazy_with(options);
            Ok(Self::sqlite(pool))
        } else if lower.starts_with("postgres:") || lower.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
            probe::<PgConnection>(
                &options,
                &shown,
                " (is PostgreSQL running and accepting connections there? check the URL)",
            )
            .await?;
            let pool = PgPoolOptions::new()
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_lazy_with(options);
            Ok(Self::postgres(pool))
        } else {
            Err(invalid(
                "the scheme must be sqlite:, postgres: or postgresql:".to_owned(),
            ))
        }
    }

    /// A store on an SQLite pool, using crudauth's default `users` table.
    pub fn sqlite(pool: SqlitePool) -> Self {
        Self::with_pool(DbPool::Sqlite(pool))
    }

    /// A store on a PostgreSQL pool, using crudauth's default `users` table.
    pub fn postgres(pool: PgPool) -> Self {
        Self::with_pool(DbPool::Postgres(pool))
    }

    fn with_pool(pool: DbPool) -> Self {
        let columns = Columns::crudauth_default();
        let change = match &pool {
            DbPool::Sqlite(pool) => {
                ChangeCounter::open(pool.connect_options().get_filename()).map(Arc::new)
            }
            DbPool::Postgres(_) => None,
        };
        Self {
            shared: Arc::new(Shared::new(pool.dialect(), columns)),
            pool,
            change,
        }
    }

    /// Uses the table and columns `map` describes instead of the default `users` table.
    ///
    /// Every name is validated and the SQL is written here, once; a bad name is an error now,
    /// never at the first query.
    ///
    /// ```
    /// use crudauth_sqlx::{ColumnMap, SqlxUsers};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let users = SqlxUsers::connect("sqlite::memory:").await?
    ///     .with_columns(ColumnMap::new().table("accounts").column("hashed_password", "pw_hash"))?;
    /// assert!(SqlxUsers::connect("sqlite::memory:").await?
    ///     .with_columns(ColumnMap::new().table("accounts; DROP TABLE users")).is_err());
    /// # let _ = users;
    /// # Ok::<(), crudauth_sqlx::SetupError>(()) }).unwrap();
    /// ```
    pub fn with_columns(self, map: ColumnMap) -> Result<Self, SetupError> {
        let columns = map.resolve()?;
        Ok(Self {
            shared: Arc::new(Shared::new(self.dialect(), columns)),
            pool: self.pool,
            change: self.change,
        })
    }

    /// The SQL dialect of the pool.
    pub fn dialect(&self) -> Dialect {
        self.pool.dialect()
    }

    /// Creates crudauth's `users` table (and its unique indexes) if it does not exist yet, with
    /// the columns of crudauth's `AuthUserMixin`: a database made by crudauth is left as it is,
    /// and a fresh one gets the same shape.
    ///
    /// With a column map, the table gets the mapped names and lacks the columns left out.
    pub async fn create_default_table(&self) -> Result<(), UserStoreError> {
        let statements = &self.shared.queries.create_table;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(|e| self.db_error(e))?;
            for statement in statements {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.db_error(e))?;
            }
            tx.commit().await.map_err(|e| self.db_error(e))
        })
    }

    fn db_error(&self, error: sqlx::Error) -> UserStoreError {
        self.shared.errors.map(error)
    }

    /// Runs a statement that changes at most one row: whether it changed one.
    async fn execute(
        &self,
        statement: &Statement,
        values: &Values,
    ) -> Result<bool, UserStoreError> {
        let done = on_pool!(self, pool => {
            bind(sqlx::query(&statement.sql), &statement.args, values)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        });
        done.map_err(|e| self.db_error(e))
    }

    /// The two-factor statements, or why there are none: the columns the table lacks.
    fn mfa_statements(&self) -> Result<&crate::sql::MfaStatements, UserStoreError> {
        self.shared.queries.mfa.as_ref().ok_or_else(|| {
            UserStoreError::Unavailable(format!(
                "user table {} has no two-factor columns {}",
                self.shared.columns.table.display(),
                self.missing_mfa_fields().join(", ")
            ))
        })
    }

    /// The statements of `provider`, or why there are none: the column the table lacks.
    fn provider_statements(&self, provider: &str) -> Result<&ProviderStatements, UserStoreError> {
        self.shared.queries.providers.get(provider).ok_or_else(|| {
            UserStoreError::Unavailable(format!(
                "user table {} has no column for the OAuth provider {provider:?} (add a \
                 {provider}_id column and declare it with ColumnMap::provider)",
                self.shared.columns.table.display(),
            ))
        })
    }

    /// Runs a statement that reads at most one user row.
    async fn fetch_user(
        &self,
        statement: &Statement,
        values: &Values,
    ) -> Result<Option<User>, UserStoreError> {
        let columns = &self.shared.columns;
        let row = on_pool!(self, pool => {
            bind(sqlx::query(&statement.sql), &statement.args, values)
                .fetch_optional(pool)
                .await
                .and_then(|row| row.map(|row| read_user(&row, columns)).transpose())
        });
        row.map_err(|e| self.db_error(e))
    }
}

/// Opens one connection and closes it, so that an unreachable database fails now, with the
/// driver's own reason (a pool would only say that it timed out).
async fn probe<C: Connection>(
    options: &<C as Connection>::Options,
    shown: &str,
    hint: &str,
) -> Result<(), SetupError> {
    let failed = |reason: String| SetupError::Connect {
        url: shown.to_owned(),
        reason: format!("{reason}{hint}"),
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, C::connect_with(options)).await {
        Ok(Ok(connection)) => {
            // The database answered; a failed goodbye changes nothing.
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!(
            "no answer within {} seconds",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// The values a statement's [`Arg`]s stand for.
#[derive(Default)]
struct Values {
    id: i64,
    email: Option<String>,
    username: Option<String>,
    hashed_password: Option<String>,
    is_active: Option<bool>,
    is_superuser: Option<bool>,
    email_verified: Option<bool>,
    token_version: i64,
    step: i64,
    secret: Option<String>,
    pending: Option<String>,
    codes: Option<String>,
    expected_codes: Option<String>,
    subject: Option<String>,
    provider: Option<String>,
}

/// Binds `args` in order; generic over the driver so both pools share one definition. Every
/// [`Arg::Now`] of a statement is the same instant, as `CURRENT_TIMESTAMP` is on PostgreSQL.
fn bind<'q, DB>(
    mut query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    args: &[Arg],
    values: &Values,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<bool>: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
{
    let now = args.contains(&Arg::Now).then(sqlalchemy_now);
    for arg in args {
        query = match arg {
            Arg::Id => query.bind(values.id),
            Arg::Email => query.bind(values.email.clone()),
            Arg::Username => query.bind(values.username.clone()),
            Arg::HashedPassword => query.bind(values.hashed_password.clone()),
            Arg::IsActive => query.bind(values.is_active),
            Arg::IsSuperuser => query.bind(values.is_superuser),
            Arg::EmailVerified => query.bind(values.email_verified),
            Arg::TokenVersion => query.bind(values.token_version),
            Arg::Now => query.bind(now.clone()),
            Arg::Step => query.bind(values.step),
            Arg::Secret => query.bind(values.secret.clone()),
            Arg::Pending => query.bind(values.pending.clone()),
            Arg::Codes => query.bind(values.codes.clone()),
            Arg::ExpectedCodes => query.bind(values.expected_codes.clone()),
            Arg::Subject => query.bind(values.subject.clone()),
            Arg::Provider => query.bind(values.provider.clone()),
        };
    }
    query
}

/// The current UTC time as SQLAlchemy stores a `DateTime` in SQLite:
/// `YYYY-MM-DD HH:MM:SS.ffffff`.
fn sqlalchemy_now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Reads a user from a row selected by the store's projection (columns aliased by logical
/// name). Absent columns, and NULLs, read as crudauth's defaults.
fn read_user<'r, R>(row: &'r R, columns: &Columns) -> Result<User, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let text = |field: Field| -> Result<Option<String>, sqlx::Error> {
        if columns.has(field) {
            row.try_get::<Option<String>, _>(field.name())
        } else {
            Ok(None)
        }
    };
    let flag = |field: Field, default: bool| -> Result<bool, sqlx::Error> {
        if columns.has(field) {
            Ok(row
                .try_get::<Option<bool>, _>(field.name())?
                .unwrap_or(default))
        } else {
            Ok(default)
        }
    };
    let token_version = if columns.has(Field::TokenVersion) {
        row.try_get::<Option<i64>, _>(Field::TokenVersion.name())?
            .unwrap_or(0)
    } else {
        0
    };
    let mfa = if Field::MFA.iter().all(|f| columns.has(*f)) {
        MfaColumns {
            secret: text(Field::TotpSecretEncrypted)?,
            confirmed: flag(Field::TotpConfirmedAt, false)?,
            last_step: row.try_get::<Option<i64>, _>(Field::TotpLastStep.name())?,
            recovery_codes: text(Field::MfaRecoveryCodes)?,
        }
    } else {
        MfaColumns::default()
    };
    let mut provider_ids = BTreeMap::new();
    for provider in columns.providers() {
        if let Some(subject) = row.try_get::<Option<String>, _>(provider.field().as_str())? {
            provider_ids.insert(provider.provider.clone(), subject);
        }
    }
    Ok(User {
        id: UserId::Int(row.try_get::<i64, _>(Field::Id.name())?),
        email: text(Field::Email)?,
        username: text(Field::Username)?,
        hashed_password: text(Field::HashedPassword)?.map(PasswordHash),
        is_active: flag(Field::IsActive, true)?,
        is_superuser: flag(Field::IsSuperuser, false)?,
        email_verified: flag(Field::EmailVerified, false)?,
        token_version,
        oauth_provider: text(Field::OauthProvider)?,
        provider_ids,
        mfa,
    })
}

/// The integer key a [`UserId`] names, if it names one: `Text("12")` does, `Text("abc")` not.
fn integer_id(id: &UserId) -> Option<i64> {
    match id {
        UserId::Int(n) => Some(*n),
        UserId::Text(s) => s.parse().ok(),
    }
}

#[async_trait]
impl UserStore for SqlxUsers {
    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, UserStoreError> {
        let Some(id) = integer_id(id) else {
            return Ok(None);
        };
        let values = Values {
            id,
            ..Values::default()
        };
        self.fetch_user(&self.shared.queries.by_id, &values).await
    }

    async fn find_by_field(
        &self,
        field: LoginField,
        value: &str,
    ) -> Result<Option<User>, UserStoreError> {
        let queries = &self.shared.queries;
        let (statement, values) = match field {
            LoginField::Email => {
                let email = canonical_email(value);
                if email.is_empty() {
                    return Ok(None);
                }
                let values = Values {
                    email: Some(email),
                    ..Values::default()
                };
                (&queries.by_email, values)
            }
            LoginField::Username => {
                let values = Values {
                    username: Some(value.to_owned()),
                    ..Values::default()
                };
                (&queries.by_username, values)
            }
        };
        match statement {
            Some(statement) => self.fetch_user(statement, &values).await,
            // The table has no such column: nobody can be found by it.
            None => Ok(None),
        }
    }

    async fn create(&self, user: NewUser) -> Result<User, UserStoreError> {
        let columns = &self.shared.columns;
        if user.is_superuser && !columns.has(Field::IsSuperuser) {
            tracing::warn!(
                table = %columns.table.display(),
                "creating a superuser in a user table without an is_superuser column: the flag is dropped"
            );
        }
        let (statement, account) = match user.provider {
            Some(account) => (
                &self.provider_statements(&account.provider)?.insert,
                Some(account),
            ),
            None => (&self.shared.queries.insert, None),
        };
        let values = Values {
            email: user.email.as_deref().map(canonical_email),
            username: user.username,
            hashed_password: Some(user.hashed_password.0),
            is_active: Some(true),
            is_superuser: Some(user.is_superuser),
            email_verified: Some(user.email_verified),
            provider: account.as_ref().map(|a| a.provider.clone()),
            subject: account.map(|a| a.subject),
            ..Values::default()
        };
        match self.fetch_user(statement, &values).await? {
            Some(user) => Ok(user),
            None => Err(UserStoreError::Unavailable(format!(
                "inserting into user table {} returned no row",
                columns.table.display()
            ))),
        }
    }

    async fn update(
        &self,
        id: &UserId,
        changes: UserUpdate,
    ) -> Result<Option<User>, UserStoreError> {
        let Some(id) = integer_id(id) else {
            return Ok(None);
        };
        let columns = &self.shared.columns;
        for (asked, field) in [
            (changes.is_active.is_some(), Field::IsActive),
            (changes.email_verified.is_some(), Field::EmailVerified),
            (changes.email.is_some(), Field::Email),
        ] {
            if asked && !columns.has(field) {
                tracing::warn!(
                    table = %columns.table.display(),
                    field = field.name(),
                    "the user table has no column for this field: the change is dropped"
                );
            }
        }
        let values = Values {
            id,
            email: changes.email.as_deref().map(canonical_email),
            hashed_password: changes.hashed_password.map(|h| h.0),
            is_active: changes.is_active,
            email_verified: changes.email_verified,
            token_version: i64::from(changes.bump_token_version),
            ..Values::default()
        };
        self.fetch_user(&self.shared.queries.update, &values).await
    }

    fn supports_token_version(&self) -> bool {
        self.shared.columns.has(Field::TokenVersion)
    }

    fn missing_mfa_fields(&self) -> Vec<&'static str> {
        Field::MFA
            .into_iter()
            .filter(|f| !self.shared.columns.has(*f))
            .map(Field::name)
            .collect()
    }

    async fn claim_totp_step(&self, id: &UserId, step: i64) -> Result<bool, UserStoreError> {
        let statements = self.mfa_statements()?;
        let Some(id) = integer_id(id) else {
            return Ok(false);
        };
        let values = Values {
            id,
            step,
            ..Values::default()
        };
        self.execute(&statements.claim_step, &values).await
    }

    async fn write_mfa(&self, id: &UserId, write: MfaWrite) -> Result<bool, UserStoreError> {
        let statements = self.mfa_statements()?;
        let Some(id) = integer_id(id) else {
            return Ok(false);
        };
        let mut values = Values {
            id,
            ..Values::default()
        };
        let statement = match write {
            MfaWrite::Pending { secret } => {
                values.secret = Some(secret);
                &statements.pending
            }
            MfaWrite::Enable {
                pending,
                secret,
                recovery_codes,
            } => {
                values.secret = Some(secret);
                values.pending = Some(pending);
                values.codes = Some(recovery_codes);
                &statements.enable
            }
            MfaWrite::ConsumeCode {
                expected,
                recovery_codes,
            } => {
                values.expected_codes = Some(expected);
                values.codes = Some(recovery_codes);
                &statements.consume
            }
            MfaWrite::Regenerate { recovery_codes } => {
                values.codes = Some(recovery_codes);
                &statements.regenerate
            }
            MfaWrite::Disable => &statements.disable,
        };
        self.execute(statement, &values).await
    }

    fn supports_provider(&self, provider: &str) -> bool {
        self.shared.columns.provider(provider).is_some()
    }

    fn max_length(&self, field: LoginField) -> Option<usize> {
        self.shared.columns.max_length(field)
    }

    /// On an SQLite file in its default rollback-journal mode, the file's change counter, so
    /// an edit of the table by anyone (the `sqlite3` shell, another worker) holds from the next
    /// request despite the user cache; `None` on PostgreSQL, in memory and in WAL mode.
    fn change_counter(&self) -> Option<u64> {
        self.change.as_ref().and_then(|c| c.read())
    }

    async fn find_by_provider(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<User>, UserStoreError> {
        let statements = self.provider_statements(provider)?;
        let values = Values {
            subject: Some(subject.to_owned()),
            ..Values::default()
        };
        self.fetch_user(&statements.by_subject, &values).await
    }

    async fn link_provider(
        &self,
        id: &UserId,
        link: &ProviderLink,
    ) -> Result<bool, UserStoreError> {
        let statements = self.provider_statements(&link.account.provider)?;
        let Some(id) = integer_id(id) else {
            return Ok(false);
        };
        let values = Values {
            id,
            subject: Some(link.account.subject.clone()),
            provider: Some(link.account.provider.clone()),
            hashed_password: link.claim.as_ref().map(|h| h.0.clone()),
            ..Values::default()
        };
        let statement = match link.claim {
            Some(_) => &statements.claim,
            None => &statements.link,
        };
        self.execute(statement, &values).await
    }
}
