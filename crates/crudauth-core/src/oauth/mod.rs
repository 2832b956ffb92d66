//! OAuth 2.0 and OpenID Connect sign-in: the [`OAuthProvider`] port and its providers
//! ([`OpenIdProvider`] for any OpenID provider by discovery and for Google, [`GitHub`]), the
//! flow's single-use state ([`flow`]), and how a provider account becomes a local one
//! ([`accounts`]).
//!
//! ```no_run
//! use crudauth_core::oauth::{GitHub, OAuthProvider, OpenIdProvider};
//!
//! # async fn run() -> Result<(), crudauth_core::oauth::OAuthError> {
//! // Any OpenID provider (Keycloak, Zitadel, Authentik, Auth0, Okta, Entra ID) by its issuer:
//! let keycloak = OpenIdProvider::new("https://sso.example.com/realms/main", "my-app", "s3cret")?;
//! // Discovery and the first JWKS fetch happen here (crudauth-axum's `initialize()` does it).
//! keycloak.initialize().await?;
//! let github = GitHub::new("Iv1.0123456789", "github-secret")?;
//! # let _ = github; Ok(()) }
//! ```
//!
//! A provider only talks to its side of the protocol: it builds the authorization URL, and on
//! the callback exchanges the code (with the PKCE verifier), validates what came back and reads
//! the profile. crudauth-axum mints the state, nonce and verifier, keeps them in the store
//! bound to the browser, and resolves the account.
//!
//! **The id_token is validated.** crudauth (Python) reads only the userinfo endpoint;
//! [`OpenIdProvider`] also checks the id_token the token endpoint returns: its signature
//! against the provider's JWKS (fetched at start-up, refetched, at most once a minute, when a
//! token names an unknown key), `iss` (exactly the discovered issuer), `aud` (the client id),
//! `azp` when there are several audiences, `exp`, `iat`, the `nonce` of this flow and, when
//! present, `at_hash`; and the userinfo answer must be about the same `sub`.

pub mod accounts;
pub mod flow;
mod github;
mod google;
mod http;
mod oidc;

pub use github::GitHub;
pub use http::DEFAULT_TIMEOUT;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use oidc::check_discovery_document;
pub use oidc::{normalise_issuer, Endpoints, IdTokenClaims, OpenIdProvider};

use std::fmt;

use async_trait::async_trait;
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What the authorization URL carries for one flow.
pub struct Authorization<'a> {
    /// The `state` (bound to the browser by the `oauth_state` cookie).
    pub state: &'a str,
    /// The OpenID `nonce` the id_token must echo (plain OAuth providers ignore it).
    pub nonce: &'a str,
    /// The PKCE code verifier; the URL carries its S256 challenge, never the verifier.
    pub pkce_verifier: &'a str,
    /// The callback URL registered with the provider.
    pub redirect_uri: &'a str,
}

impl Authorization<'_> {
    /// The PKCE S256 challenge of [`Authorization::pkce_verifier`]: base64url (no padding) of
    /// its SHA-256 (RFC 7636 §4.2).
    pub fn pkce_challenge(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(self.pkce_verifier.as_bytes()))
    }
}

impl fmt::Debug for Authorization<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// What the callback hands a provider to finish one flow.
pub struct Callback<'a> {
    /// The authorization code from the callback's query.
    pub code: &'a str,
    /// The PKCE code verifier of the flow.
    pub pkce_verifier: &'a str,
    /// The nonce of the flow.
    pub nonce: &'a str,
    /// The callback URL (sent again with the code, as RFC 6749 §4.1.3 requires).
    pub redirect_uri: &'a str,
    /// When the flow started, seconds since the epoch: an id_token issued before it cannot
    /// belong to it.
    pub started_at: u64,
}

impl fmt::Debug for Callback<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("redirect_uri", &self.redirect_uri)
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
}

/// A provider's profile of the signed-in account, normalised (crudauth's `OAuthUserInfo`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UserInfo {
    /// The account's stable id at the provider (`sub`, GitHub's numeric `id`).
    pub subject: String,
    /// The email address the provider gives, if any.
    pub email: Option<String>,
    /// Whether the provider says it verified that address (only a literal `true` counts).
    pub email_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// The provider's user name (`preferred_username`, GitHub's `login`).
    pub username: Option<String>,
    /// Picture URL.
    pub picture: Option<String>,
    /// The profile as the provider sent it.
    pub raw: serde_json::Map<String, serde_json::Value>,
}

