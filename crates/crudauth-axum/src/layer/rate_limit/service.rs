//! The tower pieces: [`RateLimitLayer`] (configuration, cheap to clone) and
//! [`RateLimitService`] (the middleware), with its [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::http::Request;
use axum::response::{IntoResponse, Response};
use crudauth_core::limit::Decision;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::config::{KeyBy, RateLimit};
use super::count::{report, CountNow, Counted, RouteLimiter};
use crate::state::CrudAuth;

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
        Self::from_limiter(auth, RouteLimiter::new(action, &limit, KeyBy::Ip))
    }

    /// A layer counting with `limiter` (a built-in action's, or one just made).
    pub(crate) fn from_limiter(auth: &CrudAuth, limiter: RouteLimiter) -> Self {
        Self {
            shared: Arc::new(Shared {
                auth: auth.clone(),
                limiter,
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
///
/// On the memory limiter with an address or closure key, the request is counted inside
/// `call` and handed straight to the inner service; a key that needs the signed-in user, or a
/// limiter across the network, waits for its answer first.
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
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (counted, request) = self.shared.limiter.count_now(request, &self.shared.auth);
        let kind = match counted {
            CountNow::Done(Counted::Pass(decision)) => Kind::Counted {
                future: self.inner.call(request),
                decision,
            },
            CountNow::Done(Counted::Refuse(refused)) => Kind::Refused {
                response: Some(refused),
            },
            CountNow::Wait(key) => Kind::Waiting {
                future: self.wait_then_call(request, key),
            },
        };
        ResponseFuture { kind }
    }
}

impl<S> RateLimitService<S> {
    /// The asynchronous path: resolve the caller (unless `key`, the counter key, was built
    /// already), wait for the limiter, then call the inner service.
    fn wait_then_call<ReqBody>(
        &mut self,
        request: Request<ReqBody>,
        key: Option<String>,
    ) -> BoxedResponse<S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Send + 'static,
    {
        // The clone that was not polled ready stays behind; the ready one serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let (limiter, auth) = (&shared.limiter, &shared.auth);
            let (mut parts, body) = request.into_parts();
            let counted = match key {
                Some(key) => limiter.count_key(auth, &key).await,
                None => match limiter.identity(&mut parts, auth).await {
                    Ok(Some(identity)) => limiter.count(auth, &identity).await,
                    Ok(None) => limiter.no_address(),
                    Err(refused) => return Ok(refused.into_response()),
                },
            };
            let decision = match counted {
                Counted::Pass(decision) => decision,
                Counted::Refuse(refused) => return Ok(refused),
            };
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            if let Some(decision) = decision {
                report(response.headers_mut(), &decision);
            }
            Ok(response)
        })
    }
}

type BoxedResponse<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

pin_project! {
    /// The response future of [`RateLimitService`].
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        // Counted already: the inner service's answer, with the budget added.
        Counted {
            #[pin]
            future: F,
            decision: Option<Decision>,
        },
        // Refused already: 429, 503.
        Refused {
            response: Option<Response>,
        },
        // Waiting for the principal or the limiter, then the inner service.
        Waiting {
            future: BoxedResponse<E>,
        },
    }
}

impl<F, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Counted { future, decision } => {
                let mut response = ready!(future.poll(cx))?;
                if let Some(decision) = decision {
                    report(response.headers_mut(), decision);
                }
                Poll::Ready(Ok(response))
            }
            KindProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after it completed: nothing more will come.
                None => Poll::Pending,
            },
            KindProj::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use crate::{CrudAuth, KeyBy, RateLimit};

    async fn call(app: &Router, path: &str) -> (u16, Option<String>, Option<String>) {
        let mut request = axum::http::Request::get(path).body(Body::empty()).unwrap();
        // As `axum::serve` with `into_make_service_with_connect_info` attaches it.
        let peer: std::net::SocketAddr = "192.0.2.1:4000".parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let response = app.clone().oneshot(request).await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        (
            response.status().as_u16(),
            header("x-ratelimit-limit"),
            header("x-ratelimit-remaining"),
        )
    }

    fn some(a: &str, b: &str) -> (Option<String>, Option<String>) {
        (Some(a.to_owned()), Some(b.to_owned()))
    }

    #[tokio::test]
    async fn stacked_limits_report_the_one_with_fewest_left() {
        let auth = CrudAuth::for_tests();
        let minute = Duration::from_secs(60);
        let app = Router::new()
            .route(
                "/x",
                get(|| async { "ok" })
                    .route_layer(auth.rate_limit("inner", RateLimit::new(3, minute)))
                    .route_layer(auth.rate_limit("outer", RateLimit::new(10, minute))),
            )
            .layer(auth.layer());
        let (status, limit, left) = call(&app, "/x").await;
        assert_eq!((status, (limit, left)), (200, some("3", "2")));
        call(&app, "/x").await;
        call(&app, "/x").await;
        let (status, limit, left) = call(&app, "/x").await;
        assert_eq!((status, (limit, left)), (429, some("3", "0")));
    }

    #[tokio::test]
    async fn a_limit_without_a_period_fails_closed_and_a_zero_budget_is_off() {
        let auth = CrudAuth::for_tests();
        let app = Router::new()
            .route(
                "/broken",
                get(|| async { "ok" })
                    .route_layer(auth.rate_limit("broken", RateLimit::new(5, Duration::ZERO))),
            )
            .route(
                "/off",
                get(|| async { "ok" })
                    .route_layer(auth.rate_limit("off", RateLimit::new(0, Duration::ZERO))),
            )
            .layer(auth.layer());
        assert_eq!(call(&app, "/broken").await.0, 503);
        assert_eq!(call(&app, "/off").await, (200, None, None));
    }

    #[tokio::test]
    async fn without_a_peer_address_an_anonymous_caller_is_refused_not_pooled() {
        let auth = CrudAuth::for_tests();
        let app = Router::new()
            .route(
                "/x",
                get(|| async { "ok" })
                    .route_layer(auth.rate_limit("x", RateLimit::new(100, Duration::from_secs(60))))
                    .route_layer(auth.rate_limit(
                        "open",
                        RateLimit::new(1, Duration::from_secs(60)).fail_open(),
                    )),
            )
            .layer(auth.layer());
        let request = || axum::http::Request::get("/x").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request()).await.unwrap();
        assert_eq!(
            response.status(),
            503,
            "fail closed: no address, nobody signed in"
        );
        let app = Router::new()
            .route(
                "/y",
                get(|| async { "ok" }).route_layer(auth.rate_limit(
                    "open",
                    RateLimit::new(1, Duration::from_secs(60)).fail_open(),
                )),
            )
            .layer(auth.layer());
        for _ in 0..3 {
            let request = axum::http::Request::get("/y").body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200, "fail open: through, uncounted");
            assert!(response.headers().get("x-ratelimit-limit").is_none());
        }
    }

    #[tokio::test]
    async fn a_user_limit_answers_401_before_counting() {
        let auth = CrudAuth::for_tests();
        let limit = RateLimit::new(1, Duration::from_secs(60)).key(KeyBy::User);
        let app = Router::new()
            .route(
                "/me",
                get(|| async { "ok" }).route_layer(auth.rate_limit("me", limit)),
            )
            .layer(auth.layer());
        for _ in 0..3 {
            assert_eq!(call(&app, "/me").await, (401, None, None));
        }
    }
}
