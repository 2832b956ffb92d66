//! The mock's two RS256 signing keys, test fixtures under `tests/fixtures/` (test-only keys,
//! public in the repository; `make_idp_keys.py` there makes them), and the JWS it writes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The `kid` of the key the mock signs with until [`super::MockIdp::rotate_keys`].
pub const KID_1: &str = "mock-idp-key-1";
/// The `kid` of the key the mock signs with after [`super::MockIdp::rotate_keys`].
pub const KID_2: &str = "mock-idp-key-2";

const KEY_1_PEM: &str = include_str!("../../fixtures/idp_key1.pem");
const KEY_2_PEM: &str = include_str!("../../fixtures/idp_key2.pem");
const JWKS_JSON: &str = include_str!("../../fixtures/idp_jwks.json");

/// One signing key: its private half, and its public half as a JWK.
pub(super) struct SigningKey {
    kid: &'static str,
    encoding: EncodingKey,
    /// The public JWK (`kty`, `use`, `alg`, `kid`, `n`, `e`).
    pub(super) jwk: Value,
}

/// Both fixture keys, key 1 first.
pub(super) fn fixture_keys() -> Result<[SigningKey; 2], String> {
    let jwks: Value = serde_json::from_str(JWKS_JSON)
        .map_err(|e| format!("tests/fixtures/idp_jwks.json is not JSON: {e}"))?;
    let load = |pem: &str, kid: &'static str| -> Result<SigningKey, String> {
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("cannot read the PEM of {kid} in tests/fixtures: {e}"))?;
        let jwk = jwks["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "tests/fixtures/idp_jwks.json has no key {kid} \
                     (run python3 tests/fixtures/make_idp_keys.py --jwks)"
                )
            })?;
        Ok(SigningKey { kid, encoding, jwk })
    };
    Ok([load(KEY_1_PEM, KID_1)?, load(KEY_2_PEM, KID_2)?])
}

impl SigningKey {
    /// `claims` as a compact RS256 JWS whose header names this key's `kid`.
    pub(super) fn sign(&self, claims: &Value) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| format!("cannot sign with {}: {e}", self.kid))
    }

    /// `claims` as an unsecured JWT (`alg` `none`, empty signature), still naming this key's
    /// `kid`: what a client must refuse.
    pub(super) fn unsigned(&self, claims: &Value) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": self.kid});
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }
}

/// The token with one bit of its signature flipped: well-formed, but it no longer verifies.
pub(super) fn corrupt_signature(token: &str) -> Result<String, String> {
    let (signed, signature) = token
        .rsplit_once('.')
        .ok_or("a JWS without a signature part")?;
    let mut bytes = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| format!("the signature is not base64url: {e}"))?;
    let last = bytes.last_mut().ok_or("an empty signature")?;
    *last ^= 0x01;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes)))
}
