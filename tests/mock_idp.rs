//! The mock identity provider itself (tests/support/mock_idp.rs): that it speaks OpenID
//! Connect, OAuth 2.0, PKCE and RFC 9207 correctly, GitHub's way too, and that every defect it
//! can inject really is in what it answers.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crudauth_tests::mock_idp::{
    at_hash, s256_challenge, ClientAuth, Defect, GithubEmail, GithubUser, IdpOptions, IdpUser,
    MockIdp, KID_1, KID_2, OTHER_AUDIENCE, OTHER_ISSUER,
};

const REDIRECT: &str = "http://127.0.0.1:3000/auth/oidc/callback";

/// A client that does not follow redirects, so a test sees the authorization response.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A fresh PKCE verifier (43 characters) and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = s256_challenge(&verifier);
    (verifier, challenge)
}

/// The query of a URL as a map.
fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// One answer: status, headers, body as JSON (`Null` if it is not) and as text.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    json: Value,
    text: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Answer {
        status,
        headers,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// A GET of `/authorize` with the usual parameters, `changes` applied (an empty value removes
/// a parameter).
async fn authorize(idp: &MockIdp, challenge: &str, changes: &[(&str, &str)]) -> Answer {
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", idp.client_id()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email profile"),
        ("state", "state-123"),
        ("nonce", "nonce-456"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (name, value) in changes {
        params.retain(|(k, _)| k != name);
        if !value.is_empty() {
            params.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    answer(
        http()
            .get(format!("{}/authorize", idp.issuer()))
            .query(&params),
    )
    .await
}

/// The code of a successful authorization.
async fn code_for(idp: &MockIdp, challenge: &str) -> String {
    let r = authorize(idp, challenge, &[]).await;
    assert_eq!(r.status, 302, "{}", r.text);
    let location = query_of(r.header("location").unwrap());
    location["code"].clone()
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// How a token request authenticates the client.
#[derive(Clone, Copy)]
enum Auth {
    Basic,
    Post,
    IdOnly,
}

/// A token request for `code`, with `fields` added.
async fn redeem_with(
    idp: &MockIdp,
    auth: Auth,
    code: &str,
    verifier: &str,
    fields: &[(&str, &str)],
) -> Answer {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    form.extend_from_slice(fields);
    let mut request = http().post(format!("{}/token", idp.issuer()));
    match auth {
        Auth::Basic => {
            request = request.header("authorization", basic(idp.client_id(), idp.client_secret()))
        }
        Auth::Post => {
            form.extend([
                ("client_id", idp.client_id()),
                ("client_secret", idp.client_secret()),
            ]);
        }
        Auth::IdOnly => form.push(("client_id", idp.client_id())),
    }
    answer(request.form(&form)).await
}

async fn redeem(idp: &MockIdp, code: &str, verifier: &str) -> Answer {
    redeem_with(idp, Auth::Basic, code, verifier, &[]).await
}

/// A whole sign-in; the token response.
async fn sign_in(idp: &MockIdp) -> Value {
    let (verifier, challenge) = pkce();
    let code = code_for(idp, &challenge).await;
    let r = redeem(idp, &code, &verifier).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

/// A JWT's header or claims (part 0 or 1), unverified.
fn part(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn jwks(idp: &MockIdp) -> Vec<Value> {
    let r = answer(http().get(format!("{}/jwks", idp.issuer()))).await;
    assert_eq!(r.status, 200);
    r.json["keys"].as_array().unwrap().clone()
}

/// Verifies an id_token as a client must: RS256 with the JWKS key its `kid` names, `iss`,
/// `aud`, `exp`.
async fn verify(idp: &MockIdp, token: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    let kid = header.kid.ok_or("no kid")?;
    let keys = jwks(idp).await;
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[idp.client_id()]);
    validation.set_issuer(&[idp.issuer()]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| format!("{:?}", e.kind()))
}

#[tokio::test]
async fn discovery_names_every_endpoint_under_the_issuer() {
    let idp = MockIdp::start_with(IdpOptions {
        issuer_path: "realms/demo/".into(),
        ..IdpOptions::default()
    })
    .await;
    let issuer = idp.issuer().to_owned();
    assert!(issuer.starts_with("http://127.0.0.1:") && issuer.ends_with("/realms/demo"));
    let doc = answer(http().get(idp.discovery_url())).await;
    assert_eq!(doc.status, 200);
    let doc = doc.json;
    assert_eq!(doc["issuer"], issuer.as_str());
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
    ] {
        assert_eq!(doc[field], format!("{issuer}{path}"), "{field}");
    }
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["subject_types_supported"], json!(["public"]));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert!(doc["scopes_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("openid")));
    assert!(doc["claims_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("email_verified")));
    // Every endpoint it names answers there.
    let keys = answer(http().get(doc["jwks_uri"].as_str().unwrap())).await;
    assert_eq!(keys.json["keys"][0]["kid"], KID_1);
    let (verifier, challenge) = pkce();
    let code = code_for(&idp, &challenge).await;
    assert_eq!(redeem(&idp, &code, &verifier).await.status, 200);

    let bare = MockIdp::start_with(IdpOptions {
        token_endpoint_auth_methods_supported: None,
        iss_parameter_supported: false,
        ..IdpOptions::default()
    })
    .await;
    let doc = answer(http().get(bare.discovery_url())).await.json;
    assert!(doc.get("token_endpoint_auth_methods_supported").is_none());
    assert_eq!(doc["authorization_response_iss_parameter_supported"], false);
    let r = authorize(&bare, &pkce().1, &[]).await;
    assert!(!query_of(r.header("location").unwrap()).contains_key("iss"));
}

#[tokio::test]
async fn the_code_flow_with_pkce_gives_an_id_token_that_verifies() {
    let idp = MockIdp::start().await;
    let (verifier, challenge) = pkce();
    let r = authorize(&idp, &challenge, &[]).await;
    assert_eq!(r.status, 302, "{}", r.text);
    let location = r.header("location").unwrap();
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    let back = query_of(location);
    assert_eq!(back["state"], "state-123");
    assert_eq!(back["iss"], idp.issuer(), "RFC 9207");
    let seen = idp.authorize_requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["code_challenge"], challenge);
    assert_eq!(seen[0]["nonce"], "nonce-456");

    let r = redeem(&idp, &back["code"], &verifier).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let tokens = r.json;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], "openid email profile");
    let access = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let header = part(id_token, 0);
    assert_eq!(
        (header["alg"].as_str(), header["kid"].as_str()),
        (Some("RS256"), Some(KID_1))
    );

    let claims = verify(&idp, id_token).await.unwrap();
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["aud"], idp.client_id());
    assert_eq!(claims["sub"], "mock-user-ada");
    assert_eq!(claims["nonce"], "nonce-456");
    assert_eq!(claims["at_hash"], at_hash(access));
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["preferred_username"], "ada");
    assert!(claims.get("azp").is_none());
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(iat.abs_diff(now()) <= 2 && exp == iat + 300);
    assert!(claims["auth_time"].as_u64().unwrap() <= iat);
    assert_eq!(idp.jwks_fetches(), 1);

    let seen = idp.token_requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].client_auth, ClientAuth::Basic);
    assert_eq!(seen[0].form["code_verifier"], verifier);

    let userinfo = format!("{}/userinfo", idp.issuer());
    let r = answer(http().get(&userinfo).bearer_auth(access)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["sub"], claims["sub"]);
    assert_eq!(r.json["picture"], "https://images.example/ada.png");
    assert_eq!(r.json["given_name"], "Ada");
    let r = answer(http().get(&userinfo)).await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let r = answer(http().get(&userinfo).bearer_auth("not-a-token")).await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
}

