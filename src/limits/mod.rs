//! The client limiter's shell: the sans-IO rules of `filters::limits` over
//! this process's counters, or over Redis when gateways share their limits
//! (`[limits] backend = "redis"`). An admission is held by the request
//! record and settled when the request ends — with the real usage and
//! cost, or with what was reserved when the usage is unknown.

pub mod redis;

use crate::config::LimitSettings;
use arc_swap::ArcSwap;
use filters::error::{ApiError, ErrorKind};
use filters::limits::budget::Exchange;
use filters::limits::day::{day_of, month_of, DaySpan};
use filters::limits::{
    self, Amounts, Clock, Counters, DimensionStatus, Headroom, Limits, Refusal, Scope, Ticket,
};
use filters::pricing::{Currency, Nanos};
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
    /// Settles that could not reach Redis, replayed once it answers again:
    /// each frees a place in flight that would otherwise linger for its
    /// whole lease. Settling is idempotent (the Lua script adjusts only an
    /// admission still in flight), so a replay never counts twice.
    pending: Mutex<Vec<Settle>>,
    /// Makes each admission's lease id unique, also within one request
    /// (a provider admitted once per upstream call).
    seq: AtomicU64,
}

/// A Redis settle to send (or send again).
struct Settle {
    subjects: Vec<Subject>,
    ticket: Ticket,
    actual: Amounts,
    id: String,
}

/// What a request really used, to settle its holds with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    pub tokens: u64,
    /// What it cost in its price's currency; `None`: an unpriced model,
    /// which costs nothing.
    pub cost: Option<(Nanos, Currency)>,
}

impl Used {
    /// An upstream call that failed: counted as a request, nothing more.
    pub const NOTHING: Self = Self {
        tokens: 0,
        cost: None,
    };
}

/// What a request reserves at admission: tokens for every subject, and
/// the worst-case spend (in the budget currency) for subjects with a
/// budget — the route's dearest target for the key and the model, each
/// target's own for its provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reserve {
    pub tokens: u64,
    /// For the key's and the model's budgets.
    pub spend: Nanos,
    /// Target slot → worst case at that target's price, for providers
    /// with a budget.
    pub provider_spend: Vec<(usize, Nanos)>,
}

impl Reserve {
    /// What a provider's hold reserves when `slot` serves.
    pub fn for_provider(&self, slot: usize) -> Amounts {
        Amounts {
            tokens: self.tokens,
            spend: self
                .provider_spend
                .iter()
                .find(|(s, _)| *s == slot)
                .map_or(0, |(_, n)| *n),
        }
    }
}

/// At most this many settles wait for Redis; past it the oldest leases
/// are left to expire by themselves.
const MAX_PENDING: usize = 10_000;

/// Where the limiter's time comes from.
enum TimeSource {
    /// The wall clock: windows and days follow it, as every replica's does.
    System,
    /// `base_ms` at `base`, moving with tokio's clock (paused-time tests).
    #[cfg(test)]
    Tokio {
        base_ms: u64,
        base: tokio::time::Instant,
    },
}

