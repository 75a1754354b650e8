//! The endpoints answered by the gateway itself: health, the model
//! listing, token counting and the upstream key statistics.

use super::auth::{authenticate, authenticate_admin, authenticate_caller, require_role};
use crate::downstream::{read_body, respond, respond_json};
use crate::record::RequestRecord;
use crate::state::Live;
use crate::upstream::UpstreamClient;
use bytes::Bytes;
use filters::conversations::ConversationStore;
use filters::dialect;
use filters::error::{ApiError, ErrorKind};
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
    let key = authenticate(live, session)?;
    let names: Vec<&str> = live
        .config
        .model_names
        .iter()
        .map(String::as_str)
        .filter(|m| key.allows_model(m))
        .collect();
    respond_json(session, rec, &dialect::model_listing(dialect, &names)).await;
    Ok(())
}

/// `GET /v1/models/{id}`: one model this key may use, in the client's shape.
pub async fn model(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    dialect: Dialect,
) -> Result<(), ApiError> {
    let key = authenticate(live, session)?;
    let path = session.req_header().uri.path();
    let id = filters::ingress::trailing_id(path).unwrap_or_default();
    if !live.config.routes.contains_key(&id) || !key.allows_model(&id) {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("model '{id}' is not configured"),
        ));
    }
    let v = dialect::model_entry(dialect, &id);
    respond_json(session, rec, &v).await;
    Ok(())
}

/// `GET`/`DELETE /v1/responses/{id}`: a response the gateway kept for a
/// model whose provider keeps none, or — for one a Responses provider
/// answered — that provider's own copy.
pub async fn stored_response(
    upstream: &UpstreamClient,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    store: &ConversationStore,
) -> Result<(), ApiError> {
    rec.client.dialect = Some(Dialect::OpenAiResponses);
    let key = authenticate_caller(live, session)?;
    rec.client.key_name = Some(key.name.clone());
    let req = session.req_header();
    let id = filters::ingress::trailing_id(req.uri.path()).unwrap_or_default();
    let delete = req.method == http::Method::DELETE;
    let not_found = || {
        let mut e = ApiError::new(
            ErrorKind::NotFound,
            format!("Response with id '{id}' not found."),
        );
        e.code = Some("response_not_found".into());
        e
    };
    let local = if delete {
        store
            .delete(&id, &key.name)
            .then(|| json!({"id": id, "object": "response.deleted", "deleted": true}))
            .map(|v| Bytes::from(v.to_string()))
    } else {
        store.response(&id, &key.name, Instant::now())
    };
    let body = match local {
        Some(body) => body,
        None => {
            let origin = store.origin(&id, &key.name).ok_or_else(not_found)?;
            // Any target of that provider carries its key pool and budgets.
            let target = live
                .config
                .routes
                .values()
                .flat_map(|r| r.targets.iter())
                .find(|t| t.provider.name == origin)
                .ok_or_else(not_found)?;
            let p = &target.provider;
            let path = format!(
                "{}/responses/{}",
                p.path_prefix,
                filters::wire::http::path_segment(&id)
            );
            let method = if delete { "DELETE" } else { "GET" };
            crate::exchange::call_once(upstream, live, rec, target, (method, &path), Bytes::new())
                .await
                .map_err(|f| match f {
                    crate::upstream::Failure::Status(404, _) => not_found(),
                    f => f.to_api_error(&p.name, &rec.id),
                })?
        }
    };
    respond(session, rec, 200, "application/json", body, &[], false).await;
    Ok(())
}

/// Input tokens of a request, from the model's first target: its own
/// count endpoint (Anthropic, Gemini), else the o200k tokenizer. An
/// upstream that fails to count is replaced by the estimate, never an
/// error: clients call this to decide what to send.
pub async fn count_tokens(
    upstream: &UpstreamClient,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    dialect: Dialect,
) -> Result<(), ApiError> {
    rec.client.dialect = Some(dialect);
    let key = authenticate_caller(live, session)?;
    rec.client.key_name = Some(key.name.clone());
    let body = read_body(session, &live.config).await?;
    let req = dialect::decode_count_tokens(dialect, &body)?;
    let model = if dialect.model_in_path() {
        filters::ingress::gemini_call(session.req_header().uri.path()).map(|c| c.model)
    } else {
        Some(req.model.clone())
    };
    let route = model
        .filter(|m| key.allows_model(m))
        .and_then(|m| live.config.routes.get(&m).cloned());
    let mut tokens = None;
    // The first target the key may use: a provider it may not use never
    // sees its prompt.
    let first = route.as_ref().and_then(|r| {
        r.targets
            .iter()
            .find(|t| key.allows_provider(&t.provider.name))
    });
    if let Some(t) = first {
        tokens = upstream_count(upstream, live, rec, t, &req).await;
    }
    let tokens = match tokens {
        Some(n) => n,
        // CPU-bound: off the worker's runtime, which serves other requests.
        None => tokio::task::spawn_blocking(move || filters::tokens::request_tokens(&req))
            .await
            .map_err(|e| ApiError::new(ErrorKind::Api, format!("token count failed: {e}")))?,
    };
    let v = dialect::count_tokens_body(dialect, tokens);
    respond_json(session, rec, &v).await;
    Ok(())
}

/// The target provider's own count, when its dialect has one.
async fn upstream_count(
    upstream: &UpstreamClient,
    live: &Live,
    rec: &mut RequestRecord,
    target: &crate::config::Target,
    req: &filters::canonical::Request,
) -> Option<u64> {
    let p = &target.provider;
    let path = dialect::count_tokens_path(p.dialect, &p.path_prefix, &target.model)?;
    let body = dialect::count_tokens_request(p.dialect, req, &target.model, &p.encode).ok()?;
    let answer = crate::exchange::call_once(
        upstream,
        live,
        rec,
        target,
        ("POST", &path),
        body.to_string().into(),
    )
    .await
    .map_err(|f| log::warn!("{} count_tokens via {}: {f:?}", rec.id, p.name))
    .ok()?;
    dialect::count_tokens_answer(p.dialect, &answer)
}

/// `GET /api/upstream-keys/stats` (admin): every upstream key's state and
/// counters; values appear only masked.
pub async fn key_stats(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
) -> Result<(), ApiError> {
    let key = authenticate_admin(live, session)?;
    require_role(&key, filters::auth::Role::Admin)?;
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
    respond_json(session, rec, &json!({ "providers": providers })).await;
    Ok(())
}

fn cooling_seconds(state: KeyState, now: Instant) -> Option<f64> {
    match state {
        KeyState::Cooling { until } => Some(until.saturating_duration_since(now).as_secs_f64()),
        _ => None,
    }
}
