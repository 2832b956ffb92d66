//! OAuth and OpenID Connect sign-in over HTTP against a mock OpenID provider started in
//! process (discovery, PKCE-checking token endpoint, userinfo, a JWKS with real RSA keys, and
//! one defect at a time): the whole flow, the state single-use and bound to the browser, every
//! id_token defect refused, key rotation and the rate-limited refetch, crudauth's account rules
//! and error codes, open redirects, JSON mode, a flow started on one worker and finished on the
//! other over Redis, a slow provider, two-factor after the provider, GitHub, and start-up checks.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crudauth_axum::{CrudAuth, CrudAuthBuilder, OAuthResponseMode, SessionTransport};
use crudauth_core::clock::{Clock, ManualClock};
use crudauth_core::mfa::fernet::FernetKey;
use crudauth_core::mfa::MfaConfig;
use crudauth_core::oauth::{GitHub, OpenIdProvider};
use crudauth_core::secret::SessionId;
use crudauth_core::user::{
    LoginField, MemoryUsers, PasswordHash, ProviderAccount, ProviderLink, User, UserStore,
    UserUpdate,
};
use crudauth_tests::app::{redis_url, spawn, unique_prefix, Backend, Options, TestApp};
use crudauth_tests::http::{Answer, Body, Browser};
use crudauth_tests::mock_idp::{
    ClientAuth, Defect, GithubEmail, IdpOptions, IdpUser, MockIdp, TokenRequestSeen,
};

/// The app's public base as the providers know it; a test visits the same paths on the real
/// listener.
const PUBLIC: &str = "http://app.test";
const PW: &str = "correct horse battery";

fn oidc(idp: &MockIdp) -> OpenIdProvider {
    OpenIdProvider::new(idp.issuer(), idp.client_id(), idp.client_secret())
        .unwrap()
        .timeout(Duration::from_secs(1))
        .unwrap()
}

/// An app with the mock mounted as `oidc`; `more` changes the builder further.
async fn app_with(
    backend: Backend,
    provider: OpenIdProvider,
    more: impl FnOnce(CrudAuthBuilder) -> CrudAuthBuilder + Send + 'static,
) -> TestApp {
    let mut options = Options::new(backend);
    options.customize = Box::new(move |b: CrudAuthBuilder| {
        more(b.oauth("oidc", provider).redirect_base_url(PUBLIC))
    });
    spawn(options).await
}

async fn oidc_app(idp: &MockIdp) -> TestApp {
    app_with(Backend::Memory, oidc(idp), |b| b).await
}

/// The `Location` of a redirect.
fn location(answer: &Answer) -> String {
    answer
        .header("location")
        .unwrap_or_else(|| panic!("no Location in {} {:?}", answer.status, answer.json))
        .to_owned()
}

/// A query parameter of `url`.
fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.split('#').next()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `/oauth/oidc/authorize` in `b`: the provider URL it redirects to.
async fn authorize(app: &TestApp, b: &mut Browser, redirect_to: &str) -> String {
    let path = format!("/oauth/oidc/authorize?redirect_to={redirect_to}");
    let r = b.get(&app.url(&path)).await;
    assert_eq!(r.status, 307, "{:?}", r.json);
    location(&r)
}

/// The provider approves: the callback path (on the app) it sends the browser to.
async fn approve(provider_url: &str) -> String {
    let mut idp_browser = Browser::no_redirects();
    let r = idp_browser.get(provider_url).await;
    assert!([302, 303].contains(&r.status), "{} {:?}", r.status, r.json);
    let back = location(&r);
    back.strip_prefix(PUBLIC)
        .unwrap_or_else(|| panic!("the provider sent the browser to {back}"))
        .to_owned()
}

/// A whole sign-in in `b`: the callback's answer.
async fn sign_in(app: &TestApp, b: &mut Browser, redirect_to: &str) -> Answer {
    let to_provider = authorize(app, b, redirect_to).await;
    let callback = approve(&to_provider).await;
    b.get(&app.url(&callback)).await
}

