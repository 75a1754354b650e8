//! Client-side limits as a sans-IO state machine: requests and tokens per
//! minute and per day, requests in flight — for a key, a model or a
//! provider. Time is passed in; nothing here blocks or reads a clock.
//!
//! **Exact, never over.** A minute is a sliding window of one-second
//! buckets, and an admission counts as if made at the *end* of its second:
//! it stays in the window up to a second longer than 60 s, never shorter,
//! so no 60-second span ever holds more than the limit. A day is a calendar
//! day in the configured time zone (`day.rs`).
//!
//! **Reserve, then settle.** Tokens are reserved at admission (estimated
//! input + the request's output cap) and settled to the real usage when the
//! response ends, in the bucket and day where they were reserved, so
//! requests in flight can never overshoot `tpm` together.
//!
//! The Redis backend (`src/limits/redis.rs`) runs these same rules in one
//! Lua script; a budget (money per day or month) is one more dimension.

pub mod day;
pub mod estimate;
pub mod headers;

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The largest limit accepted: far above any real quota, far below where
/// sums could overflow.
pub const MAX_LIMIT: u64 = 1_000_000_000_000;

/// Limits of one key, model or provider; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests per minute (`rate_limit`, as earlier systems called it).
    #[serde(default, alias = "rate_limit", skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens (input + output) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Requests per day (`daily_limit`).
    #[serde(
        default,
        alias = "daily_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub rpd: Option<u64>,
    /// Tokens per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpd: Option<u64>,
    /// Requests in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Every limit with its dimension.
    pub fn each(&self) -> [(Dimension, Option<u64>); 5] {
        [
            (Dimension::Rpm, self.rpm),
            (Dimension::Tpm, self.tpm),
            (Dimension::Rpd, self.rpd),
            (Dimension::Tpd, self.tpd),
            (Dimension::Concurrency, self.concurrency),
        ]
    }

    /// Zero (which would refuse everything; disable the key instead) and
    /// absurd values, by field name.
    pub fn problems(&self) -> Vec<String> {
        self.each()
            .into_iter()
            .filter_map(|(d, v)| match v {
                Some(0) => Some(format!(
                    "{}: must be at least 1 (leave it out for no limit)",
                    d.name()
                )),
                Some(n) if n > MAX_LIMIT => Some(format!("{}: at most {MAX_LIMIT}", d.name())),
                _ => None,
            })
            .collect()
    }

    pub fn uses_tokens(&self) -> bool {
        self.tpm.is_some() || self.tpd.is_some()
    }
}

/// Whose limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Key,
    Model,
    Provider,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Model => "model",
            Self::Provider => "provider",
        }
    }

    /// The letter in a backend's counter names.
    pub fn tag(self) -> char {
        match self {
            Self::Key => 'k',
            Self::Model => 'm',
            Self::Provider => 'p',
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Rpm,
    Tpm,
    Rpd,
    Tpd,
    Concurrency,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rpm => "rpm",
            Self::Tpm => "tpm",
            Self::Rpd => "rpd",
            Self::Tpd => "tpd",
            Self::Concurrency => "concurrency",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Rpm => "requests per minute",
            Self::Tpm => "tokens per minute",
            Self::Rpd => "requests per day",
            Self::Tpd => "tokens per day",
            Self::Concurrency => "requests in flight",
        }
    }

    pub fn is_tokens(self) -> bool {
        matches!(self, Self::Tpm | Self::Tpd)
    }
}

/// A request turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub scope: Scope,
    /// The key, model or provider name.
    pub subject: String,
    pub dimension: Dimension,
    pub limit: u64,
    /// When it could be admitted; `None` for concurrency (when a request
    /// ends) and for a request larger than the limit itself (never).
    pub retry_after_ms: Option<u64>,
    /// The request alone needs more than the limit.
    pub too_large: bool,
}

impl Refusal {
    /// The client-facing explanation; names the limit and its scope.
    pub fn message(&self) -> String {
        let Self {
            scope,
            subject,
            dimension,
            limit,
            ..
        } = self;
        if self.too_large {
            return format!(
                "this request needs more tokens than the {scope} '{subject}' may use: its {} limit is {limit} ({}); lower max_tokens",
                dimension.name(),
                dimension.describe(),
                scope = scope.name(),
            );
        }
        format!(
            "rate limit reached for {scope} '{subject}': {} = {limit} ({})",
            dimension.name(),
            dimension.describe(),
            scope = scope.name(),
        )
    }

    /// Whole seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_ms.unwrap_or(1000).div_ceil(1000).max(1)
    }
}

/// The moment of a check: wall-clock milliseconds and the current day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub now_ms: u64,
    pub day: day::DaySpan,
}

impl Clock {
    pub fn sec(&self) -> u64 {
        self.now_ms / 1000
    }
}

