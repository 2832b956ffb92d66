//! Serves the real router on a loopback port for end-to-end tests, on memory or Redis.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crudauth_axum::extract::{
    BearerOnly, CurrentUser, MaybeUser, SessionOnly, Sudo, Superuser, Verified,
};
use crudauth_axum::{
    BearerTransport, CookieConfig, CrudAuth, CrudAuthBuilder, EmailConfig, LifespanGuard,
    RateLimit, SessionTransport,
};
use crudauth_core::email::OutboxFile;
use crudauth_core::password::{Password, Passwords};
use crudauth_core::user::{MemoryUsers, NewUser, User, UserStore};

/// The secret key every test app is configured with.
pub const TEST_SECRET: [u8; 32] = [42u8; 32];

/// The key a test app signs its JWTs with: derived from [`TEST_SECRET`] for that purpose
/// (tests forge tokens with it).
pub fn jwt_key() -> Vec<u8> {
    derived_key(crudauth_core::secret::purpose::JWT)
}

/// The key a test app uses for `purpose` (see `crudauth_core::secret::purpose`).
pub fn derived_key(purpose: &str) -> Vec<u8> {
    crudauth_core::secret::SecretKey::new(TEST_SECRET)
        .unwrap()
        .derive(purpose)
        .expose()
        .to_vec()
}

/// Where the app keeps shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In-memory stores.
    Memory,
    /// Redis at `CRUDAUTH_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), under a unique
    /// prefix.
    Redis,
}

/// The Redis the tests use (the same as [`crate::redis::redis_url`]).
pub use crate::redis::redis_url;

/// A unique, per-test key prefix.
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "crudauth-test:{tag}:{}:{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running app.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The auth object behind it.
    pub auth: CrudAuth,
    /// The user table.
    pub users: MemoryUsers,
    /// The email outbox file (JSON lines), when email delivery is on.
    pub outbox: Option<PathBuf>,
    /// The lifespan guard.
    pub guard: Option<LifespanGuard>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Which transports the app has, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transports {
    /// Session, then bearer (refresh in a cookie): the quickstart's order.
    SessionThenBearer,
    /// Bearer, then session.
    BearerThenSession,
    /// Session only.
    SessionOnly,
    /// Bearer only.
    BearerOnly,
}

/// Options for [`spawn`].
pub struct Options {
    /// State backend.
    pub backend: Backend,
    /// Email delivery on (registration answers 202).
    pub email: bool,
    /// The transports and their order (default: session, then bearer). `customize` may
    /// reconfigure either with `.session_transport(…)` / `.bearer_transport(…)`, which keeps
    /// its place.
    pub transports: Transports,
    /// Changes to the builder before `build()`.
    pub customize: Box<dyn FnOnce(CrudAuthBuilder) -> CrudAuthBuilder + Send>,
    /// Routes of the test's own, merged into the demo app.
    pub routes: Option<Box<ExtraRoutes>>,
    /// Serve with `ConnectInfo<SocketAddr>` (default on); off, requests have no peer address.
    pub connect_info: bool,
}

/// Makes routes of a test's own from the built auth object.
pub type ExtraRoutes = dyn FnOnce(&CrudAuth) -> Router + Send;

impl Options {
    /// Defaults: memory, email on, session then bearer.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            email: true,
            transports: Transports::SessionThenBearer,
            customize: Box::new(|b| b),
            routes: None,
            connect_info: true,
        }
    }
}

/// The demo app's routes (as examples/quickstart), on top of `auth.router()`.
pub fn demo_routes(auth: &CrudAuth) -> Router {
    Router::new()
        .route("/hello", get(|| async { Json(json!({"hello": "world"})) }))
        .route(
            "/dashboard",
            get(|u: CurrentUser| async move {
                Json(json!({"user_id": u.user.id, "username": u.user.username, "via": u.via}))
            }),
        )
        .route(
            "/feed",
            get(|u: MaybeUser| async move { Json(json!({"auth": u.0.is_some()})) }),
        )
        .route(
            "/admin",
            get(|_: CurrentUser<Superuser>| async { Json(json!({"ok": true})) }),
        )
        .route(
            "/secret",
            get(|_: CurrentUser<Verified>| async { Json(json!({"ok": true})) }),
        )
        .route(
            "/account/settings",
            post(|_: CurrentUser<SessionOnly>| async { Json(json!({"ok": true})) }),
        )
        .route(
            "/account/sensitive",
            post(|_: CurrentUser<Sudo>| async { Json(json!({"ok": true})) }),
        )
        .route(
            "/contact",
            post(|| async { Json(json!({"sent": true})) }).route_layer(
                auth.rate_limit("contact", RateLimit::new(5, Duration::from_secs(60))),
            ),
        )
        .route(
            "/v1/items",
            get(|u: CurrentUser<BearerOnly>| async move { Json(json!({"user_id": u.user.id})) }),
        )
        .merge(auth.router())
        .layer(auth.layer())
}

