//! Model discovery: `GET /api/providers/{name}/models` asks a provider
//! what it serves (with its own credentials, through the same upstream
//! client as client traffic) and answers one normalized list;
//! `POST /api/providers/{name}/models` adds chosen ones to the config
//! file as models (`config_models.rs`), through the one config writer.
//!
//! The listing is bounded: a few pages, each answer capped in size, each
//! call by the provider's first-event timeout. The parsing below is pure
//! (no Pingora), tested beside it.

use super::auth::{caller, require_role, require_viewer};
use super::config_edit::Refused;
use super::config_models::{add_models, Added, NewModel};
use super::AdminPlane;
use crate::config::preset::Listing;
use crate::config::{Provider, Target};
use crate::downstream::{read_body, respond_json};
use crate::exchange::side::call_within;
use crate::record::RequestRecord;
use crate::state::Live;
use bytes::Bytes;
use filters::auth::Role;
use filters::error::{parse_body, ApiError, ErrorKind};
use filters::failure::Failure;
use pingora::proxy::Session;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The most pages followed (Anthropic `after_id`, Gemini `pageToken`):
/// a provider that pages forever still ends.
const MAX_PAGES: usize = 10;
/// The largest answer of one page read.
const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;
/// The most models one `POST` adds: a UI selection, not a bulk import.
const MAX_ADD: usize = 200;

/// `/api/providers/{name}/models`.
pub async fn handle(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Arc<Live>,
) -> Result<(), ApiError> {
    let who = caller(plane, live, session, rec).await?;
    let method = session.req_header().method.clone();
    let path = session.req_header().uri.path().to_owned();
    let segments = super::segments(&path)?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let ["providers", name, "models"] = segs.as_slice() else {
        return Err(super::no_route(&path));
    };
    if method == http::Method::GET || method == http::Method::HEAD {
        require_viewer(&who)?;
        let provider = find_provider(live, name)?.clone();
        let v = list(plane, live, rec, &provider).await?;
        respond_json(session, rec, &v).await;
        Ok(())
    } else if method == http::Method::POST {
        require_role(&who, Role::Admin)?;
        let provider = find_provider(live, name)?.name.clone();
        add(plane, session, rec, live, &provider).await
    } else {
        Err(super::not_allowed(&method, &path))
    }
}

fn find_provider<'a>(live: &'a Live, name: &str) -> Result<&'a Arc<Provider>, ApiError> {
    live.config
        .providers
        .iter()
        .find(|p| &*p.name == name)
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no provider named '{name}'")))
}

/// What kind of model a listing entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Embeddings,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Embeddings => "embeddings",
        }
    }
}

/// One model a provider lists, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub id: String,
    pub display_name: Option<String>,
    pub context_window: Option<u64>,
    pub kind: Kind,
    /// Whether a local server has it in memory (LM Studio).
    pub loaded: Option<bool>,
    /// What else the listing said, by the names the answer uses
    /// (`owned_by`, `created`, `family`, `parameter_size`, `size`, ...).
    pub extra: Map<String, Value>,
}

impl Found {
    fn new(id: &str, kind: Kind) -> Self {
        Self {
            id: id.to_owned(),
            display_name: None,
            context_window: None,
            kind,
            loaded: None,
            extra: Map::new(),
        }
    }

    fn note(&mut self, key: &str, v: Option<&Value>) {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            self.extra.insert(key.to_owned(), v.clone());
        }
    }
}

/// One page of a listing: its models and the cursor of the next page.
#[derive(Debug, Default, PartialEq)]
pub struct Page {
    pub models: Vec<Found>,
    pub next: Option<String>,
}

pub fn listing_name(l: Listing) -> &'static str {
    match l {
        Listing::OpenAi => "openai",
        Listing::Anthropic => "anthropic",
        Listing::Gemini => "gemini",
        Listing::Ollama => "ollama",
        Listing::LmStudio => "lmstudio",
    }
}

/// The server's root for the local servers' native APIs: their OpenAI
/// base is `{root}/v1`.
fn root(prefix: &str) -> &str {
    let p = prefix.trim_end_matches('/');
    p.strip_suffix("/v1").unwrap_or(p)
}

