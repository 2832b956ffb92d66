//! Fernet tokens, the format Python's `cryptography.fernet` writes: how crudauth keeps TOTP
//! secrets at rest (`totp_secret_encrypted`), so tokens from either side read on the other.
//!
//! ```
//! use crudauth_core::mfa::fernet::{Fernet, FernetKey};
//!
//! let old = FernetKey::parse(&FernetKey::generate())?;
//! let token = Fernet::new(vec![old.clone()]).ok_or("no key")?.encrypt(b"JBSWY3DPEHPK3PXP");
//!
//! // Rotation: the new key encrypts from now on, the old one still decrypts.
//! let new = FernetKey::parse(&FernetKey::generate())?;
//! let fernet = Fernet::new(vec![new, old]).ok_or("no key")?;
//! assert_eq!(fernet.decrypt(&token).as_deref(), Some(&b"JBSWY3DPEHPK3PXP"[..]));
//! assert_eq!(fernet.decrypt("not a token"), None);
//! assert_eq!(format!("{fernet:?}"), "Fernet { keys: 2 }");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The format ([spec](https://github.com/fernet/spec/blob/master/Spec.md)): a key is 32 bytes
//! in URL-safe base64, the first 16 signing (HMAC-SHA256) and the last 16 encrypting
//! (AES-128-CBC). A token is the URL-safe base64, padded, of
//! `0x80 | timestamp (u64 big-endian seconds) | IV (16) | ciphertext (PKCS#7) | HMAC (32)`,
//! the HMAC covering everything before it.
//!
//! Reading is as lenient as `cryptography` where a real input could differ, and no more:
//! a key may be padded or not, in the URL-safe or the standard alphabet (Python's decoder
//! takes both, so a key from `openssl rand -base64 32` works there), with whitespace around
//! it. A token may have whitespace around it and may lack its padding. Python also accepts,
//! in a token, the standard alphabet, whitespace inside it and junk after the padding; no
//! Fernet implementation writes those, so they are refused here. There is no age limit on a
//! token, as crudauth decrypts without a `ttl`.

use std::fmt;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::clock::{Clock, SystemClock};

type HmacSha256 = Hmac<Sha256>;
type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

const VERSION: u8 = 0x80;
const KEY_LEN: usize = 32;
const HALF_KEY: usize = 16;
const IV_LEN: usize = 16;
const MAC_LEN: usize = 32;
const BLOCK: usize = 16;
/// Version and timestamp.
const HEADER_LEN: usize = 1 + 8;
/// Header, IV, one ciphertext block (an empty plaintext still pads to one) and the MAC.
const MIN_TOKEN_LEN: usize = HEADER_LEN + IV_LEN + BLOCK + MAC_LEN;
/// How far in the future a token's timestamp may be, under a TTL check (the spec's skew).
#[cfg(test)]
const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// Tokens: URL-safe alphabet, written padded, read with or without padding. Non-zero
/// trailing bits are refused, so each token has one spelling.
const TOKEN_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Keys: written padded; read with or without padding and with any trailing bits, as
/// Python's decoder reads them.
const KEY_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// One Fernet key: a signing half and an encrypting half.
///
/// It has a redacted `Debug` (`FernetKey(***)`) and no `Display`, so a key can't end up
/// in a log by accident.
#[derive(Clone)]
pub struct FernetKey {
    /// HMAC-SHA256 keyed with the first 16 bytes, ready to clone per token.
    mac: HmacSha256,
    /// The AES-128 key, the last 16 bytes.
    encryption: [u8; HALF_KEY],
}

/// Why a text isn't a Fernet key. The message never repeats the text, which may be a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FernetKeyError {
    /// The text isn't base64.
    #[error("not a Fernet key: 32 bytes in URL-safe base64 (44 characters); this isn't base64")]
    NotBase64,
    /// The text is base64, but of the wrong number of bytes.
    #[error(
        "not a Fernet key: 32 bytes in URL-safe base64 (44 characters); this decodes to {len} bytes"
    )]
    WrongLength {
        /// How many bytes the text decodes to.
        len: usize,
    },
}

