//! CSRF for every unsafe request of a live cookie session, whether or not its handler asks who
//! is signed in; the token from the `X-CSRF-Token` header or, for server-rendered forms, a
//! `csrf_token` field of an urlencoded or multipart body. The [`CsrfToken`] extractor gives a
//! template the token to put in its forms.
//!
//! ```
//! use axum::{routing::{get, post}, response::Html, Router};
//! use crudauth_axum::extract::CsrfToken;
//!
//! async fn form(token: CsrfToken) -> Html<String> {
//!     Html(format!(
//!         r#"<form method="post" action="/notes">
//!              <input type="hidden" name="csrf_token" value="{}">
//!              <input name="text"><button>Save</button>
//!            </form>"#,
//!         token.as_str()
//!     ))
//! }
//!
//! // Under `.layer(auth.layer())` (or `auth.csrf_layer()`), this handler only runs for a
//! // signed-in browser when the form's token is right, though it never extracts a user.
//! async fn save(body: String) -> String { body }
//!
//! let app: Router = Router::new().route("/notes", get(form).post(save));
//! ```

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Multipart};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::body::{read_error, BodyType};
use crate::cookies::SESSION_COOKIE;
use crate::error::AuthError;
use crate::extract::{resolve, resolve_at};
use crate::layer::RequestAuth;
use crate::state::CrudAuth;
use crate::transport::is_unsafe;

/// How much of a form body the layer reads to find its `csrf_token` field (2 MiB, axum's own
/// default body limit). A larger form is refused with 413 unless it sends the token in the
/// `X-CSRF-Token` header, which needs no body read at all.
pub const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// The form field the token may come in.
pub const FORM_FIELD: &str = "csrf_token";

/// Whether the layer must check this request before it goes on: an unsafe method, CSRF on,
/// a session cookie present (no cookie, no session, nothing to read), and not one of
/// crudauth's own routes, which check CSRF themselves in crudauth's order (a route's budget
/// is counted before its caller is authenticated, so a refused request still counts) and
/// take no token where crudauth takes none (`/login`, `/register`, the recovery links…).
/// They are recognised by their whole path, as `auth.router()` mounts them at the root;
/// nested under a prefix, they are checked by the layer like any other route.
///
/// One exception: an HTML form posted to `/logout` or `/sudo` (an urlencoded or multipart
/// body, which those JSON routes never take) is an application's own page on that path, and
/// is checked here, its `csrf_token` field included.
pub(crate) fn needs_check<B>(auth: &CrudAuth, req: &Request<B>) -> bool {
    let path = req.uri().path();
    let page_form = matches!(path, "/logout" | "/sudo")
        && matches!(
            crate::body::BodyType::of(req.headers()),
            crate::body::BodyType::UrlEncoded | crate::body::BodyType::Multipart(_)
        );
    auth.csrf_enabled()
        && is_unsafe(req.method())
        && (page_form || !crate::routes::is_own_path(auth, path))
        && auth
            .inner
            .cookies
            .read(req.headers(), SESSION_COOKIE)
            .is_some()
}

/// Checks a request [`needs_check`] picked: the principal is resolved now (and kept for the
/// handler's extractors), which for a live session checks the token and the request's
/// origin. A token found in a form body travels on as the `X-CSRF-Token` header, and the
/// body, read once, is handed on whole.
pub(crate) async fn check(req: Request<Body>) -> Result<Request<Body>, Response> {
    let (mut parts, body) = req.into_parts();
    let body = if parts.headers.contains_key("x-csrf-token") {
        body
    } else {
        match BodyType::of(&parts.headers) {
            kind @ (BodyType::UrlEncoded | BodyType::Multipart(_)) => {
                let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
                    .await
                    .map_err(|e| read_error(e).into_response())?;
                if let Some(token) = form_token(&kind, &bytes).await {
                    if let Ok(value) = HeaderValue::from_str(&token) {
                        parts.headers.insert("x-csrf-token", value);
                    }
                }
                Body::from(bytes)
            }
            _ => body,
        }
    };
    session_principal(&mut parts)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Request::from_parts(parts, body))
}

