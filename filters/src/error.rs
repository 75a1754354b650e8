//! Errors a client can see, classified once and rendered at one edge in the
//! caller's dialect with a matching HTTP status, because SDKs and Claude Code
//! decide whether and how to retry from that dialect's error shape and text.

use serde_json::Value;

/// What went wrong, in the terms every dialect has a word for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    PermissionDenied,
    NotFound,
    RequestTooLarge,
    RateLimited,
    Billing,
    Timeout,
    Overloaded,
    /// The upstream (or the gateway) failed on its side.
    Api,
}

impl ErrorKind {
    /// The HTTP status an OpenAI-style client gets. Anthropic clients get
    /// 529 for `Overloaded` (see `status_for`).
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Authentication => 401,
            Self::Billing => 402,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::RequestTooLarge => 413,
            Self::RateLimited => 429,
            Self::Api => 502,
            Self::Overloaded => 503,
            Self::Timeout => 504,
        }
    }

    pub fn from_status(status: u16) -> Self {
        match status {
            401 => Self::Authentication,
            402 => Self::Billing,
            403 => Self::PermissionDenied,
            404 => Self::NotFound,
            408 | 504 => Self::Timeout,
            413 => Self::RequestTooLarge,
            429 => Self::RateLimited,
            503 | 529 => Self::Overloaded,
            400..=499 => Self::InvalidRequest,
            _ => Self::Api,
        }
    }

    pub fn anthropic_type(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::PermissionDenied => "permission_error",
            Self::NotFound => "not_found_error",
            Self::RequestTooLarge => "request_too_large",
            Self::RateLimited => "rate_limit_error",
            Self::Billing => "billing_error",
            Self::Timeout => "timeout_error",
            Self::Overloaded => "overloaded_error",
            Self::Api => "api_error",
        }
    }

    fn from_anthropic_type(t: &str) -> Option<Self> {
        Some(match t {
            "invalid_request_error" => Self::InvalidRequest,
            "authentication_error" => Self::Authentication,
            "permission_error" => Self::PermissionDenied,
            "not_found_error" => Self::NotFound,
            "request_too_large" => Self::RequestTooLarge,
            "rate_limit_error" => Self::RateLimited,
            "billing_error" => Self::Billing,
            "timeout_error" => Self::Timeout,
            "overloaded_error" => Self::Overloaded,
            "api_error" => Self::Api,
            _ => return None,
        })
    }

    /// OpenAI `(type, code)`.
    pub fn openai_type_code(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::InvalidRequest | Self::RequestTooLarge => ("invalid_request_error", None),
            Self::Authentication => ("invalid_request_error", Some("invalid_api_key")),
            Self::PermissionDenied => ("invalid_request_error", Some("permission_denied")),
            Self::NotFound => ("invalid_request_error", Some("model_not_found")),
            Self::RateLimited => ("rate_limit_exceeded", Some("rate_limit_exceeded")),
            Self::Billing => ("insufficient_quota", Some("insufficient_quota")),
            Self::Timeout => ("timeout", Some("timeout")),
            Self::Overloaded | Self::Api => ("server_error", None),
        }
    }

    /// A low-cardinality label for logs and metrics.
    pub fn label(self) -> &'static str {
        self.anthropic_type()
    }

    /// Google's RPC status names, which Gemini puts in `error.status`.
    pub fn from_google_status(s: &str) -> Option<Self> {
        Some(match s {
            "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => Self::InvalidRequest,
            "UNAUTHENTICATED" => Self::Authentication,
            "PERMISSION_DENIED" => Self::PermissionDenied,
            "NOT_FOUND" => Self::NotFound,
            "RESOURCE_EXHAUSTED" => Self::RateLimited,
            "DEADLINE_EXCEEDED" => Self::Timeout,
            "UNAVAILABLE" => Self::Overloaded,
            "INTERNAL" | "UNKNOWN" | "DATA_LOSS" | "ABORTED" | "CANCELLED" => Self::Api,
            _ => return None,
        })
    }
}

