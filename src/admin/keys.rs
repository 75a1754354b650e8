//! The admin API for client keys (`/api/keys…`): list, create (the key is
//! shown once), edit, revoke, and each key's live limits. Reads need the
//! admin or viewer role, changes the admin role. Keys from the config file
//! are listed but read-only: the file stays their one source of truth.

use crate::admin::auth::{require_role, require_viewer};
use crate::downstream::read_body;
use crate::proxy::auth::unix_now;
use crate::record::RequestRecord;
use crate::state::keys::KeyEntry;
use crate::state::Live;
use crate::store::{KeyStore, StoreError, StoredKey};
use filters::auth::{format_rfc3339, KeySource, KeySpec, Role};
use filters::error::{ApiError, ErrorKind};
use filters::limits::{Dimension, Scope};
use pingora::proxy::Session;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// `/api/keys`, `/api/keys/{name}`, `/api/keys/{name}/limits`.
pub async fn keys(
    plane: &crate::admin::AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    store: Option<&KeyStore>,
) -> Result<(), ApiError> {
    let caller = crate::admin::auth::caller(plane, live, session, rec).await?;
    let method = session.req_header().method.clone();
    let path = session.req_header().uri.path().to_owned();
    let rest = path.strip_prefix("/api/keys").unwrap_or_default();
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            filters::wire::http::percent_decode(s)
                .ok_or_else(|| ApiError::invalid(format!("{path}: not a valid path")))
        })
        .collect::<Result<_, _>>()?;
    let read = method == http::Method::GET || method == http::Method::HEAD;
    if read {
        require_viewer(&caller)?;
    } else {
        require_role(&caller, Role::Admin)?;
    }
    match (segments.as_slice(), read) {
        ([], true) => list(session, rec, live, store).await,
        ([], false) if method == http::Method::POST => create(session, rec, live, store).await,
        ([name], true) => {
            let entry = find(live, name)?;
            let (created, last_used) = match store {
                Some(s) => {
                    let created = if entry.source == KeySource::Store {
                        s.get(name).await.ok().flatten()
                    } else {
                        None
                    };
                    let last = s.last_used().await.ok().and_then(|m| m.get(name).copied());
                    (created, last.unwrap_or(0))
                }
                None => (None, 0),
            };
            let v = view(&entry, created.as_ref(), last_used);
            super::send_json(session, rec, 200, &v).await
        }
        ([name], false) if method == http::Method::PATCH => {
            update(session, rec, live, store, name).await
        }
        ([name], false) if method == http::Method::DELETE => {
            revoke(session, rec, live, store, name).await
        }
        ([name, limits], true) if limits == "limits" => {
            let entry = find(live, name)?;
            let v = limits_view(live, &entry).await;
            super::send_json(session, rec, 200, &v).await
        }
        ([] | [_], _) | ([_, _], false) if segments.get(1).is_none_or(|l| l == "limits") => {
            Err(super::not_allowed(&method, &path))
        }
        _ => Err(super::no_route(&path)),
    }
}

fn find(live: &Live, name: &str) -> Result<Arc<KeyEntry>, ApiError> {
    live.keys.by_name(name).ok_or_else(|| no_key(name))
}

fn no_key(name: &str) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("no key named '{name}'"))
}

fn no_store() -> ApiError {
    ApiError::new(ErrorKind::Api, "the key store is not open")
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => ApiError::invalid(m).with_status(409),
        StoreError::NotFound(m) => ApiError::new(ErrorKind::NotFound, m),
        StoreError::Invalid(problems) => ApiError::invalid(problems.join("; ")),
        StoreError::Backend(m) | StoreError::Rejected(m) => {
            log::warn!("key store: {m}");
            ApiError::new(
                ErrorKind::Api,
                "the key store failed; see the gateway's log",
            )
        }
    }
}

