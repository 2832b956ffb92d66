//! The server-rendered example (`examples/forms`) in a real browser, the whole journey a person
//! makes, by the page and field ids of its page map: register, the flash and the dashboard,
//! sign out, sign in with remember-me, the device list (a second session from another client
//! appears and is revoked with its button), change password, two-factor enrolment (the code
//! computed from the secret the page shows) with the recovery codes, sign in again through the
//! two-factor page, the sudo prompt, and sign out. No JavaScript on the pages: every step is a
//! form a person fills and submits. A screenshot of each page under
//! `target/browser-screenshots/forms_journey/`.
#![allow(clippy::unwrap_used)]

mod browser;

use std::time::{SystemTime, UNIX_EPOCH};

use crudauth_core::mfa::totp::TotpSecret;

use browser::{Chrome, Example};

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "staple battery horse correct";
const SECOND_DEVICE: &str = "SecondDevice/1.0 (reqwest)";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_journey_in_chromium() {
    let mut app = Example::start("forms", &[]);
    let Some(mut chrome) = Chrome::start("forms_journey").await else {
        return;
    };
    let c = &mut chrome;

    // Signed out, the home page offers registration and sign-in (no OAuth button: no
    // provider is configured).
    c.visit(&app.url("/"), "home").await;
    assert!(c.has("a[href=\"/register\"]").await);
    assert!(c.has("a[href=\"/login\"]").await);
    assert!(!c.has("a#oauth-oidc").await);

    // Register: signed in at once, on the dashboard with a flash.
    c.visit(&app.url("/register"), "register").await;
    let fields = [
        ("username", "ada"),
        ("email", "ada@example.com"),
        ("password", PASSWORD),
    ];
    c.submit("form#register-form", &fields, "registered").await;
    assert_eq!(c.path().await, "/dashboard", "{}", c.text("body").await);
    assert!(!c.text("ul#flash li.flash").await.is_empty(), "no flash");
    assert!(c.text("#whoami").await.contains("ada"));
    for link in ["/devices", "/password", "/two-factor"] {
        assert!(
            c.has(&format!("a[href^=\"{link}\"]")).await,
            "no link to {link}"
        );
    }

    // The flash is read once.
    c.visit(&app.url("/dashboard"), "dashboard").await;
    assert_eq!(c.text("ul#flash li.flash").await, "");

    // Registering the name again is refused on the same page.
    sign_out(c).await;
    c.visit(&app.url("/register"), "register-again").await;
    let again = [
        ("username", "ada"),
        ("email", "ada2@example.com"),
        ("password", PASSWORD),
    ];
    c.submit("form#register-form", &again, "register-taken")
        .await;
    assert_eq!(c.path().await, "/register");
    assert!(!c.text("#error").await.is_empty(), "no #error");

    // Sign in with remember-me: a persistent session cookie.
    c.visit(&app.url("/login"), "login").await;
    c.type_into("form#login-form", "username", "ada").await;
    c.type_into("form#login-form", "password", PASSWORD).await;
    let remember = c.find("form#login-form [name=\"remember_me\"]").await;
    remember.click().await.unwrap();
    c.submit("form#login-form", &[], "signed-in-remembered")
        .await;
    assert_eq!(c.path().await, "/dashboard", "{}", c.text("body").await);
    let session = c.cookie("session_id").await.expect("a session cookie");
    assert!(
        session.expires_datetime().is_some(),
        "remember-me gave a session cookie without an expiry"
    );

    // A second device signs in through the same form, outside the browser.
    let second = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(SECOND_DEVICE)
        .build()
        .unwrap();
    let r = second
        .post(app.direct_url("/login"))
        .form(&[("username", "ada"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    let dashboard = second
        .get(app.direct_url("/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 200);

    // It is on the device list, and its revoke button ends it.
    c.visit(&app.url("/devices"), "devices").await;
    assert_eq!(c.find_all("table#devices tr.device").await.len(), 2);
    assert_eq!(c.find_all("table#devices tr.device.current").await.len(), 1);
    assert!(!c.has("tr.device.current form.revoke-form").await);
    let revoke = c
        .find("tr.device:not(.current) form.revoke-form button, tr.device:not(.current) form.revoke-form input[type=submit]")
        .await;
    c.click_and_wait(&revoke, "device-revoked").await;
    assert!(!c.text("ul#flash li.flash").await.is_empty(), "no flash");
    c.visit(&app.url("/devices"), "devices-after").await;
    assert_eq!(c.find_all("table#devices tr.device").await.len(), 1);
    assert_eq!(c.find_all("table#devices tr.device.current").await.len(), 1);
    let dashboard = second
        .get(app.direct_url("/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 303, "the revoked session still works");

    // Change password: a wrong current one is refused, the right one works.
    c.visit(&app.url("/password"), "password").await;
    let wrong = [
        ("current_password", "not my password"),
        ("new_password", NEW_PASSWORD),
    ];
    c.submit("form#password-form", &wrong, "password-wrong")
        .await;
    assert!(!c.text("#error").await.is_empty(), "no #error");
    let right = [
        ("current_password", PASSWORD),
        ("new_password", NEW_PASSWORD),
    ];
    c.submit("form#password-form", &right, "password-changed")
        .await;
    assert_eq!(c.path().await, "/dashboard", "{}", c.text("body").await);
    assert!(!c.text("ul#flash li.flash").await.is_empty(), "no flash");

    // Two-factor enrolment: the QR code, the secret, a code from it, the recovery codes.
    c.visit(&app.url("/two-factor"), "two-factor").await;
    assert_eq!(c.text("#mfa-status").await.trim(), "disabled");
    start_setup(c, &app).await;
    assert!(c.has("svg#mfa-qr").await, "no QR code");
    let secret = c.text("code#mfa-secret").await;
    let secret = TotpSecret::parse(&secret).expect("a base32 secret on the page");
    // The previous step's code (accepted): sign-in below then uses a later step, as a TOTP
    // step counts once and only forwards.
    let code = secret.code_at(now() - 30);
    c.submit(
        "form#mfa-confirm-form",
        &[("code", &code)],
        "recovery-codes",
    )
    .await;
    let codes = c.find_all("ul#recovery-codes li").await;
    assert_eq!(codes.len(), 10, "{}", c.text("body").await);
    c.visit(&app.url("/two-factor"), "two-factor-enabled").await;
    assert_eq!(c.text("#mfa-status").await.trim(), "enabled");
    assert!(c.has("form#mfa-disable-form").await);

    // Sign out, and back in: the old password is dead, the new one leads to the two-factor
    // page, and the current code to the dashboard.
    sign_out(c).await;
    c.visit(&app.url("/login"), "login-again").await;
    let old = [("username", "ada"), ("password", PASSWORD)];
    c.submit("form#login-form", &old, "login-old-password")
        .await;
    assert_eq!(c.path().await, "/login");
    assert!(!c.text("#error").await.is_empty(), "no #error");
    let new = [("username", "ada"), ("password", NEW_PASSWORD)];
    c.submit("form#login-form", &new, "two-factor-prompt").await;
    assert_eq!(
        c.path().await,
        "/login/two-factor",
        "{}",
        c.text("body").await
    );
    let code = secret.code_at(now());
    c.submit("form#mfa-form", &[("code", &code)], "signed-in-two-factor")
        .await;
    assert_eq!(c.path().await, "/dashboard", "{}", c.text("body").await);
    assert!(c.text("#whoami").await.contains("ada"));

    // The sudo prompt: the password again, then on to `next`.
    c.visit(&app.url("/sudo?next=/devices"), "sudo").await;
    c.submit(
        "form#sudo-form",
        &[("password", NEW_PASSWORD)],
        "after-sudo",
    )
    .await;
    assert_eq!(c.path().await, "/devices", "{}", c.text("body").await);

    // Sign out: home with the flash, and the dashboard is closed again.
    sign_out(c).await;
    c.visit(&app.url("/dashboard"), "dashboard-signed-out")
        .await;
    assert_eq!(c.path().await, "/login");
    assert!(c.cookie("session_id").await.is_none());

    chrome.finish().await;
    app.assert_healthy();
}

/// Submits the sign-out form of the current page: home, with the "Signed out." flash.
async fn sign_out(c: &mut Chrome) {
    c.submit("form#logout-form", &[], "signed-out").await;
    assert_eq!(c.path().await, "/");
    assert!(c.text("ul#flash").await.contains("Signed out."));
}

/// Starts two-factor setup from `/two-factor` (with the password when the form asks for it,
/// and through the sudo prompt if the example sends there first).
async fn start_setup(c: &mut Chrome, app: &Example) {
    let form = "form#mfa-setup-form";
    let password = [("password", NEW_PASSWORD)];
    let fields: &[(&str, &str)] = if c.has(&format!("{form} [name=\"password\"]")).await {
        &password
    } else {
        &[]
    };
    c.submit(form, fields, "two-factor-setup").await;
    if c.path().await == "/sudo" {
        c.submit("form#sudo-form", &password, "two-factor-sudo")
            .await;
        if !c.has("code#mfa-secret").await {
            c.visit(&app.url("/two-factor"), "two-factor").await;
            c.submit(form, fields, "two-factor-setup").await;
        }
    }
}
