//! Server-side sessions: create, load-and-slide, rotate, revoke, list a user's devices, cap.
//!
//! A session id is 256 random bits held by the client; the store only sees
//! `HMAC(secret key, id)`, which doubles as the session's public *handle* (what the device
//! list shows and what revocation takes). A remember-me session's id starts with `r.`, so its
//! idle window is known before the record is read and an authenticated request stays one
//! store round trip (read and slide together). Changing that prefix changes the HMAC, so it
//! cannot be forged.
//!
//! ```
//! use std::sync::Arc;
//! use crudauth_core::secret::SecretKey;
//! use crudauth_core::session::{NewSession, SessionConfig, Sessions};
//! use crudauth_core::store::MemoryStore;
//! use crudauth_core::user::UserId;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let sessions = Sessions::new(Arc::new(MemoryStore::new()), SecretKey::new([1u8; 32]).unwrap(), SessionConfig::default());
//! let created = sessions.create(&UserId::Int(7), 0, NewSession::default()).await?;
//! let loaded = sessions.load(created.id.clone()).await?.unwrap();
//! assert_eq!(loaded.record.user_id, UserId::Int(7));
//! sessions.revoke(loaded.handle()).await?;
//! assert!(sessions.load(created.id).await?.is_none());
//! # Ok::<(), crudauth_core::StoreError>(()) }).unwrap();
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::clock::{self, duration_ms, Clock};
use crate::csrf::Csrf;
use crate::error::StoreResult;
use crate::secret::{random_token, SecretKey, SessionId};
use crate::store::{decode_with_or_discard, Store, Swap};
use crate::user::UserId;

mod data;
mod record;

pub use data::{DataError, Flash, SessionData, DEFAULT_MAX_DATA_BYTES, FLASH_KEY};
pub use record::{SessionRecord, MAX_DATA};

/// Session lifetimes and limits.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Idle window of an ordinary session (30 minutes).
    pub idle_timeout: Duration,
    /// Idle window of a remember-me session (30 days).
    pub remember_me: Duration,
    /// Hard cap on a session's age, whatever its activity (off by default).
    pub absolute_timeout: Option<Duration>,
    /// Live sessions a user may hold; a new one evicts the least recently active (5).
    pub max_sessions_per_user: usize,
    /// How often the recorded last activity is rewritten (60 s); the expiry itself slides on
    /// every request.
    pub activity_write_interval: Duration,
    /// The most application data ([`SessionData`]) a session may hold, encoded (4 KiB).
    pub max_data_bytes: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            remember_me: Duration::from_secs(30 * 24 * 3600),
            absolute_timeout: None,
            max_sessions_per_user: 5,
            activity_write_interval: Duration::from_secs(60),
            max_data_bytes: DEFAULT_MAX_DATA_BYTES,
        }
    }
}

/// Client details for a new session.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    /// Client address.
    pub ip: String,
    /// User agent.
    pub user_agent: String,
    /// Remember-me: a 30-day idle window.
    pub remember_me: bool,
    /// How the user signed in: `password`, `mfa`, …, or `oauth:{provider}` for an OAuth
    /// sign-in (read back as [`SessionRecord::login_type`] `oauth` and
    /// [`SessionRecord::oauth_provider`]).
    pub login_type: Option<String>,
}

/// A freshly created session.
#[derive(Debug, Clone)]
pub struct CreatedSession {
    /// The id for the client's cookie.
    pub id: SessionId,
    /// The public handle.
    pub handle: String,
    /// The record as stored.
    pub record: SessionRecord,
    /// Sessions evicted to keep the user under the cap.
    pub evicted: usize,
}

impl CreatedSession {
    /// The session as a request that had just loaded it would hold it.
    pub fn into_loaded(self) -> LoadedSession {
        let raw = self.record.to_bytes();
        LoadedSession {
            id: self.id,
            key: Sessions::record_key(&self.handle),
            record: self.record,
            raw,
        }
    }
}

/// A live session, read (and slid) for a request. `Debug` shows neither the id nor the
/// stored bytes (they hold the CSRF nonce).
#[derive(Clone)]
pub struct LoadedSession {
    /// The id from the client's cookie.
    pub id: SessionId,
    /// The record's store key, `s:` and the handle (one allocation for both).
    key: String,
    /// The record.
    pub record: SessionRecord,
    /// The record's bytes as this request knows them stored: what a write of the session's
    /// data compares against, so it needs no read of its own.
    raw: Bytes,
}

