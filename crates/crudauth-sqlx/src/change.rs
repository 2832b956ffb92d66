//! The change counter of an SQLite file: how the user cache sees an edit made behind
//! crudauth's back (an operator's `UPDATE users …` in the `sqlite3` shell, another worker's
//! write) from the very next request.
//!
//! ```no_run
//! # use crudauth_core::user::UserStore;
//! # async fn run() -> Result<(), crudauth_sqlx::SetupError> {
//! let users = crudauth_sqlx::SqlxUsers::connect("sqlite:users.db?mode=rwc").await?;
//! let before = users.change_counter(); // Some(n): a read of the file's header, no query
//! // … `sqlite3 users.db "UPDATE users SET is_active = 0 WHERE id = 1"` …
//! assert_ne!(users.change_counter(), before);
//! # Ok(()) }
//! ```
//!
//! SQLite keeps a "file change counter" in the database header (4 bytes, big-endian, at
//! offset 24) and, in its default rollback-journal mode, increments it with every transaction
//! that changes the file, whichever process commits it. Reading those bytes is one `pread` of
//! a page the kernel already caches: cheap enough for every authenticated request, where a
//! query would cost tens of microseconds. In WAL mode the header is written only at
//! checkpoints, so the counter would not move with each commit: a WAL database (header byte 18
//! is 2) reports no counter, and the cache falls back to its time to live.

use std::fs::File;
use std::path::Path;

/// An SQLite database file opened for reading its header.
#[derive(Debug)]
pub(crate) struct ChangeCounter {
    file: File,
}

/// Where the header's file format version (2: WAL) and change counter lie.
const WRITE_VERSION: usize = 18;
const COUNTER: std::ops::Range<usize> = 24..28;

impl ChangeCounter {
    /// Opens `path` for reading; `None` when it cannot be opened (an in-memory database, a
    /// file not created yet).
    pub(crate) fn open(path: &Path) -> Option<Self> {
        File::open(path).ok().map(|file| Self { file })
    }

    /// The counter now; `None` when the header cannot be read (an empty file) or the
    /// database is in WAL mode.
    #[cfg(unix)]
    pub(crate) fn read(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut header = [0u8; COUNTER.end];
        self.file.read_exact_at(&mut header, 0).ok()?;
        if !header.starts_with(b"SQLite format 3\0") || header[WRITE_VERSION] == 2 {
            return None;
        }
        let counter: [u8; 4] = header[COUNTER].try_into().ok()?;
        Some(u64::from(u32::from_be_bytes(counter)))
    }

    /// Not read on platforms without positioned reads: the cache keeps its time to live.
    #[cfg(not(unix))]
    pub(crate) fn read(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::{ConnectOptions, Connection, Executor};

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "crudauth-sqlx-change-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir.join("users.db")
    }

    async fn connect(path: &Path, mode: SqliteJournalMode) -> sqlx::SqliteConnection {
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(mode)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn every_commit_by_any_connection_moves_the_counter() {
        let path = scratch("rollback");
        let mut writer = connect(&path, SqliteJournalMode::Delete).await;
        writer
            .execute("CREATE TABLE t (n INTEGER)")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let counter = ChangeCounter::open(&path).unwrap_or_else(|| panic!("opened"));
        let mut seen = vec![counter.read()];
        for n in 0..3 {
            // Each on a connection of its own, as another process would.
            let mut other = connect(&path, SqliteJournalMode::Delete).await;
            other
                .execute(format!("INSERT INTO t VALUES ({n})").as_str())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            other.close().await.unwrap_or_else(|e| panic!("{e}"));
            seen.push(counter.read());
        }
        assert!(seen.iter().all(Option::is_some), "{seen:?}");
        seen.dedup();
        assert_eq!(seen.len(), 4, "one move a commit: {seen:?}");
        // A read changes nothing.
        let before = counter.read();
        writer
            .execute("SELECT count(*) FROM t")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(counter.read(), before);
    }

    #[tokio::test]
    async fn a_wal_database_or_an_empty_file_has_no_counter() {
        let path = scratch("wal");
        let mut wal = connect(&path, SqliteJournalMode::Wal).await;
        wal.execute("CREATE TABLE t (n INTEGER)")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let counter = ChangeCounter::open(&path).unwrap_or_else(|| panic!("opened"));
        assert_eq!(counter.read(), None);
        let empty = path.with_file_name("empty.db");
        std::fs::write(&empty, b"").unwrap_or_else(|e| panic!("{e}"));
        let counter = ChangeCounter::open(&empty).unwrap_or_else(|| panic!("opened"));
        assert_eq!(counter.read(), None);
        assert!(ChangeCounter::open(&path.with_file_name("absent.db")).is_none());
    }
}
