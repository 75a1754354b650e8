//! The commit-late exchange: try each target of the route in order; fall
//! over while nothing has reached the client; commit only with a real
//! first event (or a complete body) in hand; after commit, stream translated
//! events and turn any upstream failure into the dialect's in-stream error.
//!
//! `attempt` holds one target's try (breaker, key, call, the outcome
//! recorded), `unary` and `stream` the two ways an answer reaches the client.

mod attempt;
mod stream;
mod unary;

use crate::config::{Route, Target};
use crate::record::RequestRecord;
use crate::state::Live;
use crate::upstream::{Failure, UpstreamClient};
use attempt::{attempt, Attempts, Tried};
use bytes::Bytes;
use filters::error::{ApiError, ErrorKind};
use filters::wire::json_peek::Members;
use filters::Dialect;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::sync::Arc;
use std::time::Instant;

/// The request path's clock: tokio's, so breaker and key-pool timing can be
/// tested under paused time; a std `Instant` for everything downstream.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Client headers that go upstream on same-dialect routes.
#[derive(Debug, Default)]
pub struct ClientHeaders(Vec<(http::HeaderName, http::HeaderValue)>);

impl ClientHeaders {
    pub fn from_request(req: &RequestHeader, dialect: Dialect) -> Self {
        let names = filters::dialect::forwarded_headers(dialect);
        Self(
            names
                .iter()
                .filter_map(|n| {
                    let v = req.headers.get(*n)?;
                    Some((http::HeaderName::from_static(n), v.clone()))
                })
                .collect(),
        )
    }
}

pub struct ClientRequest<'a> {
    pub dialect: Dialect,
    pub body: &'a Bytes,
    pub members: &'a Members<'a>,
    pub model: &'a str,
    pub stream: bool,
    pub headers: ClientHeaders,
}

/// `fut`, unless the client leaves first (`None`): a call nobody waits for
/// is dropped at once, which closes the upstream connection and stops the
/// provider generating (and billing) tokens for nobody.
async fn or_client_left<F: std::future::Future>(
    session: &mut Session,
    fut: F,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        out = fut => Some(out),
        () = client_left(session) => None,
    }
}

async fn client_left(session: &mut Session) {
    // The request body was read whole: what comes now is EOF or a reset.
    if session.read_body_or_idle(true).await.is_err() {
        return;
    }
    std::future::pending::<()>().await;
}

/// Runs the route. Returns `Err` only for errors that have not been
/// written yet (the caller renders them in the client's dialect).
pub async fn run(
    upstream: &UpstreamClient,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    route: &Route,
    req: &ClientRequest<'_>,
) -> Result<(), ApiError> {
    let started = rec.started;
    let carries_synthetic_signature =
        filters::dialect::carries_synthetic_signature(req.dialect, req.body);
    let mut attempts = Attempts {
        req,
        live,
        total_deadline: started + route.total_timeout,
        carries_synthetic_signature,
        canonical: None,
    };
    let mut failures: Vec<(Arc<str>, Failure)> = Vec::new();
    let mut skipped: Vec<(&Target, Option<Instant>, bool)> = Vec::new();
    for target in &route.targets {
        match attempt(upstream, session, rec, route, &mut attempts, target, false).await? {
            Tried::Served(_) | Tried::ClientLeft => return Ok(()),
            Tried::Failed(f) => failures.push((target.provider.name.clone(), f)),
            Tried::Skipped {
                retry_at,
                rate_limited,
            } => skipped.push((target, retry_at, rate_limited)),
        }
    }
    // Every breaker open: rather than fail without trying, probe the target
    // whose cooldown ends first.
    if failures.is_empty() {
        let earliest = skipped
            .iter()
            .filter(|(_, at, _)| at.is_some())
            .min_by_key(|(_, at, _)| *at);
        if let Some(&(target, ..)) = earliest {
            match attempt(upstream, session, rec, route, &mut attempts, target, true).await? {
                Tried::Served(_) | Tried::ClientLeft => return Ok(()),
                Tried::Failed(f) => failures.push((target.provider.name.clone(), f)),
                Tried::Skipped {
                    retry_at,
                    rate_limited,
                } => skipped.push((target, retry_at, rate_limited)),
            }
        }
    }
    // Keys resting after 429s make this a rate limit for the client too,
    // unless an upstream 429 already says so.
    let cooling = skipped
        .iter()
        .filter(|(_, _, rl)| *rl)
        .filter_map(|(_, at, _)| *at)
        .min();
    let upstream_429 = failures
        .iter()
        .any(|(_, f)| matches!(f, Failure::Status(429, _)));
    if failures.is_empty() || (cooling.is_some() && !upstream_429) {
        let retry_at = cooling.or_else(|| skipped.iter().filter_map(|(_, at, _)| *at).min());
        let mut e = if cooling.is_some() {
            ApiError::new(
                ErrorKind::RateLimited,
                "upstream keys for this model are rate limited",
            )
        } else {
            ApiError::new(
                ErrorKind::Overloaded,
                "every target of this model is unavailable (circuit open)",
            )
        };
        e.retry_after = retry_at.map(|at| {
            at.saturating_duration_since(now())
                .as_secs()
                .max(1)
                .to_string()
        });
        return Err(e);
    }
    Err(final_error(&failures))
}

