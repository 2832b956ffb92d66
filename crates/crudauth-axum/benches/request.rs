//! What an authenticated request costs in process (no network): a bearer-authenticated and a
//! session-authenticated GET through the router, against a route with no extractor.
//!
//! `cargo bench -p crudauth-axum --bench request -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::{Json, Router};
use criterion::Criterion;
use tower::ServiceExt;

use crudauth_axum::extract::CurrentUser;
use crudauth_axum::{BearerTransport, CrudAuth, SessionTransport};
use crudauth_core::session::NewSession;
use crudauth_core::user::{MemoryUsers, NewUser, UserStore};

fn request(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let users = MemoryUsers::new();
    let user = rt
        .block_on(users.create(NewUser::new("ada@example.com", "ada", "!")))
        .expect("a user");
    let auth = CrudAuth::builder()
        .secret_key([7u8; 32])
        .users(users)
        .session_transport(SessionTransport::default())
        .bearer_transport(BearerTransport::default())
        .warn_on_memory_backend(false)
        .build()
        .expect("a configuration");
    let access = auth
        .bearer_tokens()
        .expect("the bearer transport")
        .access_token(&user, vec![])
        .expect("a token");
    let sessions = auth.sessions().expect("the session transport");
    let session = rt
        .block_on(sessions.create(&user.id, user.token_version, NewSession::default()))
        .expect("a session");
    let app: Router = Router::new()
        .route("/open", get(|| async { Json("ok") }))
        .route(
            "/dashboard",
            get(|u: CurrentUser| async move { Json(u.via) }),
        )
        .layer(auth.layer());
    let bearer = format!("Bearer {}", access.expose());
    let cookie = format!("session_id={}", session.id.expose());

    let call = |req: Request<Body>| {
        let app = app.clone();
        async move {
            let response = app.oneshot(req).await.expect("infallible");
            assert_eq!(response.status(), 200);
            black_box(response)
        }
    };
    let mut group = c.benchmark_group("request");
    group.bench_function("no_auth", |b| {
        b.to_async(&rt).iter(|| {
            call(
                Request::get("/open")
                    .body(Body::empty())
                    .expect("a request"),
            )
        })
    });
    group.bench_function("bearer", |b| {
        b.to_async(&rt).iter(|| {
            call(
                Request::get("/dashboard")
                    .header("authorization", &bearer)
                    .body(Body::empty())
                    .expect("a request"),
            )
        })
    });
    group.bench_function("session_memory", |b| {
        b.to_async(&rt).iter(|| {
            call(
                Request::get("/dashboard")
                    .header("cookie", &cookie)
                    .body(Body::empty())
                    .expect("a request"),
            )
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    request(&mut criterion);
    criterion.final_summary();
}
