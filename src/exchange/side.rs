//! Calls beside generation (embeddings, token counts, stored responses):
//! one request to one target with a key from its pool, the answer read
//! whole. No streaming and no commit point, so the caller simply moves on
//! to its next target. Only the key learns from the outcome: a provider
//! without a count endpoint (404), or a client asking for an expired
//! response, says nothing about how the provider generates, so the
//! generation breaker is neither consulted nor moved.

use super::now;
use crate::config::Target;
use crate::record::{Attempt, AttemptOutcome, RequestRecord};
use crate::state::Live;
use crate::upstream::{Failure, Outgoing, UpstreamClient};
use bytes::Bytes;
use filters::key_pool::{KeyOutcome, Pick};
use std::time::SystemTime;

/// Largest answer accepted (a big embeddings batch).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Sends `body` to `path` on `target`'s provider; the 2xx body, or why not.
pub async fn call_once(
    upstream: &UpstreamClient,
    live: &Live,
    rec: &mut RequestRecord,
    target: &Target,
    request: (&str, &str),
    body: Bytes,
) -> Result<Bytes, Failure> {
    call_within(upstream, live, rec, target, request, body, MAX_BODY).await
}

/// [`call_once`] with the answer capped at `max_body` bytes (the admin
/// plane's model listing wants far less than an embeddings batch).
pub async fn call_within(
    upstream: &UpstreamClient,
    live: &Live,
    rec: &mut RequestRecord,
    target: &Target,
    (method, path): (&str, &str),
    body: Bytes,
    max_body: usize,
) -> Result<Bytes, Failure> {
    let provider = &target.provider;
    let state = live.provider(provider);
    let started = now();
    let key = match state.key_pool().pick(started, &target.model) {
        Pick::Key(i) => Some(i),
        Pick::NoKey => None,
        Pick::Unavailable { .. } => state.key_pool().pick_earliest(started, &target.model),
    };
    let headers = [(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    )];
    let deadline = started + target.timeouts.first_event;
    let outgoing = Outgoing {
        method,
        path,
        key,
        headers: &headers,
        body,
        replica: None,
    };
    let replicas = state.replicas.as_deref();
    let result = async {
        let mut call = upstream
            .send(provider, replicas, &target.timeouts, outgoing, deadline)
            .await?;
        if !(200..300).contains(&call.status) {
            return Err(call.into_failure(deadline).await);
        }
        let body = call.read_all(deadline, max_body).await?;
        upstream.release(call);
        Ok(body)
    }
    .await;
    if let Some(i) = key {
        let wall = SystemTime::now();
        let outcome = match &result {
            Ok(_) => KeyOutcome::Success(200),
            Err(f) => f.key_outcome(wall, provider.max_cooldown),
        };
        state
            .key_pool()
            .record(i, &target.model, now(), wall, outcome);
    }
    rec.attempts.push(Attempt {
        provider: provider.clone(),
        model: target.model.clone(),
        key,
        outcome: match &result {
            Ok(_) => AttemptOutcome::Ok,
            Err(f) => AttemptOutcome::Failed(f.kind()),
        },
        to_status: Some(started.elapsed()),
        to_first_event: None,
        started,
        ended: now(),
    });
    if result.is_ok() {
        rec.result.served_by = Some(rec.attempts.len() - 1);
    }
    result
}