/// The error code a failed redirect-mode callback sends the browser back with.
fn error_code(answer: &Answer) -> String {
    assert_eq!(answer.status, 307, "{:?}", answer.json);
    param(&location(answer), "error")
        .unwrap_or_else(|| panic!("no error in {:?}", location(answer)))
}

async fn by_email(users: &MemoryUsers, email: &str) -> Option<User> {
    users.find_by_field(LoginField::Email, email).await.unwrap()
}

async fn me(app: &TestApp, b: &mut Browser) -> Answer {
    b.get(&app.url("/me")).await
}

#[tokio::test]
async fn a_sign_in_creates_a_verified_account_and_a_session() {
    let idp = MockIdp::start().await;
    let app = oidc_app(&idp).await;
    let mut b = Browser::no_redirects();
    let r = b
        .get(&app.url("/oauth/oidc/authorize?redirect_to=/dashboard"))
        .await;
    assert_eq!(r.status, 307);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let state_cookie = r.parsed_cookie("oauth_state").unwrap();
    assert!(state_cookie.flag("HttpOnly"));
    assert_eq!(state_cookie.attr("SameSite"), Some("Lax"));
    assert_eq!(state_cookie.attr("Max-Age"), Some("1800"));
    assert_eq!(state_cookie.attr("Path"), Some("/"));
    let to_provider = location(&r);
    assert!(to_provider.starts_with(&format!("{}/authorize?", idp.issuer())));
    let state = param(&to_provider, "state").unwrap();
    assert_eq!(state, state_cookie.value);
    assert!(state.len() >= 43, "a state of at least 256 bits");
    assert_eq!(
        param(&to_provider, "response_type").as_deref(),
        Some("code")
    );
    assert_eq!(
        param(&to_provider, "client_id").as_deref(),
        Some(idp.client_id())
    );
    assert_eq!(
        param(&to_provider, "redirect_uri").as_deref(),
        Some("http://app.test/oauth/oidc/callback")
    );
    let scope = param(&to_provider, "scope").unwrap();
    assert_eq!(
        scope, "openid profile email",
        "each scope once, openid first"
    );
    assert_eq!(
        param(&to_provider, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        param(&to_provider, "code_challenge").map(|c| c.len()),
        Some(43)
    );
    assert!(param(&to_provider, "nonce").is_some_and(|n| n.len() >= 43));
    assert!(!to_provider.contains("code_verifier"));

    let callback = approve(&to_provider).await;
    let r = b.get(&app.url(&callback)).await;
    assert_eq!(r.status, 307, "{:?}", r.json);
    assert_eq!(location(&r), "/dashboard");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.set_cookie("session_id").is_some() && r.set_cookie("csrf_token").is_some());
    assert_eq!(
        r.parsed_cookie("oauth_state").unwrap().attr("Max-Age"),
        Some("0")
    );
    let seen: Vec<TokenRequestSeen> = idp.token_requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].form.contains_key("code_verifier"));
    assert!(matches!(
        seen[0].client_auth,
        ClientAuth::Basic | ClientAuth::Post
    ));

    let m = me(&app, &mut b).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.json["email"], "ada@example.com");
    assert_eq!(m.json["via"], "session");
    let ada = by_email(&app.users, "ada@example.com").await.unwrap();
    assert!(ada.email_verified && !ada.has_usable_password());
    assert_eq!(
        ada.provider_ids.get("oidc").map(String::as_str),
        Some("mock-user-ada")
    );
    assert_eq!(ada.username.as_deref(), Some("ada"));
    let id = SessionId::from_client(b.cookies["session_id"].clone());
    let session = app
        .auth
        .sessions()
        .unwrap()
        .load(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.record.login_type(), Some("oauth"));
    assert_eq!(session.record.oauth_provider(), Some("oidc"));
    assert_eq!(session.record.token_version, ada.token_version);

    // Again: the same account, and the session rotates (the old one is dead).
    let old = b.cookies["session_id"].clone();
    let r = sign_in(&app, &mut b, "/feed").await;
    assert_eq!(location(&r), "/feed");
    assert_ne!(b.cookies["session_id"], old);
    let mut stale = Browser::no_redirects();
    stale.cookies.insert("session_id".into(), old);
    assert_eq!(me(&app, &mut stale).await.status, 401);
    assert_eq!(me(&app, &mut b).await.json["user_id"], json!(ada.id));
}

