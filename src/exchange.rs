//! The commit-late loop: try each target of the route in order; fall over
//! while nothing has reached the client; commit only with a real first
//! event (or a complete body) in hand; after commit, stream translated
//! events and turn any upstream failure into the dialect's in-stream error.

use crate::config::{Provider, Route, Target};
use crate::gateway::{respond, RequestCtx};
use crate::upstream::{Failure, Outgoing, Phase, UpstreamCall, UpstreamClient};
use bytes::{Bytes, BytesMut};
use filters::breaker::Admission;
use filters::canonical::{estimate_tokens_from_bytes, Request, SYNTHETIC_SIGNATURE_PREFIX};
use filters::error::{ApiError, ErrorKind};
use filters::failure::{Health, Next};
use filters::json_peek::Members;
use filters::key_pool::{KeyOutcome, Pick};
use filters::stream::{Progress, StreamTranscoder};
use filters::{anthropic, openai_chat, Dialect};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use std::sync::Mutex;
use std::time::SystemTime;
use std::time::{Duration, Instant};

/// Largest non-streaming upstream body we accept.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;
/// After the terminator, how long to wait for the body's end before
/// giving up on reusing the connection.
const DRAIN_BUDGET: Duration = Duration::from_millis(500);

/// The request path's clock: tokio's, so breaker and key-pool timing can be
/// tested under paused time; a std `Instant` for everything downstream.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Client headers that matter upstream on same-dialect routes.
#[derive(Debug, Default)]
pub struct ClientHeaders {
    anthropic_version: Option<http::HeaderValue>,
    anthropic_beta: Option<http::HeaderValue>,
}

impl ClientHeaders {
    pub fn from_request(req: &RequestHeader) -> Self {
        Self {
            anthropic_version: req.headers.get("anthropic-version").cloned(),
            anthropic_beta: req.headers.get("anthropic-beta").cloned(),
        }
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

/// The body for one target, and how its answer must be handled.
struct Prepared {
    body: Bytes,
    pass_through: bool,
    include_usage: bool,
}

/// One target's attempt, after the upstream answered with a 2xx status.
struct Answer<'a> {
    upstream: &'a UpstreamClient,
    req: &'a ClientRequest<'a>,
    target: &'a Target,
    prepared: &'a Prepared,
    call: UpstreamCall,
    /// For the first event (or the whole body).
    deadline: Instant,
    /// For the whole request.
    total_deadline: Instant,
}

struct Attempts<'a> {
    req: &'a ClientRequest<'a>,
    /// The whole request's budget (`total_timeout`), from its arrival.
    total_deadline: Instant,
    /// Anthropic history with a signature we minted: it must be decoded
    /// (which drops it) rather than passed through. Scanned once.
    carries_synthetic_signature: bool,
    canonical: Option<Request>,
}

impl Attempts<'_> {
    fn canonical(&mut self) -> Result<&Request, ApiError> {
        if self.canonical.is_none() {
            let decoded = match self.req.dialect {
                Dialect::OpenAiChat => openai_chat::request::decode(self.req.body)?,
                Dialect::Anthropic => anthropic::request::decode(self.req.body)?,
            };
            self.canonical = Some(decoded);
        }
        self.canonical
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorKind::Api, "request decode failed"))
    }

    /// Same dialect: the client's bytes with only `model` replaced — unless
    /// reasoning history carries a signature we minted, which must never
    /// reach Anthropic (full decode drops it).
    fn prepare(&mut self, target: &Target, route: &Route) -> Result<Prepared, ApiError> {
        let provider = &target.provider;
        let req = self.req;
        let can_pass = provider.dialect == req.dialect && !self.carries_synthetic_signature;
        if can_pass {
            let quoted = serde_json::to_vec(&target.model)
                .map_err(|e| ApiError::new(ErrorKind::Api, e.to_string()))?;
            let body = req
                .members
                .replace("model", &quoted)
                .unwrap_or_else(|| req.body.to_vec());
            return Ok(Prepared {
                body: Bytes::from(body),
                pass_through: true,
                include_usage: false,
            });
        }
        let canonical = self.canonical()?;
        let value = match provider.dialect {
            Dialect::OpenAiChat => openai_chat::request::encode(
                canonical,
                &target.model,
                &provider.openai,
                route.max_output_tokens,
            ),
            Dialect::Anthropic => anthropic::request::encode(
                canonical,
                &target.model,
                &provider.anthropic,
                route.max_output_tokens,
            )?,
        };
        let body =
            serde_json::to_vec(&value).map_err(|e| ApiError::new(ErrorKind::Api, e.to_string()))?;
        Ok(Prepared {
            body: Bytes::from(body),
            pass_through: false,
            include_usage: canonical.include_usage,
        })
    }
}

