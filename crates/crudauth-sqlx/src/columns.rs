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

use crudauth_core::user::LoginField;

use crate::error::SetupError;

/// The OAuth providers crudauth's own table has a column for: `google_id` and `github_id`.
pub(crate) const DEFAULT_PROVIDERS: [&str; 2] = ["google", "github"];

/// The longest provider name: it is written into `oauth_provider`, crudauth's `VARCHAR(32)`.
const PROVIDER_NAME_MAX: usize = 32;

/// crudauth's `email` column, `String(320)`.
const EMAIL_MAX_LENGTH: usize = 320;

/// crudauth's `username` column, `String(64)`.
const USERNAME_MAX_LENGTH: usize = 64;

/// A fixed logical user field (crudauth's `AuthUserMixin` columns, Part 14 of its contract);
/// the provider columns (`{provider}_id`) are [`ProviderColumn`]s.
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
    /// Every fixed field, in the default table's column order (the provider columns, which
    /// depend on the map, come after `oauth_provider`).
    pub(crate) const ALL: [Field; 17] = [
        Field::Id,
        Field::Email,
        Field::Username,
        Field::HashedPassword,
        Field::IsActive,
        Field::IsSuperuser,
        Field::EmailVerified,
        Field::TokenVersion,
        Field::OauthProvider,
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
/// `token_version`, `oauth_provider`, `oauth_created_at`, `oauth_updated_at`, the bookkeeping
/// `created_at` and `updated_at`, the two-factor columns `totp_secret_encrypted`,
/// `totp_confirmed_at`, `totp_last_step` and `mfa_recovery_codes` (two-factor authentication
/// needs all four), and one `{provider}_id` per OAuth provider: `google_id` and `github_id`,
/// plus those declared with [`provider`](Self::provider).
///
/// A field that is not mentioned keeps its logical name as its column name; the default map is
/// crudauth's own `users` table. A field left out with [`without`](Self::without) degrades as
/// crudauth does: no `is_active` reads as active, no `is_superuser` or `email_verified` as false,
/// no `token_version` as 0 (and a bump changes nothing, so bearer tokens cannot be revoked), no
/// `{provider}_id` means that provider cannot sign anyone in. `id` and `hashed_password` cannot
/// be left out.
///
/// ```
/// use crudauth_sqlx::ColumnMap;
///
/// // crudauth's table, plus the `oidc_id` column an app added for its own identity provider,
/// // and no Google sign-in.
/// let columns = ColumnMap::new().provider("oidc").without("google_id");
/// # let _ = columns;
/// ```
///
/// The map is only recorded here; [`SqlxUsers::with_columns`](crate::SqlxUsers::with_columns)
/// validates it and builds the SQL once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnMap {
    table: Option<String>,
    renames: Vec<(String, String)>,
    absent: Vec<String>,
    providers: Vec<String>,
    lengths: Vec<(String, Option<usize>)>,
}

impl ColumnMap {
    /// The default map: table `users`, every column named as its logical field, the providers
    /// `google` and `github`, and crudauth's lengths (email 320, username 64).
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

    /// Declares the OAuth provider `name` (`oidc`, `keycloak`, …, as the application configures
    /// it): its account ids live in the logical field `{name}_id`, in the column of that name
    /// unless [`column`](Self::column) maps it elsewhere. `google` and `github` are declared
    /// already; leave one out with `without("google_id")`.
    ///
    /// A name is `[a-z][a-z0-9_]*`, at most 32 characters (it is stored in `oauth_provider`,
    /// crudauth's `VARCHAR(32)`); another is refused by
    /// [`with_columns`](crate::SqlxUsers::with_columns).
    pub fn provider(mut self, name: impl Into<String>) -> Self {
        self.providers.push(name.into());
        self
    }

    /// The longest value the `email` or `username` column holds, in characters, when the table
    /// is not crudauth's (`VARCHAR(320)` and `VARCHAR(64)` there): a longer provider email is
    /// refused, and user names made for provider accounts are cut to it.
    pub fn max_length(mut self, field: impl Into<String>, chars: usize) -> Self {
        self.lengths.push((field.into(), Some(chars)));
        self
    }

    /// Declares that the `email` or `username` column has no length limit (`TEXT`).
    pub fn unbounded(mut self, field: impl Into<String>) -> Self {
        self.lengths.push((field.into(), None));
        self
    }

