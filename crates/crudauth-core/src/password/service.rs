//! The `Passwords` service: argon2id hashing and verification on a bounded blocking pool, with
//! crudauth's legacy hashes, NFKC, and equal work for unknown users.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use argon2::Params;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use unicode_normalization::UnicodeNormalization;

use super::argon2id::{Argon2idHasher, StoredArgon2, FAST_FOR_TESTS, OWASP};
use super::legacy::StoredBcrypt;
use super::{Password, PasswordConfigError, PasswordError};
use crate::secret::random_token;
use crate::user::PasswordHash;

/// The longest password accepted, in UTF-8 bytes (1 KiB). Longer input is refused before any
/// hashing, so a megabyte "password" costs nothing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

// Requests that may wait for a hashing slot, per slot, unless configured: at OWASP costs
// (~20 ms a hash) the last one in line waits about a third of a second.
const WAITING_PER_SLOT: usize = 16;

/// The outcome of [`Passwords::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a verification says whether the password matched"]
pub struct Verification {
    /// Whether the password matched the stored hash.
    pub matched: bool,
    /// On a match, a replacement hash to store when the stored one is not current: a crudauth
    /// bcrypt hash, an argon2 hash with other costs, or a hash that only the password as typed
    /// (not its NFKC form) matched. Always `None` when `matched` is false.
    pub rehash: Option<PasswordHash>,
}

impl Verification {
    const NO_MATCH: Self = Self {
        matched: false,
        rehash: None,
    };
}

/// Hashes and verifies passwords: argon2id (OWASP costs by default) for new hashes, crudauth's
/// bcrypt-over-SHA-256 hashes still accepted, every password NFKC-normalised.
///
/// The work runs on threads of its own at a lower OS priority than the rest of the process
/// (nice 10 on Linux), at most `max_concurrency` hashes at once (default: the number of cores
/// less one, at least one), so a login flood neither starves the async runtime, nor takes every
/// core, nor holds more than `max_concurrency` × 19 MiB. Beyond that, up to `max_waiting`
/// requests wait for a slot (default 16 per slot); the rest get [`PasswordError::Busy`] at
/// once. Cloning is cheap and clones share the slots and the threads.
///
/// ```
/// use crudauth_core::password::{Password, Passwords};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let passwords = Passwords::builder()
///     .argon2_params(64, 1, 1) // tiny costs keep this example fast; omit for OWASP's
///     .max_concurrency(2)
///     .build()?;
/// let hash = passwords.hash(&Password::new("correct horse")).await?;
/// assert!(hash.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    hasher: Argon2idHasher,
    slots: Arc<Semaphore>,
    max_concurrency: usize,
    max_waiting: usize,
    waiting: AtomicUsize,
    // A hash of a random value at the configured costs, made on first need: what an unknown user
    // or an unusable hash is verified against so that the answer takes as long as a real one.
    dummy: OnceLock<String>,
    /// The hashing threads' queue, made (with the threads) on first use.
    threads: OnceLock<Option<mpsc::Sender<Job>>>,
    /// Verifications run so far (real or dummy), for [`Passwords::verifications`].
    verifications: AtomicU64,
    #[cfg(test)]
    probe: probe::Probe,
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Passwords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params = self.inner.hasher.params();
        f.debug_struct("Passwords")
            .field("m_kib", &params.m_cost())
            .field("t_cost", &params.t_cost())
            .field("p_cost", &params.p_cost())
            .field("max_concurrency", &self.inner.max_concurrency)
            .field("max_waiting", &self.inner.max_waiting)
            .finish()
    }
}

impl Passwords {
    /// OWASP costs (argon2id, m = 19456 KiB, t = 2, p = 1), one hashing slot per core but one
    /// (at least one).
    pub fn new() -> Self {
        Self::from_parts(OWASP, default_slots(), None)
    }

    /// Configures costs and limits.
    pub fn builder() -> PasswordsBuilder {
        PasswordsBuilder::default()
    }

    /// **For tests only**: argon2id at m = 64 KiB, t = 1, p = 1, so a test suite can hash and
    /// verify thousands of times per second. Such hashes offer no protection; never use this in
    /// production. (A service at OWASP costs reports these hashes as needing a rehash.)
    pub fn fast_for_tests() -> Self {
        Self::from_parts(FAST_FOR_TESTS, default_slots(), None)
    }

    fn from_parts(params: Params, max_concurrency: usize, max_waiting: Option<usize>) -> Self {
        // tokio's semaphore panics above MAX_PERMITS; nobody has that many cores.
        let max_concurrency = max_concurrency.clamp(1, Semaphore::MAX_PERMITS);
        let max_waiting =
            max_waiting.unwrap_or_else(|| max_concurrency.saturating_mul(WAITING_PER_SLOT));
        Self {
            inner: Arc::new(Inner {
                hasher: Argon2idHasher::new(params),
                slots: Arc::new(Semaphore::new(max_concurrency)),
                max_concurrency,
                max_waiting,
                waiting: AtomicUsize::new(0),
                dummy: OnceLock::new(),
                threads: OnceLock::new(),
                verifications: AtomicU64::new(0),
                #[cfg(test)]
                probe: probe::Probe::default(),
            }),
        }
    }

