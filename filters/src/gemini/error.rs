//! Google's error shape: `{"error":{"code","message","status"}}`, the same
//! in a response body and as an in-stream `data:` payload. `code` repeats
//! the HTTP status; `status` is the RPC status name the SDKs switch on.

use crate::error::{ApiError, ErrorKind};
use serde_json::{json, Value};

/// The RPC status name for a kind of error.
fn google_status(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "INVALID_ARGUMENT",
        ErrorKind::Authentication => "UNAUTHENTICATED",
        ErrorKind::PermissionDenied => "PERMISSION_DENIED",
        ErrorKind::NotFound => "NOT_FOUND",
        // Google reports exhausted quota (billing) as RESOURCE_EXHAUSTED too.
        ErrorKind::RateLimited | ErrorKind::Billing => "RESOURCE_EXHAUSTED",
        ErrorKind::Timeout => "DEADLINE_EXCEEDED",
        ErrorKind::Overloaded => "UNAVAILABLE",
        ErrorKind::Api => "INTERNAL",
    }
}

pub fn body(e: &ApiError) -> Value {
    let mut err = json!({
        "code": status(e),
        "message": e.message,
        "status": google_status(e.kind),
    });
    // google-genai and Gemini CLI read the wait from RetryInfo, not a header.
    if let Some(secs) = e
        .retry_after
        .as_deref()
        .and_then(|r| r.trim().parse::<u64>().ok())
    {
        err["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{secs}s"),
        }]);
    }
    json!({ "error": err })
}

/// Google has no 402 and no 529: quota is 429, overload 503.
pub fn status(e: &ApiError) -> u16 {
    match e.kind {
        ErrorKind::Overloaded => 503,
        ErrorKind::Billing => 429,
        _ => e.status.unwrap_or_else(|| e.kind.status()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_google_shape_with_retry_info() {
        let mut e = ApiError::new(ErrorKind::RateLimited, "slow down");
        e.retry_after = Some("7".into());
        let v = body(&e);
        assert_eq!(v["error"]["code"], 429);
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(v["error"]["details"][0]["retryDelay"], "7s");
        let e = ApiError::new(ErrorKind::Overloaded, "busy").with_status(529);
        assert_eq!(status(&e), 503);
        assert_eq!(body(&e)["error"]["status"], "UNAVAILABLE");
        let e = ApiError::invalid("bad").with_param("contents");
        assert_eq!(
            body(&e),
            json!({"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}})
        );
        let e = ApiError::from_upstream(500, b"boom", None);
        assert_eq!(status(&e), 500);
        assert_eq!(body(&e)["error"]["status"], "INTERNAL");
    }

    #[test]
    fn a_rendered_error_reads_back_as_the_same_kind() {
        for kind in [
            ErrorKind::InvalidRequest,
            ErrorKind::Authentication,
            ErrorKind::PermissionDenied,
            ErrorKind::NotFound,
            ErrorKind::RateLimited,
            ErrorKind::Timeout,
            ErrorKind::Overloaded,
            ErrorKind::Api,
        ] {
            let e = ApiError::new(kind, "x");
            let bytes = body(&e).to_string();
            assert_eq!(
                ApiError::from_upstream(status(&e), bytes.as_bytes(), None).kind,
                kind
            );
            assert_eq!(ApiError::from_stream_payload(&body(&e)).kind, kind);
        }
    }
}
