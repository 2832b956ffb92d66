//! The store conformance suite: every guarantee of [`Store`], written once and run against each
//! backend (memory with a manual clock, Redis standalone and Redis Cluster with short real TTLs).
//!
//! A backend's test file is one macro call:
//!
//! ```no_run
//! use std::sync::Arc;
//! use crudauth_core::clock::ManualClock;
//! use crudauth_core::store::{conformance::Subject, MemoryStore};
//!
//! async fn memory_subject() -> Subject {
//!     let clock = ManualClock::starting_now();
//!     Subject { store: Arc::new(MemoryStore::new().with_clock(clock.clone())), time: clock }
//! }
//!
//! crudauth_core::store_conformance!(memory_subject());
//! # fn main() {}
//! ```
//!
//! Concurrency cases spawn 64 tasks on the caller's multi-threaded runtime: real parallelism.

// A test suite: a failed step must panic, with the value that failed.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{decode_or_discard, Store, Swap};
use crate::clock::ManualClock;

/// How a test lets time pass for a backend.
#[async_trait]
pub trait TimeTravel: Send + Sync {
    /// Lets `by` pass as the backend sees it.
    async fn pass(&self, by: Duration);
}

/// Time passes on a manual clock, instantly.
#[async_trait]
impl TimeTravel for ManualClock {
    async fn pass(&self, by: Duration) {
        self.advance(by);
    }
}

/// Time passes for real (for servers that keep their own time, like Redis).
#[derive(Debug, Default)]
pub struct RealTime;

