//! Captures what the code under test logs, for tests that check the log lines.
//!
//! ```no_run
//! let (logs, _guard) = crudauth_tests::logs::capture(tracing::Level::WARN);
//! tracing::warn!("hello");
//! assert!(logs.text().contains("hello"));
//! ```

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Everything logged on this thread while its guard lives (a `MakeWriter` for `fmt`).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The log so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Sends this thread's log lines at `level` and above to a [`Captured`] until the guard is
/// dropped. A server task logs into it only when it runs on this thread (a current-thread
/// runtime).
pub fn capture(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(level)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}
