//! An OpenAPI 3.1 document of the routes [`CrudAuth::router`] mounts (feature `openapi`).
//!
//! ```no_run
//! use axum::{routing::get, Json, Router};
//! use crudauth_axum::CrudAuth;
//!
//! fn app(auth: &CrudAuth) -> Router {
//!     let document = auth.openapi();
//!     Router::new()
//!         .merge(auth.router())
//!         .route("/openapi.json", get(move || async move { Json(document) }))
//!         .layer(auth.layer())
//! }
//! ```
//!
//! The document describes this configuration, not every configuration: the routes of a
//! transport that is not configured, of recovery without email delivery or of two-factor
//! without [`MfaConfig`](crudauth_core::mfa::MfaConfig) are not in it, exactly as the router
//! does not mount them. Every answer a route can give is listed (the store-outage 503, the
//! body-limit 413 and the FastAPI-shaped 422 included), so a client generated from it, or a
//! tool that checks answers against it, finds nothing undocumented. The application's own
//! routes are its own to add: the result is a plain [`utoipa::openapi::OpenApi`], which
//! merges with one built by utoipa's derives (`OpenApi::merge`).

use utoipa::openapi::content::Content;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::response::{Response, ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ComponentsBuilder, Object, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, Schema,
};
use utoipa::ToSchema;

use crate::bearer::{RefreshMode, REFRESH_COOKIE};
use crate::cookies::{CSRF_COOKIE, SESSION_COOKIE};
use crate::state::CrudAuth;

impl CrudAuth {
    /// The OpenAPI 3.1 document of the routes [`router`](Self::router) mounts for this
    /// configuration: paths, bodies (JSON, or forms for `/login` and `/token`), every status
    /// each route answers with its body's schema, and the security schemes (the session
    /// cookie with its CSRF header, the bearer token, the refresh cookie).
    ///
    /// Build it once and serve it (see the [module](crate::openapi) example).
    pub fn openapi(&self) -> OpenApi {
        let mut doc = Doc::new(self);
        doc.account();
        doc.session();
        doc.recovery();
        doc.mfa();
        doc.oauth();
        doc.bearer();
        OpenApiBuilder::new()
            .info(
                InfoBuilder::new()
                    .title("crudauth")
                    .version(env!("CARGO_PKG_VERSION"))
                    .description(Some(
                        "Authentication routes: registration, sign-in with a session cookie \
                         (and its CSRF token) or a bearer token, account recovery, two-factor, \
                         OAuth, sudo and session management. Every error is JSON \
                         `{\"detail\": …}`.",
                    ))
                    .build(),
            )
            .paths(doc.paths)
            .components(Some(doc.components.build()))
            .build()
    }
}

/// The document as it is being written: the paths so far, the shared schemas, and what this
/// configuration mounts.
struct Doc<'a> {
    auth: &'a CrudAuth,
    paths: PathsBuilder,
    components: ComponentsBuilder,
}

/// Who may call a route.
#[derive(Clone, Copy, PartialEq)]
enum Caller {
    /// Anyone.
    Anyone,
    /// A signed-in user, by session (with CSRF on unsafe methods) or bearer token.
    SignedIn,
    /// A signed-in user with a session (CSRF on unsafe methods).
    Session,
}

/// One route's description, turned into an [`Operation`] by [`Doc::add`].
struct Route {
    method: HttpMethod,
    path: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    caller: Caller,
    body: Option<RequestBody>,
    params: Vec<Parameter>,
    /// The successful answers, by status.
    ok: Vec<(&'static str, Response)>,
    /// The error statuses besides the ones every route of its kind has.
    errors: &'static [u16],
    /// The built-in rate limit the route is counted under (a 429 with `Retry-After` when
    /// this configuration has it on).
    limit: Option<&'static str>,
}

impl Route {
    fn new(method: HttpMethod, path: &'static str, id: &'static str) -> Self {
        Route {
            method,
            path,
            id,
            tag: "account",
            summary: "",
            caller: Caller::Anyone,
            body: None,
            params: Vec::new(),
            ok: Vec::new(),
            errors: &[],
            limit: None,
        }
    }

    fn post(path: &'static str, id: &'static str) -> Self {
        Self::new(HttpMethod::Post, path, id)
    }

    fn get(path: &'static str, id: &'static str) -> Self {
        Self::new(HttpMethod::Get, path, id)
    }

    fn tag(mut self, tag: &'static str, summary: &'static str) -> Self {
        self.tag = tag;
        self.summary = summary;
        self
    }

    fn caller(mut self, caller: Caller) -> Self {
        self.caller = caller;
        self
    }

    /// A JSON body of schema `T`.
    fn json<T: ToSchema>(mut self) -> Self {
        self.body = Some(body(&["application/json"], schema_ref::<T>()));
        self
    }

