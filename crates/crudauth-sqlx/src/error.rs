//! What setting up a [`SqlxUsers`](crate::SqlxUsers) can fail with, and how database errors
//! become [`UserStoreError`]s.

use crudauth_core::user::{LoginField, UserStoreError};
use sqlx::error::DatabaseError;

/// A column map, database URL or connection that cannot make a working user store.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A table, schema or column name that is not a plain SQL identifier.
    #[error(
        "invalid {what} name {name:?}: use a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most \
         63 characters; a table may be schema.table)"
    )]
    InvalidIdentifier {
        /// What the name was for: `table`, `schema` or `column`.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// A logical field crudauth does not know.
    #[error(
        "unknown user field {name:?}: the fields are id, email, username, hashed_password, \
         is_active, is_superuser, email_verified, token_version, oauth_provider, \
         oauth_created_at, oauth_updated_at, created_at, updated_at, totp_secret_encrypted, \
         totp_confirmed_at, totp_last_step, mfa_recovery_codes, and {{provider}}_id for google, \
         github and each provider declared with ColumnMap::provider"
    )]
    UnknownField {
        /// The name given.
        name: String,
    },
    /// An OAuth provider name that cannot name a column.
    #[error(
        "invalid OAuth provider name {name:?}: use lower-case letters, digits and _, starting \
         with a letter ([a-z][a-z0-9_]*), at most 32 characters (the name is stored in \
         oauth_provider, and its column is {{provider}}_id)"
    )]
    InvalidProvider {
        /// The name given.
        name: String,
    },
    /// A maximum length crudauth cannot use.
    #[error("column map: maximum length of {field:?}: {reason}")]
    InvalidMaxLength {
        /// The logical field given.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A field every user table must have was left out.
    #[error("the user table must have a {field} column; map it with ColumnMap::column instead")]
    Required {
        /// The logical field.
        field: &'static str,
    },
    /// Two settings of the column map contradict each other.
    #[error("column map: field {field}: {reason}")]
    Conflicting {
        /// The logical field concerned.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A database URL that names neither SQLite nor PostgreSQL, or that does not parse.
    #[error(
        "unsupported user database URL {url:?}: {reason} (use sqlite:path/to/file.db?mode=rwc \
         or postgres://user@host/db)"
    )]
    InvalidUrl {
        /// The URL, with any password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be reached or opened.
    #[error("cannot connect to the user database at {url}: {reason}")]
    Connect {
        /// The URL, with any password hidden.
        url: String,
        /// The driver's account of the failure, with a hint.
        reason: String,
    },
}

/// What a statement needs to explain its failures: the table and the login columns.
#[derive(Clone, Debug)]
pub(crate) struct ErrorContext {
    pub(crate) dialect: &'static str,
    pub(crate) table: String,
    pub(crate) email: Option<String>,
    pub(crate) username: Option<String>,
    /// The provider columns, whose unique violations are conflicts.
    pub(crate) providers: Vec<String>,
}

impl ErrorContext {
    /// Turns a driver error into the port's error: unique violations on a login column name the
    /// field, other unique violations (a provider account linked already) are a conflict,
    /// everything else is unavailability.
    pub(crate) fn map(&self, error: sqlx::Error) -> UserStoreError {
        match error {
            sqlx::Error::Database(db) if db.is_unique_violation() => self.unique_violation(&*db),
            sqlx::Error::Database(db) => UserStoreError::Unavailable(format!(
                "the {} user table {} refused the statement: {}{}",
                self.dialect,
                self.table,
                db.message(),
                schema_hint(db.message(), db.code().as_deref())
            )),
            e @ (sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::Decode(_)
            | sqlx::Error::TypeNotFound { .. }) => UserStoreError::Unavailable(format!(
                "cannot read a user row from {} table {}: {e} (do the column types match \
                 crudauth's users table?)",
                self.dialect, self.table
            )),
            e @ (sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed) => UserStoreError::Unavailable(format!(
                "cannot reach the {} user database: {e}",
                self.dialect
            )),
            e => UserStoreError::Unavailable(format!(
                "{} user database error on table {}: {e}",
                self.dialect, self.table
            )),
        }
    }

