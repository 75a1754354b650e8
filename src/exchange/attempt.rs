//! One target's try: its breaker, a key from its pool, the call, and the
//! outcome recorded where it belongs (the breaker for the target's health,
//! the pool for the key's, the request record for the log and metrics).

pub(super) use super::payload::Prepared;
use super::payload::{self, Payload};
use super::stream::stream_target;
use super::unary::unary_target;
use super::{now, or_client_left, ClientRequest};
use crate::config::{Route, Target};
use crate::record::{Attempt, AttemptOutcome, RequestRecord};
use crate::state::Live;
use crate::upstream::{Failure, Outgoing, Phase, UpstreamCall, UpstreamClient};
use filters::breaker::Admission;
use filters::error::ApiError;
use filters::failure::{Health, Next};
use filters::key_pool::{KeyOutcome, Pick};
use pingora::proxy::Session;
use std::time::{Duration, Instant, SystemTime};

/// How long the upstream took, for the attempt's record.
#[derive(Debug, Default)]
pub(super) struct Timing {
    pub to_status: Option<Duration>,
    pub to_first_event: Option<Duration>,
}

/// One target's attempt, after the upstream answered with a 2xx status.
pub(super) struct Answer<'a> {
    pub upstream: &'a UpstreamClient,
    pub req: &'a ClientRequest<'a>,
    pub target: &'a Target,
    pub prepared: &'a mut Prepared,
    /// Released at a stream's commit point, with `prepared.body`.
    pub payload: &'a mut Payload,
    pub call: UpstreamCall,
    /// For the first event (or the whole body).
    pub deadline: Instant,
    /// For the whole request.
    pub total_deadline: Instant,
    /// When the request went out, for the time to the first event.
    pub sent: Instant,
}

pub(super) struct Attempts<'a> {
    pub req: &'a ClientRequest<'a>,
    pub live: &'a Live,
    /// The whole request's budget (`total_timeout`), from its arrival.
    pub total_deadline: Instant,
    /// Anthropic history with a signature we minted: it must be decoded
    /// (which drops it) rather than passed through. Scanned once.
    pub carries_synthetic_signature: bool,
    pub payload: Payload,
    /// What a provider's limit and budget reserve.
    pub reserve: &'a crate::limits::Reserve,
    /// The current target's provider-limit hold.
    pub hold: Option<crate::limits::Admission>,
    /// The first provider limit that turned a target away.
    pub provider_refused: Option<crate::limits::Refused>,
    /// A target was skipped: the key may not use its provider.
    pub not_allowed: bool,
    /// Where the session was last served (affinity), when its target is
    /// in this chain.
    pub sticky: Option<crate::state::affinity::Sticky>,
    /// The replica that took the last call.
    pub served_replica: Option<std::net::SocketAddr>,
}

impl Attempts<'_> {
    /// The session's sticky place when `target` is it.
    fn sticky_for(&self, target: &Target) -> Option<&crate::state::affinity::Sticky> {
        self.sticky.as_ref().filter(|s| s.is(target))
    }

    /// `target` (with `key`) served the request: the session's next place.
    fn remember(&self, route: &Route, target: &Target, key: Option<usize>) {
        let Some(session) = self.req.session else {
            return;
        };
        let sticky = crate::state::affinity::Sticky {
            provider: target.provider.name.clone(),
            model: target.model.clone(),
            replica: self.served_replica,
            key,
        };
        crate::state::affinity::record(self.live, route, session, sticky);
    }

    /// The body for `target`. Same dialect: the client's bytes with the
    /// model replaced — unless reasoning history carries a signature we
    /// minted, which must never reach Anthropic (a full decode drops it),
    /// or the bytes would break a quirk of the target's.
    fn prepare(&mut self, target: &Target) -> Result<Prepared, ApiError> {
        let provider = &target.provider;
        // A conversation the gateway keeps must be expanded, whoever serves it.
        let local_previous = self.req.responses.is_some_and(|r| r.local_previous);
        let spec = payload::Target {
            dialect: provider.dialect,
            model: &target.model,
            encode: &provider.encode,
            max_output_tokens: self.req.max_output_tokens,
            tool_emulation: target.tool_emulation && !target.capabilities.tools,
        };
        let pass_through = provider.dialect == self.req.dialect
            && !self.carries_synthetic_signature
            && !local_previous
            && !self.payload.breaks_quirks(self.req.dialect, &spec);
        self.payload.prepare(self.req.dialect, &spec, pass_through)
    }
}

