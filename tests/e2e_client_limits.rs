//! End to end over HTTP: who a caller is when the server cannot tell (no `ConnectInfo`, an
//! ignored `X-Forwarded-For`), what the limiter's keys are made of (never an identifier's text
//! nor its plain SHA-256; custom keys HMAC'd, namespaced, bounded, possibly async), and the
//! silent per-address cap on "you already have an account" notices — on memory and on Redis.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crudauth_axum::{CrudAuth, KeyBy, RateLimit};
use crudauth_core::lifespan::Tasks;
use crudauth_core::limit::{
    Budget, Decision, LockoutConfig, LockoutDecision, LockoutKeys, MemoryRateLimiter, RateLimiter,
    RedisRateLimiter,
};
use crudauth_core::password::{Password, Passwords};
use crudauth_core::secret::sha256_hex;
use crudauth_core::store::BackendKind;
use crudauth_core::user::{NewUser, UserStore};
use crudauth_core::StoreResult;
use crudauth_tests::app::{spawn, Backend, Options, TestApp};
use crudauth_tests::http::{Body, Browser};
use crudauth_tests::users::WatchedUsers;

const PW: &str = "correct horse battery";
const LOCKED: &str = "Too many login attempts. Try again later.";
const SIGNUP_ACCEPTED: &str = "If the email is available, check your inbox to finish signing up.";
const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------------
// Harness: captured logs, and a limiter that records the keys it is given

/// Everything logged at WARN and above by this test binary, as text.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    let logs = LOGS.get_or_init(|| Mutex::new(Vec::new()));
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(|| Capture)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
    logs
}

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured lines containing `needle`.
fn logged(needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&logs().lock().unwrap())
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// A limiter that records every key it is handed (route keys, and each lockout attempt's
/// counters), over the backend's real limiter.
#[derive(Debug, Clone)]
struct Recording {
    inner: Arc<dyn RateLimiter>,
    keys: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn new(backend: Backend) -> Self {
        let inner: Arc<dyn RateLimiter> = match backend {
            Backend::Memory => Arc::new(MemoryRateLimiter::new()),
            Backend::Redis => Arc::new(RedisRateLimiter::new(
                crudauth_tests::redis::standalone_connection(),
            )),
        };
        Self {
            inner,
            keys: Arc::default(),
        }
    }

    fn record(&self, key: &str) {
        self.keys.lock().unwrap().push(key.to_owned());
    }

    fn record_attempt(&self, keys: &LockoutKeys) {
        self.record(keys.identifier_counter());
        if let Some(ip) = keys.ip_counter() {
            self.record(ip);
        }
    }

    fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap().clone()
    }
}

#[async_trait]
impl RateLimiter for Recording {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }

    async fn initialize(&self, tasks: &mut Tasks) -> StoreResult<()> {
        self.inner.initialize(tasks).await
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await;
    }

    async fn hit(&self, key: &str, budget: Budget) -> StoreResult<Decision> {
        self.record(key);
        self.inner.hit(key, budget).await
    }

    async fn reset(&self, key: &str) -> StoreResult<()> {
        self.inner.reset(key).await
    }

    async fn login_attempt(
        &self,
        keys: &LockoutKeys,
        config: &LockoutConfig,
    ) -> StoreResult<LockoutDecision> {
        self.record_attempt(keys);
        self.inner.login_attempt(keys, config).await
    }

    async fn login_succeeded(&self, keys: &LockoutKeys, config: &LockoutConfig) -> StoreResult<()> {
        self.record_attempt(keys);
        self.inner.login_succeeded(keys, config).await
    }

    async fn forget_attempt(&self, keys: &LockoutKeys, config: &LockoutConfig) -> StoreResult<()> {
        self.record_attempt(keys);
        self.inner.forget_attempt(keys, config).await
    }
}

/// An app on `backend` without `ConnectInfo`: no request has a peer address.
async fn without_connect_info(
    backend: Backend,
    customize: impl FnOnce(crudauth_axum::CrudAuthBuilder) -> crudauth_axum::CrudAuthBuilder
        + Send
        + 'static,
) -> TestApp {
    logs();
    let mut options = Options::new(backend);
    options.connect_info = false;
    options.customize = Box::new(customize);
    spawn(options).await
}

async fn login(app: &TestApp, who: &str, password: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let r = Browser::new()
        .sign_in(&app.url("/login"), who, password, extra)
        .await;
    (r.status, r.detail().to_owned())
}

async fn register(app: &TestApp, email: &str, username: &str) -> (u16, serde_json::Value) {
    let body = json!({"email": email, "username": username, "password": PW});
    let r = Browser::new()
        .send("POST", &app.url("/register"), Body::Json(body), &[])
        .await;
    (r.status, r.json)
}

