//! The HTTP surface of CONTRACT.md, one file per feature.

mod account;
mod bearer;
mod mfa;
#[cfg(feature = "oauth")]
pub(crate) mod oauth;
pub(crate) mod recovery;
mod session;
mod sudo;

pub(crate) use account::{
    check_new_account, insert_account, password_changed, replace_password, NewAccount,
};
pub(crate) use mfa::{begin_setup, confirm_setup, finish_challenge, turn_off, Finish, MfaState};
#[cfg(feature = "oauth")]
pub use oauth::OAuthResponseMode;
#[cfg(feature = "oauth")]
pub(crate) use oauth::OAuthState;
pub(crate) use recovery::same_origin_path;
pub(crate) use session::{
    clear_session_cookies, end_session, session_cookies, sessions, sign_in as sign_in_session,
};
pub use sudo::{Elevated, Reauth, SudoConfig};

use axum::extract::FromRequestParts;
use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{Json, Router};
use serde_json::Value;

use crudauth_core::hooks::HookContext;
use crudauth_core::principal::Principal;

use crate::bearer::RefreshMode;
use crate::client_ip::{client_address, peer_ip, ClientAddress};
use crate::cookies;
use crate::error::AuthError;
use crate::layer::rate_limit::limited;
use crate::state::CrudAuth;

pub(crate) fn router<S: Clone + Send + Sync + 'static>(auth: &CrudAuth) -> Router<S> {
    let mut routes: Router<CrudAuth> = Router::new()
        .route("/register", post(account::register))
        .route("/me", get(account::me))
        .route(
            "/change-password",
            limited(post(account::change_password), auth, "change_password"),
        )
        .route(
            "/set-password",
            limited(post(account::set_password), auth, "set_password"),
        );
    if let Some(session) = &auth.inner.session {
        routes = routes
            .route("/login", no_store(post(session::login)))
            .route("/logout", no_store(post(session::logout)));
        routes = routes.route("/sudo", no_store(post(sudo::sudo)));
        if session.management_routes {
            routes = routes
                .route("/sessions", get(session::list))
                .route(
                    "/sessions/{handle}",
                    limited(delete(session::revoke), auth, "revoke_session"),
                )
                .route(
                    "/logout-all",
                    limited(post(session::logout_all), auth, "logout_all"),
                )
                .route(
                    "/csrf/refresh",
                    no_store(limited(post(session::csrf_refresh), auth, "csrf_refresh")),
                );
        }
    }
    if !auth.inner.fanout.is_empty() {
        routes = routes
            .route(
                "/email/verify-request",
                limited(post(recovery::verify_request), auth, "email_verify_request"),
            )
            .route("/email/verify-confirm", post(recovery::verify_confirm))
            .route(
                "/password/reset-request",
                limited(
                    post(recovery::reset_request),
                    auth,
                    "password_reset_request",
                ),
            )
            .route(
                "/password/reset-confirm",
                no_store(post(recovery::reset_confirm)),
            );
        if auth.inner.fanout.sends_email() {
            routes = routes
                .route(
                    "/email/change-request",
                    limited(post(recovery::change_request), auth, "email_change_request"),
                )
                .route("/email/change-confirm", post(recovery::change_confirm));
        }
    }
    if auth.inner.mfa.is_some() {
        let manage = |route| no_store(limited(route, auth, "mfa_manage"));
        routes = routes
            .route("/mfa", get(mfa::status))
            .route("/mfa/totp/setup", manage(post(mfa::setup)))
            .route("/mfa/totp/confirm", manage(post(mfa::confirm)))
            .route("/mfa/totp/disable", manage(post(mfa::disable)))
            .route(
                "/mfa/recovery-codes/regenerate",
                manage(post(mfa::regenerate)),
            )
            .route("/mfa/verify", no_store(post(mfa::verify)))
            .route("/mfa/challenge", no_store(post(mfa::challenge)));
    }
    #[cfg(feature = "oauth")]
    if auth.inner.oauth.is_some() {
        routes = routes
            .route(
                "/oauth/{provider}/authorize",
                no_store(limited(get(oauth::authorize), auth, "oauth_authorize")),
            )
            .route("/oauth/{provider}/callback", no_store(get(oauth::callback)));
    }
    if let Some(bearer) = auth.bearer() {
        routes = routes.route("/token", no_store(post(bearer::token))).route(
            "/refresh",
            no_store(limited(post(bearer::refresh), auth, "refresh")),
        );
        if auth.inner.session.is_none() && bearer.refresh == RefreshMode::Cookie {
            routes = routes.route("/logout", no_store(post(bearer::logout)));
        }
    }
    // The extractors find crudauth through this layer even if the app forgets its own.
    routes.layer(auth.layer()).with_state(auth.clone())
}

