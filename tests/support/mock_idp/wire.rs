//! What the mock's endpoints share on the wire: strict parameter parsing, client
//! authentication, PKCE, redirects, bearer tokens and OAuth error answers.

use std::collections::HashMap;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{ClientAuth, IdpOptions};

/// Every parameter, a repeated one's last value winning: what a request is recorded as.
pub(super) fn lenient_params(raw: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(raw).into_owned().collect()
}

/// The parameters, refusing one sent twice (RFC 6749 §3.1, §3.2) and dropping those sent
/// without a value, which count as omitted (§3.1).
pub(super) fn strict_params(raw: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut params = HashMap::new();
    for (name, value) in form_urlencoded::parse(raw) {
        if params
            .insert(name.to_string(), value.into_owned())
            .is_some()
        {
            return Err(format!("the parameter {name} is sent more than once"));
        }
    }
    params.retain(|_, value: &mut String| !value.is_empty());
    Ok(params)
}

/// A header's value as text, when it has one that is.
pub(super) fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Whether the body is declared `application/x-www-form-urlencoded` (RFC 6749 §3.2).
pub(super) fn is_form(headers: &HeaderMap) -> bool {
    header_text(headers, header::CONTENT_TYPE).is_some_and(|ct| {
        ct.split(';').next().is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

/// 32 random bytes, base64url: codes and access tokens.
pub(super) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `base64url(SHA-256(verifier))`, the S256 code challenge (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The left half of SHA-256 of the access token, base64url without padding: the `at_hash` of
/// an RS256 id_token (OpenID Connect Core §3.1.3.6).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// Checks an authorization request's PKCE parameters: `S256` only, and a challenge S256 can
/// produce (43 base64url characters).
pub(super) fn check_challenge(
    challenge: Option<&String>,
    method: Option<&String>,
) -> Result<String, String> {
    let challenge = challenge.ok_or("code_challenge is missing: PKCE (RFC 7636) is required")?;
    match method.map(String::as_str) {
        Some("S256") => {}
        Some(other) => {
            return Err(format!(
                "code_challenge_method {other:?} is not supported: only S256"
            ))
        }
        None => return Err("code_challenge_method is missing: only S256 is supported".into()),
    }
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if challenge.len() != 43 || !challenge.bytes().all(base64url) {
        return Err(format!(
            "code_challenge {challenge:?} is not an S256 challenge (43 base64url characters)"
        ));
    }
    Ok(challenge.clone())
}

/// Checks a token request's `code_verifier` against the challenge the code was issued for.
pub(super) fn check_verifier(verifier: &str, challenge: &str) -> Result<(), String> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(unreserved) {
        return Err("code_verifier must be 43 to 128 unreserved characters (RFC 7636 §4.1)".into());
    }
    if s256_challenge(verifier) != challenge {
        return Err("code_verifier does not match the code_challenge".into());
    }
    Ok(())
}

/// Checks a `redirect_uri`: absolute http(s), no fragment (RFC 6749 §3.1.2), and one the client
/// registered when it registered any.
pub(super) fn check_redirect_uri(uri: &str, registered: Option<&[String]>) -> Result<(), String> {
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
        .ok_or_else(|| format!("redirect_uri {uri:?} is not an absolute http(s) URI"))?;
    if rest.split(['/', '?']).next().is_none_or(str::is_empty) {
        return Err(format!("redirect_uri {uri:?} has no host"));
    }
    if uri.contains('#') {
        return Err(format!("redirect_uri {uri:?} has a fragment"));
    }
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "redirect_uri {uri:?} has characters a URI cannot hold"
        ));
    }
    match registered {
        Some(list) if !list.iter().any(|r| r == uri) => Err(format!(
            "redirect_uri {uri:?} is not one the client registered ({list:?})"
        )),
        _ => Ok(()),
    }
}

/// 302 to `uri` with `pairs` added to its query (keeping a query it has, RFC 6749 §3.1.2).
pub(super) fn redirect(uri: &str, pairs: &[(&str, &str)]) -> Response {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let glue = if !uri.contains('?') {
        "?"
    } else if uri.ends_with('?') || uri.ends_with('&') {
        ""
    } else {
        "&"
    };
    match HeaderValue::from_str(&format!("{uri}{glue}{query}")) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => bad_request(format!("cannot redirect to {uri:?}")),
    }
}

