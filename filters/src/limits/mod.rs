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
//! **Budgets** (`budget.rs`) are money per calendar day and month, counted
//! the same way: a request's worst-case cost is reserved at admission and
//! replaced by its real cost when it ends, in the day and month where it
//! was reserved, so requests in flight never overshoot a budget together.
//!
//! The Redis backend (`src/limits/redis.rs`) runs these same rules in one
//! Lua script.

pub mod budget;
pub mod day;
pub mod estimate;
pub mod headers;

use crate::pricing::{Currency, Nanos};
use budget::Budget;
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
    /// Money per day and month. Written beside `limits` in a config or key
    /// (`budget = { daily = 5 }`), so not read from `limits` itself.
    #[serde(skip)]
    pub budget: Budget,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Every limit with its dimension (budgets in nanos).
    pub fn each(&self) -> [(Dimension, Option<u64>); 7] {
        [
            (Dimension::Rpm, self.rpm),
            (Dimension::Tpm, self.tpm),
            (Dimension::Rpd, self.rpd),
            (Dimension::Tpd, self.tpd),
            (Dimension::Concurrency, self.concurrency),
            (Dimension::DailyBudget, self.budget.daily),
            (Dimension::MonthlyBudget, self.budget.monthly),
        ]
    }

    /// Zero (which would refuse everything; disable the key instead) and
    /// absurd values, by field name; the budget's are `Budget::problems`.
    pub fn problems(&self) -> Vec<String> {
        self.each()
            .into_iter()
            .filter(|(d, _)| !d.is_spend())
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

    pub fn has_budget(&self) -> bool {
        !self.budget.is_empty()
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
    /// Money per calendar day.
    DailyBudget,
    /// Money per calendar month.
    MonthlyBudget,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rpm => "rpm",
            Self::Tpm => "tpm",
            Self::Rpd => "rpd",
            Self::Tpd => "tpd",
            Self::Concurrency => "concurrency",
            Self::DailyBudget => "daily_budget",
            Self::MonthlyBudget => "monthly_budget",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Rpm => "requests per minute",
            Self::Tpm => "tokens per minute",
            Self::Rpd => "requests per day",
            Self::Tpd => "tokens per day",
            Self::Concurrency => "requests in flight",
            Self::DailyBudget => "spend per day",
            Self::MonthlyBudget => "spend per month",
        }
    }

    pub fn is_tokens(self) -> bool {
        matches!(self, Self::Tpm | Self::Tpd)
    }

    /// Counted in money (nanos of the budget currency).
    pub fn is_spend(self) -> bool {
        matches!(self, Self::DailyBudget | Self::MonthlyBudget)
    }
}

/// A request turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub scope: Scope,
    /// The key, model or provider name.
    pub subject: String,
    pub dimension: Dimension,
    /// Nanos of `currency` for a budget.
    pub limit: u64,
    /// When it could be admitted; `None` for concurrency (when a request
    /// ends) and for a request larger than the limit itself (never).
    pub retry_after_ms: Option<u64>,
    /// The request alone needs more than the limit.
    pub too_large: bool,
    /// A budget's currency, for the message (the limiter's shell knows it).
    pub currency: Option<Currency>,
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
        if dimension.is_spend() {
            let amount = self
                .currency
                .map_or_else(|| budget::decimal(*limit), |c| budget::money(*limit, c));
            let period = match dimension {
                Dimension::DailyBudget => "daily",
                _ => "monthly",
            };
            if self.too_large {
                return format!(
                    "this request may cost more than the {scope} '{subject}' may spend: its {period} budget is {amount} ({}); lower max_tokens",
                    dimension.describe(),
                    scope = scope.name(),
                );
            }
            return format!(
                "budget reached for {scope} '{subject}': {period} budget {amount} ({})",
                dimension.describe(),
                scope = scope.name(),
            );
        }
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

/// The moment of a check: wall-clock milliseconds, the current day and
/// the current month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub now_ms: u64,
    pub day: day::DaySpan,
    pub month: day::DaySpan,
}

impl Clock {
    pub fn sec(&self) -> u64 {
        self.now_ms / 1000
    }

    fn until_tomorrow(&self) -> u64 {
        self.day.end_ms.saturating_sub(self.now_ms)
    }

    fn until_next_month(&self) -> u64 {
        self.month.end_ms.saturating_sub(self.now_ms)
    }
}

/// What one request reserves, or what it really used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    pub tokens: u64,
    /// Money, in nanos of the budget currency.
    pub spend: Nanos,
}

impl Amounts {
    pub const ZERO: Self = Self {
        tokens: 0,
        spend: 0,
    };
}

/// What one admission holds, to settle it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The second, day and month it was counted in.
    pub sec: u64,
    pub day: i64,
    pub month: i64,
    /// Tokens reserved.
    pub tokens: u64,
    /// Money reserved (counted only by subjects with a budget).
    pub spend: Nanos,
}

impl Ticket {
    pub fn new(clock: &Clock, amounts: Amounts) -> Self {
        Self {
            sec: clock.sec(),
            day: clock.day.id,
            month: clock.month.id,
            tokens: amounts.tokens,
            spend: amounts.spend,
        }
    }

