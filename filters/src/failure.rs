//! How an attempt at one upstream target failed, and what that means —
//! classified once, here, for routing, breakers, key pools, logs and the
//! error the client finally sees.
//!
//! | upstream outcome | next | target health | key |
//! | --- | --- | --- | --- |
//! | connect refused/reset, DNS, TLS, connect timeout | next target | failure | — |
//! | no first byte / first event in time, stream died or errored before its first real event, bad 2xx body | next target | failure | — |
//! | 408, 500, 502, 503, 504, 529, other 5xx (`overloaded_error`) | next target | failure (+ rest for `Retry-After`) | — |
//! | 429 | next key, then next target | rest for `Retry-After` if keyless | rest for `Retry-After`, else briefly (this model) |
//! | 403 | next key, then next target | neutral | rest (this model: per-model permissions) |
//! | 401 | next key, then next target | neutral | disabled |
//! | 404 (the target's model does not exist there: a config error) | next target | failure | — |
//! | other 4xx (400, 413, 422…) | stop: the client's own mistake | healthy | — |

use crate::error::{ApiError, ErrorKind};
use crate::key_pool::{parse_retry_after, KeyOutcome};
use std::time::{Duration, SystemTime};

/// Which budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    FirstByte,
    FirstEvent,
    Body,
    Idle,
    Total,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Self::FirstByte => "first-byte",
            Self::FirstEvent => "first-event",
            Self::Body => "body",
            Self::Idle => "idle",
            Self::Total => "total",
        }
    }
}

/// What kind of failure, for records and labels (`503`, `connect`,
/// `timeout-first-event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Connect,
    Timeout(Phase),
    Io,
    Status(u16),
    BadResponse,
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect => f.write_str("connect"),
            Self::Timeout(phase) => write!(f, "timeout-{}", phase.name()),
            Self::Io => f.write_str("io"),
            Self::Status(s) => write!(f, "{s}"),
            Self::BadResponse => f.write_str("bad-response"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// DNS, connect refused/reset, TLS, connect timeout.
    Connect(String),
    /// A budget ran out.
    Timeout(Phase),
    /// The connection broke while talking.
    Io(String),
    /// The upstream answered with an error status (or, before commit, an
    /// error event carrying one).
    Status(u16, ApiError),
    /// A 2xx whose body is not what its dialect promises.
    BadResponse(String),
    /// A token-login provider's login failed (unreachable, refused, no
    /// token in its answer): names the login host and what failed, never
    /// a credential or the answer's body.
    Login(String),
}

/// What to try after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The same target with another key (if the pool has one), else the next target.
    NextKey,
    NextTarget,
    /// The client's own mistake: every target would refuse it.
    Stop,
}

/// What a failure says about the target's health, for its breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The upstream works; the request was at fault.
    Healthy,
    Sick,
    /// Says nothing about the target (a bad key).
    Neutral,
}

impl Failure {
    pub fn next(&self) -> Next {
        match self {
            Self::Status(401 | 403 | 429, _) => Next::NextKey,
            Self::Status(s, _) if matches!(s, 404 | 408) || *s >= 500 => Next::NextTarget,
            Self::Status(..) => Next::Stop,
            _ => Next::NextTarget,
        }
    }

    /// May the chain go on after this failure?
    pub fn falls_over(&self) -> bool {
        self.next() != Next::Stop
    }

    pub fn health(&self) -> Health {
        match self {
            Self::Status(401 | 403 | 429, _) => Health::Neutral,
            _ if self.next() == Next::Stop => Health::Healthy,
            _ => Health::Sick,
        }
    }

