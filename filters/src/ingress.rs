//! Which endpoint a request is for, from its method and path alone (the
//! query string never takes part: Claude Code appends `?beta=true`, Gemini
//! clients `?alt=sse` and sometimes `?key=`).

use crate::wire::http::percent_decode;
use crate::Dialect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Liveness: `GET`/`HEAD` on `/`, `/health`, `/api/hello`.
    Health,
    /// `GET`/`HEAD /v1/health`: liveness with counts of healthy providers
    /// (open, names nothing).
    HealthReport,
    /// A generation call in a client dialect (Gemini: see [`gemini_call`]
    /// for the model and whether it streams).
    Generate(Dialect),
    /// Anthropic `/v1/messages/count_tokens`, Gemini `:countTokens`.
    CountTokens(Dialect),
    /// OpenAI `/v1/embeddings`; Gemini `:embedContent` and
    /// `:batchEmbedContents`.
    Embeddings(Dialect),
    /// `GET /v1/models`, `/v1beta/models`; the listing's shape follows the
    /// client.
    Models,
    /// `GET /v1/models/{id}`, `/v1beta/models/{id}`.
    Model,
    /// `POST /v1/models/{model}/test`: a tiny request down the model's
    /// chain, each target reported (see [`model_test_name`]).
    ModelTest,
    /// `GET` on the paths `POST` Responses are served on: the Responses
    /// WebSocket transport (Codex `supports_websockets`), the upgrade
    /// checked by the handler (a plain `GET` gets 426).
    ResponsesSocket,
    /// `GET`/`DELETE /v1/responses/{id}`: a response the gateway kept.
    StoredResponse,
    /// `GET /api/upstream-keys/stats`, `/v1/api-keys/stats`: per-key
    /// statistics (admin role).
    UpstreamKeyStats,
    /// `/api/keys[/{name}[/limits]]`: the client keys (admin API).
    AdminKeys,
    /// `/api/usage[/requests[/{request_id}]|/export]`: usage rows (admin API).
    AdminUsage,
    /// `GET /metrics`: Prometheus text format.
    Metrics,
    /// `GET /api/logs`: recent gateway log lines (admin or viewer).
    AdminLogs,
    /// `GET /api/conversations[/{request_id}]`: the conversation log.
    AdminConversations,
    /// Every other `/api/...` path: the admin plane (sessions, config,
    /// providers, models, stats), dispatched by the admin module.
    Admin,
    /// `/ui` and `/ui/...`: the embedded web UI.
    Ui,
    /// `POST /route/invoke`: an OpenAI Chat call routed by tags
    /// (`filters::routing::invoke`).
    RouteInvoke,
    /// Known path, wrong method.
    MethodNotAllowed,
    NotFound,
}

/// What a Gemini model path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeminiAction {
    Generate,
    StreamGenerate,
    CountTokens,
    EmbedContent,
    BatchEmbedContents,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeminiCall {
    /// Percent-decoded, without a `models/` prefix.
    pub model: String,
    pub action: GeminiAction,
}

const GEMINI_MODELS: [&str; 4] = [
    "/v1beta/models/",
    "/gemini/v1beta/models/",
    "/v1/models/",
    "/gemini/v1/models/",
];

fn strip_query(path: &str) -> &str {
    let path = path.split('?').next().unwrap_or(path);
    if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    }
}

/// `/v1beta/models/{model}:{action}` (also under `/gemini` and `/v1`).
pub fn gemini_call(path: &str) -> Option<GeminiCall> {
    let path = strip_query(path);
    let rest = GEMINI_MODELS.iter().find_map(|p| path.strip_prefix(p))?;
    let (model, action) = rest.rsplit_once(':')?;
    let action = match action {
        "generateContent" => GeminiAction::Generate,
        "streamGenerateContent" => GeminiAction::StreamGenerate,
        "countTokens" => GeminiAction::CountTokens,
        "embedContent" => GeminiAction::EmbedContent,
        "batchEmbedContents" => GeminiAction::BatchEmbedContents,
        _ => return None,
    };
    let model = percent_decode(model)?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    Some(GeminiCall { model, action })
}