    /// A new argon2id hash (PHC string) of the NFKC form of `password`.
    ///
    /// Fails with [`PasswordError::TooLong`] over [`MAX_PASSWORD_BYTES`] (before any work), and
    /// with [`PasswordError::Busy`] when the waiting line is full.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, PasswordError> {
        let typed = admissible(password)?.to_owned();
        self.run_blocking(move |inner| {
            let normal: String = typed.nfkc().collect();
            inner.hasher.hash(&normal).map(PasswordHash).map_err(|e| {
                PasswordError::Internal(format!("argon2 refused to hash a password: {e}"))
            })
        })
        .await?
    }

    /// Checks `password` against a user's stored hash.
    ///
    /// The NFKC form is tried first, then the password as typed (a hash made before crudauth
    /// 0.8 normalised). Accepted stored forms: argon2 PHC strings, and crudauth's bcrypt hashes
    /// (`$2b$`, `$2a$`, `$2y$`) of `base64(SHA-256(password))`. When the user is unknown
    /// (`None`), or the hash is unusable (empty, or crudauth's `!` sentinel) or malformed, the
    /// same argon2id work is done against a dummy hash and the answer is no match, so timing
    /// does not tell these cases apart from a wrong password. A malformed hash is never an
    /// error.
    ///
    /// On a match, [`Verification::rehash`] holds a replacement to store when the stored hash
    /// is not current (see there). Callers that must not rewrite the hash (re-authentication on
    /// password change, sudo) just ignore it.
    ///
    /// ```
    /// use crudauth_core::password::{Password, Passwords};
    /// use crudauth_core::user::PasswordHash;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let passwords = Passwords::fast_for_tests();
    /// // A hash written by crudauth (bcrypt over base64(SHA-256), cost 4 here).
    /// let stored = PasswordHash("$2b$04$8uN3XmaJfxPqFibAM3DSRuV/UXI9Jsi38F9/OnhKHBBQ9IrWqgx4i".into());
    /// let verdict = passwords.verify(&Password::new("correct horse"), Some(&stored)).await?;
    /// assert!(verdict.matched);
    /// // The caller stores the argon2id replacement.
    /// assert!(verdict.rehash.unwrap().0.starts_with("$argon2id$"));
    ///
    /// let verdict = passwords.verify(&Password::new("wrong horse"), None).await?;
    /// assert!(!verdict.matched);
    /// # Ok::<(), crudauth_core::password::PasswordError>(()) }).unwrap();
    /// ```
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&PasswordHash>,
    ) -> Result<Verification, PasswordError> {
        let typed = admissible(password)?.to_owned();
        let stored = stored.filter(|h| !h.is_unusable()).map(|h| h.0.clone());
        self.run_blocking(move |inner| {
            inner.verifications.fetch_add(1, Ordering::Relaxed);
            inner.verify_blocking(&typed, stored.as_deref())
        })
        .await
    }

    /// How many passwords this service (and its clones) has checked so far, against a real
    /// hash or the dummy: a metric of password work (the lockout's promise that a refused
    /// attempt costs none can be watched with it). Refused inputs (too long, busy) are not
    /// counted.
    pub fn verifications(&self) -> u64 {
        self.inner.verifications.load(Ordering::Relaxed)
    }

    /// [`PasswordError::Busy`] when a hash or a verification asked for now would be turned away
    /// (every slot busy and the waiting line full), `Ok` otherwise: a snapshot, for turning a
    /// request away before the work that leads up to its hashing (a sign-in's user lookup and
    /// lockout count) when the answer would be a 503 anyway. The pool still bounds whatever
    /// passes: a request let through here can still get `Busy` from [`Passwords::verify`].
    pub fn check_capacity(&self) -> Result<(), PasswordError> {
        let inner = &self.inner;
        let full = inner.slots.available_permits() == 0
            && inner.waiting.load(Ordering::Acquire) >= inner.max_waiting;
        if full {
            return Err(self.busy());
        }
        Ok(())
    }

    fn busy(&self) -> PasswordError {
        PasswordError::Busy {
            max_concurrency: self.inner.max_concurrency,
            max_waiting: self.inner.max_waiting,
        }
    }

    /// Makes the dummy hash that unknown users are verified against now, on a hashing
    /// thread, instead of at the first sign-in for an unknown user (which would then take a hash
    /// longer than any other: a one-time timing tell). The lifespan's `initialize()` calls it.
    pub async fn prepare(&self) -> Result<(), PasswordError> {
        self.run_blocking(|inner| {
            inner.dummy();
        })
        .await
    }

    /// crudauth's unusable-password sentinel for accounts made without a password (OAuth): `!`
    /// and 16 random bytes in URL-safe base64, 23 characters. It never verifies.
    pub fn unusable() -> PasswordHash {
        PasswordHash::unusable()
    }

    /// Runs `work` on a hashing thread once a slot is free. The slot is held until `work`
    /// returns, even if the caller stops waiting, so the bound holds under cancellation.
    async fn run_blocking<T, F>(&self, work: F) -> Result<T, PasswordError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> T + Send + 'static,
    {
        let slot = self.admit().await?;
        let inner = Arc::clone(&self.inner);
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = {
                #[cfg(test)]
                let _running = inner.probe.enter();
                work(&inner)
            };
            // The slot is free before the caller hears back, as it was with the blocking pool.
            drop(slot);
            let _ = done.send(out);
        });
        match self.inner.threads() {
            Some(queue) => queue.send(job).map_err(|_| threads_gone())?,
            // No thread could be started (a process limit): the runtime's blocking pool, at
            // the ordinary priority, rather than no sign-ins at all.
            None => drop(tokio::task::spawn_blocking(job)),
        }
        result.await.map_err(|_| threads_gone())
    }

    async fn admit(&self) -> Result<OwnedSemaphorePermit, PasswordError> {
        let inner = &self.inner;
        match Arc::clone(&inner.slots).try_acquire_owned() {
            Ok(slot) => return Ok(slot),
            Err(TryAcquireError::Closed) => return Err(slots_closed()),
            Err(TryAcquireError::NoPermits) => {}
        }
        let _in_line =
            InLine::join(&inner.waiting, inner.max_waiting).ok_or_else(|| self.busy())?;
        Arc::clone(&inner.slots)
            .acquire_owned()
            .await
            .map_err(|_| slots_closed())
    }
}