    /// A form body (urlencoded or multipart) of schema `T`.
    fn form<T: ToSchema>(mut self) -> Self {
        self.body = Some(body(
            &["application/x-www-form-urlencoded", "multipart/form-data"],
            schema_ref::<T>(),
        ));
        self
    }

    fn ok(mut self, status: &'static str, response: Response) -> Self {
        self.ok.push((status, response));
        self
    }

    fn errors(mut self, errors: &'static [u16]) -> Self {
        self.errors = errors;
        self
    }

    fn limit(mut self, action: &'static str) -> Self {
        self.limit = Some(action);
        self
    }

    fn param(mut self, param: Parameter) -> Self {
        self.params.push(param);
        self
    }
}

impl<'a> Doc<'a> {
    fn new(auth: &'a CrudAuth) -> Self {
        let cookies = &auth.inner.cookies;
        let mut components = all_schemas(ComponentsBuilder::new());
        if auth.inner.session.is_some() {
            components = components
                .security_scheme(
                    "session",
                    SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                        cookies.name(SESSION_COOKIE),
                        "The session cookie `/login` sets.".to_owned(),
                    ))),
                )
                .security_scheme(
                    "csrf",
                    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                        "X-CSRF-Token".to_owned(),
                        format!(
                            "The session's CSRF token (the `{}` cookie, or `csrf_token` of \
                             the sign-in answer), on every unsafe request of a session.",
                            cookies.name(CSRF_COOKIE)
                        ),
                    ))),
                );
        }
        if let Some(state) = auth.bearer() {
            components = components.security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some("The access token `/token` answers."))
                        .build(),
                ),
            );
            if state.refresh == RefreshMode::Cookie {
                components = components.security_scheme(
                    "refresh",
                    SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                        state.cookie.name(REFRESH_COOKIE),
                        "The refresh token `/token` sets.".to_owned(),
                    ))),
                );
            }
        }
        Doc {
            auth,
            paths: PathsBuilder::new(),
            components,
        }
    }

    /// Whether the session transport is configured (cookies, CSRF).
    fn has_session(&self) -> bool {
        self.auth.inner.session.is_some()
    }

    /// Whether the bearer transport is configured.
    fn has_bearer(&self) -> bool {
        self.auth.bearer().is_some()
    }

    /// `/register`, `/me`, `/change-password`, `/set-password`.
    fn account(&mut self) {
        let (status, signup) = if self.auth.inner.email.is_some() {
            let accepted = answer::<Message>(
                "Accepted, for a new and a taken email alike: a verification email (or a \
                 notice to the address's owner) is on its way.",
            );
            ("202", accepted)
        } else {
            ("200", answer::<RegisteredUser>("The new account."))
        };
        self.add(
            Route::post("/register", "register")
                .tag("account", "Create an account")
                .limit("register")
                .json::<Registration>()
                .ok(status, signup),
        );
        self.add(
            Route::get("/me", "me")
                .tag("account", "The signed-in user")
                .caller(Caller::SignedIn)
                .ok("200", answer::<Me>("The signed-in user.")),
        );
        self.add(
            Route::post("/change-password", "change_password")
                .tag(
                    "account",
                    "Change the password (ends every other credential)",
                )
                .caller(Caller::SignedIn)
                .json::<ChangePassword>()
                .ok("200", answer::<Message>("Password changed."))
                .limit("change_password"),
        );
        self.add(
            Route::post("/set-password", "set_password")
                .tag("account", "Set a password on an account that has none")
                .caller(Caller::SignedIn)
                .json::<NewPassword>()
                .ok("200", answer::<Message>("Password set."))
                .errors(&[400])
                .limit("set_password"),
        );
    }

    /// The session transport's routes.
    fn session(&mut self) {
        let Some(session) = &self.auth.inner.session else {
            return;
        };
        let management = session.management_routes;
        self.add(
            Route::post("/login", "login")
                .tag("session", "Sign in with a session cookie")
                .form::<LoginForm>()
                .ok(
                    "200",
                    one_of(
                        "Signed in (`session_id` and `csrf_token` cookies set), or a \
                         two-factor challenge to answer at `/mfa/verify`.",
                        &[SessionLogin::name(), MfaRequired::name()],
                    )
                    .header("Set-Cookie", Header::default())
                    .build(),
                )
                .errors(&[401, 429]),
        );
        // Without a session the bearer transport mounts its own `/logout` (see `bearer`).
        self.add(
            Route::post("/logout", "logout")
                .tag("session", "Sign out (clears the cookies)")
                .ok("200", answer::<Message>("Logged out.")),
        );
        self.add(
            Route::post("/sudo", "sudo")
                .tag(
                    "session",
                    "Re-authenticate for sensitive actions (rotates the session)",
                )
                .caller(Caller::Session)
                .json::<SudoBody>()
                .ok(
                    "200",
                    ResponseBuilder::new()
                        .description("Re-authenticated: new `session_id` and `csrf_token` cookies.")
                        .content(
                            "application/json",
                            Content::new(Some(schema_ref::<Elevation>())),
                        )
                        .header("Set-Cookie", Header::default())
                        .build(),
                )
                .errors(&[429]),
        );
        if !management {
            return;
        }
        self.add(
            Route::get("/sessions", "list_sessions")
                .tag("session", "The user's signed-in devices")
                .caller(Caller::Session)
                .ok(
                    "200",
                    ResponseBuilder::new()
                        .description("One entry a session, the current one marked.")
                        .content(
                            "application/json",
                            Content::new(Some(
                                utoipa::openapi::schema::ArrayBuilder::new()
                                    .items(schema_ref::<SessionView>())
                                    .build(),
                            )),
                        )
                        .build(),
                ),
        );
        self.add(
            Route::new(HttpMethod::Delete, "/sessions/{id}", "revoke_session")
                .tag("session", "End one of the user's sessions")
                .caller(Caller::Session)
                .param(
                    ParameterBuilder::new()
                        .name("id")
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .description(Some("The session's `id` from `GET /sessions`."))
                        .schema(Some(Object::with_type(Type::String)))
                        .build(),
                )
                .ok("200", answer::<Message>("Session revoked."))
                .errors(&[404])
                .limit("revoke_session"),
        );
        self.add(
            Route::post("/logout-all", "logout_all")
                .tag("session", "End all the user's sessions and bearer tokens")
                .caller(Caller::Session)
                .param(
                    ParameterBuilder::new()
                        .name("keep_current")
                        .parameter_in(ParameterIn::Query)
                        .required(Required::False)
                        .description(Some("Keep the session making the request."))
                        .schema(Some(Object::with_type(Type::Boolean)))
                        .build(),
                )
                .ok("200", answer::<Revoked>("Signed out of all sessions."))
                .limit("logout_all"),
        );
        self.add(
            Route::post("/csrf/refresh", "csrf_refresh")
                .tag("session", "The session's CSRF token")
                .ok(
                    "200",
                    answer::<CsrfAnswer>(
                        "The session's CSRF token (the same one while it is valid).",
                    ),
                )
                .errors(&[401])
                .limit("csrf_refresh"),
        );
    }

    /// Verify, reset and change email, as email delivery is configured.
    fn recovery(&mut self) {
        let fanout = &self.auth.inner.fanout;
        if fanout.is_empty() {
            return;
        }
        let change = fanout.sends_email();
        self.add(
            Route::post("/email/verify-request", "email_verify_request")
                .tag("recovery", "Send a verification email")
                .json::<EmailBody>()
                .ok(
                    "200",
                    answer::<Message>("The same answer whether or not the account exists."),
                )
                .limit("email_verify_request"),
        );
        self.add(
            Route::post("/email/verify-confirm", "email_verify_confirm")
                .tag("recovery", "Confirm an email address with its token")
                .json::<TokenBody>()
                .ok("200", answer::<Done>("Verified successfully."))
                .errors(&[400]),
        );
        self.add(
            Route::post("/password/reset-request", "password_reset_request")
                .tag("recovery", "Send a password reset email")
                .json::<EmailBody>()
                .ok(
                    "200",
                    answer::<Message>("The same answer whether or not the account exists."),
                )
                .limit("password_reset_request"),
        );
        self.add(
            Route::post("/password/reset-confirm", "password_reset_confirm")
                .tag(
                    "recovery",
                    "Set a new password with a reset token (ends every credential)",
                )
                .json::<ResetBody>()
                .ok("200", answer::<Done>("Password reset successfully."))
                .errors(&[400]),
        );
        if !change {
            return;
        }
        self.add(
            Route::post("/email/change-request", "email_change_request")
                .tag("recovery", "Ask to change the account's email")
                .caller(Caller::SignedIn)
                .json::<ChangeEmail>()
                .ok(
                    "200",
                    answer::<Message>("A confirmation email goes to the new address."),
                )
                .limit("email_change_request"),
        );
        self.add(
            Route::post("/email/change-confirm", "email_change_confirm")
                .tag("recovery", "Confirm the new email with its token")
                .json::<TokenBody>()
                .ok("200", answer::<Done>("Email changed successfully."))
                .errors(&[400]),
        );
    }

    /// Two-factor, when [`MfaConfig`](crudauth_core::mfa::MfaConfig) is set.
    fn mfa(&mut self) {
        if self.auth.inner.mfa.is_none() {
            return;
        }
        self.add(
            Route::get("/mfa", "mfa_status")
                .tag("mfa", "Two-factor status")
                .caller(Caller::SignedIn)
                .ok(
                    "200",
                    answer::<MfaStatus>("Whether two-factor is on, and required."),
                ),
        );
        self.add(
            Route::post("/mfa/totp/setup", "mfa_totp_setup")
                .tag("mfa", "Start enrolling an authenticator")
                .caller(Caller::SignedIn)
                .json::<PasswordBody>()
                .ok("200", answer::<TotpSetup>("The secret, shown once."))
                .errors(&[400, 401])
                .limit("mfa_manage"),
        );
        for (path, id, summary, ok) in [
            (
                "/mfa/totp/confirm",
                "mfa_totp_confirm",
                "Finish enrolling with a first code",
                answer::<RecoveryCodes>("The recovery codes, shown once."),
            ),
            (
                "/mfa/totp/disable",
                "mfa_totp_disable",
                "Turn two-factor off",
                answer::<Message>("Two-factor authentication disabled."),
            ),
            (
                "/mfa/recovery-codes/regenerate",
                "mfa_recovery_codes_regenerate",
                "New recovery codes (the old ones die)",
                answer::<RecoveryCodes>("The new recovery codes, shown once."),
            ),
        ] {
            self.add(
                Route::post(path, id)
                    .tag("mfa", summary)
                    .caller(Caller::SignedIn)
                    .json::<CodeBody>()
                    .ok("200", ok)
                    .errors(&[400, 401])
                    .limit("mfa_manage"),
            );
        }
        let mut signed_in = Vec::new();
        if self.has_session() {
            signed_in.push(SessionLogin::name());
        }
        if self.has_bearer() {
            signed_in.push(TokenAnswer::name());
        }
        self.add(
            Route::post("/mfa/verify", "mfa_verify")
                .tag("mfa", "Answer a sign-in's two-factor challenge")
                .json::<VerifyBody>()
                .ok(
                    "200",
                    one_of(
                        "Signed in, as the transport that issued the challenge answers.",
                        &signed_in,
                    )
                    .header("Set-Cookie", Header::default())
                    .build(),
                )
                .errors(&[400, 401, 429]),
        );
        self.add(
            Route::post("/mfa/challenge", "mfa_challenge")
                .tag(
                    "mfa",
                    "What a challenge needs (an enrolment when two-factor is required)",
                )
                .json::<ChallengeBody>()
                .ok(
                    "200",
                    answer::<ChallengeSetup>("The setup to show, or null."),
                )
                .errors(&[400]),
        );
    }

    /// `/oauth/{provider}/authorize` and `/callback`, when providers are configured.
    #[cfg(feature = "oauth")]
    fn oauth(&mut self) {
        let Some(oauth) = &self.auth.inner.oauth else {
            return;
        };
        let json = oauth.mode == crate::routes::OAuthResponseMode::Json;
        let mut names: Vec<&str> = oauth.providers.keys().map(String::as_str).collect();
        names.sort_unstable();
        // The names go in the description, not an `enum`: another name is a documented 400.
        let provider_names = format!("A configured provider: {}.", names.join(", "));
        let provider = || {
            ParameterBuilder::new()
                .name("provider")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(provider_names.as_str()))
                .schema(Some(Object::with_type(Type::String)))
                .build()
        };
        let query = |name: &str, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(Object::with_type(Type::String)))
                .build()
        };
        let (authorized, landed) = if json {
            (
                answer::<AuthorizeUrl>(
                    "The provider's authorization URL (`oauth_state` cookie set).",
                ),
                answer::<OAuthSignedIn>("Signed in (session cookies set)."),
            )
        } else {
            (
                redirect("To the provider (`oauth_state` cookie set)."),
                redirect(
                    "To the same-origin `redirect_to` with session cookies set, or to the \
                     default target with `?error=<code>` (`invalid_state`, `oauth_failed`, \
                     `email_missing`, `email_unverified`, `email_too_long`, \
                     `provider_already_linked`, `account_inactive`).",
                ),
            )
        };
        let status = if json { "200" } else { "307" };
        self.add(
            Route::get("/oauth/{provider}/authorize", "oauth_authorize")
                .tag("oauth", "Start signing in with a provider")
                .param(provider())
                .param(query(
                    "redirect_to",
                    "A same-origin path to land on afterwards.",
                ))
                .ok(status, authorized)
                .errors(&[400])
                .limit("oauth_authorize"),
        );
        self.add(
            Route::get("/oauth/{provider}/callback", "oauth_callback")
                .tag("oauth", "The provider's redirect back")
                .param(provider())
                .param(query("code", "The authorization code."))
                .param(query("state", "The state `authorize` sent."))
                .param(query("error", "The provider's error, if it refused."))
                .ok(status, landed)
                .errors(&[400]),
        );
    }

    #[cfg(not(feature = "oauth"))]
    fn oauth(&mut self) {}

    /// `/token`, `/refresh`, and `/logout` when there is no session transport.
    fn bearer(&mut self) {
        let Some(bearer) = self.auth.bearer() else {
            return;
        };
        let cookie = bearer.refresh == RefreshMode::Cookie;
        let mut token = one_of(
            "An access token (and a refresh token), or a two-factor challenge to answer at \
             `/mfa/verify`.",
            &[TokenAnswer::name(), MfaRequired::name()],
        );
        if cookie {
            token = token.header("Set-Cookie", Header::default());
        }
        self.add(
            Route::post("/token", "token")
                .tag("bearer", "Sign in for a bearer token")
                .form::<TokenForm>()
                .ok("200", token.build())
                .errors(&[401, 429]),
        );
        let mut refresh = Route::post("/refresh", "refresh")
            .tag("bearer", "A new access token (the refresh token rotates)")
            .ok(
                "200",
                answer::<TokenAnswer>("A new access token and refresh token."),
            )
            .errors(&[401])
            .limit("refresh");
        if !cookie {
            refresh = refresh.json::<RefreshBody>();
        }
        self.add(refresh);
        if !self.has_session() && cookie {
            self.add(
                Route::post("/logout", "logout")
                    .tag("bearer", "Sign out (ends the refresh token's family)")
                    .ok("200", answer::<Message>("Logged out.")),
            );
        }
    }

    /// Adds `route` with the answers every route of its kind can give.
    fn add(&mut self, route: Route) {
        let unsafe_method = route.method != HttpMethod::Get;
        let mut statuses: Vec<u16> = route.errors.to_vec();
        if route.body.is_some() {
            statuses.extend([400, 413, 422]);
        }
        if route.caller != Caller::Anyone {
            statuses.extend([401, 403]);
        }
        if unsafe_method && self.has_session() {
            // CSRF (and Origin) checks apply to every unsafe request of a live session.
            statuses.push(403);
        }
        if route
            .limit
            .is_some_and(|a| self.auth.builtin_limiter(a).is_some())
        {
            statuses.push(429);
        }
        if !route.params.is_empty() && route.method != HttpMethod::Delete {
            statuses.push(422);
        }
        statuses.push(503);
        statuses.sort_unstable();
        statuses.dedup();

        let mut responses = ResponsesBuilder::new();
        for (status, response) in route.ok {
            responses = responses.response(status, response);
        }
        for status in statuses {
            responses = responses.response(status.to_string(), error(status));
        }
        let mut op = OperationBuilder::new()
            .operation_id(Some(route.id))
            .tag(route.tag)
            .summary(Some(route.summary))
            .parameters(Some(route.params))
            .request_body(route.body)
            .responses(responses.build());
        for requirement in self.security(route.caller, unsafe_method) {
            op = op.security(requirement);
        }
        let op: Operation = op.build();
        let paths = std::mem::take(&mut self.paths);
        self.paths = paths.path(route.path, PathItem::new(route.method, op));
    }

    /// The alternatives that authenticate `caller` (any one of them will do).
    fn security(&self, caller: Caller, unsafe_method: bool) -> Vec<SecurityRequirement> {
        let none: [&str; 0] = [];
        let session = || {
            let mut s = SecurityRequirement::new("session", none);
            if unsafe_method {
                s = s.add("csrf", none);
            }
            s
        };
        match caller {
            Caller::Anyone => Vec::new(),
            Caller::Session if self.has_session() => vec![session()],
            Caller::Session => Vec::new(),
            Caller::SignedIn => {
                let mut any = Vec::new();
                if self.has_session() {
                    any.push(session());
                }
                if self.has_bearer() {
                    any.push(SecurityRequirement::new("bearer", none));
                }
                any
            }
        }
    }
}

