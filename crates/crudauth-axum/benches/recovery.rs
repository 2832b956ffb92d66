//! What the recovery routes cost in process (memory stores, no network):
//!
//! - a request route (`/password/reset-request`) for an address with an account and for one
//!   without, interleaved: both only queue the work, so their medians should agree within
//!   noise (the enumeration-safety promise, measured);
//! - a confirm route (`/email/verify-confirm`), whose store operations are counted once and
//!   printed: one read and one conditional write for the token, then the SQL update.
//!
//! `cargo bench -p crudauth-axum --bench recovery -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use criterion::Criterion;
use tower::ServiceExt;

use crudauth_axum::{CrudAuth, EmailConfig, RateLimit, SessionTransport};
use crudauth_core::email::{EmailError, EmailMessage, EmailSender};
use crudauth_core::store::{FaultyStore, MemoryStore};
use crudauth_core::user::{MemoryUsers, NewUser, UserStore};

/// Keeps the last link it was given, and nothing else.
#[derive(Debug, Default, Clone)]
struct LastLink(Arc<Mutex<Option<String>>>);

#[async_trait]
impl EmailSender for LastLink {
    async fn send(&self, message: &EmailMessage) -> Result<(), EmailError> {
        *self.0.lock().map_err(|_| EmailError("poisoned".into()))? = message.link.clone();
        Ok(())
    }
}

fn post(path: &str, body: String) -> Request<Body> {
    let mut req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("a request");
    let peer: SocketAddr = ([203, 0, 113, 9], 4000).into();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

fn recovery(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let users = MemoryUsers::new();
    let user = rt
        .block_on(users.create(NewUser::new("ada@example.com", "ada", "!")))
        .expect("a user");
    // Never told to fail: here it only counts the store operations.
    let store = FaultyStore::new(Arc::new(MemoryStore::new()));
    let ops = store.clone();
    let sender = LastLink::default();
    let off = RateLimit::new(0, Duration::from_secs(3600));
    let auth = CrudAuth::builder()
        .secret_key([7u8; 32])
        .users(users.clone())
        .store(store)
        .session_transport(SessionTransport::default())
        .email(EmailConfig::new("https://app.example", sender.clone()))
        // No budgets: every iteration does the whole route.
        .rate_limits([
            ("password_reset_request", off.clone()),
            ("email_verify_request", off),
        ])
        .delivery_queue(1 << 20)
        .warn_on_memory_backend(false)
        .build()
        .expect("a configuration");
    let guard = rt.block_on(auth.initialize()).expect("initialized");
    let app: Router = auth.router();

    let mut group = c.benchmark_group("recovery");
    // Each timed request is preceded by an untimed one for the other address, so both
    // measurements run under the same mix of work in the delivery worker (run one after the
    // other, the worker is idle more often behind the unknown address, whose job is short, and
    // waking it shows in the request's time). Each twice, alternately: an order effect shows as a
    // difference between the two runs of one address.
    let request = |address: &str| {
        let (app, body) = (app.clone(), format!(r#"{{"email":"{address}"}}"#));
        async move {
            let response = app
                .oneshot(post("/password/reset-request", body))
                .await
                .expect("infallible");
            assert_eq!(response.status(), 200);
            black_box(response);
        }
    };
    let (known, unknown) = ("ada@example.com", "nobody@example.com");
    // Untimed first: whichever measurement ran first was slower by a tenth (the runtime and
    // the queue's buffers warming up), whatever its address.
    rt.block_on(async {
        for _ in 0..100_000 {
            request(known).await;
            request(unknown).await;
        }
        auth.deliveries_settled().await;
    });
    for (name, timed, other) in [
        ("reset_request_known", known, unknown),
        ("reset_request_unknown", unknown, known),
        ("reset_request_known_again", known, unknown),
        ("reset_request_unknown_again", unknown, known),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    request(other).await;
                    let started = std::time::Instant::now();
                    request(timed).await;
                    total += started.elapsed();
                }
                total
            })
        });
        rt.block_on(auth.deliveries_settled());
    }
    // A confirm: each iteration redeems a fresh verification token (made in the setup).
    let fresh_token = || {
        let (app, auth, users, sender, id) = (
            app.clone(),
            auth.clone(),
            users.clone(),
            sender.clone(),
            user.id.clone(),
        );
        async move {
            let unverify = crudauth_core::user::UserUpdate {
                email_verified: Some(false),
                ..Default::default()
            };
            users.update(&id, unverify).await.expect("the user");
            auth.users().forget(&id);
            let body = r#"{"email":"ada@example.com"}"#.to_owned();
            app.oneshot(post("/email/verify-request", body))
                .await
                .expect("infallible");
            auth.deliveries_settled().await;
            let link = sender.0.lock().expect("the link").clone().expect("a link");
            link.split_once("token=").expect("a token").1.to_owned()
        }
    };
    let confirm = |token: String, status: u16| {
        let app = app.clone();
        async move {
            let body = format!(r#"{{"token":"{token}"}}"#);
            let response = app
                .oneshot(post("/email/verify-confirm", body))
                .await
                .expect("infallible");
            assert_eq!(response.status(), status);
        }
    };
    rt.block_on(async {
        let token = fresh_token().await;
        let before = ops.calls();
        confirm(token, 200).await;
        println!("verify-confirm: {} store operations", ops.calls() - before);
    });
    group.bench_function("verify_confirm", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let token = fresh_token().await;
                // The setup waited for the delivery worker, long enough for the runtime's
                // threads to park: one refused confirm first, untimed, wakes them, so the
                // timed one measures the route and not the wake-up.
                confirm("not-a-token".into(), 400).await;
                let started = std::time::Instant::now();
                confirm(token, 200).await;
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
    rt.block_on(guard.shutdown());
}

// Written out rather than through criterion_group!, whose generated pub fn has no doc.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    recovery(&mut criterion);
    criterion.final_summary();
}