/// A hash or a verification, with the slot it holds and where its result goes.
type Job = Box<dyn FnOnce() + Send>;

/// The niceness of the hashing threads (Unix; 0 is the default, 19 the lowest priority): a
/// thread handling a request takes the core from a hash as soon as it has work, and a hash
/// still gets every core nobody else wants.
const HASHING_NICENESS: u8 = 22; // thread-priority's 0–99 scale; nice 10 on Linux (tested)

impl Inner {
    /// The hashing threads' queue: one thread per slot, started on first use, each at a lower
    /// scheduling priority than the rest of the process, so that a storm of sign-ins cannot
    /// take the cores from requests that need no hashing (bench/isolation.py). `None` when no
    /// thread could be started. The threads end when the last clone of the service is dropped.
    fn threads(&self) -> Option<&mpsc::Sender<Job>> {
        self.threads
            .get_or_init(|| {
                let (queue, jobs) = mpsc::channel::<Job>();
                let jobs = Arc::new(Mutex::new(jobs));
                let mut started = 0;
                for n in 0..self.max_concurrency {
                    let jobs = Arc::clone(&jobs);
                    let spawned = std::thread::Builder::new()
                        .name(format!("crudauth-hash-{n}"))
                        .spawn(move || hashing_thread(&jobs));
                    match spawned {
                        Ok(_) => started += 1,
                        Err(e) => tracing::warn!(error = %e, "could not start a hashing thread"),
                    }
                }
                (started > 0).then_some(queue)
            })
            .as_ref()
    }

    fn verify_blocking(&self, typed: &str, stored: Option<&str>) -> Verification {
        let normal: String = typed.nfkc().collect();
        let forms = [normal.as_str(), typed];
        // The typed form is a second try only when NFKC changed something.
        let candidates = if normal == typed {
            &forms[..1]
        } else {
            &forms[..]
        };

        let Some(stored) = stored.and_then(Stored::recognise) else {
            self.spend_like_a_verify(candidates);
            return Verification::NO_MATCH;
        };
        for (attempt, candidate) in candidates.iter().enumerate() {
            #[cfg(test)]
            self.probe.count_verify();
            if stored.verify(candidate) {
                let current = attempt == 0 && stored.is_current(&self.hasher);
                return Verification {
                    matched: true,
                    rehash: if current { None } else { self.rehash(&normal) },
                };
            }
        }
        Verification::NO_MATCH
    }

    /// As many argon2id verifications as a real check of `candidates` would make, against the
    /// dummy hash.
    fn spend_like_a_verify(&self, candidates: &[&str]) {
        if let Some(dummy) = StoredArgon2::parse(self.dummy()) {
            for candidate in candidates {
                #[cfg(test)]
                self.probe.count_verify();
                // black_box: the result is unused, and the work must not be optimised away.
                std::hint::black_box(dummy.verify(candidate));
            }
        }
    }

    /// The dummy hash: a random value hashed by this service's own hasher at its configured
    /// costs, so verifying against it costs what a real verification costs. Made once.
    fn dummy(&self) -> &str {
        self.dummy.get_or_init(|| {
            self.hasher.hash(&random_token(32)).unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot make the dummy password hash; unknown users will answer faster");
                String::new()
            })
        })
    }

    fn rehash(&self, normal: &str) -> Option<PasswordHash> {
        match self.hasher.hash(normal) {
            Ok(hash) => Some(PasswordHash(hash)),
            Err(e) => {
                tracing::error!(error = %e, "password matched but could not be rehashed; the old hash stays");
                None
            }
        }
    }
}

