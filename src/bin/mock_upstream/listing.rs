//! Model listings, as each kind of provider answers them (the admin API's
//! discovery): a fixed, realistic set per kind, each behind the
//! credential header that kind of provider sends (401 in its own error
//! shape without it).
//!
//! ```text
//! GET …/models            OpenAI (`authorization`), `data[].id`
//! GET /v1/models          Anthropic when `x-api-key` or `anthropic-version` is sent;
//!                         two pages (`limit`, `after_id`; `has_more`, `last_id`)
//! GET /v1beta/models      Gemini (`x-goog-api-key` or `?key=`); two pages (`pageToken`)
//! GET /api/tags           Ollama (`authorization`)
//! GET /api/v0/models      LM Studio (`authorization`), with load state and type
//! ```

use serde_json::{json, Value};
use std::collections::HashMap;

/// Which listing a request is for, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OpenAi,
    Anthropic,
    Gemini,
    Ollama,
    LmStudio,
}

impl Kind {
    fn of(method: &str, route: &str, hdrs: &HashMap<String, String>) -> Option<Self> {
        if method != "GET" {
            return None;
        }
        let route = route.trim_end_matches('/');
        if route == "/api/tags" {
            return Some(Self::Ollama);
        }
        if route == "/api/v0/models" {
            return Some(Self::LmStudio);
        }
        if route.ends_with("/v1beta/models") {
            return Some(Self::Gemini);
        }
        if route == "/v1/models"
            && (hdrs.contains_key("x-api-key") || hdrs.contains_key("anthropic-version"))
        {
            return Some(Self::Anthropic);
        }
        // `/api/v0` is LM Studio's alone: elsewhere it is not found.
        if route.ends_with("/models") && !route.contains("/api/") {
            return Some(Self::OpenAi);
        }
        None
    }

    /// The by_endpoint label.
    fn label(self) -> &'static str {
        match self {
            Self::OpenAi => "list:openai",
            Self::Anthropic => "list:anthropic",
            Self::Gemini => "list:gemini",
            Self::Ollama => "list:ollama",
            Self::LmStudio => "list:lmstudio",
        }
    }
}

/// The listing's answer (status, body, by_endpoint label); `None`: not a
/// listing.
pub(crate) fn answer(
    method: &str,
    route: &str,
    query: &str,
    hdrs: &HashMap<String, String>,
) -> Option<(u16, Value, &'static str)> {
    let kind = Kind::of(method, route, hdrs)?;
    let param = |name: &str| crate::gemini::query_param(query, name);
    let bearer = hdrs
        .get("authorization")
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    let authorized = match kind {
        Kind::Anthropic => hdrs.get("x-api-key").is_some_and(|k| !k.is_empty()),
        Kind::Gemini => {
            hdrs.get("x-goog-api-key").is_some_and(|k| !k.is_empty())
                || param("key").is_some_and(|k| !k.is_empty())
        }
        Kind::OpenAi | Kind::Ollama | Kind::LmStudio => bearer,
    };
    if !authorized {
        return Some((401, unauthorized(kind), kind.label()));
    }
    let body = match kind {
        Kind::OpenAi => openai(),
        Kind::Anthropic => anthropic(param("after_id").as_deref()),
        Kind::Gemini => gemini(param("pageToken").as_deref()),
        Kind::Ollama => ollama(),
        Kind::LmStudio => lmstudio(),
    };
    Some((200, body, kind.label()))
}

