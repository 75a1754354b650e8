//! The client limiter's Redis backend: `filters::limits`' rules (an exact
//! sliding minute of one-second buckets, calendar days, reserve then
//! settle, requests in flight), run atomically by one Lua script per call
//! — one round trip — so every gateway replica shares the same counters.
//!
//! Keys, per subject, under `ms:lim:{scope tag}:{name}:`:
//! - `rm`, `tm`: hash second → requests, tokens admitted in it; buckets past
//!   the window are dropped at each admission (at most 61 fields), and the
//!   hash vanishes two minutes after its last admission;
//! - `d:{day id}`: hash `r`, `t`, the day's requests and tokens, and `s`,
//!   its spend (nanos) for a subject with a budget; kept until a day after
//!   the day ends;
//! - `mo:{month id}`: hash `s`, the month's spend, for a subject with a
//!   budget; kept until a day after the month ends;
//! - `c`: sorted set of requests in flight, request id → end of its lease
//!   (ms), so a gateway that dies mid-request frees its places by itself.
//!
//! Spend is added by `HINCRBY`, exact in Redis's 64-bit integers; the
//! script compares it in Lua numbers (doubles), exact to the nano up to
//! 2^53 nanos (some 9 million currency units) and within a few parts in
//! 10^16 beyond.
//!
//! Time is the caller's [`Clock`], never Redis's `TIME`: days follow the
//! configured time zone, and tests can fix the clock. Keys of several
//! subjects meet in one script, so a Redis Cluster is not supported (one
//! primary, with replicas for failover, is).

use filters::limits::budget::MAX_BUDGET;
use filters::limits::{Amounts, Clock, Dimension, DimensionStatus, Limits, Refusal, Scope, Ticket};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script, ScriptInvocation};
use std::fmt;
use std::time::Duration;
use tokio::sync::OnceCell;

const KEY_PREFIX: &str = "ms:lim";

/// Counts beyond any real quota are cut here: Lua numbers are doubles,
/// exact up to 2^53, and every limit is at most `MAX_LIMIT` (10^12), so
/// no decision changes.
const MAX_COUNT: u64 = 1_000_000_000_000_000;

/// A day's totals outlive its end by a day, for settlements of requests
/// that run past midnight (they change nothing visible, but find the day).
const DAY_GRACE_MS: u64 = 86_400_000;

/// Money amounts are cut here: twice the largest budget, so a worst case
/// above any budget stays above it, and sums stay inside 64 bits.
const MAX_SPEND: u64 = 2 * MAX_BUDGET;

/// The numbers the status script returns per subject.
const COUNTS_LEN: usize = 9;

/// The shared Redis limiter. Cheap to share behind an `Arc`; calls from
/// any number of tasks go over one multiplexed connection.
pub struct RedisLimiter {
    client: redis::Client,
    /// Made on first use, inside the runtime that will drive it.
    connection: OnceCell<ConnectionManager>,
    timeout: Duration,
    /// The URL without credentials or query, for messages.
    target: String,
    /// Scrubbed from every message should a driver error ever echo them.
    secrets: Vec<String>,
    admit_script: Script,
    settle_script: Script,
    status_script: Script,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One subject of a check: whose limits; its counters live in Redis.
#[derive(Debug, Clone, Copy)]
pub struct RemoteSubject<'a> {
    pub scope: Scope,
    pub name: &'a str,
    pub limits: &'a Limits,
}

/// Redis unreachable, too slow or answering nonsense. The message names
/// the server without its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError(pub String);

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

/// An admission: the ticket to settle, and each subject's state after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub ticket: Ticket,
    /// `statuses[i]`: subject `i`'s limited dimensions, as `status` gives them.
    pub statuses: Vec<Vec<DimensionStatus>>,
}