/// Where page `cursor` of the listing is.
pub fn page_path(l: Listing, prefix: &str, cursor: Option<&str>) -> String {
    let q = |s: &str| filters::wire::http::path_segment(s);
    let prefix = prefix.trim_end_matches('/');
    match (l, cursor) {
        (Listing::OpenAi, _) => format!("{prefix}/models"),
        (Listing::Anthropic, None) => format!("{prefix}/v1/models?limit=1000"),
        (Listing::Anthropic, Some(c)) => format!("{prefix}/v1/models?limit=1000&after_id={}", q(c)),
        (Listing::Gemini, None) => format!("{prefix}/v1beta/models?pageSize=1000"),
        (Listing::Gemini, Some(c)) => {
            format!("{prefix}/v1beta/models?pageSize=1000&pageToken={}", q(c))
        }
        (Listing::Ollama, _) => format!("{}/api/tags", root(prefix)),
        (Listing::LmStudio, _) => format!("{}/api/v0/models", root(prefix)),
    }
}

/// An embeddings model by its name, where the listing does not say.
fn embeds_by_name(id: &str) -> bool {
    let id = id.to_ascii_lowercase();
    id.contains("embed") || id.contains("bge-") || id.starts_with("bge")
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn entries<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the answer has no '{key}' list"))
}

