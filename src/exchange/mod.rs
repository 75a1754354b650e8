//! The commit-late exchange: try each target of the route in order; fall
//! over while nothing has reached the client; commit only with a real
//! first event (or a complete body) in hand; after commit, stream translated
//! events and turn any upstream failure into the dialect's in-stream error.
//!
//! `attempt` holds one target's try (breaker, key, call, the outcome
//! recorded), `unary` and `stream` the two ways an answer reaches the client.

mod attempt;
mod conversation;
mod payload;
pub mod side;
mod stream;
mod unary;

use crate::config::{Route, Target};
use crate::record::{AttemptOutcome, RequestRecord};
use crate::shutdown::Drain;
use crate::state::Live;
use crate::upstream::{Failure, UpstreamClient};
use attempt::{attempt, Attempts, Tried};
pub use conversation::{mint_id as mint_response_id, Responses};
use filters::error::{ApiError, ErrorKind};
use filters::Dialect;
pub use payload::{Payload, Rewritable};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
pub use side::call_once;
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

/// What the exchange needs of the client's request besides its body
/// (which `Payload` owns, so that a stream can release it).
pub struct ClientRequest<'a> {
    pub dialect: Dialect,
    pub model: &'a str,
    pub stream: bool,
    /// What a target must be able to take (`capabilities`).
    pub needs: filters::routing::Needs,
    pub headers: ClientHeaders,
    pub body_len: usize,
    /// Anthropic history with a signature we minted: it must be decoded
    /// (which drops it) rather than passed through. Scanned once.
    pub carries_synthetic_signature: bool,
    /// The bound on one upstream stream event (and on what is held before
    /// the commit point).
    pub max_event_bytes: usize,
    /// Graceful shutdown: a stream still running at its deadline ends.
    pub drain: &'a Drain,
    /// A client that reads nothing of its answer this long is dropped. Set
    /// only where a write can block (a stream, a large body): a timer per
    /// write was a measurable share of a small request's CPU.
    pub write_timeout: std::time::Duration,
    /// OpenAI Chat clients: how reasoning is sent.
    pub reasoning: filters::openai_chat::stream::ReasoningOutput,
    /// Gemini clients that did not ask for `alt=sse` get one JSON array.
    pub json_array: bool,
    /// OpenAI Responses clients: the answer's id and the conversation store.
    pub responses: Option<Responses<'a>>,
    /// The output cap: the model's, tightened by the key's.
    pub max_output_tokens: Option<u64>,
    /// The client key's provider allow-list (`None`: every provider).
    pub allowed_providers: Option<&'a [String]>,
    /// What a provider's limit and budget reserve for this request.
    pub reserve: crate::limits::Reserve,
    /// The session it belongs to, when affinity is on: its sticky target
    /// goes first, and what serves it becomes its sticky target.
    pub session: Option<&'a str>,
}

