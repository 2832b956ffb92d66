//! End to end over HTTP against the real router: route rate limits (the quickstart's
//! `/contact`, the built-in budgets, limits keyed by user, by header, off, failing open) and the
//! escalating login lockout — on memory and on Redis, plus a Redis outage and two workers on
//! one Redis.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crudauth_axum::extract::CurrentUser;
use crudauth_axum::{CrudAuth, CrudAuthBuilder, KeyBy, RateLimit};
use crudauth_core::user::{LoginField, UserStore, UserUpdate};
use crudauth_tests::app::{spawn, Backend, Options, TestApp};
use crudauth_tests::http::{Answer, Body, Browser};
use crudauth_tests::users::WatchedUsers;

const PW: &str = "correct horse battery";
const LOCKED: &str = "Too many login attempts. Try again later.";
const TOO_MANY: &str = "Too many requests. Try again later.";
const MINUTE: Duration = Duration::from_secs(60);

/// Routes of the tests' own: a limit per user (whose handler also asks for the user), one per
/// tenant header, one turned off, one failing open, one per user-or-address.
fn extra_routes(auth: &CrudAuth) -> Router {
    Router::new()
        .route(
            "/u",
            get(|u: CurrentUser| async move { Json(json!({"user_id": u.user.id})) })
                .route_layer(auth.rate_limit("u", RateLimit::new(2, MINUTE).key(KeyBy::User))),
        )
        .route(
            "/t",
            get(|| async { "ok" }).route_layer(auth.rate_limit(
                "t",
                RateLimit::new(1, MINUTE).key(KeyBy::custom(|parts| {
                    let tenant = parts.headers.get("x-tenant")?.to_str().ok()?;
                    Some(format!("tenant:{tenant}"))
                })),
            )),
        )
        .route(
            "/free",
            get(|| async { "ok" }).route_layer(auth.rate_limit("free", RateLimit::new(0, MINUTE))),
        )
        .route(
            "/open",
            post(|| async { "ok" })
                .route_layer(auth.rate_limit("open", RateLimit::new(5, MINUTE).fail_open())),
        )
        .route(
            "/either",
            get(|| async { "ok" }).route_layer(
                auth.rate_limit("either", RateLimit::new(1, MINUTE).key(KeyBy::UserOrIp)),
            ),
        )
}

/// An app on `backend` over `users`, with the extra routes and `customize` applied.
async fn app_with(
    backend: Backend,
    users: &WatchedUsers,
    customize: impl FnOnce(CrudAuthBuilder) -> CrudAuthBuilder + Send + 'static,
) -> TestApp {
    let mut options = Options::new(backend);
    let users = users.clone();
    options.customize = Box::new(move |b| customize(b.users(users)));
    options.routes = Some(Box::new(extra_routes));
    spawn(options).await
}

/// An app trusting one proxy, so each request can come from the address it names.
async fn behind_a_proxy(backend: Backend, users: &WatchedUsers) -> TestApp {
    app_with(backend, users, |b| b.trusted_proxy_hops(1)).await
}

async fn login_from(app: &TestApp, ip: &str, who: &str, password: &str) -> Answer {
    Browser::new()
        .sign_in(
            &app.url("/login"),
            who,
            password,
            &[("x-forwarded-for", ip)],
        )
        .await
}

async fn post_from(app: &TestApp, path: &str, xff: &str) -> Answer {
    Browser::new()
        .send(
            "POST",
            &app.url(path),
            Body::None,
            &[("x-forwarded-for", xff)],
        )
        .await
}

/// `(X-RateLimit-Limit, X-RateLimit-Remaining)`.
fn budget(r: &Answer) -> (Option<&str>, Option<&str>) {
    (
        r.header("x-ratelimit-limit"),
        r.header("x-ratelimit-remaining"),
    )
}

fn assert_locked(r: &Answer, retry_after: &str) {
    assert_eq!((r.status, r.detail()), (429, LOCKED), "{:?}", r.json);
    assert_eq!(r.header("retry-after"), Some(retry_after));
    assert_eq!(
        budget(r),
        (None, None),
        "the lockout sends no budget headers"
    );
}

