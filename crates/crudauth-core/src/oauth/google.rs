//! Google: an OpenID provider with fixed endpoints, a client secret required.

use super::oidc::{Endpoints, OpenIdProvider};
use super::OAuthError;

/// Google's issuer.
const ISSUER: &str = "https://accounts.google.com";

impl OpenIdProvider {
    /// Google sign-in (crudauth's `google` provider): Google's endpoints without discovery,
    /// its JWKS fetched at start-up, scopes `openid` and the email and profile scopes, and its
    /// id_tokens validated like any other (Google also signs `iss` as the bare
    /// `accounts.google.com`, which is accepted). A secret is required.
    ///
    /// ```
    /// use crudauth_core::oauth::OpenIdProvider;
    ///
    /// assert!(OpenIdProvider::google("1234.apps.googleusercontent.com", "GOCSPX-…").is_ok());
    /// assert!(OpenIdProvider::google("1234.apps.googleusercontent.com", "").is_err());
    /// ```
    pub fn google(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, OAuthError> {
        let secret = client_secret.into();
        if secret.is_empty() {
            return Err(OAuthError::Config("Google needs a client secret".into()));
        }
        Ok(OpenIdProvider::new(ISSUER, client_id, secret)?
            .endpoints(Endpoints {
                authorization: "https://accounts.google.com/o/oauth2/v2/auth".into(),
                token: "https://oauth2.googleapis.com/token".into(),
                userinfo: "https://openidconnect.googleapis.com/v1/userinfo".into(),
                jwks: "https://www.googleapis.com/oauth2/v3/certs".into(),
            })
            .scopes([
                "openid",
                "https://www.googleapis.com/auth/userinfo.email",
                "https://www.googleapis.com/auth/userinfo.profile",
            ])
            .also_accept_issuer("accounts.google.com"))
    }
}