/// The request's own upstream headers. They go after the provider's
/// credentials (`UpstreamClient::send`), and a later header replaces an
/// earlier one of the same name: the client's API version wins.
fn upstream_headers(
    client: &ClientRequest<'_>,
    pass_through: bool,
    provider: &crate::config::Provider,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut h = Vec::with_capacity(3);
    let accept = if client.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    h.push((http::header::ACCEPT, http::HeaderValue::from_static(accept)));
    // Same dialect: the client's API version and betas describe its own
    // request; a translated request has neither.
    if pass_through {
        for (name, value) in &client.headers.0 {
            if name.as_str() != "anthropic-beta" {
                h.push((name.clone(), value.clone()));
                continue;
            }
            // The provider's policy: another vendor's Anthropic endpoint
            // may refuse a beta it does not know.
            let Ok(text) = value.to_str() else { continue };
            let kept = provider.anthropic_beta.apply(text);
            match kept {
                Some(std::borrow::Cow::Borrowed(_)) => h.push((name.clone(), value.clone())),
                Some(std::borrow::Cow::Owned(v)) => {
                    if let Ok(v) = http::HeaderValue::try_from(v) {
                        h.push((name.clone(), v));
                    }
                }
                None => {}
            }
        }
    }
    h
}

/// What one target did with the request.
pub(super) enum Tried {
    /// The client has its response (or left while it streamed).
    Served(Served),
    /// The client left before anything was sent; the upstream call was dropped.
    ClientLeft,
    /// Not sent: breaker open, or every key cooling after 429s
    /// (`rate_limited`), until `retry_at`.
    Skipped {
        retry_at: Option<Instant>,
        rate_limited: bool,
    },
    Failed(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Served {
    Clean,
    /// The upstream failed after commit; the client got an in-stream error.
    FailedAfterCommit,
    /// The client left mid-stream; the upstream call was dropped.
    ClientLeft,
}

/// Whether the target may be tried now: `None` to go ahead (holding the
/// half-open probe if it is one), else why it is skipped.
fn admit(live: &Live, rec: &mut RequestRecord, target: &Target, forced: bool) -> Option<Tried> {
    let admission = if forced {
        Admission::Probe
    } else {
        live.breaker(target.slot).admit(now())
    };
    if let Admission::Rejected { retry_at } = admission {
        rec.attempts
            .push(Attempt::untried(target, AttemptOutcome::CircuitOpen));
        return Some(Tried::Skipped {
            retry_at: Some(retry_at),
            rate_limited: false,
        });
    }
    // Active health checks found no live replica: skip as if open.
    let replicas = live.provider(&target.provider).replicas.as_ref();
    if let Some(pool) = replicas.filter(|p| !p.any_healthy()) {
        live.breaker(target.slot).release_probe();
        rec.attempts
            .push(Attempt::untried(target, AttemptOutcome::Unhealthy));
        return Some(Tried::Skipped {
            retry_at: Some(now() + pool.recheck),
            rate_limited: false,
        });
    }
    None
}

/// One target: breaker, key, call, and the outcome recorded where it
/// belongs (breaker for the target's health, pool for the key's), and the
/// provider's limit held while it serves.
pub(super) async fn attempt(
    upstream: &UpstreamClient,
    session: &mut Session,
    rec: &mut RequestRecord,
    route: &Route,
    attempts: &mut Attempts<'_>,
    target: &Target,
    forced: bool,
) -> Result<Tried, ApiError> {
    // Marked before the try: a served answer writes the attempts header.
    let first_attempt = rec.attempts.len();
    let marks = rec.sticky.is_none() && attempts.sticky_for(target).is_some();
    if marks {
        rec.sticky = Some(first_attempt);
    }
    let tried = attempt_target(upstream, session, rec, route, attempts, target, forced).await;
    if marks && rec.attempts.len() == first_attempt {
        rec.sticky = None;
    }
    if let Some(hold) = attempts.hold.take() {
        match &tried {
            // Settled with the request's usage when it ends (the
            // reservation stands if the client left while it ran).
            Ok(Tried::Served(_) | Tried::ClientLeft) => rec.holds.push(hold),
            // Asked and failed: counted as a request, no tokens, no cost.
            _ => hold.release(Some(crate::limits::Used::NOTHING)).await,
        }
    }
    tried
}

/// Whether the client key may use the target's provider.
fn provider_allowed(rec: &mut RequestRecord, attempts: &mut Attempts<'_>, target: &Target) -> bool {
    let allowed = attempts
        .req
        .allowed_providers
        .is_none_or(|ps| ps.iter().any(|p| **p == *target.provider.name));
    if !allowed {
        rec.attempts
            .push(Attempt::untried(target, AttemptOutcome::NotAllowed));
        attempts.not_allowed = true;
    }
    allowed
}

/// Whether the provider's own limit admits one more upstream call (the
/// hold goes to `attempts.hold`); counted per call, just before it is sent.
async fn provider_admits(
    rec: &mut RequestRecord,
    route: &Route,
    attempts: &mut Attempts<'_>,
    target: &Target,
) -> bool {
    // The previous key's call failed: it used no tokens and cost nothing.
    if let Some(hold) = attempts.hold.take() {
        hold.release(Some(crate::limits::Used::NOTHING)).await;
    }
    let live = attempts.live;
    let Some(subject) = live.provider_subject(&target.provider) else {
        return true;
    };
    let settings = &live.config.limits;
    let lease = route.total_timeout + Duration::from_secs(60);
    let amounts = attempts.reserve.for_provider(target.slot);
    let admitted = Box::pin(
        live.limiter
            .admit(vec![subject], amounts, settings, lease, &rec.id),
    )
    .await;
    match admitted {
        Ok(hold) => {
            attempts.hold = Some(hold);
            true
        }
        Err(refused) => {
            rec.attempts
                .push(Attempt::untried(target, AttemptOutcome::ProviderLimit));
            if attempts.provider_refused.is_none() {
                attempts.provider_refused = Some(refused);
            }
            false
        }
    }
}

async fn attempt_target(
    upstream: &UpstreamClient,
    session: &mut Session,
    rec: &mut RequestRecord,
    route: &Route,
    attempts: &mut Attempts<'_>,
    target: &Target,
    forced: bool,
) -> Result<Tried, ApiError> {
    let provider = &target.provider;
    let live = attempts.live;
    let state = live.provider(provider);
    if !provider_allowed(rec, attempts, target) {
        return Ok(Tried::Skipped {
            retry_at: None,
            rate_limited: false,
        });
    }
    if let Some(skip) = admit(live, rec, target, forced) {
        return Ok(skip);
    }
    let mut prepared = match attempts.prepare(target) {
        Ok(p) => p,
        Err(e) => {
            live.breaker(target.slot).release_probe();
            return Err(e);
        }
    };
    // A key that is rate limited or rejected hands over to the next key of
    // the same target; any other failure moves on to the next target.
    let mut key_failure: Option<Failure> = None;
    // The session's key, on the first pick only: after its failure the
    // next key is the pool's choice.
    let mut preferred_key = attempts.sticky_for(target).and_then(|s| s.key);
    for _ in 0..provider.keys.len().max(1) {
        let now = now();
        if now >= attempts.total_deadline {
            live.breaker(target.slot).release_probe();
            return Ok(Tried::Failed(
                key_failure.unwrap_or(Failure::Timeout(Phase::Total)),
            ));
        }
        let picked = state
            .key_pool()
            .pick_preferring(now, &target.model, preferred_key.take());
        let key = match picked {
            Pick::NoKey => None,
            Pick::Key(i) => Some(i),
            Pick::Unavailable { retry_at } => {
                if let Some(f) = key_failure {
                    return Ok(Tried::Failed(f));
                }
                // Nothing else can serve: the key whose rest ends first.
                let earliest = if forced {
                    state.key_pool().pick_earliest(now, &target.model)
                } else {
                    None
                };
                if earliest.is_none() {
                    live.breaker(target.slot).release_probe();
                    rec.attempts
                        .push(Attempt::untried(target, AttemptOutcome::KeysCooling));
                    return Ok(Tried::Skipped {
                        retry_at,
                        rate_limited: true,
                    });
                }
                earliest
            }
        };
        if !provider_admits(rec, route, attempts, target).await {
            live.breaker(target.slot).release_probe();
            return Ok(key_failure.map_or(
                Tried::Skipped {
                    retry_at: None,
                    rate_limited: false,
                },
                Tried::Failed,
            ));
        }
        let (outcome, timing) = Box::pin(call(
            upstream,
            session,
            rec,
            attempts,
            target,
            &mut prepared,
            key,
            now,
        ))
        .await;
        record_outcome(live, target, key, &outcome);
        let mut record = |outcome| {
            rec.attempts.push(Attempt {
                provider: provider.clone(),
                model: target.model.clone(),
                key,
                outcome,
                to_status: timing.to_status,
                to_first_event: timing.to_first_event,
                started: now,
                ended: Instant::now(),
            });
            rec.attempts.len() - 1
        };
        match outcome {
            Tried::ClientLeft => {
                record(AttemptOutcome::ClientLeft);
                rec.result.status = 499;
                rec.result.error = Some("client went away before the answer".into());
                return Ok(outcome);
            }
            Tried::Served(_) => {
                let index = record(AttemptOutcome::Ok);
                rec.result.served_by = Some(index);
                attempts.remember(route, target, key);
                return Ok(outcome);
            }
            Tried::Failed(f) => {
                record(AttemptOutcome::Failed(f.kind()));
                if !f.falls_over() {
                    // The client's own mistake: another target would say the same.
                    return Err(f.to_api_error(&provider.name, &rec.id));
                }
                log::warn!(
                    "{} {}/{} key#{}: {f:?}",
                    rec.id,
                    provider.name,
                    target.model,
                    key.map_or(-1, |k| k as i64)
                );
                if key.is_none() || f.next() != Next::NextKey {
                    return Ok(Tried::Failed(f));
                }
                key_failure = Some(f);
            }
            Tried::Skipped { .. } => return Ok(outcome),
        }
    }
    Ok(key_failure.map_or(
        Tried::Skipped {
            retry_at: None,
            rate_limited: true,
        },
        Tried::Failed,
    ))
}

/// One call to the target with one key, and its answer relayed when it is
/// a 2xx; `now` is when the call starts.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one attempt, borrowed"
)]
async fn call(
    upstream: &UpstreamClient,
    session: &mut Session,
    rec: &mut RequestRecord,
    attempts: &mut Attempts<'_>,
    target: &Target,
    prepared: &mut Prepared,
    key: Option<usize>,
    now: Instant,
) -> (Tried, Timing) {
    let provider = &target.provider;
    let state = attempts.live.provider(provider);
    let headers = upstream_headers(attempts.req, prepared.pass_through, provider);
    let total_deadline = attempts.total_deadline;
    let deadline = (now + target.timeouts.first_event).min(total_deadline);
    // Boxed, like the stream and unary halves below: these futures are
    // large, and every level that held them inline would copy them
    // (measured: a third of the gateway's instructions were memcpy).
    let outgoing = Outgoing {
        method: "POST",
        path: target.generate_path(attempts.req.stream),
        key,
        headers: &headers,
        body: prepared.body.clone(),
        replica: attempts
            .sticky_for(target)
            .and_then(|s| s.replica)
            .filter(|_| state.replicas.is_some()),
    };
    let replicas = state.replicas.as_deref();
    let send = Box::pin(upstream.send(provider, replicas, &target.timeouts, outgoing, deadline));
    let mut timing = Timing::default();
    let outcome = match or_client_left(session, send).await {
        None => Tried::ClientLeft,
        Some(Err(f)) => Tried::Failed(f),
        Some(Ok(call)) if !(200..300).contains(&call.status) => {
            timing.to_status = Some(now.elapsed());
            Tried::Failed(call.into_failure(deadline).await)
        }
        Some(Ok(call)) => {
            attempts.served_replica = call.replica;
            timing.to_status = Some(now.elapsed());
            let req = attempts.req;
            let answer = Answer {
                upstream,
                req,
                target,
                prepared,
                payload: &mut attempts.payload,
                call,
                deadline,
                total_deadline,
                sent: now,
            };
            let result = if req.stream {
                Box::pin(stream_target(session, rec, answer, &mut timing)).await
            } else {
                Box::pin(unary_target(session, rec, answer, &mut timing)).await
            };
            match result {
                // Left before the commit: nothing was sent.
                Ok(Served::ClientLeft) if rec.result.status == 0 => Tried::ClientLeft,
                Ok(served) => Tried::Served(served),
                Err(f) => Tried::Failed(f),
            }
        }
    };
    (outcome, timing)
}

