//! Rotation over a provider's upstream API keys. Sans-IO like the breaker:
//! the caller passes the time. A key that gets 429 rests for the model it
//! was used for (providers limit per model: one model's 429 must not bench
//! the key for the others) until the upstream's `Retry-After` (clamped by
//! the caller), else briefly: 1 s, doubling while the 429s repeat, up to
//! the pool's cap. A 403 rests the key for that model the same way
//! (providers answer 403 for per-model permissions); a 401 disables the key
//! for every model until its provider's keys change. A resting key is only
//! skipped while another can serve: `pick_earliest` hands out the one whose
//! rest ends first, so a model is never refused without asking upstream.
//! Keys are indices here: the values stay with the shell, which never
//! prints them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Cooling { until: Instant },
    Disabled,
}

impl KeyState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Cooling { .. } => "cooling",
            Self::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyStats {
    pub requests: u64,
    pub successes: u64,
    pub failures: u64,
    pub status_counts: BTreeMap<u16, u64>,
    pub last_used: Option<SystemTime>,
}

/// How a request sent with a key ended, as far as the key is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    Success(u16),
    /// 429: rest the key for this model.
    RateLimited {
        retry_after: Option<Duration>,
    },
    /// 403: the key may not use this model; rest it for this model.
    Forbidden,
    /// 401: the key itself is bad.
    Rejected(u16),
    /// Any other failure (5xx, timeouts, connect errors): not the key's fault.
    Failed(Option<u16>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The provider has no keys (a local server).
    NoKey,
    Key(usize),
    /// Every key is cooling or disabled; the earliest comes back at
    /// `retry_at` (`None`: all disabled).
    Unavailable {
        retry_at: Option<Instant>,
    },
}

/// A key's rest for one model.
#[derive(Debug, Clone)]
struct Rest {
    model: String,
    until: Instant,
    /// The last rest given without `Retry-After`: the next one doubles it.
    backoff: Duration,
}

/// The first rest without `Retry-After`; repeats double it.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
struct Slot {
    disabled: bool,
    /// Rests by model; an ended rest is kept (its backoff remembers the
    /// streak) until the key succeeds for that model.
    cooling: Vec<Rest>,
    stats: KeyStats,
}

impl Slot {
    fn cooling_until(&self, model: &str, now: Instant) -> Option<Instant> {
        self.cooling
            .iter()
            .find(|r| r.model == model && r.until > now)
            .map(|r| r.until)
    }

    /// Rests the key for `model`: `fixed` when the upstream said how long,
    /// else the streak's backoff, doubled, up to `cap`.
    fn rest(&mut self, model: &str, now: Instant, fixed: Option<Duration>, cap: Duration) {
        let prev = self.cooling.iter().position(|r| r.model == model);
        let last = prev.map(|i| self.cooling[i].backoff);
        let backoff = match last {
            Some(b) if !b.is_zero() => b.saturating_mul(2).min(cap),
            _ => FIRST_BACKOFF.min(cap),
        };
        let (length, backoff) = match fixed {
            Some(d) => (d, last.unwrap_or_default()),
            None => (backoff, backoff),
        };
        let rest = Rest {
            model: model.to_owned(),
            until: later(now, length),
            backoff,
        };
        match prev {
            Some(i) => self.cooling[i] = rest,
            None => self.cooling.push(rest),
        }
    }

    fn state(&self, now: Instant) -> KeyState {
        if self.disabled {
            return KeyState::Disabled;
        }
        match self
            .cooling
            .iter()
            .map(|r| r.until)
            .filter(|u| *u > now)
            .max()
        {
            Some(until) => KeyState::Cooling { until },
            None => KeyState::Active,
        }
    }
}

#[derive(Debug)]
pub struct KeyPool {
    slots: Vec<Slot>,
    cursor: usize,
    /// The longest rest without `Retry-After` (`key_cooldown`).
    default_cooldown: Duration,
}

