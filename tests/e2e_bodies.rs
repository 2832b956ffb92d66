//! End to end over HTTP: how request bodies are read, as crudauth on FastAPI reads them. The
//! Content-Type decides (JSON routes read JSON only, form routes urlencoded and multipart
//! only), 422 entries name each field once, a repeated form field's last value wins, an empty
//! one is missing (and no sign-in attempt), and a body that cannot be read is 400, not 413.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crudauth_core::limit::LockoutConfig;

use crudauth_tests::app::{spawn, Backend, Options, TestApp};
use crudauth_tests::http::{form, Answer, Body, Browser};

const PW: &str = "correct horse battery";
const NOT_AN_OBJECT: &str = "Input should be a valid dictionary or object to extract fields from";
const BOUNDARY: &str = "multipart/form-data; boundary=----crudauthXyZ";

/// An app whose `/register` answers 200 with the new user (no email delivery), so a second
/// registration of the same address tells whether the first one created anything.
async fn plain_app(backend: Backend) -> TestApp {
    let mut options = Options::new(backend);
    options.email = false;
    spawn(options).await
}

/// The 422 entries as `(type, loc)` pairs, after checking no entry echoes the input.
fn entries(r: &Answer) -> Vec<(String, Value)> {
    assert_eq!(r.status, 422, "{:?}", r.json);
    let list = r.json["detail"].as_array().unwrap();
    list.iter()
        .map(|e| {
            assert!(e.get("input").is_none(), "never echoes input: {e}");
            (e["type"].as_str().unwrap().to_owned(), e["loc"].clone())
        })
        .collect()
}

fn one(kind: &str, loc: Value) -> Vec<(String, Value)> {
    vec![(kind.to_owned(), loc)]
}

/// A multipart/form-data body (boundary [`BOUNDARY`]) of text parts, and file parts where a
/// file name is given.
fn multipart(parts: &[(&str, Option<&str>, &str)]) -> Body {
    let mut out = String::new();
    for (name, file, value) in parts {
        out.push_str("------crudauthXyZ\r\n");
        match file {
            Some(file) => out.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )),
            None => out.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"
            )),
        }
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("------crudauthXyZ--\r\n");
    Body::Raw(out.into_bytes(), BOUNDARY)
}

fn ada_json() -> Vec<u8> {
    json!({"email": "ada@example.com", "username": "ada", "password": PW})
        .to_string()
        .into_bytes()
}

async fn json_routes_read_json_content_types_only(backend: Backend) {
    let app = plain_app(backend).await;
    let url = app.url("/register");
    let mut b = Browser::new();
    for body in [
        Body::Raw(ada_json(), "text/plain"),
        Body::Raw(ada_json(), "application/x-www-form-urlencoded"),
        Body::Untyped(ada_json()),
    ] {
        let r = b.send("POST", &url, body, &[]).await;
        assert_eq!(entries(&r), one("model_attributes_type", json!(["body"])));
        assert_eq!(r.json["detail"][0]["msg"], NOT_AN_OBJECT);
    }
    // Nothing was created: ada cannot sign in, and her address still registers as new.
    let r = b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert_eq!(r.status, 401);
    let r = b
        .send(
            "POST",
            &url,
            Body::Raw(ada_json(), "application/json; charset=utf-8"),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["email"], "ada@example.com");
    let grace = json!({"email": "grace@example.com", "username": "grace", "password": PW});
    let r = b
        .send(
            "POST",
            &url,
            Body::Raw(grace.to_string().into_bytes(), "Application/VND.api+JSON"),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["username"], "grace");
}

