//! What the UI shows of the running gateway: providers (replicas, breakers,
//! key pools), model chains, and the live figures of the dashboard.

use super::auth::{caller, require_for_method};
use super::{probe, AdminPlane};
use crate::config::{Provider, Route};
use crate::downstream::{read_body, respond_json};
use crate::record::RequestRecord;
use crate::state::Live;
use filters::error::{ApiError, ErrorKind};
use pingora::proxy::Session;
use serde_json::{json, Value};
use std::sync::Arc;

/// `/api/providers[/{name}/test]`, `/api/models[/{name}/test]`,
/// `/api/stats`, `/api/overview`.
pub async fn handle(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Arc<Live>,
) -> Result<(), ApiError> {
    let who = caller(plane, live, session, rec).await?;
    require_for_method(&who, session)?;
    let req = session.req_header();
    let method = req.method.clone();
    let path = req.uri.path().to_owned();
    let segments = super::segments(&path)?;
    let get = method == http::Method::GET || method == http::Method::HEAD;
    let post = method == http::Method::POST;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let v = match (segs.as_slice(), get, post) {
        (["overview"], true, _) => overview(plane, live),
        (["stats"], true, _) => stats(plane, live).await,
        (["providers"], true, _) => {
            json!({ "providers": live.providers().map(|(p, _)| provider_view(live, p)).collect::<Vec<_>>() })
        }
        (["providers", name], true, _) => provider_view(live, find_provider(live, name)?),
        (["providers", name, "test"], _, true) => {
            let provider = find_provider(live, name)?.clone();
            let ask = probe::Ask::read(&read_body(session, &live.config).await?)?;
            probe::provider(plane, live, rec, &provider, &ask).await?
        }
        (["models"], true, _) => json!({ "models": models(live) }),
        (["models", name], true, _) => {
            let route = find_model(live, name)?;
            model_view(live, name, route)
        }
        (["models", name, "test"], _, true) => {
            let route = find_model(live, name)?.clone();
            let ask = probe::Ask::read(&read_body(session, &live.config).await?)?;
            probe::model(plane, live, rec, name, &route, &ask).await?
        }
        (
            ["overview" | "stats" | "providers" | "models"]
            | ["providers" | "models", _]
            | ["providers" | "models", _, "test"],
            _,
            _,
        ) => return Err(super::not_allowed(&method, &path)),
        _ => return Err(super::no_route(&path)),
    };
    respond_json(session, rec, &v).await;
    Ok(())
}

fn find_provider<'a>(live: &'a Live, name: &str) -> Result<&'a Arc<Provider>, ApiError> {
    live.config
        .providers
        .iter()
        .find(|p| &*p.name == name)
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no provider named '{name}'")))
}

fn find_model<'a>(live: &'a Live, name: &str) -> Result<&'a Arc<Route>, ApiError> {
    live.config
        .routes
        .get(name)
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no model named '{name}'")))
}

fn overview(plane: &AdminPlane, live: &Live) -> Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": plane.started.elapsed().as_secs(),
        "listen": live.config.process.listen,
        "admin_listen": live.config.process.admin_listen,
        "ui_bundled": super::assets::bundled(),
        "providers": live.config.providers.len(),
        "models": live.config.routes.len(),
        "keys": live.keys.len(),
        "currency": live.config.limits.budgets.currency.as_str(),
    })
}

/// Counters since start; the UI takes rates and quantiles from two polls.
async fn stats(plane: &AdminPlane, live: &Live) -> Value {
    let t = crate::metrics::totals();
    let now_ms = crate::usage::row::unix_ms();
    let currency = live.config.limits.budgets.currency.as_str().to_owned();
    let (cost_today, cost_by_currency) = cost_today(plane, live, now_ms, &currency).await;
    let le: Vec<Value> = t
        .latency_le
        .iter()
        .map(|b| if b.is_finite() { json!(b) } else { Value::Null })
        .collect();
    json!({
        "time_ms": now_ms,
        "uptime_s": plane.started.elapsed().as_secs(),
        "requests": t.requests,
        "errors": t.errors,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "streams_in_flight": t.streams_in_flight,
        "in_flight": plane.drain.in_flight(),
        "cost_today": cost_today,
        "cost_today_by_currency": cost_by_currency,
        "currency": currency,
        "latency": {"le": le, "counts": t.latency_counts, "count": t.latency_count, "sum_s": t.latency_sum},
    })
}

/// How long the cost of today is reused: every open dashboard polls every
/// 2 s, and each fresh figure is a sum over the day's usage rows.
const COST_FRESH: std::time::Duration = std::time::Duration::from_secs(15);

/// Today's cost (in `[limits]` timezone), from the usage rows so it agrees
/// with `/api/usage` and survives restarts: in the budgets' currency, and
/// per currency. Null while usage rows are not recorded.
#[derive(Default)]
pub struct CostToday {
    last: std::sync::Mutex<Option<(std::time::Instant, u64, Value, Value)>>,
}