#[async_trait]
impl TimeTravel for RealTime {
    async fn pass(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
}

/// A backend under test, with its notion of time. Each subject must be isolated (its own
/// namespace prefix on a shared server).
pub struct Subject {
    /// The store under test, already initialized.
    pub store: Arc<dyn Store>,
    /// How to let time pass for it.
    pub time: Arc<dyn TimeTravel>,
}

const SHORT: Duration = Duration::from_millis(400);
const LONG: Duration = Duration::from_secs(600);
const PAST_SHORT: Duration = Duration::from_millis(700);
const TASKS: usize = 64;

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Absent keys read as `None`, and deleting them reports nothing deleted.
pub async fn absent_keys(s: &Subject) {
    let st = &s.store;
    assert_eq!(st.get("absent").await.unwrap(), None);
    assert_eq!(st.get_and_touch("absent", LONG).await.unwrap(), None);
    assert_eq!(st.take("absent").await.unwrap(), None);
    assert!(!st.delete("absent").await.unwrap());
    assert!(!st.expire("absent", LONG).await.unwrap());
    assert_eq!(st.ttl("absent").await.unwrap(), None);
    assert!(st.index_members("absent-index").await.unwrap().is_empty());
    assert_eq!(
        st.index_remove("absent-index", &["m".to_owned()])
            .await
            .unwrap(),
        0
    );
}

/// `set` writes and replaces; `get` reads back the exact bytes; `delete` removes.
pub async fn set_get_delete(s: &Subject) {
    let st = &s.store;
    st.set("k", b("one"), LONG).await.unwrap();
    assert_eq!(st.get("k").await.unwrap(), Some(b("one")));
    st.set("k", b("two"), LONG).await.unwrap();
    assert_eq!(st.get("k").await.unwrap(), Some(b("two")));
    let binary = Bytes::from(vec![0u8, 255, 1, 128, b'{']);
    st.set("bin", binary.clone(), LONG).await.unwrap();
    assert_eq!(st.get("bin").await.unwrap(), Some(binary));
    assert!(st.delete("k").await.unwrap());
    assert_eq!(st.get("k").await.unwrap(), None);
    assert!(!st.delete("k").await.unwrap());
}

/// Values expire after their time to live.
pub async fn values_expire(s: &Subject) {
    let st = &s.store;
    st.set("short", b("v"), SHORT).await.unwrap();
    st.set("long", b("v"), LONG).await.unwrap();
    assert!(st.get("short").await.unwrap().is_some());
    s.time.pass(PAST_SHORT).await;
    assert_eq!(st.get("short").await.unwrap(), None);
    assert_eq!(st.ttl("short").await.unwrap(), None);
    assert!(st.get("long").await.unwrap().is_some());
}

/// `get_and_touch` reads and slides the expiry in one step.
pub async fn get_and_touch_slides(s: &Subject) {
    let st = &s.store;
    st.set("slide", b("v"), SHORT).await.unwrap();
    for _ in 0..3 {
        s.time.pass(SHORT / 2).await;
        assert_eq!(
            st.get_and_touch("slide", SHORT).await.unwrap(),
            Some(b("v"))
        );
    }
    // Three half-lives later it is still alive only because it was touched.
    s.time.pass(PAST_SHORT).await;
    assert_eq!(st.get_and_touch("slide", SHORT).await.unwrap(), None);
}

/// `ttl` reports the remaining time; `expire` resets it on present keys only.
pub async fn ttl_and_expire(s: &Subject) {
    let st = &s.store;
    st.set("t", b("v"), LONG).await.unwrap();
    let ttl = st.ttl("t").await.unwrap().unwrap();
    assert!(
        ttl <= LONG && ttl > LONG - Duration::from_secs(5),
        "ttl {ttl:?}"
    );
    assert!(st.expire("t", SHORT).await.unwrap());
    let ttl = st.ttl("t").await.unwrap().unwrap();
    assert!(ttl <= SHORT, "ttl {ttl:?}");
    s.time.pass(PAST_SHORT).await;
    assert_eq!(st.get("t").await.unwrap(), None);
    assert!(!st.expire("t", LONG).await.unwrap());
    assert_eq!(st.get("t").await.unwrap(), None);
}

/// `set_if_absent` writes only when absent (an expired key counts as absent).
pub async fn set_if_absent_semantics(s: &Subject) {
    let st = &s.store;
    assert!(st.set_if_absent("nx", b("first"), SHORT).await.unwrap());
    assert!(!st.set_if_absent("nx", b("second"), SHORT).await.unwrap());
    assert_eq!(st.get("nx").await.unwrap(), Some(b("first")));
    s.time.pass(PAST_SHORT).await;
    assert!(st.set_if_absent("nx", b("third"), LONG).await.unwrap());
    assert_eq!(st.get("nx").await.unwrap(), Some(b("third")));
}

/// `set_if_present` never brings back an absent, deleted or expired key; it keeps or resets
/// the time to live as asked.
pub async fn set_if_present_never_resurrects(s: &Subject) {
    let st = &s.store;
    assert!(!st.set_if_present("xx", b("v"), Some(LONG)).await.unwrap());
    assert_eq!(st.get("xx").await.unwrap(), None);

    st.set("xx", b("v1"), LONG).await.unwrap();
    assert!(st.set_if_present("xx", b("v2"), Some(LONG)).await.unwrap());
    assert_eq!(st.get("xx").await.unwrap(), Some(b("v2")));
    assert!(st.delete("xx").await.unwrap());
    assert!(!st.set_if_present("xx", b("v3"), None).await.unwrap());
    assert_eq!(st.get("xx").await.unwrap(), None);

    // `None` keeps the remaining time to live: the key still expires on schedule.
    st.set("keep", b("v1"), SHORT).await.unwrap();
    assert!(st.set_if_present("keep", b("v2"), None).await.unwrap());
    assert!(st.ttl("keep").await.unwrap().unwrap() <= SHORT);
    s.time.pass(PAST_SHORT).await;
    assert!(!st.set_if_present("keep", b("v3"), None).await.unwrap());
    assert_eq!(st.get("keep").await.unwrap(), None);

    // `Some` resets it.
    st.set("reset", b("v1"), SHORT).await.unwrap();
    assert!(st
        .set_if_present("reset", b("v2"), Some(LONG))
        .await
        .unwrap());
    s.time.pass(PAST_SHORT).await;
    assert_eq!(st.get("reset").await.unwrap(), Some(b("v2")));
}

/// Updates racing a delete never bring the key back once the delete has happened.
pub async fn concurrent_updates_never_resurrect(s: &Subject) {
    let st = s.store.clone();
    st.set("race", b("v0"), LONG).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let updater = st.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                updater
                    .set_if_present("race", Bytes::from(format!("v{i}")), Some(LONG))
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        }));
        if i == TASKS / 2 {
            assert!(st.delete("race").await.unwrap());
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(st.get("race").await.unwrap(), None);
}

/// `take` reads and deletes: once.
pub async fn take_is_single_use(s: &Subject) {
    let st = &s.store;
    st.set("once", b("token"), LONG).await.unwrap();
    assert_eq!(st.take("once").await.unwrap(), Some(b("token")));
    assert_eq!(st.take("once").await.unwrap(), None);
    assert_eq!(st.get("once").await.unwrap(), None);
}

/// Of 64 concurrent `take`s, exactly one wins.
pub async fn concurrent_take_has_one_winner(s: &Subject) {
    for round in 0..5 {
        let key = format!("once-{round}");
        s.store.set(&key, b("token"), LONG).await.unwrap();
        let winners = race(
            s,
            move |st, key| async move { st.take(&key).await.unwrap().is_some() },
            &key,
        )
        .await;
        assert_eq!(winners, 1, "round {round}");
    }
}

