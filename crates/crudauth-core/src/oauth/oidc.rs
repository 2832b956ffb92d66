//! [`OpenIdProvider`]: any OpenID Connect provider, by discovery from its issuer or with its
//! endpoints given, with the id_token validated (on the `openidconnect` crate).

use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use openidconnect::core::{
    CoreClient, CoreClientAuthMethod, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthType, AuthUrl, AuthenticationFlow, AuthorizationCode,
    ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    IssuerUrl, JsonWebKeySetUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, SignatureVerificationError, TokenUrl,
};

use super::http::{self, DEFAULT_TIMEOUT};
use super::{Authorization, Callback, OAuthError, OAuthProvider, UserInfo};

/// Hosts on which a plain-`http` issuer is accepted (local development and tests).
const LOCAL_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// How far an id_token's `iat` may lie ahead of this machine's clock, or before the flow began.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The signature algorithms accepted when the provider advertises them: asymmetric ones only
/// (never `none`, never an HMAC keyed by the client secret).
const ASYMMETRIC: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Checks an OpenID issuer as crudauth does and returns it without a trailing `/`: an absolute
/// `http(s)` URL with a host, no query or fragment, `https` unless the host is `localhost`,
/// `127.0.0.1` or `::1`.
///
/// ```
/// use crudauth_core::oauth::normalise_issuer;
///
/// assert_eq!(normalise_issuer("https://sso.example.com/realms/main/").unwrap(), "https://sso.example.com/realms/main");
/// assert!(normalise_issuer("http://sso.example.com").is_err());
/// assert!(normalise_issuer("https://sso.example.com?x=1").is_err());
/// ```
pub fn normalise_issuer(issuer: &str) -> Result<String, OAuthError> {
    let trimmed = issuer.trim();
    if trimmed.is_empty() {
        return Err(OAuthError::Config("the OpenID issuer is empty".into()));
    }
    let url = url::Url::parse(trimmed)
        .map_err(|_| OAuthError::Config(format!("the OpenID issuer {trimmed:?} is not a URL")))?;
    let host = url.host_str().unwrap_or("");
    // `url` repairs `https:///host` into a host; the issuer as written must name one.
    let authority = trimmed
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
    if !matches!(url.scheme(), "http" | "https") || host.is_empty() || authority.is_empty() {
        return Err(OAuthError::Config(format!(
            "the OpenID issuer {trimmed:?} must be an absolute http(s) URL"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || trimmed.contains(['?', '#']) {
        return Err(OAuthError::Config(format!(
            "the OpenID issuer {trimmed:?} cannot carry a query or fragment"
        )));
    }
    if url.scheme() == "http" && !LOCAL_HOSTS.contains(&host) {
        return Err(OAuthError::Config(format!(
            "the OpenID issuer {trimmed:?} must use https (plain http only on localhost, \
             127.0.0.1 or ::1)"
        )));
    }
    Ok(trimmed.trim_end_matches('/').to_owned())
}

/// What a valid id_token says about the account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdTokenClaims {
    /// `sub`.
    pub subject: String,
    /// `email`, if present.
    pub email: Option<String>,
    /// `email_verified` (false when absent).
    pub email_verified: bool,
}

/// A provider's endpoints, given instead of discovered.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The authorization endpoint.
    pub authorization: String,
    /// The token endpoint.
    pub token: String,
    /// The userinfo endpoint.
    pub userinfo: String,
    /// The JWKS the id_tokens are signed with.
    pub jwks: String,
}

/// What `initialize()` resolved.
#[derive(Debug)]
struct Resolved {
    /// The issuer as the provider declares it: the exact `iss` its id_tokens must carry.
    issuer: IssuerUrl,
    authorization: AuthUrl,
    token: TokenUrl,
    userinfo: String,
    jwks: JsonWebKeySetUrl,
    auth_type: AuthType,
    algorithms: Vec<CoreJwsSigningAlgorithm>,
    /// The discovery document as served (empty with endpoints given).
    document: serde_json::Map<String, serde_json::Value>,
}

/// The JWKS in use and when it was last refetched for an unknown key.
#[derive(Debug)]
struct Keys {
    set: RwLock<Arc<CoreJsonWebKeySet>>,
    /// Held while refetching, so concurrent tokens with an unknown key cause one fetch.
    refetched: tokio::sync::Mutex<Option<Instant>>,
}

/// An OpenID Connect provider: Keycloak, Zitadel, Authentik, Auth0, Okta, Entra ID, Google, or
/// any other that serves a discovery document.
///
/// At [`initialize`](OAuthProvider::initialize) it fetches
/// `{issuer}/.well-known/openid-configuration` (which must declare this issuer, a trailing `/`
/// aside, and the authorization, token, userinfo and JWKS endpoints) and the JWKS. The token
/// endpoint is authenticated as crudauth picks: `client_secret_post` when the provider
/// advertises it, lists nothing, or there is no secret; else `client_secret_basic` if
/// advertised; a public client (empty secret) sends only its id, with PKCE.
#[derive(Debug)]
pub struct OpenIdProvider {
    issuer: String,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    scopes: Vec<String>,
    /// Endpoints given instead of discovered.
    endpoints: Option<Endpoints>,
    /// Issuers accepted in `iss` besides the declared one (Google's bare `accounts.google.com`).
    also_accepted: Vec<String>,
    http: reqwest::Client,
    timeout: Duration,
    refetch_interval: Duration,
    resolved: OnceLock<Resolved>,
    keys: Keys,
}

impl OpenIdProvider {
    /// A provider discovered from `issuer` (checked with [`normalise_issuer`]) for the client
    /// `client_id`; an empty `client_secret` makes a public client. Scopes `openid profile
    /// email`; 10 s per call.
    pub fn new(
        issuer: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, OAuthError> {
        let client_id = client_id.into();
        if client_id.is_empty() {
            return Err(OAuthError::Config("the OpenID client id is empty".into()));
        }
        let secret = client_secret.into();
        Ok(Self {
            issuer: normalise_issuer(issuer)?,
            client_id: ClientId::new(client_id),
            client_secret: (!secret.is_empty()).then(|| ClientSecret::new(secret)),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            endpoints: None,
            also_accepted: Vec::new(),
            http: http::client(DEFAULT_TIMEOUT)?,
            timeout: DEFAULT_TIMEOUT,
            refetch_interval: Duration::from_secs(60),
            resolved: OnceLock::new(),
            keys: Keys {
                set: RwLock::new(Arc::new(CoreJsonWebKeySet::new(Vec::new()))),
                refetched: tokio::sync::Mutex::new(None),
            },
        })
    }

    /// Uses these endpoints instead of discovering them (the JWKS is still fetched at
    /// start-up). The id_tokens must then carry the configured issuer exactly.
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.endpoints = Some(endpoints);
        self
    }

    /// The scopes asked for (`openid` is always among them).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut unique = vec!["openid".to_owned()];
        for scope in scopes.into_iter().map(Into::into) {
            if !unique.contains(&scope) {
                unique.push(scope);
            }
        }
        self.scopes = unique;
        self
    }

    /// How long one call to the provider may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Result<Self, OAuthError> {
        self.http = http::client(timeout)?;
        self.timeout = timeout;
        Ok(self)
    }

    /// The least time between two refetches of the JWKS for a token signed by an unknown key
    /// (default 60 s): a key rotation is picked up at once, a flood of forged `kid`s costs the
    /// provider one fetch a minute.
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// Also accepts `issuer` in the id_token's `iss`.
    pub(crate) fn also_accept_issuer(mut self, issuer: &str) -> Self {
        self.also_accepted.push(issuer.to_owned());
        self
    }

    /// Whether the client has a secret (a confidential client).
    pub fn has_secret(&self) -> bool {
        self.client_secret.is_some()
    }

    /// The discovery document as the provider served it, once initialised (empty when the
    /// endpoints were given).
    pub fn discovery_document(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.resolved.get().map(|r| &r.document)
    }

    /// How the token endpoint is authenticated, once initialised: `client_secret_post`,
    /// `client_secret_basic` or `none`.
    pub fn token_auth_method(&self) -> Option<&'static str> {
        let resolved = self.resolved.get()?;
        Some(match (&self.client_secret, &resolved.auth_type) {
            (None, _) => "none",
            (Some(_), AuthType::BasicAuth) => "client_secret_basic",
            (Some(_), _) => "client_secret_post",
        })
    }

    fn ready(&self) -> Result<&Resolved, OAuthError> {
        self.resolved.get().ok_or(OAuthError::NotReady)
    }

    /// The discovery document, checked: an object that declares this issuer (a trailing `/`
    /// aside) and every endpoint crudauth needs.
    async fn discover(&self) -> Result<Resolved, OAuthError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let document = http::get_object(&self.http, &url, None, "application/json")
            .await
            .map_err(|e| OAuthError::Config(format!("OpenID discovery at {url}: {e}")))?;
        resolve_document(&self.issuer, self.client_secret.is_some(), &url, document)
    }

    /// The endpoints as given, checked as URLs.
    fn given(&self, endpoints: &Endpoints) -> Result<Resolved, OAuthError> {
        let bad = |what: &str| OAuthError::Config(format!("the {what} endpoint is not a URL"));
        Ok(Resolved {
            issuer: IssuerUrl::new(self.issuer.clone()).map_err(|_| bad("issuer"))?,
            authorization: AuthUrl::new(endpoints.authorization.clone())
                .map_err(|_| bad("authorization"))?,
            token: TokenUrl::new(endpoints.token.clone()).map_err(|_| bad("token"))?,
            userinfo: url::Url::parse(&endpoints.userinfo)
                .map_err(|_| bad("userinfo"))?
                .to_string(),
            jwks: JsonWebKeySetUrl::new(endpoints.jwks.clone()).map_err(|_| bad("JWKS"))?,
            auth_type: AuthType::RequestBody,
            algorithms: vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
            document: serde_json::Map::new(),
        })
    }

    async fn fetch_keys(&self, url: &JsonWebKeySetUrl) -> Result<CoreJsonWebKeySet, OAuthError> {
        let value = http::get_json(&self.http, url.as_str(), None, "application/json")
            .await
            .map_err(|e| OAuthError::Http(format!("JWKS: {e}")))?;
        serde_json::from_value(value).map_err(|e| OAuthError::Http(format!("JWKS: {e}")))
    }

    fn current_keys(&self) -> Arc<CoreJsonWebKeySet> {
        self.keys
            .set
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Refetches the JWKS for a token signed by a key it does not hold, unless a refetch
    /// happened within the interval (then the keys as they are). Concurrent callers wait for
    /// one fetch.
    async fn refetch_keys(
        &self,
        resolved: &Resolved,
        stale: &Arc<CoreJsonWebKeySet>,
    ) -> Result<Arc<CoreJsonWebKeySet>, OAuthError> {
        let mut last = self.keys.refetched.lock().await;
        let current = self.current_keys();
        if !Arc::ptr_eq(&current, stale) {
            return Ok(current); // another caller refetched meanwhile
        }
        if last.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            return Ok(current);
        }
        *last = Some(Instant::now());
        let fresh = Arc::new(self.fetch_keys(&resolved.jwks).await?);
        *self.keys.set.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        tracing::info!(issuer = %self.issuer, "crudauth: refetched the OpenID provider's JWKS for an unknown signing key");
        Ok(fresh)
    }

    /// Validates `id_token` (its compact form) as a callback does: signature by the JWKS
    /// (refetched, within the interval, for an unknown key), `iss`, `aud`, `azp`, `exp`,
    /// `iat` (not ahead, not before `started_at`), `nonce` and, with `access_token`, `at_hash`.
    /// Used by [`OAuthProvider::complete`]; public for benchmarks and hand-written flows.
    pub async fn validate_id_token(
        &self,
        id_token: &str,
        nonce: &str,
        started_at: u64,
        access_token: Option<&str>,
    ) -> Result<IdTokenClaims, OAuthError> {
        let resolved = self.ready()?;
        let parsed: CoreIdToken = id_token
            .parse()
            .map_err(|_| OAuthError::IdToken("not a JWT".into()))?;
        let access = access_token.map(|t| AccessToken::new(t.to_owned()));
        self.validate(resolved, &parsed, nonce, started_at, access.as_ref())
            .await
    }

    async fn validate(
        &self,
        resolved: &Resolved,
        id_token: &CoreIdToken,
        nonce: &str,
        started_at: u64,
        access_token: Option<&AccessToken>,
    ) -> Result<IdTokenClaims, OAuthError> {
        let nonce = Nonce::new(nonce.to_owned());
        let mut keys = self.current_keys();
        let mut verifier = self.verifier(resolved, &keys, started_at);
        let claims = match id_token.claims(&verifier, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                keys = self.refetch_keys(resolved, &keys).await?;
                verifier = self.verifier(resolved, &keys, started_at);
                id_token
                    .claims(&verifier, &nonce)
                    .map_err(|e| rejected(&e))?
            }
            other => other.map_err(|e| rejected(&e))?,
        };
        if !self.also_accepted.is_empty() {
            let iss = claims.issuer().as_str();
            if iss != resolved.issuer.as_str() && !self.also_accepted.iter().any(|a| a == iss) {
                return Err(OAuthError::IdToken(format!("unexpected issuer {iss:?}")));
            }
        }
        if let (Some(expected), Some(access)) = (claims.access_token_hash(), access_token) {
            let alg = id_token
                .signing_alg()
                .map_err(|e| OAuthError::IdToken(e.to_string()))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| OAuthError::IdToken(e.to_string()))?;
            let actual = AccessTokenHash::from_token(access, alg, key)
                .map_err(|e| OAuthError::IdToken(e.to_string()))?;
            if actual != *expected {
                return Err(OAuthError::IdToken(
                    "at_hash does not match the access token".into(),
                ));
            }
        }
        Ok(IdTokenClaims {
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
        })
    }

    fn client(
        &self,
        resolved: &Resolved,
        redirect_uri: &str,
    ) -> Result<
        CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>,
        OAuthError,
    > {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|_| OAuthError::Config("the callback URL is not a URL".into()))?;
        let mut client = CoreClient::new(
            self.client_id.clone(),
            resolved.issuer.clone(),
            CoreJsonWebKeySet::new(Vec::new()),
        )
        .set_auth_uri(resolved.authorization.clone())
        .set_token_uri(resolved.token.clone())
        .set_redirect_uri(redirect)
        .set_auth_type(resolved.auth_type.clone());
        if let Some(secret) = &self.client_secret {
            client = client.set_client_secret(secret.clone());
        }
        Ok(client)
    }

    fn verifier<'a>(
        &'a self,
        resolved: &'a Resolved,
        keys: &CoreJsonWebKeySet,
        started_at: u64,
    ) -> CoreIdTokenVerifier<'a> {
        let skew = CLOCK_SKEW.as_secs() as i64;
        let earliest = started_at as i64 - skew;
        CoreIdTokenVerifier::new_public_client(
            self.client_id.clone(),
            resolved.issuer.clone(),
            keys.clone(),
        )
        .set_allowed_algs(resolved.algorithms.iter().cloned())
        .require_issuer_match(self.also_accepted.is_empty())
        .set_issue_time_verifier_fn(move |iat| {
            let iat = iat.timestamp();
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if iat > now + skew {
                Err(format!("issued {}s in the future", iat - now))
            } else if iat < earliest {
                Err("issued before this sign-in began".to_owned())
            } else {
                Ok(())
            }
        })
    }
}

