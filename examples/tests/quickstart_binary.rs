//! The quickstart binary itself, driven over HTTP as CONTRACT.md's demo tables say: once on
//! in-memory stores, and once as two workers sharing one Redis (a server this test starts and
//! owns), with that Redis stopped and restarted mid-run.
//!
//! The binary is built (or found fresh) with `cargo build --example quickstart` first: `cargo
//! test --test quickstart_binary` alone would not rebuild examples, and a stale binary would be
//! tested.
#![allow(clippy::unwrap_used)]

#[path = "support/example.rs"]
mod example;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crudauth_tests::app::{unique_prefix, wait_for_outbox};
use crudauth_tests::http::{Answer, Body, Browser};
use crudauth_tests::server::{free_ports, watch, RedisServer};
use serde_json::json;

/// The quickstart binary, as `cargo build` reports it (built once per test run).
fn quickstart_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| example::example_binary("quickstart"))
}

/// A scratch directory of the test's own (removed when dropped).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir()
            .join(unique_prefix(&format!("quickstart-{tag}")).replace(':', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn database_url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.0.join("users.db").display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One running quickstart; killed when dropped.
struct Worker {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Worker {
    /// Starts the quickstart on a free port with `env` and waits until it listens.
    fn start(scratch: &Scratch, name: &str, env: &[(&str, String)]) -> Self {
        let port = free_ports(1)[0];
        let log = scratch.0.join(format!("{name}.log"));
        let child = Command::new(quickstart_binary())
            .current_dir(&scratch.0)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CRUDAUTH_BIND", format!("127.0.0.1:{port}"))
            .env("CRUDAUTH_COOKIE_SECURE", "false")
            .env("SECRET_KEY", "q".repeat(64))
            .env("DATABASE_URL", scratch.database_url())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Killed with the test binary even when it is aborted and drops nothing.
        watch(child.id(), &scratch.0);
        let mut worker = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = worker.child.try_wait() {
                panic!("the quickstart exited ({status}): {}", worker.log_text());
            }
            assert!(Instant::now() < deadline, "the quickstart did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        worker
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test if the worker panicked or died.
    fn assert_healthy(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the quickstart died"
        );
        let log = self.log_text();
        assert!(!log.contains("panicked"), "the quickstart panicked:\n{log}");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registers ada (202: the answer is the same whether or not the email was free).
async fn register_ada(browser: &mut Browser, url: &str) {
    let body = json!({"email": "ada@example.com", "username": "ada", "password": "correct horse"});
    let r = browser.send("POST", url, Body::Json(body), &[]).await;
    assert_eq!(r.status, 202, "{r:?}");
}

/// The `Authorization` value for a bearer token ada gets from `token_url` (`/token`).
async fn ada_bearer(token_url: &str) -> String {
    let t = Browser::new()
        .sign_in(token_url, "ada", "correct horse", &[])
        .await;
    assert_eq!(t.status, 200, "{t:?}");
    format!("Bearer {}", t.json["access_token"].as_str().unwrap())
}

fn assert_detail(answer: &Answer, status: u16, detail: &str) {
    assert_eq!(
        (answer.status, answer.detail()),
        (status, detail),
        "{answer:?}"
    );
}

/// `CRUDAUTH_COOKIE_HOST_PREFIX=true`: every cookie is `__Host-…` with the attributes that
/// prefix demands, and the session works under those names.
#[tokio::test(flavor = "multi_thread")]
async fn quickstart_host_prefixed_cookies() {
    let scratch = Scratch::new("host-prefix");
    let mut app = Worker::start(
        &scratch,
        "host-prefix",
        &[
            ("CRUDAUTH_COOKIE_SECURE", "true".into()),
            ("CRUDAUTH_COOKIE_HOST_PREFIX", "true".into()),
        ],
    );
    let mut b = Browser::new();
    register_ada(&mut b, &app.url("/register")).await;
    let r = b
        .sign_in(&app.url("/login"), "ada", "correct horse", &[])
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let token = r.json["csrf_token"].as_str().unwrap().to_owned();
    assert!(r.set_cookie("session_id").is_none(), "{r:?}");
    for name in ["__Host-session_id", "__Host-csrf_token"] {
        let c = r.parsed_cookie(name).unwrap();
        assert_eq!(
            (c.flag("Secure"), c.attr("Path"), c.attr("Domain")),
            (true, Some("/"), None),
            "{}",
            c.line
        );
    }
    assert_eq!(b.get(&app.url("/me")).await.status, 200);
    let r = b
        .send(
            "POST",
            &app.url("/logout"),
            Body::None,
            &[("x-csrf-token", &token)],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(b.get(&app.url("/me")).await.status, 401);
    app.assert_healthy();
}

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_serves_the_demo_contract_on_memory_stores() {
    let scratch = Scratch::new("memory");
    let outbox = scratch.0.join("outbox.jsonl");
    let mut app = Worker::start(
        &scratch,
        "memory",
        &[
            ("CRUDAUTH_OUTBOX", outbox.display().to_string()),
            (
                "CRUDAUTH_ADMIN",
                "root:root@example.com:root-password-1".into(),
            ),
        ],
    );
    let mut anon = Browser::new();
    let hello = anon.get(&app.url("/hello")).await;
    assert_eq!((hello.status, hello.json), (200, json!({"hello": "world"})));

    // Registration sends the verification email.
    register_ada(&mut anon, &app.url("/register")).await;
    let mails = wait_for_outbox(&outbox, 1).await;
    let mail = &mails[0];
    assert_eq!(
        (&mail["to"], &mail["kind"]),
        (&json!("ada@example.com"), &json!("verify_email"))
    );
    assert!(mail["link"]
        .as_str()
        .unwrap()
        .starts_with("http://localhost:3000/verify-email?token="));

    let r = anon
        .sign_in(&app.url("/login"), "ada", "wrong password", &[])
        .await;
    assert_detail(&r, 401, "Incorrect username or password");
    assert_detail(
        &anon.get(&app.url("/dashboard")).await,
        401,
        "Not authenticated",
    );
    assert_eq!(
        anon.get(&app.url("/feed")).await.json,
        json!({"auth": false})
    );

    let mut ada = Browser::new();
    let login = ada
        .sign_in(&app.url("/login"), "ada@example.com", "correct horse", &[])
        .await;
    assert_eq!(login.status, 200, "{login:?}");
    assert_eq!(login.json["csrf_token"].as_str().unwrap(), ada.csrf());
    let id = login.json["id"].clone();
    let dashboard = ada.get(&app.url("/dashboard")).await;
    assert_eq!(
        dashboard.json,
        json!({"user_id": id, "username": "ada", "via": "session"})
    );
    assert_eq!(ada.get(&app.url("/feed")).await.json, json!({"auth": true}));
    assert_detail(
        &ada.get(&app.url("/admin")).await,
        403,
        "Insufficient privileges",
    );
    assert_detail(
        &ada.get(&app.url("/secret")).await,
        403,
        "Recovery factor not verified",
    );
    assert_detail(
        &ada.post(&app.url("/account/settings")).await,
        403,
        "Missing CSRF token",
    );
    let settings = ada
        .post_csrf(&app.url("/account/settings"), Body::None)
        .await;
    assert_eq!((settings.status, settings.json), (200, json!({"ok": true})));
    // Sudo: the sensitive route wants a re-authentication in this session.
    assert_detail(
        &ada.post_csrf(&app.url("/account/sensitive"), Body::None)
            .await,
        403,
        "Re-authentication required.",
    );
    let sudo = ada
        .post_csrf(
            &app.url("/sudo"),
            Body::Json(json!({"password": "correct horse"})),
        )
        .await;
    assert_eq!(sudo.status, 200, "{sudo:?}");
    assert_eq!(sudo.json["expires_in"], json!(300));
    let sensitive = ada
        .post_csrf(&app.url("/account/sensitive"), Body::None)
        .await;
    assert_eq!(
        (sensitive.status, sensitive.json),
        (200, json!({"ok": true}))
    );

    // The verification link from the outbox verifies the address.
    let token = mail["link"]
        .as_str()
        .unwrap()
        .split_once("token=")
        .unwrap()
        .1
        .to_owned();
    let verified = anon
        .send(
            "POST",
            &app.url("/email/verify-confirm"),
            Body::Json(json!({"token": token})),
            &[],
        )
        .await;
    assert_eq!(verified.json, json!({"detail": "Verified successfully."}));
    assert_eq!(ada.get(&app.url("/secret")).await.json, json!({"ok": true}));

    let sessions = ada.get(&app.url("/sessions")).await;
    assert_eq!(sessions.json.as_array().unwrap().len(), 1, "{sessions:?}");
    assert_eq!(sessions.json[0]["current"], json!(true));

    // The superuser from CRUDAUTH_ADMIN, verified at creation.
    let mut root = Browser::new();
    let r = root
        .sign_in(&app.url("/login"), "root", "root-password-1", &[])
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(root.get(&app.url("/admin")).await.json, json!({"ok": true}));
    assert_eq!(
        root.get(&app.url("/secret")).await.json,
        json!({"ok": true})
    );

    // The bearer half: /v1/items takes a bearer token and nothing else.
    let bearer = ada_bearer(&app.url("/token")).await;
    let items = anon
        .get_with(&app.url("/v1/items"), &[("authorization", &bearer)])
        .await;
    assert_eq!((items.status, items.json), (200, json!({"user_id": id})));
    assert_detail(
        &ada.get(&app.url("/v1/items")).await,
        401,
        "Not authenticated",
    );

    // 5 per 60 s per client address.
    for _ in 0..5 {
        let r = anon.post(&app.url("/contact")).await;
        assert_eq!((r.status, r.json), (200, json!({"sent": true})));
    }
    let limited = anon.post(&app.url("/contact")).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert!(limited.header("retry-after").is_some(), "{limited:?}");

    // Unknown paths and methods answer JSON, as crudauth's do.
    assert_detail(&anon.get(&app.url("/nope")).await, 404, "Not Found");
    let wrong_method = anon.get(&app.url("/login")).await;
    assert_detail(&wrong_method, 405, "Method Not Allowed");
    assert_eq!(wrong_method.header("allow"), Some("POST"));

    // A password change ends the user's other sessions and keeps this one.
    let mut other = Browser::new();
    let r = other
        .sign_in(&app.url("/login"), "ada", "correct horse", &[])
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let changed = ada
        .post_csrf(
            &app.url("/change-password"),
            Body::Json(
                json!({"current_password": "correct horse", "new_password": "battery staple"}),
            ),
        )
        .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_detail(
        &other.get(&app.url("/dashboard")).await,
        401,
        "Not authenticated",
    );
    assert_eq!(ada.get(&app.url("/dashboard")).await.status, 200);

    // Logout ends the record: a copy of the cookie is dead too.
    let mut copy = ada.clone();
    assert_eq!(
        ada.post_csrf(&app.url("/logout"), Body::None).await.status,
        200
    );
    assert_detail(
        &copy.get(&app.url("/dashboard")).await,
        401,
        "Not authenticated",
    );
    app.assert_healthy();
}

/// CONTRACT.md's operator edits the `users` table directly: each edit holds from the very next
/// request, for a session and a bearer token alike, with no call into crudauth. The worker
/// caches user rows for 5 s, but reads the SQLite file's change counter on every lookup and
/// forgets them all when it has moved (`UserStore::change_counter`).
#[tokio::test(flavor = "multi_thread")]
async fn an_edit_of_the_users_table_holds_from_the_next_request() {
    let scratch = Scratch::new("edits");
    let mut app = Worker::start(&scratch, "edits", &[]);
    register_ada(&mut Browser::new(), &app.url("/register")).await;
    let mut ada = Browser::new();
    let login = ada
        .sign_in(&app.url("/login"), "ada", "correct horse", &[])
        .await;
    assert_eq!(login.status, 200, "{login:?}");
    let bearer = ada_bearer(&app.url("/token")).await;
    let db = sqlx::SqlitePool::connect(&scratch.database_url())
        .await
        .unwrap();
    let edit = |sql: &'static str| {
        let db = db.clone();
        async move {
            let done = sqlx::query(sql).execute(&db).await.unwrap();
            assert_eq!(done.rows_affected(), 1, "{sql}");
        }
    };
    // Both credentials are in use, so the worker holds ada's row in its cache, before the edits.
    for path in ["/admin", "/secret"] {
        assert_eq!(ada.get(&app.url(path)).await.status, 403, "{path}");
        let r = ada
            .get_with(&app.url(path), &[("authorization", &bearer)])
            .await;
        assert_eq!(r.status, 403, "{path} {r:?}");
    }

    edit("UPDATE users SET is_superuser = 1 WHERE username = 'ada'").await;
    assert_eq!(ada.get(&app.url("/admin")).await.status, 200);
    let r = Browser::new()
        .get_with(&app.url("/admin"), &[("authorization", &bearer)])
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(ada.get(&app.url("/me")).await.json["is_superuser"], true);

    edit("UPDATE users SET is_superuser = 0 WHERE username = 'ada'").await;
    assert_detail(
        &ada.get(&app.url("/admin")).await,
        403,
        "Insufficient privileges",
    );
    let r = Browser::new()
        .get_with(&app.url("/admin"), &[("authorization", &bearer)])
        .await;
    assert_detail(&r, 403, "Insufficient privileges");

    edit("UPDATE users SET email_verified = 1 WHERE username = 'ada'").await;
    assert_eq!(ada.get(&app.url("/secret")).await.status, 200);

    edit("UPDATE users SET is_active = 0 WHERE username = 'ada'").await;
    assert_detail(&ada.get(&app.url("/me")).await, 401, "Not authenticated");
    let r = Browser::new()
        .get_with(&app.url("/me"), &[("authorization", &bearer)])
        .await;
    assert_detail(&r, 401, "Not authenticated");
    app.assert_healthy();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_quickstart_workers_share_one_redis_and_fail_closed_while_it_is_down() {
    let mut redis = RedisServer::start(&[]);
    let scratch = Scratch::new("redis");
    let env = [("REDIS_URL", redis.url())];
    let mut one = Worker::start(&scratch, "one", &env);
    let mut two = Worker::start(&scratch, "two", &env);

    let mut anon = Browser::new();
    register_ada(&mut anon, &one.url("/register")).await;

    // Signed in on one worker, recognised by the other: sessions and CSRF live in Redis.
    let mut ada = Browser::new();
    let login = ada
        .sign_in(&two.url("/login"), "ada", "correct horse", &[])
        .await;
    assert_eq!(login.status, 200, "{login:?}");
    let dashboard = ada.get(&one.url("/dashboard")).await;
    assert_eq!(dashboard.json["via"], json!("session"), "{dashboard:?}");
    let wrong = ada
        .send(
            "POST",
            &two.url("/account/settings"),
            Body::None,
            &[("x-csrf-token", "0".repeat(64).as_str())],
        )
        .await;
    assert_detail(&wrong, 403, "Invalid CSRF token");
    assert_eq!(
        ada.post_csrf(&one.url("/account/settings"), Body::None)
            .await
            .status,
        200
    );
    let sessions = ada.get(&two.url("/sessions")).await;
    assert_eq!(sessions.json.as_array().unwrap().len(), 1, "{sessions:?}");

    // A bearer token minted by one worker works on the other.
    let bearer = ada_bearer(&one.url("/token")).await;
    let items = anon
        .get_with(&two.url("/v1/items"), &[("authorization", &bearer)])
        .await;
    assert_eq!(items.status, 200, "{items:?}");

    // One budget across both workers: 5 per 60 s for this client address.
    for i in 0..5 {
        let worker = if i % 2 == 0 { &one } else { &two };
        assert_eq!(anon.post(&worker.url("/contact")).await.status, 200);
    }
    assert_eq!(anon.post(&one.url("/contact")).await.status, 429);
    assert_eq!(anon.post(&two.url("/contact")).await.status, 429);

    // Redis hangs (the socket stays open, nothing answers): a 503 within the 1 s command
    // timeout, not a hung request; answers come back once it resumes.
    redis.pause();
    let started = Instant::now();
    assert_detail(
        &ada.get(&one.url("/dashboard")).await,
        503,
        "Authentication service unavailable",
    );
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ada.get(&one.url("/dashboard")).await.status != 200 {
        assert!(Instant::now() < deadline, "no answer after Redis resumed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Redis stops: every auth path fails closed, public routes still answer.
    redis.kill();
    let down = "Authentication service unavailable";
    assert_detail(&ada.get(&one.url("/dashboard")).await, 503, down);
    assert_detail(&ada.get(&two.url("/feed")).await, 503, down);
    assert_detail(
        &ada.post_csrf(&one.url("/account/settings"), Body::None)
            .await,
        503,
        down,
    );
    let login = Browser::new()
        .sign_in(&two.url("/login"), "ada", "correct horse", &[])
        .await;
    assert_detail(&login, 429, "Too many login attempts. Try again later.");
    assert_eq!(anon.post(&one.url("/contact")).await.status, 503);
    assert_eq!(anon.get(&two.url("/hello")).await.status, 200);

    // Redis is back (empty: it keeps nothing on disk): both workers reconnect by themselves.
    redis.restart();
    let mut again = Browser::new();
    again
        .sign_in_until_ok(
            &one.url("/login"),
            "ada",
            "correct horse",
            Duration::from_secs(30),
        )
        .await;
    // The other worker reconnects on its own schedule (its backoff): 503 until then.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = again.get(&two.url("/dashboard")).await;
        if r.status != 503 {
            assert_eq!(r.status, 200, "{r:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker two did not reconnect: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_detail(
        &ada.get(&two.url("/dashboard")).await,
        401,
        "Not authenticated",
    );
    one.assert_healthy();
    two.assert_healthy();
}