/// What one admission holds, to settle it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The second and day it was counted in.
    pub sec: u64,
    pub day: i64,
    /// Tokens reserved.
    pub tokens: u64,
}

/// A window holds an admission this many seconds after its second starts.
const LIVE_SECS: u64 = 61;

/// Amounts by second over the last minute.
#[derive(Debug, Clone, Default)]
pub struct Window {
    buckets: VecDeque<(u64, u64)>,
    total: u64,
}

impl Window {
    fn expire(&mut self, now_sec: u64) {
        while let Some(&(sec, amount)) = self.buckets.front() {
            if now_sec < sec.saturating_add(LIVE_SECS) {
                break;
            }
            self.total = self.total.saturating_sub(amount);
            self.buckets.pop_front();
        }
    }

    fn add(&mut self, sec: u64, amount: u64) {
        match self.buckets.back_mut() {
            Some((s, a)) if *s == sec => *a = a.saturating_add(amount),
            _ => self.buckets.push_back((sec, amount)),
        }
        self.total = self.total.saturating_add(amount);
    }

    /// Moves the amount counted at `sec` by `delta` (gone: nothing to move).
    fn adjust(&mut self, sec: u64, delta: i128) {
        if let Some((_, a)) = self.buckets.iter_mut().rev().find(|(s, _)| *s == sec) {
            let new = clamp_u64(i128::from(*a) + delta);
            self.total = clamp_u64(i128::from(self.total) - i128::from(*a) + i128::from(new));
            *a = new;
        }
    }

    pub fn used(&self) -> u64 {
        self.total
    }

    /// Milliseconds until `need` more fits under `limit`.
    fn wait_for(&self, now_ms: u64, need: u64, limit: u64) -> u64 {
        let mut held = self.total;
        for &(sec, amount) in &self.buckets {
            held = held.saturating_sub(amount);
            if held.saturating_add(need) <= limit {
                return expiry_ms(sec).saturating_sub(now_ms);
            }
        }
        0
    }

    /// Milliseconds until the window is empty.
    fn reset_ms(&self, now_ms: u64) -> u64 {
        self.buckets
            .back()
            .map_or(0, |&(sec, _)| expiry_ms(sec).saturating_sub(now_ms))
    }
}

fn expiry_ms(sec: u64) -> u64 {
    sec.saturating_add(LIVE_SECS).saturating_mul(1000)
}

fn clamp_u64(v: i128) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

/// A calendar day's total.
#[derive(Debug, Clone, Copy, Default)]
pub struct DayCount {
    day: i64,
    used: u64,
}

impl DayCount {
    fn roll(&mut self, day: i64) {
        if self.day != day {
            *self = Self { day, used: 0 };
        }
    }

    pub fn used(&self) -> u64 {
        self.used
    }
}

/// One subject's counters (a key, a model or a provider).
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub requests: Window,
    pub tokens: Window,
    pub requests_day: DayCount,
    pub tokens_day: DayCount,
    pub in_flight: u64,
}

impl Counters {
    fn roll(&mut self, clock: &Clock) {
        self.requests.expire(clock.sec());
        self.tokens.expire(clock.sec());
        self.requests_day.roll(clock.day.id);
        self.tokens_day.roll(clock.day.id);
    }

    /// The first limit `tokens` more would break, with when it would not.
    fn check(
        &self,
        limits: &Limits,
        tokens: u64,
        clock: &Clock,
    ) -> Option<(Dimension, u64, Option<u64>, bool)> {
        let until_tomorrow = clock.day.end_ms.saturating_sub(clock.now_ms);
        if let Some(l) = limits.concurrency {
            if self.in_flight >= l {
                return Some((Dimension::Concurrency, l, None, false));
            }
        }
        if let Some(l) = limits.rpm {
            if self.requests.used() >= l {
                let wait = self.requests.wait_for(clock.now_ms, 1, l);
                return Some((Dimension::Rpm, l, Some(wait), false));
            }
        }
        if let Some(l) = limits.rpd {
            if self.requests_day.used >= l {
                return Some((Dimension::Rpd, l, Some(until_tomorrow), false));
            }
        }
        if let Some(l) = limits.tpm {
            if tokens > l {
                return Some((Dimension::Tpm, l, None, true));
            }
            if self.tokens.used().saturating_add(tokens) > l {
                let wait = self.tokens.wait_for(clock.now_ms, tokens, l);
                return Some((Dimension::Tpm, l, Some(wait), false));
            }
        }
        if let Some(l) = limits.tpd {
            if tokens > l {
                return Some((Dimension::Tpd, l, None, true));
            }
            if self.tokens_day.used.saturating_add(tokens) > l {
                return Some((Dimension::Tpd, l, Some(until_tomorrow), false));
            }
        }
        None
    }

