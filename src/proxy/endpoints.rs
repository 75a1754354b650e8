//! The endpoints answered by the gateway itself: health, the model
//! listing, the model test, token counting and the upstream key
//! statistics.

use super::auth::{authenticate, authenticate_admin, authenticate_caller, require_role};
use crate::config::Route;
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
use serde_json::{json, Value};
use std::time::{Instant, UNIX_EPOCH};

pub async fn health(session: &mut Session, rec: &mut RequestRecord) -> Result<(), ApiError> {
    let head = session.req_header().method == http::Method::HEAD;
    let body = Bytes::from_static(b"{\"status\":\"ok\"}");
    respond(session, rec, 200, "application/json", body, &[], head).await;
    Ok(())
}

/// `GET`/`HEAD /v1/health`, open like `/health`:
/// `{"status": "ok"|"degraded", "version", "uptime_seconds",
/// "providers": {"total", "healthy"}}`. Degraded (still a 200: the
/// gateway answers, some provider does not) when a provider has no
/// healthy replica or an open breaker. Counts only: names and addresses
/// are for `/api/config/health`, behind a key.
pub async fn health_report(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    started: Instant,
) -> Result<(), ApiError> {
    let (healthy, total) = crate::admin::config_health::provider_counts(live);
    let v = health_body(healthy, total, started.elapsed().as_secs());
    let head = session.req_header().method == http::Method::HEAD;
    let body = Bytes::from(v.to_string());
    respond(session, rec, 200, "application/json", body, &[], head).await;
    Ok(())
}

fn health_body(healthy: usize, total: usize, uptime_seconds: u64) -> serde_json::Value {
    json!({
        "status": if healthy == total { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": uptime_seconds,
        "providers": {"total": total, "healthy": healthy},
    })
}

/// `POST /v1/models/{model}/test`, body `{"test_message"?: "...",
/// "target"?: n}` (empty: the default tiny message): the model's chain
/// tried in order with that message, up to the first target that answers.
/// Answers 200 whatever the targets did — the test ran; its verdict is in
/// the body:
///
/// ```json
/// {"model": "m", "success": true, "served_by": {"provider": "p", "model": "x"},
///  "results": [{"provider": "p0", "model": "x0", "success": false, "status": 503,
///               "latency_ms": 12, "response": null, "error": "upstream answered 503: ..."},
///              {"provider": "p", "model": "x", "success": true, "status": 200,
///               "latency_ms": 20, "response": "OK", "error": null}]}
/// ```
///
/// `served_by` is null when every target failed; `response` is the
/// answer's first 200 characters. Admin keys only (others get 403): the
/// test goes to every target, unmetered, as the admin API's test does.
/// The message is at most 8 KiB. Errors are OpenAI error objects.
pub async fn model_test(
    upstream: &UpstreamClient,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
) -> Result<(), ApiError> {
    rec.client.dialect = Some(Dialect::OpenAiChat);
    // An admin key, sent (the localhost key never counts): the test picks
    // targets itself, past the breakers, the providers' limits and budgets
    // and the key's allow-lists, and reports upstream errors verbatim. A
    // user key's way to see if a model answers is to call it.
    let key = authenticate_admin(live, session)?;
    rec.client.key_name = Some(key.name.clone());
    require_role(&key, filters::auth::Role::Admin)?;
    let path = session.req_header().uri.path();
    let model = filters::ingress::model_test_name(path).unwrap_or_default();
    let route = live.config.routes.get(&model).cloned().ok_or_else(|| {
        let mut e = ApiError::new(
            ErrorKind::NotFound,
            format!("model '{model}' is not configured"),
        );
        e.code = Some("model_not_found".into());
        e
    })?;
    let ask = crate::admin::probe::Ask::read(&read_body(session, &live.config).await?)?;
    if ask.model.is_some() {
        return Err(ApiError::invalid("model: the model is named in the path").with_param("model"));
    }
    rec.client.model = Some(model.clone());
    let targets: Vec<(usize, &crate::config::Target)> = route
        .targets
        .iter()
        .enumerate()
        .filter(|(i, _)| ask.target.is_none_or(|n| n == *i))
        .collect();
    if let (Some(n), true) = (ask.target, targets.is_empty()) {
        return Err(
            ApiError::invalid(format!("target: '{model}' has no target {n}")).with_param("target"),
        );
    }
    let tried = crate::admin::probe::chain(upstream, live, rec, &targets, &ask.message).await;
    let served = tried.iter().find(|t| t.ok());
    if let Some(t) = served {
        rec.result.served_by = t.attempt;
        rec.result.usage = t.usage;
    }
    let v = json!({
        "model": model,
        "success": served.is_some(),
        "served_by": served.map(|t| json!({"provider": &*t.provider, "model": &*t.model})),
        "results": tried.iter().map(crate::admin::probe::Tried::v1_json).collect::<Vec<_>>(),
    });
    respond_json(session, rec, &v).await;
    Ok(())
}

/// `GET /v1/models`: the names this key may use (each model's own and its
/// aliases; a glob-named model has no name to list), in the client's
/// shape, each with the model's `capabilities`. Codex asks with
/// `?client_version=`: its `models` array stays empty, which keeps Codex's
/// own instructions for each model (a Codex `ModelInfo` from the gateway
/// would replace them with its `base_instructions`).
pub async fn models(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    dialect: Dialect,
) -> Result<(), ApiError> {
    let key = authenticate(live, session)?;
    let listed = listed(live, &key);
    let names: Vec<&str> = listed.iter().map(|(n, _)| *n).collect();
    let mut v = dialect::model_listing(dialect, &names);
    for (entry, (_, route)) in entry_slots(dialect, &mut v).zip(&listed) {
        describe(dialect, entry, route);
    }
    let codex = session
        .req_header()
        .uri
        .query()
        .and_then(|q| filters::wire::http::query_param(q, "client_version"))
        .is_some();
    if codex {
        v["models"] = json!([]);
    }
    respond_json(session, rec, &v).await;
    Ok(())
}

/// The names a key may use, with the model each reaches.
fn listed<'a>(live: &'a Live, key: &filters::auth::ClientKey) -> Vec<(&'a str, &'a Route)> {
    let snap = &live.config;
    let mut out = Vec::new();
    for name in &snap.model_names {
        let Some(route) = snap.routes.get(name) else {
            continue;
        };
        let own = (!filters::glob::is_glob(name)).then_some(name.as_str());
        if !super::route::may_use(key, route) {
            continue;
        }
        for n in own
            .into_iter()
            .chain(route.aliases.iter().map(String::as_str))
        {
            out.push((n, &**route));
        }
    }
    out
}