/// Every schema a route may name (a few go unused in some configurations; that is harmless,
/// and a `$ref` that resolves nowhere cannot happen).
fn all_schemas(c: ComponentsBuilder) -> ComponentsBuilder {
    c.schema_from::<Error>()
        .schema_from::<Detail>()
        .schema_from::<ValidationEntry>()
        .schema_from::<Message>()
        .schema_from::<Done>()
        .schema_from::<Registration>()
        .schema_from::<RegisteredUser>()
        .schema_from::<Me>()
        .schema_from::<ChangePassword>()
        .schema_from::<NewPassword>()
        .schema_from::<LoginForm>()
        .schema_from::<SessionLogin>()
        .schema_from::<MfaRequired>()
        .schema_from::<SudoBody>()
        .schema_from::<Elevation>()
        .schema_from::<Device>()
        .schema_from::<SessionView>()
        .schema_from::<Revoked>()
        .schema_from::<CsrfAnswer>()
        .schema_from::<EmailBody>()
        .schema_from::<TokenBody>()
        .schema_from::<ResetBody>()
        .schema_from::<ChangeEmail>()
        .schema_from::<MfaStatus>()
        .schema_from::<PasswordBody>()
        .schema_from::<TotpSetup>()
        .schema_from::<CodeBody>()
        .schema_from::<RecoveryCodes>()
        .schema_from::<VerifyBody>()
        .schema_from::<ChallengeBody>()
        .schema_from::<ChallengeSetup>()
        .schema_from::<TokenForm>()
        .schema_from::<TokenAnswer>()
        .schema_from::<RefreshBody>()
        .schema_from::<AuthorizeUrl>()
        .schema_from::<OAuthUser>()
        .schema_from::<OAuthSignedIn>()
}