    /// The pause the upstream asked for (`Retry-After`), never longer than
    /// `max`: however far off an upstream's date is, no rest outlasts the
    /// provider's `max_cooldown`.
    pub fn retry_after(&self, wall: SystemTime, max: Duration) -> Option<Duration> {
        match self {
            Self::Status(_, e) => e
                .retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, wall))
                .map(|d| d.min(max)),
            _ => None,
        }
    }

    /// What the key that carried the request should record (a rest
    /// clamped to `max`).
    pub fn key_outcome(&self, wall: SystemTime, max: Duration) -> KeyOutcome {
        match self {
            Self::Status(429, _) => KeyOutcome::RateLimited {
                retry_after: self.retry_after(wall, max),
            },
            Self::Status(403, _) => KeyOutcome::Forbidden,
            Self::Status(401, _) => KeyOutcome::Rejected(401),
            Self::Status(s, _) => KeyOutcome::Failed(Some(*s)),
            _ => KeyOutcome::Failed(None),
        }
    }

    /// Short label for logs and the attempts header.
    pub fn label(&self) -> String {
        self.kind().to_string()
    }

    /// The failure without its details: small, `Copy`, a metric label.
    pub fn kind(&self) -> FailureKind {
        match self {
            // A login is the connection's first step: counted as one.
            Self::Connect(_) | Self::Login(_) => FailureKind::Connect,
            Self::Timeout(phase) => FailureKind::Timeout(*phase),
            Self::Io(_) => FailureKind::Io,
            Self::Status(s, _) => FailureKind::Status(*s),
            Self::BadResponse(_) => FailureKind::BadResponse,
        }
    }

    /// The error a client sees if this is the failure reported: the
    /// gateway's own words (provider, status, outcome, request id), never
    /// the upstream's text — a 401's message can carry a partly masked
    /// provider key, a connect error the upstream's host. The one
    /// exception is a 4xx that is the client's own mistake (`Next::Stop`):
    /// its message says what to fix (and Claude Code reads "prompt is too
    /// long" from it to compact).
    pub fn to_api_error(&self, provider: &str, request_id: &str) -> ApiError {
        let own = |kind, what: String| {
            ApiError::new(
                kind,
                format!("upstream {provider} {what} (request {request_id})"),
            )
        };
        match self {
            Self::Connect(_) => own(ErrorKind::Api, "is unreachable".into()),
            Self::Login(_) => own(
                ErrorKind::Api,
                "could not log in (token login failed)".into(),
            ),
            Self::Timeout(phase) => {
                own(ErrorKind::Timeout, format!("timed out ({})", phase.name()))
            }
            Self::Io(_) => own(ErrorKind::Api, "dropped the connection".into()),
            Self::BadResponse(_) => own(ErrorKind::Api, "sent a malformed response".into()),
            Self::Status(s @ (401 | 403), _) => own(
                ErrorKind::Api,
                format!("rejected the gateway's credentials ({s})"),
            ),
            Self::Status(_, e) if self.next() == Next::Stop => e.clone(),
            Self::Status(s, e) => {
                let what = match e.kind {
                    ErrorKind::RateLimited => format!("is rate limiting ({s})"),
                    ErrorKind::Overloaded => format!("is overloaded ({s})"),
                    ErrorKind::Timeout => format!("timed out ({s})"),
                    ErrorKind::NotFound => format!("does not serve this model ({s})"),
                    _ => format!("failed ({s})"),
                };
                let mut mine = own(e.kind, what);
                mine.status = e.status;
                mine.retry_after = e.retry_after.clone();
                mine
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: u16) -> Failure {
        Failure::Status(s, ApiError::from_upstream(s, b"{}", Some("7".into())))
    }

    /// Every row of the module's table.
    #[test]
    fn the_outcome_table() {
        let wall = SystemTime::now();
        let rows: Vec<(Failure, Next, Health)> = vec![
            (
                Failure::Connect("refused".into()),
                Next::NextTarget,
                Health::Sick,
            ),
            (
                Failure::Timeout(Phase::FirstEvent),
                Next::NextTarget,
                Health::Sick,
            ),
            (Failure::Io("reset".into()), Next::NextTarget, Health::Sick),
            (
                Failure::Login("login at sso.example answered 401".into()),
                Next::NextTarget,
                Health::Sick,
            ),
            (
                Failure::BadResponse("not JSON".into()),
                Next::NextTarget,
                Health::Sick,
            ),
            (status(408), Next::NextTarget, Health::Sick),
            (status(500), Next::NextTarget, Health::Sick),
            (status(502), Next::NextTarget, Health::Sick),
            (status(503), Next::NextTarget, Health::Sick),
            (status(504), Next::NextTarget, Health::Sick),
            (status(529), Next::NextTarget, Health::Sick),
            (status(429), Next::NextKey, Health::Neutral),
            (status(401), Next::NextKey, Health::Neutral),
            (status(403), Next::NextKey, Health::Neutral),
            (status(400), Next::Stop, Health::Healthy),
            (status(404), Next::NextTarget, Health::Sick),
            (status(413), Next::Stop, Health::Healthy),
            (status(422), Next::Stop, Health::Healthy),
        ];
        for (f, next, health) in rows {
            assert_eq!((f.next(), f.health()), (next, health), "{}", f.label());
            assert_eq!(f.falls_over(), next != Next::Stop);
        }
        assert_eq!(
            status(429).key_outcome(wall, Duration::MAX),
            KeyOutcome::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            status(401).key_outcome(wall, Duration::MAX),
            KeyOutcome::Rejected(401)
        );
        assert_eq!(
            status(403).key_outcome(wall, Duration::MAX),
            KeyOutcome::Forbidden
        );
        assert_eq!(
            status(503).key_outcome(wall, Duration::MAX),
            KeyOutcome::Failed(Some(503))
        );
        assert_eq!(
            status(503).retry_after(wall, Duration::MAX),
            Some(Duration::from_secs(7))
        );
        assert_eq!(Failure::Timeout(Phase::Idle).label(), "timeout-idle");
        assert_eq!(
            status(503).retry_after(wall, Duration::from_secs(2)),
            Some(Duration::from_secs(2)),
            "clamped to the provider's max_cooldown"
        );
    }

    #[test]
    fn client_facing_errors() {
        let leaky = br#"{"error":{"message":"Incorrect API key provided: sk-proj-****abcd","type":"invalid_request_error"}}"#;
        let e = Failure::Status(401, ApiError::from_upstream(401, leaky, None))
            .to_api_error("openai", "req_1");
        assert_eq!(
            e.kind,
            ErrorKind::Api,
            "a bad upstream key is the gateway's problem, not the client's"
        );
        assert_eq!(
            e.message,
            "upstream openai rejected the gateway's credentials (401) (request req_1)"
        );
        let e = Failure::Connect("DNS lookup of internal.example failed".into())
            .to_api_error("p", "req_2");
        assert!(!e.message.contains("internal.example"), "{}", e.message);
        assert_eq!(
            Failure::Timeout(Phase::Total).to_api_error("x", "r").kind,
            ErrorKind::Timeout
        );
        let e = status(429).to_api_error("x", "r");
        assert_eq!(e.retry_after.as_deref(), Some("7"));
        assert_eq!(e.kind, ErrorKind::RateLimited);
        let e = Failure::Status(500, ApiError::from_upstream(500, b"secret host db01", None))
            .to_api_error("x", "r");
        assert_eq!(e.message, "upstream x failed (500) (request r)");
        assert_eq!(e.status, Some(500));
        // The client's own mistake keeps the upstream's explanation.
        let tooling =
            br#"{"error":{"message":"max_tokens: too large","type":"invalid_request_error"}}"#;
        let e = Failure::Status(400, ApiError::from_upstream(400, tooling, None))
            .to_api_error("x", "r");
        assert_eq!(e.message, "max_tokens: too large");
    }
}
