//! The HTTP client every provider talks through: a timeout on every call, no redirects
//! followed (a provider endpoint that redirects is refused, never chased), and bounded bodies.

use std::time::Duration;

use super::OAuthError;

/// How long one call to a provider may take, connection included (crudauth's 10 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest provider answer read (a discovery document, a JWKS, a profile).
const MAX_BODY: usize = 1 << 20;

/// A client with `timeout` on every call and redirects off.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, OAuthError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("crudauth-rs/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| OAuthError::Config(format!("HTTP client: {e}")))
}

/// A transport failure in words that name no URL query (which could carry a token).
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_decode() || error.is_body() {
        "unreadable answer"
    } else {
        "request failed"
    };
    match error.url() {
        Some(url) => format!(
            "{what} ({}{})",
            url.origin().ascii_serialization(),
            url.path()
        ),
        None => what.to_owned(),
    }
}

/// GETs `url` (with `bearer` as an `Authorization: Bearer` credential) and reads a JSON object
/// from it: a status other than 200, a body over 1 MiB or anything but an object is an error.
pub(crate) async fn get_object(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    accept: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, OAuthError> {
    let mut request = client.get(url).header(reqwest::header::ACCEPT, accept);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| OAuthError::Http(describe(&e)))?;
    let bytes = read_body(response).await?;
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(OAuthError::Profile(format!(
            "{} did not answer a JSON object",
            path_of(url)
        ))),
    }
}

/// GETs `url` and reads a JSON value of any shape, with the same limits as [`get_object`].
pub(crate) async fn get_json(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    accept: &str,
) -> Result<serde_json::Value, OAuthError> {
    let mut request = client.get(url).header(reqwest::header::ACCEPT, accept);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| OAuthError::Http(describe(&e)))?;
    let bytes = read_body(response).await?;
    serde_json::from_slice(&bytes)
        .map_err(|_| OAuthError::Profile(format!("{} did not answer JSON", path_of(url))))
}

/// The body of a 200 answer, at most [`MAX_BODY`] bytes.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, OAuthError> {
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(OAuthError::Http(format!(
            "{} answered {status}",
            path_of(response.url().as_str())
        )));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(OAuthError::Http("answer too large".into()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| OAuthError::Http(describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(OAuthError::Http("answer too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `url` without its query: what a log line may name.
fn path_of(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}