/// Of 64 concurrent `set_if_absent`s, exactly one wins.
pub async fn concurrent_set_if_absent_has_one_winner(s: &Subject) {
    for round in 0..5 {
        let key = format!("claim-{round}");
        let winners = race(
            s,
            move |st, key| async move { st.set_if_absent(&key, b("mine"), LONG).await.unwrap() },
            &key,
        )
        .await;
        assert_eq!(winners, 1, "round {round}");
    }
}

/// Runs `op` from 64 tasks at once and counts the `true`s.
async fn race<F, Fut>(s: &Subject, op: F, key: &str) -> usize
where
    F: Fn(Arc<dyn Store>, String) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    all_at_once((0..TASKS).map(|_| op(s.store.clone(), key.to_owned())))
        .await
        .into_iter()
        .filter(|won| *won)
        .count()
}

/// Spawns one task per operation, lets them all start together (behind a barrier), and
/// returns their outputs in the order given: the store and limiter suites' concurrency cases.
pub(crate) async fn all_at_once<T, Fut>(ops: impl IntoIterator<Item = Fut>) -> Vec<T>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let ops: Vec<Fut> = ops.into_iter().collect();
    let start = Arc::new(tokio::sync::Barrier::new(ops.len()));
    let tasks: Vec<_> = ops
        .into_iter()
        .map(|op| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                op.await
            })
        })
        .collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for t in tasks {
        outputs.push(t.await.unwrap());
    }
    outputs
}

/// `compare_and_swap` writes only over the exact expected bytes, keeps or resets the TTL as
/// asked, never brings back an absent key, and refuses a key of another kind untouched.
pub async fn compare_and_swap_semantics(s: &Subject) {
    let st = &s.store;
    assert_eq!(
        st.compare_and_swap("cas", b"x", b("y"), None)
            .await
            .unwrap(),
        Swap::Absent
    );
    assert_eq!(st.get("cas").await.unwrap(), None, "never resurrects");
    st.set("cas", b("one"), SHORT).await.unwrap();
    assert_eq!(
        st.compare_and_swap("cas", b"on", b("two"), None)
            .await
            .unwrap(),
        Swap::Changed,
        "a prefix is not the value"
    );
    assert_eq!(st.get("cas").await.unwrap(), Some(b("one")));
    assert_eq!(
        st.compare_and_swap("cas", b"one", b("two"), None)
            .await
            .unwrap(),
        Swap::Swapped
    );
    assert_eq!(st.get("cas").await.unwrap(), Some(b("two")));
    assert!(
        st.ttl("cas").await.unwrap().unwrap() <= SHORT,
        "None keeps the remaining time to live"
    );
    assert_eq!(
        st.compare_and_swap("cas", b"two", b("three"), Some(LONG))
            .await
            .unwrap(),
        Swap::Swapped
    );
    assert!(st.ttl("cas").await.unwrap().unwrap() > SHORT);
    let binary = Bytes::from(vec![0u8, 255, 1, 128]);
    st.set("cas-bin", binary.clone(), LONG).await.unwrap();
    assert_eq!(
        st.compare_and_swap("cas-bin", &binary, b("ok"), None)
            .await
            .unwrap(),
        Swap::Swapped
    );
    st.set("cas-short", b("v"), SHORT).await.unwrap();
    s.time.pass(PAST_SHORT).await;
    assert_eq!(
        st.compare_and_swap("cas-short", b"v", b("w"), Some(LONG))
            .await
            .unwrap(),
        Swap::Absent,
        "an expired key is absent"
    );
    assert_eq!(st.get("cas-short").await.unwrap(), None);
    st.index_add("cas-index", "m", 1.0, None, LONG)
        .await
        .unwrap();
    assert!(st
        .compare_and_swap("cas-index", b"m", b("x"), None)
        .await
        .is_err_and(|e| matches!(e, crate::StoreError::WrongKind { .. })));
}

/// 64 concurrent swaps from the same value: exactly one wins, the others see it changed, and
/// the value is the winner's.
pub async fn concurrent_compare_and_swap_has_one_winner(s: &Subject) {
    for round in 0..5 {
        let key = format!("cas-race:{round}");
        s.store.set(&key, b("start"), LONG).await.unwrap();
        let swaps = (0..TASKS).map(|i| {
            let (st, key) = (s.store.clone(), key.clone());
            async move {
                let mine = Bytes::from(format!("task-{i}"));
                (
                    st.compare_and_swap(&key, b"start", mine.clone(), None)
                        .await
                        .unwrap(),
                    mine,
                )
            }
        });
        let outcomes = all_at_once(swaps).await;
        let winners: Vec<&Bytes> = outcomes
            .iter()
            .filter(|(o, _)| *o == Swap::Swapped)
            .map(|(_, mine)| mine)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}");
        assert!(outcomes
            .iter()
            .all(|(o, _)| matches!(o, Swap::Swapped | Swap::Changed)));
        assert_eq!(s.store.get(&key).await.unwrap().as_ref(), Some(winners[0]));
    }
}

