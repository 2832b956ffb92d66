//! The **DeliveryChannel** port (SMS, push, chat, anything that is not the email sender), the
//! fan-out of one recovery message to the email sender and every channel, and the bounded
//! queue that takes delivery off the request path.
//!
//! ```
//! use std::sync::Arc;
//! use crudauth_core::delivery::{DeliveryIntent, Fanout};
//! use crudauth_core::email::{EmailKind, LogSender};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let fanout = Fanout::new(Some(("https://app.example".into(), Arc::new(LogSender::new()))), vec![]);
//! // An existing-account notice has no token and no link.
//! fanout.deliver(&DeliveryIntent::notice(EmailKind::ExistingAccount, "ada@example.com")).await;
//! # });
//! ```
//!
//! The email sender gets the **link** (frontend URL, path, token) and never a bare token or any
//! text a user typed, so a sender that renders HTML cannot become an XSS vector. A channel gets
//! the token itself, to build whatever message its medium needs. Each destination's failure is
//! logged with the destination's name and is invisible to the client: there is no "at least one
//! succeeded", which would be an oracle.

use std::fmt::Debug;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, Mutex};

use crate::email::{EmailKind, EmailMessage, EmailSender};
use crate::lifespan::Tasks;
use crate::secret::OneTimeToken;
use crate::user::UserId;

/// One message to deliver, as a channel sees it.
#[derive(Debug, Clone)]
pub struct DeliveryIntent {
    /// Which message.
    pub kind: EmailKind,
    /// The single-use token, for the kinds that carry one (`None` for notices). A secret: never
    /// log it.
    pub token: Option<OneTimeToken>,
    /// The account the message is about (`None` for the existing-account notice).
    pub user_id: Option<UserId>,
    /// Where it goes: the account's address, or the new address for a change.
    pub recipient: String,
    /// How long the token lives (zero without one).
    pub expires_in: Duration,
}

/// Why a channel did not deliver.
#[derive(Debug, thiserror::Error)]
#[error("delivery failed: {0}")]
pub struct DeliveryError(pub String);

/// A way to reach users besides the email sender. Implement it in one file and add it with
/// `CrudAuthBuilder::channel`.
#[async_trait]
pub trait DeliveryChannel: Send + Sync + Debug + 'static {
    /// The channel's name, for logs.
    fn name(&self) -> &str;

    /// Delivers one message. An error is logged and changes no answer.
    async fn deliver(&self, intent: &DeliveryIntent) -> Result<(), DeliveryError>;
}

impl DeliveryIntent {
    /// A notice without a token (`existing_account`, `email_changed`).
    pub fn notice(kind: EmailKind, recipient: impl Into<String>) -> Self {
        Self {
            kind,
            token: None,
            user_id: None,
            recipient: recipient.into(),
            expires_in: Duration::ZERO,
        }
    }
}

/// The frontend path a kind's link points at, for the kinds that have one.
pub fn link_path(kind: EmailKind) -> Option<&'static str> {
    match kind {
        EmailKind::VerifyEmail => Some("/verify-email"),
        EmailKind::ResetPassword => Some("/reset-password"),
        EmailKind::ChangeEmail => Some("/confirm-email-change"),
        EmailKind::EmailChanged
        | EmailKind::ExistingAccount
        | EmailKind::PasswordChanged
        | EmailKind::MfaEnabled
        | EmailKind::MfaDisabled
        | EmailKind::RecoveryCodeUsed => None,
    }
}

/// Every destination of one message: the email sender (with the frontend URL its links point
/// at) and the channels.
#[derive(Debug, Clone, Default)]
pub struct Fanout {
    email: Option<(String, Arc<dyn EmailSender>)>,
    channels: Vec<Arc<dyn DeliveryChannel>>,
}

impl Fanout {
    /// The email sender, when there is one, with its frontend URL (no trailing `/`), and the
    /// channels, in order.
    pub fn new(
        email: Option<(String, Arc<dyn EmailSender>)>,
        channels: Vec<Arc<dyn DeliveryChannel>>,
    ) -> Self {
        Self { email, channels }
    }

    /// Whether anything would receive a message.
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.channels.is_empty()
    }

    /// Whether an email sender is configured (the change-email flow needs one).
    pub fn sends_email(&self) -> bool {
        self.email.is_some()
    }

    /// Delivers `intent` to every destination in turn; each failure is logged per destination
    /// and never stops the next.
    pub async fn deliver(&self, intent: &DeliveryIntent) {
        if let Some((frontend, sender)) = &self.email {
            let link = match (link_path(intent.kind), &intent.token) {
                (Some(path), Some(token)) => {
                    Some(format!("{frontend}{path}?token={}", token.expose()))
                }
                _ => None,
            };
            let message = EmailMessage::new(intent.recipient.clone(), intent.kind, link)
                .with_site(frontend.clone());
            if let Err(error) = sender.send(&message).await {
                tracing::warn!(kind = ?intent.kind, destination = "email", %error, "message not delivered");
            }
        }
        for channel in &self.channels {
            if let Err(error) = channel.deliver(intent).await {
                tracing::warn!(kind = ?intent.kind, destination = channel.name(), %error, "message not delivered");
            }
        }
    }
}

/// How often the queue's worker looks for jobs: a message waits at most this long (plus the
/// jobs ahead of it) before its delivery starts.
pub const DRAIN_EVERY: Duration = Duration::from_millis(5);

