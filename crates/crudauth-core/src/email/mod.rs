//! The **EmailSender** port, and development senders: a log line, or one JSON line per email
//! in an outbox file.
//!
//! ```
//! use crudauth_core::email::{EmailKind, EmailMessage, EmailSender, LogSender};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let message = EmailMessage::new("ada@example.com", EmailKind::VerifyEmail, Some("http://localhost:3000/verify-email?token=…".into()));
//! LogSender::new().send(&message).await.unwrap(); // logs the link with its token redacted
//! # });
//! ```

#[cfg(feature = "smtp")]
mod smtp;
#[cfg(feature = "smtp")]
pub use smtp::SmtpSender;

use std::fmt::Debug;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;

/// Which message this is (crudauth's kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailKind {
    /// Confirm an address (at registration and on request).
    VerifyEmail,
    /// Reset a forgotten password.
    ResetPassword,
    /// Confirm a new address (sent to the new one).
    ChangeEmail,
    /// Notice to the old address that it was changed.
    EmailChanged,
    /// Notice that someone tried to register with a taken address.
    ExistingAccount,
    /// Notice that the account's password was changed or reset (crudauth-rs's own).
    PasswordChanged,
    /// Notice that two-factor authentication was turned on (crudauth-rs's own).
    MfaEnabled,
    /// Notice that two-factor authentication was turned off (crudauth-rs's own).
    MfaDisabled,
    /// Notice that a recovery code was used (crudauth-rs's own).
    RecoveryCodeUsed,
}

impl EmailKind {
    /// The subject line, crudauth's own.
    pub fn subject(self) -> &'static str {
        match self {
            EmailKind::VerifyEmail => "Verify your email",
            EmailKind::ResetPassword => "Reset your password",
            EmailKind::ChangeEmail => "Confirm your new email",
            EmailKind::EmailChanged => "Your email address was changed",
            EmailKind::ExistingAccount => "You already have an account",
            EmailKind::PasswordChanged => "Your password was changed",
            EmailKind::MfaEnabled => "Two-factor authentication was turned on",
            EmailKind::MfaDisabled => "Two-factor authentication was turned off",
            EmailKind::RecoveryCodeUsed => "A recovery code was used",
        }
    }
}

/// One email to deliver.
#[derive(Clone, Serialize)]
pub struct EmailMessage {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Kind of message.
    pub kind: EmailKind,
    /// The action link, when the message has one. It carries a single-use token: treat it as a
    /// secret.
    pub link: Option<String>,
    /// The frontend's base URL, which the notices without a link point readers to.
    #[serde(skip)]
    pub site: Option<String>,
}

impl Debug for EmailMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailMessage")
            .field("to", &self.to)
            .field("kind", &self.kind)
            .field("link", &self.link.as_ref().map(|_| "***"))
            .finish()
    }
}

impl EmailMessage {
    /// A message of `kind` to `to`, with the kind's subject.
    pub fn new(to: impl Into<String>, kind: EmailKind, link: Option<String>) -> Self {
        Self {
            to: to.into(),
            subject: kind.subject().to_owned(),
            kind,
            link,
            site: None,
        }
    }

    /// The same message, pointing readers of a notice to `site` (the frontend's base URL).
    pub fn with_site(mut self, site: impl Into<String>) -> Self {
        self.site = Some(site.into());
        self
    }

    /// The plain-text body: crudauth's wording, the link on a line of its own. Only the link
    /// and the site (both made by crudauth from configuration) and fixed text: nothing a user
    /// typed.
    pub fn text_body(&self) -> String {
        let at = |before: &str| match &self.site {
            Some(site) => format!("{before} at {site}"),
            None => before.to_owned(),
        };
        match (&self.link, self.kind) {
            (Some(link), kind) => format!("{}: {link}\n", kind.subject()),
            (None, EmailKind::ExistingAccount) => format!(
                "Someone tried to register with this email. You already have an account - {}.\n",
                at("sign in or reset your password")
            ),
            (None, EmailKind::EmailChanged) => format!(
                "The email address on your account was changed. If you didn't make this change, \
                 {} to secure your account.\n",
                at("sign in")
            ),
            (None, EmailKind::PasswordChanged) => format!(
                "The password of your account was changed. If you didn't make this change, {} \
                 and reset your password.\n",
                at("sign in")
            ),
            (None, EmailKind::MfaEnabled) => format!(
                "Two-factor authentication was turned on for your account. If you didn't do this, \
                 {} and reset your password.\n",
                at("sign in")
            ),
            (None, EmailKind::MfaDisabled) => format!(
                "Two-factor authentication was turned off for your account. If you didn't do \
                 this, {}, reset your password and turn it on again.\n",
                at("sign in")
            ),
            (None, EmailKind::RecoveryCodeUsed) => format!(
                "One of your recovery codes was used to sign in or change two-factor settings. \
                 If it wasn't you, {}, reset your password and make new recovery codes.\n",
                at("sign in")
            ),
            (None, kind) => format!("{}\n", kind.subject()),
        }
    }
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
#[error("email delivery failed: {0}")]
pub struct EmailError(pub String);

/// Delivers messages. Failures are logged by the caller and never change an HTTP answer.
#[async_trait]
pub trait EmailSender: Send + Sync + Debug + 'static {
    /// Delivers one message.
    async fn send(&self, message: &EmailMessage) -> Result<(), EmailError>;
}