/// A key as the API shows it: every attribute, never the secret.
fn view(entry: &KeyEntry, stored: Option<&StoredKey>, stored_last_used: i64) -> Value {
    let mut v = match serde_json::to_value(&entry.spec) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let roles: Vec<&str> = entry.roles.iter().map(|r| r.name()).collect();
    v.insert("roles".into(), json!(roles));
    v.insert("enabled".into(), json!(entry.enabled));
    v.insert("limits".into(), json!(entry.limits));
    v.insert("source".into(), json!(entry.source.name()));
    v.insert("prefix".into(), json!(entry.prefix));
    let last = entry
        .runtime
        .last_used
        .load(Ordering::Relaxed)
        .max(stored_last_used);
    v.insert(
        "last_used_at".into(),
        if last > 0 {
            json!(format_rfc3339(last))
        } else {
            Value::Null
        },
    );
    if let Some(s) = stored {
        v.insert("created_at".into(), json!(format_rfc3339(s.created_at)));
        v.insert("updated_at".into(), json!(format_rfc3339(s.updated_at)));
    }
    let now = unix_now();
    v.insert("usable".into(), json!(entry.usable(now).is_ok()));
    Value::Object(v)
}

async fn list(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    store: Option<&KeyStore>,
) -> Result<(), ApiError> {
    let (stored, last_used): (HashMap<String, StoredKey>, HashMap<String, i64>) = match store {
        Some(s) => (
            s.list()
                .await
                .map_err(store_error)?
                .into_iter()
                .map(|k| (k.spec.name.clone(), k))
                .collect(),
            s.last_used().await.unwrap_or_default(),
        ),
        None => Default::default(),
    };
    let data: Vec<Value> = live
        .keys
        .all()
        .iter()
        .map(|e| {
            let s = (e.source == KeySource::Store)
                .then(|| stored.get(&e.name))
                .flatten();
            view(e, s, last_used.get(&e.name).copied().unwrap_or(0))
        })
        .collect();
    super::send_json(session, rec, 200, &json!({"object": "list", "data": data})).await
}

/// The request body as a JSON object, with earlier systems' top-level
/// names (`rate_limit`, `daily_limit`, `rpm`, …) moved into `limits`.
async fn spec_body(session: &mut Session, live: &Live) -> Result<Map<String, Value>, ApiError> {
    let body = read_body(session, &live.config).await?;
    let mut obj = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(ApiError::invalid("the body must be a JSON object")),
        Err(e) => {
            return Err(ApiError::invalid(format!(
                "the body is not valid JSON: {e}"
            )))
        }
    };
    // Earlier systems' names become ours, so a merge never holds both.
    fn canonical(name: &str) -> &str {
        match name {
            "rate_limit" => "rpm",
            "daily_limit" => "rpd",
            other => other,
        }
    }
    if let Some(Value::Object(l)) = obj.get_mut("limits") {
        for alias in ["rate_limit", "daily_limit"] {
            if let Some(v) = l.remove(alias) {
                l.insert(canonical(alias).to_owned(), v);
            }
        }
    }
    for name in [
        "rate_limit",
        "daily_limit",
        "rpm",
        "tpm",
        "rpd",
        "tpd",
        "concurrency",
    ] {
        if let Some(v) = obj.remove(name) {
            let limits = obj
                .entry("limits")
                .or_insert_with(|| Value::Object(Map::new()));
            match limits {
                Value::Object(l) => {
                    l.insert(canonical(name).to_owned(), v);
                }
                _ => {
                    return Err(ApiError::invalid("limits: must be an object").with_param("limits"))
                }
            }
        }
    }
    Ok(obj)
}

fn parse_spec(obj: Map<String, Value>) -> Result<KeySpec, ApiError> {
    serde_json::from_value(Value::Object(obj))
        .map_err(|e| ApiError::invalid(format!("invalid key: {e}")))
}

async fn create(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    store: Option<&KeyStore>,
) -> Result<(), ApiError> {
    let store = store.ok_or_else(no_store)?;
    let spec = parse_spec(spec_body(session, live).await?)?;
    if live.keys.by_name(&spec.name).is_some() {
        return Err(
            ApiError::invalid(format!("a key named '{}' already exists", spec.name))
                .with_status(409),
        );
    }
    let (stored, secret) = store.create(spec).await.map_err(store_error)?;
    // Usable at once, not at the next poll.
    refresh(store, live).await;
    let mut v = match live.keys.by_name(&stored.spec.name) {
        Some(e) => view(&e, Some(&stored), 0),
        None => json!({"name": stored.spec.name, "prefix": stored.prefix, "source": "store"}),
    };
    if let Value::Object(m) = &mut v {
        m.insert("key".into(), json!(secret));
        m.insert(
            "note".into(),
            json!("store this key now: it is not shown again"),
        );
    }
    super::send_json(session, rec, 201, &v).await
}

