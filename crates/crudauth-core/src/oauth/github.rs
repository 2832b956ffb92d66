//! [`GitHub`]: plain OAuth 2.0 (no id_token), on the `oauth2` crate; the profile from the
//! REST API.

use std::time::Duration;

use async_trait::async_trait;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde_json::Value;

use super::http::{self, DEFAULT_TIMEOUT};
use super::{Authorization, Callback, OAuthError, OAuthProvider, UserInfo};

/// What GitHub's REST API is asked to answer in.
const API_JSON: &str = "application/vnd.github+json";

/// GitHub sign-in (crudauth's `github` provider): `github.com`'s endpoints, scopes
/// `read:user user:email`, PKCE, the account id from `/user` and the email from
/// `/user/emails` (the primary verified address, else any verified one, else the primary,
/// else the first; verified only when the chosen one is). A secret is required.
///
/// ```
/// use crudauth_core::oauth::GitHub;
///
/// let github = GitHub::new("Iv1.0123456789", "secret")?
///     // GitHub Enterprise Server, or a test double:
///     .endpoints("https://ghe.example/login/oauth/authorize", "https://ghe.example/login/oauth/access_token", "https://ghe.example/api/v3")?;
/// # let _ = github;
/// # Ok::<(), crudauth_core::oauth::OAuthError>(())
/// ```
#[derive(Debug)]
pub struct GitHub {
    client_id: ClientId,
    client_secret: ClientSecret,
    authorize: AuthUrl,
    token: TokenUrl,
    api: String,
    scopes: Vec<String>,
    http: reqwest::Client,
}

impl GitHub {
    /// GitHub for the OAuth app `client_id` with its `client_secret` (required).
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, OAuthError> {
        let (client_id, secret) = (client_id.into(), client_secret.into());
        if client_id.is_empty() || secret.is_empty() {
            return Err(OAuthError::Config(
                "GitHub needs a client id and a client secret".into(),
            ));
        }
        let github = Self {
            client_id: ClientId::new(client_id),
            client_secret: ClientSecret::new(secret),
            authorize: url_of(AuthUrl::new, "https://github.com/login/oauth/authorize")?,
            token: url_of(TokenUrl::new, "https://github.com/login/oauth/access_token")?,
            api: "https://api.github.com".into(),
            scopes: vec!["read:user".into(), "user:email".into()],
            http: http::client(DEFAULT_TIMEOUT)?,
        };
        Ok(github)
    }

    /// Other endpoints: the authorization and token URLs and the REST API's base (GitHub
    /// Enterprise Server, a test double).
    pub fn endpoints(
        mut self,
        authorize: &str,
        token: &str,
        api_base: &str,
    ) -> Result<Self, OAuthError> {
        self.authorize = url_of(AuthUrl::new, authorize)?;
        self.token = url_of(TokenUrl::new, token)?;
        self.api = api_base.trim_end_matches('/').to_owned();
        Ok(self)
    }

    /// How long one call to GitHub may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Result<Self, OAuthError> {
        self.http = http::client(timeout)?;
        Ok(self)
    }

    /// The scopes asked for (default `read:user user:email`).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    fn redirect(redirect_uri: &str) -> Result<RedirectUrl, OAuthError> {
        RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|_| OAuthError::Config("the callback URL is not a URL".into()))
    }
}

fn url_of<T, E>(make: impl Fn(String) -> Result<T, E>, url: &str) -> Result<T, OAuthError> {
    make(url.to_owned()).map_err(|_| OAuthError::Config(format!("{url:?} is not a URL")))
}

/// The address crudauth picks from GitHub's `/user/emails` list, and whether it is verified.
fn pick_email(list: &[Value]) -> Option<(String, bool)> {
    let flag = |e: &Value, k: &str| e.get(k) == Some(&Value::Bool(true));
    let chosen = list
        .iter()
        .find(|e| flag(e, "primary") && flag(e, "verified"))
        .or_else(|| list.iter().find(|e| flag(e, "verified")))
        .or_else(|| list.iter().find(|e| flag(e, "primary")))
        .or_else(|| list.first())?;
    let email = chosen.get("email")?.as_str()?.to_owned();
    Some((email, flag(chosen, "verified")))
}

