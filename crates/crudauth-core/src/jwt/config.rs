//! Lifetimes and the scope policy of bearer tokens.

use std::time::Duration;

/// A bearer configuration that cannot work, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bearer tokens: {0}")]
pub struct TokenConfigError(pub String);

/// Lifetimes and the scope policy of bearer tokens, validated by [`TokenConfig::check`].
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Access-token lifetime (crudauth's default: 900 s).
    pub access_ttl: Duration,
    /// A sign-in's refresh lifetime (30 days). It is absolute: rotation never extends it.
    pub refresh_ttl: Duration,
    /// How long after a rotation the token it replaced may be presented again without
    /// revoking the family (default zero: any reuse revokes). See [`super::BearerTokens`].
    pub reuse_grace: Duration,
    /// Clock-skew allowance on `exp` and `nbf` (default zero, at most 60 s).
    pub leeway: Duration,
    /// Scopes granted when a sign-in asks for none.
    pub default_scopes: Vec<String>,
    /// The ceiling: requested scopes outside it are dropped. `None`: the default scopes.
    pub grantable_scopes: Option<Vec<String>>,
    /// The `iss` every token carries and must carry to be accepted (default `crudauth`).
    pub issuer: String,
    /// The `aud` every token carries and must name to be accepted (default `crudauth-api`).
    /// Give each API that shares a `SECRET_KEY` its own, so one's tokens are refused by the
    /// other.
    pub audience: String,
}

/// The default `iss` of bearer tokens.
pub const DEFAULT_ISSUER: &str = "crudauth";
/// The default `aud` of bearer tokens.
pub const DEFAULT_AUDIENCE: &str = "crudauth-api";

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            reuse_grace: Duration::ZERO,
            leeway: Duration::ZERO,
            default_scopes: Vec::new(),
            grantable_scopes: None,
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
        }
    }
}

/// The longest access-token lifetime allowed (ASVS 10.4.8): a stolen access token cannot be
/// revoked by anything but its user's `token_version`, so it must die soon.
pub const MAX_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

/// The longest refresh-token lifetime allowed: the refresh cookie's `Max-Age`, which browsers
/// cap at 400 days (RFC 6265bis).
pub const MAX_REFRESH_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

/// The longest reuse grace allowed: long enough for racing tabs, short enough to keep reuse
/// detection meaningful.
pub const MAX_REUSE_GRACE: Duration = Duration::from_secs(10);

impl TokenConfig {
    /// The scopes a sign-in may be granted.
    pub fn grantable(&self) -> &[String] {
        self.grantable_scopes
            .as_deref()
            .unwrap_or(&self.default_scopes)
    }

    /// Refuses an inconsistent configuration, saying what to change.
    pub fn check(&self) -> Result<(), TokenConfigError> {
        let refuse = |why: String| Err(TokenConfigError(why));
        if let Some(s) = self
            .default_scopes
            .iter()
            .find(|s| !self.grantable().contains(s))
        {
            return refuse(format!(
                "default scope `{s}` is not grantable: default_scopes must be a subset of grantable_scopes"
            ));
        }
        if self.access_ttl < Duration::from_secs(1) {
            return refuse("access_ttl must be at least 1 s".into());
        }
        if self.access_ttl > MAX_ACCESS_TTL {
            return refuse(format!(
                "access_ttl must be at most {} s (15 minutes); keep sign-ins long with refresh_ttl",
                MAX_ACCESS_TTL.as_secs()
            ));
        }
        if self.refresh_ttl > MAX_REFRESH_TTL {
            return refuse(format!(
                "refresh_ttl must be at most {} s (400 days, the longest cookie browsers keep)",
                MAX_REFRESH_TTL.as_secs()
            ));
        }
        if self.refresh_ttl <= self.access_ttl {
            return refuse("refresh_ttl must be longer than access_ttl".into());
        }
        if self.leeway > Duration::from_secs(60) {
            return refuse("leeway must be at most 60 s".into());
        }
        if self.issuer.is_empty() || self.audience.is_empty() {
            return refuse("issuer and audience must not be empty".into());
        }
        if self.reuse_grace > MAX_REUSE_GRACE {
            return refuse(format!(
                "reuse_grace must be at most {} s",
                MAX_REUSE_GRACE.as_secs()
            ));
        }
        Ok(())
    }

    /// The scopes for a sign-in that asked for `requested`: the default scopes when it asked
    /// for none, then only the grantable ones, each once. A client can only narrow.
    pub fn grant(&self, requested: &[String]) -> Vec<String> {
        let asked = if requested.is_empty() {
            &self.default_scopes
        } else {
            requested
        };
        self.clamp(asked)
    }

    /// `scopes` cut down to the current ceiling (a refresh re-applies it, so tightening the
    /// ceiling reaches tokens minted before).
    pub fn clamp(&self, scopes: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(scopes.len());
        for s in scopes {
            if self.grantable().contains(s) && !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn scopes_only_narrow() {
        let config = TokenConfig {
            default_scopes: strings(&["read"]),
            grantable_scopes: Some(strings(&["read", "reports:read"])),
            ..Default::default()
        };
        assert!(config.check().is_ok());
        assert_eq!(config.grant(&[]), ["read"]);
        assert_eq!(
            config.grant(&strings(&["admin", "reports:read", "reports:read"])),
            ["reports:read"]
        );
        assert!(config.clamp(&strings(&["admin"])).is_empty());
    }

    #[test]
    fn grantable_defaults_to_the_default_scopes() {
        let config = TokenConfig {
            default_scopes: strings(&["a"]),
            ..Default::default()
        };
        assert_eq!(config.grant(&strings(&["a", "b"])), ["a"]);
    }

    #[test]
    fn inconsistent_configurations_are_refused() {
        let not_subset = TokenConfig {
            default_scopes: strings(&["admin"]),
            grantable_scopes: Some(strings(&["reports:read"])),
            ..Default::default()
        };
        assert!(not_subset.check().unwrap_err().0.contains("subset"));
        let leeway = TokenConfig {
            leeway: Duration::from_secs(61),
            ..Default::default()
        };
        assert!(leeway.check().is_err());
        let grace = TokenConfig {
            reuse_grace: Duration::from_secs(11),
            ..Default::default()
        };
        assert!(grace.check().is_err());
    }

    #[test]
    fn lifetimes_are_bounded() {
        let at = |access: u64, refresh: u64| TokenConfig {
            access_ttl: Duration::from_secs(access),
            refresh_ttl: Duration::from_secs(refresh),
            ..Default::default()
        };
        assert!(at(900, 400 * 86_400).check().is_ok());
        let long_access = at(901, 86_400).check().unwrap_err().0;
        assert!(
            long_access.contains("access_ttl must be at most 900 s"),
            "{long_access}"
        );
        let long_refresh = at(900, 400 * 86_400 + 1).check().unwrap_err().0;
        assert!(
            long_refresh.contains("refresh_ttl must be at most"),
            "{long_refresh}"
        );
    }
}
