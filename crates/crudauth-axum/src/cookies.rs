//! Reading the cookies crudauth uses and writing them with the configured policy.

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};

/// The session cookie.
pub const SESSION_COOKIE: &str = "session_id";
/// The CSRF cookie (readable by scripts).
pub const CSRF_COOKIE: &str = "csrf_token";

/// The cookie policy: Secure, SameSite and Path for every cookie crudauth sets.
///
/// ```
/// use crudauth_axum::CookieConfig;
/// let local = CookieConfig::default().secure(false);
/// ```
#[derive(Debug, Clone)]
pub struct CookieConfig {
    pub(crate) secure: bool,
    pub(crate) same_site: SameSite,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            secure: true,
            same_site: SameSite::Lax,
            path: "/".into(),
            domain: None,
        }
    }
}

impl CookieConfig {
    /// Sets the Secure attribute (on by default; turn off only for plain-http development).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// SameSite=Strict instead of Lax. (SameSite=None is refused for session cookies.)
    pub fn strict(mut self) -> Self {
        self.same_site = SameSite::Strict;
        self
    }

    /// The cookie path (default `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// A cookie domain (default: host-only).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// A `Set-Cookie` value. `max_age` `None` makes a browser-session cookie.
    pub(crate) fn set(
        &self,
        name: &str,
        value: &str,
        http_only: bool,
        max_age: Option<u64>,
    ) -> HeaderValue {
        let mut cookie = Cookie::build((name.to_owned(), value.to_owned()))
            .http_only(http_only)
            .secure(self.secure)
            .same_site(self.same_site)
            .path(self.path.clone());
        if let Some(domain) = &self.domain {
            cookie = cookie.domain(domain.clone());
        }
        if let Some(secs) = max_age {
            cookie = cookie.max_age(cookie::time::Duration::seconds(
                secs.min(i64::MAX as u64) as i64
            ));
        }
        header_value(cookie.build().to_string())
    }

    /// A `Set-Cookie` value deleting `name`, with the attributes it was set with.
    pub(crate) fn clear(&self, name: &str, http_only: bool) -> HeaderValue {
        let mut cookie = Cookie::build((name.to_owned(), ""))
            .http_only(http_only)
            .secure(self.secure)
            .same_site(self.same_site)
            .path(self.path.clone())
            .max_age(cookie::time::Duration::ZERO)
            .expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
        if let Some(domain) = &self.domain {
            cookie = cookie.domain(domain.clone());
        }
        header_value(cookie.build().to_string())
    }
}

fn header_value(s: String) -> HeaderValue {
    // Cookie values we write are base64url or hex, so this always holds.
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of cookie `name` in the request, if any (the first one wins). Runs on every
/// authenticated request, so it scans bytes rather than validating and splitting whole headers.
pub(crate) fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .find_map(|header| value_in(header.as_bytes(), name.as_bytes()))
        // A value that is not text cannot be one of ours: read as absent.
        .and_then(|value| std::str::from_utf8(value).ok())
        .filter(|value| !value.is_empty())
}

/// The value of the first `name=value` pair in one `Cookie` header, unquoted.
fn value_in<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut rest = header;
    loop {
        rest = rest.trim_ascii_start();
        if let Some(after) = rest.strip_prefix(name) {
            if let [b'=', value @ ..] = after.trim_ascii_start() {
                let end = value.iter().position(|b| *b == b';').unwrap_or(value.len());
                let value = value[..end].trim_ascii();
                return Some(match value {
                    [b'"', inner @ .., b'"'] => inner,
                    _ => value,
                });
            }
        }
        let next = rest.iter().position(|b| *b == b';')?;
        rest = &rest[next + 1..];
    }
}

/// Appends `Set-Cookie` headers.
pub(crate) fn append(headers: &mut HeaderMap, values: impl IntoIterator<Item = HeaderValue>) {
    for v in values {
        headers.append(SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_named_cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; session_id=abc; csrf_token=\"x\""),
        );
        assert_eq!(read(&h, "session_id"), Some("abc"));
        assert_eq!(read(&h, "csrf_token"), Some("x"));
        assert_eq!(read(&h, "missing"), None);
        h.insert(COOKIE, HeaderValue::from_static("session_id="));
        assert_eq!(read(&h, "session_id"), None);
        h.insert(
            COOKIE,
            HeaderValue::from_static("x_session_id=no;\tsession_id = yes ;"),
        );
        assert_eq!(read(&h, "session_id"), Some("yes"));
        assert_eq!(read(&h, "session"), None, "a prefix is not a name");
        h.insert(COOKIE, HeaderValue::from_static("junk; =; a"));
        h.append(COOKIE, HeaderValue::from_static("session_id=second"));
        assert_eq!(
            read(&h, "session_id"),
            Some("second"),
            "every Cookie header is read"
        );
        h.insert(
            COOKIE,
            HeaderValue::from_bytes(b"session_id=\xff\xfe").unwrap(),
        );
        assert_eq!(read(&h, "session_id"), None, "not text: absent");
    }

    #[test]
    fn writes_policy_attributes() {
        let c = CookieConfig::default();
        let set = c.set("session_id", "v", true, None);
        let s = set.to_str().unwrap();
        assert!(
            s.contains("HttpOnly")
                && s.contains("Secure")
                && s.contains("SameSite=Lax")
                && s.contains("Path=/")
        );
        assert!(!s.contains("Max-Age"));
        let s = c.set("csrf_token", "v", false, Some(2_592_000));
        assert!(s.to_str().unwrap().contains("Max-Age=2592000"));
        assert!(!s.to_str().unwrap().contains("HttpOnly"));
        let cleared = c.clear("session_id", true);
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
    }
}
