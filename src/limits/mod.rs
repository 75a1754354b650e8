//! The client limiter's shell: the sans-IO rules of `filters::limits` over
//! this process's counters, or over Redis when gateways share their limits
//! (`[limits] backend = "redis"`). An admission is held by the request
//! record and settled when the request ends — with the real usage, or with
//! what was reserved when the usage is unknown.

pub mod redis;

use crate::config::LimitSettings;
use filters::error::{ApiError, ErrorKind};
use filters::limits::day::{day_of, DaySpan};
use filters::limits::{
    self, Clock, Counters, DimensionStatus, Headroom, Limits, Refusal, Scope, Ticket,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Whose limits one admission checks, with this process's counters for
/// them (the memory backend, and Redis's fallback).
#[derive(Clone)]
pub struct Subject {
    pub scope: Scope,
    pub name: Arc<str>,
    pub limits: Limits,
    pub counters: Arc<Mutex<Counters>>,
}

/// Why a request was not admitted.
#[derive(Debug)]
pub enum Refused {
    Limit(Refusal),
    /// Redis is unreachable and `on_backend_error = "deny"`.
    Backend,
}

/// Shared counters, and what to do while they cannot be reached.
struct Remote {
    redis: redis::RedisLimiter,
    /// Until then (Unix ms), Redis is taken as down and not asked: a dead
    /// server must not cost every request its timeout.
    down_until: AtomicU64,
    /// The last time a failure was logged (Unix ms), to log once a while.
    logged_at: AtomicU64,
}

pub struct Limiter {
    /// Unix milliseconds at `base`, and `base` on tokio's clock: time moves
    /// with tokio's, so paused-time tests can cross a day.
    base_ms: u64,
    base: tokio::time::Instant,
    /// The current day in the current zone, recomputed at its end.
    day: Mutex<(String, DaySpan)>,
    remote: Option<Remote>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::memory()
    }
}

/// How long Redis is left alone after a failed round trip.
const REMOTE_REST: Duration = Duration::from_secs(1);

impl Limiter {
    pub fn memory() -> Self {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self::starting_at(base_ms)
    }

    /// A limiter whose clock reads `base_ms` now (tests).
    pub fn starting_at(base_ms: u64) -> Self {
        Self {
            base_ms,
            base: tokio::time::Instant::now(),
            day: Mutex::new((
                String::new(),
                DaySpan {
                    id: 0,
                    start_ms: 0,
                    end_ms: 0,
                },
            )),
            remote: None,
        }
    }

    pub fn redis(url: &str, timeout: Duration) -> Result<Self, redis::BackendError> {
        let mut l = Self::memory();
        l.remote = Some(Remote {
            redis: redis::RedisLimiter::new(url, timeout)?,
            down_until: AtomicU64::new(0),
            logged_at: AtomicU64::new(0),
        });
        Ok(l)
    }

    pub fn is_shared(&self) -> bool {
        self.remote.is_some()
    }

    /// Now, and the day it falls in under `settings.timezone`.
    pub fn clock(&self, settings: &LimitSettings) -> Clock {
        let now_ms = self.clock_ms();
        let mut day = lock(&self.day);
        if day.0 != settings.timezone_name || !day.1.contains(now_ms) {
            *day = (
                settings.timezone_name.clone(),
                day_of(&settings.timezone, now_ms),
            );
        }
        Clock { now_ms, day: day.1 }
    }

    /// Checks every subject and counts the request in all of them, or in
    /// none. `tokens` is the reservation; `lease` bounds how long a
    /// crashed gateway's place in flight lingers in Redis.
    pub async fn admit(
        self: &Arc<Self>,
        subjects: Vec<Subject>,
        tokens: u64,
        settings: &LimitSettings,
        lease: Duration,
        request_id: &str,
    ) -> Result<Admission, Refused> {
        let clock = self.clock(settings);
        if let Some(remote) = self.remote.as_ref().filter(|r| r.up(clock.now_ms)) {
            let remote_subjects: Vec<redis::RemoteSubject<'_>> = subjects
                .iter()
                .map(|s| redis::RemoteSubject {
                    scope: s.scope,
                    name: &s.name,
                    limits: &s.limits,
                })
                .collect();
            let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
            match remote
                .redis
                .admit(&remote_subjects, tokens, &clock, lease_ms, request_id)
                .await
            {
                Ok(Ok(admitted)) => {
                    let mut headroom = Headroom::default();
                    for (s, statuses) in subjects.iter().zip(&admitted.statuses) {
                        if s.scope != Scope::Provider {
                            headroom.add(statuses);
                        }
                    }
                    return Ok(self.admission(
                        subjects,
                        admitted.ticket,
                        true,
                        headroom,
                        request_id,
                    ));
                }
                Ok(Err(refusal)) => return Err(Refused::Limit(refusal)),
                Err(e) => {
                    remote.failed(clock.now_ms, &e);
                    if !settings.allow_on_backend_error {
                        return Err(Refused::Backend);
                    }
                }
            }
        } else if self.remote.is_some() && !settings.allow_on_backend_error {
            return Err(Refused::Backend);
        }
        self.admit_here(subjects, tokens, &clock, request_id)
    }