    fn unique_violation(&self, db: &dyn DatabaseError) -> UserStoreError {
        let is = |column: &Option<String>, name: &str| {
            column
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(name))
        };
        let columns = violated_columns(db);
        let field = match columns.as_slice() {
            [one] if is(&self.email, one) => Some(LoginField::Email),
            [one] if is(&self.username, one) => Some(LoginField::Username),
            [] => db.constraint().and_then(|c| self.field_of_constraint(c)),
            _ => None,
        };
        match field {
            Some(field) => UserStoreError::Duplicate { field },
            None => UserStoreError::Conflict,
        }
    }

    /// Guesses the login field from a constraint or index name (`users_email_key`,
    /// `ix_users_email`, `uq_users_email`), for when the error names no column. The longest
    /// column the name ends with wins, so `ix_users_oidc_email`, a provider column, is no email.
    fn field_of_constraint(&self, constraint: &str) -> Option<LoginField> {
        let constraint = constraint.to_ascii_lowercase();
        let names = |column: &str| {
            let column = column.to_ascii_lowercase();
            constraint.ends_with(&format!("_{column}"))
                || constraint.ends_with(&format!("_{column}_key"))
                || constraint.ends_with(&format!("_{column}_idx"))
        };
        let login = [
            (self.email.as_deref(), Some(LoginField::Email)),
            (self.username.as_deref(), Some(LoginField::Username)),
        ];
        let providers = self.providers.iter().map(|c| (Some(c.as_str()), None));
        login
            .into_iter()
            .chain(providers)
            .filter_map(|(column, field)| Some((column?, field)))
            .filter(|(column, _)| names(column))
            .max_by_key(|(column, _)| column.len())
            .and_then(|(_, field)| field)
    }
}

/// The columns a unique violation names: SQLite says `UNIQUE constraint failed: users.email`,
/// PostgreSQL's detail says `Key (email)=(…) already exists.`
fn violated_columns(db: &dyn DatabaseError) -> Vec<String> {
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return pg.detail().map(pg_key_columns).unwrap_or_default();
    }
    match db.message().split_once("UNIQUE constraint failed: ") {
        Some((_, list)) if !list.starts_with("index ") => list
            .split(", ")
            .map(|qualified| {
                let column = qualified.rsplit('.').next().unwrap_or(qualified);
                column.trim().to_owned()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `Key (email)=(a@b.c) already exists.` → `["email"]`; `Key ("Email", tenant)=…` →
/// `["Email", "tenant"]`. Expression indexes (`lower(email)`) name no plain column.
fn pg_key_columns(detail: &str) -> Vec<String> {
    let Some(rest) = detail.strip_prefix("Key (") else {
        return Vec::new();
    };
    let Some((list, _)) = rest.split_once(")=(") else {
        return Vec::new();
    };
    let columns: Vec<String> = list
        .split(", ")
        .map(|c| c.trim_matches('"').to_owned())
        .collect();
    let plain = |c: &String| c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if columns.iter().all(plain) {
        columns
    } else {
        Vec::new()
    }
}

/// A hint for the usual set-up mistakes: no table yet, or a column the table lacks.
fn schema_hint(message: &str, code: Option<&str>) -> &'static str {
    let message = message.to_ascii_lowercase();
    if code == Some("42P01") || message.contains("no such table") {
        " (create it with SqlxUsers::create_default_table(), or point the ColumnMap at your table)"
    } else if code == Some("42703") || message.contains("no such column") {
        " (map the column with ColumnMap::column, or declare it absent with ColumnMap::without)"
    } else if code == Some("23502") || message.contains("not null constraint failed") {
        " (a column crudauth does not fill needs a default, or the row lacks a login field)"
    } else {
        ""
    }
}

/// The URL with any password replaced by `***`, for messages and logs.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/app?sslmode=require"),
            "postgres://app:***@db.internal:5432/app?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/app?user=app&password=s3cret"),
            "postgres://db/app?user=app&password=***"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(
            redact_url("sqlite:users.db?mode=rwc"),
            "sqlite:users.db?mode=rwc"
        );
    }

    #[test]
    fn postgres_key_details_name_columns() {
        assert_eq!(
            pg_key_columns("Key (email)=(a@b.c) already exists."),
            ["email"]
        );
        assert_eq!(
            pg_key_columns("Key (\"Email\", tenant)=(a@b.c, 1) already exists."),
            ["Email", "tenant"]
        );
        assert!(pg_key_columns("Key (lower(email::text))=(a@b.c) already exists.").is_empty());
        assert!(pg_key_columns("something else").is_empty());
    }

    #[test]
    fn constraint_names_are_recognised() {
        let ctx = ErrorContext {
            dialect: "postgres",
            table: "users".to_owned(),
            email: Some("email".to_owned()),
            username: Some("username".to_owned()),
            providers: vec!["google_id".to_owned(), "oidc_email".to_owned()],
        };
        assert_eq!(
            ctx.field_of_constraint("users_email_key"),
            Some(LoginField::Email)
        );
        assert_eq!(
            ctx.field_of_constraint("ix_users_username"),
            Some(LoginField::Username)
        );
        assert_eq!(ctx.field_of_constraint("ix_users_google_id"), None);
        assert_eq!(
            ctx.field_of_constraint("ix_users_oidc_email"),
            None,
            "a provider column that ends like a login column is no login column"
        );
    }
}
