//! The column map: crudauth's logical user fields, resolved to the real table and columns.
//!
//! ```
//! use crudauth_sqlx::ColumnMap;
//!
//! // An existing `accounts` table whose hash column is `pw_hash` and that has no superusers.
//! let columns = ColumnMap::new()
//!     .table("accounts")
//!     .column("hashed_password", "pw_hash")
//!     .without("is_superuser");
//! # let _ = columns;
//! ```
//!
//! Names are checked when the map is handed to [`SqlxUsers::with_columns`](crate::SqlxUsers):
//! they are interpolated into SQL, so only plain identifiers (`[A-Za-z_][A-Za-z0-9_]*`, at most
//! 63 characters, the table optionally as `schema.table`) are accepted. Values are always bound
//! as parameters.

use crate::error::SetupError;

/// A logical user field (crudauth's `AuthUserMixin` columns, Part 14 of its contract).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Field {
    Id,
    Email,
    Username,
    HashedPassword,
    IsActive,
    IsSuperuser,
    EmailVerified,
    TokenVersion,
    OauthProvider,
    GoogleId,
    GithubId,
    OauthCreatedAt,
    OauthUpdatedAt,
    CreatedAt,
    UpdatedAt,
    TotpSecretEncrypted,
    TotpConfirmedAt,
    TotpLastStep,
    MfaRecoveryCodes,
}

impl Field {
    /// Every field, in the default table's column order.
    pub(crate) const ALL: [Field; 19] = [
        Field::Id,
        Field::Email,
        Field::Username,
        Field::HashedPassword,
        Field::IsActive,
        Field::IsSuperuser,
        Field::EmailVerified,
        Field::TokenVersion,
        Field::OauthProvider,
        Field::GoogleId,
        Field::GithubId,
        Field::OauthCreatedAt,
        Field::OauthUpdatedAt,
        Field::CreatedAt,
        Field::UpdatedAt,
        Field::TotpSecretEncrypted,
        Field::TotpConfirmedAt,
        Field::TotpLastStep,
        Field::MfaRecoveryCodes,
    ];

    /// The two-factor columns, which come and go together.
    pub(crate) const MFA: [Field; 4] = [
        Field::TotpSecretEncrypted,
        Field::TotpConfirmedAt,
        Field::TotpLastStep,
        Field::MfaRecoveryCodes,
    ];

    /// The logical name, which is also the default column name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Email => "email",
            Field::Username => "username",
            Field::HashedPassword => "hashed_password",
            Field::IsActive => "is_active",
            Field::IsSuperuser => "is_superuser",
            Field::EmailVerified => "email_verified",
            Field::TokenVersion => "token_version",
            Field::OauthProvider => "oauth_provider",
            Field::GoogleId => "google_id",
            Field::GithubId => "github_id",
            Field::OauthCreatedAt => "oauth_created_at",
            Field::OauthUpdatedAt => "oauth_updated_at",
            Field::CreatedAt => "created_at",
            Field::UpdatedAt => "updated_at",
            Field::TotpSecretEncrypted => "totp_secret_encrypted",
            Field::TotpConfirmedAt => "totp_confirmed_at",
            Field::TotpLastStep => "totp_last_step",
            Field::MfaRecoveryCodes => "mfa_recovery_codes",
        }
    }

    fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether a table may lack this column (crudauth degrades gracefully without it).
    fn may_be_absent(self) -> bool {
        !matches!(self, Field::Id | Field::HashedPassword)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which table holds the users and what its columns are called, for crudauth's logical fields:
/// `id`, `email`, `username`, `hashed_password`, `is_active`, `is_superuser`, `email_verified`,
/// `token_version`, `oauth_provider`, `google_id`, `github_id`, `oauth_created_at`,
/// `oauth_updated_at`, the bookkeeping `created_at` and `updated_at`, and the two-factor
/// columns `totp_secret_encrypted`, `totp_confirmed_at`, `totp_last_step` and
/// `mfa_recovery_codes` (two-factor authentication needs all four).
///
/// A field that is not mentioned keeps its logical name as its column name; the default map is
/// crudauth's own `users` table. A field left out with [`without`](Self::without) degrades as
/// crudauth does: no `is_active` reads as active, no `is_superuser` or `email_verified` as false,
/// no `token_version` as 0 (and a bump changes nothing, so bearer tokens cannot be revoked).
/// `id` and `hashed_password` cannot be left out.
///
/// The map is only recorded here; [`SqlxUsers::with_columns`](crate::SqlxUsers::with_columns)
/// validates it and builds the SQL once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnMap {
    table: Option<String>,
    renames: Vec<(String, String)>,
    absent: Vec<String>,
}

