//! The UserStore conformance suite: what every [`UserStore`] must do, written once and run
//! against each backend (memory, SQLite, PostgreSQL, a column-mapped table).
//!
//! ```
//! use crudauth_core::user::{conformance, MemoryUsers};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // Each case is a public async fn taking the store under test…
//! conformance::duplicate_email_is_named(&MemoryUsers::new()).await;
//! # });
//! ```
//!
//! …and a backend's test file is one macro call per backend, each in a module of its own. The
//! expression is a future giving a fresh, empty store (or a [`UserSubject`] that cleans up
//! after itself, such as a PostgreSQL schema to drop):
//!
//! ```no_run
//! mod memory {
//!     crudauth_core::user_store_conformance!(async { crudauth_core::user::MemoryUsers::new() });
//! }
//! # fn main() {}
//! ```
//!
//! Each case gets its own store. The concurrency case runs 32 updates at once: real
//! parallelism on a networked database, and a multi-threaded runtime for the rest.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use async_trait::async_trait;

use super::{
    find_by_login, LoginField, MfaColumns, MfaWrite, NewUser, PasswordHash, ProviderAccount,
    ProviderLink, User, UserId, UserStore, UserStoreError, UserUpdate,
};

/// A store under test, and what to do once its case is over (pass or fail).
///
/// Every [`UserStore`] is a subject that needs no cleaning up.
#[async_trait]
pub trait UserSubject: Send + Sync + 'static {
    /// The store the case runs on; fresh and empty.
    fn store(&self) -> &dyn UserStore;

    /// Releases what the subject holds (drops a schema, removes a file). Runs after the case,
    /// even when it failed.
    async fn cleanup(&self) {}
}

#[async_trait]
impl<S: UserStore> UserSubject for S {
    fn store(&self) -> &dyn UserStore {
        self
    }
}

/// A running case, as the macro hands it to [`run`].
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Runs one case on the subject `make` gives, then cleans the subject up, then reports the
/// case's failure if it failed. Used by [`user_store_conformance!`](crate::user_store_conformance).
pub async fn run<S: UserSubject>(
    make: impl Future<Output = S>,
    case: for<'a> fn(&'a dyn UserStore) -> CaseFuture<'a>,
) {
    let subject = Arc::new(make.await);
    let running = Arc::clone(&subject);
    // A task of its own, so a failed assertion still lets the cleanup run.
    let outcome = tokio::spawn(async move { case(running.store()).await }).await;
    subject.cleanup().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the case did not finish: {e}"),
        }
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh subject from `$make`
/// (an expression giving a future of a [`UserStore`] or a [`UserSubject`]).
#[macro_export]
macro_rules! user_store_conformance {
    ($make:expr) => {
        $crate::user_store_conformance!(@cases $make;
            create_then_find_by_id, find_by_email_and_username, emails_are_canonical,
            usernames_are_case_sensitive, duplicate_email_is_named, duplicate_username_is_named,
            flags_given_at_creation_are_kept, update_changes_only_what_is_given,
            token_version_bumps_are_atomic, update_of_missing_user_is_none,
            email_change_to_taken_email_is_duplicate, text_ids_are_coerced,
            unknown_ids_are_none, find_by_login_follows_the_order,
            totp_steps_are_claimed_once, mfa_writes_hold_their_conditions,
            mfa_writes_race_to_one_winner, provider_accounts_are_created_and_found,
            provider_links_hold_their_conditions, provider_links_race_to_one_winner);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                fn case(
                    store: &dyn $crate::user::UserStore,
                ) -> $crate::user::conformance::CaseFuture<'_> {
                    ::std::boxed::Box::pin($crate::user::conformance::$case(store))
                }
                $crate::user::conformance::run($make, case).await;
            }
        )*
    };
}

