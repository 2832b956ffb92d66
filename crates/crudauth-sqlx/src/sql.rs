//! The statements a store runs, written once per store from its dialect and column map.
//!
//! Identifiers come from a validated [`Columns`] and are double-quoted; every value is a bound
//! parameter. Absent optional columns are simply not mentioned, which is how crudauth's graceful
//! degradation falls out: their values are never written, and read back as the defaults.

use std::collections::BTreeMap;

use crudauth_core::user::LoginField;

use crate::columns::{quote, Columns, Field, ProviderColumn};

/// Which SQL a store speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite (3.35 or newer, for `RETURNING`; sqlx bundles a recent one).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// `sqlite` or `postgres`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// A value a statement binds, in placeholder order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    Id,
    Email,
    Username,
    HashedPassword,
    IsActive,
    IsSuperuser,
    EmailVerified,
    /// `0` on insert; on update, how much to add (0 or 1).
    TokenVersion,
    /// The current time, as SQLAlchemy writes it on SQLite (PostgreSQL uses `CURRENT_TIMESTAMP`).
    Now,
    /// A TOTP step being claimed.
    Step,
    /// A sealed secret to write.
    Secret,
    /// The sealed pending secret a confirmation was checked against.
    Pending,
    /// Recovery-code digests to write.
    Codes,
    /// The recovery-code digests as read.
    ExpectedCodes,
    /// An account's id at an OAuth provider, for its `{provider}_id` column.
    Subject,
    /// The provider's name, for `oauth_provider`.
    Provider,
}

/// One statement and what it binds.
#[derive(Clone, Debug)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) args: Vec<Arg>,
}

/// Every statement a store needs.
#[derive(Clone, Debug)]
pub(crate) struct Queries {
    pub(crate) by_id: Statement,
    pub(crate) by_email: Option<Statement>,
    pub(crate) by_username: Option<Statement>,
    pub(crate) insert: Statement,
    pub(crate) update: Statement,
    pub(crate) create_table: Vec<String>,
    /// The two-factor statements, when the table has the four columns.
    pub(crate) mfa: Option<MfaStatements>,
    /// The statements of each provider the table has a column for, by provider name.
    pub(crate) providers: BTreeMap<String, ProviderStatements>,
}

/// What one provider column needs: a lookup, an insert that fills it, and its two conditional
/// `UPDATE`s (`rows affected` says whether they applied).
#[derive(Clone, Debug)]
pub(crate) struct ProviderStatements {
    pub(crate) by_subject: Statement,
    pub(crate) insert: Statement,
    pub(crate) link: Statement,
    pub(crate) claim: Statement,
}

/// One conditional `UPDATE` per two-factor change (`rows affected` says whether it applied).
#[derive(Clone, Debug)]
pub(crate) struct MfaStatements {
    pub(crate) claim_step: Statement,
    pub(crate) pending: Statement,
    pub(crate) enable: Statement,
    pub(crate) consume: Statement,
    pub(crate) regenerate: Statement,
    pub(crate) disable: Statement,
}

/// The fixed fields a user row is read from, in order, before the provider columns; each is
/// selected under its logical name.
pub(crate) const READ_FIELDS: [Field; 13] = [
    Field::Id,
    Field::Email,
    Field::Username,
    Field::HashedPassword,
    Field::IsActive,
    Field::IsSuperuser,
    Field::EmailVerified,
    Field::TokenVersion,
    Field::OauthProvider,
    Field::TotpSecretEncrypted,
    Field::TotpConfirmedAt,
    Field::TotpLastStep,
    Field::MfaRecoveryCodes,
];

/// Placeholders in order: `?` for SQLite, `$1`, `$2`, … for PostgreSQL.
struct Params {
    dialect: Dialect,
    args: Vec<Arg>,
}

impl Params {
    fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            args: Vec::new(),
        }
    }

    fn push(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        match self.dialect {
            Dialect::Sqlite => "?".to_owned(),
            Dialect::Postgres => format!("${}", self.args.len()),
        }
    }

    /// The current time: bound on SQLite (so it is stored as SQLAlchemy's text), SQL on
    /// PostgreSQL.
    fn now(&mut self) -> String {
        match self.dialect {
            Dialect::Sqlite => self.push(Arg::Now),
            Dialect::Postgres => "CURRENT_TIMESTAMP".to_owned(),
        }
    }
}