#[tokio::test]
async fn scopes_decide_the_claims_and_openid_the_id_token() {
    let idp = MockIdp::start().await;
    idp.set_user(IdpUser {
        sub: "u-2".into(),
        email: Some("bob@example.com".into()),
        email_verified: Some(json!("true")),
        name: None,
        ..IdpUser::default()
    });
    let (verifier, challenge) = pkce();
    let r = authorize(&idp, &challenge, &[("scope", "openid email")]).await;
    let code = query_of(r.header("location").unwrap())["code"].clone();
    let tokens = redeem(&idp, &code, &verifier).await.json;
    assert_eq!(tokens["scope"], "openid email");
    let claims = part(tokens["id_token"].as_str().unwrap(), 1);
    assert_eq!(claims["sub"], "u-2");
    assert_eq!(claims["email_verified"], "true", "sent as the test set it");
    assert!(
        claims.get("preferred_username").is_none(),
        "no profile scope"
    );

    let (verifier, challenge) = pkce();
    let r = authorize(&idp, &challenge, &[("scope", "email"), ("nonce", "")]).await;
    let code = query_of(r.header("location").unwrap())["code"].clone();
    let tokens = redeem(&idp, &code, &verifier).await.json;
    assert!(
        tokens.get("id_token").is_none(),
        "no openid scope, no id_token"
    );
    assert!(tokens["access_token"].is_string());
}

