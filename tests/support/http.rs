//! A small HTTP client for end-to-end tests: raw requests, cookies handled by hand so their
//! attributes can be checked.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::Value;

/// One answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as JSON (`Null` when it is not JSON).
    pub json: Value,
}

impl Answer {
    /// The `Set-Cookie` line for `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The `Set-Cookie` line for `name`, parsed into its attributes, if any.
    pub fn parsed_cookie(&self, name: &str) -> Option<SetCookie> {
        self.set_cookie(name).map(|line| SetCookie::parse(&line))
    }

    /// The value a `Set-Cookie` for `name` sets.
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        let line = self.set_cookie(name)?;
        let pair = line.split(';').next()?;
        Some(pair.split_once('=')?.1.to_owned())
    }

    /// `detail` as a string.
    pub fn detail(&self) -> &str {
        self.json["detail"].as_str().unwrap_or("")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One `Set-Cookie` line split into its `name=value` pair and its attributes, so a test can
/// check an attribute exactly (`Path` is `/`, not merely a line containing `Path=/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    /// The whole line, for failure messages.
    pub line: String,
    /// The cookie's name.
    pub name: String,
    /// The cookie's value.
    pub value: String,
    /// The attributes after the pair, in order, trimmed: `("Path", Some("/"))`,
    /// `("HttpOnly", None)`.
    pub attributes: Vec<(String, Option<String>)>,
}

impl SetCookie {
    /// Parses a `Set-Cookie` value: split on `;`, each part trimmed, `key=value` or a flag.
    pub fn parse(line: &str) -> Self {
        let mut parts = line.split(';').map(str::trim);
        let pair = parts.next().unwrap_or("");
        let (name, value) = pair
            .split_once('=')
            .unwrap_or_else(|| panic!("no name=value pair in Set-Cookie: {line}"));
        let attributes = parts
            .filter(|part| !part.is_empty())
            .map(|part| match part.split_once('=') {
                Some((key, value)) => (key.trim().to_owned(), Some(value.trim().to_owned())),
                None => (part.to_owned(), None),
            })
            .collect();
        Self {
            line: line.to_owned(),
            name: name.trim().to_owned(),
            value: value.trim().to_owned(),
            attributes,
        }
    }

    /// Every occurrence of attribute `key` (names compare case-insensitively).
    fn all(&self, key: &str) -> Vec<&Option<String>> {
        self.attributes
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
            .collect()
    }

    /// The value of attribute `key` (`Path`, `Max-Age`, `SameSite`, …), if present. Panics if
    /// it appears more than once or has no value, which no cookie crudauth sets should do.
    pub fn attr(&self, key: &str) -> Option<&str> {
        match self.all(key)[..] {
            [] => None,
            [Some(value)] => Some(value.as_str()),
            [None] => panic!("attribute {key} has no value: {}", self.line),
            _ => panic!("attribute {key} appears more than once: {}", self.line),
        }
    }

    /// Whether flag `key` (`HttpOnly`, `Secure`) is present. Panics if it appears more than
    /// once or carries a value.
    pub fn flag(&self, key: &str) -> bool {
        match self.all(key)[..] {
            [] => false,
            [None] => true,
            [Some(_)] => panic!("flag {key} carries a value: {}", self.line),
            _ => panic!("flag {key} appears more than once: {}", self.line),
        }
    }

    /// The cookie policy's attributes as one tuple: (`HttpOnly`, `Secure`, `SameSite`, `Path`).
    pub fn policy(&self) -> (bool, bool, Option<&str>, Option<&str>) {
        (
            self.flag("HttpOnly"),
            self.flag("Secure"),
            self.attr("SameSite"),
            self.attr("Path"),
        )
    }
}

/// A browser-like client: a cookie jar it updates from answers, plus the CSRF token.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    /// Cookies by name.
    pub cookies: BTreeMap<String, String>,
    /// Extra headers sent on every request.
    pub headers: Vec<(String, String)>,
    client: reqwest::Client,
}

impl Browser {
    /// A fresh browser.
    pub fn new() -> Self {
        Self::default()
    }