/// A bounded queue of jobs drained by one background task, so that slow delivery never runs on
/// (or times) a request. A full queue drops the job with a WARN; it never blocks.
#[derive(Debug)]
pub struct Queue<J> {
    sender: mpsc::Sender<J>,
    receiver: Mutex<Option<mpsc::Receiver<J>>>,
    pending: Arc<AtomicUsize>,
}

impl<J: Send + 'static> Queue<J> {
    /// A queue holding at most `capacity` jobs (at least 1).
    pub fn new(capacity: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Self {
            sender,
            receiver: Mutex::new(Some(receiver)),
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Queues `job`; `false` (and one WARN) when the queue is full or its worker has stopped.
    pub fn push(&self, job: J) -> bool {
        self.pending.fetch_add(1, Ordering::SeqCst);
        match self.sender.try_send(job) {
            Ok(()) => true,
            Err(_) => {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!("crudauth: delivery queue full or stopped; a message was dropped");
                false
            }
        }
    }

    /// How many jobs are queued or being handled.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Waits until every queued job has been handled (polling every few milliseconds). For
    /// tests and orderly hand-overs; it waits for ever if the worker was never started.
    pub async fn settled(&self) {
        while self.pending() > 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Starts the worker in `tasks`: every [`DRAIN_EVERY`] it handles the queued jobs one at a
    /// time with `handle`, and when the tasks stop it takes no new jobs and handles those
    /// already queued (until the shutdown's grace ends). Only the first call starts a worker.
    ///
    /// The worker wakes on its own clock, never because a job arrived: a request that queues
    /// a job then costs the same whatever the worker is doing. (Woken by each push, the worker
    /// would be asleep, and costly to wake, more often after a short job, such as a reset for
    /// an address without an account, than after a long one: a timing side channel.)
    pub async fn start<F, Fut>(&self, tasks: &mut Tasks, handle: F)
    where
        F: Fn(J) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(mut receiver) = self.receiver.lock().await.take() else {
            return;
        };
        let pending = self.pending.clone();
        tasks.spawn_with_stop("delivery queue", move |mut stop| async move {
            let mut tick = tokio::time::interval(DRAIN_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => loop {
                        match receiver.try_recv() {
                            Ok(job) => {
                                handle(job).await;
                                pending.fetch_sub(1, Ordering::SeqCst);
                            }
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => return,
                        }
                    },
                    () = stop.stopped() => break,
                }
            }
            receiver.close();
            while let Some(job) = receiver.recv().await {
                handle(job).await;
                pending.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::EmailError;

    #[derive(Debug, Default)]
    struct Recorder(std::sync::Mutex<Vec<EmailMessage>>);

    #[async_trait]
    impl EmailSender for Recorder {
        async fn send(&self, m: &EmailMessage) -> Result<(), EmailError> {
            self.0.lock().unwrap().push(m.clone());
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Failing;

    #[async_trait]
    impl DeliveryChannel for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        async fn deliver(&self, _: &DeliveryIntent) -> Result<(), DeliveryError> {
            Err(DeliveryError("down".into()))
        }
    }

    #[derive(Debug, Default)]
    struct Channel(std::sync::Mutex<Vec<Option<String>>>);

    #[async_trait]
    impl DeliveryChannel for Channel {
        fn name(&self) -> &str {
            "sms"
        }
        async fn deliver(&self, i: &DeliveryIntent) -> Result<(), DeliveryError> {
            self.0
                .lock()
                .unwrap()
                .push(i.token.as_ref().map(|t| t.expose().to_owned()));
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_sender_gets_the_link_a_channel_the_token_and_a_failure_stops_nothing() {
        let email = Arc::new(Recorder::default());
        let channel = Arc::new(Channel::default());
        let fanout = Fanout::new(
            Some(("https://app.example".into(), email.clone())),
            vec![Arc::new(Failing), channel.clone()],
        );
        let token = OneTimeToken::generate();
        fanout
            .deliver(&DeliveryIntent {
                kind: EmailKind::ResetPassword,
                token: Some(token.clone()),
                user_id: Some(UserId::Int(1)),
                recipient: "ada@example.com".into(),
                expires_in: Duration::from_secs(3600),
            })
            .await;
        let sent = email.0.lock().unwrap().clone();
        assert_eq!(
            sent[0].link.as_deref(),
            Some(
                format!(
                    "https://app.example/reset-password?token={}",
                    token.expose()
                )
                .as_str()
            )
        );
        assert_eq!(sent[0].to, "ada@example.com");
        assert_eq!(
            channel.0.lock().unwrap()[0].as_deref(),
            Some(token.expose())
        );
        fanout
            .deliver(&DeliveryIntent::notice(
                EmailKind::EmailChanged,
                "old@example.com",
            ))
            .await;
        assert_eq!(
            email.0.lock().unwrap()[1].link,
            None,
            "a notice has no link"
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_shutdown_drains_what_it_holds() {
        let queue = Queue::new(2);
        assert!(queue.push(1));
        assert!(queue.push(2));
        assert!(!queue.push(3), "full: dropped, not blocked");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Tasks::new();
        let record = seen.clone();
        queue
            .start(&mut tasks, move |job: i32| {
                let record = record.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    record.lock().unwrap().push(job);
                }
            })
            .await;
        tasks.shutdown(Duration::from_secs(5)).await;
        let seen = seen.lock().unwrap().clone();
        assert!(seen.starts_with(&[1, 2]), "{seen:?}");
        assert_eq!(queue.pending(), 0, "every queued job was handled: {seen:?}");
    }
}