/// Sessions over this store: 63 tasks keep sliding a session's activity (every load writes it)
/// while one keeps rotating its CSRF nonce, all at once — the last rotation survives every
/// activity write.
pub async fn session_activity_keeps_concurrent_rotation(s: &Subject) {
    use crate::secret::SecretKey;
    use crate::session::{NewSession, SessionConfig, Sessions};
    use crate::user::UserId;
    use std::pin::Pin;

    type Op = Pin<Box<dyn Future<Output = Option<String>> + Send>>;
    // Memory operations take well under a microsecond: many more of them make the overlap
    // (a load reading before a rotation and writing after it) a certainty there too.
    let repeats = match s.store.kind() {
        super::BackendKind::Memory => 400,
        _ => 40,
    };
    let config = SessionConfig {
        activity_write_interval: Duration::ZERO, // every load writes its activity
        ..Default::default()
    };
    let sessions = Sessions::new(s.store.clone(), SecretKey::new([5u8; 32]).unwrap(), config);
    for round in 0..5 {
        let created = sessions
            .create(&UserId::Int(round), 0, NewSession::default())
            .await
            .unwrap();
        let loaded = sessions.load(created.id.clone()).await.unwrap().unwrap();
        let mut ops: Vec<Op> = Vec::new();
        for i in 0..TASKS {
            let (sessions, loaded, id) = (sessions.clone(), loaded.clone(), created.id.clone());
            ops.push(if i == TASKS / 2 {
                Box::pin(async move {
                    let mut last = None;
                    for _ in 0..repeats {
                        let rotated = sessions.rotate_csrf(&loaded).await.unwrap().unwrap();
                        last = Some(rotated.csrf_nonce().to_owned());
                    }
                    last
                })
            } else {
                Box::pin(async move {
                    for _ in 0..repeats {
                        assert!(sessions.load(id.clone()).await.unwrap().is_some());
                    }
                    None
                })
            });
        }
        let rotated = all_at_once(ops).await.into_iter().flatten().next().unwrap();
        let after = sessions.load(created.id.clone()).await.unwrap().unwrap();
        assert_eq!(
            after.record.csrf_nonce(),
            rotated,
            "round {round}: an activity write overwrote the CSRF rotation"
        );
    }
}

/// Counters start at the increment, accumulate, go negative, and expire a window after the
/// first touch — later increments do not re-arm it.
pub async fn counters_and_windows(s: &Subject) {
    let st = &s.store;
    assert_eq!(st.incr("c", 1, SHORT).await.unwrap(), 1);
    assert_eq!(st.incr("c", 2, SHORT).await.unwrap(), 3);
    assert_eq!(st.incr("c", -5, SHORT).await.unwrap(), -2);
    s.time.pass(SHORT / 2).await;
    assert_eq!(st.incr("c", 1, LONG).await.unwrap(), -1);
    s.time.pass(SHORT / 2 + Duration::from_millis(150)).await;
    assert_eq!(
        st.incr("c", 1, LONG).await.unwrap(),
        1,
        "the window must close on its first-touch schedule"
    );
    assert!(st.ttl("c").await.unwrap().unwrap() > SHORT);
}

/// 64 tasks × 10 increments: exactly 640.
pub async fn concurrent_counters_are_exact(s: &Subject) {
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let st = s.store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                st.incr("hits", 1, LONG).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        s.store.incr("hits", 0, LONG).await.unwrap(),
        (TASKS * 10) as i64
    );
}

