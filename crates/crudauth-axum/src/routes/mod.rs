//! The HTTP surface of CONTRACT.md, one file per feature.

mod account;
mod bearer;
mod session;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::Value;

use crate::bearer::RefreshMode;
use crate::builder::CrudAuth;
use crate::client_ip::client_ip;
use crate::cookies;
use crate::error::AuthError;
use crate::layer::rate_limit::limited;

pub(crate) fn router<S: Clone + Send + Sync + 'static>(auth: &CrudAuth) -> Router<S> {
    let mut routes: Router<CrudAuth> = Router::new()
        .route("/register", post(account::register))
        .route("/me", get(account::me))
        .route(
            "/change-password",
            limited(post(account::change_password), auth, "change_password"),
        )
        .route("/set-password", post(account::set_password));
    if let Some(session) = &auth.inner.session {
        routes = routes
            .route("/login", post(session::login))
            .route("/logout", post(session::logout));
        if session.management_routes {
            routes = routes
                .route("/sessions", get(session::list))
                .route("/sessions/{handle}", delete(session::revoke))
                .route(
                    "/logout-all",
                    limited(post(session::logout_all), auth, "logout_all"),
                )
                .route(
                    "/csrf/refresh",
                    limited(post(session::csrf_refresh), auth, "csrf_refresh"),
                );
        }
    }
    if let Some(bearer) = &auth.inner.bearer {
        routes = routes
            .route("/token", post(bearer::token))
            .route("/refresh", post(bearer::refresh));
        if auth.inner.session.is_none() && bearer.refresh == RefreshMode::Cookie {
            routes = routes.route("/logout", post(bearer::logout));
        }
    }
    // The extractors find crudauth through this layer even if the app forgets its own.
    routes.layer(auth.layer()).with_state(auth.clone())
}

/// Who is calling: address (behind the trusted proxies), user agent, and whether the browser
/// says the request is cross-site.
pub(crate) struct Client {
    pub(crate) ip: String,
    pub(crate) user_agent: String,
    pub(crate) cross_site: bool,
}

impl FromRequestParts<CrudAuth> for Client {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        auth: &CrudAuth,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        Ok(Client {
            ip: client_ip(&parts.headers, peer, auth.inner.trusted_proxy_hops),
            user_agent: header("user-agent").to_owned(),
            cross_site: header("sec-fetch-site").eq_ignore_ascii_case("cross-site"),
        })
    }
}

/// A JSON answer with `Set-Cookie` headers.
pub(crate) fn reply(status: StatusCode, body: Value, set_cookies: Vec<HeaderValue>) -> Response {
    let mut response = (status, Json(body)).into_response();
    cookies::append(response.headers_mut(), set_cookies);
    response
}

/// `{"detail": message}` with 200.
pub(crate) fn detail(message: &str) -> Value {
    serde_json::json!({ "detail": message })
}