async fn json_validation_entries(backend: Backend) {
    let app = plain_app(backend).await;
    let url = app.url("/register");
    let mut b = Browser::new();
    for raw in [Body::Raw(Vec::new(), "application/json"), Body::None] {
        let r = b.send("POST", &url, raw, &[]).await;
        assert_eq!(entries(&r), one("missing", json!(["body"])));
    }
    let r = b
        .send(
            "POST",
            &url,
            Body::Json(json!({"email": null, "username": "ada", "password": PW})),
            &[],
        )
        .await;
    assert_eq!(entries(&r), one("string_type", json!(["body", "email"])));
    assert_eq!(r.json["detail"][0]["msg"], "Input should be a valid string");
    let r = b
        .send(
            "POST",
            &url,
            Body::Json(json!({"email": "ada@example.com", "username": "ada"})),
            &[],
        )
        .await;
    assert_eq!(entries(&r), one("missing", json!(["body", "password"])));
    let r = b
        .send(
            "POST",
            &url,
            Body::Json(json!({"email": "ada@example.com", "username": "ada", "password": 5})),
            &[],
        )
        .await;
    assert_eq!(entries(&r), one("string_type", json!(["body", "password"])));

    // The same for /change-password's new password.
    app.user("grace@example.com", "grace", PW).await;
    let mut grace = app.signed_in("grace", PW).await;
    let r = grace
        .post_csrf(
            &app.url("/change-password"),
            Body::Json(json!({"current_password": PW})),
        )
        .await;
    assert_eq!(entries(&r), one("missing", json!(["body", "new_password"])));
    let r = grace
        .post_csrf(
            &app.url("/change-password"),
            Body::Json(json!({"current_password": PW, "new_password": null})),
        )
        .await;
    assert_eq!(
        entries(&r),
        one("string_type", json!(["body", "new_password"]))
    );
    let r = grace
        .post_csrf(
            &app.url("/change-password"),
            Body::Raw(
                json!({"current_password": PW, "new_password": "new password 1"})
                    .to_string()
                    .into_bytes(),
                "text/plain",
            ),
        )
        .await;
    assert_eq!(entries(&r), one("model_attributes_type", json!(["body"])));
    assert_eq!(
        Browser::new()
            .sign_in(&app.url("/login"), "grace", PW, &[])
            .await
            .status,
        200,
        "the password did not change"
    );
}