#[async_trait]
impl OAuthProvider for GitHub {
    fn authorization_url(&self, request: &Authorization<'_>) -> Result<String, OAuthError> {
        let client = BasicClient::new(self.client_id.clone())
            .set_auth_uri(self.authorize.clone())
            .set_redirect_uri(Self::redirect(request.redirect_uri)?);
        let state = request.state.to_owned();
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            request.pkce_verifier.to_owned(),
        ));
        let (url, _) = client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        Ok(url.into())
    }

    async fn complete(&self, callback: &Callback<'_>) -> Result<UserInfo, OAuthError> {
        let client = BasicClient::new(self.client_id.clone())
            .set_client_secret(self.client_secret.clone())
            .set_token_uri(self.token.clone())
            .set_redirect_uri(Self::redirect(callback.redirect_uri)?);
        let token = client
            .exchange_code(AuthorizationCode::new(callback.code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(callback.pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => {
                    OAuthError::Refused(format!("token endpoint: {}", r.error()))
                }
                RequestTokenError::Request(e) => OAuthError::Http(format!("token endpoint: {e}")),
                // GitHub answers a bad code with 200 and an error body, which is no token.
                RequestTokenError::Parse(_, _) => {
                    OAuthError::Refused("the token endpoint answered no token".into())
                }
                other => OAuthError::Refused(format!("token endpoint: {other}")),
            })?;
        let access = token.access_token().secret();
        let user = http::get_object(
            &self.http,
            &format!("{}/user", self.api),
            Some(access),
            API_JSON,
        )
        .await?;
        let subject = match user.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(OAuthError::Profile(
                    "GitHub did not return a user id".into(),
                ))
            }
        };
        let emails = http::get_json(
            &self.http,
            &format!("{}/user/emails", self.api),
            Some(access),
            API_JSON,
        )
        .await
        .ok();
        let (email, email_verified) = match emails.as_ref().and_then(Value::as_array) {
            Some(list) => match pick_email(list) {
                Some((email, verified)) => (Some(email), verified),
                None => (None, false),
            },
            None => (
                user.get("email").and_then(Value::as_str).map(str::to_owned),
                false,
            ),
        };
        let text = |k: &str| {
            user.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok(UserInfo {
            subject,
            email,
            email_verified,
            name: text("name"),
            given_name: None,
            family_name: None,
            username: text("login"),
            picture: text("avatar_url"),
            raw: user,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_email_is_picked_as_crudauth_picks_it() {
        let pick = |v: Value| pick_email(v.as_array().map(Vec::as_slice).unwrap_or(&[]));
        let list = json!([
            {"email": "old@x.io", "primary": false, "verified": true},
            {"email": "main@x.io", "primary": true, "verified": true},
        ]);
        assert_eq!(pick(list), Some(("main@x.io".into(), true)));
        let list = json!([
            {"email": "main@x.io", "primary": true, "verified": false},
            {"email": "ok@x.io", "primary": false, "verified": true},
        ]);
        assert_eq!(pick(list), Some(("ok@x.io".into(), true)));
        let list = json!([
            {"email": "a@x.io", "primary": false, "verified": false},
            {"email": "main@x.io", "primary": true, "verified": false},
        ]);
        assert_eq!(pick(list), Some(("main@x.io".into(), false)));
        let list = json!([{"email": "a@x.io", "verified": "true"}]);
        assert_eq!(pick(list), Some(("a@x.io".into(), false)));
        assert_eq!(pick(json!([])), None);
    }

    #[test]
    fn a_secret_is_required_and_never_shown() {
        assert!(GitHub::new("id", "").is_err());
        let github = GitHub::new("id", "gh-secret-value").unwrap();
        assert!(!format!("{github:?}").contains("gh-secret-value"));
    }
}