pub struct Limiter {
    time: TimeSource,
    /// The current day and month in the current zone, recomputed at the
    /// day's end; read without a lock shared by the workers.
    day: ArcSwap<(String, DaySpan, DaySpan)>,
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
        Self::with_time(TimeSource::System)
    }

    /// A limiter whose clock reads `base_ms` now and moves with tokio's
    /// (tests under paused time).
    #[cfg(test)]
    pub fn starting_at(base_ms: u64) -> Self {
        Self::with_time(TimeSource::Tokio {
            base_ms,
            base: tokio::time::Instant::now(),
        })
    }

    fn with_time(time: TimeSource) -> Self {
        let nowhere = DaySpan {
            id: 0,
            start_ms: 0,
            end_ms: 0,
        };
        Self {
            time,
            day: ArcSwap::from_pointee((String::new(), nowhere, nowhere)),
            remote: None,
        }
    }

    pub fn redis(url: &str, timeout: Duration) -> Result<Self, redis::BackendError> {
        let mut l = Self::memory();
        l.remote = Some(Remote {
            redis: redis::RedisLimiter::new(url, timeout)?,
            down_until: AtomicU64::new(0),
            logged_at: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
        });
        Ok(l)
    }

    pub fn is_shared(&self) -> bool {
        self.remote.is_some()
    }

    /// The shared Redis, for state kept beside the limits (session
    /// affinity); `None` with the memory backend or while Redis rests
    /// after a failed round trip.
    pub fn shared_redis(&self) -> Option<&redis::RedisLimiter> {
        let remote = self.remote.as_ref()?;
        remote.up(self.now_ms()).then_some(&remote.redis)
    }

    fn now_ms(&self) -> u64 {
        match &self.time {
            TimeSource::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            #[cfg(test)]
            TimeSource::Tokio { base_ms, base } => {
                let elapsed = tokio::time::Instant::now().saturating_duration_since(*base);
                base_ms.saturating_add(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
            }
        }
    }

    /// Now, and the day and month it falls in under `settings.timezone`.
    pub fn clock(&self, settings: &LimitSettings) -> Clock {
        let now_ms = self.now_ms();
        let cached = self.day.load();
        // A day lies inside its month: while the day holds, so does the month.
        if cached.0 == settings.timezone_name && cached.1.contains(now_ms) {
            return Clock {
                now_ms,
                day: cached.1,
                month: cached.2,
            };
        }
        let day = day_of(&settings.timezone, now_ms);
        let month = month_of(&settings.timezone, now_ms);
        self.day
            .store(Arc::new((settings.timezone_name.clone(), day, month)));
        Clock { now_ms, day, month }
    }

    /// Checks every subject and counts the request in all of them, or in
    /// none. `amounts` is the reservation; `lease` bounds how long a
    /// crashed gateway's place in flight lingers in Redis.
    pub async fn admit(
        self: &Arc<Self>,
        subjects: Vec<Subject>,
        amounts: Amounts,
        settings: &LimitSettings,
        lease: Duration,
        request_id: &str,
    ) -> Result<Admission, Refused> {
        let mut admitted = self
            .admit_anywhere(subjects, amounts, settings, lease, request_id)
            .await;
        if let Err(Refused::Limit(r)) = &mut admitted {
            if r.dimension.is_spend() {
                r.currency = Some(settings.budgets.currency);
            }
        }
        admitted
    }

    async fn admit_anywhere(
        self: &Arc<Self>,
        subjects: Vec<Subject>,
        amounts: Amounts,
        settings: &LimitSettings,
        lease: Duration,
        request_id: &str,
    ) -> Result<Admission, Refused> {
        let clock = self.clock(settings);
        let exchange = settings.budgets.clone();
        if let Some(remote) = self.remote.as_ref().filter(|r| r.up(clock.now_ms)) {
            let id = format!(
                "{request_id}.{}",
                remote.seq.fetch_add(1, Ordering::Relaxed)
            );
            let remote_subjects: Vec<redis::RemoteSubject<'_>> =
                subjects.iter().map(Subject::remote).collect();
            let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
            match remote
                .redis
                .admit(&remote_subjects, amounts, &clock, lease_ms, &id)
                .await
            {
                Ok(Ok(admitted)) => {
                    drop(remote_subjects);
                    self.replay_pending();
                    let mut headroom = Headroom::default();
                    for (s, statuses) in subjects.iter().zip(&admitted.statuses) {
                        if s.scope != Scope::Provider {
                            headroom.add(statuses);
                        }
                    }
                    return Ok(self.admission(
                        subjects,
                        admitted.ticket,
                        Some(id),
                        headroom,
                        clock.now_ms,
                        exchange,
                    ));
                }
                Ok(Err(refusal)) => return Err(Refused::Limit(refusal)),
                Err(e) => {
                    drop(remote_subjects);
                    remote.failed(clock.now_ms, &e);
                    // The script may have run and the answer been lost:
                    // release what it would have held (a no-op if it
                    // never ran), once Redis answers again.
                    remote.queue(Settle {
                        subjects: subjects.clone(),
                        ticket: Ticket::new(&clock, amounts),
                        actual: Amounts::ZERO,
                        id,
                    });
                    if !settings.allow_on_backend_error {
                        return Err(Refused::Backend);
                    }
                }
            }
        } else if self.remote.is_some() && !settings.allow_on_backend_error {
            return Err(Refused::Backend);
        }
        self.admit_here(subjects, amounts, &clock, exchange)
    }

    /// The memory backend (and Redis's fallback): the subjects' counters
    /// are locked in the order given — always key, model, provider — so two
    /// requests never wait on each other in a cycle.
    fn admit_here(
        self: &Arc<Self>,
        subjects: Vec<Subject>,
        amounts: Amounts,
        clock: &Clock,
        exchange: Arc<Exchange>,
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
        let ticket = limits::admit(&mut checked, amounts, clock).map_err(Refused::Limit)?;
        let mut headroom = Headroom::default();
        for s in checked.iter_mut().filter(|s| s.scope != Scope::Provider) {
            headroom.add(&s.counters.status(s.limits, clock));
        }
        drop(checked);
        drop(guards);
        Ok(self.admission(subjects, ticket, None, headroom, clock.now_ms, exchange))
    }

    fn admission(
        self: &Arc<Self>,
        subjects: Vec<Subject>,
        ticket: Ticket,
        remote_id: Option<String>,
        headroom: Headroom,
        at_ms: u64,
        exchange: Arc<Exchange>,
    ) -> Admission {
        Admission {
            limiter: self.clone(),
            subjects,
            ticket,
            remote_id,
            headroom,
            at_ms,
            exchange,
            settled: false,
        }
    }

    /// Sends the settles Redis missed, in the background.
    fn replay_pending(self: &Arc<Self>) {
        let Some(remote) = &self.remote else {
            return;
        };
        let batch = std::mem::take(&mut *lock(&remote.pending));
        if batch.is_empty() {
            return;
        }
        let limiter = self.clone();
        tokio::spawn(async move {
            for s in batch {
                limiter.settle_remote(s).await;
            }
        });
    }

    /// One Redis settle; queued again if Redis does not take it.
    async fn settle_remote(&self, s: Settle) {
        let Some(remote) = &self.remote else {
            return;
        };
        let rs: Vec<redis::RemoteSubject<'_>> = s.subjects.iter().map(Subject::remote).collect();
        let result = remote.redis.settle(&rs, &s.ticket, s.actual, &s.id).await;
        drop(rs);
        if let Err(e) = result {
            remote.failed(self.now_ms(), &e);
            remote.queue(s);
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
            match remote.redis.status(&subject.remote(), &clock).await {
                Ok(s) => return s,
                Err(e) => remote.failed(clock.now_ms, &e),
            }
        }
        lock(&subject.counters).status(&subject.limits, &clock)
    }
}

