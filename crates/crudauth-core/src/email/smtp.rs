//! Email over SMTP, on `lettre` (feature `smtp`).
//!
//! ```no_run
//! use crudauth_core::email::SmtpSender;
//!
//! // STARTTLS on the submission port; `smtps://…:465` for TLS from the first byte.
//! let sender = SmtpSender::from_url(
//!     "smtp://user:secret@smtp.example.com:587?tls=required",
//!     "Example <no-reply@example.com>",
//! )
//! .unwrap();
//! assert!(!format!("{sender:?}").contains("secret"));
//! ```

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{EmailError, EmailMessage, EmailSender};

/// Sends each message over SMTP, configured by URL: `smtps://user:pass@host:465` (TLS),
/// `smtp://user:pass@host:587?tls=required` (STARTTLS), or plain `smtp://host:port` (no
/// encryption: a local relay or a test server only). The URL's password never shows in
/// `Debug` or in errors.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    url: String,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("url", &crate::error::redact_url(&self.url))
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl SmtpSender {
    /// A sender for the server at `url`, writing from `from` (`Name <address>` or an address).
    pub fn from_url(url: &str, from: &str) -> Result<Self, EmailError> {
        let redacted = crate::error::redact_url(url);
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| EmailError(format!("bad SMTP URL {redacted}: {e}")))?
            .build();
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| EmailError(format!("bad sender address {from:?}: {e}")))?;
        Ok(Self {
            transport,
            from,
            url: url.to_owned(),
        })
    }
}

#[async_trait]
impl EmailSender for SmtpSender {
    async fn send(&self, message: &EmailMessage) -> Result<(), EmailError> {
        let to = message
            .to
            .parse::<Mailbox>()
            .map_err(|e| EmailError(format!("bad recipient: {e}")))?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(message.text_body())
            .map_err(|e| EmailError(e.to_string()))?;
        self.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| EmailError(format!("SMTP delivery failed: {e}")))
    }
}
