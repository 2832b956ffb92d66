//! The GitHub-like provider: OAuth 2.0 without OpenID, GitHub's way — errors from the token
//! endpoint as 200 answers, form-encoded unless JSON is asked for, and an API that wants a
//! `User-Agent`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::wire::{
    self, authenticate, bad_request, bearer_token, header_text, lenient_params, no_store,
    presented_auth, redirect, strict_params, OAuthError,
};
use super::{
    unix_now, Defect, GithubEmail, GithubUser, Grant, Issued, Shared, Subject, TokenRequestSeen,
};

const TOKEN_ERRORS_DOC: &str = "https://docs.github.com/apps/managing-oauth-apps/\
                                troubleshooting-oauth-app-access-token-request-errors";
const API_DOC: &str = "https://docs.github.com/rest";

/// `GET /github/login/oauth/authorize`: checks the request, approves the current GitHub user
/// at once, and redirects back with `code` and `state`.
pub(super) async fn authorize(
    State(idp): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    idp.state()
        .github_authorize_requests
        .push(lenient_params(query.as_bytes()));
    let params = match strict_params(query.as_bytes()) {
        Ok(params) => params,
        Err(why) => return bad_request(why),
    };
    let request = match wire::authorization_request(&idp.options, &params, false) {
        Ok(request) => request,
        Err(why) => return bad_request(why),
    };
    let defects = idp.defects();
    if let Some(error) = defects.authorize_error() {
        return redirect(
            &request.redirect_uri,
            &[
                ("error", error),
                ("error_description", "injected defect"),
                ("error_uri", API_DOC),
                ("state", &request.state),
            ],
        );
    }
    let code = {
        let mut state = idp.state();
        let emails = state
            .github_emails
            .clone()
            .unwrap_or_else(GithubEmail::defaults);
        let grant = Grant {
            client_id: idp.options.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge,
            nonce: None,
            scope: request.scope,
            subject: Subject::Github(state.github_user.clone(), emails),
            issued: Instant::now(),
            auth_time: unix_now(),
        };
        state.issue_code(grant)
    };
    redirect(
        &request.redirect_uri,
        &[("code", &code), ("state", &request.state)],
    )
}

/// `POST /github/login/oauth/access_token`: redeems a code. Like GitHub, it answers 200 even
/// for an error, as JSON when `Accept` asks for it and form-encoded otherwise.
pub(super) async fn access_token(
    State(idp): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = lenient_params(&body);
    idp.state().github_token_requests.push(TokenRequestSeen {
        client_auth: presented_auth(&headers, &seen),
        accept: header_text(&headers, header::ACCEPT),
        form: seen,
    });
    let defects = idp.defects();
    defects.pause().await;
    if let Some(status) = defects.token_status() {
        return OAuthError::injected(status).into_response();
    }
    let as_json = header_text(&headers, header::ACCEPT)
        .is_some_and(|accept| accept.to_ascii_lowercase().contains("application/json"));
    let fields = if defects.has(&Defect::TokenErrorBody200) {
        token_error(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        )
    } else {
        exchange(&idp, &headers, &body).unwrap_or_else(|error| error)
    };
    answer(as_json, fields)
}

