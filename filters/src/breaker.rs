//! A circuit breaker per target (provider + upstream model). Sans-IO: every
//! call takes `now`, so tests drive time by hand and the shell may use any
//! clock (tokio's, paused in tests).
//!
//! Closed → Open after `consecutive_failures` failures in a row, or when the
//! error rate over the current window passes `error_rate` with at least
//! `min_requests` requests. Open → HalfOpen when the cooldown ends: exactly
//! one probe is let through. The probe's success closes the breaker; its
//! failure opens it again with a doubled cooldown (capped).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    pub consecutive_failures: u32,
    pub error_rate: f64,
    pub min_requests: u32,
    pub window: Duration,
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            error_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Requests are skipped until `until`.
    Open {
        until: Instant,
    },
    /// One probe is (or may be) in flight.
    HalfOpen {
        probing: bool,
    },
}

impl BreakerState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen { .. } => "half_open",
        }
    }
}

/// What the breaker says about sending a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The single half-open probe: report its outcome.
    Probe,
    /// Skip this target; it may be tried again at `retry_at`.
    Rejected {
        retry_at: Instant,
    },
}

#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    consecutive: u32,
    window_start: Option<Instant>,
    window_requests: u32,
    window_failures: u32,
    /// Cooldown to apply at the next opening (doubles on failed probes).
    next_cooldown: Duration,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self {
            cfg,
            state: BreakerState::Closed,
            consecutive: 0,
            window_start: None,
            window_requests: 0,
            window_failures: 0,
            next_cooldown: cfg.cooldown,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// New thresholds from a config reload; the state (open, counts, the
    /// cooldown in force) is kept.
    pub fn reconfigure(&mut self, cfg: BreakerConfig) {
        if self.cfg.cooldown != cfg.cooldown && self.state == BreakerState::Closed {
            self.next_cooldown = cfg.cooldown;
        }
        self.cfg = cfg;
    }

    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            BreakerState::Closed => Admission::Allowed,
            BreakerState::Open { until } if now < until => Admission::Rejected { retry_at: until },
            BreakerState::Open { .. } | BreakerState::HalfOpen { probing: false } => {
                self.state = BreakerState::HalfOpen { probing: true };
                Admission::Probe
            }
            // A probe is out: others wait for its verdict (retry soon).
            BreakerState::HalfOpen { probing: true } => Admission::Rejected {
                retry_at: now + Duration::from_secs(1),
            },
        }
    }

    /// A probe that was admitted but never sent (an earlier target
    /// answered): the next request may probe instead.
    pub fn release_probe(&mut self) {
        if self.state == (BreakerState::HalfOpen { probing: true }) {
            self.state = BreakerState::HalfOpen { probing: false };
        }
    }

    pub fn on_success(&mut self, now: Instant) {
        self.count(now, false);
        self.consecutive = 0;
        if matches!(self.state, BreakerState::HalfOpen { .. }) {
            self.state = BreakerState::Closed;
            self.next_cooldown = self.cfg.cooldown;
            self.reset_window(now);
        }
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.count(now, true);
        self.consecutive += 1;
        match self.state {
            BreakerState::HalfOpen { .. } => {
                self.next_cooldown = (self.next_cooldown * 2).min(self.cfg.max_cooldown);
                self.open(now, self.next_cooldown);
            }
            BreakerState::Closed => {
                let by_streak = self.consecutive >= self.cfg.consecutive_failures;
                let by_rate = self.window_requests >= self.cfg.min_requests
                    && f64::from(self.window_failures) / f64::from(self.window_requests)
                        >= self.cfg.error_rate;
                if by_streak || by_rate {
                    let cooldown = self.next_cooldown;
                    self.open(now, cooldown);
                }
            }
            BreakerState::Open { .. } => {}
        }
    }

    /// The upstream asked for a pause (`Retry-After` on 429/503): skip the
    /// target until then without counting it as sick.
    pub fn hold_until(&mut self, until: Instant) {
        match self.state {
            BreakerState::Open { until: u } if u >= until => {}
            _ => self.state = BreakerState::Open { until },
        }
    }

    fn open(&mut self, now: Instant, cooldown: Duration) {
        self.state = BreakerState::Open {
            until: now + cooldown,
        };
        self.consecutive = 0;
        self.reset_window(now);
    }

    fn reset_window(&mut self, now: Instant) {
        self.window_start = Some(now);
        self.window_requests = 0;
        self.window_failures = 0;
    }

    fn count(&mut self, now: Instant, failed: bool) {
        match self.window_start {
            Some(start) if now.duration_since(start) < self.cfg.window => {}
            _ => self.reset_window(now),
        }
        self.window_requests += 1;
        self.window_failures += u32::from(failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            error_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(12),
        }
    }

    #[test]
    fn opens_after_a_streak_then_half_opens_with_one_probe_then_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg());
        for _ in 0..2 {
            assert_eq!(b.admit(t0), Admission::Allowed);
            b.on_failure(t0);
        }
        b.on_success(t0); // a success breaks the streak
        for _ in 0..3 {
            b.on_failure(t0);
        }
        assert_eq!(b.state().name(), "open");
        assert_eq!(
            b.admit(t0 + Duration::from_secs(4)),
            Admission::Rejected {
                retry_at: t0 + Duration::from_secs(5)
            }
        );
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(b.admit(t1), Admission::Probe);
        assert!(
            matches!(b.admit(t1), Admission::Rejected { .. }),
            "only one probe"
        );
        b.on_success(t1);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(t1), Admission::Allowed);
    }

    #[test]
    fn failed_probes_double_the_cooldown_up_to_the_cap() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg());
        for _ in 0..3 {
            b.on_failure(t0);
        }
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t0 + Duration::from_secs(5)
            }
        );
        let mut t = t0;
        for want in [10, 12, 12] {
            t += Duration::from_secs(13);
            assert_eq!(b.admit(t), Admission::Probe);
            b.on_failure(t);
            assert_eq!(
                b.state(),
                BreakerState::Open {
                    until: t + Duration::from_secs(want)
                }
            );
        }
        t += Duration::from_secs(13);
        assert_eq!(b.admit(t), Admission::Probe);
        b.on_success(t);
        for _ in 0..3 {
            b.on_failure(t);
        }
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t + Duration::from_secs(5)
            },
            "success resets the cooldown"
        );
    }

    #[test]
    fn error_rate_window_opens_without_a_streak() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg());
        for i in 0..10 {
            if i % 2 == 0 {
                b.on_failure(t0);
            } else {
                b.on_success(t0);
            }
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "5 of 10 failed, but the rate is judged on a failure"
        );
        b.on_failure(t0);
        assert_eq!(b.state().name(), "open", "6 of 11 failed");
        let mut b = Breaker::new(cfg());
        for i in 0..10 {
            let t = t0 + Duration::from_secs(i * 3); // the window keeps resetting
            if i % 2 == 0 {
                b.on_failure(t);
            } else {
                b.on_success(t);
            }
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn released_probe_and_retry_after_holds() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg());
        b.hold_until(t0 + Duration::from_secs(7));
        assert_eq!(
            b.admit(t0),
            Admission::Rejected {
                retry_at: t0 + Duration::from_secs(7)
            }
        );
        let t1 = t0 + Duration::from_secs(7);
        assert_eq!(b.admit(t1), Admission::Probe);
        b.release_probe();
        assert_eq!(b.admit(t1), Admission::Probe, "the next request may probe");
    }
}
