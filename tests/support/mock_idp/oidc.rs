//! The OpenID Connect endpoints: discovery, authorization, token, userinfo and JWKS, and the
//! id_token with whatever defects are on.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::wire::{
    self, authenticate, bad_request, bearer_token, header_text, lenient_params, no_store,
    presented_auth, redirect, required, strict_params, OAuthError,
};
use super::{
    keys, unix_now, Defect, Defects, Grant, IdpUser, Issued, Shared, Subject, TokenRequestSeen,
    ACCESS_TOKEN_SECONDS, OTHER_AUDIENCE, OTHER_ISSUER,
};

/// The scopes the provider knows; others asked for are not granted.
const SCOPES: [&str; 3] = ["openid", "email", "profile"];
/// How long an id_token is good for, in seconds.
const ID_TOKEN_SECONDS: u64 = 300;

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3).
pub(super) async fn discovery(State(idp): State<Arc<Shared>>) -> Json<Value> {
    let defects = idp.defects();
    let issuer = &idp.issuer;
    let mut doc = Map::new();
    let mut put = |name: &str, value: Value| {
        doc.insert(name.to_owned(), value);
    };
    if defects.has(&Defect::DiscoveryWrongIssuer) {
        put("issuer", json!(format!("{issuer}/not-this-one")));
    } else {
        put("issuer", json!(issuer));
    }
    put(
        "authorization_endpoint",
        json!(format!("{issuer}/authorize")),
    );
    put("token_endpoint", json!(format!("{issuer}/token")));
    if !defects.has(&Defect::DiscoveryMissingUserinfo) {
        put("userinfo_endpoint", json!(format!("{issuer}/userinfo")));
    }
    put("jwks_uri", json!(format!("{issuer}/jwks")));
    put("response_types_supported", json!(["code"]));
    put("response_modes_supported", json!(["query"]));
    put("grant_types_supported", json!(["authorization_code"]));
    put("subject_types_supported", json!(["public"]));
    put("id_token_signing_alg_values_supported", json!(["RS256"]));
    put("scopes_supported", json!(SCOPES));
    put(
        "claims_supported",
        json!([
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
            "email",
            "email_verified",
            "name",
            "given_name",
            "preferred_username",
            "picture"
        ]),
    );
    put("code_challenge_methods_supported", json!(["S256"]));
    if let Some(methods) = &idp.options.token_endpoint_auth_methods_supported {
        put("token_endpoint_auth_methods_supported", json!(methods));
    }
    put(
        "authorization_response_iss_parameter_supported",
        json!(idp.options.iss_parameter_supported),
    );
    Json(Value::Object(doc))
}

/// `GET /authorize`: checks the request, approves the current user at once, and redirects
/// back with a code (OpenID Connect Core §3.1.2, RFC 9207 §2).
pub(super) async fn authorize(
    State(idp): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    idp.state()
        .authorize_requests
        .push(lenient_params(query.as_bytes()));
    let params = match strict_params(query.as_bytes()) {
        Ok(params) => params,
        Err(why) => return bad_request(why),
    };
    let request = match wire::authorization_request(&idp.options, &params, true) {
        Ok(request) => request,
        Err(why) => return bad_request(why),
    };
    let defects = idp.defects();
    let iss = if defects.has(&Defect::WrongIssParameter) {
        Some(OTHER_ISSUER)
    } else {
        idp.options
            .iss_parameter_supported
            .then_some(idp.issuer.as_str())
    };
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let code;
    if let Some(error) = defects.authorize_error() {
        pairs.extend([("error", error), ("error_description", "injected defect")]);
    } else {
        let scope = request
            .scope
            .into_iter()
            .filter(|s| SCOPES.contains(&s.as_str()))
            .collect();
        let mut state = idp.state();
        let grant = Grant {
            client_id: idp.options.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge,
            nonce: request.nonce,
            scope,
            subject: Subject::Oidc(state.user.clone()),
            issued: Instant::now(),
            auth_time: unix_now(),
        };
        code = state.issue_code(grant);
        pairs.push(("code", &code));
    }
    pairs.push(("state", &request.state));
    if let Some(iss) = iss {
        pairs.push(("iss", iss));
    }
    redirect(&request.redirect_uri, &pairs)
}