#[tokio::test]
async fn a_code_redeems_once_and_coming_again_revokes_its_token() {
    let idp = MockIdp::start().await;
    let (verifier, challenge) = pkce();
    let code = code_for(&idp, &challenge).await;
    let first = redeem(&idp, &code, &verifier).await;
    assert_eq!(first.status, 200);
    let again = redeem(&idp, &code, &verifier).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json["error"], "invalid_grant");
    let access = first.json["access_token"].as_str().unwrap();
    let r = answer(
        http()
            .get(format!("{}/userinfo", idp.issuer()))
            .bearer_auth(access),
    )
    .await;
    assert_eq!(r.status, 401, "the first redemption's token is revoked");
}

#[tokio::test]
async fn a_wrong_verifier_or_redirect_uri_is_refused() {
    let idp = MockIdp::start().await;
    let (_, challenge) = pkce();
    let (other_verifier, _) = pkce();
    let code = code_for(&idp, &challenge).await;
    let r = redeem(&idp, &code, &other_verifier).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let (verifier, challenge) = pkce();
    let code = code_for(&idp, &challenge).await;
    let r = redeem_with(&idp, Auth::Basic, &code, &verifier, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let (verifier, challenge) = pkce();
    let code = code_for(&idp, &challenge).await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:3000/elsewhere"),
        ("code_verifier", verifier.as_str()),
    ];
    let request = http()
        .post(format!("{}/token", idp.issuer()))
        .header("authorization", basic(idp.client_id(), idp.client_secret()));
    let r = answer(request.form(&form)).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    form.retain(|(k, _)| *k != "code_verifier");
    let request = http()
        .post(format!("{}/token", idp.issuer()))
        .header("authorization", basic(idp.client_id(), idp.client_secret()));
    let r = answer(request.form(&form)).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let r = redeem_with(&idp, Auth::Basic, "x", "y", &[("grant_type", "password")]).await;
    assert_eq!(r.status, 400, "a repeated grant_type: {}", r.text);
}