/// A hash as a store holds it; opaque to the store.
const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo";
/// Another hash, for changes.
const OTHER_HASH: &str = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
/// The default login order.
const EMAIL_FIRST: [LoginField; 2] = [LoginField::Email, LoginField::Username];
/// The other order.
const USERNAME_FIRST: [LoginField; 2] = [LoginField::Username, LoginField::Email];
/// How many bumps race in the concurrency case.
const RACERS: usize = 32;

fn must<T>(result: Result<T, UserStoreError>, doing: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{doing}: unexpected error: {e}"),
    }
}

async fn create(store: &dyn UserStore, email: &str, username: &str) -> User {
    must(
        store.create(NewUser::new(email, username, HASH)).await,
        &format!("creating {username}"),
    )
}

async fn by_id(store: &dyn UserStore, id: &UserId) -> Option<User> {
    must(store.find_by_id(id).await, &format!("finding id {id}"))
}

async fn by(store: &dyn UserStore, field: LoginField, value: &str) -> Option<User> {
    must(
        store.find_by_field(field, value).await,
        &format!("finding {} {value:?}", field.name()),
    )
}

fn assert_duplicate<T: std::fmt::Debug>(result: Result<T, UserStoreError>, field: LoginField) {
    match result {
        Err(UserStoreError::Duplicate { field: named }) => {
            assert_eq!(named, field, "the duplicate error names the wrong field")
        }
        other => panic!("expected Duplicate {{ field: {field:?} }}, got {other:?}"),
    }
}

/// Polls every future until all are done, so they really are in flight together.
async fn all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// A created user comes back with its key and crudauth's defaults, and reads back the same by id.
pub async fn create_then_find_by_id(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    assert_eq!(ada.email.as_deref(), Some("ada@example.com"));
    assert_eq!(ada.username.as_deref(), Some("ada"));
    assert_eq!(ada.hashed_password, Some(PasswordHash(HASH.to_owned())));
    assert!(ada.is_active, "a new user is active");
    assert!(!ada.is_superuser, "a new user is no superuser");
    assert!(!ada.email_verified, "a new user's email is unverified");
    assert_eq!(ada.token_version, 0);
    assert_eq!(ada.oauth_provider, None);
    assert!(ada.provider_ids.is_empty());
    assert!(ada.has_usable_password());

    assert_eq!(by_id(store, &ada.id).await, Some(ada.clone()));

    let bob = create(store, "bob@example.com", "bob").await;
    assert_ne!(bob.id, ada.id, "each user gets a key of its own");
    assert_eq!(by_id(store, &bob.id).await, Some(bob));
    assert_eq!(by_id(store, &ada.id).await, Some(ada));
}

/// Users are found by email and by user name, and an unknown value finds nobody.
pub async fn find_by_email_and_username(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    let bob = create(store, "bob@example.com", "bob").await;
    assert_eq!(
        by(store, LoginField::Email, "ada@example.com").await,
        Some(ada.clone())
    );
    assert_eq!(by(store, LoginField::Username, "ada").await, Some(ada));
    assert_eq!(
        by(store, LoginField::Email, "bob@example.com").await,
        Some(bob.clone())
    );
    assert_eq!(by(store, LoginField::Username, "bob").await, Some(bob));
    assert_eq!(by(store, LoginField::Email, "eve@example.com").await, None);
    assert_eq!(by(store, LoginField::Username, "eve").await, None);
    // A user name is not an email, nor the other way round.
    assert_eq!(by(store, LoginField::Email, "ada").await, None);
    assert_eq!(
        by(store, LoginField::Username, "ada@example.com").await,
        None
    );
}