// ---------------------------------------------------------------------------------------------
// Route limits

async fn contact_reports_the_budget_and_refuses_the_sixth(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let mut b = Browser::new();
    for left in ["4", "3", "2", "1", "0"] {
        let r = b.post(&app.url("/contact")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json, json!({"sent": true}));
        assert_eq!(budget(&r), (Some("5"), Some(left)));
    }
    let r = b.post(&app.url("/contact")).await;
    assert_eq!((r.status, r.detail()), (429, TOO_MANY));
    assert_eq!(budget(&r), (Some("5"), Some("0")));
    // GCRA: the next request fits one interval (60 s / 5) after the burst.
    assert_eq!(r.header("retry-after"), Some("12"));
    // Only the limited method is counted and reported; other routes cost nothing.
    let r = b.get(&app.url("/contact")).await;
    assert_eq!((r.status, budget(&r)), (405, (None, None)));
    let r = b.get(&app.url("/hello")).await;
    assert_eq!((r.status, budget(&r)), (200, (None, None)));
}

async fn a_budget_of_five_admits_exactly_five_of_64_concurrent_requests(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let url = app.url("/contact");
    let start = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (url, start) = (url.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                Browser::new().post(&url).await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 59);
}

async fn x_forwarded_for_is_ignored_without_trusted_hops(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    for i in 0..5 {
        let r = post_from(&app, "/contact", &format!("203.0.113.{i}")).await;
        assert_eq!(r.status, 200);
    }
    let r = post_from(&app, "/contact", "198.51.100.99").await;
    assert_eq!(
        r.status, 429,
        "one socket peer, one budget, whatever the header says"
    );
}

async fn x_forwarded_for_is_honoured_with_one_trusted_hop(backend: Backend) {
    let users = WatchedUsers::default();
    let app = behind_a_proxy(backend, &users).await;
    for i in 0..8 {
        let r = post_from(&app, "/contact", &format!("203.0.113.{i}")).await;
        assert_eq!((r.status, budget(&r)), (200, (Some("5"), Some("4"))));
    }
    for _ in 0..4 {
        assert_eq!(post_from(&app, "/contact", "203.0.113.1").await.status, 200);
    }
    assert_eq!(post_from(&app, "/contact", "203.0.113.1").await.status, 429);
    // The right-most entry is the one the trusted proxy saw; what the client prepends is not.
    let spoofed = post_from(&app, "/contact", "9.9.9.9, 203.0.113.1").await;
    assert_eq!(spoofed.status, 429);
    let r = post_from(&app, "/contact", "203.0.113.1, 9.9.9.9").await;
    assert_eq!(r.status, 200);
    // IPv6 is counted per /64; an IPv4-mapped address is its IPv4 address.
    for i in 1..=5 {
        let r = post_from(&app, "/contact", &format!("2001:db8:1:2::{i}")).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        post_from(&app, "/contact", "2001:db8:1:2:ffff::9")
            .await
            .status,
        429
    );
    assert_eq!(
        post_from(&app, "/contact", "2001:db8:1:3::1").await.status,
        200
    );
    for _ in 0..5 {
        assert_eq!(
            post_from(&app, "/contact", "198.51.100.7").await.status,
            200
        );
    }
    assert_eq!(
        post_from(&app, "/contact", "::ffff:198.51.100.7")
            .await
            .status,
        429
    );
}

