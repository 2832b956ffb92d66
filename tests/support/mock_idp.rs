//! A mock OpenID Connect provider, and a GitHub-like OAuth 2.0 provider beside it, for
//! end-to-end tests of the OAuth/OIDC client: the other side of the protocol, served in-process
//! on a loopback port.
//!
//! It follows OpenID Connect Core 1.0 and Discovery 1.0, RFC 6749, RFC 7636 (PKCE, `S256` only,
//! and required) and RFC 9207 (the `iss` authorization response parameter), strictly where a
//! client could get them wrong, and it misbehaves on purpose when a test injects a [`Defect`].
//!
//! ```no_run
//! use crudauth_tests::mock_idp::{Defect, IdpUser, MockIdp};
//! # async fn example() {
//! let idp = MockIdp::start().await;
//! // Configure the client with idp.issuer(), idp.client_id() and idp.client_secret().
//! idp.set_user(IdpUser { sub: "u-42".into(), ..IdpUser::default() });
//! idp.inject(Defect::WrongNonce);
//! // … a sign-in must fail now …
//! idp.clear();
//! # }
//! ```
//!
//! Endpoints, under the issuer (which may have a path, such as `/realms/demo`):
//! `GET /.well-known/openid-configuration`, `GET /authorize`, `POST /token`,
//! `GET|POST /userinfo`, `GET /jwks`. GitHub-like, under [`MockIdp::github_base`]:
//! `GET /login/oauth/authorize`, `POST /login/oauth/access_token`, `GET /user`,
//! `GET /user/emails`. For scripts, at the server's root: `POST /admin/user` (an [`IdpUser`] as
//! JSON), `POST /admin/defect` (a [`Defect`] by name, see [`Defect::from_str`]),
//! `POST /admin/clear`, `POST /admin/rotate-keys`, `POST /admin/github/user` (a [`GithubUser`])
//! and `POST /admin/github/emails` (a list of [`GithubEmail`]).

mod github;
mod keys;
mod oidc;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

pub use keys::{KID_1, KID_2};
pub use wire::{at_hash, s256_challenge};

/// The client id a mock starts with unless told otherwise.
pub const DEFAULT_CLIENT_ID: &str = "mock-client";
/// The client secret a mock starts with unless told otherwise.
pub const DEFAULT_CLIENT_SECRET: &str = "mock-client-secret";
/// The issuer that defects put where the mock's own belongs.
pub const OTHER_ISSUER: &str = "https://other-issuer.example";
/// The audience that defects put beside, or instead of, the client's id.
pub const OTHER_AUDIENCE: &str = "another-client";

/// How long an authorization code can be redeemed.
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// How long an access token is good for, in seconds (`expires_in`).
const ACCESS_TOKEN_SECONDS: u64 = 3600;

/// How a mock is configured: [`IdpOptions::default`] is a confidential client that may use
/// `client_secret_basic` or `client_secret_post`, and an issuer that advertises RFC 9207.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpOptions {
    /// A path after `http://127.0.0.1:{port}` in the issuer, such as `"/realms/demo"`; empty
    /// for none. Every OpenID endpoint lives under it.
    pub issuer_path: String,
    /// The one client the provider knows.
    pub client_id: String,
    /// Its secret; empty for a public client, which sends its `client_id` alone (method
    /// `none`, see [`IdpOptions::public_client`]).
    pub client_secret: String,
    /// The redirect URIs the client registered, compared as strings; `None` accepts any
    /// absolute http(s) URI.
    pub redirect_uris: Option<Vec<String>>,
    /// What the discovery document advertises as `token_endpoint_auth_methods_supported`; the
    /// token endpoint then refuses any other method. `None` leaves the field out (and accepts
    /// every method).
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Whether the discovery document says `authorization_response_iss_parameter_supported`
    /// and the authorization response carries `iss` (RFC 9207).
    pub iss_parameter_supported: bool,
}

