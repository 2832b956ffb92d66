//! End to end over HTTP: sessions renewed on privilege changes (a password changed or set, a
//! sign-in), disabled accounts' sessions ended for good, and `build()` refusing a user table
//! that cannot revoke — on memory and on Redis.

// Tests: a failed step panics with the value that failed.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::json;

use crudauth_axum::{CrudAuth, SessionTransport};
use crudauth_core::session::NewSession;
use crudauth_core::store::{FaultyStore, MemoryStore};
use crudauth_core::user::{
    LoginField, MemoryUsers, NewUser, User, UserId, UserStore, UserStoreError, UserUpdate,
};
use crudauth_tests::app::{spawn, Backend, Options, TestApp};
use crudauth_tests::http::{Body, Browser};

const PW: &str = "correct horse battery";

/// A browser holding only `cookie` as its session.
fn with_session(cookie: &str) -> Browser {
    let mut b = Browser::new();
    b.cookies.insert("session_id".into(), cookie.to_owned());
    b
}

async fn status_of(app: &TestApp, cookie: &str) -> u16 {
    with_session(cookie).get(&app.url("/me")).await.status
}

async fn change_password_renews_the_session(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let (old_id, old_csrf) = (b.cookies["session_id"].clone(), b.csrf());
    let r = b
        .post_csrf(
            &app.url("/change-password"),
            Body::Json(json!({"current_password": PW, "new_password": "new password 1"})),
        )
        .await;
    assert_eq!((r.status, r.detail()), (200, "Password changed."));
    let new_id = r.cookie_value("session_id").expect("a new session cookie");
    let new_csrf = r.cookie_value("csrf_token").expect("a new CSRF cookie");
    assert_ne!(new_id, old_id);
    assert_ne!(new_csrf, old_csrf);
    assert_eq!(status_of(&app, &old_id).await, 401, "the old id is dead");
    assert_eq!(status_of(&app, &new_id).await, 200, "the new one works");
    // The CSRF token follows the session: the old one no longer passes.
    let settings = app.url("/account/settings");
    let r = b
        .send(
            "POST",
            &settings,
            Body::None,
            &[("x-csrf-token", &old_csrf)],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = b.post_csrf(&settings, Body::None).await;
    assert_eq!(r.status, 200);
}

async fn set_password_renews_the_session(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    // An account made without a password (as OAuth makes them), signed in moments ago.
    let user = app
        .users
        .create(NewUser::new("ada@example.com", "ada", "!unusable"))
        .await
        .unwrap();
    let sessions = app.auth.sessions().unwrap();
    let created = sessions
        .create(&user.id, user.token_version, NewSession::default())
        .await
        .unwrap();
    let old_id = created.id.expose().to_owned();
    let csrf = sessions
        .csrf()
        .token(&created.id, created.record.csrf_nonce());
    let mut b = with_session(&old_id);
    let r = b
        .send(
            "POST",
            &app.url("/set-password"),
            Body::Json(json!({"new_password": "a first password 1"})),
            &[("x-csrf-token", csrf.expose())],
        )
        .await;
    assert_eq!((r.status, r.detail()), (200, "Password set."));
    let new_id = r.cookie_value("session_id").expect("a new session cookie");
    assert!(r.cookie_value("csrf_token").is_some(), "a new CSRF cookie");
    assert_ne!(new_id, old_id);
    assert_eq!(status_of(&app, &old_id).await, 401, "the old id is dead");
    assert_eq!(status_of(&app, &new_id).await, 200, "the new one works");
}

async fn login_replaces_the_presented_session(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let old = b.cookies["session_id"].clone();
    let r = b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert_eq!(r.status, 200);
    let new = r.cookie_value("session_id").unwrap();
    assert_ne!(new, old);
    assert_eq!(
        status_of(&app, &old).await,
        401,
        "the presented one is dead"
    );
    assert_eq!(status_of(&app, &new).await, 200, "the new one is live");
}

/// Disabled (through crudauth), then enabled again: sessions of before stay dead, whether or
/// not anything was seen in between.
async fn a_disabled_accounts_sessions_end(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let user = app.user("ada@example.com", "ada", PW).await;
    let seen = app.signed_in("ada", PW).await.cookies["session_id"].clone();
    let unseen = app.signed_in("ada", PW).await.cookies["session_id"].clone();
    let active = |on: bool| UserUpdate {
        is_active: Some(on),
        ..Default::default()
    };
    app.auth
        .users()
        .update(&user.id, active(false))
        .await
        .unwrap();
    assert_eq!(status_of(&app, &seen).await, 401, "disabled");
    app.auth
        .users()
        .update(&user.id, active(true))
        .await
        .unwrap();
    assert_eq!(status_of(&app, &seen).await, 401, "not revived");
    assert_eq!(
        status_of(&app, &unseen).await,
        401,
        "not revived, though never seen"
    );
    assert_eq!(
        app.signed_in("ada", PW)
            .await
            .get(&app.url("/me"))
            .await
            .status,
        200
    );
}

/// Disabled in the table itself (no new epoch) and announced: the session is deleted when
/// seen, so enabling the account in the table again does not bring it back.
async fn a_session_seen_while_disabled_is_deleted(backend: Backend) {
    let app = spawn(Options::new(backend)).await;
    let user = app.user("ada@example.com", "ada", PW).await;
    let cookie = app.signed_in("ada", PW).await.cookies["session_id"].clone();
    let active = |on: bool| UserUpdate {
        is_active: Some(on),
        ..Default::default()
    };
    app.users.update(&user.id, active(false)).await.unwrap();
    app.auth.user_changed(&user.id).await.unwrap();
    assert_eq!(status_of(&app, &cookie).await, 401, "disabled");
    let handle =
        app.auth
            .sessions()
            .unwrap()
            .handle_of(&crudauth_core::secret::SessionId::from_client(
                cookie.clone(),
            ));
    assert!(
        app.auth
            .store()
            .get(&format!("s:{handle}"))
            .await
            .unwrap()
            .is_none(),
        "the record is deleted"
    );
    app.users.update(&user.id, active(true)).await.unwrap();
    app.auth.user_changed(&user.id).await.unwrap();
    assert_eq!(status_of(&app, &cookie).await, 401, "not revived");
}

macro_rules! all_cases {
    ($backend:expr) => {
        crudauth_tests::per_backend!($backend; change_password_renews_the_session,
            set_password_renews_the_session, login_replaces_the_presented_session,
            a_disabled_accounts_sessions_end, a_session_seen_while_disabled_is_deleted);
    };
}

mod memory {
    all_cases!(crudauth_tests::app::Backend::Memory);
}

mod redis {
    all_cases!(crudauth_tests::app::Backend::Redis);
}

/// A sign-in whose new session cannot be written leaves the presented session alive: the new
/// one is made before the old one is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sign_in_keeps_the_presented_session() {
    let faulty = FaultyStore::new(Arc::new(MemoryStore::new()));
    let store = faulty.clone();
    let mut options = Options::new(Backend::Memory);
    options.customize = Box::new(move |b| b.store(store));
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", PW).await;
    let mut b = app.signed_in("ada", PW).await;
    let old = b.cookies["session_id"].clone();
    faulty.fail_operation("set");
    let r = b.sign_in(&app.url("/login"), "ada", PW, &[]).await;
    assert_eq!(r.status, 503, "{:?}", r.json);
    faulty.heal();
    assert_eq!(
        status_of(&app, &old).await,
        200,
        "the presented session lives"
    );
}