async fn limits_keyed_by_user_header_or_nothing(backend: Backend) {
    let users = WatchedUsers::default();
    users.seed("alice@example.com", "alice", PW).await;
    users.seed("bob@example.com", "bob", PW).await;
    let app = app_with(backend, &users, |b| b.user_cache_ttl(Duration::ZERO)).await;

    // Per user: anonymous callers are refused before anything is counted.
    let r = Browser::new().get(&app.url("/u")).await;
    assert_eq!(
        (r.status, r.detail(), budget(&r)),
        (401, "Not authenticated", (None, None))
    );
    let mut alice = app.signed_in("alice", PW).await;
    let before = users.id_lookups.load(Ordering::SeqCst);
    let r = alice.get(&app.url("/u")).await;
    assert_eq!((r.status, budget(&r)), (200, (Some("2"), Some("1"))));
    assert_eq!(
        users.id_lookups.load(Ordering::SeqCst) - before,
        1,
        "the limit and the handler share one resolution of the user"
    );
    assert_eq!(alice.get(&app.url("/u")).await.status, 200);
    let r = alice.get(&app.url("/u")).await;
    assert_eq!(
        (r.status, r.detail(), budget(&r)),
        (429, TOO_MANY, (Some("2"), Some("0")))
    );
    let mut bob = app.signed_in("bob", PW).await;
    assert_eq!(
        bob.get(&app.url("/u")).await.status,
        200,
        "same address, own budget"
    );

    // Per tenant header; without the header, per address.
    let url = app.url("/t");
    let tenant = |name: &'static str| {
        let url = url.clone();
        async move {
            Browser::new()
                .get_with(&url, &[("x-tenant", name)])
                .await
                .status
        }
    };
    assert_eq!(tenant("acme").await, 200);
    assert_eq!(tenant("acme").await, 429);
    assert_eq!(tenant("globex").await, 200);
    assert_eq!(Browser::new().get(&app.url("/t")).await.status, 200);
    assert_eq!(Browser::new().get(&app.url("/t")).await.status, 429);

    // Off: nothing counted, no headers.
    for _ in 0..10 {
        let r = Browser::new().get(&app.url("/free")).await;
        assert_eq!((r.status, budget(&r)), (200, (None, None)));
    }

    // Per user when signed in, else per address.
    assert_eq!(alice.get(&app.url("/either")).await.status, 200);
    assert_eq!(alice.get(&app.url("/either")).await.status, 429);
    assert_eq!(bob.get(&app.url("/either")).await.status, 200);
    assert_eq!(Browser::new().get(&app.url("/either")).await.status, 200);
    assert_eq!(Browser::new().get(&app.url("/either")).await.status, 429);
}

async fn builtin_limits_on_change_password_and_logout_all(backend: Backend) {
    let users = WatchedUsers::default();
    users.seed("alice@example.com", "alice", PW).await;
    users.seed("bob@example.com", "bob", PW).await;
    let app = app_with(backend, &users, |b| {
        b.rate_limits([
            ("change_password", RateLimit::new(2, MINUTE)),
            ("logout_all", RateLimit::new(1, MINUTE)),
        ])
    })
    .await;
    let url = app.url("/change-password");
    let wrong = json!({"current_password": "not it at all", "new_password": "a new long password"});

    let r = Browser::new()
        .send("POST", &url, Body::Json(wrong.clone()), &[])
        .await;
    assert_eq!((r.status, budget(&r)), (401, (None, None)));
    let mut alice = app.signed_in("alice", PW).await;
    // A CSRF failure happens before counting (the limit needs the authenticated user).
    let r = alice
        .send("POST", &url, Body::Json(wrong.clone()), &[])
        .await;
    assert_eq!((r.status, budget(&r)), (403, (None, None)));
    // A wrong current password and an invalid body are counted, and report the budget.
    let r = alice.post_csrf(&url, Body::Json(wrong.clone())).await;
    assert_eq!(r.detail(), "Current password is incorrect.");
    assert_eq!((r.status, budget(&r)), (401, (Some("2"), Some("1"))));
    let r = alice.post_csrf(&url, Body::Json(json!({}))).await;
    assert_eq!((r.status, budget(&r)), (422, (Some("2"), Some("0"))));
    let right = json!({"current_password": PW, "new_password": "a new long password"});
    let r = alice.post_csrf(&url, Body::Json(right.clone())).await;
    assert_eq!((r.status, r.detail()), (429, TOO_MANY));
    assert!(r.header("retry-after").is_some());
    let mut bob = app.signed_in("bob", PW).await;
    let r = bob
        .post_csrf(
            &url,
            Body::Json(json!({"current_password": PW, "new_password": "bob's new password"})),
        )
        .await;
    assert_eq!((r.status, budget(&r)), (200, (Some("2"), Some("1"))));

    let url = app.url("/logout-all?keep_current=true");
    let r = bob.post_csrf(&url, Body::None).await;
    assert_eq!((r.status, budget(&r)), (200, (Some("1"), Some("0"))));
    let r = bob.post_csrf(&url, Body::None).await;
    assert_eq!((r.status, r.detail()), (429, TOO_MANY));
}

