//! Email over SMTP against a real SMTP server process (Python's `smtpd` debugging server,
//! which prints every message it receives): a registration's verification email arrives with
//! its link, and a server that is down changes no answer.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crudauth_axum::EmailConfig;
use crudauth_core::email::SmtpSender;
use crudauth_tests::app::{spawn, Backend, Options};
use crudauth_tests::http::{Body, Browser};

/// A running SMTP server and everything it printed.
struct SmtpServer {
    child: Child,
    port: u16,
    printed: Arc<Mutex<String>>,
}

impl SmtpServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-W",
                "ignore",
                "-m",
                "smtpd",
                "-n",
                "-c",
                "DebuggingServer",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with the smtpd module (Python ≤ 3.11) runs the test SMTP server");
        let printed = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let sink = printed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the SMTP server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            printed,
        }
    }

    /// Waits until the server has printed `needle`; returns everything printed.
    async fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let all = self.printed.lock().unwrap().clone();
            if all.contains(needle) {
                return all;
            }
            assert!(Instant::now() < deadline, "no {needle:?} in {all}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_email_arrives_over_smtp() {
    let server = SmtpServer::start();
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let mut options = Options::new(Backend::Memory);
    options.email = false;
    options.customize = Box::new(move |b: crudauth_axum::CrudAuthBuilder| {
        let sender = SmtpSender::from_url(&url, "Demo <no-reply@example.com>").unwrap();
        b.email(EmailConfig::new("https://app.example", sender))
    });
    let app = spawn(options).await;
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/register"),
            Body::Json(json!({"email": "ada@example.com", "username": "ada", "password": "correct horse battery"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 202);
    let printed = server
        .wait_for("Verify your email: https://app.example/verify-email?token=")
        .await;
    assert!(printed.contains("Subject: Verify your email"), "{printed}");
    assert!(printed.contains("To: ada@example.com"), "{printed}");
    assert!(
        printed.contains("From: Demo <no-reply@example.com>"),
        "{printed}"
    );
    // The token in the mail redeems. The server prints each line as a Python bytes literal;
    // the body is quoted-printable (long lines folded with a trailing `=`, `=` as `=3D`).
    let body: Vec<&str> = printed
        .lines()
        .skip_while(|l| *l != "b''")
        .skip(1)
        .take_while(|l| l.starts_with("b'"))
        .map(|l| l.trim_start_matches("b'").trim_end_matches('\''))
        .collect();
    let body = body.join("\n").replace("=\n", "").replace("=3D", "=");
    let token = body
        .split("verify-email?token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/email/verify-confirm"),
            Body::Json(json!({"token": token})),
            &[],
        )
        .await;
    assert_eq!((r.status, r.detail()), (200, "Verified successfully."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_server_that_is_down_changes_no_answer() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("smtp://127.0.0.1:{port}");
    let mut options = Options::new(Backend::Memory);
    options.email = false;
    options.customize = Box::new(move |b: crudauth_axum::CrudAuthBuilder| {
        let sender = SmtpSender::from_url(&url, "no-reply@example.com").unwrap();
        b.email(EmailConfig::new("https://app.example", sender))
    });
    let app = spawn(options).await;
    app.user("ada@example.com", "ada", "correct horse battery")
        .await;
    let r = Browser::new()
        .send(
            "POST",
            &app.url("/password/reset-request"),
            Body::Json(json!({"email": "ada@example.com"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    app.auth.deliveries_settled().await;
    assert!(SmtpSender::from_url("nonsense://x", "a@example.com").is_err());
    let debug = format!(
        "{:?}",
        SmtpSender::from_url("smtp://user:hunter2@127.0.0.1:25", "a@example.com").unwrap()
    );
    assert!(!debug.contains("hunter2"), "{debug}");
}
