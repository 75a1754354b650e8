//! Rotation over a provider's upstream API keys. Sans-IO like the breaker:
//! the caller passes the time. A key that gets 429 cools down for the model
//! it was used for (providers limit per model: one model's 429 must not
//! bench the key for the others) until the upstream's `Retry-After`, else a
//! default; a key that gets 401/403 is disabled for every model until the
//! config is reloaded. Keys are indices here: the values stay with the
//! shell, which never prints them.

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
    /// 429: cool the key down.
    RateLimited {
        retry_after: Option<Duration>,
    },
    /// 401/403: the key itself is bad.
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

#[derive(Debug, Clone, Default)]
struct Slot {
    disabled: bool,
    /// (upstream model, resting until)
    cooling: Vec<(String, Instant)>,
    stats: KeyStats,
}

impl Slot {
    fn cooling_until(&self, model: &str, now: Instant) -> Option<Instant> {
        self.cooling
            .iter()
            .find(|(m, until)| m == model && *until > now)
            .map(|(_, u)| *u)
    }

    fn state(&self, now: Instant) -> KeyState {
        if self.disabled {
            return KeyState::Disabled;
        }
        match self
            .cooling
            .iter()
            .map(|(_, u)| *u)
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
    default_cooldown: Duration,
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
        if self.slots.is_empty() {
            return Pick::NoKey;
        }
        let n = self.slots.len();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            let slot = &mut self.slots[i];
            slot.cooling.retain(|(_, until)| *until > now);
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
                Some(s)
            }
            KeyOutcome::RateLimited { retry_after } => {
                stats.failures += 1;
                let until = now + retry_after.unwrap_or(default_cooldown);
                slot.cooling.retain(|(m, _)| m != model);
                slot.cooling.push((model.to_owned(), until));
                Some(429)
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
    Some(at.duration_since(wall).unwrap_or_default())
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
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = (y - era * 400) as u64;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe as i64 - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + sec;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

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
                retry_at: Some(t0 + Duration::from_secs(5))
            }
        );
        assert_eq!(
            p.pick(t0 + Duration::from_secs(5), m),
            Pick::Key(1),
            "back after Retry-After"
        );
        let report = p.report(t0 + Duration::from_secs(5));
        assert_eq!(report[2].0, KeyState::Disabled);
        assert_eq!(report[0].0.name(), "cooling");
        assert_eq!(report[1].0, KeyState::Active);
        assert_eq!(report[1].1.status_counts.get(&429), Some(&1));
        assert_eq!(report[1].1.failures, 1);
        assert_eq!(KeyPool::new(0, Duration::ZERO).pick(t0, m), Pick::NoKey);
    }

    #[test]
    fn all_disabled_has_no_retry_time() {
        let t0 = Instant::now();
        let mut p = KeyPool::new(1, Duration::from_secs(1));
        p.record(0, "m", t0, SystemTime::now(), KeyOutcome::Rejected(403));
        assert_eq!(p.pick(t0, "m"), Pick::Unavailable { retry_at: None });
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
        assert_eq!(parse_retry_after("-3", wall), None);
    }
}
