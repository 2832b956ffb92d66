//! A per-process cache of user rows, so an authenticated request does not query SQL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    LoginField, MfaWrite, NewUser, ProviderLink, User, UserId, UserStore, UserStoreError,
    UserUpdate,
};
use crate::changes::ChangeFeed;
use crate::clock::{self, duration_ms, Clock};
use crate::shard::{Map, Shards};

/// Wraps a [`UserStore`] and remembers rows read by id for a short time.
///
/// Updates made through this wrapper refresh the cached row at once, and — with a
/// [`ChangeFeed`] ([`Self::announcing`]) — are announced, so every other worker forgets its
/// copy at once too. Changes made to the table behind crudauth's back are seen after at most
/// `ttl`, unless the application announces them ([`Self::forget`] here and
/// [`ChangeFeed::publish`] for the others; crudauth-axum's `auth.user_changed(&id)` does
/// both) or the store has a [`UserStore::change_counter`]: when that has moved since the last
/// lookup, every cached row is forgotten first, so such edits hold from the next request.
/// Revocation through sessions is immediate regardless: a revoked session's record is gone
/// from the shared store, and a credential newer than the cached row is checked against the
/// row read afresh ([`Self::find_for_version`]). `ttl` zero disables the cache.
///
/// Disabling an account through [`UserStore::update`] here also starts a new credential epoch
/// (`bump_token_version`), so nothing issued before — sessions, bearer and refresh tokens —
/// comes back when the account is enabled again.
#[derive(Debug, Clone)]
pub struct CachedUsers {
    inner: Arc<dyn UserStore>,
    rows: Arc<Shards<Map<Row>>>,
    stamps: Arc<AtomicU64>,
    /// Counts evictions: a row read while one happened is not cached (it may predate the
    /// change that caused it).
    evictions: Arc<AtomicU64>,
    /// The store's [`UserStore::change_counter`] when the cache last agreed with it
    /// (`u64::MAX` before the first lookup).
    seen_change: Arc<AtomicU64>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    feed: Option<Arc<dyn ChangeFeed>>,
}

/// A cached row, until `expires` (ms), with the stamp it was cached under. Shared, so a cache
/// hit costs no copy of the row.
#[derive(Debug)]
struct Row {
    user: Arc<User>,
    expires: u64,
    stamp: u64,
}

impl CachedUsers {
    /// Caches rows of `inner` for `ttl`.
    pub fn new(inner: Arc<dyn UserStore>, ttl: Duration) -> Self {
        Self {
            inner,
            rows: Arc::new(Shards::new(16)),
            stamps: Arc::new(AtomicU64::new(1)),
            evictions: Arc::new(AtomicU64::new(0)),
            seen_change: Arc::new(AtomicU64::new(u64::MAX)),
            ttl,
            clock: clock::system(),
            feed: None,
        }
    }

    /// Measures the rows' time to live by `clock` (tests move a manual clock instead of
    /// sleeping).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Announces every update made through this wrapper on `feed`, so other workers forget
    /// their copy of the row at once.
    pub fn announcing(mut self, feed: Arc<dyn ChangeFeed>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// The feed updates are announced on, if any.
    pub fn feed(&self) -> Option<&Arc<dyn ChangeFeed>> {
        self.feed.as_ref()
    }

    /// How long a row is reused.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The wrapped store, bypassing the cache: for checks that must see the latest row (a
    /// refresh compares `token_version`).
    pub fn uncached(&self) -> &dyn UserStore {
        self.inner.as_ref()
    }

    /// Forgets a cached row (and so every value derived from it under its stamp).
    pub fn forget(&self, id: &UserId) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        let key = CacheKey::of(id);
        let key = key.as_str();
        self.rows.lock(key).remove(key);
    }