/// How reasoning reaches an OpenAI Chat client when the model does not
/// say: whole for the official Node SDK (its stream helper overwrites
/// `reasoning_content` with each delta instead of appending, so deltas
/// would leave only the last fragment in `finalChatCompletion()`), as
/// deltas for everyone else (chat UIs show thinking live).
pub fn openai_reasoning(
    configured: Option<filters::openai_chat::stream::ReasoningOutput>,
    req: &RequestHeader,
) -> filters::openai_chat::stream::ReasoningOutput {
    use filters::openai_chat::stream::ReasoningOutput;
    configured.unwrap_or_else(|| {
        let js = req
            .headers
            .get("x-stainless-lang")
            .is_some_and(|v| v.as_bytes() == b"js");
        if js {
            ReasoningOutput::Whole
        } else {
            ReasoningOutput::Delta
        }
    })
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
    payload: Payload,
) -> Result<(), ApiError> {
    let mut attempts = Attempts {
        req,
        live,
        total_deadline: rec.started + route.total_timeout,
        carries_synthetic_signature: req.carries_synthetic_signature,
        payload,
        reserve: &req.reserve,
        hold: None,
        provider_refused: None,
        not_allowed: false,
        sticky: None,
        served_replica: None,
    };
    // Affinity: the session's sticky target first (no session: nothing to pay).
    let first = match req.session {
        Some(s) => Box::pin(sticky_position(live, route, s, &mut attempts)).await,
        None => None,
    };
    let mut failures: Vec<(Arc<str>, Failure)> = Vec::new();
    let mut skipped: Vec<(&Target, Option<Instant>, bool)> = Vec::new();
    let mut lacked: Option<filters::routing::Lack> = None;
    for target in crate::state::affinity::ordered(&route.targets, first) {
        if let Some(lack) = target.capabilities.lacks(&req.needs, target.tool_emulation) {
            rec.attempts.push(crate::record::Attempt::untried(
                target,
                AttemptOutcome::Lacks(lack),
            ));
            lacked.get_or_insert(lack);
            continue;
        }
        match attempt(upstream, session, rec, route, &mut attempts, target, false).await? {
            Tried::Served(_) | Tried::ClientLeft => return Ok(()),
            Tried::Failed(f) => failures.push((target.provider.name.clone(), f)),
            Tried::Skipped {
                retry_at,
                rate_limited,
            } => skipped.push((target, retry_at, rate_limited)),
        }
    }
    // Nothing served. A target skipped because its keys rest is asked with
    // the key whose rest ends first: the gateway never refuses a model with
    // a 429 of its own. Failing that, when nothing was asked at all (every
    // breaker open), the target whose cooldown ends first is probed.
    let resting = skipped.iter().filter(|(_, _, keys)| *keys);
    let forced = resting
        .min_by_key(|(_, at, _)| *at)
        .or_else(|| {
            failures
                .is_empty()
                .then(|| {
                    skipped
                        .iter()
                        .filter(|(_, at, _)| at.is_some())
                        .min_by_key(|(_, at, _)| *at)
                })
                .flatten()
        })
        .map(|&(target, ..)| target);
    if let Some(target) = forced {
        match attempt(upstream, session, rec, route, &mut attempts, target, true).await? {
            Tried::Served(_) | Tried::ClientLeft => return Ok(()),
            Tried::Failed(f) => failures.push((target.provider.name.clone(), f)),
            Tried::Skipped { .. } => {}
        }
    }
    if let (Some(lack), true, true) = (lacked, failures.is_empty(), skipped.is_empty()) {
        // No target can take it: the request's own doing, as an upstream
        // would have said.
        return Err(ApiError::invalid(format!(
            "no target of model '{}' can take this request ({}): {}",
            req.model,
            lack.label(),
            lack.why()
        )));
    }
    if failures.is_empty() {
        // Never asked: a provider's own limit, a provider the key may not
        // use, every key disabled by a 401, or no healthy replica.
        match attempts.provider_refused.take() {
            Some(crate::limits::Refused::Limit(r)) => {
                // The headers tell of the limit that refused, not the key's.
                let now = live.limiter.clock(&live.config.limits).now_ms;
                let headroom = filters::limits::Headroom::exhausted(&r);
                rec.limit_headers =
                    filters::dialect::rate_limit_headers(req.dialect, &headroom, now);
                rec.result.refused = Some((r.scope, r.dimension));
                return Err(crate::limits::refusal_error(&r));
            }
            Some(crate::limits::Refused::Backend) => return Err(crate::limits::backend_error()),
            None => {}
        }
        if attempts.not_allowed && skipped.iter().all(|(_, at, keys)| at.is_none() && !keys) {
            return Err(ApiError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "this API key may not use any provider that serves model '{}'",
                    req.model
                ),
            ));
        }
        let e = if skipped.iter().any(|(_, _, keys)| *keys) {
            ApiError::new(
                ErrorKind::Api,
                format!(
                    "no usable upstream key for this model: its providers rejected them (request {})",
                    rec.id
                ),
            )
        } else {
            ApiError::new(
                ErrorKind::Overloaded,
                format!(
                    "every target of this model is unavailable (request {})",
                    rec.id
                ),
            )
        };
        return Err(e);
    }
    Err(final_error(&failures, &rec.id))
}

/// Where the session's sticky target is in the chain (if it still is), kept
/// in `attempts` so its replica and key are preferred too.
async fn sticky_position(
    live: &Live,
    route: &Route,
    session: &str,
    attempts: &mut Attempts<'_>,
) -> Option<usize> {
    let sticky = crate::state::affinity::lookup(live, route, session).await?;
    let at = sticky.position(route)?;
    attempts.sticky = Some(sticky);
    Some(at)
}

/// The most meaningful failure: a rate limit (its `Retry-After` tells the
/// client when to come back), else the last one.
fn final_error(failures: &[(Arc<str>, Failure)], request_id: &str) -> ApiError {
    let chosen = failures
        .iter()
        .find(|(_, f)| matches!(f, Failure::Status(429, _)))
        .or(failures.last());
    match chosen {
        Some((provider, f)) => {
            let mut e = f.to_api_error(provider, request_id);
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
        let e = final_error(&failures, "req_1");
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after.as_deref(), Some("3"));
        assert!(e.message.starts_with("all 2 targets failed"));
        let e = final_error(&failures[1..], "req_1");
        assert_eq!(filters::dialect::error_status(Dialect::OpenAiChat, &e), 502);
    }
}