/// 400 with a plain message: an authorization request the mock will not redirect for.
pub(super) fn bad_request(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, message.into()).into_response()
}

/// The parameter `name`, or an `invalid_request` naming it.
pub(super) fn required<'a>(
    params: &'a HashMap<String, String>,
    name: &str,
) -> Result<&'a str, OAuthError> {
    params
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
}

/// How a token request's client presents itself, judged from the headers and the form.
pub(super) fn presented_auth(headers: &HeaderMap, params: &HashMap<String, String>) -> ClientAuth {
    let basic = headers.contains_key(header::AUTHORIZATION);
    let post = params.get("client_secret").is_some_and(|s| !s.is_empty());
    match (basic, post) {
        (true, true) => ClientAuth::Several,
        (true, false) => ClientAuth::Basic,
        (false, true) => ClientAuth::Post,
        (false, false) => ClientAuth::None,
    }
}

/// Authenticates the client of a token request against the configured one (RFC 6749 §2.3).
/// With `enforce_advertised`, a method the discovery document does not list is refused.
pub(super) fn authenticate(
    options: &IdpOptions,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    enforce_advertised: bool,
) -> Result<(), OAuthError> {
    let auth = presented_auth(headers, params);
    let basic = auth == ClientAuth::Basic;
    let refuse = |why: String| OAuthError::invalid_client(why, basic);
    let body_id = params.get("client_id");
    let (method, client_id, secret) = match auth {
        ClientAuth::Several => {
            return Err(OAuthError::invalid_request(
                "the client authenticates both with HTTP Basic and in the body (RFC 6749 §2.3)",
            ))
        }
        ClientAuth::Basic => {
            let (id, secret) = headers
                .get(header::AUTHORIZATION)
                .ok_or_else(|| "no Authorization header".to_owned())
                .and_then(parse_basic)
                .map_err(refuse)?;
            if body_id.is_some_and(|b| *b != id) {
                return Err(OAuthError::invalid_client(
                    "client_id in the body differs from the one in the Authorization header",
                    true,
                ));
            }
            ("client_secret_basic", id, Some(secret))
        }
        ClientAuth::Post => {
            let id = body_id.ok_or_else(|| refuse("client_secret without client_id".into()))?;
            (
                "client_secret_post",
                id.clone(),
                params.get("client_secret").cloned(),
            )
        }
        ClientAuth::None => {
            let id = body_id.ok_or_else(|| {
                refuse("no client authentication and no client_id in the body".into())
            })?;
            ("none", id.clone(), None)
        }
    };
    if enforce_advertised {
        if let Some(advertised) = &options.token_endpoint_auth_methods_supported {
            if !advertised.iter().any(|m| m == method) {
                return Err(refuse(format!(
                    "the client authenticated with {method}, which this provider does not \
                     advertise (token_endpoint_auth_methods_supported: {advertised:?})"
                )));
            }
        }
    }
    if client_id != options.client_id {
        return Err(refuse(format!("unknown client {client_id:?}")));
    }
    match secret {
        None if options.client_secret.is_empty() => Ok(()),
        None => Err(refuse(format!(
            "client {client_id:?} is confidential: it must authenticate with its secret"
        ))),
        Some(secret) if secret == options.client_secret => Ok(()),
        Some(_) => Err(refuse(format!("wrong secret for client {client_id:?}"))),
    }
}

/// `Basic base64(id:secret)`, each half form-urlencoded first (RFC 6749 §2.3.1).
fn parse_basic(value: &HeaderValue) -> Result<(String, String), String> {
    let text = value
        .to_str()
        .map_err(|_| "the Authorization header is not ASCII".to_owned())?;
    let (scheme, encoded) = text
        .split_once(' ')
        .ok_or_else(|| format!("the Authorization header {text:?} has no scheme"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(format!("the Authorization scheme {scheme:?} is not Basic"));
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("the Basic credentials are not base64: {e}"))?;
    let pair =
        String::from_utf8(decoded).map_err(|_| "the Basic credentials are not UTF-8".to_owned())?;
    let (id, secret) = pair
        .split_once(':')
        .ok_or_else(|| "the Basic credentials have no ':'".to_owned())?;
    Ok((form_decode(id)?, form_decode(secret)?))
}

/// Undoes `application/x-www-form-urlencoded` encoding of one value.
fn form_decode(encoded: &str) -> Result<String, String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in {encoded:?}"))?;
                out.push(byte);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{encoded:?} does not decode to UTF-8"))
}

