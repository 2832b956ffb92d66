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

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crudauth_core::principal::Principal;
use crudauth_core::session::{LoadedSession, SessionData};

use crate::error::AuthError;
use crate::session::{SharedWork, Work};
use crate::state::CrudAuth;

use super::csrf;

/// What one transport answered for this request.
pub(crate) type Outcome = Result<Option<Arc<Principal>>, AuthError>;

/// How many transports' outcomes are cached per request; any further ones are resolved
/// uncached (still correctly, just again if several extractors ask).
pub(crate) const CACHED_TRANSPORTS: usize = 4;

/// Put in every request's extensions by [`AuthLayer`]: the auth object and the request's
/// resolution cache, filled in place as extractors resolve transports (they hold the request's
/// parts mutably, so no lock or shared allocation is needed). Reads nothing from the request
/// and touches no store.
///
/// One extension for everything the layers share with the extractors (the session's work,
/// whether CSRF was checked): each extension is a boxed insert into the request's map, and a
/// fifth entry regrows the map, so keeping to one is measurably cheaper per request.
#[derive(Clone)]
pub(crate) struct RequestAuth {
    pub(crate) auth: CrudAuth,
    pub(crate) outcomes: [Option<Outcome>; CACHED_TRANSPORTS],
    /// The [`Session`](crate::extract::Session) extractor's shared state, written back by the
    /// outermost session layer; `None` without one.
    pub(crate) work: Option<SharedWork>,
    /// The CSRF layer has checked this request, so a second one does not read the body again.
    pub(crate) csrf_checked: bool,
}

/// Which parts of crudauth's request handling a layer applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Parts {
    /// The [`Session`](crate::extract::Session) extractor's shared state, written back after
    /// the handler.
    session: bool,
    /// CSRF on every unsafe request of a live cookie session.
    csrf: bool,
}

/// crudauth's layer (`auth.layer()`): makes crudauth available to its extractors with a
/// per-request cache, and, as the configuration asks, the [`SessionLayer`] and [`CsrfLayer`]
/// in the same service (one wrapper per route, not three). Each of those can also be applied
/// alone to a sub-router.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    auth: CrudAuth,
    parts: Parts,
}

impl AuthLayer {
    /// Everything the configuration asks for: sessions when the session transport is on, CSRF
    /// when it is on with CSRF.
    pub(crate) fn new(auth: CrudAuth) -> Self {
        let parts = Parts {
            session: auth.sessions().is_some(),
            csrf: auth.csrf_enabled(),
        };
        Self { auth, parts }
    }
}

/// The session layer (`auth.session_layer()`): the [`Session`](crate::extract::Session)
/// extractor with the application's data, written back once after the handler when it
/// changed, and the cookies of sign-ins and sign-outs made by handlers. Lazy: nothing is read
/// until something asks, so a public route costs no store operation.
#[derive(Clone, Debug)]
pub struct SessionLayer(AuthLayer);

impl SessionLayer {
    pub(crate) fn new(auth: CrudAuth) -> Self {
        let session = auth.sessions().is_some();
        Self(AuthLayer {
            auth,
            parts: Parts {
                session,
                csrf: false,
            },
        })
    }
}

/// The CSRF layer (`auth.csrf_layer()`): every unsafe request under it whose cookie session
/// is live must carry the session's token, in the `X-CSRF-Token` header or a `csrf_token` form
/// field, and come from an allowed origin — whether or not its handler extracts a user. See
/// [`csrf`](crate::layer::csrf).
#[derive(Clone, Debug)]
pub struct CsrfLayer(AuthLayer);

impl CsrfLayer {
    pub(crate) fn new(auth: CrudAuth) -> Self {
        let csrf = auth.csrf_enabled();
        Self(AuthLayer {
            auth,
            parts: Parts {
                session: false,
                csrf,
            },
        })
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
            parts: self.parts,
        }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.0.layer(inner)
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.0.layer(inner)
    }
}

/// The service crudauth's layers wrap around a route.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    auth: CrudAuth,
    parts: Parts,
}