async fn builtin_limits_on_register_and_csrf_refresh(backend: Backend) {
    let users = WatchedUsers::default();
    users.seed("alice@example.com", "alice", PW).await;
    let app = app_with(backend, &users, |b| {
        b.rate_limits([
            ("register", RateLimit::new(2, MINUTE)),
            ("csrf_refresh", RateLimit::new(2, MINUTE)),
        ])
    })
    .await;
    let url = app.url("/register");
    let mut b = Browser::new();
    // An invalid body is refused before counting.
    let r = b
        .send(
            "POST",
            &url,
            Body::Json(json!({"email": "x@example.com"})),
            &[],
        )
        .await;
    assert_eq!((r.status, budget(&r)), (422, (None, None)));
    let new = json!({"email": "new@example.com", "username": "new", "password": PW});
    let r = b.send("POST", &url, Body::Json(new), &[]).await;
    assert_eq!((r.status, budget(&r)), (202, (Some("2"), Some("1"))));
    // A duplicate is counted: probing for taken names uses up the budget.
    let taken = json!({"email": "other@example.com", "username": "alice", "password": PW});
    let r = b.send("POST", &url, Body::Json(taken), &[]).await;
    assert_eq!((r.status, r.detail()), (422, "Username already taken"));
    assert_eq!(budget(&r), (Some("2"), Some("0")));
    let another = json!({"email": "third@example.com", "username": "third", "password": PW});
    let r = b.send("POST", &url, Body::Json(another), &[]).await;
    assert_eq!((r.status, r.detail()), (429, TOO_MANY));
    assert!(users
        .inner
        .find_by_field(LoginField::Username, "third")
        .await
        .unwrap()
        .is_none());

    // Per address, counted before authentication (as crudauth).
    let url = app.url("/csrf/refresh");
    let r = Browser::new().post(&url).await;
    assert_eq!((r.status, budget(&r)), (401, (Some("2"), Some("1"))));
    let mut alice = app.signed_in("alice", PW).await;
    let r = alice.post(&url).await;
    assert_eq!((r.status, budget(&r)), (200, (Some("2"), Some("0"))));
    let r = alice.post(&url).await;
    assert_eq!(r.status, 429);
}

// ---------------------------------------------------------------------------------------------
// Login lockout

async fn login_lockout_contract(backend: Backend) {
    let users = WatchedUsers::default();
    users.seed("ada@example.com", "ada", PW).await;
    users.seed("bob@example.com", "bob", PW).await;
    let app = behind_a_proxy(backend, &users).await;
    let ip = "203.0.113.10";
    for _ in 0..5 {
        let r = login_from(&app, ip, "ada", "wrong password").await;
        assert_eq!(
            (r.status, r.detail()),
            (401, "Incorrect username or password")
        );
        assert_eq!(budget(&r), (None, None));
    }
    let evaluated = app.auth.passwords().verifications();
    assert_locked(&login_from(&app, ip, "ada", "wrong password").await, "60");
    // While locked nothing is evaluated: not the right password, not another account from
    // this address, not this account (by its email, in any case) from another address.
    assert_locked(&login_from(&app, ip, "ada", PW).await, "60");
    assert_locked(&login_from(&app, ip, "bob", PW).await, "60");
    assert_locked(
        &login_from(&app, "198.51.100.10", " ADA@Example.com", PW).await,
        "60",
    );
    assert_eq!(app.auth.passwords().verifications(), evaluated);
    // The counter is the account's (crudauth counts the string as typed): its email is locked
    // too, from anywhere.
    assert_locked(
        &login_from(&app, "198.51.100.10", "ada@example.com", PW).await,
        "60",
    );
    assert_eq!(app.auth.passwords().verifications(), evaluated);
    let r = login_from(&app, "198.51.100.10", "bob", PW).await;
    assert_eq!(r.status, 200, "others elsewhere are not locked");

    // A disabled account with the right password is a failure like any other.
    let carol = users.seed("carol@example.com", "carol", PW).await;
    let off = UserUpdate {
        is_active: Some(false),
        ..Default::default()
    };
    users.inner.update(&carol.id, off).await.unwrap();
    for _ in 0..5 {
        let r = login_from(&app, "192.0.2.77", "carol", PW).await;
        assert_eq!(
            (r.status, r.detail()),
            (401, "Incorrect username or password")
        );
    }
    assert_locked(&login_from(&app, "192.0.2.77", "carol", PW).await, "60");
}