#[tokio::test]
async fn the_state_is_single_use_and_bound_to_the_browser() {
    let idp = MockIdp::start().await;
    let app = oidc_app(&idp).await;
    let mut victim = Browser::no_redirects();
    let to_provider = authorize(&app, &mut victim, "/").await;
    let callback = approve(&to_provider).await;
    // A captured callback URL replayed in another browser (login CSRF), with no state cookie
    // and with a state cookie of its own.
    let mut attacker = Browser::no_redirects();
    assert_eq!(
        error_code(&attacker.get(&app.url(&callback)).await),
        "invalid_state"
    );
    authorize(&app, &mut attacker, "/").await;
    let r = attacker.get(&app.url(&callback)).await;
    assert_eq!(error_code(&r), "invalid_state");
    assert!(r.set_cookie("session_id").is_none());
    assert_eq!(
        r.parsed_cookie("oauth_state").unwrap().attr("Max-Age"),
        Some("0")
    );
    // The right browser, once; then the replay fails.
    let saved = victim.cookies.clone();
    assert_eq!(victim.get(&app.url(&callback)).await.status, 307);
    assert_eq!(me(&app, &mut victim).await.status, 200);
    let mut replay = Browser::no_redirects();
    replay.cookies = saved;
    assert_eq!(
        error_code(&replay.get(&app.url(&callback)).await),
        "invalid_state"
    );
    assert_eq!(me(&app, &mut attacker).await.status, 401);
    // A state of one provider cannot finish another's flow, and an unknown one is refused.
    let r = replay
        .get(&app.url("/oauth/nope/callback?code=x&state=y"))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.detail(), "Unknown or unconfigured OAuth provider: 'nope'");
    let r = replay.get(&app.url("/oauth/nope/authorize")).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn concurrent_callbacks_of_one_flow_sign_in_once() {
    let idp = MockIdp::start().await;
    let app = oidc_app(&idp).await;
    let mut b = Browser::no_redirects();
    let callback = approve(&authorize(&app, &mut b, "/").await).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (mut b, url) = (b.clone(), app.url(&callback));
            tokio::spawn(async move { b.get(&url).await.set_cookie("session_id").is_some() })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1, "one callback takes the state");
}

#[tokio::test]
async fn every_defect_of_the_provider_is_oauth_failed_and_creates_nothing() {
    let idp = MockIdp::start().await;
    let app = oidc_app(&idp).await;
    let defects = [
        Defect::AuthorizeError("access_denied".into()),
        Defect::BadSignature,
        Defect::WrongAudience,
        Defect::ExtraAudienceNoAzp,
        Defect::WrongAzp,
        Defect::WrongIssuer,
        Defect::WrongNonce,
        Defect::MissingNonce,
        Defect::Expired,
        Defect::IssuedInFuture,
        Defect::AlgNone,
        Defect::BadAtHash,
        Defect::MissingIdToken,
        Defect::SubMismatch,
        Defect::TokenEndpointStatus(400),
        Defect::TokenEndpointStatus(500),
        Defect::TokenErrorBody200,
        Defect::UserinfoStatus(500),
        Defect::UserinfoStatus(401),
        Defect::WrongIssParameter,
    ];
    for defect in defects {
        idp.clear();
        idp.inject(defect.clone());
        let mut b = Browser::no_redirects();
        let r = sign_in(&app, &mut b, "/dashboard").await;
        assert_eq!(error_code(&r), "oauth_failed", "{defect:?}");
        assert!(
            location(&r).starts_with("http://app.test?error="),
            "{defect:?}"
        );
        assert!(r.set_cookie("session_id").is_none(), "{defect:?}");
        assert_eq!(me(&app, &mut b).await.status, 401, "{defect:?}");
        assert!(
            by_email(&app.users, "ada@example.com").await.is_none(),
            "{defect:?}"
        );
    }
    // And without any: it works.
    idp.clear();
    let mut b = Browser::no_redirects();
    assert_eq!(location(&sign_in(&app, &mut b, "/x").await), "/x");
}