/// `now + d`, saturating far in the future instead of overflowing.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(now)
}

impl KeyPool {
    pub fn new(keys: usize, default_cooldown: Duration) -> Self {
        Self {
            slots: vec![Slot::default(); keys],
            cursor: 0,
            default_cooldown,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// A reloaded `key_cooldown`; resting keys keep their current rest.
    pub fn set_default_cooldown(&mut self, cooldown: Duration) {
        self.default_cooldown = cooldown;
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The next usable key for `model`, round-robin.
    pub fn pick(&mut self, now: Instant, model: &str) -> Pick {
        self.pick_preferring(now, model, None)
    }

    /// `preferred` when it is usable for `model` (a session's key, so the
    /// provider's prompt cache keeps hitting), else the round-robin pick.
    /// A preferred pick leaves the rotation where it was.
    pub fn pick_preferring(&mut self, now: Instant, model: &str, preferred: Option<usize>) -> Pick {
        if self.slots.is_empty() {
            return Pick::NoKey;
        }
        if let Some(i) = preferred {
            if self
                .slots
                .get(i)
                .is_some_and(|s| !s.disabled && s.cooling_until(model, now).is_none())
            {
                return Pick::Key(i);
            }
        }
        let n = self.slots.len();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            let slot = &mut self.slots[i];
            if !slot.disabled && slot.cooling_until(model, now).is_none() {
                self.cursor = (i + 1) % n;
                return Pick::Key(i);
            }
        }
        let retry_at = self
            .slots
            .iter()
            .filter(|s| !s.disabled)
            .filter_map(|s| s.cooling_until(model, now))
            .min();
        Pick::Unavailable { retry_at }
    }

    /// When nothing else can serve: the usable key whose rest for `model`
    /// ends first (`None` when every key is disabled).
    pub fn pick_earliest(&mut self, now: Instant, model: &str) -> Option<usize> {
        let i = (0..self.slots.len())
            .filter(|&i| !self.slots[i].disabled)
            .min_by_key(|&i| self.slots[i].cooling_until(model, now))?;
        self.cursor = (i + 1) % self.slots.len();
        Some(i)
    }

    pub fn record(
        &mut self,
        key: usize,
        model: &str,
        now: Instant,
        wall: SystemTime,
        outcome: KeyOutcome,
    ) {
        let default_cooldown = self.default_cooldown;
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let stats = &mut slot.stats;
        stats.requests += 1;
        stats.last_used = Some(wall);
        let status = match outcome {
            KeyOutcome::Success(s) => {
                stats.successes += 1;
                // The streak is over: the next 429 starts at 1 s again.
                slot.cooling.retain(|r| r.model != model || r.until > now);
                Some(s)
            }
            KeyOutcome::RateLimited { retry_after } => {
                stats.failures += 1;
                slot.rest(model, now, retry_after, default_cooldown);
                Some(429)
            }
            KeyOutcome::Forbidden => {
                stats.failures += 1;
                slot.rest(model, now, None, default_cooldown);
                Some(403)
            }
            KeyOutcome::Rejected(s) => {
                stats.failures += 1;
                slot.disabled = true;
                Some(s)
            }
            KeyOutcome::Failed(s) => {
                stats.failures += 1;
                s
            }
        };
        if let Some(s) = status {
            *slot.stats.status_counts.entry(s).or_default() += 1;
        }
    }

    /// State and statistics of every key, in configuration order. A key
    /// resting for any model reports `Cooling` until its last rest ends.
    pub fn report(&self, now: Instant) -> Vec<(KeyState, KeyStats)> {
        self.slots
            .iter()
            .map(|s| (s.state(now), s.stats.clone()))
            .collect()
    }
}

/// `Retry-After` as a duration: delta seconds (possibly fractional), or an
/// HTTP date relative to `wall`.
pub fn parse_retry_after(value: &str, wall: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = httpdate_to_system_time(v)?;
    let d = at.duration_since(wall).unwrap_or_default();
    Some(d.min(Duration::from_secs(86_400)))
}

/// IMF-fixdate only (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
fn httpdate_to_system_time(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let (day, year): (u64, i64) = (day.parse().ok()?, year.parse().ok()?);
    if !(1..=31).contains(&day) || !(1970..=9999).contains(&year) {
        return None;
    }
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = (y - era * 400) as u64;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe as i64 - 719_468;
    // Checked: a hostile date (year 99999999) must not overflow.
    let secs = u64::try_from(days)
        .ok()?
        .checked_mul(86_400)?
        .checked_add(h.checked_mul(3600)?)?
        .checked_add(m.checked_mul(60)?)?
        .checked_add(*sec)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preferred_key_is_picked_while_usable_without_moving_the_rotation() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let m = "gpt-x";
        let mut p = KeyPool::new(3, Duration::from_secs(30));
        assert_eq!(p.pick_preferring(t0, m, Some(2)), Pick::Key(2));
        assert_eq!(p.pick_preferring(t0, m, Some(2)), Pick::Key(2));
        assert_eq!(p.pick(t0, m), Pick::Key(0), "the rotation did not move");
        assert_eq!(
            p.pick_preferring(t0, m, Some(7)),
            Pick::Key(1),
            "no such key"
        );
        let limited = KeyOutcome::RateLimited {
            retry_after: Some(Duration::from_secs(10)),
        };
        p.record(2, m, t0, wall, limited);
        assert_eq!(
            p.pick_preferring(t0, m, Some(2)),
            Pick::Key(0),
            "a resting key is not forced"
        );
        assert_eq!(
            p.pick_preferring(t0, "other", Some(2)),
            Pick::Key(2),
            "rests are per model"
        );
        p.record(1, m, t0, wall, KeyOutcome::Rejected(401));
        assert_eq!(
            p.pick_preferring(t0, m, Some(1)),
            Pick::Key(0),
            "nor a disabled one"
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            p.pick_preferring(later, m, Some(2)),
            Pick::Key(2),
            "back after its rest"
        );
    }

    #[test]
    fn rotates_cools_down_per_model_and_disables() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let m = "gpt-x";
        let mut p = KeyPool::new(3, Duration::from_secs(30));
        let picks: Vec<Pick> = (0..4).map(|_| p.pick(t0, m)).collect();
        assert_eq!(
            picks,
            [Pick::Key(0), Pick::Key(1), Pick::Key(2), Pick::Key(0)]
        );
        p.record(
            1,
            m,
            t0,
            wall,
            KeyOutcome::RateLimited {
                retry_after: Some(Duration::from_secs(5)),
            },
        );
        p.record(2, m, t0, wall, KeyOutcome::Rejected(401));
        assert_eq!(
            [p.pick(t0, m), p.pick(t0, m)],
            [Pick::Key(0), Pick::Key(0)],
            "cooling and disabled keys are skipped"
        );
        assert_eq!(
            [p.pick(t0, "other"), p.pick(t0, "other")],
            [Pick::Key(1), Pick::Key(0)],
            "a 429 rests the key for its model only; a 401 disables it for all"
        );
        p.record(
            0,
            m,
            t0,
            wall,
            KeyOutcome::RateLimited { retry_after: None },
        );
        assert_eq!(
            p.pick(t0, m),
            Pick::Unavailable {
                retry_at: Some(t0 + Duration::from_secs(1))
            },
            "without Retry-After a key rests 1 s"
        );
        let report = p.report(t0 + Duration::from_millis(500));
        assert_eq!(report[2].0, KeyState::Disabled);
        assert_eq!(report[0].0.name(), "cooling");
        assert_eq!(report[1].0.name(), "cooling");
        assert_eq!(
            p.pick(t0 + Duration::from_secs(5), m),
            Pick::Key(1),
            "back after Retry-After"
        );
        let report = p.report(t0 + Duration::from_secs(5));
        assert_eq!(report[1].0, KeyState::Active);
        assert_eq!(report[1].1.status_counts.get(&429), Some(&1));
        assert_eq!(report[1].1.failures, 1);
        assert_eq!(KeyPool::new(0, Duration::ZERO).pick(t0, m), Pick::NoKey);
    }