    /// Forgets every cached row.
    pub fn forget_all(&self) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        self.rows.retain(|_| false);
    }

    fn remember(&self, user: Arc<User>) -> Option<u64> {
        if self.ttl.is_zero() {
            return None;
        }
        let key: Box<str> = CacheKey::of(&user.id).as_str().into();
        let expires = self
            .clock
            .now_millis()
            .saturating_add(duration_ms(self.ttl));
        let stamp = self.stamps.fetch_add(1, Ordering::Relaxed);
        let row = Row {
            user,
            expires,
            stamp,
        };
        self.rows.lock(&key).insert(key, row);
        Some(stamp)
    }

    /// Runs `f` on the live row cached for `id`, its shard locked; `None` when nothing live is
    /// cached (or the cache is off).
    fn with_live<R>(&self, id: &UserId, f: impl FnOnce(&Row) -> R) -> Option<R> {
        if self.ttl.is_zero() {
            return None;
        }
        if let Some(counter) = self.inner.change_counter() {
            if self.seen_change.load(Ordering::SeqCst) != counter {
                // The table changed since these rows were read, perhaps behind crudauth's
                // back: none of them can be trusted. Forgotten before the new value is
                // recorded, so a lookup racing this one forgets too rather than trusting a
                // row this one has not cleared yet.
                self.forget_all();
                self.seen_change.store(counter, Ordering::SeqCst);
                return None;
            }
        }
        let key = CacheKey::of(id);
        let key = key.as_str();
        let now = self.clock.now_millis();
        let rows = self.rows.lock(key);
        rows.get(key).filter(|row| row.expires > now).map(f)
    }

    /// The stamp of the row cached for `id` while it is live. Every time a row is cached
    /// (read anew, or refreshed by an update) it gets a new stamp, so a value derived from a
    /// row may be reused for as long as the row's stamp is still live — it would be derived
    /// from the very same row. `None` when nothing live is cached (or the cache is off).
    pub fn live_stamp(&self, id: &UserId) -> Option<u64> {
        self.with_live(id, |row| row.stamp)
    }

    /// [`UserStore::find_by_id`], with the stamp of the cached row the answer is (see
    /// [`Self::live_stamp`]; `None` when the cache is off).
    pub async fn find_by_id_stamped(
        &self,
        id: &UserId,
    ) -> Result<Option<(Arc<User>, Option<u64>)>, UserStoreError> {
        if let Some(hit) = self.with_live(id, |row| (row.user.clone(), Some(row.stamp))) {
            return Ok(Some(hit));
        }
        self.reload(id).await
    }

    /// [`Self::find_by_id_stamped`] for a credential minted at `token_version` (a session
    /// record's, an access token's): when the cached row is *older* than the credential,
    /// another worker changed the row (a password change there) after this one cached it, so
    /// the row is read afresh instead of judging a newer credential by a stale row. Versions
    /// only grow, so a cached row at or above the credential's version needs no read: a
    /// superseded credential costs no query, however often it is replayed.
    pub async fn find_for_version(
        &self,
        id: &UserId,
        token_version: i64,
    ) -> Result<Option<(Arc<User>, Option<u64>)>, UserStoreError> {
        match self.find_by_id_stamped(id).await? {
            Some((user, Some(_))) if user.token_version < token_version => self.reload(id).await,
            found => Ok(found),
        }
    }

    /// Reads the row from the wrapped store and caches it (or forgets it when it is gone).
    async fn reload(
        &self,
        id: &UserId,
    ) -> Result<Option<(Arc<User>, Option<u64>)>, UserStoreError> {
        let evictions = self.evictions.load(Ordering::SeqCst);
        let found = self.inner.find_by_id(id).await?.map(Arc::new);
        Ok(match found {
            // Something was evicted while this row was read: it may be older than that
            // change, so it answers this request only.
            Some(user) if self.evictions.load(Ordering::SeqCst) != evictions => Some((user, None)),
            Some(user) => {
                let stamp = self.remember(user.clone());
                Some((user, stamp))
            }
            None => {
                self.forget(id);
                None
            }
        })
    }

    /// Tells the other workers that `id` changed. The change is made; failing to announce it
    /// leaves their copies to their time to live (and a feed that lost Redis flushes when it is
    /// back).
    async fn announce(&self, id: &UserId) {
        if let Some(feed) = &self.feed {
            if let Err(error) = feed.publish(id).await {
                tracing::error!(%error, user_id = %id, "user change not announced to other workers");
            }
        }
    }

    /// The user with this id, shared with the cache (no copy of the row on a hit).
    pub async fn find_shared(&self, id: &UserId) -> Result<Option<Arc<User>>, UserStoreError> {
        Ok(self.find_by_id_stamped(id).await?.map(|(user, _)| user))
    }
}

#[async_trait]
impl UserStore for CachedUsers {
    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, UserStoreError> {
        Ok(self.find_shared(id).await?.map(|user| User::clone(&user)))
    }

    async fn find_by_field(
        &self,
        field: LoginField,
        value: &str,
    ) -> Result<Option<User>, UserStoreError> {
        self.inner.find_by_field(field, value).await
    }

    async fn create(&self, user: NewUser) -> Result<User, UserStoreError> {
        self.inner.create(user).await
    }