impl<S> Service<Request<Body>> for AuthService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AuthFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // Under a second layer of the same auth (crudauth's own routes carry one, and the app
        // usually wraps everything too), the request keeps what it already has.
        let fresh = || RequestAuth {
            auth: self.auth.clone(),
            outcomes: Default::default(),
            work: None,
            csrf_checked: false,
        };
        let ours = req
            .extensions()
            .get::<RequestAuth>()
            .is_some_and(|r| Arc::ptr_eq(&r.auth.inner, &self.auth.inner));
        if !ours {
            req.extensions_mut().insert(fresh());
        }
        let installed = req.extensions_mut().get_or_insert_with(fresh);
        // The session state is shared by the outermost session layer only: it writes back.
        let work = if self.parts.session && installed.work.is_none() {
            let work: SharedWork = Arc::new(Mutex::new(Work::default()));
            installed.work = Some(work.clone());
            Some(work)
        } else {
            None
        };
        let check = self.parts.csrf && !installed.csrf_checked;
        if check && csrf::needs_check(&self.auth, &req) {
            if let Some(r) = req.extensions_mut().get_mut::<RequestAuth>() {
                r.csrf_checked = true;
            }
            // The checked request goes to the clone that was made ready (tower's rule).
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            let future = Box::pin(async move {
                match csrf::check(req).await {
                    Ok(req) => inner.call(req).await,
                    Err(refused) => Ok(refused),
                }
            });
            return AuthFuture::new(Stage::Checking { future }, work, &self.auth);
        }
        AuthFuture::new(
            Stage::Inner {
                future: self.inner.call(req),
            },
            work,
            &self.auth,
        )
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// What a request under crudauth's layer goes through: the CSRF check when it needs one,
    /// the handler, then the session's write-back when a handler changed it.
    #[project = StageProj]
    enum Stage<F, E> {
        Checking { future: BoxFuture<Result<Response, E>> },
        Inner { #[pin] future: F },
        Writing { future: BoxFuture<Response> },
    }
}

pin_project! {
    /// The response future of [`AuthService`].
    pub struct AuthFuture<F, E> {
        #[pin]
        stage: Stage<F, E>,
        work: Option<(SharedWork, CrudAuth)>,
    }
}

impl<F, E> AuthFuture<F, E> {
    fn new(stage: Stage<F, E>, work: Option<SharedWork>, auth: &CrudAuth) -> Self {
        Self {
            stage,
            work: work.map(|w| (w, auth.clone())),
        }
    }
}

impl<F, E> Future for AuthFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let response = match this.stage.as_mut().project() {
                StageProj::Checking { future } => ready!(future.as_mut().poll(cx))?,
                StageProj::Inner { future } => ready!(future.poll(cx))?,
                StageProj::Writing { future } => return future.as_mut().poll(cx).map(Ok),
            };
            let Some((work, auth)) = this.work.take() else {
                return Poll::Ready(Ok(response));
            };
            let pending = match work.lock() {
                Ok(mut w) => w.pending(&auth),
                Err(poisoned) => poisoned.into_inner().pending(&auth),
            };
            let Some((session, data)) = pending.write else {
                // Nothing to write (the usual case): no allocation, no store operation.
                let mut response = response;
                crate::cookies::append(response.headers_mut(), pending.cookies);
                return Poll::Ready(Ok(response));
            };
            let future = write_back(auth, session, data, pending.cookies, response);
            this.stage.set(Stage::Writing {
                future: Box::pin(future),
            });
        }
    }
}

/// After the handler: the session's changed data written back (once, only onto a live
/// session), then the cookies set. A store that fails the write turns the answer into a 503:
/// what the handler meant to keep was not kept.
async fn write_back(
    auth: CrudAuth,
    session: LoadedSession,
    data: SessionData,
    cookies: Vec<HeaderValue>,
    mut response: Response,
) -> Response {
    if let Some(sessions) = auth.sessions() {
        match sessions.write_data(&session, &data).await {
            Ok(true) => {}
            Ok(false) => tracing::debug!("session ended before its data was written; dropped"),
            Err(e) => return AuthError::from(e).into_response(),
        }
    }
    crate::cookies::append(response.headers_mut(), cookies);
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;

    use tower::{service_fn, ServiceExt};

    use super::*;

    /// `outer` around a step that fills the first cache slot, around `inner`, around a service
    /// answering whose auth the request ends up with and whether the slot is still filled.
    async fn nested(outer: &CrudAuth, inner: &CrudAuth) -> (CrudAuth, bool) {
        let innermost = service_fn(|req: Request<Body>| async move {
            let installed = req.extensions().get::<RequestAuth>().unwrap();
            let mut response = Response::new(Body::empty());
            response
                .extensions_mut()
                .insert((installed.auth.clone(), installed.outcomes[0].is_some()));
            Ok::<_, Infallible>(response)
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
        let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
        response
            .extensions()
            .get::<(CrudAuth, bool)>()
            .cloned()
            .unwrap()
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