impl ColumnMap {
    /// The default map: table `users`, every column named as its logical field.
    pub fn new() -> Self {
        Self::default()
    }

    /// The user table's name, `table` or `schema.table`.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = Some(name.into());
        self
    }

    /// Maps the logical `field` to the real `column`.
    pub fn column(mut self, field: impl Into<String>, column: impl Into<String>) -> Self {
        self.renames.push((field.into(), column.into()));
        self
    }

    /// Declares that the table has no column for the logical `field`.
    pub fn without(mut self, field: impl Into<String>) -> Self {
        self.absent.push(field.into());
        self
    }

    /// Declares that the table has none of the four two-factor columns (a crudauth table made
    /// without `mfa=True`): everything else works, and turning two-factor authentication on is
    /// refused at `build()`, naming the columns to add.
    pub fn without_mfa(mut self) -> Self {
        for field in Field::MFA {
            self.absent.push(field.name().to_owned());
        }
        self
    }

    /// Checks every name and settles each field's column.
    pub(crate) fn resolve(&self) -> Result<Columns, SetupError> {
        let Columns {
            mut table,
            mut names,
        } = Columns::crudauth_default();
        if let Some(name) = &self.table {
            table = TableName::parse(name)?;
        }
        let mut renamed = vec![false; Field::ALL.len()];
        for (logical, column) in &self.renames {
            let field = Field::parse(logical).ok_or_else(|| SetupError::UnknownField {
                name: logical.clone(),
            })?;
            check_identifier("column", column)?;
            if renamed[field.index()] {
                return Err(SetupError::Conflicting {
                    field: field.name(),
                    reason: "it is mapped twice".to_owned(),
                });
            }
            renamed[field.index()] = true;
            names[field.index()] = Some(column.clone());
        }
        for logical in &self.absent {
            let field = Field::parse(logical).ok_or_else(|| SetupError::UnknownField {
                name: logical.clone(),
            })?;
            if !field.may_be_absent() {
                return Err(SetupError::Required {
                    field: field.name(),
                });
            }
            if renamed[field.index()] {
                return Err(SetupError::Conflicting {
                    field: field.name(),
                    reason: "it is both mapped to a column and left out".to_owned(),
                });
            }
            names[field.index()] = None;
        }
        for (i, a) in names.iter().enumerate() {
            let Some(a) = a else { continue };
            if let Some(j) = names[i + 1..]
                .iter()
                .position(|b| b.as_deref().is_some_and(|b| b.eq_ignore_ascii_case(a)))
            {
                return Err(SetupError::Conflicting {
                    field: Field::ALL[i + 1 + j].name(),
                    reason: format!(
                        "its column {a:?} is also the column of {}",
                        Field::ALL[i].name()
                    ),
                });
            }
        }
        Ok(Columns { table, names })
    }
}

/// A validated, possibly schema-qualified table name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableName {
    pub(crate) schema: Option<String>,
    pub(crate) name: String,
}