/// Emails are stored trimmed and lower-case, and matched that way on lookup and update.
pub async fn emails_are_canonical(store: &dyn UserStore) {
    let ada = create(store, "  Ada@Example.COM ", "ada").await;
    assert_eq!(ada.email.as_deref(), Some("ada@example.com"));
    assert_eq!(by_id(store, &ada.id).await, Some(ada.clone()));
    for lookup in ["ada@example.com", "ADA@EXAMPLE.COM", "  Ada@example.com\t"] {
        assert_eq!(
            by(store, LoginField::Email, lookup).await.map(|u| u.id),
            Some(ada.id.clone()),
            "looking up {lookup:?}"
        );
    }
    let change = UserUpdate {
        email: Some(" New.Address@Example.COM".to_owned()),
        ..UserUpdate::default()
    };
    let changed = must(store.update(&ada.id, change).await, "changing the email");
    let changed = changed.unwrap_or_else(|| panic!("ada vanished"));
    assert_eq!(changed.email.as_deref(), Some("new.address@example.com"));
    assert_eq!(
        by(store, LoginField::Email, "NEW.address@example.com")
            .await
            .map(|u| u.id),
        Some(ada.id)
    );
    assert_eq!(by(store, LoginField::Email, "ada@example.com").await, None);
}

/// User names are matched exactly: case and spaces count.
pub async fn usernames_are_case_sensitive(store: &dyn UserStore) {
    let upper = create(store, "ada@example.com", "Ada").await;
    assert_eq!(by(store, LoginField::Username, "ada").await, None);
    assert_eq!(by(store, LoginField::Username, "ADA").await, None);
    assert_eq!(by(store, LoginField::Username, " Ada").await, None);
    assert_eq!(
        by(store, LoginField::Username, "Ada").await,
        Some(upper.clone())
    );
    let lower = create(store, "other@example.com", "ada").await;
    assert_ne!(lower.id, upper.id, "`ada` and `Ada` are two users");
    assert_eq!(by(store, LoginField::Username, "ada").await, Some(lower));
    assert_eq!(by(store, LoginField::Username, "Ada").await, Some(upper));
}

/// A taken email, in any case or spacing, is refused as a duplicate email, and no row is added.
pub async fn duplicate_email_is_named(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    assert_duplicate(
        store
            .create(NewUser::new(" ADA@example.com", "someone", OTHER_HASH))
            .await,
        LoginField::Email,
    );
    assert_eq!(by(store, LoginField::Username, "someone").await, None);
    assert_eq!(
        by(store, LoginField::Email, "ada@example.com").await,
        Some(ada)
    );
}

/// A taken user name is refused as a duplicate user name, and no row is added.
pub async fn duplicate_username_is_named(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    assert_duplicate(
        store
            .create(NewUser::new("other@example.com", "ada", OTHER_HASH))
            .await,
        LoginField::Username,
    );
    assert_eq!(
        by(store, LoginField::Email, "other@example.com").await,
        None
    );
    assert_eq!(by(store, LoginField::Username, "ada").await, Some(ada));
}

/// The superuser and verified flags given at creation are stored.
pub async fn flags_given_at_creation_are_kept(store: &dyn UserStore) {
    let mut new = NewUser::new("root@example.com", "root", HASH);
    new.is_superuser = true;
    new.email_verified = true;
    let root = must(store.create(new).await, "creating a superuser");
    assert!(root.is_superuser);
    assert!(root.email_verified);
    assert!(root.is_active);
    assert_eq!(by_id(store, &root.id).await, Some(root));
}