impl Queries {
    pub(crate) fn build(dialect: Dialect, cols: &Columns) -> Self {
        let table = cols.table.quoted();
        let projection = projection(dialect, cols);

        let select_by = |column: String, arg: Arg| {
            let p = Params::new(dialect).push(arg);
            Statement {
                sql: format!("SELECT {projection} FROM {table} WHERE {column} = {p}"),
                args: vec![arg],
            }
        };

        Self {
            by_id: select_by(quoted(cols, Field::Id), Arg::Id),
            by_email: cols
                .quoted(Field::Email)
                .map(|column| select_by(column, Arg::Email)),
            by_username: cols
                .quoted(Field::Username)
                .map(|column| select_by(column, Arg::Username)),
            insert: insert(dialect, cols, &table, &projection, None),
            update: update(dialect, cols, &table, &projection),
            create_table: create_table(dialect, cols),
            mfa: mfa_statements(dialect, cols, &table),
            providers: cols
                .providers()
                .iter()
                .map(|provider| {
                    let statements = ProviderStatements {
                        by_subject: select_by(provider.quoted(), Arg::Subject),
                        insert: insert(dialect, cols, &table, &projection, Some(provider)),
                        link: link(dialect, cols, &table, provider, false),
                        claim: link(dialect, cols, &table, provider, true),
                    };
                    (provider.provider.clone(), statements)
                })
                .collect(),
        }
    }
}

fn quoted(cols: &Columns, field: Field) -> String {
    cols.quoted(field).unwrap_or_else(|| quote(field.name()))
}

/// `"col" AS "field", …` for the columns the table has, provider columns (`{provider}_id`)
/// last. PostgreSQL casts integers to `BIGINT` and strings to `TEXT`, so `SERIAL`, `INTEGER` or
/// `VARCHAR` columns all read the same way.
fn projection(dialect: Dialect, cols: &Columns) -> String {
    let pg = dialect == Dialect::Postgres;
    let fields = READ_FIELDS.iter().filter_map(|&field| {
        let column = cols.quoted(field)?;
        let alias = quote(field.name());
        let expr = match (dialect, field) {
            // Only whether enrolment finished is read, never the time itself.
            (_, Field::TotpConfirmedAt) => format!("({column} IS NOT NULL)"),
            (Dialect::Postgres, Field::Id | Field::TokenVersion | Field::TotpLastStep) => {
                format!("CAST({column} AS BIGINT)")
            }
            (
                Dialect::Postgres,
                Field::Email
                | Field::Username
                | Field::HashedPassword
                | Field::OauthProvider
                | Field::TotpSecretEncrypted
                | Field::MfaRecoveryCodes,
            ) => format!("CAST({column} AS TEXT)"),
            _ => column,
        };
        Some(format!("{expr} AS {alias}"))
    });
    let providers = cols.providers().iter().map(|provider| {
        let column = provider.quoted();
        let alias = quote(&provider.field());
        if pg {
            format!("CAST({column} AS TEXT) AS {alias}")
        } else {
            format!("{column} AS {alias}")
        }
    });
    fields.chain(providers).collect::<Vec<_>>().join(", ")
}

/// Every column crudauth owns is written explicitly, so a table made by SQLAlchemy (whose
/// defaults live in Python, not in the database) accepts the row. With a `provider`, the row is
/// made from an account there: its column, `oauth_provider` and the OAuth timestamps are set.
fn insert(
    dialect: Dialect,
    cols: &Columns,
    table: &str,
    projection: &str,
    provider: Option<&ProviderColumn>,
) -> Statement {
    let mut params = Params::new(dialect);
    let mut names = Vec::new();
    let mut values = Vec::new();
    let mut written = vec![
        (cols.quoted(Field::Email), Some(Arg::Email)),
        (cols.quoted(Field::Username), Some(Arg::Username)),
        (
            cols.quoted(Field::HashedPassword),
            Some(Arg::HashedPassword),
        ),
        (cols.quoted(Field::IsActive), Some(Arg::IsActive)),
        (cols.quoted(Field::IsSuperuser), Some(Arg::IsSuperuser)),
        (cols.quoted(Field::EmailVerified), Some(Arg::EmailVerified)),
        (cols.quoted(Field::TokenVersion), Some(Arg::TokenVersion)),
        (cols.quoted(Field::CreatedAt), None),
    ];
    if let Some(provider) = provider {
        written.extend([
            (Some(provider.quoted()), Some(Arg::Subject)),
            (cols.quoted(Field::OauthProvider), Some(Arg::Provider)),
            (cols.quoted(Field::OauthCreatedAt), None),
            (cols.quoted(Field::OauthUpdatedAt), None),
        ]);
    }
    for (column, arg) in written {
        let Some(column) = column else {
            continue;
        };
        names.push(column);
        values.push(match arg {
            Some(arg) => params.push(arg),
            None => params.now(),
        });
    }
    Statement {
        sql: format!(
            "INSERT INTO {table} ({}) VALUES ({}) RETURNING {projection}",
            names.join(", "),
            values.join(", ")
        ),
        args: params.args,
    }
}