/// Whether `path` is one of the routes [`router`] mounts for this configuration.
pub(crate) fn is_own_path(auth: &CrudAuth, path: &str) -> bool {
    const ALWAYS: &[&str] = &["/register", "/me", "/change-password", "/set-password"];
    const SESSION: &[&str] = &["/login", "/logout", "/sudo"];
    const MANAGEMENT: &[&str] = &["/sessions", "/logout-all", "/csrf/refresh"];
    const RECOVERY: &[&str] = &[
        "/email/verify-request",
        "/email/verify-confirm",
        "/password/reset-request",
        "/password/reset-confirm",
    ];
    const CHANGE: &[&str] = &["/email/change-request", "/email/change-confirm"];
    const MFA: &[&str] = &[
        "/mfa",
        "/mfa/totp/setup",
        "/mfa/totp/confirm",
        "/mfa/totp/disable",
        "/mfa/recovery-codes/regenerate",
        "/mfa/verify",
        "/mfa/challenge",
    ];
    const BEARER: &[&str] = &["/token", "/refresh", "/logout"];
    let inner = &auth.inner;
    let session = inner.session.as_ref();
    let management = session.is_some_and(|s| s.management_routes);
    let one_segment_under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    };
    ALWAYS.contains(&path)
        || (session.is_some() && SESSION.contains(&path))
        || (management && (MANAGEMENT.contains(&path) || one_segment_under("/sessions/")))
        || (!inner.fanout.is_empty() && RECOVERY.contains(&path))
        || (inner.fanout.sends_email() && CHANGE.contains(&path))
        || (inner.mfa.is_some() && MFA.contains(&path))
        || (auth.bearer().is_some() && BEARER.contains(&path))
        || oauth_path(auth, path)
}

#[cfg(feature = "oauth")]
fn oauth_path(auth: &CrudAuth, path: &str) -> bool {
    auth.inner.oauth.is_some()
        && path.strip_prefix("/oauth/").is_some_and(|rest| {
            rest.split_once('/').is_some_and(|(provider, leaf)| {
                !provider.is_empty() && matches!(leaf, "authorize" | "callback")
            })
        })
}

#[cfg(not(feature = "oauth"))]
fn oauth_path(_: &CrudAuth, _: &str) -> bool {
    false
}

/// Marks every answer of a route as one no cache may keep: `Cache-Control: no-store` and
/// `Pragma: no-cache` (RFC 6749 §5.1), errors and rate-limit refusals included.
///
/// Every route whose answer carries a credential or a token goes through this one helper:
/// `/login`, `/token`, `/refresh`, `/csrf/refresh` and `/logout` (which clears them) today,
/// and `/mfa/verify`, the OAuth callback and `/sudo` when they are mounted. Wrap the whole
/// method router, after any [`limited`], so nothing the route answers escapes it.
pub(crate) fn no_store<S>(route: MethodRouter<S>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    route.layer(axum::middleware::map_response(mark_no_store))
}

async fn mark_no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Who is calling: address (behind the trusted proxies), user agent, and whether the browser
/// says the request is cross-site.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// The address as text (see [`crate::client_ip`]); `"unknown"` without a peer address.
    pub(crate) ip: String,
    /// The address, or that it is unknown.
    address: ClientAddress,
    /// The `User-Agent` header, read only by the routes that keep it.
    user_agent: Option<HeaderValue>,
    pub(crate) cross_site: bool,
}

impl Client {
    /// The key the address is counted under ([`ip_key`](crate::client_ip::ip_key) of
    /// [`Client::ip`]); `None` when the address is unknown.
    pub(crate) fn ip_key(&self) -> Option<String> {
        let mut key = String::new();
        self.address.write_key(&mut key).then_some(key)
    }

    /// The `User-Agent` header (empty when absent or not visible ASCII).
    pub(crate) fn user_agent(&self) -> &str {
        self.user_agent
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The context a hook gets: this caller, and the principal's transport and session.
    pub(crate) fn hook_context(&self, principal: Option<&Principal>) -> HookContext {
        HookContext {
            ip: self.ip.clone(),
            user_agent: self.user_agent().to_owned(),
            transport: principal.map(|p| p.via.to_string()),
            session_handle: principal
                .and_then(|p| p.session.as_ref())
                .map(|s| s.handle().to_owned()),
        }
    }

    /// 403 "Cross-site login requests are not allowed." when the browser says the request is
    /// cross-site: a sign-in that sets cookies from another site is login CSRF.
    pub(crate) fn refuse_cross_site_login(&self) -> Result<(), AuthError> {
        if self.cross_site {
            return Err(AuthError::forbidden(
                "Cross-site login requests are not allowed.",
            ));
        }
        Ok(())
    }
}

impl Client {
    /// The caller of the request these are the parts of.
    pub(crate) fn of(parts: &Parts, auth: &CrudAuth) -> Self {
        let address = client_address(
            &parts.headers,
            peer_ip(&parts.extensions),
            auth.inner.trusted_proxy_hops,
        );
        let cross_site = parts
            .headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .eq_ignore_ascii_case("cross-site");
        Client {
            ip: address.text(),
            address,
            user_agent: parts.headers.get("user-agent").cloned(),
            cross_site,
        }
    }
}

impl FromRequestParts<CrudAuth> for Client {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        auth: &CrudAuth,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client::of(parts, auth))
    }
}

/// A JSON answer with `Set-Cookie` headers.
pub(crate) fn reply(status: StatusCode, body: Value, set_cookies: Vec<HeaderValue>) -> Response {
    let mut response = (status, Json(body)).into_response();
    cookies::append(response.headers_mut(), set_cookies);
    response
}

/// A completed sign-in: the transport's answer and the cookies that carry its credential.
pub(crate) struct SignedIn {
    pub(crate) body: serde_json::Map<String, Value>,
    pub(crate) cookies: Vec<HeaderValue>,
    /// The session a sign-in through the session transport created.
    pub(crate) session: Option<crudauth_core::session::LoadedSession>,
}

impl SignedIn {
    /// The answer: 200 with the body and the cookies.
    pub(crate) fn reply(self) -> Response {
        reply(StatusCode::OK, Value::Object(self.body), self.cookies)
    }
}

/// `{"detail": message}` with 200.
pub(crate) fn detail(message: &str) -> Value {
    serde_json::json!({ "detail": message })
}
