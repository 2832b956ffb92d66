//! `AuthLayer`: makes crudauth available to its extractors, with a per-request cache for the
//! principal.
//!
//! ```
//! use axum::{routing::get, Router};
//! use crudauth_axum::{extract::CurrentUser, CrudAuth, SessionTransport};
//! use crudauth_core::user::MemoryUsers;
//!
//! let auth = CrudAuth::builder()
//!     .secret_key([7u8; 32])
//!     .users(MemoryUsers::new())
//!     .session_transport(SessionTransport::default())
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/me", get(|user: CurrentUser| async move { user.user_id().to_string() }))
//!     .layer(auth.layer());
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::Request;
use tower::{Layer, Service};

use crudauth_core::principal::Principal;

use crate::builder::CrudAuth;
use crate::error::AuthError;

/// What one transport answered for this request.
pub(crate) type Outcome = Result<Option<Arc<Principal>>, AuthError>;

/// How many transports' outcomes are cached per request; any further ones are resolved
/// uncached (still correctly, just again if several extractors ask).
pub(crate) const CACHED_TRANSPORTS: usize = 4;

/// Put in every request's extensions by [`AuthLayer`]: the auth object and the request's
/// resolution cache, filled in place as extractors resolve transports (they hold the request's
/// parts mutably, so no lock or shared allocation is needed). Reads nothing from the request
/// and touches no store.
#[derive(Clone)]
pub(crate) struct RequestAuth {
    pub(crate) auth: CrudAuth,
    pub(crate) outcomes: [Option<Outcome>; CACHED_TRANSPORTS],
}

/// The layer every route using crudauth's extractors must sit under (`auth.layer()`).
#[derive(Clone, Debug)]
pub struct AuthLayer {
    auth: CrudAuth,
}

impl AuthLayer {
    pub(crate) fn new(auth: CrudAuth) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around a route.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    auth: CrudAuth,
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Under a second layer of the same auth (crudauth's own routes carry one, and the app
        // usually wraps everything too), the request keeps the cache it already has.
        let installed = req
            .extensions()
            .get::<RequestAuth>()
            .is_some_and(|r| Arc::ptr_eq(&r.auth.inner, &self.auth.inner));
        if !installed {
            req.extensions_mut().insert(RequestAuth {
                auth: self.auth.clone(),
                outcomes: Default::default(),
            });
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;

    use axum::body::Body;
    use tower::{service_fn, ServiceExt};

    use super::*;

    /// `outer` around a step that fills the first cache slot, around `inner`, around a service
    /// answering whose auth the request ends up with and whether the slot is still filled.
    async fn nested(outer: &CrudAuth, inner: &CrudAuth) -> (CrudAuth, bool) {
        let innermost = service_fn(|req: Request<Body>| async move {
            let installed = req.extensions().get::<RequestAuth>().unwrap();
            Ok::<_, Infallible>((installed.auth.clone(), installed.outcomes[0].is_some()))
        });
        let next = inner.layer().layer(innermost);
        let fill = service_fn(move |mut req: Request<Body>| {
            let next = next.clone();
            async move {
                req.extensions_mut()
                    .get_mut::<RequestAuth>()
                    .unwrap()
                    .outcomes[0] = Some(Ok(None));
                next.oneshot(req).await
            }
        });
        let service = outer.layer().layer(fill);
        service.oneshot(Request::new(Body::empty())).await.unwrap()
    }

    #[tokio::test]
    async fn a_second_layer_of_the_same_auth_keeps_the_requests_cache() {
        let auth = CrudAuth::for_tests();
        let (seen, kept) = nested(&auth, &auth.clone()).await;
        assert!(Arc::ptr_eq(&seen.inner, &auth.inner));
        assert!(kept);
    }

    #[tokio::test]
    async fn a_layer_of_another_auth_installs_its_own() {
        let (outer, inner) = (CrudAuth::for_tests(), CrudAuth::for_tests());
        let (seen, kept) = nested(&outer, &inner).await;
        assert!(Arc::ptr_eq(&seen.inner, &inner.inner));
        assert!(!kept);
    }
}