impl Default for IdpOptions {
    fn default() -> Self {
        Self {
            issuer_path: String::new(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            redirect_uris: None,
            token_endpoint_auth_methods_supported: Some(vec![
                "client_secret_basic".to_owned(),
                "client_secret_post".to_owned(),
            ]),
            iss_parameter_supported: true,
        }
    }
}

impl IdpOptions {
    /// A public client: no secret, and `none` the one method advertised.
    pub fn public_client() -> Self {
        Self {
            client_secret: String::new(),
            token_endpoint_auth_methods_supported: Some(vec!["none".to_owned()]),
            ..Self::default()
        }
    }
}

/// Who the next authorization approves, and the claims the provider tells about them. A claim
/// left `None` is left out of the id_token and the userinfo answer. The email claims are given
/// for the `email` scope, the others for `profile` (OpenID Connect Core §5.4).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IdpUser {
    /// The subject: the provider's stable id for the user.
    pub sub: String,
    /// `email`.
    pub email: Option<String>,
    /// `email_verified`, as any JSON so a test can send `"true"` (a string) or `null`.
    pub email_verified: Option<serde_json::Value>,
    /// `name`.
    pub name: Option<String>,
    /// `given_name`.
    pub given_name: Option<String>,
    /// `preferred_username`.
    pub preferred_username: Option<String>,
    /// `picture`.
    pub picture: Option<String>,
}

impl Default for IdpUser {
    /// Ada, with a verified email and every profile claim.
    fn default() -> Self {
        Self {
            sub: "mock-user-ada".to_owned(),
            email: Some("ada@example.com".to_owned()),
            email_verified: Some(serde_json::Value::Bool(true)),
            name: Some("Ada Lovelace".to_owned()),
            given_name: Some("Ada".to_owned()),
            preferred_username: Some("ada".to_owned()),
            picture: Some("https://images.example/ada.png".to_owned()),
        }
    }
}

/// Who the GitHub-like provider's next authorization approves (`GET /user`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GithubUser {
    /// The numeric account id.
    pub id: u64,
    /// The user name.
    pub login: String,
    /// The display name, if any.
    pub name: Option<String>,
    /// The avatar's URL.
    pub avatar_url: String,
    /// The public email, if the user has made one public.
    pub email: Option<String>,
}

impl Default for GithubUser {
    /// Ada, whose public email is her primary one.
    fn default() -> Self {
        Self {
            id: 1_815,
            login: "ada".to_owned(),
            name: Some("Ada Lovelace".to_owned()),
            avatar_url: "https://avatars.example/u/1815".to_owned(),
            email: Some("ada@example.com".to_owned()),
        }
    }
}

/// One entry of the GitHub-like `GET /user/emails`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GithubEmail {
    /// The address.
    pub email: String,
    /// Whether it is the primary one.
    pub primary: bool,
    /// Whether the user proved it is theirs.
    pub verified: bool,
    /// `"public"`, `"private"`, or `None` (JSON `null`).
    pub visibility: Option<String>,
}

impl GithubEmail {
    /// The emails [`GithubUser::default`] has: her primary one, verified and public.
    pub fn defaults() -> Vec<GithubEmail> {
        vec![GithubEmail {
            email: "ada@example.com".to_owned(),
            primary: true,
            verified: true,
            visibility: Some("public".to_owned()),
        }]
    }
}

/// A way for the provider to misbehave, from [`MockIdp::inject`] until [`MockIdp::clear`].
/// Defects add up; the id_token ones apply to tokens issued while they are on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// The authorization endpoint redirects back with `error=<code>` (and `state`, and `iss`
    /// when advertised) instead of a code. GitHub-like too.
    AuthorizeError(String),
    /// The id_token's signature is corrupted (one bit flipped).
    BadSignature,
    /// `aud` is [`OTHER_AUDIENCE`] alone.
    WrongAudience,
    /// `aud` is the client and [`OTHER_AUDIENCE`], with no `azp`.
    ExtraAudienceNoAzp,
    /// `aud` is the client and [`OTHER_AUDIENCE`], and `azp` is [`OTHER_AUDIENCE`].
    WrongAzp,
    /// `iss` is [`OTHER_ISSUER`].
    WrongIssuer,
    /// `nonce` is not the one the authorization request sent.
    WrongNonce,
    /// `nonce` is left out although the authorization request sent one.
    MissingNonce,
    /// `exp` is ten minutes in the past (and `iat` fifteen).
    Expired,
    /// `iat` is ten minutes ahead (and `exp` five minutes after it).
    IssuedInFuture,
    /// Signed with key 2 while the JWKS still serves only key 1 (until
    /// [`MockIdp::rotate_keys`]).
    UnknownKid,
    /// An unsecured token: `alg` `none`, no signature.
    AlgNone,
    /// `at_hash` is the hash of another access token.
    BadAtHash,
    /// The token response has no `id_token`.
    MissingIdToken,
    /// The userinfo answer's `sub` differs from the id_token's.
    SubMismatch,
    /// The token endpoint answers this status with an OAuth error body. GitHub-like too.
    TokenEndpointStatus(u16),
    /// The token endpoint answers 200 with `{"error":"bad_verification_code"}` and no
    /// `access_token`, as GitHub does. GitHub-like too.
    TokenErrorBody200,
    /// The userinfo endpoint answers this status. GitHub-like `/user` and `/user/emails` too.
    UserinfoStatus(u16),
    /// The token and userinfo endpoints (GitHub-like too) wait this long before answering.
    Slow(Duration),
    /// The authorization response's `iss` is [`OTHER_ISSUER`] (an RFC 9207 mix-up).
    WrongIssParameter,
    /// The discovery document's `issuer` is not the issuer it was fetched from.
    DiscoveryWrongIssuer,
    /// The discovery document has no `userinfo_endpoint`.
    DiscoveryMissingUserinfo,
}