/// `POST /token`: redeems a code for an access token and an id_token (RFC 6749 §4.1.3,
/// RFC 7636 §4.6, OpenID Connect Core §3.1.3).
pub(super) async fn token(
    State(idp): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = lenient_params(&body);
    idp.state().token_requests.push(TokenRequestSeen {
        client_auth: presented_auth(&headers, &seen),
        accept: header_text(&headers, header::ACCEPT),
        form: seen,
    });
    let defects = idp.defects();
    defects.pause().await;
    match redeem(&idp, &defects, &headers, &body) {
        Ok(answer) => answer,
        Err(error) => error.into_response(),
    }
}

fn redeem(
    idp: &Shared,
    defects: &Defects,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    if let Some(status) = defects.token_status() {
        return Err(OAuthError::injected(status));
    }
    if defects.has(&Defect::TokenErrorBody200) {
        let body = json!({
            "error": "bad_verification_code",
            "error_description": "The code passed is incorrect or expired.",
        });
        return Ok((StatusCode::OK, no_store(), Json(body)).into_response());
    }
    if !wire::is_form(headers) {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let params = strict_params(body).map_err(OAuthError::invalid_request)?;
    match required(&params, "grant_type")? {
        "authorization_code" => {}
        other => {
            return Err(OAuthError::unsupported_grant_type(format!(
                "grant_type {other:?} is not supported: only authorization_code"
            )))
        }
    }
    authenticate(&idp.options, headers, &params, true)?;
    let code = required(&params, "code")?;
    let redirect_uri = required(&params, "redirect_uri")?;
    let verifier = required(&params, "code_verifier")?;
    let grant = idp
        .state()
        .take_code(code)
        .map_err(OAuthError::invalid_grant)?;
    let Subject::Oidc(user) = &grant.subject else {
        return Err(OAuthError::invalid_grant("unknown code"));
    };
    if grant.client_id != idp.options.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if grant.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(format!(
            "redirect_uri {redirect_uri:?} is not the one the code was issued for"
        )));
    }
    wire::check_verifier(verifier, &grant.code_challenge).map_err(OAuthError::invalid_grant)?;
    let access_token = idp
        .state()
        .issue_token(code, grant.subject.clone(), grant.scope.clone());
    let mut answer = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_SECONDS,
        "scope": grant.scope.join(" "),
    });
    let openid = grant.scope.iter().any(|s| s == "openid");
    if openid && !defects.has(&Defect::MissingIdToken) {
        let id_token = id_token(idp, defects, &grant, user, &access_token)
            .map_err(OAuthError::server_error)?;
        answer["id_token"] = json!(id_token);
    }
    Ok((StatusCode::OK, no_store(), Json(answer)).into_response())
}