/// One statement for every change: `COALESCE(new, old)` keeps what was not given, and the
/// token version is incremented in place, so concurrent bumps never lose one.
fn update(dialect: Dialect, cols: &Columns, table: &str, projection: &str) -> Statement {
    let mut params = Params::new(dialect);
    let mut sets = Vec::new();
    for (field, arg) in [
        (Field::HashedPassword, Arg::HashedPassword),
        (Field::Email, Arg::Email),
        (Field::EmailVerified, Arg::EmailVerified),
        (Field::IsActive, Arg::IsActive),
    ] {
        if let Some(column) = cols.quoted(field) {
            let p = params.push(arg);
            sets.push(format!("{column} = COALESCE({p}, {column})"));
        }
    }
    if let Some(column) = cols.quoted(Field::TokenVersion) {
        let p = params.push(Arg::TokenVersion);
        sets.push(format!("{column} = {column} + {p}"));
    }
    if let Some(column) = cols.quoted(Field::UpdatedAt) {
        let now = params.now();
        sets.push(format!("{column} = {now}"));
    }
    let id = params.push(Arg::Id);
    Statement {
        sql: format!(
            "UPDATE {table} SET {} WHERE {} = {id} RETURNING {projection}",
            sets.join(", "),
            quoted(cols, Field::Id)
        ),
        args: params.args,
    }
}

/// The two-factor statements, each one `UPDATE` whose `WHERE` holds its condition; `None`
/// unless the table has all four columns.
fn mfa_statements(dialect: Dialect, cols: &Columns, table: &str) -> Option<MfaStatements> {
    let secret = cols.quoted(Field::TotpSecretEncrypted)?;
    let confirmed = cols.quoted(Field::TotpConfirmedAt)?;
    let last = cols.quoted(Field::TotpLastStep)?;
    let codes = cols.quoted(Field::MfaRecoveryCodes)?;
    let id = quoted(cols, Field::Id);
    // `sets` are (column, value) with a value of `Some(arg)`, `None` for NULL, or the time;
    // `condition` is written after `id = ?` and may bind more.
    enum Value {
        Bind(Arg),
        Null,
        Now,
    }
    let statement = |sets: &[(&str, Value)], condition: &dyn Fn(&mut Params) -> String| {
        let mut params = Params::new(dialect);
        let mut parts = Vec::new();
        for (column, value) in sets {
            let v = match value {
                Value::Bind(arg) => params.push(*arg),
                Value::Null => "NULL".to_owned(),
                Value::Now => params.now(),
            };
            parts.push(format!("{column} = {v}"));
        }
        if let Some(column) = cols.quoted(Field::UpdatedAt) {
            let now = params.now();
            parts.push(format!("{column} = {now}"));
        }
        let p = params.push(Arg::Id);
        let extra = condition(&mut params);
        Statement {
            sql: format!(
                "UPDATE {table} SET {} WHERE {id} = {p}{extra}",
                parts.join(", ")
            ),
            args: params.args,
        }
    };
    let none = |_: &mut Params| String::new();
    let finished = format!(" AND {confirmed} IS NOT NULL");
    Some(MfaStatements {
        claim_step: statement(&[(&last, Value::Bind(Arg::Step))], &|p| {
            let step = p.push(Arg::Step);
            format!(" AND ({last} IS NULL OR {last} < {step})")
        }),
        pending: statement(
            &[
                (&secret, Value::Bind(Arg::Secret)),
                (&confirmed, Value::Null),
                (&last, Value::Null),
                (&codes, Value::Null),
            ],
            &none,
        ),
        enable: statement(
            &[
                (&secret, Value::Bind(Arg::Secret)),
                (&confirmed, Value::Now),
                (&codes, Value::Bind(Arg::Codes)),
            ],
            &|p| {
                let pending = p.push(Arg::Pending);
                format!(" AND {confirmed} IS NULL AND {secret} = {pending}")
            },
        ),
        consume: statement(&[(&codes, Value::Bind(Arg::Codes))], &|p| {
            let expected = p.push(Arg::ExpectedCodes);
            format!("{finished} AND {codes} = {expected}")
        }),
        regenerate: statement(&[(&codes, Value::Bind(Arg::Codes))], &|_| finished.clone()),
        disable: statement(
            &[
                (&secret, Value::Null),
                (&confirmed, Value::Null),
                (&last, Value::Null),
                (&codes, Value::Null),
            ],
            &none,
        ),
    })
}