/// An error as a client will see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub kind: ErrorKind,
    /// Set when the status is not the kind's default (e.g. an upstream 500
    /// relayed as 500 rather than 502).
    pub status: Option<u16>,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<String>,
    /// Seconds (or an HTTP date) from the upstream's `retry-after`.
    pub retry_after: Option<String>,
    /// A retry can never succeed, whatever the kind says (a request larger
    /// than a token limit): `x-should-retry: false`.
    pub final_answer: bool,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: None,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
            final_answer: false,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// A status other than the kind's usual one (405, 408, 431).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Errors the gateway itself decided on, which a retry cannot fix: the
    /// SDKs should not retry them (`x-should-retry: false`).
    pub fn is_deterministic(&self) -> bool {
        self.final_answer
            || matches!(
                self.kind,
                ErrorKind::InvalidRequest
                    | ErrorKind::Authentication
                    | ErrorKind::PermissionDenied
                    | ErrorKind::NotFound
                    | ErrorKind::RequestTooLarge
            )
    }

    /// Reads an upstream's error response (any dialect's shape, or any
    /// text) into a client-facing error, keeping its status.
    pub fn from_upstream(status: u16, body: &[u8], retry_after: Option<String>) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        // Gemini's streamed JSON array (no `alt=sse`) carries its error as
        // the array's element.
        let parsed = match parsed {
            Some(Value::Array(mut a)) if !a.is_empty() => Some(a.swap_remove(0)),
            other => other,
        };
        let err = parsed.as_ref().and_then(|v| v.get("error"));
        let message = err
            .and_then(|e| e.get("message").and_then(Value::as_str))
            .map(str::to_owned)
            .or_else(|| err.and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
                let text = text.trim();
                if text.is_empty() {
                    format!("upstream returned HTTP {status}")
                } else {
                    format!("upstream returned HTTP {status}: {text}")
                }
            });
        let code = err
            .and_then(|e| e.get("code"))
            .and_then(|c| c.as_str().map(str::to_owned));
        // Gemini answers a bad key with 400 INVALID_ARGUMENT; every client
        // SDK expects 401 for that.
        let bad_key = err.is_some_and(google_bad_key);
        let kind = if bad_key {
            ErrorKind::Authentication
        } else {
            kind_of(err, status)
        };
        let mut e = Self::new(kind, message);
        e.param = err
            .and_then(|e| e.get("param"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if code.as_deref() == Some("context_length_exceeded") {
            if let Some(text) = claude_prompt_too_long(&e.message) {
                e.message = text;
            }
        } else if let Some(text) = gemini_prompt_too_long(&e.message) {
            e.message = text;
        }
        e.code = code;
        // Keep the upstream's own status where the kind alone would lose it
        // (500 vs 502, 422 vs 400).
        if status != kind.status() && status >= 400 && !bad_key {
            e.status = Some(status);
        }
        e.retry_after = retry_after.or_else(|| err.and_then(google_retry_delay));
        e
    }

    /// Reads an in-stream error payload: OpenAI `{"error":{…}}`, Anthropic
    /// `{"type":"error","error":{…}}` or Gemini `{"error":{"code","status",…}}`.
    pub fn from_stream_payload(v: &Value) -> Self {
        let err = v.get("error");
        let message = err
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .or_else(|| err.and_then(Value::as_str))
            .unwrap_or("upstream reported an error mid-stream");
        let field = |k: &str| err.and_then(|e| e.get(k));
        // Anthropic names a type, Gemini a status and its HTTP code.
        let kind = field("type")
            .and_then(Value::as_str)
            .and_then(ErrorKind::from_anthropic_type)
            .or_else(|| {
                field("status")
                    .and_then(Value::as_str)
                    .and_then(ErrorKind::from_google_status)
            })
            .or_else(|| {
                field("code")
                    .and_then(Value::as_u64)
                    .and_then(|c| u16::try_from(c).ok())
                    .filter(|c| *c >= 400)
                    .map(ErrorKind::from_status)
            })
            .unwrap_or(ErrorKind::Api);
        let mut e = Self::new(kind, message);
        e.retry_after = err.and_then(google_retry_delay);
        e
    }
}

/// The kind an upstream error names (Anthropic `type`, Google `status`),
/// else the one its HTTP status implies.
fn kind_of(err: Option<&Value>, status: u16) -> ErrorKind {
    let field = |k: &str| err.and_then(|e| e.get(k)).and_then(Value::as_str);
    field("type")
        .and_then(ErrorKind::from_anthropic_type)
        .or_else(|| field("status").and_then(ErrorKind::from_google_status))
        .filter(|k| !matches!(k, ErrorKind::InvalidRequest) || (400..500).contains(&status))
        .unwrap_or_else(|| ErrorKind::from_status(status))
}

/// Gemini's bad-key error: `details[].reason == "API_KEY_INVALID"`.
fn google_bad_key(err: &Value) -> bool {
    err.get("details")
        .and_then(Value::as_array)
        .is_some_and(|d| {
            d.iter()
                .any(|x| x.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"))
        })
}

/// Gemini's `RetryInfo.retryDelay` (`"34.4s"`) as whole seconds for a
/// `retry-after` header, rounded up so a client never comes back early.
fn google_retry_delay(err: &Value) -> Option<String> {
    let details = err.get("details")?.as_array()?;
    let delay = details
        .iter()
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))?;
    let secs: f64 = delay.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| format!("{}", secs.ceil() as u64))
}

/// Deserialises a client body; the error names the JSON path at fault
/// (`messages[2].content: invalid type …`).
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::invalid(format!(
            "request body is not valid UTF-8 (byte {})",
            e.valid_up_to()
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut err = if path.is_empty() || path == "." {
            ApiError::invalid(format!("invalid request body: {inner}"))
        } else {
            ApiError::invalid(format!("{path}: {inner}")).with_param(path)
        };
        if inner.is_syntax() || inner.is_eof() {
            err.param = None;
            err.message = format!("request body is not valid JSON: {inner}");
        }
        err
    })
}