/// A stored hash in a form this service can check.
enum Stored<'a> {
    // Boxed: the parsed PHC string is large, and one allocation is nothing next to a hash.
    Argon2(Box<StoredArgon2<'a>>),
    CrudauthBcrypt(StoredBcrypt<'a>),
}

impl<'a> Stored<'a> {
    fn recognise(stored: &'a str) -> Option<Self> {
        StoredArgon2::parse(stored)
            .map(|hash| Stored::Argon2(Box::new(hash)))
            .or_else(|| StoredBcrypt::parse(stored).map(Stored::CrudauthBcrypt))
    }

    fn verify(&self, password: &str) -> bool {
        match self {
            Stored::Argon2(hash) => hash.verify(password),
            Stored::CrudauthBcrypt(hash) => hash.verify(password),
        }
    }

    fn is_current(&self, hasher: &Argon2idHasher) -> bool {
        match self {
            Stored::Argon2(hash) => hash.is_current(hasher),
            Stored::CrudauthBcrypt(_) => false,
        }
    }
}

/// A place in the line for a hashing slot; leaving (or being cancelled) gives it back.
struct InLine<'a>(&'a AtomicUsize);

impl<'a> InLine<'a> {
    fn join(waiting: &'a AtomicUsize, max_waiting: usize) -> Option<Self> {
        let ahead = waiting.fetch_add(1, Ordering::AcqRel);
        let place = InLine(waiting);
        (ahead < max_waiting).then_some(place)
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn admissible(password: &Password) -> Result<&str, PasswordError> {
    let typed = password.expose();
    if typed.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong {
            len: typed.len(),
            max: MAX_PASSWORD_BYTES,
        });
    }
    Ok(typed)
}

/// A hashing thread: lowers its own priority, then runs jobs until the queue is gone. A job
/// that panics loses its own result (its caller gets an error), not the thread.
fn hashing_thread(jobs: &Mutex<mpsc::Receiver<Job>>) {
    let lower = thread_priority::ThreadPriorityValue::try_from(HASHING_NICENESS)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            thread_priority::set_current_thread_priority(
                thread_priority::ThreadPriority::Crossplatform(p),
            )
            .map_err(|e| format!("{e:?}"))
        });
    if let Err(e) = lower {
        tracing::debug!(error = %e, "hashing thread keeps the ordinary priority");
    }
    loop {
        let job = match jobs.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

fn threads_gone() -> PasswordError {
    PasswordError::Internal("the hashing thread stopped before answering".to_owned())
}

fn slots_closed() -> PasswordError {
    PasswordError::Internal("the hashing slots were closed".to_owned())
}

/// The default number of hashing slots: every core but one (at least one), so a storm of
/// sign-ins leaves a core to every other request.
fn default_slots() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    cores.saturating_sub(1).max(1)
}

/// Configuration for [`Passwords`]; every setting has a default.
///
/// ```
/// use crudauth_core::password::Passwords;
///
/// // ASVS appendix C's alternative: t = 1, m = 46 MiB.
/// let passwords = Passwords::builder().argon2_params(47104, 1, 1).max_concurrency(4).build()?;
/// assert!(Passwords::builder().argon2_params(0, 0, 0).build().is_err());
/// # Ok::<(), crudauth_core::password::PasswordConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct PasswordsBuilder {
    m_kib: u32,
    t_cost: u32,
    p_cost: u32,
    max_concurrency: Option<usize>,
    max_waiting: Option<usize>,
}

impl Default for PasswordsBuilder {
    fn default() -> Self {
        Self {
            m_kib: OWASP.m_cost(),
            t_cost: OWASP.t_cost(),
            p_cost: OWASP.p_cost(),
            max_concurrency: None,
            max_waiting: None,
        }
    }
}

impl PasswordsBuilder {
    /// argon2id costs for new hashes: memory in KiB, iterations, lanes. Default OWASP's
    /// (19456, 2, 1). Stored hashes with other costs still verify and are reported for rehash.
    /// Tiny costs are allowed for tests (see [`Passwords::fast_for_tests`]).
    pub fn argon2_params(mut self, m_kib: u32, t_cost: u32, p_cost: u32) -> Self {
        self.m_kib = m_kib;
        self.t_cost = t_cost;
        self.p_cost = p_cost;
        self
    }

    /// How many hashes may run at once, each on a thread of its own (default: every core but
    /// one, at least one, so that a storm of sign-ins leaves a core to the rest of the server;
    /// see `bench/isolation.py`). Memory held by hashing is at most this × m.
    pub fn max_concurrency(mut self, slots: usize) -> Self {
        self.max_concurrency = Some(slots);
        self
    }