async fn forty_parallel_guesses_for_one_account_evaluate_at_most_five_passwords(backend: Backend) {
    let users = WatchedUsers::default();
    users.seed("victim@example.com", "victim", PW).await;
    let app = Arc::new(behind_a_proxy(backend, &users).await);
    let start = Arc::new(tokio::sync::Barrier::new(40));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (app, start) = (app.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                login_from(&app, &format!("10.9.{i}.1"), "victim@example.com", "guess").await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let evaluated = app.auth.passwords().verifications();
    let unauthorized = answers.iter().filter(|a| a.status == 401).count();
    let refused = answers.iter().filter(|a| a.status == 429).count();
    assert_eq!(evaluated, 5, "passwords evaluated");
    assert_eq!((unauthorized, refused), (5, 35));
    // The first tier's minute, counted down from the fifth failure: on a loaded machine the
    // last refusals can come seconds after it, so anything in the minute's last stretch is
    // right (the next tier would say 300).
    let waits: Vec<u64> = answers
        .iter()
        .filter(|a| a.status == 429)
        .filter_map(|a| a.header("retry-after")?.parse().ok())
        .collect();
    assert_eq!(waits.len(), 35, "every refusal says when to come back");
    assert!(waits.iter().all(|w| (50..=60).contains(w)), "{waits:?}");
}

async fn case_variants_from_different_addresses_share_one_counter(backend: Backend) {
    let users = WatchedUsers::default();
    users.seed("vic@example.com", "vic", PW).await;
    let app = behind_a_proxy(backend, &users).await;
    let variants = [
        "vic@example.com",
        "VIC@example.com",
        "vic@EXAMPLE.COM",
        " Vic@Example.Com ",
        "vIc@example.com\t",
    ];
    for (i, who) in variants.iter().enumerate() {
        let r = login_from(&app, &format!("10.8.{i}.1"), who, "wrong password").await;
        assert_eq!(r.status, 401, "{who}");
    }
    assert_locked(
        &login_from(&app, "10.8.99.1", "VIC@EXAMPLE.COM", PW).await,
        "60",
    );
}

/// The email and the user name of one account share one counter: three wrong guesses by
/// email and two by user name, each from another address, lock the account, and its right
/// password is then refused by either name without being evaluated.
async fn email_and_username_of_one_account_share_one_counter(backend: Backend) {
    let users = WatchedUsers::default();
    users.seed("ann@example.com", "ann", PW).await;
    let app = behind_a_proxy(backend, &users).await;
    let guesses = [
        "ann@example.com",
        "ANN@example.com",
        " ann@example.com",
        "ann",
        "ann",
    ];
    for (i, who) in guesses.iter().enumerate() {
        let r = login_from(&app, &format!("10.7.{i}.1"), who, "wrong password").await;
        assert_eq!(r.status, 401, "{who}");
    }
    let evaluated = app.auth.passwords().verifications();
    assert_locked(
        &login_from(&app, "10.7.99.1", "ann@example.com", PW).await,
        "60",
    );
    assert_locked(&login_from(&app, "10.7.98.1", "ann", PW).await, "60");
    assert_eq!(
        app.auth.passwords().verifications(),
        evaluated,
        "nothing evaluated"
    );
}

/// The user lookup of a sign-in is the same number of queries whether the identifier names an
/// account by email, by user name, or names none (login fields: email, then user name), and
/// a password is checked in every case (the dummy one for the unknown).
async fn the_login_lookup_costs_the_same_for_known_and_unknown(backend: Backend) {
    let users = WatchedUsers::default();
    users.seed("kim@example.com", "kim", PW).await;
    let app = behind_a_proxy(backend, &users).await;
    let mut costs = Vec::new();
    for (i, who) in [
        "nobody-here",
        "kim",
        "kim@example.com",
        "nobody@example.com",
    ]
    .iter()
    .enumerate()
    {
        let (queries, checks) = (
            users.login_lookups.load(Ordering::SeqCst),
            app.auth.passwords().verifications(),
        );
        let r = login_from(&app, &format!("10.6.{i}.1"), who, "wrong password").await;
        assert_eq!(r.status, 401, "{who}");
        costs.push((
            users.login_lookups.load(Ordering::SeqCst) - queries,
            app.auth.passwords().verifications() - checks,
        ));
    }
    assert_eq!(costs, [(2, 1); 4], "(queries, password checks) per sign-in");
}

async fn a_success_resets_the_accounts_pressure(backend: Backend) {
    let users = WatchedUsers::default();
    users.seed("ada@example.com", "ada", PW).await;
    let app = behind_a_proxy(backend, &users).await;
    let ip = "203.0.113.20";
    for _ in 0..4 {
        assert_eq!(login_from(&app, ip, "ada", "wrong").await.status, 401);
    }
    assert_eq!(login_from(&app, ip, "ada", PW).await.status, 200);
    // Both the account's counter and the address pressure it made are back to zero.
    for _ in 0..5 {
        assert_eq!(login_from(&app, ip, "ada", "wrong").await.status, 401);
    }
    assert_locked(&login_from(&app, ip, "ada", "wrong").await, "60");
}

async fn unknown_usernames_count_against_the_address(backend: Backend) {
    let users = WatchedUsers::default();
    users.seed("ada@example.com", "ada", PW).await;
    let app = behind_a_proxy(backend, &users).await;
    let ip = "203.0.113.30";
    for i in 0..5 {
        let r = login_from(&app, ip, &format!("nobody{i}"), "whatever").await;
        assert_eq!(
            (r.status, r.detail()),
            (401, "Incorrect username or password")
        );
    }
    assert_locked(&login_from(&app, ip, "nobody5", "whatever").await, "60");
    assert_locked(&login_from(&app, ip, "ada", PW).await, "60");
    let r = login_from(&app, "198.51.100.30", "ada", PW).await;
    assert_eq!(r.status, 200, "the account itself was never guessed at");
}

/// The escalation sequence, on the memory limiter with a manual clock: 5 failures, then locks
/// of 60, 120, … 3600 s, each refusing everything until it ends, staying at 3600 s for as long
/// as the attack goes on; once the rounds have been kept `round_retention` past the end of the
/// last lock, escalation starts over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_sequence_with_an_injected_clock() {
    let clock = crudauth_core::clock::ManualClock::starting_now();
    let limiter = crudauth_core::limit::MemoryRateLimiter::with_clock(clock.clone());
    let users = WatchedUsers::default();
    users.seed("ada@example.com", "ada", PW).await;
    let app = app_with(Backend::Memory, &users, move |b| b.rate_limiter(limiter)).await;
    let mut b = Browser::new();
    let attempt = |password: &'static str| {
        let url = app.url("/login");
        let mut b = b.clone();
        async move { b.sign_in(&url, "ada", password, &[]).await }
    };
    for lock in [60, 120, 240, 480, 960, 1920, 3600, 3600] {
        for _ in 0..5 {
            assert_eq!(
                attempt("wrong").await.status,
                401,
                "before the {lock} s lock"
            );
        }
        assert_locked(&attempt("wrong").await, &lock.to_string());
        clock.advance(Duration::from_secs(lock - 1));
        assert_locked(&attempt(PW).await, "1");
        clock.advance(Duration::from_secs(1));
    }
    clock.advance(Duration::from_secs(3600 - 1));
    for _ in 0..5 {
        assert_eq!(attempt("wrong").await.status, 401);
    }
    assert_locked(&attempt("wrong").await, "3600");
    clock.advance(Duration::from_secs(3600 + 3600));
    for _ in 0..5 {
        assert_eq!(attempt("wrong").await.status, 401);
    }
    assert_locked(&attempt("wrong").await, "60");
    clock.advance(Duration::from_secs(60));
    let r = b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Redis only: an outage, and two workers on one Redis