/// The id_token for a redeemed code (OpenID Connect Core §2), with the defects that are on.
fn id_token(
    idp: &Shared,
    defects: &Defects,
    grant: &Grant,
    user: &IdpUser,
    access_token: &str,
) -> Result<String, String> {
    let now = unix_now();
    let (iat, exp) = if defects.has(&Defect::Expired) {
        (now.saturating_sub(900), now.saturating_sub(600))
    } else if defects.has(&Defect::IssuedInFuture) {
        (now + 600, now + 600 + ID_TOKEN_SECONDS)
    } else {
        (now, now + ID_TOKEN_SECONDS)
    };
    let client = idp.options.client_id.as_str();
    let mut claims = Map::new();
    let iss = if defects.has(&Defect::WrongIssuer) {
        OTHER_ISSUER
    } else {
        idp.issuer.as_str()
    };
    claims.insert("iss".into(), json!(iss));
    claims.insert("sub".into(), json!(user.sub));
    let aud = if defects.has(&Defect::WrongAudience) {
        json!(OTHER_AUDIENCE)
    } else if defects.has(&Defect::ExtraAudienceNoAzp) || defects.has(&Defect::WrongAzp) {
        json!([client, OTHER_AUDIENCE])
    } else {
        json!(client)
    };
    claims.insert("aud".into(), aud);
    if defects.has(&Defect::WrongAzp) {
        claims.insert("azp".into(), json!(OTHER_AUDIENCE));
    }
    claims.insert("exp".into(), json!(exp));
    claims.insert("iat".into(), json!(iat));
    claims.insert("auth_time".into(), json!(grant.auth_time.min(iat)));
    let nonce = if defects.has(&Defect::MissingNonce) {
        None
    } else if defects.has(&Defect::WrongNonce) {
        Some("not-the-nonce-that-was-sent".to_owned())
    } else {
        grant.nonce.clone()
    };
    if let Some(nonce) = nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    let at_hash = if defects.has(&Defect::BadAtHash) {
        wire::at_hash(&format!("{access_token}-another"))
    } else {
        wire::at_hash(access_token)
    };
    claims.insert("at_hash".into(), json!(at_hash));
    claims.extend(user_claims(user, &grant.scope));
    let claims = Value::Object(claims);
    let key = idp.signing_key(defects);
    if defects.has(&Defect::AlgNone) {
        return Ok(key.unsigned(&claims));
    }
    let token = key.sign(&claims)?;
    if defects.has(&Defect::BadSignature) {
        keys::corrupt_signature(&token)
    } else {
        Ok(token)
    }
}

/// The user's claims that the granted scopes release (OpenID Connect Core §5.4), `sub` aside.
fn user_claims(user: &IdpUser, scope: &[String]) -> Map<String, Value> {
    let granted = |s: &str| scope.iter().any(|g| g == s);
    let mut claims = Map::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            claims.insert(name.to_owned(), value);
        }
    };
    if granted("email") {
        put("email", user.email.clone().map(Value::String));
        put("email_verified", user.email_verified.clone());
    }
    if granted("profile") {
        put("name", user.name.clone().map(Value::String));
        put("given_name", user.given_name.clone().map(Value::String));
        put(
            "preferred_username",
            user.preferred_username.clone().map(Value::String),
        );
        put("picture", user.picture.clone().map(Value::String));
    }
    claims
}

/// `GET|POST /userinfo` with a bearer access token (OpenID Connect Core §5.3).
pub(super) async fn userinfo(State(idp): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let defects = idp.defects();
    defects.pause().await;
    if let Some(status) = defects.userinfo_status() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"error": "server_error", "error_description": "injected defect"});
        return (status, Json(body)).into_response();
    }
    let Some(token) = bearer_token(&headers, &["Bearer"]) else {
        return unauthorized("Bearer realm=\"mock-idp\"");
    };
    let issued = idp.state().token(&token);
    let Some(Issued {
        subject: Subject::Oidc(user),
        scope,
        ..
    }) = issued
    else {
        return unauthorized("Bearer realm=\"mock-idp\", error=\"invalid_token\"");
    };
    let sub = if defects.has(&Defect::SubMismatch) {
        format!("{}-someone-else", user.sub)
    } else {
        user.sub.clone()
    };
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(sub));
    claims.extend(user_claims(&user, &scope));
    Json(Value::Object(claims)).into_response()
}

/// 401 with a bearer challenge (RFC 6750 §3).
fn unauthorized(challenge: &'static str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        )],
    )
        .into_response()
}

/// `GET /jwks`: the public half of the key that signs now.
pub(super) async fn jwks(State(idp): State<Arc<Shared>>) -> Json<Value> {
    idp.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    Json(json!({"keys": [idp.published_key().jwk.clone()]}))
}