impl TableName {
    fn parse(full: &str) -> Result<Self, SetupError> {
        let (schema, name) = match full.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, full),
        };
        let invalid = || SetupError::InvalidIdentifier {
            what: "table",
            name: full.to_owned(),
        };
        if let Some(schema) = schema {
            check_identifier("schema", schema).map_err(|_| invalid())?;
        }
        check_identifier("table", name).map_err(|_| invalid())?;
        Ok(Self {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// As written in SQL: `"schema"."table"` or `"table"`.
    pub(crate) fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(&self.name)),
            None => quote(&self.name),
        }
    }

    /// As shown in messages: `schema.table` or `table`.
    pub(crate) fn display(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{schema}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The resolved map: the table and each field's column, `None` where the table has none.
#[derive(Clone, Debug)]
pub(crate) struct Columns {
    pub(crate) table: TableName,
    names: Vec<Option<String>>,
}

impl Columns {
    /// crudauth's own `users` table, every column named as its field.
    pub(crate) fn crudauth_default() -> Self {
        Self {
            table: TableName {
                schema: None,
                name: "users".to_owned(),
            },
            names: Field::ALL
                .iter()
                .map(|f| Some(f.name().to_owned()))
                .collect(),
        }
    }

    /// The column of `field`, if the table has one.
    pub(crate) fn get(&self, field: Field) -> Option<&str> {
        self.names[field.index()].as_deref()
    }

    /// The quoted column of `field`, if the table has one.
    pub(crate) fn quoted(&self, field: Field) -> Option<String> {
        self.get(field).map(quote)
    }

    /// Whether the table has a column for `field`.
    pub(crate) fn has(&self, field: Field) -> bool {
        self.get(field).is_some()
    }
}

/// Double-quotes an identifier that [`check_identifier`] accepted (so it holds no quote).
pub(crate) fn quote(identifier: &str) -> String {
    format!("\"{identifier}\"")
}

/// Accepts `[A-Za-z_][A-Za-z0-9_]*` of at most 63 characters (PostgreSQL's limit; longer names
/// would be silently truncated there).
fn check_identifier(what: &'static str, name: &str) -> Result<(), SetupError> {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if starts_well && rest_ok && name.len() <= 63 {
        Ok(())
    } else {
        Err(SetupError::InvalidIdentifier {
            what,
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_map_is_crudauths_users_table() {
        let cols = ColumnMap::new().resolve().expect("a valid map");
        assert_eq!(cols.names, Columns::crudauth_default().names);
        assert_eq!(cols.table, Columns::crudauth_default().table);
        assert_eq!(cols.table.quoted(), "\"users\"");
        for field in Field::ALL {
            assert_eq!(cols.get(field), Some(field.name()));
        }
    }

    #[test]
    fn renames_and_absences_apply() {
        let cols = ColumnMap::new()
            .table("auth.accounts")
            .column("hashed_password", "pw_hash")
            .without("is_superuser")
            .resolve()
            .expect("a valid map");
        assert_eq!(cols.table.quoted(), "\"auth\".\"accounts\"");
        assert_eq!(cols.table.display(), "auth.accounts");
        assert_eq!(cols.get(Field::HashedPassword), Some("pw_hash"));
        assert_eq!(cols.get(Field::IsSuperuser), None);
        assert_eq!(cols.get(Field::Email), Some("email"));
    }

    #[test]
    fn hostile_identifiers_are_refused() {
        for bad in [
            "users; DROP TABLE users",
            "us\"ers",
            "1users",
            "",
            "a.b.c",
            ".users",
            "users.",
            "us-ers",
            "usérs",
            &"x".repeat(64),
        ] {
            assert!(
                matches!(
                    ColumnMap::new().table(bad).resolve(),
                    Err(SetupError::InvalidIdentifier { what: "table", .. })
                ),
                "table {bad:?} was accepted"
            );
            assert!(
                matches!(
                    ColumnMap::new().column("email", bad).resolve(),
                    Err(SetupError::InvalidIdentifier { .. })
                ),
                "column {bad:?} was accepted"
            );
        }
    }

    #[test]
    fn mistakes_in_the_map_are_refused() {
        assert!(matches!(
            ColumnMap::new().column("password", "pw").resolve(),
            Err(SetupError::UnknownField { .. })
        ));
        assert!(matches!(
            ColumnMap::new().without("hashed_password").resolve(),
            Err(SetupError::Required {
                field: "hashed_password"
            })
        ));
        assert!(matches!(
            ColumnMap::new().without("id").resolve(),
            Err(SetupError::Required { field: "id" })
        ));
        assert!(matches!(
            ColumnMap::new()
                .column("is_active", "active")
                .without("is_active")
                .resolve(),
            Err(SetupError::Conflicting { .. })
        ));
        assert!(matches!(
            ColumnMap::new().column("username", "email").resolve(),
            Err(SetupError::Conflicting { .. })
        ));
        assert!(matches!(
            ColumnMap::new()
                .column("email", "a")
                .column("email", "b")
                .resolve(),
            Err(SetupError::Conflicting { .. })
        ));
    }
}