    #[test]
    fn all_disabled_has_no_retry_time() {
        let t0 = Instant::now();
        let mut p = KeyPool::new(1, Duration::from_secs(1));
        p.record(0, "m", t0, SystemTime::now(), KeyOutcome::Rejected(401));
        assert_eq!(p.pick(t0, "m"), Pick::Unavailable { retry_at: None });
        assert_eq!(
            p.pick_earliest(t0, "m"),
            None,
            "a disabled key is never forced"
        );
    }

    #[test]
    fn rests_without_retry_after_start_short_and_double_up_to_the_cap() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let mut p = KeyPool::new(1, Duration::from_secs(5));
        let limited = KeyOutcome::RateLimited { retry_after: None };
        let mut rests = Vec::new();
        let mut now = t0;
        for _ in 0..5 {
            p.record(0, "m", now, wall, limited);
            let Pick::Unavailable { retry_at: Some(at) } = p.pick(now, "m") else {
                panic!("resting")
            };
            rests.push(at - now);
            now = at;
        }
        let secs: Vec<u64> = rests.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 5, 5]);
        // A success ends the streak: the next 429 rests 1 s again.
        p.record(0, "m", now, wall, KeyOutcome::Success(200));
        p.record(0, "m", now, wall, limited);
        assert_eq!(
            p.pick(now, "m"),
            Pick::Unavailable {
                retry_at: Some(now + Duration::from_secs(1))
            }
        );
    }

    #[test]
    fn a_403_rests_the_key_for_that_model_only() {
        let t0 = Instant::now();
        let mut p = KeyPool::new(1, Duration::from_secs(30));
        p.record(0, "m", t0, SystemTime::now(), KeyOutcome::Forbidden);
        assert!(matches!(p.pick(t0, "m"), Pick::Unavailable { .. }));
        assert_eq!(p.pick(t0, "other"), Pick::Key(0));
    }

    #[test]
    fn when_every_key_rests_the_earliest_is_handed_out() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let mut p = KeyPool::new(3, Duration::from_secs(30));
        let rest = |secs| KeyOutcome::RateLimited {
            retry_after: Some(Duration::from_secs(secs)),
        };
        p.record(0, "m", t0, wall, rest(30));
        p.record(1, "m", t0, wall, rest(3));
        p.record(2, "m", t0, wall, KeyOutcome::Rejected(401));
        assert!(matches!(p.pick(t0, "m"), Pick::Unavailable { .. }));
        assert_eq!(p.pick_earliest(t0, "m"), Some(1));
    }

    #[test]
    fn extreme_rests_do_not_overflow() {
        let t0 = Instant::now();
        let mut p = KeyPool::new(1, Duration::from_secs(30));
        let forever = KeyOutcome::RateLimited {
            retry_after: Some(Duration::MAX),
        };
        p.record(0, "m", t0, SystemTime::now(), forever);
        assert!(matches!(p.pick(t0, "m"), Pick::Unavailable { .. }));
        assert_eq!(p.pick_earliest(t0, "m"), Some(0));
    }

    #[test]
    fn retry_after_forms() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("7", wall), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("1.5", wall),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", wall),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", wall),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", wall), None);
        // Far-future or malformed dates neither overflow nor rest forever.
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", wall),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 99999999 23:59:59 GMT", wall),
            None
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 2030 99:59:59 GMT", wall),
            None
        );
        assert_eq!(
            parse_retry_after("1e300", wall),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(parse_retry_after("-3", wall), None);
    }
}