#[tokio::test]
async fn authorize_refuses_faulty_requests_without_redirecting() {
    let idp = MockIdp::start_with(IdpOptions {
        redirect_uris: Some(vec![REDIRECT.to_owned()]),
        ..IdpOptions::default()
    })
    .await;
    let (_, challenge) = pkce();
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("unknown client", &[("client_id", "someone-else")]),
        ("no redirect_uri", &[("redirect_uri", "")]),
        (
            "unregistered redirect_uri",
            &[("redirect_uri", "http://127.0.0.1:3000/other")],
        ),
        (
            "a fragment",
            &[("redirect_uri", "http://127.0.0.1:3000/cb#x")],
        ),
        ("response_type token", &[("response_type", "token")]),
        ("no state", &[("state", "")]),
        ("no challenge", &[("code_challenge", "")]),
        ("plain method", &[("code_challenge_method", "plain")]),
        ("no method", &[("code_challenge_method", "")]),
        ("a short challenge", &[("code_challenge", "abc")]),
        ("response_mode fragment", &[("response_mode", "fragment")]),
    ];
    for (why, changes) in cases {
        let r = authorize(&idp, &challenge, changes).await;
        assert_eq!(r.status, 400, "{why}: {}", r.text);
        assert!(r.header("location").is_none(), "{why}");
        assert!(!r.text.is_empty(), "{why}: says what is wrong");
    }
    let twice = format!(
        "{}/authorize?response_type=code&client_id={}&client_id={}",
        idp.issuer(),
        idp.client_id(),
        idp.client_id()
    );
    assert_eq!(
        answer(http().get(twice)).await.status,
        400,
        "a repeated parameter"
    );
    assert_eq!(
        idp.authorize_requests().len(),
        cases.len() + 1,
        "every one recorded"
    );
    assert_eq!(authorize(&idp, &challenge, &[]).await.status, 302);
}

#[tokio::test]
async fn basic_and_post_client_authentication_are_both_accepted_when_advertised() {
    let idp = MockIdp::start_with(IdpOptions {
        client_secret: "s3cr:t+&/= é".into(),
        ..IdpOptions::default()
    })
    .await;
    for auth in [Auth::Basic, Auth::Post] {
        let (verifier, challenge) = pkce();
        let code = code_for(&idp, &challenge).await;
        let r = redeem_with(&idp, auth, &code, &verifier, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let seen: Vec<ClientAuth> = idp.token_requests().iter().map(|t| t.client_auth).collect();
    assert_eq!(seen, [ClientAuth::Basic, ClientAuth::Post]);

    let (verifier, challenge) = pkce();
    let code = code_for(&idp, &challenge).await;
    let r = redeem_with(&idp, Auth::IdOnly, &code, &verifier, &[]).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (401, Some("invalid_client"))
    );

    let r = redeem_with(
        &idp,
        Auth::Basic,
        &code,
        &verifier,
        &[("client_secret", idp.client_secret())],
    )
    .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(
        idp.token_requests().last().unwrap().client_auth,
        ClientAuth::Several
    );

    let request = http()
        .post(format!("{}/token", idp.issuer()))
        .header("authorization", basic(idp.client_id(), "wrong"))
        .form(&[("grant_type", "authorization_code"), ("code", &code)]);
    let r = answer(request).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
}

#[tokio::test]
async fn a_method_not_advertised_is_refused() {
    let idp = MockIdp::start_with(IdpOptions {
        token_endpoint_auth_methods_supported: Some(vec!["client_secret_post".into()]),
        ..IdpOptions::default()
    })
    .await;
    let (verifier, challenge) = pkce();
    let code = code_for(&idp, &challenge).await;
    let r = redeem_with(&idp, Auth::Basic, &code, &verifier, &[]).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (verifier, challenge) = pkce();
    let code = code_for(&idp, &challenge).await;
    assert_eq!(
        redeem_with(&idp, Auth::Post, &code, &verifier, &[])
            .await
            .status,
        200
    );

    let public = MockIdp::start_with(IdpOptions::public_client()).await;
    assert_eq!(public.client_secret(), "");
    let doc = answer(http().get(public.discovery_url())).await.json;
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["none"])
    );
    let (verifier, challenge) = pkce();
    let code = code_for(&public, &challenge).await;
    let r = redeem_with(&public, Auth::IdOnly, &code, &verifier, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(public.token_requests()[0].client_auth, ClientAuth::None);
}