/// Development delivery: logs each message at INFO, its link with the token redacted
/// (`…/verify-email?token=***`): the link is a live credential, and logs are read by more
/// people than mailboxes are. [`LogSender::showing_links`] logs whole links, for a developer's
/// own machine only.
///
/// ```
/// use crudauth_core::email::LogSender;
///
/// let safe = LogSender::new();
/// let local_only = LogSender::showing_links();
/// assert_eq!(
///     LogSender::redact_link("http://localhost:3000/verify-email?token=s3cr3t&x=1"),
///     "http://localhost:3000/verify-email?token=***&x=***"
/// );
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSender {
    show_links: bool,
}

impl LogSender {
    /// Logs each message with its link's token redacted.
    pub fn new() -> Self {
        Self { show_links: false }
    }

    /// Logs each message with its whole link, token included. Development only: anyone who
    /// reads the log can use the link.
    pub fn showing_links() -> Self {
        Self { show_links: true }
    }

    /// `link` with the value of every query parameter and every fragment replaced by `***`
    /// (the token may travel in either), the rest kept so the log still says where it points.
    pub fn redact_link(link: &str) -> String {
        let (before_fragment, fragment) = match link.split_once('#') {
            Some((head, fragment)) => (head, Some(fragment)),
            None => (link, None),
        };
        let mut out = match before_fragment.split_once('?') {
            Some((base, query)) => {
                let params: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((name, _)) => format!("{name}=***"),
                        None if pair.is_empty() => String::new(),
                        None => "***".to_owned(),
                    })
                    .collect();
                format!("{base}?{}", params.join("&"))
            }
            None => before_fragment.to_owned(),
        };
        if fragment.is_some() {
            out.push_str("#***");
        }
        out
    }
}

#[async_trait]
impl EmailSender for LogSender {
    async fn send(&self, m: &EmailMessage) -> Result<(), EmailError> {
        let link = match (&m.link, self.show_links) {
            (None, _) => String::new(),
            (Some(link), true) => link.clone(),
            (Some(link), false) => Self::redact_link(link),
        };
        tracing::info!(to = %m.to, kind = ?m.kind, link = %link, "development email (LogSender)");
        Ok(())
    }
}

/// Development delivery: appends each message as one JSON line `{to, subject, kind, link}` to a
/// file, for scripts and tests to read.
#[derive(Debug, Clone)]
pub struct OutboxFile {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl OutboxFile {
    /// Appends to `path` (created when missing).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Arc::new(Mutex::new(())),
        }
    }
}

#[async_trait]
impl EmailSender for OutboxFile {
    async fn send(&self, message: &EmailMessage) -> Result<(), EmailError> {
        let mut line = serde_json::to_vec(message).map_err(|e| EmailError(e.to_string()))?;
        line.push(b'\n');
        let path = self.path.clone();
        let lock = self.lock.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            file.write_all(&line)
        })
        .await
        .map_err(|e| EmailError(e.to_string()))?
        .map_err(|e| EmailError(format!("cannot append to {}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_crudauths() {
        let subjects = [
            (EmailKind::VerifyEmail, "Verify your email"),
            (EmailKind::ResetPassword, "Reset your password"),
            (EmailKind::ChangeEmail, "Confirm your new email"),
            (EmailKind::EmailChanged, "Your email address was changed"),
            (EmailKind::ExistingAccount, "You already have an account"),
            (EmailKind::PasswordChanged, "Your password was changed"),
            (
                EmailKind::MfaEnabled,
                "Two-factor authentication was turned on",
            ),
            (
                EmailKind::MfaDisabled,
                "Two-factor authentication was turned off",
            ),
            (EmailKind::RecoveryCodeUsed, "A recovery code was used"),
        ];
        for (kind, subject) in subjects {
            assert_eq!(kind.subject(), subject, "{kind:?}");
            assert_eq!(
                EmailMessage::new("a@example.com", kind, None).subject,
                subject
            );
        }
    }

    #[test]
    fn bodies_are_crudauths_and_notices_point_to_the_site() {
        let link = Some("https://app.example/reset-password?token=t".to_owned());
        let reset = EmailMessage::new("a@example.com", EmailKind::ResetPassword, link);
        assert_eq!(
            reset.text_body(),
            "Reset your password: https://app.example/reset-password?token=t\n"
        );
        let notice =
            |kind| EmailMessage::new("a@example.com", kind, None).with_site("https://app.example");
        assert_eq!(
            notice(EmailKind::ExistingAccount).text_body(),
            "Someone tried to register with this email. You already have an account - sign in \
             or reset your password at https://app.example.\n"
        );
        assert_eq!(
            notice(EmailKind::EmailChanged).text_body(),
            "The email address on your account was changed. If you didn't make this change, \
             sign in at https://app.example to secure your account.\n"
        );
        assert!(notice(EmailKind::PasswordChanged)
            .text_body()
            .contains("sign in at https://app.example and reset your password"));
    }

    #[test]
    fn links_are_redacted_to_their_shape() {
        for (link, redacted) in [
            (
                "https://app.example/reset-password?token=abc",
                "https://app.example/reset-password?token=***",
            ),
            (
                "https://a.example/x?t=1&u=2",
                "https://a.example/x?t=***&u=***",
            ),
            ("https://a.example/x?bare", "https://a.example/x?***"),
            ("https://a.example/x#tok", "https://a.example/x#***"),
            (
                "https://a.example/x?t=1#tok",
                "https://a.example/x?t=***#***",
            ),
            ("https://a.example/plain", "https://a.example/plain"),
        ] {
            assert_eq!(LogSender::redact_link(link), redacted, "{link}");
        }
    }
}