impl FromStr for Defect {
    type Err = String;

    /// A defect by its snake_case name, with its argument after a colon where it takes one:
    /// `bad_signature`, `authorize_error:access_denied`, `token_endpoint_status:503`,
    /// `userinfo_status:500`, `slow:1500` (milliseconds), `token_error_body_200`, …
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, argument) = match text.trim().split_once(':') {
            Some((name, argument)) => (name, Some(argument.trim())),
            None => (text.trim(), None),
        };
        let number = |what: &str| -> Result<u64, String> {
            argument
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| format!("defect {name} takes {what} after a colon: {name}:<{what}>"))
        };
        let status = || -> Result<u16, String> {
            number("status")?
                .try_into()
                .map_err(|_| format!("defect {name}: not an HTTP status"))
        };
        Ok(match name {
            "authorize_error" => Defect::AuthorizeError(
                argument
                    .filter(|a| !a.is_empty())
                    .unwrap_or("access_denied")
                    .to_owned(),
            ),
            "bad_signature" => Defect::BadSignature,
            "wrong_audience" => Defect::WrongAudience,
            "extra_audience_no_azp" => Defect::ExtraAudienceNoAzp,
            "wrong_azp" => Defect::WrongAzp,
            "wrong_issuer" => Defect::WrongIssuer,
            "wrong_nonce" => Defect::WrongNonce,
            "missing_nonce" => Defect::MissingNonce,
            "expired" => Defect::Expired,
            "issued_in_future" => Defect::IssuedInFuture,
            "unknown_kid" => Defect::UnknownKid,
            "alg_none" => Defect::AlgNone,
            "bad_at_hash" => Defect::BadAtHash,
            "missing_id_token" => Defect::MissingIdToken,
            "sub_mismatch" => Defect::SubMismatch,
            "token_endpoint_status" => Defect::TokenEndpointStatus(status()?),
            "token_error_body_200" => Defect::TokenErrorBody200,
            "userinfo_status" => Defect::UserinfoStatus(status()?),
            "slow" => Defect::Slow(Duration::from_millis(number("milliseconds")?)),
            "wrong_iss_parameter" => Defect::WrongIssParameter,
            "discovery_wrong_issuer" => Defect::DiscoveryWrongIssuer,
            "discovery_missing_userinfo" => Defect::DiscoveryMissingUserinfo,
            _ => return Err(format!("no defect is called {name:?}")),
        })
    }
}

/// How a token request's client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// An `Authorization: Basic` header (`client_secret_basic`).
    Basic,
    /// `client_secret` in the form (`client_secret_post`).
    Post,
    /// Neither: `client_id` alone, or nothing (`none`).
    None,
    /// Both at once, which RFC 6749 §2.3 forbids.
    Several,
}

/// One request the token endpoint received, as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequestSeen {
    /// The form's fields.
    pub form: HashMap<String, String>,
    /// How the client authenticated.
    pub client_auth: ClientAuth,
    /// The `Accept` header, if any.
    pub accept: Option<String>,
}

/// A running mock provider. Clones share it; the server stops when the last clone is dropped
/// (or with the test's runtime).
#[derive(Clone)]
pub struct MockIdp {
    shared: Arc<Shared>,
    _server: Arc<ServerTask>,
}

impl fmt::Debug for MockIdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockIdp")
            .field("issuer", &self.shared.issuer)
            .field("client_id", &self.shared.options.client_id)
            .finish_non_exhaustive()
    }
}