/// The token of an `Authorization: <scheme> <token>` header, for any of `schemes`
/// (compared case-insensitively).
pub(super) fn bearer_token(headers: &HeaderMap, schemes: &[&str]) -> Option<String> {
    let text = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) && !token.is_empty())
        .then(|| token.to_owned())
}

/// An error answer of the token endpoint (RFC 6749 §5.2).
#[derive(Debug)]
pub(super) struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    basic_challenge: bool,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            basic_challenge: false,
        }
    }

    /// 400 `invalid_request`.
    pub(super) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 400 `invalid_grant`.
    pub(super) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// 400 `unsupported_grant_type`.
    pub(super) fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            description,
        )
    }

    /// 401 `invalid_client`; with `basic`, a `WWW-Authenticate: Basic` challenge, which is due
    /// when the client tried the Authorization header (§5.2).
    pub(super) fn invalid_client(description: impl Into<String>, basic: bool) -> Self {
        Self {
            basic_challenge: basic,
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
        }
    }

    /// 500 `server_error`.
    pub(super) fn server_error(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            description,
        )
    }

    /// What went wrong, in words.
    pub(super) fn description(&self) -> &str {
        &self.description
    }

    /// The answer of an injected status: the error code that goes with it.
    pub(super) fn injected(status: u16) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = match status.as_u16() {
            401 => "invalid_client",
            503 => "temporarily_unavailable",
            500..=599 => "server_error",
            _ => "invalid_request",
        };
        Self::new(status, code, format!("injected defect: status {status}"))
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.code, "error_description": self.description}));
        let mut response = (self.status, no_store(), body).into_response();
        if self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mock-idp\""),
            );
        }
        response
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, due on every token answer (§5.1).
pub(super) fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

/// What an authorization request asks for, once checked.
pub(super) struct AuthorizationRequest {
    pub(super) redirect_uri: String,
    pub(super) state: String,
    pub(super) code_challenge: String,
    pub(super) nonce: Option<String>,
    /// The scopes asked for, in order, each once.
    pub(super) scope: Vec<String>,
}

/// Checks an authorization request. Client and redirect URI first: when either is wrong the
/// provider must not redirect (RFC 6749 §4.1.2.1); the mock answers 400 for every other
/// fault as well, so a test sees it plainly. `openid` asks for `response_type=code` and takes
/// scopes apart on spaces; GitHub-like, on commas too.
pub(super) fn authorization_request(
    options: &IdpOptions,
    params: &HashMap<String, String>,
    openid: bool,
) -> Result<AuthorizationRequest, String> {
    match params.get("client_id") {
        None => return Err("client_id is missing".into()),
        Some(id) if *id != options.client_id => return Err(format!("unknown client_id {id:?}")),
        Some(_) => {}
    }
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or("redirect_uri is missing")?;
    check_redirect_uri(redirect_uri, options.redirect_uris.as_deref())?;
    if openid {
        match params.get("response_type").map(String::as_str) {
            Some("code") => {}
            Some(other) => {
                return Err(format!(
                    "response_type {other:?} is not supported: only code"
                ))
            }
            None => return Err("response_type is missing".into()),
        }
        if let Some(mode) = params.get("response_mode").filter(|m| *m != "query") {
            return Err(format!(
                "response_mode {mode:?} is not supported: only query"
            ));
        }
    }
    let state = params.get("state").ok_or("state is missing")?;
    let code_challenge = check_challenge(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    )?;
    let separators: &[char] = if openid { &[' '] } else { &[' ', ','] };
    let mut scope: Vec<String> = Vec::new();
    for s in params
        .get("scope")
        .map(String::as_str)
        .unwrap_or("")
        .split(separators)
        .filter(|s| !s.is_empty())
    {
        if !scope.iter().any(|seen| seen == s) {
            scope.push(s.to_owned());
        }
    }
    Ok(AuthorizationRequest {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        code_challenge,
        nonce: params.get("nonce").cloned(),
        scope,
    })
}
