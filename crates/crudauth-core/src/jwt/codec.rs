//! Signing and verifying crudauth's JWTs: HS256 only, claims checked, expiry told apart from
//! forgery.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::secret::SecretKey;
use crate::user::UserId;

/// What a token is for. A token of one kind is never accepted as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// A short-lived access token, sent as `Authorization: Bearer …`.
    Access,
    /// A refresh token, exchanged at `/refresh` for a new pair.
    Refresh,
}

/// The claims of crudauth's tokens (crudauth's wire format, plus `iat`, and for refresh tokens
/// the family `fam` and the single-use id `jti`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's primary key, as a string.
    pub sub: String,
    /// The user's `token_version` when the token was minted (0 when absent).
    #[serde(default)]
    pub ver: i64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// `access` or `refresh`.
    pub token_type: TokenType,
    /// Granted scopes (may be empty).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Refresh tokens: the family (one sign-in's chain of rotated tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
    /// Refresh tokens: this token's single-use id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The issuer ([`super::TokenConfig::issuer`]); checked exactly, required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The audience ([`super::TokenConfig::audience`]); checked exactly, required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Not before, seconds since the Unix epoch (crudauth never sets it; checked when
    /// present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl Claims {
    /// The user id `sub` names: an integer key when it is one's canonical form, else text.
    pub fn user_id(&self) -> UserId {
        let digits = self.sub.strip_prefix('-').unwrap_or(&self.sub);
        // Canonical: no sign but `-`, no leading zero (so it prints back as itself).
        let canonical = !digits.starts_with('+')
            && (digits == "0" || !digits.starts_with('0'))
            && self.sub != "-0";
        match self.sub.parse::<i64>() {
            Ok(n) if canonical => UserId::Int(n),
            _ => UserId::Text(self.sub.clone()),
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejected {
    /// Correctly signed and well-formed, but past its `exp`: the normal end of a token, which
    /// a transport treats as no credential at all.
    #[error("token expired")]
    Expired,
    /// Forged, tampered, malformed, of the wrong type, of a refused algorithm, or missing a
    /// required claim: an attack signal, answered 401.
    #[error("invalid token")]
    Invalid,
}

macro_rules! jwt_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(pub(crate) String);

        impl $name {
            /// The compact JWT, for a response body or a cookie. Never log it.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(***)"))
            }
        }
    };
}

jwt_string!(
    /// A signed access token.
    AccessToken
);
jwt_string!(
    /// A signed refresh token.
    RefreshToken
);

/// Signing failed (it cannot for HMAC keys; kept as an error rather than a panic).
#[derive(Debug, thiserror::Error)]
#[error("could not sign a token: {0}")]
pub struct SignError(String);

/// The HS256 keys and the validation rules, built once.
///
/// Tokens name their key with a `kid` header: a short fingerprint of the signing key, never
/// the key. A previous key (after `SECRET_KEY` was rotated) verifies the tokens it signed until
/// its deadline; an unknown `kid` is refused. A token without a `kid` (minted before key ids)
/// is checked against the current key.
#[derive(Clone)]
pub(crate) struct JwtCodec {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    /// Retired keys: their `kid`, their verifying key and the last second they verify in.
    previous: Vec<(String, DecodingKey, u64)>,
    header: Header,
    validation: Validation,
    leeway: u64,
}

/// The `kid` of a signing key: 16 hex digits of an HMAC under it, which tells keys apart and
/// says nothing about them.
fn key_id(key: &SecretKey) -> String {
    let mut kid = key.digest("jwt-key-id", "");
    kid.truncate(16);
    kid
}

impl fmt::Debug for JwtCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtCodec(HS256, ***)")
    }
}

impl JwtCodec {
    /// Keys from `key` (the JWT key the builder derives from `SECRET_KEY`); `iss` must be
    /// `issuer` and `aud` must name `audience`; `exp` and `nbf` are checked against the
    /// caller's clock with `leeway` (at most 60 s).
    pub(crate) fn new(key: &SecretKey, leeway: Duration, issuer: &str, audience: &str) -> Self {
        // `Validation::new` makes HS256 the whole allow-list (the header's `alg` only ever
        // selects from it). The times are checked in `verify` against the injectable clock,
        // not here against the system's.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.required_spec_claims = ["exp", "sub", "iss", "aud"]
            .into_iter()
            .map(String::from)
            .collect::<HashSet<_>>();
        let kid = key_id(key);
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        Self {
            encoding: EncodingKey::from_secret(key.expose()),
            decoding: DecodingKey::from_secret(key.expose()),
            kid,
            previous: Vec::new(),
            header,
            validation,
            leeway: leeway.as_secs().min(60),
        }
    }

