//! Counting one request against a route limit, and what the answer looks like: shared by
//! [`RateLimitLayer`](super::RateLimitLayer) and the routes that count inside themselves
//! (`/register`, after validation).

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use crudauth_core::limit::{Budget, Decision};

use super::config::{KeyBy, RateLimit};
use crate::builder::CrudAuth;
use crate::client_ip::client_ip_key;
use crate::error::AuthError;
use crate::extract::resolve;

/// `X-RateLimit-Limit`.
pub(crate) const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`.
pub(crate) const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const TOO_MANY: &str = "Too many requests. Try again later.";

/// One action's limit, ready to count: its key prefix, budget, key and fail mode.
#[derive(Debug)]
pub(crate) struct RouteLimiter {
    /// `q:{action}:`.
    prefix: String,
    budget: Budget,
    key: KeyBy,
    fail_open: bool,
    /// Why the limit cannot be used (a zero period): every request is refused, fail closed.
    problem: Option<String>,
}

impl RouteLimiter {
    /// `limit` for `action`, keyed by its own key or else `default_key`.
    pub(crate) fn new(action: &str, limit: &RateLimit, default_key: KeyBy) -> Self {
        let problem = limit.problem();
        if let Some(problem) = &problem {
            tracing::error!(
                action,
                "{problem}; every request to this route is refused (503)"
            );
        }
        Self {
            prefix: format!("q:{action}:"),
            budget: Budget::new(limit.times, limit.period),
            key: limit.key.clone().unwrap_or(default_key),
            fail_open: limit.fail_open,
            problem,
        }
    }

    /// Whether nothing is counted.
    pub(crate) fn is_disabled(&self) -> bool {
        self.budget.is_disabled()
    }

    /// Who is calling, as this limit tells callers apart: `Err` when the limit needs a user
    /// and there is none (401), or resolving the user failed.
    pub(crate) async fn identity(
        &self,
        parts: &mut Parts,
        auth: &CrudAuth,
    ) -> Result<String, AuthError> {
        match &self.key {
            KeyBy::Ip => Ok(address(parts, auth)),
            KeyBy::User => match resolve(parts, auth, None).await? {
                Some(principal) => Ok(principal.user_id().to_string()),
                None => Err(AuthError::not_authenticated()),
            },
            // A failed resolution is left in the request's cache for the handler to answer;
            // the request is still counted, against its address.
            KeyBy::UserOrIp => match resolve(parts, auth, None).await {
                Ok(Some(principal)) => Ok(format!("user:{}", principal.user_id())),
                _ => Ok(format!("ip:{}", address(parts, auth))),
            },
            KeyBy::Custom(key) => {
                Ok(key(parts).unwrap_or_else(|| format!("ip:{}", address(parts, auth))))
            }
        }
    }

    /// Counts one request from `identity`: the decision to report in the headers (`None` when
    /// the limit is off), or the answer that ends the request (429 over budget, 503 when the
    /// limiter fails closed).
    pub(crate) async fn count(
        &self,
        auth: &CrudAuth,
        identity: &str,
    ) -> Result<Option<Decision>, Response> {
        if self.is_disabled() {
            return Ok(None);
        }
        if let Some(problem) = &self.problem {
            return Err(AuthError::unavailable(problem).into_response());
        }
        let mut key = String::with_capacity(self.prefix.len() + identity.len());
        key.push_str(&self.prefix);
        key.push_str(identity);
        match auth.rate_limiter().hit(&key, self.budget).await {
            Ok(decision) if decision.allowed => Ok(Some(decision)),
            Ok(decision) => Err(too_many(&decision)),
            Err(error) if self.fail_open => {
                tracing::warn!(%error, key = %self.prefix, "rate limiter failed; letting the request through (fail open)");
                Ok(Some(Decision {
                    allowed: true,
                    limit: self.budget.limit,
                    remaining: self.budget.limit,
                    retry_after: std::time::Duration::ZERO,
                }))
            }
            Err(error) => Err(AuthError::from(error).into_response()),
        }
    }
}

/// The client's counting key (see [`crate::client_ip`]).
fn address(parts: &Parts, auth: &CrudAuth) -> String {
    let peer = parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    client_ip_key(&parts.headers, peer, auth.inner.trusted_proxy_hops)
}

/// 429 "Too many requests. Try again later." with `Retry-After` and the budget headers.
fn too_many(decision: &Decision) -> Response {
    let mut response = AuthError::too_many(TOO_MANY, decision.retry_after_secs()).into_response();
    report(response.headers_mut(), decision);
    response
}

/// Puts the budget headers on a response. When several limits counted the request, the one
/// with the fewest requests left is reported.
pub(crate) fn report(headers: &mut HeaderMap, decision: &Decision) {
    let fewer_already = headers
        .get(&REMAINING_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|reported| reported < decision.remaining);
    if fewer_already {
        return;
    }
    headers.insert(LIMIT_HEADER, HeaderValue::from(decision.limit));
    headers.insert(REMAINING_HEADER, HeaderValue::from(decision.remaining));
}