impl Subject {
    fn remote(&self) -> redis::RemoteSubject<'_> {
        redis::RemoteSubject {
            scope: self.scope,
            name: &self.name,
            limits: &self.limits,
        }
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

    fn queue(&self, s: Settle) {
        let mut pending = lock(&self.pending);
        if pending.len() >= MAX_PENDING {
            pending.remove(0);
        }
        pending.push(s);
    }
}

/// A request's hold on its limits, until it ends.
pub struct Admission {
    limiter: Arc<Limiter>,
    subjects: Vec<Subject>,
    ticket: Ticket,
    /// Counted in Redis under this lease id (else here).
    remote_id: Option<String>,
    /// The key's and the model's tightest limits, for response headers.
    pub headroom: Headroom,
    /// When it was admitted (Unix ms): where the headers' resets count from.
    pub at_ms: u64,
    /// The budget currency and rates it was admitted under: the real cost
    /// is counted in the currency the reservation was.
    exchange: Arc<Exchange>,
    settled: bool,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("ticket", &self.ticket)
            .field("remote", &self.remote_id.is_some())
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// The amounts held.
    #[cfg(test)]
    pub fn reserved(&self) -> Amounts {
        self.ticket.reserved()
    }

    /// Ends the hold: frees its places in flight and replaces the reserved
    /// tokens and spend by `actual` (`None`: unknown, the reservation
    /// stands). A cost in a currency without a rate (the config changed
    /// since admission) keeps the reserved spend. A Redis hold is settled
    /// before this returns (bounded by `redis_timeout`), so the client's
    /// next request finds its place free.
    pub async fn release(mut self, actual: Option<Used>) {
        self.settled = true;
        let actual = actual.map_or(self.ticket.reserved(), |u| Amounts {
            tokens: u.tokens,
            spend: u
                .cost
                .map_or(Ok(0), |(n, c)| self.exchange.nearest(n, c))
                .unwrap_or(self.ticket.spend),
        });
        match self.remote_id.take() {
            None => self.settle_here(actual),
            Some(id) => {
                let s = Settle {
                    subjects: std::mem::take(&mut self.subjects),
                    ticket: self.ticket,
                    actual,
                    id,
                };
                self.limiter.settle_remote(s).await;
            }
        }
    }

    fn settle_here(&self, actual: Amounts) {
        for s in &self.subjects {
            lock(&s.counters).settle(&s.limits, &self.ticket, actual);
        }
    }
}

impl Drop for Admission {
    /// A hold dropped without `release` (a request cancelled mid-way)
    /// still frees its places; its reservation stands.
    fn drop(&mut self) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let actual = self.ticket.reserved();
        let Some(id) = self.remote_id.take() else {
            self.settle_here(actual);
            return;
        };
        let s = Settle {
            subjects: std::mem::take(&mut self.subjects),
            ticket: self.ticket,
            actual,
            id,
        };
        let limiter = self.limiter.clone();
        // Without a runtime (the process is ending) the lease expires by itself.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { limiter.settle_remote(s).await });
        }
    }
}

/// A refusal as the client sees it: a 429 naming the limit and its scope,
/// with `Retry-After`. A request larger than a token limit can never pass:
/// SDKs are told not to retry it (`x-should-retry: false`); nor to retry
/// a spent budget within seconds (it comes back when its day or month
/// ends, which `Retry-After` says).
pub fn refusal_error(r: &Refusal) -> ApiError {
    let mut e = ApiError::new(ErrorKind::RateLimited, r.message());
    let spend = r.dimension.is_spend();
    e.code = Some(
        if spend {
            "budget_exceeded"
        } else {
            "rate_limit_exceeded"
        }
        .into(),
    );
    if r.too_large {
        e.final_answer = true;
    } else {
        e.retry_after = Some(r.retry_after_secs().to_string());
        e.final_answer = spend;
    }
    e
}

/// A request that a budget must count, priced in a currency the budget
/// currency has no rate for: refused rather than let through uncounted.
pub fn no_rate_error(
    scope: Scope,
    subject: &str,
    model: &str,
    e: filters::limits::budget::NoRate,
) -> ApiError {
    let mut err = ApiError::new(
        ErrorKind::Api,
        format!(
            "the budget of {} '{subject}' cannot count upstream model '{model}': {e}",
            scope.name()
        ),
    )
    .with_status(500);
    err.final_answer = true;
    err
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
