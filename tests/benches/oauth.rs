//! What an OAuth callback costs crudauth itself, beside the provider's round trips: its store
//! operations (counted once and printed), the id_token's validation with the JWKS cached
//! (RS256, criterion), and a whole callback against the in-process mock provider (its token
//! and userinfo calls over loopback included).
//!
//! `cargo bench -p crudauth-tests --bench oauth -- --warm-up-time 1 --measurement-time 5`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use criterion::Criterion;
use tower::ServiceExt;

use crudauth_axum::{CrudAuth, RateLimit, SessionTransport};
use crudauth_core::oauth::flow::Flow;
use crudauth_core::oauth::{Authorization, OAuthProvider, OpenIdProvider};
use crudauth_core::store::{FaultyStore, MemoryStore};
use crudauth_core::user::MemoryUsers;
use crudauth_tests::http::Browser;
use crudauth_tests::mock_idp::MockIdp;

const PUBLIC: &str = "http://app.test";

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut req = Request::get(path);
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let mut req = req.body(Body::empty()).expect("a request");
    let peer: SocketAddr = ([203, 0, 113, 9], 4000).into();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

fn location(response: &axum::response::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a redirect")
        .to_owned()
}

/// Authorize on the app and approve at the provider: the callback path and the state cookie.
async fn begin(app: &Router) -> (String, String) {
    let r = app
        .clone()
        .oneshot(get("/oauth/oidc/authorize", None))
        .await
        .expect("infallible");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("oauth_state="))
        .and_then(|v| v.split(';').next())
        .expect("a state cookie")
        .to_owned();
    let mut idp = Browser::no_redirects();
    let back = idp.get(&location(&r)).await;
    let callback = back
        .header("location")
        .expect("approved")
        .replace(PUBLIC, "");
    (callback, cookie)
}

/// A valid id_token and its access token for `flow`, straight from the provider's endpoints.
async fn tokens(idp: &MockIdp, provider: &OpenIdProvider, flow: &Flow) -> (String, String) {
    let redirect_uri = format!("{PUBLIC}/oauth/oidc/callback");
    let url = provider
        .authorization_url(&Authorization {
            state: "bench-state",
            nonce: &flow.nonce,
            pkce_verifier: &flow.pkce_verifier,
            redirect_uri: &redirect_uri,
        })
        .expect("a URL");
    let mut b = Browser::no_redirects();
    let back = b.get(&url).await;
    let location = back.header("location").expect("approved").to_owned();
    let code = form_urlencoded::parse(location.split_once('?').expect("a query").1.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/token", idp.issuer()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &flow.pkce_verifier),
            ("client_id", idp.client_id()),
            ("client_secret", idp.client_secret()),
        ])
        .send()
        .await
        .expect("the token endpoint")
        .json()
        .await
        .expect("tokens");
    let text = |k: &str| answer[k].as_str().expect("a token").to_owned();
    (text("id_token"), text("access_token"))
}

fn oauth(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let idp = rt.block_on(MockIdp::start());
    let provider = || {
        OpenIdProvider::new(idp.issuer(), idp.client_id(), idp.client_secret()).expect("a provider")
    };
    let store = FaultyStore::new(Arc::new(MemoryStore::new()));
    let ops = store.clone();
    let auth = CrudAuth::builder()
        .secret_key([7u8; 32])
        .users(MemoryUsers::new())
        .store(store)
        .session_transport(SessionTransport::default())
        .oauth("oidc", provider())
        .redirect_base_url(PUBLIC)
        // Every iteration starts a flow from one address.
        .rate_limits([(
            "oauth_authorize",
            RateLimit::new(u32::MAX, Duration::from_secs(3600)),
        )])
        .warn_on_memory_backend(false)
        .build()
        .expect("a configuration");
    let guard = rt.block_on(auth.initialize()).expect("initialized");
    let app: Router = auth.router();

    rt.block_on(async {
        let before = ops.calls();
        let (first, cookie) = begin(&app).await;
        let authorize_ops = ops.calls() - before;
        let before = ops.calls();
        let r = app
            .clone()
            .oneshot(get(&first, Some(&cookie)))
            .await
            .expect("infallible");
        assert_eq!(r.status(), 307);
        let created_ops = ops.calls() - before;
        let (again, cookie) = begin(&app).await;
        let before = ops.calls();
        let r = app
            .clone()
            .oneshot(get(&again, Some(&cookie)))
            .await
            .expect("infallible");
        assert_eq!(r.status(), 307);
        let existing_ops = ops.calls() - before;
        println!(
            "authorize: {authorize_ops} store operation(s); callback: {created_ops} for a new \
             account, {existing_ops} for an existing one (the flow taken, the session written)"
        );
    });

    let verifier = provider();
    rt.block_on(verifier.initialize()).expect("initialized");
    let flow = Flow::start("oidc", None, 0);
    let (id_token, access) = rt.block_on(tokens(&idp, &verifier, &flow));
    let mut group = c.benchmark_group("oauth");
    group.bench_function("id_token validation (RS256, JWKS cached)", |b| {
        b.to_async(&rt).iter(|| async {
            verifier
                .validate_id_token(&id_token, &flow.nonce, 0, Some(&access))
                .await
                .expect("valid")
        })
    });
    group.bench_function("callback with the provider on loopback", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let app = app.clone();
            async move {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let (callback, cookie) = begin(&app).await;
                    let started = Instant::now();
                    let r = app
                        .clone()
                        .oneshot(get(&callback, Some(&cookie)))
                        .await
                        .expect("infallible");
                    spent += started.elapsed();
                    assert_eq!(r.status(), 307);
                }
                spent
            }
        })
    });
    group.finish();
    rt.block_on(guard.shutdown());
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    oauth(&mut c);
    c.final_summary();
}