    /// Also verifies tokens signed by `key`, a retired signing key, while `now` (seconds) is
    /// at most `until`. New tokens are always signed with the current key.
    pub(crate) fn with_previous(mut self, key: &SecretKey, until: u64) -> Self {
        self.previous
            .push((key_id(key), DecodingKey::from_secret(key.expose()), until));
        self
    }

    /// The key a token's `kid` names, if it is one of ours and still verifies at `now`.
    fn key_for(&self, kid: Option<&str>, now: u64) -> Option<&DecodingKey> {
        match kid {
            None => Some(&self.decoding),
            Some(kid) if kid == self.kid => Some(&self.decoding),
            Some(kid) => self
                .previous
                .iter()
                .find(|(k, _, until)| k == kid && now <= *until)
                .map(|(_, key, _)| key),
        }
    }

    pub(crate) fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        jsonwebtoken::encode(&self.header, claims, &self.encoding)
            .map_err(|e| SignError(e.to_string()))
    }

    /// Verifies the signature first, then the claims (`iss`, `aud`, type, header); only a
    /// correctly signed, well-formed token of the `expected` type that is past its expiry at
    /// `now` (seconds) is [`TokenRejected::Expired`].
    pub(crate) fn verify(
        &self,
        token: &str,
        expected: TokenType,
        now: u64,
    ) -> Result<Claims, TokenRejected> {
        // The header is read unverified only to pick the key by `kid`; the signature is checked
        // with that key next, and an unknown or expired `kid` has no key at all.
        let unverified = jsonwebtoken::decode_header(token).map_err(|_| TokenRejected::Invalid)?;
        let key = self
            .key_for(unverified.kid.as_deref(), now)
            .ok_or(TokenRejected::Invalid)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenRejected::Expired,
                    _ => TokenRejected::Invalid,
                }
            })?;
        let h = &data.header;
        // We never mint key locations or embedded keys; a token carrying one was not made here.
        if h.jku.is_some()
            || h.jwk.is_some()
            || h.x5u.is_some()
            || h.x5c.is_some()
            || h.x5t.is_some()
            || h.x5t_s256.is_some()
            || h.typ
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
        {
            return Err(TokenRejected::Invalid);
        }
        let claims = data.claims;
        if claims.token_type != expected || claims.sub.is_empty() {
            return Err(TokenRejected::Invalid);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Err(TokenRejected::Invalid);
        }
        if expected == TokenType::Refresh
            && (claims.fam.as_deref().is_none_or(str::is_empty)
                || claims.jti.as_deref().is_none_or(str::is_empty))
        {
            return Err(TokenRejected::Invalid);
        }
        // Checked last: only a token that is ours in every other respect is merely expired.
        if claims.exp.saturating_add(self.leeway) < now {
            return Err(TokenRejected::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "crudauth";
    const AUD: &str = "crudauth-api";

    fn codec() -> JwtCodec {
        JwtCodec::new(
            &SecretKey::new([7u8; 32]).unwrap(),
            Duration::ZERO,
            ISS,
            AUD,
        )
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn access(exp: u64) -> Claims {
        Claims {
            sub: "42".into(),
            ver: 3,
            exp,
            iat: Some(now()),
            token_type: TokenType::Access,
            scopes: vec!["a".into(), "b".into()],
            fam: None,
            jti: None,
            iss: Some(ISS.into()),
            aud: Some(AUD.into()),
            nbf: None,
        }
    }

    #[test]
    fn round_trip_and_type_separation() {
        let c = codec();
        let token = c.sign(&access(now() + 60)).unwrap();
        let claims = c.verify(&token, TokenType::Access, now()).unwrap();
        assert_eq!(claims.sub, "42");
        assert_eq!(claims.scopes, ["a", "b"]);
        assert_eq!(claims.user_id(), UserId::Int(42));
        assert_eq!(
            c.verify(&token, TokenType::Refresh, now()),
            Err(TokenRejected::Invalid)
        );
    }

    #[test]
    fn expiry_is_told_apart_from_forgery() {
        let c = codec();
        let expired = c.sign(&access(now() - 10)).unwrap();
        assert_eq!(
            c.verify(&expired, TokenType::Access, now()),
            Err(TokenRejected::Expired)
        );
        // Signed with another key: a forgery, even though it is expired too.
        let other = JwtCodec::new(
            &SecretKey::new([8u8; 32]).unwrap(),
            Duration::ZERO,
            ISS,
            AUD,
        );
        let forged = other.sign(&access(now() - 10)).unwrap();
        assert_eq!(
            c.verify(&forged, TokenType::Access, now()),
            Err(TokenRejected::Invalid)
        );
        assert_eq!(
            c.verify("garbage", TokenType::Access, now()),
            Err(TokenRejected::Invalid)
        );
    }

    #[test]
    fn refresh_tokens_need_a_family_and_an_id() {
        let c = codec();
        let mut claims = access(now() + 60);
        claims.token_type = TokenType::Refresh;
        let token = c.sign(&claims).unwrap();
        assert_eq!(
            c.verify(&token, TokenType::Refresh, now()),
            Err(TokenRejected::Invalid)
        );
        claims.fam = Some("f".into());
        claims.jti = Some("j".into());
        let token = c.sign(&claims).unwrap();
        assert!(c.verify(&token, TokenType::Refresh, now()).is_ok());
    }

    #[test]
    fn key_hints_in_the_header_are_refused() {
        let c = codec();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let token = jsonwebtoken::encode(
            &header,
            &access(now() + 60),
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert_eq!(
            c.verify(&token, TokenType::Access, now()),
            Err(TokenRejected::Invalid)
        );
    }

    #[test]
    fn issuer_and_audience_are_required_and_exact() {
        let c = codec();
        let ok = c.sign(&access(now() + 60)).unwrap();
        assert!(c.verify(&ok, TokenType::Access, now()).is_ok());
        type Change = fn(&mut Claims);
        let cases: [(&str, Change); 4] = [
            ("wrong iss", |c| c.iss = Some("someone-else".into())),
            ("missing iss", |c| c.iss = None),
            ("wrong aud", |c| c.aud = Some("another-api".into())),
            ("missing aud", |c| c.aud = None),
        ];
        for (why, change) in cases {
            let mut claims = access(now() + 60);
            change(&mut claims);
            let token = c.sign(&claims).unwrap();
            assert_eq!(
                c.verify(&token, TokenType::Access, now()),
                Err(TokenRejected::Invalid),
                "{why}"
            );
        }
        // Another deployment's configuration refuses this one's tokens.
        let elsewhere = JwtCodec::new(
            &SecretKey::new([7u8; 32]).unwrap(),
            Duration::ZERO,
            ISS,
            "billing-api",
        );
        assert_eq!(
            elsewhere.verify(&ok, TokenType::Access, now()),
            Err(TokenRejected::Invalid)
        );
    }

    #[test]
    fn times_follow_the_callers_clock() {
        let c = codec();
        let t0 = 2_000_000_000;
        let token = c.sign(&access(t0 + 60)).unwrap();
        assert!(c.verify(&token, TokenType::Access, t0 + 60).is_ok());
        assert_eq!(
            c.verify(&token, TokenType::Access, t0 + 61),
            Err(TokenRejected::Expired)
        );
        let mut early = access(t0 + 600);
        early.nbf = Some(t0 + 30);
        let token = c.sign(&early).unwrap();
        assert_eq!(
            c.verify(&token, TokenType::Access, t0),
            Err(TokenRejected::Invalid)
        );
        assert!(c.verify(&token, TokenType::Access, t0 + 30).is_ok());
    }

    #[test]
    fn text_and_integer_subjects() {
        let mut claims = access(1);
        claims.sub = "0042".into();
        assert_eq!(claims.user_id(), UserId::Text("0042".into()));
        claims.sub = "3f2a-uuid".into();
        assert_eq!(claims.user_id(), UserId::Text("3f2a-uuid".into()));
        for (sub, id) in [
            ("0", UserId::Int(0)),
            ("-7", UserId::Int(-7)),
            ("+7", UserId::Text("+7".into())),
            ("-0", UserId::Text("-0".into())),
            ("-07", UserId::Text("-07".into())),
            (
                "99999999999999999999",
                UserId::Text("99999999999999999999".into()),
            ),
        ] {
            claims.sub = sub.into();
            assert_eq!(claims.user_id(), id, "{sub}");
        }
    }
}