/// The most meaningful failure: a rate limit (its `Retry-After` tells the
/// client when to come back), else the last one.
fn final_error(failures: &[(Arc<str>, Failure)]) -> ApiError {
    let chosen = failures
        .iter()
        .find(|(_, f)| matches!(f, Failure::Status(429, _)))
        .or(failures.last());
    match chosen {
        Some((provider, f)) => {
            let mut e = f.to_api_error(provider);
            if failures.len() > 1 {
                e.message = format!("all {} targets failed: {}", failures.len(), e.message);
            }
            e
        }
        None => ApiError::new(ErrorKind::Api, "the model has no usable targets"),
    }
}

#[cfg(test)]
mod tests {
    use super::attempt::{record_outcome, Served, Tried};
    use super::*;
    use filters::breaker::Admission;
    use filters::error::ErrorKind;
    use filters::key_pool::Pick;
    use filters::Dialect;
    use std::time::Duration;

    const CONFIG: &str = r#"
        [[providers]]
        name = "p"
        type = "openai"
        base_url = "http://127.0.0.1:9/v1"
        api_keys = ["sk-key-number-one", "sk-key-number-two"]
        breaker = { consecutive_failures = 2, cooldown = "30s" }

        [[models]]
        name = "m"
        targets = [{ provider = "p", model = "up" }]

        [[api_keys]]
        key = "sk-client-key"
        name = "c"
    "#;

    fn failed(status: u16, retry_after: Option<&str>) -> Tried {
        Tried::Failed(Failure::Status(
            status,
            ApiError::from_upstream(status, b"{}", retry_after.map(str::to_owned)),
        ))
    }

    /// The shell's wiring of breaker and key pool, driven by tokio's paused clock.
    #[tokio::test(start_paused = true)]
    async fn outcomes_drive_breakers_and_keys_under_paused_time() {
        let live = crate::state::Registry::default()
            .bind(crate::config::parse(CONFIG).unwrap())
            .unwrap();
        let target = &live.config.routes["m"].targets[0];
        let admit = || live.breaker(target.slot).admit(now());

        record_outcome(&live, target, Some(0), &failed(503, None));
        record_outcome(&live, target, Some(0), &failed(502, None));
        assert!(
            matches!(admit(), Admission::Rejected { .. }),
            "two failures open it"
        );
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(matches!(admit(), Admission::Rejected { .. }));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(admit(), Admission::Probe, "half-open after the cooldown");
        record_outcome(&live, target, Some(0), &Tried::Served(Served::Clean));
        assert_eq!(admit(), Admission::Allowed, "a good probe closes it");

        // A 429 rests the key for this model (Retry-After), not the target.
        record_outcome(&live, target, Some(0), &failed(429, Some("20")));
        assert_eq!(admit(), Admission::Allowed);
        let pick = || live.provider(&target.provider).key_pool().pick(now(), "up");
        assert_eq!([pick(), pick()], [Pick::Key(1), Pick::Key(1)]);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(
            [pick(), pick()],
            [Pick::Key(0), Pick::Key(1)],
            "back in rotation"
        );

        // A 503 with Retry-After rests the target that long.
        record_outcome(&live, target, Some(1), &failed(503, Some("60")));
        assert!(matches!(admit(), Admission::Rejected { .. }));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(admit(), Admission::Probe);
        // A client left: says nothing about the target; the probe is free again.
        record_outcome(&live, target, None, &Tried::ClientLeft);
        assert_eq!(admit(), Admission::Probe);
    }

    #[test]
    fn final_error_prefers_rate_limits() {
        let failures = vec![
            (
                Arc::from("a"),
                Failure::Status(429, ApiError::from_upstream(429, b"{}", Some("3".into()))),
            ),
            (Arc::from("b"), Failure::Connect("refused".into())),
        ];
        let e = final_error(&failures);
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after.as_deref(), Some("3"));
        assert!(e.message.starts_with("all 2 targets failed"));
        let e = final_error(&failures[1..]);
        assert_eq!(filters::dialect::error_status(Dialect::OpenAiChat, &e), 502);
    }
}
