//! What the session layer costs a request that writes the application's data: the store
//! operations of a request that inserts one value (counted and printed: one read of the
//! session, one compare-and-swap), beside one that only reads it, on memory and on Redis
//! (`REDIS_URL`, default `redis://127.0.0.1:6379`, under a prefix of its own), and both timed
//! through the router with `.layer(auth.layer())`.
//!
//! `cargo bench -p crudauth-tests --bench session_data -- --warm-up-time 1 --measurement-time 5`

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use criterion::Criterion;
use tower::ServiceExt;

use crudauth_axum::extract::{Session, SessionRejection};
use crudauth_axum::{CrudAuth, SessionTransport};
use crudauth_core::password::{Password, Passwords};
use crudauth_core::store::{
    FaultyStore, MemoryStore, RedisConfig, RedisConnection, RedisStore, Store,
};
use crudauth_core::user::{MemoryUsers, NewUser, UserStore};

const PASSWORD: &str = "correct horse battery";

async fn read(session: Session) -> Result<String, SessionRejection> {
    let n: Option<u64> = session.get("n")?;
    Ok(n.unwrap_or_default().to_string())
}

async fn insert(session: Session) -> Result<String, SessionRejection> {
    let n: u64 = session.get("n")?.unwrap_or_default();
    session.insert("n", &(n + 1))?;
    Ok((n + 1).to_string())
}

fn request(method: Method, path: &str, cookies: &Credentials, body: Body) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("cookie", &cookies.cookie)
        .header("x-csrf-token", &cookies.csrf)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .expect("a request");
    let peer: SocketAddr = ([203, 0, 113, 9], 4000).into();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

/// The signed-in browser: its Cookie header and the CSRF token it sends back.
struct Credentials {
    cookie: String,
    csrf: String,
}

async fn sign_in(app: &Router) -> Credentials {
    let anonymous = Credentials {
        cookie: String::new(),
        csrf: String::new(),
    };
    let body = Body::from(format!("username=ada&password={PASSWORD}").replace(' ', "+"));
    let r = app
        .clone()
        .oneshot(request(Method::POST, "/login", &anonymous, body))
        .await
        .expect("infallible");
    assert_eq!(r.status(), StatusCode::OK, "signed in");
    let mut pairs = Vec::new();
    let mut csrf = String::new();
    for value in r.headers().get_all("set-cookie") {
        let pair = value
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("a pair");
        if let Some(token) = pair.strip_prefix("csrf_token=") {
            csrf = token.to_owned();
        }
        pairs.push(pair.to_owned());
    }
    Credentials {
        cookie: pairs.join("; "),
        csrf,
    }
}

async fn app(store: FaultyStore) -> (Router, crudauth_axum::LifespanGuard) {
    let users = MemoryUsers::new();
    let passwords = Passwords::fast_for_tests();
    let hash = passwords
        .hash(&Password::new(PASSWORD))
        .await
        .expect("hashed");
    users
        .create(NewUser::new("ada@example.com", "ada", hash.0))
        .await
        .expect("created");
    let auth = CrudAuth::builder()
        .secret_key([7u8; 32])
        .users(users)
        .passwords(passwords)
        .store(store)
        .session_transport(SessionTransport::default())
        .warn_on_memory_backend(false)
        .build()
        .expect("a configuration");
    let guard = auth.initialize().await.expect("initialized");
    let app = Router::new()
        .route("/read", get(read))
        .route("/insert", post(insert))
        .merge(auth.router())
        .layer(auth.layer());
    (app, guard)
}

fn backend(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, inner: Arc<dyn Store>) {
    let store = FaultyStore::new(inner);
    let ops = store.clone();
    let (app, guard) = rt.block_on(app(store));
    let browser = rt.block_on(sign_in(&app));
    let call = |method: Method, path: &'static str| {
        let (app, browser) = (&app, &browser);
        async move {
            let r = app
                .clone()
                .oneshot(request(method, path, browser, Body::empty()))
                .await
                .expect("infallible");
            assert_eq!(r.status(), StatusCode::OK);
        }
    };
    rt.block_on(async {
        let before = ops.calls();
        call(Method::GET, "/read").await;
        let reading = ops.calls() - before;
        let before = ops.calls();
        call(Method::POST, "/insert").await;
        let inserting = ops.calls() - before;
        println!(
            "{name}: a request that reads the session data: {reading} store operation(s); \
             one that inserts a value: {inserting} (the session read, one compare-and-swap)"
        );
        assert_eq!((reading, inserting), (1, 2));
    });
    let mut group = c.benchmark_group(format!("session data ({name})"));
    group.bench_function("GET reading a value", |b| {
        b.to_async(rt).iter(|| call(Method::GET, "/read"))
    });
    group.bench_function("POST inserting a value", |b| {
        b.to_async(rt).iter(|| call(Method::POST, "/insert"))
    });
    group.finish();
    rt.block_on(guard.shutdown());
}

fn session_data(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    backend(c, &rt, "memory", Arc::new(MemoryStore::new()));
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut config = RedisConfig::from_url(&url).expect("a Redis URL");
    config = config.namespace(format!(
        "crudauth-bench:session-data:{}:",
        std::process::id()
    ));
    let redis = RedisConnection::new(config).expect("a Redis client");
    backend(c, &rt, "Redis", Arc::new(RedisStore::new(redis)));
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    session_data(&mut c);
    c.final_summary();
}