/// Aborts the server's task when the last handle goes.
struct ServerTask(tokio::task::JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl MockIdp {
    /// Starts a provider with [`IdpOptions::default`] on `127.0.0.1`, a free port.
    pub async fn start() -> MockIdp {
        Self::start_with(IdpOptions::default()).await
    }

    /// Starts a provider with `options` on `127.0.0.1`, a free port. Panics (failing the test)
    /// when the options are unusable or no port can be had.
    pub async fn start_with(options: IdpOptions) -> MockIdp {
        match Self::bind("127.0.0.1:0", options).await {
            Ok(idp) => idp,
            Err(e) => panic!("cannot start the mock identity provider: {e}"),
        }
    }

    /// Starts a provider with `options` on `address` (`host:port`). Its issuer is
    /// `http://{address}{issuer_path}`, with `127.0.0.1` for an unspecified host.
    pub async fn bind(address: &str, mut options: IdpOptions) -> std::io::Result<MockIdp> {
        let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        options.issuer_path = normalize_path(&options.issuer_path);
        if ["/github", "/admin"]
            .iter()
            .any(|taken| options.issuer_path.starts_with(taken))
        {
            return Err(invalid(format!(
                "issuer_path {:?} collides with the mock's /github or /admin routes",
                options.issuer_path
            )));
        }
        if options.client_id.is_empty() {
            return Err(invalid("client_id is empty".to_owned()));
        }
        let keys = keys::fixture_keys().map_err(std::io::Error::other)?;
        let listener = tokio::net::TcpListener::bind(address).await?;
        let mut local = listener.local_addr()?;
        if local.ip().is_unspecified() {
            local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let base = format!("http://{local}");
        let shared = Arc::new(Shared {
            issuer: format!("{base}{}", options.issuer_path),
            base,
            options,
            keys,
            jwks_fetches: AtomicUsize::new(0),
            state: Mutex::new(State::default()),
        });
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(MockIdp {
            shared,
            _server: Arc::new(ServerTask(server)),
        })
    }

    /// The issuer: `http://127.0.0.1:{port}` and the issuer path.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.shared.issuer)
    }

    /// The server's root, `http://127.0.0.1:{port}` (where `/admin` is).
    pub fn base_url(&self) -> &str {
        &self.shared.base
    }

    /// The GitHub-like provider's base, `http://127.0.0.1:{port}/github`: its endpoints are
    /// `/login/oauth/authorize`, `/login/oauth/access_token`, `/user` and `/user/emails` under
    /// it.
    pub fn github_base(&self) -> String {
        format!("{}/github", self.shared.base)
    }

    /// The client's id.
    pub fn client_id(&self) -> &str {
        &self.shared.options.client_id
    }

    /// The client's secret (empty for a public client).
    pub fn client_secret(&self) -> &str {
        &self.shared.options.client_secret
    }

    /// The options it runs with (the issuer path normalized).
    pub fn options(&self) -> &IdpOptions {
        &self.shared.options
    }

    /// Who the next authorization approves (those already approved keep their user).
    pub fn set_user(&self, user: IdpUser) {
        self.shared.state().user = user;
    }

    /// Who the GitHub-like provider's next authorization approves.
    pub fn set_github_user(&self, user: GithubUser) {
        self.shared.state().github_user = user;
    }

    /// What the GitHub-like `/user/emails` tells, for authorizations from now on.
    pub fn set_github_emails(&self, emails: Vec<GithubEmail>) {
        self.shared.state().github_emails = Some(emails);
    }

    /// Turns `defect` on, beside any already on, until [`MockIdp::clear`].
    pub fn inject(&self, defect: Defect) {
        self.shared.state().defects.push(defect);
    }

    /// Turns every defect off (the users, the keys and what was recorded stay).
    pub fn clear(&self) {
        self.shared.state().defects.clear();
    }

    /// Signs with key 2 ([`KID_2`]) from now on; the JWKS serves key 2 alone from now on (key 1
    /// alone until then).
    pub fn rotate_keys(&self) {
        self.shared.state().rotated = true;
    }

    /// How many times `/jwks` was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The query parameters of every request `/authorize` received, in order (rejected ones
    /// too).
    pub fn authorize_requests(&self) -> Vec<HashMap<String, String>> {
        self.shared.state().authorize_requests.clone()
    }

    /// Every request `/token` received, in order (rejected ones too).
    pub fn token_requests(&self) -> Vec<TokenRequestSeen> {
        self.shared.state().token_requests.clone()
    }

    /// The query parameters of every request the GitHub-like authorize endpoint received.
    pub fn github_authorize_requests(&self) -> Vec<HashMap<String, String>> {
        self.shared.state().github_authorize_requests.clone()
    }

    /// Every request the GitHub-like access-token endpoint received.
    pub fn github_token_requests(&self) -> Vec<TokenRequestSeen> {
        self.shared.state().github_token_requests.clone()
    }
}

/// `""`, or the path with one leading `/` and no trailing one.
fn normalize_path(path: &str) -> String {
    let trimmed = path.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// What the handlers share.
struct Shared {
    base: String,
    issuer: String,
    options: IdpOptions,
    keys: [keys::SigningKey; 2],
    jwks_fetches: AtomicUsize,
    state: Mutex<State>,
}

impl Shared {
    /// The mutable state; a handler that panicked cannot have left it half-changed in a way
    /// that matters to a mock, so a poisoned lock is taken as it is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The defects on now, and whether the keys were rotated.
    fn defects(&self) -> Defects {
        let state = self.state();
        Defects {
            on: state.defects.clone(),
            rotated: state.rotated,
        }
    }

    /// The key that signs now: key 2 once rotated, or while [`Defect::UnknownKid`] is on.
    fn signing_key(&self, defects: &Defects) -> &keys::SigningKey {
        let [first, second] = &self.keys;
        if defects.rotated || defects.has(&Defect::UnknownKid) {
            second
        } else {
            first
        }
    }

    /// The key the JWKS serves now.
    fn published_key(&self) -> &keys::SigningKey {
        let [first, second] = &self.keys;
        if self.state().rotated {
            second
        } else {
            first
        }
    }
}

/// A snapshot of the defects on (and of the key rotation), with a look-up for each kind.
struct Defects {
    on: Vec<Defect>,
    rotated: bool,
}

impl Defects {
    fn has(&self, defect: &Defect) -> bool {
        self.on.contains(defect)
    }

    fn authorize_error(&self) -> Option<&str> {
        self.on.iter().find_map(|d| match d {
            Defect::AuthorizeError(code) => Some(code.as_str()),
            _ => None,
        })
    }

    fn token_status(&self) -> Option<u16> {
        self.on.iter().find_map(|d| match d {
            Defect::TokenEndpointStatus(status) => Some(*status),
            _ => None,
        })
    }

    fn userinfo_status(&self) -> Option<u16> {
        self.on.iter().find_map(|d| match d {
            Defect::UserinfoStatus(status) => Some(*status),
            _ => None,
        })
    }

    /// Sleeps as long as [`Defect::Slow`] says, if it is on.
    async fn pause(&self) {
        let delay = self.on.iter().find_map(|d| match d {
            Defect::Slow(delay) => Some(*delay),
            _ => None,
        });
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    }
}

/// Which provider issued a code or a token: neither redeems the other's.
#[derive(Debug, Clone)]
enum Subject {
    Oidc(IdpUser),
    Github(GithubUser, Vec<GithubEmail>),
}

/// What an authorization code was issued for.
#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    scope: Vec<String>,
    subject: Subject,
    issued: Instant,
    auth_time: u64,
}

/// What an access token was issued for.
#[derive(Debug, Clone)]
struct Issued {
    subject: Subject,
    scope: Vec<String>,
    issued: Instant,
}

#[derive(Default)]
struct State {
    user: IdpUser,
    github_user: GithubUser,
    /// `None` until set: [`GithubEmail::defaults`].
    github_emails: Option<Vec<GithubEmail>>,
    defects: Vec<Defect>,
    rotated: bool,
    codes: HashMap<String, Grant>,
    /// Redeemed codes, with the access tokens issued for them, revoked if a code comes again
    /// (RFC 6749 §4.1.2).
    spent_codes: HashMap<String, Vec<String>>,
    tokens: HashMap<String, Issued>,
    authorize_requests: Vec<HashMap<String, String>>,
    token_requests: Vec<TokenRequestSeen>,
    github_authorize_requests: Vec<HashMap<String, String>>,
    github_token_requests: Vec<TokenRequestSeen>,
}

impl State {
    /// Remembers a new code for `grant` and returns it.
    fn issue_code(&mut self, grant: Grant) -> String {
        self.codes
            .retain(|_, grant| grant.issued.elapsed() < CODE_LIFETIME);
        let code = wire::random_token();
        self.codes.insert(code.clone(), grant);
        code
    }

    /// Takes a code for redemption, once: a second presentation revokes the tokens the first
    /// one got. A code is spent by any presentation, good or bad.
    fn take_code(&mut self, code: &str) -> Result<Grant, String> {
        if let Some(tokens) = self.spent_codes.get(code) {
            for token in tokens {
                self.tokens.remove(token);
            }
            return Err("the code was already used; its tokens are revoked".into());
        }
        let grant = self
            .codes
            .remove(code)
            .ok_or_else(|| "unknown code".to_owned())?;
        self.spent_codes.insert(code.to_owned(), Vec::new());
        if grant.issued.elapsed() >= CODE_LIFETIME {
            return Err("the code expired".into());
        }
        Ok(grant)
    }

    /// Issues an access token for a redeemed code.
    fn issue_token(&mut self, code: &str, subject: Subject, scope: Vec<String>) -> String {
        let token = wire::random_token();
        self.spent_codes
            .entry(code.to_owned())
            .or_default()
            .push(token.clone());
        self.tokens.insert(
            token.clone(),
            Issued {
                subject,
                scope,
                issued: Instant::now(),
            },
        );
        token
    }

    /// What a live access token was issued for.
    fn token(&self, token: &str) -> Option<Issued> {
        self.tokens
            .get(token)
            .filter(|issued| issued.issued.elapsed() < Duration::from_secs(ACCESS_TOKEN_SECONDS))
            .cloned()
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn router(shared: Arc<Shared>) -> Router {
    let openid = Router::new()
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route("/authorize", get(oidc::authorize))
        .route("/token", post(oidc::token))
        .route("/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .route("/jwks", get(oidc::jwks));
    let github = Router::new()
        .route("/login/oauth/authorize", get(github::authorize))
        .route("/login/oauth/access_token", post(github::access_token))
        .route("/user", get(github::user))
        .route("/user/emails", get(github::emails));
    let admin = Router::new()
        .route("/user", post(admin_user))
        .route("/defect", post(admin_defect))
        .route("/clear", post(admin_clear))
        .route("/rotate-keys", post(admin_rotate_keys))
        .route("/github/user", post(admin_github_user))
        .route("/github/emails", post(admin_github_emails));
    let path = shared.options.issuer_path.clone();
    let root = if path.is_empty() {
        openid
    } else {
        Router::new().nest(&path, openid)
    };
    root.nest("/github", github)
        .nest("/admin", admin)
        .with_state(shared)
}

type Idp = axum::extract::State<Arc<Shared>>;

async fn admin_user(axum::extract::State(idp): Idp, Json(user): Json<IdpUser>) -> StatusCode {
    idp.state().user = user;
    StatusCode::NO_CONTENT
}

/// `{"defect": "slow:1500"}`, a JSON string, or the bare name as the body.
async fn admin_defect(axum::extract::State(idp): Idp, body: String) -> Response {
    let name = match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(serde_json::Value::Object(object)) => match object.get("defect") {
            Some(serde_json::Value::String(name)) => name.clone(),
            _ => {
                return (StatusCode::BAD_REQUEST, "expected {\"defect\": \"<name>\"}")
                    .into_response()
            }
        },
        _ => body.trim().to_owned(),
    };
    match name.parse::<Defect>() {
        Ok(defect) => {
            idp.state().defects.push(defect);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

async fn admin_clear(axum::extract::State(idp): Idp) -> StatusCode {
    idp.state().defects.clear();
    StatusCode::NO_CONTENT
}

async fn admin_rotate_keys(axum::extract::State(idp): Idp) -> StatusCode {
    idp.state().rotated = true;
    StatusCode::NO_CONTENT
}

async fn admin_github_user(
    axum::extract::State(idp): Idp,
    Json(user): Json<GithubUser>,
) -> StatusCode {
    idp.state().github_user = user;
    StatusCode::NO_CONTENT
}

async fn admin_github_emails(
    axum::extract::State(idp): Idp,
    Json(emails): Json<Vec<GithubEmail>>,
) -> StatusCode {
    idp.state().github_emails = Some(emails);
    StatusCode::NO_CONTENT
}
