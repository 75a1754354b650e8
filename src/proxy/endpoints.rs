//! The endpoints answered by the gateway itself: health, the model
//! listing, token counting and the upstream key statistics.

use super::auth::{authenticate, require_role};
use crate::downstream::{read_body, respond};
use crate::record::RequestRecord;
use crate::state::Live;
use bytes::Bytes;
use filters::canonical::estimate_tokens_from_bytes;
use filters::dialect;
use filters::error::ApiError;
use filters::key_pool::KeyState;
use filters::Dialect;
use pingora::proxy::Session;
use serde_json::json;
use std::time::{Instant, UNIX_EPOCH};

pub async fn health(session: &mut Session, rec: &mut RequestRecord) -> Result<(), ApiError> {
    let head = session.req_header().method == http::Method::HEAD;
    let body = Bytes::from_static(b"{\"status\":\"ok\"}");
    respond(session, rec, 200, "application/json", body, &[], head).await;
    Ok(())
}

/// `GET /v1/models`: the models this key may use, in the client's shape.
pub async fn models(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    dialect: Dialect,
) -> Result<(), ApiError> {
    let key = authenticate(&live.config, session)?;
    let names: Vec<&str> = live
        .config
        .model_names
        .iter()
        .map(String::as_str)
        .filter(|m| key.allows_model(m))
        .collect();
    let body = Bytes::from(dialect::model_listing(dialect, &names).to_string());
    respond(session, rec, 200, "application/json", body, &[], false).await;
    Ok(())
}

/// An honest estimate: the tokenizer of whatever model serves the request
/// is not known here, so count the text the model will read (system,
/// messages, tool definitions) at about four bytes a token.
pub async fn count_tokens(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
) -> Result<(), ApiError> {
    rec.client.dialect = Some(Dialect::Anthropic);
    let key = authenticate(&live.config, session)?;
    rec.client.key_name = Some(key.name.clone());
    let body = read_body(session, &live.config).await?;
    let req = dialect::decode_request(Dialect::Anthropic, &body)?;
    let tokens = estimate_tokens_from_bytes(filters::canonical::text_bytes(&req));
    let body = Bytes::from(json!({"input_tokens": tokens}).to_string());
    respond(session, rec, 200, "application/json", body, &[], false).await;
    Ok(())
}

/// `GET /api/upstream-keys/stats` (admin): every upstream key's state and
/// counters; values appear only masked.
pub async fn key_stats(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
) -> Result<(), ApiError> {
    let key = authenticate(&live.config, session)?;
    require_role(&key, "admin")?;
    let now = crate::exchange::now();
    let providers: Vec<serde_json::Value> = live
        .providers()
        .map(|(p, state)| {
            let report = state.key_pool().report(now);
            let keys: Vec<serde_json::Value> = p
                .keys
                .iter()
                .zip(report)
                .map(|(secret, (state, st))| {
                    let last_used = st
                        .last_used
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| d.as_secs());
                    json!({
                        "key": secret.masked(), "state": state.name(),
                        "cooling_seconds": cooling_seconds(state, now),
                        "requests": st.requests, "successes": st.successes,
                        "failures": st.failures, "status_counts": st.status_counts,
                        "last_used": last_used,
                    })
                })
                .collect();
            json!({"provider": &*p.name, "keys": keys})
        })
        .collect();
    let body = Bytes::from(json!({ "providers": providers }).to_string());
    respond(session, rec, 200, "application/json", body, &[], false).await;
    Ok(())
}

fn cooling_seconds(state: KeyState, now: Instant) -> Option<f64> {
    match state {
        KeyState::Cooling { until } => Some(until.saturating_duration_since(now).as_secs_f64()),
        _ => None,
    }
}