fn unauthorized(kind: Kind) -> Value {
    match kind {
        Kind::Anthropic => json!({"type": "error", "error": {"type": "authentication_error",
            "message": "x-api-key header is required"}}),
        Kind::Gemini => json!({"error": {"code": 401, "status": "UNAUTHENTICATED",
            "message": "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."}}),
        _ => {
            json!({"error": {"message": "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "type": "invalid_request_error", "param": null, "code": null}})
        }
    }
}

fn openai() -> Value {
    let m = |id: &str, owner: &str, created: u64| json!({"id": id, "object": "model", "created": created, "owned_by": owner});
    json!({"object": "list", "data": [
        m("gpt-4o", "system", 1_715_367_049),
        m("gpt-4o-mini", "system", 1_721_172_741),
        m("o3-mini", "system", 1_737_146_383),
        m("text-embedding-3-small", "system", 1_705_948_997),
        m("mock", "modelswitch", 1_700_000_000),
    ]})
}

/// Two pages of two: the first names its last id and says there is more.
fn anthropic(after: Option<&str>) -> Value {
    let m = |id: &str, name: &str, at: &str| json!({"type": "model", "id": id, "display_name": name, "created_at": at});
    let first = [
        m(
            "claude-sonnet-4-5-20250929",
            "Claude Sonnet 4.5",
            "2025-09-29T00:00:00Z",
        ),
        m(
            "claude-opus-4-1-20250805",
            "Claude Opus 4.1",
            "2025-08-05T00:00:00Z",
        ),
    ];
    let second = [
        m(
            "claude-3-7-sonnet-20250219",
            "Claude Sonnet 3.7",
            "2025-02-19T00:00:00Z",
        ),
        m(
            "claude-3-5-haiku-20241022",
            "Claude Haiku 3.5",
            "2024-10-22T00:00:00Z",
        ),
    ];
    match after {
        Some("claude-opus-4-1-20250805") => json!({"data": second, "has_more": false,
            "first_id": "claude-3-7-sonnet-20250219", "last_id": "claude-3-5-haiku-20241022"}),
        Some(_) => json!({"data": [], "has_more": false, "first_id": null, "last_id": null}),
        None => json!({"data": first, "has_more": true,
            "first_id": "claude-sonnet-4-5-20250929", "last_id": "claude-opus-4-1-20250805"}),
    }
}

/// Two pages: chat models, then an embedding model, an image model (not
/// for chains) and one more chat model.
fn gemini(token: Option<&str>) -> Value {
    let m = |id: &str, name: &str, input: u64, output: u64, methods: &[&str]| {
        json!({"name": format!("models/{id}"), "version": "001", "displayName": name,
               "inputTokenLimit": input, "outputTokenLimit": output,
               "supportedGenerationMethods": methods})
    };
    let chat = ["generateContent", "countTokens", "createCachedContent"];
    match token {
        None => json!({"models": [
            m("gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, 65_536, &chat),
            m("gemini-2.5-flash", "Gemini 2.5 Flash", 1_048_576, 65_536, &chat),
        ], "nextPageToken": "page-2"}),
        Some("page-2") => json!({"models": [
            m("gemini-2.0-flash", "Gemini 2.0 Flash", 1_048_576, 8_192, &chat),
            m("text-embedding-004", "Text Embedding 004", 2_048, 1, &["embedContent"]),
            m("imagen-3.0-generate-002", "Imagen 3.0", 480, 8_192, &["predict"]),
        ]}),
        Some(_) => json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "Invalid page token."}}),
    }
}

fn ollama() -> Value {
    let m = |name: &str, family: &str, params: &str, size: u64| {
        json!({"name": name, "model": name, "modified_at": "2025-05-01T10:00:00.000000000Z",
               "size": size, "digest": "0123456789abcdef",
               "details": {"parent_model": "", "format": "gguf", "family": family,
                           "families": [family], "parameter_size": params,
                           "quantization_level": "Q4_K_M"}})
    };
    json!({"models": [
        m("qwen3:8b", "qwen3", "8.2B", 5_225_387_923),
        m("llama3.2:3b", "llama", "3.2B", 2_019_393_189),
        m("nomic-embed-text:latest", "nomic-bert", "137M", 274_302_450),
    ]})
}

fn lmstudio() -> Value {
    let m = |id: &str, kind: &str, state: &str, ctx: u64| {
        json!({"id": id, "object": "model", "type": kind, "publisher": "lmstudio-community",
               "arch": "qwen2", "compatibility_type": "gguf", "quantization": "Q4_K_M",
               "state": state, "max_context_length": ctx})
    };
    json!({"object": "list", "data": [
        m("qwen2.5-7b-instruct", "llm", "loaded", 32_768),
        m("google/gemma-3-12b", "vlm", "not-loaded", 131_072),
        m("text-embedding-nomic-embed-text-v1.5", "embeddings", "not-loaded", 2_048),
    ]})
}
