//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a stable API). Each
//! takes the fuzzer's bytes, runs one of the parsers a request reaches, and panics when a
//! property the rest of the crate relies on does not hold.
//!
//! ```
//! crudauth_axum::fuzzing::cookie_header(b"session_id=abc; csrf_token=def");
//! crudauth_axum::fuzzing::forwarded_for(b"\x01203.0.113.9, 10.0.0.1");
//! ```

use std::net::{IpAddr, Ipv4Addr};

use axum::body::Bytes;
use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::body::{BodyType, Fields, RawBody};
use crate::client_ip::{client_address, ip_key, ClientAddress};
use crate::cookies::CookieConfig;

/// The header values in `data`, one per line (lines that are not a valid header value are
/// dropped), at most four.
fn header_lines(data: &[u8]) -> Vec<HeaderValue> {
    data.split(|b| *b == b'\n')
        .take(4)
        .filter_map(|line| HeaderValue::from_bytes(line).ok())
        .collect()
}

/// The `Cookie` header scan: each line of `data` is one `Cookie` header. A value found is part
/// of a header and holds no `;`; a unique read that answers a value answers a non-empty one
/// that the first-match read sees too (or the first match was empty).
pub fn cookie_header(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for value in header_lines(data) {
        headers.append(COOKIE, value);
    }
    for policy in [
        CookieConfig::default(),
        CookieConfig::default().host_prefix(true),
    ] {
        for name in ["session_id", "csrf_token", "oauth_state"] {
            let first = policy.read(&headers, name);
            if let Some(v) = first {
                assert!(!v.contains(';'), "a cookie value holds a ';'");
                assert!(
                    headers
                        .get_all(COOKIE)
                        .iter()
                        .any(|h| contains(h.as_bytes(), v.as_bytes())),
                    "a cookie value that is in no header"
                );
            }
            if let Ok(Some(v)) = policy.read_unique(&headers, name) {
                assert!(!v.is_empty(), "an empty unique cookie value");
                assert!(!v.contains(';'));
                assert!(
                    first.is_some(),
                    "unique read found a cookie the first read missed"
                );
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A JSON body as the JSON routes read it, fields taken as `/register` and `/login` take
/// them. Never a panic; an accepted body is an object.
pub fn json_body(data: &[u8]) {
    let raw = RawBody {
        bytes: Bytes::copy_from_slice(data),
        kind: BodyType::Json,
    };
    if let Ok(mut fields) = Fields::json(&raw) {
        let _ = fields.string("username");
        let _ = fields.optional_string("name");
        let _ = fields.email("email");
        let _ = fields.boolean("remember_me", false);
        let _ = fields.finish();
    }
}

/// A form body: the first line of `data` is the `Content-Type` (urlencoded, or multipart with
/// its boundary), the rest the body. It goes through `/login`'s password form and through the
/// CSRF layer's `csrf_token` lookup; an urlencoded token is the first `csrf_token` pair.
pub fn form_body(data: &[u8]) {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (content_type, body) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let Ok(content_type) = HeaderValue::from_bytes(content_type) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(axum::http::header::CONTENT_TYPE, content_type);
    let kind = BodyType::of(&headers);
    let raw = RawBody {
        bytes: Bytes::copy_from_slice(body),
        kind: kind.clone(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(_) => return,
    };
    runtime.block_on(async {
        if let Ok((mut fields, _identifier, _password)) = Fields::password_form(&raw).await {
            let _ = fields.boolean("remember_me", false);
            let _ = fields.finish();
        }
        let token = crate::layer::csrf::form_token(&kind, &raw.bytes).await;
        if kind == BodyType::UrlEncoded {
            let expected = form_urlencoded::parse(body)
                .find(|(name, _)| name == "csrf_token")
                .map(|(_, value)| value.into_owned());
            assert_eq!(token, expected, "the CSRF layer read another csrf_token");
        }
    });
}

/// The email check of `/register` and the recovery routes, and the address they keep: an
/// accepted one, as kept, has an `@` with text on both sides and no control character.
pub fn email(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if crate::email_address::check(input).is_ok() {
        let kept = crate::email_address::trimmed(input);
        let (local, domain) = kept.rsplit_once('@').expect("an accepted address has an @");
        assert!(!local.is_empty() && !domain.is_empty(), "{input:?}");
        assert!(!kept.chars().any(char::is_control), "{input:?}");
    }
}

/// `X-Forwarded-For`: the first byte of `data` is the number of trusted hops (0–3), each
/// following line one header. With no hops the socket peer is the answer; the key written in
/// place is the key of the address's text.
pub fn forwarded_for(data: &[u8]) {
    let Some((hops, rest)) = data.split_first() else {
        return;
    };
    let hops = usize::from(hops % 4);
    let mut headers = HeaderMap::new();
    for value in header_lines(rest) {
        headers.append(HeaderName::from_static("x-forwarded-for"), value);
    }
    let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let address = client_address(&headers, Some(peer), hops);
    let ClientAddress::Ip(ip) = address else {
        panic!("a request with a peer has an address");
    };
    if hops == 0 {
        assert_eq!(ip, peer, "no trusted hop, yet not the peer");
    }
    let mut key = String::new();
    assert!(address.write_key(&mut key));
    assert_eq!(key, ip_key(&address.text()), "two keys for one address");
}

/// The OAuth callback's query (`/oauth/{provider}/callback?…`): each parameter is its first
/// occurrence, and a `redirect_to` kept is a path on this site.
pub fn oauth_callback_query(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = format!("/oauth/oidc/callback?{query}").parse::<Uri>() else {
        return;
    };
    #[cfg(feature = "oauth")]
    {
        let params = crate::routes::oauth::query(&uri);
        let raw = uri.query().unwrap_or("").as_bytes();
        for (name, value) in &params {
            let first = form_urlencoded::parse(raw)
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned());
            assert_eq!(first.as_ref(), Some(value), "not the first {name:?}");
        }
    }
    for (_, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if let Some(path) = crate::routes::recovery::same_origin_path(Some(value.into_owned())) {
            assert!(path.starts_with('/'), "{path:?}");
            assert!(!path.starts_with("//") && !path.contains('\\'), "{path:?}");
            assert!(!path.chars().any(char::is_control), "{path:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_points_take_ordinary_input() {
        cookie_header(b"session_id=abc; csrf_token=def\nsession_id=abc");
        json_body(br#"{"username": "ada", "email": "ada@example.com", "remember_me": true}"#);
        form_body(b"application/x-www-form-urlencoded\nusername=ada&password=x&csrf_token=t");
        form_body(
            b"multipart/form-data; boundary=X\n--X\r\nContent-Disposition: form-data; \
              name=\"csrf_token\"\r\n\r\nt\r\n--X--\r\n",
        );
        email(b"ada@example.com");
        forwarded_for(b"\x01203.0.113.9, 10.0.0.1");
        oauth_callback_query(b"code=c&state=s&redirect_to=/dashboard&state=other");
    }
}