/// A `$ref` to `T`'s schema in the components.
fn schema_ref<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

/// A required body of `schema`, in each of the media `types`.
fn body(types: &[&str], schema: RefOr<Schema>) -> RequestBody {
    let mut b = RequestBodyBuilder::new().required(Some(Required::True));
    for t in types {
        b = b.content(*t, Content::new(Some(schema.clone())));
    }
    b.build()
}

/// A JSON answer of schema `T`.
fn answer<T: ToSchema>(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema_ref::<T>())))
        .build()
}

/// A JSON answer that is one of the named schemas.
fn one_of(description: &str, names: &[std::borrow::Cow<'static, str>]) -> ResponseBuilder {
    let mut one = OneOfBuilder::new();
    for name in names {
        one = one.item(Ref::from_schema_name(name.clone()));
    }
    ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Schema::OneOf(one.build()))),
    )
}

/// A 307 with its `Location`.
fn redirect(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .header("Location", Header::default())
        .header("Set-Cookie", Header::default())
        .build()
}

/// The error answer of `status`: `{"detail": …}`, with `Retry-After` on a 429.
fn error(status: u16) -> Response {
    let description = match status {
        400 => "Bad request: an unparsable body, an invalid or used token, a state that does not allow it.",
        401 => "Not authenticated, or the credentials presented are wrong.",
        403 => "Forbidden: missing or invalid CSRF token, a cross-site sign-in, insufficient privileges.",
        404 => "No such session (among the user's own).",
        413 => "The body is larger than the route accepts.",
        422 => "Validation failed: a list of FastAPI-shaped entries naming the field, or a message.",
        429 => "Too many attempts: come back after `Retry-After` seconds.",
        503 => "Authentication service unavailable (a store is down; nothing was changed).",
        _ => "An error.",
    };
    let mut r = ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(schema_ref::<Error>())),
    );
    if status == 429 {
        r = r.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Object::with_type(Type::Integer))
                .description(Some("Seconds until the next attempt can succeed."))
                .build(),
        );
    }
    r.build()
}