// ---------------------------------------------------------------------------------------------
// No peer address

/// Without `ConnectInfo` every caller used to be one "unknown" address: five bad guesses for
/// ann locked the whole site. Now the lockout counts the account alone, so ann is locked and
/// bob still signs in; and the server says once, loudly, how to fix it.
async fn without_a_peer_address_one_account_cannot_lock_out_another(backend: Backend) {
    logs();
    let app = without_connect_info(backend, |b| b).await;
    app.user("ann@example.com", "ann", PW).await;
    app.user("bob@example.com", "bob", PW).await;
    for _ in 0..5 {
        assert_eq!(login(&app, "ann", "wrong", &[]).await.0, 401);
    }
    assert_eq!(login(&app, "ann", PW, &[]).await, (429, LOCKED.to_owned()));
    assert_eq!(
        login(&app, "bob", PW, &[]).await.0,
        200,
        "bob is not locked out"
    );
    let errors = logged("into_make_service_with_connect_info::<SocketAddr>()");
    assert_eq!(errors.len(), 1, "logged once: {errors:?}");
    assert!(errors[0].contains("ERROR"), "{}", errors[0]);
}

/// Without a peer address the per-address budgets do not become one budget for the whole
/// site: `register` counts per target email, `csrf_refresh` per signed-in user, and an
/// anonymous caller of an address-keyed limit, who cannot be told apart, is refused (503,
/// fail closed) rather than counted with everyone.
async fn without_a_peer_address_route_budgets_are_not_site_wide(backend: Backend) {
    let app = without_connect_info(backend, |b| {
        b.rate_limits([
            ("register", RateLimit::new(2, HOUR)),
            ("csrf_refresh", RateLimit::new(1, HOUR)),
        ])
    })
    .await;
    for i in 0..4 {
        let (status, _) = register(&app, &format!("new{i}@example.com"), &format!("new{i}")).await;
        assert_eq!(status, 202, "registration {i}");
    }
    // The same address, again and again: its own budget of two.
    assert_eq!(register(&app, "new0@example.com", "x1").await.0, 202);
    assert_eq!(register(&app, "new0@example.com", "x2").await.0, 429);

    app.user("alice@example.com", "alice", PW).await;
    app.user("carol@example.com", "carol", PW).await;
    let mut alice = app.signed_in("alice", PW).await;
    let mut carol = app.signed_in("carol", PW).await;
    let url = app.url("/csrf/refresh");
    assert_eq!(alice.post(&url).await.status, 200);
    assert_eq!(
        carol.post(&url).await.status,
        200,
        "carol has her own budget"
    );
    assert_eq!(alice.post(&url).await.status, 429);
    let r = Browser::new().post(&url).await;
    assert_eq!(
        (r.status, r.detail()),
        (503, "Authentication service unavailable")
    );
    // An address-keyed route of the app's own: the same rule.
    let r = Browser::new().post(&app.url("/contact")).await;
    assert_eq!(r.status, 503);
    let r = alice.post_csrf(&app.url("/contact"), Body::None).await;
    assert_eq!(
        r.status, 200,
        "a signed-in caller is counted as herself: {:?}",
        r.json
    );
}

// ---------------------------------------------------------------------------------------------
// X-Forwarded-For with no trusted proxy

/// An `X-Forwarded-For` arriving while `trusted_proxy_hops` is 0 is ignored (the peer is the
/// client) and logged once as a WARN naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ignored_x_forwarded_for_is_warned_about_once() {
    logs();
    let app = spawn(Options::new(Backend::Memory)).await;
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let r = Browser::new()
            .send(
                "POST",
                &app.url("/contact"),
                Body::None,
                &[("x-forwarded-for", ip)],
            )
            .await;
        assert_eq!(r.status, 200);
    }
    let warnings = logged("X-Forwarded-For is ignored because trusted_proxy_hops is 0");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    // Ignored: the three requests shared the peer's budget of five.
    let r = Browser::new()
        .send("POST", &app.url("/contact"), Body::None, &[])
        .await;
    assert_eq!(r.header("x-ratelimit-remaining"), Some("1"));
}

// ---------------------------------------------------------------------------------------------
// What the limiter's keys are made of