    /// A browser that does not follow redirects, so each hop (to an OAuth provider and back)
    /// can be looked at.
    pub fn no_redirects() -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            ..Self::default()
        }
    }

    /// The CSRF token from the cookie jar.
    pub fn csrf(&self) -> String {
        self.cookies.get("csrf_token").cloned().unwrap_or_default()
    }

    /// Sends a request; `body` is JSON (`Some(Value)`), a form (`Form`), or raw bytes.
    pub async fn send(
        &mut self,
        method: &str,
        url: &str,
        body: Body,
        extra: &[(&str, &str)],
    ) -> Answer {
        match self.try_send(method, url, body, extra).await {
            Ok(answer) => answer,
            Err(e) => panic!("{method} {url} failed: {e}"),
        }
    }

    /// Like [`Browser::send`], but a transport error (the server closed the connection) is
    /// returned instead of failing the test.
    pub async fn try_send(
        &mut self,
        method: &str,
        url: &str,
        body: Body,
        extra: &[(&str, &str)],
    ) -> Result<Answer, reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, url);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Form(pairs) => {
                let encoded: String = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish();
                req.header("content-type", "application/x-www-form-urlencoded")
                    .body(encoded)
            }
            Body::Raw(bytes, content_type) => req.header("content-type", content_type).body(bytes),
            Body::Untyped(bytes) => req.body(bytes),
        };
        let res = req.send().await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await?;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let answer = Answer {
            status,
            headers,
            json,
        };
        for line in answer
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let pair = line.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                if line.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        Ok(answer)
    }

    /// GET.
    pub async fn get(&mut self, url: &str) -> Answer {
        self.send("GET", url, Body::None, &[]).await
    }

    /// GET with `extra` headers.
    pub async fn get_with(&mut self, url: &str, extra: &[(&str, &str)]) -> Answer {
        self.send("GET", url, Body::None, extra).await
    }

    /// POST with no body and no extra headers.
    pub async fn post(&mut self, url: &str) -> Answer {
        self.send("POST", url, Body::None, &[]).await
    }

    /// POST with the CSRF header from the jar.
    pub async fn post_csrf(&mut self, url: &str, body: Body) -> Answer {
        let token = self.csrf();
        self.send("POST", url, body, &[("x-csrf-token", &token)])
            .await
    }

    /// DELETE, no body, with the CSRF header from the jar.
    pub async fn delete_csrf(&mut self, url: &str) -> Answer {
        let token = self.csrf();
        self.send("DELETE", url, Body::None, &[("x-csrf-token", &token)])
            .await
    }

    /// Signs in: POSTs the form `username=…&password=…` (nothing else) to `url` (`/login` or
    /// `/token`), with `extra` headers.
    pub async fn sign_in(
        &mut self,
        url: &str,
        username: &str,
        password: &str,
        extra: &[(&str, &str)],
    ) -> Answer {
        let body = form(&[("username", username), ("password", password)]);
        self.send("POST", url, body, extra).await
    }

    /// Signs in at `url` again and again, 200 ms apart, until it answers 200 (returned); fails
    /// the test if that has not happened `within` (a store coming back, say).
    pub async fn sign_in_until_ok(
        &mut self,
        url: &str,
        username: &str,
        password: &str,
        within: Duration,
    ) -> Answer {
        let deadline = Instant::now() + within;
        loop {
            let r = self.sign_in(url, username, password, &[]).await;
            if r.status == 200 {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no successful sign-in within {within:?}: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A request body.
#[derive(Debug)]
pub enum Body {
    /// None.
    None,
    /// JSON.
    Json(Value),
    /// A urlencoded form.
    Form(Vec<(String, String)>),
    /// Raw bytes with a content type.
    Raw(Vec<u8>, &'static str),
    /// Raw bytes with no `Content-Type` header at all.
    Untyped(Vec<u8>),
}

/// A urlencoded form from pairs.
pub fn form(pairs: &[(&str, &str)]) -> Body {
    Body::Form(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::SetCookie;

    #[test]
    fn set_cookie_attributes_are_exact() {
        let c = SetCookie::parse(
            "refresh_token=abc=; HttpOnly; SameSite=Lax; Secure; Path=/auth; Max-Age=0",
        );
        assert_eq!(
            (c.name.as_str(), c.value.as_str()),
            ("refresh_token", "abc=")
        );
        assert_eq!(c.attr("Path"), Some("/auth"), "not `/`");
        assert_eq!(c.attr("path"), Some("/auth"), "names are case-insensitive");
        assert_eq!(c.attr("Max-Age"), Some("0"));
        assert_eq!(c.attr("Domain"), None);
        assert!(c.flag("HttpOnly") && c.flag("Secure"));
        let plain = SetCookie::parse("csrf_token=x;Path=/ ;SameSite=Lax");
        assert_eq!(plain.attr("Path"), Some("/"));
        assert!(!plain.flag("HttpOnly"));
    }
}