    async fn update(
        &self,
        id: &UserId,
        mut changes: UserUpdate,
    ) -> Result<Option<User>, UserStoreError> {
        if changes.is_active == Some(false) {
            // A disabled account's credentials end for good, not just while it is disabled.
            changes.bump_token_version = true;
        }
        self.forget(id);
        let updated = self.inner.update(id, changes).await?;
        if let Some(user) = &updated {
            let _ = self.remember(Arc::new(user.clone()));
            self.announce(id).await;
        }
        Ok(updated)
    }

    fn supports_token_version(&self) -> bool {
        self.inner.supports_token_version()
    }

    fn missing_mfa_fields(&self) -> Vec<&'static str> {
        self.inner.missing_mfa_fields()
    }

    async fn claim_totp_step(&self, id: &UserId, step: i64) -> Result<bool, UserStoreError> {
        // The claim itself is the check, made by the table; a cached row's step is never read,
        // so other workers need not hear of it.
        self.forget(id);
        self.inner.claim_totp_step(id, step).await
    }

    async fn write_mfa(&self, id: &UserId, write: MfaWrite) -> Result<bool, UserStoreError> {
        self.forget(id);
        let wrote = self.inner.write_mfa(id, write).await?;
        if wrote {
            self.announce(id).await;
        }
        Ok(wrote)
    }

    fn supports_provider(&self, provider: &str) -> bool {
        self.inner.supports_provider(provider)
    }

    fn max_length(&self, field: LoginField) -> Option<usize> {
        self.inner.max_length(field)
    }

    fn change_counter(&self) -> Option<u64> {
        self.inner.change_counter()
    }

    async fn find_by_provider(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<User>, UserStoreError> {
        self.inner.find_by_provider(provider, subject).await
    }

    async fn link_provider(
        &self,
        id: &UserId,
        link: &ProviderLink,
    ) -> Result<bool, UserStoreError> {
        self.forget(id);
        let wrote = self.inner.link_provider(id, link).await?;
        if wrote {
            self.announce(id).await;
        }
        Ok(wrote)
    }
}

/// The cache's key for an id, formatted on the stack: a lookup allocates nothing.
enum CacheKey<'a> {
    Int { digits: [u8; 20], start: usize },
    Text(&'a str),
}

impl<'a> CacheKey<'a> {
    fn of(id: &'a UserId) -> Self {
        match id {
            UserId::Text(s) => CacheKey::Text(s),
            UserId::Int(n) => {
                // Negative ids (rare, but legal) are keyed apart from positive ones by a sign.
                let mut digits = [0u8; 20];
                let mut start = digits.len();
                let mut rest = n.unsigned_abs();
                loop {
                    start -= 1;
                    digits[start] = b'0' + (rest % 10) as u8;
                    rest /= 10;
                    if rest == 0 {
                        break;
                    }
                }
                if *n < 0 {
                    start -= 1;
                    digits[start] = b'-';
                }
                CacheKey::Int { digits, start }
            }
        }
    }