/// Identifiers reach the limiter only as an HMAC: not as text, not as their plain SHA-256
/// (whole or cut), whether they name an account or not — a password typed into the user name
/// field cannot be read back from the store.
async fn limiter_keys_hold_no_identifier_nor_its_sha256(backend: Backend) {
    let limiter = Recording::new(backend);
    let recorded = limiter.clone();
    let mut options = Options::new(backend);
    options.customize = Box::new(move |b| b.rate_limiter(limiter).trusted_proxy_hops(1));
    let app = spawn(options).await;
    app.user("ann@example.com", "ann", PW).await;
    let typed = [
        "ann@example.com",
        "ann",
        "Hunter2-Typed-As-A-Name",
        "nobody@example.com",
    ];
    for who in typed {
        let xff = [("x-forwarded-for", "198.51.100.7")];
        assert_eq!(login(&app, who, "wrong", &xff).await.0, 401);
    }
    let keys = recorded.keys();
    assert!(keys.len() >= 8, "{keys:?}");
    for who in typed.iter().map(|w| w.trim().to_lowercase()) {
        let plain = sha256_hex(who.as_bytes());
        for key in &keys {
            let lower = key.to_lowercase();
            assert!(!lower.contains(&who), "{key} holds {who}");
            assert!(!key.contains(&plain[..32]), "{key} holds SHA-256({who})");
        }
    }
    // The account's two names share one counter; the other identifiers have their own.
    let counters: std::collections::BTreeSet<&String> =
        keys.iter().filter(|k| k.contains(":user:")).collect();
    assert_eq!(counters.len(), 3, "{counters:?}");
}

/// A custom key is HMAC'd (the identity never reaches the store), fixed in length whatever its
/// size, and apart from the built-in keys: an identity that spells the caller's address does
/// not share the address's budget on the same action.
async fn custom_keys_are_hmacd_bounded_and_namespaced(backend: Backend) {
    let limiter = Recording::new(backend);
    let recorded = limiter.clone();
    let mut options = Options::new(backend);
    options.customize = Box::new(move |b| b.rate_limiter(limiter));
    options.routes = Some(Box::new(|auth: &CrudAuth| {
        let one = RateLimit::new(1, HOUR);
        Router::new()
            .route(
                "/by-address",
                get(|| async { "ok" }).route_layer(auth.rate_limit("shared", one.clone())),
            )
            .route(
                "/spelled-address",
                get(|| async { "ok" }).route_layer(
                    auth.rate_limit(
                        "shared",
                        one.clone()
                            .key(KeyBy::custom(|_| Some("127.0.0.1".to_owned()))),
                    ),
                ),
            )
            .route(
                "/secret-name",
                get(|| async { "ok" }).route_layer(
                    auth.rate_limit(
                        "named",
                        RateLimit::new(5, HOUR)
                            .key(KeyBy::custom(|_| Some("tenant-Zebra-42".to_owned()))),
                    ),
                ),
            )
            .route(
                "/huge",
                get(|| async { "ok" }).route_layer(auth.rate_limit(
                    "huge",
                    RateLimit::new(5, HOUR).key(KeyBy::custom(|_| Some("x".repeat(100_000)))),
                )),
            )
    }));
    let app = spawn(options).await;
    let mut b = Browser::new();
    assert_eq!(b.get(&app.url("/by-address")).await.status, 200);
    assert_eq!(b.get(&app.url("/by-address")).await.status, 429);
    assert_eq!(
        b.get(&app.url("/spelled-address")).await.status,
        200,
        "a custom identity never lands on a built-in key"
    );
    assert_eq!(b.get(&app.url("/secret-name")).await.status, 200);
    assert_eq!(b.get(&app.url("/huge")).await.status, 200);
    let keys = recorded.keys();
    let custom: Vec<&String> = keys.iter().filter(|k| k.contains(":c:")).collect();
    assert_eq!(custom.len(), 3, "{keys:?}");
    for key in &custom {
        assert!(!key.contains("Zebra") && !key.contains("127.0.0.1") && !key.contains("xxxx"));
        assert!(key.len() <= "q:shared:c:".len() + 64, "{} bytes", key.len());
    }
    assert!(keys.contains(&"q:shared:127.0.0.1".to_owned()), "{keys:?}");
}

/// An async custom key may await, and sees the signed-in user: one budget per user's
/// "organisation" (looked up asynchronously), anonymous callers by address.
async fn an_async_custom_key_awaits_and_sees_the_user(backend: Backend) {
    let mut options = Options::new(backend);
    options.routes = Some(Box::new(|auth: &CrudAuth| {
        let key = KeyBy::custom_async(|_parts, principal| {
            let username = principal.map(|p| p.user_id().to_string());
            async move {
                tokio::task::yield_now().await;
                username.map(|u| format!("org-of-{u}"))
            }
        });
        Router::new().route(
            "/org",
            get(|| async { "ok" })
                .route_layer(auth.rate_limit("org", RateLimit::new(1, HOUR).key(key))),
        )
    }));
    let app = spawn(options).await;
    app.user("ann@example.com", "ann", PW).await;
    app.user("bob@example.com", "bob", PW).await;
    let mut ann = app.signed_in("ann", PW).await;
    let mut bob = app.signed_in("bob", PW).await;
    assert_eq!(ann.get(&app.url("/org")).await.status, 200);
    assert_eq!(ann.get(&app.url("/org")).await.status, 429);
    assert_eq!(
        bob.get(&app.url("/org")).await.status,
        200,
        "bob's own budget"
    );
    assert_eq!(Browser::new().get(&app.url("/org")).await.status, 200);
    assert_eq!(Browser::new().get(&app.url("/org")).await.status, 429);
}