#[tokio::test]
async fn each_id_token_defect_is_really_in_the_token() {
    let idp = MockIdp::start().await;
    let sign_in_with = |defect: Defect| {
        let idp = idp.clone();
        async move {
            idp.clear();
            idp.inject(defect);
            let tokens = sign_in(&idp).await;
            idp.clear();
            tokens
        }
    };
    let id_token = |tokens: &Value| tokens["id_token"].as_str().unwrap().to_owned();

    let t = id_token(&sign_in_with(Defect::BadSignature).await);
    assert_eq!(
        verify(&idp, &t).await.unwrap_err(),
        format!("{:?}", ErrorKind::InvalidSignature)
    );
    assert_eq!(
        part(&t, 1)["aud"],
        idp.client_id(),
        "only the signature is wrong"
    );

    let t = id_token(&sign_in_with(Defect::WrongAudience).await);
    assert_eq!(part(&t, 1)["aud"], OTHER_AUDIENCE);
    assert_eq!(
        verify(&idp, &t).await.unwrap_err(),
        format!("{:?}", ErrorKind::InvalidAudience)
    );

    let t = id_token(&sign_in_with(Defect::ExtraAudienceNoAzp).await);
    assert_eq!(part(&t, 1)["aud"], json!([idp.client_id(), OTHER_AUDIENCE]));
    assert!(part(&t, 1).get("azp").is_none());
    verify(&idp, &t).await.unwrap();

    let t = id_token(&sign_in_with(Defect::WrongAzp).await);
    assert_eq!(part(&t, 1)["aud"], json!([idp.client_id(), OTHER_AUDIENCE]));
    assert_eq!(part(&t, 1)["azp"], OTHER_AUDIENCE);

    let t = id_token(&sign_in_with(Defect::WrongIssuer).await);
    assert_eq!(part(&t, 1)["iss"], OTHER_ISSUER);
    assert_eq!(
        verify(&idp, &t).await.unwrap_err(),
        format!("{:?}", ErrorKind::InvalidIssuer)
    );

    let t = id_token(&sign_in_with(Defect::WrongNonce).await);
    assert_ne!(part(&t, 1)["nonce"], "nonce-456");
    assert!(part(&t, 1)["nonce"].is_string());

    let t = id_token(&sign_in_with(Defect::MissingNonce).await);
    assert!(part(&t, 1).get("nonce").is_none());

    let t = id_token(&sign_in_with(Defect::Expired).await);
    assert!(part(&t, 1)["exp"].as_u64().unwrap() + 500 < now());
    assert_eq!(
        verify(&idp, &t).await.unwrap_err(),
        format!("{:?}", ErrorKind::ExpiredSignature)
    );

    let t = id_token(&sign_in_with(Defect::IssuedInFuture).await);
    let claims = part(&t, 1);
    assert!(claims["iat"].as_u64().unwrap() >= now() + 590);
    assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());

    let t = id_token(&sign_in_with(Defect::AlgNone).await);
    assert_eq!(part(&t, 0)["alg"], "none");
    assert!(t.ends_with('.'), "no signature: {t}");
    assert_eq!(part(&t, 1)["aud"], idp.client_id());

    let tokens = sign_in_with(Defect::BadAtHash).await;
    let t = id_token(&tokens);
    assert_ne!(
        part(&t, 1)["at_hash"],
        at_hash(tokens["access_token"].as_str().unwrap())
    );
    verify(&idp, &t).await.unwrap();

    let tokens = sign_in_with(Defect::MissingIdToken).await;
    assert!(tokens.get("id_token").is_none());
    assert!(tokens["access_token"].is_string());

    let t = id_token(&sign_in(&idp).await);
    verify(&idp, &t).await.unwrap();
}

#[tokio::test]
async fn an_unknown_kid_becomes_known_once_the_keys_rotate() {
    let idp = MockIdp::start().await;
    idp.inject(Defect::UnknownKid);
    let t = sign_in(&idp).await["id_token"].as_str().unwrap().to_owned();
    assert_eq!(part(&t, 0)["kid"], KID_2);
    let published: Vec<Value> = jwks(&idp).await.iter().map(|k| k["kid"].clone()).collect();
    assert_eq!(published, [json!(KID_1)]);
    assert_eq!(
        verify(&idp, &t).await.unwrap_err(),
        format!("kid {KID_2} is not in the JWKS")
    );

    idp.rotate_keys();
    verify(&idp, &t).await.unwrap();
    idp.clear();
    let t = sign_in(&idp).await["id_token"].as_str().unwrap().to_owned();
    assert_eq!(part(&t, 0)["kid"], KID_2, "signs with key 2 from now on");
    let keys = jwks(&idp).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], KID_2);
    assert_eq!(
        (keys[0]["kty"].as_str(), keys[0]["use"].as_str()),
        (Some("RSA"), Some("sig"))
    );
    verify(&idp, &t).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 5);
}