    /// How many requests may wait for a slot before the next gets [`PasswordError::Busy`]
    /// (default: 16 per slot). `0` refuses whenever every slot is taken.
    pub fn max_waiting(mut self, waiting: usize) -> Self {
        self.max_waiting = Some(waiting);
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<Passwords, PasswordConfigError> {
        let params = Params::new(self.m_kib, self.t_cost, self.p_cost, None).map_err(|e| {
            PasswordConfigError::Argon2Params {
                m_kib: self.m_kib,
                t_cost: self.t_cost,
                p_cost: self.p_cost,
                reason: e.to_string(),
            }
        })?;
        let max_concurrency = match self.max_concurrency {
            Some(0) => return Err(PasswordConfigError::ZeroConcurrency),
            Some(slots) => slots,
            None => default_slots(),
        };
        Ok(Passwords::from_parts(
            params,
            max_concurrency,
            self.max_waiting,
        ))
    }
}

#[cfg(test)]
mod probe {
    //! Counters that let tests see the work done, not only its result.

    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    pub(super) struct Probe {
        running: AtomicUsize,
        pub(super) peak: AtomicUsize,
        pub(super) jobs: AtomicUsize,
        pub(super) verifies: AtomicUsize,
    }

    pub(super) struct Running<'a>(&'a Probe);

    impl Probe {
        pub(super) fn enter(&self) -> Running<'_> {
            self.jobs.fetch_add(1, Ordering::SeqCst);
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            Running(self)
        }