impl FernetKey {
    /// Reads a key as `Fernet.generate_key()` writes it: 32 bytes in URL-safe base64,
    /// 44 characters with the padding. Surrounding whitespace and missing padding are
    /// fine, and so is the standard alphabet (`+` and `/`), which Python accepts too.
    pub fn parse(text: &str) -> Result<FernetKey, FernetKeyError> {
        let text = text.trim();
        let decoded = if text.contains(['+', '/']) {
            KEY_B64.decode(text.replace('+', "-").replace('/', "_"))
        } else {
            KEY_B64.decode(text)
        };
        let bytes = decoded.map_err(|_| FernetKeyError::NotBase64)?;
        if bytes.len() != KEY_LEN {
            return Err(FernetKeyError::WrongLength { len: bytes.len() });
        }
        let (signing, encrypting) = bytes.split_at(HALF_KEY);
        // HMAC takes a key of any length; the error arm is unreachable but costs nothing.
        let mac = HmacSha256::new_from_slice(signing)
            .map_err(|_| FernetKeyError::WrongLength { len: bytes.len() })?;
        let mut encryption = [0u8; HALF_KEY];
        encryption.copy_from_slice(encrypting);
        Ok(FernetKey { mac, encryption })
    }

    /// A new random key (from the operating system's generator) as text, the way
    /// `Fernet.generate_key()` writes one: 44 characters of URL-safe base64.
    pub fn generate() -> String {
        let mut bytes = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        KEY_B64.encode(bytes)
    }

    /// The token for `plaintext` with this `iv` and `timestamp`.
    fn seal(&self, plaintext: &[u8], iv: [u8; IV_LEN], timestamp: u64) -> String {
        let ciphertext = Aes128CbcEnc::new(&self.encryption.into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
        let mut data = Vec::with_capacity(HEADER_LEN + IV_LEN + ciphertext.len() + MAC_LEN);
        data.push(VERSION);
        data.extend_from_slice(&timestamp.to_be_bytes());
        data.extend_from_slice(&iv);
        data.extend_from_slice(&ciphertext);
        let tag = self.mac.clone().chain_update(&data).finalize().into_bytes();
        data.extend_from_slice(&tag);
        TOKEN_B64.encode(data)
    }

    /// The plaintext of a parsed token, if its MAC is this key's. The MAC is checked (in
    /// constant time) before anything is decrypted.
    fn open(&self, token: &Parsed<'_>) -> Option<Vec<u8>> {
        self.mac
            .clone()
            .chain_update(token.signed)
            .verify_slice(token.tag)
            .ok()?;
        Aes128CbcDec::new(&self.encryption.into(), &token.iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(token.ciphertext)
            .ok()
    }
}

impl fmt::Debug for FernetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FernetKey(***)")
    }
}

/// A token split into its fields; nothing in it is authenticated yet.
struct Parsed<'a> {
    iv: [u8; IV_LEN],
    ciphertext: &'a [u8],
    /// Everything the MAC covers.
    signed: &'a [u8],
    tag: &'a [u8],
}

impl<'a> Parsed<'a> {
    /// Splits decoded token bytes; `None` when too short, of another version, or with a
    /// ciphertext that isn't whole blocks.
    fn split(data: &'a [u8]) -> Option<Parsed<'a>> {
        if data.len() < MIN_TOKEN_LEN || data.first() != Some(&VERSION) {
            return None;
        }
        let (signed, tag) = data.split_at(data.len() - MAC_LEN);
        let rest = &signed[HEADER_LEN..];
        let (iv, ciphertext) = rest.split_at(IV_LEN);
        if ciphertext.len() % BLOCK != 0 {
            return None;
        }
        Some(Parsed {
            iv: iv.try_into().ok()?,
            ciphertext,
            signed,
            tag,
        })
    }
}

/// A key list for rotation, like `MultiFernet`: the first key encrypts, any key decrypts.
///
/// Its `Debug` shows only how many keys it holds.
#[derive(Clone)]
pub struct Fernet {
    /// Never empty; the first encrypts.
    keys: Vec<FernetKey>,
}

impl Fernet {
    /// The key list, the encrypting key first; `None` when `keys` is empty.
    pub fn new(keys: Vec<FernetKey>) -> Option<Fernet> {
        if keys.is_empty() {
            None
        } else {
            Some(Fernet { keys })
        }
    }

