//! OAuth 2.0 and OpenID Connect sign-in: `GET /oauth/{provider}/authorize` and
//! `GET /oauth/{provider}/callback`, in crudauth 0.8's words (its error codes, its redirects,
//! its JSON mode), with the id_token validated by the provider.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crudauth_core::hooks::{HookContext, HookEvent};
use crudauth_core::oauth::accounts::{self, ResolveError};
use crudauth_core::oauth::flow::{Flow, Flows};
use crudauth_core::oauth::{Authorization, Callback, OAuthProvider};
use crudauth_core::secret::ct_eq;

use super::mfa::Finish;
use super::recovery::same_origin_path;
use super::{reply, Client};
use crate::cookies;
use crate::error::AuthError;
use crate::state::CrudAuth;

/// The cookie binding a flow to the browser that began it.
pub(crate) const STATE_COOKIE: &str = "oauth_state";
/// How long a flow (and its cookie) lives: crudauth's 30 minutes.
const FLOW_TTL: Duration = Duration::from_secs(1800);
/// The JSON-mode answer to a state this browser did not start (crudauth's words).
const INVALID_STATE: &str = "Invalid or expired OAuth state";

/// How the callback answers: crudauth's `oauth_response_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OAuthResponseMode {
    /// Redirects: 307 to the provider, 307 back to the app (`?error=<code>` on failure).
    #[default]
    Redirect,
    /// JSON for a single-page app: `{url}` from authorize, `{user, csrf_token, redirect_to}`
    /// or 400 `{"detail": <code>}` from the callback.
    Json,
}

/// OAuth as built: the providers by name and where flows live.
#[derive(Debug)]
pub(crate) struct OAuthState {
    pub(crate) providers: HashMap<String, Arc<dyn OAuthProvider>>,
    pub(crate) flows: Flows,
    /// `redirect_base_url`, without a trailing `/`: callbacks are `{base}/oauth/{name}/callback`.
    pub(crate) base_url: String,
    /// Where a finished or failed redirect-mode sign-in lands by default.
    pub(crate) default_redirect: String,
    pub(crate) mode: OAuthResponseMode,
}

impl OAuthState {
    fn provider(&self, name: &str) -> Result<&Arc<dyn OAuthProvider>, AuthError> {
        self.providers.get(name).ok_or_else(|| {
            AuthError::bad_request(format!("Unknown or unconfigured OAuth provider: '{name}'"))
        })
    }

    fn callback_url(&self, name: &str) -> String {
        format!("{}/oauth/{name}/callback", self.base_url)
    }

    fn json(&self) -> bool {
        self.mode == OAuthResponseMode::Json
    }
}

/// The session's `login_type` of an OAuth sign-in with `provider`.
pub(crate) fn login_type(provider: &str) -> String {
    format!("oauth:{provider}")
}

/// The query's parameters, the first of each name kept; a malformed query is simply empty.
pub(crate) fn query(uri: &Uri) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        params
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    params
}

/// A 307 to `location` with `cookies`.
fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(LOCATION, value);
        }
        Err(_) => return AuthError::bad_request("Invalid redirect").into_response(),
    }
    cookies::append(response.headers_mut(), cookies);
    response
}

impl CrudAuth {
    fn oauth_state(&self) -> Result<&OAuthState, AuthError> {
        self.inner
            .oauth
            .as_ref()
            .ok_or_else(AuthError::not_authenticated)
    }

    fn clear_state_cookie(&self) -> HeaderValue {
        self.inner.cookies.set_lax(STATE_COOKIE, "", 0)
    }

    /// A failed callback: 307 to the default target with `?error=<code>`, or 400
    /// `{"detail": <code>}` in JSON mode (`invalid_state` in crudauth's words there); the state
    /// cookie is cleared either way.
    fn oauth_failure(&self, oauth: &OAuthState, code: &str) -> Response {
        let clear = vec![self.clear_state_cookie()];
        if oauth.json() {
            let detail = if code == "invalid_state" {
                INVALID_STATE
            } else {
                code
            };
            return reply(StatusCode::BAD_REQUEST, json!({ "detail": detail }), clear);
        }
        let target = &oauth.default_redirect;
        let sep = if target.contains('?') { '&' } else { '?' };
        redirect(&format!("{target}{sep}error={code}"), clear)
    }
}