/// The listing's model entries, in order.
fn entry_slots(dialect: Dialect, v: &mut Value) -> impl Iterator<Item = &mut Value> {
    let list = if dialect == Dialect::Gemini {
        "models"
    } else {
        "data"
    };
    v.get_mut(list)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// A model's labels and capabilities in its listing entry: `capabilities`
/// (and the tags) for OpenAI and Anthropic clients, Gemini's own token
/// limit.
fn describe(dialect: Dialect, entry: &mut Value, route: &Route) {
    let c = route.capabilities;
    // The listing's own label fields where the dialect has them
    // (Anthropic `display_name`, Gemini `displayName`/`description`).
    let (label, about) = match dialect {
        Dialect::Gemini => ("displayName", "description"),
        _ => ("display_name", "description"),
    };
    if let Some(d) = &route.display_name {
        entry[label] = json!(d);
    }
    if let Some(d) = &route.description {
        entry[about] = json!(d);
    }
    if dialect == Dialect::Gemini {
        if let Some(w) = c.context_window {
            entry["inputTokenLimit"] = json!(w);
        }
        return;
    }
    entry["capabilities"] = json!({
        "context_window": c.context_window,
        "vision": c.vision,
        "tools": c.tools || route.targets.iter().any(|t| t.tool_emulation),
        "reasoning": c.reasoning,
    });
    if !route.tags.is_empty() {
        entry["tags"] = json!(route.tags);
    }
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
    // Names and aliases only: a glob or the default model answers calls,
    // but listing every name it would take is not a model.
    let found = live
        .config
        .routing
        .names
        .exact(&id)
        .and_then(|n| live.config.routes.get(n))
        .filter(|r| super::route::may_use(&key, r));
    let Some(route) = found else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("model '{id}' is not configured"),
        ));
    };
    let mut v = dialect::model_entry(dialect, &id);
    describe(dialect, &mut v, route);
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
    let route = model.and_then(|m| {
        let chosen = super::route::by_name(live, &m, Some(&key))?;
        super::route::allowed(&key, &m, &chosen).ok()?;
        Some(chosen.route)
    });
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

/// `GET /api/upstream-keys/stats`, `/v1/api-keys/stats` (admin): every
/// upstream key's state and counters, and its `success_rate` (successes
/// over successes and failures; null before its first call); values
/// appear only masked.
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
                        "success_rate": success_rate(st.successes, st.failures),
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

/// Successes over calls that ended either way; none before the first.
fn success_rate(successes: u64, failures: u64) -> Option<f64> {
    let calls = successes.saturating_add(failures);
    (calls > 0).then(|| successes as f64 / calls as f64)
}

fn cooling_seconds(state: KeyState, now: Instant) -> Option<f64> {
    match state {
        KeyState::Cooling { until } => Some(until.saturating_duration_since(now).as_secs_f64()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_rate_is_null_before_the_first_call() {
        assert_eq!(success_rate(0, 0), None);
        assert_eq!(success_rate(1, 1), Some(0.5));
        assert_eq!(success_rate(3, 0), Some(1.0));
    }

    #[test]
    fn health_names_nothing_and_degrades_on_any_unhealthy_provider() {
        let ok = health_body(3, 3, 7);
        assert_eq!(ok["status"], "ok");
        assert_eq!(ok["uptime_seconds"], 7);
        assert_eq!(ok["providers"], json!({"total": 3, "healthy": 3}));
        assert_eq!(health_body(2, 3, 7)["status"], "degraded");
        assert_eq!(health_body(0, 0, 0)["status"], "ok");
    }
}