impl std::fmt::Debug for LoadedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedSession")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("record", &self.record)
            .field("raw_bytes", &self.raw.len())
            .finish()
    }
}

impl LoadedSession {
    /// The public handle.
    pub fn handle(&self) -> &str {
        handle_in(&self.key)
    }

    /// The application's data, decoded from the record (no store operation).
    pub fn data(&self, sessions: &Sessions) -> SessionData {
        SessionData::decode(self.record.data(), sessions.config.max_data_bytes)
    }
}

/// A user's session as listed on the device page.
#[derive(Debug, Clone)]
pub struct ListedSession {
    /// The public handle.
    pub handle: String,
    /// The record.
    pub record: SessionRecord,
}

const REMEMBER_PREFIX: &str = "r.";
const RECORD_PREFIX: &str = "s:";
const INDEX_MARGIN: Duration = Duration::from_secs(3600);
/// How many times a data write re-reads a record that changed under it before giving up.
const WRITE_ATTEMPTS: usize = 32;

/// The handle in a record key (`s:` and the handle).
fn handle_in(key: &str) -> &str {
    &key[RECORD_PREFIX.len()..]
}

/// The session service over a [`Store`].
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
    key: SecretKey,
    csrf: Csrf,
    config: SessionConfig,
    clock: Arc<dyn Clock>,
}

impl Sessions {
    /// A session service on `store`: session ids are keyed (HMAC) by `key`, and CSRF tokens by
    /// a key derived from it for that purpose (see [`Sessions::with_csrf_key`]).
    pub fn new(store: Arc<dyn Store>, key: SecretKey, config: SessionConfig) -> Self {
        let csrf = Csrf::new(key.derive(crate::secret::purpose::CSRF));
        Self {
            store,
            key,
            csrf,
            config,
            clock: clock::system(),
        }
    }

    /// Keys CSRF tokens with `key` (the builder hands each purpose its own key derived from
    /// `SECRET_KEY`; see [`SecretKey::derive`]).
    pub fn with_csrf_key(mut self, key: SecretKey) -> Self {
        self.csrf = Csrf::new(key);
        self
    }