/// The request's own upstream headers. They go after the provider's
/// credentials (`UpstreamClient::send`), and a later header replaces an
/// earlier one of the same name: the client's `anthropic-version` wins.
fn upstream_headers(
    provider: &Provider,
    client: &ClientRequest<'_>,
    pass_through: bool,
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
    if provider.dialect == Dialect::Anthropic && pass_through {
        if let Some(v) = client.headers.anthropic_version.clone() {
            h.push((http::HeaderName::from_static("anthropic-version"), v));
        }
        if let Some(beta) = client.headers.anthropic_beta.clone() {
            h.push((http::HeaderName::from_static("anthropic-beta"), beta));
        }
    }
    h
}

/// What one target did with the request.
enum Tried {
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
enum Served {
    Clean,
    /// The upstream failed after commit; the client got an in-stream error.
    FailedAfterCommit,
    /// The client left mid-stream; the upstream call was dropped.
    ClientLeft,
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
    ctx: &mut RequestCtx,
    route: &Route,
    req: &ClientRequest<'_>,
) -> Result<(), ApiError> {
    let started = ctx.started.unwrap_or_else(Instant::now);
    let carries_synthetic_signature = req.dialect == Dialect::Anthropic
        && memchr::memmem::find(req.body, SYNTHETIC_SIGNATURE_PREFIX.as_bytes()).is_some();
    let mut attempts = Attempts {
        req,
        total_deadline: started + route.total_timeout,
        carries_synthetic_signature,
        canonical: None,
    };
    let mut failures: Vec<(String, Failure)> = Vec::new();
    let mut skipped: Vec<(&Target, Option<Instant>, bool)> = Vec::new();
    for target in &route.targets {
        match attempt(upstream, session, ctx, route, &mut attempts, target, false).await? {
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
            match attempt(upstream, session, ctx, route, &mut attempts, target, true).await? {
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

/// One target: breaker, key, call, and the outcome recorded where it
/// belongs (breaker for the target's health, pool for the key's).
async fn attempt(
    upstream: &UpstreamClient,
    session: &mut Session,
    ctx: &mut RequestCtx,
    route: &Route,
    attempts: &mut Attempts<'_>,
    target: &Target,
    forced: bool,
) -> Result<Tried, ApiError> {
    let provider = &target.provider;
    let label = format!("{}/{}", provider.name, target.model);
    let admission = if forced {
        Admission::Probe
    } else {
        lock(&target.breaker).admit(now())
    };
    if let Admission::Rejected { retry_at } = admission {
        ctx.attempts.push(format!("{label}=circuit-open"));
        return Ok(Tried::Skipped {
            retry_at: Some(retry_at),
            rate_limited: false,
        });
    }
    // Active health checks found no live replica: skip as if open.
    if let Some(pool) = provider.replicas.as_ref().filter(|p| !p.any_healthy()) {
        lock(&target.breaker).release_probe();
        ctx.attempts.push(format!("{label}=unhealthy"));
        return Ok(Tried::Skipped {
            retry_at: Some(now() + pool.recheck),
            rate_limited: false,
        });
    }
    let prepared = match attempts.prepare(target, route) {
        Ok(p) => p,
        Err(e) => {
            lock(&target.breaker).release_probe();
            return Err(e);
        }
    };
    let path = provider.generate_path();
    // A key that is rate limited or rejected hands over to the next key of
    // the same target; any other failure moves on to the next target.
    let mut key_failure: Option<Failure> = None;
    for _ in 0..provider.keys.len().max(1) {
        let now = now();
        if now >= attempts.total_deadline {
            lock(&target.breaker).release_probe();
            return Ok(Tried::Failed(
                key_failure.unwrap_or(Failure::Timeout(Phase::Total)),
            ));
        }
        let key = match lock(&provider.key_pool).pick(now, &target.model) {
            Pick::NoKey => None,
            Pick::Key(i) => Some(i),
            Pick::Unavailable { retry_at } => {
                if let Some(f) = key_failure {
                    return Ok(Tried::Failed(f));
                }
                lock(&target.breaker).release_probe();
                ctx.attempts.push(format!("{label}=keys-cooling"));
                return Ok(Tried::Skipped {
                    retry_at,
                    rate_limited: true,
                });
            }
        };
        let headers = upstream_headers(provider, attempts.req, prepared.pass_through);
        let total_deadline = attempts.total_deadline;
        let deadline = (now + target.timeouts.first_event).min(total_deadline);
        // Boxed, like the stream and unary halves below: these futures are
        // large, and every level that held them inline would copy them
        // (measured: a third of the gateway's instructions were memcpy).
        let outgoing = Outgoing {
            path: &path,
            key,
            headers: &headers,
            body: prepared.body.clone(),
        };
        let send = Box::pin(upstream.send(provider, &target.timeouts, outgoing, deadline));
        let outcome = match or_client_left(session, send).await {
            None => Tried::ClientLeft,
            Some(Err(f)) => Tried::Failed(f),
            Some(Ok(call)) if !(200..300).contains(&call.status) => {
                Tried::Failed(call.into_failure(deadline).await)
            }
            Some(Ok(call)) => {
                let answer = Answer {
                    upstream,
                    req: attempts.req,
                    target,
                    prepared: &prepared,
                    call,
                    deadline,
                    total_deadline,
                };
                let result = if attempts.req.stream {
                    Box::pin(stream_target(session, ctx, answer)).await
                } else {
                    Box::pin(unary_target(session, ctx, answer)).await
                };
                match result {
                    // Left before the commit: nothing was sent.
                    Ok(Served::ClientLeft) if ctx.status == 0 => Tried::ClientLeft,
                    Ok(served) => Tried::Served(served),
                    Err(f) => Tried::Failed(f),
                }
            }
        };
        record_outcome(target, key, &outcome);
        let key_label = key
            .and_then(|i| provider.key_labels.get(i))
            .map_or("", String::as_str);
        match outcome {
            Tried::ClientLeft => {
                ctx.attempts.push(format!("{label}=client-left"));
                ctx.status = 499;
                ctx.error = Some("client went away before the answer".into());
                return Ok(outcome);
            }
            Tried::Served(_) => {
                ctx.attempts.push(format!("{label}=ok{key_label}"));
                ctx.served_by = Some(label);
                return Ok(outcome);
            }
            Tried::Failed(f) => {
                ctx.attempts
                    .push(format!("{label}={}{key_label}", f.label()));
                if !f.falls_over() {
                    // The client's own mistake: another target would say the same.
                    return Err(f.to_api_error(&provider.name));
                }
                log::warn!("{} {label}{key_label}: {f:?}", ctx.id);
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent
    // (plain counters and states), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The classification (`filters::failure`), applied: what an outcome means
/// for the target's breaker and for the key that carried the request.
fn record_outcome(target: &Target, key: Option<usize>, outcome: &Tried) {
    let now = now();
    let wall = SystemTime::now();
    let key_outcome = {
        let mut breaker = lock(&target.breaker);
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
                let keyless = target.provider.keys.is_empty();
                if let Some(rest) = f
                    .retry_after(wall)
                    .filter(|_| keyless || f.health() == Health::Sick)
                {
                    breaker.hold_until(now + rest);
                }
                f.key_outcome(wall)
            }
        }
    };
    if let Some(i) = key {
        lock(&target.provider.key_pool).record(i, &target.model, now, wall, key_outcome);
    }
}

/// The most meaningful failure: a rate limit (its `Retry-After` tells the
/// client when to come back), else the last one.
fn final_error(failures: &[(String, Failure)]) -> ApiError {
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

async fn unary_target(
    session: &mut Session,
    ctx: &mut RequestCtx,
    a: Answer<'_>,
) -> Result<Served, Failure> {
    let Answer {
        upstream,
        req,
        target,
        prepared,
        mut call,
        deadline,
        ..
    } = a;
    let Some(body) = or_client_left(session, call.read_all(deadline, MAX_UPSTREAM_BODY)).await
    else {
        return Ok(Served::ClientLeft);
    };
    let body = body?;
    upstream.release(call);
    let upstream_dialect = target.provider.dialect;
    let out: Bytes = if prepared.pass_through {
        let members =
            filters::json_peek::members(&body).map_err(|e| Failure::BadResponse(e.to_string()))?;
        ctx.usage = filters::stream::usage_of_members(upstream_dialect, &members);
        let quoted =
            serde_json::to_vec(req.model).map_err(|e| Failure::BadResponse(e.to_string()))?;
        match members.str("model") {
            Some(m) if m != req.model => members
                .replace("model", &quoted)
                .map(Bytes::from)
                .unwrap_or(body.clone()),
            _ => body.clone(),
        }
    } else {
        let decoded = match upstream_dialect {
            Dialect::OpenAiChat => openai_chat::response::decode(&body),
            Dialect::Anthropic => anthropic::response::decode(&body),
        }
        .map_err(|e| Failure::BadResponse(e.message))?;
        ctx.usage = Some(decoded.usage);
        let v = match req.dialect {
            Dialect::OpenAiChat => openai_chat::response::encode(&decoded, req.model),
            Dialect::Anthropic => anthropic::response::encode(&decoded, req.model),
        };
        Bytes::from(serde_json::to_vec(&v).map_err(|e| Failure::BadResponse(e.to_string()))?)
    };
    let extra = target_headers(ctx, target);
    let _ = respond(session, ctx, 200, "application/json", out, &extra, false).await;
    Ok(Served::Clean)
}

fn target_headers(ctx: &RequestCtx, target: &Target) -> Vec<(&'static str, String)> {
    let mut extra = vec![(
        "x-modelswitch-target",
        format!("{}/{}", target.provider.name, target.model),
    )];
    if !ctx.attempts.is_empty() {
        extra.push(("x-modelswitch-attempts", ctx.attempts.join(", ")));
    }
    extra
}

async fn stream_target(
    session: &mut Session,
    ctx: &mut RequestCtx,
    a: Answer<'_>,
) -> Result<Served, Failure> {
    let Answer {
        upstream,
        req,
        target,
        prepared,
        mut call,
        deadline,
        total_deadline,
    } = a;
    if !call.is_event_stream() {
        return Err(Failure::BadResponse(format!(
            "expected an event stream, got '{}'",
            call.content_type
        )));
    }
    let provider = &target.provider;
    let mut t = if prepared.pass_through {
        let rename = Some(req.model.to_owned()).filter(|m| *m != target.model);
        StreamTranscoder::pass_through(req.dialect, rename)
    } else {
        let estimate = estimate_tokens_from_bytes(req.body.len());
        StreamTranscoder::translate(
            provider.dialect,
            req.dialect,
            req.model,
            prepared.include_usage,
            estimate,
        )
    };
    let mut out = BytesMut::with_capacity(4096);
    // Before commit: everything stays here, so a failure can still fall over.
    let mut upstream_ended = false;
    while *t.progress() == Progress::Pending {
        let Some(read) = or_client_left(session, call.read(deadline, Phase::FirstEvent)).await
        else {
            return Ok(Served::ClientLeft);
        };
        match read? {
            Some(chunk) => {
                t.feed(&chunk, &mut out);
            }
            None => {
                upstream_ended = true;
                t.finish(&mut out);
            }
        }
    }
    if let Progress::Failed(e) = t.progress() {
        // Nothing real yet: fall over. Content and then a failure in the
        // same read is past the commit point: the client gets the content
        // and the in-stream error already in `out`.
        if !t.has_content() {
            return Err(Failure::Status(e.status_for(provider.dialect), e.clone()));
        }
    }

    // Commit.
    ctx.status = 200;
    let mut resp = ResponseHeader::build(200, Some(8)).map_err(|e| Failure::Io(e.to_string()))?;
    let _ = resp.insert_header("content-type", "text/event-stream; charset=utf-8");
    let _ = resp.insert_header("cache-control", "no-cache");
    let _ = resp.insert_header("x-accel-buffering", "no");
    let _ = resp.insert_header("transfer-encoding", "chunked");
    let _ = resp.insert_header("x-request-id", ctx.id.as_str());
    for (k, v) in target_headers(ctx, target) {
        let _ = resp.insert_header(k, v);
    }
    if session
        .write_response_header(Box::new(resp), false)
        .await
        .is_err()
        || !write(session, &mut out).await
    {
        ctx.error = Some("client went away".into());
        return Ok(Served::ClientLeft); // dropping `call` aborts the upstream request
    }

    let idle = target.timeouts.idle;
    let keepalive = target.timeouts.keepalive;
    let mut idle_deadline = now() + idle;
    let mut next_keepalive = now() + keepalive;
    while *t.progress() == Progress::Streaming && !upstream_ended {
        let wake = idle_deadline.min(next_keepalive).min(total_deadline);
        let Some(read) = or_client_left(session, call.read(wake, Phase::Idle)).await else {
            ctx.error = Some("client went away mid-stream".into());
            ctx.usage = t.usage();
            return Ok(Served::ClientLeft);
        };
        match read {
            Ok(Some(chunk)) => {
                t.feed(&chunk, &mut out);
                idle_deadline = now() + idle;
                next_keepalive = now() + keepalive;
            }
            Ok(None) => {
                upstream_ended = true;
                t.finish(&mut out);
            }
            Err(Failure::Timeout(_)) if now() < idle_deadline.min(total_deadline) => {
                t.keepalive(&mut out);
                next_keepalive = now() + keepalive;
            }
            Err(Failure::Timeout(_)) => {
                let e = if now() >= total_deadline {
                    ApiError::new(ErrorKind::Timeout, "the request exceeded its total_timeout")
                } else {
                    ApiError::new(
                        ErrorKind::Timeout,
                        format!("upstream {} stalled for {idle:?}", provider.name),
                    )
                };
                t.fail(&e, &mut out);
            }
            Err(f) => t.fail(&f.to_api_error(&provider.name), &mut out),
        }
        if !write(session, &mut out).await {
            ctx.error = Some("client went away mid-stream".into());
            ctx.usage = t.usage();
            return Ok(Served::ClientLeft);
        }
    }
    let served = if let Progress::Failed(e) = t.progress() {
        ctx.error = Some(format!("after commit: {}", e.message));
        Served::FailedAfterCommit
    } else {
        Served::Clean
    };
    ctx.usage = t.usage();
    let _ = session.write_response_body(None, true).await;
    if *t.progress() == Progress::Done {
        // Reuse the connection only if its body really ended.
        let drained = upstream_ended
            || matches!(call.read(now() + DRAIN_BUDGET, Phase::Body).await, Ok(None));
        if drained {
            upstream.release(call);
        }
    }
    Ok(served)
}

/// Writes and empties `out`; false when the client is gone.
async fn write(session: &mut Session, out: &mut BytesMut) -> bool {
    if out.is_empty() {
        return true;
    }
    let bytes = out.split().freeze();
    session
        .write_response_body(Some(bytes), false)
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let snap = crate::config::parse(CONFIG).unwrap();
        let target = &snap.routes["m"].targets[0];
        let admit = || lock(&target.breaker).admit(now());

        record_outcome(target, Some(0), &failed(503, None));
        record_outcome(target, Some(0), &failed(502, None));
        assert!(
            matches!(admit(), Admission::Rejected { .. }),
            "two failures open it"
        );
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(matches!(admit(), Admission::Rejected { .. }));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(admit(), Admission::Probe, "half-open after the cooldown");
        record_outcome(target, Some(0), &Tried::Served(Served::Clean));
        assert_eq!(admit(), Admission::Allowed, "a good probe closes it");

        // A 429 rests the key for this model (Retry-After), not the target.
        record_outcome(target, Some(0), &failed(429, Some("20")));
        assert_eq!(admit(), Admission::Allowed);
        let pick = || lock(&target.provider.key_pool).pick(now(), "up");
        assert_eq!([pick(), pick()], [Pick::Key(1), Pick::Key(1)]);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(
            [pick(), pick()],
            [Pick::Key(0), Pick::Key(1)],
            "back in rotation"
        );

        // A 503 with Retry-After rests the target that long.
        record_outcome(target, Some(1), &failed(503, Some("60")));
        assert!(matches!(admit(), Admission::Rejected { .. }));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(admit(), Admission::Probe);
        // A client left: says nothing about the target; the probe is free again.
        record_outcome(target, None, &Tried::ClientLeft);
        assert_eq!(admit(), Admission::Probe);
    }

    #[test]
    fn final_error_prefers_rate_limits() {
        let failures = vec![
            (
                "a".to_string(),
                Failure::Status(429, ApiError::from_upstream(429, b"{}", Some("3".into()))),
            ),
            ("b".to_string(), Failure::Connect("refused".into())),
        ];
        let e = final_error(&failures);
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after.as_deref(), Some("3"));
        assert!(e.message.starts_with("all 2 targets failed"));
        let e = final_error(&failures[1..]);
        assert_eq!(e.status_for(Dialect::OpenAiChat), 502);
    }
}
