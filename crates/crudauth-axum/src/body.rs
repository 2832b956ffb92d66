//! Request bodies: JSON objects and urlencoded forms, validated field by field into
//! FastAPI-shaped 422 entries (`{type, loc: ["body", field], msg}`), so a frontend written for
//! crudauth reads the same errors. Never a 500.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::{json, Map, Value};

use crate::error::AuthError;

/// The most any crudauth route accepts (64 KiB); larger bodies are refused with 413.
pub const MAX_BODY: usize = 64 * 1024;

/// A request body's fields, with the validation errors found so far.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    map: Map<String, Value>,
    errors: Vec<Value>,
}

/// Raw body bytes, capped at [`MAX_BODY`], with a JSON 413 past that.
pub(crate) struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = AuthError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                AuthError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "Request body too large",
                )
            })?;
        Ok(RawBody(body))
    }
}

fn entry(kind: &str, loc: &[&str], msg: &str) -> Value {
    let mut path = vec![Value::from("body")];
    path.extend(loc.iter().map(|s| Value::from(*s)));
    json!({ "type": kind, "loc": path, "msg": msg })
}

impl Fields {
    /// Parses a JSON object body. Malformed JSON or a non-object is a 422.
    pub(crate) fn json(body: &[u8]) -> Result<Self, AuthError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self {
                map,
                errors: Vec::new(),
            }),
            Ok(_) => Err(AuthError::validation(vec![entry(
                "model_attributes_type",
                &[],
                "Input should be a valid dictionary or object to extract fields from",
            )])),
            Err(e) => Err(AuthError::validation(vec![json!({
                "type": "json_invalid", "loc": ["body", e.column()], "msg": "JSON decode error",
                "ctx": {"error": e.to_string()}
            })])),
        }
    }

    /// Parses an `application/x-www-form-urlencoded` body (the first value of a repeated field
    /// wins).
    pub(crate) fn form(body: &[u8]) -> Self {
        let mut map = Map::new();
        for (k, v) in form_urlencoded::parse(body) {
            map.entry(k.into_owned())
                .or_insert(Value::String(v.into_owned()));
        }
        Self {
            map,
            errors: Vec::new(),
        }
    }

    /// The OAuth2 password form of `/login` and `/token`: `username`, `password`, and an
    /// optional `grant_type` that must be `password`. The fields come back for the route's own
    /// extras; call [`Fields::finish`] after reading them.
    pub(crate) fn password_form(body: &[u8]) -> (Self, String, String) {
        let mut f = Self::form(body);
        let identifier = f.string("username");
        let password = f.string("password");
        if f.optional_string("grant_type")
            .is_some_and(|g| g != "password")
        {
            f.push(json!({"type": "string_pattern_mismatch", "loc": ["body", "grant_type"],
                "msg": "String should match pattern '^password$'", "ctx": {"pattern": "^password$"}}));
        }
        (f, identifier, password)
    }

    /// A required string field.
    pub(crate) fn string(&mut self, name: &str) -> String {
        self.required_string(name).unwrap_or_default()
    }

    /// A required string field: `None` when it is missing or not a string (recorded).
    fn required_string(&mut self, name: &str) -> Option<String> {
        match self.map.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            None | Some(Value::Null) => {
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
        value.trim().to_owned()
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

    #[test]
    fn missing_and_mistyped_fields_name_the_field() {
        let mut f = Fields::json(br#"{"email": 5}"#).unwrap();
        f.string("email");
        f.string("password");
        let err = f.finish().unwrap_err();
        assert_eq!(err.status(), 422);
        let text = err.detail().to_string();
        assert!(
            text.contains("\"email\"") && text.contains("\"password\"") && text.contains("missing")
        );
    }

    #[test]
    fn malformed_json_is_422() {
        assert_eq!(Fields::json(b"{nope").unwrap_err().status(), 422);
        assert_eq!(Fields::json(b"[1]").unwrap_err().status(), 422);
    }

    #[test]
    fn forms_and_booleans() {
        let mut f = Fields::form(b"username=ada&password=p%20w&remember_me=true&remember_me=false");
        assert_eq!(f.string("password"), "p w");
        assert!(f.boolean("remember_me", false));
        assert!(f.finish().is_ok());
        let mut f = Fields::form(b"remember_me=maybe");
        f.boolean("remember_me", false);
        assert!(f.finish().is_err());
    }
}