/// The id in `/v1/responses/{id}` or `/v1/models/{id}` (percent-decoded).
pub fn trailing_id(path: &str) -> Option<String> {
    let path = strip_query(path);
    let (_, id) = path.rsplit_once('/')?;
    let id = percent_decode(id)?;
    let id = id.strip_prefix("models/").unwrap_or(&id).to_owned();
    (!id.is_empty()).then_some(id)
}

fn is_stored_response(path: &str) -> bool {
    [
        "/v1/responses/",
        "/openai/responses/",
        "/openai/v1/responses/",
    ]
    .iter()
    .any(|p| {
        path.strip_prefix(p)
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
    })
}

/// Where `/v1/models/{model}/test` is served.
const MODEL_TEST: [&str; 2] = ["/v1/models/", "/openai/v1/models/"];

/// The model of `/v1/models/{model}/test` (percent-decoded). The name
/// may hold `/` (`meta-llama/Llama-3`): the `/test` suffix, not the
/// segment count, tells this path from `GET /v1/models/{id}`.
pub fn model_test_name(path: &str) -> Option<String> {
    let path = strip_query(path);
    let rest = MODEL_TEST.iter().find_map(|p| path.strip_prefix(p))?;
    let model = percent_decode(rest.strip_suffix("/test")?)?;
    (!model.is_empty()).then_some(model)
}

/// Claude Code's base URL of the earlier gateway it replaces
/// (`ANTHROPIC_BASE_URL=…/api/v1/claude-code`; the CLI appends
/// `/v1/messages`, older setups posted to `…/messages`).
fn claude_code_call(path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix("/api/v1/claude-code")?;
    let rest = rest.strip_prefix("/v1").unwrap_or(rest);
    match rest {
        "/messages" => Some(Endpoint::Generate(Dialect::Anthropic)),
        "/messages/count_tokens" => Some(Endpoint::CountTokens(Dialect::Anthropic)),
        _ => None,
    }
}

fn is_single_model(path: &str) -> bool {
    [
        "/v1/models/",
        "/v1beta/models/",
        "/gemini/v1beta/models/",
        "/openai/v1/models/",
        "/anthropic/v1/models/",
    ]
    .iter()
    .any(|p| {
        path.strip_prefix(p)
            .is_some_and(|id| !id.is_empty() && !id.contains(['/', ':']))
    })
}