/// An integer or a string: a user id (as the user table keys its rows), a `loc` element.
fn int_or_string() -> Object {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
            Type::Integer,
            Type::String,
        ]))
        .build()
}

/// A validation entry's `loc`: names and positions.
fn location() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(int_or_string())
        .build()
}

// The schemas. They describe the wire, field by field, and are never built: the routes write
// their answers as JSON values, and the tests check those against this document.
#[allow(dead_code)]
mod schemas {
    use serde::Serialize;
    use utoipa::ToSchema;

    use super::{int_or_string, location};

    /// Every error: `{"detail": …}`.
    #[derive(ToSchema)]
    pub(super) struct Error {
        /// A message, or (422) the validation entries.
        pub(super) detail: Detail,
    }

    /// An error's detail.
    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    pub(super) enum Detail {
        /// A message (`"Not authenticated"`, `"Invalid CSRF token"`, …).
        Message(String),
        /// The validation failures, one per field.
        Entries(Vec<ValidationEntry>),
    }

    /// One validation failure, as FastAPI reports it.
    #[derive(Serialize, ToSchema)]
    pub(super) struct ValidationEntry {
        /// What failed (`missing`, `string_type`, `json_invalid`, …).
        #[serde(rename = "type")]
        pub(super) kind: String,
        /// Where: `["body", "<field>"]`, `["query", "<name>"]`, `["body", 0]` (a position).
        #[schema(schema_with = location)]
        pub(super) loc: Vec<String>,
        /// A sentence for people.
        pub(super) msg: String,
    }

