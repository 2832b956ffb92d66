//! What `POST /mfa/verify` costs in process (memory stores, no network): its store operations
//! and user-table writes, counted once and printed, then its time.
//!
//! The verification itself is one read and one compare-and-swap of the challenge, plus the one
//! conditional UPDATE that claims the TOTP step; completing the sign-in then costs what `/login`
//! costs (the session written), counted separately here from a `/login` without two-factor.
//!
//! `cargo bench -p crudauth-axum --bench mfa -- --warm-up-time 1 --measurement-time 5`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use criterion::Criterion;
use tower::ServiceExt;

use crudauth_axum::{CrudAuth, LockoutConfig, SessionTransport};
use crudauth_core::clock::{Clock, ManualClock};
use crudauth_core::mfa::fernet::FernetKey;
use crudauth_core::mfa::totp::TotpSecret;
use crudauth_core::mfa::{Mfa, MfaConfig};
use crudauth_core::password::{Password, Passwords};
use crudauth_core::store::{FaultyStore, MemoryStore};
use crudauth_core::user::{
    LoginField, MemoryUsers, MfaWrite, NewUser, User, UserId, UserStore, UserStoreError, UserUpdate,
};

/// A user table that counts its writes.
#[derive(Debug, Clone, Default)]
struct CountingUsers {
    inner: MemoryUsers,
    writes: Arc<AtomicUsize>,
}

#[async_trait]
impl UserStore for CountingUsers {
    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, UserStoreError> {
        self.inner.find_by_id(id).await
    }
    async fn find_by_field(
        &self,
        field: LoginField,
        value: &str,
    ) -> Result<Option<User>, UserStoreError> {
        self.inner.find_by_field(field, value).await
    }
    async fn create(&self, user: NewUser) -> Result<User, UserStoreError> {
        self.inner.create(user).await
    }
    async fn update(&self, id: &UserId, c: UserUpdate) -> Result<Option<User>, UserStoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.update(id, c).await
    }
    fn missing_mfa_fields(&self) -> Vec<&'static str> {
        Vec::new()
    }
    async fn claim_totp_step(&self, id: &UserId, step: i64) -> Result<bool, UserStoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.claim_totp_step(id, step).await
    }
    async fn write_mfa(&self, id: &UserId, write: MfaWrite) -> Result<bool, UserStoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write_mfa(id, write).await
    }
}

fn post(path: &str, content_type: &str, body: String) -> Request<Body> {
    let mut req = Request::post(path)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("a request");
    let peer: SocketAddr = ([203, 0, 113, 9], 4000).into();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

async fn call(app: &Router, req: Request<Body>) -> (u16, serde_json::Value) {
    let response = app.clone().oneshot(req).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("a body");
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let key = FernetKey::generate();
    let secret_key = [7u8; 32];
    let users = CountingUsers::default();
    let passwords = Passwords::fast_for_tests();
    let hash = rt
        .block_on(passwords.hash(&Password::new("correct horse battery")))
        .expect("a hash");
    let (ada, plain) = rt.block_on(async {
        let ada = users
            .create(NewUser::new("ada@example.com", "ada", hash.0.clone()))
            .await
            .expect("ada");
        let plain = users
            .create(NewUser::new("bob@example.com", "bob", hash.0.clone()))
            .await
            .expect("bob");
        (ada, plain)
    });
    // Enrol ada directly, with a secret this bench knows.
    let sealer = Mfa::new(MfaConfig::new("bench", [key.clone()]), &secret_key).expect("mfa");
    let secret = TotpSecret::generate();
    rt.block_on(async {
        let pending = sealer.seal_pending(ada.token_version, &secret);
        users
            .write_mfa(
                &ada.id,
                MfaWrite::Pending {
                    secret: pending.clone(),
                },
            )
            .await
            .expect("pending");
        let (_, codes) = sealer.new_recovery_codes();
        let enable = MfaWrite::Enable {
            pending,
            secret: sealer.seal(&secret),
            recovery_codes: codes,
        };
        assert!(users.write_mfa(&ada.id, enable).await.expect("enabled"));
    });
    let clock = ManualClock::starting_now();
    let store = FaultyStore::new(Arc::new(MemoryStore::new()));
    let ops = store.clone();
    let auth = CrudAuth::builder()
        .secret_key(secret_key)
        .users(users.clone())
        .store(store)
        .passwords(passwords)
        .clock(clock.clone())
        .session_transport(SessionTransport::default())
        .mfa(MfaConfig::new("bench", [key]))
        .lockout(LockoutConfig {
            max_attempts: u32::MAX,
            ..LockoutConfig::default()
        })
        // Every step of the clock is claimed once; a bench run spans millions of them.
        .user_cache_ttl(Duration::ZERO)
        .warn_on_memory_backend(false)
        .build()
        .expect("a configuration");
    let guard = rt.block_on(auth.initialize()).expect("initialized");
    let app: Router = auth.router();
    let form = "application/x-www-form-urlencoded";
    let login = |who: &str| {
        post(
            "/login",
            form,
            format!("username={who}&password=correct+horse+battery"),
        )
    };
    let challenge = || async {
        let app = &app;
        let (status, body) = call(app, login("ada")).await;
        assert_eq!(status, 200);
        body["challenge"].as_str().expect("a challenge").to_owned()
    };
    let finish = |challenge: String| {
        // A fresh step for every verification: the previous one is claimed.
        clock.advance(Duration::from_secs(30));
        let code = secret.code_at(clock.now_millis() / 1000);
        let body = format!(r#"{{"challenge":"{challenge}","code":"{code}"}}"#);
        post("/mfa/verify", "application/json", body)
    };
    rt.block_on(async {
        let (before, writes) = (ops.calls(), users.writes.load(Ordering::SeqCst));
        let (status, _) = call(&app, login("bob")).await;
        assert_eq!(status, 200);
        let login_ops = ops.calls() - before;
        let login_writes = users.writes.load(Ordering::SeqCst) - writes;
        let token = challenge().await;
        let (before, writes) = (ops.calls(), users.writes.load(Ordering::SeqCst));
        let (status, body) = call(&app, finish(token)).await;
        assert_eq!(status, 200, "{body}");
        let verify_ops = ops.calls() - before;
        let verify_writes = users.writes.load(Ordering::SeqCst) - writes;
        println!(
            "/login without two-factor: {login_ops} store operations, {login_writes} user writes; \
             /mfa/verify: {verify_ops} store operations, {verify_writes} user writes, so the \
             verification's own share is {} store operations and {} user write(s)",
            verify_ops - login_ops,
            verify_writes - login_writes,
        );
        let _ = plain;
    });
    let mut group = c.benchmark_group("mfa");
    group.bench_function("verify_totp_and_sign_in", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (app, challenge, finish) = (&app, &challenge, &finish);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let request = finish(challenge().await);
                    let started = std::time::Instant::now();
                    let (status, _) = call(app, request).await;
                    total += started.elapsed();
                    assert_eq!(status, 200);
                }
                total
            }
        })
    });
    group.finish();
    rt.block_on(guard.shutdown());
}

// Written out rather than through criterion_group!, whose generated pub fn has no doc.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    verify(&mut criterion);
    criterion.final_summary();
}
