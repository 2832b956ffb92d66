//! One error type for everything crudauth answers: `{"detail": …}` JSON with the right status
//! and headers.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crudauth_core::jwt::{RefreshError, TokenError};
use crudauth_core::StoreError;

use crate::failure_log::FailureLog;

/// An error answered as crudauth answers it: a status, a JSON `{"detail": …}` body (a message,
/// or a list of validation entries) and any headers (`Retry-After`, `X-CSRF-Error`, …).
///
/// ```
/// use axum::response::IntoResponse;
/// use crudauth_axum::AuthError;
///
/// let response = AuthError::not_authenticated().into_response();
/// assert_eq!(response.status(), 401);
/// ```
#[derive(Debug, Clone)]
pub struct AuthError {
    status: StatusCode,
    detail: Value,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl AuthError {
    /// Any status with a message.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: Value::String(detail.into()),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: impl ToString) -> Self {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            self.headers.push((name, value));
        }
        self
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `detail` of the body.
    pub fn detail(&self) -> &Value {
        &self.detail
    }

    /// The `Retry-After` seconds this error answers with, if any.
    pub fn retry_after(&self) -> Option<u64> {
        self.headers
            .iter()
            .find(|(name, _)| name == axum::http::header::RETRY_AFTER)
            .and_then(|(_, value)| value.to_str().ok()?.parse().ok())
    }

    /// 401 "Not authenticated".
    pub fn not_authenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Not authenticated")
    }

    /// 401 "Invalid token": a credential that is present but forged or malformed.
    pub fn invalid_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Invalid token")
    }

    /// 401 "Incorrect username or password".
    pub fn bad_credentials() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Incorrect username or password")
    }

    /// 403 with `X-CSRF-Error: true`, and `Vary: Sec-Fetch-Site, Origin` (the answer depends
    /// on those headers, so no cache may hand it to another request).
    pub fn csrf(detail: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
            .with_header(HeaderName::from_static("x-csrf-error"), "true")
            .with_header(header::VARY, "Sec-Fetch-Site, Origin")
    }

    /// 403 with a message.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 400 with a message.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 404 with a message.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 422 with a message (duplicates: "Email already registered").
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// 422 with validation entries `[{type, loc, msg, …}]`.
    pub fn validation(entries: Vec<Value>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: Value::Array(entries),
            headers: Vec::new(),
        }
    }

    /// 429 with `Retry-After`.
    pub fn too_many(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, detail)
            .with_header(header::RETRY_AFTER, retry_after_secs)
    }

    /// 503 "Authentication service unavailable": a store, limiter or database failed on an
    /// authentication path. Logged here with the cause: at ERROR at most once every 10 s
    /// (with how many more failed since), the flood of an outage at DEBUG.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        static LOG: FailureLog = FailureLog::new();
        LOG.report("authentication backend failed; answering 503", cause);
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Authentication service unavailable",
        )
    }
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        Self::unavailable(&error)
    }
}

impl From<crudauth_core::user::UserStoreError> for AuthError {
    fn from(error: crudauth_core::user::UserStoreError) -> Self {
        Self::unavailable(&error)
    }
}

/// Issuing or revoking bearer tokens failed: a backend, so a 503.
impl From<TokenError> for AuthError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Store(e) => e.into(),
            TokenError::Sign(e) => Self::unavailable(&e),
        }
    }
}

/// A refused refresh is a 401 "Invalid or expired refresh token", whatever happened to its
/// family; a failed backend is a 503.
impl From<RefreshError> for AuthError {
    fn from(error: RefreshError) -> Self {
        match error {
            RefreshError::Invalid | RefreshError::Superseded | RefreshError::Reused => {
                Self::new(StatusCode::UNAUTHORIZED, "Invalid or expired refresh token")
            }
            RefreshError::Store(e) => e.into(),
            RefreshError::Users(e) => e.into(),
            RefreshError::Sign(e) => Self::unavailable(&e),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({ "detail": self.detail }))).into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.detail)
    }
}

impl std::error::Error for AuthError {}
