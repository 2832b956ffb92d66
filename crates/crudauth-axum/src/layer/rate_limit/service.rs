//! The tower pieces: [`RateLimitLayer`] (configuration, cheap to clone) and
//! [`RateLimitService`] (the middleware), with its [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::Request;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::config::{KeyBy, RateLimit};
use super::count::{report, RouteLimiter};
use crate::builder::CrudAuth;

/// Applies a [`RateLimit`] to the routes it wraps. Made by
/// [`CrudAuth::rate_limit`](crate::CrudAuth::rate_limit); cheap to clone.
///
/// Use it with `.route_layer(…)` on a `Router` or a `MethodRouter`, so that only matched
/// requests are counted (not 404s or 405s). See the [module docs](super) for the whole
/// behaviour.
#[derive(Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

struct Shared {
    auth: CrudAuth,
    limiter: RouteLimiter,
}

impl RateLimitLayer {
    /// A layer counting requests to `action` (any name of yours; the key prefix of its
    /// counters) against `limit`.
    pub fn new(auth: &CrudAuth, action: &str, limit: RateLimit) -> Self {
        Self::with_default_key(auth, action, &limit, KeyBy::Ip)
    }

    pub(crate) fn with_default_key(
        auth: &CrudAuth,
        action: &str,
        limit: &RateLimit,
        default_key: KeyBy,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                auth: auth.clone(),
                limiter: RouteLimiter::new(action, limit, default_key),
            }),
        }
    }
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.shared.limiter)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The middleware made by [`RateLimitLayer`]: counts each request before the inner service
/// sees it, refuses it over budget, and reports the budget on every response it lets through.
#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for RateLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("limiter", &self.shared.limiter)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody> Service<Request<ReqBody>> for RateLimitService<S>
where
    S: Service<Request<ReqBody>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    ReqBody: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone that was not polled ready stays behind; the ready one serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let future = async move {
            let limiter = &shared.limiter;
            if limiter.is_disabled() {
                return inner.call(request).await;
            }
            let (mut parts, body) = request.into_parts();
            let identity = match limiter.identity(&mut parts, &shared.auth).await {
                Ok(identity) => identity,
                Err(refused) => return Ok(refused.into_response()),
            };
            let decision = match limiter.count(&shared.auth, &identity).await {
                Ok(decision) => decision,
                Err(refused) => return Ok(refused),
            };
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            if let Some(decision) = decision {
                report(response.headers_mut(), &decision);
            }
            Ok(response)
        };
        ResponseFuture {
            inner: Box::pin(future),
        }
    }
}

/// The response future of [`RateLimitService`].
pub struct ResponseFuture<E> {
    inner: Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>,
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<E> fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