    /// A message answer.
    #[derive(ToSchema)]
    pub(super) struct Message {
        /// The message (`"Logged out"`, `"Password changed."`, …).
        pub(super) detail: String,
    }

    /// A message answer of a token's route, with where the token asked to land.
    #[derive(ToSchema)]
    pub(super) struct Done {
        /// The message.
        pub(super) detail: String,
        /// The same-origin path the token carried, if any.
        pub(super) redirect_to: Option<String>,
    }

    /// `POST /register`.
    #[derive(ToSchema)]
    pub(super) struct Registration {
        /// The account's email.
        pub(super) email: String,
        /// The account's user name.
        pub(super) username: String,
        /// Its password.
        pub(super) password: String,
    }

    /// A new account (without email delivery).
    #[derive(ToSchema)]
    pub(super) struct RegisteredUser {
        /// Its id.
        #[schema(schema_with = int_or_string)]
        pub(super) id: String,
        /// Its email.
        pub(super) email: String,
        /// Its user name.
        pub(super) username: String,
    }

    /// `GET /me`.
    #[derive(ToSchema)]
    pub(super) struct Me {
        /// The user's id.
        #[schema(schema_with = int_or_string)]
        pub(super) user_id: String,
        /// The user name.
        pub(super) username: String,
        /// The email.
        pub(super) email: String,
        /// Whether the user is a superuser.
        pub(super) is_superuser: bool,
        /// The bearer token's scopes (empty for a session).
        pub(super) scopes: Vec<String>,
        /// The transport: `session` or `bearer`.
        pub(super) via: String,
    }