async fn login_reads_forms_only(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let url = app.url("/login");
    let both_missing = vec![
        ("missing".to_owned(), json!(["body", "username"])),
        ("missing".to_owned(), json!(["body", "password"])),
    ];
    let fields = format!("username=ada&password={}", PW.replace(' ', "+"));
    for body in [
        Body::Json(json!({"username": "ada", "password": PW})),
        Body::Raw(fields.clone().into_bytes(), "text/plain"),
        Body::Untyped(fields.into_bytes()),
        Body::None,
    ] {
        let r = post_fresh(&url, body).await;
        assert_eq!(entries(&r), both_missing);
        assert!(r.headers.get("set-cookie").is_none());
    }

    let mut b = Browser::new();
    let r = b
        .send(
            "POST",
            &url,
            multipart(&[
                ("username", None, "ada"),
                ("password", None, PW),
                ("avatar", Some("me.png"), "\u{1}binary"),
                ("remember_me", None, "true"),
            ]),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["username"], "ada");
    assert!(r
        .set_cookie("session_id")
        .unwrap()
        .contains("Max-Age=2592000"));
    assert_eq!(b.get(&app.url("/me")).await.status, 200);

    // The last value of a repeated field wins, urlencoded and multipart alike.
    let r = post_fresh(
        &url,
        form(&[
            ("username", "nobody"),
            ("username", "ada"),
            ("password", PW),
        ]),
    )
    .await;
    assert_eq!((r.status, &r.json["username"]), (200, &json!("ada")));
    let r = post_fresh(
        &url,
        form(&[
            ("username", "ada"),
            ("username", "nobody"),
            ("password", PW),
        ]),
    )
    .await;
    assert_eq!(r.status, 401, "the first value is not the one read");
    let r = post_fresh(
        &url,
        multipart(&[
            ("username", None, "nobody"),
            ("password", None, PW),
            ("username", None, "ada"),
        ]),
    )
    .await;
    assert_eq!((r.status, &r.json["username"]), (200, &json!("ada")));

    // A multipart body without its boundary, or cut short, cannot be parsed.
    let r = post_fresh(
        &url,
        Body::Raw(b"username=ada".to_vec(), "multipart/form-data"),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = post_fresh(
        &url,
        Body::Raw(
            b"------crudauthXyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nada"
                .to_vec(),
            BOUNDARY,
        ),
    )
    .await;
    assert_eq!((r.status, r.detail()), (400, "Invalid multipart data."));
}

async fn empty_fields_are_missing_and_not_attempts(backend: Backend) {
    let mut o = Options::new(backend);
    o.customize = Box::new(|b| {
        b.lockout(LockoutConfig {
            max_attempts: 2,
            ..LockoutConfig::default()
        })
    });
    let app = spawn(o).await;
    app.user("ada@example.com", "ada", PW).await;
    let url = app.url("/login");
    for _ in 0..5 {
        let r = post_fresh(&url, form(&[("username", ""), ("password", "wrong one!")])).await;
        assert_eq!(entries(&r), one("missing", json!(["body", "username"])));
        assert_eq!(r.json["detail"][0]["msg"], "Field required");
        let r = post_fresh(
            &url,
            multipart(&[("username", None, "ada"), ("password", None, "")]),
        )
        .await;
        assert_eq!(entries(&r), one("missing", json!(["body", "password"])));
    }
    // None of those counted: this address and ada have both of their 2 attempts left, and
    // the lockout is live (the third failure is refused).
    for _ in 0..2 {
        let r = Browser::new().sign_in(&url, "ada", "wrong one!", &[]).await;
        assert_eq!(
            (r.status, r.detail()),
            (401, "Incorrect username or password")
        );
    }
    let r = Browser::new().sign_in(&url, "ada", PW, &[]).await;
    assert_eq!(r.status, 429, "{:?}", r.json);
}

async fn token_reads_multipart(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let url = app.url("/token");
    let mut b = Browser::new();
    let r = b
        .send(
            "POST",
            &url,
            multipart(&[
                ("grant_type", None, "password"),
                ("username", None, "ada"),
                ("password", None, PW),
                ("scope", None, ""),
                ("client_id", None, "spa"),
            ]),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["token_type"], "bearer");
    let token = r.json["access_token"].as_str().unwrap().to_owned();
    let me = Browser::new()
        .get_with(
            &app.url("/me"),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!((me.status, &me.json["username"]), (200, &json!("ada")));
    let r = post_fresh(
        &url,
        multipart(&[
            ("grant_type", None, "client_credentials"),
            ("username", None, "ada"),
            ("password", None, PW),
        ]),
    )
    .await;
    assert_eq!(
        entries(&r),
        one("string_pattern_mismatch", json!(["body", "grant_type"]))
    );
    let r = post_fresh(&url, Body::Json(json!({"username": "ada", "password": PW}))).await;
    assert_eq!(entries(&r).len(), 2, "a JSON body has no form fields");
}

/// Sends `head` then `body` as raw bytes on a fresh connection and returns the status code
/// and the body of the answer.
async fn raw_exchange(app: &TestApp, head: &str, body: &[u8]) -> (u16, Value) {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer and close before it has read everything: no error then.
    let _ = stream.write_all(body).await;
    let _ = stream.flush().await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    // One answer is enough; stop at the end of its (fixed-length) body.
                    if complete(&answer) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// Whether `answer` holds a whole response with a `content-length` body.
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .is_some_and(|n| body.len() >= n)
}

async fn unreadable_bodies_are_400_and_oversized_413(backend: Backend) {
    let app = plain_app(backend).await;
    let host = app.base.trim_start_matches("http://").to_owned();
    for path in ["/register", "/login"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let (status, json) = raw_exchange(&app, &head, b"zz\r\n{\"a\":1}\r\n0\r\n\r\n").await;
        assert_eq!(
            (status, &json),
            (
                400,
                &json!({"detail": "There was an error parsing the body"})
            ),
            "{path}"
        );
        // Well-formed chunks past the 64 KiB cap are the 413.
        let chunk = vec![b' '; 16 * 1024];
        let mut body = Vec::new();
        for _ in 0..5 {
            body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            body.extend_from_slice(&chunk);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        let (status, json) = raw_exchange(&app, &head, &body).await;
        assert_eq!(
            (status, &json),
            (413, &json!({"detail": "Request body too large"})),
            "{path}"
        );
    }
    // And with a Content-Length, over HTTP as a client sends it.
    let r = post_fresh(
        &app.url("/register"),
        Body::Raw(vec![b' '; 64 * 1024 + 1], "application/json"),
    )
    .await;
    assert_eq!((r.status, r.detail()), (413, "Request body too large"));
    // The server is still well.
    let r = post_fresh(
        &app.url("/register"),
        Body::Json(json!({"email": "a@example.com", "username": "a", "password": PW})),
    )
    .await;
    assert_eq!(r.status, 200);
}

macro_rules! all_cases {
    ($backend:expr) => {
        crudauth_tests::per_backend!($backend; json_routes_read_json_content_types_only,
            json_validation_entries, login_reads_forms_only,
            empty_fields_are_missing_and_not_attempts, token_reads_multipart,
            unreadable_bodies_are_400_and_oversized_413);
    };
}

mod memory {
    all_cases!(crudauth_tests::app::Backend::Memory);
}

mod redis {
    all_cases!(crudauth_tests::app::Backend::Redis);
}

/// POSTs `body` to `url` from a browser with no cookies.
async fn post_fresh(url: &str, body: Body) -> Answer {
    Browser::new().send("POST", url, body, &[]).await
}