/// An update changes the fields it names, keeps the rest, and returns the row as stored.
pub async fn update_changes_only_what_is_given(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    let bob = create(store, "bob@example.com", "bob").await;

    let new_hash = UserUpdate {
        hashed_password: Some(PasswordHash(OTHER_HASH.to_owned())),
        ..UserUpdate::default()
    };
    let after = must(store.update(&ada.id, new_hash).await, "changing the hash");
    let expected = User {
        hashed_password: Some(PasswordHash(OTHER_HASH.to_owned())),
        ..ada.clone()
    };
    assert_eq!(after, Some(expected.clone()));
    assert_eq!(by_id(store, &ada.id).await, Some(expected.clone()));

    let flags = UserUpdate {
        email_verified: Some(true),
        is_active: Some(false),
        ..UserUpdate::default()
    };
    let after = must(store.update(&ada.id, flags).await, "changing the flags");
    let expected = User {
        email_verified: true,
        is_active: false,
        ..expected
    };
    assert_eq!(after, Some(expected.clone()));

    let everything = UserUpdate {
        hashed_password: Some(PasswordHash(HASH.to_owned())),
        email: Some("ada.lovelace@example.com".to_owned()),
        email_verified: Some(false),
        is_active: Some(true),
        bump_token_version: true,
    };
    let after = must(
        store.update(&ada.id, everything).await,
        "changing everything",
    );
    let expected = User {
        hashed_password: Some(PasswordHash(HASH.to_owned())),
        email: Some("ada.lovelace@example.com".to_owned()),
        email_verified: false,
        is_active: true,
        token_version: 1,
        ..expected
    };
    assert_eq!(after, Some(expected.clone()));
    assert_eq!(by_id(store, &ada.id).await, Some(expected));

    let nothing = must(
        store.update(&ada.id, UserUpdate::default()).await,
        "an empty update",
    );
    assert_eq!(
        nothing.map(|u| u.token_version),
        Some(1),
        "an empty update bumps nothing"
    );
    assert_eq!(
        by_id(store, &bob.id).await,
        Some(bob),
        "other users are untouched"
    );
}

/// Concurrent bumps of the token version never lose one: 32 bumps at once give exactly 32, and
/// each returns a different version.
pub async fn token_version_bumps_are_atomic(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    let id = &ada.id;
    let bump = move || async move {
        let changes = UserUpdate {
            bump_token_version: true,
            ..UserUpdate::default()
        };
        must(store.update(id, changes).await, "bumping")
            .map(|user| user.token_version)
            .unwrap_or_else(|| panic!("ada vanished during the bumps"))
    };
    let mut seen = all((0..RACERS).map(|_| bump()).collect()).await;
    seen.sort_unstable();
    let expected: Vec<i64> = (1..=RACERS as i64).collect();
    assert_eq!(
        seen, expected,
        "each bump must return its own new version, with none lost"
    );
    let after = by_id(store, &ada.id)
        .await
        .unwrap_or_else(|| panic!("ada vanished"));
    assert_eq!(after.token_version, RACERS as i64);
}

/// Updating a user that does not exist is `None`, and creates nobody.
pub async fn update_of_missing_user_is_none(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    let changes = || UserUpdate {
        email: Some("ghost@example.com".to_owned()),
        bump_token_version: true,
        ..UserUpdate::default()
    };
    for id in [
        UserId::Int(987_654),
        UserId::Text("987654".to_owned()),
        UserId::Text("abc".to_owned()),
    ] {
        assert_eq!(
            must(
                store.update(&id, changes()).await,
                "updating a missing user"
            ),
            None,
            "updating {id:?}"
        );
    }
    assert_eq!(
        by(store, LoginField::Email, "ghost@example.com").await,
        None
    );
    assert_eq!(by_id(store, &ada.id).await, Some(ada));
}

/// Changing an email to one another user has is a duplicate email and changes nothing;
/// changing it to one's own (in another case) is fine.
pub async fn email_change_to_taken_email_is_duplicate(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    let bob = create(store, "bob@example.com", "bob").await;
    let take_adas = UserUpdate {
        email: Some(" ADA@example.com".to_owned()),
        bump_token_version: true,
        ..UserUpdate::default()
    };
    assert_duplicate(store.update(&bob.id, take_adas).await, LoginField::Email);
    assert_eq!(
        by_id(store, &bob.id).await,
        Some(bob.clone()),
        "a refused update changes nothing"
    );
    assert_eq!(
        by(store, LoginField::Email, "ada@example.com").await,
        Some(ada.clone())
    );

    let own = UserUpdate {
        email: Some("Bob@Example.com".to_owned()),
        ..UserUpdate::default()
    };
    let after = must(
        store.update(&bob.id, own).await,
        "re-saving one's own email",
    );
    assert_eq!(after, Some(bob));
}