/// With Redis gone: a sign-in is refused 429 with `Retry-After` (the lockout fails closed), a
/// limited route answers 503, a fail-open one lets requests through showing its whole budget,
/// and unlimited routes are untouched. Once Redis is back, everything works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_locks_logins_and_fails_route_limits_closed_or_open() {
    use crudauth_core::store::RedisConfig;
    use crudauth_tests::server::RedisServer;

    let mut server = RedisServer::start(&[]);
    let config = RedisConfig::from_url(&server.url())
        .unwrap()
        .namespace(crudauth_tests::app::unique_prefix("outage"))
        .command_timeout(Duration::from_millis(300))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200));
    let users = WatchedUsers::default();
    users.seed("ada@example.com", "ada", PW).await;
    let app = app_with(Backend::Memory, &users, move |b| b.redis(config)).await;
    let mut b = Browser::new();
    assert_eq!(b.post(&app.url("/contact")).await.status, 200);

    server.kill();
    let r = b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert_locked(&r, "60");
    assert_eq!(
        app.auth.passwords().verifications(),
        0,
        "no password evaluated"
    );
    let r = b.post(&app.url("/contact")).await;
    assert_eq!(
        (r.status, r.detail()),
        (503, "Authentication service unavailable")
    );
    let r = b.post(&app.url("/open")).await;
    assert_eq!((r.status, budget(&r)), (200, (Some("5"), Some("5"))));
    assert_eq!(b.get(&app.url("/hello")).await.status, 200);

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = b.post(&app.url("/contact")).await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after restart",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
}

