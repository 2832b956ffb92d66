//! The bearer transport as resolved on every request.

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crudauth_core::jwt::{BearerTokens, TokenRejected};
use crudauth_core::principal::Principal;

use super::remembered::Remembered;
use crate::error::AuthError;
use crate::state::CrudAuth;
use crate::transport::Transport;

/// What the `Authorization` header holds.
enum Credential<'a> {
    /// No header, another scheme, or an empty token: no credential of ours.
    Absent,
    /// `Bearer` with bytes no JWT can contain.
    Malformed,
    /// A token to verify.
    Token(&'a str),
}

/// `Authorization: Bearer <token>`, the scheme matched case-insensitively.
fn credential(headers: &HeaderMap) -> Credential<'_> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Credential::Absent;
    };
    let bytes = value.as_bytes();
    let (scheme, rest) = match bytes.iter().position(|b| *b == b' ') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Credential::Absent;
    }
    // Everything after the first space is the token, as crudauth splits it: a second space
    // (`Bearer  <jwt>`) makes a token no JWT can be.
    let token = rest.trim_ascii_end();
    if token.is_empty() {
        return Credential::Absent;
    }
    match std::str::from_utf8(token) {
        Ok(token) if !token.contains(|c: char| c.is_ascii_whitespace()) => Credential::Token(token),
        _ => Credential::Malformed,
    }
}

/// The bearer transport as resolved on each request: verify the access token (no I/O), then
/// the user row from the per-process cache. Expired, or a user missing, disabled or of a newer
/// `token_version`: absent. Forged, tampered, malformed, or of the wrong type: 401
/// "Invalid token", even where sign-in is optional.
///
/// The principal a token resolves to is remembered (see [`super::remembered`]), so the next
/// request with the same token costs a lookup and a check that the user row is unchanged.
#[derive(Debug)]
pub(crate) struct BearerAuth;

#[async_trait]
impl Transport for BearerAuth {
    fn name(&self) -> &'static str {
        "bearer"
    }

    async fn authenticate(
        &self,
        parts: &Parts,
        auth: &CrudAuth,
    ) -> Result<Option<Principal>, AuthError> {
        Ok(Self::resolve(parts, auth).await?.map(Arc::unwrap_or_clone))
    }
}

impl BearerAuth {
    pub(crate) async fn resolve(
        parts: &Parts,
        auth: &CrudAuth,
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        let Some(bearer) = auth.bearer() else {
            return Ok(None);
        };
        let token = match credential(&parts.headers) {
            Credential::Absent => return Ok(None),
            Credential::Malformed => return Err(AuthError::invalid_token()),
            Credential::Token(token) => token,
        };
        let users = auth.users();
        let now = auth.inner.clock.now_secs();
        let leeway = bearer.tokens.config().leeway.as_secs();
        if let Some(known) = bearer.remembered.get(token) {
            if known.exp.saturating_add(leeway) >= now
                && users.live_stamp(known.principal.user_id()) == Some(known.stamp)
            {
                return Ok(Some(known.principal));
            }
            // Expired, or the user row changed: resolve it afresh.
            bearer.remembered.forget(token);
        }
        let claims = match bearer.tokens.verify_access(token) {
            Ok(claims) => claims,
            Err(TokenRejected::Expired) => return Ok(None),
            Err(TokenRejected::Invalid) => return Err(AuthError::invalid_token()),
        };
        let found = users
            .find_for_version(&claims.user_id(), claims.ver)
            .await?;
        let Some((user, stamp)) = found else {
            return Ok(None);
        };
        // Disabled, or superseded by a password change, reset or logout-all (not forged).
        if !user.is_active || user.token_version != claims.ver {
            return Ok(None);
        }
        let principal = Arc::new(Principal::new(user, "bearer", claims.scopes));
        if let Some(stamp) = stamp {
            let known = Remembered {
                principal: principal.clone(),
                exp: claims.exp,
                stamp,
            };
            bearer.remembered.insert(token, known, now);
        }
        Ok(Some(principal))
    }
}

impl CrudAuth {
    /// The bearer-token service, when the bearer transport is configured: issue a pair for a
    /// user you authenticated yourself, verify, refresh, revoke.
    pub fn bearer_tokens(&self) -> Option<&BearerTokens> {
        self.bearer().map(|b| &b.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn parse(value: &'static [u8]) -> Option<Result<String, ()>> {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        match credential(&h) {
            Credential::Absent => None,
            Credential::Malformed => Some(Err(())),
            Credential::Token(t) => Some(Ok(t.to_owned())),
        }
    }

    #[test]
    fn reads_the_bearer_scheme_only() {
        assert_eq!(parse(b"Bearer abc"), Some(Ok("abc".into())));
        assert_eq!(parse(b"bEaReR abc "), Some(Ok("abc".into())));
        assert_eq!(parse(b"Bearer  abc"), Some(Err(())), "crudauth: 401");
        assert_eq!(parse(b"Bearer abc def"), Some(Err(())));
        assert_eq!(parse(b"Basic YWRhOnB3"), None);
        assert_eq!(parse(b"Bearer"), None);
        assert_eq!(parse(b"Bearer    "), None);
        assert_eq!(parse(b"Bearerabc"), None);
        assert_eq!(parse(b"Bearer \xff\xfe"), Some(Err(())));
        assert!(matches!(credential(&HeaderMap::new()), Credential::Absent));
    }
}