pub(super) async fn authorize(
    State(auth): State<CrudAuth>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, AuthError> {
    let oauth = auth.oauth_state()?;
    let provider = oauth.provider(&name)?;
    let redirect_to = same_origin_path(query(&uri).remove("redirect_to"));
    let now = auth.inner.clock.now_millis() / 1000;
    let flow = Flow::start(&name, redirect_to, now);
    let redirect_uri = oauth.callback_url(&name);
    let state = oauth.flows.begin(&flow, FLOW_TTL).await?;
    let url = provider
        .authorization_url(&Authorization {
            state: state.expose(),
            nonce: &flow.nonce,
            pkce_verifier: &flow.pkce_verifier,
            redirect_uri: &redirect_uri,
        })
        .map_err(|e| AuthError::unavailable(&e))?;
    let cookie = auth
        .inner
        .cookies
        .set_lax(STATE_COOKIE, state.expose(), FLOW_TTL.as_secs());
    if oauth.json() {
        return Ok(reply(StatusCode::OK, json!({ "url": url }), vec![cookie]));
    }
    Ok(redirect(&url, vec![cookie]))
}

pub(super) async fn callback(
    State(auth): State<CrudAuth>,
    Path(name): Path<String>,
    client: Client,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    let oauth = auth.oauth_state()?;
    let provider = oauth.provider(&name)?;
    // A single-page app calls the callback from its own page: a cross-site call there is login
    // CSRF. (A redirect-mode callback is a navigation back from the provider, cross-site by
    // nature; the state bound to this browser's cookie is its defence.)
    if oauth.json() {
        client.refuse_cross_site_login()?;
    }
    let params = query(&uri);
    let (Some(code), Some(state)) = (params.get("code"), params.get("state")) else {
        return Ok(auth.oauth_failure(oauth, "oauth_failed"));
    };
    if params.contains_key("error") || code.is_empty() {
        return Ok(auth.oauth_failure(oauth, "oauth_failed"));
    }
    // The flow must be this browser's (login CSRF, a captured callback URL replayed elsewhere)…
    let bound = auth.inner.cookies.read(&headers, STATE_COOKIE);
    if !bound.is_some_and(|b| ct_eq(b.as_bytes(), state.as_bytes())) {
        return Ok(auth.oauth_failure(oauth, "invalid_state"));
    }
    // …and live, taken once, and of this provider.
    let Some(flow) = oauth.flows.take(state).await? else {
        return Ok(auth.oauth_failure(oauth, "invalid_state"));
    };
    if flow.provider != name {
        return Ok(auth.oauth_failure(oauth, "invalid_state"));
    }
    // RFC 9207: an authorization response that names another issuer is a mix-up.
    if let (Some(iss), Some(expected)) = (params.get("iss"), provider.issuer()) {
        if iss.trim_end_matches('/') != expected.trim_end_matches('/') {
            tracing::warn!(provider = %name, "crudauth: OAuth callback from another issuer (mix-up) refused");
            return Ok(auth.oauth_failure(oauth, "oauth_failed"));
        }
    }
    let info = match provider
        .complete(&Callback {
            code,
            pkce_verifier: &flow.pkce_verifier,
            nonce: &flow.nonce,
            redirect_uri: &oauth.callback_url(&name),
            started_at: flow.started_at,
        })
        .await
    {
        Ok(info) => info,
        Err(error) => {
            tracing::warn!(provider = %name, %error, "crudauth: OAuth sign-in failed");
            return Ok(auth.oauth_failure(oauth, "oauth_failed"));
        }
    };
    let resolved = match accounts::resolve(auth.users(), &name, &info).await {
        Ok(resolved) => resolved,
        Err(ResolveError::Refused(refusal)) => {
            return Ok(auth.oauth_failure(oauth, refusal.code()));
        }
        Err(ResolveError::Store(e)) => return Err(e.into()),
    };
    let context = || HookContext {
        transport: Some("oauth".into()),
        ..client.hook_context(None)
    };
    let user = resolved.user;
    if resolved.claimed {
        // The squatter's sessions end; its bearer tokens died with the token_version bump.
        if let Some(sessions) = auth.sessions() {
            sessions.revoke_all(&user.id, None).await?;
        }
        auth.fire(
            HookEvent::OAuthAccountClaimed {
                user: user.clone(),
                provider: name.clone(),
            },
            context(),
        )
        .await;
    }
    if resolved.created {
        auth.fire(HookEvent::Registered(user.clone()), context())
            .await;
    }
    auth.fire(
        HookEvent::OAuthLogin {
            user: user.clone(),
            provider: name.clone(),
            created: resolved.created,
        },
        context(),
    )
    .await;
    let target = flow
        .redirect_to
        .clone()
        .unwrap_or_else(|| oauth.default_redirect.clone());
    if auth
        .inner
        .mfa
        .as_ref()
        .is_some_and(|m| m.service.challenges_oauth())
    {
        let finish = Finish::OAuth {
            provider: name.clone(),
            redirect_to: target.clone(),
        };
        if let Some(challenge) = auth.challenge_if_due(&user, &client, finish).await? {
            let clear = vec![auth.clear_state_cookie()];
            if oauth.json() {
                return Ok(reply(StatusCode::OK, Value::Object(challenge), clear));
            }
            let token = challenge
                .get("challenge")
                .and_then(Value::as_str)
                .unwrap_or("");
            let location = format!("{}#mfa_challenge={token}", oauth.default_redirect);
            return Ok(redirect(&location, clear));
        }
    }
    let sessions = super::session::sessions(&auth)?;
    let body = json!({
        "user": {
            "user_id": user.id,
            "username": user.username,
            "email": user.email,
            "is_superuser": user.is_superuser,
        },
    });
    let mut signed_in = super::session::sign_in(
        &auth,
        sessions,
        user,
        &client,
        &headers,
        false,
        &login_type(&name),
    )
    .await?;
    signed_in.cookies.push(auth.clear_state_cookie());
    if oauth.json() {
        let mut body = body;
        body["csrf_token"] = signed_in.body.remove("csrf_token").unwrap_or(Value::Null);
        body["redirect_to"] = target.into();
        return Ok(reply(StatusCode::OK, body, signed_in.cookies));
    }
    Ok(redirect(&target, signed_in.cookies))
}
