//! Secrets stay secret outside the wire: no public type that holds a key, a password, a URL
//! with credentials or a token shows it in `Debug`, and the development email sender logs links
//! with their token redacted.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use crudauth_axum::{BearerTransport, CookieConfig, CrudAuth, EmailConfig, SessionTransport};
use crudauth_core::csrf::Csrf;
use crudauth_core::email::{EmailKind, EmailMessage, EmailSender, LogSender, OutboxFile};
use crudauth_core::jwt::{BearerTokens, TokenConfig};
use crudauth_core::password::{Password, Passwords};
use crudauth_core::principal::Principal;
use crudauth_core::secret::{purpose, CsrfToken, OneTimeToken, SecretKey, SessionId};
use crudauth_core::session::{NewSession, SessionConfig, Sessions};
use crudauth_core::store::{MemoryStore, RedisConfig, RedisConnection};
use crudauth_core::user::{MemoryUsers, NewUser, UserStore};
use crudauth_sqlx::SqlxUsers;

const SECRET: &str = "the-app-secret-key-that-nobody-may-see-0123456789";
const REDIS_PASSWORD: &str = "hunter2-redis-password";
const PASSWORD: &str = "a password typed by ada";

/// The first of `secrets` that `rendered` shows, if any.
fn shown<'a>(rendered: &str, secrets: &[&'a str]) -> Option<&'a str> {
    secrets.iter().copied().find(|s| rendered.contains(s))
}

/// The ways raw key bytes could show: as text, and as `Debug` of the byte list.
fn key_renderings(key: &[u8]) -> Vec<String> {
    let mut out = vec![format!("{key:?}"), format!("{:?}", key.to_vec())];
    if let Ok(text) = std::str::from_utf8(key) {
        out.push(text.to_owned());
    }
    // A hex rendering of the first bytes.
    out.push(key[..8].iter().map(|b| format!("{b:02x}")).collect());
    out
}