/// Ids arrive as text from tokens and sessions: a text id that is the key finds the user.
pub async fn text_ids_are_coerced(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    let as_text = UserId::Text(ada.id.to_string());
    assert_eq!(by_id(store, &as_text).await, Some(ada.clone()));
    let bump = UserUpdate {
        bump_token_version: true,
        ..UserUpdate::default()
    };
    let after = must(store.update(&as_text, bump).await, "updating by text id");
    assert_eq!(after.map(|u| (u.id, u.token_version)), Some((ada.id, 1)));
}

/// Unknown ids, and ids that cannot be a key, are not found; never an error.
pub async fn unknown_ids_are_none(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    for id in [
        UserId::Int(987_654),
        UserId::Int(0),
        UserId::Int(-1),
        UserId::Int(i64::MAX),
        UserId::Text("987654".to_owned()),
        UserId::Text("abc".to_owned()),
        UserId::Text(String::new()),
        UserId::Text("1.0".to_owned()),
        UserId::Text("1 OR 1=1".to_owned()),
        UserId::Text("99999999999999999999999999".to_owned()),
        UserId::Text("3f0e2b9c-8d0a-4b8e-9a51-2f3c1d2e4b5a".to_owned()),
    ] {
        if id == ada.id {
            continue;
        }
        assert_eq!(by_id(store, &id).await, None, "finding {id:?}");
    }
}

/// `find_by_login` tries the fields in the order given and returns the first match: email
/// canonicalised, user name exact.
pub async fn find_by_login_follows_the_order(store: &dyn UserStore) {
    let amy = create(store, "amy@example.com", "amy").await;
    // Bea's user name is Amy's email address: the order decides who signs in.
    let bea = create(store, "bea@example.com", "amy@example.com").await;
    let login = |order: &'static [LoginField], identifier: &'static str| async move {
        must(
            find_by_login(store, order, identifier).await,
            &format!("logging in as {identifier:?}"),
        )
        .map(|u| u.id)
    };
    assert_eq!(
        login(&EMAIL_FIRST, "amy@example.com").await,
        Some(amy.id.clone())
    );
    assert_eq!(
        login(&USERNAME_FIRST, "amy@example.com").await,
        Some(bea.id.clone())
    );
    assert_eq!(
        login(&USERNAME_FIRST, " AMY@example.com").await,
        Some(amy.id.clone()),
        "no exact user name, so the canonical email matches"
    );
    assert_eq!(login(&EMAIL_FIRST, "amy").await, Some(amy.id.clone()));
    assert_eq!(login(&EMAIL_FIRST, "bea@example.com").await, Some(bea.id));
    assert_eq!(login(&[LoginField::Email], "amy").await, None);
    assert_eq!(login(&[LoginField::Username], "AMY").await, None);
    assert_eq!(login(&EMAIL_FIRST, "nobody").await, None);
    assert_eq!(login(&EMAIL_FIRST, "   ").await, None);
    assert_eq!(login(&[], "amy").await, None);
}

/// The two-factor state of `id` as the store reads it back.
async fn mfa_of(store: &dyn UserStore, id: &UserId) -> MfaColumns {
    by_id(store, id)
        .await
        .unwrap_or_else(|| panic!("user {id} vanished"))
        .mfa
}