        pub(super) fn count_verify(&self) {
            self.verifies.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.running.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;

    use super::*;
    use crate::password::legacy::crudauth_prehash;

    /// "correct horse", hashed by Python's `bcrypt` 5.0 with crudauth's recipe at its cost 12:
    /// `bcrypt.hashpw(base64.b64encode(hashlib.sha256(b"correct horse").digest()), bcrypt.gensalt(12))`.
    const PYTHON_BCRYPT_12: &str = "$2b$12$ssNLc7oeSVdlbTzwEaxLburcivvV6dMm9hHZVWMGj6H70AdB.6cb2";

    /// "ｐａｓｓｗｏｒｄ１２３" (full-width), hashed by Python as crudauth 0.6 did, without NFKC
    /// (cost 4).
    const PYTHON_BCRYPT_FULL_WIDTH: &str =
        "$2b$04$7kYcrhqwaicGx3ApHZsEreM07K./xovo2/DfSVH9zJxsZNWlr2UdW";

    /// "correct horse" in crudauth's format (bcrypt over base64(SHA-256)) at cost 4; the
    /// `verify` doctest shows the same hash.
    const CRUDAUTH_BCRYPT_4: &str = "$2b$04$8uN3XmaJfxPqFibAM3DSRuV/UXI9Jsi38F9/OnhKHBBQ9IrWqgx4i";

    fn passwords() -> Passwords {
        Passwords::fast_for_tests()
    }

    /// A service with one hashing slot and room for `max_waiting` callers in line.
    fn one_slot(max_waiting: usize) -> Passwords {
        Passwords::builder()
            .argon2_params(64, 1, 1)
            .max_concurrency(1)
            .max_waiting(max_waiting)
            .build()
            .unwrap()
    }

    /// Whether `typed` matches `stored`.
    async fn matches(p: &Passwords, typed: &str, stored: &PasswordHash) -> bool {
        p.verify(&pw(typed), Some(stored)).await.unwrap().matched
    }

    fn pw(s: &str) -> Password {
        Password::new(s)
    }

    fn h(s: &str) -> PasswordHash {
        PasswordHash(s.to_owned())
    }

    fn verifies(p: &Passwords) -> usize {
        p.inner.probe.verifies.load(Ordering::SeqCst)
    }

    fn jobs(p: &Passwords) -> usize {
        p.inner.probe.jobs.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn argon2id_round_trip() {
        let p = passwords();
        let hash = p.hash(&pw("correct horse")).await.unwrap();
        assert!(
            hash.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{}",
            hash.0
        );
        assert_eq!(
            p.verify(&pw("correct horse"), Some(&hash)).await.unwrap(),
            Verification {
                matched: true,
                rehash: None
            }
        );
        assert_eq!(
            p.verify(&pw("correct horsE"), Some(&hash)).await.unwrap(),
            Verification::NO_MATCH
        );
        // Salted: the same password never hashes the same twice.
        assert_ne!(hash, p.hash(&pw("correct horse")).await.unwrap());
    }

    #[tokio::test]
    async fn default_service_uses_owasp_costs() {
        let debug = format!("{:?}", Passwords::new());
        assert!(
            debug.contains("m_kib: 19456, t_cost: 2, p_cost: 1"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn long_passwords_are_not_truncated() {
        let p = passwords();
        let long = "x".repeat(100);
        let hash = p.hash(&pw(&long)).await.unwrap();
        let mut changed = long.clone();
        changed.replace_range(99.., "y");
        assert!(matches(&p, &long, &hash).await);
        assert!(!matches(&p, &changed, &hash).await);
    }

    #[tokio::test]
    async fn bcrypt_made_with_crudauths_recipe_verifies_and_asks_for_rehash() {
        let p = passwords();
        // The recipe, done here by hand with the bcrypt crate at cost 4.
        let prehash = base64::engine::general_purpose::STANDARD.encode(
            <sha2::Sha256 as sha2::Digest>::digest("tr0ub4dor&3".as_bytes()),
        );
        assert_eq!(prehash.len(), 44);
        let stored = h(&bcrypt::hash(prehash, 4).unwrap());
        assert!(stored.0.starts_with("$2b$04$"));

        let verdict = p.verify(&pw("tr0ub4dor&3"), Some(&stored)).await.unwrap();
        assert!(verdict.matched);
        let rehash = verdict
            .rehash
            .expect("a bcrypt match asks for an argon2id rehash");
        assert!(rehash.0.starts_with("$argon2id$"));
        // The replacement verifies and is current.
        assert_eq!(
            p.verify(&pw("tr0ub4dor&3"), Some(&rehash)).await.unwrap(),
            Verification {
                matched: true,
                rehash: None
            }
        );
        assert!(!matches(&p, "tr0ub4dor&4", &stored).await);
        // bcrypt of the raw password (no pre-hash) is not crudauth's format and must not match.
        let unprehashed = h(&bcrypt::hash("tr0ub4dor&3", 4).unwrap());
        assert!(!matches(&p, "tr0ub4dor&3", &unprehashed).await);
    }

    #[tokio::test]
    async fn bcrypt_made_by_python_at_cost_12_verifies() {
        let p = passwords();
        assert_eq!(
            crudauth_prehash("correct horse"),
            "QQTTb42iwlQ0n4WDZ5Pr4CngyVcGOjTJHC6SAxh7VjE="
        );
        let stored = h(PYTHON_BCRYPT_12);
        let verdict = p.verify(&pw("correct horse"), Some(&stored)).await.unwrap();
        assert!(verdict.matched);
        assert!(verdict.rehash.unwrap().0.starts_with("$argon2id$"));
        assert_eq!(
            p.verify(&pw("correct horsE"), Some(&stored)).await.unwrap(),
            Verification::NO_MATCH
        );
    }

    #[tokio::test]
    async fn bcrypt_2a_and_2y_prefixes_are_accepted() {
        let p = passwords();
        for prefix in ["$2a$", "$2y$"] {
            let stored = h(&CRUDAUTH_BCRYPT_4.replacen("$2b$", prefix, 1));
            assert!(matches(&p, "correct horse", &stored).await);
        }
    }

    #[tokio::test]
    async fn argon2_with_other_costs_asks_for_rehash() {
        let old = Passwords::builder()
            .argon2_params(32, 1, 1)
            .build()
            .unwrap();
        let stored = old.hash(&pw("correct horse")).await.unwrap();
        let p = passwords();
        let verdict = p.verify(&pw("correct horse"), Some(&stored)).await.unwrap();
        assert!(verdict.matched);
        let rehash = verdict.rehash.unwrap();
        assert!(
            rehash.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{}",
            rehash.0
        );
        // A wrong password never gets a rehash.
        assert_eq!(
            p.verify(&pw("wrong horse"), Some(&stored)).await.unwrap(),
            Verification::NO_MATCH
        );
    }

    #[tokio::test]
    async fn nfkc_forms_verify_against_each_other() {
        let p = passwords();
        // Ligature and full-width digits hash as their NFKC form...
        let hash = p.hash(&pw("ﬁnance１２３")).await.unwrap();
        for typed in ["finance123", "ﬁnance123", "ﬁnance１２３", "finance１２３"] {
            let verdict = p.verify(&pw(typed), Some(&hash)).await.unwrap();
            assert!(verdict.matched, "{typed}");
            assert_eq!(verdict.rehash, None, "{typed}");
        }
        assert!(!matches(&p, "finance124", &hash).await);
        // ...and composed and decomposed accents are the same password.
        let hash = p.hash(&pw("caf\u{e9} au lait")).await.unwrap();
        assert!(matches(&p, "cafe\u{301} au lait", &hash).await);
    }

    #[tokio::test]
    async fn a_hash_of_the_typed_form_matches_and_asks_for_rehash() {
        let p = passwords();
        // A pre-0.8 crudauth hash of a full-width password, made by Python without NFKC.
        let stored = h(PYTHON_BCRYPT_FULL_WIDTH);
        let verdict = p
            .verify(&pw("ｐａｓｓｗｏｒｄ１２３"), Some(&stored))
            .await
            .unwrap();
        assert!(verdict.matched);
        let rehash = verdict.rehash.unwrap();
        // The ASCII form did not match before the rehash, and does after (crudauth 0.8.2).
        assert!(!matches(&p, "password123", &stored).await);
        assert!(matches(&p, "password123", &rehash).await);

        // The same with an argon2 hash of the typed form: matched on the second try, rehashed
        // even though its costs are current.
        let typed_form = h(&p.inner.hasher.hash("ｐａｓｓｗｏｒｄ１２３").unwrap());
        let verdict = p
            .verify(&pw("ｐａｓｓｗｏｒｄ１２３"), Some(&typed_form))
            .await
            .unwrap();
        assert!(verdict.matched);
        assert!(verdict.rehash.is_some());
    }

    #[tokio::test]
    async fn over_one_kib_is_refused_before_any_hashing() {
        let p = passwords();
        let stored = p.hash(&pw("correct horse")).await.unwrap();
        let before = (jobs(&p), verifies(&p));
        let huge = pw(&"a".repeat(MAX_PASSWORD_BYTES + 1));
        assert!(matches!(
            p.hash(&huge).await,
            Err(PasswordError::TooLong {
                len: 1025,
                max: 1024
            })
        ));
        assert!(matches!(
            p.verify(&huge, Some(&stored)).await,
            Err(PasswordError::TooLong { .. })
        ));
        assert!(matches!(
            p.verify(&pw(&"é".repeat(513)), None).await,
            Err(PasswordError::TooLong { len: 1026, .. })
        ));
        assert_eq!((jobs(&p), verifies(&p)), before, "no work was done");
        // Exactly 1 KiB is accepted.
        let limit = pw(&"a".repeat(MAX_PASSWORD_BYTES));
        let hash = p.hash(&limit).await.unwrap();
        assert!(p.verify(&limit, Some(&hash)).await.unwrap().matched);
    }

    #[tokio::test]
    async fn unknown_user_spends_a_dummy_verify_and_does_not_match() {
        let p = passwords();
        let before = verifies(&p);
        assert_eq!(
            p.verify(&pw("correct horse"), None).await.unwrap(),
            Verification::NO_MATCH
        );
        assert_eq!(verifies(&p), before + 1);
        // A password whose NFKC form differs costs two tries, for a known user and an unknown one.
        let before = verifies(&p);
        assert!(!p.verify(&pw("ﬁnance"), None).await.unwrap().matched);
        assert_eq!(verifies(&p), before + 2);
        let stored = p.hash(&pw("something else")).await.unwrap();
        let before = verifies(&p);
        assert!(!matches(&p, "ﬁnance", &stored).await);
        assert_eq!(verifies(&p), before + 2);
        // The dummy hash is made once, at the service's costs.
        let dummy = p.inner.dummy.get().unwrap().clone();
        assert!(dummy.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!p.verify(&pw("x"), None).await.unwrap().matched);
        assert_eq!(p.inner.dummy.get(), Some(&dummy));
    }

    #[tokio::test]
    async fn prepare_makes_the_dummy_at_the_configured_costs_up_front() {
        let p = Passwords::builder()
            .argon2_params(128, 2, 1)
            .build()
            .unwrap();
        assert!(p.inner.dummy.get().is_none());
        p.prepare().await.unwrap();
        let dummy = p.inner.dummy.get().unwrap().clone();
        assert!(
            dummy.starts_with("$argon2id$v=19$m=128,t=2,p=1$"),
            "{dummy}"
        );
        // The first unknown user reuses it: no hash on the sign-in path.
        assert!(!p.verify(&pw("x"), None).await.unwrap().matched);
        assert_eq!(p.inner.dummy.get(), Some(&dummy));
    }

    #[tokio::test]
    async fn unusable_hashes_never_match_but_cost_the_same() {
        let p = passwords();
        let sentinel = Passwords::unusable();
        assert_eq!(sentinel.0.len(), 23);
        assert!(sentinel.0.starts_with('!') && sentinel.is_unusable());
        assert_ne!(sentinel, Passwords::unusable());
        for stored in [sentinel, h(""), h("!")] {
            let before = verifies(&p);
            assert_eq!(
                p.verify(&pw(&stored.0), Some(&stored)).await.unwrap(),
                Verification::NO_MATCH
            );
            assert_eq!(verifies(&p), before + 1);
        }
    }

    #[tokio::test]
    async fn malformed_hashes_are_false_not_errors() {
        let p = passwords();
        let malformed = [
            "plaintext",
            "$argon2id$",
            "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ",
            "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=64,t=4294967295,p=1$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
            "$2b$12$tooshort",
            "$2b$31$ssNLc7oeSVdlbTzwEaxLburcivvV6dMm9hHZVWMGj6H70AdB.6cb2",
            "$2b$12$ssNLc7oeSVdlbTzwEaxLburcivvV6dMm9hHZVWMGj6H70AdB.6c\u{e9}",
            "$2b$12$!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            "pbkdf2_sha256$600000$salt$hash",
        ];
        for stored in malformed {
            let before = verifies(&p);
            let verdict = p.verify(&pw("correct horse"), Some(&h(stored))).await;
            assert_eq!(verdict.unwrap(), Verification::NO_MATCH, "{stored}");
            assert_eq!(verifies(&p), before + 1, "dummy work for {stored}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_slot_serialises_many_concurrent_verifies() {
        let p = one_slot(1000);
        let stored = p.hash(&pw("correct horse")).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let (p, stored) = (p.clone(), stored.clone());
            tasks.push(tokio::spawn(async move {
                let typed = if i % 2 == 0 {
                    "correct horse"
                } else {
                    "wrong horse"
                };
                let stored = (i % 5 != 4).then_some(stored);
                let verdict = p.verify(&pw(typed), stored.as_ref()).await.unwrap();
                (i, verdict.matched)
            }));
        }
        for task in tasks {
            let (i, matched) = task.await.unwrap();
            assert_eq!(matched, i % 2 == 0 && i % 5 != 4, "task {i}");
        }
        assert_eq!(p.inner.probe.peak.load(Ordering::SeqCst), 1);
        assert_eq!(jobs(&p), 41);
        assert_eq!(p.inner.waiting.load(Ordering::SeqCst), 0);
    }

    /// The niceness of this process's threads named `name` (Linux's /proc).
    #[cfg(target_os = "linux")]
    fn niceness_of_threads(name: &str) -> Vec<i64> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim() != name {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
            // Fields after the command's closing parenthesis: state is the 3rd, nice the 19th.
            let rest = stat.rsplit_once(')').unwrap().1;
            found.push(rest.split_whitespace().nth(16).unwrap().parse().unwrap());
        }
        found
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_runs_on_threads_of_its_own_at_a_lower_priority() {
        let p = Passwords::builder()
            .argon2_params(64, 1, 1)
            .max_concurrency(3)
            .build()
            .unwrap();
        p.hash(&pw("correct horse")).await.unwrap();
        for n in 0..3 {
            // Other tests' services have threads of the same names, and a thread lowers its own
            // priority when it first runs: on a busy machine a just-started one (this service's
            // idle slots, or another test's) may not have run yet, so give them a moment.
            let name = format!("crudauth-hash-{n}");
            let settled = |nice: &[i64]| !nice.is_empty() && nice.iter().all(|&v| v == 10);
            let mut nice = niceness_of_threads(&name);
            for _ in 0..200 {
                if settled(&nice) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                nice = niceness_of_threads(&name);
            }
            assert!(settled(&nice), "{n}: {nice:?}");
        }
    }

    #[tokio::test]
    async fn a_full_line_is_refused_at_once() {
        let p = one_slot(1);
        let stored = p.hash(&pw("correct horse")).await.unwrap();
        assert!(p.check_capacity().is_ok(), "every slot free");
        // Occupy the only slot, as a long hash would.
        let held = Arc::clone(&p.inner.slots).try_acquire_owned().unwrap();
        assert!(
            p.check_capacity().is_ok(),
            "the slot is busy, the line has room"
        );

        let first = tokio::spawn({
            let (p, stored) = (p.clone(), stored.clone());
            async move { p.verify(&pw("correct horse"), Some(&stored)).await }
        });
        while p.inner.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            p.check_capacity(),
            Err(PasswordError::Busy {
                max_concurrency: 1,
                max_waiting: 1
            })
        ));
        let refused = p.verify(&pw("correct horse"), Some(&stored)).await;
        assert!(matches!(
            refused,
            Err(PasswordError::Busy {
                max_concurrency: 1,
                max_waiting: 1
            })
        ));
        assert!(matches!(
            p.hash(&pw("x")).await,
            Err(PasswordError::Busy { .. })
        ));

        drop(held);
        assert!(first.await.unwrap().unwrap().matched);
        assert_eq!(p.inner.waiting.load(Ordering::SeqCst), 0);
        assert!(p.check_capacity().is_ok(), "free again");
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_leaves_the_line() {
        let p = one_slot(1);
        let held = Arc::clone(&p.inner.slots).try_acquire_owned().unwrap();
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), p.verify(&pw("x"), None)).await;
        assert!(gave_up.is_err());
        assert_eq!(p.inner.waiting.load(Ordering::SeqCst), 0);
        drop(held);
        assert!(!p.verify(&pw("x"), None).await.unwrap().matched);
    }

    #[test]
    fn builder_refuses_bad_configuration() {
        assert!(matches!(
            Passwords::builder().argon2_params(4, 1, 1).build(),
            Err(PasswordConfigError::Argon2Params { m_kib: 4, .. })
        ));
        assert!(matches!(
            Passwords::builder().argon2_params(64, 0, 1).build(),
            Err(PasswordConfigError::Argon2Params { .. })
        ));
        assert!(matches!(
            Passwords::builder().max_concurrency(0).build(),
            Err(PasswordConfigError::ZeroConcurrency)
        ));
        let p = Passwords::builder()
            .max_concurrency(usize::MAX)
            .build()
            .unwrap();
        assert_eq!(p.inner.max_concurrency, Semaphore::MAX_PERMITS);
        assert_eq!(p.inner.max_waiting, usize::MAX);
    }

    #[test]
    fn debug_shows_configuration_only() {
        let p = Passwords::builder()
            .argon2_params(64, 1, 1)
            .max_concurrency(3)
            .build()
            .unwrap();
        assert_eq!(
            format!("{p:?}"),
            "Passwords { m_kib: 64, t_cost: 1, p_cost: 1, max_concurrency: 3, max_waiting: 48 }"
        );
    }
}