/// A discovery document, checked: an object that declares `issuer` (a trailing `/` aside) and
/// every endpoint crudauth needs, with an asymmetric id_token algorithm. `url` is where it
/// came from, for the errors.
fn resolve_document(
    issuer: &str,
    has_secret: bool,
    url: &str,
    document: serde_json::Map<String, serde_json::Value>,
) -> Result<Resolved, OAuthError> {
    let declared = document
        .get("issuer")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    if declared.trim_end_matches('/') != issuer {
        return Err(OAuthError::Config(format!(
            "OpenID discovery issuer mismatch: configured {:?}, the document declares \
             {declared:?} (a mismatch means the wrong provider answered)",
            issuer
        )));
    }
    let missing: Vec<&str> = [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ]
    .into_iter()
    .filter(|k| {
        document
            .get(*k)
            .and_then(serde_json::Value::as_str)
            .is_none_or(str::is_empty)
    })
    .collect();
    if !missing.is_empty() {
        return Err(OAuthError::Config(format!(
            "OpenID discovery at {url} is missing {}",
            missing.join(", ")
        )));
    }
    let metadata: CoreProviderMetadata =
        serde_json::from_value(serde_json::Value::Object(document.clone())).map_err(|e| {
            OAuthError::Config(format!("OpenID discovery at {url} is not valid: {e}"))
        })?;
    let (Some(token), Some(userinfo)) = (metadata.token_endpoint(), metadata.userinfo_endpoint())
    else {
        return Err(OAuthError::Config(format!(
            "OpenID discovery at {url} is missing its token or userinfo endpoint"
        )));
    };
    let auth_type = match metadata.token_endpoint_auth_methods_supported() {
        Some(methods)
            if has_secret
                && !methods.contains(&CoreClientAuthMethod::ClientSecretPost)
                && methods.contains(&CoreClientAuthMethod::ClientSecretBasic) =>
        {
            AuthType::BasicAuth
        }
        _ => AuthType::RequestBody,
    };
    let algorithms: Vec<CoreJwsSigningAlgorithm> = metadata
        .id_token_signing_alg_values_supported()
        .iter()
        .filter(|a| ASYMMETRIC.contains(a))
        .cloned()
        .collect();
    if algorithms.is_empty() {
        return Err(OAuthError::Config(format!(
            "OpenID discovery at {url} advertises no asymmetric id_token signature algorithm"
        )));
    }
    Ok(Resolved {
        issuer: metadata.issuer().clone(),
        authorization: metadata.authorization_endpoint().clone(),
        token: token.clone(),
        userinfo: userinfo.url().to_string(),
        jwks: metadata.jwks_uri().clone(),
        auth_type,
        algorithms,
        document,
    })
}

