//! Request bodies: JSON objects, urlencoded and multipart forms, validated field by field
//! into FastAPI-shaped 422 entries (`{type, loc: ["body", field], msg}`), so a frontend
//! written for crudauth reads the same errors. Never a 500.
//!
//! As on FastAPI, a body is read by what its `Content-Type` says it is: JSON routes parse
//! `application/json` and `application/*+json` only, form routes read
//! `application/x-www-form-urlencoded` and `multipart/form-data` only, and any other body
//! has no fields.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::LengthLimitError;
use serde_json::{json, Map, Value};

use crate::error::AuthError;

/// The most any crudauth route accepts (64 KiB); larger bodies are refused with 413.
pub const MAX_BODY: usize = 64 * 1024;

/// The 400 detail of a body that could not be read or parsed (FastAPI's wording).
const UNPARSABLE: &str = "There was an error parsing the body";

/// The 400 detail of a multipart body whose parts cannot be parsed (Starlette's wording).
const BAD_MULTIPART: &str = "Invalid multipart data.";

/// A request body's fields, with the validation errors found so far.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    map: Map<String, Value>,
    errors: Vec<Value>,
}

/// What a request's `Content-Type` says its body is. Media types compare case-insensitively
/// and parameters (`; charset=utf-8`) are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyType {
    /// `application/json` or `application/<anything>+json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    UrlEncoded,
    /// `multipart/form-data`, with the whole header value (its boundary parameter included).
    Multipart(String),
    /// Anything else, or no `Content-Type` at all.
    Other,
}

impl BodyType {
    /// The body type a request's headers declare.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
            return Self::Other;
        };
        let essence = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.split_once('/') {
            Some(("application", "json")) => Self::Json,
            Some(("application", sub)) if sub.ends_with("+json") => Self::Json,
            Some(("application", "x-www-form-urlencoded")) => Self::UrlEncoded,
            Some(("multipart", "form-data")) => Self::Multipart(value.to_owned()),
            _ => Self::Other,
        }
    }
}

/// A raw request body, capped at [`MAX_BODY`], with the type its `Content-Type` declares.
/// Past the cap the answer is a JSON 413; a body that cannot be read at all (malformed chunked
/// encoding, a client that went away) is a 400.
pub(crate) struct RawBody {
    /// The body's bytes.
    pub(crate) bytes: Bytes,
    /// What the request's `Content-Type` says they are.
    pub(crate) kind: BodyType,
}

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = AuthError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let kind = BodyType::of(req.headers());
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(read_error)?;
        Ok(RawBody { bytes, kind })
    }
}

/// 413 when the body went past the cap (a `LengthLimitError` somewhere in the error's source
/// chain), else 400: the body could not be read, which is the client's doing, never a 5xx.
pub(crate) fn read_error(err: axum::Error) -> AuthError {
    let inner = err.into_inner();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*inner);
    while let Some(e) = cause {
        if e.is::<LengthLimitError>() {
            return AuthError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
        }
        cause = e.source();
    }
    AuthError::bad_request(UNPARSABLE)
}

/// Where JSON decoding failed, as Python's `json` reports it (and so FastAPI's `loc`): a
/// 0-based character offset into the body, the body's length when it ended too soon. serde
/// reports a 1-based line and column instead.
fn json_error_position(body: &[u8], error: &serde_json::Error) -> usize {
    let text = String::from_utf8_lossy(body);
    if error.is_eof() {
        return text.chars().count();
    }
    let line_start: usize = text
        .split_inclusive('\n')
        .take(error.line().saturating_sub(1))
        .map(str::len)
        .sum();
    let end = line_start
        .saturating_add(error.column().saturating_sub(1))
        .min(text.len());
    text.get(..end).map_or(0, |before| before.chars().count())
}

fn entry(kind: &str, loc: &[&str], msg: &str) -> Value {
    let mut path = vec![Value::from("body")];
    path.extend(loc.iter().map(|s| Value::from(*s)));
    json!({ "type": kind, "loc": path, "msg": msg })
}