/// Links a provider account in one `UPDATE` whose `WHERE` holds the condition: the user has
/// no account of this provider yet and, for a `claim`, its email is unverified. A claim also
/// writes the unusable hash, verifies the email, clears the two-factor columns and moves
/// `token_version`, in the same statement. Columns the table lacks are not mentioned.
fn link(
    dialect: Dialect,
    cols: &Columns,
    table: &str,
    provider: &ProviderColumn,
    claim: bool,
) -> Statement {
    let yes = match dialect {
        Dialect::Sqlite => "1",
        Dialect::Postgres => "true",
    };
    let column = provider.quoted();
    let mut params = Params::new(dialect);
    let mut sets = vec![format!("{column} = {}", params.push(Arg::Subject))];
    if let Some(c) = cols.quoted(Field::OauthProvider) {
        sets.push(format!("{c} = {}", params.push(Arg::Provider)));
    }
    for field in [Field::OauthUpdatedAt, Field::UpdatedAt] {
        if let Some(c) = cols.quoted(field) {
            sets.push(format!("{c} = {}", params.now()));
        }
    }
    let mut condition = format!("{column} IS NULL");
    if claim {
        let hash = quoted(cols, Field::HashedPassword);
        sets.push(format!("{hash} = {}", params.push(Arg::HashedPassword)));
        if let Some(c) = cols.quoted(Field::EmailVerified) {
            sets.push(format!("{c} = {yes}"));
            // NULL reads as unverified, as everywhere else.
            condition.push_str(&format!(" AND ({c} IS NULL OR NOT {c})"));
        }
        for field in Field::MFA {
            if let Some(c) = cols.quoted(field) {
                sets.push(format!("{c} = NULL"));
            }
        }
        if let Some(c) = cols.quoted(Field::TokenVersion) {
            sets.push(format!("{c} = {c} + 1"));
        }
    }
    let id = params.push(Arg::Id);
    Statement {
        sql: format!(
            "UPDATE {table} SET {} WHERE {} = {id} AND {condition}",
            sets.join(", "),
            quoted(cols, Field::Id)
        ),
        args: params.args,
    }
}