/// Index members are listed lowest score first; re-adding re-scores; removal reports counts;
/// `keep` evicts the lowest scores and returns them.
pub async fn index_semantics(s: &Subject) {
    let st = &s.store;
    for (m, score) in [("a", 3.0), ("b", 1.0), ("c", 2.0)] {
        assert!(st
            .index_add("u:1", m, score, None, LONG)
            .await
            .unwrap()
            .is_empty());
    }
    let names =
        |list: Vec<super::IndexEntry>| list.into_iter().map(|e| e.member).collect::<Vec<_>>();
    assert_eq!(
        names(st.index_members("u:1").await.unwrap()),
        ["b", "c", "a"]
    );
    st.index_add("u:1", "b", 10.0, None, LONG).await.unwrap();
    let listed = st.index_members("u:1").await.unwrap();
    assert_eq!(
        listed.last().map(|e| (e.member.as_str(), e.score)),
        Some(("b", 10.0))
    );
    let evicted = st.index_add("u:1", "d", 5.0, Some(2), LONG).await.unwrap();
    assert_eq!(evicted, ["c", "a"]);
    assert_eq!(names(st.index_members("u:1").await.unwrap()), ["d", "b"]);
    assert_eq!(
        st.index_remove("u:1", &["d".to_owned(), "zz".to_owned()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(names(st.index_members("u:1").await.unwrap()), ["b"]);
    // Another owner's index is separate.
    assert!(st.index_members("u:2").await.unwrap().is_empty());
}

/// An index's expiry only ever grows, and the index expires when not extended.
pub async fn index_expiry_only_grows(s: &Subject) {
    let st = &s.store;
    st.index_add("u:grow", "a", 1.0, None, LONG).await.unwrap();
    st.index_add("u:grow", "b", 2.0, None, SHORT).await.unwrap();
    assert!(st.ttl("u:grow").await.unwrap().unwrap() > SHORT);
    st.index_add("u:short", "a", 1.0, None, SHORT)
        .await
        .unwrap();
    s.time.pass(PAST_SHORT).await;
    assert!(st.index_members("u:short").await.unwrap().is_empty());
    assert_eq!(st.index_members("u:grow").await.unwrap().len(), 2);
}

/// 64 concurrent adds with `keep = 5` leave exactly 5 members; every member is either kept or
/// evicted exactly once.
pub async fn concurrent_index_cap_is_exact(s: &Subject) {
    let adds = (0..TASKS).map(|i| {
        let st = s.store.clone();
        async move {
            st.index_add("u:cap", &format!("m{i:02}"), i as f64, Some(5), LONG)
                .await
                .unwrap()
        }
    });
    let evicted: Vec<String> = all_at_once(adds).await.into_iter().flatten().collect();
    let kept: Vec<String> = s
        .store
        .index_members("u:cap")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.member)
        .collect();
    assert_eq!(kept.len(), 5, "kept {kept:?}");
    assert_eq!(evicted.len(), TASKS - 5);
    let all: HashSet<&String> = kept.iter().chain(evicted.iter()).collect();
    assert_eq!(all.len(), TASKS, "a member was evicted twice or lost");
}

/// A stored record that does not decode is read as absent and deleted; counters over
/// non-numbers fail cleanly.
pub async fn corrupt_values_are_absent(s: &Subject) {
    #[derive(serde::Deserialize, Debug)]
    struct Record {
        #[allow(dead_code)]
        user_id: i64,
    }
    let st = &s.store;
    st.set("s:corrupt", b("{not json"), LONG).await.unwrap();
    let raw = st.get("s:corrupt").await.unwrap();
    let decoded: Option<Record> = decode_or_discard(st.as_ref(), "s:corrupt", raw)
        .await
        .unwrap();
    assert!(decoded.is_none());
    assert_eq!(
        st.get("s:corrupt").await.unwrap(),
        None,
        "a corrupt record must be deleted"
    );

    st.set("s:shape", b("{\"user_id\": \"not a number\"}"), LONG)
        .await
        .unwrap();
    let raw = st.get("s:shape").await.unwrap();
    let decoded: Option<Record> = decode_or_discard(st.as_ref(), "s:shape", raw)
        .await
        .unwrap();
    assert!(decoded.is_none());

    st.set("c:text", b("abc"), LONG).await.unwrap();
    assert!(st.incr("c:text", 1, LONG).await.is_err());
    assert_eq!(st.get("c:text").await.unwrap(), Some(b("abc")));
}

/// Expands to one `#[tokio::test]` per conformance case, for a backend given as an async
/// expression that yields a fresh, isolated [`Subject`].
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            absent_keys, set_get_delete, values_expire, get_and_touch_slides, ttl_and_expire,
            set_if_absent_semantics, set_if_present_never_resurrects, concurrent_updates_never_resurrect,
            take_is_single_use, concurrent_take_has_one_winner, concurrent_set_if_absent_has_one_winner,
            compare_and_swap_semantics, concurrent_compare_and_swap_has_one_winner,
            session_activity_keeps_concurrent_rotation,
            counters_and_windows, concurrent_counters_are_exact, index_semantics, index_expiry_only_grows,
            concurrent_index_cap_is_exact, corrupt_values_are_absent);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let subject = $make.await;
                $crate::store::conformance::$case(&subject).await;
            }
        )*
    };
}