/// Two servers over one Redis and one user table draw every counter from one budget: route
/// limits, and the lockout tripped on one refuses on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_every_counter() {
    let prefix = crudauth_tests::app::unique_prefix("limits");
    let users = WatchedUsers::default();
    users.seed("ada@example.com", "ada", PW).await;
    let worker = |users: WatchedUsers, prefix: String| async move {
        app_with(Backend::Memory, &users, move |b| {
            b.redis_url(crudauth_tests::app::redis_url())
                .redis_prefix(prefix)
        })
        .await
    };
    let a = worker(users.clone(), prefix.clone()).await;
    let b = worker(users.clone(), prefix).await;
    let mut client = Browser::new();
    for (i, app) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let r = client.post(&app.url("/contact")).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some(&*(4 - i).to_string())
        );
    }
    for app in [&b, &a] {
        let r = client.post(&app.url("/contact")).await;
        assert_eq!(r.status, 429);
    }

    for app in [&a, &b, &a, &b, &a] {
        let r = client
            .sign_in(&app.url("/login"), "ada", "wrong", &[])
            .await;
        assert_eq!(r.status, 401);
    }
    let r = client.sign_in(&b.url("/login"), "ada", "wrong", &[]).await;
    assert_locked(&r, "60");
    let r = client.sign_in(&a.url("/login"), "ada", PW, &[]).await;
    assert_locked(&r, "60");
}

macro_rules! all_cases {
    ($backend:expr) => {
        crudauth_tests::per_backend!($backend; contact_reports_the_budget_and_refuses_the_sixth,
            a_budget_of_five_admits_exactly_five_of_64_concurrent_requests,
            x_forwarded_for_is_ignored_without_trusted_hops,
            x_forwarded_for_is_honoured_with_one_trusted_hop, limits_keyed_by_user_header_or_nothing,
            builtin_limits_on_change_password_and_logout_all,
            builtin_limits_on_register_and_csrf_refresh, login_lockout_contract,
            forty_parallel_guesses_for_one_account_evaluate_at_most_five_passwords,
            case_variants_from_different_addresses_share_one_counter,
            a_success_resets_the_accounts_pressure, unknown_usernames_count_against_the_address,
            email_and_username_of_one_account_share_one_counter,
            the_login_lookup_costs_the_same_for_known_and_unknown);
    };
}

mod memory {
    all_cases!(crudauth_tests::app::Backend::Memory);
}

mod redis {
    all_cases!(crudauth_tests::app::Backend::Redis);
}