/// Resolves the transports in order up to the session's, as an extractor would: a request
/// that an earlier transport authenticates (a bearer token ahead of the session) is that
/// transport's and needs no token; an earlier transport's failure is left for the handler's
/// extractors to answer (a route narrowed to the session never consults it). Then the
/// session: a live one must pass the token and origin checks.
async fn session_principal(parts: &mut Parts) -> Result<(), AuthError> {
    let Some(auth) = parts
        .extensions
        .get::<RequestAuth>()
        .map(|r| r.auth.clone())
    else {
        return Ok(());
    };
    for (i, transport) in auth.transports().iter().enumerate() {
        if transport.name() == "session" {
            return resolve_at(parts, i).await.map(|_| ());
        }
        if let Ok(Some(_)) = resolve_at(parts, i).await {
            return Ok(());
        }
    }
    Ok(())
}

/// The `csrf_token` field of a form body, if it has one (the first; a multipart body that
/// does not parse has none).
pub(crate) async fn form_token(kind: &BodyType, bytes: &axum::body::Bytes) -> Option<String> {
    match kind {
        BodyType::UrlEncoded => form_urlencoded::parse(bytes)
            .find(|(name, _)| name == FORM_FIELD)
            .map(|(_, value)| value.into_owned()),
        BodyType::Multipart(content_type) => {
            let req = Request::builder()
                .header(CONTENT_TYPE, content_type)
                .body(Body::from(bytes.clone()))
                .ok()?;
            let mut form = Multipart::from_request(req, &()).await.ok()?;
            while let Ok(Some(field)) = form.next_field().await {
                if field.name() == Some(FORM_FIELD) && field.file_name().is_none() {
                    return field.text().await.ok();
                }
            }
            None
        }
        _ => None,
    }
}

/// Why a [`CsrfToken`] could not be extracted. Answers crudauth's JSON `{"detail": …}`.
#[derive(Debug, thiserror::Error)]
pub enum CsrfRejection {
    /// The route is not under `auth.layer()` (500; a setup mistake, logged).
    #[error("authentication is not configured for this route")]
    MissingLayer,
    /// Reading the session failed: a forged cookie (401), a store outage (503).
    #[error("{0}")]
    Auth(#[from] AuthError),
}

impl IntoResponse for CsrfRejection {
    fn into_response(self) -> Response {
        match self {
            Self::MissingLayer => {
                tracing::error!(
                    "CsrfToken extractor used on a route without `.layer(auth.layer())`"
                );
                AuthError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Authentication is not configured for this route",
                )
                .into_response()
            }
            Self::Auth(e) => e.into_response(),
        }
    }
}

/// The CSRF token of the request's live session, for a form's hidden `csrf_token` field (or
/// a page's `<meta>`): empty when nobody is signed in or CSRF is off, since a signed-out form
/// needs none. The token is derived from the session, so extracting it costs nothing beyond
/// the session read every extractor of the request shares.
#[derive(Debug, Clone, Default)]
pub struct CsrfToken(String);

impl CsrfToken {
    /// The token (empty when there is none).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = CsrfRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let auth = parts
            .extensions
            .get::<RequestAuth>()
            .map(|r| r.auth.clone())
            .ok_or(CsrfRejection::MissingLayer)?;
        let (Some(sessions), true) = (auth.sessions(), auth.csrf_enabled()) else {
            return Ok(CsrfToken::default());
        };
        let principal = resolve(parts, Some("session")).await?;
        Ok(principal
            .and_then(|p| {
                p.session
                    .as_ref()
                    .map(|s| sessions.csrf().token(&s.id, s.record.csrf_nonce()))
            })
            .map(|t| CsrfToken(t.expose().to_owned()))
            .unwrap_or_default())
    }
}