    /// The memory backend (and Redis's fallback): the subjects' counters
    /// are locked in the order given — always key, model, provider — so two
    /// requests never wait on each other in a cycle.
    fn admit_here(
        self: &Arc<Self>,
        subjects: Vec<Subject>,
        tokens: u64,
        clock: &Clock,
        request_id: &str,
    ) -> Result<Admission, Refused> {
        let mut guards: Vec<MutexGuard<'_, Counters>> =
            subjects.iter().map(|s| lock(&s.counters)).collect();
        let mut checked: Vec<limits::Subject<'_>> = subjects
            .iter()
            .zip(guards.iter_mut())
            .map(|(s, g)| limits::Subject {
                scope: s.scope,
                name: &s.name,
                limits: &s.limits,
                counters: g,
            })
            .collect();
        let ticket = limits::admit(&mut checked, tokens, clock).map_err(Refused::Limit)?;
        let mut headroom = Headroom::default();
        for s in checked.iter_mut().filter(|s| s.scope != Scope::Provider) {
            headroom.add(&s.counters.status(s.limits, clock));
        }
        drop(checked);
        drop(guards);
        Ok(self.admission(subjects, ticket, false, headroom, request_id))
    }

    fn admission(
        self: &Arc<Self>,
        subjects: Vec<Subject>,
        ticket: Ticket,
        remote: bool,
        headroom: Headroom,
        request_id: &str,
    ) -> Admission {
        Admission {
            limiter: self.clone(),
            subjects,
            ticket,
            remote,
            headroom,
            request_id: request_id.to_owned(),
            settled: false,
        }
    }

    /// One subject's use and remaining per limited dimension.
    pub async fn status(
        &self,
        subject: &Subject,
        settings: &LimitSettings,
    ) -> Vec<DimensionStatus> {
        let clock = self.clock(settings);
        if let Some(remote) = self.remote.as_ref().filter(|r| r.up(clock.now_ms)) {
            let rs = redis::RemoteSubject {
                scope: subject.scope,
                name: &subject.name,
                limits: &subject.limits,
            };
            match remote.redis.status(&rs, &clock).await {
                Ok(s) => return s,
                Err(e) => remote.failed(clock.now_ms, &e),
            }
        }
        lock(&subject.counters).status(&subject.limits, &clock)
    }
}

impl Remote {
    fn up(&self, now_ms: u64) -> bool {
        now_ms >= self.down_until.load(Ordering::Relaxed)
    }

    fn failed(&self, now_ms: u64, e: &redis::BackendError) {
        let rest = u64::try_from(REMOTE_REST.as_millis()).unwrap_or(1000);
        self.down_until
            .store(now_ms.saturating_add(rest), Ordering::Relaxed);
        let last = self.logged_at.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= 30_000
            && self
                .logged_at
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!("limits: the Redis backend failed ({e}); using this gateway's own counters or refusing, as on_backend_error says");
        }
    }
}

/// A request's hold on its limits, until it ends.
pub struct Admission {
    limiter: Arc<Limiter>,
    subjects: Vec<Subject>,
    ticket: Ticket,
    /// Counted in Redis (else here).
    remote: bool,
    /// The key's and the model's tightest limits, for response headers.
    pub headroom: Headroom,
    request_id: String,
    settled: bool,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("ticket", &self.ticket)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// Ends the hold: frees its places in flight and replaces the reserved
    /// tokens by `actual` (`None`: unknown, the reservation stands).
    pub fn settle(mut self, actual: Option<u64>) {
        self.finish(actual);
    }

    fn finish(&mut self, actual: Option<u64>) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let actual = actual.unwrap_or(self.ticket.tokens);
        if !self.remote {
            for s in &self.subjects {
                lock(&s.counters).settle(&self.ticket, actual);
            }
            return;
        }
        if self.limiter.remote.is_none() {
            return;
        }
        // Off the request path; without a runtime (the process is ending)
        // the leases expire by themselves.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let limiter = self.limiter.clone();
        let subjects = std::mem::take(&mut self.subjects);
        let ticket = self.ticket;
        let id = std::mem::take(&mut self.request_id);
        rt.spawn(async move {
            let Some(remote) = limiter.remote.as_ref() else {
                return;
            };
            let rs: Vec<redis::RemoteSubject<'_>> = subjects
                .iter()
                .map(|s| redis::RemoteSubject {
                    scope: s.scope,
                    name: &s.name,
                    limits: &s.limits,
                })
                .collect();
            if let Err(e) = remote.redis.settle(&rs, &ticket, actual, &id).await {
                remote.failed(limiter.clock_ms(), &e);
            }
        });
    }
}

impl Limiter {
    fn clock_ms(&self) -> u64 {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.base);
        self.base_ms
            .saturating_add(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
    }
}

impl Drop for Admission {
    /// A request that ends without settling (cancelled, or a path that
    /// forgot) still frees its places; its reservation stands.
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// Tokens to reserve for a request body of `len` bytes: a UTF-8 byte per
/// token or more in every script (CJK is three bytes and about one token
/// per character), and JSON adds its own, so len / 3 errs high.
pub fn input_estimate(len: usize) -> u64 {
    u64::try_from(len.div_ceil(3)).unwrap_or(u64::MAX)
}

/// A refusal as the client sees it: a 429 naming the limit and its scope,
/// with `Retry-After`. A request larger than a token limit can never pass:
/// SDKs are told not to retry it.
pub fn refusal_error(r: &Refusal) -> ApiError {
    let mut e = ApiError::new(ErrorKind::RateLimited, r.message());
    e.code = Some("rate_limit_exceeded".into());
    if !r.too_large {
        e.retry_after = Some(r.retry_after_secs().to_string());
    }
    e
}

/// Redis is unreachable and `on_backend_error = "deny"`.
pub fn backend_error() -> ApiError {
    let mut e = ApiError::new(
        ErrorKind::Overloaded,
        "rate limits cannot be checked right now (the limiter's backend is unreachable)",
    );
    e.retry_after = Some("1".into());
    e
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