type Fields = Vec<(&'static str, String)>;

fn exchange(idp: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Fields, Fields> {
    let params = strict_params(body).map_err(|why| token_error("invalid_request", &why))?;
    authenticate(&idp.options, headers, &params, false)
        .map_err(|e| token_error("incorrect_client_credentials", e.description()))?;
    let bad_code = |why: &str| token_error("bad_verification_code", why);
    let code = params
        .get("code")
        .ok_or_else(|| bad_code("code is missing"))?;
    let grant = idp.state().take_code(code).map_err(|why| bad_code(&why))?;
    let Subject::Github(..) = &grant.subject else {
        return Err(bad_code("unknown code"));
    };
    if grant.client_id != idp.options.client_id {
        return Err(bad_code("the code was issued to another client"));
    }
    if params
        .get("redirect_uri")
        .is_some_and(|uri| *uri != grant.redirect_uri)
    {
        return Err(token_error(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        ));
    }
    let verifier = params
        .get("code_verifier")
        .ok_or_else(|| bad_code("code_verifier is missing"))?;
    wire::check_verifier(verifier, &grant.code_challenge).map_err(|why| bad_code(&why))?;
    // Kept without the prefix GitHub's tokens have; `api_caller` takes it off again.
    let token = format!(
        "gho_{}",
        idp.state()
            .issue_token(code, grant.subject.clone(), grant.scope.clone())
    );
    Ok(vec![
        ("access_token", token),
        ("token_type", "bearer".to_owned()),
        ("scope", grant.scope.join(",")),
    ])
}

fn token_error(code: &str, description: &str) -> Fields {
    vec![
        ("error", code.to_owned()),
        ("error_description", description.to_owned()),
        ("error_uri", TOKEN_ERRORS_DOC.to_owned()),
    ]
}

fn answer(as_json: bool, fields: Fields) -> Response {
    if as_json {
        let object: Map<String, Value> = fields
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Value::String(value)))
            .collect();
        return (StatusCode::OK, no_store(), Json(Value::Object(object))).into_response();
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    (
        StatusCode::OK,
        no_store(),
        [(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `GET /github/user`.
pub(super) async fn user(State(idp): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let (user, _, scope) = match api_caller(&idp, &headers).await {
        Ok(caller) => caller,
        Err(refusal) => return refusal,
    };
    let body = json!({
        "id": user.id,
        "login": user.login,
        "name": user.name,
        "avatar_url": user.avatar_url,
        "email": user.email,
        "type": "User",
    });
    (scopes_header(&scope), Json(body)).into_response()
}

/// `GET /github/user/emails`: needs the `user:email` (or `user`) scope, as on GitHub, where a
/// token without it gets 404.
pub(super) async fn emails(State(idp): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let (_, emails, scope) = match api_caller(&idp, &headers).await {
        Ok(caller) => caller,
        Err(refusal) => return refusal,
    };
    if !scope.iter().any(|s| s == "user:email" || s == "user") {
        return api_error(StatusCode::NOT_FOUND, "Not Found");
    }
    let body: Vec<Value> = emails
        .iter()
        .map(|e| {
            json!({
                "email": e.email,
                "primary": e.primary,
                "verified": e.verified,
                "visibility": e.visibility,
            })
        })
        .collect();
    (scopes_header(&scope), Json(Value::Array(body))).into_response()
}

/// Who calls the API, by their access token (`Bearer` or GitHub's own `token` scheme); a
/// refusal when there is no `User-Agent`, no token, or an unknown one.
async fn api_caller(
    idp: &Shared,
    headers: &HeaderMap,
) -> Result<(GithubUser, Vec<GithubEmail>, Vec<String>), Response> {
    if !headers.contains_key(header::USER_AGENT) {
        return Err((
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. \
             Please make sure your request has a User-Agent header.",
        )
            .into_response());
    }
    let defects = idp.defects();
    defects.pause().await;
    if let Some(status) = defects.userinfo_status() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(api_error(status, "injected defect"));
    }
    let Some(token) = bearer_token(headers, &["Bearer", "token"]) else {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "Requires authentication",
        ));
    };
    let issued = token
        .strip_prefix("gho_")
        .and_then(|token| idp.state().token(token));
    match issued {
        Some(Issued {
            subject: Subject::Github(user, emails),
            scope,
            ..
        }) => Ok((user, emails, scope)),
        _ => Err(api_error(StatusCode::UNAUTHORIZED, "Bad credentials")),
    }
}

fn api_error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "message": message,
        "documentation_url": API_DOC,
        "status": status.as_u16().to_string(),
    });
    (status, Json(body)).into_response()
}

/// `X-OAuth-Scopes`, the scopes the token has, as GitHub tells them.
fn scopes_header(scope: &[String]) -> [(HeaderName, HeaderValue); 1] {
    let value = HeaderValue::from_str(&scope.join(", ")).unwrap_or(HeaderValue::from_static(""));
    [(HeaderName::from_static("x-oauth-scopes"), value)]
}