#[tokio::test]
async fn endpoint_defects_show_in_the_answers() {
    let idp = MockIdp::start().await;

    idp.inject(Defect::AuthorizeError("access_denied".into()));
    let r = authorize(&idp, &pkce().1, &[]).await;
    assert_eq!(r.status, 302);
    let back = query_of(r.header("location").unwrap());
    assert_eq!(back["error"], "access_denied");
    assert_eq!(back["state"], "state-123");
    assert_eq!(back["iss"], idp.issuer());
    assert!(!back.contains_key("code"));
    idp.clear();

    idp.inject(Defect::WrongIssParameter);
    let r = authorize(&idp, &pkce().1, &[]).await;
    assert_eq!(query_of(r.header("location").unwrap())["iss"], OTHER_ISSUER);
    idp.clear();

    let (verifier, challenge) = pkce();
    let code = code_for(&idp, &challenge).await;
    idp.inject(Defect::TokenEndpointStatus(503));
    let r = redeem(&idp, &code, &verifier).await;
    assert_eq!(r.status, 503);
    assert!(r.json["error"].is_string());
    idp.clear();

    let code = code_for(&idp, &challenge).await;
    idp.inject(Defect::TokenErrorBody200);
    let r = redeem(&idp, &code, &verifier).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["error"], "bad_verification_code");
    assert!(r.json.get("access_token").is_none());
    idp.clear();

    let tokens = sign_in(&idp).await;
    let access = tokens["access_token"].as_str().unwrap();
    let userinfo = format!("{}/userinfo", idp.issuer());
    idp.inject(Defect::UserinfoStatus(500));
    assert_eq!(
        answer(http().get(&userinfo).bearer_auth(access))
            .await
            .status,
        500
    );
    idp.clear();
    idp.inject(Defect::SubMismatch);
    let r = answer(http().get(&userinfo).bearer_auth(access)).await;
    let sub = part(tokens["id_token"].as_str().unwrap(), 1)["sub"].clone();
    assert_eq!(r.status, 200);
    assert_ne!(r.json["sub"], sub);
    idp.clear();

    idp.inject(Defect::Slow(Duration::from_millis(150)));
    let started = Instant::now();
    let _ = answer(http().get(&userinfo).bearer_auth(access)).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    idp.clear();

    idp.inject(Defect::DiscoveryWrongIssuer);
    idp.inject(Defect::DiscoveryMissingUserinfo);
    let doc = answer(http().get(idp.discovery_url())).await.json;
    assert_ne!(doc["issuer"], idp.issuer());
    assert!(doc.get("userinfo_endpoint").is_none());
    assert!(doc["token_endpoint"].is_string());
}