    /// Checks every name and settles each field's column.
    pub(crate) fn resolve(&self) -> Result<Columns, SetupError> {
        let mut cols = Columns::crudauth_default();
        if let Some(name) = &self.table {
            cols.table = TableName::parse(name)?;
        }
        for name in &self.providers {
            check_provider(name)?;
            if cols.providers.iter().all(|p| p.provider != *name) {
                cols.providers.push(ProviderColumn::named(name));
            }
        }
        // Provider columns are dropped once the map is applied, so that indexes stay put.
        let mut provider_names: Vec<Option<String>> = cols
            .providers
            .iter()
            .map(|p| Some(p.column.clone()))
            .collect();
        let mut renamed = Vec::new();
        for (logical, column) in &self.renames {
            let slot = cols.slot(logical)?;
            check_identifier("column", column)?;
            if renamed.contains(&slot) {
                return Err(SetupError::Conflicting {
                    field: logical.clone(),
                    reason: "it is mapped twice".to_owned(),
                });
            }
            renamed.push(slot);
            match slot {
                Slot::Field(field) => cols.names[field.index()] = Some(column.clone()),
                Slot::Provider(i) => provider_names[i] = Some(column.clone()),
            }
        }
        for logical in &self.absent {
            let slot = cols.slot(logical)?;
            if let Slot::Field(field) = slot {
                if !field.may_be_absent() {
                    return Err(SetupError::Required {
                        field: field.name(),
                    });
                }
            }
            if renamed.contains(&slot) {
                return Err(SetupError::Conflicting {
                    field: logical.clone(),
                    reason: "it is both mapped to a column and left out".to_owned(),
                });
            }
            match slot {
                Slot::Field(field) => cols.names[field.index()] = None,
                Slot::Provider(i) => provider_names[i] = None,
            }
        }
        let mut limited = Vec::new();
        for (logical, chars) in &self.lengths {
            let field = match logical.as_str() {
                "email" => LoginField::Email,
                "username" => LoginField::Username,
                _ => {
                    return Err(SetupError::InvalidMaxLength {
                        field: logical.clone(),
                        reason: "only email and username have a length crudauth uses",
                    })
                }
            };
            if *chars == Some(0) {
                return Err(SetupError::InvalidMaxLength {
                    field: logical.clone(),
                    reason: "a column of length 0 holds no value",
                });
            }
            if limited.contains(&field) {
                return Err(SetupError::Conflicting {
                    field: logical.clone(),
                    reason: "its maximum length is given twice".to_owned(),
                });
            }
            limited.push(field);
            match field {
                LoginField::Email => cols.email_max_length = *chars,
                LoginField::Username => cols.username_max_length = *chars,
            }
        }
        cols.providers = cols
            .providers
            .into_iter()
            .zip(provider_names)
            .filter_map(|(p, column)| {
                Some(ProviderColumn {
                    column: column?,
                    ..p
                })
            })
            .collect();
        cols.check_distinct()?;
        Ok(cols)
    }
}

/// Where a logical name lands: a fixed field, or the provider column at this index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Field(Field),
    Provider(usize),
}

/// An OAuth provider's column: the provider's name (`github`) and the column holding its
/// account ids (`github_id` unless mapped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProviderColumn {
    pub(crate) provider: String,
    pub(crate) column: String,
}

impl ProviderColumn {
    /// The provider `name`, its column named as its logical field.
    fn named(name: &str) -> Self {
        Self {
            provider: name.to_owned(),
            column: format!("{name}_id"),
        }
    }

    /// The logical field, `{provider}_id`; also the column's alias in the store's projection.
    pub(crate) fn field(&self) -> String {
        format!("{}_id", self.provider)
    }

    /// The quoted column.
    pub(crate) fn quoted(&self) -> String {
        quote(&self.column)
    }

    /// Whether crudauth's own table has this column (`google_id`, `github_id`).
    pub(crate) fn is_crudauths(&self) -> bool {
        DEFAULT_PROVIDERS.contains(&self.provider.as_str())
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

/// The resolved map: the table, each fixed field's column (`None` where the table has none),
/// the provider columns the table has, and the login columns' lengths.
#[derive(Clone, Debug)]
pub(crate) struct Columns {
    pub(crate) table: TableName,
    names: Vec<Option<String>>,
    providers: Vec<ProviderColumn>,
    email_max_length: Option<usize>,
    username_max_length: Option<usize>,
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
            providers: DEFAULT_PROVIDERS
                .iter()
                .map(|p| ProviderColumn::named(p))
                .collect(),
            email_max_length: Some(EMAIL_MAX_LENGTH),
            username_max_length: Some(USERNAME_MAX_LENGTH),
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

    /// The provider columns the table has, crudauth's first, then in declaration order.
    pub(crate) fn providers(&self) -> &[ProviderColumn] {
        &self.providers
    }

    /// The column of the provider named `provider`, if the table has one.
    pub(crate) fn provider(&self, provider: &str) -> Option<&ProviderColumn> {
        self.providers.iter().find(|p| p.provider == provider)
    }

    /// The longest value the login column `field` holds; `None` when it has no limit, or no
    /// column.
    pub(crate) fn max_length(&self, field: LoginField) -> Option<usize> {
        match field {
            LoginField::Email if self.has(Field::Email) => self.email_max_length,
            LoginField::Username if self.has(Field::Username) => self.username_max_length,
            _ => None,
        }
    }

    /// The slot a logical name names: a fixed field, or the `{provider}_id` of a declared
    /// provider.
    fn slot(&self, logical: &str) -> Result<Slot, SetupError> {
        if let Some(field) = Field::parse(logical) {
            return Ok(Slot::Field(field));
        }
        self.providers
            .iter()
            .position(|p| p.field() == logical)
            .map(Slot::Provider)
            .ok_or_else(|| SetupError::UnknownField {
                name: logical.to_owned(),
            })
    }

    /// Refuses two fields on one column (compared as SQL compares unquoted names, ignoring
    /// case).
    fn check_distinct(&self) -> Result<(), SetupError> {
        let columns: Vec<(String, &str)> = Field::ALL
            .iter()
            .zip(&self.names)
            .filter_map(|(f, c)| Some((f.name().to_owned(), c.as_deref()?)))
            .chain(
                self.providers
                    .iter()
                    .map(|p| (p.field(), p.column.as_str())),
            )
            .collect();
        for (i, (first, a)) in columns.iter().enumerate() {
            if let Some((later, _)) = columns[i + 1..]
                .iter()
                .find(|(_, b)| b.eq_ignore_ascii_case(a))
            {
                return Err(SetupError::Conflicting {
                    field: later.clone(),
                    reason: format!("its column {a:?} is also the column of {first}"),
                });
            }
        }
        Ok(())
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

/// Accepts a provider name `[a-z][a-z0-9_]*` of at most 32 characters.
fn check_provider(name: &str) -> Result<(), SetupError> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if starts_well && rest_ok && name.len() <= PROVIDER_NAME_MAX {
        Ok(())
    } else {
        Err(SetupError::InvalidProvider {
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
