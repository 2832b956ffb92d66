//! Reading the cookies crudauth uses and writing them with the configured policy.

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};

/// The session cookie.
pub const SESSION_COOKIE: &str = "session_id";
/// The CSRF cookie (readable by scripts).
pub const CSRF_COOKIE: &str = "csrf_token";

/// The `__Host-` name prefix ([`CookieConfig::host_prefix`]).
pub const HOST_PREFIX: &str = "__Host-";

/// The cookie policy: Secure, SameSite and Path for every cookie crudauth sets, and the
/// optional `__Host-` name prefix.
///
/// ```
/// use crudauth_axum::CookieConfig;
/// let local = CookieConfig::default().secure(false);
/// // `__Host-session_id`, `__Host-csrf_token`, `__Host-refresh_token`: Secure, Path=/, no
/// // Domain, so no sibling subdomain can plant or overwrite them.
/// let hardened = CookieConfig::default().host_prefix(true);
/// ```
#[derive(Debug, Clone)]
pub struct CookieConfig {
    pub(crate) secure: bool,
    pub(crate) same_site: SameSite,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) host_prefix: bool,
}

/// A request carried more than one cookie of one name with different values: a sibling
/// subdomain (or a network attacker on plain http) may have planted one, and browsers send the
/// narrower path first, so neither can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ambiguous;

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            secure: true,
            same_site: SameSite::Lax,
            path: "/".into(),
            domain: None,
            host_prefix: false,
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

    /// Names every cookie with the `__Host-` prefix (`__Host-session_id`, `__Host-csrf_token`,
    /// `__Host-refresh_token`; off by default, as crudauth's names are unprefixed). Browsers
    /// only accept such a cookie when it is Secure, has `Path=/` and no `Domain`, so a
    /// sibling subdomain cannot set one (cookie tossing); `build()` refuses the prefix with
    /// Secure off, another path, a domain, or another refresh-cookie path. With it on, the
    /// unprefixed names are ignored on requests. Your front end reads the CSRF token from
    /// `__Host-csrf_token` (or from the login answer's `csrf_token`).
    pub fn host_prefix(mut self, on: bool) -> Self {
        self.host_prefix = on;
        self
    }

    /// Refuses a policy browsers would reject: the `__Host-` prefix needs Secure, `Path=/`
    /// and no `Domain`, on the refresh cookie too.
    pub(crate) fn check(
        &self,
        bearer: Option<&crate::BearerTransport>,
    ) -> Result<(), crate::ConfigError> {
        if !self.host_prefix {
            return Ok(());
        }
        let refuse = |why: &str| {
            Err(crate::ConfigError::Invalid(format!(
                "the __Host- cookie prefix requires {why}"
            )))
        };
        if !self.secure {
            return refuse("Secure cookies: drop .secure(false) or the prefix");
        }
        if self.path != "/" {
            return refuse("Path=/: drop .path(…) or the prefix");
        }
        if self.domain.is_some() {
            return refuse("a host-only cookie: drop .domain(…) or the prefix");
        }
        let refresh_path = bearer.and_then(|b| b.refresh_cookie_path.as_deref());
        if refresh_path.is_some_and(|p| p != "/") {
            return refuse(
                "Path=/ on the refresh cookie: drop .refresh_cookie_path(…) or the prefix",
            );
        }
        Ok(())
    }

    /// The name a cookie goes by under this policy (`session_id` or `__Host-session_id`).
    pub(crate) fn name(&self, base: &str) -> String {
        if self.host_prefix {
            format!("{HOST_PREFIX}{base}")
        } else {
            base.to_owned()
        }
    }

    fn prefix(&self) -> &'static [u8] {
        if self.host_prefix {
            HOST_PREFIX.as_bytes()
        } else {
            b""
        }
    }

    /// The value of cookie `base` (under this policy's name) in the request, if any: the
    /// first one.
    pub(crate) fn read<'a>(&self, headers: &'a HeaderMap, base: &str) -> Option<&'a str> {
        read_named(headers, self.prefix(), base.as_bytes())
    }

    /// The value of cookie `base` (under this policy's name), refusing a request that carries
    /// it more than once with different values, in any order and any `Cookie` header. The
    /// same value repeated is one cookie.
    pub(crate) fn read_unique<'a>(
        &self,
        headers: &'a HeaderMap,
        base: &str,
    ) -> Result<Option<&'a str>, Ambiguous> {
        let (prefix, name) = (self.prefix(), base.as_bytes());
        let mut found: Option<&'a [u8]> = None;
        for header in headers.get_all(COOKIE) {
            let mut rest = header.as_bytes();
            while let Some((value, after)) = next_value(rest, prefix, name) {
                rest = after;
                if value.is_empty() {
                    continue;
                }
                match found {
                    Some(first) if first != value => return Err(Ambiguous),
                    _ => found = Some(value),
                }
            }
        }
        Ok(found.and_then(|v| std::str::from_utf8(v).ok()))
    }

    /// A `Set-Cookie` value. `max_age` `None` makes a browser-session cookie.
    pub(crate) fn set(
        &self,
        name: &str,
        value: &str,
        http_only: bool,
        max_age: Option<u64>,
    ) -> HeaderValue {
        self.build(name, value, http_only, self.same_site, max_age)
    }

    /// A `Set-Cookie` value deleting `name`, with the attributes it was set with.
    pub(crate) fn clear(&self, name: &str, http_only: bool) -> HeaderValue {
        self.build(name, "", http_only, self.same_site, Some(0))
    }

    /// The HttpOnly `SameSite=Lax` cookie `name` whatever the policy's SameSite: the OAuth
    /// state cookie, which must ride the top-level redirect back from the provider (a `Strict`
    /// one would not). `max_age` 0 deletes it.
    pub(crate) fn set_lax(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        self.build(name, value, true, SameSite::Lax, Some(max_age))
    }

    fn build(
        &self,
        name: &str,
        value: &str,
        http_only: bool,
        same_site: SameSite,
        max_age: Option<u64>,
    ) -> HeaderValue {
        let mut cookie = Cookie::build((self.name(name), value.to_owned()))
            .http_only(http_only)
            .secure(self.secure)
            .same_site(same_site)
            .path(self.path.clone());
        if let Some(domain) = &self.domain {
            cookie = cookie.domain(domain.clone());
        }
        match max_age {
            // A deletion also carries an epoch `Expires`, for browsers that ignore `Max-Age`.
            Some(0) => {
                cookie = cookie
                    .max_age(cookie::time::Duration::ZERO)
                    .expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
            }
            Some(secs) => {
                cookie = cookie.max_age(cookie::time::Duration::seconds(
                    secs.min(i64::MAX as u64) as i64
                ));
            }
            None => {}
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
#[cfg(test)]
pub(crate) fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    read_named(headers, b"", name.as_bytes())
}

/// The first non-empty value of the cookie named `prefix` + `name`, if any. An empty one is
/// skipped, as [`CookieConfig::read_unique`] skips it: a planted `session_id=` must not hide
/// the real cookie from one reader and not from the other (found by the `cookie_header` fuzz
/// target).
fn read_named<'a>(headers: &'a HeaderMap, prefix: &[u8], name: &[u8]) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .find_map(|header| {
            let mut rest = header.as_bytes();
            while let Some((value, after)) = next_value(rest, prefix, name) {
                if !value.is_empty() {
                    return Some(value);
                }
                rest = after;
            }
            None
        })
        // A value that is not text cannot be one of ours: read as absent.
        .and_then(|value| std::str::from_utf8(value).ok())
}