/// One page of `l`'s answer, normalized.
pub fn parse(l: Listing, body: &[u8]) -> Result<Page, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let mut page = Page::default();
    match l {
        Listing::OpenAi => {
            for m in entries(&v, "data")? {
                let Some(id) = str_at(m, "id") else { continue };
                let kind = if embeds_by_name(id) {
                    Kind::Embeddings
                } else {
                    Kind::Chat
                };
                let mut f = Found::new(id, kind);
                // Some compatible servers say the window (vLLM, OpenRouter).
                f.context_window = ["context_window", "context_length", "max_model_len"]
                    .iter()
                    .find_map(|k| m.get(*k).and_then(Value::as_u64));
                f.note("owned_by", m.get("owned_by"));
                f.note("created", m.get("created"));
                page.models.push(f);
            }
        }
        Listing::Anthropic => {
            for m in entries(&v, "data")? {
                let Some(id) = str_at(m, "id") else { continue };
                let mut f = Found::new(id, Kind::Chat);
                f.display_name = str_at(m, "display_name").map(str::to_owned);
                f.note("created_at", m.get("created_at"));
                page.models.push(f);
            }
            let more = v.get("has_more").and_then(Value::as_bool) == Some(true);
            page.next = str_at(&v, "last_id").filter(|_| more).map(str::to_owned);
        }
        Listing::Gemini => {
            for m in entries(&v, "models")? {
                let Some(name) = str_at(m, "name") else {
                    continue;
                };
                let id = name.strip_prefix("models/").unwrap_or(name);
                let methods: Vec<&str> = m
                    .get("supportedGenerationMethods")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                // Only what generates or embeds: image, video and
                // answer-only models are of no use to a chain.
                let kind = if methods.contains(&"generateContent") {
                    Kind::Chat
                } else if methods.contains(&"embedContent") {
                    Kind::Embeddings
                } else {
                    continue;
                };
                let mut f = Found::new(id, kind);
                f.display_name = str_at(m, "displayName").map(str::to_owned);
                f.context_window = m.get("inputTokenLimit").and_then(Value::as_u64);
                f.note("max_output_tokens", m.get("outputTokenLimit"));
                page.models.push(f);
            }
            page.next = str_at(&v, "nextPageToken").map(str::to_owned);
        }
        Listing::Ollama => {
            for m in entries(&v, "models")? {
                let Some(id) = str_at(m, "name").or_else(|| str_at(m, "model")) else {
                    continue;
                };
                let details = m.get("details");
                let family = details.and_then(|d| str_at(d, "family"));
                let families: Vec<&str> = details
                    .and_then(|d| d.get("families"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                // Ollama's embedding models are BERT-family or say so by name.
                let bert = family.is_some_and(|f| f.contains("bert"))
                    || families.iter().any(|f| f.contains("bert"));
                let kind = if bert || embeds_by_name(id) {
                    Kind::Embeddings
                } else {
                    Kind::Chat
                };
                let mut f = Found::new(id, kind);
                f.note("family", details.and_then(|d| d.get("family")));
                f.note(
                    "parameter_size",
                    details.and_then(|d| d.get("parameter_size")),
                );
                f.note("size", m.get("size"));
                page.models.push(f);
            }
        }
        Listing::LmStudio => {
            for m in entries(&v, "data")? {
                let Some(id) = str_at(m, "id") else { continue };
                let kind = match str_at(m, "type") {
                    Some("embeddings") => Kind::Embeddings,
                    Some(_) => Kind::Chat,
                    None if embeds_by_name(id) => Kind::Embeddings,
                    None => Kind::Chat,
                };
                let mut f = Found::new(id, kind);
                f.context_window = m.get("max_context_length").and_then(Value::as_u64);
                f.loaded = str_at(m, "state").map(|s| s == "loaded");
                f.note("type", m.get("type"));
                f.note("owned_by", m.get("publisher").or(m.get("owned_by")));
                page.models.push(f);
            }
        }
    }
    Ok(page)
}

/// `models` as the API answers them: sorted by id, one entry per id, each
/// with the configured models whose chain already sends `provider` it.
pub fn answer(
    provider: &str,
    listing: Listing,
    mut models: Vec<Found>,
    configured: impl Fn(&str) -> Vec<String>,
) -> Value {
    models.sort_by(|a, b| a.id.cmp(&b.id));
    models.dedup_by(|a, b| a.id == b.id);
    let list: Vec<Value> = models
        .into_iter()
        .map(|f| {
            let mut m = Map::new();
            m.insert("id".into(), json!(f.id));
            if let Some(d) = f.display_name {
                m.insert("display_name".into(), json!(d));
            }
            if let Some(c) = f.context_window {
                m.insert("context_window".into(), json!(c));
            }
            m.insert("kind".into(), json!(f.kind.name()));
            if let Some(l) = f.loaded {
                m.insert("loaded".into(), json!(l));
            }
            m.insert("configured".into(), json!(configured(&f.id)));
            for (k, v) in f.extra {
                m.entry(k).or_insert(v);
            }
            Value::Object(m)
        })
        .collect();
    json!({"provider": provider, "listing": listing_name(listing), "models": list})
}

/// Every page of the provider's listing, within the bounds.
async fn list(
    plane: &AdminPlane,
    live: &Live,
    rec: &mut RequestRecord,
    provider: &Arc<Provider>,
) -> Result<Value, ApiError> {
    let listing = crate::config::preset::listing(provider.preset, provider.dialect);
    // A target of no chain: the provider's own budgets, no breaker.
    let target = Target::probe(provider.clone(), "");
    let mut models = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let path = page_path(listing, &provider.path_prefix, cursor.as_deref());
        let (body, used) = match fetch(plane, live, rec, &target, &path).await {
            // LM Studio before 0.3.6 has no native API: its OpenAI list.
            Err(Failure::Status(404, _)) if listing == Listing::LmStudio => {
                let path = page_path(Listing::OpenAi, &provider.path_prefix, None);
                (
                    fetch(plane, live, rec, &target, &path).await,
                    Listing::OpenAi,
                )
            }
            other => (other, listing),
        };
        let body = body.map_err(|f| failed(provider, &f))?;
        let page = parse(used, &body).map_err(|m| {
            ApiError::new(
                ErrorKind::Api,
                format!("{}: cannot read the model list: {m}", provider.name),
            )
        })?;
        models.extend(page.models);
        cursor = page.next.filter(|n| Some(n) != cursor.as_ref());
        if cursor.is_none() {
            break;
        }
    }
    let name = &*provider.name;
    let configured = |id: &str| -> Vec<String> {
        let mut names: Vec<String> = live
            .config
            .routes
            .iter()
            .filter(|(_, r)| {
                r.targets
                    .iter()
                    .any(|t| &*t.provider.name == name && &*t.model == id)
            })
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    };
    Ok(answer(name, listing, models, configured))
}

async fn fetch(
    plane: &AdminPlane,
    live: &Live,
    rec: &mut RequestRecord,
    target: &Target,
    path: &str,
) -> Result<Bytes, Failure> {
    call_within(
        &plane.upstream,
        live,
        rec,
        target,
        ("GET", path),
        Bytes::new(),
        MAX_PAGE_BYTES,
    )
    .await
}