    pub fn reserved(&self) -> Amounts {
        Amounts {
            tokens: self.tokens,
            spend: self.spend,
        }
    }
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

/// A calendar day's (or month's) total.
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

    /// Moves the total by `delta` if it is still the period `id`.
    fn adjust(&mut self, id: i64, delta: i128) {
        if self.day == id {
            self.used = clamp_u64(i128::from(self.used) + delta);
        }
    }
}

/// One subject's counters (a key, a model or a provider).
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub requests: Window,
    pub tokens: Window,
    pub requests_day: DayCount,
    pub tokens_day: DayCount,
    /// Money, counted only while the subject has a budget.
    pub spend_day: DayCount,
    pub spend_month: DayCount,
    pub in_flight: u64,
}

impl Counters {
    fn roll(&mut self, clock: &Clock) {
        self.requests.expire(clock.sec());
        self.tokens.expire(clock.sec());
        self.requests_day.roll(clock.day.id);
        self.tokens_day.roll(clock.day.id);
        self.spend_day.roll(clock.day.id);
        self.spend_month.roll(clock.month.id);
    }

    /// The first limit `amounts` more would break, with when it would not.
    fn check(
        &self,
        limits: &Limits,
        amounts: Amounts,
        clock: &Clock,
    ) -> Option<(Dimension, u64, Option<u64>, bool)> {
        let Amounts { tokens, spend } = amounts;
        let until_tomorrow = clock.until_tomorrow();
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
        let budgets = [
            (
                Dimension::DailyBudget,
                limits.budget.daily,
                &self.spend_day,
                until_tomorrow,
            ),
            (
                Dimension::MonthlyBudget,
                limits.budget.monthly,
                &self.spend_month,
                clock.until_next_month(),
            ),
        ];
        for (dimension, limit, count, until_reset) in budgets {
            if let Some(l) = limit {
                if spend > l {
                    return Some((dimension, l, None, true));
                }
                if count.used.saturating_add(spend) > l {
                    return Some((dimension, l, Some(until_reset), false));
                }
            }
        }
        None
    }

    fn reserve(&mut self, limits: &Limits, amounts: Amounts, clock: &Clock) {
        let Amounts { tokens, spend } = amounts;
        self.requests.add(clock.sec(), 1);
        self.requests_day.used = self.requests_day.used.saturating_add(1);
        // Even zero: settlement finds the bucket to put the real usage in.
        self.tokens.add(clock.sec(), tokens);
        self.tokens_day.used = self.tokens_day.used.saturating_add(tokens);
        // Money only where a budget counts it: a subject without one keeps
        // no totals that a budget added later would wrongly start from.
        if limits.has_budget() {
            self.spend_day.used = self.spend_day.used.saturating_add(spend);
            self.spend_month.used = self.spend_month.used.saturating_add(spend);
        }
        self.in_flight = self.in_flight.saturating_add(1);
    }

    /// Ends an admission: frees its place in flight and replaces the
    /// reserved amounts by `actual` where they were counted. `limits` are
    /// the ones it was admitted under.
    pub fn settle(&mut self, limits: &Limits, ticket: &Ticket, actual: Amounts) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let delta = i128::from(actual.tokens) - i128::from(ticket.tokens);
        if delta != 0 {
            self.tokens.adjust(ticket.sec, delta);
            self.tokens_day.adjust(ticket.day, delta);
        }
        let delta = i128::from(actual.spend) - i128::from(ticket.spend);
        if delta != 0 && limits.has_budget() {
            self.spend_day.adjust(ticket.day, delta);
            self.spend_month.adjust(ticket.month, delta);
        }
    }

    /// Use and remaining per limited dimension, as of `clock`.
    pub fn status(&mut self, limits: &Limits, clock: &Clock) -> Vec<DimensionStatus> {
        self.roll(clock);
        let until_tomorrow = clock.until_tomorrow();
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
                    Dimension::DailyBudget => (self.spend_day.used, until_tomorrow),
                    Dimension::MonthlyBudget => (self.spend_month.used, clock.until_next_month()),
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
pub fn admit(
    subjects: &mut [Subject<'_>],
    amounts: Amounts,
    clock: &Clock,
) -> Result<Ticket, Refusal> {
    for s in subjects.iter_mut() {
        s.counters.roll(clock);
        if let Some((dimension, limit, retry_after_ms, too_large)) =
            s.counters.check(s.limits, amounts, clock)
        {
            return Err(Refusal {
                scope: s.scope,
                subject: s.name.to_owned(),
                dimension,
                limit,
                retry_after_ms,
                too_large,
                currency: None,
            });
        }
    }
    for s in subjects.iter_mut() {
        s.counters.reserve(s.limits, amounts, clock);
    }
    Ok(Ticket::new(clock, amounts))
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
                // Budgets have no header SDKs read.
                Dimension::Concurrency | Dimension::DailyBudget | Dimension::MonthlyBudget => {
                    continue
                }
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