#[tokio::test]
async fn a_malformed_callback_is_oauth_failed() {
    let idp = MockIdp::start().await;
    let app = oidc_app(&idp).await;
    let mut b = Browser::no_redirects();
    authorize(&app, &mut b, "/").await;
    for query in [
        "error=access_denied&state=x",
        "state=x",
        "code=abc",
        "",
        "code=&state=x",
    ] {
        let r = b
            .get(&app.url(&format!("/oauth/oidc/callback?{query}")))
            .await;
        assert_eq!(error_code(&r), "oauth_failed", "{query}");
    }
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_unknown_keys_refetch_at_most_once_a_minute() {
    let idp = MockIdp::start().await;
    let app = oidc_app(&idp).await;
    let fetched = idp.jwks_fetches();
    // The provider rotates: the first token signed by the new key refetches the JWKS.
    idp.rotate_keys();
    let mut b = Browser::no_redirects();
    assert_eq!(location(&sign_in(&app, &mut b, "/ok").await), "/ok");
    assert_eq!(idp.jwks_fetches(), fetched + 1);
    assert_eq!(location(&sign_in(&app, &mut b, "/ok").await), "/ok");
    assert_eq!(
        idp.jwks_fetches(),
        fetched + 1,
        "a known key fetches nothing"
    );

    let idp = MockIdp::start().await;
    let app = oidc_app(&idp).await;
    let fetched = idp.jwks_fetches();
    idp.inject(Defect::UnknownKid);
    for _ in 0..3 {
        let mut b = Browser::no_redirects();
        assert_eq!(
            error_code(&sign_in(&app, &mut b, "/").await),
            "oauth_failed"
        );
    }
    assert_eq!(
        idp.jwks_fetches(),
        fetched + 1,
        "forged kids cost one fetch a minute"
    );
}

#[tokio::test]
async fn unverified_or_missing_emails_are_refused() {
    let idp = MockIdp::start().await;
    let app = oidc_app(&idp).await;
    let cases = [
        (
            Some(Value::Bool(false)),
            Some("eve@example.com"),
            "email_unverified",
        ),
        (
            Some(json!("true")),
            Some("eve@example.com"),
            "email_unverified",
        ),
        (None, Some("eve@example.com"), "email_unverified"),
        (Some(Value::Bool(true)), None, "email_missing"),
    ];
    for (verified, email, code) in cases {
        idp.set_user(IdpUser {
            sub: "eve".into(),
            email: email.map(str::to_owned),
            email_verified: verified.clone(),
            ..IdpUser::default()
        });
        let mut b = Browser::no_redirects();
        assert_eq!(
            error_code(&sign_in(&app, &mut b, "/").await),
            code,
            "{verified:?} {email:?}"
        );
        assert!(by_email(&app.users, "eve@example.com").await.is_none());
    }
}

#[tokio::test]
async fn accounts_are_linked_claimed_or_refused_as_crudauth_does() {
    let idp = MockIdp::start().await;
    let app = oidc_app(&idp).await;
    // A verified password account is linked, and its password still works.
    let ada = app.user("ada@example.com", "ada", PW).await;
    app.users
        .update(
            &ada.id,
            UserUpdate {
                email_verified: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    let mut b = Browser::no_redirects();
    assert_eq!(sign_in(&app, &mut b, "/").await.status, 307);
    assert_eq!(me(&app, &mut b).await.json["user_id"], json!(ada.id));
    let linked = app.users.find_by_id(&ada.id).await.unwrap().unwrap();
    assert_eq!(
        linked.provider_ids.get("oidc").map(String::as_str),
        Some("mock-user-ada")
    );
    assert!(linked.has_usable_password());
    let mut pw = Browser::no_redirects();
    let form = Body::Form(vec![
        ("username".into(), "ada".into()),
        ("password".into(), PW.into()),
    ]);
    assert_eq!(
        pw.send("POST", &app.url("/login"), form, &[]).await.status,
        200
    );

    // An unverified account with the address is claimed: its password and sessions end.
    let squat = app.user("bob@example.com", "bob", PW).await;
    let mut squatter = app.signed_in("bob", PW).await;
    assert_eq!(squatter.get(&app.url("/me")).await.status, 200);
    idp.set_user(IdpUser {
        sub: "bob-at-idp".into(),
        email: Some("Bob@Example.com".into()),
        preferred_username: Some("bob".into()),
        ..IdpUser::default()
    });
    let mut owner = Browser::no_redirects();
    assert_eq!(sign_in(&app, &mut owner, "/").await.status, 307);
    assert_eq!(me(&app, &mut owner).await.json["user_id"], json!(squat.id));
    assert_eq!(
        squatter.get(&app.url("/me")).await.status,
        401,
        "the squatter is signed out"
    );
    let claimed = app.users.find_by_id(&squat.id).await.unwrap().unwrap();
    assert!(claimed.email_verified && !claimed.has_usable_password());
    assert_eq!(claimed.token_version, squat.token_version + 1);
    let form = Body::Form(vec![
        ("username".into(), "bob".into()),
        ("password".into(), PW.into()),
    ]);
    assert_eq!(
        pw.send("POST", &app.url("/login"), form, &[]).await.status,
        401
    );

    // Linked to another account of this provider already: refused, nothing changes.
    let carol = app.user("carol@example.com", "carol", PW).await;
    let link = ProviderLink {
        account: ProviderAccount {
            provider: "oidc".into(),
            subject: "carol-1".into(),
        },
        claim: None,
    };
    app.users.link_provider(&carol.id, &link).await.unwrap();
    app.users
        .update(
            &carol.id,
            UserUpdate {
                email_verified: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    idp.set_user(IdpUser {
        sub: "carol-2".into(),
        email: Some("carol@example.com".into()),
        ..IdpUser::default()
    });
    let mut c = Browser::no_redirects();
    assert_eq!(
        error_code(&sign_in(&app, &mut c, "/").await),
        "provider_already_linked"
    );

    // A disabled account is refused, whether found by provider id or by email, and untouched.
    app.users
        .update(
            &carol.id,
            UserUpdate {
                is_active: Some(false),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    idp.set_user(IdpUser {
        sub: "carol-1".into(),
        email: Some("carol@example.com".into()),
        ..IdpUser::default()
    });
    assert_eq!(
        error_code(&sign_in(&app, &mut c, "/").await),
        "account_inactive"
    );
    let dave = app.user("dave@example.com", "dave", PW).await;
    app.users
        .update(
            &dave.id,
            UserUpdate {
                is_active: Some(false),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    idp.set_user(IdpUser {
        sub: "dave-1".into(),
        email: Some("dave@example.com".into()),
        ..IdpUser::default()
    });
    assert_eq!(
        error_code(&sign_in(&app, &mut c, "/").await),
        "account_inactive"
    );
    let untouched = app.users.find_by_id(&dave.id).await.unwrap().unwrap();
    assert!(untouched.provider_ids.is_empty() && untouched.has_usable_password());

    // A new account whose name is taken gets a numbered one.
    idp.set_user(IdpUser {
        sub: "ada-2".into(),
        email: Some("ada2@example.com".into()),
        preferred_username: Some("Ada".into()),
        ..IdpUser::default()
    });
    assert_eq!(sign_in(&app, &mut c, "/").await.status, 307);
    let ada2 = by_email(&app.users, "ada2@example.com").await.unwrap();
    assert_eq!(ada2.username.as_deref(), Some("ada_1"));
    let _ = PasswordHash::unusable();
}

#[tokio::test]
async fn only_same_origin_paths_are_followed_after_sign_in() {
    let idp = MockIdp::start().await;
    let app = oidc_app(&idp).await;
    for target in [
        "https://evil.example/x",
        "//evil.example",
        "/%5Cevil.example",
        "javascript:alert(1)",
    ] {
        let mut b = Browser::no_redirects();
        let r = sign_in(&app, &mut b, &target.replace('&', "%26")).await;
        assert_eq!(location(&r), PUBLIC, "{target}");
        assert_eq!(me(&app, &mut b).await.status, 200);
    }
}

#[tokio::test]
async fn json_mode_answers_json_and_refuses_cross_site_calls() {
    let idp = MockIdp::start().await;
    let app = app_with(Backend::Memory, oidc(&idp), |b| {
        b.oauth_response_mode(OAuthResponseMode::Json)
    })
    .await;
    let mut b = Browser::no_redirects();
    let r = b
        .get(&app.url("/oauth/oidc/authorize?redirect_to=/app"))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookie("oauth_state").is_some());
    let callback = approve(r.json["url"].as_str().unwrap()).await;
    let cross = b
        .send(
            "GET",
            &app.url(&callback),
            Body::None,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(cross.status, 403);
    let r = b.get(&app.url(&callback)).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["user"]["email"], "ada@example.com");
    assert_eq!(r.json["redirect_to"], "/app");
    assert_eq!(r.json["csrf_token"].as_str(), Some(b.csrf().as_str()));
    let r = b.get(&app.url(&callback)).await;
    assert_eq!(
        (r.status, r.detail()),
        (400, "Invalid or expired OAuth state")
    );
    idp.set_user(IdpUser {
        sub: "x".into(),
        email_verified: Some(Value::Bool(false)),
        ..IdpUser::default()
    });
    let r = b.get(&app.url("/oauth/oidc/authorize")).await;
    let r = b
        .get(&app.url(&approve(r.json["url"].as_str().unwrap()).await))
        .await;
    assert_eq!((r.status, r.detail()), (400, "email_unverified"));
}

#[tokio::test]
async fn a_flow_started_on_one_worker_finishes_on_the_other() {
    let idp = MockIdp::start().await;
    let prefix = unique_prefix("oauth-workers");
    let users = MemoryUsers::new();
    let worker = |users: MemoryUsers, prefix: String, idp: &MockIdp| {
        let provider = oidc(idp);
        let mut options = Options::new(Backend::Memory);
        options.customize = Box::new(move |b: CrudAuthBuilder| {
            b.users(users)
                .redis_url(redis_url())
                .redis_prefix(prefix)
                .oauth("oidc", provider)
                .redirect_base_url(PUBLIC)
        });
        options
    };
    let a = spawn(worker(users.clone(), prefix.clone(), &idp)).await;
    let b_worker = spawn(worker(users.clone(), prefix, &idp)).await;
    let mut b = Browser::no_redirects();
    let callback = approve(&authorize(&a, &mut b, "/dashboard").await).await;
    let saved = b.cookies.clone();
    assert_eq!(
        location(&b.get(&b_worker.url(&callback)).await),
        "/dashboard"
    );
    assert_eq!(me(&a, &mut b).await.status, 200, "the session is shared");
    let mut replay = Browser::no_redirects();
    replay.cookies = saved;
    assert_eq!(
        error_code(&replay.get(&a.url(&callback)).await),
        "invalid_state"
    );
}

#[tokio::test]
async fn a_slow_provider_fails_within_the_timeout() {
    let idp = MockIdp::start().await;
    let app = oidc_app(&idp).await;
    idp.inject(Defect::Slow(Duration::from_secs(5)));
    let mut b = Browser::no_redirects();
    let callback = approve(&authorize(&app, &mut b, "/").await).await;
    let started = Instant::now();
    let r = b.get(&app.url(&callback)).await;
    assert_eq!(error_code(&r), "oauth_failed");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_store_outage_on_the_callback_fails_closed() {
    let idp = MockIdp::start().await;
    let mut redis = crudauth_tests::server::RedisServer::start(&[]);
    let url = redis.url();
    let app = app_with(Backend::Memory, oidc(&idp), move |b| {
        b.redis_url(url).redis_prefix(unique_prefix("oauth-outage"))
    })
    .await;
    let mut b = Browser::no_redirects();
    let callback = approve(&authorize(&app, &mut b, "/").await).await;
    redis.kill();
    let r = b.get(&app.url(&callback)).await;
    assert_eq!(r.status, 503, "{:?}", r.json);
    assert!(by_email(&app.users, "ada@example.com").await.is_none());
    let r = b.get(&app.url("/oauth/oidc/authorize")).await;
    assert_eq!(r.status, 503);
}

#[tokio::test]
async fn two_factor_is_asked_after_the_provider_when_configured() {
    let idp = MockIdp::start().await;
    let clock = Arc::new(ManualClock::new(1_750_000_000_000));
    let c = clock.clone();
    let app = app_with(Backend::Memory, oidc(&idp), move |b| {
        b.clock(c)
            .mfa(MfaConfig::new("tests", [FernetKey::generate()]).oauth(true))
    })
    .await;
    let ada = app.user("ada@example.com", "ada", PW).await;
    app.users
        .update(
            &ada.id,
            UserUpdate {
                email_verified: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    // Enrol by password, as a user would.
    let mut pw = app.signed_in("ada", PW).await;
    let setup = pw
        .post_csrf(
            &app.url("/mfa/totp/setup"),
            Body::Json(json!({"password": PW})),
        )
        .await;
    let secret =
        crudauth_core::mfa::totp::TotpSecret::parse(setup.json["secret"].as_str().unwrap())
            .unwrap();
    let now = || clock.now_millis() / 1000;
    let confirm = pw
        .post_csrf(
            &app.url("/mfa/totp/confirm"),
            Body::Json(json!({"code": secret.code_at(now())})),
        )
        .await;
    assert_eq!(confirm.status, 200, "{:?}", confirm.json);
    clock.advance(Duration::from_secs(30));

    let mut b = Browser::no_redirects();
    let r = sign_in(&app, &mut b, "/dashboard").await;
    assert_eq!(r.status, 307);
    assert!(
        r.set_cookie("session_id").is_none(),
        "no session before the code"
    );
    let target = location(&r);
    let challenge = target
        .strip_prefix("http://app.test#mfa_challenge=")
        .unwrap_or_else(|| panic!("{target}"));
    let r = b
        .send(
            "POST",
            &app.url("/mfa/verify"),
            Body::Json(json!({"challenge": challenge, "code": secret.code_at(now())})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["redirect_to"], "/dashboard");
    let id = SessionId::from_client(b.cookies["session_id"].clone());
    let session = app
        .auth
        .sessions()
        .unwrap()
        .load(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.record.oauth_provider(), Some("oidc"));
    assert_eq!(me(&app, &mut b).await.json["user_id"], json!(ada.id));
}

#[tokio::test]
async fn the_token_endpoint_is_authenticated_as_the_provider_asks() {
    let basic_only = IdpOptions {
        token_endpoint_auth_methods_supported: Some(vec!["client_secret_basic".into()]),
        ..IdpOptions::default()
    };
    for (options, expected) in [
        (IdpOptions::default(), ClientAuth::Post),
        (basic_only, ClientAuth::Basic),
        (IdpOptions::public_client(), ClientAuth::None),
    ] {
        let idp = MockIdp::start_with(options).await;
        let app = oidc_app(&idp).await;
        let mut b = Browser::no_redirects();
        assert_eq!(sign_in(&app, &mut b, "/").await.status, 307);
        assert_eq!(idp.token_requests()[0].client_auth, expected);
        assert_eq!(me(&app, &mut b).await.status, 200);
    }
}

#[tokio::test]
async fn github_signs_in_through_its_api() {
    let idp = MockIdp::start().await;
    let base = idp.github_base();
    let github = GitHub::new(idp.client_id(), idp.client_secret())
        .unwrap()
        .endpoints(
            &format!("{base}/login/oauth/authorize"),
            &format!("{base}/login/oauth/access_token"),
            &base,
        )
        .unwrap();
    let mut options = Options::new(Backend::Memory);
    options.customize =
        Box::new(move |b: CrudAuthBuilder| b.oauth("github", github).redirect_base_url(PUBLIC));
    let app = spawn(options).await;
    let mut b = Browser::no_redirects();
    let r = b
        .get(&app.url("/oauth/github/authorize?redirect_to=/gh"))
        .await;
    let callback = approve(&location(&r)).await;
    let r = b.get(&app.url(&callback)).await;
    assert_eq!(location(&r), "/gh");
    let ada = by_email(&app.users, "ada@example.com").await.unwrap();
    assert_eq!(
        ada.provider_ids.get("github").map(String::as_str),
        Some("1815")
    );
    // An unverified address is refused.
    idp.set_github_emails(vec![GithubEmail {
        email: "zed@example.com".into(),
        primary: true,
        verified: false,
        visibility: None,
    }]);
    let mut other = Browser::no_redirects();
    crudauth_tests::mock_idp::MockIdp::set_github_user(
        &idp,
        crudauth_tests::mock_idp::GithubUser {
            id: 99,
            login: "zed".into(),
            ..Default::default()
        },
    );
    let r = other.get(&app.url("/oauth/github/authorize")).await;
    let r = other.get(&app.url(&approve(&location(&r)).await)).await;
    assert_eq!(error_code(&r), "email_unverified");
}

#[tokio::test]
async fn a_defective_provider_or_configuration_stops_the_start_up() {
    for defect in [
        Defect::DiscoveryWrongIssuer,
        Defect::DiscoveryMissingUserinfo,
    ] {
        let idp = MockIdp::start().await;
        idp.inject(defect.clone());
        let auth = builder()
            .oauth("oidc", oidc(&idp))
            .redirect_base_url(PUBLIC)
            .build()
            .unwrap();
        assert!(auth.initialize().await.is_err(), "{defect:?}");
    }
    let idp = MockIdp::start().await;
    let refused = |b: CrudAuthBuilder| b.build().err().map(|e| e.to_string());
    let no_base = refused(builder().oauth("oidc", oidc(&idp))).unwrap();
    assert!(no_base.contains("redirect_base_url"), "{no_base}");
    let bad_name = refused(
        builder()
            .oauth("Bad-Name", oidc(&idp))
            .redirect_base_url(PUBLIC),
    );
    assert!(bad_name.is_some());
    let no_session = CrudAuth::builder()
        .secret_key([1u8; 32])
        .users(MemoryUsers::new())
        .bearer_transport(crudauth_axum::BearerTransport::default())
        .oauth("oidc", oidc(&idp))
        .redirect_base_url(PUBLIC)
        .build();
    assert!(no_session.err().unwrap().to_string().contains("session"));
    let evil = refused(
        builder()
            .oauth("oidc", oidc(&idp))
            .redirect_base_url(PUBLIC)
            .oauth_default_redirect("//evil.example"),
    );
    assert!(evil.is_some());
}

fn builder() -> CrudAuthBuilder {
    CrudAuth::builder()
        .secret_key([1u8; 32])
        .users(MemoryUsers::new())
        .session_transport(SessionTransport::default())
        .warn_on_memory_backend(false)
}