/// A failed listing as the admin API answers it: 502 (504 on a timeout)
/// naming the provider, the upstream's status and its message, which are
/// the provider's words (no key of ours is ever in them).
fn failed(provider: &Provider, f: &Failure) -> ApiError {
    let status = match f {
        Failure::Timeout(_) => 504,
        _ => 502,
    };
    ApiError::new(
        ErrorKind::Api,
        format!(
            "{}: listing its models failed: {}",
            provider.name,
            super::probe::describe(f)
        ),
    )
    .with_status(status)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    models: Vec<AddOne>,
    /// The etag the file was read with (`GET /api/config`); checked when
    /// given, as `If-Match` is.
    #[serde(default)]
    etag: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddOne {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

async fn add(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    provider: &str,
) -> Result<(), ApiError> {
    let if_match = session
        .req_header()
        .headers
        .get(http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_matches('"').to_owned())
        .filter(|v| !v.is_empty() && v != "*");
    let body: AddBody = parse_body(&read_body(session, &live.config).await?)?;
    if body.models.is_empty() {
        return Err(ApiError::invalid("models: choose at least one model").with_param("models"));
    }
    if body.models.len() > MAX_ADD {
        return Err(
            ApiError::invalid(format!("models: at most {MAX_ADD} at once")).with_param("models"),
        );
    }
    let mut wanted = Vec::with_capacity(body.models.len());
    for (i, m) in body.models.into_iter().enumerate() {
        let id = m.id.trim().to_owned();
        if id.is_empty() {
            return Err(
                ApiError::invalid(format!("models[{i}].id: must not be empty"))
                    .with_param(format!("models[{i}].id")),
            );
        }
        let name = match m.name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => id.clone(),
        };
        wanted.push(NewModel { name, id });
    }
    let etag = if_match.or(body.etag.filter(|e| !e.is_empty()));
    let w = &plane.config;
    let (path, provider_name) = (w.path.clone(), provider.to_owned());
    let outcome: Arc<std::sync::Mutex<Vec<Added>>> = Arc::default();
    let out = outcome.clone();
    let saved = w
        .edit(etag, move |current| {
            let (text, added) = add_models(current, &provider_name, &wanted).map_err(|m| {
                Refused::Failed(
                    ApiError::invalid(format!("{}: {m}; fix it on disk", path.display()))
                        .with_status(409),
                )
            })?;
            *out.lock().unwrap_or_else(|e| e.into_inner()) = added;
            Ok(text)
        })
        .await;
    let added = std::mem::take(&mut *outcome.lock().unwrap_or_else(|e| e.into_inner()));
    let after = plane.live.load();
    let extra = move || {
        let list: Vec<Value> = added
            .iter()
            .map(|a| json!({"name": a.name, "model": a.id, "change": a.change.name()}))
            .collect();
        let models: Vec<Value> = added
            .iter()
            .filter_map(|a| {
                after
                    .config
                    .routes
                    .get(&a.name)
                    .map(|r| super::overview::model_view(&after, &a.name, r))
            })
            .collect();
        vec![
            ("provider", json!(provider)),
            ("added", json!(list)),
            ("models", json!(models)),
        ]
    };
    super::config_edit::answer(session, rec, saved, extra).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_listing_and_its_cursor() {
        assert_eq!(page_path(Listing::OpenAi, "/v1", None), "/v1/models");
        assert_eq!(
            page_path(Listing::Anthropic, "", Some("claude x")),
            "/v1/models?limit=1000&after_id=claude%20x"
        );
        assert_eq!(
            page_path(Listing::Gemini, "", None),
            "/v1beta/models?pageSize=1000"
        );
        assert_eq!(page_path(Listing::Ollama, "/v1", None), "/api/tags");
        assert_eq!(page_path(Listing::Ollama, "", None), "/api/tags");
        assert_eq!(
            page_path(Listing::LmStudio, "/lm/v1/", None),
            "/lm/api/v0/models"
        );
    }

    #[test]
    fn openai_lists_ids_and_marks_embeddings() {
        let p = parse(
            Listing::OpenAi,
            br#"{"object":"list","data":[{"id":"gpt-4o","owned_by":"openai","created":1},{"id":"text-embedding-3-small"},{"object":"model"}]}"#,
        )
        .unwrap();
        assert_eq!(p.models.len(), 2);
        assert_eq!(p.models[0].kind, Kind::Chat);
        assert_eq!(p.models[0].extra["owned_by"], "openai");
        assert_eq!(p.models[1].kind, Kind::Embeddings);
        assert_eq!(p.next, None);
        assert!(parse(Listing::OpenAi, b"{}").is_err());
        assert!(parse(Listing::OpenAi, b"<html>").is_err());
    }

    #[test]
    fn anthropic_pages_by_last_id() {
        let p = parse(
            Listing::Anthropic,
            br#"{"data":[{"id":"claude-a","display_name":"Claude A","created_at":"2025-01-01T00:00:00Z"}],"has_more":true,"last_id":"claude-a"}"#,
        )
        .unwrap();
        assert_eq!(p.models[0].display_name.as_deref(), Some("Claude A"));
        assert_eq!(p.next.as_deref(), Some("claude-a"));
        let p = parse(
            Listing::Anthropic,
            br#"{"data":[],"has_more":false,"last_id":"x"}"#,
        )
        .unwrap();
        assert_eq!(p.next, None);
    }

    #[test]
    fn gemini_keeps_chat_and_embedding_models_only() {
        let p = parse(
            Listing::Gemini,
            br#"{"models":[
              {"name":"models/gemini-2.5-flash","displayName":"Gemini 2.5 Flash","inputTokenLimit":1048576,"outputTokenLimit":65536,"supportedGenerationMethods":["generateContent","countTokens"]},
              {"name":"models/text-embedding-004","supportedGenerationMethods":["embedContent"]},
              {"name":"models/imagen-3","supportedGenerationMethods":["predict"]}
            ],"nextPageToken":"p2"}"#,
        )
        .unwrap();
        let ids: Vec<&str> = p.models.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["gemini-2.5-flash", "text-embedding-004"]);
        assert_eq!(p.models[0].context_window, Some(1_048_576));
        assert_eq!(p.models[0].extra["max_output_tokens"], 65536);
        assert_eq!(p.models[1].kind, Kind::Embeddings);
        assert_eq!(p.next.as_deref(), Some("p2"));
    }

    #[test]
    fn ollama_and_lmstudio_say_what_is_local() {
        let p = parse(
            Listing::Ollama,
            br#"{"models":[{"name":"qwen3:8b","size":5225387923,"details":{"family":"qwen3","parameter_size":"8.2B"}},
                           {"model":"nomic-embed-text:latest","details":{"family":"nomic-bert"}}]}"#,
        )
        .unwrap();
        assert_eq!(p.models[0].extra["parameter_size"], "8.2B");
        assert_eq!(p.models[0].kind, Kind::Chat);
        assert_eq!(p.models[1].id, "nomic-embed-text:latest");
        assert_eq!(p.models[1].kind, Kind::Embeddings);
        let p = parse(
            Listing::LmStudio,
            br#"{"data":[{"id":"qwen2.5-7b-instruct","type":"llm","state":"loaded","max_context_length":32768},
                         {"id":"text-embedding-nomic","type":"embeddings","state":"not-loaded"}]}"#,
        )
        .unwrap();
        assert_eq!(p.models[0].loaded, Some(true));
        assert_eq!(p.models[0].context_window, Some(32768));
        assert_eq!(p.models[1].loaded, Some(false));
        assert_eq!(p.models[1].kind, Kind::Embeddings);
    }

    #[test]
    fn the_answer_is_sorted_deduplicated_and_marks_configured() {
        let v = answer(
            "p",
            Listing::OpenAi,
            vec![
                Found::new("b", Kind::Chat),
                Found::new("a", Kind::Chat),
                Found::new("b", Kind::Chat),
            ],
            |id| {
                if id == "a" {
                    vec!["chat".into()]
                } else {
                    vec![]
                }
            },
        );
        assert_eq!(v["listing"], "openai");
        let ids: Vec<&str> = v["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(v["models"][0]["configured"], json!(["chat"]));
        assert_eq!(v["models"][1]["configured"], json!([]));
        assert!(v["models"][0].get("loaded").is_none());
    }
}