/// A user table without `token_version`, as crudauth-sqlx reports one mapped `without` it.
#[derive(Debug, Clone, Default)]
struct NoTokenVersion(MemoryUsers);

#[async_trait::async_trait]
impl UserStore for NoTokenVersion {
    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, UserStoreError> {
        self.0.find_by_id(id).await
    }
    async fn find_by_field(
        &self,
        field: LoginField,
        value: &str,
    ) -> Result<Option<User>, UserStoreError> {
        self.0.find_by_field(field, value).await
    }
    async fn create(&self, user: NewUser) -> Result<User, UserStoreError> {
        self.0.create(user).await
    }
    async fn update(
        &self,
        id: &UserId,
        changes: UserUpdate,
    ) -> Result<Option<User>, UserStoreError> {
        self.0.update(id, changes).await
    }
    fn supports_token_version(&self) -> bool {
        false
    }
}

#[test]
fn a_user_table_without_token_version_needs_an_explicit_opt_out() {
    let builder = || {
        CrudAuth::builder()
            .secret_key([7u8; 32])
            .users(NoTokenVersion::default())
            .session_transport(SessionTransport::default())
    };
    let refused = builder().build().unwrap_err().to_string();
    assert!(refused.contains("token_version"), "{refused}");
    assert!(
        refused.contains(".without_revocation_on_password_change()"),
        "{refused}"
    );
    assert!(builder()
        .without_revocation_on_password_change()
        .build()
        .is_ok());
    // A table that has the column needs nothing.
    assert!(CrudAuth::builder()
        .secret_key([7u8; 32])
        .users(MemoryUsers::new())
        .session_transport(SessionTransport::default())
        .build()
        .is_ok());
}

#[tokio::test]
async fn sqlx_reports_a_missing_token_version_column() {
    use crudauth_sqlx::{ColumnMap, SqlxUsers};
    let full = SqlxUsers::connect("sqlite::memory:").await.unwrap();
    assert!(full.supports_token_version());
    let without = full
        .clone()
        .with_columns(ColumnMap::new().without("token_version"))
        .unwrap();
    assert!(!without.supports_token_version());
    let refused = CrudAuth::builder()
        .secret_key([7u8; 32])
        .users(without)
        .session_transport(SessionTransport::default())
        .build();
    assert!(refused.is_err());
}