    fn as_str(&self) -> &str {
        match self {
            CacheKey::Text(s) => s,
            // Only ASCII digits and a sign were written.
            CacheKey::Int { digits, start } => std::str::from_utf8(&digits[*start..]).unwrap_or(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::user::MemoryUsers;

    #[tokio::test]
    async fn a_stamp_lives_as_long_as_its_row() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let mut users = CachedUsers::new(Arc::new(MemoryUsers::new()), Duration::from_secs(5));
        users.clock = clock.clone();
        let ada = users
            .create(NewUser::new("ada@example.com", "ada", "x"))
            .await
            .unwrap();
        assert_eq!(users.live_stamp(&ada.id), None, "not read yet");
        let (_, stamp) = users.find_by_id_stamped(&ada.id).await.unwrap().unwrap();
        let stamp = stamp.unwrap();
        assert_eq!(users.live_stamp(&ada.id), Some(stamp));
        let (_, again) = users.find_by_id_stamped(&ada.id).await.unwrap().unwrap();
        assert_eq!(again, Some(stamp), "served from the same row");
        // An update caches a new row: the old stamp is dead.
        let bump = UserUpdate {
            bump_token_version: true,
            ..Default::default()
        };
        users.update(&ada.id, bump).await.unwrap();
        let fresh = users.live_stamp(&ada.id).unwrap();
        assert_ne!(fresh, stamp);
        // So is a row past its time to live.
        clock.advance(Duration::from_secs(6));
        assert_eq!(users.live_stamp(&ada.id), None);
        users.forget(&ada.id);
        assert_eq!(users.live_stamp(&ada.id), None);
    }

    #[tokio::test]
    async fn a_moved_change_counter_forgets_every_cached_row() {
        // Edited behind the cache's back: through the table itself, the counter moved by hand.
        let table = Arc::new(crate::user::tests::Counting::default());
        let users = CachedUsers::new(table.clone(), Duration::from_secs(3600));
        let ada = table
            .create(NewUser::new("ada@example.com", "ada", "x"))
            .await
            .unwrap();
        let verified = |on: bool| UserUpdate {
            email_verified: Some(on),
            ..Default::default()
        };
        let cached = |users: CachedUsers, id: UserId| async move {
            users
                .find_shared(&id)
                .await
                .unwrap()
                .unwrap()
                .email_verified
        };
        assert!(!cached(users.clone(), ada.id.clone()).await);
        assert!(users.live_stamp(&ada.id).is_some(), "the row is cached");

        // The counter unmoved: the cached row is served.
        table.update(&ada.id, verified(true)).await.unwrap();
        assert!(!cached(users.clone(), ada.id.clone()).await);
        // The counter moves: the next lookup reads the table again, and caches that row.
        table.changes.fetch_add(1, Ordering::SeqCst);
        assert!(cached(users.clone(), ada.id.clone()).await);
        assert!(users.live_stamp(&ada.id).is_some());
        table.update(&ada.id, verified(false)).await.unwrap();
        table.changes.fetch_add(1, Ordering::SeqCst);
        assert_eq!(users.live_stamp(&ada.id), None, "every row forgotten");
        assert!(!cached(users.clone(), ada.id.clone()).await);
    }

    #[tokio::test]
    async fn a_huge_ttl_saturates_instead_of_overflowing() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let mut users = CachedUsers::new(Arc::new(MemoryUsers::new()), Duration::MAX);
        users.clock = clock.clone();
        let ada = users
            .create(NewUser::new("ada@example.com", "ada", "x"))
            .await
            .unwrap();
        let (_, stamp) = users.find_by_id_stamped(&ada.id).await.unwrap().unwrap();
        assert!(stamp.is_some());
        clock.advance(Duration::from_secs(365 * 24 * 3600));
        assert_eq!(users.live_stamp(&ada.id), stamp);
    }

    #[test]
    fn integer_keys_match_their_decimal_form() {
        for n in [0, 7, -7, 1234567890, i64::MAX, i64::MIN] {
            assert_eq!(CacheKey::of(&UserId::Int(n)).as_str(), n.to_string());
        }
        assert_eq!(CacheKey::of(&UserId::Text("abc".into())).as_str(), "abc");
    }

    #[tokio::test]
    async fn a_credential_newer_than_the_cached_row_rereads_it() {
        // Two workers' caches over one table: the password changes through the first while
        // the second holds the old row.
        let table: Arc<dyn UserStore> = Arc::new(MemoryUsers::new());
        let here = CachedUsers::new(table.clone(), Duration::from_secs(5));
        let there = CachedUsers::new(table, Duration::from_secs(5));
        let ada = here
            .create(NewUser::new("ada@example.com", "ada", "x"))
            .await
            .unwrap();
        let (old, _) = there.find_by_id_stamped(&ada.id).await.unwrap().unwrap();
        let bump = UserUpdate {
            bump_token_version: true,
            ..Default::default()
        };
        let new = here.update(&ada.id, bump).await.unwrap().unwrap();
        assert_eq!(new.token_version, old.token_version + 1);
        // The stale row still answers plain lookups for its time to live…
        let (stale, _) = there.find_by_id_stamped(&ada.id).await.unwrap().unwrap();
        assert_eq!(stale.token_version, old.token_version);
        // …but not for a credential minted at the new version, and the fresh row is kept.
        let (fresh, stamp) = there
            .find_for_version(&ada.id, new.token_version)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fresh.token_version, new.token_version);
        assert_eq!(there.live_stamp(&ada.id), stamp);
        let (cached, _) = there.find_by_id_stamped(&ada.id).await.unwrap().unwrap();
        assert_eq!(cached.token_version, new.token_version);
        // A superseded credential is judged by the cached row, with no read.
        let (row, again) = there
            .find_for_version(&ada.id, old.token_version)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((row.token_version, again), (new.token_version, stamp));
    }

    #[tokio::test]
    async fn no_stamps_without_a_cache() {
        let users = CachedUsers::new(Arc::new(MemoryUsers::new()), Duration::ZERO);
        let ada = users
            .create(NewUser::new("ada@example.com", "ada", "x"))
            .await
            .unwrap();
        let (_, stamp) = users.find_by_id_stamped(&ada.id).await.unwrap().unwrap();
        assert_eq!(stamp, None);
        assert_eq!(users.live_stamp(&ada.id), None);
    }
}