/// `/mutate` answering POST, PUT, PATCH and DELETE for a signed-in session (so CSRF applies to
/// each), counting in `done` every request that got through: a refused request must leave it
/// unchanged.
pub fn mutation_routes(done: Arc<AtomicUsize>) -> Box<ExtraRoutes> {
    Box::new(move |_: &CrudAuth| {
        let handler = move |_: CurrentUser<SessionOnly>| {
            let done = done.clone();
            async move {
                done.fetch_add(1, Ordering::SeqCst);
                Json(json!({"ok": true}))
            }
        };
        Router::new().route(
            "/mutate",
            post(handler.clone())
                .put(handler.clone())
                .patch(handler.clone())
                .delete(handler),
        )
    })
}

/// Builds, initializes and serves an app.
pub async fn spawn(options: Options) -> TestApp {
    let users = MemoryUsers::new();
    let outbox = options.email.then(|| {
        let dir = std::env::temp_dir().join(unique_prefix("outbox").replace(':', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("outbox.jsonl")
    });
    let mut builder = CrudAuth::builder()
        .secret_key(TEST_SECRET)
        .users(users.clone())
        .passwords(Passwords::fast_for_tests())
        .cookies(CookieConfig::default())
        .warn_on_memory_backend(false);
    builder = match options.transports {
        Transports::SessionThenBearer => builder
            .session_transport(SessionTransport::default())
            .bearer_transport(BearerTransport::default()),
        Transports::BearerThenSession => builder
            .bearer_transport(BearerTransport::default())
            .session_transport(SessionTransport::default()),
        Transports::SessionOnly => builder.session_transport(SessionTransport::default()),
        Transports::BearerOnly => builder.bearer_transport(BearerTransport::default()),
    };
    if let Some(path) = &outbox {
        builder = builder.email(EmailConfig::new(
            "http://localhost:3000",
            OutboxFile::new(path.clone()),
        ));
    }
    if options.backend == Backend::Redis {
        builder = builder
            .redis_url(redis_url())
            .redis_prefix(unique_prefix("e2e"));
    }
    let auth = (options.customize)(builder).build().unwrap();
    let guard = auth.initialize().await.unwrap();
    let mut app = demo_routes(&auth);
    if let Some(routes) = options.routes {
        app = app.merge(routes(&auth).layer(auth.layer()));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connect_info = options.connect_info;
    let server = tokio::spawn(async move {
        let _ = if connect_info {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        } else {
            axum::serve(listener, app).await
        };
    });
    TestApp {
        base: format!("http://{addr}"),
        auth,
        users,
        outbox,
        guard: Some(guard),
        server,
    }
}

/// The emails in an outbox file (JSON lines, as `OutboxFile` writes them); none when the file
/// does not exist yet.
pub fn read_outbox(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The emails in an outbox file once it holds at least `n` (delivery runs after the answer,
/// so a test of another process waits for it); fails the test after 5 s.
pub async fn wait_for_outbox(path: &Path, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let emails = read_outbox(path);
        if emails.len() >= n {
            return emails;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} emails arrived: {emails:?}",
            emails.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A new user with `password` hashed the way the test apps check it
/// (`Passwords::fast_for_tests`).
pub async fn new_user(email: &str, username: &str, password: &str) -> NewUser {
    let hash = Passwords::fast_for_tests()
        .hash(&Password::new(password))
        .await
        .unwrap();
    NewUser::new(email, username, hash.0)
}

/// Two servers (two workers) over the test Redis with one prefix and one user table (each
/// with its own user-row cache), and in the table ada (`ada@example.com`, user name `ada`)
/// with `password`.
pub async fn two_workers(password: &str) -> (TestApp, TestApp) {
    let prefix = unique_prefix("workers");
    let users = MemoryUsers::new();
    let worker = |users: MemoryUsers, prefix: String| {
        let mut options = Options::new(Backend::Memory);
        options.customize = Box::new(move |b: CrudAuthBuilder| {
            b.users(users).redis_url(redis_url()).redis_prefix(prefix)
        });
        options
    };
    let a = spawn(worker(users.clone(), prefix.clone())).await;
    let b = spawn(worker(users.clone(), prefix)).await;
    users
        .create(new_user("ada@example.com", "ada", password).await)
        .await
        .unwrap();
    (a, b)
}

impl TestApp {
    /// Creates a user directly in the table.
    pub async fn user(&self, email: &str, username: &str, password: &str) -> User {
        self.users
            .create(new_user(email, username, password).await)
            .await
            .unwrap()
    }

    /// Creates a superuser with a verified email.
    pub async fn admin(&self, email: &str, username: &str, password: &str) -> User {
        let mut new = new_user(email, username, password).await;
        new.is_superuser = true;
        new.email_verified = true;
        self.users.create(new).await.unwrap()
    }

    /// The emails sent so far, once every queued message has been delivered.
    pub async fn emails(&self) -> Vec<Value> {
        self.auth.deliveries_settled().await;
        let Some(path) = &self.outbox else {
            return Vec::new();
        };
        read_outbox(path)
    }

    /// A browser signed in through `POST /login` (the sign-in must succeed).
    pub async fn signed_in(&self, username: &str, password: &str) -> crate::http::Browser {
        let mut b = crate::http::Browser::new();
        let r = b
            .sign_in(&self.url("/login"), username, password, &[])
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        b
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