/// A TOTP step is claimed once: a later step wins, an equal or earlier one never does, and of
/// many concurrent claims of one step exactly one succeeds.
pub async fn totp_steps_are_claimed_once(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    let id = &ada.id;
    assert_eq!(
        ada.mfa,
        MfaColumns::default(),
        "a new user has no two-factor state"
    );
    let claim = |step: i64| async move { must(store.claim_totp_step(id, step).await, "claiming") };
    assert!(claim(100).await, "the first step is claimed");
    assert!(!claim(100).await, "the same step twice");
    assert!(!claim(99).await, "an earlier step");
    assert!(claim(101).await, "a later step");
    assert_eq!(mfa_of(store, id).await.last_step, Some(101));
    let won = all((0..RACERS).map(|_| claim(102)).collect()).await;
    assert_eq!(
        won.iter().filter(|w| **w).count(),
        1,
        "of {RACERS} concurrent claims of one step exactly one wins"
    );
    let missing = UserId::Int(i64::MAX - 7);
    assert!(!must(
        store.claim_totp_step(&missing, 1).await,
        "claiming for nobody"
    ));
}

/// Each two-factor write applies only under its condition, and reads back as written.
pub async fn mfa_writes_hold_their_conditions(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    let id = &ada.id;
    let write = |w: MfaWrite| async move { must(store.write_mfa(id, w).await, "writing") };
    let regenerate = || MfaWrite::Regenerate {
        recovery_codes: "[\"r\"]".into(),
    };
    assert!(!write(regenerate()).await, "no codes before enrolment");
    must(store.claim_totp_step(id, 5).await, "claiming");
    assert!(
        write(MfaWrite::Pending {
            secret: "p1".into()
        })
        .await
    );
    let pending = mfa_of(store, id).await;
    assert_eq!(pending.secret.as_deref(), Some("p1"));
    assert!(!pending.confirmed);
    assert_eq!(pending.last_step, None, "a new setup clears the last step");
    assert_eq!(pending.recovery_codes, None);
    let enable = |pending: &str| MfaWrite::Enable {
        pending: pending.into(),
        secret: "s1".into(),
        recovery_codes: "[\"a\",\"b\"]".into(),
    };
    assert!(
        !write(enable("p0")).await,
        "another pending secret is not enabled"
    );
    assert!(write(enable("p1")).await);
    let enrolled = mfa_of(store, id).await;
    assert_eq!(enrolled.secret.as_deref(), Some("s1"));
    assert!(enrolled.confirmed);
    assert_eq!(enrolled.recovery_codes.as_deref(), Some("[\"a\",\"b\"]"));
    assert!(!write(enable("s1")).await, "enrolment finishes once");
    let consume = |expected: &str| MfaWrite::ConsumeCode {
        expected: expected.into(),
        recovery_codes: "[\"b\"]".into(),
    };
    assert!(
        !write(consume("[\"x\"]")).await,
        "codes that changed are not replaced"
    );
    assert!(write(consume("[\"a\",\"b\"]")).await);
    assert_eq!(
        mfa_of(store, id).await.recovery_codes.as_deref(),
        Some("[\"b\"]")
    );
    assert!(write(regenerate()).await);
    assert_eq!(
        mfa_of(store, id).await.recovery_codes.as_deref(),
        Some("[\"r\"]")
    );
    must(store.claim_totp_step(id, 9).await, "claiming");
    assert!(write(MfaWrite::Disable).await);
    assert_eq!(
        mfa_of(store, id).await,
        MfaColumns::default(),
        "disable clears all four"
    );
    let after = by_id(store, id)
        .await
        .unwrap_or_else(|| panic!("ada vanished"));
    assert_eq!(after.email, ada.email, "nothing else changed");
    assert_eq!(after.token_version, ada.token_version);
    let missing = UserId::Int(i64::MAX - 7);
    assert!(!must(
        store.write_mfa(&missing, MfaWrite::Disable).await,
        "writing for nobody"
    ));
}