    /// `POST /change-password`.
    #[derive(ToSchema)]
    pub(super) struct ChangePassword {
        /// The password now.
        pub(super) current_password: String,
        /// The new one.
        pub(super) new_password: String,
    }

    /// `POST /set-password`.
    #[derive(ToSchema)]
    pub(super) struct NewPassword {
        /// The new password.
        pub(super) new_password: String,
    }

    /// `POST /login`, a form.
    #[derive(ToSchema)]
    pub(super) struct LoginForm {
        /// The email or the user name.
        pub(super) username: String,
        /// The password.
        pub(super) password: String,
        /// A persistent cookie (30 days) instead of one for the browser session.
        pub(super) remember_me: Option<bool>,
    }

    /// A session sign-in.
    #[derive(ToSchema)]
    pub(super) struct SessionLogin {
        /// The user's id.
        #[schema(schema_with = int_or_string)]
        pub(super) id: String,
        /// The user name.
        pub(super) username: String,
        /// The session's CSRF token, for `X-CSRF-Token`.
        pub(super) csrf_token: String,
    }

    /// A sign-in that needs its second factor.
    #[derive(ToSchema)]
    pub(super) struct MfaRequired {
        /// Always true.
        pub(super) mfa_required: bool,
        /// The challenge to answer at `/mfa/verify`.
        pub(super) challenge: String,
        /// Seconds the challenge lives.
        pub(super) expires_in: u64,
    }

    /// `POST /sudo`: a password, or a TOTP code (not both).
    #[derive(ToSchema)]
    pub(super) struct SudoBody {
        /// The account's password.
        pub(super) password: Option<String>,
        /// A current TOTP code.
        pub(super) code: Option<String>,
    }

    /// A sudo elevation.
    #[derive(ToSchema)]
    pub(super) struct Elevation {
        /// `"Re-authenticated."`
        pub(super) detail: String,
        /// Seconds the elevation lasts.
        pub(super) expires_in: u64,
        /// The rotated session's CSRF token.
        pub(super) csrf_token: String,
    }

    /// A browser's or client's description, parsed from its User-Agent.
    #[derive(ToSchema)]
    pub(super) struct Device {
        /// Browser or client family.
        pub(super) browser: String,
        /// Its version.
        pub(super) browser_version: String,
        /// Operating system family.
        pub(super) os: String,
        /// Device family.
        pub(super) device: String,
        /// A phone.
        pub(super) is_mobile: bool,
        /// A tablet.
        pub(super) is_tablet: bool,
        /// A desktop or laptop.
        pub(super) is_pc: bool,
    }

    /// One of the user's sessions.
    #[derive(ToSchema)]
    pub(super) struct SessionView {
        /// An opaque handle (never the cookie's value).
        pub(super) id: String,
        /// The device.
        pub(super) device: Device,
        /// The address it signed in from.
        pub(super) ip: String,
        /// When it began (ISO 8601).
        pub(super) created_at: String,
        /// When it was last used (ISO 8601).
        pub(super) last_activity: String,
        /// Whether it is the session making the request.
        pub(super) current: bool,
    }

    /// `POST /logout-all`.
    #[derive(ToSchema)]
    pub(super) struct Revoked {
        /// `"Signed out of all sessions."`
        pub(super) detail: String,
        /// How many sessions ended.
        pub(super) revoked: u64,
    }

    /// `POST /csrf/refresh`.
    #[derive(ToSchema)]
    pub(super) struct CsrfAnswer {
        /// The session's CSRF token.
        pub(super) csrf_token: String,
    }

    /// `{email}`.
    #[derive(ToSchema)]
    pub(super) struct EmailBody {
        /// The account's email.
        pub(super) email: String,
    }

    /// `{token}`.
    #[derive(ToSchema)]
    pub(super) struct TokenBody {
        /// The token from the email's link.
        pub(super) token: String,
    }

