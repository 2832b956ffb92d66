//! The servers crudauth-rs's quickstart is measured against (`bench/side_by_side.py` starts them):
//!
//! ```text
//! crudauth-bench-peers bare  PORT              GET /dashboard answers without any session check
//! crudauth-bench-peers glue  PORT [REDIS_URL]  tower-sessions (+ tower-sessions-redis-store) and axum-login
//! crudauth-bench-peers floor PORT REDIS_URL    GET /dashboard is one GETEX and nothing else
//! ```
//!
//! Every mode answers `POST /login` (a form with `username`) with a session cookie and
//! `GET /dashboard` with `{"user_id":…}`, the quickstart's shapes. The glue is what a team
//! assembles today: a session layer, an auth layer over it, a user looked up per request. The
//! floor is the least any Redis-backed session check can do: one round trip that reads the
//! session and slides its expiry.

use std::collections::HashMap;
use std::convert::Infallible;
use std::error::Error;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_login::{login_required, AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend};
use fred::prelude::{Builder, Client, ClientLike, Config, KeysInterface, Pool};
use serde::Deserialize;
use tower_sessions::cookie::time::Duration;
use tower_sessions::{Expiry, MemoryStore, SessionManagerLayer};
use tower_sessions_redis_store::RedisStore;

/// One account per user name `user1`..`user1000`.
#[derive(Clone, Debug)]
struct Account {
    id: i64,
    /// What axum-login compares to invalidate sessions when credentials change.
    auth_hash: Vec<u8>,
}

impl AuthUser for Account {
    type Id = i64;

    fn id(&self) -> i64 {
        self.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        &self.auth_hash
    }
}

#[derive(Clone)]
struct Accounts(Arc<HashMap<i64, Account>>);

#[derive(Clone, Deserialize)]
struct SignIn {
    username: String,
}

impl AuthnBackend for Accounts {
    type User = Account;
    type Credentials = SignIn;
    type Error = Infallible;

    async fn authenticate(&self, form: SignIn) -> Result<Option<Account>, Infallible> {
        let id = form
            .username
            .trim_start_matches("user")
            .parse()
            .unwrap_or(0);
        Ok(self.0.get(&id).cloned())
    }

    async fn get_user(&self, id: &i64) -> Result<Option<Account>, Infallible> {
        Ok(self.0.get(id).cloned())
    }
}

async fn glue_login(mut auth: AuthSession<Accounts>, Form(form): Form<SignIn>) -> StatusCode {
    match auth.authenticate(form).await {
        Ok(Some(account)) if auth.login(&account).await.is_ok() => StatusCode::OK,
        _ => StatusCode::UNAUTHORIZED,
    }
}

async fn glue_dashboard(auth: AuthSession<Accounts>) -> Result<String, StatusCode> {
    let account = auth.user.ok_or(StatusCode::UNAUTHORIZED)?;
    Ok(format!("{{\"user_id\":{}}}", account.id))
}

async fn bare_dashboard() -> &'static str {
    "{\"user_id\":1}"
}

/// The one key the floor reads.
const FLOOR_KEY: &str = "crudauth-bench-floor:session";

async fn floor_login() -> impl IntoResponse {
    ([(header::SET_COOKIE, "sid=floor; HttpOnly; Path=/")], "{}")
}

async fn floor_dashboard(
    State(redis): State<Client>,
    headers: HeaderMap,
) -> Result<String, StatusCode> {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    if !cookie.is_some_and(|c| c.contains("sid=floor")) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let session: Option<String> = redis
        .custom(fred::cmd!("GETEX"), vec![FLOOR_KEY, "EX", "1800"])
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    session.ok_or(StatusCode::UNAUTHORIZED)
}

async fn redis_pool(url: &str) -> Result<Pool, Box<dyn Error>> {
    let pool = Pool::new(Config::from_url(url)?, None, None, None, 4)?;
    pool.init().await?;
    Ok(pool)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: crudauth-bench-peers bare|glue|floor PORT [REDIS_URL]";
    let (mode, port) = match args.as_slice() {
        [mode, port, ..] => (mode.as_str(), port.parse::<u16>()?),
        _ => return Err(usage.into()),
    };
    let redis_url = args.get(2);
    let hello: Router = Router::new().route("/hello", get(|| async { "{\"hello\":\"world\"}" }));
    let app = match (mode, redis_url) {
        ("bare", _) => hello
            .route("/dashboard", get(bare_dashboard))
            .route("/login", post(floor_login)),
        ("floor", Some(url)) => {
            let redis = Builder::from_config(Config::from_url(url)?).build()?;
            redis.init().await?;
            let _: () = redis
                .set(FLOOR_KEY, "{\"user_id\":1}", None, None, false)
                .await?;
            Router::new()
                .route("/dashboard", get(floor_dashboard))
                .route("/login", post(floor_login))
                .with_state(redis)
                .merge(hello)
        }
        ("glue", url) => {
            let accounts = Accounts(Arc::new(
                (1..=1000)
                    .map(|id| {
                        (
                            id,
                            Account {
                                id,
                                auth_hash: id.to_le_bytes().repeat(4),
                            },
                        )
                    })
                    .collect(),
            ));
            let expiry = Expiry::OnInactivity(Duration::minutes(30));
            let protected = Router::new()
                .route("/dashboard", get(glue_dashboard))
                .route_layer(login_required!(Accounts));
            let routes = hello.merge(protected).route("/login", post(glue_login));
            match url {
                Some(url) => {
                    let store = RedisStore::new(redis_pool(url).await?);
                    let sessions = SessionManagerLayer::new(store)
                        .with_secure(false)
                        .with_expiry(expiry);
                    routes.layer(AuthManagerLayerBuilder::new(accounts, sessions).build())
                }
                None => {
                    let sessions = SessionManagerLayer::new(MemoryStore::default())
                        .with_secure(false)
                        .with_expiry(expiry);
                    routes.layer(AuthManagerLayerBuilder::new(accounts, sessions).build())
                }
            }
        }
        _ => return Err(usage.into()),
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