/// The store a key can be changed in: a config key cannot be changed here.
fn writable<'a>(
    live: &Live,
    store: Option<&'a KeyStore>,
    name: &str,
) -> Result<&'a KeyStore, ApiError> {
    match live.keys.by_name(name) {
        Some(e) if e.source == KeySource::Config => Err(ApiError::invalid(format!(
            "key '{name}' is defined in the config file: edit the file to change it"
        ))
        .with_status(409)),
        _ => store.ok_or_else(no_store),
    }
}

async fn update(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    store: Option<&KeyStore>,
    name: &str,
) -> Result<(), ApiError> {
    let store = writable(live, store, name)?;
    let patch = spec_body(session, live).await?;
    let current = store
        .get(name)
        .await
        .map_err(store_error)?
        .ok_or_else(|| no_key(name))?;
    let mut merged = match serde_json::to_value(&current.spec) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in patch {
        if k == "limits" {
            // Limits merge dimension by dimension; null removes one.
            let mut limits = match merged.remove("limits") {
                Some(Value::Object(l)) => l,
                _ => Map::new(),
            };
            match v {
                Value::Object(l) => limits.extend(l),
                Value::Null => limits.clear(),
                _ => {
                    return Err(ApiError::invalid("limits: must be an object").with_param("limits"))
                }
            }
            limits.retain(|_, v| !v.is_null());
            merged.insert(k, Value::Object(limits));
        } else if v.is_null() {
            merged.remove(&k);
        } else {
            merged.insert(k, v);
        }
    }
    let spec = parse_spec(merged)?;
    if spec.name != name {
        return Err(
            ApiError::invalid("name: a key cannot be renamed; create a new one").with_param("name"),
        );
    }
    let stored = store.update(name, spec).await.map_err(store_error)?;
    refresh(store, live).await;
    let v = match live.keys.by_name(name) {
        Some(e) => view(&e, Some(&stored), 0),
        None => json!({"name": name}),
    };
    super::send_json(session, rec, 200, &v).await
}

async fn revoke(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    store: Option<&KeyStore>,
    name: &str,
) -> Result<(), ApiError> {
    let store = writable(live, store, name)?;
    if !store.delete(name).await.map_err(store_error)? {
        return Err(no_key(name));
    }
    refresh(store, live).await;
    super::send_json(session, rec, 200, &json!({"name": name, "deleted": true})).await
}

/// Publishes the store's keys now (the poll would within a second).
async fn refresh(store: &KeyStore, live: &Live) {
    if let Err(e) = crate::store::refresh::load_into(store, &live.keys).await {
        log::warn!("key store: reloading keys after a change failed: {e}");
    }
}

/// Each limited dimension of a key: limit, used, remaining, reset.
async fn limits_view(live: &Live, entry: &KeyEntry) -> Value {
    let subject = crate::limits::Subject {
        scope: Scope::Key,
        name: entry.subject_name.clone(),
        limits: entry.limits,
        counters: entry.runtime.counters.clone(),
    };
    let statuses = if entry.limits.is_empty() {
        Vec::new()
    } else {
        live.limiter.status(&subject, &live.config.limits).await
    };
    let mut out = Map::new();
    let currency = live.config.limits.budgets.currency;
    for s in statuses {
        let mut d = if s.dimension.is_spend() {
            // Money as exact decimal strings in the budget currency.
            let decimal = filters::limits::budget::decimal;
            json!({
                "limit": decimal(s.limit),
                "used": decimal(s.used),
                "remaining": decimal(s.remaining),
                "currency": currency.as_str(),
            })
        } else {
            json!({
                "limit": s.limit,
                "used": s.used,
                "remaining": s.remaining,
            })
        };
        if s.dimension != Dimension::Concurrency {
            d["reset_seconds"] = json!(s.reset_ms as f64 / 1000.0);
        }
        out.insert(s.dimension.name().to_owned(), d);
    }
    json!({
        "name": entry.name,
        "backend": if live.limiter.is_shared() { "redis" } else { "memory" },
        "timezone": live.config.limits.timezone_name,
        "limits": out,
    })
}
