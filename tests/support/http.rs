//! A small HTTP client for end-to-end tests: raw requests, cookies handled by hand so their
//! attributes can be checked.

use std::collections::BTreeMap;

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