/// Concurrent confirmations of one setup, and concurrent uses of one recovery-code list: one
/// winner each.
pub async fn mfa_writes_race_to_one_winner(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    let id = &ada.id;
    must(
        store
            .write_mfa(id, MfaWrite::Pending { secret: "p".into() })
            .await,
        "starting enrolment",
    );
    let enable = |i: usize| async move {
        let write = MfaWrite::Enable {
            pending: "p".into(),
            secret: format!("s{i}"),
            recovery_codes: format!("[\"{i}\"]"),
        };
        must(store.write_mfa(id, write).await, "enabling")
    };
    let won = all((0..RACERS).map(enable).collect()).await;
    assert_eq!(
        won.iter().filter(|w| **w).count(),
        1,
        "one confirmation wins"
    );
    let winner = won.iter().position(|w| *w).unwrap_or(usize::MAX);
    let mfa = mfa_of(store, id).await;
    assert_eq!(
        mfa.secret,
        Some(format!("s{winner}")),
        "the winner's secret is kept"
    );
    assert_eq!(mfa.recovery_codes, Some(format!("[\"{winner}\"]")));
    let expected = format!("[\"{winner}\"]");
    let consume = |_| {
        let expected = expected.clone();
        async move {
            let write = MfaWrite::ConsumeCode {
                expected,
                recovery_codes: "[]".into(),
            };
            must(store.write_mfa(id, write).await, "consuming")
        }
    };
    let won = all((0..RACERS).map(consume).collect()).await;
    assert_eq!(
        won.iter().filter(|w| **w).count(),
        1,
        "a code is consumed once"
    );
}

/// The provider every table under test links on (crudauth's default table has `github_id`).
const PROVIDER: &str = "github";

fn account(subject: &str) -> ProviderAccount {
    ProviderAccount {
        provider: PROVIDER.into(),
        subject: subject.into(),
    }
}

fn link(subject: &str, claim: bool) -> ProviderLink {
    ProviderLink {
        account: account(subject),
        claim: claim.then(|| PasswordHash("!unusable-sentinel".into())),
    }
}

async fn by_provider(store: &dyn UserStore, subject: &str) -> Option<User> {
    must(
        store.find_by_provider(PROVIDER, subject).await,
        "finding by provider",
    )
}

/// A user made from a provider account is found by it, carries it, and no second user can be
/// made from the same account.
pub async fn provider_accounts_are_created_and_found(store: &dyn UserStore) {
    assert!(
        store.supports_provider(PROVIDER),
        "the table links on {PROVIDER}_id"
    );
    let mut new = NewUser::new("Oauth@Example.com", "octo", "!sentinel");
    new.email_verified = true;
    new.provider = Some(account("gh-1"));
    let octo = must(store.create(new).await, "creating from a provider account");
    assert_eq!(octo.oauth_provider.as_deref(), Some(PROVIDER));
    assert_eq!(
        octo.provider_ids.get(PROVIDER).map(String::as_str),
        Some("gh-1")
    );
    assert!(octo.email_verified);
    assert!(!octo.has_usable_password());
    let found = by_provider(store, "gh-1").await.map(|u| u.id);
    assert_eq!(found, Some(octo.id.clone()), "found by the provider id");
    assert_eq!(by_id(store, &octo.id).await, Some(octo.clone()));
    assert!(
        by_provider(store, "gh-2").await.is_none(),
        "another subject"
    );
    assert!(by_provider(store, "").await.is_none());
    let plain = create(store, "plain@example.com", "plain").await;
    assert!(plain.provider_ids.is_empty());
    assert_eq!(plain.oauth_provider, None);
    let mut again = NewUser::new("other@example.com", "other", "!sentinel");
    again.provider = Some(account("gh-1"));
    assert!(
        matches!(store.create(again).await, Err(UserStoreError::Conflict)),
        "one user per provider account"
    );
    assert!(by(store, LoginField::Email, "other@example.com")
        .await
        .is_none());
}