/// Rewrites OpenAI's context-length message into the exact text Claude Code
/// matches to start auto-compaction: `prompt is too long: N tokens > M maximum`.
fn claude_prompt_too_long(openai_message: &str) -> Option<String> {
    let max = number_after(openai_message, "maximum context length is ")?;
    let got = number_after(openai_message, "resulted in ")
        .or_else(|| number_after(openai_message, "requested "))?;
    Some(format!("prompt is too long: {got} tokens > {max} maximum"))
}

/// The same for Gemini's "The input token count (N) exceeds the maximum
/// number of tokens allowed (M)".
fn gemini_prompt_too_long(message: &str) -> Option<String> {
    let got = number_after(message, "input token count (")?;
    let max = number_after(message, "tokens allowed (")?;
    Some(format!("prompt is too long: {got} tokens > {max} maximum"))
}

fn number_after(haystack: &str, needle: &str) -> Option<u64> {
    let start = haystack.find(needle)? + needle.len();
    let digits: String = haystack[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dialect;
    use serde_json::json;

    #[test]
    fn renders_each_dialect_shape() {
        let e = ApiError::invalid("messages: missing field").with_param("messages");
        assert_eq!(
            crate::dialect::error_body(Dialect::OpenAiChat, &e),
            json!({"error":{"message":"messages: missing field","type":"invalid_request_error","param":"messages","code":null}})
        );
        assert_eq!(
            crate::dialect::error_body(Dialect::Anthropic, &e),
            json!({"type":"error","error":{"type":"invalid_request_error","message":"messages: missing field"}})
        );
        assert_eq!(crate::dialect::error_status(Dialect::Anthropic, &e), 400);
    }

    #[test]
    fn overload_is_529_for_anthropic_and_503_for_openai() {
        let e = ApiError::from_upstream(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            None,
        );
        assert_eq!(e.kind, ErrorKind::Overloaded);
        assert_eq!(crate::dialect::error_status(Dialect::Anthropic, &e), 529);
        assert_eq!(crate::dialect::error_status(Dialect::OpenAiChat, &e), 503);
        assert_eq!(e.message, "Overloaded");
    }

    #[test]
    fn openai_error_keeps_status_and_retry_after() {
        let e = ApiError::from_upstream(
            429,
            br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
            Some("7".into()),
        );
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(crate::dialect::error_status(Dialect::Anthropic, &e), 429);
        assert_eq!(e.retry_after.as_deref(), Some("7"));
        assert_eq!(
            crate::dialect::error_body(Dialect::Anthropic, &e)["error"]["type"],
            "rate_limit_error"
        );
    }

    #[test]
    fn context_length_becomes_claude_code_text() {
        let e = ApiError::from_upstream(
            400,
            br#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
            None,
        );
        assert_eq!(
            e.message,
            "prompt is too long: 130512 tokens > 128000 maximum"
        );
        assert_eq!(crate::dialect::error_status(Dialect::Anthropic, &e), 400);
    }

    #[test]
    fn google_error_shapes_are_understood() {
        let body = br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34.4s"}]}}"#;
        let e = ApiError::from_upstream(429, body, None);
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.message, "quota");
        assert_eq!(e.retry_after.as_deref(), Some("35"));
        assert_eq!(e.status, None);

        let bad_key = br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT",
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#;
        let e = ApiError::from_upstream(400, bad_key, None);
        assert_eq!(e.kind, ErrorKind::Authentication);
        assert_eq!(crate::dialect::error_status(Dialect::OpenAiChat, &e), 401);

        let long = br#"[{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}]"#;
        let e = ApiError::from_upstream(400, long, None);
        assert_eq!(
            e.message,
            "prompt is too long: 1200000 tokens > 1048576 maximum"
        );

        let e = ApiError::from_upstream(
            503,
            br#"{"error":{"code":503,"message":"busy","status":"UNAVAILABLE"}}"#,
            None,
        );
        assert_eq!(e.kind, ErrorKind::Overloaded);

        let v: Value = serde_json::from_str(
            r#"{"error":{"code":504,"message":"slow","status":"DEADLINE_EXCEEDED"}}"#,
        )
        .unwrap();
        assert_eq!(ApiError::from_stream_payload(&v).kind, ErrorKind::Timeout);
        let v: Value = serde_json::from_str(r#"{"error":{"code":429,"message":"q"}}"#).unwrap();
        assert_eq!(
            ApiError::from_stream_payload(&v).kind,
            ErrorKind::RateLimited
        );
    }

    #[test]
    fn non_json_error_body_is_quoted() {
        let e = ApiError::from_upstream(500, b"boom", None);
        assert_eq!(e.kind, ErrorKind::Api);
        assert_eq!(crate::dialect::error_status(Dialect::OpenAiChat, &e), 500);
        assert!(e.message.contains("boom"));
    }
}