/// Fuzzing entry point (feature `fuzzing`): a discovery document's bytes, parsed as the
/// provider's answer is and checked as at start-up. Not a stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn check_discovery_document(
    issuer: &str,
    has_secret: bool,
    body: &[u8],
) -> Result<(), OAuthError> {
    let document = match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(OAuthError::Config("not a JSON object".into())),
    };
    resolve_document(issuer, has_secret, "https://fuzz.invalid", document).map(|_| ())
}

/// An id_token's failure in words.
fn rejected(error: &ClaimsVerificationError) -> OAuthError {
    OAuthError::IdToken(error.to_string())
}

#[async_trait]
impl OAuthProvider for OpenIdProvider {
    async fn initialize(&self) -> Result<(), OAuthError> {
        if self.resolved.get().is_some() {
            return Ok(());
        }
        let resolved = match &self.endpoints {
            Some(endpoints) => self.given(endpoints)?,
            None => self.discover().await?,
        };
        let keys = self
            .fetch_keys(&resolved.jwks)
            .await
            .map_err(|e| OAuthError::Config(e.to_string()))?;
        *self.keys.set.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        let _ = self.resolved.set(resolved);
        Ok(())
    }

    fn issuer(&self) -> Option<&str> {
        Some(
            self.resolved
                .get()
                .map_or(self.issuer.as_str(), |r| r.issuer.as_str()),
        )
    }