/// The first `prefix name=value` pair in (the rest of) one `Cookie` header: its value,
/// unquoted, and what follows it.
// Kept beside `cookie` (which writes every Set-Cookie): 34-52 ns to find `session_id` and
// check for a second one in a 5-cookie header, against 420 ns for `Cookie::split_parse`
// (it allocates and validates every pair; release, 6 Dec 2026).
fn next_value<'a>(header: &'a [u8], prefix: &[u8], name: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let mut rest = header;
    loop {
        rest = rest.trim_ascii_start();
        if let Some(after) = rest.strip_prefix(prefix).and_then(|r| r.strip_prefix(name)) {
            if let [b'=', value @ ..] = after.trim_ascii_start() {
                let end = memchr::memchr(b';', value).unwrap_or(value.len());
                let remainder = value.get(end + 1..).unwrap_or(&[]);
                let value = value[..end].trim_ascii();
                let value = match value {
                    [b'"', inner @ .., b'"'] => inner,
                    _ => value,
                };
                return Some((value, remainder));
            }
        }
        let next = memchr::memchr(b';', rest)?;
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

    /// Regression (fuzz target `cookie_header`): an empty cookie in front of the real one hid
    /// it from the first-match read while the unique read saw it.
    #[test]
    fn an_empty_cookie_hides_nothing_from_either_reader() {
        let c = CookieConfig::default();
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("session_id=; as d=a; session_id=@;ed"),
        );
        assert_eq!(c.read(&h, "session_id"), Some("@"));
        assert_eq!(c.read_unique(&h, "session_id"), Ok(Some("@")));
        h.insert(COOKIE, HeaderValue::from_static("session_id=\"\""));
        h.append(COOKIE, HeaderValue::from_static("session_id=real"));
        assert_eq!(c.read(&h, "session_id"), Some("real"));
        assert_eq!(c.read_unique(&h, "session_id"), Ok(Some("real")));
    }

    #[test]
    fn duplicate_values_are_ambiguous_in_any_order() {
        let c = CookieConfig::default();
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("session_id=a; x=1; session_id=b"),
        );
        assert_eq!(c.read_unique(&h, "session_id"), Err(Ambiguous));
        h.insert(COOKIE, HeaderValue::from_static("session_id=b"));
        h.append(COOKIE, HeaderValue::from_static("session_id=a"));
        assert_eq!(
            c.read_unique(&h, "session_id"),
            Err(Ambiguous),
            "across headers"
        );
        h.insert(
            COOKIE,
            HeaderValue::from_static("session_id=a; session_id=a"),
        );
        assert_eq!(
            c.read_unique(&h, "session_id"),
            Ok(Some("a")),
            "one value twice"
        );
        h.insert(
            COOKIE,
            HeaderValue::from_static("session_id=; session_id=a"),
        );
        assert_eq!(
            c.read_unique(&h, "session_id"),
            Ok(Some("a")),
            "empty is absent"
        );
        h.insert(COOKIE, HeaderValue::from_static("other=1"));
        assert_eq!(c.read_unique(&h, "session_id"), Ok(None));
    }

    #[test]
    fn the_host_prefix_names_and_reads_prefixed_cookies_only() {
        let c = CookieConfig::default().host_prefix(true);
        let set = c.set("session_id", "v", true, None);
        assert!(set.to_str().unwrap().starts_with("__Host-session_id=v;"));
        let cleared = c.clear("csrf_token", false);
        assert!(cleared.to_str().unwrap().starts_with("__Host-csrf_token=;"));
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("session_id=planted; __Host-session_id=mine"),
        );
        assert_eq!(c.read(&h, "session_id"), Some("mine"));
        assert_eq!(c.read_unique(&h, "session_id"), Ok(Some("mine")));
        h.insert(COOKIE, HeaderValue::from_static("session_id=planted"));
        assert_eq!(
            c.read_unique(&h, "session_id"),
            Ok(None),
            "unprefixed is ignored"
        );
        assert!(c.check(None).is_ok());
        assert!(c.clone().secure(false).check(None).is_err());
        assert!(c.clone().path("/app").check(None).is_err());
        assert!(c.clone().domain("example.com").check(None).is_err());
        let bearer = crate::BearerTransport::default().refresh_cookie_path("/auth");
        assert!(c.check(Some(&bearer)).is_err());
        assert!(CookieConfig::default()
            .path("/app")
            .check(Some(&bearer))
            .is_ok());
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