impl RedisLimiter {
    /// Connects lazily (first use) and reconnects by itself (ConnectionManager); `timeout` bounds every round trip.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, BackendError> {
        let target = redact(url);
        let mut secrets = raw_secrets(url);
        let client = redis::Client::open(url)
            .map_err(|e| BackendError(scrub(&format!("limits backend {target}: {e}"), &secrets)))?;
        if let Some(p) = client.get_connection_info().redis_settings().password() {
            secrets.push(p.to_owned());
        }
        secrets.retain(|s| !s.is_empty());
        Ok(Self {
            client,
            connection: OnceCell::new(),
            timeout,
            target,
            secrets,
            admit_script: Script::new(concat!(
                include_str!("redis/prelude.lua"),
                include_str!("redis/admit.lua")
            )),
            settle_script: Script::new(concat!(
                include_str!("redis/prelude.lua"),
                include_str!("redis/settle.lua")
            )),
            status_script: Script::new(concat!(
                include_str!("redis/prelude.lua"),
                include_str!("redis/status.lua")
            )),
        })
    }

    /// One round trip: EVALSHA of the admission script (on NOSCRIPT, as
    /// after a server restart, redis::Script loads it and runs it again).
    ///
    /// A reply lost to the timeout may still have counted the request; its
    /// place in flight then ends with `lease_ms`. `request_id` must be
    /// unique among requests in flight.
    pub async fn admit(
        &self,
        subjects: &[RemoteSubject<'_>],
        amounts: Amounts,
        clock: &Clock,
        lease_ms: u64,
        request_id: &str,
    ) -> Result<Result<Admitted, Refusal>, BackendError> {
        let ticket = Ticket::new(clock, amounts);
        if subjects.is_empty() {
            return Ok(Ok(Admitted {
                ticket,
                statuses: Vec::new(),
            }));
        }
        let until_tomorrow = clock.day.end_ms.saturating_sub(clock.now_ms);
        let until_next_month = clock.month.end_ms.saturating_sub(clock.now_ms);
        let mut call = self.admit_script.prepare_invoke();
        for s in subjects {
            call.key(key(s, "rm"))
                .key(key(s, "tm"))
                .key(day_key(s, clock.day.id))
                .key(key(s, "c"))
                .key(month_key(s, clock.month.id));
        }
        call.arg(clock.now_ms.min(MAX_COUNT))
            .arg(clock.sec().min(MAX_COUNT))
            .arg(amounts.tokens.min(MAX_COUNT))
            .arg(until_tomorrow.min(MAX_COUNT))
            .arg(lease_ms.min(MAX_COUNT))
            .arg(request_id)
            .arg(until_tomorrow.saturating_add(DAY_GRACE_MS).min(MAX_COUNT))
            .arg(amounts.spend.min(MAX_SPEND))
            .arg(until_next_month.min(MAX_COUNT))
            .arg(until_next_month.saturating_add(DAY_GRACE_MS).min(MAX_COUNT));
        for s in subjects {
            for (dimension, limit) in s.limits.each() {
                let most = if dimension.is_spend() {
                    MAX_SPEND
                } else {
                    MAX_COUNT
                };
                call.arg(limit.map_or(-1, |l| i64::try_from(l.min(most)).unwrap_or(-1)));
            }
        }
        let reply: Vec<i64> = self.run("admit", &call).await?;
        match reply.first() {
            Some(0) => self.refusal(subjects, &reply).map(Err),
            Some(1) => {
                let counts = reply.get(1..).unwrap_or_default();
                if counts.len() != COUNTS_LEN * subjects.len() {
                    return Err(self.unexpected("admit"));
                }
                let statuses = subjects
                    .iter()
                    .zip(counts.chunks_exact(COUNTS_LEN))
                    .map(|(s, c)| statuses(s.limits, &Counts::from_reply(c), clock))
                    .collect();
                Ok(Ok(Admitted { ticket, statuses }))
            }
            _ => Err(self.unexpected("admit")),
        }
    }

    /// Ends an admission: replaces the reserved tokens and spend by
    /// `actual` in the second, day and month they were counted in, and
    /// frees the place in flight.
    pub async fn settle(
        &self,
        subjects: &[RemoteSubject<'_>],
        ticket: &Ticket,
        actual: Amounts,
        request_id: &str,
    ) -> Result<(), BackendError> {
        if subjects.is_empty() {
            return Ok(());
        }
        let delta =
            i128::from(actual.tokens.min(MAX_COUNT)) - i128::from(ticket.tokens.min(MAX_COUNT));
        let spent =
            i128::from(actual.spend.min(MAX_SPEND)) - i128::from(ticket.spend.min(MAX_SPEND));
        let mut call = self.settle_script.prepare_invoke();
        for s in subjects {
            call.key(key(s, "tm"))
                .key(day_key(s, ticket.day))
                .key(key(s, "c"))
                .key(month_key(s, ticket.month));
        }
        // Both ends are under MAX_COUNT (MAX_SPEND), so the differences
        // fit an i64.
        call.arg(ticket.sec.min(MAX_COUNT))
            .arg(i64::try_from(delta).unwrap_or(0))
            .arg(request_id)
            .arg(i64::try_from(spent).unwrap_or(0));
        let _: i64 = self.run("settle", &call).await?;
        Ok(())
    }

    /// Use and remaining per limited dimension, as of `clock`.
    pub async fn status(
        &self,
        subject: &RemoteSubject<'_>,
        clock: &Clock,
    ) -> Result<Vec<DimensionStatus>, BackendError> {
        let mut call = self.status_script.prepare_invoke();
        call.key(key(subject, "rm"))
            .key(key(subject, "tm"))
            .key(day_key(subject, clock.day.id))
            .key(key(subject, "c"))
            .key(month_key(subject, clock.month.id))
            .arg(clock.now_ms.min(MAX_COUNT))
            .arg(clock.sec().min(MAX_COUNT));
        let reply: Vec<i64> = self.run("status", &call).await?;
        if reply.len() != COUNTS_LEN {
            return Err(self.unexpected("status"));
        }
        Ok(statuses(subject.limits, &Counts::from_reply(&reply), clock))
    }

    /// `GET key`, bounded by `bound` (and the backend's timeout); for
    /// state shared beside the limits (session affinity).
    pub async fn get_string(
        &self,
        key: &str,
        bound: Duration,
    ) -> Result<Option<String>, BackendError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.query("get", &cmd, bound).await
    }

    /// `SET key value EX ttl` (at least a second), bounded by the
    /// backend's timeout.
    pub async fn set_string(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("EX").arg(ttl.as_secs().max(1));
        let _: () = self.query("set", &cmd, self.timeout).await?;
        Ok(())
    }

    /// One command, its connection included, within `bound.min(timeout)`.
    async fn query<T: FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
        bound: Duration,
    ) -> Result<T, BackendError> {
        let bound = bound.min(self.timeout);
        let call = async {
            let mut connection = self.connection().await?;
            cmd.query_async(&mut connection)
                .await
                .map_err(|e| self.error(what, &e.to_string()))
        };
        match tokio::time::timeout(bound, call).await {
            Ok(r) => r,
            Err(_) => Err(self.error(what, &format!("no answer within {} ms", bound.as_millis()))),
        }
    }

    /// Runs a script within the timeout, on the shared connection.
    async fn run<T: FromRedisValue>(
        &self,
        what: &str,
        call: &ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        let mut connection = self.connection().await?;
        match tokio::time::timeout(self.timeout, call.invoke_async(&mut connection)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(what, &e.to_string())),
            Err(_) => Err(self.error(
                what,
                &format!("no answer within {} ms", self.timeout.as_millis()),
            )),
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, BackendError> {
        self.connection
            .get_or_try_init(|| async {
                // Each attempt bounded like a call; retries back off to at
                // most a second, so a restarted server is found again soon.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(1))
                    .set_number_of_retries(4);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await
            .cloned()
            .map_err(|e| self.error("connect", &e.to_string()))
    }

    fn error(&self, what: &str, detail: &str) -> BackendError {
        BackendError(scrub(
            &format!("limits backend {} ({what}): {detail}", self.target),
            &self.secrets,
        ))
    }

    fn unexpected(&self, what: &str) -> BackendError {
        self.error(what, "unexpected reply from the limiter script")
    }

    /// `{0, subject (1-based), dimension, retry_ms or -1, too_large}`.
    fn refusal(
        &self,
        subjects: &[RemoteSubject<'_>],
        reply: &[i64],
    ) -> Result<Refusal, BackendError> {
        let &[_, index, dimension, retry, too_large] = reply else {
            return Err(self.unexpected("admit"));
        };
        let subject = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| subjects.get(i));
        let dimension = usize::try_from(dimension)
            .ok()
            .and_then(|d| Limits::default().each().get(d).map(|(d, _)| *d));
        let (Some(subject), Some(dimension)) = (subject, dimension) else {
            return Err(self.unexpected("admit"));
        };
        let Some(limit) = limit_of(subject.limits, dimension) else {
            return Err(self.unexpected("admit"));
        };
        Ok(Refusal {
            scope: subject.scope,
            subject: subject.name.to_owned(),
            dimension,
            limit,
            retry_after_ms: u64::try_from(retry).ok(),
            too_large: too_large == 1,
            currency: None,
        })
    }
}

fn key(s: &RemoteSubject<'_>, suffix: &str) -> String {
    format!("{KEY_PREFIX}:{}:{}:{suffix}", s.scope.tag(), s.name)
}

fn day_key(s: &RemoteSubject<'_>, day: i64) -> String {
    key(s, &format!("d:{day}"))
}

fn month_key(s: &RemoteSubject<'_>, month: i64) -> String {
    key(s, &format!("mo:{month}"))
}

fn limit_of(limits: &Limits, dimension: Dimension) -> Option<u64> {
    limits
        .each()
        .into_iter()
        .find(|(d, _)| *d == dimension)
        .and_then(|(_, l)| l)
}

/// One subject's counters as the scripts report them (`counts` in
/// prelude.lua).
struct Counts {
    requests: u64,
    requests_reset_ms: u64,
    tokens: u64,
    tokens_reset_ms: u64,
    requests_day: u64,
    tokens_day: u64,
    in_flight: u64,
    spend_day: u64,
    spend_month: u64,
}

impl Counts {
    fn from_reply(v: &[i64]) -> Self {
        let at = |i: usize| v.get(i).and_then(|&n| u64::try_from(n).ok()).unwrap_or(0);
        Self {
            requests: at(0),
            requests_reset_ms: at(1),
            tokens: at(2),
            tokens_reset_ms: at(3),
            requests_day: at(4),
            tokens_day: at(5),
            in_flight: at(6),
            spend_day: at(7),
            spend_month: at(8),
        }
    }
}

/// `Counters::status` over counts read from Redis.
fn statuses(limits: &Limits, c: &Counts, clock: &Clock) -> Vec<DimensionStatus> {
    let until_tomorrow = clock.day.end_ms.saturating_sub(clock.now_ms);
    limits
        .each()
        .into_iter()
        .filter_map(|(dimension, limit)| {
            let limit = limit?;
            let (used, reset_ms) = match dimension {
                Dimension::Rpm => (c.requests, c.requests_reset_ms),
                Dimension::Tpm => (c.tokens, c.tokens_reset_ms),
                Dimension::Rpd => (c.requests_day, until_tomorrow),
                Dimension::Tpd => (c.tokens_day, until_tomorrow),
                Dimension::Concurrency => (c.in_flight, 0),
                Dimension::DailyBudget => (c.spend_day, until_tomorrow),
                Dimension::MonthlyBudget => (
                    c.spend_month,
                    clock.month.end_ms.saturating_sub(clock.now_ms),
                ),
            };
            Some(DimensionStatus {
                dimension,
                limit,
                used,
                remaining: limit.saturating_sub(used),
                reset_ms,
            })
        })
        .collect()
}

/// `scheme://host:port/db`: no user, password or query (`?pass=` on
/// Unix-socket URLs). The last `@` ends the credentials, even when a
/// password holds an unescaped `/` or `@`.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}"),
        None => format!("{scheme}://{rest}"),
    }
}

/// The credentials as written in the URL (user:password, password, query).
fn raw_secrets(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut secrets = vec![query.to_owned()];
    if let Some((userinfo, _)) = rest.rsplit_once('@') {
        secrets.push(userinfo.to_owned());
        if let Some((_, password)) = userinfo.split_once(':') {
            secrets.push(password.to_owned());
        }
    }
    secrets
}

fn scrub(message: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(message.to_owned(), |m, s| m.replace(s.as_str(), "***"))
}

#[cfg(test)]
mod tests;