    fn authorization_url(&self, request: &Authorization<'_>) -> Result<String, OAuthError> {
        let resolved = self.ready()?;
        let client = self.client(resolved, request.redirect_uri)?;
        let state = request.state.to_owned();
        let nonce = request.nonce.to_owned();
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            request.pkce_verifier.to_owned(),
        ));
        let (url, _, _) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            // openidconnect puts `openid` first on its own; the others follow once each.
            .add_scopes(
                self.scopes
                    .iter()
                    .filter(|s| *s != "openid")
                    .cloned()
                    .map(Scope::new),
            )
            .set_pkce_challenge(challenge)
            .url();
        Ok(url.into())
    }

    async fn complete(&self, callback: &Callback<'_>) -> Result<UserInfo, OAuthError> {
        let resolved = self.ready()?;
        let client = self.client(resolved, callback.redirect_uri)?;
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
                RequestTokenError::Parse(_, _) => {
                    OAuthError::Refused("the token endpoint answered no token".into())
                }
                other => OAuthError::Refused(format!("token endpoint: {other}")),
            })?;
        let id_token = token
            .extra_fields()
            .id_token()
            .ok_or_else(|| OAuthError::IdToken("the token endpoint sent no id_token".into()))?;
        let claims = self
            .validate(
                resolved,
                id_token,
                callback.nonce,
                callback.started_at,
                Some(token.access_token()),
            )
            .await?;
        let subject = claims.subject.as_str();
        let mut profile = http::get_object(
            &self.http,
            &resolved.userinfo,
            Some(token.access_token().secret()),
            "application/json",
        )
        .await
        .map_err(|e| match e {
            OAuthError::Http(m) => OAuthError::Http(format!("userinfo: {m}")),
            other => other,
        })?;
        if profile.get("sub").and_then(serde_json::Value::as_str) != Some(subject) {
            return Err(OAuthError::Profile(
                "the userinfo answer is about another subject than the id_token".into(),
            ));
        }
        // The signed id_token's email stands in when userinfo gives none.
        if !profile.contains_key("email") {
            if let Some(email) = claims.email {
                profile.insert("email".into(), email.into());
                profile.insert("email_verified".into(), claims.email_verified.into());
            }
        }
        UserInfo::from_claims(profile)
            .ok_or_else(|| OAuthError::Profile("the userinfo answer has no subject".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_are_checked_as_crudauth_checks_them() {
        let ok = |s: &str| normalise_issuer(s).ok();
        assert_eq!(
            ok("https://a.example/").as_deref(),
            Some("https://a.example")
        );
        assert_eq!(
            ok(" https://a.example/r/x ").as_deref(),
            Some("https://a.example/r/x")
        );
        assert_eq!(
            ok("http://localhost:8080").as_deref(),
            Some("http://localhost:8080")
        );
        assert_eq!(
            ok("http://127.0.0.1:9/r").as_deref(),
            Some("http://127.0.0.1:9/r")
        );
        assert_eq!(ok("http://[::1]:9").as_deref(), Some("http://[::1]:9"));
        for bad in [
            "",
            "   ",
            "a.example",
            "ftp://a.example",
            "http://a.example",
            "https://a.example?x=1",
            "https://a.example/#f",
            "https://a.example/?",
            "https:///nohost",
        ] {
            assert!(normalise_issuer(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn a_provider_is_unusable_until_initialised() {
        let provider = OpenIdProvider::new("https://a.example", "app", "").unwrap();
        assert!(!provider.has_secret());
        let request = Authorization {
            state: "s",
            nonce: "n",
            pkce_verifier: "v",
            redirect_uri: "https://app.example/oauth/a/callback",
        };
        assert!(matches!(
            provider.authorization_url(&request),
            Err(OAuthError::NotReady)
        ));
        assert_eq!(provider.token_auth_method(), None);
        assert!(OpenIdProvider::new("https://a.example", "", "x").is_err());
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let provider = OpenIdProvider::new("https://a.example", "app", "hunter2-secret").unwrap();
        assert!(!format!("{provider:?}").contains("hunter2"));
    }
}