/// The classification (`filters::failure`), applied: what an outcome means
/// for the target's breaker and for the key that carried the request.
pub(super) fn record_outcome(live: &Live, target: &Target, key: Option<usize>, outcome: &Tried) {
    let now = now();
    let wall = SystemTime::now();
    let key_outcome = {
        let mut breaker = live.breaker(target.slot);
        match outcome {
            Tried::Skipped { .. } => return,
            // Says nothing about the upstream.
            Tried::ClientLeft | Tried::Served(Served::ClientLeft) => {
                breaker.release_probe();
                KeyOutcome::Success(200)
            }
            Tried::Served(Served::Clean) => {
                breaker.on_success(now);
                KeyOutcome::Success(200)
            }
            Tried::Served(Served::FailedAfterCommit) => {
                breaker.on_failure(now);
                KeyOutcome::Success(200)
            }
            Tried::Failed(f) => {
                match f.health() {
                    Health::Healthy => breaker.on_success(now),
                    Health::Sick => breaker.on_failure(now),
                    Health::Neutral => breaker.release_probe(),
                }
                // Keys rest per model in their pool; a keyless target (a
                // local server) rests itself.
                let max = target.provider.max_cooldown;
                let keyless = target.provider.keys.is_empty();
                if let Some(rest) = f
                    .retry_after(wall, max)
                    .filter(|_| keyless || f.health() == Health::Sick)
                {
                    breaker.hold_until(now.checked_add(rest).unwrap_or(now));
                }
                f.key_outcome(wall, max)
            }
        }
    };
    if let Some(i) = key {
        live.provider(&target.provider)
            .key_pool()
            .record(i, &target.model, now, wall, key_outcome);
    }
}