    /// `POST /password/reset-confirm`.
    #[derive(ToSchema)]
    pub(super) struct ResetBody {
        /// The token from the email's link.
        pub(super) token: String,
        /// The new password.
        pub(super) new_password: String,
    }

    /// `POST /email/change-request`.
    #[derive(ToSchema)]
    pub(super) struct ChangeEmail {
        /// The new address.
        pub(super) new_email: String,
        /// The account's password.
        pub(super) password: String,
    }

    /// `GET /mfa`.
    #[derive(ToSchema)]
    pub(super) struct MfaStatus {
        /// An authenticator is enrolled.
        pub(super) enabled: bool,
        /// Two-factor is required of this user.
        pub(super) required: bool,
        /// Unused recovery codes.
        pub(super) recovery_codes_remaining: u64,
    }

    /// `{password}`.
    #[derive(ToSchema)]
    pub(super) struct PasswordBody {
        /// The account's password.
        pub(super) password: String,
    }

    /// An authenticator's setup.
    #[derive(ToSchema)]
    pub(super) struct TotpSetup {
        /// The base32 secret.
        pub(super) secret: String,
        /// The `otpauth://` URI (for a QR code).
        pub(super) otpauth_uri: String,
    }

    /// `{code}`.
    #[derive(ToSchema)]
    pub(super) struct CodeBody {
        /// A TOTP code (or, where accepted, a recovery code).
        pub(super) code: String,
    }

    /// Recovery codes, shown once.
    #[derive(ToSchema)]
    pub(super) struct RecoveryCodes {
        /// Ten codes, `xxxx-xxxx-xxxx-xxxx`.
        pub(super) recovery_codes: Vec<String>,
    }

    /// `POST /mfa/verify`.
    #[derive(ToSchema)]
    pub(super) struct VerifyBody {
        /// The challenge the sign-in answered.
        pub(super) challenge: String,
        /// A TOTP code or a recovery code.
        pub(super) code: String,
    }

    /// `{challenge}`.
    #[derive(ToSchema)]
    pub(super) struct ChallengeBody {
        /// The challenge the sign-in answered.
        pub(super) challenge: String,
    }

    /// `POST /mfa/challenge`.
    #[derive(ToSchema)]
    pub(super) struct ChallengeSetup {
        /// The enrolment to show when two-factor is required and none is enrolled.
        pub(super) setup: Option<TotpSetup>,
    }

    /// `POST /token`, an OAuth 2.0 password form.
    #[derive(ToSchema)]
    pub(super) struct TokenForm {
        /// The email or the user name.
        pub(super) username: String,
        /// The password.
        pub(super) password: String,
        /// Space-separated scopes.
        pub(super) scope: Option<String>,
    }

    /// A bearer sign-in.
    #[derive(ToSchema)]
    pub(super) struct TokenAnswer {
        /// The access token (a JWT).
        pub(super) access_token: String,
        /// `"bearer"`.
        pub(super) token_type: String,
        /// The refresh token, when it travels in the body.
        pub(super) refresh_token: Option<String>,
    }

    /// `POST /refresh` in body mode.
    #[derive(ToSchema)]
    pub(super) struct RefreshBody {
        /// The refresh token.
        pub(super) refresh_token: String,
    }

    /// `GET /oauth/{provider}/authorize` in JSON mode.
    #[derive(ToSchema)]
    pub(super) struct AuthorizeUrl {
        /// Where to send the browser.
        pub(super) url: String,
    }

    /// The user an OAuth sign-in signed in.
    #[derive(ToSchema)]
    pub(super) struct OAuthUser {
        /// The user's id.
        #[schema(schema_with = int_or_string)]
        pub(super) user_id: String,
        /// The user name.
        pub(super) username: String,
        /// The email.
        pub(super) email: String,
        /// Whether the user is a superuser.
        pub(super) is_superuser: bool,
    }

    /// An OAuth sign-in in JSON mode.
    #[derive(ToSchema)]
    pub(super) struct OAuthSignedIn {
        /// The signed-in user.
        pub(super) user: OAuthUser,
        /// The session's CSRF token.
        pub(super) csrf_token: Option<String>,
        /// Where to land.
        pub(super) redirect_to: Option<String>,
    }
}

use schemas::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_the_routes_of_its_configuration() {
        let auth = CrudAuth::for_tests();
        let doc = serde_json::to_value(auth.openapi()).expect("serialises");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        for path in paths.keys() {
            let probe = path.replace("{id}", "x");
            assert!(
                crate::routes::is_own_path(&auth, &probe),
                "{path} is documented but not mounted"
            );
        }
        assert!(paths.contains_key("/login"));
        assert!(!paths.contains_key("/token"), "no bearer transport here");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 20, "{refs:?}");
        for r in refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a schema ref");
            assert!(schemas.contains_key(name), "{r} does not resolve");
        }
    }

    fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => out.push(r.to_owned()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