    /// A token for `plaintext` under the first key, with a random IV and the current time,
    /// padded URL-safe base64 as `cryptography` writes it.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let mut iv = [0u8; IV_LEN];
        rand::rngs::OsRng.fill_bytes(&mut iv);
        self.encrypt_with(plaintext, iv, SystemClock.now_secs())
    }

    /// The plaintext of `token` under any of the keys, or `None` when it isn't a Fernet
    /// token, was altered, or no key made it. The token's age isn't checked.
    pub fn decrypt(&self, token: &str) -> Option<Vec<u8>> {
        let data = TOKEN_B64.decode(token.trim()).ok()?;
        let parsed = Parsed::split(&data)?;
        self.keys.iter().find_map(|key| key.open(&parsed))
    }

    /// [`encrypt`](Self::encrypt) with a given IV and timestamp.
    pub(crate) fn encrypt_with(
        &self,
        plaintext: &[u8],
        iv: [u8; IV_LEN],
        timestamp: u64,
    ) -> String {
        // `new` refuses an empty list, so there is always a first key.
        match self.keys.first() {
            Some(key) => key.seal(plaintext, iv, timestamp),
            None => String::new(),
        }
    }

    /// [`decrypt`](Self::decrypt) that also refuses a token older than `ttl_secs` at `now`,
    /// or dated more than 60 s after `now` (Python's `decrypt(token, ttl)`; crudauth doesn't
    /// use it, the spec's vectors need it).
    #[cfg(test)]
    pub(crate) fn decrypt_with_ttl(&self, token: &str, ttl_secs: u64, now: u64) -> Option<Vec<u8>> {
        let data = TOKEN_B64.decode(token.trim()).ok()?;
        let parsed = Parsed::split(&data)?;
        let timestamp = u64::from_be_bytes(parsed.signed[1..HEADER_LEN].try_into().ok()?);
        if timestamp.saturating_add(ttl_secs) < now
            || now.saturating_add(MAX_CLOCK_SKEW_SECS) < timestamp
        {
            return None;
        }
        self.keys.iter().find_map(|key| key.open(&parsed))
    }
}