impl Fields {
    /// Parses a JSON object body. An empty body is `missing` at `["body"]`; a body whose
    /// `Content-Type` is not JSON, or JSON that is not an object, is `model_attributes_type`;
    /// malformed JSON is `json_invalid`. All are 422.
    pub(crate) fn json(body: &RawBody) -> Result<Self, AuthError> {
        if body.bytes.is_empty() {
            return Err(AuthError::validation(vec![entry(
                "missing",
                &[],
                "Field required",
            )]));
        }
        let not_an_object = || {
            AuthError::validation(vec![entry(
                "model_attributes_type",
                &[],
                "Input should be a valid dictionary or object to extract fields from",
            )])
        };
        if body.kind != BodyType::Json {
            return Err(not_an_object());
        }
        match serde_json::from_slice::<Value>(&body.bytes) {
            Ok(Value::Object(map)) => Ok(Self {
                map,
                errors: Vec::new(),
            }),
            Ok(_) => Err(not_an_object()),
            Err(e) => Err(AuthError::validation(vec![json!({
                "type": "json_invalid", "loc": ["body", json_error_position(&body.bytes, &e)],
                "msg": "JSON decode error", "ctx": {"error": e.to_string()}
            })])),
        }
    }

    /// Form fields from name/value pairs, as Starlette and FastAPI read them: the last value
    /// of a repeated field wins, and an empty value counts as missing.
    fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut map = Map::new();
        for (k, v) in pairs {
            map.insert(k, Value::String(v));
        }
        map.retain(|_, v| v.as_str().is_some_and(|s| !s.is_empty()));
        Self {
            map,
            errors: Vec::new(),
        }
    }

    /// Parses an `application/x-www-form-urlencoded` body (the last value of a repeated field
    /// wins; an empty value counts as missing).
    pub(crate) fn form(body: &[u8]) -> Self {
        Self::from_pairs(
            form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())),
        )
    }

    /// Parses a `multipart/form-data` body (`content_type` is the whole header value): its
    /// text parts, with the rules of [`Fields::form`]; file parts are ignored. A missing
    /// boundary or a malformed body is a 400.
    async fn multipart(content_type: &str, body: Bytes) -> Result<Self, AuthError> {
        let req = Request::builder()
            .header(CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .map_err(|_| AuthError::bad_request(UNPARSABLE))?;
        let mut parts = Multipart::from_request(req, &())
            .await
            .map_err(|_| AuthError::bad_request("Missing boundary in multipart."))?;
        let mut pairs = Vec::new();
        while let Some(part) = parts
            .next_field()
            .await
            .map_err(|_| AuthError::bad_request(BAD_MULTIPART))?
        {
            let Some(name) = part.name().map(str::to_owned) else {
                continue;
            };
            if part.file_name().is_some() {
                continue;
            }
            let value = part
                .text()
                .await
                .map_err(|_| AuthError::bad_request(BAD_MULTIPART))?;
            pairs.push((name, value));
        }
        Ok(Self::from_pairs(pairs))
    }

    /// A form body's fields: urlencoded or multipart; any other body has none.
    async fn any_form(body: &RawBody) -> Result<Self, AuthError> {
        match &body.kind {
            BodyType::UrlEncoded => Ok(Self::form(&body.bytes)),
            BodyType::Multipart(_) if body.bytes.is_empty() => Ok(Self::default()),
            BodyType::Multipart(content_type) => {
                Self::multipart(content_type, body.bytes.clone()).await
            }
            BodyType::Json | BodyType::Other => Ok(Self::default()),
        }
    }

    /// The OAuth2 password form of `/login` and `/token` (urlencoded or multipart):
    /// `username`, `password`, and an optional `grant_type` that must be `password`. The
    /// fields come back for the route's own extras; call [`Fields::finish`] after reading
    /// them. Only a multipart body that cannot be parsed is an error here (400).
    pub(crate) async fn password_form(body: &RawBody) -> Result<(Self, String, String), AuthError> {
        let mut f = Self::any_form(body).await?;
        let identifier = f.string("username");
        let password = f.string("password");
        if f.optional_string("grant_type")
            .is_some_and(|g| g != "password")
        {
            f.push(json!({"type": "string_pattern_mismatch", "loc": ["body", "grant_type"],
                "msg": "String should match pattern '^password$'", "ctx": {"pattern": "^password$"}}));
        }
        Ok((f, identifier, password))
    }

    /// A required string field.
    pub(crate) fn string(&mut self, name: &str) -> String {
        self.required_string(name).unwrap_or_default()
    }

    /// A required string field: `None` when it is missing or not a string (recorded: absent
    /// is `missing`, `null` or another type is `string_type`).
    pub(crate) fn required_string(&mut self, name: &str) -> Option<String> {
        match self.map.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            None => {
                self.errors
                    .push(entry("missing", &[name], "Field required"));
                None
            }
            Some(_) => {
                self.errors.push(entry(
                    "string_type",
                    &[name],
                    "Input should be a valid string",
                ));
                None
            }
        }
    }

    /// An optional string field.
    pub(crate) fn optional_string(&mut self, name: &str) -> Option<String> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.errors.push(entry(
                    "string_type",
                    &[name],
                    "Input should be a valid string",
                ));
                None
            }
        }
    }

    /// An optional boolean (JSON bool, or a form's `true/false/1/0/on/off/yes/no`).
    pub(crate) fn boolean(&mut self, name: &str, default: bool) -> bool {
        match self.map.get(name) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" | "t" | "y" => true,
                "false" | "0" | "off" | "no" | "f" | "n" | "" => false,
                _ => {
                    self.errors.push(entry(
                        "bool_parsing",
                        &[name],
                        "Input should be a valid boolean, unable to interpret input",
                    ));
                    default
                }
            },
            Some(_) => {
                self.errors.push(entry(
                    "bool_type",
                    &[name],
                    "Input should be a valid boolean",
                ));
                default
            }
        }
    }

    /// A required email address field, validated.
    pub(crate) fn email(&mut self, name: &str) -> String {
        let Some(value) = self.required_string(name) else {
            return String::new();
        };
        if let Err(reason) = crate::email_address::check(&value) {
            self.errors.push(json!({
                "type": "value_error", "loc": ["body", name],
                "msg": format!("value is not a valid email address: {reason}"),
                "ctx": {"reason": reason}
            }));
        }
        crate::email_address::trimmed(&value).to_owned()
    }

    /// Records a validation entry produced elsewhere (the password policy).
    pub(crate) fn push(&mut self, entry: Value) {
        self.errors.push(entry);
    }

    /// The collected errors as one 422, or `Ok`.
    pub(crate) fn finish(self) -> Result<(), AuthError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(AuthError::validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: BodyType, bytes: &[u8]) -> RawBody {
        RawBody {
            bytes: Bytes::copy_from_slice(bytes),
            kind,
        }
    }

    fn json_body(bytes: &[u8]) -> RawBody {
        raw(BodyType::Json, bytes)
    }

    fn typed(content_type: &str) -> BodyType {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type.parse().unwrap());
        BodyType::of(&headers)
    }

    /// The 422 entries of `err` as `(type, loc)` pairs.
    fn entries(err: &AuthError) -> Vec<(String, Value)> {
        err.detail()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["type"].as_str().unwrap().to_owned(), e["loc"].clone()))
            .collect()
    }

    #[test]
    fn missing_and_mistyped_fields_name_the_field() {
        let mut f = Fields::json(&json_body(br#"{"email": 5}"#)).unwrap();
        f.string("email");
        f.string("password");
        let err = f.finish().unwrap_err();
        assert_eq!(err.status(), 422);
        assert_eq!(
            entries(&err),
            [
                ("string_type".to_owned(), json!(["body", "email"])),
                ("missing".to_owned(), json!(["body", "password"])),
            ]
        );
    }

    /// Regression (fuzz target `email`): the check trims what Python's `strip` trims, `\x1c`
    /// to `\x1f` included, and the address kept must be the one checked, not a second account
    /// for `ada@example.com` behind an invisible separator.
    #[test]
    fn the_address_kept_is_the_address_checked() {
        let mut f = Fields::json(&json_body(
            "{\"email\": \"\\u001cada@example.com\\u001f \"}".as_bytes(),
        ))
        .unwrap();
        assert_eq!(f.email("email"), "ada@example.com");
        assert!(f.finish().is_ok());
    }

    #[test]
    fn null_is_a_mistyped_string_not_a_missing_one() {
        let mut f = Fields::json(&json_body(br#"{"email": null, "note": null}"#)).unwrap();
        assert_eq!(f.required_string("email"), None);
        assert_eq!(
            f.optional_string("note"),
            None,
            "optional fields accept null"
        );
        assert_eq!(
            entries(&f.finish().unwrap_err()),
            [("string_type".to_owned(), json!(["body", "email"]))]
        );
    }

    #[test]
    fn malformed_json_is_422() {
        let err = Fields::json(&json_body(b"{nope")).unwrap_err();
        assert_eq!(err.status(), 422);
        assert_eq!(entries(&err)[0].0, "json_invalid");
        // Python's offsets: 0-based characters, the length at a premature end.
        for (body, at) in [
            (&b"hello"[..], 0),
            (b"{", 1),
            (b"{\"a\":1,}", 7),
            (b"{\n  \"a\": 1,\n  x\n}", 14),
            ("{\"é\": 1,}".as_bytes(), 8),
        ] {
            let err = Fields::json(&json_body(body)).unwrap_err();
            assert_eq!(entries(&err)[0].1, json!(["body", at]), "{body:?}");
        }
        let err = Fields::json(&json_body(b"[1]")).unwrap_err();
        assert_eq!(
            entries(&err),
            [("model_attributes_type".to_owned(), json!(["body"]))]
        );
    }

    #[test]
    fn an_empty_body_is_missing() {
        for kind in [BodyType::Json, BodyType::Other] {
            let err = Fields::json(&raw(kind, b"")).unwrap_err();
            assert_eq!(entries(&err), [("missing".to_owned(), json!(["body"]))]);
        }
    }

    #[test]
    fn json_routes_read_only_json_content_types() {
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.api+json",
            "application/merge-patch+JSON ; q=1",
        ] {
            assert_eq!(typed(ct), BodyType::Json, "{ct}");
        }
        assert_eq!(
            typed("application/x-www-form-urlencoded; charset=utf-8"),
            BodyType::UrlEncoded
        );
        assert_eq!(
            typed("Multipart/Form-Data; boundary=x"),
            BodyType::Multipart("Multipart/Form-Data; boundary=x".into())
        );
        for ct in ["text/plain", "text/json", "application/jsonx", "json", ""] {
            assert_eq!(typed(ct), BodyType::Other, "{ct}");
        }
        assert_eq!(BodyType::of(&HeaderMap::new()), BodyType::Other);

        let object = br#"{"email": "ada@example.com"}"#;
        for kind in [
            BodyType::Other,
            BodyType::UrlEncoded,
            BodyType::Multipart("multipart/form-data; boundary=x".into()),
        ] {
            let err = Fields::json(&raw(kind, object)).unwrap_err();
            assert_eq!(
                entries(&err),
                [("model_attributes_type".to_owned(), json!(["body"]))]
            );
        }
        assert!(Fields::json(&raw(typed("application/vnd.api+json"), object)).is_ok());
    }

    #[test]
    fn forms_and_booleans() {
        let mut f = Fields::form(b"username=ada&password=p%20w&remember_me=false&remember_me=true");
        assert_eq!(f.string("password"), "p w");
        assert!(f.boolean("remember_me", false), "the last value wins");
        assert!(f.finish().is_ok());
        let mut f = Fields::form(b"remember_me=maybe");
        f.boolean("remember_me", false);
        assert!(f.finish().is_err());
    }

    #[test]
    fn repeated_form_fields_last_wins_and_empty_is_missing() {
        let mut f = Fields::form(b"username=nobody&username=ada&password=");
        assert_eq!(f.string("username"), "ada");
        assert_eq!(f.required_string("password"), None);
        assert_eq!(
            entries(&f.finish().unwrap_err()),
            [("missing".to_owned(), json!(["body", "password"]))]
        );
        let mut f = Fields::form(b"username=ada&username=");
        assert_eq!(f.required_string("username"), None, "a last empty value");
    }

    fn multipart_body(parts: &[(&str, Option<&str>, &str)]) -> Vec<u8> {
        let mut out = String::new();
        for (name, file, value) in parts {
            out.push_str("--XyZ\r\n");
            match file {
                Some(f) => out.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: text/plain\r\n\r\n"
                )),
                None => out.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                )),
            }
            out.push_str(value);
            out.push_str("\r\n");
        }
        out.push_str("--XyZ--\r\n");
        out.into_bytes()
    }

    #[tokio::test]
    async fn password_forms_urlencoded_and_multipart() {
        let form = raw(
            BodyType::UrlEncoded,
            b"username=ada&password=pw&grant_type=password",
        );
        let (f, user, pw) = Fields::password_form(&form).await.unwrap();
        assert_eq!((user.as_str(), pw.as_str()), ("ada", "pw"));
        assert!(f.finish().is_ok());

        let body = multipart_body(&[
            ("username", None, "nobody"),
            ("username", None, "ada"),
            ("password", None, "p w"),
            ("avatar", Some("a.txt"), "file bytes"),
            ("password", Some("p.txt"), "not the password"),
            ("remember_me", None, "true"),
        ]);
        let mp = raw(typed("multipart/form-data; boundary=XyZ"), &body);
        let (mut f, user, pw) = Fields::password_form(&mp).await.unwrap();
        assert_eq!((user.as_str(), pw.as_str()), ("ada", "p w"));
        assert!(f.boolean("remember_me", false));
        assert!(f.finish().is_ok());

        let body = multipart_body(&[("username", None, ""), ("password", None, "pw")]);
        let mp = raw(typed("multipart/form-data; boundary=XyZ"), &body);
        let (f, _, _) = Fields::password_form(&mp).await.unwrap();
        assert_eq!(
            entries(&f.finish().unwrap_err()),
            [("missing".to_owned(), json!(["body", "username"]))]
        );
    }

    #[tokio::test]
    async fn other_bodies_have_no_form_fields() {
        for kind in [BodyType::Json, BodyType::Other] {
            let body = raw(kind, br#"{"username": "ada", "password": "pw"}"#);
            let (f, _, _) = Fields::password_form(&body).await.unwrap();
            assert_eq!(
                entries(&f.finish().unwrap_err()),
                [
                    ("missing".to_owned(), json!(["body", "username"])),
                    ("missing".to_owned(), json!(["body", "password"])),
                ]
            );
        }
    }

    #[tokio::test]
    async fn broken_multipart_is_400() {
        let no_boundary = raw(typed("multipart/form-data"), b"username=ada");
        let err = Fields::password_form(&no_boundary).await.unwrap_err();
        assert_eq!(err.status(), 400);
        let truncated = raw(
            typed("multipart/form-data; boundary=XyZ"),
            b"--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nada",
        );
        let err = Fields::password_form(&truncated).await.unwrap_err();
        assert_eq!(
            (err.status(), err.detail()),
            (StatusCode::BAD_REQUEST, &json!(BAD_MULTIPART))
        );
    }

    #[tokio::test]
    async fn read_errors_are_413_past_the_cap_else_400() {
        let big = Request::new(axum::body::Body::from(vec![b'a'; MAX_BODY + 1]));
        let err = RawBody::from_request(big, &()).await.err().unwrap();
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let broken = futures_stream_error();
        let err = RawBody::from_request(broken, &()).await.err().unwrap();
        assert_eq!(
            (err.status(), err.detail()),
            (StatusCode::BAD_REQUEST, &json!(UNPARSABLE))
        );
        let ok = Request::new(axum::body::Body::from(vec![b'a'; MAX_BODY]));
        assert!(
            RawBody::from_request(ok, &()).await.is_ok(),
            "the cap itself is fine"
        );
    }

    /// A request whose body fails mid-read, as a client that aborts leaves it.
    fn futures_stream_error() -> Request {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"{\"a\":")),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "gone",
            )),
        ];
        Request::new(axum::body::Body::from_stream(futures_util::stream::iter(
            chunks,
        )))
    }
}