/// crudauth's `AuthUserMixin` table (its Part 14.3), as SQLAlchemy creates it: unique indexes
/// named `ix_<table>_<column>`, booleans and timestamps typed as SQLAlchemy types them. The id
/// is `AUTOINCREMENT` on SQLite so a deleted user's id is never handed to someone else.
///
/// Every provider column of the map comes after `oauth_provider`, with a unique index:
/// crudauth's `google_id` and `github_id` as it types them, `VARCHAR(64)`, any other
/// `VARCHAR(255)`, the longest `sub` OpenID Connect allows. The login columns take the map's
/// lengths.
fn create_table(dialect: Dialect, cols: &Columns) -> Vec<String> {
    let pg = dialect == Dialect::Postgres;
    let timestamp = if pg {
        "TIMESTAMP WITH TIME ZONE"
    } else {
        "DATETIME"
    };
    let (yes, no, now) = if pg {
        ("true", "false", "now()")
    } else {
        ("1", "0", "CURRENT_TIMESTAMP")
    };
    let login = |field: LoginField| match cols.max_length(field) {
        Some(n) => format!("VARCHAR({n}) NOT NULL"),
        None => "TEXT NOT NULL".to_owned(),
    };
    let mut lines = Vec::new();
    for field in Field::ALL {
        if field == Field::OauthCreatedAt {
            for provider in cols.providers() {
                let length = if provider.is_crudauths() { 64 } else { 255 };
                lines.push(format!("    {} VARCHAR({length})", provider.quoted()));
            }
        }
        let Some(column) = cols.quoted(field) else {
            continue;
        };
        let definition = match field {
            Field::Id if pg => "SERIAL NOT NULL".to_owned(),
            Field::Id => "INTEGER PRIMARY KEY AUTOINCREMENT".to_owned(),
            Field::Email => login(LoginField::Email),
            Field::Username => login(LoginField::Username),
            Field::HashedPassword => "VARCHAR(255) NOT NULL".to_owned(),
            Field::IsActive => format!("BOOLEAN NOT NULL DEFAULT {yes}"),
            Field::IsSuperuser | Field::EmailVerified => {
                format!("BOOLEAN NOT NULL DEFAULT {no}")
            }
            Field::TokenVersion => "INTEGER NOT NULL DEFAULT 0".to_owned(),
            Field::OauthProvider => "VARCHAR(32)".to_owned(),
            Field::OauthCreatedAt | Field::OauthUpdatedAt | Field::UpdatedAt => {
                timestamp.to_owned()
            }
            Field::CreatedAt => format!("{timestamp} NOT NULL DEFAULT {now}"),
            Field::TotpSecretEncrypted => "VARCHAR(255)".to_owned(),
            Field::TotpConfirmedAt => timestamp.to_owned(),
            Field::TotpLastStep => "INTEGER".to_owned(),
            Field::MfaRecoveryCodes => "TEXT".to_owned(),
        };
        lines.push(format!("    {column} {definition}"));
    }
    if pg {
        lines.push(format!("    PRIMARY KEY ({})", quoted(cols, Field::Id)));
    }
    let table = cols.table.quoted();
    let mut statements = vec![format!(
        "CREATE TABLE IF NOT EXISTS {table} (\n{}\n)",
        lines.join(",\n")
    )];
    let unique = [Field::Email, Field::Username]
        .into_iter()
        .filter_map(|field| cols.get(field))
        .chain(cols.providers().iter().map(|p| p.column.as_str()));
    for column in unique {
        let index = quote(&format!("ix_{}_{column}", cols.table.name));
        // SQLite qualifies the index with the schema, PostgreSQL puts it beside its table.
        let statement = match (&cols.table.schema, pg) {
            (Some(schema), false) => format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {}.{index} ON {} ({})",
                quote(schema),
                quote(&cols.table.name),
                quote(column)
            ),
            _ => format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} ({})",
                quote(column)
            ),
        };
        statements.push(statement);
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ColumnMap;

    fn queries(dialect: Dialect, map: ColumnMap) -> Queries {
        Queries::build(dialect, &map.resolve().expect("a valid map"))
    }

    #[test]
    fn postgres_statements_number_their_parameters() {
        let q = queries(Dialect::Postgres, ColumnMap::new());
        assert!(q.by_id.sql.ends_with("FROM \"users\" WHERE \"id\" = $1"));
        assert!(q.by_id.sql.contains("CAST(\"id\" AS BIGINT) AS \"id\""));
        assert_eq!(
            q.update.sql,
            "UPDATE \"users\" SET \"hashed_password\" = COALESCE($1, \"hashed_password\"), \
             \"email\" = COALESCE($2, \"email\"), \"email_verified\" = COALESCE($3, \
             \"email_verified\"), \"is_active\" = COALESCE($4, \"is_active\"), \"token_version\" \
             = \"token_version\" + $5, \"updated_at\" = CURRENT_TIMESTAMP WHERE \"id\" = $6 \
             RETURNING "
                .to_owned()
                + &projection(
                    Dialect::Postgres,
                    &ColumnMap::new().resolve().expect("valid")
                )
        );
        assert_eq!(q.update.args.len(), 6);
        assert!(q.insert.sql.contains("CURRENT_TIMESTAMP"));
        assert!(!q.insert.args.contains(&Arg::Now));
    }

    #[test]
    fn sqlite_binds_the_time_as_text() {
        let q = queries(Dialect::Sqlite, ColumnMap::new());
        assert_eq!(q.insert.args.last(), Some(&Arg::Now));
        assert!(q.update.args.contains(&Arg::Now));
        assert!(q.update.sql.contains("\"updated_at\" = ?"));
        assert_eq!(q.insert.sql.matches('?').count(), q.insert.args.len());
        assert_eq!(q.update.sql.matches('?').count(), q.update.args.len());
    }

    #[test]
    fn absent_columns_are_never_mentioned() {
        let q = queries(
            Dialect::Sqlite,
            ColumnMap::new()
                .table("accounts")
                .column("hashed_password", "pw_hash")
                .without("is_superuser")
                .without("token_version")
                .without("updated_at"),
        );
        for sql in [&q.by_id.sql, &q.insert.sql, &q.update.sql] {
            assert!(!sql.contains("is_superuser"), "{sql}");
            assert!(!sql.contains("token_version"), "{sql}");
            assert!(!sql.contains("updated_at"), "{sql}");
            assert!(sql.contains("\"pw_hash\""), "{sql}");
            assert!(sql.contains("\"accounts\""), "{sql}");
        }
        assert!(!q.update.args.contains(&Arg::TokenVersion));
        assert!(!q.create_table[0].contains("is_superuser"));
    }

    #[test]
    fn two_factor_changes_are_single_conditional_updates() {
        let q = queries(Dialect::Postgres, ColumnMap::new().without("updated_at"));
        let mfa = q.mfa.expect("all four columns");
        assert_eq!(
            mfa.claim_step.sql,
            "UPDATE \"users\" SET \"totp_last_step\" = $1 WHERE \"id\" = $2 AND \
             (\"totp_last_step\" IS NULL OR \"totp_last_step\" < $3)"
        );
        assert_eq!(mfa.claim_step.args, [Arg::Step, Arg::Id, Arg::Step]);
        assert_eq!(
            mfa.enable.sql,
            "UPDATE \"users\" SET \"totp_secret_encrypted\" = $1, \"totp_confirmed_at\" = \
             CURRENT_TIMESTAMP, \"mfa_recovery_codes\" = $2 WHERE \"id\" = $3 AND \
             \"totp_confirmed_at\" IS NULL AND \"totp_secret_encrypted\" = $4"
        );
        assert_eq!(
            mfa.consume.sql,
            "UPDATE \"users\" SET \"mfa_recovery_codes\" = $1 WHERE \"id\" = $2 AND \
             \"totp_confirmed_at\" IS NOT NULL AND \"mfa_recovery_codes\" = $3"
        );
        assert!(mfa.disable.sql.contains("\"totp_secret_encrypted\" = NULL"));
        let q = queries(Dialect::Sqlite, ColumnMap::new());
        let mfa = q.mfa.expect("all four columns");
        for s in [
            &mfa.claim_step,
            &mfa.pending,
            &mfa.enable,
            &mfa.consume,
            &mfa.regenerate,
            &mfa.disable,
        ] {
            assert_eq!(s.sql.matches('?').count(), s.args.len(), "{}", s.sql);
            assert!(s.sql.contains("\"updated_at\" = ?"), "{}", s.sql);
        }
        assert!(q
            .by_id
            .sql
            .contains("(\"totp_confirmed_at\" IS NOT NULL) AS \"totp_confirmed_at\""));
        let q = queries(Dialect::Sqlite, ColumnMap::new().without("totp_last_step"));
        assert!(q.mfa.is_none());
        assert!(!q.by_id.sql.contains("totp_last_step"));
        assert!(!q.create_table[0].contains("totp_last_step"));
    }

    #[test]
    fn default_table_has_crudauths_shape() {
        let q = queries(Dialect::Postgres, ColumnMap::new().table("app.users"));
        assert!(q.create_table[0].starts_with("CREATE TABLE IF NOT EXISTS \"app\".\"users\""));
        assert!(q.create_table[0].contains("\"id\" SERIAL NOT NULL"));
        assert!(q.create_table[0].contains("\"email\" VARCHAR(320) NOT NULL"));
        assert_eq!(
            q.create_table[1],
            "CREATE UNIQUE INDEX IF NOT EXISTS \"ix_users_email\" ON \"app\".\"users\" (\"email\")"
        );
        assert_eq!(q.create_table.len(), 5);
        let q = queries(Dialect::Sqlite, ColumnMap::new().table("main.users"));
        assert!(q.create_table[0].contains("\"id\" INTEGER PRIMARY KEY AUTOINCREMENT"));
        assert_eq!(
            q.create_table[2],
            "CREATE UNIQUE INDEX IF NOT EXISTS \"main\".\"ix_users_username\" ON \"users\" \
             (\"username\")"
        );
    }
}