impl fmt::Debug for Fernet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fernet")
            .field("keys", &self.keys.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const GENERATE: &str = include_str!("../../tests/fixtures/fernet-spec/generate.json");
    const VERIFY: &str = include_str!("../../tests/fixtures/fernet-spec/verify.json");
    const INVALID: &str = include_str!("../../tests/fixtures/fernet-spec/invalid.json");
    const CRUDAUTH: &str = include_str!("../../tests/fixtures/crudauth_mfa.json");

    fn vectors(json: &str) -> Vec<Value> {
        let value: Value = serde_json::from_str(json).unwrap();
        let list = value.as_array().unwrap().clone();
        assert!(!list.is_empty());
        list
    }

    fn text<'a>(v: &'a Value, field: &str) -> &'a str {
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field} in {v}"))
    }

    fn unix(rfc3339: &str) -> u64 {
        let at =
            time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
                .unwrap();
        u64::try_from(at.unix_timestamp()).unwrap()
    }

    fn fernet(keys: &[&str]) -> Fernet {
        Fernet::new(keys.iter().map(|k| FernetKey::parse(k).unwrap()).collect()).unwrap()
    }

    fn fresh() -> Fernet {
        fernet(&[&FernetKey::generate()])
    }

    #[test]
    fn spec_generate_vectors() {
        for v in vectors(GENERATE) {
            let iv: Vec<u8> = v["iv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
                .collect();
            let token = fernet(&[text(&v, "secret")]).encrypt_with(
                text(&v, "src").as_bytes(),
                iv.try_into().unwrap(),
                unix(text(&v, "now")),
            );
            assert_eq!(token, text(&v, "token"));
        }
    }

    #[test]
    fn spec_verify_vectors() {
        for v in vectors(VERIFY) {
            let f = fernet(&[text(&v, "secret")]);
            let src = text(&v, "src").as_bytes();
            assert_eq!(f.decrypt(text(&v, "token")).as_deref(), Some(src));
            let ttl = v["ttl_sec"].as_u64().unwrap();
            let now = unix(text(&v, "now"));
            assert_eq!(
                f.decrypt_with_ttl(text(&v, "token"), ttl, now).as_deref(),
                Some(src)
            );
        }
    }

    #[test]
    fn spec_invalid_vectors() {
        let mut only_by_time = Vec::new();
        for v in vectors(INVALID) {
            let f = fernet(&[text(&v, "secret")]);
            let token = text(&v, "token");
            let ttl = v["ttl_sec"].as_u64().unwrap();
            let now = unix(text(&v, "now"));
            assert_eq!(
                f.decrypt_with_ttl(token, ttl, now),
                None,
                "{}",
                text(&v, "desc")
            );
            if f.decrypt(token).is_some() {
                only_by_time.push(text(&v, "desc").to_owned());
            }
        }
        // Without a TTL (how crudauth decrypts) only the two clock vectors read.
        assert_eq!(
            only_by_time,
            ["far-future TS (unacceptable clock skew)", "expired TTL"]
        );
    }

    #[test]
    fn ttl_bounds_are_the_specs() {
        let f = fresh();
        let token = f.encrypt_with(b"x", [7; 16], 1_000);
        assert!(f.decrypt_with_ttl(&token, 60, 1_060).is_some());
        assert!(f.decrypt_with_ttl(&token, 60, 1_061).is_none());
        assert!(f.decrypt_with_ttl(&token, 60, 940).is_some());
        assert!(f.decrypt_with_ttl(&token, 60, 939).is_none());
        // No overflow at the ends of the range.
        let late = f.encrypt_with(b"x", [7; 16], u64::MAX);
        assert!(f.decrypt_with_ttl(&late, u64::MAX, u64::MAX).is_some());
        assert!(f.decrypt_with_ttl(&late, 60, 0).is_none());
        assert!(f.decrypt(&late).is_some());
    }

    #[test]
    fn tokens_look_like_pythons() {
        let f = fresh();
        let before = SystemClock.now_secs();
        let token = f.encrypt(b"hello");
        // 1 + 8 + 16 + 16 + 32 = 73 bytes: 100 characters, padded, starting "gAAAAA".
        assert_eq!(token.len(), 100);
        assert!(token.starts_with("gAAAAA") && token.ends_with("=="));
        let data = TOKEN_B64.decode(&token).unwrap();
        let stamp = u64::from_be_bytes(data[1..9].try_into().unwrap());
        assert!(stamp >= before && stamp <= SystemClock.now_secs());
        assert_eq!(f.decrypt(&token).as_deref(), Some(&b"hello"[..]));
        // Fresh IVs: the same plaintext twice gives two tokens.
        assert_ne!(f.encrypt(b"hello")[25..], f.encrypt(b"hello")[25..]);
        for len in [0, 1, 15, 16, 17, 32, 100] {
            let plain = vec![0xa5; len];
            assert_eq!(f.decrypt(&f.encrypt(&plain)), Some(plain));
        }
    }

    #[test]
    fn rotation() {
        let (a, b, c) = (
            FernetKey::generate(),
            FernetKey::generate(),
            FernetKey::generate(),
        );
        let under_a = fernet(&[&a]).encrypt(b"secret");
        let rotated = fernet(&[&b, &a]);
        assert_eq!(rotated.decrypt(&under_a).as_deref(), Some(&b"secret"[..]));
        // The first key encrypts.
        let under_b = rotated.encrypt(b"secret");
        assert_eq!(
            fernet(&[&b]).decrypt(&under_b).as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(fernet(&[&a]).decrypt(&under_b), None);
        // A key that isn't in the list.
        assert_eq!(fernet(&[&c]).decrypt(&under_a), None);
        assert_eq!(fernet(&[&b, &c]).decrypt(&under_a), None);
        assert!(Fernet::new(Vec::new()).is_none());
    }

    #[test]
    fn any_altered_byte_is_refused() {
        let f = fresh();
        let token = f.encrypt(b"443OUD4FNKJXGFNWHXVY7UPFZXIPFUMK");
        let data = TOKEN_B64.decode(&token).unwrap();
        for i in 0..data.len() {
            for bit in [0x01, 0x80] {
                let mut bad = data.clone();
                bad[i] ^= bit;
                assert_eq!(f.decrypt(&TOKEN_B64.encode(&bad)), None, "byte {i}");
            }
        }
        // Every character changed, too (including the trailing bits before the padding).
        let chars: Vec<char> = token.chars().collect();
        for i in 0..chars.len() {
            for other in ['A', 'B', 'g', '-', '_', '='] {
                if other == chars[i] {
                    continue;
                }
                let mut bad = chars.clone();
                bad[i] = other;
                let bad: String = bad.into_iter().collect();
                assert_eq!(f.decrypt(&bad), None, "{bad}");
            }
        }
        // Cut short or lengthened.
        for cut in 1..data.len() {
            assert_eq!(f.decrypt(&TOKEN_B64.encode(&data[..cut])), None);
        }
        let mut longer = data.clone();
        longer.extend_from_slice(&[0; 16]);
        assert_eq!(f.decrypt(&TOKEN_B64.encode(&longer)), None);
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let f = fresh();
        let valid = f.encrypt(b"x");
        for junk in [
            "",
            " ",
            "=",
            "====",
            "gA==",
            "gAAAAA",
            "not a token",
            "%%%%",
            "\u{e9}t\u{e9}",
            &"A".repeat(100),
            &"g".repeat(4096),
            &valid[..valid.len() - 4],
            &valid.replace('=', "A"),
            &format!("{valid}AAAA"),
        ] {
            assert_eq!(f.decrypt(junk), None, "{junk:?}");
        }
        // A MAC-valid token of another version is refused.
        let key = FernetKey::parse(&FernetKey::generate()).unwrap();
        let mut data = TOKEN_B64
            .decode(Fernet::new(vec![key.clone()]).unwrap().encrypt(b"x"))
            .unwrap();
        data[0] = 0x81;
        data.truncate(data.len() - MAC_LEN);
        let tag = key.mac.clone().chain_update(&data).finalize().into_bytes();
        data.extend_from_slice(&tag);
        assert_eq!(
            Fernet::new(vec![key])
                .unwrap()
                .decrypt(&TOKEN_B64.encode(&data)),
            None
        );
    }

    #[test]
    fn token_spelling() {
        let v = &vectors(VERIFY)[0];
        let f = fernet(&[text(v, "secret")]);
        let token = text(v, "token");
        let plain = Some(b"hello".to_vec());
        assert_eq!(f.decrypt(&format!(" {token}\n")), plain);
        assert_eq!(f.decrypt(token.trim_end_matches('=')), plain);
        // Python would read these; no Fernet implementation writes them.
        assert!(token.contains('_'));
        assert_eq!(f.decrypt(&token.replace('_', "/")), None);
        assert_eq!(
            f.decrypt(&format!("{}\n{}", &token[..50], &token[50..])),
            None
        );
    }

    #[test]
    fn keys_parse_like_pythons() {
        let text = FernetKey::generate();
        assert_eq!(text.len(), 44);
        assert!(text.ends_with('='));
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)));
        assert_ne!(FernetKey::generate(), text);
        let spec = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
        let token = fernet(&[spec]).encrypt(b"k");
        for spelling in [
            spec.to_owned(),
            spec.trim_end_matches('=').to_owned(),
            format!("  {spec}\n"),
            spec.replace('-', "+").replace('_', "/"),
        ] {
            assert_eq!(
                fernet(&[&spelling]).decrypt(&token).as_deref(),
                Some(&b"k"[..]),
                "{spelling}"
            );
        }
        assert_eq!(
            FernetKey::parse("").unwrap_err(),
            FernetKeyError::WrongLength { len: 0 }
        );
        assert_eq!(
            FernetKey::parse("%%%%").unwrap_err(),
            FernetKeyError::NotBase64
        );
        assert_eq!(
            FernetKey::parse("c2hvcnQ=").unwrap_err(),
            FernetKeyError::WrongLength { len: 5 }
        );
        let long = KEY_B64.encode([0u8; 33]);
        assert_eq!(
            FernetKey::parse(&long).unwrap_err(),
            FernetKeyError::WrongLength { len: 33 }
        );
        // The message explains the format and never repeats the input.
        let err = FernetKey::parse("my-secret-key-value")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("not a Fernet key: 32 bytes in URL-safe base64 (44 characters)"),
            "{err}"
        );
        assert!(!err.contains("my-secret"));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let spec = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
        let key = FernetKey::parse(spec).unwrap();
        assert_eq!(format!("{key:?}"), "FernetKey(***)");
        assert_eq!(format!("{key:#?}"), "FernetKey(***)");
        let f = fernet(&[spec, &FernetKey::generate()]);
        assert_eq!(format!("{f:?}"), "Fernet { keys: 2 }");
        let pretty = format!("{f:#?}");
        assert!(
            !pretty.contains("cw_0x") && !pretty.contains('['),
            "{pretty}"
        );
        let raw = KEY_B64.decode(spec).unwrap();
        for shown in [format!("{key:?}"), format!("{f:?}"), pretty] {
            assert!(!shown.contains(&format!("{:?}", &raw[..4])));
            assert!(!shown.contains(&crate::secret::sha256_hex(&raw)[..8]));
        }
    }

    /// Tokens Python crudauth 0.8.2 wrote (`tests/fixtures/make_crudauth_mfa_fixture.py`).
    #[test]
    fn reads_crudauths_own_tokens() {
        let fx: Value = serde_json::from_str(CRUDAUTH).unwrap();
        assert!(text(&fx, "made_by").starts_with("crudauth 0.8.2 crudauth.mfa.cipher"));
        let k1 = fx["keys"][0].as_str().unwrap();
        let k2 = fx["keys"][1].as_str().unwrap();
        let secret = text(&fx, "secret");
        assert_eq!(secret.len(), 32);
        let pending = format!("3:{secret}");
        let first = fernet(&[k1]);
        let second = fernet(&[k2]);
        let both = fernet(&[k1, k2]);
        let reversed = fernet(&[k2, k1]);

        for f in [&first, &both, &reversed] {
            assert_eq!(
                f.decrypt(text(&fx, "confirmed")).as_deref(),
                Some(secret.as_bytes())
            );
            assert_eq!(
                f.decrypt(text(&fx, "pending")).as_deref(),
                Some(pending.as_bytes())
            );
        }
        for f in [&second, &both, &reversed] {
            assert_eq!(
                f.decrypt(text(&fx, "rotated")).as_deref(),
                Some(secret.as_bytes())
            );
        }
        assert_eq!(first.decrypt(text(&fx, "rotated")), None);
        assert_eq!(second.decrypt(text(&fx, "confirmed")), None);
        assert_eq!(second.decrypt(text(&fx, "pending")), None);

        // What Rust writes has Python's shape: same length for the same plaintext.
        let ours = both.encrypt(secret.as_bytes());
        assert_eq!(ours.len(), text(&fx, "confirmed").len());
        assert_eq!(first.decrypt(&ours).as_deref(), Some(secret.as_bytes()));
    }
}
