//! The `forms` example binary driven over HTTP as a browser without JavaScript would: forms
//! posted urlencoded with their hidden `csrf_token`, redirects (303) checked by hand, pages
//! read by the ids of notes' page map.
//!
//! The binary is built (or found fresh) with `cargo build --example forms` first, as the
//! quickstart's test does.
#![allow(clippy::unwrap_used)]

#[path = "support/example.rs"]
mod example;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crudauth_core::mfa::totp::TotpSecret;
use crudauth_tests::app::unique_prefix;
use crudauth_tests::server::{free_ports, watch};
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};

const PW: &str = "correct horse battery staple";
const NEW_PW: &str = "a brand new horse battery";

fn forms_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| example::example_binary("forms"))
}

/// One running `forms` binary in a scratch directory; both removed when dropped.
struct Server {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Server {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(unique_prefix("forms").replace(':', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_ports(1)[0];
        let child = Command::new(forms_binary())
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CRUDAUTH_BIND", format!("127.0.0.1:{port}"))
            .env("CRUDAUTH_COOKIE_SECURE", "false")
            .env("SECRET_KEY", "f".repeat(64))
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", dir.join("users.db").display()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("forms.log")).unwrap())
            .spawn()
            .unwrap();
        watch(child.id(), &dir);
        let mut server = Self {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the forms binary exited ({status})");
            }
            assert!(Instant::now() < deadline, "the forms binary did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A browser: its own cookie jar and User-Agent, redirects left to the test.
fn browser(agent: &str) -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .user_agent(agent)
        .build()
        .unwrap()
}

/// The value of the first `attr="…"` after `marker` in `html`.
fn attr_after(html: &str, marker: &str, attr: &str) -> Option<String> {
    let rest = &html[html.find(marker)?..];
    let needle = format!("{attr}=\"");
    let start = rest.find(&needle)? + needle.len();
    Some(rest[start..start + rest[start..].find('"')?].to_owned())
}

/// The text inside the element opened by `open` (e.g. `<code id="mfa-secret">`).
fn text_of(html: &str, open: &str) -> Option<String> {
    let start = html.find(open)? + open.len();
    Some(
        html[start..start + html[start..].find('<')?]
            .trim()
            .to_owned(),
    )
}

struct Page {
    status: StatusCode,
    location: String,
    html: String,
}

async fn get(b: &Client, s: &Server, path: &str) -> Page {
    read(b.get(s.url(path)).send().await.unwrap()).await
}

async fn post(b: &Client, s: &Server, path: &str, form: &[(&str, &str)]) -> Page {
    read(b.post(s.url(path)).form(form).send().await.unwrap()).await
}

async fn read(r: reqwest::Response) -> Page {
    let status = r.status();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Page {
        status,
        location,
        html: r.text().await.unwrap(),
    }
}

/// The CSRF token of the page at `path` (from its sign-out form).
async fn token(b: &Client, s: &Server, path: &str) -> String {
    let page = get(b, s, path).await;
    attr_after(&page.html, "name=\"csrf_token\"", "value").unwrap()
}

async fn register(b: &Client, s: &Server, name: &str) {
    let email = format!("{name}@example.com");
    let r = post(
        b,
        s,
        "/register",
        &[("username", name), ("email", &email), ("password", PW)],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.html);
    assert_eq!(r.location, "/dashboard");
}

async fn login(b: &Client, s: &Server, name: &str, password: &str) -> Page {
    post(
        b,
        s,
        "/login",
        &[
            ("username", name),
            ("password", password),
            ("remember_me", "true"),
        ],
    )
    .await
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn forms_pages_register_sign_in_and_manage_the_account() {
    let s = Server::start();
    let ada = browser("FormsTest/1 ada-laptop");

    // Signed out: the home page offers register and sign in, and no OAuth button.
    let home = get(&ada, &s, "/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.html.contains("href=\"/register\"") && home.html.contains("href=\"/login\""));
    assert!(!home.html.contains("oauth-oidc"));
    assert_eq!(get(&ada, &s, "/dashboard").await.location, "/login");

    // Register: signed in, the dashboard shows the flash once.
    register(&ada, &s, "ada").await;
    let dash = get(&ada, &s, "/dashboard").await;
    assert!(dash.html.contains("<span id=\"whoami\">ada</span>"));
    assert!(dash.html.contains("Welcome! Your account is ready."));
    let again = get(&ada, &s, "/dashboard").await;
    assert!(!again.html.contains("Welcome!"), "a flash is shown once");
    assert_eq!(get(&ada, &s, "/").await.location, "/dashboard");

    // A taken user name re-renders the form with the error.
    let other = browser("FormsTest/1 other");
    let taken = post(
        &other,
        &s,
        "/register",
        &[
            ("username", "ada"),
            ("email", "x@example.com"),
            ("password", PW),
        ],
    )
    .await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(taken.html.contains("id=\"error\"") && taken.html.contains("Username already taken"));

    // A POST without the csrf_token is refused and changes nothing.
    let refused = post(
        &ada,
        &s,
        "/password",
        &[("current_password", PW), ("new_password", NEW_PW)],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = post(&ada, &s, "/logout", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(get(&ada, &s, "/dashboard")
        .await
        .html
        .contains("id=\"whoami\""));

    // Sign out, then a wrong password is 401 with #error; the right one signs in.
    let csrf = token(&ada, &s, "/dashboard").await;
    let out = post(&ada, &s, "/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(
        (out.status, out.location.as_str()),
        (StatusCode::SEE_OTHER, "/")
    );
    assert!(get(&ada, &s, "/").await.html.contains("Signed out."));
    let wrong = login(&ada, &s, "ada", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.html.contains("id=\"error\""));
    assert_eq!(login(&ada, &s, "ada", PW).await.location, "/dashboard");

    // Two devices: the list shows both, revoking the phone signs it out.
    let phone = browser("FormsTest/1 ada-phone");
    assert_eq!(login(&phone, &s, "ada", PW).await.location, "/dashboard");
    let devices = get(&ada, &s, "/devices").await;
    assert_eq!(devices.html.matches("<tr class=\"device").count(), 2);
    assert_eq!(devices.html.matches("class=\"device current\"").count(), 1);
    let revoke = attr_after(&devices.html, "class=\"revoke-form\"", "action").unwrap();
    let csrf = attr_after(&devices.html, "name=\"csrf_token\"", "value").unwrap();
    let r = post(&ada, &s, &revoke, &[("csrf_token", &csrf)]).await;
    assert_eq!(r.location, "/devices");
    assert_eq!(get(&phone, &s, "/dashboard").await.location, "/login");
    let devices = get(&ada, &s, "/devices").await;
    assert_eq!(devices.html.matches("<tr class=\"device").count(), 1);

    // Change password: the old one no longer signs in, the new one does.
    let csrf = token(&ada, &s, "/password").await;
    let r = post(
        &ada,
        &s,
        "/password",
        &[
            ("csrf_token", &csrf),
            ("current_password", PW),
            ("new_password", NEW_PW),
        ],
    )
    .await;
    assert_eq!(r.location, "/dashboard", "{}", r.html);
    assert!(get(&ada, &s, "/dashboard")
        .await
        .html
        .contains("Password changed."));
    let stale = browser("FormsTest/1 someone");
    assert_eq!(
        login(&stale, &s, "ada", PW).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&stale, &s, "ada", NEW_PW).await.location,
        "/dashboard"
    );
}

#[tokio::test]
async fn forms_two_factor_enrolment_sign_in_and_sudo() {
    let s = Server::start();
    let bob = browser("FormsTest/1 bob");
    register(&bob, &s, "bob").await;

    let page = get(&bob, &s, "/two-factor").await;
    assert!(page
        .html
        .contains("<strong id=\"mfa-status\">disabled</strong>"));
    let csrf = attr_after(&page.html, "name=\"csrf_token\"", "value").unwrap();
    let setup = post(
        &bob,
        &s,
        "/two-factor/setup",
        &[("csrf_token", &csrf), ("password", PW)],
    )
    .await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.html);
    assert!(setup.html.contains("<svg id=\"mfa-qr\""));
    let secret = text_of(&setup.html, "<code id=\"mfa-secret\">").unwrap();
    let secret = TotpSecret::parse(&secret).unwrap();
    // The step before now: the sign-in below then uses a later step (codes are single-use).
    let wrong = post(
        &bob,
        &s,
        "/two-factor/confirm",
        &[("csrf_token", &csrf), ("code", "000000")],
    )
    .await;
    assert!(wrong.status.is_client_error() && wrong.html.contains("id=\"error\""));
    let confirmed = post(
        &bob,
        &s,
        "/two-factor/confirm",
        &[("csrf_token", &csrf), ("code", &secret.code_at(now() - 30))],
    )
    .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.html);
    let list = &confirmed.html[confirmed.html.find("<ul id=\"recovery-codes\">").unwrap()..];
    let list = &list[..list.find("</ul>").unwrap()];
    let codes: Vec<String> = list
        .split("<li>")
        .skip(1)
        .map(|li| li[..li.find("</li>").unwrap()].to_owned())
        .collect();
    assert!(codes.len() >= 8, "{codes:?}");
    assert!(confirmed.html.contains(">enabled<"));

    // Sign out; signing in now asks for the second factor.
    let csrf = token(&bob, &s, "/dashboard").await;
    post(&bob, &s, "/logout", &[("csrf_token", &csrf)]).await;
    let r = login(&bob, &s, "bob", PW).await;
    assert_eq!(r.location, "/login/two-factor");
    assert_eq!(get(&bob, &s, "/dashboard").await.location, "/login");
    assert!(get(&bob, &s, "/login/two-factor")
        .await
        .html
        .contains("id=\"mfa-form\""));
    let bad = post(&bob, &s, "/login/two-factor", &[("code", "000000")]).await;
    assert!(bad.status.is_client_error() && bad.html.contains("id=\"error\""));
    let r = post(
        &bob,
        &s,
        "/login/two-factor",
        &[("code", &secret.code_at(now()))],
    )
    .await;
    assert_eq!(r.location, "/dashboard", "{}", r.html);
    assert!(get(&bob, &s, "/dashboard")
        .await
        .html
        .contains("id=\"whoami\""));

    // Turning it off needs sudo: first a redirect to the sudo page, then after the password
    // the same form works (with a recovery code).
    let csrf = token(&bob, &s, "/two-factor").await;
    let r = post(
        &bob,
        &s,
        "/two-factor/disable",
        &[("csrf_token", &csrf), ("code", &codes[0])],
    )
    .await;
    assert_eq!(r.location, "/sudo?next=/two-factor");
    let sudo = get(&bob, &s, &r.location).await;
    assert!(sudo.html.contains("id=\"sudo-form\""));
    let wrong = post(
        &bob,
        &s,
        "/sudo",
        &[
            ("csrf_token", &csrf),
            ("password", "nope"),
            ("next", "/two-factor"),
        ],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let r = post(
        &bob,
        &s,
        "/sudo",
        &[
            ("csrf_token", &csrf),
            ("password", PW),
            ("next", "/two-factor"),
        ],
    )
    .await;
    assert_eq!(r.location, "/two-factor", "{}", r.html);
    let csrf = token(&bob, &s, "/two-factor").await;
    let r = post(
        &bob,
        &s,
        "/two-factor/disable",
        &[("csrf_token", &csrf), ("code", &codes[0])],
    )
    .await;
    assert_eq!(r.location, "/two-factor", "{}", r.html);
    let page = get(&bob, &s, "/two-factor").await;
    assert!(page
        .html
        .contains("<strong id=\"mfa-status\">disabled</strong>"));
    assert!(page.html.contains("Two-factor authentication is off."));
}