#[tokio::test]
async fn the_github_like_provider_speaks_as_github_does() {
    let idp = MockIdp::start().await;
    idp.set_github_emails(vec![
        GithubEmail {
            email: "ada@users.noreply.example".into(),
            primary: false,
            verified: true,
            visibility: None,
        },
        GithubEmail {
            email: "ada@example.com".into(),
            primary: true,
            verified: false,
            visibility: Some("private".into()),
        },
    ]);
    let gh = idp.github_base();
    let authorize = |scope: &'static str, challenge: String| {
        let idp = idp.clone();
        let gh = gh.clone();
        async move {
            let params = [
                ("client_id", idp.client_id()),
                ("redirect_uri", REDIRECT),
                ("scope", scope),
                ("state", "st"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ];
            answer(
                http()
                    .get(format!("{gh}/login/oauth/authorize"))
                    .query(&params),
            )
            .await
        }
    };
    let exchange = |code: String, verifier: String, accept: Option<&'static str>| {
        let idp = idp.clone();
        let gh = gh.clone();
        async move {
            let mut request = http()
                .post(format!("{gh}/login/oauth/access_token"))
                .form(&[
                    ("client_id", idp.client_id()),
                    ("client_secret", idp.client_secret()),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", &verifier),
                ]);
            if let Some(accept) = accept {
                request = request.header("accept", accept);
            }
            answer(request).await
        }
    };

    let (verifier, challenge) = pkce();
    let r = authorize("read:user user:email", challenge).await;
    assert_eq!(r.status, 302, "{}", r.text);
    let back = query_of(r.header("location").unwrap());
    assert_eq!(back["state"], "st");
    assert!(!back.contains_key("iss"));
    let code = back["code"].clone();
    let (other, _) = pkce();
    let r = exchange(code.clone(), other, Some("application/json")).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (200, Some("bad_verification_code"))
    );
    let r = exchange(code, verifier.clone(), Some("application/json")).await;
    assert_eq!(
        r.json["error"], "bad_verification_code",
        "the code is spent"
    );

    let (verifier, challenge) = pkce();
    let r = authorize("read:user user:email", challenge).await;
    let code = query_of(r.header("location").unwrap())["code"].clone();
    let r = exchange(code, verifier, Some("application/json")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["token_type"], "bearer");
    assert_eq!(r.json["scope"], "read:user,user:email");
    let token = r.json["access_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("gho_"));
    let seen = idp.github_token_requests();
    assert_eq!(seen.last().unwrap().client_auth, ClientAuth::Post);
    assert_eq!(
        seen.last().unwrap().accept.as_deref(),
        Some("application/json")
    );

    let r = answer(http().get(format!("{gh}/user")).bearer_auth(&token)).await;
    assert_eq!(r.status, 403, "no User-Agent");
    let r = answer(
        http()
            .get(format!("{gh}/user"))
            .header("user-agent", "crudauth-tests")
            .header("authorization", format!("token {token}")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], 1815);
    assert_eq!(r.json["login"], "ada");
    assert_eq!(r.header("x-oauth-scopes"), Some("read:user, user:email"));
    let r = answer(
        http()
            .get(format!("{gh}/user/emails"))
            .header("user-agent", "crudauth-tests")
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json[1],
        json!({"email": "ada@example.com", "primary": true, "verified": false, "visibility": "private"})
    );
    assert_eq!(r.json[0]["visibility"], Value::Null);
    let r = answer(
        http()
            .get(format!("{gh}/user"))
            .header("user-agent", "crudauth-tests")
            .bearer_auth("gho_nope"),
    )
    .await;
    assert_eq!(
        (r.status, r.json["message"].as_str()),
        (401, Some("Bad credentials"))
    );

    // Form-encoded unless JSON is asked for; no user:email scope, no emails.
    idp.set_github_user(GithubUser {
        id: 7,
        login: "bob".into(),
        name: None,
        avatar_url: "https://avatars.example/u/7".into(),
        email: None,
    });
    let (verifier, challenge) = pkce();
    let r = authorize("read:user", challenge).await;
    let code = query_of(r.header("location").unwrap())["code"].clone();
    let r = exchange(code, verifier, None).await;
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));
    let form: HashMap<String, String> = form_urlencoded::parse(r.text.as_bytes())
        .into_owned()
        .collect();
    let token = form["access_token"].clone();
    let get = |path: &str| {
        http()
            .get(format!("{gh}{path}"))
            .header("user-agent", "crudauth-tests")
            .bearer_auth(&token)
    };
    let r = answer(get("/user")).await;
    assert_eq!(
        (r.json["id"].as_u64(), r.json["email"].clone()),
        (Some(7), Value::Null)
    );
    assert_eq!(answer(get("/user/emails")).await.status, 404);

    idp.inject(Defect::TokenErrorBody200);
    let r = exchange("whatever".into(), "x".into(), Some("application/json")).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (200, Some("bad_verification_code"))
    );
    assert!(r.json.get("access_token").is_none());
    // An OpenID code is no GitHub code, nor a GitHub token an OpenID one.
    idp.clear();
    let (verifier, challenge) = pkce();
    let code = code_for(&idp, &challenge).await;
    let r = exchange(code, verifier, Some("application/json")).await;
    assert_eq!(r.json["error"], "bad_verification_code");
    let r = answer(
        http()
            .get(format!("{}/userinfo", idp.issuer()))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn admin_endpoints_let_a_script_drive_it() {
    let idp = MockIdp::start().await;
    let admin = |path: &str| format!("{}/admin{path}", idp.base_url());
    let r =
        answer(http().post(admin("/user")).json(
            &json!({"sub": "script-user", "email": "s@example.com", "email_verified": false}),
        ))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = answer(http().post(admin("/defect")).body("wrong_nonce")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = answer(
        http()
            .post(admin("/defect"))
            .json(&json!({"defect": "slow:1"})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = answer(http().post(admin("/defect")).body("no_such_thing")).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("no_such_thing"), "{}", r.text);

    let claims = part(sign_in(&idp).await["id_token"].as_str().unwrap(), 1);
    assert_eq!(claims["sub"], "script-user");
    assert_eq!(claims["email_verified"], false);
    assert!(
        claims.get("name").is_none(),
        "only the claims the script sent"
    );
    assert_ne!(claims["nonce"], "nonce-456");

    assert_eq!(answer(http().post(admin("/clear"))).await.status, 204);
    assert_eq!(answer(http().post(admin("/rotate-keys"))).await.status, 204);
    let t = sign_in(&idp).await["id_token"].as_str().unwrap().to_owned();
    assert_eq!(part(&t, 1)["nonce"], "nonce-456");
    assert_eq!(part(&t, 0)["kid"], KID_2);
}

#[test]
fn defects_parse_by_name() {
    let cases = [
        (
            "authorize_error:temporarily_unavailable",
            Defect::AuthorizeError("temporarily_unavailable".into()),
        ),
        (
            "authorize_error",
            Defect::AuthorizeError("access_denied".into()),
        ),
        ("bad_signature", Defect::BadSignature),
        ("wrong_audience", Defect::WrongAudience),
        ("extra_audience_no_azp", Defect::ExtraAudienceNoAzp),
        ("wrong_azp", Defect::WrongAzp),
        ("wrong_issuer", Defect::WrongIssuer),
        ("wrong_nonce", Defect::WrongNonce),
        ("missing_nonce", Defect::MissingNonce),
        ("expired", Defect::Expired),
        ("issued_in_future", Defect::IssuedInFuture),
        ("unknown_kid", Defect::UnknownKid),
        ("alg_none", Defect::AlgNone),
        ("bad_at_hash", Defect::BadAtHash),
        ("missing_id_token", Defect::MissingIdToken),
        ("sub_mismatch", Defect::SubMismatch),
        (
            "token_endpoint_status:502",
            Defect::TokenEndpointStatus(502),
        ),
        ("token_error_body_200", Defect::TokenErrorBody200),
        ("userinfo_status:401", Defect::UserinfoStatus(401)),
        ("slow:1500", Defect::Slow(Duration::from_millis(1500))),
        ("wrong_iss_parameter", Defect::WrongIssParameter),
        ("discovery_wrong_issuer", Defect::DiscoveryWrongIssuer),
        (
            "discovery_missing_userinfo",
            Defect::DiscoveryMissingUserinfo,
        ),
    ];
    for (name, defect) in cases {
        assert_eq!(name.parse::<Defect>(), Ok(defect), "{name}");
    }
    assert!("slow".parse::<Defect>().is_err());
    assert!("token_endpoint_status:99999".parse::<Defect>().is_err());
}
