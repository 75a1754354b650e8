//! Which endpoint a request is for, from its method and path alone (the
//! query string never takes part: Claude Code appends `?beta=true`).

use crate::Dialect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Liveness: `GET`/`HEAD` on `/`, `/health`, `/api/hello`.
    Health,
    /// A generation call in a client dialect.
    Generate(Dialect),
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `GET /v1/models`; the listing's shape follows the client.
    Models,
    /// `GET /api/upstream-keys/stats`: per-key statistics (admin role).
    UpstreamKeyStats,
    /// Known path, wrong method.
    MethodNotAllowed,
    NotFound,
}

pub fn classify(method: &str, path: &str) -> Endpoint {
    let path = path.split('?').next().unwrap_or(path);
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let is_get = method == "GET" || method == "HEAD";
    let is_post = method == "POST";
    let (want_post, endpoint) = match path {
        "/" | "/health" | "/api/hello" => (false, Endpoint::Health),
        "/v1/chat/completions"
        | "/openai/chat/completions"
        | "/openai/v1/chat/completions"
        | "/chat/completions" => (true, Endpoint::Generate(Dialect::OpenAiChat)),
        "/v1/messages" | "/anthropic/messages" | "/anthropic/v1/messages" => {
            (true, Endpoint::Generate(Dialect::Anthropic))
        }
        "/v1/messages/count_tokens"
        | "/anthropic/messages/count_tokens"
        | "/anthropic/v1/messages/count_tokens" => (true, Endpoint::CountTokens),
        "/api/upstream-keys/stats" => (false, Endpoint::UpstreamKeyStats),
        "/v1/models"
        | "/openai/models"
        | "/openai/v1/models"
        | "/anthropic/v1/models"
        | "/models" => (false, Endpoint::Models),
        _ => return Endpoint::NotFound,
    };
    match (want_post, is_post, is_get) {
        (true, true, _) | (false, _, true) => endpoint,
        _ => Endpoint::MethodNotAllowed,
    }
}

/// The dialect to answer in when the endpoint alone does not say (errors
/// on unknown paths, `/v1/models`): Anthropic clients send
/// `anthropic-version` or use the `/anthropic` prefix.
pub fn dialect_hint(path: &str, has_anthropic_version: bool) -> Dialect {
    if has_anthropic_version || path.starts_with("/anthropic") || path.starts_with("/v1/messages") {
        Dialect::Anthropic
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
            Endpoint::CountTokens
        );
        assert_eq!(classify("GET", "/v1/models"), Endpoint::Models);
        assert_eq!(classify("HEAD", "/"), Endpoint::Health);
        assert_eq!(
            classify("GET", "/api/upstream-keys/stats"),
            Endpoint::UpstreamKeyStats
        );
        assert_eq!(classify("GET", "/health"), Endpoint::Health);
        assert_eq!(
            classify("GET", "/v1/chat/completions"),
            Endpoint::MethodNotAllowed
        );
        assert_eq!(classify("POST", "/v2/whatever"), Endpoint::NotFound);
    }

    #[test]
    fn dialect_for_ambiguous_paths() {
        assert_eq!(dialect_hint("/v1/models", true), Dialect::Anthropic);
        assert_eq!(dialect_hint("/v1/models", false), Dialect::OpenAiChat);
        assert_eq!(dialect_hint("/anthropic/zzz", false), Dialect::Anthropic);
    }
}