async fn cost_today(
    plane: &AdminPlane,
    live: &Live,
    now_ms: u64,
    currency: &str,
) -> (Value, Value) {
    let Some(store) = plane
        .store
        .as_ref()
        .filter(|_| live.config.process.record_usage)
    else {
        return (Value::Null, json!({}));
    };
    let day = filters::limits::day::day_of(&live.config.limits.timezone, now_ms);
    {
        let last = plane.cost.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, start, total, by)) = last.as_ref() {
            if *start == day.start_ms && at.elapsed() < COST_FRESH {
                return (total.clone(), by.clone());
            }
        }
    }
    let q = crate::store::usage_query::SummaryQuery {
        filter: crate::store::usage_query::UsageFilter::between(
            i64::try_from(day.start_ms).unwrap_or(0),
            i64::try_from(now_ms).unwrap_or(i64::MAX).saturating_add(1),
        ),
        group_by: Vec::new(),
        zone: live.config.limits.timezone.clone(),
    };
    match store.usage_summary(q).await {
        Ok(s) => {
            let nanos = |n: i64| n as f64 / 1e9;
            let by: serde_json::Map<String, Value> = s
                .totals
                .cost_nanos
                .iter()
                .map(|(c, n)| (c.clone(), json!(nanos(*n))))
                .collect();
            let total = json!(s.totals.cost_nanos.get(currency).map_or(0.0, |n| nanos(*n)));
            let by = Value::Object(by);
            let mut last = plane.cost.last.lock().unwrap_or_else(|e| e.into_inner());
            *last = Some((
                std::time::Instant::now(),
                day.start_ms,
                total.clone(),
                by.clone(),
            ));
            (total, by)
        }
        Err(e) => {
            log::warn!("stats: cost today: {e}");
            (Value::Null, json!({}))
        }
    }
}

fn provider_view(live: &Live, p: &Provider) -> Value {
    let state = live.provider(p);
    let now = crate::exchange::now();
    let replicas: Vec<Value> = match &state.replicas {
        Some(pool) => pool
            .report()
            .into_iter()
            .map(|(addr, host, healthy, in_flight)| {
                json!({"url": format!("{host} ({addr})"), "healthy": healthy,
                       "state": if healthy { "healthy" } else { "unhealthy" }, "in_flight": in_flight})
            })
            .collect(),
        None => Vec::new(),
    };
    let base_urls: Vec<String> = match &p.replicas {
        Some(r) => r
            .specs
            .iter()
            .map(|s| format!("{}:{}", s.host, s.port))
            .collect(),
        None => vec![p.base_url()],
    };
    let targets: Vec<Value> = live
        .config
        .target_slots
        .iter()
        .enumerate()
        .filter(|(_, (tp, _))| tp.name == p.name)
        .map(|(slot, (_, model))| json!({"model": &**model, "slot": slot, "breaker": live.breaker(slot).state().name()}))
        .collect();
    let report = state.key_pool().report(now);
    let keys: Vec<Value> = p
        .keys
        .iter()
        .zip(report)
        .map(|(secret, (st, s))| {
            let rate = (s.requests > 0).then(|| s.successes as f64 / s.requests as f64);
            json!({"key": secret.masked(), "state": st.name(), "requests": s.requests,
                   "successes": s.successes, "failures": s.failures, "success_rate": rate})
        })
        .collect();
    json!({
        "name": &*p.name,
        "type": provider_type(p.dialect),
        "base_urls": base_urls,
        "replicas": replicas,
        "targets": targets,
        "keys": keys,
        "limits": (!p.limits.is_empty()).then(|| json!(p.limits)),
        "enabled": p.enabled,
        "preset": p.preset,
        "display_name": p.display_name.as_deref(),
        "description": p.description.as_deref(),
        "tags": &p.tags,
        "listing": super::discovery::listing_name(crate::config::preset::listing(p.preset, p.dialect)),
    })
}

fn models(live: &Live) -> Vec<Value> {
    let mut names: Vec<&String> = live.config.routes.keys().collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| live.config.routes.get(n).map(|r| model_view(live, n, r)))
        .collect()
}

pub fn model_view(live: &Live, name: &str, route: &Route) -> Value {
    let targets: Vec<Value> = route
        .targets
        .iter()
        .enumerate()
        .map(|(index, t)| {
            let healthy = live
                .provider(&t.provider)
                .replicas
                .as_ref()
                .is_none_or(|r| r.any_healthy());
            json!({"index": index, "provider": &*t.provider.name, "model": &*t.model,
                   "breaker": live.breaker(t.slot).state().name(), "healthy": healthy})
        })
        .collect();
    json!({
        "name": name,
        "limits": (!route.limits.is_empty()).then(|| json!(route.limits)),
        "max_output_tokens": route.max_output_tokens,
        "display_name": route.display_name.as_deref(),
        "description": route.description.as_deref(),
        "targets": targets,
    })
}

/// The provider's `type` as the config file spells it.
fn provider_type(d: filters::Dialect) -> &'static str {
    match d {
        filters::Dialect::OpenAiChat => "openai",
        filters::Dialect::Anthropic => "anthropic",
        filters::Dialect::Gemini => "gemini",
        filters::Dialect::OpenAiResponses => "openai-responses",
    }
}