impl UserInfo {
    /// The profile of an OpenID userinfo (or id_token) claim set: `sub`, `email`,
    /// `email_verified` (a literal `true` only), `name`, `given_name`, `family_name`,
    /// `preferred_username`, `picture`. `None` without a non-empty `sub`.
    pub fn from_claims(claims: serde_json::Map<String, serde_json::Value>) -> Option<UserInfo> {
        let text = |key: &str| {
            claims
                .get(key)
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let subject = text("sub")?;
        Some(UserInfo {
            subject,
            email: text("email"),
            email_verified: claims.get("email_verified") == Some(&serde_json::Value::Bool(true)),
            name: text("name"),
            given_name: text("given_name"),
            family_name: text("family_name"),
            username: text("preferred_username"),
            picture: text("picture"),
            raw: claims,
        })
    }
}

/// Why a provider call failed. Every kind ends the sign-in as `oauth_failed`; the message is
/// for the log and never holds a token, a code or a secret.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The provider's configuration is unusable (found at construction or start-up).
    #[error("OAuth provider configuration: {0}")]
    Config(String),
    /// The provider has not resolved its endpoints yet: `initialize()` has not run.
    #[error("the OAuth provider is not initialised: call initialize() (crudauth-axum's auth.initialize()) before serving")]
    NotReady,
    /// The provider could not be reached, timed out, or answered with an HTTP error.
    #[error("request to the OAuth provider failed: {0}")]
    Http(String),
    /// The provider refused the code or answered something that is not a token.
    #[error("the OAuth provider refused: {0}")]
    Refused(String),
    /// The id_token is missing or fails validation.
    #[error("id_token rejected: {0}")]
    IdToken(String),
    /// The profile is unusable (no subject, not an object, another subject than the id_token's).
    #[error("unusable profile: {0}")]
    Profile(String),
}

/// An OAuth 2.0 or OpenID Connect provider: one implementation per kind of provider.
///
/// ```
/// use async_trait::async_trait;
/// use crudauth_core::oauth::{Authorization, Callback, OAuthError, OAuthProvider, UserInfo};
///
/// /// A provider that signs everyone in as one account (a test double).
/// #[derive(Debug)]
/// struct Fixed;
///
/// #[async_trait]
/// impl OAuthProvider for Fixed {
///     fn authorization_url(&self, request: &Authorization<'_>) -> Result<String, OAuthError> {
///         Ok(format!(
///             "https://idp.example/authorize?state={}&code_challenge={}&code_challenge_method=S256",
///             request.state,
///             request.pkce_challenge()
///         ))
///     }
///
///     async fn complete(&self, _callback: &Callback<'_>) -> Result<UserInfo, OAuthError> {
///         Ok(UserInfo {
///             subject: "42".into(),
///             email: Some("ada@example.com".into()),
///             email_verified: true,
///             ..UserInfo::default()
///         })
///     }
/// }
/// ```
#[async_trait]
pub trait OAuthProvider: Send + Sync + fmt::Debug + 'static {
    /// Resolves what the provider needs from the network before its first use (discovery,
    /// keys); called once at start-up. A failure stops the start-up. Default: nothing to do.
    async fn initialize(&self) -> Result<(), OAuthError> {
        Ok(())
    }

    /// The issuer identifier, when the provider has one: a callback whose `iss` parameter
    /// (RFC 9207) names another issuer is refused, the mix-up defence. Default: none.
    fn issuer(&self) -> Option<&str> {
        None
    }

    /// The URL the browser is sent to: the provider's authorization endpoint with
    /// `response_type=code`, the client id, `redirect_uri`, the scopes, `state`, the PKCE S256
    /// challenge and (for OpenID) the `nonce`.
    fn authorization_url(&self, request: &Authorization<'_>) -> Result<String, OAuthError>;

    /// Finishes the flow: exchanges the code, validates what the provider answered, and reads
    /// the profile.
    async fn complete(&self, callback: &Callback<'_>) -> Result<UserInfo, OAuthError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s_example() {
        // RFC 7636, Appendix B.
        let request = Authorization {
            state: "s",
            nonce: "n",
            pkce_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            redirect_uri: "http://localhost/cb",
        };
        assert_eq!(
            request.pkce_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(!format!("{request:?}").contains("dBjft"));
    }

    #[test]
    fn only_a_literal_true_verifies_an_email() {
        let claims = |verified: serde_json::Value| {
            let value =
                serde_json::json!({"sub": "1", "email": "a@x.io", "email_verified": verified});
            match value {
                serde_json::Value::Object(map) => UserInfo::from_claims(map),
                _ => None,
            }
        };
        assert_eq!(claims(true.into()).map(|i| i.email_verified), Some(true));
        assert_eq!(claims("true".into()).map(|i| i.email_verified), Some(false));
        assert_eq!(claims(1.into()).map(|i| i.email_verified), Some(false));
        let no_sub = serde_json::Map::new();
        assert!(UserInfo::from_claims(no_sub).is_none());
    }
}