// ---------------------------------------------------------------------------------------------
// existing_account notices

/// Registering a taken email again and again answers exactly as a new one each time (202 and
/// the same body), while at most the `existing_account_notice` budget (5 an hour) of notices
/// reach the address's owner.
async fn existing_account_notices_are_capped_silently(backend: Backend) {
    let mut options = Options::new(backend);
    options.customize = Box::new(|b| b.rate_limits([("register", RateLimit::new(100, HOUR))]));
    let app = spawn(options).await;
    app.user("taken@example.com", "owner", PW).await;
    for i in 0..9 {
        let (status, body) = register(&app, " Taken@Example.com", &format!("someone{i}")).await;
        assert_eq!(
            (status, body),
            (202, json!({"detail": SIGNUP_ACCEPTED})),
            "try {i}"
        );
    }
    let notices = app
        .emails()
        .await
        .into_iter()
        .filter(|m| m["kind"] == "existing_account")
        .count();
    assert_eq!(notices, 5);
    // Another address has its own budget.
    app.user("other@example.com", "other", PW).await;
    assert_eq!(register(&app, "other@example.com", "x").await.0, 202);
    let to_other = app
        .emails()
        .await
        .into_iter()
        .filter(|m| m["kind"] == "existing_account" && m["to"] == "other@example.com")
        .count();
    assert_eq!(to_other, 1);
}

// ---------------------------------------------------------------------------------------------
// The hash pool and the lockout

/// A sign-in turned away because every hashing slot is taken (503) was never a guess: it gives
/// its lockout attempt back. Without that, a storm that fills the pool would lock out the owner
/// of any account who tried five times meanwhile.
async fn a_busy_refusal_does_not_count_towards_the_lockout(backend: Backend) {
    let users = WatchedUsers::default();
    let mut options = Options::new(backend);
    let table = users.clone();
    options.customize = Box::new(move |b| {
        let one_slot = Passwords::builder()
            .argon2_params(64, 1, 1)
            .max_concurrency(1)
            .max_waiting(0)
            .build()
            .unwrap();
        b.passwords(one_slot).users(table)
    });
    let app = spawn(options).await;
    users.seed("ann@example.com", "ann", PW).await;
    // A user whose stored hash takes seconds to verify holds the one slot.
    let slow = Passwords::builder()
        .argon2_params(131_072, 16, 1)
        .build()
        .unwrap()
        .hash(&Password::new(PW))
        .await
        .unwrap();
    users
        .inner
        .create(NewUser::new("slow@example.com", "slow", slow.0))
        .await
        .unwrap();
    let url = app.url("/login");
    let holder =
        tokio::spawn(async move { Browser::new().sign_in(&url, "slow", PW, &[]).await.status });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let looked_up = users.login_lookups.load(Ordering::SeqCst);
    // Five at once: each waits a moment for room before its 503, all within the slow hash.
    let url = app.url("/login");
    let refused: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let r = Browser::new().sign_in(&url, "ann", PW, &[]).await;
                (r.status, r.detail().to_owned())
            })
        })
        .collect();
    for task in refused {
        let (status, detail) = task.await.unwrap();
        assert_eq!(status, 503, "the slot is taken: {detail}");
    }
    assert_eq!(
        users.login_lookups.load(Ordering::SeqCst),
        looked_up,
        "a full pool turns a login away before it looks anyone up"
    );
    assert_eq!(holder.await.unwrap(), 200);
    assert_eq!(
        login(&app, "ann", PW, &[]).await.0,
        200,
        "five refusals that checked no password do not lock ann out"
    );
}

macro_rules! all_cases {
    ($backend:expr) => {
        crudauth_tests::per_backend!($backend;
            without_a_peer_address_one_account_cannot_lock_out_another,
            without_a_peer_address_route_budgets_are_not_site_wide,
            limiter_keys_hold_no_identifier_nor_its_sha256,
            custom_keys_are_hmacd_bounded_and_namespaced,
            an_async_custom_key_awaits_and_sees_the_user,
            existing_account_notices_are_capped_silently,
            a_busy_refusal_does_not_count_towards_the_lockout);
    };
}

mod memory {
    all_cases!(crudauth_tests::app::Backend::Memory);
}

mod redis {
    all_cases!(crudauth_tests::app::Backend::Redis);
}