    /// Uses `clock` for every timestamp (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The CSRF service bound to these sessions.
    pub fn csrf(&self) -> &Csrf {
        &self.csrf
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The public handle of a session id: its keyed digest.
    pub fn handle_of(&self, id: &SessionId) -> String {
        handle_in(&self.key_of(id)).to_owned()
    }

    /// The record's store key of a session id: `s:` and its handle, in one allocation.
    fn key_of(&self, id: &SessionId) -> String {
        self.key.digest_after(RECORD_PREFIX, "session", id.expose())
    }

    /// The idle window of a session with this id.
    pub fn idle_window_of(&self, id: &SessionId) -> Duration {
        self.idle_window(id.expose().starts_with(REMEMBER_PREFIX))
    }

    fn idle_window(&self, remember_me: bool) -> Duration {
        if remember_me {
            self.config.remember_me
        } else {
            self.config.idle_timeout
        }
    }

    fn record_key(handle: &str) -> String {
        let mut key = String::with_capacity(RECORD_PREFIX.len() + handle.len());
        key.push_str(RECORD_PREFIX);
        key.push_str(handle);
        key
    }

    fn index_key(user_id: &UserId) -> String {
        format!("u:{user_id}")
    }

    fn index_ttl(&self) -> Duration {
        self.config.remember_me.max(self.config.idle_timeout) + INDEX_MARGIN
    }

    /// Decodes a record read from `key`; a corrupt one is deleted and reads as absent.
    async fn decode(&self, key: &str, raw: Option<Bytes>) -> StoreResult<Option<SessionRecord>> {
        decode_with_or_discard(self.store.as_ref(), key, raw, SessionRecord::from_bytes).await
    }

    /// Creates a session for `user_id` at credential epoch `token_version`; then, in one step on
    /// the user's index, evicts the least recently active sessions beyond the cap.
    ///
    /// The record is written before it is indexed: a concurrent eviction can only remove a
    /// record that exists, so the cap holds under any number of parallel logins.
    pub async fn create(
        &self,
        user_id: &UserId,
        token_version: i64,
        new: NewSession,
    ) -> StoreResult<CreatedSession> {
        let now = self.clock.now_millis();
        let random = random_token(32);
        let id = SessionId::from_client(if new.remember_me {
            format!("{REMEMBER_PREFIX}{random}")
        } else {
            random
        });
        let key = self.key_of(&id);
        let handle = handle_in(&key);
        let record = SessionRecord::new(
            user_id.clone(),
            token_version,
            now,
            &new,
            &Csrf::new_nonce(),
        );
        let ttl = self.capped(&record, self.idle_window(record.remember_me), now);
        self.store.set(&key, record.to_bytes(), ttl).await?;
        let evicted = self
            .store
            .index_add(
                &Self::index_key(user_id),
                handle,
                now as f64,
                Some(self.config.max_sessions_per_user.max(1)),
                self.index_ttl(),
            )
            .await?;
        for old in &evicted {
            self.store.delete(&Self::record_key(old)).await?;
            tracing::debug!(reason = "session_limit", "session evicted");
        }
        Ok(CreatedSession {
            id,
            handle: handle.to_owned(),
            record,
            evicted: evicted.len(),
        })
    }

    /// How long a record may live from `now` with an idle window of `window`: the window,
    /// capped at the absolute deadline when there is one (so the store never keeps a session
    /// past it).
    fn capped(&self, record: &SessionRecord, window: Duration, now: u64) -> Duration {
        match self.absolute_left(record, now) {
            Some(left) => window.min(left),
            None => window,
        }
    }

    /// The time left before the absolute deadline, `None` without one (zero: past it).
    fn absolute_left(&self, record: &SessionRecord, now: u64) -> Option<Duration> {
        let limit = self.config.absolute_timeout?;
        let deadline = record.created_at.saturating_add(duration_ms(limit));
        Some(Duration::from_millis(deadline.saturating_sub(now)))
    }

    /// Reads a live session and slides its idle expiry — one store operation. Records past the
    /// absolute timeout are deleted and read as absent; within the last idle window before
    /// that deadline the expiry is pulled back to it (one more operation, only then). Every
    /// `activity_write_interval` the recorded last activity is rewritten too (two more
    /// operations, at most once per interval): a compare-and-swap against the record as read,
    /// so it never overwrites a concurrent write (a CSRF rotation, a move to a new epoch) —
    /// the concurrent write wins and the activity is recorded by a later request.
    pub async fn load(&self, id: SessionId) -> StoreResult<Option<LoadedSession>> {
        if id.expose().is_empty() || id.expose().len() > 64 {
            return Ok(None);
        }
        let key = self.key_of(&id);
        let handle = handle_in(&key);
        let window = self.idle_window_of(&id);
        let Some(mut raw) = self.store.get_and_touch(&key, window).await? else {
            return Ok(None);
        };
        let Some(mut record) = self.decode(&key, Some(raw.clone())).await? else {
            return Ok(None);
        };
        let now = self.clock.now_millis();
        let ttl = self.capped(&record, window, now);
        if ttl.is_zero() {
            self.remove(&key, &record.user_id).await?;
            tracing::debug!(reason = "session_absolute_timeout", "session ended");
            return Ok(None);
        }
        if now.saturating_sub(record.last_activity)
            >= duration_ms(self.config.activity_write_interval)
        {
            let mut active = record.clone();
            active.last_activity = now;
            match self
                .store
                .compare_and_swap(&key, &raw, active.to_bytes(), Some(ttl))
                .await?
            {
                Swap::Absent => return Ok(None),
                // Written in between: that write stands, this request uses the record it read.
                Swap::Changed => {}
                Swap::Swapped => {
                    raw = active.to_bytes();
                    record = active;
                    self.store
                        .index_add(
                            &Self::index_key(&record.user_id),
                            handle,
                            now as f64,
                            None,
                            self.index_ttl(),
                        )
                        .await?;
                }
            }
        } else if ttl < window && !self.store.expire(&key, ttl).await? {
            return Ok(None);
        }
        Ok(Some(LoadedSession {
            id,
            key,
            record,
            raw,
        }))
    }

    /// Writes `data` into a live session's record: one compare-and-swap against the record as
    /// the request loaded it, so it costs no read. If something else wrote the record in
    /// between (a CSRF rotation, an activity stamp, another request's data), the record is
    /// read again and the data applied onto it — the data of the last request to write wins,
    /// every other field stays as the other writer left it. A session that has ended is never
    /// written back (`false`): data cannot resurrect a revoked session.
    pub async fn write_data(
        &self,
        session: &LoadedSession,
        data: &SessionData,
    ) -> StoreResult<bool> {
        let encoded = data.encode();
        let mut expected = session.raw.clone();
        for attempt in 0..WRITE_ATTEMPTS {
            if attempt > 1 {
                // Writers that keep colliding spread out (up to a few ms) instead of
                // retrying in lockstep.
                let spread = rand::random::<u64>() % (1 + attempt as u64);
                tokio::time::sleep(Duration::from_millis(spread)).await;
            }
            let Some(mut record) = self.decode(&session.key, Some(expected.clone())).await? else {
                return Ok(false);
            };
            if record.user_id != session.record.user_id {
                return Ok(false);
            }
            if record.set_data(encoded.clone()).is_err() {
                return Ok(false);
            }
            match self
                .store
                .compare_and_swap(&session.key, &expected, record.to_bytes(), None)
                .await?
            {
                Swap::Swapped => return Ok(true),
                Swap::Absent => return Ok(false),
                Swap::Changed => match self.store.get(&session.key).await? {
                    Some(now) => expected = now,
                    None => return Ok(false),
                },
            }
        }
        Err(crate::error::StoreError::Contended {
            key: session.key.clone(),
            operation: "writing session data",
        })
    }

    /// Replaces a live session's record (never resurrecting a deleted one), keeping its expiry.
    /// `false` when the session is gone.
    pub async fn update(&self, handle: &str, record: &SessionRecord) -> StoreResult<bool> {
        self.store
            .set_if_present(&Self::record_key(handle), record.to_bytes(), None)
            .await
    }

    /// Gives a live session a new CSRF nonce; returns the updated record, `None` when the
    /// session is gone.
    pub async fn rotate_csrf(&self, session: &LoadedSession) -> StoreResult<Option<SessionRecord>> {
        let mut record = session.record.clone();
        record.set_csrf_nonce(&Csrf::new_nonce());
        Ok(self
            .update(session.handle(), &record)
            .await?
            .then_some(record))
    }

    /// Moves a live session to a new id, for a privilege change (a password changed or set):
    /// the old id dies and the client gets a new one, with a new CSRF nonce, at credential
    /// epoch `token_version`. The session keeps its creation time (so its absolute deadline and
    /// freshness), sudo stamp and client details.
    ///
    /// The new record is written and indexed before the old one is taken; if the old one was
    /// already gone (revoked meanwhile), the new one is removed again and `None` returned — a
    /// rotation never brings back an ended session.
    pub async fn rotate(
        &self,
        session: &LoadedSession,
        token_version: i64,
    ) -> StoreResult<Option<CreatedSession>> {
        self.rotate_stamped(session, token_version, session.record.sudo_until)
            .await
    }

    /// Like [`Sessions::rotate`], with the sudo stamp set to `sudo_until` (ms since the epoch;
    /// `None` removes it): an elevation is a privilege change, so it moves the session to a
    /// new id too, and the stamp lives in the record, where checking it costs no extra read.
    pub async fn rotate_stamped(
        &self,
        session: &LoadedSession,
        token_version: i64,
        sudo_until: Option<u64>,
    ) -> StoreResult<Option<CreatedSession>> {
        let now = self.clock.now_millis();
        let mut record = session.record.clone();
        record.sudo_until = sudo_until;
        record.set_csrf_nonce(&Csrf::new_nonce());
        record.token_version = token_version;
        record.last_activity = now;
        let random = random_token(32);
        let id = SessionId::from_client(if record.remember_me {
            format!("{REMEMBER_PREFIX}{random}")
        } else {
            random
        });
        let key = self.key_of(&id);
        let handle = handle_in(&key);
        let index = Self::index_key(&record.user_id);
        let ttl = self.capped(&record, self.idle_window(record.remember_me), now);
        if ttl.is_zero() {
            return Ok(None);
        }
        self.store.set(&key, record.to_bytes(), ttl).await?;
        self.store
            .index_add(&index, handle, now as f64, None, self.index_ttl())
            .await?;
        let old = self.store.take(&session.key).await?;
        let gone = [session.handle().to_owned()];
        if old.is_none() {
            self.store.delete(&key).await?;
            self.store
                .index_remove(&index, &[handle.to_owned()])
                .await?;
            return Ok(None);
        }
        self.store.index_remove(&index, &gone).await?;
        Ok(Some(CreatedSession {
            id,
            handle: handle.to_owned(),
            record,
            evicted: 0,
        }))
    }

    /// Ends a session by handle. `true` when it was live.
    pub async fn revoke(&self, handle: &str) -> StoreResult<bool> {
        let key = Self::record_key(handle);
        let raw = self.store.take(&key).await?;
        let Some(record) = self.decode(&key, raw).await? else {
            return Ok(false);
        };
        self.store
            .index_remove(&Self::index_key(&record.user_id), &[handle.to_owned()])
            .await?;
        Ok(true)
    }

    /// Ends a session by handle only if it belongs to `owner`. `true` when it did and was live.
    pub async fn revoke_owned(&self, handle: &str, owner: &UserId) -> StoreResult<bool> {
        let key = Self::record_key(handle);
        let raw = self.store.get(&key).await?;
        match self.decode(&key, raw).await? {
            Some(record) if &record.user_id == owner => self.remove(&key, owner).await,
            _ => Ok(false),
        }
    }

    /// Ends a session already loaded for this request (its record read moments ago), without
    /// reading it again. `true` when it was still live.
    pub async fn end(&self, session: &LoadedSession) -> StoreResult<bool> {
        self.remove(&session.key, &session.record.user_id).await
    }

    /// Deletes the record at `key` and takes its handle out of `user_id`'s index; `true` when
    /// the record was there.
    async fn remove(&self, key: &str, user_id: &UserId) -> StoreResult<bool> {
        let deleted = self.store.delete(key).await?;
        self.store
            .index_remove(&Self::index_key(user_id), &[handle_in(key).to_owned()])
            .await?;
        Ok(deleted)
    }

    /// A user's live sessions, oldest first (the order they were created in, as crudauth lists
    /// them). Index entries whose record is gone are pruned on the way.
    pub async fn list(&self, user_id: &UserId) -> StoreResult<Vec<ListedSession>> {
        let index = Self::index_key(user_id);
        let mut live = Vec::new();
        let mut dead = Vec::new();
        let now = self.clock.now_millis();
        for entry in self.store.index_members(&index).await? {
            let key = Self::record_key(&entry.member);
            let raw = self.store.get(&key).await?;
            match self.decode(&key, raw).await? {
                Some(record)
                    if self
                        .absolute_left(&record, now)
                        .is_some_and(|l| l.is_zero()) =>
                {
                    // Past its absolute deadline: ended, never listed.
                    self.store.delete(&key).await?;
                    dead.push(entry.member);
                }
                Some(record) if &record.user_id == user_id => live.push(ListedSession {
                    handle: entry.member,
                    record,
                }),
                _ => dead.push(entry.member),
            }
        }
        if !dead.is_empty() {
            self.store.index_remove(&index, &dead).await?;
        }
        live.sort_by_key(|s| s.record.created_at);
        Ok(live)
    }

    /// Ends every session of a user except `keep` (a handle). Returns how many were live.
    pub async fn revoke_all(&self, user_id: &UserId, keep: Option<&str>) -> StoreResult<usize> {
        let index = Self::index_key(user_id);
        let mut revoked = 0;
        let mut removed = Vec::new();
        for entry in self.store.index_members(&index).await? {
            if keep == Some(entry.member.as_str()) {
                continue;
            }
            if self.store.delete(&Self::record_key(&entry.member)).await? {
                revoked += 1;
            }
            removed.push(entry.member);
        }
        if !removed.is_empty() {
            self.store.index_remove(&index, &removed).await?;
        }
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryStore;

    fn service(clock: Arc<ManualClock>) -> Sessions {
        let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
        service_on(clock, store)
    }

    #[tokio::test]
    async fn idle_sessions_expire_and_activity_slides() {
        let clock = ManualClock::starting_now();
        let s = service(clock.clone());
        let created = s
            .create(&UserId::Int(1), 0, NewSession::default())
            .await
            .unwrap();
        for _ in 0..4 {
            clock.advance(Duration::from_secs(20 * 60));
            assert!(s.load(created.id.clone()).await.unwrap().is_some());
        }
        clock.advance(Duration::from_secs(31 * 60));
        assert!(s.load(created.id.clone()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn remember_me_ids_get_the_long_window_and_cannot_be_forged() {
        let clock = ManualClock::starting_now();
        let s = service(clock.clone());
        let created = s
            .create(
                &UserId::Int(1),
                0,
                NewSession {
                    remember_me: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(created.id.expose().starts_with("r."));
        clock.advance(Duration::from_secs(29 * 24 * 3600));
        assert!(s.load(created.id.clone()).await.unwrap().is_some());
        let stripped = SessionId::from_client(created.id.expose().trim_start_matches("r."));
        assert!(s.load(stripped.clone()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn absolute_timeout_ends_busy_sessions() {
        let clock = ManualClock::starting_now();
        let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
        let config = SessionConfig {
            absolute_timeout: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        let s = Sessions::new(store, SecretKey::new([3u8; 32]).unwrap(), config)
            .with_clock(clock.clone());
        let created = s
            .create(&UserId::Int(1), 0, NewSession::default())
            .await
            .unwrap();
        for _ in 0..5 {
            clock.advance(Duration::from_secs(10 * 60));
            assert!(s.load(created.id.clone()).await.unwrap().is_some());
        }
        clock.advance(Duration::from_secs(10 * 60));
        assert!(s.load(created.id.clone()).await.unwrap().is_none());
    }

    fn with_absolute(clock: Arc<ManualClock>, store: Arc<MemoryStore>, limit: u64) -> Sessions {
        let config = SessionConfig {
            absolute_timeout: Some(Duration::from_secs(limit)),
            ..Default::default()
        };
        Sessions::new(store, SecretKey::new([3u8; 32]).unwrap(), config).with_clock(clock)
    }

    #[tokio::test]
    async fn the_store_never_keeps_a_session_past_its_absolute_deadline() {
        let clock = ManualClock::starting_now();
        let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
        let key = |s: &Sessions, c: &CreatedSession| format!("s:{}", s.handle_of(&c.id));
        // A deadline shorter than the idle window caps the first TTL.
        let short = with_absolute(clock.clone(), store.clone(), 600);
        let created = short
            .create(&UserId::Int(1), 0, NewSession::default())
            .await
            .unwrap();
        let ttl = store.ttl(&key(&short, &created)).await.unwrap().unwrap();
        assert!(ttl <= Duration::from_secs(600), "{ttl:?}");
        // Activity near the deadline slides the TTL only up to it, on reads and on the
        // activity write alike.
        let s = with_absolute(clock.clone(), store.clone(), 3600);
        let created = s
            .create(&UserId::Int(1), 0, NewSession::default())
            .await
            .unwrap();
        for minutes in [20, 20, 10] {
            clock.advance(Duration::from_secs(minutes * 60));
            assert!(s.load(created.id.clone()).await.unwrap().is_some());
        }
        let ttl = store.ttl(&key(&s, &created)).await.unwrap().unwrap();
        assert!(ttl <= Duration::from_secs(10 * 60), "{ttl:?}");
        clock.advance(Duration::from_secs(10));
        assert!(s.load(created.id.clone()).await.unwrap().is_some());
        let ttl = store.ttl(&key(&s, &created)).await.unwrap().unwrap();
        assert!(ttl <= Duration::from_secs(10 * 60 - 10), "{ttl:?}");
    }

    #[tokio::test]
    async fn the_device_list_never_shows_a_session_past_its_absolute_deadline() {
        let clock = ManualClock::starting_now();
        let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
        // Sessions made before an absolute timeout was configured (their TTLs are not capped).
        let before = service_on(clock.clone(), store.clone());
        let user = UserId::Int(5);
        let old = before
            .create(&user, 0, NewSession::default())
            .await
            .unwrap();
        for minutes in [20, 20] {
            clock.advance(Duration::from_secs(minutes * 60));
            assert!(before.load(old.id.clone()).await.unwrap().is_some());
        }
        clock.advance(Duration::from_secs(10 * 60));
        let young = before
            .create(&user, 0, NewSession::default())
            .await
            .unwrap();
        assert!(before.load(old.id.clone()).await.unwrap().is_some());
        let now = with_absolute(clock.clone(), store.clone(), 3600);
        clock.advance(Duration::from_secs(15 * 60));
        let listed: Vec<String> = now
            .list(&user)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.handle)
            .collect();
        assert_eq!(listed, std::slice::from_ref(&young.handle));
        assert!(store
            .get(&format!("s:{}", old.handle))
            .await
            .unwrap()
            .is_none());
    }

    fn service_on(clock: Arc<ManualClock>, store: Arc<MemoryStore>) -> Sessions {
        Sessions::new(
            store,
            SecretKey::new([3u8; 32]).unwrap(),
            SessionConfig::default(),
        )
        .with_clock(clock)
    }

    #[tokio::test]
    async fn rotation_moves_a_session_to_a_new_id_and_kills_the_old() {
        let clock = ManualClock::starting_now();
        let s = service(clock.clone());
        let user = UserId::Int(8);
        let created = s.create(&user, 0, NewSession::default()).await.unwrap();
        let loaded = s.load(created.id.clone()).await.unwrap().unwrap();
        clock.advance(Duration::from_secs(5));
        let rotated = s.rotate(&loaded, 3).await.unwrap().unwrap();
        assert_ne!(rotated.id, created.id);
        assert_ne!(rotated.record.csrf_nonce(), created.record.csrf_nonce());
        assert_eq!(rotated.record.token_version, 3);
        assert_eq!(rotated.record.created_at, created.record.created_at);
        assert!(s.load(created.id.clone()).await.unwrap().is_none());
        assert!(s.load(rotated.id.clone()).await.unwrap().is_some());
        let listed: Vec<String> = s
            .list(&user)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.handle)
            .collect();
        assert_eq!(listed, std::slice::from_ref(&rotated.handle));
        // A session revoked meanwhile is not brought back by rotating it.
        let again = s.load(rotated.id.clone()).await.unwrap().unwrap();
        assert!(s.revoke(&rotated.handle).await.unwrap());
        assert!(s.rotate(&again, 3).await.unwrap().is_none());
        assert!(s.list(&user).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_cap_evicts_the_least_recently_active() {
        let clock = ManualClock::starting_now();
        let s = service(clock.clone());
        let user = UserId::Int(9);
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(s.create(&user, 0, NewSession::default()).await.unwrap().id);
            clock.advance(Duration::from_secs(120));
        }
        // Activity on the first makes the second the least recently active.
        assert!(s.load(ids[0].clone()).await.unwrap().is_some());
        clock.advance(Duration::from_secs(120));
        let sixth = s.create(&user, 0, NewSession::default()).await.unwrap();
        assert_eq!(sixth.evicted, 1);
        assert!(s.load(ids[1].clone()).await.unwrap().is_none());
        assert!(s.load(ids[0].clone()).await.unwrap().is_some());
        assert_eq!(s.list(&user).await.unwrap().len(), 5);
    }

    #[tokio::test]
    async fn end_removes_a_loaded_session_and_its_index_entry() {
        let s = service(ManualClock::starting_now());
        let user = UserId::Int(4);
        let created = s.create(&user, 0, NewSession::default()).await.unwrap();
        let other = s.create(&user, 0, NewSession::default()).await.unwrap();
        let loaded = s.load(created.id.clone()).await.unwrap().unwrap();
        assert_eq!(loaded.handle(), created.handle);
        assert!(s.end(&loaded).await.unwrap());
        assert!(s.load(created.id).await.unwrap().is_none());
        let left = s.list(&user).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].handle, other.handle);
        assert!(!s.end(&loaded).await.unwrap(), "already ended");
    }

    #[tokio::test]
    async fn revoke_all_keeps_the_current_one() {
        let s = service(ManualClock::starting_now());
        let user = UserId::Text("u-1".into());
        let a = s.create(&user, 0, NewSession::default()).await.unwrap();
        s.create(&user, 0, NewSession::default()).await.unwrap();
        s.create(&user, 0, NewSession::default()).await.unwrap();
        assert_eq!(s.revoke_all(&user, Some(&a.handle)).await.unwrap(), 2);
        let left = s.list(&user).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].handle, a.handle);
        assert!(!s.revoke_owned(&a.handle, &UserId::Int(2)).await.unwrap());
        assert!(s.revoke_owned(&a.handle, &user).await.unwrap());
    }
}