pub fn classify(method: &str, path: &str) -> Endpoint {
    let path = strip_query(path);
    let is_get = method == "GET" || method == "HEAD";
    let is_post = method == "POST";
    if let Some(call) = gemini_call(path) {
        if !is_post {
            return Endpoint::MethodNotAllowed;
        }
        return match call.action {
            GeminiAction::Generate | GeminiAction::StreamGenerate => {
                Endpoint::Generate(Dialect::Gemini)
            }
            GeminiAction::CountTokens => Endpoint::CountTokens(Dialect::Gemini),
            GeminiAction::EmbedContent | GeminiAction::BatchEmbedContents => {
                Endpoint::Embeddings(Dialect::Gemini)
            }
        };
    }
    if is_stored_response(path) {
        return if is_get || method == "DELETE" {
            Endpoint::StoredResponse
        } else {
            Endpoint::MethodNotAllowed
        };
    }
    // Before the `/api/...` admin paths: this is LLM traffic.
    if let Some(endpoint) = claude_code_call(path) {
        return if is_post {
            endpoint
        } else {
            Endpoint::MethodNotAllowed
        };
    }
    if model_test_name(path).is_some() {
        return if is_post {
            Endpoint::ModelTest
        } else {
            Endpoint::MethodNotAllowed
        };
    }
    if path == "/api/keys" || path.starts_with("/api/keys/") {
        return Endpoint::AdminKeys;
    }
    if path == "/api/usage" || path.starts_with("/api/usage/") {
        return Endpoint::AdminUsage;
    }
    if path == "/api/conversations"
        || path
            .strip_prefix("/api/conversations/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
    {
        return if is_get {
            Endpoint::AdminConversations
        } else {
            Endpoint::MethodNotAllowed
        };
    }
    if is_single_model(path) {
        return if is_get {
            Endpoint::Model
        } else {
            Endpoint::MethodNotAllowed
        };
    }
    let (want_post, endpoint) = match path {
        "/" | "/health" | "/api/hello" => (false, Endpoint::Health),
        "/v1/health" => (false, Endpoint::HealthReport),
        "/v1/chat/completions"
        | "/openai/chat/completions"
        | "/openai/v1/chat/completions"
        | "/chat/completions" => (true, Endpoint::Generate(Dialect::OpenAiChat)),
        "/v1/responses" | "/openai/responses" | "/openai/v1/responses" | "/responses" => {
            (true, Endpoint::Generate(Dialect::OpenAiResponses))
        }
        "/v1/messages" | "/anthropic/messages" | "/anthropic/v1/messages" => {
            (true, Endpoint::Generate(Dialect::Anthropic))
        }
        "/v1/messages/count_tokens"
        | "/anthropic/messages/count_tokens"
        | "/anthropic/v1/messages/count_tokens" => {
            (true, Endpoint::CountTokens(Dialect::Anthropic))
        }
        "/v1/embeddings" | "/openai/embeddings" | "/openai/v1/embeddings" | "/embeddings" => {
            (true, Endpoint::Embeddings(Dialect::OpenAiChat))
        }
        "/route/invoke" | "/v1/route/invoke" => (true, Endpoint::RouteInvoke),
        "/api/upstream-keys/stats" | "/v1/api-keys/stats" => (false, Endpoint::UpstreamKeyStats),
        "/metrics" => (false, Endpoint::Metrics),
        "/api/logs" => (false, Endpoint::AdminLogs),
        "/ui" => (false, Endpoint::Ui),
        p if p.starts_with("/ui/") => (false, Endpoint::Ui),
        p if p.starts_with("/api/") => return Endpoint::Admin,
        "/v1/models"
        | "/openai/models"
        | "/openai/v1/models"
        | "/anthropic/v1/models"
        | "/v1beta/models"
        | "/gemini/v1beta/models"
        | "/models" => (false, Endpoint::Models),
        _ => return Endpoint::NotFound,
    };
    match (want_post, is_post, is_get) {
        (true, false, true) if endpoint == Endpoint::Generate(Dialect::OpenAiResponses) => {
            Endpoint::ResponsesSocket
        }
        (true, true, _) | (false, _, true) => endpoint,
        _ => Endpoint::MethodNotAllowed,
    }
}

/// The dialect to answer in when the endpoint alone does not say (errors
/// on unknown paths, `/v1/models`): Anthropic clients send
/// `anthropic-version` or use the `/anthropic` prefix; Gemini paths start
/// `/v1beta` or `/gemini`.
pub fn dialect_hint(path: &str, has_anthropic_version: bool) -> Dialect {
    if path.starts_with("/v1beta") || path.starts_with("/gemini") {
        Dialect::Gemini
    } else if has_anthropic_version
        || path.starts_with("/anthropic")
        || path.starts_with("/v1/messages")
        || path.starts_with("/api/v1/claude-code")
    {
        Dialect::Anthropic
    } else if path.starts_with("/v1/responses") || path.starts_with("/openai/responses") {
        Dialect::OpenAiResponses
    } else {
        Dialect::OpenAiChat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_on_path_only() {
        assert_eq!(
            classify("POST", "/v1/messages?beta=true"),
            Endpoint::Generate(Dialect::Anthropic)
        );
        assert_eq!(
            classify("POST", "/anthropic/messages"),
            Endpoint::Generate(Dialect::Anthropic)
        );
        assert_eq!(
            classify("POST", "/openai/chat/completions/"),
            Endpoint::Generate(Dialect::OpenAiChat)
        );
        assert_eq!(
            classify("POST", "/v1/messages/count_tokens?beta=true"),
            Endpoint::CountTokens(Dialect::Anthropic)
        );
        assert_eq!(classify("GET", "/v1/models"), Endpoint::Models);
        assert_eq!(classify("HEAD", "/"), Endpoint::Health);
        assert_eq!(
            classify("GET", "/api/upstream-keys/stats"),
            Endpoint::UpstreamKeyStats
        );
        assert_eq!(classify("GET", "/health"), Endpoint::Health);
        assert_eq!(classify("GET", "/metrics"), Endpoint::Metrics);
        assert_eq!(
            classify("GET", "/v1/chat/completions"),
            Endpoint::MethodNotAllowed
        );
        assert_eq!(classify("POST", "/v2/whatever"), Endpoint::NotFound);
        // The Responses WebSocket: GET where the POST is served.
        for p in ["/v1/responses", "/openai/v1/responses", "/responses?x=1"] {
            assert_eq!(classify("GET", p), Endpoint::ResponsesSocket, "{p}");
        }
        assert_eq!(
            classify("DELETE", "/v1/responses"),
            Endpoint::MethodNotAllowed
        );
        assert_eq!(classify("GET", "/api/logs"), Endpoint::AdminLogs);
        assert_eq!(
            classify("GET", "/api/conversations?key=a"),
            Endpoint::AdminConversations
        );
        assert_eq!(
            classify("GET", "/api/conversations/req_1"),
            Endpoint::AdminConversations
        );
        assert_eq!(
            classify("DELETE", "/api/conversations/req_1"),
            Endpoint::MethodNotAllowed
        );
        // Other /api paths belong to the admin plane, which answers 404
        // for those it does not know.
        assert_eq!(classify("GET", "/api/conversations/a/b"), Endpoint::Admin);
        assert_eq!(classify("POST", "/api/login"), Endpoint::Admin);
        assert_eq!(classify("PUT", "/api/config"), Endpoint::Admin);
        assert_eq!(classify("GET", "/ui"), Endpoint::Ui);
        assert_eq!(classify("GET", "/ui/keys"), Endpoint::Ui);
        assert_eq!(classify("POST", "/ui/"), Endpoint::MethodNotAllowed);
        assert_eq!(classify("GET", "/uix"), Endpoint::NotFound);
    }

    #[test]
    fn responses_and_embeddings() {
        assert_eq!(
            classify("POST", "/v1/responses"),
            Endpoint::Generate(Dialect::OpenAiResponses)
        );
        assert_eq!(
            classify("POST", "/openai/responses"),
            Endpoint::Generate(Dialect::OpenAiResponses)
        );
        assert_eq!(
            classify("GET", "/v1/responses/resp_1"),
            Endpoint::StoredResponse
        );
        assert_eq!(
            classify("DELETE", "/v1/responses/resp_1"),
            Endpoint::StoredResponse
        );
        assert_eq!(
            classify("POST", "/v1/responses/resp_1"),
            Endpoint::MethodNotAllowed
        );
        assert_eq!(
            trailing_id("/v1/responses/resp_1?x=1").as_deref(),
            Some("resp_1")
        );
        assert_eq!(
            classify("POST", "/v1/embeddings"),
            Endpoint::Embeddings(Dialect::OpenAiChat)
        );
        assert_eq!(classify("GET", "/v1/models/gpt-x"), Endpoint::Model);
    }

    #[test]
    fn gemini_paths_name_model_and_action() {
        let call = gemini_call("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse");
        assert_eq!(
            call,
            Some(GeminiCall {
                model: "gemini-2.5-pro".into(),
                action: GeminiAction::StreamGenerate
            })
        );
        assert_eq!(
            gemini_call("/gemini/v1beta/models/mock%3Bcalls%3D2:generateContent").map(|c| c.model),
            Some("mock;calls=2".into())
        );
        assert_eq!(
            classify("POST", "/v1/models/g:countTokens"),
            Endpoint::CountTokens(Dialect::Gemini)
        );
        assert_eq!(
            classify("POST", "/v1beta/models/e:batchEmbedContents"),
            Endpoint::Embeddings(Dialect::Gemini)
        );
        assert_eq!(
            classify("GET", "/v1beta/models/g:generateContent"),
            Endpoint::MethodNotAllowed
        );
        assert_eq!(
            classify("POST", "/v1beta/models/g:explode"),
            Endpoint::NotFound
        );
        assert_eq!(gemini_call("/v1beta/models/a%2Fb:generateContent"), None);
        assert_eq!(classify("GET", "/v1beta/models"), Endpoint::Models);
        assert_eq!(classify("GET", "/v1beta/models/gemini-x"), Endpoint::Model);
        assert_eq!(
            trailing_id("/v1beta/models/gemini-x").as_deref(),
            Some("gemini-x")
        );
    }

    #[test]
    fn usage_paths_go_to_the_usage_api() {
        for path in [
            "/api/usage",
            "/api/usage/",
            "/api/usage?group_by=day",
            "/api/usage/requests",
            "/api/usage/requests/req_1",
            "/api/usage/export?from=0",
        ] {
            assert_eq!(classify("GET", path), Endpoint::AdminUsage, "{path}");
        }
        // The method is the handler's to refuse, in the caller's dialect.
        assert_eq!(classify("POST", "/api/usage"), Endpoint::AdminUsage);
        assert_eq!(classify("GET", "/api/usagex"), Endpoint::Admin);
    }

    #[test]
    fn seed_compatible_paths() {
        for path in [
            "/api/v1/claude-code/messages",
            "/api/v1/claude-code/v1/messages",
            "/api/v1/claude-code/v1/messages?beta=true",
        ] {
            assert_eq!(
                classify("POST", path),
                Endpoint::Generate(Dialect::Anthropic),
                "{path}"
            );
            assert_eq!(dialect_hint(path, false), Dialect::Anthropic);
        }
        for path in [
            "/api/v1/claude-code/messages/count_tokens",
            "/api/v1/claude-code/v1/messages/count_tokens?beta=true",
        ] {
            assert_eq!(
                classify("POST", path),
                Endpoint::CountTokens(Dialect::Anthropic),
                "{path}"
            );
        }
        assert_eq!(
            classify("GET", "/api/v1/claude-code/v1/messages"),
            Endpoint::MethodNotAllowed
        );
        // Anything else under the prefix is the admin plane's to refuse.
        assert_eq!(classify("POST", "/api/v1/claude-code/x"), Endpoint::Admin);
        assert_eq!(classify("POST", "/api/v1/claude-code"), Endpoint::Admin);

        assert_eq!(classify("POST", "/v1/models/oa/test"), Endpoint::ModelTest);
        assert_eq!(
            classify("GET", "/v1/models/oa/test"),
            Endpoint::MethodNotAllowed
        );
        assert_eq!(classify("GET", "/v1/models/oa"), Endpoint::Model);
        assert_eq!(classify("GET", "/v1/models/test"), Endpoint::Model);
        assert_eq!(
            model_test_name("/v1/models/meta-llama/Llama-3/test").as_deref(),
            Some("meta-llama/Llama-3")
        );
        assert_eq!(
            model_test_name("/v1/models/mock%3Bstatus%3D503/test?x=1").as_deref(),
            Some("mock;status=503")
        );
        assert_eq!(
            model_test_name("/v1/models/qwen2.5:7b/test").as_deref(),
            Some("qwen2.5:7b")
        );
        assert_eq!(model_test_name("/v1/models//test"), None);
        assert_eq!(model_test_name("/v1/models/oa/testing"), None);
        assert_eq!(classify("POST", "/v1/models//test"), Endpoint::NotFound);
        // Gemini's model actions keep their meaning.
        assert_eq!(
            classify("POST", "/v1/models/g:generateContent"),
            Endpoint::Generate(Dialect::Gemini)
        );

        assert_eq!(classify("GET", "/v1/health"), Endpoint::HealthReport);
        assert_eq!(classify("POST", "/route/invoke"), Endpoint::RouteInvoke);
        assert_eq!(classify("GET", "/route/invoke"), Endpoint::MethodNotAllowed);
        assert_eq!(classify("HEAD", "/v1/health"), Endpoint::HealthReport);
        assert_eq!(classify("POST", "/v1/health"), Endpoint::MethodNotAllowed);
        assert_eq!(
            classify("GET", "/v1/api-keys/stats"),
            Endpoint::UpstreamKeyStats
        );
        assert_eq!(classify("GET", "/api/config/health"), Endpoint::Admin);
    }

    #[test]
    fn dialect_for_ambiguous_paths() {
        assert_eq!(dialect_hint("/v1/models", true), Dialect::Anthropic);
        assert_eq!(dialect_hint("/v1/models", false), Dialect::OpenAiChat);
        assert_eq!(dialect_hint("/anthropic/zzz", false), Dialect::Anthropic);
        assert_eq!(dialect_hint("/v1beta/models", false), Dialect::Gemini);
        assert_eq!(
            dialect_hint("/v1/responses/x", false),
            Dialect::OpenAiResponses
        );
    }
}