    fn reserve(&mut self, tokens: u64, clock: &Clock) {
        self.requests.add(clock.sec(), 1);
        self.requests_day.used = self.requests_day.used.saturating_add(1);
        // Even zero: settlement finds the bucket to put the real usage in.
        self.tokens.add(clock.sec(), tokens);
        self.tokens_day.used = self.tokens_day.used.saturating_add(tokens);
        self.in_flight = self.in_flight.saturating_add(1);
    }

    /// Ends an admission: frees its place in flight and replaces the
    /// reserved tokens by `actual` where they were counted.
    pub fn settle(&mut self, ticket: &Ticket, actual: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let delta = i128::from(actual) - i128::from(ticket.tokens);
        if delta == 0 {
            return;
        }
        self.tokens.adjust(ticket.sec, delta);
        if self.tokens_day.day == ticket.day {
            self.tokens_day.used = clamp_u64(i128::from(self.tokens_day.used) + delta);
        }
    }

    /// Use and remaining per limited dimension, as of `clock`.
    pub fn status(&mut self, limits: &Limits, clock: &Clock) -> Vec<DimensionStatus> {
        self.roll(clock);
        let until_tomorrow = clock.day.end_ms.saturating_sub(clock.now_ms);
        limits
            .each()
            .into_iter()
            .filter_map(|(d, limit)| {
                let limit = limit?;
                let (used, reset_ms) = match d {
                    Dimension::Rpm => (self.requests.used(), self.requests.reset_ms(clock.now_ms)),
                    Dimension::Tpm => (self.tokens.used(), self.tokens.reset_ms(clock.now_ms)),
                    Dimension::Rpd => (self.requests_day.used, until_tomorrow),
                    Dimension::Tpd => (self.tokens_day.used, until_tomorrow),
                    Dimension::Concurrency => (self.in_flight, 0),
                };
                Some(DimensionStatus {
                    dimension: d,
                    limit,
                    used,
                    remaining: limit.saturating_sub(used),
                    reset_ms,
                })
            })
            .collect()
    }
}

/// One limit's state, for headers and `GET /api/keys/{name}/limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DimensionStatus {
    pub dimension: Dimension,
    pub limit: u64,
    pub used: u64,
    pub remaining: u64,
    /// Until the dimension is back to its full limit.
    pub reset_ms: u64,
}

/// One subject of a check: whose limits and counters.
pub struct Subject<'a> {
    pub scope: Scope,
    pub name: &'a str,
    pub limits: &'a Limits,
    pub counters: &'a mut Counters,
}

/// Checks every subject and, only if all admit, counts the request in
/// each: all or nothing, so a refusal by one limit never uses another's.
pub fn admit(subjects: &mut [Subject<'_>], tokens: u64, clock: &Clock) -> Result<Ticket, Refusal> {
    for s in subjects.iter_mut() {
        s.counters.roll(clock);
        if let Some((dimension, limit, retry_after_ms, too_large)) =
            s.counters.check(s.limits, tokens, clock)
        {
            return Err(Refusal {
                scope: s.scope,
                subject: s.name.to_owned(),
                dimension,
                limit,
                retry_after_ms,
                too_large,
            });
        }
    }
    for s in subjects.iter_mut() {
        s.counters.reserve(tokens, clock);
    }
    Ok(Ticket {
        sec: clock.sec(),
        day: clock.day.id,
        tokens,
    })
}

/// The request and token figures a client's SDK reads: the tightest of
/// the given statuses per kind (least remaining).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Headroom {
    pub requests: Option<DimensionStatus>,
    pub tokens: Option<DimensionStatus>,
}

impl Headroom {
    pub fn add(&mut self, statuses: &[DimensionStatus]) {
        for s in statuses {
            let slot = match s.dimension {
                Dimension::Rpm | Dimension::Rpd => &mut self.requests,
                Dimension::Tpm | Dimension::Tpd => &mut self.tokens,
                Dimension::Concurrency => continue,
            };
            if slot.is_none_or(|cur| s.remaining < cur.remaining) {
                *slot = Some(*s);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }

    /// What a refusal leaves: nothing of its dimension until it resets.
    pub fn exhausted(r: &Refusal) -> Self {
        let status = DimensionStatus {
            dimension: r.dimension,
            limit: r.limit,
            used: r.limit,
            remaining: 0,
            reset_ms: r.retry_after_ms.unwrap_or(0),
        };
        let mut h = Self::default();
        h.add(&[status]);
        h
    }
}

/// The tokens to reserve for a request: its estimated input and the most
/// it may produce.
pub fn reservation(input_estimate: u64, max_output: u64) -> u64 {
    input_estimate.saturating_add(max_output)
}

#[cfg(test)]
mod tests;
