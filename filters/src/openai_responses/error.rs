//! OpenAI's error shape, the same for Responses as for Chat:
//! `{"error":{"message","type","param","code"}}` in a response body. Inside
//! a Responses stream the same facts travel as `response.failed` with
//! `response.error{code,message}`, read and written here too.

use crate::error::{ApiError, ErrorKind};
use serde_json::{json, Value};

pub fn body(e: &ApiError) -> Value {
    let (ty, code) = e.kind.openai_type_code();
    json!({"error": {
        "message": e.message,
        "type": ty,
        "param": e.param,
        "code": e.code.as_deref().or(code),
    }})
}

/// OpenAI has no overload status of its own: 503, which its SDK retries.
pub fn status(e: &ApiError) -> u16 {
    match e.kind {
        ErrorKind::Overloaded => 503,
        _ => e.status.unwrap_or_else(|| e.kind.status()),
    }
}

/// The `code` of a `response.failed`. Codex decides on it: context length,
/// quota and invalid prompts end the turn, a rate limit waits as long as
/// the message says, anything else is retried.
pub(crate) fn failed_code(e: &ApiError) -> &str {
    if let Some(code) = e.code.as_deref().filter(|c| !c.is_empty()) {
        return code;
    }
    match e.kind {
        ErrorKind::RateLimited => "rate_limit_exceeded",
        ErrorKind::Billing => "insufficient_quota",
        ErrorKind::Authentication => "unauthorized",
        ErrorKind::InvalidRequest
        | ErrorKind::RequestTooLarge
        | ErrorKind::NotFound
        | ErrorKind::PermissionDenied => "invalid_prompt",
        ErrorKind::Overloaded | ErrorKind::Timeout | ErrorKind::Api => "server_error",
    }
}

/// The message of a `response.failed`. Codex reads a rate limit's wait
/// only from the text ("try again in 7s"), so a known `retry-after` is
/// spelled out there.
pub(crate) fn failed_message(e: &ApiError) -> String {
    let wait = e
        .retry_after
        .as_deref()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|_| e.kind == ErrorKind::RateLimited)
        .filter(|_| !e.message.to_ascii_lowercase().contains("try again in"));
    match wait {
        Some(secs) => format!("{} Please try again in {secs}s.", e.message),
        None => e.message.clone(),
    }
}

/// Reads a Responses error object (`response.error`, an `error` event, or
/// a body's `error`): `{code, message, param?, type?}`.
pub(crate) fn from_wire(err: &Value) -> ApiError {
    let code = err.get("code").and_then(Value::as_str);
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or("upstream reported an error");
    let kind = match code.unwrap_or_default() {
        "rate_limit_exceeded" => ErrorKind::RateLimited,
        "insufficient_quota" => ErrorKind::Billing,
        "context_length_exceeded" | "invalid_prompt" => ErrorKind::InvalidRequest,
        "server_is_overloaded" | "slow_down" => ErrorKind::Overloaded,
        "unauthorized" | "invalid_api_key" => ErrorKind::Authentication,
        _ => ErrorKind::Api,
    };
    let mut e = ApiError::new(kind, message);
    e.code = code.map(str::to_owned);
    e.param = err.get("param").and_then(Value::as_str).map(str::to_owned);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_and_status_follow_openai() {
        let e = ApiError::invalid("input: bad").with_param("input");
        assert_eq!(
            body(&e),
            json!({"error":{"message":"input: bad","type":"invalid_request_error","param":"input","code":null}})
        );
        assert_eq!(status(&e), 400);
        assert_eq!(status(&ApiError::new(ErrorKind::Overloaded, "x")), 503);
        assert_eq!(
            status(&ApiError::new(ErrorKind::Api, "x").with_status(500)),
            500
        );
    }

    #[test]
    fn failed_codes_are_the_ones_codex_knows() {
        let mut e = ApiError::new(ErrorKind::RateLimited, "slow down");
        e.retry_after = Some("7".into());
        assert_eq!(failed_code(&e), "rate_limit_exceeded");
        assert_eq!(failed_message(&e), "slow down Please try again in 7s.");
        let mut e = ApiError::invalid("too long");
        assert_eq!(failed_code(&e), "invalid_prompt");
        e.code = Some("context_length_exceeded".into());
        assert_eq!(failed_code(&e), "context_length_exceeded");
        assert_eq!(
            failed_code(&ApiError::new(ErrorKind::Api, "x")),
            "server_error"
        );
        let back = from_wire(&json!({"code": "insufficient_quota", "message": "pay"}));
        assert_eq!(back.kind, ErrorKind::Billing);
        assert_eq!(back.code.as_deref(), Some("insufficient_quota"));
        assert_eq!(from_wire(&json!({})).kind, ErrorKind::Api);
    }
}