/// A link writes only onto an account not yet linked to the provider; a claim only onto an
/// unverified one, and takes it over; a subject owned by another user is a conflict.
pub async fn provider_links_hold_their_conditions(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    let verified = must(
        store
            .update(
                &ada.id,
                UserUpdate {
                    email_verified: Some(true),
                    ..UserUpdate::default()
                },
            )
            .await,
        "verifying ada",
    );
    assert!(verified.is_some_and(|u| u.email_verified));
    assert!(
        !must(
            store.link_provider(&ada.id, &link("gh-a", true)).await,
            "claiming"
        ),
        "a verified account is never claimed"
    );
    assert!(by_provider(store, "gh-a").await.is_none());
    assert!(must(
        store.link_provider(&ada.id, &link("gh-a", false)).await,
        "linking"
    ));
    let linked = by_id(store, &ada.id)
        .await
        .unwrap_or_else(|| panic!("ada vanished"));
    assert_eq!(
        linked.provider_ids.get(PROVIDER).map(String::as_str),
        Some("gh-a")
    );
    assert_eq!(linked.oauth_provider.as_deref(), Some(PROVIDER));
    assert_eq!(
        linked.hashed_password, ada.hashed_password,
        "a link keeps the password"
    );
    assert_eq!(linked.token_version, ada.token_version);
    assert_eq!(
        by_provider(store, "gh-a").await.map(|u| u.id),
        Some(ada.id.clone())
    );
    assert!(
        !must(
            store.link_provider(&ada.id, &link("gh-b", false)).await,
            "relinking"
        ),
        "a linked account keeps its provider id"
    );
    assert!(by_provider(store, "gh-b").await.is_none());

    let bob = create(store, "bob@example.com", "bob").await;
    must(
        store
            .write_mfa(&bob.id, MfaWrite::Pending { secret: "p".into() })
            .await,
        "bob starts enrolment",
    );
    assert!(
        matches!(
            store.link_provider(&bob.id, &link("gh-a", false)).await,
            Err(UserStoreError::Conflict)
        ),
        "ada's provider account cannot be linked to bob"
    );
    assert!(must(
        store.link_provider(&bob.id, &link("gh-b", true)).await,
        "claiming bob"
    ));
    let claimed = by_id(store, &bob.id)
        .await
        .unwrap_or_else(|| panic!("bob vanished"));
    assert!(claimed.email_verified, "a claim verifies the email");
    assert!(!claimed.has_usable_password(), "a claim ends the password");
    assert_eq!(
        claimed.hashed_password,
        Some(PasswordHash("!unusable-sentinel".into()))
    );
    assert_eq!(
        claimed.mfa,
        MfaColumns::default(),
        "a claim clears two-factor"
    );
    assert_eq!(
        claimed.token_version,
        bob.token_version + 1,
        "a claim moves the epoch"
    );
    assert_eq!(
        claimed.provider_ids.get(PROVIDER).map(String::as_str),
        Some("gh-b")
    );
    let missing = UserId::Int(i64::MAX - 7);
    assert!(!must(
        store.link_provider(&missing, &link("gh-c", false)).await,
        "linking nobody"
    ));
}

/// Concurrent links of different provider accounts to one user: one wins, and it is the one
/// the row keeps.
pub async fn provider_links_race_to_one_winner(store: &dyn UserStore) {
    let ada = create(store, "ada@example.com", "ada").await;
    let id = &ada.id;
    let attempt = |i: usize| async move {
        must(
            store
                .link_provider(id, &link(&format!("gh-{i}"), true))
                .await,
            "linking",
        )
    };
    let won = all((0..RACERS).map(attempt).collect()).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "one link wins");
    let winner = won.iter().position(|w| *w).unwrap_or(usize::MAX);
    let row = by_id(store, id)
        .await
        .unwrap_or_else(|| panic!("ada vanished"));
    assert_eq!(
        row.provider_ids.get(PROVIDER).cloned(),
        Some(format!("gh-{winner}"))
    );
    assert_eq!(row.token_version, ada.token_version + 1, "claimed once");
}