#[tokio::test]
async fn no_secret_in_debug() {
    let redis_url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0");
    let root = SecretKey::new(SECRET).unwrap();
    let derived: Vec<SecretKey> = [purpose::JWT, purpose::SESSION, purpose::CSRF]
        .iter()
        .map(|p| root.derive(p))
        .collect();
    let mut secrets: Vec<String> = vec![REDIS_PASSWORD.into(), PASSWORD.into()];
    secrets.extend(key_renderings(SECRET.as_bytes()));
    for key in &derived {
        secrets.extend(key_renderings(key.expose()));
    }

    // Keys and every configuration that holds one or a credentialed URL.
    let mut rendered: Vec<(&str, String)> = vec![
        ("SecretKey", format!("{root:?}")),
        ("derived SecretKey", format!("{:?}", derived[0])),
        ("Csrf", format!("{:?}", Csrf::new(derived[2].clone()))),
    ];
    let builder = || {
        CrudAuth::builder()
            .secret_key(SECRET)
            .users(MemoryUsers::new())
            .session_transport(SessionTransport::default())
            .bearer_transport(BearerTransport::default())
            .cookies(CookieConfig::default())
            .email(EmailConfig::new("https://app.example", LogSender::new()))
            .warn_on_memory_backend(false)
    };
    rendered.push(("CrudAuthBuilder", format!("{:?}", builder())));
    rendered.push((
        "CrudAuthBuilder with a Redis URL",
        format!(
            "{:?}",
            builder().redis_url(redis_url.clone()).redis_prefix("p:")
        ),
    ));
    let redis_config = RedisConfig::from_url(&redis_url).unwrap();
    rendered.push((
        "CrudAuthBuilder with a RedisConfig",
        format!("{:?}", builder().redis(redis_config.clone())),
    ));
    rendered.push(("RedisConfig", format!("{redis_config:?}")));
    let connection = RedisConnection::new(redis_config).unwrap();
    rendered.push(("RedisConnection", format!("{connection:?}")));
    let auth = builder().build().unwrap();
    rendered.push(("CrudAuth", format!("{auth:?}")));
    let auth_redis = builder().redis_url(redis_url.clone()).build().unwrap();
    rendered.push(("CrudAuth on Redis", format!("{auth_redis:?}")));
    rendered.push((
        "EmailConfig",
        format!(
            "{:?}",
            EmailConfig::new("https://app.example", OutboxFile::new("/tmp/outbox.jsonl"))
        ),
    ));

    // Tokens, ids and what carries them.
    let session_id = SessionId::generate();
    let csrf_token = CsrfToken::generate();
    let one_time = OneTimeToken::generate();
    secrets.extend([
        session_id.expose().to_owned(),
        csrf_token.expose().to_owned(),
        one_time.expose().to_owned(),
    ]);
    rendered.push(("SessionId", format!("{session_id:?}")));
    rendered.push(("CsrfToken", format!("{csrf_token:?}")));
    rendered.push(("OneTimeToken", format!("{one_time:?}")));

    let users = MemoryUsers::new();
    let hash = Passwords::fast_for_tests()
        .hash(&Password::new(PASSWORD))
        .await
        .unwrap();
    secrets.push(hash.0.clone());
    let new_user = NewUser::new("ada@example.com", "ada", hash.0.clone());
    rendered.push(("NewUser", format!("{new_user:?}")));
    let ada = users.create(new_user).await.unwrap();
    rendered.push(("User", format!("{ada:?}")));
    rendered.push(("PasswordHash", format!("{hash:?}")));
    rendered.push(("Password", format!("{:?}", Password::new(PASSWORD))));

    let store = Arc::new(MemoryStore::new());
    let sessions = Sessions::new(store.clone(), derived[1].clone(), SessionConfig::default());
    let created = sessions
        .create(&ada.id, 0, NewSession::default())
        .await
        .unwrap();
    let nonce = created.record.csrf_nonce().to_owned();
    let csrf_for_session = sessions.csrf().token(&created.id, &nonce);
    secrets.extend([
        created.id.expose().to_owned(),
        nonce,
        csrf_for_session.expose().to_owned(),
    ]);
    rendered.push(("CreatedSession", format!("{created:?}")));
    rendered.push(("SessionRecord", format!("{:?}", created.record)));
    rendered.push(("Sessions", format!("{sessions:?}")));
    let loaded = sessions.load(created.id.clone()).await.unwrap().unwrap();
    rendered.push(("LoadedSession", format!("{loaded:?}")));
    let mut principal = Principal::new(ada.clone(), "session", Vec::new());
    principal.session = Some(loaded);
    rendered.push(("Principal", format!("{principal:?}")));

    let tokens = BearerTokens::new(&derived[0], store, TokenConfig::default()).unwrap();
    let issued = tokens.issue(&ada, &[]).await.unwrap();
    secrets.extend([
        issued.access_token.expose().to_owned(),
        issued.refresh_token.expose().to_owned(),
    ]);
    rendered.push(("IssuedTokens", format!("{issued:?}")));
    rendered.push(("AccessToken", format!("{:?}", issued.access_token)));
    rendered.push(("RefreshToken", format!("{:?}", issued.refresh_token)));
    rendered.push(("BearerTokens", format!("{tokens:?}")));

    let link = format!(
        "https://app.example/verify-email?token={}",
        one_time.expose()
    );
    let message = EmailMessage::new("ada@example.com", EmailKind::VerifyEmail, Some(link));
    rendered.push(("EmailMessage", format!("{message:?}")));

    let sqlite = SqlxUsers::connect("sqlite::memory:").await.unwrap();
    rendered.push(("SqlxUsers", format!("{sqlite:?}")));

    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert!(
        secrets.iter().all(|s| s.len() >= 8),
        "every secret is specific"
    );
    for (what, text) in &rendered {
        assert_eq!(shown(text, &secrets), None, "{what} shows a secret: {text}");
    }
    // The check can fail: raw bytes, a raw token or the URL itself are caught.
    assert!(shown(&format!("{:?}", root.expose()), &secrets).is_some());
    assert!(shown(&format!("{:?}", derived[0].expose()), &secrets).is_some());
    assert!(shown(issued.access_token.expose(), &secrets).is_some());
    assert!(shown(&redis_url, &secrets).is_some());
    // And the redacted renderings still say what they are.
    let (_, with_url) = rendered
        .iter()
        .find(|(what, _)| *what == "CrudAuthBuilder with a Redis URL")
        .unwrap();
    assert!(
        with_url.contains("redis://***@127.0.0.1:6379/0"),
        "{with_url}"
    );
}

#[tokio::test]
async fn the_log_sender_redacts_the_token_unless_told_to_show_it() {
    let (logs, _guard) = crudauth_tests::logs::capture(tracing::Level::INFO);
    let token = OneTimeToken::generate();
    let link = format!(
        "https://app.example/reset-password?token={}",
        token.expose()
    );
    let message = EmailMessage::new("ada@example.com", EmailKind::ResetPassword, Some(link));

    LogSender::new().send(&message).await.unwrap();
    let logged = logs.text();
    assert!(logged.contains("development email"), "{logged}");
    assert!(
        logged.contains("https://app.example/reset-password?token=***"),
        "{logged}"
    );
    assert!(!logged.contains(token.expose()), "{logged}");

    LogSender::showing_links().send(&message).await.unwrap();
    assert!(
        logs.text().contains(token.expose()),
        "the development flag shows it"
    );
}
