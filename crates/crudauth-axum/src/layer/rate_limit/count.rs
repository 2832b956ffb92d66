//! Counting one request against a route limit, and what the answer looks like: shared by
//! [`RateLimitLayer`](super::RateLimitLayer) and the routes that count inside themselves
//! (`/register`, after validation).

use std::cell::RefCell;
use std::sync::OnceLock;

use axum::http::header::Entry;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Request};
use axum::response::{IntoResponse, Response};

use crudauth_core::limit::{Budget, Decision};
use crudauth_core::StoreResult;

use super::config::{KeyBy, RateLimit};
use crate::client_ip::{client_address, peer_ip, ClientAddress};
use crate::error::AuthError;
use crate::extract::resolve;
use crate::failure_log::FailureLog;
use crate::state::CrudAuth;

/// `X-RateLimit-Limit`.
const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`.
const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const TOO_MANY: &str = "Too many requests. Try again later.";

/// What [`RouteLimiter::count_now`] comes to.
pub(crate) enum CountNow {
    /// Settled without waiting: counted in process, or nothing to count.
    Done(Counted),
    /// The limiter has to be waited for: with the counter key already built, or `None` when
    /// the key needs the signed-in user.
    Wait(Option<String>),
}

/// What counting a request ends in.
pub(crate) enum Counted {
    /// Go on, reporting this decision (`None`: nothing was counted).
    Pass(Option<Decision>),
    /// The answer that ends the request: 429 over budget, 503 when the limiter fails closed.
    Refuse(Response),
}

thread_local! {
    /// The counter key being built, reused so the hot path allocates nothing for it.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// One action's limit, ready to count: its key prefix, budget, key and fail mode. Cloning it
/// copies two short strings (and shares a custom key's closure).
#[derive(Debug, Clone)]
pub(crate) struct RouteLimiter {
    /// `q:{action}:`.
    prefix: String,
    budget: Budget,
    key: KeyBy,
    fail_open: bool,
    /// Why the limit cannot be used (a zero period): every request is refused, fail closed.
    problem: Option<String>,
}

impl RouteLimiter {
    /// `limit` for `action`, keyed by its own key or else `default_key`.
    pub(crate) fn new(action: &str, limit: &RateLimit, default_key: KeyBy) -> Self {
        let problem = limit.problem();
        if let Some(problem) = &problem {
            tracing::error!(
                action,
                "{problem}; every request to this route is refused (503)"
            );
        }
        Self {
            prefix: format!("q:{action}:"),
            budget: Budget::new(limit.times, limit.period),
            key: limit.key.clone().unwrap_or(default_key),
            fail_open: limit.fail_open,
            problem,
        }
    }

    /// How callers are told apart.
    #[cfg(test)]
    pub(crate) fn key(&self) -> &KeyBy {
        &self.key
    }

    /// Whether nothing is counted.
    pub(crate) fn is_disabled(&self) -> bool {
        self.budget.is_disabled()
    }

    /// Counts `request` without waiting, when it can: its key needs no principal, its address
    /// is known, and the limiter decides in-process. [`CountNow::Wait`] (with the request
    /// given back) means: take the asynchronous path, with the key already built
    /// ([`Self::count_key`]) or, for a key that needs the principal (or an address that is
    /// unknown), [`Self::identity`] then [`Self::count`].
    pub(crate) fn count_now<B>(
        &self,
        request: Request<B>,
        auth: &CrudAuth,
    ) -> (CountNow, Request<B>) {
        if let Some(settled) = self.settled_without_counting() {
            return (CountNow::Done(settled), request);
        }
        match &self.key {
            KeyBy::Ip => {
                let address = address_of(request.headers(), request.extensions(), auth);
                if address == ClientAddress::Unknown {
                    return (CountNow::Wait(None), request);
                }
                let counted = self.count_in_process(auth, |key| {
                    address.write_key(key);
                });
                (counted, request)
            }
            KeyBy::Custom(identity) => {
                let (parts, body) = request.into_parts();
                // The application's closure runs before the key buffer is borrowed.
                let counted = match identity(&parts) {
                    Some(id) => self.count_in_process(auth, |key| write_custom(key, auth, &id)),
                    None => {
                        let address = address_of(&parts.headers, &parts.extensions, auth);
                        if address == ClientAddress::Unknown {
                            CountNow::Wait(None)
                        } else {
                            self.count_in_process(auth, |key| {
                                key.push_str("ip:");
                                address.write_key(key);
                            })
                        }
                    }
                };
                (counted, Request::from_parts(parts, body))
            }
            KeyBy::User | KeyBy::UserOrIp | KeyBy::CustomAsync(_) => {
                (CountNow::Wait(None), request)
            }
        }
    }

    /// The key built by `identity` after the prefix, counted by an in-process limiter; a
    /// limiter across the network is left to wait for, with the key.
    fn count_in_process(&self, auth: &CrudAuth, identity: impl FnOnce(&mut String)) -> CountNow {
        KEY.with_borrow_mut(|key| {
            key.clear();
            key.push_str(&self.prefix);
            identity(key);
            match auth.rate_limiter().hit_in_process(key, self.budget) {
                Some(outcome) => CountNow::Done(self.settle(outcome)),
                None => CountNow::Wait(Some(key.as_str().to_owned())),
            }
        })
    }

    /// Who is calling, for the keys [`Self::count_now`] could not build: `Ok(Some(identity))`
    /// to count, `Ok(None)` when the caller cannot be told apart (the address is unknown and
    /// nobody is signed in: see [`Self::no_address`]), `Err` when the limit needs a user and
    /// there is none (401), or resolving the user failed.
    ///
    /// Without a peer address, a key that would count the address counts the signed-in user
    /// instead (`user:{id}`), never one bucket shared by every caller.
    pub(crate) async fn identity(
        &self,
        parts: &mut Parts,
        auth: &CrudAuth,
    ) -> Result<Option<String>, AuthError> {
        let address = address_of(&parts.headers, &parts.extensions, auth);
        let address_key = |prefix: &str| {
            let mut key = prefix.to_owned();
            address.write_key(&mut key).then_some(key)
        };
        match &self.key {
            KeyBy::User => match resolve(parts, None).await {
                Ok(Some(principal)) => Ok(Some(principal.user_id().to_string())),
                Ok(None) => Err(AuthError::not_authenticated()),
                Err(error) => Err(error),
            },
            // A failed resolution is left in the request's cache for the handler to answer;
            // the request is still counted, against its address.
            KeyBy::UserOrIp => match resolve(parts, None).await {
                Ok(Some(principal)) => Ok(Some(format!("user:{}", principal.user_id()))),
                _ => Ok(address_key("ip:")),
            },
            KeyBy::Ip => match address_key("") {
                Some(key) => Ok(Some(key)),
                None => Ok(signed_in(parts, auth).await),
            },
            KeyBy::Custom(identity) => match identity(parts) {
                Some(id) => Ok(Some(custom_key(auth, &id))),
                None => match address_key("ip:") {
                    Some(key) => Ok(Some(key)),
                    None => Ok(signed_in(parts, auth).await),
                },
            },
            KeyBy::CustomAsync(identity) => {
                let principal = resolve(parts, None).await.ok().flatten();
                match identity(parts, principal.as_deref()).await {
                    Some(id) => Ok(Some(custom_key(auth, &id))),
                    None => match address_key("ip:") {
                        Some(key) => Ok(Some(key)),
                        None => Ok(signed_in(parts, auth).await),
                    },
                }
            }
        }
    }

    /// The outcome for a caller that cannot be told apart (no peer address, nobody signed
    /// in): like a limiter that cannot decide, 503 (fail closed), or for a
    /// [`fail_open`](RateLimit::fail_open) limit, through uncounted. Never one bucket for
    /// everyone.
    pub(crate) fn no_address(&self) -> Counted {
        if self.fail_open {
            return Counted::Pass(None);
        }
        Counted::Refuse(
            AuthError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "Authentication service unavailable",
            )
            .into_response(),
        )
    }

    /// Counts one request from `identity`.
    pub(crate) async fn count(&self, auth: &CrudAuth, identity: &str) -> Counted {
        if let Some(settled) = self.settled_without_counting() {
            return settled;
        }
        let mut key = String::with_capacity(self.prefix.len() + identity.len());
        key.push_str(&self.prefix);
        key.push_str(identity);
        self.count_key(auth, &key).await
    }

    /// Counts one request under `key`, the whole counter key (prefix included), as
    /// [`Self::count_now`] built it: the limit is known to be on and usable.
    pub(crate) async fn count_key(&self, auth: &CrudAuth, key: &str) -> Counted {
        let outcome = auth.rate_limiter().hit(key, self.budget).await;
        self.settle(outcome)
    }

    /// The outcome when nothing is to be counted: the limit is off, or unusable.
    fn settled_without_counting(&self) -> Option<Counted> {
        if self.is_disabled() {
            return Some(Counted::Pass(None));
        }
        let problem = self.problem.as_ref()?;
        Some(Counted::Refuse(
            AuthError::unavailable(problem).into_response(),
        ))
    }

    /// What the limiter's answer means for the request.
    fn settle(&self, outcome: StoreResult<Decision>) -> Counted {
        match outcome {
            Ok(decision) if decision.allowed => Counted::Pass(Some(decision)),
            Ok(decision) => Counted::Refuse(too_many(&decision)),
            Err(error) if self.fail_open => {
                static LOG: FailureLog = FailureLog::new();
                LOG.report(
                    "rate limiter failed; letting requests through (fail open)",
                    &error,
                );
                Counted::Pass(Some(Decision {
                    allowed: true,
                    limit: self.budget.limit,
                    remaining: self.budget.limit,
                    retry_after: std::time::Duration::ZERO,
                }))
            }
            Err(error) => Counted::Refuse(AuthError::from(error).into_response()),
        }
    }
}

/// The client's address (see [`crate::client_ip`]).
fn address_of(headers: &HeaderMap, extensions: &Extensions, auth: &CrudAuth) -> ClientAddress {
    client_address(headers, peer_ip(extensions), auth.inner.trusted_proxy_hops)
}

/// The signed-in user as a counting identity (`user:{id}`), for a key whose address is
/// unknown; `None` when anonymous. Counting grants nothing, so a live session cookie counts as
/// its user even on an unsafe request that has not shown its CSRF token (as `/csrf/refresh`,
/// which needs none); the handler still answers the credential as it must.
async fn signed_in(parts: &mut Parts, auth: &CrudAuth) -> Option<String> {
    if let Ok(Some(principal)) = resolve(parts, None).await {
        return Some(format!("user:{}", principal.user_id()));
    }
    let sessions = auth.sessions()?;
    match crate::transport::presented_session(auth, sessions, &parts.headers).await {
        Ok(Some(session)) => Some(format!("user:{}", session.record.user_id)),
        _ => None,
    }
}

/// The HMAC purpose of custom key identities.
const CUSTOM_KEY_PURPOSE: &str = "rate-limit-key";

/// Appends the counting key of a custom identity: `c:` and its HMAC under the limiter key, so
/// it is fixed in length, apart from the built-in keys (an address, `user:…`, `ip:…`), and
/// unreadable in the store.
fn write_custom(out: &mut String, auth: &CrudAuth, id: &str) {
    out.push_str("c:");
    out.push_str(&auth.inner.limiter_key.digest(CUSTOM_KEY_PURPOSE, id));
}

/// [`write_custom`] as a new string.
fn custom_key(auth: &CrudAuth, id: &str) -> String {
    let mut key = String::with_capacity(66);
    write_custom(&mut key, auth, id);
    key
}

/// 429 "Too many requests. Try again later." with `Retry-After` and the budget headers.
fn too_many(decision: &Decision) -> Response {
    let mut response = AuthError::too_many(TOO_MANY, decision.retry_after_secs()).into_response();
    report(response.headers_mut(), decision);
    response
}

/// Puts the budget headers on a response. When several limits counted the request, the one
/// with the fewest requests left is reported.
pub(crate) fn report(headers: &mut HeaderMap, decision: &Decision) {
    match headers.entry(REMAINING_HEADER) {
        Entry::Occupied(mut reported) => {
            let fewer_already = reported
                .get()
                .to_str()
                .ok()
                .and_then(|v| v.parse::<u32>().ok())
                .is_some_and(|left| left < decision.remaining);
            if fewer_already {
                return;
            }
            reported.insert(count_value(decision.remaining));
        }
        Entry::Vacant(slot) => {
            slot.insert(count_value(decision.remaining));
        }
    }
    headers.insert(LIMIT_HEADER, count_value(decision.limit));
}

/// A count as a header value; the common ones (budgets and what is left of them, below 1024)
/// are written once and then only pointed at.
fn count_value(n: u32) -> HeaderValue {
    static TEXTS: OnceLock<Box<[String]>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| (0..1024u32).map(|n| n.to_string()).collect());
    match texts.get(n as usize) {
        Some(text) => HeaderValue::from_static(text),
        None => HeaderValue::from(n),
    }
}
